//! The ledger, and the reads of the past it answers.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::members::Person;
use super::{Org, Stored, time};
use crate::store::Page;
use crate::store::rules::clock::ledger_time;
use crate::{Change, ChangeKind, MemberCursor, PastMember, Pid, Provenance, SegmentId};

/// An org's ledger: entry `seq` is `entries[seq - 1]`, and entry times
/// (their calls' times) never go backwards. Its last entry and last call
/// are the org's head: the next entry's `seq` and the earliest time it may
/// have.
#[derive(Default)]
pub(super) struct OrgLedger {
    entries: Vec<Entry>,
    /// The calls that wrote the entries, in order: what all the entries of
    /// one call share, kept once.
    calls: Vec<CallRecord>,
    /// The provenance of each set operation's entries, which name it by
    /// index.
    origins: Vec<Provenance>,
    /// The segment changes, which their entries name by index (kept out
    /// of line, so that an entry stays small and appending one allocates
    /// nothing but the vectors' growth).
    segment_changes: Vec<SegmentEntry>,
}

/// Which set operation a call's membership entries came from: an index
/// into `OrgLedger::origins`, or [`Origin::NONE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Origin(usize);

impl Origin {
    /// A member call's entry.
    pub(super) const NONE: Origin = Origin(usize::MAX);
}

/// One entry, kept small: a fill writes one per member.
struct Entry {
    /// The call that wrote it, an index into `OrgLedger::calls`.
    call: usize,
    kind: EntryKind,
    /// For a membership entry, the same person's previous one
    /// ([`NO_ENTRY`] if none).
    prev: usize,
}

/// What an entry records: a membership change inline, the rare segment
/// change as an index into `OrgLedger::segment_changes`.
enum EntryKind {
    Member(MemberChange, Pid),
    Segment(usize),
}

/// What the entries of one call share.
struct CallRecord {
    at: DateTime<Utc>,
    request_id: Option<Arc<str>>,
    segment: SegmentId,
    /// The set operation the call's membership entries came from.
    origin: Origin,
    /// The index of its first entry.
    first: usize,
}

/// A segment change as the ledger keeps it: its text shared with the
/// stored segment (a create or a rename keeps the name once).
pub(super) enum SegmentEntry {
    Created {
        name: Arc<str>,
        description: Option<Arc<str>>,
    },
    Renamed {
        name: Arc<str>,
    },
    DescriptionChanged {
        description: Option<Arc<str>>,
    },
    Deleted,
}

impl SegmentEntry {
    fn change(&self) -> ChangeKind {
        let owned = |text: &Option<Arc<str>>| text.as_deref().map(str::to_owned);
        match self {
            Self::Created { name, description } => ChangeKind::Created {
                name: name.to_string(),
                description: owned(description),
            },
            Self::Renamed { name } => ChangeKind::Renamed {
                name: name.to_string(),
            },
            Self::DescriptionChanged { description } => ChangeKind::DescriptionChanged {
                description: owned(description),
            },
            Self::Deleted => ChangeKind::Deleted,
        }
    }
}

/// The membership changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MemberChange {
    Added,
    ReAdded,
    Removed,
}

impl EntryKind {
    fn joins(&self) -> bool {
        matches!(
            self,
            Self::Member(MemberChange::Added | MemberChange::ReAdded, _)
        )
    }

    fn change(&self, segment_changes: &[SegmentEntry]) -> ChangeKind {
        match self {
            Self::Member(MemberChange::Added, pid) => ChangeKind::MemberAdded { pid: pid.clone() },
            Self::Member(MemberChange::ReAdded, pid) => {
                ChangeKind::MemberReAdded { pid: pid.clone() }
            }
            Self::Member(MemberChange::Removed, pid) => {
                ChangeKind::MemberRemoved { pid: pid.clone() }
            }
            Self::Segment(i) => segment_changes[*i].change(),
        }
    }
}

/// One member call's entries, as they are appended: the call is recorded
/// with its first entry (a call that changes nothing records nothing).
pub(super) struct MemberCall<'a> {
    at: DateTime<Utc>,
    request_id: &'a Option<Arc<str>>,
    segment: SegmentId,
    origin: Origin,
    /// The call's index in `OrgLedger::calls`, once recorded.
    recorded: Option<usize>,
}

impl<'a> MemberCall<'a> {
    pub(super) fn new(
        at: DateTime<Utc>,
        request_id: &'a Option<Arc<str>>,
        segment: SegmentId,
        origin: Origin,
    ) -> Self {
        Self {
            at,
            request_id,
            segment,
            origin,
            recorded: None,
        }
    }
}

