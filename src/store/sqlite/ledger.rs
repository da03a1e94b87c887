//! The ledger: org heads, entries, the change feed and timelines, in SQL.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Db, count_at, sql_int, time_at};
use crate::domain::pid::is_well_formed;
use crate::store::Stamp;
use crate::{Change, ChangeKind, OrgId, Pid, Result, SegmentId};

pub(super) const CREATED: i64 = 1;
pub(super) const RENAMED: i64 = 2;
pub(super) const DESCRIBED: i64 = 3;
pub(super) const DELETED: i64 = 4;
pub(super) const ADDED: i64 = 5;
pub(super) const READDED: i64 = 6;
pub(super) const REMOVED: i64 = 7;

/// Whether a ledger code makes the person a member.
pub(super) fn joins(code: i64) -> bool {
    code == ADDED || code == READDED
}

/// Writes one transaction's ledger entries for one org: reads the org's
/// head when it opens, numbers entries from it, and moves it when it
/// closes. Use inside a write transaction; the head is only moved if
/// [`Ledger::close`] runs, and the transaction commits.
pub(super) struct Ledger<'a> {
    org: &'a str,
    request_id: Option<&'a str>,
    /// The time every entry of this transaction gets: the stamp's, or the
    /// org's last entry's if that is later (entry times never go back).
    at: i64,
    /// The last seq given, so far.
    last: i64,
    /// The head's seq when the ledger opened.
    opened_at: i64,
}

impl<'a> Ledger<'a> {
    /// Reads the org's head. Call inside the write transaction.
    pub(super) fn open(conn: &Connection, org: &'a OrgId, stamp: Stamp<'a>) -> Result<Self> {
        let head: Option<(i64, i64)> = conn
            .prepare_cached("SELECT last_seq, last_at FROM segment_heads WHERE org = ?1")
            .db()?
            .query_row([org.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .db()?;
        let (last, last_at) = head.unwrap_or((0, i64::MIN));
        Ok(Self {
            org: org.as_str(),
            request_id: stamp.request_id,
            at: stamp.at.timestamp_micros().max(last_at),
            last,
            opened_at: last,
        })
    }

    /// The time of this transaction's changes. Rows written in the
    /// transaction carry it too, so rows and ledger always agree.
    pub(super) fn at(&self) -> i64 {
        self.at
    }

    /// [`Ledger::at`] as a time.
    pub(super) fn time(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.at).unwrap_or_default()
    }

    /// Appends an entry about a segment; returns its `seq`.
    pub(super) fn append(
        &mut self,
        conn: &Connection,
        segment: SegmentId,
        kind: &ChangeKind,
    ) -> Result<i64> {
        let (code, name, description) = match kind {
            ChangeKind::Created { name, description } => {
                (CREATED, Some(name.as_str()), description.as_deref())
            }
            ChangeKind::Renamed { name } => (RENAMED, Some(name.as_str()), None),
            ChangeKind::DescriptionChanged { description } => {
                (DESCRIBED, None, description.as_deref())
            }
            ChangeKind::Deleted => (DELETED, None, None),
            // Membership entries name a person by number: `member`.
            other => {
                return Err(crate::Error::storage(format!(
                    "a {other:?} entry is written with Ledger::member"
                )));
            }
        };
        self.last += 1;
        conn.prepare_cached(
            "INSERT INTO segment_ledger (org, seq, at, request_id, segment, kind, name, description)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .db()?
        .execute(params![
            self.org,
            self.last,
            self.at,
            self.request_id,
            segment.as_bytes(),
            code,
            name,
            description
        ])
        .db()?;
        Ok(self.last)
    }

    /// Appends one membership entry (`ADDED`, `READDED` or `REMOVED`) per
    /// `(code, person)`, in order; returns the last one's `seq`, if any.
    pub(super) fn members(
        &mut self,
        conn: &Connection,
        segment: SegmentId,
        entries: impl IntoIterator<Item = (i64, i64)>,
    ) -> Result<Option<i64>> {
        let mut insert = conn
            .prepare_cached(
                "INSERT INTO segment_ledger (org, seq, at, request_id, segment, kind, person)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .db()?;
        let mut last = None;
        for (code, person) in entries {
            self.last += 1;
            insert
                .execute(params![
                    self.org,
                    self.last,
                    self.at,
                    self.request_id,
                    segment.as_bytes(),
                    code,
                    person
                ])
                .db()?;
            last = Some(self.last);
        }
        Ok(last)
    }

    /// Moves the org's head past this transaction's entries (nothing to do
    /// when it wrote none).
    pub(super) fn close(self, conn: &Connection) -> Result<()> {
        if self.last == self.opened_at {
            return Ok(());
        }
        conn.prepare_cached(
            "INSERT INTO segment_heads (org, last_seq, last_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (org) DO UPDATE SET last_seq = excluded.last_seq, last_at = excluded.last_at",
        )
        .db()?
        .execute(params![self.org, self.last, self.at])
        .db()?;
        Ok(())
    }
}

/// The org's last seq; 0 for an org with no ledger.
pub(super) fn last_seq(conn: &Connection, org: &OrgId) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT last_seq FROM segment_heads WHERE org = ?1")
        .db()?
        .query_row([org.as_str()], |r| r.get(0))
        .optional()
        .db()?
        .unwrap_or(0))
}

/// The change feed's query: entries after a seq, in order.
pub(super) const SINCE: &str =
    "SELECT l.seq, l.at, l.request_id, l.segment, l.kind, p.pid, l.name, l.description
     FROM segment_ledger l LEFT JOIN segment_people p ON p.person = l.person
     WHERE l.org = ?1 AND l.seq > ?2 ORDER BY l.seq LIMIT ?3";

/// Up to `limit` of the org's entries after `after`, in order.
pub(super) fn since(
    conn: &Connection,
    org: &OrgId,
    after: u64,
    limit: usize,
) -> Result<Vec<Change>> {
    conn.prepare_cached(SINCE)
        .db()?
        .query_map(
            params![org.as_str(), sql_int(after), sql_int(limit)],
            change_from_row,
        )
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()
}

/// A person's number in an org, if they ever joined a segment of it.
pub(super) const PERSON: &str = "SELECT person FROM segment_people WHERE org = ?1 AND pid = ?2";

/// A person's entries after a seq, in order.
pub(super) const TIMELINE: &str =
    "SELECT l.seq, l.at, l.request_id, l.segment, l.kind, p.pid, l.name, l.description
     FROM segment_ledger l JOIN segment_people p ON p.person = l.person
     WHERE l.person = ?1 AND l.seq > ?2 ORDER BY l.seq LIMIT ?3";

/// Up to `limit` of `pid`'s entries after `after`, in order.
pub(super) fn timeline(
    conn: &Connection,
    org: &OrgId,
    pid: &Pid,
    after: u64,
    limit: usize,
) -> Result<Vec<Change>> {
    let person: Option<i64> = conn
        .prepare_cached(PERSON)
        .db()?
        .query_row(params![org.as_str(), pid.as_str()], |r| r.get(0))
        .optional()
        .db()?;
    let Some(person) = person else {
        return Ok(Vec::new());
    };
    conn.prepare_cached(TIMELINE)
        .db()?
        .query_map(
            params![person, sql_int(after), sql_int(limit)],
            change_from_row,
        )
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()
}

fn corrupt(i: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, what.into())
}

