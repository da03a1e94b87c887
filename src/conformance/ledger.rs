//! The ledger: what every write records, how entries are numbered, and
//! their clock.

use super::*;
use crate::store::Page;

/// Every change (created, renamed, description changed, added, re-added,
/// removed, deleted) is one ledger entry, numbered from 1 without gaps,
/// with its time and the request id when the caller named one. Redundant
/// adds and malformed PIDs record nothing.
pub fn every_change_is_in_the_ledger(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, clock) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments
        .for_request("req-1")
        .create(&acme, NewSegment::new("Ledgered").description("d0"))
        .unwrap();
    clock.advance(TimeDelta::seconds(1));
    segments.rename(&acme, s.id, "Ledgered Again").unwrap();
    segments.set_description(&acme, s.id, None).unwrap();
    let add = segments.for_request("req-2");
    add.add_members(&acme, s.id, &["p-b", "p-a", "p-a", "bad!"])
        .unwrap();
    add.add_members(&acme, s.id, &["p-a"]).unwrap();
    clock.advance(TimeDelta::seconds(1));
    segments
        .remove_members(&acme, s.id, &["p-a", "p-zz"])
        .unwrap();
    segments.add_members(&acme, s.id, &["p-a"]).unwrap();
    segments.delete(&acme, s.id).unwrap();
    let ledger = whole_ledger(&segments, &acme);
    let kinds: Vec<ChangeKind> = ledger.iter().map(|c| c.kind.clone()).collect();
    assert_eq!(
        kinds,
        vec![
            ChangeKind::Created {
                name: "Ledgered".into(),
                description: Some("d0".into())
            },
            ChangeKind::Renamed {
                name: "Ledgered Again".into()
            },
            ChangeKind::DescriptionChanged { description: None },
            ChangeKind::MemberAdded { pid: pid("p-b") },
            ChangeKind::MemberAdded { pid: pid("p-a") },
            ChangeKind::MemberRemoved { pid: pid("p-a") },
            ChangeKind::MemberReAdded { pid: pid("p-a") },
            ChangeKind::Deleted,
        ],
        "one entry per change, in order (within a call, in the order given); repeats and redundant adds record nothing"
    );
    let seqs: Vec<u64> = ledger.iter().map(|c| c.seq).collect();
    assert_eq!(
        seqs,
        (1..=8).collect::<Vec<_>>(),
        "numbered from 1 without gaps"
    );
    assert!(
        ledger.iter().all(|c| c.segment_id == s.id),
        "every entry is about the segment"
    );
    let requests: Vec<Option<&str>> = ledger.iter().map(|c| c.request_id.as_deref()).collect();
    assert_eq!(
        requests,
        [
            Some("req-1"),
            None,
            None,
            Some("req-2"),
            Some("req-2"),
            None,
            None,
            None
        ],
        "each entry carries the request id of its call, when there was one"
    );
    assert_eq!(
        ledger[0].at,
        start_micros(),
        "entries carry the change's time"
    );
    assert_eq!(
        ledger[7].at,
        start_micros() + TimeDelta::seconds(2),
        "the last entry carries its change's time"
    );
}

/// A refused write records nothing: a duplicate name, an unknown segment,
/// another org's segment, a call over the PID limit.
pub fn failed_writes_record_nothing(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let (acme, other) = (ns.org("acme"), ns.org("other"));
    let s = segments.create(&acme, NewSegment::new("Only")).unwrap();
    let before = whole_ledger(&segments, &acme);
    let _ = segments.create(&acme, NewSegment::new("only"));
    let _ = segments.add_members(&other, s.id, &["p-a"]);
    let _ = segments.rename(&other, s.id, "stolen");
    let _ = segments.delete(&other, s.id);
    let ghost = SegmentId::parse("550e8400-e29b-41d4-a716-446655440000").unwrap();
    let _ = segments.add_members(&acme, ghost, &["p-a"]);
    let too_many: Vec<String> = (0..=crate::limits::MAX_PIDS_PER_CALL)
        .map(|i| format!("p-{i}"))
        .collect();
    let _ = segments.add_members(&acme, s.id, &too_many);
    assert_eq!(
        whole_ledger(&segments, &acme),
        before,
        "refused writes left no entry"
    );
    assert!(
        whole_ledger(&segments, &other).is_empty(),
        "nor in the other org"
    );
}

