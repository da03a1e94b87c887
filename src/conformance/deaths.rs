//! Death signals: ingestion, per-segment answers, the monitoring feed.
//!
//! Death records are shared by every org and keyed by obituary id, and a
//! segment sees the records of its members' PIDs: so every obituary id and
//! every PID here comes from the function's [`Namespace`], and no function
//! expects a record at a given place in the feed.

use super::*;

/// The obituary ids of `records`, in order.
fn obituaries(records: &[crate::DeathRecord]) -> Vec<&str> {
    records.iter().map(|r| r.obituary_id.as_str()).collect()
}

/// Death reports are checked one by one: bad ones come back with their
/// position and reason, the rest are stored. Reporting an obituary again
/// updates it but keeps its first `first_observed_at`.
pub fn death_records_are_checked_stored_and_updated(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, clock) = ns.service(store);
    let acme = ns.org("acme");
    let [a, x] = ns.pids(["p-a1b2c3d4e5f6", "p-x9y8z7w6v5u4"]);
    let s = segments.create(&acme, NewSegment::new("Watched")).unwrap();
    segments.add_members(&acme, s.id, &[&a, &x]).unwrap();
    let mut bad_date = report(&x, &ns.obit("obit-bad-date"), 0.5);
    bad_date.date_of_death = "2023-02-30".into();
    let out = segments
        .ingest_deaths(vec![
            report(&a, &ns.obit("obit-xyz789"), 0.95),
            report("P-BAD", &ns.obit("obit-bad-pid"), 0.5),
            bad_date,
            report(&x, &ns.obit("obit-too-sure"), 1.5),
            report(&x, &ns.obit("obit-second"), 0.6),
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
            (1, ns.obit("obit-bad-pid").as_str(), Field::MinervaPid),
            (2, ns.obit("obit-bad-date").as_str(), Field::DateOfDeath),
            (3, ns.obit("obit-too-sure").as_str(), Field::ConfidenceScore)
        ],
        "each bad record with its position and the field at fault"
    );
    clock.advance(TimeDelta::days(3));
    let mut again = report(&a, &ns.obit("obit-xyz789"), 0.99);
    again.first_observed_at = Some(start());
    again.signal_metadata.publication_name = Some("Daily Paper".into());
    let out = segments.ingest_deaths(vec![again]).unwrap();
    assert_eq!(
        (out.n_inserted, out.n_updated),
        (0, 1),
        "a known obituary is updated"
    );
    let signals = segments.death_signals(&acme, s.id).unwrap();
    assert_eq!(
        obituaries(&signals),
        [ns.obit("obit-xyz789"), ns.obit("obit-second")],
        "an updated record keeps its place in the feed"
    );
    let first = &signals[0];
    assert_eq!(
        first.signal_metadata.confidence_score, 0.99,
        "the update is stored"
    );
    assert_eq!(
        first.signal_metadata.publication_name.as_deref(),
        Some("Daily Paper"),
        "every field of the update is stored"
    );
    assert_eq!(
        first.first_observed_at,
        Utc.with_ymd_and_hms(2023, 12, 20, 8, 30, 0).unwrap(),
        "the first observation time is kept"
    );
    assert_eq!(
        first.date_of_death.to_string(),
        "2023-12-15",
        "the date of death round-trips"
    );
    let unobserved = DeathReport {
        first_observed_at: None,
        ..report(&a, &ns.obit("obit-now"), 0.7)
    };
    segments.ingest_deaths(vec![unobserved]).unwrap();
    let now = segments
        .death_signals(&acme, s.id)
        .unwrap()
        .into_iter()
        .find(|r| r.obituary_id == ns.obit("obit-now"))
        .expect("the new record is a signal of the segment");
    assert_eq!(
        now.first_observed_at,
        start_micros() + TimeDelta::days(3),
        "observed at ingestion when not said"
    );
}

