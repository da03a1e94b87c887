//! The ledger, sizes over time and death records, in SQL.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Db, count_at, micros, time_at};
use crate::domain::pid::is_well_formed;
use crate::{Change, ChangeKind, DeathRecord, Pid, Result, SegmentId, SignalMetadata, Stamp};

/// The columns [`change_from_row`] reads.
pub(super) const CHANGE_COLUMNS: &str =
    "seq, at, request_id, segment, kind, pid, name, description";

/// A segment's row id is `org number << ORG_SHIFT | creation seq`.
const ORG_SHIFT: u32 = 40;
/// The largest ledger seq an org can reach (about 1.1 × 10^12).
const MAX_SEQ: i64 = (1 << ORG_SHIFT) - 1;
/// The largest org number, so that row ids stay below 2^63.
const MAX_ORG_NUMBER: i64 = (1 << (63 - ORG_SHIFT)) - 1;

/// The row id of the segment created by entry `seq` of org `number`.
pub(super) fn row_id(number: i64, seq: i64) -> i64 {
    (number << ORG_SHIFT) | seq
}

/// The org's number, if it ever had a segment.
pub(super) fn org_number(conn: &Connection, org: &str) -> Result<Option<i64>> {
    conn.prepare_cached("SELECT number FROM segment_orgs WHERE org = ?1")
        .db()?
        .query_row([org], |r| r.get(0))
        .optional()
        .db()
}