/// Each org has its own ledger, numbered from 1, and sees nothing of
/// another's: not in the feed, not in a person's timeline.
pub fn ledgers_are_per_org(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let (a, b) = (ns.org("org-a"), ns.org("org-b"));
    let sa = segments.create(&a, NewSegment::new("A")).unwrap();
    segments.add_members(&a, sa.id, &["p-shared"]).unwrap();
    let sb = segments.create(&b, NewSegment::new("B")).unwrap();
    segments.add_members(&b, sb.id, &["p-shared"]).unwrap();
    let la = whole_ledger(&segments, &a);
    let lb = whole_ledger(&segments, &b);
    assert_eq!(
        la.iter().map(|c| c.seq).collect::<Vec<_>>(),
        [1, 2],
        "A's ledger counts from 1"
    );
    assert_eq!(
        lb.iter().map(|c| c.seq).collect::<Vec<_>>(),
        [1, 2],
        "each org counts from 1"
    );
    assert!(
        lb.iter().all(|c| c.segment_id == sb.id),
        "B's feed holds only B's segment"
    );
    let ta = segments
        .timeline(&a, "p-shared", PageOptions::new().limit(10))
        .unwrap()
        .changes;
    assert_eq!(ta.len(), 1, "A's timeline of p-shared has A's one entry");
    assert_eq!(ta[0].segment_id, sa.id, "a timeline stays in its org");
    assert!(
        segments
            .timeline(&ns.org("org-c"), "p-shared", PageOptions::new().limit(10))
            .unwrap()
            .changes
            .is_empty(),
        "an org with no ledger has no timeline"
    );
    assert_invalid(
        segments.timeline(&a, "P-BAD", PageOptions::new().limit(10)),
        Field::MinervaPids,
        "a malformed PID",
    );
}

/// Times never go backwards within an org: a change stamped before the
/// org's last ledger entry is made at that entry's time, in its rows and in
/// the ledger alike, so "as of" reads agree with what the rows say.
pub fn ledger_times_never_go_backwards(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, clock) = ns.service(store);
    let acme = ns.org("acme");
    clock.advance(TimeDelta::seconds(10));
    let late = segments.create(&acme, NewSegment::new("Late")).unwrap();
    clock.advance(TimeDelta::seconds(-10));
    let early = segments.create(&acme, NewSegment::new("Early")).unwrap();
    assert_eq!(
        early.created_at, late.created_at,
        "the change is not earlier than the one before"
    );
    assert_eq!(
        segments.get(&acme, early.id).unwrap().created_at,
        late.created_at,
        "as stored"
    );
    let ledger = whole_ledger(&segments, &acme);
    assert_eq!(
        ledger[0].at, late.created_at,
        "the first entry carries the later time"
    );
    assert_eq!(
        ledger[1].at, late.created_at,
        "the entry carries the same time as the row"
    );
    segments.add_members(&acme, early.id, &["p-a"]).unwrap();
    let member = &every_member(&segments, &acme, early.id)[0];
    assert_eq!(
        member.first_added_at, late.created_at,
        "member times follow the same rule"
    );
    let as_of = segments
        .members_as_of(
            &acme,
            early.id,
            member.first_added_at,
            PageOptions::new().limit(10),
        )
        .unwrap();
    assert_eq!(
        as_of.members.len(),
        1,
        "a member is a member as of its own first_added_at"
    );
}

/// Renaming to the name a segment has, or setting the description it has,
/// changes nothing: no ledger entry, `updated_at` unmoved.
pub fn no_op_changes_record_nothing(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, clock) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments
        .create(&acme, NewSegment::new("Same").description("same"))
        .unwrap();
    clock.advance(TimeDelta::seconds(5));
    assert_eq!(
        segments.rename(&acme, s.id, "  Same ").unwrap(),
        s,
        "the same name: nothing changes"
    );
    assert_eq!(
        segments.set_description(&acme, s.id, Some("same")).unwrap(),
        s,
        "the same description: nothing changes"
    );
    assert_eq!(
        whole_ledger(&segments, &acme).len(),
        1,
        "only the creation is recorded"
    );
    let recased = segments.rename(&acme, s.id, "SAME").unwrap();
    assert_eq!(
        recased.updated_at,
        start_micros() + TimeDelta::seconds(5),
        "another spelling is a change"
    );
    assert_eq!(
        whole_ledger(&segments, &acme).len(),
        2,
        "a change of spelling is recorded"
    );
}

