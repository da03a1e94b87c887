//! Segments: creation, fields and their checks, orgs, ids.

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
