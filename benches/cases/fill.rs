//! Fills: `add_members` in [`BATCH`]-PID batches taking one new segment from
//! empty to [`Config::size`] members, beside the same PIDs written by the
//! floor. Every fill starts from a fresh database (or map), built untimed;
//! only the calls that write a batch are timed, each on its own, so that
//! the report can print the fill's curve.

use std::time::{Duration, Instant};

use rusqlite::params;
use segments_engine::{
    MemoryStore, NewSegment, OrgId, SegmentId, SegmentStore, Segments, SqliteStore,
};

use super::pids::{self, PidForm};
use super::{BATCH, Config, Fill, FillRoutine, Target, count, fresh_dir, raw_connection};

/// One library fill: `size / BATCH` timed `add_members` calls on a new
/// segment of a fresh store.
fn library_fill<S: SegmentStore>(
    size: u64,
    form: PidForm,
    segments: &Segments<S>,
    org: &OrgId,
    id: SegmentId,
) -> Vec<Duration> {
    let mut times = Vec::with_capacity((size / BATCH) as usize);
    for b in 0..size / BATCH {
        let batch = pids::batch(form, b * BATCH, BATCH);
        let start = Instant::now();
        let out = segments.add_members(org, id, &batch).unwrap();
        times.push(start.elapsed());
        assert_eq!(out.n_added, BATCH);
    }
    assert_eq!(segments.get(org, id).unwrap().current_size, size);
    times
}

/// `add_members` on a SQLite file (WAL, NORMAL) vs raw
/// `INSERT … ON CONFLICT (segment, pid) DO UPDATE` of the same PIDs into a
/// plain `(segment, pid, first_added_at, last_added_at)` table, one
/// transaction (`BEGIN IMMEDIATE … COMMIT`) per batch, on a file with the
/// same PRAGMAs.
pub fn sqlite(config: Config, form: PidForm) -> Fill {
    let size = config.size;
    let library: FillRoutine = Box::new(move || {
        let (dir, path) = fresh_dir("library.db");
        let segments = Segments::new(SqliteStore::open(&path).unwrap());
        let org = OrgId::new("acme").unwrap();
        let id = segments.create(&org, NewSegment::new("fill")).unwrap().id;
        let times = library_fill(size, form, &segments, &org, id);
        drop(segments);
        drop(dir);
        times
    });
    let floor: FillRoutine = Box::new(move || {
        let (dir, path) = fresh_dir("floor.db");
        let conn = raw_connection(&path);
        conn.execute_batch(
            "CREATE TABLE memberships (
                segment        INTEGER,
                pid            TEXT,
                first_added_at INTEGER,
                last_added_at  INTEGER,
                PRIMARY KEY (segment, pid)
            ) WITHOUT ROWID",
        )
        .unwrap();
        let mut times = Vec::with_capacity((size / BATCH) as usize);
        for b in 0..size / BATCH {
            let batch = pids::batch(form, b * BATCH, BATCH);
            let start = Instant::now();
            let now = chrono::Utc::now().timestamp_micros();
            conn.prepare_cached("BEGIN IMMEDIATE")
                .unwrap()
                .execute([])
                .unwrap();
            {
                let mut upsert = conn
                    .prepare_cached(
                        "INSERT INTO memberships (segment, pid, first_added_at, last_added_at)
                         VALUES (?1, ?2, ?3, ?3)
                         ON CONFLICT (segment, pid) DO UPDATE SET last_added_at = excluded.last_added_at",
                    )
                    .unwrap();
                for pid in &batch {
                    upsert.execute(params![1, pid, now]).unwrap();
                }
            }
            conn.prepare_cached("COMMIT").unwrap().execute([]).unwrap();
            times.push(start.elapsed());
        }
        let n: i64 = conn
            .query_row("SELECT count(*) FROM memberships", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n as u64, size);
        drop(conn);
        drop(dir);
        times
    });
    Fill {
        id: format!("add_members/sqlite_file/{}", form.tag()),
        name: format!(
            "add_members fill 0 -> {}, {}-PID batches, SqliteStore file vs raw INSERT … ON CONFLICT, 1 tx/batch, {}",
            count(size),
            count(BATCH),
            form.describe()
        ),
        size,
        fills: 2,
        whole: Target::RatioAtLeast(0.5),
        last: Target::RatioAtLeast(0.5),
        library,
        floor,
        also: Vec::new(),
    }
}

/// `add_members` on MemoryStore vs inserting the same PIDs into a bare
/// `HashMap` (PID → first and last added time) growing from empty, with
/// the hasher and the inline key type the store itself uses (foldhash,
/// `SmolStr`): the least work that remembers a member.
pub fn memory(config: Config, form: PidForm) -> Fill {
    let size = config.size;
    let library: FillRoutine = Box::new(move || {
        let segments = Segments::new(MemoryStore::new());
        let org = OrgId::new("acme").unwrap();
        let id = segments.create(&org, NewSegment::new("fill")).unwrap().id;
        let times = library_fill(size, form, &segments, &org, id);
        drop(segments);
        times
    });
    let floor: FillRoutine = Box::new(move || {
        let mut map: foldhash::HashMap<smol_str::SmolStr, (i64, i64)> = Default::default();
        let mut times = Vec::with_capacity((size / BATCH) as usize);
        for b in 0..size / BATCH {
            let batch = pids::batch(form, b * BATCH, BATCH);
            let start = Instant::now();
            let now = chrono::Utc::now().timestamp_micros();
            for pid in &batch {
                map.entry(smol_str::SmolStr::new(pid))
                    .or_insert((now, now))
                    .1 = now;
            }
            times.push(start.elapsed());
        }
        assert_eq!(map.len() as u64, size);
        drop(map);
        times
    });
    Fill {
        id: format!("add_members/memory/{}", form.tag()),
        name: format!(
            "add_members fill 0 -> {}, {}-PID batches, MemoryStore vs bare HashMap insert (foldhash, SmolStr keys), {}",
            count(size),
            count(BATCH),
            form.describe()
        ),
        size,
        // A memory fill of 1M takes about a second.
        fills: 4,
        // SPEC §8: reported; 0.3 only catches accidents (MemoryStore is a
        // plain reference backend, not a race against a HashMap).
        whole: Target::RatioAtLeast(0.3),
        last: Target::Report,
        library,
        floor,
        also: Vec::new(),
    }
}
