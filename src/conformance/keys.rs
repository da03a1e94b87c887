//! Idempotency keys: a keyed write applies once, and its retries get its
//! first outcome.

use super::*;
use crate::SetExpr;

/// What an org holds, to tell that a call changed nothing: its ledger, and
/// every segment with its members.
fn everything(
    segments: &Segments<&dyn SegmentStore>,
    org: &OrgId,
) -> (Vec<crate::Change>, Vec<(Segment, Vec<Member>)>) {
    let held = all(segments, org)
        .into_iter()
        .map(|s| {
            let members = every_member(segments, org, s.id);
            (s, members)
        })
        .collect();
    (whole_ledger(segments, org), held)
}

fn assert_conflict<T: std::fmt::Debug>(result: crate::Result<T>, key: &str, why: &str) {
    match result {
        Err(e @ Error::IdempotencyConflict { .. }) => {
            assert_eq!(e.status_code(), 422, "{why}: a conflict answers 422");
            assert!(
                matches!(&e, Error::IdempotencyConflict { key: k } if k == key),
                "{why}: the error names the key"
            );
        }
        other => panic!("{why}: expected IdempotencyConflict, got {other:?}"),
    }
}

/// Every write replays: create, rename, description, member calls, set
/// operations and delete, each retried with its key, returns the first
/// call's outcome exactly (a delete's retry succeeds though the segment is
/// gone; a duplicate name's retry is the same error, even once the name is
/// free) and changes nothing; the same key with other input is a 422
/// conflict that changes nothing; keys are per org; the record keeps the
/// first call's request id; bad keys are refused before anything is done;
/// dry runs record no key.
pub fn a_key_replays_its_first_outcome_and_applies_nothing_again(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, clock) = ns.service(store);
    let acme = ns.org("acme");
    let globex = ns.org("globex");
    let first = segments.for_request("req-first");
    let keyed = |key: &str| first.with_idempotency_key(key);
    let retrying = segments.for_request("req-retry");
    let retry = |key: &str| retrying.with_idempotency_key(key);
    let advance = || clock.advance(TimeDelta::seconds(1));

    // create
    let made = keyed("k-create")
        .create(&acme, NewSegment::new("Watchlist").description("d"))
        .unwrap();
    advance();
    let before = everything(&segments, &acme);
    let again = retry("k-create")
        .create(&acme, NewSegment::new("Watchlist").description("d"))
        .unwrap();
    assert_eq!(
        again, made,
        "a retried create returns the first segment, id and times"
    );
    assert_eq!(
        everything(&segments, &acme),
        before,
        "a retried create changes nothing"
    );
    let record = segments
        .idempotency_record(&acme, "k-create")
        .unwrap()
        .expect("a used key has a record");
    assert_eq!(
        record.request_id.as_deref(),
        Some("req-first"),
        "the record keeps the first call's request id"
    );
    assert_eq!(record.recorded_at, made.created_at);
    assert_conflict(
        retry("k-create").create(&acme, NewSegment::new("Watchlist").description("other")),
        "k-create",
        "the same key with another description",
    );
    assert_eq!(
        everything(&segments, &acme),
        before,
        "a conflict changes nothing"
    );
    assert!(
        segments
            .idempotency_record(&globex, "k-create")
            .unwrap()
            .is_none(),
        "keys are per org"
    );
    let elsewhere = keyed("k-create")
        .create(&globex, NewSegment::new("Watchlist").description("d"))
        .unwrap();
    assert_ne!(elsewhere.id, made.id, "another org's key is another key");

    // add and remove
    let pids = ["p-a", "p-b", "p-b", "bad!"];
    let added = keyed("k-add").add_members(&acme, made.id, &pids).unwrap();
    assert_eq!(
        (
            added.n_added,
            added.n_redundant_additions,
            added.new_current_size
        ),
        (2, 1, 2)
    );
    advance();
    let before = everything(&segments, &acme);
    assert_eq!(
        retry("k-add").add_members(&acme, made.id, &pids).unwrap(),
        added,
        "a retried add returns the first outcome, not a redundant add"
    );
    assert_eq!(
        everything(&segments, &acme),
        before,
        "a retried add changes nothing"
    );
    assert_conflict(
        retry("k-add").add_members(&acme, made.id, &["p-a", "p-b", "bad!"]),
        "k-add",
        "the same key with other PIDs",
    );
    assert_conflict(
        retry("k-add").remove_members(&acme, made.id, &pids),
        "k-add",
        "the same key for another operation",
    );
    assert_eq!(
        everything(&segments, &acme),
        before,
        "conflicts change nothing"
    );
    let removed = keyed("k-remove")
        .remove_members(&acme, made.id, &["p-a"])
        .unwrap();
    advance();
    let before = everything(&segments, &acme);
    assert_eq!(
        retry("k-remove")
            .remove_members(&acme, made.id, &["p-a"])
            .unwrap(),
        removed
    );
    assert_eq!(
        everything(&segments, &acme),
        before,
        "a retried removal changes nothing"
    );

    // rename and description
    let renamed = keyed("k-rename").rename(&acme, made.id, "Renamed").unwrap();
    advance();
    segments.rename(&acme, made.id, "Renamed again").unwrap();
    let before = everything(&segments, &acme);
    assert_eq!(
        retry("k-rename").rename(&acme, made.id, "Renamed").unwrap(),
        renamed,
        "a retried rename returns the first outcome, and does not rename back"
    );
    assert_eq!(everything(&segments, &acme), before);
    let described = keyed("k-describe")
        .set_description(&acme, made.id, None)
        .unwrap();
    advance();
    assert_eq!(
        retry("k-describe")
            .set_description(&acme, made.id, None)
            .unwrap(),
        described
    );
    assert_conflict(
        retry("k-describe").set_description(&acme, made.id, Some("")),
        "k-describe",
        "no description is not an empty one",
    );

    // a duplicate name: the error is the outcome, replayed even once the
    // name is free
    let taken = segments.create(&acme, NewSegment::new("Taken")).unwrap();
    assert_duplicate(
        keyed("k-dup").create(&acme, NewSegment::new("taken")),
        "taken",
        "a keyed create of a taken name",
    );
    segments.delete(&acme, taken.id).unwrap();
    let before = everything(&segments, &acme);
    assert_duplicate(
        retry("k-dup").create(&acme, NewSegment::new("taken")),
        "taken",
        "its retry, after the name was freed",
    );
    assert_eq!(
        everything(&segments, &acme),
        before,
        "the retry created nothing"
    );
    let unknown = SegmentId::parse("550e8400-e29b-41d4-a716-446655440000").unwrap();
    assert_not_found(
        keyed("k-unknown").add_members(&acme, unknown, &["p-a"]),
        unknown,
        "a keyed add to an unknown segment",
    );
    assert_not_found(
        retry("k-unknown").add_members(&acme, unknown, &["p-a"]),
        unknown,
        "its retry",
    );

    // set operations
    let other = segments.create(&acme, NewSegment::new("Other")).unwrap();
    segments
        .add_members(&acme, other.id, &["p-x", "p-y"])
        .unwrap();
    let expr = SetExpr::segment(other.id).union(SetExpr::segment(made.id));
    let derived = keyed("k-from")
        .create_from(&acme, NewSegment::new("Derived"), &expr)
        .unwrap();
    assert_eq!(derived.current_size, 3);
    let added_from = keyed("k-add-from").add_from(&acme, made.id, &expr).unwrap();
    let removed_from = keyed("k-remove-from")
        .remove_from(&acme, made.id, &SetExpr::segment(other.id))
        .unwrap();
    advance();
    let before = everything(&segments, &acme);
    assert_eq!(
        retry("k-from")
            .create_from(&acme, NewSegment::new("Derived"), &expr)
            .unwrap(),
        derived
    );
    assert_eq!(
        retry("k-add-from").add_from(&acme, made.id, &expr).unwrap(),
        added_from
    );
    assert_eq!(
        retry("k-remove-from")
            .remove_from(&acme, made.id, &SetExpr::segment(other.id))
            .unwrap(),
        removed_from
    );
    assert_eq!(
        everything(&segments, &acme),
        before,
        "retried set operations change nothing"
    );
    assert_conflict(
        retry("k-add-from").add_from(&acme, made.id, &SetExpr::segment(other.id)),
        "k-add-from",
        "the same key with another expression",
    );

    // delete: the retry succeeds, though the segment is gone
    keyed("k-delete").delete(&acme, made.id).unwrap();
    let before = everything(&segments, &acme);
    retry("k-delete")
        .delete(&acme, made.id)
        .expect("a retried delete replays its success");
    assert_eq!(everything(&segments, &acme), before);
    assert_not_found(
        segments.delete(&acme, made.id),
        made.id,
        "without the key, the segment is gone",
    );

    // bad keys, and dry runs
    let target = segments.create(&acme, NewSegment::new("Target")).unwrap();
    let before = everything(&segments, &acme);
    let too_long = "k".repeat(crate::limits::MAX_IDEMPOTENCY_KEY_BYTES + 1);
    for bad in ["", "a\nb", too_long.as_str()] {
        assert_invalid(
            segments
                .with_idempotency_key(bad)
                .add_members(&acme, target.id, &["p-q"]),
            Field::IdempotencyKey,
            "a bad key",
        );
        assert_invalid(
            segments.idempotency_record(&acme, bad),
            Field::IdempotencyKey,
            "a bad key, looked up",
        );
    }
    assert_eq!(
        everything(&segments, &acme),
        before,
        "bad keys change nothing"
    );
    keyed("k-dry")
        .dry_run()
        .add_members(&acme, target.id, &["p-q"])
        .unwrap();
    assert!(
        segments
            .idempotency_record(&acme, "k-dry")
            .unwrap()
            .is_none(),
        "a dry run records no key"
    );
    let real = keyed("k-dry")
        .add_members(&acme, target.id, &["p-q"])
        .unwrap();
    assert_eq!(real.n_added, 1, "the key is free after the dry run");
}

