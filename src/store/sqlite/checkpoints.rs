//! Checkpoints off the write path: a file store's thread that copies the
//! WAL back into the database file, so that write calls wait for it less.
//!
//! By SQLite's own rule (`wal_autocheckpoint`), the commit that takes the
//! WAL past 1,000 pages runs the checkpoint before it returns: it copies
//! the pages into the database file and syncs it, and every call in line
//! behind it waits. Here a commit only wakes this module's thread each
//! time the WAL has grown by another [`WAL_PAGES`]; the thread runs a
//! passive checkpoint on a connection of its own (passive: it neither
//! waits for nor blocks readers and writers) and copies what the WAL holds
//! at that moment.
//!
//! The WAL starts again from its beginning only when a write begins with
//! every page of it copied, which a checkpoint running beside the writes
//! seldom leaves. So the commit that takes the WAL to
//! [`WAL_PAGES_INLINE`] waits for a checkpoint the thread is running, and
//! checkpoints inline, as SQLite would: by then the thread has copied all
//! but the last pages, so this checkpoint has little left to copy, and the
//! next write starts the WAL again. The WAL stays under about
//! [`WAL_PAGES_INLINE`] pages and one call's.

use std::ffi::c_int;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use rusqlite::Connection;
use rusqlite::hooks::Wal;

use crate::{Error, Result};

/// WAL pages a commit adds, since it last woke the thread, before it wakes
/// it again (SQLite's default `wal_autocheckpoint`).
const WAL_PAGES: c_int = 1000;

/// WAL pages after a commit from which the writer checkpoints inline.
const WAL_PAGES_INLINE: c_int = 4 * WAL_PAGES;

/// What the writer's commits and the thread share.
#[derive(Debug, Default)]
struct Signal {
    /// A commit asked for a checkpoint.
    due: bool,
    /// The thread is checkpointing.
    busy: bool,
    /// The writer is checkpointing inline: the thread starts none.
    hold: bool,
    /// The store is closing: the thread ends.
    stop: bool,
    /// Checkpoints the thread ran that worked, and the checkpoints the
    /// writer ran inline (for tests).
    ran: u64,
    inline: u64,
}

type SharedSignal = Arc<(Mutex<Signal>, Condvar)>;

fn lock(shared: &SharedSignal) -> MutexGuard<'_, Signal> {
    shared.0.lock().unwrap_or_else(|e| e.into_inner())
}

fn wait<'a>(shared: &'a SharedSignal, signal: MutexGuard<'a, Signal>) -> MutexGuard<'a, Signal> {
    shared.1.wait(signal).unwrap_or_else(|e| e.into_inner())
}

/// A file store's checkpoint thread; dropping it stops the thread and
/// waits for it (and closes its connection).
#[derive(Debug)]
pub(super) struct Checkpointer {
    shared: SharedSignal,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread on `conn`, a connection of its own to the file,
    /// and has `writer`'s commits signal it.
    pub(super) fn start(writer: &mut Connection, conn: Connection) -> Result<Self> {
        let shared = SharedSignal::default();
        let thread = std::thread::Builder::new()
            .name("segments-sqlite-checkpoints".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || run(&conn, &shared)
            })
            .map_err(|e| Error::storage(format!("cannot start the checkpoint thread: {e}")))?;
        let hooked = writer.wal_hook(Some(hook(Arc::clone(&shared))));
        let checkpointer = Self {
            shared,
            thread: Some(thread),
        };
        hooked.map_err(|e| Error::storage(format!("cannot hook the WAL's commits: {e}")))?;
        Ok(checkpointer)
    }

    /// Checkpoints the thread has run that worked, and the checkpoints
    /// the writer ran inline.
    #[cfg(test)]
    pub(super) fn work(&self) -> (u64, u64) {
        let signal = lock(&self.shared);
        (signal.ran, signal.inline)
    }
}

/// The writer's hook, run after each commit with the WAL's pages. It
/// replaces SQLite's own, which `wal_autocheckpoint` sets.
///
/// It never returns an error: the commit has happened by the time it
/// runs, and an error would make the COMMIT report a failure (SQLite's
/// own hook ignores its checkpoint's outcome too).
fn hook(
    shared: SharedSignal,
) -> impl FnMut(&mut Wal, c_int) -> rusqlite::Result<()> + Send + 'static {
    // The WAL's pages when a commit last woke the thread.
    let mut woke_at: c_int = 0;
    move |wal: &mut Wal, pages: c_int| {
        if pages < woke_at {
            // The WAL started again.
            woke_at = 0;
        }
        if pages >= WAL_PAGES_INLINE {
            let mut signal = lock(&shared);
            signal.hold = true;
            while signal.busy {
                signal = wait(&shared, signal);
            }
            drop(signal);
            let _ = wal.checkpoint();
            let mut signal = lock(&shared);
            signal.hold = false;
            signal.inline += 1;
            woke_at = 0;
        } else if pages >= woke_at + WAL_PAGES {
            woke_at = pages;
            lock(&shared).due = true;
            shared.1.notify_all();
        }
        Ok(())
    }
}

