//! Death records and the death feed, in SQL.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use r2d2_postgres::postgres::Row;

use super::ledger::pid_at;
use super::segments::locate;
use super::{Tx, count, get, micros, sql_int, time};
use crate::store::rules::deaths::{self, Place};
use crate::store::{Page, StoreDeathsIngested};
use crate::{
    DeathCursor, DeathRecord, DeathSignals, Error, OrgId, Result, SegmentId, SignalMetadata,
    StorageFailure,
};

/// Locks the death feed's head for the rest of the transaction: ingestions
/// take turns, and feed order is commit order.
pub(super) const LOCK_FEED: &str =
    "SELECT last_seq FROM {schema}.death_feed_head WHERE only_row FOR UPDATE";

/// The known records among a batch's obituaries.
pub(super) const KNOWN: &str =
    "SELECT obituary_id, seq, pid, first_observed_at FROM {schema}.death_records
     WHERE obituary_id = ANY($1::text[])";

/// Where a record of the batch ends up.
struct Placed<'r> {
    record: &'r DeathRecord,
    seq: i64,
    first_observed_at: i64,
}

/// Inserts or updates each record, in order. A known obituary keeps its
/// `first_observed_at` and, when its PID is the same, its feed position;
/// one that now names another person goes to the end of the feed, so the
/// segments of that person see it as new. Three statements whatever the
/// batch: read the known ones, delete them, insert every record where it
/// now belongs. Call inside a write transaction.
pub(super) fn upsert(
    tx: &mut Tx<'_>,
    records: &[DeathRecord],
    at: DateTime<Utc>,
) -> Result<StoreDeathsIngested> {
    let mut done = StoreDeathsIngested::default();
    if records.is_empty() {
        return Ok(done);
    }
    let mut last: i64 = get(&feed_head(tx, LOCK_FEED)?, 0)?;
    let ids: Vec<&str> = records.iter().map(|r| r.obituary_id.as_str()).collect();
    // By obituary: (seq, pid, first_observed_at) as stored, then as the
    // batch leaves it.
    let mut placed: HashMap<&str, Placed<'_>> = HashMap::new();
    let mut stored: HashMap<String, (i64, String, i64)> = HashMap::new();
    for row in tx.query(KNOWN, &[&ids])? {
        stored.insert(get(&row, 0)?, (get(&row, 1)?, get(&row, 2)?, get(&row, 3)?));
    }
    for record in records {
        let id = record.obituary_id.as_str();
        let before = placed
            .get(id)
            .map(|p| {
                (
                    p.seq,
                    p.record.minerva_pid.as_str().to_owned(),
                    p.first_observed_at,
                )
            })
            .or_else(|| stored.get(id).cloned());
        let known = before
            .as_ref()
            .map(|(seq, pid, first)| (*seq, pid.as_str(), *first));
        let (place, first_observed_at) = deaths::place(
            known,
            record.minerva_pid.as_str(),
            micros(record.first_observed_at),
            &mut done,
        );
        // Every known record is deleted and written again below: a moved
        // one at a new seq.
        let seq = match place {
            Place::Kept(seq) => seq,
            Place::End { .. } => {
                last += 1;
                last
            }
        };
        placed.insert(
            id,
            Placed {
                record,
                seq,
                first_observed_at,
            },
        );
    }
    if !stored.is_empty() {
        let known: Vec<&str> = stored.keys().map(String::as_str).collect();
        tx.execute(
            "DELETE FROM {schema}.death_records WHERE obituary_id = ANY($1::text[])",
            &[&known],
        )?;
    }
    let mut rows: Vec<&Placed<'_>> = placed.values().collect();
    rows.sort_unstable_by_key(|p| p.seq);
    let column = |f: fn(&Placed<'_>) -> Option<String>| -> Vec<Option<String>> {
        rows.iter().map(|p| f(p)).collect()
    };
    let seqs: Vec<i64> = rows.iter().map(|p| p.seq).collect();
    let obituary_ids = column(|p| Some(p.record.obituary_id.clone()));
    let pids = column(|p| Some(p.record.minerva_pid.as_str().to_owned()));
    let dates: Vec<NaiveDate> = rows.iter().map(|p| p.record.date_of_death).collect();
    let updated: Vec<Option<NaiveDate>> = rows
        .iter()
        .map(|p| p.record.publication_last_update_date)
        .collect();
    let firsts: Vec<i64> = rows.iter().map(|p| p.first_observed_at).collect();
    let sources = column(|p| Some(p.record.signal_metadata.source.clone()));
    let urls = column(|p| p.record.signal_metadata.obituary_url.clone());
    let publications = column(|p| p.record.signal_metadata.publication_name.clone());
    let scores: Vec<f64> = rows
        .iter()
        .map(|p| p.record.signal_metadata.confidence_score)
        .collect();
    tx.execute(
        "INSERT INTO {schema}.death_records (seq, obituary_id, pid, date_of_death,
             publication_last_update_date, first_observed_at, source, obituary_url,
             publication_name, confidence_score, updated_at)
         SELECT u.*, $11 FROM unnest($1::bigint[], $2::text[], $3::text[], $4::date[],
             $5::date[], $6::bigint[], $7::text[], $8::text[], $9::text[], $10::float8[]) AS u",
        &[
            &seqs,
            &obituary_ids,
            &pids,
            &dates,
            &updated,
            &firsts,
            &sources,
            &urls,
            &publications,
            &scores,
            &micros(at),
        ],
    )?;
    tx.execute(
        "UPDATE {schema}.death_feed_head SET last_seq = $1 WHERE only_row",
        &[&last],
    )?;
    Ok(done)
}

