//! What a store takes and returns: the values of the [`SegmentStore`]
//! contract that a host calling [`Segments`](crate::Segments) never needs.
//!
//! [`SegmentStore`]: super::SegmentStore

use chrono::{DateTime, Utc};

use crate::{Member, MemberCursor, Segment, SegmentId, SegmentName};

/// The most items a store is ever asked to read in one call: a page of
/// [`MAX_PAGE_LIMIT`](crate::limits::MAX_PAGE_LIMIT), and one more that
/// tells the service whether another page exists.
pub const MAX_READ: usize = crate::limits::MAX_PAGE_LIMIT + 1;

/// When, and on whose request, a write happens. The store records both in
/// the ledger.
#[derive(Clone, Copy, Debug)]
pub struct Stamp<'a> {
    /// The time of the write, truncated to microseconds by the service. The
    /// store records the org's ledger time instead when that is later (see
    /// [`SegmentStore`](super::SegmentStore), "monotone ledger clock").
    pub at: DateTime<Utc>,
    /// The request the write serves, when the caller named one
    /// ([`Segments::for_request`](crate::Segments::for_request)).
    pub request_id: Option<&'a str>,
    /// A dry run ([`Segments::dry_run`](crate::Segments::dry_run)): the
    /// store works out the outcome exactly as the write would, at this
    /// moment, and writes nothing. Set only for `add_members`,
    /// `remove_members`, `add_from` and `remove_from`.
    pub dry_run: bool,
    /// The idempotency key the write claims, when the caller gave one
    /// ([`Segments::with_idempotency_key`](crate::Segments::with_idempotency_key)):
    /// the store records it with the write's outcome in the write's own
    /// transaction. Never set with `dry_run`.
    pub key: Option<&'a KeyClaim<'a>>,
}

/// An idempotency key a write claims (see the
/// [module docs](super), "Idempotency keys").
pub struct KeyClaim<'a> {
    /// The key, as the caller gave it (checked by the service).
    pub key: &'a str,
    /// The SHA-256 of the call's input: the same key with another input is
    /// a conflict.
    pub fingerprint: [u8; 32],
    /// When the record may be forgotten.
    pub expires_at: DateTime<Utc>,
    /// Encodes the write's outcome for later replays: the store calls it
    /// once the write has been applied, and records what it returns.
    pub outcome: &'a (dyn Fn(Written<'_>) -> Vec<u8> + Sync),
}

impl std::fmt::Debug for KeyClaim<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyClaim")
            .field("key", &self.key)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What a write under a [`KeyClaim`] did, handed to its `outcome`.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Written<'a> {
    /// A segment was created or changed: it as it now is.
    Segment(&'a Segment),
    /// Members were added.
    Added(&'a StoreAddOutcome),
    /// Members were removed.
    Removed(&'a StoreRemoveOutcome),
    /// A segment was deleted.
    Deleted,
}

/// What a write returns, as the [`Written`] its key's outcome is made of.
pub(crate) trait WriteOutcome {
    fn written(&self) -> Written<'_>;
}

impl WriteOutcome for Segment {
    fn written(&self) -> Written<'_> {
        Written::Segment(self)
    }
}

impl WriteOutcome for StoreAddOutcome {
    fn written(&self) -> Written<'_> {
        Written::Added(self)
    }
}

impl WriteOutcome for StoreRemoveOutcome {
    fn written(&self) -> Written<'_> {
        Written::Removed(self)
    }
}

impl WriteOutcome for () {
    fn written(&self) -> Written<'_> {
        Written::Deleted
    }
}

/// The record of an idempotency key: what the first call with it did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    /// The SHA-256 of the first call's input.
    pub fingerprint: [u8; 32],
    /// The first call's outcome, as the service encoded it.
    pub outcome: Vec<u8>,
    /// The first call's request id, if it had one.
    pub request_id: Option<String>,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
    /// When it may be forgotten.
    pub expires_at: DateTime<Utc>,
}

/// A validated segment, ready to insert; built by the service and handed to
/// [`SegmentStore::insert_segment`](super::SegmentStore::insert_segment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInsert {
    /// The new segment's id.
    pub id: SegmentId,
    /// Its validated name and uniqueness key.
    pub name: SegmentName,
    /// Its description, already validated.
    pub description: Option<String>,
    /// Its source label, already validated.
    pub source: String,
}

impl SegmentInsert {
    /// The segment this insert creates at `created_at`: empty, with
    /// `updated_at == created_at`. (Its name key is `self.name.key()`.)
    pub fn into_segment(self, created_at: DateTime<Utc>) -> Segment {
        Segment {
            id: self.id,
            name: self.name.into_string(),
            description: self.description,
            source: self.source,
            current_size: 0,
            created_at,
            updated_at: created_at,
        }
    }
}

