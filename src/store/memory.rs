//! [`MemoryStore`]: everything in process memory.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};

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

#[derive(Default)]
struct Org {
    segments: HashMap<SegmentId, Stored>,
    by_key: HashMap<String, SegmentId>,
    by_creation: BTreeSet<SegmentCursor>,
}

struct Stored {
    segment: Segment,
    key: String,
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

impl Org {
    fn get(&self, id: SegmentId) -> Result<&Stored> {
        self.segments.get(&id).ok_or(Error::NotFound { id })
    }
}

impl SegmentStore for MemoryStore {
    fn insert_segment(&self, org: &OrgId, new: &SegmentInsert) -> Result<()> {
        let mut state = self.write();
        let org = match state.orgs.get_mut(org) {
            Some(o) => o,
            None => state.orgs.entry(org.clone()).or_default(),
        };
        if org.by_key.contains_key(new.name.key()) {
            return Err(Error::DuplicateName {
                name: new.name.as_str().to_owned(),
            });
        }
        let Entry::Vacant(slot) = org.segments.entry(new.id) else {
            return Err(Error::storage(format!(
                "segment id {} is already in use: the id generator repeated itself",
                new.id
            )));
        };
        slot.insert(Stored {
            segment: new.to_segment(),
            key: new.name.key().to_owned(),
        });
        org.by_key.insert(new.name.key().to_owned(), new.id);
        org.by_creation
            .insert(SegmentCursor::new(new.created_at, new.id));
        Ok(())
    }

    fn segment(&self, org: &OrgId, id: SegmentId) -> Result<Segment> {
        let state = self.read();
        let org = state.orgs.get(org).ok_or(Error::NotFound { id })?;
        Ok(org.get(id)?.segment.clone())
    }

    fn segment_by_key(&self, org: &OrgId, key: &str) -> Result<Option<Segment>> {
        let state = self.read();
        Ok(state.orgs.get(org).and_then(|org| {
            let id = org.by_key.get(key)?;
            Some(org.segments[id].segment.clone())
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
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(org
            .by_creation
            .range((start, Bound::Unbounded))
            .take(limit)
            .map(|c| org.segments[&c.id()].segment.clone())
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
        org.get(id)?;
        if let SegmentChange::Rename(name) = change {
            if org
                .by_key
                .get(name.key())
                .is_some_and(|holder| *holder != id)
            {
                return Err(Error::DuplicateName {
                    name: name.as_str().to_owned(),
                });
            }
        }
        // Checks are done: from here on nothing fails.
        let stored = org.segments.get_mut(&id).expect("checked above");
        match change {
            SegmentChange::Rename(name) => {
                org.by_key.remove(&stored.key);
                org.by_key.insert(name.key().to_owned(), id);
                stored.key = name.key().to_owned();
                stored.segment.name = name.as_str().to_owned();
            }
            SegmentChange::Describe(description) => {
                stored.segment.description = description.clone();
            }
        }
        stored.segment.updated_at = at;
        Ok(stored.segment.clone())
    }

    fn delete_segment(&self, org_id: &OrgId, id: SegmentId) -> Result<()> {
        let mut state = self.write();
        let org = state.orgs.get_mut(org_id).ok_or(Error::NotFound { id })?;
        let stored = org.segments.remove(&id).ok_or(Error::NotFound { id })?;
        org.by_key.remove(&stored.key);
        org.by_creation.remove(&stored.segment.cursor());
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
