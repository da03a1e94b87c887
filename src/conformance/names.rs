//! Segment names: unique per org by key, found by key, kept unique through
//! creates, races, renames and deletes.

use super::*;

/// Names are unique per org by key: exact repeats, case, spacing and Unicode
/// normalization variants all collide, answer `DuplicateName` (404), and
/// create nothing.
pub fn names_are_unique_per_org_by_key(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let first = segments
        .create(&acme, NewSegment::new("Q1 Leads Café"))
        .unwrap();
    for variant in [
        "Q1 Leads Café",
        "q1 leads café",
        "Q1 LEADS CAFÉ",
        "  q1   leads   café ",
        "q1\u{a0}leads\u{2003}café",
        "q1 leads cafe\u{301}",
    ] {
        assert_duplicate(
            segments.create(&acme, NewSegment::new(variant).description("other")),
            variant.trim(),
            &format!("{variant:?} has the key of an existing name"),
        );
    }
    let listed = all(&segments, &acme);
    assert_eq!(
        listed,
        vec![first],
        "refused creates created nothing and changed nothing"
    );
}

/// Organizations are separate namespaces: one name may exist once in each.
pub fn the_same_name_may_exist_in_two_orgs(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let (a, b) = (ns.org("org-a"), ns.org("org-b"));
    let sa = segments.create(&a, NewSegment::new("Shared Name")).unwrap();
    let sb = segments.create(&b, NewSegment::new("shared name")).unwrap();
    assert_ne!(sa.id, sb.id, "two orgs, two segments");
    assert_eq!(
        segments.get(&a, sa.id).unwrap().name,
        "Shared Name",
        "A's segment keeps its spelling"
    );
    assert_eq!(
        segments.get(&b, sb.id).unwrap().name,
        "shared name",
        "B's segment keeps its spelling"
    );
}

/// Uniqueness is enforced by the storage itself, not by a check-then-insert
/// in the caller: of eight threads creating one name at once, exactly one
/// succeeds and the others get `DuplicateName`.
pub fn racing_creates_of_one_name_have_one_winner(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let acme = ns.org("acme");
    for round in 0..5 {
        let results = race_one_name(store, &format!("Contested {round}"), |_, segments, new| {
            segments.create(&acme, new)
        });
        let winners = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(
            winners, 1,
            "round {round}: exactly one create wins, got {results:?}"
        );
        for r in &results {
            assert!(
                matches!(r, Ok(_) | Err(Error::DuplicateName { .. })),
                "round {round}: losers get DuplicateName, got {r:?}"
            );
        }
    }
    assert_eq!(
        all(&Segments::new(store), &acme).len(),
        5,
        "one segment per round"
    );
}

