//! Reads of the past: a segment's size and members as of a time, in SQL.
//!
//! Entry times never go back within an org, so "every entry recorded at or
//! before a time" is a prefix of the ledger, and each read filters on time
//! directly.

use chrono::{DateTime, Utc};

use super::ledger::{ADDED, READDED, pid_at};
use super::segments::locate;
use super::{Tx, count, from_micros, get, micros, sql_int, time};
use crate::{MemberCursor, OrgId, PastMember, Result, SegmentId};

/// The segment's size after its last size sample at or before a time.
pub(super) const SIZE_AT: &str = "SELECT size FROM segment_sizes
     WHERE org = $1 AND segment = $2 AND at <= $3
     ORDER BY at DESC, seq DESC LIMIT 1";

/// The segment's size as of `at`. Call inside one read transaction.
pub(super) fn size(tx: &mut Tx<'_>, org: &OrgId, id: SegmentId, at: DateTime<Utc>) -> Result<u64> {
    locate(tx, org, id)?;
    match tx.query_opt(SIZE_AT, &[&org.as_str(), id.as_uuid(), &micros(at)])? {
        Some(row) => count(&row, 0),
        None => Ok(0),
    }
}

/// The segment's members as of a time, in list order after a position:
/// everyone who ever joined, walked in list order up to those who joined
/// after the time, each with their last entry in the segment as of then.
pub(super) const MEMBERS_AT: &str = "SELECT m.pid, m.first_added_at, e.at
     FROM segment_memberships m
     CROSS JOIN LATERAL (
         SELECT l.kind, l.at FROM segment_ledger l
         WHERE l.org = m.org AND l.person = m.person AND l.at <= $5 AND l.segment = m.segment
         ORDER BY l.seq DESC LIMIT 1
     ) e
     WHERE m.org = $1 AND m.segment = $2 AND (m.first_added_at, m.pid) > ($3, $4)
       AND m.first_added_at <= $5 AND e.kind IN ($6, $7)
     ORDER BY m.first_added_at, m.pid LIMIT $8";

/// Up to `limit` of the segment's members as of `at`, in list order after
/// `after`. Call inside one read transaction.
pub(super) fn members(
    tx: &mut Tx<'_>,
    org: &OrgId,
    id: SegmentId,
    at: DateTime<Utc>,
    after: Option<&MemberCursor>,
    limit: usize,
) -> Result<Vec<PastMember>> {
    locate(tx, org, id)?;
    let (after_at, after_pid) = after.map_or((i64::MIN, ""), |c| {
        (micros(c.first_added_at()), c.pid().as_str())
    });
    tx.query(
        MEMBERS_AT,
        &[
            &org.as_str(),
            id.as_uuid(),
            &after_at,
            &after_pid,
            &micros(at),
            &ADDED,
            &READDED,
            &sql_int(limit),
        ],
    )?
    .iter()
    .map(|row| {
        Ok(PastMember {
            pid: pid_at(row, 0)?,
            first_added_at: time(row, 1)?,
            joined_at: from_micros(get(row, 2)?)?,
        })
    })
    .collect()
}
