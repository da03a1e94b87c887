//! Reads of the past: a segment's size and members as of a time, in SQL.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::ledger::{joins, pid_at};
use super::segments::locate;
use super::{SqliteDb, micros, time_at};
use crate::store::Page;
use crate::{MemberCursor, OrgId, PastMember, Result, SegmentId};

/// The segment's size after its last change at or before a time. Entry
/// times never go back within an org, so "every entry recorded at or before
/// a time" is a prefix of the ledger, and each read of the past filters on
/// time directly.
pub(super) const SIZE_AT: &str = "SELECT size FROM segment_sizes WHERE segment = ?1 AND at <= ?2
     ORDER BY at DESC, seq DESC LIMIT 1";

/// The segment's size as of `at`. Call inside one read transaction.
pub(super) fn size(
    conn: &Connection,
    org: &OrgId,
    id: SegmentId,
    at: DateTime<Utc>,
) -> Result<u64> {
    let segment = locate(conn, org, id)?;
    let size: Option<i64> = conn
        .prepare_cached(SIZE_AT)
        .db()?
        .query_row(params![segment.number, micros(at)], |r| r.get(0))
        .optional()
        .db()?;
    Ok(size.map_or(0, |s| u64::try_from(s).unwrap_or(0)))
}

/// Everyone who ever joined the segment, in list order after a position,
/// up to a time.
pub(super) const EVER_AFTER: &str = "SELECT person, pid, first_added_at FROM segment_memberships
     WHERE segment = ?1 AND (first_added_at, pid) > (?2, ?3) AND first_added_at <= ?4
     ORDER BY first_added_at, pid";

/// A person's last entry in one segment, at or before a time: walked back
/// through the person's entries in every segment.
pub(super) const LAST_ENTRY: &str = "SELECT kind, at FROM segment_ledger
     WHERE person = ?1 AND at <= ?2 AND segment = ?3
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
    Page { after, limit }: Page<Option<&MemberCursor>>,
) -> Result<Vec<PastMember>> {
    let segment = locate(conn, org, id)?;
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
            .query_row(params![person, micros(at), id.as_bytes()], |r| {
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
