//! What a store takes and returns: the values of the [`SegmentStore`]
//! contract that a host calling [`Segments`](crate::Segments) never needs.
//!
//! [`SegmentStore`]: super::SegmentStore

use chrono::{DateTime, Utc};

use crate::{DeathCursor, DeathRecord, Member, MemberCursor, Segment, SegmentId, SegmentName};

/// The most items a store is ever asked to read in one call: a page of
/// [`MAX_PAGE_LIMIT`](crate::limits::MAX_PAGE_LIMIT), and one more that
/// tells the service whether another page exists.
pub const MAX_READ: usize = crate::limits::MAX_PAGE_LIMIT + 1;

/// When, and on whose request, a write happens. The store records both in
/// the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
        match self {
            Self::Rename(name) => segment.name == name.as_str(),
            Self::Describe(description) => segment.description == *description,
        }
    }
}

/// What [`SegmentStore::add_members`](super::SegmentStore::add_members) did.
/// The service adds the PIDs it settled itself (malformed ones, repeats) to
/// make an [`AddOutcome`](crate::AddOutcome).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MembersAdded {
    /// PIDs that were not active members and now are (re-added ones
    /// included).
    pub n_added: u64,
    /// PIDs that were active members already; their `last_added_at` moved.
    pub n_redundant: u64,
    /// The segment's size after the call.
    pub new_current_size: u64,
}

/// What [`SegmentStore::remove_members`](super::SegmentStore::remove_members) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MembersRemoved {
    /// PIDs that were active members and no longer are.
    pub n_deleted: u64,
    /// The segment's size after the call.
    pub new_current_size: u64,
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

/// What [`SegmentStore::upsert_deaths`](super::SegmentStore::upsert_deaths) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeathsUpserted {
    /// Obituaries seen for the first time.
    pub n_inserted: u64,
    /// Obituaries already known, now updated.
    pub n_updated: u64,
}

/// What [`SegmentStore::death_signals`](super::SegmentStore::death_signals)
/// found, and where the next read starts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeathSignalPage {
    /// The records, in feed order.
    pub records: Vec<DeathRecord>,
    /// Where the next read starts. After the last record when the page is
    /// full (`limit` records); otherwise the end of the feed as this read
    /// saw it, so that the next read does not look again at records of
    /// people who are not members.
    pub next: DeathCursor,
}
