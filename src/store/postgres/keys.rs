//! Idempotency keys, in SQL: each keyed write records its key in its own
//! transaction.

use chrono::{DateTime, Utc};
use r2d2_postgres::postgres::Row;

use super::{Tx, get, micros, sql_int, time};
use crate::limits::EXPIRED_KEYS_PER_WRITE;
use crate::store::{KeyRecord, rules};
use crate::{Error, OrgId, Result};

/// [`KEY_UPSERT`](crate::store::entries::KEY_UPSERT): a racing insert of
/// the same key waits for the other transaction, then sees its record.
pub(super) use crate::store::entries::KEY_UPSERT as UPSERT;

/// Forgets up to `$3` of the org's keys that expired by `$2`, oldest first.
pub(super) const FORGET_EXPIRED: &str = "DELETE FROM {schema}.segment_keys
    WHERE org = $1 AND key = ANY (ARRAY(
        SELECT key FROM {schema}.segment_keys
        WHERE org = $1 AND expires_at <= $2
        ORDER BY expires_at
        LIMIT $3))";

/// The record of a key, live or expired (the caller tells): a seek by
/// the key alone, which a condition on the expiry would let a planner
/// trade for a walk of the org's keys by expiry.
pub(super) const GET: &str = "SELECT fingerprint, outcome, request_id, recorded_at, expires_at
    FROM {schema}.segment_keys WHERE org = $1 AND key = $2";

fn record_from_row(row: &Row) -> Result<KeyRecord> {
    let fingerprint: Vec<u8> = get(row, 0)?;
    Ok(KeyRecord {
        fingerprint: fingerprint
            .try_into()
            .map_err(|_| Error::storage("an idempotency key's fingerprint is not 32 bytes"))?,
        outcome: get(row, 1)?,
        request_id: get(row, 2)?,
        recorded_at: time(row, 3)?,
        expires_at: time(row, 4)?,
    })
}

/// The live record of `key` in `org`.
pub(super) fn get_record(
    tx: &mut Tx<'_>,
    org: &OrgId,
    key: &str,
    now: DateTime<Utc>,
) -> Result<Option<KeyRecord>> {
    let found = tx.query_opt(GET, &[&org.as_str(), &key])?;
    let record = found.as_ref().map(record_from_row).transpose()?;
    Ok(record.filter(|r| r.expires_at > now))
}

/// Records `record` unless a live record of `key` stands; returns
/// whether it did.
pub(super) fn put(
    tx: &mut Tx<'_>,
    org: &OrgId,
    key: &str,
    record: &KeyRecord,
    now: i64,
) -> Result<bool> {
    tx.execute(
        FORGET_EXPIRED,
        &[&org.as_str(), &now, &sql_int(EXPIRED_KEYS_PER_WRITE)],
    )?;
    let changed = tx.execute(
        UPSERT,
        &[
            &org.as_str(),
            &key,
            &&record.fingerprint[..],
            &record.outcome,
            &record.request_id,
            &micros(record.recorded_at),
            &micros(record.expires_at),
            &now,
        ],
    )?;
    Ok(changed == 1)
}

/// Records `record` for `key` unless a live record stands; the record that
/// stands.
pub(super) fn record(
    tx: &mut Tx<'_>,
    org: &OrgId,
    key: &str,
    record: &KeyRecord,
    now: DateTime<Utc>,
) -> Result<KeyRecord> {
    rules::keys::record_or_standing(
        tx,
        record.clone(),
        |tx, record| put(tx, org, key, record, micros(now)),
        |tx| get_record(tx, org, key, now),
    )
}
