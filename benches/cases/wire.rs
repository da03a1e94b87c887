//! The wire adapter's cost: create through `Wire::handle` beside a direct
//! `create`, both on SQLite files (WAL, NORMAL).

use std::time::{Duration, Instant};

use segments_engine::wire::{KeyRing, Wire};
use segments_engine::{NewSegment, OrgId, Segments, SqliteStore};

use super::{Case, Routine, Target, fresh_db};

/// Builds `iters` inputs with `make` (untimed), then times `op` on each.
fn timed_each<T>(iters: u64, mut make: impl FnMut() -> T, mut op: impl FnMut(T)) -> Duration {
    let inputs: Vec<T> = (0..iters).map(|_| make()).collect();
    let start = Instant::now();
    for input in inputs {
        op(input);
    }
    start.elapsed()
}

/// `POST /v2/segments/create` through the adapter vs `Segments::create`.
/// Only `handle` (and, for the floor, `create`) is timed: building the
/// request is the transport's work, done before the clock starts.
pub fn create_sqlite() -> Case {
    let org = OrgId::new("acme").unwrap();
    let (lib_dir, lib_path) = fresh_db("wire.db");
    let mut keys = KeyRing::new();
    keys.insert("mk_live_bench", org.clone());
    let wire = Wire::new(Segments::new(SqliteStore::open(&lib_path).unwrap()), keys);
    let mut n = 0u64;
    let library: Routine = Box::new(move |iters| {
        let _keep = &lib_dir;
        timed_each(
            iters,
            || {
                n += 1;
                http::Request::post("/v2/segments/create")
                    .header("x-api-key", "mk_live_bench")
                    .header("content-type", "application/json")
                    .body(format!(
                        r#"{{"name": "segment {n}", "description": "benchmark"}}"#
                    ))
                    .unwrap()
            },
            |request| {
                let response = wire.handle(request);
                assert_eq!(response.status(), 200);
            },
        )
    });

    let (floor_dir, floor_path) = fresh_db("direct.db");
    let segments = Segments::new(SqliteStore::open(&floor_path).unwrap());
    let mut m = 0u64;
    let floor: Routine = Box::new(move |iters| {
        let _keep = &floor_dir;
        timed_each(
            iters,
            || {
                m += 1;
                NewSegment::new(format!("segment {m}")).description("benchmark")
            },
            |new| {
                segments.create(&org, new).unwrap();
            },
        )
    });
    Case {
        id: "create/wire_sqlite_file".into(),
        name: "create through the wire adapter (handle) vs direct create, SqliteStore file (target: at most 1.15x the time)".into(),
        unit: "creates",
        ops_per_iter: 1,
        target: Target::RatioAtLeast(1.0 / 1.15),
        library,
        floor,
    }
}
