//! Reads of the past: a segment's size and members as of a time, in SQL.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::ledger::{joins, last_seq, pid_at};
use super::segments::locate;
use super::{Db, micros, time_at};
use crate::{MemberCursor, OrgId, PastMember, Result, SegmentId};

/// The time of one of an org's entries.
pub(super) const ENTRY_AT: &str = "SELECT at FROM segment_ledger WHERE org = ?1 AND seq = ?2";

/// The number of the org's ledger entries recorded at or before `at`.
/// Entry times never go back, so a binary search over `seq` finds it with
/// a few primary-key reads, whatever the length of the ledger.
pub(super) fn bound(conn: &Connection, org: &OrgId, at: DateTime<Utc>) -> Result<i64> {
    let at = micros(at);
    let mut entry_at = conn.prepare_cached(ENTRY_AT).db()?;
    let mut at_of = |seq: i64| -> Result<i64> {
        entry_at
            .query_row(params![org.as_str(), seq], |r| r.get(0))
            .optional()
            .db()?
            .ok_or_else(|| {
                crate::Error::storage(format!("org {org}: ledger entry {seq} is missing"))
            })
    };
    // Invariant: entries 1..=lo are at or before `at`; entries after hi are
    // after it.
    let (mut lo, mut hi) = (0, last_seq(conn, org)?);
    while lo < hi {
        let mid = lo + (hi - lo + 1) / 2;
        if at_of(mid)? <= at {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(lo)
}

/// The segment's size after the last entry at or before a seq.
pub(super) const SIZE_AT: &str =
    "SELECT size FROM segment_sizes WHERE segment = ?1 AND seq <= ?2 ORDER BY seq DESC LIMIT 1";

/// The segment's size as of `at`. Call inside one read transaction.
pub(super) fn size(
    conn: &Connection,
    org: &OrgId,
    id: SegmentId,
    at: DateTime<Utc>,
) -> Result<u64> {
    let segment = locate(conn, org, id)?;
    let bound = bound(conn, org, at)?;
    let size: Option<i64> = conn
        .prepare_cached(SIZE_AT)
        .db()?
        .query_row(params![segment.number, bound], |r| r.get(0))
        .optional()
        .db()?;
    Ok(size.map_or(0, |s| u64::try_from(s).unwrap_or(0)))
}

/// Everyone who ever joined the segment, in list order after a position,
/// up to a time.
pub(super) const EVER_AFTER: &str = "SELECT person, pid, first_added_at FROM segment_memberships
     WHERE segment = ?1 AND (first_added_at, pid) > (?2, ?3) AND first_added_at <= ?4
     ORDER BY first_added_at, pid";

/// A person's last entry in one segment, at or before a seq: walked back
/// through the person's entries in every segment.
pub(super) const LAST_ENTRY: &str = "SELECT kind, at FROM segment_ledger
     WHERE person = ?1 AND seq <= ?2 AND segment = ?3
     ORDER BY seq DESC LIMIT 1";

/// Up to `limit` of the segment's members as of `at`, in list order after
/// `after`. Call inside one read transaction.
///
/// Walks everyone who ever joined the segment in list order from the
/// cursor, stopping at the first who joined after `at`, and looks up each
/// one's last entry in the segment as of then.
pub(super) fn members(
    conn: &Connection,
    org: &OrgId,
    id: SegmentId,
    at: DateTime<Utc>,
    after: Option<&MemberCursor>,
    limit: usize,
) -> Result<Vec<PastMember>> {
    let segment = locate(conn, org, id)?;
    let bound = bound(conn, org, at)?;
    let mut last_entry = conn.prepare_cached(LAST_ENTRY).db()?;
    let mut candidates = conn.prepare_cached(EVER_AFTER).db()?;
    let (after_at, after_pid) = after.map_or((i64::MIN, ""), |c| {
        (micros(c.first_added_at()), c.pid().as_str())
    });
    let mut rows = candidates
        .query(params![segment.number, after_at, after_pid, micros(at)])
        .db()?;
    let mut past = Vec::new();
    while past.len() < limit {
        let Some(row) = rows.next().db()? else { break };
        let person: i64 = row.get(0).db()?;
        let entry: Option<(i16, i64)> = last_entry
            .query_row(params![person, bound, id.as_bytes()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .db()?;
        if let Some((_, joined)) = entry.filter(|(kind, _)| joins(*kind)) {
            past.push(PastMember {
                pid: pid_at(row, 1).db()?,
                first_added_at: time_at(row, 2).db()?,
                joined_at: DateTime::from_timestamp_micros(joined).ok_or_else(|| {
                    crate::Error::storage(format!("stored time {joined} is out of range"))
                })?,
            });
        }
    }
    Ok(past)
}