/// The end of a person's chain of entries.
pub(super) const NO_ENTRY: usize = usize::MAX;

impl OrgLedger {
    /// The time the next entry gets: the stamp's, or the last call's if
    /// that is later.
    pub(super) fn next_at(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        ledger_time(at, self.calls.last().map(|last| last.at))
    }

    /// Appends an entry about a segment at `at` (from `next_at`); returns
    /// its `seq`.
    pub(super) fn append(
        &mut self,
        at: DateTime<Utc>,
        request_id: &Option<Arc<str>>,
        segment: SegmentId,
        change: SegmentEntry,
    ) -> u64 {
        let index = self.segment_changes.len();
        self.segment_changes.push(change);
        let call = self.record_call(at, request_id, segment, Origin::NONE);
        self.push(call, EntryKind::Segment(index), NO_ENTRY)
    }

    /// Appends a membership entry of `person` for one call, and makes it
    /// their last.
    pub(super) fn append_member(
        &mut self,
        call: &mut MemberCall<'_>,
        person: &mut Person,
        change: MemberChange,
        pid: &Pid,
    ) -> u64 {
        let index = match call.recorded {
            Some(index) => index,
            None => {
                let index = self.record_call(call.at, call.request_id, call.segment, call.origin);
                call.recorded = Some(index);
                index
            }
        };
        let prev = std::mem::replace(&mut person.last_entry, self.entries.len());
        self.push(index, EntryKind::Member(change, pid.clone()), prev)
    }

    /// Records a call whose first entry comes next; returns its index.
    fn record_call(
        &mut self,
        at: DateTime<Utc>,
        request_id: &Option<Arc<str>>,
        segment: SegmentId,
        origin: Origin,
    ) -> usize {
        let index = self.calls.len();
        self.calls.push(CallRecord {
            at,
            request_id: request_id.clone(),
            segment,
            origin,
            first: self.entries.len(),
        });
        index
    }

    fn push(&mut self, call: usize, kind: EntryKind, prev: usize) -> u64 {
        self.entries.push(Entry { call, kind, prev });
        self.entries.len() as u64
    }

    /// The call that wrote entry `index`.
    fn call_of(&self, index: usize) -> &CallRecord {
        &self.calls[self.entries[index].call]
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
    pub(super) fn bound(&self, at: DateTime<Utc>) -> usize {
        let calls = self.calls.partition_point(|c| c.at <= at);
        self.calls
            .get(calls)
            .map_or(self.entries.len(), |next| next.first)
    }

    fn change(&self, index: usize) -> Change {
        let e = &self.entries[index];
        let call = self.call_of(index);
        let provenance = match e.kind {
            EntryKind::Member(..) if call.origin != Origin::NONE => {
                Some(self.origins[call.origin.0].clone())
            }
            _ => None,
        };
        Change {
            seq: index as u64 + 1,
            at: call.at,
            request_id: call.request_id.as_deref().map(str::to_owned),
            segment_id: call.segment,
            kind: e.kind.change(&self.segment_changes),
            provenance,
        }
    }

    /// The seq of the last entry; 0 for an empty ledger.
    pub(super) fn last_seq(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Records a set operation's provenance, for its entries to name.
    pub(super) fn origin(&mut self, provenance: Provenance) -> Origin {
        self.origins.push(provenance);
        Origin(self.origins.len() - 1)
    }

    /// Up to `limit` entries after `after`, in order.
    pub(super) fn since(&self, Page { after, limit }: Page<u64>) -> Vec<Change> {
        let start = usize::try_from(after).unwrap_or(usize::MAX);
        let end = start.saturating_add(limit).min(self.entries.len());
        (start..end).map(|i| self.change(i)).collect()
    }

    /// Up to `limit` of a person's entries (the last at index `last`) after
    /// `after`, in order: a walk back through their entries to `after`.
    pub(super) fn timeline(&self, last: usize, Page { after, limit }: Page<u64>) -> Vec<Change> {
        let after = usize::try_from(after).unwrap_or(usize::MAX);
        let mut newer: Vec<usize> = self.chain(last).take_while(|&i| i >= after).collect();
        // Oldest first, the first `limit` of them.
        newer.reverse();
        newer.truncate(limit);
        newer.into_iter().map(|i| self.change(i)).collect()
    }
}

/// Up to `limit` of the segment's members as of `at`, in list order after
/// `after`.
pub(super) fn members_as_of(
    org: &Org,
    stored: &Stored,
    id: SegmentId,
    at: DateTime<Utc>,
    Page { after, limit }: Page<Option<&MemberCursor>>,
) -> Vec<PastMember> {
    let ledger = &org.ledger;
    let bound = ledger.bound(at);
    let at_micros = at.timestamp_micros();
    let after = after.map(|c| (c.first_added_at().timestamp_micros(), c.pid()));
    stored
        .members
        .ever_from(after)
        // Nobody who first joined after `at` can have been a member then.
        .take_while(|&(first, _)| first <= at_micros)
        .filter_map(|(first, pid)| {
            // The person's last entry in this segment as of `at`.
            let last = org.person(pid)?.last_entry;
            let (entry, call) = ledger
                .chain(last)
                .filter(|&i| i < bound)
                .map(|i| (&ledger.entries[i], ledger.call_of(i)))
                .find(|(_, call)| call.segment == id)?;
            entry.kind.joins().then(|| PastMember {
                pid: pid.clone(),
                first_added_at: time(first),
                joined_at: call.at,
            })
        })
        .take(limit)
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use smallvec::SmallVec;
    use uuid::Uuid;

    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).unwrap()
    }

