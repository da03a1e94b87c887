//! History: the ledger, the change feed, timelines, as-of reads.

use super::*;

/// Every change (created, renamed, description changed, added, re-added,
/// removed, deleted) is one ledger entry, numbered from 1 without gaps,
/// with its time and the request id when the caller named one. Redundant
/// adds and malformed PIDs record nothing.
pub fn every_change_is_in_the_ledger(store: &dyn SegmentStore) {
    let (segments, clock) = service(store);
    let acme = org("acme");
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
    assert!(ledger.iter().all(|c| c.segment_id == s.id));
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
        ]
    );
    assert_eq!(
        ledger[0].at,
        start_micros(),
        "entries carry the change's time"
    );
    assert_eq!(ledger[7].at, start_micros() + TimeDelta::seconds(2));
}

/// A refused write records nothing: a duplicate name, an unknown segment,
/// another org's segment, a call over the PID limit.
pub fn failed_writes_record_nothing(store: &dyn SegmentStore) {
    let (segments, _) = service(store);
    let (acme, other) = (org("acme"), org("other"));
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
    let (segments, _) = service(store);
    let (a, b) = (org("org-a"), org("org-b"));
    let sa = segments.create(&a, NewSegment::new("A")).unwrap();
    segments.add_members(&a, sa.id, &["p-shared"]).unwrap();
    let sb = segments.create(&b, NewSegment::new("B")).unwrap();
    segments.add_members(&b, sb.id, &["p-shared"]).unwrap();
    let la = whole_ledger(&segments, &a);
    let lb = whole_ledger(&segments, &b);
    assert_eq!(la.iter().map(|c| c.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        lb.iter().map(|c| c.seq).collect::<Vec<_>>(),
        [1, 2],
        "each org counts from 1"
    );
    assert!(
        lb.iter().all(|c| c.segment_id == sb.id),
        "B's feed holds only B's segment"
    );
    let ta = segments.timeline(&a, "p-shared", 0, 10).unwrap().changes;
    assert_eq!(ta.len(), 1);
    assert_eq!(ta[0].segment_id, sa.id, "a timeline stays in its org");
    assert!(
        segments
            .timeline(&org("org-c"), "p-shared", 0, 10)
            .unwrap()
            .changes
            .is_empty()
    );
    assert_invalid(
        segments.timeline(&a, "P-BAD", 0, 10),
        Field::MinervaPids,
        "a malformed PID",
    );
}

/// Polling the feed while others write sees every entry exactly once, in
/// order: no entry is missed, none is repeated.
pub fn the_change_feed_never_misses_or_repeats(store: &dyn SegmentStore) {
    const WRITERS: usize = 3;
    let acme = org("acme");
    let s = Segments::new(store)
        .create(&acme, NewSegment::new("Busy"))
        .unwrap();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let seen = std::thread::scope(|scope| {
        for w in 0..WRITERS {
            let (acme, done) = (&acme, &done);
            scope.spawn(move || {
                let segments = Segments::new(store);
                for round in 0..30 {
                    let pids: Vec<String> = (0..5)
                        .map(|i| format!("p-{w}x{}", (round * 5 + i) % 40))
                        .collect();
                    if round % 4 == 3 {
                        segments.remove_members(acme, s.id, &pids).unwrap();
                    } else {
                        segments.add_members(acme, s.id, &pids).unwrap();
                    }
                }
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        let segments = Segments::new(store);
        let mut seen = Vec::new();
        let mut after = 0;
        loop {
            let finished = done.load(std::sync::atomic::Ordering::SeqCst) == WRITERS;
            let page = segments.changes_since(&acme, after, 13).unwrap();
            after = page.next;
            let empty = page.changes.is_empty();
            seen.extend(page.changes.into_iter().map(|c| c.seq));
            if finished && empty {
                return seen;
            }
        }
    });
    let total = whole_ledger(&Segments::new(store), &acme).len() as u64;
    assert_eq!(
        seen,
        (1..=total).collect::<Vec<_>>(),
        "every entry once, in order, while writers wrote"
    );
}

/// History outlives the state it describes: a member's removal and return
/// stay in their timeline, and a deleted segment's entries stay in the
/// feed and in timelines.
pub fn the_ledger_survives_removal_and_deletion(store: &dyn SegmentStore) {
    let (segments, clock) = service(store);
    let acme = org("acme");
    let s = segments
        .create(&acme, NewSegment::new("Short-lived"))
        .unwrap();
    let t = segments.create(&acme, NewSegment::new("Other")).unwrap();
    segments.add_members(&acme, s.id, &["p-x"]).unwrap();
    segments.add_members(&acme, t.id, &["p-x"]).unwrap();
    clock.advance(TimeDelta::seconds(1));
    segments.remove_members(&acme, s.id, &["p-x"]).unwrap();
    segments.add_members(&acme, s.id, &["p-x"]).unwrap();
    segments.delete(&acme, s.id).unwrap();
    let timeline: Vec<(SegmentId, ChangeKind)> = whole_timeline(&segments, &acme, "p-x")
        .into_iter()
        .map(|c| (c.segment_id, c.kind))
        .collect();
    let x = || pid("p-x");
    assert_eq!(
        timeline,
        vec![
            (s.id, ChangeKind::MemberAdded { pid: x() }),
            (t.id, ChangeKind::MemberAdded { pid: x() }),
            (s.id, ChangeKind::MemberRemoved { pid: x() }),
            (s.id, ChangeKind::MemberReAdded { pid: x() }),
        ],
        "joins and leaves across segments, a deleted one included"
    );
    let ledger = whole_ledger(&segments, &acme);
    assert_eq!(ledger.len(), 7, "nothing was dropped by the deletion");
    assert_eq!(ledger.last().unwrap().kind, ChangeKind::Deleted);
    assert_not_found(
        segments.size_as_of(&acme, s.id, start()),
        s.id,
        "as-of reads of a deleted segment",
    );
}

/// Times never go backwards within an org: a change stamped before the
/// org's last ledger entry is made at that entry's time, in its rows and in
/// the ledger alike, so "as of" reads agree with what the rows say.
pub fn ledger_times_never_go_backwards(store: &dyn SegmentStore) {
    let (segments, clock) = service(store);
    let acme = org("acme");
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
    assert_eq!(ledger[0].at, late.created_at);
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
        .members_as_of(&acme, early.id, member.first_added_at, None, 10)
        .unwrap();
    assert_eq!(
        as_of.members.len(),
        1,
        "a member is a member as of its own first_added_at"
    );
}

/// `size_as_of` and `members_as_of` answer for any past time: 0 and nobody
/// before the first member, then each call's result from its time on.
pub fn size_and_members_as_of_past_times(store: &dyn SegmentStore) {
    let (segments, clock) = service(store);
    let acme = org("acme");
    let s = segments
        .create(&acme, NewSegment::new("Through time"))
        .unwrap();
    let t0 = start_micros();
    let at = |secs: i64| t0 + TimeDelta::seconds(secs);
    clock.set(at(10));
    segments
        .add_members(&acme, s.id, &["p-a", "p-b", "p-c"])
        .unwrap();
    clock.set(at(20));
    segments.remove_members(&acme, s.id, &["p-b"]).unwrap();
    clock.set(at(30));
    segments.add_members(&acme, s.id, &["p-b", "p-d"]).unwrap();
    let other = segments.create(&acme, NewSegment::new("Noise")).unwrap();
    segments
        .add_members(&acme, other.id, &["p-a", "p-q"])
        .unwrap();
    for (secs, size, pids) in [
        (-5, 0, vec![]),
        (0, 0, vec![]),
        (9, 0, vec![]),
        (10, 3, vec!["p-a", "p-b", "p-c"]),
        (15, 3, vec!["p-a", "p-b", "p-c"]),
        (20, 2, vec!["p-a", "p-c"]),
        (29, 2, vec!["p-a", "p-c"]),
        (30, 4, vec!["p-a", "p-b", "p-c", "p-d"]),
        (1_000, 4, vec!["p-a", "p-b", "p-c", "p-d"]),
    ] {
        assert_eq!(
            segments.size_as_of(&acme, s.id, at(secs)).unwrap(),
            size,
            "size as of +{secs}s"
        );
        let mut listed = Vec::new();
        let mut after = None;
        loop {
            let page = segments
                .members_as_of(&acme, s.id, at(secs), after.as_ref(), 2)
                .unwrap();
            listed.extend(page.members.iter().map(|m| m.pid.as_str().to_owned()));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(
            listed, pids,
            "members as of +{secs}s, in list order, over pages of 2"
        );
    }
    let b = segments
        .members_as_of(&acme, s.id, at(35), None, 10)
        .unwrap();
    let b = b.members.iter().find(|m| m.pid.as_str() == "p-b").unwrap();
    assert_eq!(
        (b.first_added_at, b.joined_at),
        (at(10), at(30)),
        "first join and the join in effect"
    );
    assert_not_found(
        segments.size_as_of(&org("other"), s.id, at(30)),
        s.id,
        "another org's segment",
    );
}

/// Renaming to the name a segment has, or setting the description it has,
/// changes nothing: no ledger entry, `updated_at` unmoved.
pub fn no_op_changes_record_nothing(store: &dyn SegmentStore) {
    let (segments, clock) = service(store);
    let acme = org("acme");
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
    assert_eq!(whole_ledger(&segments, &acme).len(), 2);
}

/// A feed cursor past the end of the org's ledger (from another store, or
/// a database restored from an older copy) is refused rather than silently
/// skipping the entries that will take those numbers.
pub fn a_cursor_past_the_ledger_is_refused(store: &dyn SegmentStore) {
    let (segments, _) = service(store);
    let acme = org("acme");
    segments.create(&acme, NewSegment::new("One")).unwrap();
    assert!(
        segments
            .changes_since(&acme, 1, 10)
            .unwrap()
            .changes
            .is_empty(),
        "the end itself is fine"
    );
    assert_eq!(segments.changes_since(&acme, 1, 10).unwrap().next, 1);
    assert!(
        segments
            .changes_since(&org("empty"), 0, 10)
            .unwrap()
            .changes
            .is_empty(),
        "an empty ledger from 0 is fine"
    );
    assert_invalid(
        segments.changes_since(&acme, 2, 10),
        Field::Cursor,
        "a cursor past the end",
    );
    assert_invalid(
        segments.changes_since(&org("empty"), 5, 10),
        Field::Cursor,
        "a cursor of another org",
    );
}

/// Creations interleave with every other kind of change in one gapless
/// feed, whatever happens to the segments afterwards: read a page at a time
/// of any size, the feed is the same, and each `Created` entry keeps the
/// name, description, time and request id of the creation, through later
/// renames, new descriptions and deletion.
pub fn creations_keep_their_place_in_the_feed(store: &dyn SegmentStore) {
    let (segments, clock) = service(store);
    let acme = org("acme");
    let mut created = Vec::new();
    for i in 0..6 {
        let s = segments
            .for_request(format!("create-{i}"))
            .create(&acme, NewSegment::new(format!("S{i}")).description("first"))
            .unwrap();
        created.push(s);
        clock.advance(TimeDelta::milliseconds(1));
        if i % 2 == 1 {
            segments
                .add_members(&acme, created[i - 1].id, &[format!("p-{i}")])
                .unwrap();
        }
    }
    segments.rename(&acme, created[0].id, "S0 renamed").unwrap();
    segments
        .set_description(&acme, created[1].id, None)
        .unwrap();
    segments.delete(&acme, created[2].id).unwrap();
    segments.rename(&acme, created[3].id, "S3 renamed").unwrap();
    segments.delete(&acme, created[3].id).unwrap();
    let whole = segments.changes_since(&acme, 0, 1_000).unwrap().changes;
    let seqs: Vec<u64> = whole.iter().map(|c| c.seq).collect();
    assert_eq!(
        seqs,
        (1..=whole.len() as u64).collect::<Vec<_>>(),
        "gapless"
    );
    assert_eq!(whole.len(), 6 + 3 + 5);
    for limit in 1..=5 {
        let (mut paged, mut after) = (Vec::new(), 0);
        loop {
            let page = segments.changes_since(&acme, after, limit).unwrap();
            if page.changes.is_empty() {
                break;
            }
            assert!(page.changes.len() <= limit);
            after = page.next;
            paged.extend(page.changes);
        }
        assert_eq!(paged, whole, "pages of {limit} read the same feed");
    }
    let creations: Vec<&crate::Change> = whole
        .iter()
        .filter(|c| matches!(c.kind, ChangeKind::Created { .. }))
        .collect();
    assert_eq!(creations.len(), 6);
    for (i, (c, s)) in creations.iter().zip(&created).enumerate() {
        assert_eq!(c.segment_id, s.id);
        assert_eq!(c.at, s.created_at, "creation {i} keeps its time");
        assert_eq!(
            c.request_id.as_deref(),
            Some(format!("create-{i}").as_str())
        );
        assert_eq!(
            c.kind,
            ChangeKind::Created {
                name: format!("S{i}"),
                description: Some("first".into())
            },
            "creation {i} keeps what it created"
        );
    }
    let times: Vec<_> = whole.iter().map(|c| c.at).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "times never go back"
    );
    // As-of reads count creations too: just before the last creation, the
    // feed had everything before it.
    let last = creations[5];
    let s4 = created[4].id;
    assert_eq!(
        segments
            .size_as_of(&acme, s4, last.at - TimeDelta::microseconds(1))
            .unwrap(),
        0
    );
    assert_eq!(segments.size_as_of(&acme, s4, last.at).unwrap(), 0);
    let end = whole.last().unwrap().at;
    assert_eq!(segments.size_as_of(&acme, s4, end).unwrap(), 1);
}

/// A leap second (which only an injected clock can give) is kept as every
/// backend can store it, folded into the second after it: the change made
/// in it, the segment's size and its members as of a time just after it,
/// and the time itself agree.
pub fn a_leap_second_is_kept_as_microseconds(store: &dyn SegmentStore) {
    let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
        .unwrap()
        .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
        .unwrap()
        .and_utc();
    let clock = ManualClock::new(leap);
    let segments = Segments::new(store).with_clock(clock.clone());
    let acme = org("acme");
    let s = segments.create(&acme, NewSegment::new("Leap")).unwrap();
    segments.add_members(&acme, s.id, &["p-a"]).unwrap();
    let folded = chrono::Utc
        .timestamp_opt(1_483_228_800, 500_000_000)
        .unwrap();
    assert_eq!(s.created_at, folded, "the leap second folds into the next");
    let after = folded + TimeDelta::milliseconds(200);
    assert_eq!(segments.size_as_of(&acme, s.id, after).unwrap(), 1);
    let members = segments
        .members_as_of(&acme, s.id, after, None, 10)
        .unwrap();
    assert_eq!(
        members.members.len(),
        1,
        "members_as_of agrees with size_as_of"
    );
    assert_eq!(members.members[0].joined_at, folded);
    assert_eq!(segments.size_as_of(&acme, s.id, leap).unwrap(), 1);
}
