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
            creations_keep_their_place_in_the_feed,
            a_leap_second_is_kept_as_microseconds,
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

/// A person's whole timeline, read in pages of 3.
fn whole_timeline(
    segments: &Segments<&dyn SegmentStore>,
    org: &OrgId,
    pid: &str,
) -> Vec<crate::Change> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = segments
            .timeline(org, pid, after, 3)
            .expect("timeline succeeds");
        let last = page.changes.len() < 3;
        after = page.next;
        out.extend(page.changes);
        if last {
            return out;
        }
    }
}

fn pid(s: &str) -> Pid {
    Pid::parse(s).expect("test PIDs are well formed")
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

mod deaths;
mod history;
mod members;
mod reopen;
mod segments;

pub use deaths::*;
pub use history::*;
pub use members::*;
pub use reopen::*;
pub use segments::*;
