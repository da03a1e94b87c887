//! Segments: their rows, names and creation order.

use std::collections::hash_map::Entry;
use std::sync::{Arc, LazyLock};

use uuid::Uuid;

use super::ledger::SegmentEntry;
use super::{Contents, Org, Row, Stored};
use crate::domain::name::name_key;
use crate::limits::DEFAULT_SOURCE;
use crate::store::{Page, SegmentChange, SegmentInsert, Stamp};
use crate::{Error, OrgId, Result, Segment, SegmentCursor, SegmentId};

/// (`created_at` in µs, id as an integer) of an org's segments, sorted.
///
/// A sorted `Vec`, not a tree: creation times never go back within an org,
/// so a new segment nearly always goes at the end (one comparison and a
/// push); listing is a binary search and a slice. The price is paid by a
/// delete, which closes the gap (a move of the later keys, linear in the
/// org's segment count).
#[derive(Default)]
pub(super) struct CreationOrder(Vec<(i64, u128)>);

impl CreationOrder {
    fn insert(&mut self, key: (i64, u128)) {
        match self.0.last() {
            Some(last) if *last >= key => {
                let at = self.0.partition_point(|k| *k < key);
                self.0.insert(at, key);
            }
            _ => self.0.push(key),
        }
    }

    fn remove(&mut self, key: (i64, u128)) {
        let at = self.0.partition_point(|k| *k < key);
        if self.0.get(at) == Some(&key) {
            self.0.remove(at);
        }
    }

    /// The keys after `after` (all of them for `None`), in order.
    fn after(&self, after: Option<(i64, u128)>) -> &[(i64, u128)] {
        let start = after.map_or(0, |a| self.0.partition_point(|k| *k <= a));
        &self.0[start..]
    }
}

/// A source label to store: the default one shared by every segment that
/// has it, any other a copy.
fn shared_source(source: &str) -> Arc<str> {
    static DEFAULT: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(DEFAULT_SOURCE));
    if source == DEFAULT_SOURCE {
        Arc::clone(&DEFAULT)
    } else {
        Arc::from(source)
    }
}

fn creation_key(created_at: chrono::DateTime<chrono::Utc>, id: SegmentId) -> (i64, u128) {
    (created_at.timestamp_micros(), id.as_uuid().as_u128())
}

impl Contents {
    pub(super) fn insert_segment(
        &mut self,
        org: &OrgId,
        new: SegmentInsert,
        stamp: Stamp<'_>,
    ) -> Result<Segment> {
        let Entry::Vacant(slot) = self.segments.entry(new.id) else {
            return Err(Error::storage(format!(
                "segment id {} is already in use: the id generator repeated itself",
                new.id
            )));
        };
        let next_number = self.orgs.len() as u32;
        let org = match self.orgs.get_mut(org) {
            Some(o) => o,
            None => self.orgs.entry(org.clone()).or_insert_with(|| Org {
                number: next_number,
                ..Org::default()
            }),
        };
        // Rows and ledger share one time, which never goes back in an org.
        let at = org.ledger.next_at(stamp.at);
        let SegmentInsert {
            id,
            name,
            description,
            source,
        } = new;
        let (name, key) = name.into_name_and_key();
        match org.by_key.entry(key) {
            Entry::Occupied(_) => return Err(Error::DuplicateName { name }),
            Entry::Vacant(k) => k.insert(id),
        };
        org.by_creation.insert(creation_key(at, id));
        // The store keeps shared copies of the text; the caller gets the
        // strings it gave.
        let row = Row {
            id,
            name: Arc::from(name.as_str()),
            description: description.as_deref().map(Arc::from),
            source: shared_source(&source),
            created_at: at,
            updated_at: at,
        };
        org.ledger.append(
            at,
            &stamp.request_id.map(Arc::from),
            id,
            SegmentEntry::Created {
                name: Arc::clone(&row.name),
                description: row.description.clone(),
            },
        );
        slot.insert(Box::new(Stored {
            org: org.number,
            row,
            members: Default::default(),
            sizes: Vec::new(),
        }));
        Ok(Segment {
            id,
            name,
            description,
            source,
            current_size: 0,
            created_at: at,
            updated_at: at,
        })
    }

