//! Death records and the death feed, in SQL.

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::ledger::pid_at;
use super::segments::locate;
use super::{SqliteDb, count_at, micros, sql_int, time_at};
use crate::store::rules::deaths::{self, Place};
use crate::store::{Page, StoreDeathsIngested};
use crate::{DeathCursor, DeathRecord, DeathSignals, OrgId, Result, SegmentId, SignalMetadata};

fn corrupt(i: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, what.into())
}

fn date_at(row: &Row<'_>, i: usize) -> rusqlite::Result<NaiveDate> {
    let s: String = row.get(i)?;
    NaiveDate::parse_from_str(&s, "%Y-%m-%d")
        .map_err(|_| corrupt(i, format!("stored date {s:?} is malformed")))
}

/// A death record and its feed position, read with the columns of
/// [`SIGNALS`].
fn death_from_row(row: &Row<'_>) -> rusqlite::Result<(u64, DeathRecord)> {
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
/// segments of that person see it as new.
/// Call inside a write transaction.
pub(super) fn upsert(
    conn: &Connection,
    records: &[DeathRecord],
    at: DateTime<Utc>,
) -> Result<StoreDeathsIngested> {
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
    let mut done = StoreDeathsIngested::default();
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
        let known = existing
            .as_ref()
            .map(|(seq, pid, first)| (*seq, pid.as_str(), *first));
        let (place, first_observed_at) = deaths::place(
            known,
            r.minerva_pid.as_str(),
            micros(r.first_observed_at),
            &mut done,
        );
        match place {
            Place::Kept(seq) => {
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
                continue;
            }
            Place::End { moved_from } => {
                if let Some(seq) = moved_from {
                    forget.execute([seq]).db()?;
                }
            }
        }
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
    Ok(done)
}

/// The death records after a feed position whose person is an active
/// member of the segment: the records in feed order, each looked up in
/// the segment by person.
pub(super) const SIGNALS: &str = "SELECT d.seq, d.pid, d.obituary_id, d.date_of_death,
            d.publication_last_update_date, d.first_observed_at, d.source, d.obituary_url,
            d.publication_name, d.confidence_score
     FROM death_records d
     JOIN segment_people p ON p.org = ?1 AND p.pid = d.pid
     JOIN segment_memberships m ON m.segment = ?2 AND m.person = p.person AND m.removed_at IS NULL
     WHERE d.seq > ?3 ORDER BY d.seq LIMIT ?4";

/// The end of the death feed: the last position given.
pub(super) const FEED_END: &str = "SELECT coalesce(max(seq), 0) FROM death_records";

/// Up to `limit` records of the segment's active members after `after`.
/// Call inside one read transaction.
pub(super) fn signals(
    conn: &Connection,
    org: &OrgId,
    id: SegmentId,
    Page { after, limit }: Page<DeathCursor>,
) -> Result<DeathSignals> {
    let segment = locate(conn, org, id)?;
    let found = conn
        .prepare_cached(SIGNALS)
        .db()?
        .query_map(
            params![
                org.as_str(),
                segment.number,
                sql_int(after.get()),
                sql_int(limit)
            ],
            death_from_row,
        )
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()?;
    let last = found.last().map(|&(seq, _)| seq);
    let next = deaths::next_cursor(after, limit, found.len(), last, || {
        let end: i64 = conn
            .prepare_cached(FEED_END)
            .db()?
            .query_row([], |r| r.get(0))
            .db()?;
        Ok::<_, crate::Error>(u64::try_from(end).unwrap_or(0))
    })?;
    Ok(DeathSignals {
        records: found.into_iter().map(|(_, record)| record).collect(),
        next,
    })
}
