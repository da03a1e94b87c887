//! The benchmark cases, shared by the criterion benches (`cargo bench`) and
//! the report (`cargo run --release --example bench_report`).
//!
//! Every case is a pair of routines measured in the same run: the library
//! doing the work, and its *floor*, the same work with no library around it
//! (raw rusqlite, a bare `HashMap`). A routine runs `iters` iterations of
//! `ops_per_iter` operations each and returns the time they took, which is
//! criterion's `iter_custom` contract.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use segments::{MemoryStore, NewSegment, OrgId, Segments, SqliteStore};
use tempfile::TempDir;

/// Runs `iters` iterations and returns how long they took.
pub type Routine = Box<dyn FnMut(u64) -> Duration>;

/// What a case must show.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// Library throughput at least this fraction of the floor's.
    RatioAtLeast(f64),
    /// Library throughput at least this many operations per second.
    RateAtLeast(f64),
}

impl Target {
    pub fn describe(self) -> String {
        match self {
            Target::RatioAtLeast(r) => format!("ratio >= {r}"),
            Target::RateAtLeast(r) => format!(">= {}/s", human(r)),
        }
    }

    pub fn met(self, library_rate: f64, floor_rate: f64) -> bool {
        match self {
            Target::RatioAtLeast(r) => library_rate / floor_rate >= r,
            Target::RateAtLeast(r) => library_rate >= r,
        }
    }
}

/// One row of the report, one group of the criterion benches.
pub struct Case {
    /// Short id for criterion (`create/sqlite_file`).
    pub id: &'static str,
    /// The report's description of the case.
    pub name: &'static str,
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
fn raw_connection(path: &std::path::Path) -> Connection {
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
fn fresh_db(name: &str) -> (TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    drop(SqliteStore::open(&path).unwrap());
    (dir, path)
}

fn timed(iters: u64, mut op: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        op();
    }
    start.elapsed()
}

/// `create` on a SQLite file (WAL, synchronous=NORMAL) vs a raw autocommit
/// INSERT of the same row into the same table, cached statement.
pub fn create_sqlite() -> Case {
    let (lib_dir, lib_path) = fresh_db("library.db");
    let segments = Segments::new(SqliteStore::open(&lib_path).unwrap());
    let org = OrgId::new("acme").unwrap();
    let mut n = 0u64;
    let library: Routine = Box::new(move |iters| {
        let _keep = &lib_dir;
        timed(iters, || {
            n += 1;
            segments
                .create(&org, NewSegment::new(format!("segment {n}")))
                .unwrap();
        })
    });

    let (floor_dir, floor_path) = fresh_db("floor.db");
    let conn = raw_connection(&floor_path);
    let mut m = 0u64;
    let floor: Routine = Box::new(move |iters| {
        let _keep = &floor_dir;
        timed(iters, || {
            m += 1;
            let name = format!("segment {m}");
            let id = (u128::from(m) | (7 << 76)).to_be_bytes();
            let now = chrono::Utc::now().timestamp_micros();
            conn.prepare_cached(
                "INSERT INTO segments (id, org, name, name_key, description, source, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            )
            .unwrap()
            .execute(params![id, "acme", name, name, None::<String>, "api", now])
            .unwrap();
        })
    });
    Case {
        id: "create/sqlite_file",
        name: "create, SqliteStore file (WAL, NORMAL) vs raw INSERT, autocommit",
        unit: "creates",
        ops_per_iter: 1,
        target: Target::RatioAtLeast(0.8),
        library,
        floor,
    }
}

/// How many segments a memory case puts in one store before it starts over
/// with an empty one (outside the timed region): the case measures creates
/// into a store of up to this size, not the cost of growing one forever.
const MEMORY_STORE_CAP: u64 = 100_000;

/// Times `iters` calls of `op(i)`, replacing the state with `fresh()` every
/// `cap` calls; replacing and dropping are not timed.
fn timed_capped<T>(
    iters: u64,
    cap: u64,
    state: &mut T,
    count: &mut u64,
    fresh: impl Fn() -> T,
    mut op: impl FnMut(&T, u64),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        if *count == cap {
            drop(std::mem::replace(state, fresh()));
            *count = 0;
        }
        let run = left.min(cap - *count);
        let start = Instant::now();
        for _ in 0..run {
            *count += 1;
            op(state, *count);
        }
        total += start.elapsed();
        left -= run;
    }
    total
}

/// `create` on MemoryStore vs inserting the same record into a bare
/// `RwLock<HashMap>` keyed by (org, name key); both into a store of up to
/// 100,000 segments.
pub fn create_memory() -> Case {
    let org = OrgId::new("acme").unwrap();
    let fresh = || Segments::new(MemoryStore::new());
    let (mut segments, mut n) = (fresh(), 0);
    let library: Routine = Box::new(move |iters| {
        timed_capped(
            iters,
            MEMORY_STORE_CAP,
            &mut segments,
            &mut n,
            fresh,
            |s, i| {
                s.create(&org, NewSegment::new(format!("segment {i}")))
                    .unwrap();
            },
        )
    });

    struct Row {
        name: String,
        source: String,
        created_at: i64,
    }
    type Map = RwLock<HashMap<(String, String), Row>>;
    let fresh_map = || Map::new(HashMap::new());
    let (mut map, mut m) = (fresh_map(), 0);
    let floor: Routine = Box::new(move |iters| {
        timed_capped(
            iters,
            MEMORY_STORE_CAP,
            &mut map,
            &mut m,
            fresh_map,
            |map, i| {
                let name = format!("segment {i}");
                let row = Row {
                    name: name.clone(),
                    source: "api".to_owned(),
                    created_at: i as i64,
                };
                map.write().unwrap().insert(("acme".to_owned(), name), row);
            },
        )
    });
    Case {
        id: "create/memory",
        name: "create, MemoryStore (stores of up to 100k) vs bare HashMap insert",
        unit: "creates",
        ops_per_iter: 1,
        target: Target::RateAtLeast(1e6),
        library,
        floor,
    }
}

/// Every case, in report order.
pub fn all() -> Vec<fn() -> Case> {
    vec![create_sqlite, create_memory]
}