/// `find_or_create` returns the org's segment with the name's key as it
/// is (description and source untouched, nothing in the ledger), or
/// creates one; it checks its input like `create` even when the segment
/// exists; under an idempotency key, a retry returns what the first call
/// returned, even after a rename.
pub fn find_or_create_finds_by_key_or_creates(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let made = segments
        .for_request("req-foc")
        .find_or_create(&acme, NewSegment::new("Q1 Leads").description("first"))
        .unwrap();
    assert_eq!(made.current_size, 0);
    assert_eq!(made.description.as_deref(), Some("first"));
    let head = segments.last_seq(&acme).unwrap();
    assert_eq!(head, 1, "a create records its Created entry");
    assert_eq!(
        segments
            .changes_since(&acme, PageOptions::new().limit(1))
            .unwrap()
            .changes[0]
            .request_id
            .as_deref(),
        Some("req-foc"),
        "through for_request, the Created entry carries the request id"
    );
    let found = segments
        .find_or_create(
            &acme,
            NewSegment::new(" q1   LEADS ")
                .description("second")
                .source("import"),
        )
        .unwrap();
    assert_eq!(found, made, "the same segment, as it is");
    assert_eq!(
        segments.last_seq(&acme).unwrap(),
        head,
        "finding records nothing"
    );
    let other = segments
        .find_or_create(&ns.org("other"), NewSegment::new("Q1 Leads"))
        .unwrap();
    assert_ne!(other.id, made.id, "names are per org");
    assert_invalid(
        segments.find_or_create(&acme, NewSegment::new("   ")),
        Field::Name,
        "a blank name",
    );
    assert_invalid(
        segments.find_or_create(
            &acme,
            NewSegment::new("Q1 Leads").description("x".repeat(MAX_DESCRIPTION_CHARS + 1)),
        ),
        Field::Description,
        "a bad description, even though the name exists",
    );
    // Keyed: the first outcome, whatever happens to the name afterwards.
    let keyed = segments.with_idempotency_key("foc-1");
    let first = keyed
        .find_or_create(&acme, NewSegment::new("Keyed"))
        .unwrap();
    segments.rename(&acme, first.id, "Renamed").unwrap();
    assert_eq!(
        keyed
            .find_or_create(&acme, NewSegment::new("Keyed"))
            .unwrap(),
        first,
        "a retry returns the first call's segment, not a new one"
    );
    assert!(
        segments.find_by_name(&acme, "Keyed").unwrap().is_none(),
        "and creates nothing"
    );
    let found_keyed = segments
        .with_idempotency_key("foc-2")
        .find_or_create(&acme, NewSegment::new("q1 leads"))
        .unwrap();
    assert_eq!(found_keyed, made, "a keyed call finds as well");
    segments
        .set_description(&acme, made.id, Some("changed"))
        .unwrap();
    assert_eq!(
        segments
            .with_idempotency_key("foc-2")
            .find_or_create(&acme, NewSegment::new("q1 leads"))
            .unwrap(),
        made,
        "a found segment is recorded under the key too"
    );
    assert!(
        matches!(
            segments
                .with_idempotency_key("foc-2")
                .find_or_create(&acme, NewSegment::new("Other name")),
            Err(Error::IdempotencyConflict { .. })
        ),
        "the same key with another name is a conflict"
    );
}

/// Of eight threads calling `find_or_create` with one name key at once
/// (spelled differently), every one gets the same segment, and the ledger
/// holds one `Created` entry: the race is settled by the storage's
/// uniqueness, and the losers look again.
pub fn racing_find_or_creates_agree_on_one_segment(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let acme = ns.org("acme");
    for round in 0..5 {
        let results = race_one_name(store, &format!("Shared {round}"), |i, segments, new| {
            if i % 4 == 3 {
                segments
                    .with_idempotency_key(format!("race-{round}-{i}"))
                    .find_or_create(&acme, new)
            } else {
                segments.find_or_create(&acme, new)
            }
        });
        let ids: Vec<SegmentId> = results
            .iter()
            .map(|r| match r {
                Ok(s) => s.id,
                Err(e) => panic!("round {round}: every call succeeds, got {e:?}"),
            })
            .collect();
        assert!(
            ids.iter().all(|id| *id == ids[0]),
            "round {round}: every call returns the same segment, got {ids:?}"
        );
    }
    let segments = Segments::new(store);
    assert_eq!(all(&segments, &acme).len(), 5, "one segment per round");
    let created = whole_ledger(&segments, &acme)
        .iter()
        .filter(|c| matches!(c.kind, ChangeKind::Created { .. }))
        .count();
    assert_eq!(created, 5, "one Created entry per name");
}

/// `find_by_name` compares keys, as uniqueness does: any spelling with the
/// same key finds the segment.
pub fn find_by_name_compares_keys(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments
        .create(&acme, NewSegment::new("Churn Risk  Q3"))
        .unwrap();
    for spelling in ["Churn Risk  Q3", "churn risk q3", " CHURN\u{2003}RISK q3 "] {
        assert_eq!(
            segments
                .find_by_name(&acme, spelling)
                .unwrap()
                .map(|f| f.id),
            Some(s.id),
            "{spelling:?} finds it"
        );
    }
    assert_eq!(
        segments.find_by_name(&acme, "churn risk q4").unwrap(),
        None,
        "another key finds nothing"
    );
    assert_invalid(
        segments.find_by_name(&acme, "   "),
        Field::Name,
        "a blank name cannot be looked up",
    );
}

