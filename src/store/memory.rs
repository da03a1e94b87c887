//! [`MemoryStore`]: everything in process memory.

use std::collections::BTreeSet;
use std::collections::hash_map::Entry;
use std::fmt;
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use foldhash::HashMap;
use uuid::Uuid;

use crate::domain::name::name_key;
use crate::{
    Error, OrgId, Result, Segment, SegmentChange, SegmentCursor, SegmentId, SegmentInsert,
    SegmentStore,
};

/// A store in process memory: fast, and gone when the last clone is dropped.
///
/// Clones share one state, so a `MemoryStore` can be handed to many threads.
/// Reads take a shared lock and never block each other; each write takes the
/// exclusive lock once, which makes every write atomic.
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
    orgs: HashMap<OrgId, Org>,
}

/// One org's segments. A segment's name key lives only in `by_key`; the
/// rare rename or delete recomputes it from the stored name.
#[derive(Default)]
struct Org {
    segments: HashMap<SegmentId, Segment>,
    by_key: HashMap<String, SegmentId>,
    /// (`created_at` in µs, id as an integer): creation order, compared as
    /// integers.
    by_creation: BTreeSet<(i64, u128)>,
}

fn creation_key(created_at: DateTime<Utc>, id: SegmentId) -> (i64, u128) {
    (created_at.timestamp_micros(), id.as_uuid().as_u128())
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
            .field(
                "segments",
                &state.orgs.values().map(|o| o.segments.len()).sum::<usize>(),
            )
            .finish()
    }
}

impl SegmentStore for MemoryStore {
    fn insert_segment(&self, org: &OrgId, new: SegmentInsert) -> Result<Segment> {
        let mut state = self.write();
        let org = match state.orgs.get_mut(org) {
            Some(o) => o,
            None => state.orgs.entry(org.clone()).or_default(),
        };
        let Entry::Vacant(slot) = org.segments.entry(new.id) else {
            return Err(Error::storage(format!(
                "segment id {} is already in use: the id generator repeated itself",
                new.id
            )));
        };
        let (segment, key) = new.into_segment();
        match org.by_key.entry(key) {
            Entry::Occupied(_) => {
                return Err(Error::DuplicateName { name: segment.name });
            }
            Entry::Vacant(k) => k.insert(segment.id),
        };
        org.by_creation
            .insert(creation_key(segment.created_at, segment.id));
        Ok(slot.insert(segment).clone())
    }

    fn segment(&self, org: &OrgId, id: SegmentId) -> Result<Segment> {
        let state = self.read();
        state
            .orgs
            .get(org)
            .and_then(|org| org.segments.get(&id))
            .cloned()
            .ok_or(Error::NotFound { id })
    }

    fn segment_by_key(&self, org: &OrgId, key: &str) -> Result<Option<Segment>> {
        let state = self.read();
        Ok(state.orgs.get(org).and_then(|org| {
            let id = org.by_key.get(key)?;
            Some(org.segments[id].clone())
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
            .map(|&(_, id)| org.segments[&SegmentId::from_uuid(Uuid::from_u128(id))].clone())
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
        let org = state.orgs.get_mut(org_id).ok_or(Error::NotFound { id })?;
        let segment = org.segments.get_mut(&id).ok_or(Error::NotFound { id })?;
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
        segment.updated_at = at;
        Ok(segment.clone())
    }

    fn delete_segment(&self, org_id: &OrgId, id: SegmentId) -> Result<()> {
        let mut state = self.write();
        let org = state.orgs.get_mut(org_id).ok_or(Error::NotFound { id })?;
        let segment = org.segments.remove(&id).ok_or(Error::NotFound { id })?;
        org.by_key.remove(name_key(&segment.name).as_str());
        org.by_creation
            .remove(&creation_key(segment.created_at, segment.id));
        Ok(())
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
