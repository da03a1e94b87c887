//! [`SqliteStore`]: segments in a SQLite file (or SQLite in memory).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

use crate::StorageFailure;
use crate::{
    Change, ChangeKind, DeathCursor, DeathRecord, Error, Member, MemberCursor, MembersAdded,
    MembersRemoved, OrgId, PastMember, Pid, Result, Segment, SegmentChange, SegmentCursor,
    SegmentId, SegmentInsert, SegmentStore, Stamp,
};

mod history;
mod schema;

use history::{Ledger, Membership, Tails};

/// How hard SQLite works to make a commit durable (`PRAGMA synchronous`).
///
/// With WAL, neither mode can corrupt the database on a crash. They differ
/// on power loss or an OS crash: with [`Normal`](Synchronous::Normal) the
/// last transactions before the crash may be rolled back; with
/// [`Full`](Synchronous::Full) a transaction is durable once its call
/// returns, at the cost of an fsync per commit. A process crash (even
/// SIGKILL) loses nothing that committed in either mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Synchronous {
    /// `synchronous=NORMAL`: the default.
    #[default]
    Normal,
    /// `synchronous=FULL`.
    Full,
}

impl Synchronous {
    fn pragma_value(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
        }
    }
}

/// Options of a [`SqliteStore`], set before it opens.
///
/// ```
/// use std::time::Duration;
/// use segments::{SqliteStore, Synchronous};
/// # let dir = tempfile::tempdir()?;
/// let store = SqliteStore::builder()
///     .synchronous(Synchronous::Full)
///     .busy_timeout(Duration::from_secs(10))
///     .open(dir.path().join("segments.db"))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct SqliteStoreBuilder {
    synchronous: Synchronous,
    busy_timeout: Duration,
    max_idle_readers: usize,
}

impl Default for SqliteStoreBuilder {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(5),
            max_idle_readers: 4,
        }
    }
}

impl SqliteStoreBuilder {
    /// `PRAGMA synchronous`; [`Synchronous::Normal`] by default.
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// How long a call waits for another connection's write lock (another
    /// process, usually) before it fails; 5 s by default.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How many idle read connections are kept for reuse; 4 by default.
    /// More are opened when more threads read at once.
    pub fn max_idle_readers(mut self, n: usize) -> Self {
        self.max_idle_readers = n;
        self
    }

    /// Opens (creating if needed) the database file at `path` and brings its
    /// schema up to date.
    ///
    /// # Errors
    /// [`Error::SchemaTooNew`] when a newer version of this crate wrote the
    /// file (the file is left untouched); `Storage` when the file cannot be
    /// opened, is not a database, or cannot be written.
    pub fn open(self, path: impl AsRef<Path>) -> Result<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let mut writer = Connection::open(&path).db()?;
        // The version check may wait for another process's lock, so the
        // timeout comes first; `configure` sets it again with the rest.
        writer.busy_timeout(self.busy_timeout).db()?;
        // Processes opening one new file at once take turns; every step
        // can be retried (migrations run in one transaction).
        when_busy(self.busy_timeout, || {
            // Refuse a newer database before any PRAGMA can write to it.
            schema::check_not_newer(&writer)?;
            self.configure(&writer, true)
        })?;
        when_busy(self.busy_timeout, || {
            schema::migrate(&mut writer, Utc::now().timestamp_micros())
        })?;
        Ok(SqliteStore::from_parts(writer, Some(path), self))
    }

    /// Opens a private database in memory, gone when the store is dropped.
    /// Reads share the one connection with writes.
    ///
    /// # Errors
    /// `Storage` if SQLite cannot allocate the database.
    pub fn open_in_memory(self) -> Result<SqliteStore> {
        let mut writer = Connection::open_in_memory().db()?;
        self.configure(&writer, false)?;
        schema::migrate(&mut writer, Utc::now().timestamp_micros())?;
        Ok(SqliteStore::from_parts(writer, None, self))
    }

    /// The PRAGMAs every connection gets when it opens, in this order.
    fn configure(&self, conn: &Connection, file: bool) -> Result<()> {
        conn.busy_timeout(self.busy_timeout).db()?;
        if file {
            let mode: String = conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .db()?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(Error::storage(format!(
                    "SQLite refused WAL mode (journal_mode is {mode})"
                )));
            }
        }
        conn.pragma_update(None, "synchronous", self.synchronous.pragma_value())
            .db()?;
        conn.pragma_update(None, "foreign_keys", "ON").db()?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(())
    }
}

