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

/// What [`Segments::import_members`](crate::Segments::import_members) did,
/// over every batch of the import.
///
/// Every PID given is counted once, in exactly one of the three counts:
/// `n_added + n_redundant_additions + n_invalid` is the number of PIDs the
/// import read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ImportOutcome {
    /// PIDs that were not members and now are (re-added ones included).
    pub n_added: u64,
    /// PIDs that were members already, and repeats of a PID within one
    /// batch of [`IMPORT_BATCH_SIZE`](crate::limits::IMPORT_BATCH_SIZE).
    /// (A PID repeated in two batches is a redundant addition in the
    /// second, so this count does not depend on where batches split.)
    pub n_redundant_additions: u64,
    /// Every occurrence of a malformed PID, or of one the
    /// [`PersonDirectory`](crate::PersonDirectory) does not know.
    pub n_invalid: u64,
    /// The first [`MAX_IMPORT_INVALID_REPORTED`](crate::limits::MAX_IMPORT_INVALID_REPORTED)
    /// of those occurrences, in input order, each with its position.
    pub invalid_pids: Vec<InvalidPid>,
    /// The segment's size after the last batch, as that batch reported it
    /// (for an import with no PIDs, the segment's size when it was read).
    pub new_current_size: u64,
    /// How many batches were applied (or, under an idempotency key,
    /// replayed).
    pub n_batches: u64,
}

/// A PID an import skipped ([`ImportOutcome::invalid_pids`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct InvalidPid {
    /// Where it was in the input, from 0 (the first PID given is 0).
    pub position: u64,
    /// The text as given.
    pub pid: String,
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
/// use segments_engine::MemberCursor;
/// let c: MemberCursor = "1705314645123456.p-a1b2c3d4e5f6".parse()?;
/// assert_eq!(c.pid().as_str(), "p-a1b2c3d4e5f6");
/// assert_eq!(c.to_string(), "1705314645123456.p-a1b2c3d4e5f6");
/// # Ok::<(), segments_engine::Error>(())
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

/// The PIDs of one member call, settled once for every store: the
/// well-formed ones once each, in the order first given, with how many
/// times each was repeated; the malformed ones once each, in the order
/// first given.
#[derive(Debug, Default)]
pub(crate) struct SplitPids {
    /// Unique, well-formed PIDs, in the order first given.
    pub(crate) valid: Vec<Pid>,
    /// `repeats[i]`: how many more times `valid[i]` came after its first.
    pub(crate) repeats: Vec<u32>,
    pub(crate) invalid: Vec<String>,
}

impl SplitPids {
    pub(crate) fn new<P: AsRef<str>>(pids: &[P]) -> Self {
        let mut out = Self {
            valid: Vec::with_capacity(pids.len()),
            repeats: Vec::with_capacity(pids.len()),
            invalid: Vec::new(),
        };
        // Each distinct text once: its index in `valid`, or `None` when it
        // is malformed.
        let mut seen: foldhash::HashMap<&str, Option<usize>> = foldhash::HashMap::default();
        seen.reserve(pids.len());
        for pid in pids {
            let pid = pid.as_ref();
            match seen.entry(pid) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    if let Some(i) = *e.get() {
                        out.repeats[i] += 1;
                    }
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    if is_well_formed(pid) {
                        e.insert(Some(out.valid.len()));
                        out.valid.push(Pid::new_unchecked(pid));
                        out.repeats.push(0);
                    } else {
                        e.insert(None);
                        out.invalid.push(pid.to_owned());
                    }
                }
            }
        }
        out
    }

    /// Keeps the PIDs `keep` says yes to (in order, one answer per PID);
    /// the others are moved to `invalid`, after the malformed ones.
    pub(crate) fn retain_known(&mut self, keep: &[bool]) {
        let mut answers = keep.iter();
        let mut repeats = std::mem::take(&mut self.repeats).into_iter();
        let mut kept_repeats = Vec::with_capacity(self.valid.len());
        let invalid = &mut self.invalid;
        self.valid.retain(|pid| {
            let known = answers.next().copied().unwrap_or(false);
            let repeated = repeats.next().unwrap_or(0);
            if known {
                kept_repeats.push(repeated);
            } else {
                invalid.push(pid.as_str().to_owned());
            }
            known
        });
        self.repeats = kept_repeats;
    }

    /// How many PIDs of the call were repeats of a valid PID before them.
    pub(crate) fn n_repeats(&self) -> u64 {
        self.repeats.iter().map(|&n| u64::from(n)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitting_pids_keeps_order_and_reports_malformed_once() {
        let mut s = SplitPids::new(&[
            "p-b", "p-bad!", "p-a", "p-b", "p-bad!", "", "p-a", "p-c", "p-a",
        ]);
        let valid: Vec<_> = s.valid.iter().map(Pid::as_str).collect();
        assert_eq!(
            valid,
            ["p-b", "p-a", "p-c"],
            "each PID once, in the order first given"
        );
        assert_eq!(s.repeats, [1, 2, 0], "repeats are counted per PID");
        assert_eq!(s.n_repeats(), 3);
        assert_eq!(
            s.invalid,
            ["p-bad!", ""],
            "each malformed PID once, in order"
        );
        s.retain_known(&[true, false, true]);
        let valid: Vec<_> = s.valid.iter().map(Pid::as_str).collect();
        assert_eq!(valid, ["p-b", "p-c"]);
        assert_eq!(
            s.n_repeats(),
            1,
            "repeats of an unknown PID are not redundant adds"
        );
        assert_eq!(
            s.invalid,
            ["p-bad!", "", "p-a"],
            "unknown PIDs follow the malformed ones"
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
