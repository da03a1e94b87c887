//! [`MemoryStore`]: everything in process memory.

use std::collections::hash_map::Entry as Entry_;
use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};
use foldhash::HashMap;
use smallvec::SmallVec;
use uuid::Uuid;

mod roster;

use roster::Roster;

use crate::clock::truncate_to_micros;
use crate::domain::name::name_key;
use crate::{
    Change, ChangeKind, DeathCursor, DeathRecord, Error, Member, MemberCursor, MembersAdded,
    MembersRemoved, OrgId, PastMember, Pid, Result, Segment, SegmentChange, SegmentCursor,
    SegmentId, SegmentInsert, SegmentStore, Stamp,
};

/// A store in process memory: fast, and gone when the last clone is dropped.
///
/// Costs to know:
/// - A member call looks each person up once in the org's map of people,
///   then in the list of that person's memberships: linear in the number
///   of the org's live segments they belong to (one or a few for most).
/// - Active members are kept in runs, one per `first_added_at` (one per add
///   call, unless calls share a microsecond). A call's new members become
///   a run; removing or re-adding members rewrites the runs they belong to,
///   and a call that shares the last run's microsecond rewrites that run:
///   linear in the size of the runs a call touches. The page API skips
///   whole runs, so its cost grows with the number of runs before the page
///   (a few for a segment filled in big calls, one per member for one
///   filled one PID at a time).
/// - `members_as_of` looks at every person who ever joined the segment
///   (linear in that number, per page), and walks the history of those who
///   had joined by the time asked about.
/// - `death_signals` looks at every person with a death record.
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
    /// Boxed, so that growing the table moves pointers, not segments.
    segments: HashMap<SegmentId, Box<Stored>>,
    orgs: HashMap<OrgId, Org>,
    deaths: Deaths,
}

/// One org's indexes and ledger. A segment's name key lives only in
/// `by_key`; the rare rename or delete recomputes it from the stored name.
#[derive(Default)]
struct Org {
    /// Tells this org's segments from other orgs' in `State::segments`.
    number: u32,
    by_key: HashMap<String, SegmentId>,
    /// The org's segments in creation order.
    by_creation: CreationOrder,
    ledger: Ledger,
    /// Everyone who ever joined one of the org's segments: their
    /// memberships and their place in the ledger, in one map slot, so a
    /// member call looks each person up once.
    people: HashMap<Pid, Person>,
}

/// A person, within one org.
struct Person {
    /// Their last membership entry, as an index into the org's ledger;
    /// earlier ones follow through [`Entry::prev`].
    last_entry: usize,
    /// One membership per live segment they ever joined (most people are
    /// in one or a few: kept inline).
    memberships: SmallVec<[(SegmentId, Membership); 1]>,
}

impl Person {
    fn membership(&self, segment: SegmentId) -> Option<&Membership> {
        self.memberships
            .iter()
            .find(|(s, _)| *s == segment)
            .map(|(_, m)| m)
    }

    fn membership_mut(&mut self, segment: SegmentId) -> Option<&mut Membership> {
        self.memberships
            .iter_mut()
            .find(|(s, _)| *s == segment)
            .map(|(_, m)| m)
    }
}

/// (`created_at` in µs, id as an integer) of an org's segments, sorted.
///
/// A sorted `Vec`, not a tree: creation times never go back within an org,
/// so a new segment nearly always goes at the end (one comparison and a
/// push); listing is a binary search and a slice. The price is paid by a
/// delete, which closes the gap (a move of the later keys, linear in the
/// org's segment count).
#[derive(Default)]
struct CreationOrder(Vec<(i64, u128)>);

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

struct Stored {
    org: u32,
    /// The segment as stored; its `current_size` is not kept here but read
    /// from `members`, so the two cannot disagree.
    segment: Segment,
    members: Members,
    /// (ledger `seq`, size after it) for every call that changed the size,
    /// in order: `size_as_of` is a binary search.
    sizes: Vec<(u64, u64)>,
}

#[derive(Default)]
struct Members {
    /// Every PID that ever joined, active or not, in the order they first
    /// joined: history survives removal. Their memberships are in
    /// [`Org::people`].
    ever: Vec<Pid>,
    /// The active members in list order.
    roster: Roster,
}

