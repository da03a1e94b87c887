//! The PIDs a member call is given: malformed, unknown, too many, none,
//! repeated.

use super::*;

/// Malformed PIDs are reported, each once and in the order given, and never
/// fail the call, even when no PID is valid.
pub fn malformed_pids_never_fail_the_call(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments.create(&acme, NewSegment::new("Strict")).unwrap();
    let bad = [
        "p-BAD",
        "",
        "p-",
        "h-abc123",
        "p-abc ",
        "p-bad!",
        "p-BAD",
        "'; DROP TABLE memberships;--",
    ];
    let out = segments.add_members(&acme, s.id, &bad).unwrap();
    assert_eq!(out.n_added, 0, "nothing valid, nothing added");
    assert_eq!(
        out.invalid_pids,
        [
            "p-BAD",
            "",
            "p-",
            "h-abc123",
            "p-abc ",
            "p-bad!",
            "'; DROP TABLE memberships;--"
        ],
        "each malformed PID once, in order"
    );
    let out = segments
        .remove_members(&acme, s.id, &["p-ok", "p-NOPE"])
        .unwrap();
    assert_eq!(
        out,
        RemoveOutcome {
            n_deleted: 0,
            invalid_pids: vec!["p-NOPE".into()],
            new_current_size: 0
        },
        "a non-member removes nothing and a malformed PID is reported"
    );
    assert!(
        every_member(&segments, &acme, s.id).is_empty(),
        "no member was added"
    );
}

/// More than 100,000 PIDs in one call is `TooLarge` and nothing of it is
/// applied; exactly 100,000 is accepted.
pub fn too_many_pids_are_refused_whole(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments.create(&acme, NewSegment::new("Bounded")).unwrap();
    let mut pids: Vec<String> = (0..MAX_PIDS_PER_CALL).map(|i| format!("p-{i}")).collect();
    pids.push("p-onetoomany".into());
    for result in [
        segments.add_members(&acme, s.id, &pids).map(|_| ()),
        segments.remove_members(&acme, s.id, &pids).map(|_| ()),
    ] {
        match result {
            Err(e @ Error::TooLarge { .. }) => {
                assert_eq!(e.status_code(), 413, "TooLarge answers 413, as documented");
                assert_eq!(
                    e.to_string(),
                    "More than 100000 minerva_pids in request",
                    "the documented message"
                );
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }
    assert_eq!(
        segments.get(&acme, s.id).unwrap().current_size,
        0,
        "nothing of a refused call is applied"
    );
    // The limit itself is accepted (malformed PIDs keep this cheap).
    let at_limit: Vec<String> = (0..MAX_PIDS_PER_CALL).map(|i| format!("x-{i}")).collect();
    let out = segments
        .add_members(&acme, s.id, &at_limit)
        .expect("exactly the limit is accepted");
    assert_eq!(
        out.invalid_pids.len(),
        MAX_PIDS_PER_CALL,
        "every PID at the limit is reported as malformed"
    );
}

/// A person directory's unknown PIDs are reported with the malformed ones
/// and not added.
pub fn person_directory_rejects_unknown_pids(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let segments =
        segments.with_person_directory(KnownPids::new(["p-known1", "p-known2"]).unwrap());
    let acme = ns.org("acme");
    let s = segments
        .create(&acme, NewSegment::new("Directory"))
        .unwrap();
    let out = segments
        .add_members(&acme, s.id, &["p-known1", "p-stranger", "bad!", "p-known2"])
        .unwrap();
    assert_eq!(
        (out.n_added, out.new_current_size),
        (2, 2),
        "known PIDs are added"
    );
    assert_eq!(
        out.invalid_pids,
        ["bad!", "p-stranger"],
        "malformed first, then unknown"
    );
    assert_eq!(
        pids_of(&every_member(&segments, &acme, s.id)),
        ["p-known1", "p-known2"],
        "only the known PIDs are members"
    );
}

/// An empty call is valid: it changes nothing and reports the size.
pub fn empty_member_calls_change_nothing(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments.create(&acme, NewSegment::new("Quiet")).unwrap();
    segments.add_members(&acme, s.id, &["p-a"]).unwrap();
    let none: [&str; 0] = [];
    let out = segments.add_members(&acme, s.id, &none).unwrap();
    assert_eq!(
        out,
        AddOutcome {
            new_current_size: 1,
            ..AddOutcome::default()
        },
        "an empty add changes nothing and reports the size"
    );
    let out = segments.remove_members(&acme, s.id, &none).unwrap();
    assert_eq!(
        out,
        RemoveOutcome {
            new_current_size: 1,
            ..RemoveOutcome::default()
        },
        "an empty removal changes nothing and reports the size"
    );
}

/// Repeats within one call count once each: the first occurrence of a PID
/// is what the call does with it, every later one is redundant in an add
/// and not counted in a removal. So an add's counts add up to its valid
/// PIDs, a removal counts each member once, and the ledger records each
/// change once.
pub fn repeats_within_a_call_count_once(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, clock) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments.create(&acme, NewSegment::new("Repeated")).unwrap();
    let out = segments
        .add_members(&acme, s.id, &["p-a", "p-a", "p-b", "p-a"])
        .unwrap();
    assert_eq!(
        out,
        AddOutcome {
            n_added: 2,
            n_redundant_additions: 2,
            invalid_pids: vec![],
            new_current_size: 2
        },
        "two PIDs added, the two repeats of p-a redundant"
    );
    let members = every_member(&segments, &acme, s.id);
    assert_eq!(
        pids_of(&members),
        ["p-a", "p-b"],
        "each PID is a member once"
    );
    clock.advance(TimeDelta::seconds(1));
    let out = segments
        .add_members(&acme, s.id, &["p-b", "p-c", "p-c", "p-b"])
        .unwrap();
    assert_eq!(
        (out.n_added, out.n_redundant_additions, out.new_current_size),
        (1, 3, 3),
        "one new PID; a member and two repeats are redundant"
    );
    let out = segments
        .remove_members(&acme, s.id, &["p-a", "p-a", "p-c", "p-q", "p-a", "p-q"])
        .unwrap();
    assert_eq!(
        out,
        RemoveOutcome {
            n_deleted: 2,
            invalid_pids: vec![],
            new_current_size: 1
        },
        "each member removed is counted once; repeats and non-members are not counted"
    );
    let kinds: Vec<ChangeKind> = whole_ledger(&segments, &acme)
        .into_iter()
        .skip(1)
        .map(|c| c.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            ChangeKind::MemberAdded { pid: pid("p-a") },
            ChangeKind::MemberAdded { pid: pid("p-b") },
            ChangeKind::MemberAdded { pid: pid("p-c") },
            ChangeKind::MemberRemoved { pid: pid("p-a") },
            ChangeKind::MemberRemoved { pid: pid("p-c") },
        ],
        "each change recorded once, whatever the repeats"
    );
    assert_eq!(
        pids_of(&every_member(&segments, &acme, s.id)),
        ["p-b"],
        "p-b is the one member left"
    );
}

