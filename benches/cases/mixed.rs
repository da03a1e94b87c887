//! The mixed load of SPEC §8 on a SQLite file (10% create, 60% add of 10
//! random PIDs, 30% page 1; `benches/mix.rs`), the library called
//! directly: 64 threads beside 1 thread, in `synchronous=NORMAL` (target:
//! ≥ 1.5× the calls/s, p99 ≤ 50 ms) and `FULL` (target ≥ 4×). Each run is
//! on a fresh file, for `SEGMENTS_MIX_SECONDS` seconds (5 by default); the
//! 1-thread and 64-thread runs alternate, twice, and each side's figure is
//! the better of its two runs (the machine's noise only slows a run).

use std::sync::Arc;
use std::time::Duration;

use segments_engine::sqlite::Synchronous;
use segments_engine::{OrgId, Segments, SqliteStore};

use super::{Config, Curve, Entry, fresh_dir, human};

#[path = "../mix.rs"]
mod mix;

/// Threads of the loaded side.
const THREADS: usize = 64;

/// The case: one small table.
pub fn sqlite(_: Config) -> Vec<Entry> {
    vec![Entry::Curve(Curve {
        id: "mixed/sqlite_file".to_owned(),
        run: Box::new(run),
    })]
}

fn seconds() -> Duration {
    let s = std::env::var("SEGMENTS_MIX_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    Duration::from_secs(s)
}

/// One run of the mix on a fresh file.
fn once(sync: Synchronous, threads: usize) -> mix::Outcome {
    let (_dir, path) = fresh_dir("mixed.db");
    let store = SqliteStore::builder()
        .synchronous(sync)
        .open(&path)
        .unwrap();
    let segments = Arc::new(Segments::new(store));
    let org = OrgId::new("mixed").unwrap();
    let out = mix::run(&segments, &org, threads, seconds());
    assert_eq!(out.errors, 0, "no call of the mix fails");
    out
}

fn run() -> String {
    let mut out = format!(
        "mixed load, SQLite file, the library directly: {THREADS} threads vs 1, {:?} a run, best of 2\n\n\
         | synchronous | 1 thread calls/s | {THREADS} threads calls/s | ratio | target | {THREADS} threads p50 ms | p99 ms | p99 target |\n\
         |---|---|---|---|---|---|---|---|",
        seconds()
    );
    for (sync, name, target) in [
        (Synchronous::Normal, "NORMAL", 1.5),
        (Synchronous::Full, "FULL", 4.0),
    ] {
        let best = |a: mix::Outcome, b: mix::Outcome| {
            if a.ops_per_s() >= b.ops_per_s() { a } else { b }
        };
        let one_a = once(sync, 1);
        let many_a = once(sync, THREADS);
        let many_b = once(sync, THREADS);
        let one_b = once(sync, 1);
        let (one, many) = (best(one_a, one_b), best(many_a, many_b));
        let ratio = many.ops_per_s() / one.ops_per_s();
        let p99_target = if sync == Synchronous::Normal {
            "<= 50"
        } else {
            "-"
        };
        out.push_str(&format!(
            "\n| {name} | {} | {} | {ratio:.2} | >= {target:.1} {} | {:.1} | {:.1} | {p99_target} {} |",
            human(one.ops_per_s()),
            human(many.ops_per_s()),
            if ratio >= target { "met" } else { "NOT met" },
            many.p50_ms,
            many.p99_ms,
            if sync != Synchronous::Normal {
                ""
            } else if many.p99_ms <= 50.0 {
                "met"
            } else {
                "NOT met"
            },
        ));
    }
    out
}