struct Membership {
    first_added_at: i64,
    last_added_at: i64,
    active: bool,
}

/// An org's ledger: entry `seq` is `entries[seq - 1]`, and entry times
/// never go backwards.
#[derive(Default)]
struct Ledger {
    entries: Vec<Entry>,
}

struct Entry {
    at: DateTime<Utc>,
    request_id: Option<Arc<str>>,
    segment: SegmentId,
    kind: ChangeKind,
    /// For a membership entry, the same person's previous one
    /// ([`NO_ENTRY`] if none).
    prev: usize,
}

/// The end of a person's chain of entries.
const NO_ENTRY: usize = usize::MAX;

/// Death records, in feed order: record `n` (from 1) is `records[n - 1]`.
#[derive(Default)]
struct Deaths {
    /// `None` where a record was before it moved to the end of the feed.
    records: Vec<Option<DeathRecord>>,
    by_obituary: HashMap<String, usize>,
    by_pid: HashMap<Pid, Vec<usize>>,
}

fn creation_key(created_at: DateTime<Utc>, id: SegmentId) -> (i64, u128) {
    (created_at.timestamp_micros(), id.as_uuid().as_u128())
}

fn time(micros: i64) -> DateTime<Utc> {
    // Every stored time came from a `DateTime`, so it converts back.
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

impl Ledger {
    /// The time the next entry gets: the stamp's, or the last entry's if
    /// that is later.
    fn next_at(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        self.entries.last().map_or(at, |last| last.at.max(at))
    }

    /// Appends an entry about a segment at `at` (from `next_at`); returns
    /// its `seq`.
    fn append(
        &mut self,
        at: DateTime<Utc>,
        request_id: &Option<Arc<str>>,
        segment: SegmentId,
        kind: ChangeKind,
    ) -> u64 {
        debug_assert!(
            kind.pid().is_none(),
            "membership entries go through append_member"
        );
        self.push(at, request_id, segment, kind, NO_ENTRY)
    }

    /// Appends a membership entry of `person`, and makes it their last.
    fn append_member(
        &mut self,
        person: &mut Person,
        at: DateTime<Utc>,
        request_id: &Option<Arc<str>>,
        segment: SegmentId,
        kind: ChangeKind,
    ) -> u64 {
        let prev = std::mem::replace(&mut person.last_entry, self.entries.len());
        self.push(at, request_id, segment, kind, prev)
    }

    fn push(
        &mut self,
        at: DateTime<Utc>,
        request_id: &Option<Arc<str>>,
        segment: SegmentId,
        kind: ChangeKind,
        prev: usize,
    ) -> u64 {
        self.entries.push(Entry {
            at,
            request_id: request_id.clone(),
            segment,
            kind,
            prev,
        });
        self.entries.len() as u64
    }

    /// The membership entries from `last` back, newest first, as indexes
    /// into `entries`.
    fn chain(&self, last: usize) -> impl Iterator<Item = usize> + '_ {
        std::iter::successors((last != NO_ENTRY).then_some(last), |&i| {
            let prev = self.entries[i].prev;
            (prev != NO_ENTRY).then_some(prev)
        })
    }

    /// The number of entries recorded at or before `at`: entries
    /// `1..=bound` are the ledger as of then.
    fn bound(&self, at: DateTime<Utc>) -> usize {
        self.entries.partition_point(|e| e.at <= at)
    }

    fn change(&self, index: usize) -> Change {
        let e = &self.entries[index];
        Change {
            seq: index as u64 + 1,
            at: e.at,
            request_id: e.request_id.as_deref().map(str::to_owned),
            segment_id: e.segment,
            kind: e.kind.clone(),
        }
    }
}

impl Org {
    /// A person's membership entries in this org, newest first.
    fn person_entries_rev(&self, pid: &Pid) -> impl Iterator<Item = usize> + '_ {
        let last = self.people.get(pid).map_or(NO_ENTRY, |p| p.last_entry);
        self.ledger.chain(last)
    }

    fn membership(&self, segment: SegmentId, pid: &Pid) -> Option<&Membership> {
        self.people.get(pid)?.membership(segment)
    }

    fn is_member(&self, segment: SegmentId, pid: &Pid) -> bool {
        self.membership(segment, pid).is_some_and(|m| m.active)
    }

    /// An active member of `segment`, as listed.
    fn member(&self, segment: SegmentId, first_added_at: i64, pid: &Pid) -> Member {
        Member {
            pid: pid.clone(),
            first_added_at: time(first_added_at),
            last_added_at: time(
                self.membership(segment, pid)
                    .map_or(first_added_at, |m| m.last_added_at),
            ),
        }
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
            .field("death_records", &state.deaths.records.len())
            .finish()
    }
}

