//! `create`: SQLite beside a raw transaction doing the same writes, memory
//! beside a bare map.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use rusqlite::{OptionalExtension, params};
use segments_engine::{MemoryStore, NewSegment, OrgId, Segments, SqliteStore};

use super::{Case, Routine, Target, fresh_db, raw_connection, timed};

/// `create` of new names on a fresh SQLite file (WAL, synchronous=NORMAL).
fn library_creates_on_a_file() -> Routine {
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
    library
}

/// The org every create case writes to.
const ORG: &str = "acme";

/// `create` on a SQLite file (WAL, synchronous=NORMAL) vs the same work in
/// one raw rusqlite transaction on a file with the crate's schema: `BEGIN
/// IMMEDIATE`, read the org's head row, insert the segment row, insert its
/// `Created` ledger row, upsert the head row, `COMMIT`; with a fresh UUID
/// v7 and the clock, as a create takes them.
pub fn sqlite() -> Case {
    let library = library_creates_on_a_file();

    let (floor_dir, floor_path) = fresh_db("floor.db");
    let conn = raw_connection(&floor_path);
    let mut m = 0u64;
    let floor: Routine = Box::new(move |iters| {
        let _keep = &floor_dir;
        timed(iters, || {
            m += 1;
            let name = format!("segment {m}");
            let id = uuid::Uuid::now_v7();
            let now = chrono::Utc::now().timestamp_micros();
            conn.prepare_cached("BEGIN IMMEDIATE")
                .unwrap()
                .execute([])
                .unwrap();
            let (last_seq, last_at): (i64, i64) = conn
                .prepare_cached("SELECT last_seq, last_at FROM segment_heads WHERE org = ?1")
                .unwrap()
                .query_row([ORG], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .unwrap()
                .unwrap_or((0, i64::MIN));
            let (seq, at) = (last_seq + 1, now.max(last_at));
            conn.prepare_cached(
                "INSERT INTO segments (id, org, name, name_key, description, source, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            )
            .unwrap()
            .execute(params![id.as_bytes(), ORG, name, name, None::<String>, "api", at])
            .unwrap();
            conn.prepare_cached(
                "INSERT INTO segment_ledger (org, seq, at, request_id, segment, kind, name, description)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .unwrap()
            .execute(params![ORG, seq, at, None::<String>, id.as_bytes(), 1, name, None::<String>])
            .unwrap();
            conn.prepare_cached(
                "INSERT INTO segment_heads (org, last_seq, last_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (org) DO UPDATE SET last_seq = excluded.last_seq, last_at = excluded.last_at",
            )
            .unwrap()
            .execute(params![ORG, seq, at])
            .unwrap();
            conn.prepare_cached("COMMIT").unwrap().execute([]).unwrap();
        })
    });
    Case {
        id: "create/sqlite_file".into(),
        name: "create, SqliteStore file (WAL, NORMAL) vs raw tx (head read, segment row, ledger row, head upsert)".into(),
        unit: "creates",
        ops_per_iter: 1,
        target: Target::RatioAtLeast(0.8),
        library,
        floor,
    }
}

/// How many segments one iteration of the memory case creates, into an
/// empty store: an iteration is a whole fill, so a figure does not depend on
/// where a timing window falls among the table growths of a fill.
pub const MEMORY_STORE_FILL: u64 = 100_000;

/// Times `iters` fills of a fresh `T` by `MEMORY_STORE_FILL` calls of
/// `op(i)`; building and dropping each `T` are not timed.
fn timed_fills<T>(iters: u64, fresh: impl Fn() -> T, mut op: impl FnMut(&T, u64)) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let state = fresh();
        let start = Instant::now();
        for i in 0..MEMORY_STORE_FILL {
            op(&state, i);
        }
        total += start.elapsed();
        drop(state);
    }
    total
}

/// `create` on MemoryStore vs the raw work with no library: a UUID v7, the
/// time, and the row inserted into a bare `RwLock<HashMap>` keyed by (org,
/// name). One iteration fills an empty store with 100,000 segments.
pub fn memory() -> Case {
    let org = OrgId::new("acme").unwrap();
    let library: Routine = Box::new(move |iters| {
        timed_fills(
            iters,
            || Segments::new(MemoryStore::new()),
            |s, i| {
                s.create(&org, NewSegment::new(format!("segment {i}")))
                    .unwrap();
            },
        )
    });

    struct Row {
        id: uuid::Uuid,
        name: String,
        source: String,
        created_at: chrono::DateTime<chrono::Utc>,
    }
    type Map = RwLock<HashMap<(String, String), Row>>;
    let floor: Routine = Box::new(move |iters| {
        timed_fills(
            iters,
            || Map::new(HashMap::new()),
            |map, i| {
                // The raw work of a create: an id, a time, the row.
                let name = format!("segment {i}");
                let row = Row {
                    id: uuid::Uuid::now_v7(),
                    name: name.clone(),
                    source: "api".to_owned(),
                    created_at: chrono::Utc::now(),
                };
                map.write().unwrap().insert(("acme".to_owned(), name), row);
            },
        )
    });
    Case {
        id: "create/memory".into(),
        name: "create, MemoryStore (fills of an empty store to 100k) vs UUID v7 + clock + bare HashMap insert".into(),
        unit: "creates",
        ops_per_iter: MEMORY_STORE_FILL,
        target: Target::RatioAtLeast(0.7),
        library,
        floor,
    }
}
