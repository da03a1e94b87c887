//! Reading history: the change feed, timelines, as-of reads.

use super::*;

/// Polling the feed while others write sees every entry exactly once, in
/// order: no entry is missed, none is repeated.
pub fn the_change_feed_never_misses_or_repeats(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    const WRITERS: usize = 3;
    let acme = ns.org("acme");
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
            let page = segments
                .changes_since(&acme, PageOptions::new().after(after).limit(13))
                .unwrap();
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

/// A feed cursor past the end of the org's ledger (from another store, or
/// a database restored from an older copy) is refused rather than silently
/// skipping the entries that will take those numbers.
pub fn a_cursor_past_the_ledger_is_refused(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    segments.create(&acme, NewSegment::new("One")).unwrap();
    assert!(
        segments
            .changes_since(&acme, PageOptions::new().after(1).limit(10))
            .unwrap()
            .changes
            .is_empty(),
        "the end itself is fine"
    );
    assert_eq!(
        segments
            .changes_since(&acme, PageOptions::new().after(1).limit(10))
            .unwrap()
            .next,
        1,
        "an empty page at the end keeps the cursor"
    );
    assert!(
        segments
            .changes_since(&ns.org("empty"), PageOptions::new().limit(10))
            .unwrap()
            .changes
            .is_empty(),
        "an empty ledger from 0 is fine"
    );
    assert_invalid(
        segments.changes_since(&acme, PageOptions::new().after(2).limit(10)),
        Field::Cursor,
        "a cursor past the end",
    );
    assert_invalid(
        segments.changes_since(&ns.org("empty"), PageOptions::new().after(5).limit(10)),
        Field::Cursor,
        "a cursor of another org",
    );
}

/// `last_seq` is the org's head: 0 before its first entry, then the seq
/// of its last entry, whatever the kind of change, unmoved by calls that
/// record nothing and by other orgs' writes. A reader shows the feed's
/// tail from it without walking the feed.
pub fn last_seq_is_the_last_entry_of_the_org(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let other = ns.org("other");
    assert_eq!(segments.last_seq(&acme).unwrap(), 0, "no entries yet");
    let s = segments.create(&acme, NewSegment::new("Tail")).unwrap();
    assert_eq!(
        segments.last_seq(&acme).unwrap(),
        1,
        "after the Created entry"
    );
    let pids: Vec<String> = (0..12).map(|i| ns.pid(&format!("p-{i:02}"))).collect();
    segments.add_members(&acme, s.id, &pids).unwrap();
    assert_eq!(
        segments.last_seq(&acme).unwrap(),
        13,
        "one entry per PID joined"
    );
    segments.add_members(&acme, s.id, &pids[..3]).unwrap();
    assert_eq!(
        segments.last_seq(&acme).unwrap(),
        13,
        "redundant adds record nothing, so the head stays"
    );
    let o = segments.create(&other, NewSegment::new("Tail")).unwrap();
    segments.add_members(&other, o.id, &pids).unwrap();
    assert_eq!(
        segments.last_seq(&acme).unwrap(),
        13,
        "another org's writes do not move this org's head"
    );
    assert_eq!(segments.last_seq(&other).unwrap(), 13);
    segments.remove_members(&acme, s.id, &pids[..1]).unwrap();
    let last = segments.last_seq(&acme).unwrap();
    assert_eq!(last, 14, "a removal is an entry");
    let tail = segments
        .changes_since(
            &acme,
            PageOptions::new().after(last.saturating_sub(5)).limit(5),
        )
        .unwrap();
    let seqs: Vec<u64> = tail.changes.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [10, 11, 12, 13, 14], "the last five entries");
    assert!(
        matches!(tail.changes[4].kind, ChangeKind::MemberRemoved { .. }),
        "the last entry is the removal"
    );
    assert_eq!(
        segments.last_seq(&acme).unwrap(),
        whole_ledger(&segments, &acme).last().map_or(0, |c| c.seq),
        "the head is the feed's last entry"
    );
}

