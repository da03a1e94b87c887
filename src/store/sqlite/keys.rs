//! Idempotency keys, in SQL: each keyed write records its key in its own
//! transaction.

use std::sync::LazyLock;

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{SqliteDb, micros, sql_int, time_at};
use crate::limits::EXPIRED_KEYS_PER_WRITE;
use crate::store::entries::KEY_UPSERT;
use crate::store::{KeyRecord, rules};
use crate::{OrgId, Result};

/// [`KEY_UPSERT`], the statement PostgreSQL runs, without the schema.
static UPSERT: LazyLock<String> = LazyLock::new(|| KEY_UPSERT.replace("{schema}.", ""));

/// Forgets up to `?3` of the org's keys that expired by `?2`, oldest first.
pub(super) const FORGET_EXPIRED: &str = "DELETE FROM segment_keys WHERE rowid IN (
        SELECT rowid FROM segment_keys
        WHERE org = ?1 AND expires_at <= ?2
        ORDER BY expires_at
        LIMIT ?3)";

/// The record of a key, live or expired (the caller tells): a seek by
/// the key alone, which a condition on the expiry would let a planner
/// trade for a walk of the org's keys by expiry.
pub(super) const GET: &str = "SELECT fingerprint, outcome, request_id, recorded_at, expires_at
    FROM segment_keys WHERE org = ?1 AND key = ?2";

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<KeyRecord> {
    Ok(KeyRecord {
        fingerprint: row.get(0)?,
        outcome: row.get(1)?,
        request_id: row.get(2)?,
        recorded_at: time_at(row, 3)?,
        expires_at: time_at(row, 4)?,
    })
}

/// The live record of `key` in `org`.
pub(super) fn get(
    conn: &Connection,
    org: &OrgId,
    key: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<KeyRecord>> {
    let record = conn
        .prepare_cached(GET)
        .db()?
        .query_row(params![org.as_str(), key], record_from_row)
        .optional()
        .db()?;
    Ok(record.filter(|r| r.expires_at > now))
}

/// Records `record` unless a live record of `key` stands; returns
/// whether it did.
pub(super) fn put(
    conn: &Connection,
    org: &OrgId,
    key: &str,
    record: &KeyRecord,
    now: i64,
) -> Result<bool> {
    conn.prepare_cached(FORGET_EXPIRED)
        .db()?
        .execute(params![org.as_str(), now, sql_int(EXPIRED_KEYS_PER_WRITE)])
        .db()?;
    let changed = conn
        .prepare_cached(&UPSERT)
        .db()?
        .execute(params![
            org.as_str(),
            key,
            record.fingerprint,
            record.outcome,
            record.request_id,
            micros(record.recorded_at),
            micros(record.expires_at),
            now,
        ])
        .db()?;
    Ok(changed == 1)
}

/// Records `record` for `key` unless a live record stands; the record that
/// stands.
pub(super) fn record(
    tx: &Connection,
    org: &OrgId,
    key: &str,
    record: KeyRecord,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<KeyRecord> {
    rules::keys::record_or_standing(
        &mut &*tx,
        record,
        |tx, record| put(tx, org, key, record, micros(now)),
        |tx| get(tx, org, key, now),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared key statement binds here by position: SQLite numbers
    /// `$1` … `$8` by first appearance, so they must first appear in order.
    #[test]
    fn the_shared_key_statement_numbers_its_parameters_in_order() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn, 0).unwrap();
        let statement = conn.prepare(&UPSERT).unwrap();
        assert_eq!(statement.parameter_count(), 8);
        for i in 1..=8 {
            assert_eq!(
                statement.parameter_name(i),
                Some(format!("${i}").as_str()),
                "parameter {i}"
            );
        }
    }
}