/// The thread: a passive checkpoint each time a commit asks for one,
/// unless the writer is checkpointing inline.
fn run(conn: &Connection, shared: &SharedSignal) {
    let mut signal = lock(shared);
    loop {
        while !signal.due && !signal.stop {
            signal = wait(shared, signal);
        }
        if signal.stop {
            return;
        }
        signal.due = false;
        if signal.hold {
            continue;
        }
        signal.busy = true;
        drop(signal);
        // One that could not copy every page (a reader still needs them)
        // copies the rest next time; nothing to report to anyone.
        let ran = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)");
        signal = lock(shared);
        signal.busy = false;
        signal.ran += u64::from(ran.is_ok());
        // A commit may be waiting to checkpoint inline.
        shared.1.notify_all();
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        lock(&self.shared).stop = true;
        self.shared.1.notify_all();
        if let Some(thread) = self.thread.take() {
            // The thread only waits and checkpoints; a panic in it has
            // nothing left to undo.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::WAL_PAGES_INLINE;
    use crate::{NewSegment, OrgId, Pid, Segments, SqliteStore};

    const BATCHES: u64 = 100;

    /// Fills a segment with [`BATCHES`] batches of 1,000 new people (many
    /// times 1,000 WAL pages), and returns the most pages the WAL has
    /// held: its file's size (SQLite reuses the file from its start when
    /// the WAL starts again, and never shrinks it while the store is open).
    fn fill(path: &Path, segments: &Segments<SqliteStore>) -> u64 {
        let org = OrgId::new("acme").unwrap();
        let id = segments.create(&org, NewSegment::new("Fill")).unwrap().id;
        for batch in 0..BATCHES {
            let pids: Vec<Pid> = (0..1000u64)
                .map(|i| Pid::parse(&format!("p-{:012x}", batch * 1000 + i)).unwrap())
                .collect();
            segments.add_members(&org, id, &pids).unwrap();
        }
        assert_eq!(segments.get(&org, id).unwrap().current_size, BATCHES * 1000);
        let wal = std::fs::metadata(path.with_extension("db-wal")).unwrap();
        // A frame is a 24-byte header and a 4,096-byte page.
        wal.len() / (24 + 4096)
    }

    #[test]
    fn a_file_store_checkpoints_on_its_own_thread_and_keeps_the_wal_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let store = SqliteStore::open(&path).unwrap();
        let segments = Segments::new(store.clone());
        let largest = fill(&path, &segments);
        let (ran, inline) = store
            .checkpoints_work()
            .expect("a file store has the thread");
        assert!(
            ran >= 1,
            "the thread checkpointed ({ran} times, {inline} inline)"
        );
        // A batch of 1,000 new people writes well under 1,000 pages.
        assert!(
            largest < u64::try_from(WAL_PAGES_INLINE).unwrap() + 1000,
            "the WAL stays near its bound: {largest} pages at most"
        );
        drop((segments, store));
        let reopened = Segments::new(SqliteStore::open(&path).unwrap());
        let org = OrgId::new("acme").unwrap();
        let list = reopened
            .list(&org, crate::PageOptions::new())
            .unwrap()
            .segments;
        assert_eq!(list[0].current_size, BATCHES * 1000, "the writes are there");
    }

    #[test]
    fn without_the_thread_sqlite_checkpoints_inline_and_the_wal_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let store = SqliteStore::builder()
            .background_checkpoints(false)
            .open(&path)
            .unwrap();
        assert_eq!(store.checkpoints_work(), None, "no thread");
        let largest = fill(&path, &Segments::new(store));
        assert!(
            largest < 2000,
            "SQLite's own checkpoints keep the WAL near 1,000 pages: {largest}"
        );
    }

    #[test]
    fn an_in_memory_store_has_no_checkpoint_thread() {
        let store = SqliteStore::open_in_memory().unwrap();
        assert_eq!(store.checkpoints_work(), None);
    }
}
