//! The storage contract, [`SegmentStore`], and what a store takes and
//! returns.
//!
//! A host never needs this module: it calls [`Segments`](crate::Segments),
//! which validates input and calls the store. A backend implements
//! [`SegmentStore`] and runs the shared conformance suite
//! (`segments_engine::conformance`, feature `conformance`) to show it keeps the
//! contract.
//!
//! # What the service settles, once, for every store
//! - Validation: names, descriptions, sources, org ids and PIDs are checked
//!   before a store sees them; malformed PIDs are reported to the caller and
//!   never reach a store.
//! - PIDs: a store receives the well-formed PIDs of a call **once each, in
//!   the caller's order** (the first occurrence of each). Repeats within a
//!   call are counted as redundant by the service.
//! - Time: [`Stamp::at`] is truncated to microseconds.
//! - Limits and paging: batches are at most
//!   [`MAX_PIDS_PER_CALL`](crate::limits::MAX_PIDS_PER_CALL) PIDs, and every
//!   paged read takes one [`Page`] (where it starts, how many items) and
//!   asks for at least 1 and at most [`MAX_READ`] items (a page and
//!   one more); a store need not answer a `limit` of 0 in any particular
//!   way (the backends differ). The page API's arithmetic, and where a
//!   walk through pages resumes, are the service's.
//!
//! # What every store must do itself
//! Each point is pinned by the conformance function named after it.
//! - **Atomic writes.** A write applies completely or not at all; a call
//!   that the store refuses or that fails before it commits changes
//!   nothing, its ledger entries included (`failed_writes_record_nothing`).
//!   One failure leaves the outcome unknown: a write that fails with
//!   [`StorageFailure::Unavailable`](crate::StorageFailure::Unavailable)
//!   lost its connection, perhaps after the commit was sent, so it may have
//!   applied, whole. To retry such a write safely, make it with an
//!   idempotency key
//!   ([`Segments::with_idempotency_key`](crate::Segments::with_idempotency_key)):
//!   the retry then applies it once, or replays its first outcome.
//! - **Org scoping.** A segment of another org behaves exactly as one that
//!   does not exist (`another_orgs_segment_is_not_found`,
//!   `member_calls_on_another_orgs_segment_are_not_found`,
//!   `ledgers_are_per_org`).
//! - **Name uniqueness, decided by the storage.** Of two racing creates or
//!   renames to one name key in an org, exactly one wins, even in two
//!   processes; the other gets [`Error::DuplicateName`](crate::Error::DuplicateName)
//!   (`racing_creates_of_one_name_have_one_winner`,
//!   `names_are_unique_per_org_by_key`, `rename_keeps_names_unique`).
//! - **The new / re-added / redundant split.** A PID that never was a
//!   member joins with `first_added_at = last_added_at =` the change's
//!   time; one that was removed joins again with its original
//!   `first_added_at`; one that is a member is redundant, and only its
//!   `last_added_at` moves (`add_members_reports_the_documented_counts`,
//!   `removal_keeps_history`, `redundant_adds_move_last_added_at`).
//! - **An exact `current_size`,** changed in the transaction that changes
//!   the members (`racing_member_calls_keep_current_size_exact`).
//! - **A plain ledger with a monotone clock.** Every change writes its
//!   entries in its own transaction. Entries of an org are numbered 1, 2,
//!   3, … without gaps in commit order, and their times never go back: a
//!   change stamped earlier than the org's last entry is recorded at that
//!   entry's time, and the rows it writes carry the same time. Both come
//!   from one per-org head (last seq, last time) read and advanced inside
//!   the write (`ledger_times_never_go_backwards`,
//!   `the_change_feed_never_misses_or_repeats`,
//!   `racing_writers_number_the_ledger_in_commit_order`).
//! - **Entries in the caller's order.** A member call's entries follow the
//!   order of the PIDs it was given; redundant adds and removals of
//!   non-members record nothing
//!   (`member_entries_follow_the_callers_order`).
//! - **Set operations in the store** (`create_from`, `add_from`,
//!   `remove_from`): the store computes the expression's members itself,
//!   reading every source in the same transaction as it writes, and records
//!   each entry in PID order with its provenance (the sources and the org's
//!   last seq before the operation)
//!   (`set_operations_compute_unions_intersections_and_differences`,
//!   `set_operations_record_their_provenance`,
//!   `set_operations_on_missing_sources_change_nothing`).
//! - **Dry runs.** With [`Stamp::dry_run`], a member call or set operation
//!   returns exactly what it would return now and writes nothing: no row,
//!   no ledger entry, no size change (`a_dry_run_reports_and_writes_nothing`).
//! - **Idempotency keys.** A write whose [`Stamp::key`] claims a key
//!   records the key (per org), its fingerprint, the outcome its `outcome`
//!   encodes, the request id and the expiry, in the write's own
//!   transaction, so a write and its record commit together. If the org
//!   already has a record of the key that has not expired, the write
//!   applies nothing and fails with
//!   [`Error::IdempotencyInProgress`](crate::Error::IdempotencyInProgress)
//!   (the service then replays the record); of two racing writes with one
//!   key, exactly one applies. Keyed writes also forget a bounded number of
//!   the org's expired keys, so their storage stays bounded
//!   (`a_key_replays_its_first_outcome_and_applies_nothing_again`,
//!   `racing_calls_with_one_key_apply_once`,
//!   `expired_keys_are_forgotten`).
//! - **`members_seq`** is the seq of the last entry that changed who the
//!   segment's members are ([`MemberSlice::members_seq`];
//!   `members_seq_moves_with_every_membership_change`).
//! - **The death feed's order.** A new obituary goes to the end of the
//!   feed; a known one is updated in place, keeping its place and its first
//!   `first_observed_at`, unless it now names another person: then it
//!   moves to the end (`death_records_are_checked_stored_and_updated`,
//!   `a_record_that_names_another_person_is_new_to_them`).
//!
//! What each backend costs is written in its own docs and measured by the
//! bench report (`cargo run --release --example bench_report`), not
//! promised here.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::{
    Change, DeathCursor, DeathRecord, DeathSignals, MemberCursor, OrgId, PastMember, Pid, Result,
    Segment, SegmentCursor, SegmentId, SetExpr,
};

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod entries;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod member_calls;
pub(crate) mod memory;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod rules;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod segment_calls;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
mod types;

