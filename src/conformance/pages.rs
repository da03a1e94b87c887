//! Listing members: their order, the documented page API, the cursor API.

use super::*;
use crate::store::Page;

/// Members are ordered by `first_added_at`, then PID, whatever order the
/// calls gave them in.
pub fn member_order_is_first_added_then_pid(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, clock) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments.create(&acme, NewSegment::new("Ordered")).unwrap();
    segments
        .add_members(&acme, s.id, &["p-z", "p-b", "p-m"])
        .unwrap();
    clock.advance(TimeDelta::microseconds(1));
    segments.add_members(&acme, s.id, &["p-a", "p-y"]).unwrap();
    clock.advance(TimeDelta::microseconds(1));
    segments.add_members(&acme, s.id, &["p-b", "p-0"]).unwrap();
    assert_eq!(
        pids_of(&every_member(&segments, &acme, s.id)),
        ["p-b", "p-m", "p-z", "p-a", "p-y", "p-0"],
        "by first_added_at, then PID"
    );
}

/// The documented page API: pages of exactly 5,000 from page 1,
/// `total_count` the size, `list_continues` until the last page, an empty
/// page past the end, and page 0 refused.
pub fn members_page_follows_the_documented_rules(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments.create(&acme, NewSegment::new("Big")).unwrap();
    let pids: Vec<String> = (0..12_500).map(|i| format!("p-{i:06}")).collect();
    segments.add_members(&acme, s.id, &pids).unwrap();
    let mut seen = Vec::new();
    for (page, len, continues) in [
        (1, MEMBERS_PAGE_SIZE, true),
        (2, MEMBERS_PAGE_SIZE, true),
        (3, 2_500, false),
        (4, 0, false),
        (99, 0, false),
    ] {
        let got = segments.members_page(&acme, s.id, page).unwrap();
        assert_eq!(got.items.len(), len, "page {page} holds {len} members");
        assert_eq!(
            got.total_count, 12_500,
            "page {page}: total_count is the size"
        );
        assert_eq!(got.page, page, "page {page} says which page it is");
        assert_eq!(got.list_continues, continues, "page {page}: list_continues");
        seen.extend(got.items.into_iter().map(|m| m.pid.as_str().to_owned()));
    }
    assert_eq!(seen, pids, "the pages hold every member once, in order");
    let rule = assert_invalid(segments.members_page(&acme, s.id, 0), Field::Page, "page 0");
    assert_eq!(
        rule,
        Rule::OutOfRange { min: 1, max: None },
        "page 0 is out of range, with no maximum"
    );
    let empty = segments.create(&acme, NewSegment::new("Empty")).unwrap();
    let got = segments.members_page(&acme, empty.id, 1).unwrap();
    assert_eq!(
        (got.items.len(), got.total_count, got.list_continues),
        (0, 0, false),
        "an empty segment has an empty page 1"
    );
}

/// The cursor API visits every member once, in order, in pages of the
/// limit; a cursor stays valid when its member leaves; limits are checked.
pub fn member_cursor_walks_every_member_once(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, clock) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments.create(&acme, NewSegment::new("Walked")).unwrap();
    let mut expected = Vec::new();
    for batch in 0..5 {
        clock.advance(TimeDelta::milliseconds(1));
        let pids: Vec<String> = (0..10).map(|i| format!("p-{batch}{i}")).collect();
        segments.add_members(&acme, s.id, &pids).unwrap();
        expected.extend(pids);
    }
    let mut seen = Vec::new();
    let mut options = PageOptions::new().limit(7);
    let mut pages = 0;
    loop {
        let page = segments.members(&acme, s.id, options.clone()).unwrap();
        pages += 1;
        assert!(page.members.len() <= 7, "a page holds at most the limit");
        seen.extend(page.members.iter().map(|m| m.pid.as_str().to_owned()));
        match page.next {
            Some(next) => options = PageOptions::new().after(next).limit(7),
            None => break,
        }
    }
    assert_eq!(seen, expected, "every member once, in order");
    assert_eq!(pages, 8, "50 members in pages of 7 make 8 pages");
    let first = segments
        .members(&acme, s.id, PageOptions::new().limit(3))
        .unwrap();
    segments
        .remove_members(&acme, s.id, &[expected[2].as_str()])
        .unwrap();
    let rest = segments
        .members(
            &acme,
            s.id,
            PageOptions::new().after(first.next.unwrap()).limit(2),
        )
        .unwrap();
    assert_eq!(
        pids_of(&rest.members),
        [expected[3].as_str(), expected[4].as_str()],
        "the cursor outlives its member"
    );
    for limit in [0, MAX_PAGE_LIMIT + 1] {
        assert_invalid(
            segments.members(&acme, s.id, PageOptions::new().limit(limit)),
            Field::Limit,
            &format!("limit {limit}"),
        );
    }
}