/// Creations interleave with every other kind of change in one gapless
/// feed, whatever happens to the segments afterwards: read a page at a time
/// of any size, the feed is the same, and each `Created` entry keeps the
/// name, description, time and request id of the creation, through later
/// renames, new descriptions and deletion.
pub fn creations_keep_their_place_in_the_feed(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, clock) = ns.service(store);
    let acme = ns.org("acme");
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
    let whole = segments
        .changes_since(&acme, PageOptions::new().limit(1_000))
        .unwrap()
        .changes;
    let seqs: Vec<u64> = whole.iter().map(|c| c.seq).collect();
    assert_eq!(
        seqs,
        (1..=whole.len() as u64).collect::<Vec<_>>(),
        "gapless"
    );
    assert_eq!(
        whole.len(),
        6 + 3 + 5,
        "six creations, three member changes, five segment changes"
    );
    for limit in 1..=5 {
        let (mut paged, mut after) = (Vec::new(), 0);
        loop {
            let page = segments
                .changes_since(&acme, PageOptions::new().after(after).limit(limit))
                .unwrap();
            if page.changes.is_empty() {
                break;
            }
            assert!(
                page.changes.len() <= limit,
                "pages of {limit}: a page holds at most the limit"
            );
            after = page.next;
            paged.extend(page.changes);
        }
        assert_eq!(paged, whole, "pages of {limit} read the same feed");
    }
    let creations: Vec<&crate::Change> = whole
        .iter()
        .filter(|c| matches!(c.kind, ChangeKind::Created { .. }))
        .collect();
    assert_eq!(creations.len(), 6, "six creations in the feed");
    for (i, (c, s)) in creations.iter().zip(&created).enumerate() {
        assert_eq!(c.segment_id, s.id, "creation {i} is about its segment");
        assert_eq!(c.at, s.created_at, "creation {i} keeps its time");
        assert_eq!(
            c.request_id.as_deref(),
            Some(format!("create-{i}").as_str()),
            "creation {i} keeps its request id"
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
        0,
        "as of just before its creation, the segment had no member"
    );
    assert_eq!(
        segments.size_as_of(&acme, s4, last.at).unwrap(),
        0,
        "as of its creation, the segment had no member"
    );
    let end = whole.last().unwrap().at;
    assert_eq!(
        segments.size_as_of(&acme, s4, end).unwrap(),
        1,
        "as of the end, the segment has its one member"
    );
}

/// History outlives the state it describes: a member's removal and return
/// stay in their timeline, and a deleted segment's entries stay in the
/// feed and in timelines.
pub fn the_ledger_survives_removal_and_deletion(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, clock) = ns.service(store);
    let acme = ns.org("acme");
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
    assert_eq!(
        ledger.last().unwrap().kind,
        ChangeKind::Deleted,
        "the deletion is the last entry"
    );
    assert_not_found(
        segments.size_as_of(&acme, s.id, start()),
        s.id,
        "as-of reads of a deleted segment",
    );
}

/// `size_as_of` and `members_as_of` answer for any past time: 0 and nobody
/// before the first member, then each call's result from its time on.
pub fn size_and_members_as_of_past_times(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, clock) = ns.service(store);
    let acme = ns.org("acme");
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
        let mut options = PageOptions::new().limit(2);
        loop {
            let page = segments
                .members_as_of(&acme, s.id, at(secs), options.clone())
                .unwrap();
            listed.extend(page.members.iter().map(|m| m.pid.as_str().to_owned()));
            match page.next {
                Some(next) => options = options.after(next),
                None => break,
            }
        }
        assert_eq!(
            listed, pids,
            "members as of +{secs}s, in list order, over pages of 2"
        );
    }
    let b = segments
        .members_as_of(&acme, s.id, at(35), PageOptions::new().limit(10))
        .unwrap();
    let b = b.members.iter().find(|m| m.pid.as_str() == "p-b").unwrap();
    assert_eq!(
        (b.first_added_at, b.joined_at),
        (at(10), at(30)),
        "first join and the join in effect"
    );
    assert_not_found(
        segments.size_as_of(&ns.org("other"), s.id, at(30)),
        s.id,
        "another org's segment",
    );
}

