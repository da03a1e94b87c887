//! The ledger: org heads, entries, the change feed and timelines, in SQL.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{SqliteDb, count_at, sql_int, time_at};
use crate::domain::pid::is_well_formed;
use crate::store::entries::{self, Head, Ledger};
use crate::store::{Page, Stamp};
use crate::{Change, ChangeKind, Error, OrgId, Pid, Provenance, Result, SegmentId};

pub(super) use crate::store::entries::joins;

/// Writes one transaction's ledger entries for one org: reads the org's
/// head when it opens, numbers entries from it, and moves it when it
/// closes ([`Ledger`], opened and closed by [`entries::keyed_write`]).
/// The head only moves if the transaction commits.
pub(super) struct SqliteLedger<'a> {
    /// The head as this transaction holds it: its seqs and its time.
    pub(super) head: Head<'a>,
}

impl<'a, 'c> Ledger<'a, &'c Connection> for SqliteLedger<'a> {
    /// Reads the org's head (the write lock is already held).
    fn open(conn: &mut &'c Connection, org: &'a OrgId, stamp: Stamp<'a>) -> Result<Self> {
        let row: Option<(i64, i64)> = conn
            .prepare_cached("SELECT last_seq, last_at FROM segment_heads WHERE org = ?1")
            .db()?
            .query_row([org.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .db()?;
        Ok(Self {
            head: Head::open(org, stamp, row),
        })
    }

    fn close(self, conn: &mut &'c Connection) -> Result<()> {
        if !self.head.moved() {
            return Ok(());
        }
        conn.prepare_cached(
            "INSERT INTO segment_heads (org, last_seq, last_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (org) DO UPDATE SET last_seq = excluded.last_seq, last_at = excluded.last_at",
        )
        .db()?
        .execute(params![self.head.org, self.head.last(), self.head.at()])
        .db()?;
        Ok(())
    }
}

impl SqliteLedger<'_> {
    /// Appends an entry about a segment; returns its `seq`.
    pub(super) fn append(
        &mut self,
        conn: &Connection,
        segment: SegmentId,
        kind: &ChangeKind,
    ) -> Result<i64> {
        let entry = entries::segment_entry(kind)?;
        let seq = self.head.take(1);
        conn.prepare_cached(
            "INSERT INTO segment_ledger (org, seq, at, request_id, segment, kind, name, description)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .db()?
        .execute(params![
            self.head.org,
            seq,
            self.head.at(),
            self.head.request_id,
            segment.as_bytes(),
            entry.code,
            entry.name,
            entry.description
        ])
        .db()?;
        Ok(seq)
    }

    /// Appends one membership entry (`ADDED`, `READDED` or `REMOVED`) per
    /// `(code, person)`, in order, each naming the set operation they came
    /// from when `provenance` says so; returns the last one's `seq`, if
    /// any.
    pub(super) fn members(
        &mut self,
        conn: &Connection,
        segment: SegmentId,
        members: impl IntoIterator<Item = (i16, i64)>,
        provenance: Option<&Provenance>,
    ) -> Result<Option<i64>> {
        let mut insert = conn
            .prepare_cached(
                "INSERT INTO segment_ledger (org, seq, at, request_id, segment, kind, person, op)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .db()?;
        // A set operation is named by its first entry's seq.
        let op = provenance.map(|_| self.head.last() + 1);
        let mut last = None;
        for (code, person) in members {
            let seq = self.head.take(1);
            insert
                .execute(params![
                    self.head.org,
                    seq,
                    self.head.at(),
                    self.head.request_id,
                    segment.as_bytes(),
                    code,
                    person,
                    op
                ])
                .db()?;
            last = Some(seq);
        }
        if let (Some(provenance), Some(op), Some(_)) = (provenance, op, last) {
            let sources: Vec<u8> = provenance
                .sources
                .iter()
                .flat_map(|id| *id.as_bytes())
                .collect();
            conn.prepare_cached(
                "INSERT INTO segment_ops (org, op, sources, read_at) VALUES (?1, ?2, ?3, ?4)",
            )
            .db()?
            .execute(params![
                self.head.org,
                op,
                sources,
                sql_int(provenance.read_at)
            ])
            .db()?;
        }
        Ok(last)
    }
}

/// The change feed's query: entries after a seq, in order.
pub(super) const SINCE: &str =
    "SELECT l.seq, l.at, l.request_id, l.segment, l.kind, p.pid, l.name, l.description,
            o.sources, o.read_at
     FROM segment_ledger l
     LEFT JOIN segment_people p ON p.person = l.person
     LEFT JOIN segment_ops o ON o.org = l.org AND o.op = l.op
     WHERE l.org = ?1 AND l.seq > ?2 ORDER BY l.seq LIMIT ?3";

/// Up to `limit` of the org's entries after `after`, in order.
pub(super) fn since(
    conn: &Connection,
    org: &OrgId,
    Page { after, limit }: Page<u64>,
) -> Result<Vec<Change>> {
    changes(
        conn,
        SINCE,
        params![org.as_str(), sql_int(after), sql_int(limit)],
    )
}

/// The org's head's seq (a read).
pub(super) const LAST_SEQ: &str = "SELECT last_seq FROM segment_heads WHERE org = ?1";

/// The seq of the org's last entry, from its head; 0 without one.
pub(super) fn last_seq(conn: &Connection, org: &OrgId) -> Result<u64> {
    let last = conn
        .prepare_cached(LAST_SEQ)
        .db()?
        .query_row(params![org.as_str()], |row| count_at(row, 0))
        .optional()
        .db()?;
    Ok(last.unwrap_or(0))
}

/// The entries `sql` reads, in order.
fn changes(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Change>> {
    let mut statement = conn.prepare_cached(sql).db()?;
    let mut rows = statement.query(params).db()?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().db()? {
        out.push(change_from_row(row)?);
    }
    Ok(out)
}

/// A person's number in an org, if they ever joined a segment of it.
pub(super) const PERSON: &str = "SELECT person FROM segment_people WHERE org = ?1 AND pid = ?2";

/// A person's entries after a seq, in order.
pub(super) const TIMELINE: &str =
    "SELECT l.seq, l.at, l.request_id, l.segment, l.kind, p.pid, l.name, l.description,
            o.sources, o.read_at
     FROM segment_ledger l
     JOIN segment_people p ON p.person = l.person
     LEFT JOIN segment_ops o ON o.org = l.org AND o.op = l.op
     WHERE l.person = ?1 AND l.seq > ?2 ORDER BY l.seq LIMIT ?3";

/// Up to `limit` of `pid`'s entries after `after`, in order.
pub(super) fn timeline(
    conn: &Connection,
    org: &OrgId,
    pid: &Pid,
    Page { after, limit }: Page<u64>,
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
    changes(
        conn,
        TIMELINE,
        params![person, sql_int(after), sql_int(limit)],
    )
}

/// A PID column; a malformed one is a damaged row.
pub(super) fn pid_at(row: &Row<'_>, i: usize) -> rusqlite::Result<Pid> {
    let pid: String = row.get(i)?;
    if is_well_formed(&pid) {
        Ok(Pid::new_unchecked(&pid))
    } else {
        Err(rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("stored PID {pid:?} is malformed").into(),
        ))
    }
}

/// A ledger row, read with the columns of [`SINCE`] and [`TIMELINE`]
/// (entries joined with their person's PID).
fn change_from_row(row: &Row<'_>) -> Result<Change> {
    let pid = match row.get_ref(5).db()? {
        rusqlite::types::ValueRef::Null => None,
        _ => Some(pid_at(row, 5).db()?),
    };
    let kind = entries::kind(row.get(4).db()?, pid, row.get(6).db()?, row.get(7).db()?)?;
    let segment: [u8; 16] = row.get(3).db()?;
    let provenance = match row.get::<_, Option<Vec<u8>>>(8).db()? {
        None => None,
        Some(sources) => Some(Provenance {
            sources: sources
                .chunks(16)
                .map(|id| {
                    <[u8; 16]>::try_from(id)
                        .map(|id| SegmentId::from_uuid(uuid::Uuid::from_bytes(id)))
                        .map_err(|_| Error::storage("a set operation's sources are damaged"))
                })
                .collect::<Result<_>>()?,
            read_at: count_at(row, 9).db()?,
        }),
    };
    Ok(Change {
        seq: count_at(row, 0).db()?,
        at: time_at(row, 1).db()?,
        request_id: row.get(2).db()?,
        segment_id: SegmentId::from_uuid(uuid::Uuid::from_bytes(segment)),
        kind,
        provenance,
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
