//! Segments: creation, names, orgs, listing, renames, deletion.

use super::*;

/// A new segment starts empty, tagged `source: "api"`, with its name trimmed
/// and `created_at == updated_at`: the documented initial state, and what
/// `get` then returns, field for field.
pub fn create_returns_an_empty_segment(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments
        .create(
            &acme,
            NewSegment::new("  Q1 2024 Enterprise Prospects ").description("500+ employees, tech"),
        )
        .expect("create succeeds");
    assert_eq!(s.current_size, 0, "a new segment is empty");
    assert_eq!(s.source, "api", "the default source is \"api\"");
    assert_eq!(
        s.name, "Q1 2024 Enterprise Prospects",
        "the name is stored trimmed"
    );
    assert_eq!(
        s.description.as_deref(),
        Some("500+ employees, tech"),
        "the description is stored as given"
    );
    assert_eq!(
        s.created_at, s.updated_at,
        "a new segment was never updated"
    );
    assert_eq!(s.id.as_uuid().get_version_num(), 7, "ids are UUID v7");
    assert_eq!(
        segments.get(&acme, s.id).expect("get succeeds"),
        s,
        "get returns what create returned"
    );
    let bare = segments
        .create(&acme, NewSegment::new("No description"))
        .unwrap();
    assert_eq!(
        segments.get(&acme, bare.id).unwrap().description,
        None,
        "no description stays none"
    );
}

/// Timestamps are truncated to microseconds at creation, so a backend that
/// stores microseconds returns exactly what the caller was given.
pub fn create_truncates_timestamps_to_microseconds(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments.create(&acme, NewSegment::new("Timed")).unwrap();
    assert_eq!(
        s.created_at,
        start_micros(),
        "created_at is the clock's time, truncated to µs"
    );
    let read = segments.get(&acme, s.id).unwrap();
    assert_eq!(
        read.created_at,
        start_micros(),
        "the stored created_at is exact to the µs"
    );
    assert_eq!(
        read.updated_at,
        start_micros(),
        "the stored updated_at is exact to the µs"
    );
}