/// Calls racing with one key apply once, and every one of them returns
/// the one outcome: adds (the size counts each PID once, the ledger holds
/// one call's entries) and creates (one segment).
pub fn racing_calls_with_one_key_apply_once(store: &dyn SegmentStore) {
    const THREADS: usize = 4;
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments.create(&acme, NewSegment::new("Raced")).unwrap();
    let pids: Vec<String> = (0..40).map(|i| format!("p-{i:02}")).collect();
    let ledger_before = whole_ledger(&segments, &acme).len();
    let barrier = Barrier::new(THREADS);
    let outcomes: Vec<(AddOutcome, Segment)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (barrier, acme, pids, segments) = (&barrier, &acme, &pids, &segments);
                scope.spawn(move || {
                    let request = segments.for_request(format!("req-{t}"));
                    let keyed = request.with_idempotency_key("k-race");
                    barrier.wait();
                    let added = keyed.add_members(acme, s.id, pids).unwrap();
                    let keyed = segments.with_idempotency_key("k-race-create");
                    barrier.wait();
                    let made = keyed.create(acme, NewSegment::new("Made once")).unwrap();
                    (added, made)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no thread panics"))
            .collect()
    });
    for (added, made) in &outcomes {
        assert_eq!(added, &outcomes[0].0, "every racer gets the one outcome");
        assert_eq!(made, &outcomes[0].1, "every racer gets the one segment");
    }
    assert_eq!(outcomes[0].0.n_added, 40);
    assert_eq!(segments.get(&acme, s.id).unwrap().current_size, 40);
    let ledger = whole_ledger(&segments, &acme);
    assert_eq!(
        ledger.len(),
        ledger_before + 40 + 1,
        "one add's entries and one create's: the others applied nothing"
    );
    let made: Vec<_> = all(&segments, &acme)
        .into_iter()
        .filter(|x| x.name == "Made once")
        .collect();
    assert_eq!(made.len(), 1, "one segment was created");
}