/// Rename keeps the uniqueness rule: another segment's key is refused and
/// changes nothing; the segment's own key in another spelling is fine; the
/// old name is free afterwards; `updated_at` moves and `created_at` does not.
pub fn rename_keeps_names_unique(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, clock) = ns.service(store);
    let acme = ns.org("acme");
    let a = segments.create(&acme, NewSegment::new("Alpha")).unwrap();
    let b = segments.create(&acme, NewSegment::new("Beta")).unwrap();
    assert_duplicate(
        segments.rename(&acme, b.id, " ALPHA "),
        "ALPHA",
        "renaming onto another segment's key",
    );
    assert_eq!(
        segments.get(&acme, b.id).unwrap(),
        b,
        "a refused rename changed nothing"
    );
    clock.advance(TimeDelta::seconds(1));
    let recased = segments
        .rename(&acme, a.id, "ALPHA")
        .expect("a segment may take its own key");
    assert_eq!(recased.name, "ALPHA", "the new spelling is stored");
    assert_eq!(recased.created_at, a.created_at, "rename keeps created_at");
    assert_eq!(
        recased.updated_at,
        start_micros() + TimeDelta::seconds(1),
        "rename moves updated_at"
    );
    assert_eq!(
        segments.get(&acme, a.id).unwrap(),
        recased,
        "get shows the rename"
    );
    segments.rename(&acme, a.id, "Gamma").unwrap();
    let reused = segments
        .create(&acme, NewSegment::new("alpha"))
        .expect("the old name is free after a rename");
    assert_ne!(
        reused.id, a.id,
        "a new segment of the freed name has a new id"
    );
    assert_eq!(
        segments.find_by_name(&acme, "gamma").unwrap().map(|s| s.id),
        Some(a.id),
        "the new name finds the segment"
    );
    assert_invalid(
        segments.rename(&acme, a.id, " "),
        Field::Name,
        "renaming to a blank name",
    );
}

/// Deleting a segment removes it for every read and frees its name at once;
/// a second delete is `NotFound`.
pub fn delete_frees_the_name(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments
        .create(&acme, NewSegment::new("Temporary"))
        .unwrap();
    let keep = segments.create(&acme, NewSegment::new("Keeper")).unwrap();
    segments.delete(&acme, s.id).expect("delete succeeds");
    assert_not_found(segments.get(&acme, s.id), s.id, "a deleted segment");
    assert_eq!(
        segments.find_by_name(&acme, "temporary").unwrap(),
        None,
        "a deleted name finds nothing"
    );
    assert_eq!(
        all(&segments, &acme),
        vec![keep],
        "only the other segment is listed"
    );
    assert_not_found(segments.delete(&acme, s.id), s.id, "deleting twice");
    let again = segments
        .create(&acme, NewSegment::new("TEMPORARY"))
        .expect("the name is free again");
    assert_ne!(again.id, s.id, "a new segment, a new id");
}

/// Threads racing on one name.
const RACERS: usize = 8;

/// Runs `call` from [`RACERS`] threads released at once, each with its own
/// service over `store` and the name spelled its own way (upper case, or
/// with spaces around it: one key); their results, in thread order.
fn race_one_name(
    store: &dyn SegmentStore,
    name: &str,
    call: impl Fn(usize, &Segments<&dyn SegmentStore>, NewSegment) -> crate::Result<Segment> + Sync,
) -> Vec<crate::Result<Segment>> {
    let barrier = Barrier::new(RACERS);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..RACERS)
            .map(|i| {
                let (barrier, call) = (&barrier, &call);
                scope.spawn(move || {
                    let segments = Segments::new(store);
                    let spelled = if i % 2 == 0 {
                        name.to_uppercase()
                    } else {
                        format!(" {name} ")
                    };
                    barrier.wait();
                    call(i, &segments, NewSegment::new(spelled))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no thread panics"))
            .collect()
    })
}
