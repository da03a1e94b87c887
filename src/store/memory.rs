//! [`MemoryStore`]: everything in process memory.

use std::collections::BTreeSet;
use std::collections::hash_map::Entry;
use std::fmt;
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use foldhash::HashMap;
use uuid::Uuid;

use crate::clock::truncate_to_micros;
use crate::domain::name::name_key;
use crate::{
    Error, Member, MemberCursor, MembersAdded, MembersRemoved, OrgId, Pid, Result, Segment,
    SegmentChange, SegmentCursor, SegmentId, SegmentInsert, SegmentStore,
};

/// A store in process memory: fast, and gone when the last clone is dropped.
///
/// Clones share one state, so a `MemoryStore` can be handed to many threads.
/// Reads take a shared lock and never block each other; each write takes the
/// exclusive lock once and checks everything before it changes anything,
/// which makes every write atomic.
///
/// ```
/// use segments::{MemoryStore, NewSegment, OrgId, Segments};
/// let store = MemoryStore::new();
/// let segments = Segments::new(store.clone());
/// let org = OrgId::new("acme")?;
/// let s = segments.create(&org, NewSegment::new("Watchlist"))?;
/// assert_eq!(Segments::new(store).get(&org, s.id)?.name, "Watchlist");
/// # Ok::<(), segments::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore {
    state: Arc<RwLock<State>>,
}

#[derive(Default)]
struct State {
    /// Every segment, by id: ids are unique across orgs, as in SQLite.
    segments: HashMap<SegmentId, Stored>,
    orgs: HashMap<OrgId, Org>,
}

/// One org's indexes. A segment's name key lives only in `by_key`; the
/// rare rename or delete recomputes it from the stored name.
#[derive(Default)]
struct Org {
    /// Tells this org's segments from other orgs' in `State::segments`.
    number: u32,
    by_key: HashMap<String, SegmentId>,
    /// (`created_at` in µs, id as an integer): creation order, compared as
    /// integers.
    by_creation: BTreeSet<(i64, u128)>,
}

struct Stored {
    org: u32,
    /// The segment as stored; its `current_size` is not kept here but read
    /// from `members`, so the two cannot disagree.
    segment: Segment,
    members: Members,
}

#[derive(Default)]
struct Members {
    /// Every PID that ever joined, active or not: history survives removal.
    by_pid: HashMap<Pid, Membership>,
    /// The active members in list order: (`first_added_at` in µs, PID).
    active: BTreeSet<(i64, Pid)>,
}

struct Membership {
    first_added_at: i64,
    last_added_at: i64,
    active: bool,
}

fn creation_key(created_at: DateTime<Utc>, id: SegmentId) -> (i64, u128) {
    (created_at.timestamp_micros(), id.as_uuid().as_u128())
}

fn time(micros: i64) -> DateTime<Utc> {
    // Every stored time came from a `DateTime`, so it converts back.
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    // A panic while the lock was held cannot leave a half-applied write:
    // every write checks everything before it changes anything. So a
    // poisoned lock still guards consistent state.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.read();
        f.debug_struct("MemoryStore")
            .field("orgs", &state.orgs.len())
            .field("segments", &state.segments.len())
            .finish()
    }
}

impl State {
    fn stored(&self, org: &OrgId, id: SegmentId) -> Result<&Stored> {
        let number = self.orgs.get(org).map(|o| o.number);
        self.segments
            .get(&id)
            .filter(|s| Some(s.org) == number)
            .ok_or(Error::NotFound { id })
    }

    fn stored_mut(&mut self, org: &OrgId, id: SegmentId) -> Result<&mut Stored> {
        let number = self.orgs.get(org).map(|o| o.number);
        self.segments
            .get_mut(&id)
            .filter(|s| Some(s.org) == number)
            .ok_or(Error::NotFound { id })
    }
}

impl Stored {
    /// The segment with its current size.
    fn segment(&self) -> Segment {
        Segment {
            current_size: self.members.size(),
            ..self.segment.clone()
        }
    }
}

impl Members {
    fn size(&self) -> u64 {
        self.active.len() as u64
    }

    fn member(&self, first_added_at: i64, pid: &Pid) -> Member {
        Member {
            pid: pid.clone(),
            first_added_at: time(first_added_at),
            last_added_at: time(self.by_pid[pid].last_added_at),
        }
    }
}

impl SegmentStore for MemoryStore {
    fn insert_segment(&self, org: &OrgId, new: SegmentInsert) -> Result<Segment> {
        let mut state = self.write();
        let state = &mut *state;
        let Entry::Vacant(slot) = state.segments.entry(new.id) else {
            return Err(Error::storage(format!(
                "segment id {} is already in use: the id generator repeated itself",
                new.id
            )));
        };
        let next_number = state.orgs.len() as u32;
        let org = match state.orgs.get_mut(org) {
            Some(o) => o,
            None => state.orgs.entry(org.clone()).or_insert_with(|| Org {
                number: next_number,
                ..Org::default()
            }),
        };
        let (mut segment, key) = new.into_segment();
        // Stores keep microseconds, whoever built the insert.
        segment.created_at = truncate_to_micros(segment.created_at);
        segment.updated_at = segment.created_at;
        match org.by_key.entry(key) {
            Entry::Occupied(_) => {
                return Err(Error::DuplicateName { name: segment.name });
            }
            Entry::Vacant(k) => k.insert(segment.id),
        };
        org.by_creation
            .insert(creation_key(segment.created_at, segment.id));
        let stored = slot.insert(Stored {
            org: org.number,
            segment,
            members: Members::default(),
        });
        Ok(stored.segment.clone())
    }