/// A host-set source label is kept; hosts use it to tell imports from API
/// calls.
pub fn create_keeps_the_source_label(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments
        .create(&acme, NewSegment::new("Imported").source("crm-import"))
        .unwrap();
    assert_eq!(
        segments.get(&acme, s.id).unwrap().source,
        "crm-import",
        "the source label round-trips"
    );
}

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
    const THREADS: usize = 8;
    let acme = ns.org("acme");
    for round in 0..5 {
        let barrier = Arc::new(Barrier::new(THREADS));
        let name = format!("Contested {round}");
        let results: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|i| {
                    let barrier = Arc::clone(&barrier);
                    let (acme, name) = (&acme, &name);
                    scope.spawn(move || {
                        let segments = Segments::new(store);
                        // Spelled differently by each thread: one key.
                        let spelled = if i % 2 == 0 {
                            name.to_uppercase()
                        } else {
                            format!(" {name} ")
                        };
                        barrier.wait();
                        segments.create(acme, NewSegment::new(spelled))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("no thread panics"))
                .collect()
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
        segments.changes_since(&acme, 0, 1).unwrap().changes[0]
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
    const THREADS: usize = 8;
    let acme = ns.org("acme");
    for round in 0..5 {
        let barrier = Arc::new(Barrier::new(THREADS));
        let name = format!("Shared {round}");
        let results: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|i| {
                    let barrier = Arc::clone(&barrier);
                    let (acme, name) = (&acme, &name);
                    scope.spawn(move || {
                        let segments = Segments::new(store);
                        let spelled = if i % 2 == 0 {
                            name.to_lowercase()
                        } else {
                            format!("  {name}")
                        };
                        barrier.wait();
                        if i % 4 == 3 {
                            segments
                                .with_idempotency_key(format!("race-{round}-{i}"))
                                .find_or_create(acme, NewSegment::new(spelled))
                        } else {
                            segments.find_or_create(acme, NewSegment::new(spelled))
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("no thread panics"))
                .collect()
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

/// Nothing crosses organizations: another org's id is `NotFound` for every
/// operation, its names are invisible, and the owner's segment is unchanged.
pub fn another_orgs_segment_is_not_found(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let (a, b) = (ns.org("org-a"), ns.org("org-b"));
    let s = segments
        .create(&a, NewSegment::new("Private").description("A's"))
        .unwrap();
    assert_not_found(segments.get(&b, s.id), s.id, "get from another org");
    assert_not_found(
        segments.rename(&b, s.id, "Stolen"),
        s.id,
        "rename from another org",
    );
    assert_not_found(
        segments.set_description(&b, s.id, Some("B's")),
        s.id,
        "describe from another org",
    );
    assert_not_found(segments.delete(&b, s.id), s.id, "delete from another org");
    assert_eq!(
        segments.find_by_name(&b, "Private").unwrap(),
        None,
        "names of other orgs are invisible"
    );
    assert!(
        all(&segments, &b).is_empty(),
        "another org lists nothing of A's"
    );
    assert_eq!(
        segments.get(&a, s.id).unwrap(),
        s,
        "A's segment is unchanged"
    );
}

/// An id no segment has is `NotFound`, for reads and writes alike.
pub fn unknown_ids_are_not_found(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    segments.create(&acme, NewSegment::new("Exists")).unwrap();
    let ghost = SegmentId::parse("550e8400-e29b-41d4-a716-446655440000").unwrap();
    assert_not_found(segments.get(&acme, ghost), ghost, "get of an unknown id");
    assert_not_found(
        segments.rename(&acme, ghost, "x"),
        ghost,
        "rename of an unknown id",
    );
    assert_not_found(
        segments.set_description(&acme, ghost, None),
        ghost,
        "describe of an unknown id",
    );
    assert_not_found(
        segments.delete(&acme, ghost),
        ghost,
        "delete of an unknown id",
    );
}

/// Every name rule has its typed error, naming field and rule, and a refused
/// create leaves no trace.
pub fn invalid_names_are_refused_and_change_nothing(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let cases: [(String, Rule); 6] = [
        (String::new(), Rule::Blank),
        (" \t ".into(), Rule::Blank),
        (
            "x".repeat(MAX_NAME_CHARS + 1),
            Rule::TooLong {
                max: MAX_NAME_CHARS,
                unit: "characters",
            },
        ),
        ("line\nbreak".into(), Rule::ControlCharacter),
        ("nul\0byte".into(), Rule::ControlCharacter),
        ("bell\u{7}".into(), Rule::ControlCharacter),
    ];
    for (name, rule) in cases {
        let got = assert_invalid(
            segments.create(&acme, NewSegment::new(name.clone())),
            Field::Name,
            &format!("name {name:?}"),
        );
        assert_eq!(got, rule, "name {name:?} breaks {rule:?}");
    }
    assert!(
        all(&segments, &acme).is_empty(),
        "refused creates left nothing"
    );
}

/// Descriptions over the limit or holding NUL, and malformed source labels,
/// are refused with the field named.
pub fn invalid_descriptions_and_sources_are_refused(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let long = "d".repeat(MAX_DESCRIPTION_CHARS + 1);
    let rule = assert_invalid(
        segments.create(&acme, NewSegment::new("a").description(long)),
        Field::Description,
        "long description",
    );
    assert_eq!(
        rule,
        Rule::TooLong {
            max: MAX_DESCRIPTION_CHARS,
            unit: "characters"
        },
        "a long description breaks the length rule"
    );
    let rule = assert_invalid(
        segments.create(&acme, NewSegment::new("a").description("x\0y")),
        Field::Description,
        "NUL in description",
    );
    assert_eq!(rule, Rule::NulCharacter, "a NUL breaks the NUL rule");
    assert_invalid(
        segments.create(&acme, NewSegment::new("a").source("")),
        Field::Source,
        "empty source",
    );
    assert_invalid(
        segments.create(&acme, NewSegment::new("a").source("two words")),
        Field::Source,
        "source with a space",
    );
    assert!(
        all(&segments, &acme).is_empty(),
        "refused creates left nothing"
    );
    let s = segments.create(&acme, NewSegment::new("a")).unwrap();
    let rule = assert_invalid(
        segments.set_description(&acme, s.id, Some("x\0y")),
        Field::Description,
        "NUL in a new description",
    );
    assert_eq!(
        rule,
        Rule::NulCharacter,
        "a NUL in a new description breaks the NUL rule"
    );
    assert_eq!(
        segments.get(&acme, s.id).unwrap(),
        s,
        "a refused description change changed nothing"
    );
}

/// Limits are inclusive and count characters, not bytes: a 255-character
/// name of multi-byte letters and a 2,000-character description are stored
/// whole.
pub fn limits_are_inclusive(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let name = "é".repeat(MAX_NAME_CHARS);
    let description = "ü".repeat(MAX_DESCRIPTION_CHARS);
    let s = segments
        .create(
            &acme,
            NewSegment::new(name.clone()).description(description.clone()),
        )
        .unwrap();
    let read = segments.get(&acme, s.id).unwrap();
    assert_eq!(read.name, name, "a name at the limit is stored whole");
    assert_eq!(
        read.description.as_deref(),
        Some(description.as_str()),
        "a description at the limit is stored whole"
    );
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
    let mut options = ListOptions::new().limit(5);
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
    let exact = segments.list(&acme, ListOptions::new().limit(23)).unwrap();
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
    let page = segments.list(&acme, ListOptions::new().limit(3)).unwrap();
    let next = page.next.expect("more pages");
    segments.delete(&acme, ids[2]).unwrap();
    let rest = segments
        .list(&acme, ListOptions::new().after(next))
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
            segments.list(&acme, ListOptions::new().limit(limit)),
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
            .list(&acme, ListOptions::new().limit(MAX_PAGE_LIMIT))
            .is_ok(),
        "the maximum itself is accepted"
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

/// A description can be set, replaced and cleared; each change moves
/// `updated_at` and nothing else.
pub fn set_description_sets_and_clears(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, clock) = ns.service(store);
    let acme = ns.org("acme");
    let s = segments
        .create(&acme, NewSegment::new("Described"))
        .unwrap();
    clock.advance(TimeDelta::seconds(2));
    let set = segments
        .set_description(&acme, s.id, Some("new text"))
        .unwrap();
    assert_eq!(
        set.description.as_deref(),
        Some("new text"),
        "the description is set"
    );
    assert_eq!(
        set.updated_at,
        start_micros() + TimeDelta::seconds(2),
        "updated_at moves"
    );
    assert_eq!(
        (set.name.as_str(), set.created_at, set.current_size),
        (s.name.as_str(), s.created_at, 0),
        "nothing else moves"
    );
    let cleared = segments.set_description(&acme, s.id, None).unwrap();
    assert_eq!(cleared.description, None, "None clears the description");
    assert_eq!(
        segments.get(&acme, s.id).unwrap(),
        cleared,
        "get shows the change"
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

/// Text is stored exactly: quotes, SQL metacharacters, emoji, right-to-left
/// scripts and combining marks come back byte for byte.
pub fn text_round_trips_exactly(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let names = [
        "Robert'); DROP TABLE segments;--",
        "100% \"quoted\" \\ back_slash",
        "👩‍👩‍👧 family 🎉",
        "مرحبا بالعالم",
        "e\u{301}\u{302} stacked",
        "%_ like wildcards _%",
    ];
    for name in names {
        let s = segments
            .create(
                &acme,
                NewSegment::new(name).description(format!("about {name}\nsecond line")),
            )
            .unwrap();
        let read = segments.get(&acme, s.id).unwrap();
        assert_eq!(read.name, name, "the name round-trips");
        assert_eq!(
            read.description,
            Some(format!("about {name}\nsecond line")),
            "the description round-trips"
        );
        assert_eq!(
            segments.find_by_name(&acme, name).unwrap().map(|f| f.id),
            Some(s.id),
            "{name:?} is found by name"
        );
    }
    assert_eq!(
        segments.find_by_name(&acme, "%").unwrap(),
        None,
        "LIKE wildcards match nothing"
    );
}
