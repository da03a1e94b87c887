//! The benchmark cases, shared by the criterion benches (`cargo bench`) and
//! the report (`cargo run --release --example bench_report`).
//!
//! Every case is a pair of routines measured in the same run: the library
//! doing the work, and its *floor*, the same work with no library around it
//! (raw rusqlite, a bare `HashMap`). A routine runs `iters` iterations of
//! `ops_per_iter` operations each and returns the time they took, which is
//! criterion's `iter_custom` contract.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use rusqlite::Connection;
use segments::SqliteStore;
use tempfile::TempDir;

mod create;
mod members;
#[cfg(feature = "wire")]
mod wire;

/// Runs `iters` iterations and returns how long they took.
pub type Routine = Box<dyn FnMut(u64) -> Duration>;

/// What a case must show.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// Library throughput at least this fraction of the floor's.
    RatioAtLeast(f64),
    /// Library throughput at least this many operations per second.
    RateAtLeast(f64),
    /// No target: the figures are reported.
    Report,
}

impl Target {
    pub fn describe(self) -> String {
        match self {
            Target::RatioAtLeast(r) => format!("ratio >= {r:.2}"),
            Target::RateAtLeast(r) => format!(">= {}/s", human(r)),
            Target::Report => "reported".to_owned(),
        }
    }

    pub fn met(self, library_rate: f64, floor_rate: f64) -> bool {
        match self {
            Target::RatioAtLeast(r) => library_rate / floor_rate >= r,
            Target::RateAtLeast(r) => library_rate >= r,
            Target::Report => true,
        }
    }
}

/// One row of the report, one group of the criterion benches.
pub struct Case {
    /// Short id for criterion (`create/sqlite_file`).
    pub id: String,
    /// The report's description of the case.
    pub name: String,
    /// What one operation is (`creates`, `PIDs`).
    pub unit: &'static str,
    pub ops_per_iter: u64,
    pub target: Target,
    pub library: Routine,
    pub floor: Routine,
}

/// Formats a rate: 1234567.0 → "1.23M".
pub fn human(rate: f64) -> String {
    match rate {
        r if r >= 1e6 => format!("{:.2}M", r / 1e6),
        r if r >= 1e3 => format!("{:.1}k", r / 1e3),
        r => format!("{r:.1}"),
    }
}

/// The PRAGMAs `SqliteStore` sets, for floors that use raw rusqlite.
pub fn raw_connection(path: &std::path::Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let _: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    conn
}

/// A fresh database file with the crate's schema, so that floors write to
/// exactly the tables and indexes the library does.
pub fn fresh_db(name: &str) -> (TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    drop(SqliteStore::open(&path).unwrap());
    (dir, path)
}

pub fn timed(iters: u64, mut op: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        op();
    }
    start.elapsed()
}

/// A group of cases: the prefix of its case ids and its constructor.
pub type Group = (&'static str, fn() -> Vec<Case>);

/// Every group of cases, in report order, with the prefix of its case ids;
/// a group's constructor may return several cases sharing a costly setup.
pub fn all() -> Vec<Group> {
    vec![
        ("create/sqlite_file", || vec![create::sqlite()]),
        ("create/memory", || vec![create::memory()]),
        #[cfg(feature = "wire")]
        ("create/wire_sqlite_file", || vec![wire::create_sqlite()]),
        ("add_members/sqlite_file", || vec![members::add_sqlite()]),
        ("add_members/memory", || vec![members::add_memory()]),
        ("reads/sqlite_file", members::big_sqlite),
        ("reads/memory", members::big_memory),
    ]
}