pub(crate) use types::WriteOutcome;
pub use types::{
    KeyClaim, KeyRecord, MAX_READ, MemberSlice, MemberStart, Page, SegmentChange, SegmentInsert,
    Stamp, StoreAddOutcome, StoreDeathsIngested, StoreRemoveOutcome, Written,
};

/// Where segments live. Implemented by [`MemoryStore`](crate::MemoryStore),
/// `SqliteStore` (feature `sqlite`) and `PostgresStore` (feature
/// `postgres`), and by `&T`, `Box<T>` and
/// `Arc<T>` of any store (so `Arc<dyn SegmentStore>` is a store too).
///
/// The [module docs](self) list what the service settles before a store is
/// called, and what a store must enforce itself. In short: every method is
/// scoped by an [`OrgId`]; every method that writes is atomic and records
/// its ledger entries in the same transaction; every paged read takes a
/// [`Page`], whose `limit` is at least 1 and at most [`MAX_READ`].
pub trait SegmentStore: Send + Sync + fmt::Debug {
    /// Inserts a new, empty segment and its
    /// [`ChangeKind::Created`](crate::ChangeKind::Created) entry, and returns
    /// it (`current_size` 0, `created_at == updated_at ==` the entry's
    /// time). Never overwrites.
    ///
    /// # Errors
    /// [`Error::DuplicateName`](crate::Error::DuplicateName) when a segment of
    /// `org` has the same name key (enforced by the storage itself, so of two
    /// racing inserts exactly one wins); `Storage` when the id is taken (in
    /// any org) or the backend fails.
    fn insert_segment(
        &self,
        org: &OrgId,
        segment: SegmentInsert,
        stamp: Stamp<'_>,
    ) -> Result<Segment>;

    /// Reads one segment, with its exact `current_size`.
    ///
    /// # Errors
    /// [`Error::NotFound`](crate::Error::NotFound) when `org` has no segment
    /// `id`; `Storage` on backend failure.
    fn segment(&self, org: &OrgId, id: SegmentId) -> Result<Segment>;

    /// Reads the segment of `org` whose name key is `key`, if any.
    ///
    /// # Errors
    /// `Storage` on backend failure.
    fn segment_by_key(&self, org: &OrgId, key: &str) -> Result<Option<Segment>>;