/// Segments in SQLite: one file, no server, safe across threads and
/// processes.
///
/// - SQLite is compiled in (rusqlite `bundled`): no system library.
/// - Files use WAL, `synchronous=NORMAL` by default (see [`Synchronous`]),
///   `busy_timeout` 5 s and `foreign_keys=ON`, set on every connection as it
///   opens. Statements are prepared once per connection and cached.
/// - One connection writes (calls that write take turns); on a file, reads
///   use their own connections, so readers never wait on the writer (in
///   memory, reads share the one connection). Several processes may open
///   one file; SQLite's locks order their writes.
/// - The crate's tables are `segments`, `segment_memberships`,
///   `segment_ledger`, `segment_sizes`, `death_records` and
///   `segments_schema`; the file may hold a host's tables beside them.
/// - Name uniqueness is a unique index: of two racing creates, even in two
///   processes, exactly one wins.
/// - The schema version is kept in the table `segments_schema`; a file from
///   a newer version of the crate is refused with
///   [`Error::SchemaTooNew`] and left untouched.
///
/// Clones share the connections.
///
/// ```
/// use segments::{NewSegment, OrgId, Segments, SqliteStore};
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
    inner: Arc<Inner>,
}

/// A write transaction: `BEGIN IMMEDIATE` takes the write lock at once (a
/// transaction that read first and upgraded later could meet a busy error
/// the busy handler cannot wait out), and `BEGIN`/`COMMIT` are cached
/// statements like the rest. Rolled back when dropped uncommitted, so an
/// early `?` undoes everything.
struct WriteTx<'c> {
    conn: &'c Connection,
    open: bool,
}

impl<'c> WriteTx<'c> {
    /// Takes the write lock, waiting for other connections as long as
    /// `patience` allows (see [`when_busy`]).
    fn begin(conn: &'c Connection, patience: Duration) -> Result<Self> {
        when_busy(patience, || {
            conn.prepare_cached("BEGIN IMMEDIATE")
                .db()?
                .execute([])
                .db()
        })?;
        Ok(Self { conn, open: true })
    }

    fn commit(mut self) -> Result<()> {
        self.conn.prepare_cached("COMMIT").db()?.execute([]).db()?;
        self.open = false;
        Ok(())
    }
}