    pub(super) fn segment_by_key(&self, org: &OrgId, key: &str) -> Option<Segment> {
        let id = self.orgs.get(org)?.by_key.get(key)?;
        Some(self.segments[id].segment())
    }

    pub(super) fn segments(
        &self,
        org: &OrgId,
        Page { after, limit }: Page<Option<SegmentCursor>>,
    ) -> Vec<Segment> {
        let Some(org) = self.orgs.get(org) else {
            return Vec::new();
        };
        org.by_creation
            .after(after.map(|c| creation_key(c.created_at(), c.id())))
            .iter()
            .take(limit)
            .map(|&(_, id)| self.segments[&SegmentId::from_uuid(Uuid::from_u128(id))].segment())
            .collect()
    }

    pub(super) fn update_segment(
        &mut self,
        org_id: &OrgId,
        id: SegmentId,
        change: &SegmentChange,
        stamp: Stamp<'_>,
    ) -> Result<Segment> {
        let (org, stored) = self.stored_mut(org_id, id)?;
        let row = &mut stored.row;
        if change.changes_nothing(&row.name, row.description.as_deref()) {
            return Ok(stored.segment());
        }
        let entry = match change {
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
                org.by_key.remove(name_key(&row.name).as_str());
                org.by_key.insert(name.key().to_owned(), id);
                row.name = Arc::from(name.as_str());
                SegmentEntry::Renamed {
                    name: Arc::clone(&row.name),
                }
            }
            SegmentChange::Describe(description) => {
                row.description = description.as_deref().map(Arc::from);
                SegmentEntry::DescriptionChanged {
                    description: row.description.clone(),
                }
            }
        };
        let at = org.ledger.next_at(stamp.at);
        row.updated_at = at;
        org.ledger
            .append(at, &stamp.request_id.map(Arc::from), id, entry);
        Ok(stored.segment())
    }

    /// Deletes the segment and returns what it held, for the caller to drop
    /// once it has let go of the lock.
    pub(super) fn delete_segment(
        &mut self,
        org_id: &OrgId,
        id: SegmentId,
        stamp: Stamp<'_>,
    ) -> Result<Box<Stored>> {
        self.stored(org_id, id)?;
        let stored = self.segments.remove(&id).ok_or(Error::NotFound { id })?;
        let org = self
            .orgs
            .get_mut(org_id)
            .expect("a stored segment's org has indexes");
        org.by_key.remove(name_key(&stored.row.name).as_str());
        org.by_creation
            .remove(creation_key(stored.row.created_at, id));
        // The segment's memberships go with it; its people keep their
        // place in the ledger (their timelines outlive the segment).
        for (_, pid) in stored.members.ever_from(None) {
            if let Some(person) = org.people.get_mut(pid) {
                person.memberships.retain(|(s, _)| *s != id);
            }
        }
        let at = org.ledger.next_at(stamp.at);
        org.ledger.append(
            at,
            &stamp.request_id.map(Arc::from),
            id,
            SegmentEntry::Deleted,
        );
        Ok(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creation_order_stays_sorted_whatever_the_order_of_inserts() {
        let mut order = CreationOrder::default();
        for key in [(5, 2), (5, 9), (7, 1), (5, 4), (3, 8), (7, 0), (9, 9)] {
            order.insert(key);
        }
        let want = [(3, 8), (5, 2), (5, 4), (5, 9), (7, 0), (7, 1), (9, 9)];
        assert_eq!(order.after(None), want);
        assert_eq!(order.after(Some((5, 4))), &want[3..]);
        assert_eq!(
            order.after(Some((5, 5))),
            &want[3..],
            "a cursor between keys"
        );
        assert_eq!(order.after(Some((9, 9))), &[] as &[(i64, u128)]);
        order.remove((5, 4));
        order.remove((5, 4));
        order.remove((1, 1));
        assert_eq!(
            order.after(None),
            [(3, 8), (5, 2), (5, 9), (7, 0), (7, 1), (9, 9)],
            "removing a key twice, or one never there, changes nothing more"
        );
    }
}
