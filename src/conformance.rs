//! The shared conformance suite: the contract of [`SegmentStore`], checked.
//!
//! Each `pub fn` here checks one edge of the contract against any store and
//! panics, with a message saying what broke, when the store gets it wrong.
//! Every backend of this crate runs every function, in every configuration
//! (memory; SQLite in memory and on a WAL file; each also behind
//! `Arc<dyn SegmentStore>`). A backend of your own runs them all with one
//! line:
//!
//! ```
//! # #[cfg(any())] // the macro emits #[test] functions; this shows the call
//! mod conformance {
//!     segments::conformance_tests!(my_crate::MyStore::new());
//! }
//! ```
//!
//! The expression is evaluated afresh for every test and must give a
//! [`Fixture`]: a store, or a `(guard, store)` pair whose guard (a temporary
//! directory, say) lives as long as the test.
//!
//! The functions take a store that holds nothing of the orgs they use, and
//! use the service ([`Segments`]) with a [`ManualClock`] and
//! [`SequentialIds`], so what they expect is exact.

use std::sync::{Arc, Barrier};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use crate::clock::{ManualClock, SequentialIds};
use crate::limits::{
    MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, MAX_PAGE_LIMIT, MAX_PIDS_PER_CALL, MEMBERS_PAGE_SIZE,
};
use crate::{
    AddOutcome, ChangeKind, DeathCursor, DeathReport, Error, Field, KnownPids, ListOptions, Member,
    MemberOptions, NewSegment, OrgId, Pid, RemoveOutcome, Rule, Segment, SegmentId, SegmentStore,
    Segments, SignalMetadata,
};

/// What a conformance test runs against: a store, or a store with a guard
/// that must outlive it.
pub trait Fixture {
    /// The store under test.
    fn store(&self) -> &dyn SegmentStore;
}

impl<S: SegmentStore> Fixture for S {
    fn store(&self) -> &dyn SegmentStore {
        self
    }
}

impl<G, S: SegmentStore> Fixture for (G, S) {
    fn store(&self) -> &dyn SegmentStore {
        &self.1
    }
}

/// Emits one `#[test]` per conformance function, each on a fresh fixture
/// from `$fixture` (see [`Fixture`]).
#[macro_export]
macro_rules! conformance_tests {
    ($fixture:expr) => {
        $crate::__conformance_cases! { ($fixture)
            create_returns_an_empty_segment,
            create_truncates_timestamps_to_microseconds,
            create_keeps_the_source_label,
            names_are_unique_per_org_by_key,
            the_same_name_may_exist_in_two_orgs,
            racing_creates_of_one_name_have_one_winner,
            another_orgs_segment_is_not_found,
            unknown_ids_are_not_found,
            invalid_names_are_refused_and_change_nothing,
            invalid_descriptions_and_sources_are_refused,
            limits_are_inclusive,
            find_by_name_compares_keys,
            list_pages_in_creation_order,
            list_order_is_created_at_then_id_not_insertion,
            segment_ids_are_unique_across_orgs,
            list_cursor_survives_deletion,
            list_limit_is_checked,
            rename_keeps_names_unique,
            set_description_sets_and_clears,
            delete_frees_the_name,
            text_round_trips_exactly,
            add_members_reports_the_documented_counts,
            malformed_pids_never_fail_the_call,
            redundant_adds_move_last_added_at,
            removal_keeps_history,
            member_order_is_first_added_then_pid,
            members_page_follows_the_documented_rules,
            member_cursor_walks_every_member_once,
            too_many_pids_are_refused_whole,
            member_calls_on_another_orgs_segment_are_not_found,
            deleting_a_segment_takes_its_members,
            person_directory_rejects_unknown_pids,
            empty_member_calls_change_nothing,
            racing_member_calls_keep_current_size_exact,
            every_change_is_in_the_ledger,
            failed_writes_record_nothing,
            ledgers_are_per_org,
            the_change_feed_never_misses_or_repeats,
            the_ledger_survives_removal_and_deletion,
            ledger_times_never_go_backwards,
            size_and_members_as_of_past_times,
            death_records_are_checked_stored_and_updated,
            death_signals_show_current_members_only,
            death_signals_since_returns_only_new_records,
            a_record_that_names_another_person_is_new_to_them,
            no_op_changes_record_nothing,
            a_cursor_past_the_ledger_is_refused,
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    (($fixture:expr) $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let fixture = $fixture;
                $crate::conformance::$case($crate::conformance::Fixture::store(&fixture));
            }
        )*
    };
}

