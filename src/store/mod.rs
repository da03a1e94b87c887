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

use crate::{OrgId, Result, Segment, SegmentChange, SegmentCursor, SegmentId, SegmentInsert};

pub(crate) mod memory;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

/// Where segments live. Implemented by [`MemoryStore`](crate::MemoryStore)
/// and [`SqliteStore`](crate::SqliteStore), and by `&T`, `Box<T>` and
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
        }
    )*};
}

forward_store!(&T, Box<T>, Arc<T>);
