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
//!     segments_engine::conformance_tests!(my_crate::MyStore::new());
//! }
//! ```
//!
//! The expression is evaluated afresh for every test and must give a
//! [`Fixture`]: a store, or a `(guard, store)` pair whose guard (a temporary
//! directory, say) lives as long as the test.
//!
//! The functions use the service ([`Segments`]) with a [`ManualClock`] and
//! [`SequentialIds`], so what they expect is exact.
//!
//! # On a shared database
//! The suite may run on one database shared by every test, in parallel,
//! and again and again on what earlier runs left (a PostgreSQL backend
//! does). So each function owns what it touches: its org ids, obituary ids
//! and the PIDs of its death records (which every org shares) carry a
//! random token drawn when the function starts, its segment ids start at a
//! random point, and it assumes nothing about what else is stored: it
//! never expects an empty store, nor a death record at a given place in
//! the feed. This crate's own tests run the whole suite twice at once on
//! one store, then once more on what those runs left.

use std::sync::{Arc, Barrier};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use crate::clock::{ManualClock, SequentialIds};
use crate::limits::{
    MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, MAX_PAGE_LIMIT, MAX_PIDS_PER_CALL, MEMBERS_PAGE_SIZE,
};
use crate::store::MemberStart;
use crate::{
    AddOutcome, ChangeKind, DeathReport, Error, Field, ImportOutcome, KnownPids, Member,
    NewSegment, OrgId, PageOptions, Pid, RemoveOutcome, Rule, Segment, SegmentId, SegmentStore,
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
///
/// Every function of the suite that takes a store is listed here (a unit
/// test of this crate checks it);
/// [`reopened_store_keeps_everything`](crate::conformance::reopened_store_keeps_everything)
/// takes an opener instead and is called by each durable backend itself.
/// The `@cases` form is for this crate's own tests.
#[macro_export]
macro_rules! conformance_tests {
    ($fixture:expr) => {
        $crate::conformance_tests! { @cases [$crate::__conformance_cases] ($fixture) }
    };
    (@cases [$($then:tt)*] $args:tt) => {
        $($then)*! { $args
            // segments.rs
            create_returns_an_empty_segment,
            create_truncates_timestamps_to_microseconds,
            create_keeps_the_source_label,
            another_orgs_segment_is_not_found,
            unknown_ids_are_not_found,
            invalid_names_are_refused_and_change_nothing,
            invalid_descriptions_and_sources_are_refused,
            limits_are_inclusive,
            set_description_sets_and_clears,
            text_round_trips_exactly,
            // names.rs
            names_are_unique_per_org_by_key,
            the_same_name_may_exist_in_two_orgs,
            racing_creates_of_one_name_have_one_winner,
            find_or_create_finds_by_key_or_creates,
            racing_find_or_creates_agree_on_one_segment,
            find_by_name_compares_keys,
            rename_keeps_names_unique,
            delete_frees_the_name,
            // listing.rs
            list_pages_in_creation_order,
            list_order_is_created_at_then_id_not_insertion,
            segment_ids_are_unique_across_orgs,
            list_cursor_survives_deletion,
            list_limit_is_checked,
            // members.rs
            add_members_reports_the_documented_counts,
            redundant_adds_move_last_added_at,
            removal_keeps_history,
            member_calls_on_another_orgs_segment_are_not_found,
            deleting_a_segment_takes_its_members,
            racing_member_calls_keep_current_size_exact,
            reads_from_past_the_last_member_are_empty_and_exact,
            // pid_input.rs
            malformed_pids_never_fail_the_call,
            too_many_pids_are_refused_whole,
            person_directory_rejects_unknown_pids,
            empty_member_calls_change_nothing,
            repeats_within_a_call_count_once,
            a_pid_given_twice_to_a_store_is_refused_or_counted_once,
            // imports.rs
            an_import_counts_every_pid_once,
            an_empty_or_misdirected_import_changes_nothing,
            a_keyed_import_resumes_where_it_stopped,
            // pages.rs
            member_order_is_first_added_then_pid,
            members_page_follows_the_documented_rules,
            walking_pages_in_order_matches_counting_from_the_start,
            member_cursor_walks_every_member_once,
            // ledger.rs
            every_change_is_in_the_ledger,
            failed_writes_record_nothing,
            ledgers_are_per_org,
            ledger_times_never_go_backwards,
            no_op_changes_record_nothing,
            member_entries_follow_the_callers_order,
            members_seq_moves_with_every_membership_change,
            // ledger_races.rs
            racing_writers_number_the_ledger_in_commit_order,
            // history.rs
            the_change_feed_never_misses_or_repeats,
            a_cursor_past_the_ledger_is_refused,
            last_seq_is_the_last_entry_of_the_org,
            creations_keep_their_place_in_the_feed,
            the_ledger_survives_removal_and_deletion,
            timeline_pages_read_one_timeline,
            size_and_members_as_of_past_times,
            a_leap_second_is_kept_as_microseconds,
            // deaths.rs
            death_records_are_checked_stored_and_updated,
            death_signals_show_current_members_only,
            death_signals_since_returns_only_new_records,
            a_quiet_poll_moves_past_other_peoples_records,
            set_operations_compute_unions_intersections_and_differences,
            set_operations_record_their_provenance,
            set_operations_on_missing_sources_change_nothing,
            a_dry_run_reports_and_writes_nothing,
            a_record_that_names_another_person_is_new_to_them,
            // keys.rs
            a_key_replays_its_first_outcome_and_applies_nothing_again,
            racing_calls_with_one_key_apply_once,
            expired_keys_are_forgotten,
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

/// What one run of one conformance function owns: a random token, put
/// into every org id, obituary id and death-record PID the function uses,
/// and a random point for its segment ids to start after.
///
/// Within a function, namespaced names keep the order of the names they
/// are made from: every PID gets the same token right after its `p-`.
#[derive(Debug)]
struct Namespace {
    /// Lowercase base 36, so that it fits in a PID.
    token: String,
    /// Where the function's [`SequentialIds`] start: below 2^56, so that
    /// they never wrap around (which would break their order).
    ids_after: u64,
}

impl Namespace {
    /// A namespace no other run, here or in another process, has.
    fn new() -> Self {
        use std::hash::{DefaultHasher, Hash, Hasher};
        // Unique within the process (v7 ids are ordered) and random across
        // processes.
        let bits = uuid::Uuid::now_v7().as_u128();
        let mut token = String::new();
        let mut rest = bits;
        while rest > 0 {
            let digit = u32::try_from(rest % 36).expect("a digit is below 36");
            token.insert(0, char::from_digit(digit, 36).expect("a base 36 digit"));
            rest /= 36;
        }
        // Neighbouring tokens differ in a few bits only: hash them, so
        // that their ids start far apart.
        let mut hasher = DefaultHasher::new();
        bits.hash(&mut hasher);
        Self {
            token,
            ids_after: hasher.finish() >> 8,
        }
    }

    /// `name.<token>`: an org id of this run.
    fn org(&self, name: &str) -> OrgId {
        OrgId::new(format!("{name}.{}", self.token)).expect("namespaced org ids are valid")
    }

    /// `name.<token>`: an obituary id of this run.
    fn obit(&self, name: &str) -> String {
        format!("{name}.{}", self.token)
    }

    /// `p-<token><rest>` for `name` = `p-<rest>`: a PID of this run, in the
    /// same order relative to the run's other PIDs as `name` to theirs.
    fn pid(&self, name: &str) -> String {
        let rest = name
            .strip_prefix("p-")
            .expect("a namespaced PID is made from a PID");
        let pid = format!("p-{}{rest}", self.token);
        assert!(
            Pid::parse(&pid).is_ok(),
            "{name:?} makes the well-formed PID {pid:?}"
        );
        pid
    }

    /// [`Namespace::pid`] of each name.
    fn pids<const N: usize>(&self, names: [&str; N]) -> [String; N] {
        names.map(|name| self.pid(name))
    }

    /// A fresh id generator of this run: each one makes the same ids.
    fn ids(&self) -> SequentialIds {
        SequentialIds::starting_after(self.ids_after)
    }

    /// The service the suite calls: a [`ManualClock`] at [`start`], and
    /// this run's ids.
    fn service<'s>(
        &self,
        store: &'s dyn SegmentStore,
    ) -> (Segments<&'s dyn SegmentStore>, ManualClock) {
        let clock = ManualClock::new(start());
        let segments = Segments::new(store)
            .with_clock(clock.clone())
            .with_id_generator(self.ids());
        (segments, clock)
    }
}

fn all(segments: &Segments<&dyn SegmentStore>, org: &OrgId) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut options = PageOptions::new().limit(MAX_PAGE_LIMIT);
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
    let mut options = PageOptions::new().limit(MAX_PAGE_LIMIT);
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
            .changes_since(org, PageOptions::new().after(after).limit(7))
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
            .timeline(org, pid, PageOptions::new().after(after).limit(3))
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
mod imports;
mod keys;
mod ledger;
mod ledger_races;
mod listing;
mod members;
mod names;
mod pages;
mod pid_input;
mod reopen;
mod segments;
mod sets;

pub use deaths::*;
pub use history::*;
pub use imports::*;
pub use keys::*;
pub use ledger::*;
pub use ledger_races::*;
pub use listing::*;
pub use members::*;
pub use names::*;
pub use pages::*;
pub use pid_input::*;
pub use reopen::*;
pub use segments::*;
pub use sets::*;

#[cfg(test)]
mod tests;
