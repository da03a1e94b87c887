//! Segments: their rows, names and creation order, in SQL.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::ledger::SqliteLedger;
use super::{SqliteDb, count_at, micros, sql_int, time_at};
use crate::store::segment_calls::SegmentSql;
use crate::store::{Page, SegmentChange, SegmentInsert};
use crate::{ChangeKind, Error, OrgId, Result, Segment, SegmentCursor, SegmentId};

/// The columns [`segment_from_row`] reads.
pub(super) const SEGMENT_COLUMNS: &str =
    "id, name, description, source, current_size, created_at, updated_at";

fn segment_from_row(row: &Row<'_>) -> rusqlite::Result<Segment> {
    let id: [u8; 16] = row.get(0)?;
    Ok(Segment {
        id: SegmentId::from_uuid(uuid::Uuid::from_bytes(id)),
        name: row.get(1)?,
        description: row.get(2)?,
        source: row.get(3)?,
        current_size: count_at(row, 4)?,
        created_at: time_at(row, 5)?,
        updated_at: time_at(row, 6)?,
    })
}

/// A segment's row number and `current_size`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Located {
    pub(super) number: i64,
    pub(super) current_size: u64,
}

pub(super) const LOCATE: &str =
    "SELECT number, current_size FROM segments WHERE id = ?1 AND org = ?2";

/// The row of segment `id` of `org`.
pub(super) fn locate(conn: &Connection, org: &OrgId, id: SegmentId) -> Result<Located> {
    conn.prepare_cached(LOCATE)
        .db()?
        .query_row(params![id.as_bytes(), org.as_str()], |r| {
            Ok(Located {
                number: r.get(0)?,
                current_size: count_at(r, 1)?,
            })
        })
        .optional()
        .db()?
        .ok_or(Error::NotFound { id })
}

pub(super) fn get(conn: &Connection, org: &OrgId, id: SegmentId) -> Result<Segment> {
    conn.prepare_cached(&format!(
        "SELECT {SEGMENT_COLUMNS} FROM segments WHERE id = ?1 AND org = ?2"
    ))
    .db()?
    .query_row(params![id.as_bytes(), org.as_str()], segment_from_row)
    .optional()
    .db()?
    .ok_or(Error::NotFound { id })
}

pub(super) fn by_key(conn: &Connection, org: &OrgId, key: &str) -> Result<Option<Segment>> {
    conn.prepare_cached(&format!(
        "SELECT {SEGMENT_COLUMNS} FROM segments WHERE org = ?1 AND name_key = ?2"
    ))
    .db()?
    .query_row(params![org.as_str(), key], segment_from_row)
    .optional()
    .db()
}

pub(super) fn list(
    conn: &Connection,
    org: &OrgId,
    Page { after, limit }: Page<Option<SegmentCursor>>,
) -> Result<Vec<Segment>> {
    // Before every cursor: the smallest time and id.
    let (created_at, id) = after.map_or((i64::MIN, [0; 16]), |c| {
        (micros(c.created_at()), *c.id().as_bytes())
    });
    conn.prepare_cached(&format!(
        "SELECT {SEGMENT_COLUMNS} FROM segments
         WHERE org = ?1 AND (created_at, id) > (?2, ?3)
         ORDER BY created_at, id LIMIT ?4"
    ))
    .db()?
    .query_map(
        params![org.as_str(), created_at, &id[..], sql_int(limit)],
        segment_from_row,
    )
    .db()?
    .collect::<rusqlite::Result<Vec<_>>>()
    .db()
}

/// One segment write of `org` in `ledger`'s transaction: the statements
/// of [`segment_calls`](crate::store::segment_calls), which runs the flow.
pub(super) struct SqliteSegmentWrite<'c, 'l> {
    pub(super) tx: &'c Connection,
    pub(super) ledger: &'c mut SqliteLedger<'l>,
    pub(super) org: &'c OrgId,
}

