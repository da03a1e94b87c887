//! Checkpoints off the write path: a file store's thread that copies the
//! WAL back into the database file, so that no write call waits for it.
//!
//! By SQLite's own rule (`wal_autocheckpoint`), the commit that takes the
//! WAL past 1,000 pages runs the checkpoint before it returns: it copies
//! the pages into the database file and syncs it, and every call in line
//! behind it waits. Here that commit only signals this module's thread,
//! which runs a passive checkpoint on a connection of its own (passive:
//! it neither waits for nor blocks readers and writers). If the WAL still
//! reaches [`WAL_PAGES_INLINE`] (the thread is behind, or long reads pin
//! the WAL), the commit that takes it there checkpoints inline, as SQLite
//! would.

use std::ffi::c_int;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use rusqlite::Connection;
use rusqlite::hooks::Wal;

use crate::{Error, Result};

/// WAL pages after a commit from which the thread is asked to checkpoint
/// (SQLite's default `wal_autocheckpoint`).
const WAL_PAGES: c_int = 1000;

/// WAL pages after a commit from which the writer checkpoints inline.
const WAL_PAGES_INLINE: c_int = 4 * WAL_PAGES;

/// What the writer's commits and the thread share.
#[derive(Debug, Default)]
struct Signal {
    /// A commit left the WAL past [`WAL_PAGES`] since the last checkpoint.
    due: bool,
    /// The store is closing: the thread ends.
    stop: bool,
    /// Checkpoints the thread has run (for tests).
    ran: u64,
}

type Shared = Arc<(Mutex<Signal>, Condvar)>;

fn lock(shared: &Shared) -> MutexGuard<'_, Signal> {
    shared.0.lock().unwrap_or_else(|e| e.into_inner())
}

/// A file store's checkpoint thread; dropping it stops the thread and
/// waits for it (and closes its connection).
#[derive(Debug)]
pub(super) struct Checkpointer {
    shared: Shared,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread on `conn`, a connection of its own to the file,
    /// and has `writer`'s commits signal it.
    pub(super) fn start(writer: &mut Connection, conn: Connection) -> Result<Self> {
        let shared = Shared::default();
        let thread = std::thread::Builder::new()
            .name("segments-sqlite-checkpoints".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || run(&conn, &shared)
            })
            .map_err(|e| Error::storage(format!("cannot start the checkpoint thread: {e}")))?;
        let signal = Arc::clone(&shared);
        // Replaces SQLite's own hook, which `wal_autocheckpoint` sets.
        //
        // The hook never returns an error: the commit has happened by the
        // time it runs, and an error would make the COMMIT report a failure
        // (SQLite's own hook ignores its checkpoint's outcome too: one that
        // met another checkpoint running leaves the work to it).
        let hooked = writer.wal_hook(Some(move |wal: &mut Wal, pages: c_int| {
            if pages >= WAL_PAGES_INLINE {
                let _ = wal.checkpoint();
                return Ok(());
            }
            if pages >= WAL_PAGES {
                lock(&signal).due = true;
                signal.1.notify_one();
            }
            Ok(())
        }));
        let checkpointer = Self {
            shared,
            thread: Some(thread),
        };
        hooked.map_err(|e| Error::storage(format!("cannot hook the WAL's commits: {e}")))?;
        Ok(checkpointer)
    }

    /// How many checkpoints the thread has run.
    #[cfg(test)]
    pub(super) fn ran(&self) -> u64 {
        lock(&self.shared).ran
    }
}

/// The thread: a passive checkpoint each time a commit asks for one.
fn run(conn: &Connection, shared: &Shared) {
    let mut signal = lock(shared);
    loop {
        while !signal.due && !signal.stop {
            signal = shared.1.wait(signal).unwrap_or_else(|e| e.into_inner());
        }
        if signal.stop {
            return;
        }
        signal.due = false;
        drop(signal);
        // One that could not copy every page (a reader still needs them)
        // copies the rest at the next signal; nothing to report to anyone.
        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        signal = lock(shared);
        signal.ran += 1;
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        lock(&self.shared).stop = true;
        self.shared.1.notify_one();
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

    use crate::{NewSegment, OrgId, Pid, SegmentId, Segments, SqliteStore};

    /// Adds batches of new people until the store's checkpoint thread has
    /// run `at_least` checkpoints (or 200 batches, far more than needed);
    /// the segment, and the members added.
    fn fill(
        segments: &Segments<SqliteStore>,
        ran: impl Fn() -> u64,
        at_least: u64,
    ) -> (SegmentId, u64) {
        let org = OrgId::new("acme").unwrap();
        let id = segments.create(&org, NewSegment::new("Fill")).unwrap().id;
        let mut added = 0;
        for batch in 0..200u64 {
            if ran() >= at_least {
                break;
            }
            let pids: Vec<Pid> = (0..1000u64)
                .map(|i| Pid::parse(&format!("p-{:012x}", batch * 1000 + i)).unwrap())
                .collect();
            added += segments.add_members(&org, id, &pids).unwrap().n_added;
        }
        assert_eq!(segments.get(&org, id).unwrap().current_size, added);
        (id, added)
    }

    fn wal_pages(path: &Path) -> i64 {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
            .unwrap()
    }

    #[test]
    fn a_file_store_checkpoints_on_its_own_thread_and_stops_it_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let store = SqliteStore::open(&path).unwrap();
        let ran = || {
            store
                .checkpoints_run()
                .expect("a file store has the thread")
        };
        let segments = Segments::new(store.clone());
        // A commit can only signal the thread once the WAL is past 1,000
        // pages; the writes go on until the thread has answered twice.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let (id, added) = fill(&segments, ran, 2);
        while ran() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(ran() >= 2, "the thread checkpointed ({} times)", ran());
        drop((segments, store));
        // The thread's connection closed with the store: the last
        // connection to close checkpointed the WAL and removed it.
        assert!(
            !dir.path().join("c.db-wal").exists(),
            "no WAL is left behind"
        );
        let reopened = Segments::new(SqliteStore::open(&path).unwrap());
        let org = OrgId::new("acme").unwrap();
        assert_eq!(
            reopened.get(&org, id).unwrap().current_size,
            added,
            "the writes are there"
        );
    }

    #[test]
    fn without_the_thread_sqlite_checkpoints_inline_and_the_wal_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let store = SqliteStore::builder()
            .background_checkpoints(false)
            .open(&path)
            .unwrap();
        assert_eq!(store.checkpoints_run(), None, "no thread");
        let segments = Segments::new(store.clone());
        // 200 batches of 1,000 new people: far past 1,000 WAL pages.
        fill(&segments, || 0, 1);
        assert!(
            wal_pages(&path) < 2000,
            "SQLite's own checkpoints keep the WAL near 1,000 pages"
        );
    }

    #[test]
    fn an_in_memory_store_has_no_checkpoint_thread() {
        let store = SqliteStore::open_in_memory().unwrap();
        assert_eq!(store.checkpoints_run(), None);
    }
}