/// 2024-01-15T10:30:45.123456789Z: sub-microsecond digits on purpose.
fn start() -> DateTime<Utc> {
    Utc.timestamp_opt(1_705_314_645, 123_456_789).unwrap()
}

fn start_micros() -> DateTime<Utc> {
    Utc.timestamp_opt(1_705_314_645, 123_456_000).unwrap()
}

fn service(store: &dyn SegmentStore) -> (Segments<&dyn SegmentStore>, ManualClock) {
    let clock = ManualClock::new(start());
    let segments = Segments::new(store)
        .with_clock(clock.clone())
        .with_id_generator(SequentialIds::new());
    (segments, clock)
}

fn org(name: &str) -> OrgId {
    OrgId::new(name).expect("test org ids are valid")
}

fn all(segments: &Segments<&dyn SegmentStore>, org: &OrgId) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut options = ListOptions::new().limit(MAX_PAGE_LIMIT);
    loop {
        let page = segments.list(org, options).expect("list succeeds");
        out.extend(page.segments);
        match page.next {
            Some(next) => options = options.after(next),
            None => return out,
        }
    }
}

fn assert_duplicate(result: crate::Result<Segment>, name: &str, why: &str) {
    match result {
        Err(e @ Error::DuplicateName { .. }) => {
            assert_eq!(
                e.status_code(),
                404,
                "{why}: a duplicate name answers 404, as documented"
            );
            assert_eq!(
                e.to_string(),
                format!("Segment name {name} already exists"),
                "{why}: the documented message names the requested name"
            );
        }
        other => panic!("{why}: expected DuplicateName, got {other:?}"),
    }
}

fn assert_not_found(result: crate::Result<impl std::fmt::Debug>, id: SegmentId, why: &str) {
    match result {
        Err(Error::NotFound { id: got }) => assert_eq!(got, id, "{why}: NotFound names the id"),
        other => panic!("{why}: expected NotFound, got {other:?}"),
    }
}

fn assert_invalid(result: crate::Result<impl std::fmt::Debug>, field: Field, why: &str) -> Rule {
    match result {
        Err(Error::Invalid(e)) => {
            assert_eq!(e.field(), field, "{why}: the error names the field");
            e.rule().clone()
        }
        other => panic!("{why}: expected Invalid on {field}, got {other:?}"),
    }
}

/// A new segment starts empty, tagged `source: "api"`, with its name trimmed
/// and `created_at == updated_at`: the documented initial state, and what
/// `get` then returns, field for field.
pub fn create_returns_an_empty_segment(store: &dyn SegmentStore) {
    let (segments, _) = service(store);
    let acme = org("acme");
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
    assert_eq!(s.description.as_deref(), Some("500+ employees, tech"));
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
    let (segments, _) = service(store);
    let acme = org("acme");
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
    let (segments, _) = service(store);
    let acme = org("acme");
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
    let (segments, _) = service(store);
    let acme = org("acme");
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
    let (segments, _) = service(store);
    let (a, b) = (org("org-a"), org("org-b"));
    let sa = segments.create(&a, NewSegment::new("Shared Name")).unwrap();
    let sb = segments.create(&b, NewSegment::new("shared name")).unwrap();
    assert_ne!(sa.id, sb.id, "two orgs, two segments");
    assert_eq!(segments.get(&a, sa.id).unwrap().name, "Shared Name");
    assert_eq!(segments.get(&b, sb.id).unwrap().name, "shared name");
}

