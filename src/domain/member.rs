//! Members: who is in a segment, since when, and what a member call did.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::domain::pid::{Pid, is_well_formed};
use crate::error::{Field, Rule, ValidationError};

/// One active member of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Member {
    /// The person.
    pub pid: Pid,
    /// When the person first joined the segment. Kept across removal: a
    /// person removed and added again gets this original time back.
    pub first_added_at: DateTime<Utc>,
    /// The last time the person was added, redundant adds included.
    pub last_added_at: DateTime<Utc>,
}

impl Member {
    /// The cursor that lists the members after this one.
    pub fn cursor(&self) -> MemberCursor {
        MemberCursor {
            first_added_at: self.first_added_at,
            pid: self.pid.clone(),
        }
    }
}

/// What [`Segments::add_members`](crate::Segments::add_members) did, in the
/// documented API's words.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AddOutcome {
    /// PIDs that were not members and now are (re-added ones included).
    pub n_added: u64,
    /// PIDs that were members already (their `last_added_at` moved), and
    /// repeats of a PID within the call.
    pub n_redundant_additions: u64,
    /// PIDs that were skipped, each once: the malformed ones in the order
    /// first given, then those the [`PersonDirectory`](crate::PersonDirectory)
    /// does not know.
    pub invalid_pids: Vec<String>,
    /// The segment's size after the call.
    pub new_current_size: u64,
}

/// What [`Segments::remove_members`](crate::Segments::remove_members) did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RemoveOutcome {
    /// PIDs that were members and no longer are. Well-formed PIDs that were
    /// not members are neither counted nor an error.
    pub n_deleted: u64,
    /// Malformed PIDs, each once, in the order first given. They were skipped.
    pub invalid_pids: Vec<String>,
    /// The segment's size after the call.
    pub new_current_size: u64,
}

/// One page of the documented page API
/// ([`Segments::members_page`](crate::Segments::members_page)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MembersPage {
    /// Up to [`MEMBERS_PAGE_SIZE`](crate::limits::MEMBERS_PAGE_SIZE) members;
    /// empty past the end.
    pub items: Vec<Member>,
    /// The number of members of the segment (its `current_size`).
    pub total_count: u64,
    /// The page number asked for, from 1.
    pub page: u64,
    /// Whether a later page holds more members.
    pub list_continues: bool,
}

/// One page of the cursor API ([`Segments::members`](crate::Segments::members)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberList {
    /// The members of this page, in order.
    pub members: Vec<Member>,
    /// Where the next page starts; `None` when this page is the last.
    pub next: Option<MemberCursor>,
}

/// A position in a segment's members, which are ordered by
/// `first_added_at`, then PID.
///
/// The cursor is a position, not a row: it stays valid when the member it
/// came from leaves. Its text form is `{first_added_at in Unix µs}.{pid}`.
///
/// ```
/// use segments::MemberCursor;
/// let c: MemberCursor = "1705314645123456.p-a1b2c3d4e5f6".parse()?;
/// assert_eq!(c.pid().as_str(), "p-a1b2c3d4e5f6");
/// assert_eq!(c.to_string(), "1705314645123456.p-a1b2c3d4e5f6");
/// # Ok::<(), segments::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberCursor {
    first_added_at: DateTime<Utc>,
    pid: Pid,
}

impl MemberCursor {
    /// The position just after the member `pid` who first joined at
    /// `first_added_at`.
    pub fn new(first_added_at: DateTime<Utc>, pid: Pid) -> Self {
        Self {
            first_added_at,
            pid,
        }
    }

    /// `first_added_at` of the last member seen.
    pub fn first_added_at(&self) -> DateTime<Utc> {
        self.first_added_at
    }

    /// PID of the last member seen.
    pub fn pid(&self) -> &Pid {
        &self.pid
    }
}

impl fmt::Display for MemberCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.first_added_at.timestamp_micros(), self.pid)
    }
}