    fn segment(&self, org: &OrgId, id: SegmentId) -> Result<Segment> {
        Ok(self.read().stored(org, id)?.segment())
    }

    fn segment_by_key(&self, org: &OrgId, key: &str) -> Result<Option<Segment>> {
        let state = self.read();
        Ok(state.orgs.get(org).and_then(|o| {
            let id = o.by_key.get(key)?;
            Some(state.segments[id].segment())
        }))
    }

    fn segments(
        &self,
        org: &OrgId,
        after: Option<SegmentCursor>,
        limit: usize,
    ) -> Result<Vec<Segment>> {
        let state = self.read();
        let Some(org) = state.orgs.get(org) else {
            return Ok(Vec::new());
        };
        let start = after.map_or(Bound::Unbounded, |c| {
            Bound::Excluded(creation_key(c.created_at(), c.id()))
        });
        Ok(org
            .by_creation
            .range((start, Bound::Unbounded))
            .take(limit)
            .map(|&(_, id)| state.segments[&SegmentId::from_uuid(Uuid::from_u128(id))].segment())
            .collect())
    }

    fn update_segment(
        &self,
        org_id: &OrgId,
        id: SegmentId,
        change: &SegmentChange,
        at: DateTime<Utc>,
    ) -> Result<Segment> {
        let mut state = self.write();
        let state = &mut *state;
        let org = state.orgs.get_mut(org_id).ok_or(Error::NotFound { id })?;
        let stored = state
            .segments
            .get_mut(&id)
            .filter(|s| s.org == org.number)
            .ok_or(Error::NotFound { id })?;
        let segment = &mut stored.segment;
        match change {
            SegmentChange::Rename(name) => {
                if org
                    .by_key
                    .get(name.key())
                    .is_some_and(|holder| *holder != id)
                {
                    return Err(Error::DuplicateName {
                        name: name.as_str().to_owned(),
                    });
                }
                org.by_key.remove(name_key(&segment.name).as_str());
                org.by_key.insert(name.key().to_owned(), id);
                segment.name = name.as_str().to_owned();
            }
            SegmentChange::Describe(description) => {
                segment.description = description.clone();
            }
        }
        segment.updated_at = truncate_to_micros(at);
        Ok(stored.segment())
    }

    fn delete_segment(&self, org_id: &OrgId, id: SegmentId) -> Result<()> {
        let mut state = self.write();
        state.stored(org_id, id)?;
        let stored = state.segments.remove(&id).ok_or(Error::NotFound { id })?;
        let org = state
            .orgs
            .get_mut(org_id)
            .expect("a stored segment's org has indexes");
        org.by_key.remove(name_key(&stored.segment.name).as_str());
        org.by_creation
            .remove(&creation_key(stored.segment.created_at, id));
        // Dropping the members outside the lock keeps a big delete from
        // stalling other callers.
        drop(state);
        drop(stored);
        Ok(())
    }

    fn add_members(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[Pid],
        at: DateTime<Utc>,
    ) -> Result<MembersAdded> {
        let at = at.timestamp_micros();
        let mut state = self.write();
        let members = &mut state.stored_mut(org, id)?.members;
        members.by_pid.reserve(pids.len());
        let (mut n_added, mut n_redundant) = (0, 0);
        for pid in pids {
            match members.by_pid.entry(pid.clone()) {
                Entry::Vacant(slot) => {
                    slot.insert(Membership {
                        first_added_at: at,
                        last_added_at: at,
                        active: true,
                    });
                    members.active.insert((at, pid.clone()));
                    n_added += 1;
                }
                Entry::Occupied(slot) => {
                    let m = slot.into_mut();
                    m.last_added_at = at;
                    if m.active {
                        n_redundant += 1;
                    } else {
                        m.active = true;
                        members.active.insert((m.first_added_at, pid.clone()));
                        n_added += 1;
                    }
                }
            }
        }
        Ok(MembersAdded {
            n_added,
            n_redundant,
            new_current_size: members.size(),
        })
    }

    fn remove_members(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[Pid],
        _at: DateTime<Utc>,
    ) -> Result<MembersRemoved> {
        let mut state = self.write();
        let members = &mut state.stored_mut(org, id)?.members;
        let mut n_deleted = 0;
        for pid in pids {
            if let Some(m) = members.by_pid.get_mut(pid) {
                if m.active {
                    m.active = false;
                    members.active.remove(&(m.first_added_at, pid.clone()));
                    n_deleted += 1;
                }
            }
        }
        Ok(MembersRemoved {
            n_deleted,
            new_current_size: members.size(),
        })
    }

    fn members(
        &self,
        org: &OrgId,
        id: SegmentId,
        after: Option<&MemberCursor>,
        limit: usize,
    ) -> Result<Vec<Member>> {
        let state = self.read();
        let members = &state.stored(org, id)?.members;
        let start = after.map_or(Bound::Unbounded, |c| {
            Bound::Excluded((c.first_added_at().timestamp_micros(), c.pid().clone()))
        });
        Ok(members
            .active
            .range((start, Bound::Unbounded))
            .take(limit)
            .map(|(first, pid)| members.member(*first, pid))
            .collect())
    }

    fn members_at_offset(
        &self,
        org: &OrgId,
        id: SegmentId,
        offset: u64,
        limit: usize,
    ) -> Result<(Vec<Member>, u64)> {
        let state = self.read();
        let members = &state.stored(org, id)?.members;
        let page = members
            .active
            .iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(limit)
            .map(|(first, pid)| members.member(*first, pid))
            .collect();
        Ok((page, members.size()))
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