    /// Up to `page.limit` segments of `org` in creation order (`created_at`,
    /// then id), after `page.after` (from the first when `None`).
    ///
    /// # Errors
    /// `Storage` on backend failure.
    fn segments(&self, org: &OrgId, page: Page<Option<SegmentCursor>>) -> Result<Vec<Segment>>;

    /// Applies `change`, sets `updated_at` to the entry's time and records
    /// the change; returns the segment as it now is. A change to the value
    /// the segment already has ([`SegmentChange::is_no_op`]) writes and
    /// records nothing.
    ///
    /// # Errors
    /// `NotFound` when `org` has no segment `id`; `DuplicateName` when a
    /// rename takes the key of another segment of the org (a segment may take
    /// its own key, to change case or spacing); `Storage` on backend failure.
    fn update_segment(
        &self,
        org: &OrgId,
        id: SegmentId,
        change: &SegmentChange,
        stamp: Stamp<'_>,
    ) -> Result<Segment>;

    /// Deletes a segment and its memberships; its name is free again. Its
    /// ledger entries stay, and [`ChangeKind::Deleted`](crate::ChangeKind::Deleted)
    /// is added.
    ///
    /// # Errors
    /// `NotFound` when `org` has no segment `id`; `Storage` on backend failure.
    fn delete_segment(&self, org: &OrgId, id: SegmentId, stamp: Stamp<'_>) -> Result<()>;

    /// Makes each of `pids` an active member of the segment: new ones join,
    /// removed ones join again with their original `first_added_at`, active
    /// ones are redundant and their `last_added_at` moves (see the module
    /// docs). Records `MemberAdded` or `MemberReAdded` for each PID that
    /// joined, in the order of `pids`, and changes `current_size` in the
    /// same transaction.
    ///
    /// `pids` are well-formed and unique (the service guarantees it); a
    /// store may refuse a call that repeats a PID with `Storage`, but never
    /// applies part of one.
    ///
    /// # Errors
    /// `NotFound` when `org` has no segment `id` (then nothing changes);
    /// `Storage` on backend failure.
    fn add_members(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[Pid],
        stamp: Stamp<'_>,
    ) -> Result<StoreAddOutcome>;

    /// Ends the active membership of each of `pids` that has one, keeping its
    /// history (`first_added_at` comes back on a later add), and records
    /// `MemberRemoved` for each, in the order of `pids`. PIDs that are not
    /// active members are skipped. `current_size` changes in the same
    /// transaction. `pids` are well-formed and unique, as for
    /// [`add_members`](SegmentStore::add_members).
    ///
    /// # Errors
    /// `NotFound` when `org` has no segment `id`; `Storage` on backend failure.
    fn remove_members(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[Pid],
        stamp: Stamp<'_>,
    ) -> Result<StoreRemoveOutcome>;

    /// Creates a segment (as [`insert_segment`](SegmentStore::insert_segment))
    /// whose members are those of `expr` (as
    /// [`add_from`](SegmentStore::add_from) adds them), in one transaction,
    /// and returns it with its `current_size`.
    ///
    /// # Errors
    /// `DuplicateName`; `NotFound` naming the first source (in id order)
    /// that `org` has no live segment for; `Storage`. Nothing is created on
    /// error.
    fn create_from(
        &self,
        org: &OrgId,
        segment: SegmentInsert,
        expr: &SetExpr,
        stamp: Stamp<'_>,
    ) -> Result<Segment>;

    /// Makes every member of `expr` (the active members of its sources,
    /// combined as it says, all read in this transaction) an active member
    /// of segment `id`, as [`add_members`](SegmentStore::add_members)
    /// would with those PIDs in PID order, and records each entry with its
    /// [`Provenance`](crate::Provenance). `id` may be one of the sources.
    ///
    /// # Errors
    /// `NotFound` for `id`, then for the first missing source in id order;
    /// `Storage`. Nothing changes on error.
    fn add_from(
        &self,
        org: &OrgId,
        id: SegmentId,
        expr: &SetExpr,
        stamp: Stamp<'_>,
    ) -> Result<StoreAddOutcome>;

    /// Ends the active membership in segment `id` of every member of
    /// `expr`, as [`remove_members`](SegmentStore::remove_members) would
    /// with those PIDs in PID order, each entry with its provenance.
    ///
    /// # Errors
    /// As [`add_from`](SegmentStore::add_from).
    fn remove_from(
        &self,
        org: &OrgId,
        id: SegmentId,
        expr: &SetExpr,
        stamp: Stamp<'_>,
    ) -> Result<StoreRemoveOutcome>;

    /// Up to `page.limit` active members in list order (`first_added_at`,
    /// then PID) from `page.after`, with the segment's `current_size` and
    /// `members_seq`, all read in one snapshot.
    ///
    /// # Errors
    /// `NotFound` when `org` has no segment `id`; `Storage` on backend failure.
    fn members(
        &self,
        org: &OrgId,
        id: SegmentId,
        page: Page<MemberStart<'_>>,
    ) -> Result<MemberSlice>;

    /// Up to `page.limit` entries of the org's ledger with `seq` after
    /// `page.after`, in order. An org with no ledger yet has none.
    ///
    /// # Errors
    /// `Storage` on backend failure.
    fn changes_since(&self, org: &OrgId, page: Page<u64>) -> Result<Vec<Change>>;

    /// The seq of the org's last ledger entry; 0 when it has none. Read
    /// from the org's head, so it costs the same however long the ledger.
    ///
    /// # Errors
    /// `Storage` on backend failure.
    fn last_seq(&self, org: &OrgId) -> Result<u64>;

    /// Up to `page.limit` membership entries of `pid` in the org's ledger
    /// with `seq` after `page.after`, in order, deleted segments included.
    ///
    /// # Errors
    /// `Storage` on backend failure.
    fn timeline(&self, org: &OrgId, pid: &Pid, page: Page<u64>) -> Result<Vec<Change>>;

    /// The segment's size after every ledger entry recorded at or before
    /// `at`; 0 before its first member.
    ///
    /// # Errors
    /// `NotFound` when `org` has no (live) segment `id`; `Storage`.
    fn size_as_of(&self, org: &OrgId, id: SegmentId, at: DateTime<Utc>) -> Result<u64>;

    /// Up to `page.limit` of the segment's members as of `at` (after every
    /// ledger entry recorded at or before it), in list order
    /// (`first_added_at`, then PID), after `page.after` (from the first
    /// when `None`).
    ///
    /// # Errors
    /// `NotFound` when `org` has no (live) segment `id`; `Storage`.
    fn members_as_of(
        &self,
        org: &OrgId,
        id: SegmentId,
        at: DateTime<Utc>,
        page: Page<Option<&MemberCursor>>,
    ) -> Result<Vec<PastMember>>;

    /// The record of idempotency key `key` in `org`, if one was made and
    /// expires after `now`.
    ///
    /// # Errors
    /// `Storage` on backend failure.
    fn idempotency_record(
        &self,
        org: &OrgId,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<KeyRecord>>;

    /// Records `record` for `key` in `org`, unless a record of it that
    /// expires after `now` is there already; returns the record that
    /// stands (this one, or the one that was there). For the outcomes of
    /// keyed calls that wrote nothing (a duplicate name, say).
    ///
    /// # Errors
    /// `Storage` on backend failure.
    fn record_idempotency(
        &self,
        org: &OrgId,
        key: &str,
        record: KeyRecord,
        now: DateTime<Utc>,
    ) -> Result<KeyRecord>;

    /// Stores death records, keyed by `obituary_id`, in the order given (see
    /// "the death feed's order" in the module docs). Atomic.
    ///
    /// # Errors
    /// `Storage` on backend failure; then nothing is stored, unless the
    /// failure is `Unavailable`, whose outcome is unknown (see "atomic
    /// writes" in the module docs; storing the same records again is
    /// harmless: they are keyed by `obituary_id`).
    fn upsert_deaths(
        &self,
        records: &[DeathRecord],
        at: DateTime<Utc>,
    ) -> Result<StoreDeathsIngested>;

    /// Up to `page.limit` death records of the segment's active members
    /// that entered the death feed after `page.after`, in feed order, and
    /// where the next read starts ([`DeathSignals::next`]).
    ///
    /// # Errors
    /// `NotFound` when `org` has no segment `id`; `Storage`.
    fn death_signals(
        &self,
        org: &OrgId,
        id: SegmentId,
        page: Page<DeathCursor>,
    ) -> Result<DeathSignals>;
}

macro_rules! forward_store {
    ($($ptr:ty),*) => {$(
        impl<T: SegmentStore + ?Sized> SegmentStore for $ptr {
            fn insert_segment(&self, org: &OrgId, segment: SegmentInsert, stamp: Stamp<'_>) -> Result<Segment> {
                (**self).insert_segment(org, segment, stamp)
            }
            fn segment(&self, org: &OrgId, id: SegmentId) -> Result<Segment> {
                (**self).segment(org, id)
            }
            fn segment_by_key(&self, org: &OrgId, key: &str) -> Result<Option<Segment>> {
                (**self).segment_by_key(org, key)
            }
            fn segments(&self, org: &OrgId, page: Page<Option<SegmentCursor>>) -> Result<Vec<Segment>> {
                (**self).segments(org, page)
            }
            fn update_segment(&self, org: &OrgId, id: SegmentId, change: &SegmentChange, stamp: Stamp<'_>) -> Result<Segment> {
                (**self).update_segment(org, id, change, stamp)
            }
            fn delete_segment(&self, org: &OrgId, id: SegmentId, stamp: Stamp<'_>) -> Result<()> {
                (**self).delete_segment(org, id, stamp)
            }
            fn add_members(&self, org: &OrgId, id: SegmentId, pids: &[Pid], stamp: Stamp<'_>) -> Result<StoreAddOutcome> {
                (**self).add_members(org, id, pids, stamp)
            }
            fn remove_members(&self, org: &OrgId, id: SegmentId, pids: &[Pid], stamp: Stamp<'_>) -> Result<StoreRemoveOutcome> {
                (**self).remove_members(org, id, pids, stamp)
            }
            fn create_from(&self, org: &OrgId, segment: SegmentInsert, expr: &SetExpr, stamp: Stamp<'_>) -> Result<Segment> {
                (**self).create_from(org, segment, expr, stamp)
            }
            fn add_from(&self, org: &OrgId, id: SegmentId, expr: &SetExpr, stamp: Stamp<'_>) -> Result<StoreAddOutcome> {
                (**self).add_from(org, id, expr, stamp)
            }
            fn remove_from(&self, org: &OrgId, id: SegmentId, expr: &SetExpr, stamp: Stamp<'_>) -> Result<StoreRemoveOutcome> {
                (**self).remove_from(org, id, expr, stamp)
            }
            fn members(&self, org: &OrgId, id: SegmentId, page: Page<MemberStart<'_>>) -> Result<MemberSlice> {
                (**self).members(org, id, page)
            }
            fn changes_since(&self, org: &OrgId, page: Page<u64>) -> Result<Vec<Change>> {
                (**self).changes_since(org, page)
            }
            fn last_seq(&self, org: &OrgId) -> Result<u64> {
                (**self).last_seq(org)
            }
            fn timeline(&self, org: &OrgId, pid: &Pid, page: Page<u64>) -> Result<Vec<Change>> {
                (**self).timeline(org, pid, page)
            }
            fn size_as_of(&self, org: &OrgId, id: SegmentId, at: DateTime<Utc>) -> Result<u64> {
                (**self).size_as_of(org, id, at)
            }
            fn members_as_of(&self, org: &OrgId, id: SegmentId, at: DateTime<Utc>, page: Page<Option<&MemberCursor>>) -> Result<Vec<PastMember>> {
                (**self).members_as_of(org, id, at, page)
            }
            fn idempotency_record(&self, org: &OrgId, key: &str, now: DateTime<Utc>) -> Result<Option<KeyRecord>> {
                (**self).idempotency_record(org, key, now)
            }
            fn record_idempotency(&self, org: &OrgId, key: &str, record: KeyRecord, now: DateTime<Utc>) -> Result<KeyRecord> {
                (**self).record_idempotency(org, key, record, now)
            }
            fn upsert_deaths(&self, records: &[DeathRecord], at: DateTime<Utc>) -> Result<StoreDeathsIngested> {
                (**self).upsert_deaths(records, at)
            }
            fn death_signals(&self, org: &OrgId, id: SegmentId, page: Page<DeathCursor>) -> Result<DeathSignals> {
                (**self).death_signals(org, id, page)
            }
        }
    )*};
}

forward_store!(&T, Box<T>, Arc<T>);