/// A PID given twice in one call straight to the store. The service passes
/// each PID of a call once, but [`SegmentStore`] is public, and a store
/// that counted a repeat twice would report, and keep, a `current_size`
/// that no longer matches its members. So a store either refuses such a
/// call with `Storage` and changes nothing, or applies it as the service
/// would (a repeat is redundant in an add and not counted in a removal);
/// never part of it, never a person counted twice.
pub fn a_pid_given_twice_to_a_store_is_refused_or_counted_once(store: &dyn SegmentStore) {
    use crate::store::Stamp;

    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments.create(&acme, NewSegment::new("Twice")).unwrap();
    let [a, b, c] = ns.pids(["p-a", "p-b", "p-c"]);
    segments.add_members(&acme, s.id, &[&a, &b]).unwrap();
    segments.remove_members(&acme, s.id, &[&a]).unwrap();
    // a was removed, b is a member, c never was.
    let stamp = Stamp {
        at: start_micros() + TimeDelta::seconds(1),
        request_id: None,
        dry_run: false,
        key: None,
    };
    let state = || {
        let members = every_member(&segments, &acme, s.id);
        let size = segments.get(&acme, s.id).unwrap().current_size;
        assert_eq!(
            size,
            members.len() as u64,
            "current_size is the number of members listed"
        );
        let listed: Vec<String> = pids_of(&members).iter().map(|p| (*p).to_owned()).collect();
        (listed, whole_ledger(&segments, &acme).len())
    };
    // Each call: what it is, the PID given twice, and whether it adds.
    let cases = [
        ("re-adding a removed PID", &a, true),
        ("adding a new PID", &c, true),
        ("removing a member", &b, false),
    ];
    for (what, twice, add) in cases {
        let (before, ledger_before) = state();
        let given = [pid(twice), pid(twice)];
        let outcome = if add {
            store
                .add_members(&acme, s.id, &given, stamp)
                .map(|o| (o.n_added, o.n_redundant_additions, o.new_current_size))
        } else {
            store
                .remove_members(&acme, s.id, &given, stamp)
                .map(|o| (o.n_deleted, 0, o.new_current_size))
        };
        let (after, ledger_after) = state();
        match outcome {
            Err(e) => {
                assert!(
                    e.storage_kind().is_some(),
                    "{what} given twice: refused with Storage, got {e:?}"
                );
                assert_eq!(
                    after, before,
                    "{what} given twice, refused: no member changed"
                );
                assert_eq!(
                    ledger_after, ledger_before,
                    "{what} given twice, refused: no entry recorded"
                );
            }
            Ok((changed, redundant, size)) => {
                let was_member = before.contains(twice);
                let mut expected = before.clone();
                expected.retain(|p| p != twice);
                if add {
                    expected.push(twice.clone());
                }
                expected.sort_unstable();
                let mut listed = after.clone();
                listed.sort_unstable();
                assert_eq!(listed, expected, "{what} given twice: applied once");
                let (counts, entries) = match (add, was_member) {
                    (true, true) => ((0, 2), 0),
                    (true, false) => ((1, 1), 1),
                    (false, true) => ((1, 0), 1),
                    (false, false) => ((0, 0), 0),
                };
                assert_eq!(
                    (changed, redundant),
                    counts,
                    "{what} given twice: counted once, the repeat redundant in an add"
                );
                assert_eq!(
                    size,
                    after.len() as u64,
                    "{what} given twice: the size reported is exact"
                );
                assert_eq!(
                    ledger_after - ledger_before,
                    entries,
                    "{what} given twice: each change recorded once"
                );
            }
        }
    }
}