/// A member call's entries follow the order of the PIDs it was given (not
/// PID order, not storage order), and PIDs that change nothing (redundant
/// adds, repeats, removals of non-members) record nothing: a timeline or a
/// change feed replays a call exactly as the caller made it.
pub fn member_entries_follow_the_callers_order(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, clock) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments.create(&acme, NewSegment::new("Ordered")).unwrap();
    let added = |p: &str| ChangeKind::MemberAdded { pid: pid(p) };
    let readded = |p: &str| ChangeKind::MemberReAdded { pid: pid(p) };
    let removed = |p: &str| ChangeKind::MemberRemoved { pid: pid(p) };
    let mut after = 1;
    let mut check = |what: &str, expected: Vec<ChangeKind>| {
        let entries = segments
            .changes_since(&acme, PageOptions::new().after(after).limit(100))
            .expect("changes_since succeeds")
            .changes;
        let kinds: Vec<ChangeKind> = entries.iter().map(|c| c.kind.clone()).collect();
        assert_eq!(kinds, expected, "{what}: entries in the order given");
        let seqs: Vec<u64> = entries.iter().map(|c| c.seq).collect();
        assert_eq!(
            seqs,
            (after + 1..=after + entries.len() as u64).collect::<Vec<_>>(),
            "{what}: the call's entries follow one another"
        );
        assert!(
            entries.iter().all(|c| c.segment_id == s.id),
            "{what}: every entry is about the segment"
        );
        after += entries.len() as u64;
    };
    segments
        .add_members(&acme, s.id, &["p-m", "p-c", "p-x", "p-a"])
        .unwrap();
    check(
        "an add out of PID order",
        vec![added("p-m"), added("p-c"), added("p-x"), added("p-a")],
    );
    clock.advance(TimeDelta::seconds(1));
    segments
        .remove_members(&acme, s.id, &["p-x", "p-q", "p-c"])
        .unwrap();
    check(
        "a removal out of PID order, with a non-member",
        vec![removed("p-x"), removed("p-c")],
    );
    clock.advance(TimeDelta::seconds(1));
    let out = segments
        .add_members(&acme, s.id, &["p-z", "p-x", "p-m", "p-b", "p-z", "p-c"])
        .unwrap();
    assert_eq!(
        (out.n_added, out.n_redundant_additions),
        (4, 2),
        "two new, two back; one member and one repeat are redundant"
    );
    check(
        "an add of new, removed, present and repeated PIDs",
        vec![added("p-z"), readded("p-x"), added("p-b"), readded("p-c")],
    );
    clock.advance(TimeDelta::seconds(1));
    segments.add_members(&acme, s.id, &["p-m", "p-z"]).unwrap();
    check("an add of members only", vec![]);
    segments
        .remove_members(&acme, s.id, &["p-q", "p-y"])
        .unwrap();
    check("a removal of non-members only", vec![]);
    segments
        .remove_members(&acme, s.id, &["p-b", "p-q", "p-a", "p-x", "p-b"])
        .unwrap();
    check(
        "a removal with a non-member and a repeat",
        vec![removed("p-b"), removed("p-a"), removed("p-x")],
    );
}

/// `members_seq` is the seq of the last entry that changed who the
/// segment's members are: 0 for a new segment, the last entry of each add
/// or removal that changed someone, and unmoved by calls that change no
/// membership (redundant adds, removals of non-members, renames, other
/// segments' changes). The page API trusts it: while it stays, every
/// member keeps its position, so a page may start where the last one
/// ended; a change it missed would serve a page from stale positions.
pub fn members_seq_moves_with_every_membership_change(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, clock) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments.create(&acme, NewSegment::new("Counted")).unwrap();
    let other = segments.create(&acme, NewSegment::new("Other")).unwrap();
    let read = || {
        let slice = store
            .members(&acme, s.id, Page::first(10))
            .expect("members succeeds");
        (slice.members_seq, slice.current_size)
    };
    let last_seq = || {
        whole_ledger(&segments, &acme)
            .last()
            .expect("the org has a ledger")
            .seq
    };
    assert_eq!(read(), (0, 0), "a new segment: members_seq 0");
    segments.add_members(&acme, other.id, &["p-a"]).unwrap();
    assert_eq!(read(), (0, 0), "another segment's add leaves it");
    segments.add_members(&acme, s.id, &["p-a", "p-b"]).unwrap();
    let added = last_seq();
    assert_eq!(
        read(),
        (added, 2),
        "an add: the seq of the call's last entry"
    );
    clock.advance(TimeDelta::seconds(1));
    segments.add_members(&acme, s.id, &["p-b", "p-a"]).unwrap();
    assert_eq!(read(), (added, 2), "a redundant-only add leaves it");
    segments
        .remove_members(&acme, s.id, &["p-q", "p-r"])
        .unwrap();
    assert_eq!(read(), (added, 2), "a removal of non-members leaves it");
    segments.rename(&acme, s.id, "Counted Again").unwrap();
    segments.set_description(&acme, s.id, Some("d")).unwrap();
    assert!(
        last_seq() > added,
        "the rename and description were recorded"
    );
    assert_eq!(
        read(),
        (added, 2),
        "a rename and a new description leave it"
    );
    segments.remove_members(&acme, other.id, &["p-a"]).unwrap();
    assert_eq!(read(), (added, 2), "another segment's removal leaves it");
    segments
        .remove_members(&acme, s.id, &["p-q", "p-a"])
        .unwrap();
    let removed = last_seq();
    assert_eq!(read(), (removed, 1), "a removal moves it to its entry");
    clock.advance(TimeDelta::seconds(1));
    segments.add_members(&acme, s.id, &["p-a"]).unwrap();
    let readded = last_seq();
    assert_eq!(read(), (readded, 2), "a re-add moves it");
    segments
        .add_members(&acme, s.id, &["p-c", "p-b", "p-d"])
        .unwrap();
    let mixed = last_seq();
    assert_eq!(
        read(),
        (mixed, 4),
        "an add with a redundant PID among new ones: the call's last entry"
    );
    segments
        .remove_members(&acme, s.id, &["p-d", "p-c"])
        .unwrap();
    assert_eq!(
        read(),
        (last_seq(), 2),
        "a removal of two: the call's last entry"
    );
    assert!(
        added < removed && removed < readded && readded < mixed,
        "members_seq only moves forward"
    );
}