impl State {
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
        self.roster.len() as u64
    }
}

impl SegmentStore for MemoryStore {
    fn insert_segment(&self, org: &OrgId, new: SegmentInsert, stamp: Stamp<'_>) -> Result<Segment> {
        let mut state = self.write();
        let state = &mut *state;
        let Entry_::Vacant(slot) = state.segments.entry(new.id) else {
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
        // Stores keep microseconds, whoever built the stamp.
        // Rows and ledger share one time, which never goes back in an org.
        let at = org.ledger.next_at(truncate_to_micros(stamp.at));
        let (segment, key) = new.into_segment(at);
        match org.by_key.entry(key) {
            Entry_::Occupied(_) => {
                return Err(Error::DuplicateName { name: segment.name });
            }
            Entry_::Vacant(k) => k.insert(segment.id),
        };
        org.by_creation
            .insert(creation_key(segment.created_at, segment.id));
        org.ledger.append(
            at,
            &stamp.request_id.map(Arc::from),
            segment.id,
            ChangeKind::Created {
                name: segment.name.clone(),
                description: segment.description.clone(),
            },
        );
        let stored = slot.insert(Box::new(Stored {
            org: org.number,
            segment,
            members: Members::default(),
            sizes: Vec::new(),
        }));
        Ok(stored.segment.clone())
    }

    fn segment(&self, org: &OrgId, id: SegmentId) -> Result<Segment> {
        Ok(self.read().stored(org, id)?.1.segment())
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
        Ok(org
            .by_creation
            .after(after.map(|c| creation_key(c.created_at(), c.id())))
            .iter()
            .take(limit)
            .map(|&(_, id)| state.segments[&SegmentId::from_uuid(Uuid::from_u128(id))].segment())
            .collect())
    }

    fn update_segment(
        &self,
        org_id: &OrgId,
        id: SegmentId,
        change: &SegmentChange,
        stamp: Stamp<'_>,
    ) -> Result<Segment> {
        let mut state = self.write();
        let (org, stored) = state.stored_mut(org_id, id)?;
        if change.is_no_op(&stored.segment) {
            return Ok(stored.segment());
        }
        let segment = &mut stored.segment;
        let kind = match change {
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
                ChangeKind::Renamed {
                    name: segment.name.clone(),
                }
            }
            SegmentChange::Describe(description) => {
                segment.description = description.clone();
                ChangeKind::DescriptionChanged {
                    description: description.clone(),
                }
            }
        };
        let at = org.ledger.next_at(truncate_to_micros(stamp.at));
        segment.updated_at = at;
        org.ledger
            .append(at, &stamp.request_id.map(Arc::from), id, kind);
        Ok(stored.segment())
    }

    fn delete_segment(&self, org_id: &OrgId, id: SegmentId, stamp: Stamp<'_>) -> Result<()> {
        let mut state = self.write();
        state.stored(org_id, id)?;
        let stored = state.segments.remove(&id).ok_or(Error::NotFound { id })?;
        let org = state
            .orgs
            .get_mut(org_id)
            .expect("a stored segment's org has indexes");
        org.by_key.remove(name_key(&stored.segment.name).as_str());
        org.by_creation
            .remove(creation_key(stored.segment.created_at, id));
        // The segment's memberships go with it; its people keep their
        // place in the ledger (their timelines outlive the segment).
        for pid in &stored.members.ever {
            if let Some(person) = org.people.get_mut(pid) {
                person.memberships.retain(|(s, _)| *s != id);
            }
        }
        let at = org.ledger.next_at(truncate_to_micros(stamp.at));
        org.ledger.append(
            at,
            &stamp.request_id.map(Arc::from),
            id,
            ChangeKind::Deleted,
        );
        // Dropping the members' lists outside the lock spares other
        // callers that part of a big delete.
        drop(state);
        drop(stored);
        Ok(())
    }

