//! Writers in line: the write calls of one [`SqliteStore`](super::SqliteStore)
//! take turns in arrival order, and the calls that wait together commit
//! together.
//!
//! Each call takes a ticket and waits for its turn (no polling of SQLite's
//! lock between the store's own writers). On its turn it runs on the one
//! write connection, inside a savepoint of the group's transaction: the
//! first call of a group begins the transaction (`BEGIN IMMEDIATE`), and
//! the call that finds nobody waiting behind it (or the group full)
//! commits it. A call that fails rolls back to its savepoint, alone; the
//! others of its group go on. Every call returns only once its group has
//! ended, so what it returns holds (a call that found a name taken, or a
//! key claimed, by an earlier call of its group returns after that call
//! committed). If the commit fails, nothing of the group was written and
//! every call of it fails with that error.
//!
//! Grouping is off for a database in memory, whose reads share the write
//! connection: there every call commits on its own (still in turn).

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::Thread;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::{SqliteDb, when_busy};
use crate::{Error, Result, StorageFailure};

/// The most calls one group holds: the SQLite write lock is held for a
/// whole group, so other processes' writers wait at most this many calls.
const MAX_GROUP_CALLS: usize = 64;

/// The longest a group stays open for more calls to join it.
const MAX_GROUP_AGE: Duration = Duration::from_millis(20);

/// The line of writers of one store.
///
/// A waiting caller parks its thread; the caller that passes the turn
/// wakes only the next one in line, and the caller that ends a group wakes
/// only that group's callers.
#[derive(Debug, Default)]
pub(super) struct Writers {
    state: Mutex<WriteLine>,
}

#[derive(Debug, Default)]
struct WriteLine {
    /// The ticket the next caller takes.
    next_ticket: u64,
    /// The ticket whose turn it is.
    serving: u64,
    /// The callers waiting for their turn, in ticket order.
    line: VecDeque<(u64, Thread)>,
    /// The group whose transaction is open, between turns.
    open: Option<OpenGroup>,
    /// How many groups have committed (for tests).
    committed: u64,
}

#[derive(Debug)]
struct OpenGroup {
    group: Arc<Mutex<Group>>,
    began: Instant,
    calls: usize,
}

/// One transaction's calls: how its commit ended, once it has, and the
/// callers waiting to hear it.
#[derive(Debug, Default)]
struct Group {
    ended: Option<std::result::Result<(), Arc<Error>>>,
    waiting: Vec<Thread>,
}

