//! People and memberships: who is in a segment, since when.

use std::sync::Arc;

use foldhash::{HashMap, HashSet, HashSetExt};
use smallvec::SmallVec;

use super::ledger::{MemberCall, MemberChange, Origin};
use super::roster::Roster;
use super::{Org, SizeSample, Stored, time};
use crate::store::rules::members::{self as plan, Joined, Standing};
use crate::store::{MemberSlice, MemberStart, Page, Stamp, StoreAddOutcome, StoreRemoveOutcome};
use crate::{Member, Pid, Result, SegmentId};

/// A person, within one org.
pub(super) struct Person {
    /// Their last membership entry, as an index into the org's ledger;
    /// earlier ones follow through the entries' `prev`.
    pub(super) last_entry: usize,
    /// One membership per live segment they ever joined (most people are
    /// in one or a few: kept inline).
    pub(super) memberships: SmallVec<[(SegmentId, Membership); 1]>,
}

impl Person {
    pub(super) fn membership(&self, segment: SegmentId) -> Option<&Membership> {
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

pub(super) struct Membership {
    pub(super) first_added_at: i64,
    pub(super) last_added_at: i64,
    pub(super) active: bool,
}

/// A segment's members: everyone who ever joined, split in two rosters
/// (history survives removal). Their memberships are in [`Org::people`].
#[derive(Default)]
pub(super) struct Members {
    /// The active members in list order.
    pub(super) active: Roster,
    /// Those who left and have not come back, in list order (empty for a
    /// segment nobody left, so a fill writes one roster).
    pub(super) removed: Roster,
}

impl Members {
    pub(super) fn size(&self) -> u64 {
        self.active.len() as u64
    }

    /// Everyone who ever joined, in list order after `after`: the two
    /// rosters merged.
    pub(super) fn ever_from<'a>(
        &'a self,
        after: Option<(i64, &'a Pid)>,
    ) -> impl Iterator<Item = (i64, &'a Pid)> + 'a {
        let mut active = self.active.iter_from(after).peekable();
        let mut removed = self.removed.iter_from(after).peekable();
        std::iter::from_fn(move || match (active.peek(), removed.peek()) {
            (Some(a), Some(r)) if r < a => removed.next(),
            (Some(_), _) => active.next(),
            (None, _) => removed.next(),
        })
    }
}

/// The person of `pid`, added at the end of the org's people if the org
/// never saw them.
fn person_or_new<'a>(people: &'a mut HashMap<Pid, Person>, pid: &Pid) -> &'a mut Person {
    people.entry(pid.clone()).or_insert_with(|| Person {
        last_entry: super::ledger::NO_ENTRY,
        memberships: SmallVec::new(),
    })
}

impl Org {
    pub(super) fn person(&self, pid: &Pid) -> Option<&Person> {
        self.people.get(pid)
    }

    pub(super) fn membership(&self, segment: SegmentId, pid: &Pid) -> Option<&Membership> {
        self.person(pid)?.membership(segment)
    }

