//! Failures and stored values: the one place `postgres` errors become the
//! crate's, and the readers of stored columns, for which a value that
//! does not decode is a damaged row.

use chrono::{DateTime, Utc};
use r2d2_postgres::postgres::error::SqlState;
use r2d2_postgres::postgres::{self as pg, Row};

use crate::{Error, Result, StorageFailure};

/// Whether the connection itself failed (closed, or an I/O error), rather
/// than a statement.
pub(super) fn is_lost(e: &pg::Error) -> bool {
    e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

/// The one place `postgres` errors become the crate's: a backend failure,
/// classified by [`failure_kind`], with the `postgres` error kept as the
/// source. A unique violation of a segment's name is recognized by its
/// constraint's name where a statement can meet it (see `segments.rs`).
pub(super) trait PostgresDb<T> {
    fn db(self) -> Result<T>;
}

impl<T> PostgresDb<T> for std::result::Result<T, pg::Error> {
    fn db(self) -> Result<T> {
        self.map_err(|e| Error::storage_failure(failure_kind(&e), e))
    }
}

/// What a `postgres` error says of the storage: by its SQLSTATE when the
/// server sent one. Without one, [`StorageFailure::Unavailable`] only when
/// the connection itself failed (closed, or an I/O error: refused, reset,
/// timed out), which may pass; anything else (a statement that returned
/// another number of rows than it must, a parameter or value that does
/// not convert) is [`StorageFailure::Other`]: it would fail the same way
/// again, and a host that retries `Unavailable` must not retry it forever.
pub(super) fn failure_kind(e: &pg::Error) -> StorageFailure {
    if is_lost(e) {
        return StorageFailure::Unavailable;
    }
    match e.code() {
        Some(c) if *c == SqlState::QUERY_CANCELED => StorageFailure::Timeout,
        Some(c) if *c == SqlState::LOCK_NOT_AVAILABLE => StorageFailure::Busy,
        Some(c)
            if *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
                || *c == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
                // No room for another connection now: it may pass.
                || *c == SqlState::TOO_MANY_CONNECTIONS
                || c.code().starts_with("08") =>
        {
            StorageFailure::Unavailable
        }
        Some(c) if *c == SqlState::DISK_FULL => StorageFailure::Full,
        Some(c) if *c == SqlState::READ_ONLY_SQL_TRANSACTION => StorageFailure::ReadOnly,
        Some(c) if c.code().starts_with("XX") => StorageFailure::Corrupt,
        Some(_) | None => StorageFailure::Other,
    }
}

/// A column. A value that does not decode as this crate wrote it is a
/// damaged row: [`StorageFailure::Corrupt`].
pub(super) fn get<'r, T: pg::types::FromSql<'r>>(row: &'r Row, i: usize) -> Result<T> {
    row.try_get(i)
        .map_err(|e| Error::storage_failure(StorageFailure::Corrupt, e))
}

/// A row that is not what this crate wrote.
pub(super) fn damaged(what: String) -> Error {
    Error::storage_failure(StorageFailure::Corrupt, what)
}

/// A count column; a negative value is a damaged row.
pub(super) fn count(row: &Row, i: usize) -> Result<u64> {
    let v: i64 = get(row, i)?;
    u64::try_from(v).map_err(|_| damaged(format!("stored count {v} is negative")))
}

/// A time column (microseconds since the epoch).
pub(super) fn time(row: &Row, i: usize) -> Result<DateTime<Utc>> {
    let v: i64 = get(row, i)?;
    from_micros(v)
}

pub(super) fn from_micros(v: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(v)
        .ok_or_else(|| damaged(format!("stored time {v} is out of range")))
}

pub(super) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// A `limit` or position as PostgreSQL's `bigint`.
pub(super) fn sql_int(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}