impl Drop for WriteTx<'_> {
    fn drop(&mut self) {
        if self.open && !self.conn.is_autocommit() {
            // Nothing to report from a rollback: the call already failed.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

impl std::ops::Deref for WriteTx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
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

/// The write connection and what it remembers between transactions.
struct Writer {
    conn: Connection,
    tails: Tails,
}

struct Inner {
    writer: Mutex<Writer>,
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

    fn from_parts(writer: Connection, path: Option<PathBuf>, options: SqliteStoreBuilder) -> Self {
        let readers = path.as_ref().map(|_| Mutex::new(Vec::new()));
        Self {
            inner: Arc::new(Inner {
                writer: Mutex::new(Writer {
                    conn: writer,
                    tails: Tails::default(),
                }),
                readers,
                path,
                options,
            }),
        }
    }

    /// The write connection. A panic in another thread while it held the
    /// lock rolled its transaction back (rusqlite's `Transaction` rolls back
    /// on drop), so the connection is sound to use.
    fn writer(&self) -> MutexGuard<'_, Writer> {
        self.inner.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on a read connection.
    /// Runs `f` on a read connection, again if the database was busy (reads
    /// change nothing, so a retry is safe).
    fn read<T>(&self, f: impl Fn(&Connection) -> Result<T>) -> Result<T> {
        when_busy(self.inner.options.busy_timeout, || self.read_once(&f))
    }

    fn read_once<T>(&self, f: &impl Fn(&Connection) -> Result<T>) -> Result<T> {
        let (Some(pool), Some(path)) = (&self.inner.readers, &self.inner.path) else {
            return f(&self.writer().conn);
        };
        let idle = pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                // Without CREATE: a reader never makes an empty database
                // where the file went missing.
                let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_URI
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn = Connection::open_with_flags(path, flags).db()?;
                self.inner.options.configure(&conn, true)?;
                conn.pragma_update(None, "query_only", "ON").db()?;
                conn
            }
        };
        let out = f(&conn);
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
trait Db<T> {
    fn db(self) -> Result<T>;
}

impl<T> Db<T> for rusqlite::Result<T> {
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

const SEGMENT_COLUMNS: &str = "id, name, description, source, current_size, created_at, updated_at";

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

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

fn time_at(row: &Row<'_>, i: usize) -> rusqlite::Result<DateTime<Utc>> {
    let v: i64 = row.get(i)?;
    DateTime::from_timestamp_micros(v).ok_or(rusqlite::Error::IntegralValueOutOfRange(i, v))
}

fn member_from_row(row: &Row<'_>) -> rusqlite::Result<Member> {
    Ok(Member {
        pid: history::pid_at(row, 0)?,
        first_added_at: time_at(row, 1)?,
        last_added_at: time_at(row, 2)?,
    })
}

/// The row id and size of segment `id` of `org`.
fn locate(conn: &Connection, org: &OrgId, id: SegmentId) -> Result<(i64, u64)> {
    conn.prepare_cached("SELECT seq, current_size FROM segments WHERE id = ?1 AND org = ?2")
        .db()?
        .query_row(params![id.as_bytes(), org.as_str()], |r| {
            Ok((r.get(0)?, count_at(r, 1)?))
        })
        .optional()
        .db()?
        .ok_or(Error::NotFound { id })
}

/// A count column; a negative value is a corrupt row, not a number.
fn count_at(row: &Row<'_>, i: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(i)?;
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(i, v))
}

fn set_size(conn: &Connection, seq: i64, size: u64) -> Result<()> {
    conn.prepare_cached("UPDATE segments SET current_size = ?1 WHERE seq = ?2")
        .db()?
        .execute(params![size as i64, seq])
        .db()?;
    Ok(())
}

/// `pids` with their positions, in key order: the B-tree pages each
/// statement touches are then the ones the previous statement touched. The
/// sort is stable, so repeats stay in the order given and the first one is
/// the one that counts.
fn key_order(pids: &[Pid]) -> Vec<(usize, &str)> {
    let mut sorted: Vec<(usize, &str)> = pids.iter().map(Pid::as_str).enumerate().collect();
    sorted.sort_by(|a, b| a.1.cmp(b.1));
    sorted
}

/// Writes membership entries in the order the caller gave the PIDs (the
/// order every store records them in); returns the last entry's `seq`.
fn record_in_given_order(
    conn: &Connection,
    ledger: &mut Ledger<'_>,
    id: SegmentId,
    mut entries: Vec<(usize, Membership, &str)>,
) -> Result<Option<i64>> {
    entries.sort_unstable_by_key(|(given, _, _)| *given);
    let mut last = None;
    for (_, kind, pid) in entries {
        last = Some(ledger.member(conn, id, kind, pid)?);
    }
    Ok(last)
}

const MEMBER_COLUMNS: &str = "pid, first_added_at, last_added_at";

fn select_segment(conn: &Connection, org: &OrgId, id: SegmentId) -> Result<Segment> {
    conn.prepare_cached(&format!(
        "SELECT {SEGMENT_COLUMNS} FROM segments WHERE id = ?1 AND org = ?2"
    ))
    .db()?
    .query_row(params![id.as_bytes(), org.as_str()], segment_from_row)
    .optional()
    .db()?
    .ok_or(Error::NotFound { id })
}

impl SegmentStore for SqliteStore {
    fn insert_segment(&self, org: &OrgId, new: SegmentInsert, stamp: Stamp<'_>) -> Result<Segment> {
        let mut writer = self.writer();
        let Writer { conn, tails } = &mut *writer;
        let tx = WriteTx::begin(conn, self.inner.options.busy_timeout)?;
        let mut ledger = Ledger::open(&tx, tails, org.as_str(), stamp)?;
        // The unique index decides between racing creates, in this process
        // or another; `ON CONFLICT` tells its answer without matching text.
        let inserted = tx
            .prepare_cached(
                "INSERT INTO segments (id, org, name, name_key, description, source, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
                 ON CONFLICT (org, name_key) DO NOTHING",
            )
            .db()?
            .execute(params![
                new.id.as_bytes(),
                org.as_str(),
                new.name.as_str(),
                new.name.key(),
                new.description,
                new.source,
                ledger.at(),
            ])
            .db()?;
        if inserted == 0 {
            return Err(Error::DuplicateName {
                name: new.name.as_str().to_owned(),
            });
        }
        let (segment, _) = new.into_segment(ledger.time());
        let created = ChangeKind::Created {
            name: segment.name.clone(),
            description: segment.description.clone(),
        };
        ledger.append(&tx, segment.id, &created)?;
        tx.commit()?;
        ledger.committed();
        Ok(segment)
    }

    fn segment(&self, org: &OrgId, id: SegmentId) -> Result<Segment> {
        self.read(|conn| select_segment(conn, org, id))
    }

    fn segment_by_key(&self, org: &OrgId, key: &str) -> Result<Option<Segment>> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {SEGMENT_COLUMNS} FROM segments WHERE org = ?1 AND name_key = ?2"
            ))
            .db()?
            .query_row(params![org.as_str(), key], segment_from_row)
            .optional()
            .db()
        })
    }

    fn segments(
        &self,
        org: &OrgId,
        after: Option<SegmentCursor>,
        limit: usize,
    ) -> Result<Vec<Segment>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            let rows = match after {
                None => conn
                    .prepare_cached(&format!(
                        "SELECT {SEGMENT_COLUMNS} FROM segments WHERE org = ?1
                         ORDER BY created_at, id LIMIT ?2"
                    ))
                    .db()?
                    .query_map(params![org.as_str(), limit], segment_from_row)
                    .db()?
                    .collect::<rusqlite::Result<Vec<_>>>(),
                Some(c) => conn
                    .prepare_cached(&format!(
                        "SELECT {SEGMENT_COLUMNS} FROM segments
                         WHERE org = ?1 AND (created_at, id) > (?2, ?3)
                         ORDER BY created_at, id LIMIT ?4"
                    ))
                    .db()?
                    .query_map(
                        params![
                            org.as_str(),
                            micros(c.created_at()),
                            c.id().as_bytes(),
                            limit
                        ],
                        segment_from_row,
                    )
                    .db()?
                    .collect(),
            };
            rows.db()
        })
    }

    fn update_segment(
        &self,
        org: &OrgId,
        id: SegmentId,
        change: &SegmentChange,
        stamp: Stamp<'_>,
    ) -> Result<Segment> {
        let mut writer = self.writer();
        let Writer { conn, tails } = &mut *writer;
        let tx = WriteTx::begin(conn, self.inner.options.busy_timeout)?;
        let current = select_segment(&tx, org, id)?;
        if change.is_no_op(&current) {
            return Ok(current);
        }
        let mut ledger = Ledger::open(&tx, tails, org.as_str(), stamp)?;
        let at = ledger.at();
        let kind = match change {
            SegmentChange::Rename(name) => {
                // Under the write lock this read is the truth; the unique
                // index stays the last word.
                let holder: Option<[u8; 16]> = tx
                    .prepare_cached("SELECT id FROM segments WHERE org = ?1 AND name_key = ?2")
                    .db()?
                    .query_row(params![org.as_str(), name.key()], |r| r.get(0))
                    .optional()
                    .db()?;
                if holder.is_some_and(|h| h != *id.as_bytes()) {
                    return Err(Error::DuplicateName {
                        name: name.as_str().to_owned(),
                    });
                }
                tx.prepare_cached(
                    "UPDATE segments SET name = ?1, name_key = ?2, updated_at = ?3 WHERE id = ?4",
                )
                .db()?
                .execute(params![name.as_str(), name.key(), at, id.as_bytes()])
                .db()?;
                ChangeKind::Renamed {
                    name: name.as_str().to_owned(),
                }
            }
            SegmentChange::Describe(description) => {
                tx.prepare_cached(
                    "UPDATE segments SET description = ?1, updated_at = ?2 WHERE id = ?3",
                )
                .db()?
                .execute(params![description, at, id.as_bytes()])
                .db()?;
                ChangeKind::DescriptionChanged {
                    description: description.clone(),
                }
            }
        };
        ledger.append(&tx, id, &kind)?;
        let segment = select_segment(&tx, org, id)?;
        tx.commit()?;
        ledger.committed();
        Ok(segment)
    }

    fn add_members(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[Pid],
        stamp: Stamp<'_>,
    ) -> Result<MembersAdded> {
        let sorted = key_order(pids);
        let mut writer = self.writer();
        let Writer { conn, tails } = &mut *writer;
        let tx = WriteTx::begin(conn, self.inner.options.busy_timeout)?;
        let (seq, size) = locate(&tx, org, id)?;
        let mut ledger = Ledger::open(&tx, tails, org.as_str(), stamp)?;
        let at = ledger.at();
        let mut state = tx
            .prepare_cached(
                "SELECT removed_at IS NULL FROM segment_memberships WHERE segment = ?1 AND pid = ?2",
            )
            .db()?;
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO segment_memberships (segment, pid, first_added_at, last_added_at)
                 VALUES (?1, ?2, ?3, ?3)",
            )
            .db()?;
        let mut rejoin = tx
            .prepare_cached(
                "UPDATE segment_memberships SET last_added_at = ?3, removed_at = NULL
                 WHERE segment = ?1 AND pid = ?2",
            )
            .db()?;
        let mut touch = tx
            .prepare_cached(
                "UPDATE segment_memberships SET last_added_at = ?3 WHERE segment = ?1 AND pid = ?2",
            )
            .db()?;
        let mut n_redundant = 0;
        let mut joined = Vec::new();
        for (given, pid) in sorted {
            let active: Option<bool> = state
                .query_row(params![seq, pid], |r| r.get(0))
                .optional()
                .db()?;
            let entry = match active {
                Some(true) => {
                    touch.execute(params![seq, pid, at]).db()?;
                    n_redundant += 1;
                    continue;
                }
                Some(false) => {
                    rejoin.execute(params![seq, pid, at]).db()?;
                    Membership::ReAdded
                }
                None => {
                    insert.execute(params![seq, pid, at]).db()?;
                    Membership::Added
                }
            };
            joined.push((given, entry, pid));
        }
        drop((state, insert, rejoin, touch));
        let n_added = joined.len() as u64;
        let last_entry = record_in_given_order(&tx, &mut ledger, id, joined)?;
        let new_current_size = size + n_added;
        if let Some(entry) = last_entry {
            set_size(&tx, seq, new_current_size)?;
            history::record_size(&tx, seq, entry, new_current_size)?;
        }
        tx.commit()?;
        ledger.committed();
        Ok(MembersAdded {
            n_added,
            n_redundant,
            new_current_size,
        })
    }

    fn remove_members(
        &self,
        org: &OrgId,
        id: SegmentId,
        pids: &[Pid],
        stamp: Stamp<'_>,
    ) -> Result<MembersRemoved> {
        let sorted = key_order(pids);
        let mut writer = self.writer();
        let Writer { conn, tails } = &mut *writer;
        let tx = WriteTx::begin(conn, self.inner.options.busy_timeout)?;
        let (seq, size) = locate(&tx, org, id)?;
        let mut ledger = Ledger::open(&tx, tails, org.as_str(), stamp)?;
        let at = ledger.at();
        let mut remove = tx
            .prepare_cached(
                "UPDATE segment_memberships SET removed_at = ?3
                 WHERE segment = ?1 AND pid = ?2 AND removed_at IS NULL",
            )
            .db()?;
        let mut left = Vec::new();
        for (given, pid) in sorted {
            if remove.execute(params![seq, pid, at]).db()? > 0 {
                left.push((given, Membership::Removed, pid));
            }
        }
        drop(remove);
        let n_deleted = left.len() as u64;
        let last_entry = record_in_given_order(&tx, &mut ledger, id, left)?;
        let new_current_size = size.checked_sub(n_deleted).ok_or_else(|| {
            Error::storage(format!(
                "segment {id}: current_size {size} is below the {n_deleted} members removed"
            ))
        })?;
        if let Some(entry) = last_entry {
            set_size(&tx, seq, new_current_size)?;
            history::record_size(&tx, seq, entry, new_current_size)?;
        }
        tx.commit()?;
        ledger.committed();
        Ok(MembersRemoved {
            n_deleted,
            new_current_size,
        })
    }

    fn members(
        &self,
        org: &OrgId,
        id: SegmentId,
        after: Option<&MemberCursor>,
        limit: usize,
    ) -> Result<Vec<Member>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            let tx = conn.unchecked_transaction().db()?;
            let (seq, _) = locate(&tx, org, id)?;
            let rows = match after {
                None => tx
                    .prepare_cached(&format!(
                        "SELECT {MEMBER_COLUMNS} FROM segment_memberships
                         WHERE segment = ?1 AND removed_at IS NULL
                         ORDER BY first_added_at, pid LIMIT ?2"
                    ))
                    .db()?
                    .query_map(params![seq, limit], member_from_row)
                    .db()?
                    .collect::<rusqlite::Result<Vec<_>>>(),
                Some(c) => tx
                    .prepare_cached(&format!(
                        "SELECT {MEMBER_COLUMNS} FROM segment_memberships
                         WHERE segment = ?1 AND removed_at IS NULL
                           AND (first_added_at, pid) > (?2, ?3)
                         ORDER BY first_added_at, pid LIMIT ?4"
                    ))
                    .db()?
                    .query_map(
                        params![seq, micros(c.first_added_at()), c.pid().as_str(), limit],
                        member_from_row,
                    )
                    .db()?
                    .collect(),
            };
            rows.db()
        })
    }

    fn members_at_offset(
        &self,
        org: &OrgId,
        id: SegmentId,
        offset: u64,
        limit: usize,
    ) -> Result<(Vec<Member>, u64)> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        self.read(|conn| {
            // One read transaction: the page and the size are one snapshot.
            let tx = conn.unchecked_transaction().db()?;
            let (seq, size) = locate(&tx, org, id)?;
            let page = tx
                .prepare_cached(&format!(
                    "SELECT {MEMBER_COLUMNS} FROM segment_memberships
                     WHERE segment = ?1 AND removed_at IS NULL
                     ORDER BY first_added_at, pid LIMIT ?2 OFFSET ?3"
                ))
                .db()?
                .query_map(params![seq, limit, offset], member_from_row)
                .db()?
                .collect::<rusqlite::Result<Vec<_>>>()
                .db()?;
            Ok((page, size))
        })
    }

    fn delete_segment(&self, org: &OrgId, id: SegmentId, stamp: Stamp<'_>) -> Result<()> {
        let mut writer = self.writer();
        let Writer { conn, tails } = &mut *writer;
        let tx = WriteTx::begin(conn, self.inner.options.busy_timeout)?;
        let deleted = tx
            .prepare_cached("DELETE FROM segments WHERE id = ?1 AND org = ?2")
            .db()?
            .execute(params![id.as_bytes(), org.as_str()])
            .db()?;
        if deleted == 0 {
            return Err(Error::NotFound { id });
        }
        let mut ledger = Ledger::open(&tx, tails, org.as_str(), stamp)?;
        ledger.append(&tx, id, &ChangeKind::Deleted)?;
        tx.commit()?;
        ledger.committed();
        Ok(())
    }

    fn changes_since(&self, org: &OrgId, after: u64, limit: usize) -> Result<Vec<Change>> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {} FROM segment_ledger WHERE org = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                history::CHANGE_COLUMNS
            ))
            .db()?
            .query_map(
                params![org.as_str(), after, limit],
                history::change_from_row,
            )
            .db()?
            .collect::<rusqlite::Result<Vec<_>>>()
            .db()
        })
    }

    fn timeline(&self, org: &OrgId, pid: &Pid) -> Result<Vec<Change>> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {} FROM segment_ledger WHERE org = ?1 AND pid = ?2 ORDER BY seq",
                history::CHANGE_COLUMNS
            ))
            .db()?
            .query_map(
                params![org.as_str(), pid.as_str()],
                history::change_from_row,
            )
            .db()?
            .collect::<rusqlite::Result<Vec<_>>>()
            .db()
        })
    }

    fn size_as_of(&self, org: &OrgId, id: SegmentId, at: DateTime<Utc>) -> Result<u64> {
        self.read(|conn| {
            let tx = conn.unchecked_transaction().db()?;
            let (seq, _) = locate(&tx, org, id)?;
            let bound = history::bound(&tx, org.as_str(), at)?;
            let size: Option<i64> = tx
                .prepare_cached(
                    "SELECT size FROM segment_sizes WHERE segment = ?1 AND seq <= ?2
                     ORDER BY seq DESC LIMIT 1",
                )
                .db()?
                .query_row(params![seq, bound], |r| r.get(0))
                .optional()
                .db()?;
            Ok(size.map_or(0, |s| s.max(0) as u64))
        })
    }

    fn members_as_of(
        &self,
        org: &OrgId,
        id: SegmentId,
        at: DateTime<Utc>,
        after: Option<&Pid>,
        limit: usize,
    ) -> Result<Vec<PastMember>> {
        self.read(|conn| {
            let tx = conn.unchecked_transaction().db()?;
            let (seq, _) = locate(&tx, org, id)?;
            let bound = history::bound(&tx, org.as_str(), at)?;
            let mut last_entry = tx
                .prepare_cached(
                    "SELECT kind, at FROM segment_ledger
                     WHERE org = ?1 AND pid = ?2 AND seq <= ?3 AND segment = ?4
                     ORDER BY seq DESC LIMIT 1",
                )
                .db()?;
            let mut candidates = tx
                .prepare_cached(
                    "SELECT pid, first_added_at, last_added_at FROM segment_memberships
                     WHERE segment = ?1 AND pid > ?2 ORDER BY pid",
                )
                .db()?;
            let mut rows = candidates
                .query(params![seq, after.map_or("", Pid::as_str)])
                .db()?;
            let mut past = Vec::new();
            while past.len() < limit {
                let Some(row) = rows.next().db()? else { break };
                let member = member_from_row(row).db()?;
                let entry: Option<(i64, i64)> = last_entry
                    .query_row(
                        params![org.as_str(), member.pid.as_str(), bound, id.as_bytes()],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .db()?;
                if let Some((_, joined)) = entry.filter(|(kind, _)| history::joins(*kind)) {
                    past.push(PastMember {
                        joined_at: DateTime::from_timestamp_micros(joined).ok_or_else(|| {
                            Error::storage(format!("stored time {joined} is out of range"))
                        })?,
                        pid: member.pid,
                        first_added_at: member.first_added_at,
                    });
                }
            }
            Ok(past)
        })
    }

    fn upsert_deaths(&self, records: &[DeathRecord], at: DateTime<Utc>) -> Result<(u64, u64)> {
        let writer = self.writer();
        let tx = WriteTx::begin(&writer.conn, self.inner.options.busy_timeout)?;
        let counts = history::upsert_deaths(&tx, records, at)?;
        tx.commit()?;
        Ok(counts)
    }

    fn death_signals(
        &self,
        org: &OrgId,
        id: SegmentId,
        after: DeathCursor,
        limit: usize,
    ) -> Result<Vec<(DeathCursor, DeathRecord)>> {
        let after = i64::try_from(after.get()).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            let tx = conn.unchecked_transaction().db()?;
            let (seq, _) = locate(&tx, org, id)?;
            tx.prepare_cached(&format!(
                "SELECT {} FROM death_records d
                 JOIN segment_memberships m
                   ON m.segment = ?1 AND m.pid = d.pid AND m.removed_at IS NULL
                 WHERE d.seq > ?2 ORDER BY d.seq LIMIT ?3",
                history::DEATH_COLUMNS
            ))
            .db()?
            .query_map(params![seq, after, limit], history::death_from_row)
            .db()?
            .map(|r| r.map(|(n, record)| (DeathCursor::new(n), record)))
            .collect::<rusqlite::Result<Vec<_>>>()
            .db()
        })
    }
}

#[cfg(test)]
mod tests;
