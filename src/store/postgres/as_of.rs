//! Reads of the past: a segment's size and members as of a time, in SQL.
//!
//! Entry times never go back within an org, so "every entry recorded at or
//! before a time" is a prefix of the ledger, and each read filters on time
//! directly.

use chrono::{DateTime, Utc};

use super::ledger::{ADDED, READDED, pid_at};
use super::segments::locate;
use super::{Tx, count, from_micros, get, micros, sql_int};
use crate::store::Page;
use crate::{MemberCursor, OrgId, PastMember, Result, SegmentId};

/// The segment's size after its last size sample at or before a time.
pub(super) const SIZE_AT: &str = "SELECT size FROM {schema}.segment_sizes
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

/// Candidates for the segment's members as of a time, in list order after
/// a position: the next `$8` of everyone who ever joined by then (the
/// first `$8` of the active members and of those who left, each an index
/// walk in list order, merged), each with whether their last entry in the
/// segment as of then made them a member, and its time.
pub(super) const MEMBERS_AT: &str =
    "SELECT m.pid, m.first_added_at, coalesce(e.kind IN ($6, $7), false), e.at
     FROM ((SELECT person, pid, first_added_at FROM {schema}.segment_memberships
            WHERE org = $1 AND segment = $2 AND removed_at IS NULL
              AND (first_added_at, pid) > ($3, $4) AND first_added_at <= $5
            ORDER BY first_added_at, pid LIMIT $8)
           UNION ALL
           (SELECT person, pid, first_added_at FROM {schema}.segment_memberships
            WHERE org = $1 AND segment = $2 AND removed_at IS NOT NULL
              AND (first_added_at, pid) > ($3, $4) AND first_added_at <= $5
            ORDER BY first_added_at, pid LIMIT $8)) m
     LEFT JOIN LATERAL (
         SELECT l.kind, l.at FROM {schema}.segment_ledger l
         WHERE l.org = $1 AND l.person = m.person AND l.at <= $5 AND l.segment = $2
         ORDER BY l.seq DESC LIMIT 1
     ) e ON true
     ORDER BY m.first_added_at, m.pid LIMIT $8";

/// Up to `limit` of the segment's members as of `at`, in list order after
/// `after`. Call inside one read transaction.
///
/// Walks the candidates a page at a time (see [`MEMBERS_AT`]), from the
/// last candidate seen, until `limit` of them were members then or the
/// candidates run out. Each read costs about the same wherever it starts
/// (index walks from a position), but a call makes as many reads as it
/// needs: its cost grows with the candidates that were not members at
/// `at` (people who had left by then) between the start and the last
/// member it returns.
pub(super) fn members(
    tx: &mut Tx<'_>,
    org: &OrgId,
    id: SegmentId,
    at: DateTime<Utc>,
    Page { after, limit }: Page<Option<&MemberCursor>>,
) -> Result<Vec<PastMember>> {
    locate(tx, org, id)?;
    if limit == 0 {
        return Ok(Vec::new());
    }
    let (mut after_at, mut after_pid) = after.map_or((i64::MIN, String::new()), |c| {
        (micros(c.first_added_at()), c.pid().as_str().to_owned())
    });
    let mut past = Vec::new();
    loop {
        let rows = tx.query(
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
        )?;
        for row in &rows {
            let pid = pid_at(row, 0)?;
            let first_added_at: i64 = get(row, 1)?;
            after_at = first_added_at;
            after_pid = pid.as_str().to_owned();
            if get::<bool>(row, 2)? {
                past.push(PastMember {
                    pid,
                    first_added_at: from_micros(first_added_at)?,
                    joined_at: from_micros(get(row, 3)?)?,
                });
                if past.len() == limit {
                    return Ok(past);
                }
            }
        }
        if rows.len() < limit {
            return Ok(past);
        }
    }
}
