//! History: the ledger of every change, and what it answers.

use chrono::{DateTime, Utc};

use crate::{MemberCursor, Pid, Provenance, SegmentId};

/// One entry of an org's ledger: a change to a segment or to its members.
///
/// The ledger is append-only and written in the same transaction as the
/// change it records. Entries of one org are numbered 1, 2, 3, … in the
/// order they were committed (`seq`), and their times never go backwards: a
/// change stamped earlier than the org's last entry is recorded at that
/// entry's time. A redundant add (of a member already present) records
/// nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Change {
    /// The entry's number in its org's ledger, from 1, without gaps.
    pub seq: u64,
    /// When the change was recorded.
    pub at: DateTime<Utc>,
    /// The request that made the change, if the caller named one.
    pub request_id: Option<String>,
    /// The segment changed (it may since have been deleted).
    pub segment_id: SegmentId,
    /// What changed.
    pub kind: ChangeKind,
    /// For a membership change made by a set operation
    /// ([`Segments::create_from`](crate::Segments::create_from) and its
    /// kin): the segments it read and when. `None` otherwise.
    pub provenance: Option<Provenance>,
}

/// What a ledger entry records.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum ChangeKind {
    /// The segment was created with this name and description.
    Created {
        /// The name, as stored.
        name: String,
        /// The description.
        description: Option<String>,
    },
    /// The segment was renamed.
    Renamed {
        /// The new name.
        name: String,
    },
    /// The segment's description was set or cleared.
    DescriptionChanged {
        /// The new description.
        description: Option<String>,
    },
    /// The segment was deleted, with its memberships.
    Deleted,
    /// A person joined the segment for the first time.
    MemberAdded {
        /// The person.
        pid: Pid,
    },
    /// A person who had been removed joined again.
    MemberReAdded {
        /// The person.
        pid: Pid,
    },
    /// A person left the segment.
    MemberRemoved {
        /// The person.
        pid: Pid,
    },
}

impl ChangeKind {
    /// The person a membership change is about; `None` for segment changes.
    pub fn pid(&self) -> Option<&Pid> {
        match self {
            Self::MemberAdded { pid }
            | Self::MemberReAdded { pid }
            | Self::MemberRemoved { pid } => Some(pid),
            _ => None,
        }
    }

    /// Whether the change makes the person a member (an add or a re-add).
    pub fn joins(&self) -> bool {
        matches!(self, Self::MemberAdded { .. } | Self::MemberReAdded { .. })
    }
}

/// A page of the change feed ([`Segments::changes_since`](crate::Segments::changes_since)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangePage {
    /// The entries after the sequence asked for, in order.
    pub changes: Vec<Change>,
    /// The sequence to ask for next: the last entry's, or the one asked for
    /// when there was nothing new. Polling with it never misses or repeats
    /// an entry.
    pub next: u64,
}

/// A member of a segment at a past time.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PastMember {
    /// The person.
    pub pid: Pid,
    /// When the person first joined the segment.
    pub first_added_at: DateTime<Utc>,
    /// When the membership in effect at that time began (the ledger time of
    /// the add or re-add).
    pub joined_at: DateTime<Utc>,
}

impl PastMember {
    /// The cursor that lists the past members after this one.
    pub fn cursor(&self) -> MemberCursor {
        MemberCursor::new(self.first_added_at, self.pid.clone())
    }
}

/// A page of [`Segments::members_as_of`](crate::Segments::members_as_of):
/// the members a segment had at a past time, in list order
/// (`first_added_at`, then PID).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembersAsOf {
    /// The members of this page.
    pub members: Vec<PastMember>,
    /// Where the next page starts; `None` on the last.
    pub next: Option<MemberCursor>,
}
