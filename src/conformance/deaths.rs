//! Death signals: ingestion, per-segment answers, the monitoring feed.

use super::*;

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
