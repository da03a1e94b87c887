//! Segments: their rows, names and creation order, in SQL.

use chrono::{DateTime, Utc};
use r2d2_postgres::postgres::Row;
use r2d2_postgres::postgres::error::SqlState;

use super::ledger::PostgresLedger;
use super::{Tx, count, get, micros, sql_int, time};
use crate::store::segment_calls::SegmentSql;
use crate::store::{Page, SegmentChange, SegmentInsert};
use crate::{ChangeKind, Error, OrgId, Result, Segment, SegmentCursor, SegmentId};

/// The constraint that keeps names unique per org (by key).
const NAME_KEY_UNIQUE: &str = "segments_name_key_unique";

fn segment_from_row(row: &Row) -> Result<Segment> {
    Ok(Segment {
        id: SegmentId::from_uuid(get(row, 0)?),
        name: get(row, 1)?,
        description: get(row, 2)?,
        source: get(row, 3)?,
        current_size: count(row, 4)?,
        created_at: time(row, 5)?,
        updated_at: time(row, 6)?,
    })
}

/// A segment's `current_size`, by org and id.
pub(super) const LOCATE: &str =
    "SELECT current_size FROM {schema}.segments WHERE org = $1 AND id = $2";

/// The `current_size` of segment `id` of `org`.
pub(super) fn locate(tx: &mut Tx<'_>, org: &OrgId, id: SegmentId) -> Result<u64> {
    match tx.query_opt(LOCATE, &[&org.as_str(), id.as_uuid()])? {
        Some(row) => count(&row, 0),
        None => Err(Error::NotFound { id }),
    }
}

pub(super) const GET: &str =
    "SELECT id, name, description, source, current_size, created_at, updated_at
     FROM {schema}.segments WHERE org = $1 AND id = $2";

pub(super) fn get_segment(tx: &mut Tx<'_>, org: &OrgId, id: SegmentId) -> Result<Segment> {
    match tx.query_opt(GET, &[&org.as_str(), id.as_uuid()])? {
        Some(row) => segment_from_row(&row),
        None => Err(Error::NotFound { id }),
    }
}

pub(super) const BY_KEY: &str =
    "SELECT id, name, description, source, current_size, created_at, updated_at
     FROM {schema}.segments WHERE org = $1 AND name_key = $2";

pub(super) fn by_key(tx: &mut Tx<'_>, org: &OrgId, key: &str) -> Result<Option<Segment>> {
    tx.query_opt(BY_KEY, &[&org.as_str(), &key])?
        .as_ref()
        .map(segment_from_row)
        .transpose()
}

pub(super) const LIST: &str =
    "SELECT id, name, description, source, current_size, created_at, updated_at
     FROM {schema}.segments WHERE org = $1 AND (created_at, id) > ($2, $3)
     ORDER BY created_at, id LIMIT $4";

pub(super) fn list(
    tx: &mut Tx<'_>,
    org: &OrgId,
    Page { after, limit }: Page<Option<SegmentCursor>>,
) -> Result<Vec<Segment>> {
    // Before every cursor: the smallest time and id.
    let (created_at, id) = after.map_or((i64::MIN, uuid::Uuid::nil()), |c| {
        (micros(c.created_at()), *c.id().as_uuid())
    });
    tx.query(LIST, &[&org.as_str(), &created_at, &id, &sql_int(limit)])?
        .iter()
        .map(segment_from_row)
        .collect()
}

/// A unique violation of the name constraint, as the domain error; any
/// other failure as it is.
fn duplicate_name(e: Error, name: &str) -> Error {
    let violated = std::error::Error::source(&e)
        .and_then(|s| s.downcast_ref::<r2d2_postgres::postgres::Error>())
        .and_then(|e| e.as_db_error())
        .is_some_and(|db| {
            *db.code() == SqlState::UNIQUE_VIOLATION && db.constraint() == Some(NAME_KEY_UNIQUE)
        });
    if violated {
        Error::DuplicateName {
            name: name.to_owned(),
        }
    } else {
        e
    }
}

/// One segment write of `org` in `ledger`'s transaction: the statements
/// of [`segment_calls`](crate::store::segment_calls), which runs the flow.
pub(super) struct PostgresSegmentWrite<'c, 't, 'l> {
    pub(super) tx: &'c mut Tx<'t>,
    pub(super) ledger: &'c mut PostgresLedger<'l>,
    pub(super) org: &'c OrgId,
}