/// A PID column; a malformed one is a damaged row.
pub(super) fn pid_at(row: &Row<'_>, i: usize) -> rusqlite::Result<Pid> {
    let pid: String = row.get(i)?;
    if is_well_formed(&pid) {
        Ok(Pid::new_unchecked(&pid))
    } else {
        Err(corrupt(i, format!("stored PID {pid:?} is malformed")))
    }
}

/// A ledger row, read with the columns of [`SINCE`] and [`TIMELINE`]
/// (entries joined with their person's PID).
pub(super) fn change_from_row(row: &Row<'_>) -> rusqlite::Result<Change> {
    let code: i64 = row.get(4)?;
    let name = || row.get::<_, String>(6);
    let description = || row.get::<_, Option<String>>(7);
    let kind = match code {
        CREATED => ChangeKind::Created {
            name: name()?,
            description: description()?,
        },
        RENAMED => ChangeKind::Renamed { name: name()? },
        DESCRIBED => ChangeKind::DescriptionChanged {
            description: description()?,
        },
        DELETED => ChangeKind::Deleted,
        ADDED => ChangeKind::MemberAdded {
            pid: pid_at(row, 5)?,
        },
        READDED => ChangeKind::MemberReAdded {
            pid: pid_at(row, 5)?,
        },
        REMOVED => ChangeKind::MemberRemoved {
            pid: pid_at(row, 5)?,
        },
        other => return Err(corrupt(4, format!("unknown ledger entry kind {other}"))),
    };
    let segment: [u8; 16] = row.get(3)?;
    Ok(Change {
        seq: count_at(row, 0)?,
        at: time_at(row, 1)?,
        request_id: row.get(2)?,
        segment_id: SegmentId::from_uuid(uuid::Uuid::from_bytes(segment)),
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feed_and_the_timeline_read_the_same_columns() {
        let select = |sql: &str| sql.split(" FROM ").next().unwrap().to_owned();
        assert_eq!(
            select(SINCE),
            select(TIMELINE),
            "change_from_row reads both"
        );
    }
}
