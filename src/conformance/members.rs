//! Members: adds, removals, sizes.

use super::*;
use crate::store::Page;

/// The documented example: two new PIDs and one malformed one add two,
/// report the malformed one, and count the size; repeats within a call and
/// PIDs already present are redundant.
pub fn add_members_reports_the_documented_counts(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments
        .create(&acme, NewSegment::new("Prospects"))
        .unwrap();
    let out = segments
        .add_members(
            &acme,
            s.id,
            &["p-a1b2c3d4e5f6", "p-x9y8z7w6v5u4", "p-invalid!"],
        )
        .unwrap();
    assert_eq!(
        out,
        AddOutcome {
            n_added: 2,
            n_redundant_additions: 0,
            invalid_pids: vec!["p-invalid!".into()],
            new_current_size: 2
        },
        "two added, one malformed"
    );
    let out = segments
        .add_members(
            &acme,
            s.id,
            &["p-a1b2c3d4e5f6", "p-new1", "p-new1", "p-new1"],
        )
        .unwrap();
    assert_eq!(
        (out.n_added, out.n_redundant_additions, out.new_current_size),
        (1, 3, 3),
        "one member already present and two repeats are redundant; one PID is new"
    );
    assert_eq!(
        segments.get(&acme, s.id).unwrap().current_size,
        3,
        "get shows the new size"
    );
}

/// A redundant add moves `last_added_at` and nothing else.
pub fn redundant_adds_move_last_added_at(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, clock) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments.create(&acme, NewSegment::new("Touched")).unwrap();
    segments.add_members(&acme, s.id, &["p-a", "p-b"]).unwrap();
    clock.advance(TimeDelta::seconds(10));
    segments.add_members(&acme, s.id, &["p-a"]).unwrap();
    let members = every_member(&segments, &acme, s.id);
    assert_eq!(
        pids_of(&members),
        ["p-a", "p-b"],
        "a redundant add keeps the list as it was"
    );
    let later = start_micros() + TimeDelta::seconds(10);
    assert_eq!(
        (members[0].first_added_at, members[0].last_added_at),
        (start_micros(), later),
        "p-a: last_added_at moved"
    );
    assert_eq!(
        (members[1].first_added_at, members[1].last_added_at),
        (start_micros(), start_micros()),
        "p-b untouched"
    );
    assert_eq!(
        segments.get(&acme, s.id).unwrap().current_size,
        2,
        "a redundant add does not grow the segment"
    );
}

/// Removal counts only members; well-formed non-members are not counted and
/// are no error. Removal keeps history: a re-added member gets its original
/// `first_added_at` back and counts as added again.
pub fn removal_keeps_history(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, clock) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments.create(&acme, NewSegment::new("Churn")).unwrap();
    segments
        .add_members(&acme, s.id, &["p-a", "p-b", "p-c"])
        .unwrap();
    clock.advance(TimeDelta::seconds(1));
    let out = segments
        .remove_members(&acme, s.id, &["p-a", "p-never", "p-a", "p-x!"])
        .unwrap();
    assert_eq!(
        out,
        RemoveOutcome {
            n_deleted: 1,
            invalid_pids: vec!["p-x!".into()],
            new_current_size: 2
        },
        "one member removed; a non-member and a repeat are not counted"
    );
    assert_eq!(
        pids_of(&every_member(&segments, &acme, s.id)),
        ["p-b", "p-c"],
        "p-a is gone from the list"
    );
    let again = segments.remove_members(&acme, s.id, &["p-a"]).unwrap();
    assert_eq!(
        again.n_deleted, 0,
        "removing a removed member counts nothing"
    );
    clock.advance(TimeDelta::seconds(1));
    let out = segments.add_members(&acme, s.id, &["p-a"]).unwrap();
    assert_eq!(
        (out.n_added, out.n_redundant_additions, out.new_current_size),
        (1, 0, 3),
        "a re-add is an add"
    );
    let members = every_member(&segments, &acme, s.id);
    assert_eq!(
        pids_of(&members),
        ["p-a", "p-b", "p-c"],
        "the re-added member is back in its original place"
    );
    assert_eq!(
        members[0].first_added_at,
        start_micros(),
        "the original first_added_at is restored"
    );
    assert_eq!(
        members[0].last_added_at,
        start_micros() + TimeDelta::seconds(2),
        "last_added_at is the re-add"
    );
}

/// Member calls on another org's segment are `NotFound` and change nothing
/// of the owner's.
pub fn member_calls_on_another_orgs_segment_are_not_found(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let (a, b) = (ns.org("org-a"), ns.org("org-b"));
    let s = segments.create(&a, NewSegment::new("A's members")).unwrap();
    segments.add_members(&a, s.id, &["p-a1", "p-a2"]).unwrap();
    let before = every_member(&segments, &a, s.id);
    assert_not_found(
        segments.add_members(&b, s.id, &["p-b1"]),
        s.id,
        "add to another org's segment",
    );
    assert_not_found(
        segments.remove_members(&b, s.id, &["p-a1"]),
        s.id,
        "remove from another org's segment",
    );
    assert_not_found(
        segments.members(&b, s.id, PageOptions::new()),
        s.id,
        "list another org's members",
    );
    assert_not_found(
        segments.members_page(&b, s.id, 1),
        s.id,
        "page through another org's members",
    );
    assert_eq!(
        every_member(&segments, &a, s.id),
        before,
        "A's members are unchanged"
    );
    assert_eq!(
        segments.get(&a, s.id).unwrap().current_size,
        2,
        "A's size is unchanged"
    );
    let ghost = SegmentId::parse("550e8400-e29b-41d4-a716-446655440000").unwrap();
    assert_not_found(
        segments.add_members(&a, ghost, &["p-a1", "bad!"]),
        ghost,
        "add to an unknown segment, even with bad PIDs",
    );
}