/// Uniqueness is enforced by the storage itself, not by a check-then-insert
/// in the caller: of eight threads creating one name at once, exactly one
/// succeeds and the others get `DuplicateName`.
pub fn racing_creates_of_one_name_have_one_winner(store: &dyn SegmentStore) {
    const THREADS: usize = 8;
    let acme = org("acme");
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

/// Nothing crosses organizations: another org's id is `NotFound` for every
/// operation, its names are invisible, and the owner's segment is unchanged.
pub fn another_orgs_segment_is_not_found(store: &dyn SegmentStore) {
    let (segments, _) = service(store);
    let (a, b) = (org("org-a"), org("org-b"));
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
    let (segments, _) = service(store);
    let acme = org("acme");
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
    let (segments, _) = service(store);
    let acme = org("acme");
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
    let (segments, _) = service(store);
    let acme = org("acme");
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
        }
    );
    let rule = assert_invalid(
        segments.create(&acme, NewSegment::new("a").description("x\0y")),
        Field::Description,
        "NUL in description",
    );
    assert_eq!(rule, Rule::NulCharacter);
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
    assert_eq!(rule, Rule::NulCharacter);
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
    let (segments, _) = service(store);
    let acme = org("acme");
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
    let (segments, _) = service(store);
    let acme = org("acme");
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
    let (segments, clock) = service(store);
    let acme = org("acme");
    let other = org("other");
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
    assert_eq!(exact.segments.len(), 23);
    assert_eq!(
        exact.next, None,
        "a page that ends the list has no next cursor"
    );
}

/// Creation order means `created_at`, then id, not the order rows were
/// stored in: a clock set back and ids that count down still list by time,
/// then by id.
pub fn list_order_is_created_at_then_id_not_insertion(store: &dyn SegmentStore) {
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
        .with_id_generator(CountDown(100.into()));
    let acme = org("acme");
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
    let (a, b) = (org("org-a"), org("org-b"));
    let (first, _) = service(store);
    let (repeating, _) = service(store); // a second SequentialIds: the same ids again
    let s = first.create(&a, NewSegment::new("First")).unwrap();
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
    let (segments, clock) = service(store);
    let acme = org("acme");
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
    let (segments, _) = service(store);
    let acme = org("acme");
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
            }
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
    let (segments, clock) = service(store);
    let acme = org("acme");
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
    assert_eq!(recased.name, "ALPHA");
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
    assert_ne!(reused.id, a.id);
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
    let (segments, clock) = service(store);
    let acme = org("acme");
    let s = segments
        .create(&acme, NewSegment::new("Described"))
        .unwrap();
    clock.advance(TimeDelta::seconds(2));
    let set = segments
        .set_description(&acme, s.id, Some("new text"))
        .unwrap();
    assert_eq!(set.description.as_deref(), Some("new text"));
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
    let (segments, _) = service(store);
    let acme = org("acme");
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
    let (segments, _) = service(store);
    let acme = org("acme");
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

fn every_member(segments: &Segments<&dyn SegmentStore>, org: &OrgId, id: SegmentId) -> Vec<Member> {
    let mut out = Vec::new();
    let mut options = MemberOptions::new().limit(MAX_PAGE_LIMIT);
    loop {
        let page = segments
            .members(org, id, options.clone())
            .expect("members succeeds");
        out.extend(page.members);
        match page.next {
            Some(next) => options = options.after(next),
            None => return out,
        }
    }
}

fn pids_of(members: &[Member]) -> Vec<&str> {
    members.iter().map(|m| m.pid.as_str()).collect()
}