/// A leap second (which only an injected clock can give) is kept as every
/// backend can store it, folded into the second after it: the change made
/// in it, the segment's size and its members as of a time just after it,
/// and the time itself agree.
pub fn a_leap_second_is_kept_as_microseconds(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
        .unwrap()
        .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
        .unwrap()
        .and_utc();
    let clock = ManualClock::new(leap);
    let segments = Segments::new(store).with_clock(clock.clone());
    let acme = ns.org("acme");
    let s = segments.create(&acme, NewSegment::new("Leap")).unwrap();
    segments.add_members(&acme, s.id, &["p-a"]).unwrap();
    let folded = chrono::Utc
        .timestamp_opt(1_483_228_800, 500_000_000)
        .unwrap();
    assert_eq!(s.created_at, folded, "the leap second folds into the next");
    let after = folded + TimeDelta::milliseconds(200);
    assert_eq!(
        segments.size_as_of(&acme, s.id, after).unwrap(),
        1,
        "the member counts as of a time just after the leap second"
    );
    let members = segments
        .members_as_of(&acme, s.id, after, PageOptions::new().limit(10))
        .unwrap();
    assert_eq!(
        members.members.len(),
        1,
        "members_as_of agrees with size_as_of"
    );
    assert_eq!(
        members.members[0].joined_at, folded,
        "the join is at the folded time"
    );
    assert_eq!(
        segments.size_as_of(&acme, s.id, leap).unwrap(),
        1,
        "as of the leap second itself, the change made in it counts"
    );
}

/// A person's timeline read in small pages holds the same entries, in the
/// same order, as one big page: each page starts just after the last
/// entry of the one before, skips none and repeats none, whatever other
/// people's entries lie between; a page with fewer entries than the limit
/// is the last for now, and an empty one keeps the cursor.
pub fn timeline_pages_read_one_timeline(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, clock) = ns.service(store);
    let acme = ns.org("acme");
    let a = segments.create(&acme, NewSegment::new("A")).unwrap();
    let b = segments.create(&acme, NewSegment::new("B")).unwrap();
    let c = segments.create(&acme, NewSegment::new("C")).unwrap();
    for (segment, add, pids) in [
        (a.id, true, vec!["p-y", "p-x", "p-z"]),
        (b.id, true, vec!["p-x", "p-y"]),
        (a.id, false, vec!["p-x"]),
        (c.id, true, vec!["p-z", "p-x"]),
        (a.id, true, vec!["p-x", "p-w"]),
        (b.id, false, vec!["p-y", "p-x"]),
        (c.id, false, vec!["p-z"]),
        (b.id, true, vec!["p-x"]),
        (a.id, false, vec!["p-x", "p-y"]),
    ] {
        clock.advance(TimeDelta::milliseconds(1));
        if add {
            segments.add_members(&acme, segment, &pids).unwrap();
        } else {
            segments.remove_members(&acme, segment, &pids).unwrap();
        }
    }
    segments.delete(&acme, c.id).unwrap();
    let whole = segments
        .timeline(&acme, "p-x", PageOptions::new().limit(1_000))
        .expect("timeline succeeds")
        .changes;
    let from_ledger: Vec<crate::Change> = whole_ledger(&segments, &acme)
        .into_iter()
        .filter(|c| c.kind.pid() == Some(&pid("p-x")))
        .collect();
    assert_eq!(
        whole, from_ledger,
        "one big page is p-x's entries in the ledger, in order"
    );
    assert_eq!(whole.len(), 8, "p-x joined or left eight times");
    for limit in 1..=4 {
        let (mut paged, mut after) = (Vec::new(), 0);
        loop {
            let page = segments
                .timeline(&acme, "p-x", PageOptions::new().after(after).limit(limit))
                .expect("timeline succeeds");
            assert!(
                page.changes.len() <= limit,
                "pages of {limit}: a page holds at most the limit"
            );
            assert!(
                page.changes.iter().all(|c| c.seq > after),
                "pages of {limit}: a page starts after its cursor"
            );
            let last = page.changes.len() < limit;
            if page.changes.is_empty() {
                assert_eq!(
                    page.next, after,
                    "pages of {limit}: an empty page keeps the cursor"
                );
            }
            after = page.next;
            paged.extend(page.changes);
            if last {
                break;
            }
        }
        assert_eq!(
            paged, whole,
            "pages of {limit} read the same timeline as one page"
        );
    }
    let middle = whole[3].seq;
    assert_eq!(
        segments
            .timeline(&acme, "p-x", PageOptions::new().after(middle).limit(1_000))
            .expect("timeline succeeds")
            .changes,
        whole[4..],
        "a page from the middle starts just after its cursor"
    );
    let none = segments
        .timeline(&acme, "p-nobody", PageOptions::new().limit(5))
        .expect("timeline succeeds");
    assert!(
        none.changes.is_empty() && none.next == 0,
        "someone who never joined has an empty timeline"
    );
}
