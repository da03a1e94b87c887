//! Set operations (a segment made of others) and dry runs.

use super::*;
use crate::{Provenance, SetExpr};

/// The active members of `id`, as PID texts, in PID order.
fn pid_set(segments: &Segments<&dyn SegmentStore>, org: &OrgId, id: SegmentId) -> Vec<String> {
    let mut pids: Vec<String> = every_member(segments, org, id)
        .into_iter()
        .map(|m| m.pid.as_str().to_owned())
        .collect();
    pids.sort();
    pids
}

/// `(A ∪ B) − C`, `A ∩ B`, `A − B` and nesting give exactly the people set
/// algebra says, from the sources' *active* members (a removed member is
/// not one), with an exact `current_size`; `add_from` and `remove_from`
/// apply an expression to an existing segment, which may be one of its own
/// sources.
pub fn set_operations_compute_unions_intersections_and_differences(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let make = |name: &str, pids: &[&str]| {
        let s = segments.create(&acme, NewSegment::new(name)).unwrap();
        segments.add_members(&acme, s.id, pids).unwrap();
        s.id
    };
    let a = make("A", &["p-1", "p-2", "p-3", "p-9"]);
    let b = make("B", &["p-3", "p-4", "p-9"]);
    let c = make("C", &["p-2", "p-4", "p-5"]);
    // p-9 left A: it is no longer A's.
    segments.remove_members(&acme, a, &["p-9"]).unwrap();
    let seg = SetExpr::segment;
    let cases = [
        (
            "A or B",
            seg(a).union(seg(b)),
            vec!["p-1", "p-2", "p-3", "p-4", "p-9"],
        ),
        ("A and B", seg(a).intersect(seg(b)), vec!["p-3"]),
        ("A not B", seg(a).minus(seg(b)), vec!["p-1", "p-2"]),
        (
            "(A or B) not C",
            seg(a).union(seg(b)).minus(seg(c)),
            vec!["p-1", "p-3", "p-9"],
        ),
        (
            "A and (B or C)",
            seg(a).intersect(seg(b).union(seg(c))),
            vec!["p-2", "p-3"],
        ),
        ("B not B", seg(b).minus(seg(b)), vec![]),
    ];
    for (name, expr, want) in cases {
        let s = segments
            .create_from(&acme, NewSegment::new(name), &expr)
            .unwrap();
        assert_eq!(
            s.current_size,
            want.len() as u64,
            "{name}: the new segment's size is exact"
        );
        assert_eq!(
            pid_set(&segments, &acme, s.id),
            want,
            "{name}: exactly the people the expression stands for"
        );
        assert_eq!(
            segments.get(&acme, s.id).unwrap().current_size,
            want.len() as u64,
            "{name}: the stored size agrees"
        );
    }
    // Applied to an existing segment: C gains A ∩ B (p-3), then loses B.
    let out = segments
        .add_from(&acme, c, &seg(a).intersect(seg(b)))
        .unwrap();
    assert_eq!(
        (out.n_added, out.n_redundant_additions, out.new_current_size),
        (1, 0, 4),
        "add_from reports as add_members does"
    );
    let out = segments.add_from(&acme, c, &seg(c).union(seg(b))).unwrap();
    assert_eq!(
        (out.n_added, out.n_redundant_additions),
        (1, 4),
        "a target that is its own source: its members are redundant, B's p-9 joins"
    );
    let out = segments.remove_from(&acme, c, &seg(b)).unwrap();
    assert_eq!(
        (out.n_deleted, out.new_current_size),
        (3, 2),
        "remove_from ends the membership of B's people who were C's"
    );
    assert_eq!(pid_set(&segments, &acme, c), ["p-2", "p-5"]);
}