/// A key is remembered for the service's TTL: after it, the record is
/// gone and the key applies again, with any input.
pub fn expired_keys_are_forgotten(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, clock) = ns.service(store);
    let segments = segments.with_idempotency_ttl(std::time::Duration::from_secs(3600));
    let acme = ns.org("acme");
    let s = segments.create(&acme, NewSegment::new("Expiring")).unwrap();
    let keyed = segments.with_idempotency_key("k-ttl");
    let first = keyed.add_members(&acme, s.id, &["p-a"]).unwrap();
    let record = segments
        .idempotency_record(&acme, "k-ttl")
        .unwrap()
        .expect("recorded");
    assert_eq!(
        record.expires_at - record.recorded_at,
        TimeDelta::hours(1),
        "the record lives for the TTL"
    );
    clock.advance(TimeDelta::minutes(59));
    assert_eq!(
        keyed.add_members(&acme, s.id, &["p-a"]).unwrap(),
        first,
        "still replayed"
    );
    assert_conflict(
        keyed.add_members(&acme, s.id, &["p-b"]),
        "k-ttl",
        "still remembered",
    );
    clock.advance(TimeDelta::minutes(1));
    assert!(
        segments
            .idempotency_record(&acme, "k-ttl")
            .unwrap()
            .is_none(),
        "a key is forgotten when its TTL is over"
    );
    let again = keyed.add_members(&acme, s.id, &["p-a"]).unwrap();
    assert_eq!(
        (again.n_added, again.n_redundant_additions),
        (0, 1),
        "the same input applies again: p-a is a member already"
    );
    clock.advance(TimeDelta::hours(2));
    let other = keyed.add_members(&acme, s.id, &["p-b"]).unwrap();
    assert_eq!(other.n_added, 1, "other input applies once the key expired");
    assert_eq!(segments.get(&acme, s.id).unwrap().current_size, 2);
}
