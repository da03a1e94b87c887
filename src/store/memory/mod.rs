//! [`MemoryStore`]: everything in process memory.
//!
//! One file per stored entity: `segments.rs` (segments and their creation
//! order), `members.rs` (people and memberships, with `roster.rs`, the
//! members in list order), `ledger.rs` (the ledger and the reads of the
//! past), `deaths.rs` (death records and the death feed).

use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use foldhash::HashMap;

mod deaths;
mod keys;
mod ledger;
mod members;
mod roster;
mod segments;
mod sets;

use deaths::Deaths;
use keys::Keys;
use ledger::{OrgLedger, Origin};
use members::Members;
use segments::CreationOrder;

use crate::store::{
    KeyRecord, MemberSlice, MemberStart, Page, SegmentChange, SegmentInsert, Stamp,
    StoreAddOutcome, StoreDeathsIngested, StoreRemoveOutcome, WriteOutcome,
};
use crate::{
    Change, DeathCursor, DeathRecord, DeathSignals, Error, MemberCursor, OrgId, PastMember, Pid,
    Result, Segment, SegmentCursor, SegmentId, SegmentStore, SetExpr,
};

/// A store in process memory: fast, and gone when the last clone is dropped.
///
/// Costs to know:
/// - A member call looks each person up in the org's map of people, then
///   in the list of that person's memberships (one or a few for most), and
///   puts each member it changes in or out of the segment's ordered set of
///   (`first_added_at`, PID): O(log n) a PID.
/// - A page from a cursor is a range read of that set; a page by offset
///   walks it from the start (the service's page walk starts each page
///   from a cursor instead).
/// - `members_as_of` walks everyone who ever joined the segment in list
///   order from the cursor, stopping at the first who joined after the
///   time asked about, and looks at the recent history of each.
/// - A death-signal poll looks at each record that entered the death feed
///   after its cursor, once.
/// - Deleting a segment takes its memberships out of each person who ever
///   joined it (linear in that number) and moves the org's later segments
///   up in its creation index (linear in the org's segment count); creates,
///   the common case, append.
///
/// Clones share one state, so a `MemoryStore` can be handed to many threads.
/// Reads take a shared lock and never block each other; each write takes the
/// exclusive lock once and checks everything before it changes anything,
/// which makes every write atomic.
///
/// ```
/// use segments_engine::{MemoryStore, NewSegment, OrgId, Segments};
/// let store = MemoryStore::new();
/// let segments = Segments::new(store.clone());
/// let org = OrgId::new("acme")?;
/// let s = segments.create(&org, NewSegment::new("Watchlist"))?;
/// assert_eq!(Segments::new(store).get(&org, s.id)?.name, "Watchlist");
/// # Ok::<(), segments_engine::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<RwLock<Contents>>,
}

/// Everything the store holds, behind its one lock.
#[derive(Default)]
struct Contents {
    /// Every segment, by id: ids are unique across orgs, as in SQLite.
    /// Boxed, so that growing the table moves pointers, not segments.
    segments: HashMap<SegmentId, Box<Stored>>,
    orgs: HashMap<OrgId, Org>,
    deaths: Deaths,
    keys: Keys,
}

/// One org's indexes and ledger. A segment's name key lives only in
/// `by_key`; the rare rename or delete recomputes it from the stored name.
#[derive(Default)]
struct Org {
    /// Tells this org's segments from other orgs' in `Contents::segments`.
    number: u32,
    by_key: HashMap<String, SegmentId>,
    /// The org's segments in creation order.
    by_creation: CreationOrder,
    ledger: OrgLedger,
    /// Everyone who ever joined one of the org's segments, by PID, with
    /// their memberships and place in the ledger. People are never
    /// removed: their timelines outlive segments.
    people: HashMap<Pid, members::Person>,
}

struct Stored {
    org: u32,
    /// The segment as stored; its `current_size` is not kept here but read
    /// from `members`, so the two cannot disagree.
    row: Row,
    members: Members,
    /// Every call that changed the members, in order: `size_as_of` is a
    /// binary search by time (times never go back within an org), and the
    /// last `seq` is the segment's `members_seq`.
    sizes: Vec<SizeSample>,
}

