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
    Member, MemberCursor, MembersAdded, MembersRemoved, OrgId, Pid, Result, Segment, SegmentChange,
    SegmentCursor, SegmentId, SegmentInsert,
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
/// it applies completely or not at all, and a failed call changes nothing.
pub trait SegmentStore: Send + Sync + fmt::Debug {
    /// Inserts a new, empty segment and returns it (`current_size` 0,
    /// `updated_at == created_at`). Never overwrites.
    ///
    /// # Errors
    /// [`Error::DuplicateName`](crate::Error::DuplicateName) when a segment of
    /// `org` has the same name key (enforced by the storage itself, so of two
    /// racing inserts exactly one wins); `Storage` on backend failure.
    fn insert_segment(&self, org: &OrgId, segment: SegmentInsert) -> Result<Segment>;

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

    /// Applies `change` and sets `updated_at` to `at`; returns the segment as
    /// it now is. Atomic.
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
        at: DateTime<Utc>,
    ) -> Result<Segment>;

    /// Deletes a segment and everything it holds; its name is free again.
    /// Atomic.
    ///
    /// # Errors
    /// `NotFound` when `org` has no segment `id`; `Storage` on backend failure.
    fn delete_segment(&self, org: &OrgId, id: SegmentId) -> Result<()>;

    /// Makes each of `pids` an active member of the segment, at `at`.
    ///
    /// A PID that never was a member joins with `first_added_at` and
    /// `last_added_at` set to `at`; one that was removed joins again with its
    /// original `first_added_at`; one that is a member already is counted
    /// redundant and its `last_added_at` moves to `at`. `current_size`
    /// changes in the same transaction. Atomic: all of `pids` or none.
    /// `pids` are well-formed and may repeat: a repeat is redundant, since
    /// its first occurrence made it a member.
    ///
    /// # Errors
    /// `NotFound` when `org` has no segment `id` (then nothing changes);
    /// `Storage` on backend failure.
    fn add_members(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[Pid],
        at: DateTime<Utc>,
    ) -> Result<MembersAdded>;

    /// Ends the active membership of each of `pids` that has one, keeping its
    /// history (`first_added_at` comes back on a later add). PIDs that are
    /// not active members are skipped. `current_size` changes in the same
    /// transaction. Atomic.
    ///
    /// # Errors
    /// `NotFound` when `org` has no segment `id`; `Storage` on backend failure.
    fn remove_members(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[Pid],
        at: DateTime<Utc>,
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
}

macro_rules! forward_store {
    ($($ptr:ty),*) => {$(
        impl<T: SegmentStore + ?Sized> SegmentStore for $ptr {
            fn insert_segment(&self, org: &OrgId, segment: SegmentInsert) -> Result<Segment> {
                (**self).insert_segment(org, segment)
            }
            fn segment(&self, org: &OrgId, id: SegmentId) -> Result<Segment> {
                (**self).segment(org, id)
            }
            fn segment_by_key(&self, org: &OrgId, key: &str) -> Result<Option<Segment>> {
                (**self).segment_by_key(org, key)
            }
            fn segments(
                &self,
                org: &OrgId,
                after: Option<SegmentCursor>,
                limit: usize,
            ) -> Result<Vec<Segment>> {
                (**self).segments(org, after, limit)
            }
            fn update_segment(
                &self,
                org: &OrgId,
                id: SegmentId,
                change: &SegmentChange,
                at: DateTime<Utc>,
            ) -> Result<Segment> {
                (**self).update_segment(org, id, change, at)
            }
            fn delete_segment(&self, org: &OrgId, id: SegmentId) -> Result<()> {
                (**self).delete_segment(org, id)
            }
            fn add_members(
                &self,
                org: &OrgId,
                id: SegmentId,
                pids: &[Pid],
                at: DateTime<Utc>,
            ) -> Result<MembersAdded> {
                (**self).add_members(org, id, pids, at)
            }
            fn remove_members(
                &self,
                org: &OrgId,
                id: SegmentId,
                pids: &[Pid],
                at: DateTime<Utc>,
            ) -> Result<MembersRemoved> {
                (**self).remove_members(org, id, pids, at)
            }
            fn members(
                &self,
                org: &OrgId,
                id: SegmentId,
                after: Option<&MemberCursor>,
                limit: usize,
            ) -> Result<Vec<Member>> {
                (**self).members(org, id, after, limit)
            }
            fn members_at_offset(
                &self,
                org: &OrgId,
                id: SegmentId,
                offset: u64,
                limit: usize,
            ) -> Result<(Vec<Member>, u64)> {
                (**self).members_at_offset(org, id, offset, limit)
            }
        }
    )*};
}

forward_store!(&T, Box<T>, Arc<T>);