/// The documented page API, walked page after page as clients do, serves
/// exactly the members a page counted from the start would hold: the
/// service may start a page where the previous one ended, but only while
/// the members stay the same. When members join or leave between two
/// pages of a walk, the next page is the members at its offset now, not a
/// continuation of the old list (which would skip or repeat members).
pub fn walking_pages_in_order_matches_counting_from_the_start(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, clock) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments.create(&acme, NewSegment::new("Long")).unwrap();
    let total = 2 * MEMBERS_PAGE_SIZE + 1_234;
    // Three calls at three times, the first with the highest PIDs: list
    // order (first_added_at, then PID) is neither call order nor PID order.
    let pids: Vec<String> = (0..total).rev().map(|i| format!("p-{i:05}")).collect();
    let mut expected = Vec::new();
    for batch in pids.chunks(4_500) {
        clock.advance(TimeDelta::seconds(1));
        let mut shuffled = batch.to_vec();
        shuffled.rotate_left(batch.len() / 3);
        segments.add_members(&acme, s.id, &shuffled).unwrap();
        let mut sorted = batch.to_vec();
        sorted.sort();
        expected.extend(sorted);
    }
    let now = || {
        every_member(&segments, &acme, s.id)
            .into_iter()
            .map(|m| m.pid.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(now(), expected, "members in list order");
    // Page `page` as it must be: the members at its offset now.
    let check = |page: u64, what: &str| {
        let got = segments
            .members_page(&acme, s.id, page)
            .expect("members_page succeeds");
        let members = now();
        let offset = (page as usize - 1) * MEMBERS_PAGE_SIZE;
        let counted =
            &members[offset.min(members.len())..(offset + MEMBERS_PAGE_SIZE).min(members.len())];
        assert_eq!(
            pids_of(&got.items),
            counted,
            "{what}: page {page} holds the members at offset {offset} now"
        );
        let by_offset = store
            .members(
                &acme,
                s.id,
                Page::new(MemberStart::Offset(offset as u64), MEMBERS_PAGE_SIZE),
            )
            .expect("members succeeds");
        assert_eq!(
            got.items, by_offset.members,
            "{what}: page {page} is what a read at its offset returns, timestamps included"
        );
        assert_eq!(
            got.total_count,
            members.len() as u64,
            "{what}: page {page}'s total_count is the size now"
        );
        assert_eq!(
            got.list_continues,
            offset + MEMBERS_PAGE_SIZE < members.len(),
            "{what}: page {page}'s list_continues"
        );
    };
    for page in 1..=4 {
        check(page, "a walk with no change");
    }
    for page in 1..=3 {
        check(page, "the same walk again");
    }
    check(1, "a walk with changes");
    segments
        .remove_members(&acme, s.id, &[expected[10].as_str()])
        .unwrap();
    check(2, "after a member of page 1 left");
    clock.advance(TimeDelta::seconds(1));
    segments
        .add_members(&acme, s.id, &[expected[10].as_str()])
        .unwrap();
    check(3, "after the member came back to page 1");
    check(1, "a walk with joins");
    segments.add_members(&acme, s.id, &["p-zzzzz"]).unwrap();
    segments
        .remove_members(&acme, s.id, &[expected[MEMBERS_PAGE_SIZE + 1].as_str()])
        .unwrap();
    check(2, "after one joined at the end and one left page 2");
    segments
        .add_members(&acme, s.id, &[expected[0].as_str(), expected[1].as_str()])
        .unwrap();
    check(3, "after a redundant add");
    check(4, "past the end");
}