/// The documented example: two new PIDs and one malformed one add two,
/// report the malformed one, and count the size; repeats within a call and
/// PIDs already present are redundant.
pub fn add_members_reports_the_documented_counts(store: &dyn SegmentStore) {
    let (segments, _) = service(store);
    let acme = org("acme");
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

/// Malformed PIDs are reported, each once and in the order given, and never
/// fail the call, even when no PID is valid.
pub fn malformed_pids_never_fail_the_call(store: &dyn SegmentStore) {
    let (segments, _) = service(store);
    let acme = org("acme");
    let s = segments.create(&acme, NewSegment::new("Strict")).unwrap();
    let bad = [
        "p-BAD",
        "",
        "p-",
        "h-abc123",
        "p-abc ",
        "p-bad!",
        "p-BAD",
        "'; DROP TABLE memberships;--",
    ];
    let out = segments.add_members(&acme, s.id, &bad).unwrap();
    assert_eq!(out.n_added, 0, "nothing valid, nothing added");
    assert_eq!(
        out.invalid_pids,
        [
            "p-BAD",
            "",
            "p-",
            "h-abc123",
            "p-abc ",
            "p-bad!",
            "'; DROP TABLE memberships;--"
        ],
        "each malformed PID once, in order"
    );
    let out = segments
        .remove_members(&acme, s.id, &["p-ok", "p-NOPE"])
        .unwrap();
    assert_eq!(
        out,
        RemoveOutcome {
            n_deleted: 0,
            invalid_pids: vec!["p-NOPE".into()],
            new_current_size: 0
        }
    );
    assert!(
        every_member(&segments, &acme, s.id).is_empty(),
        "no member was added"
    );
}

/// A redundant add moves `last_added_at` and nothing else.
pub fn redundant_adds_move_last_added_at(store: &dyn SegmentStore) {
    let (segments, clock) = service(store);
    let acme = org("acme");
    let s = segments.create(&acme, NewSegment::new("Touched")).unwrap();
    segments.add_members(&acme, s.id, &["p-a", "p-b"]).unwrap();
    clock.advance(TimeDelta::seconds(10));
    segments.add_members(&acme, s.id, &["p-a"]).unwrap();
    let members = every_member(&segments, &acme, s.id);
    assert_eq!(pids_of(&members), ["p-a", "p-b"]);
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
    let (segments, clock) = service(store);
    let acme = org("acme");
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

/// Members are ordered by `first_added_at`, then PID, whatever order the
/// calls gave them in.
pub fn member_order_is_first_added_then_pid(store: &dyn SegmentStore) {
    let (segments, clock) = service(store);
    let acme = org("acme");
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
    let (segments, _) = service(store);
    let acme = org("acme");
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
    assert_eq!(rule, Rule::OutOfRange { min: 1, max: None });
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
    let (segments, clock) = service(store);
    let acme = org("acme");
    let s = segments.create(&acme, NewSegment::new("Walked")).unwrap();
    let mut expected = Vec::new();
    for batch in 0..5 {
        clock.advance(TimeDelta::milliseconds(1));
        let pids: Vec<String> = (0..10).map(|i| format!("p-{batch}{i}")).collect();
        segments.add_members(&acme, s.id, &pids).unwrap();
        expected.extend(pids);
    }
    let mut seen = Vec::new();
    let mut options = MemberOptions::new().limit(7);
    let mut pages = 0;
    loop {
        let page = segments.members(&acme, s.id, options.clone()).unwrap();
        pages += 1;
        assert!(page.members.len() <= 7, "a page holds at most the limit");
        seen.extend(page.members.iter().map(|m| m.pid.as_str().to_owned()));
        match page.next {
            Some(next) => options = MemberOptions::new().after(next).limit(7),
            None => break,
        }
    }
    assert_eq!(seen, expected, "every member once, in order");
    assert_eq!(pages, 8, "50 members in pages of 7 make 8 pages");
    let first = segments
        .members(&acme, s.id, MemberOptions::new().limit(3))
        .unwrap();
    segments
        .remove_members(&acme, s.id, &[expected[2].as_str()])
        .unwrap();
    let rest = segments
        .members(
            &acme,
            s.id,
            MemberOptions::new().after(first.next.unwrap()).limit(2),
        )
        .unwrap();
    assert_eq!(
        pids_of(&rest.members),
        [expected[3].as_str(), expected[4].as_str()],
        "the cursor outlives its member"
    );
    for limit in [0, MAX_PAGE_LIMIT + 1] {
        assert_invalid(
            segments.members(&acme, s.id, MemberOptions::new().limit(limit)),
            Field::Limit,
            &format!("limit {limit}"),
        );
    }
}

/// More than 100,000 PIDs in one call is `TooLarge` and nothing of it is
/// applied; exactly 100,000 is accepted.
pub fn too_many_pids_are_refused_whole(store: &dyn SegmentStore) {
    let (segments, _) = service(store);
    let acme = org("acme");
    let s = segments.create(&acme, NewSegment::new("Bounded")).unwrap();
    let mut pids: Vec<String> = (0..MAX_PIDS_PER_CALL).map(|i| format!("p-{i}")).collect();
    pids.push("p-onetoomany".into());
    for result in [
        segments.add_members(&acme, s.id, &pids).map(|_| ()),
        segments.remove_members(&acme, s.id, &pids).map(|_| ()),
    ] {
        match result {
            Err(e @ Error::TooLarge { .. }) => {
                assert_eq!(e.status_code(), 413);
                assert_eq!(e.to_string(), "More than 100000 minerva_pids in request");
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }
    assert_eq!(
        segments.get(&acme, s.id).unwrap().current_size,
        0,
        "nothing of a refused call is applied"
    );
    // The limit itself is accepted (malformed PIDs keep this cheap).
    let at_limit: Vec<String> = (0..MAX_PIDS_PER_CALL).map(|i| format!("x-{i}")).collect();
    let out = segments
        .add_members(&acme, s.id, &at_limit)
        .expect("exactly the limit is accepted");
    assert_eq!(out.invalid_pids.len(), MAX_PIDS_PER_CALL);
}

/// Member calls on another org's segment are `NotFound` and change nothing
/// of the owner's.
pub fn member_calls_on_another_orgs_segment_are_not_found(store: &dyn SegmentStore) {
    let (segments, _) = service(store);
    let (a, b) = (org("org-a"), org("org-b"));
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
        segments.members(&b, s.id, MemberOptions::new()),
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
    let (segments, _) = service(store);
    let acme = org("acme");
    let s = segments.create(&acme, NewSegment::new("Doomed")).unwrap();
    segments.add_members(&acme, s.id, &["p-a", "p-b"]).unwrap();
    segments.delete(&acme, s.id).unwrap();
    assert_not_found(
        segments.members(&acme, s.id, MemberOptions::new()),
        s.id,
        "members of a deleted segment",
    );
    let reborn = segments.create(&acme, NewSegment::new("Doomed")).unwrap();
    assert_eq!(reborn.current_size, 0);
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

/// A person directory's unknown PIDs are reported with the malformed ones
/// and not added.
pub fn person_directory_rejects_unknown_pids(store: &dyn SegmentStore) {
    let (segments, _) = service(store);
    let segments =
        segments.with_person_directory(KnownPids::new(["p-known1", "p-known2"]).unwrap());
    let acme = org("acme");
    let s = segments
        .create(&acme, NewSegment::new("Directory"))
        .unwrap();
    let out = segments
        .add_members(&acme, s.id, &["p-known1", "p-stranger", "bad!", "p-known2"])
        .unwrap();
    assert_eq!(
        (out.n_added, out.new_current_size),
        (2, 2),
        "known PIDs are added"
    );
    assert_eq!(
        out.invalid_pids,
        ["bad!", "p-stranger"],
        "malformed first, then unknown"
    );
    assert_eq!(
        pids_of(&every_member(&segments, &acme, s.id)),
        ["p-known1", "p-known2"]
    );
}

/// An empty call is valid: it changes nothing and reports the size.
pub fn empty_member_calls_change_nothing(store: &dyn SegmentStore) {
    let (segments, _) = service(store);
    let acme = org("acme");
    let s = segments.create(&acme, NewSegment::new("Quiet")).unwrap();
    segments.add_members(&acme, s.id, &["p-a"]).unwrap();
    let none: [&str; 0] = [];
    let out = segments.add_members(&acme, s.id, &none).unwrap();
    assert_eq!(
        out,
        AddOutcome {
            new_current_size: 1,
            ..AddOutcome::default()
        }
    );
    let out = segments.remove_members(&acme, s.id, &none).unwrap();
    assert_eq!(
        out,
        RemoveOutcome {
            new_current_size: 1,
            ..RemoveOutcome::default()
        }
    );
}

/// Concurrent adds and removes of overlapping PIDs keep `current_size`
/// exactly the number of members, and the outcomes add up to it.
pub fn racing_member_calls_keep_current_size_exact(store: &dyn SegmentStore) {
    const THREADS: usize = 4;
    let (segments, _) = service(store);
    let acme = org("acme");
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

/// For durable backends: everything written survives closing and reopening
/// the store: segments with every field, renames, deletions (the name stays
/// free), members with their timestamps, sizes, and the history of removed
/// members (a re-add after the reopen restores `first_added_at`).
///
/// `open` opens the same database each time it is called; the store it
/// returns is dropped before the next call. Not part of
/// [`conformance_tests!`]: a backend calls it with its own `open`.
pub fn reopened_store_keeps_everything(open: &dyn Fn() -> Box<dyn SegmentStore>) {
    let acme = org("acme");
    let clock = ManualClock::new(start());
    let ids = SequentialIds::new();
    let written = {
        let store = open();
        let segments = Segments::new(&*store)
            .with_clock(clock.clone())
            .with_id_generator(ids.clone());
        let kept = segments
            .create(
                &acme,
                NewSegment::new("Kept")
                    .description("across opens")
                    .source("import"),
            )
            .unwrap();
        let renamed = segments.create(&acme, NewSegment::new("Renamed")).unwrap();
        let renamed = segments.rename(&acme, renamed.id, "Renamed Again").unwrap();
        let deleted = segments.create(&acme, NewSegment::new("Deleted")).unwrap();
        segments.delete(&acme, deleted.id).unwrap();
        segments
            .add_members(&acme, kept.id, &["p-a", "p-b", "p-c"])
            .unwrap();
        clock.advance(TimeDelta::seconds(1));
        segments.remove_members(&acme, kept.id, &["p-b"]).unwrap();
        let members = every_member(&segments, &acme, kept.id);
        let ledger = whole_ledger(&segments, &acme);
        (
            vec![segments.get(&acme, kept.id).unwrap(), renamed],
            members,
            ledger,
        )
    };
    let store = open();
    let segments = Segments::new(&*store)
        .with_clock(clock.clone())
        .with_id_generator(ids);
    assert_eq!(
        all(&segments, &acme),
        written.0,
        "every segment and change survives a reopen, exactly"
    );
    let kept = written.0[0].id;
    assert_eq!(
        every_member(&segments, &acme, kept),
        written.1,
        "members and their timestamps survive a reopen"
    );
    assert_eq!(
        whole_ledger(&segments, &acme),
        written.2,
        "the ledger survives a reopen"
    );
    assert_duplicate(
        segments.create(&acme, NewSegment::new("kept")),
        "kept",
        "uniqueness after a reopen",
    );
    segments
        .create(&acme, NewSegment::new("deleted"))
        .expect("a deleted name stays free after a reopen");
    clock.advance(TimeDelta::seconds(1));
    segments.add_members(&acme, kept, &["p-b"]).unwrap();
    let back = every_member(&segments, &acme, kept);
    assert_eq!(back[1].pid.as_str(), "p-b");
    assert_eq!(
        back[1].first_added_at,
        start_micros(),
        "history of a removed member survives a reopen"
    );
    let ledger = whole_ledger(&segments, &acme);
    let next: Vec<u64> = ledger[written.2.len()..].iter().map(|c| c.seq).collect();
    let from = written.2.len() as u64 + 1;
    assert_eq!(
        next,
        (from..from + next.len() as u64).collect::<Vec<_>>(),
        "the ledger goes on without a gap after a reopen"
    );
}

fn whole_ledger(segments: &Segments<&dyn SegmentStore>, org: &OrgId) -> Vec<crate::Change> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = segments
            .changes_since(org, after, 7)
            .expect("changes_since succeeds");
        if page.changes.is_empty() {
            return out;
        }
        after = page.next;
        out.extend(page.changes);
    }
}

fn pid(s: &str) -> Pid {
    Pid::parse(s).expect("test PIDs are well formed")
}

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
    let ta = segments.timeline(&a, "p-shared").unwrap();
    assert_eq!(ta.len(), 1);
    assert_eq!(ta[0].segment_id, sa.id, "a timeline stays in its org");
    assert!(
        segments
            .timeline(&org("org-c"), "p-shared")
            .unwrap()
            .is_empty()
    );
    assert_invalid(
        segments.timeline(&a, "P-BAD"),
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
    let timeline: Vec<(SegmentId, ChangeKind)> = segments
        .timeline(&acme, "p-x")
        .unwrap()
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
        let mut after: Option<String> = None;
        loop {
            let page = segments
                .members_as_of(&acme, s.id, at(secs), after.as_deref(), 2)
                .unwrap();
            listed.extend(page.members.iter().map(|m| m.pid.as_str().to_owned()));
            match page.next {
                Some(next) => after = Some(next.as_str().to_owned()),
                None => break,
            }
        }
        assert_eq!(
            listed, pids,
            "members as of +{secs}s, in PID order, over pages of 2"
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

fn report(pid: &str, obituary: &str, confidence: f64) -> DeathReport {
    DeathReport {
        minerva_pid: pid.into(),
        obituary_id: obituary.into(),
        date_of_death: "2023-12-15".into(),
        publication_last_update_date: Some("2023-12-18".into()),
        first_observed_at: Some(Utc.with_ymd_and_hms(2023, 12, 20, 8, 30, 0).unwrap()),
        signal_metadata: SignalMetadata {
            source: "obituary_database".into(),
            obituary_url: Some(format!("https://example.com/obituary/{obituary}")),
            publication_name: Some("Local News".into()),
            confidence_score: confidence,
        },
    }
}

/// Death reports are checked one by one: bad ones come back with their
/// position and reason, the rest are stored. Reporting an obituary again
/// updates it but keeps its first `first_observed_at`.
pub fn death_records_are_checked_stored_and_updated(store: &dyn SegmentStore) {
    let (segments, clock) = service(store);
    let acme = org("acme");
    let s = segments.create(&acme, NewSegment::new("Watched")).unwrap();
    segments
        .add_members(&acme, s.id, &["p-a1b2c3d4e5f6", "p-x9y8z7w6v5u4"])
        .unwrap();
    let mut bad_date = report("p-x9y8z7w6v5u4", "obit-bad-date", 0.5);
    bad_date.date_of_death = "2023-02-30".into();
    let out = segments
        .ingest_deaths(vec![
            report("p-a1b2c3d4e5f6", "obit-xyz789", 0.95),
            report("P-BAD", "obit-bad-pid", 0.5),
            bad_date,
            report("p-x9y8z7w6v5u4", "obit-too-sure", 1.5),
            report("p-x9y8z7w6v5u4", "obit-second", 0.6),
        ])
        .unwrap();
    assert_eq!(
        (out.n_inserted, out.n_updated),
        (2, 0),
        "two good records stored"
    );
    let rejected: Vec<(usize, &str, Field)> = out
        .rejected
        .iter()
        .map(|r| (r.index, r.obituary_id.as_str(), r.reason.field()))
        .collect();
    assert_eq!(
        rejected,
        [
            (1, "obit-bad-pid", Field::MinervaPid),
            (2, "obit-bad-date", Field::DateOfDeath),
            (3, "obit-too-sure", Field::ConfidenceScore)
        ],
        "each bad record with its position and the field at fault"
    );
    clock.advance(TimeDelta::days(3));
    let mut again = report("p-a1b2c3d4e5f6", "obit-xyz789", 0.99);
    again.first_observed_at = Some(start());
    again.signal_metadata.publication_name = Some("Daily Paper".into());
    let out = segments.ingest_deaths(vec![again]).unwrap();
    assert_eq!(
        (out.n_inserted, out.n_updated),
        (0, 1),
        "a known obituary is updated"
    );
    let signals = segments.death_signals(&acme, s.id).unwrap();
    let first = signals
        .iter()
        .find(|r| r.obituary_id == "obit-xyz789")
        .unwrap();
    assert_eq!(
        first.signal_metadata.confidence_score, 0.99,
        "the update is stored"
    );
    assert_eq!(
        first.signal_metadata.publication_name.as_deref(),
        Some("Daily Paper")
    );
    assert_eq!(
        first.first_observed_at,
        Utc.with_ymd_and_hms(2023, 12, 20, 8, 30, 0).unwrap(),
        "the first observation time is kept"
    );
    assert_eq!(first.date_of_death.to_string(), "2023-12-15");
    let unobserved = DeathReport {
        first_observed_at: None,
        ..report("p-a1b2c3d4e5f6", "obit-now", 0.7)
    };
    segments.ingest_deaths(vec![unobserved]).unwrap();
    let now = segments
        .death_signals(&acme, s.id)
        .unwrap()
        .into_iter()
        .find(|r| r.obituary_id == "obit-now")
        .unwrap();
    assert_eq!(
        now.first_observed_at,
        start_micros() + TimeDelta::days(3),
        "observed at ingestion when not said"
    );
}

/// The documented answer: death records of the segment's current members
/// only (not of removed members, not of strangers), none for another org.
pub fn death_signals_show_current_members_only(store: &dyn SegmentStore) {
    let (segments, _) = service(store);
    let acme = org("acme");
    let s = segments.create(&acme, NewSegment::new("Cohort")).unwrap();
    segments
        .add_members(&acme, s.id, &["p-member", "p-leaver"])
        .unwrap();
    segments.remove_members(&acme, s.id, &["p-leaver"]).unwrap();
    segments
        .ingest_deaths(vec![
            report("p-member", "o-1", 0.9),
            report("p-leaver", "o-2", 0.9),
            report("p-stranger", "o-3", 0.9),
            report("p-member", "o-4", 0.8),
        ])
        .unwrap();
    let ids: Vec<String> = segments
        .death_signals(&acme, s.id)
        .unwrap()
        .into_iter()
        .map(|r| r.obituary_id)
        .collect();
    assert_eq!(
        ids,
        ["o-1", "o-4"],
        "current members' records, in feed order"
    );
    let empty = segments.create(&acme, NewSegment::new("Empty")).unwrap();
    assert!(
        segments.death_signals(&acme, empty.id).unwrap().is_empty(),
        "an empty array when none"
    );
    assert_not_found(
        segments.death_signals(&org("other"), s.id),
        s.id,
        "another org's segment",
    );
    segments.add_members(&acme, s.id, &["p-leaver"]).unwrap();
    assert_eq!(
        segments.death_signals(&acme, s.id).unwrap().len(),
        3,
        "a member who returns is watched again"
    );
}

/// For monitoring: after a cursor, only records new to the feed come; an
/// updated record does not come again; an empty answer keeps the cursor.
pub fn death_signals_since_returns_only_new_records(store: &dyn SegmentStore) {
    let (segments, _) = service(store);
    let acme = org("acme");
    let s = segments
        .create(&acme, NewSegment::new("Monitored"))
        .unwrap();
    segments
        .add_members(&acme, s.id, &["p-a", "p-b", "p-c"])
        .unwrap();
    segments
        .ingest_deaths(vec![report("p-a", "o-a", 0.9), report("p-z", "o-z", 0.9)])
        .unwrap();
    let first = segments
        .death_signals_since(&acme, s.id, DeathCursor::START, 100)
        .unwrap();
    assert_eq!(first.records.len(), 1);
    let quiet = segments
        .death_signals_since(&acme, s.id, first.next, 100)
        .unwrap();
    assert!(quiet.records.is_empty(), "nothing new");
    assert_eq!(quiet.next, first.next, "an empty answer keeps the cursor");
    segments
        .ingest_deaths(vec![
            report("p-a", "o-a", 0.5),
            report("p-b", "o-b", 0.9),
            report("p-c", "o-c", 0.9),
        ])
        .unwrap();
    let page = segments
        .death_signals_since(&acme, s.id, first.next, 1)
        .unwrap();
    assert_eq!(
        page.records
            .iter()
            .map(|r| r.obituary_id.as_str())
            .collect::<Vec<_>>(),
        ["o-b"],
        "new records only, a page of 1"
    );
    let rest = segments
        .death_signals_since(&acme, s.id, page.next, 100)
        .unwrap();
    assert_eq!(
        rest.records
            .iter()
            .map(|r| r.obituary_id.as_str())
            .collect::<Vec<_>>(),
        ["o-c"],
        "the update of o-a did not come again"
    );
    assert_invalid(
        segments.death_signals_since(&acme, s.id, DeathCursor::START, 0),
        Field::Limit,
        "limit 0",
    );
}

/// An obituary re-reported for another person (a corrected match) leaves
/// the first person's segments, and is new to the second person's: their
/// monitors see it after their cursor. Its first observation time stays.
pub fn a_record_that_names_another_person_is_new_to_them(store: &dyn SegmentStore) {
    let (segments, _) = service(store);
    let acme = org("acme");
    let first = segments.create(&acme, NewSegment::new("First")).unwrap();
    let second = segments.create(&acme, NewSegment::new("Second")).unwrap();
    segments.add_members(&acme, first.id, &["p-wrong"]).unwrap();
    segments
        .add_members(&acme, second.id, &["p-right"])
        .unwrap();
    segments
        .ingest_deaths(vec![report("p-wrong", "o-1", 0.6)])
        .unwrap();
    let cursor = segments
        .death_signals_since(&acme, second.id, DeathCursor::START, 100)
        .unwrap();
    assert!(cursor.records.is_empty());
    let mut corrected = report("p-right", "o-1", 0.9);
    corrected.first_observed_at = Some(start());
    let out = segments.ingest_deaths(vec![corrected]).unwrap();
    assert_eq!(
        (out.n_inserted, out.n_updated),
        (0, 1),
        "the same obituary, updated"
    );
    assert!(
        segments.death_signals(&acme, first.id).unwrap().is_empty(),
        "it left the first person's segment"
    );
    let new = segments
        .death_signals_since(&acme, second.id, cursor.next, 100)
        .unwrap();
    assert_eq!(
        new.records.len(),
        1,
        "the second person's monitor sees it as new"
    );
    assert_eq!(new.records[0].minerva_pid.as_str(), "p-right");
    assert_eq!(
        new.records[0].first_observed_at,
        Utc.with_ymd_and_hms(2023, 12, 20, 8, 30, 0).unwrap(),
        "the first observation time stays"
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