/// A change to a segment's metadata, applied by
/// [`SegmentStore::update_segment`](super::SegmentStore::update_segment).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SegmentChange {
    /// A new name; the uniqueness rule applies as at creation.
    Rename(SegmentName),
    /// A new description, or none.
    Describe(Option<String>),
}

impl SegmentChange {
    /// Whether `segment` already is as this change would make it: then the
    /// change is no change, and nothing is written or recorded.
    pub fn is_no_op(&self, segment: &Segment) -> bool {
        self.changes_nothing(&segment.name, segment.description.as_deref())
    }

    /// [`is_no_op`](Self::is_no_op) for a segment with this name and
    /// description, as a store may hold them.
    pub(crate) fn changes_nothing(&self, name: &str, description: Option<&str>) -> bool {
        match self {
            Self::Rename(new) => name == new.as_str(),
            Self::Describe(new) => description == new.as_deref(),
        }
    }
}

/// The store's part of an [`AddOutcome`](crate::AddOutcome): what
/// [`SegmentStore::add_members`](super::SegmentStore::add_members) (or
/// `add_from`) did with the PIDs it was given. The service adds the PIDs it
/// settled itself (malformed ones, repeats) to make the `AddOutcome`; the
/// fields keep its names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreAddOutcome {
    /// PIDs that were not active members and now are (re-added ones
    /// included).
    pub n_added: u64,
    /// PIDs that were active members already; their `last_added_at` moved.
    /// (The service adds the repeats of a PID within the call.)
    pub n_redundant_additions: u64,
    /// The segment's size after the call.
    pub new_current_size: u64,
}

/// The store's part of a [`RemoveOutcome`](crate::RemoveOutcome): what
/// [`SegmentStore::remove_members`](super::SegmentStore::remove_members) (or
/// `remove_from`) did. The service adds the malformed PIDs it skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreRemoveOutcome {
    /// PIDs that were active members and no longer are.
    pub n_deleted: u64,
    /// The segment's size after the call.
    pub new_current_size: u64,
}

/// Where a paged read of a [`SegmentStore`](super::SegmentStore) starts,
/// and how many items it returns: every paged read takes one.
///
/// `after` is the read's own kind of position (a
/// [`SegmentCursor`](crate::SegmentCursor), a
/// ledger `seq`, a [`MemberStart`], a [`DeathCursor`](crate::DeathCursor),
/// …); the read returns the items just after it, in the read's order.
/// `limit` is at least 1 and at most [`MAX_READ`] (the service checks it).
///
/// ```
/// use segments_engine::store::Page;
/// let first: Page<u64> = Page::first(100); // ledger entries after seq 0
/// assert_eq!(first, Page::new(0, 100));
/// assert_eq!(first, Page { after: 0, limit: 100 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page<C> {
    /// Where the read starts: the items just after this position.
    pub after: C,
    /// The most items to return.
    pub limit: usize,
}

impl<C> Page<C> {
    /// Up to `limit` items after `after`.
    pub const fn new(after: C, limit: usize) -> Self {
        Self { after, limit }
    }
}

impl<C: Default> Page<C> {
    /// Up to `limit` items from the start (`after` is `C`'s default: no
    /// cursor, seq 0, [`MemberStart::FIRST`], [`DeathCursor::START`](crate::DeathCursor::START)).
    pub fn first(limit: usize) -> Self {
        Self {
            after: C::default(),
            limit,
        }
    }
}

/// Where a read of a segment's members starts, in list order
/// (`first_added_at`, then PID).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberStart<'a> {
    /// Just after this position (the cursor API, and the page API when it
    /// knows where the previous page ended).
    After(&'a MemberCursor),
    /// At this position, counted from 0 over the active members (the page
    /// API when it does not).
    Offset(u64),
}

impl MemberStart<'_> {
    /// The start of the list.
    pub const FIRST: MemberStart<'static> = MemberStart::Offset(0);
}

impl Default for MemberStart<'_> {
    /// [`MemberStart::FIRST`].
    fn default() -> Self {
        MemberStart::FIRST
    }
}

/// Up to `limit` active members of a segment and what the segment was when
/// they were read, all from one snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberSlice {
    /// The members, in list order.
    pub members: Vec<Member>,
    /// The segment's `current_size`.
    pub current_size: u64,
    /// The ledger `seq` of the last entry that changed who the segment's
    /// members are (an add, a re-add or a removal); 0 before its first
    /// member. While it stays the same, every member keeps its position,
    /// which is what lets the page API start a page from where the previous
    /// one ended.
    pub members_seq: u64,
}

/// The store's part of a [`DeathsIngested`](crate::DeathsIngested): what
/// [`SegmentStore::upsert_deaths`](super::SegmentStore::upsert_deaths) did
/// with the records the service checked. The service adds the reports it
/// rejected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreDeathsIngested {
    /// Obituaries seen for the first time.
    pub n_inserted: u64,
    /// Obituaries already known, now updated.
    pub n_updated: u64,
}