/// Each member a set operation adds or removes is one ledger entry, in PID
/// order, carrying its provenance: the sources (each once, in id order)
/// and the seq the org's ledger had reached when they were read. Entries
/// of member calls carry none. The timeline shows the same.
pub fn set_operations_record_their_provenance(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let a = segments.create(&acme, NewSegment::new("A")).unwrap().id;
    let b = segments.create(&acme, NewSegment::new("B")).unwrap().id;
    segments.add_members(&acme, a, &["p-z", "p-m"]).unwrap();
    segments.add_members(&acme, b, &["p-a"]).unwrap();
    let before = whole_ledger(&segments, &acme);
    let read_at = before.last().unwrap().seq;
    let expr = SetExpr::segment(b).union(SetExpr::segment(a));
    let made = segments
        .create_from(&acme, NewSegment::new("A or B"), &expr)
        .unwrap();
    let after = whole_ledger(&segments, &acme);
    let new: Vec<&crate::Change> = after.iter().skip(before.len()).collect();
    assert!(
        matches!(new[0].kind, ChangeKind::Created { .. }),
        "the create comes first"
    );
    assert_eq!(new[0].provenance, None, "a create entry has no provenance");
    let mut sources = vec![a, b];
    sources.sort();
    let expected = Some(Provenance { sources, read_at });
    let added: Vec<(&str, &Option<Provenance>)> = new[1..]
        .iter()
        .map(|c| (c.kind.pid().unwrap().as_str(), &c.provenance))
        .collect();
    assert_eq!(
        added,
        [("p-a", &expected), ("p-m", &expected), ("p-z", &expected)],
        "one entry per member, in PID order, each with the sources and the seq read at"
    );
    assert!(
        new[1..]
            .iter()
            .all(|c| c.segment_id == made.id && matches!(c.kind, ChangeKind::MemberAdded { .. })),
        "the entries are the new segment's additions"
    );
    assert!(
        before.iter().all(|c| c.provenance.is_none()),
        "member calls record no provenance"
    );
    let timeline = whole_timeline(&segments, &acme, "p-m");
    assert_eq!(
        timeline.last().unwrap().provenance,
        expected,
        "the timeline shows the provenance too"
    );
    // A removal by expression records its own.
    let read_at = whole_ledger(&segments, &acme).last().unwrap().seq;
    segments
        .remove_from(&acme, made.id, &SetExpr::segment(b))
        .unwrap();
    let last = whole_ledger(&segments, &acme).pop().unwrap();
    assert_eq!(last.kind, ChangeKind::MemberRemoved { pid: pid("p-a") });
    assert_eq!(
        last.provenance,
        Some(Provenance {
            sources: vec![b],
            read_at
        }),
        "a removal's entries carry their provenance"
    );
}

/// A source that is unknown, deleted or another org's is `NotFound`, as is
/// an unknown target; an expression deeper than the limit is `Invalid`; a
/// create from an expression whose name is taken is `DuplicateName`. Each
/// changes nothing: no segment, no member, no ledger entry.
pub fn set_operations_on_missing_sources_change_nothing(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let other = ns.org("other");
    let a = segments.create(&acme, NewSegment::new("A")).unwrap().id;
    segments.add_members(&acme, a, &["p-1"]).unwrap();
    let gone = segments.create(&acme, NewSegment::new("Gone")).unwrap().id;
    segments.delete(&acme, gone).unwrap();
    let theirs = segments
        .create(&other, NewSegment::new("Theirs"))
        .unwrap()
        .id;
    let unknown = SegmentId::from_uuid(uuid::Uuid::now_v7());
    let before = whole_ledger(&segments, &acme);
    let listed = all(&segments, &acme);
    for (why, missing) in [
        ("a deleted source", gone),
        ("another org's source", theirs),
        ("an unknown source", unknown),
    ] {
        let expr = SetExpr::segment(a).union(SetExpr::segment(missing));
        assert_not_found(
            segments.create_from(&acme, NewSegment::new("Never"), &expr),
            missing,
            why,
        );
        assert_not_found(segments.add_from(&acme, a, &expr), missing, why);
        assert_not_found(segments.remove_from(&acme, a, &expr), missing, why);
        assert_not_found(segments.dry_run().add_from(&acme, a, &expr), missing, why);
    }
    assert_not_found(
        segments.add_from(&acme, unknown, &SetExpr::segment(a)),
        unknown,
        "an unknown target",
    );
    let mut deep = SetExpr::segment(a);
    for _ in 0..crate::limits::MAX_SET_EXPR_DEPTH {
        deep = deep.union(SetExpr::segment(a));
    }
    assert_invalid(
        segments.create_from(&acme, NewSegment::new("Too deep"), &deep),
        Field::Expression,
        "an expression past the depth limit",
    );
    assert_invalid(
        segments.add_from(&acme, a, &deep),
        Field::Expression,
        "an expression past the depth limit",
    );
    assert_duplicate(
        segments.create_from(&acme, NewSegment::new(" a "), &SetExpr::segment(a)),
        "a",
        "a create from an expression keeps names unique",
    );
    assert_eq!(
        whole_ledger(&segments, &acme),
        before,
        "nothing was recorded"
    );
    assert_eq!(all(&segments, &acme), listed, "no segment was created");
    assert_eq!(segments.get(&acme, a).unwrap().current_size, 1);
}