    fn person() -> Person {
        Person {
            last_entry: NO_ENTRY,
            memberships: SmallVec::new(),
        }
    }

    /// Entries read back the time, request id, segment and provenance
    /// their call recorded once; as-of bounds and the clock follow calls.
    #[test]
    fn calls_hold_what_their_entries_share() {
        let (a, b) = (
            SegmentId::from_uuid(Uuid::from_u128(1)),
            SegmentId::from_uuid(Uuid::from_u128(2)),
        );
        let (x_pid, y_pid) = (Pid::parse("p-x").unwrap(), Pid::parse("p-y").unwrap());
        let (mut x, mut y) = (person(), person());
        let mut ledger = OrgLedger::default();
        assert_eq!(ledger.next_at(t(10)), t(10));
        let created = SegmentEntry::Created {
            name: Arc::from("A"),
            description: None,
        };
        assert_eq!(ledger.append(t(10), &None, a, created), 1);
        // Two entries of one call from a set operation, at the same time
        // as the create.
        let provenance = Provenance {
            sources: vec![a],
            read_at: 1,
        };
        let origin = ledger.origin(provenance.clone());
        let request: Option<Arc<str>> = Some(Arc::from("req-1"));
        let mut call = MemberCall::new(ledger.next_at(t(10)), &request, b, origin);
        assert_eq!(
            ledger.append_member(&mut call, &mut x, MemberChange::Added, &x_pid),
            2
        );
        assert_eq!(
            ledger.append_member(&mut call, &mut y, MemberChange::Added, &y_pid),
            3
        );
        // A call that writes no entry records nothing: the clock stays.
        let _nothing = MemberCall::new(ledger.next_at(t(50)), &None, b, Origin::NONE);
        assert_eq!(ledger.next_at(t(5)), t(10), "never before the last call");
        let mut call = MemberCall::new(ledger.next_at(t(20)), &None, b, Origin::NONE);
        ledger.append_member(&mut call, &mut x, MemberChange::Removed, &x_pid);

        let bounds: Vec<usize> = [9, 10, 19, 20, 99].map(|s| ledger.bound(t(s))).into();
        assert_eq!(bounds, [0, 3, 3, 4, 4]);
        let changes = ledger.since(Page::new(0, 10));
        let seen: Vec<_> = changes
            .iter()
            .map(|c| {
                (
                    c.seq,
                    c.at,
                    c.request_id.as_deref(),
                    c.segment_id,
                    c.provenance.as_ref(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (1, t(10), None, a, None),
                (2, t(10), Some("req-1"), b, Some(&provenance)),
                (3, t(10), Some("req-1"), b, Some(&provenance)),
                (4, t(20), None, b, None),
            ]
        );
        assert_eq!(
            changes[0].kind,
            ChangeKind::Created {
                name: "A".into(),
                description: None
            }
        );
        assert_eq!(
            changes[3].kind,
            ChangeKind::MemberRemoved { pid: x_pid.clone() }
        );
        let x_seqs: Vec<u64> = ledger
            .timeline(x.last_entry, Page::new(0, 10))
            .iter()
            .map(|c| c.seq)
            .collect();
        assert_eq!(x_seqs, [2, 4], "a person's entries chain through calls");
    }
}