impl FromStr for MemberCursor {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || {
            ValidationError::new(
                Field::Cursor,
                Rule::Malformed {
                    expected: "a cursor returned by a previous members call",
                },
            )
        };
        let (micros, pid) = s.split_once('.').ok_or_else(malformed)?;
        let micros: i64 = micros.parse().map_err(|_| malformed())?;
        let first_added_at = DateTime::from_timestamp_micros(micros).ok_or_else(malformed)?;
        let pid = Pid::parse(pid).map_err(|_| malformed())?;
        Ok(Self {
            first_added_at,
            pid,
        })
    }
}

/// Options of [`Segments::members`](crate::Segments::members): where to
/// start and how many to return.
///
/// ```
/// use segments::MemberOptions;
/// let first_page = MemberOptions::new().limit(1_000);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberOptions {
    pub(crate) after: Option<MemberCursor>,
    pub(crate) limit: Option<usize>,
}

impl MemberOptions {
    /// From the first member, [`DEFAULT_PAGE_LIMIT`](crate::limits::DEFAULT_PAGE_LIMIT) members.
    pub fn new() -> Self {
        Self::default()
    }

    /// Start after this cursor (exclusive).
    pub fn after(mut self, cursor: MemberCursor) -> Self {
        self.after = Some(cursor);
        self
    }

    /// Return at most `limit` members, 1 to [`MAX_PAGE_LIMIT`](crate::limits::MAX_PAGE_LIMIT).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }
}

/// What a member store call did; the service adds the malformed PIDs it
/// settled itself to make an [`AddOutcome`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MembersAdded {
    /// PIDs that were not active members and now are.
    pub n_added: u64,
    /// PIDs that were active members already; their `last_added_at` moved.
    pub n_redundant: u64,
    /// The segment's size after the call.
    pub new_current_size: u64,
}

/// What a member store removal did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MembersRemoved {
    /// PIDs that were active members and no longer are.
    pub n_deleted: u64,
    /// The segment's size after the call.
    pub new_current_size: u64,
}

/// The PIDs of one member call, split: the well-formed ones in the order
/// given, repeats included (a store counts a repeat as redundant, because
/// the first occurrence has made it a member), and the malformed ones once
/// each, in the order first given.
#[derive(Debug, Default)]
pub(crate) struct SplitPids {
    pub(crate) valid: Vec<Pid>,
    pub(crate) invalid: Vec<String>,
}

impl SplitPids {
    pub(crate) fn new<P: AsRef<str>>(pids: &[P]) -> Self {
        let mut out = Self {
            valid: Vec::with_capacity(pids.len()),
            invalid: Vec::new(),
        };
        let mut seen_invalid = foldhash::HashSet::default();
        for pid in pids {
            let pid = pid.as_ref();
            if is_well_formed(pid) {
                out.valid.push(Pid::new_unchecked(pid));
            } else if seen_invalid.insert(pid) {
                out.invalid.push(pid.to_owned());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitting_pids_keeps_order_and_reports_malformed_once() {
        let s = SplitPids::new(&["p-b", "p-bad!", "p-a", "p-b", "p-bad!", "", "p-a", "p-c"]);
        let valid: Vec<_> = s.valid.iter().map(Pid::as_str).collect();
        assert_eq!(
            valid,
            ["p-b", "p-a", "p-b", "p-a", "p-c"],
            "repeats stay for the store to count"
        );
        assert_eq!(
            s.invalid,
            ["p-bad!", ""],
            "each malformed PID once, in order"
        );
    }

    #[test]
    fn member_cursor_text_round_trips() {
        let c: MemberCursor = "-5.p-abc".parse().unwrap();
        assert_eq!(c.to_string().parse::<MemberCursor>().unwrap(), c);
        for bad in [
            "",
            "12",
            "x.p-abc",
            "12.p-ABC",
            "12.",
            "99999999999999999999.p-a",
        ] {
            assert_eq!(
                bad.parse::<MemberCursor>().unwrap_err().field(),
                Field::Cursor,
                "{bad:?}"
            );
        }
    }
}
