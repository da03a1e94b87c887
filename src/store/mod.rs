//! The storage trait and its backends.
//!
//! [`SegmentStore`] is the contract every backend meets. Its methods are few
//! and each is atomic; validation, time and ids are the service's job
//! ([`Segments`](crate::Segments)), so a store only ever sees valid input.
//! Behaviour is pinned by the shared conformance suite
//! (`segments::conformance`, feature `conformance`), which every backend of
//! this crate runs in every configuration.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::{
    Change, DeathCursor, DeathRecord, Member, MemberCursor, MembersAdded, MembersRemoved, OrgId,
    PastMember, Pid, Result, Segment, SegmentChange, SegmentCursor, SegmentId, SegmentInsert,
    Stamp,
};

pub(crate) mod memory;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

/// Where segments live. Implemented by [`MemoryStore`](crate::MemoryStore)
/// and `SqliteStore` (feature `sqlite`), and by `&T`, `Box<T>` and
/// `Arc<T>` of any store (so `Arc<dyn SegmentStore>` is a store too).
///
/// Every method is scoped by an [`OrgId`]: a segment of another org behaves
/// exactly as one that does not exist. Every method that writes is atomic:
/// it applies completely or not at all, a failed call changes nothing, and
/// the ledger entries it writes (see [`Change`]) are part of the same
/// transaction. Times in a [`Stamp`] are truncated to microseconds.
pub trait SegmentStore: Send + Sync + fmt::Debug {
    /// Inserts a new, empty segment created at `stamp.at` and returns it
    /// (`current_size` 0, `updated_at == created_at`). Never overwrites.
    /// Records [`ChangeKind::Created`](crate::ChangeKind::Created).
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

    /// Up to `limit` segments of `org` in creation order (`created_at`, then
    /// id), starting after `after`. Costs the same at any depth.
    ///
    /// # Errors
    /// `Storage` on backend failure.
    fn segments(
        &self,
        org: &OrgId,
        after: Option<SegmentCursor>,
        limit: usize,
    ) -> Result<Vec<Segment>>;

    /// Applies `change`, sets `updated_at` to `stamp.at` and records the
    /// change; returns the segment as it now is. A change to the value the
    /// segment already has ([`SegmentChange::is_no_op`]) writes and records
    /// nothing.
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