/// The documented answer: death records of the segment's current members
/// only (not of removed members, not of strangers), none for another org.
pub fn death_signals_show_current_members_only(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let [member, leaver, stranger] = ns.pids(["p-member", "p-leaver", "p-stranger"]);
    let s = segments.create(&acme, NewSegment::new("Cohort")).unwrap();
    segments
        .add_members(&acme, s.id, &[&member, &leaver])
        .unwrap();
    segments.remove_members(&acme, s.id, &[&leaver]).unwrap();
    segments
        .ingest_deaths(vec![
            report(&member, &ns.obit("o-1"), 0.9),
            report(&leaver, &ns.obit("o-2"), 0.9),
            report(&stranger, &ns.obit("o-3"), 0.9),
            report(&member, &ns.obit("o-4"), 0.8),
        ])
        .unwrap();
    assert_eq!(
        obituaries(&segments.death_signals(&acme, s.id).unwrap()),
        [ns.obit("o-1"), ns.obit("o-4")],
        "current members' records, in feed order"
    );
    let empty = segments.create(&acme, NewSegment::new("Empty")).unwrap();
    assert!(
        segments.death_signals(&acme, empty.id).unwrap().is_empty(),
        "an empty array when none"
    );
    assert_not_found(
        segments.death_signals(&ns.org("other"), s.id),
        s.id,
        "another org's segment",
    );
    segments.add_members(&acme, s.id, &[&leaver]).unwrap();
    assert_eq!(
        obituaries(&segments.death_signals(&acme, s.id).unwrap()),
        [ns.obit("o-1"), ns.obit("o-2"), ns.obit("o-4")],
        "a member who returns is watched again, in feed order"
    );
}

/// For monitoring: after a cursor, only records new to the feed come; an
/// updated record does not come again; an empty answer never moves the
/// cursor back.
pub fn death_signals_since_returns_only_new_records(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let [a, b, c, z] = ns.pids(["p-a", "p-b", "p-c", "p-z"]);
    let s = segments
        .create(&acme, NewSegment::new("Monitored"))
        .unwrap();
    segments.add_members(&acme, s.id, &[&a, &b, &c]).unwrap();
    segments
        .ingest_deaths(vec![
            report(&a, &ns.obit("o-a"), 0.9),
            report(&z, &ns.obit("o-z"), 0.9),
        ])
        .unwrap();
    let first = segments
        .death_signals_since(&acme, s.id, PageOptions::new().limit(100))
        .unwrap();
    assert_eq!(
        obituaries(&first.records),
        [ns.obit("o-a")],
        "the member's record, not the stranger's"
    );
    let quiet = segments
        .death_signals_since(&acme, s.id, PageOptions::new().after(first.next).limit(100))
        .unwrap();
    assert!(quiet.records.is_empty(), "nothing new");
    assert!(
        quiet.next >= first.next,
        "an empty answer never moves the cursor back: {:?} after {:?}",
        quiet.next,
        first.next
    );
    segments
        .ingest_deaths(vec![
            report(&a, &ns.obit("o-a"), 0.5),
            report(&b, &ns.obit("o-b"), 0.9),
            report(&c, &ns.obit("o-c"), 0.9),
        ])
        .unwrap();
    let page = segments
        .death_signals_since(&acme, s.id, PageOptions::new().after(quiet.next).limit(1))
        .unwrap();
    assert_eq!(
        obituaries(&page.records),
        [ns.obit("o-b")],
        "new records only, a page of 1"
    );
    let rest = segments
        .death_signals_since(&acme, s.id, PageOptions::new().after(page.next).limit(100))
        .unwrap();
    assert_eq!(
        obituaries(&rest.records),
        [ns.obit("o-c")],
        "the update of o-a did not come again"
    );
    assert_invalid(
        segments.death_signals_since(&acme, s.id, PageOptions::new().limit(0)),
        Field::Limit,
        "limit 0",
    );
}