    fn add_members(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[Pid],
        stamp: Stamp<'_>,
    ) -> Result<MembersAdded> {
        let request_id = stamp.request_id.map(Arc::from);
        let mut state = self.write();
        let (org, stored) = state.stored_mut(org, id)?;
        let ledger_at = org.ledger.next_at(truncate_to_micros(stamp.at));
        let micros = ledger_at.timestamp_micros();
        let members = &mut stored.members;
        let (mut n_added, mut n_redundant) = (0, 0);
        let mut last_seq = None;
        let mut joined = Vec::new();
        for pid in pids {
            let person = org.people.entry(pid.clone()).or_insert_with(|| Person {
                last_entry: NO_ENTRY,
                memberships: SmallVec::new(),
            });
            let kind = match person.membership_mut(id) {
                None => {
                    person.memberships.push((
                        id,
                        Membership {
                            first_added_at: micros,
                            last_added_at: micros,
                            active: true,
                        },
                    ));
                    members.ever.push(pid.clone());
                    joined.push((micros, pid.clone()));
                    ChangeKind::MemberAdded { pid: pid.clone() }
                }
                Some(m) => {
                    m.last_added_at = micros;
                    if m.active {
                        n_redundant += 1;
                        continue;
                    }
                    m.active = true;
                    joined.push((m.first_added_at, pid.clone()));
                    ChangeKind::MemberReAdded { pid: pid.clone() }
                }
            };
            n_added += 1;
            last_seq = Some(
                org.ledger
                    .append_member(person, ledger_at, &request_id, id, kind),
            );
        }
        members.roster.insert(joined);
        if let Some(seq) = last_seq {
            stored.sizes.push((seq, members.size()));
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
        stamp: Stamp<'_>,
    ) -> Result<MembersRemoved> {
        let request_id = stamp.request_id.map(Arc::from);
        let mut state = self.write();
        let (org, stored) = state.stored_mut(org, id)?;
        let ledger_at = org.ledger.next_at(truncate_to_micros(stamp.at));
        let members = &mut stored.members;
        let mut n_deleted = 0;
        let mut last_seq = None;
        let mut left = Vec::new();
        for pid in pids {
            let Some(person) = org.people.get_mut(pid) else {
                continue;
            };
            if let Some(m) = person.membership_mut(id).filter(|m| m.active) {
                m.active = false;
                left.push((m.first_added_at, pid.clone()));
                n_deleted += 1;
                let kind = ChangeKind::MemberRemoved { pid: pid.clone() };
                last_seq = Some(
                    org.ledger
                        .append_member(person, ledger_at, &request_id, id, kind),
                );
            }
        }
        members.roster.remove(left);
        if let Some(seq) = last_seq {
            stored.sizes.push((seq, members.size()));
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
        let (org, stored) = state.stored(org, id)?;
        let after = after.map(|c| (c.first_added_at().timestamp_micros(), c.pid()));
        Ok(stored
            .members
            .roster
            .after(after, limit)
            .into_iter()
            .map(|(first, pid)| org.member(id, first, pid))
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
        let (org, stored) = state.stored(org, id)?;
        let members = &stored.members;
        let page = members
            .roster
            .at_offset(usize::try_from(offset).unwrap_or(usize::MAX), limit)
            .into_iter()
            .map(|(first, pid)| org.member(id, first, pid))
            .collect();
        Ok((page, members.size()))
    }

    fn changes_since(&self, org: &OrgId, after: u64, limit: usize) -> Result<Vec<Change>> {
        let state = self.read();
        let Some(org) = state.orgs.get(org) else {
            return Ok(Vec::new());
        };
        let start = usize::try_from(after).unwrap_or(usize::MAX);
        let end = start.saturating_add(limit).min(org.ledger.entries.len());
        Ok((start..end).map(|i| org.ledger.change(i)).collect())
    }

    fn timeline(&self, org: &OrgId, pid: &Pid) -> Result<Vec<Change>> {
        let state = self.read();
        Ok(state
            .orgs
            .get(org)
            .map(|org| {
                let mut changes: Vec<Change> = org
                    .person_entries_rev(pid)
                    .map(|i| org.ledger.change(i))
                    .collect();
                changes.reverse();
                changes
            })
            .unwrap_or_default())
    }

    fn size_as_of(&self, org: &OrgId, id: SegmentId, at: DateTime<Utc>) -> Result<u64> {
        let state = self.read();
        let (org, stored) = state.stored(org, id)?;
        let bound = org.ledger.bound(at) as u64;
        let samples = stored.sizes.partition_point(|&(seq, _)| seq <= bound);
        Ok(samples.checked_sub(1).map_or(0, |i| stored.sizes[i].1))
    }

    fn members_as_of(
        &self,
        org: &OrgId,
        id: SegmentId,
        at: DateTime<Utc>,
        after: Option<&Pid>,
        limit: usize,
    ) -> Result<Vec<PastMember>> {
        let state = self.read();
        let (org, stored) = state.stored(org, id)?;
        let ledger = &org.ledger;
        let bound = ledger.bound(at);
        let mut past: Vec<PastMember> = stored
            .members
            .ever
            .iter()
            .filter(|pid| after.is_none_or(|a| *pid > a))
            .filter_map(|pid| {
                let m = org.membership(id, pid)?;
                // Nobody who first joined after `at` can have been a member then.
                if m.first_added_at > at.timestamp_micros() {
                    return None;
                }
                // The person's last entry in this segment as of `at`.
                let last = org
                    .person_entries_rev(pid)
                    .find(|&i| i < bound && ledger.entries[i].segment == id)?;
                let entry = &ledger.entries[last];
                entry.kind.joins().then(|| PastMember {
                    pid: pid.clone(),
                    first_added_at: time(m.first_added_at),
                    joined_at: entry.at,
                })
            })
            .collect();
        // The page is the `limit` smallest PIDs: select them in linear time,
        // then sort only those.
        if past.len() > limit {
            past.select_nth_unstable_by(limit, |a, b| a.pid.cmp(&b.pid));
            past.truncate(limit);
        }
        past.sort_unstable_by(|a, b| a.pid.cmp(&b.pid));
        Ok(past)
    }

    fn upsert_deaths(&self, records: &[DeathRecord], _at: DateTime<Utc>) -> Result<(u64, u64)> {
        let mut state = self.write();
        let deaths = &mut state.deaths;
        let (mut inserted, mut updated) = (0, 0);
        for record in records {
            let mut record = record.clone();
            if let Some(&i) = deaths.by_obituary.get(&record.obituary_id) {
                let old = deaths.records[i]
                    .as_mut()
                    .expect("the index points at the record");
                record.first_observed_at = old.first_observed_at;
                updated += 1;
                if old.minerva_pid == record.minerva_pid {
                    *old = record;
                    continue;
                }
                // Another person now: the record moves to the end of the feed.
                let old = deaths.records[i].take().expect("checked above");
                if let Some(list) = deaths.by_pid.get_mut(&old.minerva_pid) {
                    list.retain(|&j| j != i);
                }
            } else {
                inserted += 1;
            }
            let i = deaths.records.len();
            deaths.by_obituary.insert(record.obituary_id.clone(), i);
            deaths
                .by_pid
                .entry(record.minerva_pid.clone())
                .or_default()
                .push(i);
            deaths.records.push(Some(record));
        }
        Ok((inserted, updated))
    }

    fn death_signals(
        &self,
        org: &OrgId,
        id: SegmentId,
        after: DeathCursor,
        limit: usize,
    ) -> Result<Vec<(DeathCursor, DeathRecord)>> {
        let state = self.read();
        let org = state.stored(org, id)?.0;
        let deaths = &state.deaths;
        let mut found: Vec<usize> = deaths
            .by_pid
            .iter()
            .filter(|(pid, _)| org.is_member(id, pid))
            .flat_map(|(_, list)| list.iter().copied())
            .filter(|&i| i as u64 + 1 > after.get())
            .collect();
        found.sort_unstable();
        Ok(found
            .into_iter()
            .take(limit)
            .filter_map(|i| {
                let record = deaths.records[i].clone()?;
                Some((DeathCursor::new(i as u64 + 1), record))
            })
            .collect())
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

#[cfg(all(test, feature = "conformance"))]
mod conformance {
    use super::*;

    crate::conformance_tests!(MemoryStore::new());

    mod through_arc_dyn {
        use super::*;
        crate::conformance_tests!(Arc::new(MemoryStore::new()) as Arc<dyn SegmentStore>);
    }
}