impl SegmentSql for PostgresSegmentWrite<'_, '_, '_> {
    fn time(&self) -> DateTime<Utc> {
        self.ledger.head.time()
    }

    fn segment(&mut self, id: SegmentId) -> Result<Segment> {
        get_segment(self.tx, self.org, id)
    }

    fn exists(&mut self, id: SegmentId) -> Result<()> {
        locate(self.tx, self.org, id).map(drop)
    }

    fn insert(&mut self, new: &SegmentInsert) -> Result<()> {
        // A plain INSERT: the unique constraint decides between racing
        // creates, and its violation is recognized by the constraint's name.
        self.tx
            .execute(
                "INSERT INTO {schema}.segments (org, id, name, name_key, description, source, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                &[
                    &self.org.as_str(),
                    new.id.as_uuid(),
                    &new.name.as_str(),
                    &new.name.key(),
                    &new.description,
                    &new.source,
                    &self.ledger.head.at(),
                ],
            )
            .map_err(|e| duplicate_name(e, new.name.as_str()))?;
        Ok(())
    }

    fn change(&mut self, id: SegmentId, change: &SegmentChange) -> Result<()> {
        let (org, at) = (self.org.as_str(), self.ledger.head.at());
        match change {
            SegmentChange::Rename(name) => {
                self.tx
                    .execute(
                        "UPDATE {schema}.segments SET name = $3, name_key = $4, updated_at = $5
                         WHERE org = $1 AND id = $2",
                        &[&org, id.as_uuid(), &name.as_str(), &name.key(), &at],
                    )
                    .map_err(|e| duplicate_name(e, name.as_str()))?;
            }
            SegmentChange::Describe(description) => {
                self.tx.execute(
                    "UPDATE {schema}.segments SET description = $3, updated_at = $4 WHERE org = $1 AND id = $2",
                    &[&org, id.as_uuid(), description, &at],
                )?;
            }
        }
        Ok(())
    }

    /// Deletes the segment row, its memberships and its sizes (no foreign
    /// keys: see the schema).
    fn delete(&mut self, id: SegmentId) -> Result<()> {
        let (tx, org) = (&mut *self.tx, self.org);
        let deleted = tx.execute(
            "DELETE FROM {schema}.segments WHERE org = $1 AND id = $2",
            &[&org.as_str(), id.as_uuid()],
        )?;
        if deleted == 0 {
            return Err(Error::NotFound { id });
        }
        tx.execute(
            "DELETE FROM {schema}.segment_memberships WHERE org = $1 AND segment = $2",
            &[&org.as_str(), id.as_uuid()],
        )?;
        tx.execute(
            "DELETE FROM {schema}.segment_sizes WHERE org = $1 AND segment = $2",
            &[&org.as_str(), id.as_uuid()],
        )?;
        Ok(())
    }

    fn append(&mut self, id: SegmentId, kind: &ChangeKind) -> Result<()> {
        self.ledger.append(self.tx, id, kind).map(drop)
    }
}

/// A segment's new size, as `current_size` and as a size sample.
pub(super) const SET_SIZE: &str = "WITH sized AS (
         UPDATE {schema}.segments SET current_size = $3 WHERE org = $1 AND id = $2
     )
     INSERT INTO {schema}.segment_sizes (org, segment, seq, at, size) VALUES ($1, $2, $4, $5, $3)";

/// Stores a segment's new size, as `current_size` and as the size after
/// ledger entry `entry` (for `size_as_of`, and as its `members_seq`).
/// Nothing to do when the call recorded no entry.
pub(super) fn set_size(
    tx: &mut Tx<'_>,
    org: &OrgId,
    id: SegmentId,
    ledger: &PostgresLedger<'_>,
    entry: Option<i64>,
    size: u64,
) -> Result<()> {
    let Some(entry) = entry else {
        return Ok(());
    };
    tx.execute(
        SET_SIZE,
        &[
            &org.as_str(),
            id.as_uuid(),
            &sql_int(size),
            &entry,
            &ledger.head.at(),
        ],
    )?;
    Ok(())
}