/// Deleting a segment takes its memberships with it: a new segment of the
/// same name starts empty.
pub fn deleting_a_segment_takes_its_members(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments.create(&acme, NewSegment::new("Doomed")).unwrap();
    segments.add_members(&acme, s.id, &["p-a", "p-b"]).unwrap();
    segments.delete(&acme, s.id).unwrap();
    assert_not_found(
        segments.members(&acme, s.id, PageOptions::new()),
        s.id,
        "members of a deleted segment",
    );
    let reborn = segments.create(&acme, NewSegment::new("Doomed")).unwrap();
    assert_eq!(
        reborn.current_size, 0,
        "a new segment of a deleted one's name is empty"
    );
    assert!(
        every_member(&segments, &acme, reborn.id).is_empty(),
        "a new segment of the same name starts empty"
    );
    let out = segments.add_members(&acme, reborn.id, &["p-a"]).unwrap();
    assert_eq!(
        out.n_added, 1,
        "old memberships do not leak into the new segment"
    );
}

/// Concurrent adds and removes of overlapping PIDs keep `current_size`
/// exactly the number of members, and the outcomes add up to it.
pub fn racing_member_calls_keep_current_size_exact(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    const THREADS: usize = 4;
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments
        .create(&acme, NewSegment::new("Contested members"))
        .unwrap();
    let barrier = Arc::new(Barrier::new(THREADS));
    let net: i64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let barrier = Arc::clone(&barrier);
                let acme = &acme;
                scope.spawn(move || {
                    let segments = Segments::new(store);
                    barrier.wait();
                    let mut net = 0i64;
                    for round in 0..20 {
                        let pids: Vec<String> = (0..30)
                            .map(|i| format!("p-{}", (i * 7 + round * 3 + t) % 50))
                            .collect();
                        if (round + t) % 3 == 0 {
                            net -= segments
                                .remove_members(acme, s.id, &pids)
                                .unwrap()
                                .n_deleted as i64;
                        } else {
                            net += segments.add_members(acme, s.id, &pids).unwrap().n_added as i64;
                        }
                    }
                    net
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no thread panics"))
            .sum()
    });
    let size = segments.get(&acme, s.id).unwrap().current_size;
    assert_eq!(
        size as usize,
        every_member(&segments, &acme, s.id).len(),
        "current_size is the number of members"
    );
    assert_eq!(
        size as i64, net,
        "added minus deleted, over all calls, is the size"
    );
}

/// A read from an offset at or past the last member (`u64::MAX` included)
/// returns no member and the same `current_size` and `members_seq` as a
/// read from the start: the page API asks for such offsets whenever a
/// client pages past the end, and the answer must not depend on how many
/// members (or former members) the segment holds.
pub fn reads_from_past_the_last_member_are_empty_and_exact(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments.create(&acme, NewSegment::new("Short")).unwrap();
    let empty = segments.create(&acme, NewSegment::new("Empty")).unwrap();
    let pids: Vec<String> = (0..30).map(|i| format!("p-{i:03}")).collect();
    segments.add_members(&acme, s.id, &pids).unwrap();
    // Former members are rows too: an offset counts active members only.
    segments.remove_members(&acme, s.id, &pids[..7]).unwrap();
    for (id, what) in [(s.id, "a segment of 23"), (empty.id, "an empty segment")] {
        let first = store
            .members(&acme, id, Page::first(MAX_PAGE_LIMIT))
            .expect("a read from the start");
        let size = first.current_size;
        assert_eq!(first.members.len() as u64, size, "{what}: every member");
        for offset in [size, size + 1, size + 1_000_000, u64::MAX - 1, u64::MAX] {
            let past = store
                .members(
                    &acme,
                    id,
                    Page::new(MemberStart::Offset(offset), MAX_PAGE_LIMIT),
                )
                .expect("a read past the end succeeds");
            assert!(
                past.members.is_empty(),
                "{what}: no member from offset {offset}"
            );
            assert_eq!(
                (past.current_size, past.members_seq),
                (first.current_size, first.members_seq),
                "{what}: from offset {offset}, the same current_size and members_seq"
            );
        }
        if size > 0 {
            let last = store
                .members(
                    &acme,
                    id,
                    Page::new(MemberStart::Offset(size - 1), MAX_PAGE_LIMIT),
                )
                .unwrap();
            assert_eq!(
                last.members,
                first.members[first.members.len() - 1..],
                "{what}: the last member is at offset size - 1"
            );
        }
    }
}