/// The org's last ledger entry (`seq`, `at`), counting the `Created`
/// entries kept in segment rows; `(0, i64::MIN)` for an empty ledger.
fn last_entry(conn: &Connection, org: &str, number: Option<i64>) -> Result<(i64, i64)> {
    let logged: Option<(i64, i64)> = conn
        .prepare_cached(
            "SELECT seq, at FROM segment_ledger WHERE org = ?1 ORDER BY seq DESC LIMIT 1",
        )
        .db()?
        .query_row([org], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .db()?;
    let in_rows: Option<(i64, i64)> = match number {
        None => None,
        Some(n) => conn
            .prepare_cached(
                "SELECT seq - ?1, created_at FROM segments WHERE seq BETWEEN ?1 AND ?2
                 ORDER BY seq DESC LIMIT 1",
            )
            .db()?
            .query_row(params![row_id(n, 0), row_id(n, MAX_SEQ)], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .db()?,
    };
    Ok(logged.max(in_rows).unwrap_or((0, i64::MIN)))
}

const CREATED: i64 = 1;

/// [`CHANGE_COLUMNS`] of the `Created` entry a segment row holds, read from
/// `segments`.
const HELD_COLUMNS: &str =
    "seq & 1099511627775, created_at, request_id, id, 1, NULL, name, description";
const RENAMED: i64 = 2;
const DESCRIBED: i64 = 3;
const DELETED: i64 = 4;
const ADDED: i64 = 5;
const READDED: i64 = 6;
const REMOVED: i64 = 7;

/// How many orgs [`Tails`] remembers before it starts over.
const MAX_REMEMBERED_ORGS: usize = 10_000;

/// The last ledger entry (`seq`, `at`) and the number of each org, as the
/// write connection last wrote or read them, so that a write does not have
/// to look them up.
///
/// Valid only while no other connection has committed: `PRAGMA
/// data_version` (read under the write lock, it changes when another
/// connection, in this process or another, commits) says when to forget it.
#[derive(Debug, Default)]
pub(super) struct Tails {
    version: Option<i64>,
    by_org: HashMap<String, Tail>,
}

/// Where an org's ledger ends, and the org's number (`None` before its
/// first segment).
#[derive(Clone, Copy, Debug)]
struct Tail {
    seq: i64,
    at: i64,
    number: Option<i64>,
}

impl Tails {
    /// The org's last entry and number, from memory when no one else wrote
    /// since. Call inside the write transaction, before it writes.
    fn get(&mut self, conn: &Connection, org: &str) -> Result<Tail> {
        let version: i64 = conn
            .prepare_cached("PRAGMA data_version")
            .db()?
            .query_row([], |r| r.get(0))
            .db()?;
        if self.version != Some(version) {
            self.by_org.clear();
            self.version = Some(version);
        }
        if let Some(tail) = self.by_org.get(org) {
            return Ok(*tail);
        }
        // One entry per org written since: a store serving very many orgs
        // starts over now and then rather than growing without end.
        if self.by_org.len() >= MAX_REMEMBERED_ORGS {
            self.by_org.clear();
        }
        let number = org_number(conn, org)?;
        let (seq, at) = last_entry(conn, org, number)?;
        let tail = Tail { seq, at, number };
        self.by_org.insert(org.to_owned(), tail);
        Ok(tail)
    }
}

/// Writes one transaction's ledger entries for one org.
pub(super) struct Ledger<'a> {
    org: &'a str,
    request_id: Option<&'a str>,
    tails: &'a mut Tails,
    /// The time every entry of this transaction gets: the stamp's, or the
    /// org's last entry's if that is later (entry times never go back).
    at: i64,
    last: i64,
    number: Option<i64>,
    appended: bool,
    done: bool,
}

impl<'a> Ledger<'a> {
    /// Finds where the org's ledger ends. Call inside the write transaction.
    pub(super) fn open(
        conn: &Connection,
        tails: &'a mut Tails,
        org: &'a str,
        stamp: Stamp<'a>,
    ) -> Result<Self> {
        let tail = tails.get(conn, org)?;
        Ok(Self {
            org,
            request_id: stamp.request_id,
            tails,
            at: micros(stamp.at).max(tail.at),
            last: tail.seq,
            number: tail.number,
            appended: false,
            done: false,
        })
    }

    /// The org's number, given to it now if this is its first segment.
    pub(super) fn org_number(&mut self, conn: &Connection) -> Result<i64> {
        if let Some(number) = self.number {
            return Ok(number);
        }
        let number: i64 = conn
            .prepare_cached("SELECT coalesce(max(number), 0) + 1 FROM segment_orgs")
            .db()?
            .query_row([], |r| r.get(0))
            .db()?;
        if number > MAX_ORG_NUMBER {
            return Err(crate::Error::storage(format!(
                "a database holds at most {MAX_ORG_NUMBER} orgs"
            )));
        }
        conn.prepare_cached("INSERT INTO segment_orgs (number, org) VALUES (?1, ?2)")
            .db()?
            .execute(params![number, self.org])
            .db()?;
        self.number = Some(number);
        Ok(number)
    }

    /// Takes the next `seq`: for an entry this ledger writes, or for the
    /// `Created` entry a new segment's row holds (see the schema), which
    /// writes nothing to the ledger table.
    pub(super) fn reserve(&mut self) -> Result<i64> {
        if self.last >= MAX_SEQ {
            return Err(crate::Error::storage(format!(
                "org {}: the ledger holds at most {MAX_SEQ} entries",
                self.org
            )));
        }
        self.last += 1;
        self.appended = true;
        Ok(self.last)
    }

    /// The time of this transaction's changes: the stamp's, or the org's last
    /// entry's if that is later. Rows written in the transaction carry it
    /// too, so rows and ledger always agree.
    pub(super) fn at(&self) -> i64 {
        self.at
    }

    /// [`Ledger::at`] as a time.
    pub(super) fn time(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.at).unwrap_or_default()
    }

    /// Remembers where the ledger now ends. Call once the transaction has
    /// committed; a transaction that did not commit must not call it.
    pub(super) fn committed(mut self) {
        self.done = true;
        // Without new entries the remembered tail (and its time) still holds.
        if self.appended {
            let tail = Tail {
                seq: self.last,
                at: self.at,
                number: self.number,
            };
            self.tails.by_org.insert(self.org.to_owned(), tail);
        }
    }

    /// Appends an entry; returns its `seq`.
    pub(super) fn append(
        &mut self,
        conn: &Connection,
        segment: SegmentId,
        kind: &ChangeKind,
    ) -> Result<i64> {
        let (code, pid, name, description) = match kind {
            ChangeKind::Created { name, description } => {
                (CREATED, None, Some(name.as_str()), description.as_deref())
            }
            ChangeKind::Renamed { name } => (RENAMED, None, Some(name.as_str()), None),
            ChangeKind::DescriptionChanged { description } => {
                (DESCRIBED, None, None, description.as_deref())
            }
            ChangeKind::Deleted => (DELETED, None, None, None),
            ChangeKind::MemberAdded { pid } => (ADDED, Some(pid.as_str()), None, None),
            ChangeKind::MemberReAdded { pid } => (READDED, Some(pid.as_str()), None, None),
            ChangeKind::MemberRemoved { pid } => (REMOVED, Some(pid.as_str()), None, None),
        };
        self.insert(conn, segment, code, pid, name, description)
    }

    /// Appends a membership entry of `pid` (without building a
    /// [`ChangeKind`], which would copy the PID).
    pub(super) fn member(
        &mut self,
        conn: &Connection,
        segment: SegmentId,
        code: Membership,
        pid: &str,
    ) -> Result<i64> {
        self.insert(conn, segment, code as i64, Some(pid), None, None)
    }

    fn insert(
        &mut self,
        conn: &Connection,
        segment: SegmentId,
        code: i64,
        pid: Option<&str>,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<i64> {
        let seq = self.reserve()?;
        insert_entry(
            conn,
            self.org,
            seq,
            self.at,
            self.request_id,
            segment,
            code,
            pid,
            name,
            description,
        )?;
        Ok(seq)
    }

    /// Writes the `Created` entry that segment `id`'s row holds into the
    /// ledger table, under its own seq, and marks the row `logged`; does
    /// nothing if it is there already. Call before the row changes.
    pub(super) fn log_creation(&self, conn: &Connection, id: SegmentId) -> Result<()> {
        conn.prepare_cached(
            "INSERT INTO segment_ledger (org, seq, at, request_id, segment, kind, name, description)
             SELECT org, seq & ?2, created_at, request_id, id, ?3, name, description
             FROM segments WHERE id = ?1 AND logged = 0",
        )
        .db()?
        .execute(params![id.as_bytes(), MAX_SEQ, CREATED])
        .db()?;
        conn.prepare_cached("UPDATE segments SET logged = 1 WHERE id = ?1 AND logged = 0")
            .db()?
            .execute([id.as_bytes()])
            .db()?;
        Ok(())
    }
}

impl Drop for Ledger<'_> {
    /// A ledger dropped without [`Ledger::committed`] belongs to a
    /// transaction that rolled back, or failed in a way nobody can be sure
    /// of: forget the org's tail, so the next write reads it again.
    fn drop(&mut self) {
        if !self.done {
            self.tails.by_org.remove(self.org);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn insert_entry(
    conn: &Connection,
    org: &str,
    seq: i64,
    at: i64,
    request_id: Option<&str>,
    segment: SegmentId,
    code: i64,
    pid: Option<&str>,
    name: Option<&str>,
    description: Option<&str>,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO segment_ledger (org, seq, at, request_id, segment, kind, pid, name, description)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .db()?
    .execute(params![
        org,
        seq,
        at,
        request_id,
        segment.as_bytes(),
        code,
        pid,
        name,
        description
    ])
    .db()?;
    Ok(())
}

/// Up to `limit` of the org's entries after `after`, in order. Call inside
/// one read transaction, so the ledger table and the segment rows are one
/// snapshot.
///
/// Seqs have no gaps across the two places entries live in, so the
/// `Created` entries held in segment rows are exactly the gaps in what the
/// ledger table returns, and everything past the table's last entry: each
/// is found by its row id. A page costs the same wherever it starts and
/// however many segments changed before it.
pub(super) fn changes(conn: &Connection, org: &str, after: i64, limit: i64) -> Result<Vec<Change>> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let logged = conn
        .prepare_cached(&format!(
            "SELECT {CHANGE_COLUMNS} FROM segment_ledger WHERE org = ?1 AND seq > ?2
             ORDER BY seq LIMIT ?3"
        ))
        .db()?
        .query_map(
            params![org, after, i64::try_from(limit).unwrap_or(i64::MAX)],
            change_from_row,
        )
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()?;
    let Some(number) = org_number(conn, org)?.filter(|_| after < MAX_SEQ) else {
        return Ok(logged);
    };
    let table_exhausted = logged.len() < limit;
    let mut in_row = conn
        .prepare_cached(&format!(
            "SELECT {HELD_COLUMNS} FROM segments WHERE seq = ?1 AND logged = 0"
        ))
        .db()?;
    let mut held = |seq: i64| -> Result<Change> {
        in_row
            .query_row([row_id(number, seq)], change_from_row)
            .optional()
            .db()?
            .ok_or_else(|| {
                crate::Error::storage(format!("org {org}: ledger entry {seq} is missing"))
            })
    };
    let mut out = Vec::with_capacity(limit.min(logged.len() * 2 + 16));
    // The next seq to place.
    let mut next = after + 1;
    for change in logged {
        let seq = change.seq as i64;
        while next < seq && out.len() < limit {
            out.push(held(next)?);
            next += 1;
        }
        if out.len() == limit {
            return Ok(out);
        }
        out.push(change);
        next = seq + 1;
    }
    if table_exhausted && out.len() < limit {
        // Past the table's last entry, every entry is a segment row: they
        // are a range of row ids.
        let rest = conn
            .prepare_cached(&format!(
                "SELECT {HELD_COLUMNS} FROM segments WHERE seq >= ?1 AND seq <= ?2 AND logged = 0
                 ORDER BY seq LIMIT ?3"
            ))
            .db()?
            .query_map(
                params![
                    row_id(number, next.min(MAX_SEQ)),
                    row_id(number, MAX_SEQ),
                    i64::try_from(limit - out.len()).unwrap_or(i64::MAX)
                ],
                change_from_row,
            )
            .db()?
            .collect::<rusqlite::Result<Vec<_>>>()
            .db()?;
        out.extend(rest);
    }
    Ok(out)
}

/// The membership entries, by their ledger code.
#[derive(Clone, Copy, Debug)]
pub(super) enum Membership {
    Added = ADDED as isize,
    ReAdded = READDED as isize,
    Removed = REMOVED as isize,
}

/// Whether a ledger code makes the person a member.
pub(super) fn joins(code: i64) -> bool {
    code == ADDED || code == READDED
}

/// Records the segment's size after ledger entry `seq`.
pub(super) fn record_size(conn: &Connection, segment: i64, seq: i64, size: u64) -> Result<()> {
    conn.prepare_cached("INSERT INTO segment_sizes (segment, seq, size) VALUES (?1, ?2, ?3)")
        .db()?
        .execute(params![segment, seq, size as i64])
        .db()?;
    Ok(())
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

/// A ledger row, read with [`CHANGE_COLUMNS`].
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

/// The number of the org's ledger entries recorded at or before `at`.
/// Entry times never go back, so a binary search over `seq` finds it with
/// a few primary-key reads, whatever the length of the ledger.
pub(super) fn bound(conn: &Connection, org: &str, at: DateTime<Utc>) -> Result<i64> {
    let at = micros(at);
    let number = org_number(conn, org)?;
    let mut logged_at = conn
        .prepare_cached("SELECT at FROM segment_ledger WHERE org = ?1 AND seq = ?2")
        .db()?;
    let mut created_at = conn
        .prepare_cached("SELECT created_at FROM segments WHERE seq = ?1 AND logged = 0")
        .db()?;
    let mut at_of = |seq: i64| -> Result<i64> {
        if let Some(t) = logged_at
            .query_row(params![org, seq], |r| r.get(0))
            .optional()
            .db()?
        {
            return Ok(t);
        }
        let row = number.map(|n| row_id(n, seq));
        match row {
            Some(row) => created_at.query_row([row], |r| r.get(0)).optional().db()?,
            None => None,
        }
        .ok_or_else(|| crate::Error::storage(format!("org {org}: ledger entry {seq} is missing")))
    };
    let (last, _) = last_entry(conn, org, number)?;
    // Invariant: entries 1..=lo are at or before `at`; entries after hi are
    // after it.
    let (mut lo, mut hi) = (0, last);
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

fn date_at(row: &Row<'_>, i: usize) -> rusqlite::Result<NaiveDate> {
    let s: String = row.get(i)?;
    NaiveDate::parse_from_str(&s, "%Y-%m-%d")
        .map_err(|_| corrupt(i, format!("stored date {s:?} is malformed")))
}

/// The columns [`death_from_row`] reads.
pub(super) const DEATH_COLUMNS: &str = "d.seq, d.pid, d.obituary_id, d.date_of_death, \
     d.publication_last_update_date, d.first_observed_at, d.source, d.obituary_url, \
     d.publication_name, d.confidence_score";

/// A death record and its feed position, read with [`DEATH_COLUMNS`].
pub(super) fn death_from_row(row: &Row<'_>) -> rusqlite::Result<(u64, DeathRecord)> {
    Ok((
        count_at(row, 0)?,
        DeathRecord {
            minerva_pid: pid_at(row, 1)?,
            obituary_id: row.get(2)?,
            date_of_death: date_at(row, 3)?,
            publication_last_update_date: row
                .get::<_, Option<String>>(4)?
                .map(|_| date_at(row, 4))
                .transpose()?,
            first_observed_at: time_at(row, 5)?,
            signal_metadata: SignalMetadata {
                source: row.get(6)?,
                obituary_url: row.get(7)?,
                publication_name: row.get(8)?,
                confidence_score: row.get(9)?,
            },
        },
    ))
}

/// Inserts or updates each record. A known obituary keeps its
/// `first_observed_at` and, when its PID is the same, its feed position;
/// one that now names another person goes to the end of the feed, so the
/// segments of that person see it as new. Returns (inserted, updated).
/// Call inside a write transaction.
pub(super) fn upsert_deaths(
    conn: &Connection,
    records: &[DeathRecord],
    at: DateTime<Utc>,
) -> Result<(u64, u64)> {
    let mut known = conn
        .prepare_cached(
            "SELECT seq, pid, first_observed_at FROM death_records WHERE obituary_id = ?1",
        )
        .db()?;
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO death_records (obituary_id, pid, date_of_death, publication_last_update_date,
                 first_observed_at, source, obituary_url, publication_name, confidence_score, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .db()?;
    let mut update = conn
        .prepare_cached(
            "UPDATE death_records SET date_of_death = ?2, publication_last_update_date = ?3,
                 source = ?4, obituary_url = ?5, publication_name = ?6, confidence_score = ?7,
                 updated_at = ?8
             WHERE seq = ?1",
        )
        .db()?;
    let mut forget = conn
        .prepare_cached("DELETE FROM death_records WHERE seq = ?1")
        .db()?;
    let (mut inserted, mut updated) = (0, 0);
    for r in records {
        let m = &r.signal_metadata;
        let date = r.date_of_death.format("%Y-%m-%d").to_string();
        let updated_date = r
            .publication_last_update_date
            .map(|d| d.format("%Y-%m-%d").to_string());
        let existing: Option<(i64, String, i64)> = known
            .query_row([&r.obituary_id], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()
            .db()?;
        let first_observed_at = match existing {
            Some((seq, pid, _)) if pid == r.minerva_pid.as_str() => {
                update
                    .execute(params![
                        seq,
                        date,
                        updated_date,
                        m.source,
                        m.obituary_url,
                        m.publication_name,
                        m.confidence_score,
                        micros(at)
                    ])
                    .db()?;
                updated += 1;
                continue;
            }
            Some((seq, _, first)) => {
                forget.execute([seq]).db()?;
                updated += 1;
                first
            }
            None => {
                inserted += 1;
                micros(r.first_observed_at)
            }
        };
        insert
            .execute(params![
                r.obituary_id,
                r.minerva_pid.as_str(),
                date,
                updated_date,
                first_observed_at,
                m.source,
                m.obituary_url,
                m.publication_name,
                m.confidence_score,
                micros(at),
            ])
            .db()?;
    }
    Ok((inserted, updated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_columns_mask_the_seq_and_name_the_created_kind() {
        assert_eq!(
            HELD_COLUMNS,
            format!(
                "seq & {MAX_SEQ}, created_at, request_id, id, {CREATED}, NULL, name, description"
            )
        );
    }
}