    pub(super) fn is_member(&self, segment: SegmentId, pid: &Pid) -> bool {
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

/// Each of `pids` with its place and what it is to `segment` when its
/// turn comes: a PID the call gave before stands as `repeat` (the service
/// gives unique PIDs; a store given a repeat counts it once).
fn standings<'p>(
    org: &Org,
    segment: SegmentId,
    pids: &'p [Pid],
    repeat: Standing,
) -> impl Iterator<Item = (usize, &'p Pid, Standing)> {
    let mut seen = HashSet::with_capacity(pids.len());
    pids.iter().enumerate().map(move |(place, pid)| {
        let standing = if !seen.insert(pid) {
            repeat
        } else {
            match org.membership(segment, pid) {
                None => Standing::NotMember,
                Some(m) if m.active => Standing::Member,
                Some(_) => Standing::Removed,
            }
        };
        (place, pid, standing)
    })
}

/// Makes each of `pids` an active member, recording each entry with
/// `origin`; with a dry run, only counts. The split comes from
/// [`plan::add`], as in every backend.
pub(super) fn add(
    org: &mut Org,
    stored: &mut Stored,
    id: SegmentId,
    pids: &[Pid],
    stamp: Stamp<'_>,
    origin: Origin,
) -> StoreAddOutcome {
    // A repeat is a member by its turn: redundant.
    let plan = plan::add(standings(org, id, pids, Standing::Member));
    if stamp.dry_run {
        return plan.outcome(stored.members.size());
    }
    let request_id = stamp.request_id.map(Arc::from);
    let ledger_at = org.ledger.next_at(stamp.at);
    let micros = ledger_at.timestamp_micros();
    let mut new = Vec::with_capacity(plan.insert.len());
    for &pid in &plan.insert {
        person_or_new(&mut org.people, pid).memberships.push((
            id,
            Membership {
                first_added_at: micros,
                last_added_at: micros,
                active: true,
            },
        ));
        new.push((micros, pid.clone()));
    }
    let mut rejoined = Vec::with_capacity(plan.readd.len());
    for &pid in plan.readd.iter().chain(&plan.touch) {
        if let Some(m) = org.people.get_mut(pid).and_then(|p| p.membership_mut(id)) {
            m.last_added_at = micros;
            if !m.active {
                m.active = true;
                rejoined.push((m.first_added_at, pid.clone()));
            }
        }
    }
    let mut call = MemberCall::new(ledger_at, &request_id, id, origin);
    let mut last_seq = None;
    for &(joined, pid) in &plan.entries {
        let kind = match joined {
            Joined::Added => MemberChange::Added,
            Joined::ReAdded => MemberChange::ReAdded,
        };
        if let Some(person) = org.people.get_mut(pid) {
            last_seq = Some(org.ledger.append_member(&mut call, person, kind, pid));
        }
    }
    let out = plan.outcome(stored.members.size());
    let members = &mut stored.members;
    members.active.insert(new);
    members.removed.remove(rejoined.clone());
    members.active.insert(rejoined);
    if let Some(seq) = last_seq {
        stored.sizes.push(SizeSample {
            at: micros,
            seq,
            size: members.size(),
        });
    }
    out
}

/// Ends the active membership of each of `pids` that has one, recording
/// each entry with `origin`; with a dry run, only counts. Who leaves comes
/// from [`plan::remove`], as in every backend.
pub(super) fn remove(
    org: &mut Org,
    stored: &mut Stored,
    id: SegmentId,
    pids: &[Pid],
    stamp: Stamp<'_>,
    origin: Origin,
) -> Result<StoreRemoveOutcome> {
    // A repeat has left by its turn.
    let leaving = plan::remove(standings(org, id, pids, Standing::Removed));
    let out = plan::removed(id, stored.members.size(), leaving.len() as u64)?;
    if stamp.dry_run {
        return Ok(out);
    }
    let request_id = stamp.request_id.map(Arc::from);
    let ledger_at = org.ledger.next_at(stamp.at);
    let mut call = MemberCall::new(ledger_at, &request_id, id, origin);
    let mut last_seq = None;
    let mut left = Vec::with_capacity(leaving.len());
    for pid in leaving {
        let Some(person) = org.people.get_mut(pid) else {
            continue;
        };
        if let Some(m) = person.membership_mut(id) {
            m.active = false;
            left.push((m.first_added_at, pid.clone()));
        }
        last_seq = Some(
            org.ledger
                .append_member(&mut call, person, MemberChange::Removed, pid),
        );
    }
    let members = &mut stored.members;
    members.active.remove(left.clone());
    members.removed.insert(left);
    if let Some(seq) = last_seq {
        stored.sizes.push(SizeSample {
            at: ledger_at.timestamp_micros(),
            seq,
            size: members.size(),
        });
    }
    Ok(out)
}

pub(super) fn slice(
    org: &Org,
    stored: &Stored,
    id: SegmentId,
    Page { after: from, limit }: Page<MemberStart<'_>>,
) -> MemberSlice {
    let roster = &stored.members.active;
    let found = match from {
        MemberStart::After(c) => roster.after(
            Some((c.first_added_at().timestamp_micros(), c.pid())),
            limit,
        ),
        MemberStart::Offset(offset) => {
            roster.at_offset(usize::try_from(offset).unwrap_or(usize::MAX), limit)
        }
    };
    MemberSlice {
        members: found
            .into_iter()
            .map(|(first, pid)| org.member(id, first, pid))
            .collect(),
        current_size: stored.members.size(),
        members_seq: stored.members_seq(),
    }
}