/// The death records after a feed position whose person is an active
/// member of the segment: the records in feed order, each looked up in the
/// segment by person (scalar subqueries: a lookup per record, never a scan
/// of the segment).
pub(super) const SIGNALS: &str = "SELECT d.seq, d.pid, d.obituary_id, d.date_of_death,
            d.publication_last_update_date, d.first_observed_at, d.source, d.obituary_url,
            d.publication_name, d.confidence_score
     FROM {schema}.death_records d
     WHERE d.seq > $3
       AND (SELECT m.removed_at IS NULL
            FROM {schema}.segment_memberships m
            WHERE m.org = $1 AND m.segment = $2
              AND m.person = (SELECT p.person FROM {schema}.segment_people p
                              WHERE p.org = $1 AND p.pid = d.pid))
     ORDER BY d.seq LIMIT $4";

/// The end of the death feed: the last position given.
pub(super) const FEED_END: &str = "SELECT last_seq FROM {schema}.death_feed_head WHERE only_row";

/// The death feed's head row ([`LOCK_FEED`] or [`FEED_END`]), which the
/// schema makes once and never deletes: missing, the schema is damaged.
fn feed_head(tx: &mut Tx<'_>, sql: &'static str) -> Result<Row> {
    tx.query_opt(sql, &[])?.ok_or_else(|| {
        Error::storage_failure(
            StorageFailure::Corrupt,
            "the death feed's head row (death_feed_head) is missing",
        )
    })
}

fn death_from_row(row: &Row) -> Result<(i64, DeathRecord)> {
    Ok((
        get(row, 0)?,
        DeathRecord {
            minerva_pid: pid_at(row, 1)?,
            obituary_id: get(row, 2)?,
            date_of_death: get(row, 3)?,
            publication_last_update_date: get(row, 4)?,
            first_observed_at: time(row, 5)?,
            signal_metadata: SignalMetadata {
                source: get(row, 6)?,
                obituary_url: get(row, 7)?,
                publication_name: get(row, 8)?,
                confidence_score: get(row, 9)?,
            },
        },
    ))
}

/// Up to `limit` records of the segment's active members after `after`.
/// Call inside one read transaction.
pub(super) fn signals(
    tx: &mut Tx<'_>,
    org: &OrgId,
    id: SegmentId,
    Page { after, limit }: Page<DeathCursor>,
) -> Result<DeathSignals> {
    locate(tx, org, id)?;
    let found = tx
        .query(
            SIGNALS,
            &[
                &org.as_str(),
                id.as_uuid(),
                &sql_int(after.get()),
                &sql_int(limit),
            ],
        )?
        .iter()
        .map(death_from_row)
        .collect::<Result<Vec<_>>>()?;
    let last = found
        .last()
        .map(|&(seq, _)| u64::try_from(seq).unwrap_or(0));
    let next = deaths::next_cursor(after, limit, found.len(), last, || {
        count(&feed_head(tx, FEED_END)?, 0)
    })?;
    Ok(DeathSignals {
        records: found.into_iter().map(|(_, record)| record).collect(),
        next,
    })
}
