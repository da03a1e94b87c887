//! Listing an org's segments: creation order, cursors and limits.

use super::*;

/// Listing returns every segment of the org once, in creation order
/// (`created_at`, then id), page by page, with no next cursor on the last page.
pub fn list_pages_in_creation_order(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, clock) = ns.service(store);
    let acme = ns.org("acme");
    let other = ns.org("other");
    let mut created = Vec::new();
    for i in 0..23 {
        // Several segments per clock tick: ties are broken by id.
        if i % 3 == 0 {
            clock.advance(TimeDelta::microseconds(7));
        }
        created.push(
            segments
                .create(&acme, NewSegment::new(format!("segment {i:02}")))
                .unwrap(),
        );
        segments
            .create(&other, NewSegment::new(format!("noise {i:02}")))
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut options = PageOptions::new().limit(5);
    let mut pages = 0;
    loop {
        let page = segments.list(&acme, options).unwrap();
        pages += 1;
        assert!(page.segments.len() <= 5, "a page holds at most the limit");
        seen.extend(page.segments);
        match page.next {
            Some(next) => options = options.after(next),
            None => break,
        }
    }
    assert_eq!(
        pages, 5,
        "23 segments in pages of 5 make 5 pages, the last without a next cursor"
    );
    assert_eq!(seen, created, "every segment once, in creation order");
    let exact = segments.list(&acme, PageOptions::new().limit(23)).unwrap();
    assert_eq!(
        exact.segments.len(),
        23,
        "a page of the exact size holds every segment"
    );
    assert_eq!(
        exact.next, None,
        "a page that ends the list has no next cursor"
    );
}

/// Creation order means `created_at`, then id, not the order rows were
/// stored in: a clock set back and ids that count down still list by time,
/// then by id.
pub fn list_order_is_created_at_then_id_not_insertion(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    #[derive(Debug)]
    struct CountDown(std::sync::atomic::AtomicU64);
    impl crate::clock::IdGenerator for CountDown {
        fn next_id(&self, _: DateTime<Utc>) -> SegmentId {
            let n = self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            SegmentId::from_uuid(uuid::Uuid::from_u128(
                (0x7u128 << 76) | (0x8u128 << 60) | u128::from(n),
            ))
        }
    }
    let clock = ManualClock::new(start());
    let segments = Segments::new(store)
        .with_clock(clock.clone())
        .with_id_generator(CountDown((ns.ids_after + 100).into()));
    let acme = ns.org("acme");
    clock.advance(TimeDelta::seconds(10));
    segments.create(&acme, NewSegment::new("late")).unwrap();
    clock.advance(TimeDelta::seconds(-10));
    let early_b = segments.create(&acme, NewSegment::new("early b")).unwrap();
    let early_a = segments.create(&acme, NewSegment::new("early a")).unwrap();
    assert!(early_a.id < early_b.id, "ids count down");
    let listed: Vec<_> = all(&segments, &acme).into_iter().map(|s| s.name).collect();
    assert_eq!(
        listed,
        ["early a", "early b", "late"],
        "by created_at, then id"
    );
}

/// Segment ids are unique across orgs, as a UUID is: an id generator that
/// repeats an id another org holds gets a `Storage` error, and nothing is
/// created. Every backend behaves the same way.
pub fn segment_ids_are_unique_across_orgs(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (a, b) = (ns.org("org-a"), ns.org("org-b"));
    let (first, _) = ns.service(store);
    let (repeating, _) = ns.service(store); // a second generator: the same ids again
    let s = first.create(&a, NewSegment::new("First")).unwrap();
    assert_eq!(
        crate::clock::IdGenerator::next_id(&ns.ids(), start()),
        s.id,
        "a second generator of the run gives the first one's id again"
    );
    match repeating.create(&b, NewSegment::new("Second")) {
        Err(Error::Storage { .. }) => {}
        other => panic!("a repeated id is a storage error, got {other:?}"),
    }
    assert!(
        all(&repeating, &b).is_empty(),
        "nothing was created in org B"
    );
    assert_eq!(
        first.get(&a, s.id).unwrap(),
        s,
        "org A's segment is untouched"
    );
    assert_not_found(repeating.get(&b, s.id), s.id, "the id stays A's");
}

/// A cursor is a position, not a row: listing after a segment that has since
/// been deleted goes on from where it stood.
pub fn list_cursor_survives_deletion(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, clock) = ns.service(store);
    let acme = ns.org("acme");
    let mut ids = Vec::new();
    for i in 0..6 {
        clock.advance(TimeDelta::milliseconds(1));
        ids.push(
            segments
                .create(&acme, NewSegment::new(format!("s{i}")))
                .unwrap()
                .id,
        );
    }
    let page = segments.list(&acme, PageOptions::new().limit(3)).unwrap();
    let next = page.next.expect("more pages");
    segments.delete(&acme, ids[2]).unwrap();
    let rest = segments
        .list(&acme, PageOptions::new().after(next))
        .unwrap();
    let rest: Vec<_> = rest.segments.iter().map(|s| s.id).collect();
    assert_eq!(
        rest,
        ids[3..].to_vec(),
        "listing resumes after the deleted segment's place"
    );
}

/// A page size of 0 or over the maximum is a typed error on `limit`.
pub fn list_limit_is_checked(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    for limit in [0, MAX_PAGE_LIMIT + 1] {
        let rule = assert_invalid(
            segments.list(&acme, PageOptions::new().limit(limit)),
            Field::Limit,
            &format!("limit {limit}"),
        );
        assert_eq!(
            rule,
            Rule::OutOfRange {
                min: 1,
                max: Some(MAX_PAGE_LIMIT as u64)
            },
            "limit {limit} is out of range"
        );
    }
    assert!(
        segments
            .list(&acme, PageOptions::new().limit(MAX_PAGE_LIMIT))
            .is_ok(),
        "the maximum itself is accepted"
    );
}
