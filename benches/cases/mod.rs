//! The benchmark cases, shared by the criterion benches (`cargo bench`) and
//! the report (`cargo run --release --features wire --example bench_report`).
//!
//! Every case is the library doing some work beside its *floor*, the same
//! work with no library around it (raw rusqlite, a bare `HashMap`), on the
//! same data and the same durability settings. There are two shapes:
//!
//! - [`Case`]: a pair of routines that each run `iters` operations and
//!   return the time they took (criterion's `iter_custom` contract). Used
//!   for creates and reads, which cost the same call after call.
//! - [`Fill`]: a pair of routines that each fill one new, empty segment (or
//!   map) to [`Config::size`] members in [`BATCH`]-PID batches and return
//!   the time of every batch. A fill is timed whole, from empty to full:
//!   its cost grows as the tables do, so a window of it would say little.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use segments_engine::SqliteStore;
use tempfile::TempDir;

mod create;
mod fill;
mod import;
mod mixed;
pub mod pids;
#[cfg(feature = "postgres")]
mod postgres;
mod reads;
mod sets;
#[cfg(feature = "wire")]
mod wire;

pub use pids::PidForm;

/// PIDs per `add_members` call in the fills.
pub const BATCH: u64 = 10_000;

/// The full size of fills and of the big segment of the reads: 1M.
pub const DEFAULT_SIZE: u64 = 1_000_000;

/// What the cases are built for.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Members of a full segment: where fills stop, and the size of the
    /// big segment the reads use. A multiple of [`BATCH`].
    pub size: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self { size: DEFAULT_SIZE }
    }
}

impl Config {
    /// The PIDs of one curve step: 100k at 1M (a tenth of the fill, in
    /// whole batches, for smaller sizes).
    pub fn step(&self) -> u64 {
        (self.size / 10 / BATCH).max(1) * BATCH
    }

    /// `1M`, `50k`: a size as the report names it.
    pub fn size_name(&self) -> String {
        count(self.size)
    }
}

/// `1000000` → `1M`, `100000` → `100k`, `999` → `999`.
pub fn count(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// Runs `iters` iterations and returns how long they took.
pub type Routine = Box<dyn FnMut(u64) -> Duration>;

/// One whole fill of a fresh segment (or map); returns the time of each
/// batch, in order. Building and dropping the store are not timed.
pub type FillRoutine = Box<dyn FnMut() -> Vec<Duration>>;

/// What a case must show.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// Library throughput at least this fraction of the floor's.
    RatioAtLeast(f64),
    /// No target: the figures are reported.
    Report,
}

impl Target {
    pub fn describe(self) -> String {
        match self {
            Target::RatioAtLeast(r) => format!(">= {r:.2}"),
            Target::Report => "(reported)".to_owned(),
        }
    }

    /// `yes`, `NO`, or `-` for a reported figure.
    pub fn verdict(self, library_rate: f64, floor_rate: f64) -> &'static str {
        match self {
            Target::RatioAtLeast(r) if library_rate / floor_rate >= r => "yes",
            Target::RatioAtLeast(_) => "NO",
            Target::Report => "-",
        }
    }
}

/// A case measured by operation rate: one row of the report, one group of
/// the criterion benches.
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

/// A fill case: two rows of the report (the whole fill and its last
/// step), and its curve.
pub struct Fill {
    /// Short id for criterion (`add_members/sqlite_file/pid14`).
    pub id: String,
    /// The report's description of the case.
    pub name: String,
    /// PIDs in one fill.
    pub size: u64,
    /// Whole fills of each side the report runs (unless told otherwise):
    /// few, as a SQLite fill of 1M takes tens of seconds.
    pub fills: usize,
    /// Over the whole fill.
    pub whole: Target,
    /// Over the last [`Config::step`] PIDs of the fill.
    pub last: Target,
    pub library: FillRoutine,
    pub floor: FillRoutine,
    /// Other floors, reported beside the one the target is set against
    /// (no target of their own): a label and the routine.
    pub also: Vec<(&'static str, FillRoutine)>,
}

/// A measurement printed as a few lines rather than a row (a page walk
/// timed step by step).
pub struct Curve {
    pub id: String,
    pub run: Box<dyn FnOnce() -> String>,
}

/// What a group holds.
pub enum Entry {
    Rate(Case),
    Fill(Fill),
    Curve(Curve),
}

/// Formats a rate: 1234567.0 → "1.23M".
pub fn human(rate: f64) -> String {
    match rate {
        r if r >= 1e6 => format!("{:.2}M", r / 1e6),
        r if r >= 1e3 => format!("{:.1}k", r / 1e3),
        r => format!("{r:.1}"),
    }
}

/// The PRAGMAs `SqliteStore` sets on a file, for floors that use raw
/// rusqlite: WAL, `synchronous=NORMAL`, `foreign_keys=ON`.
pub fn raw_connection(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    assert!(mode.eq_ignore_ascii_case("wal"));
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    conn
}

/// A fresh directory for a database file named `name` (not created).
pub fn fresh_dir(name: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    (dir, path)
}

/// A fresh database file with the crate's schema, so that floors write to
/// exactly the tables and indexes the library does.
pub fn fresh_db(name: &str) -> (TempDir, PathBuf) {
    let (dir, path) = fresh_dir(name);
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

/// A group of cases: the prefix of its case ids and its constructor. A
/// constructor is cheap; costly fixtures are built on first use.
pub type Group = (&'static str, fn(Config) -> Vec<Entry>);

/// Every group of cases, in report order.
pub fn all() -> Vec<Group> {
    vec![
        ("create/sqlite_file", |_| {
            vec![Entry::Rate(create::sqlite())]
        }),
        ("create/memory", |_| vec![Entry::Rate(create::memory())]),
        #[cfg(feature = "wire")]
        ("create/wire_sqlite_file", |_| {
            vec![Entry::Rate(wire::create_sqlite())]
        }),
        ("add_members/sqlite_file/pid14", |c| {
            vec![Entry::Fill(fill::sqlite(c, PidForm::Short))]
        }),
        ("add_members/sqlite_file/pid64", |c| {
            vec![Entry::Fill(fill::sqlite(c, PidForm::Long))]
        }),
        ("import/sqlite_file/pid14", import::sqlite),
        ("mixed/sqlite_file", mixed::sqlite),
        ("add_members/memory/pid14", |c| {
            vec![Entry::Fill(fill::memory(c, PidForm::Short))]
        }),
        ("add_members/memory/pid64", |c| {
            vec![Entry::Fill(fill::memory(c, PidForm::Long))]
        }),
        #[cfg(feature = "postgres")]
        ("create/postgres", |_| {
            vec![
                Entry::Rate(postgres::create(false)),
                Entry::Rate(postgres::create(true)),
            ]
        }),
        #[cfg(feature = "postgres")]
        ("add_members/postgres/pid14", |c| {
            vec![Entry::Fill(postgres::fill(c, PidForm::Short))]
        }),
        #[cfg(feature = "postgres")]
        ("add_members/postgres/pid64", |c| {
            vec![Entry::Fill(postgres::fill(c, PidForm::Long))]
        }),
        ("reads/sqlite_file", reads::sqlite),
        ("reads/memory", reads::memory),
        #[cfg(feature = "postgres")]
        ("reads/postgres", reads::postgres),
        ("sets/sqlite_file", sets::sqlite),
        ("sets/memory", sets::memory),
        #[cfg(feature = "postgres")]
        ("sets/postgres", sets::postgres),
    ]
}
