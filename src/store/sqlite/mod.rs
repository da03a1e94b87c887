//! [`SqliteStore`]: segments in a SQLite file (or SQLite in memory).
//!
//! `builder.rs` holds the builder, its settings and the PRAGMAs each
//! connection gets. One file per stored entity, as in the other backends: `segments.rs`,
//! `members.rs` (people and memberships), `ledger.rs` (the ledger and its
//! org heads), `as_of.rs` (reads of the past), `deaths.rs`; `schema.rs`
//! holds the tables and their migrations.

use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, Row};

use crate::store::entries::{self, Batch};
use crate::store::{
    KeyRecord, MemberSlice, MemberStart, Page, SegmentChange, SegmentInsert, Stamp,
    StoreAddOutcome, StoreDeathsIngested, StoreRemoveOutcome, WriteOutcome, member_calls,
    segment_calls,
};
use crate::{
    Change, DeathCursor, DeathRecord, DeathSignals, Error, MemberCursor, OrgId, PastMember, Pid,
    Result, Segment, SegmentCursor, SegmentId, SegmentStore, SetExpr, StorageFailure,
};
use ledger::SqliteLedger;
use segments::SqliteSegmentWrite;

mod as_of;
mod builder;
mod checkpoints;
mod deaths;
mod keys;
mod ledger;
mod members;
mod schema;
mod segments;
mod writers;

pub use builder::{SqliteStoreBuilder, Synchronous};

/// Segments in SQLite: one file, no server, safe across threads and
/// processes.
///
/// - SQLite is compiled in (rusqlite `bundled`): no system library.
/// - Files use WAL, `synchronous=NORMAL` by default (see [`Synchronous`]),
///   `busy_timeout` 5 s and `foreign_keys=ON`, set on every connection as it
///   opens. Statements are prepared once per connection and cached.
/// - One connection writes. The store's write calls wait in line, served
///   in arrival order (no polling of SQLite's lock between them), and on
///   a file the calls waiting together **commit together**: each runs in
///   a savepoint of one transaction, which the last call in line commits
///   (a group holds at most 64 calls, or 20 ms of them). Each call still
///   applies all or nothing (a failing call rolls back to its savepoint,
///   alone), and returns only once its group has committed; if that
///   commit fails, every call of the group fails and nothing of it is
///   written. With `synchronous=FULL`, a group pays one fsync. On a file,
///   reads use their own connections, so readers never wait on the writer
///   (in memory, reads share the one connection, and each write commits
///   alone). Several processes may open one file; SQLite's locks order
///   their writes (their groups, for stores in other processes).
/// - A file store checkpoints its WAL on a thread of its own, so that
///   write calls seldom wait while the WAL is copied back into the file
///   (only the commit that takes the WAL to 4,000 pages finishes the copy
///   inline; see [`SqliteStoreBuilder::background_checkpoints`]); dropping
///   the last clone stops the thread.
/// - The crate's tables are `segment_heads`, `segments`, `segment_people`,
///   `segment_memberships`, `segment_ledger`, `segment_ops`,
///   `segment_sizes`, `death_records`, `segment_keys` and
///   `segments_schema`; the file may hold a host's tables beside them.
/// - A create writes its segment row, its `Created` ledger row and its
///   org's head row (the last seq and time of the org's ledger, from which
///   every write takes its seqs and its time).
/// - People are numbered per org the first time they join a segment
///   (`segment_people`); memberships and the ledger's index by person hold
///   that number. Filling a segment with new people then writes one index
///   in random order (people by PID) and appends to all the others, which
///   is what keeps a fill to 1M members fast.
/// - Costs, as the bench report measures them: an add or remove of `n`
///   PIDs is a handful of statements over the batch, in PID order, whose
///   cost grows with `n` and with the logarithm of the tables; `get` reads
///   one row; a member page by cursor, a change-feed page and a timeline
///   page cost the same at any depth; a member page by offset grows with
///   the offset (the service's page walk avoids it); `size_as_of` is one
///   read of `segment_sizes` (the segment's last size sample at or before
///   the time, by an index on segment and time); a death-signal poll reads the
///   death records after its cursor, each looked up in the segment by
///   person. A set operation is one compound `SELECT` over its sources'
///   memberships, then the member writes of an add of its result: per
///   member written, a membership row with its two list-order indexes and
///   a ledger row with its index by person, five B-tree insertions of
///   which two land in random order. It runs at about a tenth to a fifth
///   of a raw `INSERT … SELECT` of the same compound into one plain table
///   (the `sets/` bench rows), and grows a little faster than linearly
///   with the result's size.
/// - Name uniqueness is a unique index: of two racing creates, even in two
///   processes, exactly one wins.
/// - The schema version is kept in the table `segments_schema`; a file from
///   a newer version of the crate is refused with
///   [`Error::SchemaTooNew`] and left untouched.
///
/// Clones share the connections.
///
/// ```
/// use segments_engine::{NewSegment, OrgId, Segments, SqliteStore};
/// # let dir = tempfile::tempdir()?;
/// let path = dir.path().join("segments.db");
/// let org = OrgId::new("acme")?;
/// let id = Segments::new(SqliteStore::open(&path)?)
///     .create(&org, NewSegment::new("Watchlist"))?
///     .id;
/// // Reopened, the file still holds it.
/// let segments = Segments::new(SqliteStore::open(&path)?);
/// assert_eq!(segments.get(&org, id)?.name, "Watchlist");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<SqliteShared>,
}

