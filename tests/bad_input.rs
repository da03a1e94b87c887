//! Bad input at every public entry point: arbitrary strings (huge, Unicode,
//! control characters, SQL metacharacters) give only the documented errors,
//! never a panic, never a storage error, and change nothing.

use proptest::prelude::*;
use segments_engine::clock::{ManualClock, SequentialIds};
use segments_engine::{
    DeathCursor, DeathReport, Error, KnownPids, MemberCursor, MemoryStore, NewSegment, OrgId,
    PageOptions, Pid, SegmentCursor, SegmentId, SegmentName, SegmentStore, Segments,
    SignalMetadata, SqliteStore,
};

/// Strings that have broken parsers and databases before.
fn nasty() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,40}",
        ".{0,10}",
        "[ \\t\\n\\r\\x00-\\x1f\\x7f]{0,8}",
        Just("'; DROP TABLE segments; --".to_owned()),
        Just("\" OR 1=1 --".to_owned()),
        Just("%_%".to_owned()),
        Just("\u{0}".to_owned()),
        Just("a\u{0}b".to_owned()),
        Just("e\u{301}\u{302}\u{303}".to_owned()),
        Just("\u{202e}gnp.exe".to_owned()),
        Just("\u{feff}\u{200b}".to_owned()),
        Just("👩‍👩‍👧🎉".to_owned()),
        Just("p-".to_owned()),
        Just("p-ABC".to_owned()),
        Just(format!("p-{}", "a".repeat(65))),
        Just("x".repeat(5_000)),
        Just("é".repeat(256)),
        Just("550e8400-e29b-41d4-a716-446655440000".to_owned()),
        Just("1705314645123456.0190a1b2c3d47e5f8a9b0c1d2e3f4a5b".to_owned()),
        Just("-9223372036854775808.p-a".to_owned()),
        Just("99999999999999999999".to_owned()),
    ]
}

/// Only the errors bad input may produce.
fn documented(e: &Error) -> bool {
    matches!(
        e,
        Error::Invalid(_)
            | Error::DuplicateName { .. }
            | Error::NotFound { .. }
            | Error::TooLarge { .. }
    )
}

/// Everything an org can read, to check that a refused call changed nothing.
fn snapshot(s: &Segments<&dyn SegmentStore>, org: &OrgId) -> String {
    let list = s.list(org, PageOptions::new().limit(10_000)).unwrap();
    let mut out = format!("{list:?}");
    for seg in list.segments {
        out += &format!(
            "{:?}",
            s.members(org, seg.id, PageOptions::new().limit(10_000))
                .unwrap()
        );
        out += &format!("{:?}", s.death_signals(org, seg.id).unwrap());
    }
    out + &format!(
        "{:?}",
        s.changes_since(org, PageOptions::new().limit(10_000))
            .unwrap()
    )
}

fn check<T: std::fmt::Debug>(
    what: &str,
    result: segments_engine::Result<T>,
) -> Result<bool, TestCaseError> {
    match result {
        Ok(_) => Ok(true),
        Err(e) => {
            prop_assert!(documented(&e), "{what}: an undocumented error {e:?}");
            Ok(false)
        }
    }
}

fn run(store: &dyn SegmentStore, a: &str, b: &str, pids: &[String]) -> Result<(), TestCaseError> {
    // Parsers answer, and never panic.
    let _ = OrgId::new(a);
    let _ = SegmentName::parse(a);
    let _ = Pid::parse(a);
    let _ = SegmentId::parse(a);
    let _ = a.parse::<SegmentCursor>();
    let _ = a.parse::<MemberCursor>();
    let _ = a.parse::<DeathCursor>();
    let _ = KnownPids::new(pids);

    let segments = Segments::new(store)
        .with_clock(ManualClock::new(chrono::Utc::now()))
        .with_id_generator(SequentialIds::new());
    let org = OrgId::new("acme").unwrap();
    let s = segments
        .create(&org, NewSegment::new("Target").description("kept"))
        .unwrap();
    segments
        .add_members(&org, s.id, &["p-one", "p-two"])
        .unwrap();

    // Each call either succeeds or fails with a documented error; a failed
    // call leaves everything as it was.
    macro_rules! call {
        ($what:expr, $call:expr) => {{
            let before = snapshot(&segments, &org);
            if !check($what, $call)? {
                prop_assert_eq!(
                    snapshot(&segments, &org),
                    before,
                    "{}: a refused call changed something",
                    $what
                );
            }
        }};
    }
    call!(
        "create",
        segments.create(&org, NewSegment::new(a).description(b))
    );
    call!(
        "create with a source",
        segments.create(&org, NewSegment::new(b).source(a))
    );
    call!("find_by_name", segments.find_by_name(&org, a));
    call!("rename", segments.rename(&org, s.id, a));
    call!(
        "set_description",
        segments.set_description(&org, s.id, Some(a))
    );
    call!("add_members", segments.add_members(&org, s.id, pids));
    call!("remove_members", segments.remove_members(&org, s.id, pids));
    call!(
        "timeline",
        segments.timeline(&org, a, PageOptions::new().limit(10))
    );
    if let Ok(cursor) = a.parse::<MemberCursor>() {
        call!(
            "members after a cursor",
            segments.members(&org, s.id, PageOptions::new().after(cursor.clone()))
        );
        call!(
            "members_as_of after a cursor",
            segments.members_as_of(
                &org,
                s.id,
                chrono::Utc::now(),
                PageOptions::new().after(cursor.clone()).limit(10)
            )
        );
    }
    if let Ok(cursor) = a.parse::<SegmentCursor>() {
        call!(
            "list after a cursor",
            segments.list(&org, PageOptions::new().after(cursor))
        );
    }
    let report = DeathReport {
        minerva_pid: a.to_owned(),
        obituary_id: b.to_owned(),
        date_of_death: a.to_owned(),
        publication_last_update_date: Some(b.to_owned()),
        first_observed_at: None,
        signal_metadata: SignalMetadata {
            source: b.to_owned(),
            obituary_url: Some(a.to_owned()),
            publication_name: Some(b.to_owned()),
            confidence_score: a.len() as f64 / 10.0,
        },
    };
    let out = segments.ingest_deaths(vec![report]);
    prop_assert!(
        out.is_ok(),
        "a bad death report is rejected with a reason, not an error: {:?}",
        out
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn memory_store_takes_bad_input_cleanly(a in nasty(), b in nasty(), pids in prop::collection::vec(nasty(), 0..20)) {
        run(&MemoryStore::new(), &a, &b, &pids)?;
    }

    #[test]
    fn sqlite_store_takes_bad_input_cleanly(a in nasty(), b in nasty(), pids in prop::collection::vec(nasty(), 0..20)) {
        run(&SqliteStore::open_in_memory().unwrap(), &a, &b, &pids)?;
    }
}