    /// Makes each of `pids` an active member of the segment, at `stamp.at`.
    ///
    /// A PID that never was a member joins with `first_added_at` and
    /// `last_added_at` set to the stamp's time; one that was removed joins
    /// again with its original `first_added_at`; one that is a member already
    /// is counted redundant and its `last_added_at` moves (and nothing is
    /// recorded for it). `current_size` changes in the same transaction.
    /// `pids` are well-formed and may repeat: a repeat is redundant, since
    /// its first occurrence made it a member. Ledger entries are written in
    /// the order `pids` gives.
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
    ) -> Result<MembersAdded>;

    /// Ends the active membership of each of `pids` that has one, keeping its
    /// history (`first_added_at` comes back on a later add). PIDs that are
    /// not active members are skipped. `current_size` changes in the same
    /// transaction.
    ///
    /// # Errors
    /// `NotFound` when `org` has no segment `id`; `Storage` on backend failure.
    fn remove_members(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[Pid],
        stamp: Stamp<'_>,
    ) -> Result<MembersRemoved>;

    /// Up to `limit` active members in order (`first_added_at`, then PID),
    /// starting after `after`. The cost does not depend on the depth.
    ///
    /// # Errors
    /// `NotFound` when `org` has no segment `id`; `Storage` on backend failure.
    fn members(
        &self,
        org: &OrgId,
        id: SegmentId,
        after: Option<&MemberCursor>,
        limit: usize,
    ) -> Result<Vec<Member>>;

    /// The active members at positions `offset..offset + limit` in order, and
    /// the segment's `current_size`, read at one instant (for the documented
    /// page API).
    ///
    /// # Errors
    /// `NotFound` when `org` has no segment `id`; `Storage` on backend failure.
    fn members_at_offset(
        &self,
        org: &OrgId,
        id: SegmentId,
        offset: u64,
        limit: usize,
    ) -> Result<(Vec<Member>, u64)>;

    /// Up to `limit` entries of the org's ledger with `seq` after `after`, in
    /// order. Costs the same however long the ledger is.
    ///
    /// # Errors
    /// `Storage` on backend failure.
    fn changes_since(&self, org: &OrgId, after: u64, limit: usize) -> Result<Vec<Change>>;

    /// Every membership entry of `pid` in the org's ledger, in order, deleted
    /// segments included.
    ///
    /// # Errors
    /// `Storage` on backend failure.
    fn timeline(&self, org: &OrgId, pid: &Pid) -> Result<Vec<Change>>;

    /// The segment's size after every ledger entry recorded at or before
    /// `at`; 0 before its first member. Does not scan the ledger.
    ///
    /// # Errors
    /// `NotFound` when `org` has no (live) segment `id`; `Storage`.
    fn size_as_of(&self, org: &OrgId, id: SegmentId, at: DateTime<Utc>) -> Result<u64>;

    /// Up to `limit` of the segment's members as of `at` (after every ledger
    /// entry recorded at or before it), in PID order after `after`.
    ///
    /// # Errors
    /// `NotFound` when `org` has no (live) segment `id`; `Storage`.
    fn members_as_of(
        &self,
        org: &OrgId,
        id: SegmentId,
        at: DateTime<Utc>,
        after: Option<&Pid>,
        limit: usize,
    ) -> Result<Vec<PastMember>>;

    /// Stores death records, keyed by `obituary_id`: a new one is inserted
    /// at the end of the death feed; a known one is updated in place, keeping
    /// its `first_observed_at` and its feed position. Atomic. Returns
    /// `(inserted, updated)`.
    ///
    /// # Errors
    /// `Storage` on backend failure; then nothing is stored.
    fn upsert_deaths(&self, records: &[DeathRecord], at: DateTime<Utc>) -> Result<(u64, u64)>;

    /// Up to `limit` death records of the segment's active members that
    /// entered the death feed after `after`, in feed order, each with its
    /// feed position.
    ///
    /// # Errors
    /// `NotFound` when `org` has no segment `id`; `Storage`.
    fn death_signals(
        &self,
        org: &OrgId,
        id: SegmentId,
        after: DeathCursor,
        limit: usize,
    ) -> Result<Vec<(DeathCursor, DeathRecord)>>;
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
            fn segments(&self, org: &OrgId, after: Option<SegmentCursor>, limit: usize) -> Result<Vec<Segment>> {
                (**self).segments(org, after, limit)
            }
            fn update_segment(&self, org: &OrgId, id: SegmentId, change: &SegmentChange, stamp: Stamp<'_>) -> Result<Segment> {
                (**self).update_segment(org, id, change, stamp)
            }
            fn delete_segment(&self, org: &OrgId, id: SegmentId, stamp: Stamp<'_>) -> Result<()> {
                (**self).delete_segment(org, id, stamp)
            }
            fn add_members(&self, org: &OrgId, id: SegmentId, pids: &[Pid], stamp: Stamp<'_>) -> Result<MembersAdded> {
                (**self).add_members(org, id, pids, stamp)
            }
            fn remove_members(&self, org: &OrgId, id: SegmentId, pids: &[Pid], stamp: Stamp<'_>) -> Result<MembersRemoved> {
                (**self).remove_members(org, id, pids, stamp)
            }
            fn members(&self, org: &OrgId, id: SegmentId, after: Option<&MemberCursor>, limit: usize) -> Result<Vec<Member>> {
                (**self).members(org, id, after, limit)
            }
            fn members_at_offset(&self, org: &OrgId, id: SegmentId, offset: u64, limit: usize) -> Result<(Vec<Member>, u64)> {
                (**self).members_at_offset(org, id, offset, limit)
            }
            fn changes_since(&self, org: &OrgId, after: u64, limit: usize) -> Result<Vec<Change>> {
                (**self).changes_since(org, after, limit)
            }
            fn timeline(&self, org: &OrgId, pid: &Pid) -> Result<Vec<Change>> {
                (**self).timeline(org, pid)
            }
            fn size_as_of(&self, org: &OrgId, id: SegmentId, at: DateTime<Utc>) -> Result<u64> {
                (**self).size_as_of(org, id, at)
            }
            fn members_as_of(&self, org: &OrgId, id: SegmentId, at: DateTime<Utc>, after: Option<&Pid>, limit: usize) -> Result<Vec<PastMember>> {
                (**self).members_as_of(org, id, at, after, limit)
            }
            fn upsert_deaths(&self, records: &[DeathRecord], at: DateTime<Utc>) -> Result<(u64, u64)> {
                (**self).upsert_deaths(records, at)
            }
            fn death_signals(&self, org: &OrgId, id: SegmentId, after: DeathCursor, limit: usize) -> Result<Vec<(DeathCursor, DeathRecord)>> {
                (**self).death_signals(org, id, after, limit)
            }
        }
    )*};
}

forward_store!(&T, Box<T>, Arc<T>);