impl SegmentSql for SqliteSegmentWrite<'_, '_> {
    fn time(&self) -> DateTime<Utc> {
        self.ledger.head.time()
    }

    fn segment(&mut self, id: SegmentId) -> Result<Segment> {
        get(self.tx, self.org, id)
    }

    fn exists(&mut self, id: SegmentId) -> Result<()> {
        locate(self.tx, self.org, id).map(drop)
    }

    fn insert(&mut self, new: &SegmentInsert) -> Result<()> {
        // The unique index decides between racing creates, in this process
        // or another; `ON CONFLICT` tells its answer without matching text.
        let inserted = self
            .tx
            .prepare_cached(
                "INSERT INTO segments (id, org, name, name_key, description, source,
                                       created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
                 ON CONFLICT (org, name_key) DO NOTHING",
            )
            .db()?
            .execute(params![
                new.id.as_bytes(),
                self.org.as_str(),
                new.name.as_str(),
                new.name.key(),
                new.description,
                new.source,
                self.ledger.head.at(),
            ])
            .db()?;
        if inserted == 0 {
            return Err(Error::DuplicateName {
                name: new.name.as_str().to_owned(),
            });
        }
        Ok(())
    }

    fn change(&mut self, id: SegmentId, change: &SegmentChange) -> Result<()> {
        let at = self.ledger.head.at();
        match change {
            SegmentChange::Rename(name) => {
                // Under the write lock this read is the truth; the unique
                // index stays the last word.
                let holder: Option<[u8; 16]> = self
                    .tx
                    .prepare_cached("SELECT id FROM segments WHERE org = ?1 AND name_key = ?2")
                    .db()?
                    .query_row(params![self.org.as_str(), name.key()], |r| r.get(0))
                    .optional()
                    .db()?;
                if holder.is_some_and(|h| h != *id.as_bytes()) {
                    return Err(Error::DuplicateName {
                        name: name.as_str().to_owned(),
                    });
                }
                self.tx
                    .prepare_cached(
                        "UPDATE segments SET name = ?1, name_key = ?2, updated_at = ?3 WHERE id = ?4",
                    )
                    .db()?
                    .execute(params![name.as_str(), name.key(), at, id.as_bytes()])
                    .db()?;
            }
            SegmentChange::Describe(description) => {
                self.tx
                    .prepare_cached(
                        "UPDATE segments SET description = ?1, updated_at = ?2 WHERE id = ?3",
                    )
                    .db()?
                    .execute(params![description, at, id.as_bytes()])
                    .db()?;
            }
        }
        Ok(())
    }

    /// Deletes the segment row; its memberships and sizes go with it
    /// (foreign keys).
    fn delete(&mut self, id: SegmentId) -> Result<()> {
        let segment = locate(self.tx, self.org, id)?;
        self.tx
            .prepare_cached("DELETE FROM segments WHERE number = ?1")
            .db()?
            .execute([segment.number])
            .db()?;
        Ok(())
    }

    fn append(&mut self, id: SegmentId, kind: &ChangeKind) -> Result<()> {
        self.ledger.append(self.tx, id, kind).map(drop)
    }
}

/// Stores a segment's new size, both as `current_size` and as the size
/// after ledger entry `entry` (for `size_as_of`, and as its
/// `members_seq`). Nothing to do when the call recorded no entry: the
/// members did not change.
pub(super) fn set_size(
    tx: &Connection,
    segment: Located,
    at: i64,
    entry: Option<i64>,
    size: u64,
) -> Result<()> {
    let Some(entry) = entry else {
        return Ok(());
    };
    tx.prepare_cached("UPDATE segments SET current_size = ?1 WHERE number = ?2")
        .db()?
        .execute(params![sql_int(size), segment.number])
        .db()?;
    tx.prepare_cached("INSERT INTO segment_sizes (segment, at, seq, size) VALUES (?1, ?2, ?3, ?4)")
        .db()?
        .execute(params![segment.number, at, entry, sql_int(size)])
        .db()?;
    Ok(())
}