/// A poll that finds nothing for the segment still moves its cursor past
/// the records of other people it read, so that a segment whose members
/// rarely die does not read the same strangers' records at every poll (a
/// poll costs what entered the feed since the last one, not the whole
/// feed); and a poll from that cursor returns only what came later. A full
/// page ends its cursor just after its last record, so nothing is skipped.
pub fn a_quiet_poll_moves_past_other_peoples_records(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let [member, s1, s2, s3, s4] = ns.pids(["p-member", "p-s1", "p-s2", "p-s3", "p-s4"]);
    let s = segments.create(&acme, NewSegment::new("Rarely")).unwrap();
    segments.add_members(&acme, s.id, &[&member]).unwrap();
    let start = segments
        .death_signals_since(&acme, s.id, PageOptions::new().limit(100))
        .unwrap();
    assert!(start.records.is_empty(), "no record of the member yet");
    segments
        .ingest_deaths(vec![
            report(&s1, &ns.obit("o-s1"), 0.9),
            report(&s2, &ns.obit("o-s2"), 0.9),
            report(&s3, &ns.obit("o-s3"), 0.9),
        ])
        .unwrap();
    let quiet = segments
        .death_signals_since(&acme, s.id, PageOptions::new().after(start.next).limit(100))
        .unwrap();
    assert!(
        quiet.records.is_empty(),
        "strangers' records are not the segment's"
    );
    assert!(
        quiet.next.get() >= start.next.get() + 3,
        "a quiet poll moves past the three strangers' records that entered \
         the feed after its cursor: {:?} after {:?}",
        quiet.next,
        start.next
    );
    segments
        .ingest_deaths(vec![
            report(&member, &ns.obit("o-m1"), 0.9),
            report(&s4, &ns.obit("o-s4"), 0.9),
            report(&member, &ns.obit("o-m2"), 0.8),
        ])
        .unwrap();
    let full = segments
        .death_signals_since(&acme, s.id, PageOptions::new().after(quiet.next).limit(1))
        .unwrap();
    assert_eq!(
        obituaries(&full.records),
        [ns.obit("o-m1")],
        "the member's first later record, a page of 1"
    );
    assert!(
        full.next > quiet.next,
        "a page with a record moves the cursor: {:?} after {:?}",
        full.next,
        quiet.next
    );
    let rest = segments
        .death_signals_since(&acme, s.id, PageOptions::new().after(full.next).limit(100))
        .unwrap();
    assert_eq!(
        obituaries(&rest.records),
        [ns.obit("o-m2")],
        "a full page's cursor skips nothing: the next poll returns what followed it"
    );
    let after = segments
        .death_signals_since(&acme, s.id, PageOptions::new().after(rest.next).limit(100))
        .unwrap();
    assert!(
        after.records.is_empty(),
        "a poll from the last cursor returns only later records: none came"
    );
    assert_eq!(
        obituaries(
            &segments
                .death_signals_since(&acme, s.id, PageOptions::new().after(start.next).limit(100))
                .unwrap()
                .records
        ),
        [ns.obit("o-m1"), ns.obit("o-m2")],
        "from the first cursor, both of the member's records, in feed order"
    );
}

/// An obituary re-reported for another person (a corrected match) leaves
/// the first person's segments, and is new to the second person's: their
/// monitors see it after their cursor. Its first observation time stays.
pub fn a_record_that_names_another_person_is_new_to_them(store: &dyn SegmentStore) {
    let ns = Namespace::new();
    let (segments, _) = ns.service(store);
    let acme = ns.org("acme");
    let [wrong, right] = ns.pids(["p-wrong", "p-right"]);
    let first = segments.create(&acme, NewSegment::new("First")).unwrap();
    let second = segments.create(&acme, NewSegment::new("Second")).unwrap();
    segments.add_members(&acme, first.id, &[&wrong]).unwrap();
    segments.add_members(&acme, second.id, &[&right]).unwrap();
    segments
        .ingest_deaths(vec![report(&wrong, &ns.obit("o-1"), 0.6)])
        .unwrap();
    let cursor = segments
        .death_signals_since(&acme, second.id, PageOptions::new().limit(100))
        .unwrap();
    assert!(
        cursor.records.is_empty(),
        "the record is not the second person's yet"
    );
    let mut corrected = report(&right, &ns.obit("o-1"), 0.9);
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
        .death_signals_since(
            &acme,
            second.id,
            PageOptions::new().after(cursor.next).limit(100),
        )
        .unwrap();
    assert_eq!(
        obituaries(&new.records),
        [ns.obit("o-1")],
        "the second person's monitor sees it as new"
    );
    assert_eq!(
        new.records[0].minerva_pid.as_str(),
        right,
        "it names the second person now"
    );
    assert_eq!(
        new.records[0].first_observed_at,
        Utc.with_ymd_and_hms(2023, 12, 20, 8, 30, 0).unwrap(),
        "the first observation time stays"
    );
}