/// A segment's fields as stored. Its text is shared: the name with the
/// ledger entry that set it, the default source with every segment that
/// has it.
struct Row {
    id: SegmentId,
    name: Arc<str>,
    description: Option<Arc<str>>,
    source: Arc<str>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A segment's size after one call that changed its members.
struct SizeSample {
    /// The call's time, in µs.
    at: i64,
    /// The seq of the call's last ledger entry.
    seq: u64,
    size: u64,
}

impl Stored {
    /// The segment with its current size.
    fn segment(&self) -> Segment {
        let row = &self.row;
        Segment {
            id: row.id,
            name: row.name.to_string(),
            description: row.description.as_deref().map(str::to_owned),
            source: row.source.to_string(),
            current_size: self.members.size(),
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }

    fn members_seq(&self) -> u64 {
        self.sizes.last().map_or(0, |sample| sample.seq)
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    // A panic while the lock was held cannot leave a half-applied write:
    // every write checks everything before it changes anything. So a
    // poisoned lock still guards consistent state.
    fn read(&self) -> RwLockReadGuard<'_, Contents> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Contents> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs write `f` under the lock; when `stamp` claims an idempotency
    /// key, checks it before (a live record: the write applies nothing)
    /// and records it with the outcome after.
    fn keyed<T: WriteOutcome>(
        &self,
        org: &OrgId,
        stamp: Stamp<'_>,
        f: impl FnOnce(&mut Contents) -> Result<T>,
    ) -> Result<T> {
        let mut state = self.write();
        let Some(claim) = stamp.key else {
            return f(&mut state);
        };
        state.keys.check(org, claim, stamp.at)?;
        let out = f(&mut state)?;
        state.keys.claim(org, claim, stamp, &out);
        Ok(out)
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.read();
        f.debug_struct("MemoryStore")
            .field("orgs", &state.orgs.len())
            .field("segments", &state.segments.len())
            .field("death_records", &state.deaths.len())
            .finish()
    }
}

impl Contents {
    fn stored(&self, org: &OrgId, id: SegmentId) -> Result<(&Org, &Stored)> {
        let org = self.orgs.get(org).ok_or(Error::NotFound { id })?;
        let stored = self
            .segments
            .get(&id)
            .filter(|s| s.org == org.number)
            .ok_or(Error::NotFound { id })?;
        Ok((org, stored))
    }

    fn stored_mut(&mut self, org: &OrgId, id: SegmentId) -> Result<(&mut Org, &mut Stored)> {
        let org = self.orgs.get_mut(org).ok_or(Error::NotFound { id })?;
        let stored = self
            .segments
            .get_mut(&id)
            .filter(|s| s.org == org.number)
            .ok_or(Error::NotFound { id })?;
        Ok((org, stored))
    }
}

fn time(micros: i64) -> DateTime<Utc> {
    // Every stored time came from a `DateTime`, so it converts back.
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

impl SegmentStore for MemoryStore {
    fn insert_segment(&self, org: &OrgId, new: SegmentInsert, stamp: Stamp<'_>) -> Result<Segment> {
        self.keyed(org, stamp, |state| state.insert_segment(org, new, stamp))
    }

    fn segment(&self, org: &OrgId, id: SegmentId) -> Result<Segment> {
        Ok(self.read().stored(org, id)?.1.segment())
    }

    fn segment_by_key(&self, org: &OrgId, key: &str) -> Result<Option<Segment>> {
        Ok(self.read().segment_by_key(org, key))
    }

    fn segments(&self, org: &OrgId, page: Page<Option<SegmentCursor>>) -> Result<Vec<Segment>> {
        Ok(self.read().segments(org, page))
    }

    fn update_segment(
        &self,
        org: &OrgId,
        id: SegmentId,
        change: &SegmentChange,
        stamp: Stamp<'_>,
    ) -> Result<Segment> {
        self.keyed(org, stamp, |state| {
            state.update_segment(org, id, change, stamp)
        })
    }

    fn delete_segment(&self, org: &OrgId, id: SegmentId, stamp: Stamp<'_>) -> Result<()> {
        let mut held = None;
        self.keyed(org, stamp, |state| {
            held = Some(state.delete_segment(org, id, stamp)?);
            Ok(())
        })?;
        // Dropping the members' lists outside the lock spares other callers
        // that part of a big delete.
        drop(held);
        Ok(())
    }

    fn add_members(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[Pid],
        stamp: Stamp<'_>,
    ) -> Result<StoreAddOutcome> {
        let org_id = org;
        self.keyed(org, stamp, |state| {
            let (org, stored) = state.stored_mut(org_id, id)?;
            Ok(members::add(org, stored, id, pids, stamp, Origin::NONE))
        })
    }

    fn remove_members(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[Pid],
        stamp: Stamp<'_>,
    ) -> Result<StoreRemoveOutcome> {
        self.keyed(org, stamp, |state| {
            let (org, stored) = state.stored_mut(org, id)?;
            members::remove(org, stored, id, pids, stamp, Origin::NONE)
        })
    }

    fn create_from(
        &self,
        org: &OrgId,
        segment: SegmentInsert,
        expr: &SetExpr,
        stamp: Stamp<'_>,
    ) -> Result<Segment> {
        self.keyed(org, stamp, |state| {
            state.create_from(org, segment, expr, stamp)
        })
    }

    fn add_from(
        &self,
        org: &OrgId,
        id: SegmentId,
        expr: &SetExpr,
        stamp: Stamp<'_>,
    ) -> Result<StoreAddOutcome> {
        self.keyed(org, stamp, |state| state.add_from(org, id, expr, stamp))
    }

    fn remove_from(
        &self,
        org: &OrgId,
        id: SegmentId,
        expr: &SetExpr,
        stamp: Stamp<'_>,
    ) -> Result<StoreRemoveOutcome> {
        self.keyed(org, stamp, |state| state.remove_from(org, id, expr, stamp))
    }

    fn members(
        &self,
        org: &OrgId,
        id: SegmentId,
        page: Page<MemberStart<'_>>,
    ) -> Result<MemberSlice> {
        let state = self.read();
        let (org, stored) = state.stored(org, id)?;
        Ok(members::slice(org, stored, id, page))
    }

    fn changes_since(&self, org: &OrgId, page: Page<u64>) -> Result<Vec<Change>> {
        let state = self.read();
        Ok(state
            .orgs
            .get(org)
            .map(|org| org.ledger.since(page))
            .unwrap_or_default())
    }

    fn last_seq(&self, org: &OrgId) -> Result<u64> {
        let state = self.read();
        Ok(state.orgs.get(org).map_or(0, |org| org.ledger.last_seq()))
    }

    fn timeline(&self, org: &OrgId, pid: &Pid, page: Page<u64>) -> Result<Vec<Change>> {
        let state = self.read();
        Ok(state
            .orgs
            .get(org)
            .and_then(|org| Some((org, org.person(pid)?)))
            .map(|(org, person)| org.ledger.timeline(person.last_entry, page))
            .unwrap_or_default())
    }

    fn size_as_of(&self, org: &OrgId, id: SegmentId, at: DateTime<Utc>) -> Result<u64> {
        let state = self.read();
        let stored = state.stored(org, id)?.1;
        let at = at.timestamp_micros();
        let samples = stored.sizes.partition_point(|sample| sample.at <= at);
        Ok(samples.checked_sub(1).map_or(0, |i| stored.sizes[i].size))
    }

    fn members_as_of(
        &self,
        org: &OrgId,
        id: SegmentId,
        at: DateTime<Utc>,
        page: Page<Option<&MemberCursor>>,
    ) -> Result<Vec<PastMember>> {
        let state = self.read();
        let (org, stored) = state.stored(org, id)?;
        Ok(ledger::members_as_of(org, stored, id, at, page))
    }

    fn idempotency_record(
        &self,
        org: &OrgId,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<KeyRecord>> {
        Ok(self.read().keys.get(org, key, now).cloned())
    }

    fn record_idempotency(
        &self,
        org: &OrgId,
        key: &str,
        record: KeyRecord,
        now: DateTime<Utc>,
    ) -> Result<KeyRecord> {
        Ok(self.write().keys.record(org, key, record, now))
    }

    fn upsert_deaths(
        &self,
        records: &[DeathRecord],
        _at: DateTime<Utc>,
    ) -> Result<StoreDeathsIngested> {
        Ok(self.write().deaths.upsert(records))
    }

    fn death_signals(
        &self,
        org: &OrgId,
        id: SegmentId,
        page: Page<DeathCursor>,
    ) -> Result<DeathSignals> {
        let state = self.read();
        let org = state.stored(org, id)?.0;
        Ok(state.deaths.signals(page, |pid| org.is_member(id, pid)))
    }
}

#[cfg(all(test, feature = "conformance"))]
mod conformance {
    use super::*;

    crate::conformance_tests!(MemoryStore::new());

    mod through_arc_dyn {
        use super::*;
        crate::conformance_tests!(Arc::new(MemoryStore::new()) as Arc<dyn SegmentStore>);
    }
}
