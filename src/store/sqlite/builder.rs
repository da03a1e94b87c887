//! [`SqliteStoreBuilder`] and the settings it takes ([`Synchronous`]).

use super::*;

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
/// use segments_engine::sqlite::{SqliteStore, Synchronous};
/// # let dir = tempfile::tempdir()?;
/// let store = SqliteStore::builder()
///     .synchronous(Synchronous::Full)
///     .busy_timeout(Duration::from_secs(10))
///     .open(dir.path().join("segments.db"))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct SqliteStoreBuilder {
    pub(super) synchronous: Synchronous,
    pub(super) busy_timeout: Duration,
    pub(super) max_idle_readers: usize,
    pub(super) background_checkpoints: bool,
}

impl Default for SqliteStoreBuilder {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(5),
            max_idle_readers: 4,
            background_checkpoints: true,
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

    /// Whether a file store checkpoints its WAL on a thread of its own;
    /// on by default.
    ///
    /// A checkpoint copies the WAL's pages back into the database file and
    /// syncs it. By SQLite's own rule the commit that takes the WAL past
    /// 1,000 pages does it before returning, and the write calls in line
    /// behind it wait: a few milliseconds every thousand pages written.
    /// With this on, a commit only wakes the store's checkpoint thread
    /// each time the WAL has grown by another 1,000 pages, and the thread
    /// checkpoints without blocking readers or writers. Once the WAL
    /// reaches 4,000 pages, the commit that takes it there checkpoints
    /// inline, which copies only the pages the thread has not (and lets
    /// the WAL start again from its beginning). Off, the store spawns no
    /// thread and SQLite checkpoints inline. Durability is the same either
    /// way. No effect in memory (no WAL).
    /// It costs one thread, and takes the checkpoint's pause out of the
    /// commits, which shows in their tail latency (measured in the
    /// repository's `docs/benchmarks.md`).
    pub fn background_checkpoints(mut self, on: bool) -> Self {
        self.background_checkpoints = on;
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
        schema::check_tables(&writer)?;
        let checkpoints = if self.background_checkpoints {
            let conn = self.connect(&path)?;
            Some(checkpoints::Checkpointer::start(&mut writer, conn)?)
        } else {
            None
        };
        Ok(SqliteStore::from_parts(
            writer,
            checkpoints,
            Some(path),
            self,
        ))
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
        Ok(SqliteStore::from_parts(writer, None, None, self))
    }

    /// Another connection to the file at `path`, configured. Without
    /// CREATE: it never makes an empty database where the file went
    /// missing.
    pub(super) fn connect(&self, path: &Path) -> Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).db()?;
        self.configure(&conn, true)?;
        Ok(conn)
    }

    /// The PRAGMAs every connection gets when it opens, in this order.
    pub(super) fn configure(&self, conn: &Connection, file: bool) -> Result<()> {
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
        // `rarray(?)`: a batch of values bound as one parameter, so that a
        // member call is a few set-based statements.
        rusqlite::vtab::array::load_module(conn).db()?;
        Ok(())
    }
}