/// Runs `attempt` again while it fails because the database is busy, for
/// up to `patience` in all, with short growing pauses.
///
/// SQLite's busy handler already waits for locks (`busy_timeout`); a few
/// waits it cannot cover (a reader meeting another process's WAL recovery,
/// a lock handed over at the wrong instant) surface as `SQLITE_BUSY`. Every
/// retried attempt is a whole statement or read that changed nothing, so
/// retrying is safe. No busy error reaches a caller before `patience` is
/// spent.
fn when_busy<T>(patience: Duration, mut attempt: impl FnMut() -> Result<T>) -> Result<T> {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match attempt() {
            Err(e)
                if e.storage_kind() == Some(StorageFailure::Busy)
                    && started.elapsed() + pause < patience =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// What the clones of a [`SqliteStore`] share.
struct SqliteShared {
    /// The file's checkpoint thread, if it has one: first, so that it
    /// stops (and its connection closes) before the writer closes. Held
    /// for that drop; only tests read it.
    #[cfg_attr(not(test), allow(dead_code))]
    checkpoints: Option<checkpoints::Checkpointer>,
    writer: Mutex<Connection>,
    /// The store's write calls, in line for the write connection.
    writers: writers::Writers,
    /// Idle read connections; `None` for an in-memory database, whose reads
    /// use the writer.
    readers: Option<Mutex<Vec<Connection>>>,
    path: Option<PathBuf>,
    options: SqliteStoreBuilder,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` with the
    /// default options; see [`SqliteStore::builder`] for others.
    ///
    /// # Errors
    /// As [`SqliteStoreBuilder::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder().open(path)
    }

    /// A private database in memory, gone when the store is dropped.
    ///
    /// # Errors
    /// As [`SqliteStoreBuilder::open_in_memory`].
    pub fn open_in_memory() -> Result<Self> {
        Self::builder().open_in_memory()
    }

    /// Options to set before opening.
    pub fn builder() -> SqliteStoreBuilder {
        SqliteStoreBuilder::default()
    }

    /// The database file, or `None` in memory.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    fn from_parts(
        writer: Connection,
        checkpoints: Option<checkpoints::Checkpointer>,
        path: Option<PathBuf>,
        options: SqliteStoreBuilder,
    ) -> Self {
        let readers = path.as_ref().map(|_| Mutex::new(Vec::new()));
        Self {
            inner: Arc::new(SqliteShared {
                checkpoints,
                writer: Mutex::new(writer),
                writers: writers::Writers::default(),
                readers,
                path,
                options,
            }),
        }
    }

    /// The checkpoints the file's checkpoint thread has run, and those
    /// the writer ran inline; `None` without the thread.
    #[cfg(test)]
    fn checkpoints_work(&self) -> Option<(u64, u64)> {
        self.inner
            .checkpoints
            .as_ref()
            .map(checkpoints::Checkpointer::work)
    }

    /// The write connection. A panic in another thread while it held the
    /// lock rolled its transaction back (rusqlite's `Transaction` rolls back
    /// on drop), so the connection is sound to use.
    fn writer(&self) -> MutexGuard<'_, Connection> {
        self.inner.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` in a write transaction on the write connection: it commits
    /// when `f` returns `Ok`, and rolls back otherwise.
    fn write<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.write_or_try(false, f)
    }

    /// [`write`](Self::write), or for a dry run the same transaction rolled
    /// back once `f` has worked out its outcome: exactly what the write
    /// would do at this moment (under the write lock), and nothing written.
    fn write_or_try<T>(
        &self,
        dry_run: bool,
        f: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        // A file's writes are grouped; in memory, reads share the write
        // connection, so each write commits before the next turn.
        let grouped = self.inner.path.is_some();
        self.inner.writers.write(
            &self.inner.writer,
            grouped,
            dry_run,
            self.inner.options.busy_timeout,
            f,
        )
    }

    /// [`write_or_try`](Self::write_or_try) for a write that changes
    /// segments or members: `f` runs with the org's ledger open, and the
    /// key the stamp may claim ([`Stamp::key`]) is recorded in the same
    /// transaction ([`entries::keyed_write`]).
    fn keyed<T: WriteOutcome>(
        &self,
        org: &OrgId,
        stamp: Stamp<'_>,
        f: impl FnOnce(&Connection, &mut SqliteLedger<'_>) -> Result<T>,
    ) -> Result<T> {
        self.write_or_try(stamp.dry_run, |mut tx| {
            entries::keyed_write(
                &mut tx,
                org,
                stamp,
                |tx: &mut &Connection, ledger: &mut SqliteLedger<'_>| f(tx, ledger),
                |tx, key, record| keys::put(tx, org, key, record, micros(stamp.at)),
            )
        })
    }

    /// [`keyed`](Self::keyed) for a member call on segment `id` of `org`:
    /// `f` runs with the segment located and the org's ledger open.
    fn member_call<T: WriteOutcome>(
        &self,
        org: &OrgId,
        id: SegmentId,
        stamp: Stamp<'_>,
        f: impl FnOnce(&mut members::SqliteMemberCall<'_, '_>) -> Result<T>,
    ) -> Result<T> {
        self.keyed(org, stamp, |tx, ledger| {
            members::on_segment(tx, ledger, org, id, f)
        })
    }

    /// Runs `f` on a read connection, in one read transaction (one
    /// snapshot), again if the database was busy (reads
    /// change nothing, so a retry is safe).
    fn read<T>(&self, f: impl Fn(&Connection) -> Result<T>) -> Result<T> {
        when_busy(self.inner.options.busy_timeout, || self.read_once(&f))
    }

    fn read_once<T>(&self, f: &impl Fn(&Connection) -> Result<T>) -> Result<T> {
        let (Some(pool), Some(path)) = (&self.inner.readers, &self.inner.path) else {
            return snapshot(&self.writer(), f);
        };
        let idle = pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                let conn = self.inner.options.connect(path)?;
                conn.pragma_update(None, "query_only", "ON").db()?;
                conn
            }
        };
        let out = snapshot(&conn, f);
        // A connection that failed in the backend is not trusted again
        // (a busy one is: it only waited).
        let healthy = !matches!(
            out.as_ref().map_err(Error::storage_kind),
            Err(Some(kind)) if kind != StorageFailure::Busy
        );
        let mut idle = pool.lock().unwrap_or_else(|e| e.into_inner());
        if healthy && idle.len() < self.inner.options.max_idle_readers {
            idle.push(conn);
        }
        out
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("synchronous", &self.inner.options.synchronous)
            .finish_non_exhaustive()
    }
}

/// The one place rusqlite's errors become the crate's: a backend failure,
/// classified by SQLite's result code, with rusqlite's error kept as the
/// source. Constraint violations that mean something in the domain never get
/// here: the statements detect them (`ON CONFLICT`, reads under the write
/// lock) and answer the domain error.
trait SqliteDb<T> {
    fn db(self) -> Result<T>;
}

impl<T> SqliteDb<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T> {
        self.map_err(|e| {
            use rusqlite::ErrorCode as C;
            let kind = match e.sqlite_error_code() {
                Some(C::ReadOnly) => StorageFailure::ReadOnly,
                Some(C::DiskFull) => StorageFailure::Full,
                Some(C::DatabaseCorrupt | C::NotADatabase) => StorageFailure::Corrupt,
                Some(C::DatabaseBusy | C::DatabaseLocked) => StorageFailure::Busy,
                Some(C::CannotOpen) => StorageFailure::CannotOpen,
                Some(C::SystemIoFailure) => StorageFailure::Io,
                _ => StorageFailure::Other,
            };
            Error::storage_failure(kind, e)
        })
    }
}

/// `f` inside one read transaction: everything it reads is one snapshot.
fn snapshot<T>(conn: &Connection, f: &impl Fn(&Connection) -> Result<T>) -> Result<T> {
    let tx = conn.unchecked_transaction().db()?;
    f(&tx)
}

/// A batch of values as one `rarray(?)` parameter.
fn array<T: Into<Value>>(values: impl IntoIterator<Item = T>) -> Rc<Vec<Value>> {
    Rc::new(values.into_iter().map(Into::into).collect())
}

/// A `limit` or position as SQLite's integer (stores are asked for at
/// most [`MAX_READ`](crate::store::MAX_READ) items; a position past
/// `i64::MAX` is past every row).
fn sql_int(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn time_at(row: &Row<'_>, i: usize) -> rusqlite::Result<DateTime<Utc>> {
    let v: i64 = row.get(i)?;
    DateTime::from_timestamp_micros(v).ok_or(rusqlite::Error::IntegralValueOutOfRange(i, v))
}

/// A count column; a negative value is a corrupt row, not a number.
fn count_at(row: &Row<'_>, i: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(i)?;
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(i, v))
}

impl SegmentStore for SqliteStore {
    fn insert_segment(&self, org: &OrgId, new: SegmentInsert, stamp: Stamp<'_>) -> Result<Segment> {
        self.keyed(org, stamp, |tx, ledger| {
            segment_calls::insert(&mut SqliteSegmentWrite { tx, ledger, org }, &new)
        })
    }

    fn segment(&self, org: &OrgId, id: SegmentId) -> Result<Segment> {
        self.read(|conn| segments::get(conn, org, id))
    }

    fn segment_by_key(&self, org: &OrgId, key: &str) -> Result<Option<Segment>> {
        self.read(|conn| segments::by_key(conn, org, key))
    }

    fn segments(&self, org: &OrgId, page: Page<Option<SegmentCursor>>) -> Result<Vec<Segment>> {
        self.read(|conn| segments::list(conn, org, page))
    }

    fn update_segment(
        &self,
        org: &OrgId,
        id: SegmentId,
        change: &SegmentChange,
        stamp: Stamp<'_>,
    ) -> Result<Segment> {
        self.keyed(org, stamp, |tx, ledger| {
            segment_calls::update(&mut SqliteSegmentWrite { tx, ledger, org }, id, change)
        })
    }

    fn delete_segment(&self, org: &OrgId, id: SegmentId, stamp: Stamp<'_>) -> Result<()> {
        self.keyed(org, stamp, |tx, ledger| {
            segment_calls::delete(&mut SqliteSegmentWrite { tx, ledger, org }, id)
        })
    }

    fn add_members(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[Pid],
        stamp: Stamp<'_>,
    ) -> Result<StoreAddOutcome> {
        let batch = Batch::new(pids)?;
        self.member_call(org, id, stamp, |call| member_calls::add(call, &batch))
    }

    fn remove_members(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[Pid],
        stamp: Stamp<'_>,
    ) -> Result<StoreRemoveOutcome> {
        let batch = Batch::new(pids)?;
        self.member_call(org, id, stamp, |call| member_calls::remove(call, &batch))
    }

    fn create_from(
        &self,
        org: &OrgId,
        segment: SegmentInsert,
        expr: &SetExpr,
        stamp: Stamp<'_>,
    ) -> Result<Segment> {
        self.keyed(org, stamp, |tx, ledger| {
            segment_calls::create_from(
                &mut SqliteSegmentWrite { tx, ledger, org },
                &segment,
                expr,
                |w, id| members::add_to_new(w, id, expr),
            )
        })
    }

    fn add_from(
        &self,
        org: &OrgId,
        id: SegmentId,
        expr: &SetExpr,
        stamp: Stamp<'_>,
    ) -> Result<StoreAddOutcome> {
        self.member_call(org, id, stamp, |call| member_calls::add_from(call, expr))
    }

    fn remove_from(
        &self,
        org: &OrgId,
        id: SegmentId,
        expr: &SetExpr,
        stamp: Stamp<'_>,
    ) -> Result<StoreRemoveOutcome> {
        self.member_call(org, id, stamp, |call| member_calls::remove_from(call, expr))
    }

    fn members(
        &self,
        org: &OrgId,
        id: SegmentId,
        page: Page<MemberStart<'_>>,
    ) -> Result<MemberSlice> {
        self.read(|conn| members::slice(conn, org, id, page))
    }

    fn changes_since(&self, org: &OrgId, page: Page<u64>) -> Result<Vec<Change>> {
        self.read(|conn| ledger::since(conn, org, page))
    }

    fn last_seq(&self, org: &OrgId) -> Result<u64> {
        self.read(|conn| ledger::last_seq(conn, org))
    }

    fn timeline(&self, org: &OrgId, pid: &Pid, page: Page<u64>) -> Result<Vec<Change>> {
        self.read(|conn| ledger::timeline(conn, org, pid, page))
    }

    fn size_as_of(&self, org: &OrgId, id: SegmentId, at: DateTime<Utc>) -> Result<u64> {
        self.read(|conn| as_of::size(conn, org, id, at))
    }

    fn members_as_of(
        &self,
        org: &OrgId,
        id: SegmentId,
        at: DateTime<Utc>,
        page: Page<Option<&MemberCursor>>,
    ) -> Result<Vec<PastMember>> {
        self.read(|conn| as_of::members(conn, org, id, at, page))
    }

    fn idempotency_record(
        &self,
        org: &OrgId,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<KeyRecord>> {
        self.read(|conn| keys::get(conn, org, key, now))
    }

    fn record_idempotency(
        &self,
        org: &OrgId,
        key: &str,
        record: KeyRecord,
        now: DateTime<Utc>,
    ) -> Result<KeyRecord> {
        self.write(|tx| keys::record(tx, org, key, record, now))
    }

    fn upsert_deaths(
        &self,
        records: &[DeathRecord],
        at: DateTime<Utc>,
    ) -> Result<StoreDeathsIngested> {
        self.write(|tx| deaths::upsert(tx, records, at))
    }

    fn death_signals(
        &self,
        org: &OrgId,
        id: SegmentId,
        page: Page<DeathCursor>,
    ) -> Result<DeathSignals> {
        self.read(|conn| deaths::signals(conn, org, id, page))
    }
}

#[cfg(test)]
mod failure_tests;
#[cfg(test)]
mod plan_tests;
#[cfg(test)]
mod tests;
