//! People and memberships: who is in a segment, since when.

use std::sync::Arc;

use foldhash::HashMap;
use smallvec::SmallVec;

use super::ledger::{MemberCall, MemberChange, Origin};
use super::roster::Roster;
use super::{Org, SizeSample, Stored, time};
use crate::store::{MemberSlice, MemberStart, MembersAdded, MembersRemoved, Stamp};
use crate::{Member, Pid, SegmentId};

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

/// Makes each of `pids` an active member, recording each entry with
/// `origin`; with a dry run, only counts.
pub(super) fn add(
    org: &mut Org,
    stored: &mut Stored,
    id: SegmentId,
    pids: &[Pid],
    stamp: Stamp<'_>,
    origin: Origin,
) -> MembersAdded {
    if stamp.dry_run {
        let n_redundant = pids.iter().filter(|pid| org.is_member(id, pid)).count() as u64;
        let n_added = pids.len() as u64 - n_redundant;
        return MembersAdded {
            n_added,
            n_redundant,
            new_current_size: stored.members.size() + n_added,
        };
    }
    let request_id = stamp.request_id.map(Arc::from);
    let ledger_at = org.ledger.next_at(stamp.at);
    let mut call = MemberCall::new(ledger_at, &request_id, id, origin);
    let micros = ledger_at.timestamp_micros();
    let mut n_redundant = 0;
    let mut last_seq = None;
    let (mut new, mut rejoined) = (Vec::new(), Vec::new());
    for pid in pids {
        let person = person_or_new(&mut org.people, pid);
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
                new.push((micros, pid.clone()));
                MemberChange::Added
            }
            Some(m) => {
                m.last_added_at = micros;
                if m.active {
                    n_redundant += 1;
                    continue;
                }
                m.active = true;
                rejoined.push((m.first_added_at, pid.clone()));
                MemberChange::ReAdded
            }
        };
        last_seq = Some(org.ledger.append_member(&mut call, person, kind, pid));
    }
    let members = &mut stored.members;
    let n_added = (new.len() + rejoined.len()) as u64;
    members.active.insert(new);
    members.removed.remove(rejoined.clone());
    members.active.insert(rejoined);
    if let Some(seq) = last_seq {
        stored.sizes.push(SizeSample {
            at: ledger_at.timestamp_micros(),
            seq,
            size: members.size(),
        });
    }
    MembersAdded {
        n_added,
        n_redundant,
        new_current_size: members.size(),
    }
}

/// Ends the active membership of each of `pids` that has one, recording
/// each entry with `origin`; with a dry run, only counts.
pub(super) fn remove(
    org: &mut Org,
    stored: &mut Stored,
    id: SegmentId,
    pids: &[Pid],
    stamp: Stamp<'_>,
    origin: Origin,
) -> MembersRemoved {
    if stamp.dry_run {
        let n_deleted = pids.iter().filter(|pid| org.is_member(id, pid)).count() as u64;
        return MembersRemoved {
            n_deleted,
            new_current_size: stored.members.size() - n_deleted,
        };
    }
    let request_id = stamp.request_id.map(Arc::from);
    let ledger_at = org.ledger.next_at(stamp.at);
    let mut call = MemberCall::new(ledger_at, &request_id, id, origin);
    let mut last_seq = None;
    let mut left = Vec::new();
    for pid in pids {
        let Some(person) = org.people.get_mut(pid) else {
            continue;
        };
        if let Some(m) = person.membership_mut(id).filter(|m| m.active) {
            m.active = false;
            left.push((m.first_added_at, pid.clone()));
            last_seq =
                Some(
                    org.ledger
                        .append_member(&mut call, person, MemberChange::Removed, pid),
                );
        }
    }
    let members = &mut stored.members;
    let n_deleted = left.len() as u64;
    members.active.remove(left.clone());
    members.removed.insert(left);
    if let Some(seq) = last_seq {
        stored.sizes.push(SizeSample {
            at: ledger_at.timestamp_micros(),
            seq,
            size: members.size(),
        });
    }
    MembersRemoved {
        n_deleted,
        new_current_size: members.size(),
    }
}

pub(super) fn slice(
    org: &Org,
    stored: &Stored,
    id: SegmentId,
    from: MemberStart<'_>,
    limit: usize,
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