/// The failure of a group's commit, as each of its calls reports it.
#[derive(Debug, thiserror::Error)]
#[error("the commit of this call's group of writes failed; nothing of it was written")]
struct GroupFailed(#[source] Arc<Error>);

impl Writers {
    fn lock(&self) -> MutexGuard<'_, WriteLine> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the write connection in its turn, in a savepoint of a
    /// group's transaction (or, with `grouped` false, a transaction of its
    /// own): applied when `f` returns `Ok` and `dry_run` is false, rolled
    /// back otherwise. `patience` bounds the wait for SQLite's write lock.
    pub(super) fn write<T>(
        &self,
        conn: &Mutex<Connection>,
        grouped: bool,
        dry_run: bool,
        patience: Duration,
        f: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        if state.serving != ticket {
            state.line.push_back((ticket, std::thread::current()));
            while state.serving != ticket {
                drop(state);
                std::thread::park();
                state = self.lock();
            }
        }
        // Our turn: the connection is ours until we pass it on.
        let open = state.open.take();
        drop(state);
        let conn = conn.lock().unwrap_or_else(|e| e.into_inner());

        let mut open = match open {
            Some(open) => open,
            None => match when_busy(patience, || execute(&conn, "BEGIN IMMEDIATE")) {
                Ok(()) => OpenGroup {
                    group: Arc::default(),
                    began: Instant::now(),
                    calls: 0,
                },
                Err(e) => {
                    self.pass_turn(None);
                    return Err(e);
                }
            },
        };
        open.calls += 1;

        // The group's first call needs no savepoint: if it does not keep
        // its work, it rolls the whole transaction back (nothing else is in
        // it yet), and the group ends empty.
        if open.calls == 1 {
            let out = catch_unwind(AssertUnwindSafe(|| f(&conn)));
            if dry_run || !matches!(out, Ok(Ok(_))) {
                // Nobody else is in the group: it just goes.
                let rolled_back = execute(&conn, "ROLLBACK");
                if rolled_back.is_err() {
                    rollback(&conn);
                }
                self.pass_turn(None);
                drop(conn);
                return match out {
                    Ok(out) => out,
                    Err(panic) => resume_unwind(panic),
                };
            }
            return self.finish(conn, ticket, grouped, open, out);
        }

        let ran = match execute(&conn, "SAVEPOINT segments_call") {
            Ok(()) => {
                let out = catch_unwind(AssertUnwindSafe(|| f(&conn)));
                let keep = matches!(out, Ok(Ok(_))) && !dry_run;
                let closed = if keep {
                    execute(&conn, "RELEASE segments_call")
                } else {
                    execute(&conn, "ROLLBACK TO segments_call")
                        .and_then(|()| execute(&conn, "RELEASE segments_call"))
                };
                closed.map(|()| out)
            }
            Err(e) => Err(e),
        };
        let out = match ran {
            Ok(out) => out,
            // The savepoint could not be made or closed: the transaction
            // is in an unknown state, so the whole group is rolled back.
            Err(e) => {
                let e = Arc::new(e);
                rollback(&conn);
                self.end(&open.group, Err(Arc::clone(&e)));
                self.pass_turn(None);
                return Err(failed(&e));
            }
        };
        self.finish(conn, ticket, grouped, open, out)
    }

    /// After a call ran in the group `open`: commits the group now (when
    /// nobody waits behind the call, or the group is full), or leaves it
    /// open for the next caller; then waits for the group's end.
    fn finish<T>(
        &self,
        conn: MutexGuard<'_, Connection>,
        ticket: u64,
        grouped: bool,
        open: OpenGroup,
        out: std::thread::Result<Result<T>>,
    ) -> Result<T> {
        // Commit now, or leave the group open for the callers in line.
        let waiting = {
            let state = self.lock();
            state.next_ticket - ticket - 1
        };
        let group = Arc::clone(&open.group);
        let commit_now = !grouped
            || waiting == 0
            || open.calls >= MAX_GROUP_CALLS
            || open.began.elapsed() >= MAX_GROUP_AGE;
        if commit_now {
            let committed = execute(&conn, "COMMIT").map_err(Arc::new);
            if committed.is_err() {
                rollback(&conn);
            }
            self.end(&group, committed);
            self.pass_turn(None);
        } else {
            self.pass_turn(Some(open));
        }
        drop(conn);

        let out = match out {
            Ok(out) => out,
            Err(panic) => resume_unwind(panic),
        };
        // Every call waits for its group's end, a failed one too: its
        // outcome may rest on what earlier calls of the group wrote (a
        // name they took, a key they claimed), and what it returns must
        // hold once it returns. If the group's commit failed, none of
        // that was written, so every call of the group reports the
        // failure.
        match self.ended(&group) {
            Ok(()) => out,
            Err(e) => Err(failed(&e)),
        }
    }

    /// Hands the turn (and the open group, if any) to the next ticket,
    /// waking its caller if it is waiting.
    fn pass_turn(&self, open: Option<OpenGroup>) {
        let mut state = self.lock();
        state.open = open;
        state.serving += 1;
        let serving = state.serving;
        let next = match state.line.front() {
            Some((ticket, _)) if *ticket == serving => state.line.pop_front(),
            _ => None,
        };
        drop(state);
        if let Some((_, thread)) = next {
            thread.unpark();
        }
    }

    /// Records how a group ended and wakes its waiting callers.
    fn end(&self, group: &Mutex<Group>, how: std::result::Result<(), Arc<Error>>) {
        if how.is_ok() {
            self.lock().committed += 1;
        }
        let mut group = group.lock().unwrap_or_else(|e| e.into_inner());
        group.ended = Some(how);
        for thread in group.waiting.drain(..) {
            thread.unpark();
        }
    }

    /// Waits for the group's end.
    fn ended(&self, group: &Mutex<Group>) -> std::result::Result<(), Arc<Error>> {
        let lock = || group.lock().unwrap_or_else(|e| e.into_inner());
        let mut g = lock();
        if g.ended.is_none() {
            g.waiting.push(std::thread::current());
        }
        loop {
            if let Some(how) = &g.ended {
                return how.clone();
            }
            drop(g);
            std::thread::park();
            g = lock();
        }
    }

    /// How many groups have committed.
    #[cfg(test)]
    pub(super) fn groups_committed(&self) -> u64 {
        self.lock().committed
    }
}

fn execute(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql).db()?.execute([]).db()?;
    Ok(())
}