/// A dry run returns exactly what the real call then returns, and writes
/// nothing in between: no member, no size change, no ledger entry; for
/// adds, removals and both set operations, including re-adds, redundant
/// adds, repeats and malformed PIDs.
pub fn a_dry_run_reports_and_writes_nothing(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, clock) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments.create(&acme, NewSegment::new("Target")).unwrap();
    let src = segments.create(&acme, NewSegment::new("Source")).unwrap();
    segments.add_members(&acme, s.id, &["p-a", "p-b"]).unwrap();
    segments.remove_members(&acme, s.id, &["p-b"]).unwrap();
    segments
        .add_members(&acme, src.id, &["p-a", "p-b", "p-c"])
        .unwrap();
    clock.advance(TimeDelta::seconds(1));
    let quiet = |why: &str| {
        (
            whole_ledger(&segments, &acme),
            every_member(&segments, &acme, s.id),
            segments.get(&acme, s.id).unwrap(),
            why.to_owned(),
        )
    };
    let pids = ["p-a", "p-b", "p-new", "p-new", "bad!"];
    let before = quiet("before");
    let would = segments.dry_run().add_members(&acme, s.id, &pids).unwrap();
    assert_eq!(
        quiet("after a dry add").0,
        before.0,
        "a dry add records nothing"
    );
    assert_eq!(quiet("").1, before.1, "a dry add adds no member");
    assert_eq!(quiet("").2, before.2, "a dry add changes no size");
    let did = segments.add_members(&acme, s.id, &pids).unwrap();
    assert_eq!(would, did, "the dry add said exactly what the add did");
    assert_eq!(
        (
            did.n_added,
            did.n_redundant_additions,
            did.invalid_pids.len()
        ),
        (2, 2, 1),
        "a re-add and a new PID join; p-a and the repeat are redundant"
    );

    let before = quiet("before");
    let would = segments
        .dry_run()
        .remove_members(&acme, s.id, &["p-a", "p-zz", "bad!"])
        .unwrap();
    let now = quiet("after");
    assert_eq!((&now.0, &now.1, &now.2), (&before.0, &before.1, &before.2));
    let did = segments
        .remove_members(&acme, s.id, &["p-a", "p-zz", "bad!"])
        .unwrap();
    assert_eq!(
        would, did,
        "the dry removal said exactly what the removal did"
    );

    let expr = SetExpr::segment(src.id);
    let before = quiet("before");
    let would = segments.dry_run().add_from(&acme, s.id, &expr).unwrap();
    let now = quiet("after");
    assert_eq!((&now.0, &now.1, &now.2), (&before.0, &before.1, &before.2));
    let did = segments.add_from(&acme, s.id, &expr).unwrap();
    assert_eq!(
        would, did,
        "the dry add_from said exactly what add_from did"
    );

    let before = quiet("before");
    let would = segments.dry_run().remove_from(&acme, s.id, &expr).unwrap();
    let now = quiet("after");
    assert_eq!((&now.0, &now.1, &now.2), (&before.0, &before.1, &before.2));
    let did = segments.remove_from(&acme, s.id, &expr).unwrap();
    assert_eq!(
        would, did,
        "the dry remove_from said exactly what remove_from did"
    );
    assert_eq!(did.new_current_size, 1, "p-new stays");

    let unknown = SegmentId::from_uuid(uuid::Uuid::now_v7());
    assert_not_found(
        segments.dry_run().add_members(&acme, unknown, &["p-a"]),
        unknown,
        "a dry run on an unknown segment",
    );
}