/// Rolls back whatever is open; the caller already has an error to report.
fn rollback(conn: &Connection) {
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
}

/// Each call's error for a group that failed: of the same kind, with the
/// group's failure as its source.
fn failed(e: &Arc<Error>) -> Error {
    let kind = e.storage_kind().unwrap_or(StorageFailure::Other);
    Error::storage_failure(kind, GroupFailed(Arc::clone(e)))
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;

    use super::*;

    const PATIENCE: Duration = Duration::from_secs(5);

    /// A WAL file with a table of numbers and a table whose rows must
    /// point at a number by the end of their transaction (a deferred
    /// foreign key: a dangling row fails the COMMIT, not the statement).
    fn database() -> (tempfile::TempDir, Mutex<Connection>) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA foreign_keys = ON;
             CREATE TABLE numbers (n INTEGER PRIMARY KEY);
             CREATE TABLE notes (
                 n INTEGER REFERENCES numbers (n) DEFERRABLE INITIALLY DEFERRED
             );",
        )
        .unwrap();
        (dir, Mutex::new(conn))
    }

    fn numbers(conn: &Mutex<Connection>) -> Vec<i64> {
        let conn = conn.lock().unwrap();
        let mut statement = conn.prepare("SELECT n FROM numbers ORDER BY n").unwrap();
        statement
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// Runs `call(i)` from `n` threads released at once, each through the
    /// line; the results in thread order.
    fn race<T: Send>(
        writers: &Writers,
        conn: &Mutex<Connection>,
        n: usize,
        call: impl Fn(usize, &Connection) -> Result<T> + Sync,
    ) -> Vec<std::thread::Result<Result<T>>> {
        let barrier = Barrier::new(n);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..n)
                .map(|i| {
                    let (barrier, call) = (&barrier, &call);
                    scope.spawn(move || {
                        barrier.wait();
                        writers.write(conn, true, false, PATIENCE, |c| call(i, c))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join()).collect()
        })
    }

    #[test]
    fn calls_waiting_together_commit_together_and_a_failed_call_fails_alone() {
        let (_dir, conn) = database();
        let writers = Writers::default();
        let results = race(&writers, &conn, 16, |i, c| {
            c.execute("INSERT INTO numbers (n) VALUES (?1)", [i as i64])
                .db()?;
            // Long enough for the others to line up behind this call.
            std::thread::sleep(Duration::from_millis(2));
            if i % 4 == 3 {
                // Fails after it wrote: its row must go.
                return Err(Error::storage(format!("call {i} fails")));
            }
            Ok(i)
        });
        for (i, r) in results.iter().enumerate() {
            match r.as_ref().expect("no call panics") {
                Ok(n) => assert_eq!(*n, i, "call {i} returns its own outcome"),
                Err(e) => assert!(i % 4 == 3, "only the failing calls fail: {i}: {e}"),
            }
        }
        let kept: Vec<i64> = (0..16).filter(|i| i % 4 != 3).collect();
        assert_eq!(
            numbers(&conn),
            kept,
            "the calls that worked are committed, the failed ones left nothing"
        );
        let groups = writers.groups_committed();
        assert!(
            groups < 12,
            "12 calls that waited together committed in fewer than 12 commits ({groups})"
        );
        assert!(
            conn.lock().unwrap().is_autocommit(),
            "no transaction is left open"
        );
    }

    #[test]
    fn a_failed_commit_fails_every_call_of_its_group_and_writes_nothing() {
        let (_dir, conn) = database();
        let writers = Writers::default();
        let results = race(&writers, &conn, 8, |i, c| {
            c.execute("INSERT INTO numbers (n) VALUES (?1)", [i as i64])
                .db()?;
            if i == 0 {
                // Dangling until the commit, which then fails.
                c.execute("INSERT INTO notes (n) VALUES (1000)", []).db()?;
            }
            std::thread::sleep(Duration::from_millis(2));
            Ok(i)
        });
        let failed = results
            .iter()
            .filter(|r| r.as_ref().expect("no call panics").is_err())
            .count();
        assert!(failed >= 1, "the group holding the dangling note failed");
        // Every call that reported success is there, and nothing else.
        let succeeded: Vec<i64> = results
            .iter()
            .filter_map(|r| r.as_ref().unwrap().as_ref().ok().map(|&i| i as i64))
            .collect();
        let mut succeeded = succeeded;
        succeeded.sort_unstable();
        assert_eq!(
            numbers(&conn),
            succeeded,
            "a call reported as written is written; a call of the failed group is not"
        );
        assert!(
            !succeeded.contains(&0),
            "the call whose note dangled is not written"
        );
        for r in &results {
            if let Ok(Err(e)) = r {
                assert!(
                    e.storage_kind().is_some(),
                    "a failed group is a storage error: {e}"
                );
            }
        }
        assert!(conn.lock().unwrap().is_autocommit(), "no transaction open");
        // The line goes on.
        let next = writers.write(&conn, true, false, PATIENCE, |c| {
            c.execute("INSERT INTO numbers (n) VALUES (99)", []).db()
        });
        assert!(next.is_ok(), "a later call works: {next:?}");
    }

    #[test]
    fn a_call_alone_commits_alone_and_a_failed_or_dry_call_alone_writes_nothing() {
        let (_dir, conn) = database();
        let writers = Writers::default();
        let insert = |n: i64| {
            move |c: &Connection| -> Result<()> {
                c.execute("INSERT INTO numbers (n) VALUES (?1)", [n]).db()?;
                Ok(())
            }
        };
        writers
            .write(&conn, true, false, PATIENCE, insert(1))
            .unwrap();
        let failed = writers.write(&conn, true, false, PATIENCE, |c| {
            insert(2)(c)?;
            Err::<(), _>(Error::storage("fails after it wrote"))
        });
        assert!(failed.is_err(), "the failure is the caller's");
        writers
            .write(&conn, true, true, PATIENCE, insert(3))
            .unwrap();
        writers
            .write(&conn, true, false, PATIENCE, insert(4))
            .unwrap();
        assert_eq!(
            numbers(&conn),
            [1, 4],
            "a failed call and a dry run, each alone in its group, wrote nothing"
        );
        assert_eq!(
            writers.groups_committed(),
            2,
            "one commit per call that worked"
        );
        assert!(conn.lock().unwrap().is_autocommit(), "no transaction open");
    }

    #[test]
    fn a_panicking_call_is_rolled_back_and_the_line_goes_on() {
        let (_dir, conn) = database();
        let writers = Writers::default();
        let results = race(&writers, &conn, 6, |i, c| {
            c.execute("INSERT INTO numbers (n) VALUES (?1)", [i as i64])
                .db()?;
            std::thread::sleep(Duration::from_millis(2));
            assert_ne!(i, 2, "call 2 panics after it wrote");
            Ok(())
        });
        assert!(results[2].is_err(), "the panic reaches its caller");
        assert!(
            results
                .iter()
                .enumerate()
                .all(|(i, r)| i == 2 || matches!(r, Ok(Ok(())))),
            "the other calls work"
        );
        assert_eq!(
            numbers(&conn),
            [0, 1, 3, 4, 5],
            "the panicking call left nothing"
        );
    }

    #[test]
    fn callers_take_their_turns_in_arrival_order() {
        let (_dir, conn) = database();
        let writers = Writers::default();
        let order = Mutex::new(Vec::new());
        let (held, release) = (&Barrier::new(2), &Barrier::new(2));
        // Hold the line with a first call while the others arrive, one
        // after another.
        std::thread::scope(|scope| {
            let (writers, conn, order) = (&writers, &conn, &order);
            // Waits until `n` callers have taken a ticket.
            let arrived = |n: u64| {
                while writers.lock().next_ticket < n {
                    std::thread::yield_now();
                }
            };
            let first = scope.spawn(move || {
                writers.write(conn, true, false, PATIENCE, |_| {
                    held.wait();
                    release.wait();
                    Ok(())
                })
            });
            held.wait();
            let mut later = Vec::new();
            for i in 0..8 {
                later.push(scope.spawn(move || {
                    writers.write(conn, true, false, PATIENCE, |_| {
                        order.lock().unwrap().push(i);
                        Ok(())
                    })
                }));
                // The next caller arrives only once this one is in line.
                arrived(i + 2);
            }
            release.wait();
            first.join().unwrap().unwrap();
            for h in later {
                h.join().unwrap().unwrap();
            }
        });
        assert_eq!(
            *order.lock().unwrap(),
            (0..8).collect::<Vec<_>>(),
            "turns follow arrival order"
        );
    }
}
