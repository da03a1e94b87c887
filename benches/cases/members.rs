//! Member cases: adds in 10,000-PID batches beside their floors, and reads
//! of a 1M-member segment beside the same reads of an empty or shallow one.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use rusqlite::params;
use segments::{
    MemberCursor, MemberOptions, MemoryStore, NewSegment, OrgId, SegmentId, SegmentStore, Segments,
    SqliteStore,
};

use super::{Case, Routine, Target, fresh_db, raw_connection};

/// PIDs per add call.
const BATCH: u64 = 10_000;
/// Members per segment before the add cases start a new segment.
const FULL: u64 = 1_000_000;
/// Members per page in the cursor cases.
const PAGE: usize = 1_000;

/// `count` PIDs that look like real ones (`p-` and 16 hex digits, in no
/// particular order), the `start`-th onwards.
fn pids(start: u64, count: u64) -> Vec<String> {
    (start..start + count)
        .map(|i| {
            // splitmix64: distinct inputs give distinct, scattered outputs.
            let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            format!("p-{:016x}", z ^ (z >> 31))
        })
        .collect()
}

/// Adds batches of new PIDs to a segment of `segments`, starting a new
/// segment (untimed) every [`FULL`] members; only the add calls are timed.
fn add_routine<S: SegmentStore + 'static>(
    segments: Segments<S>,
    fresh: impl Fn(&Segments<S>) -> Segments<S> + 'static,
) -> Routine {
    let org = OrgId::new("acme").unwrap();
    let mut segments = segments;
    let mut n_segments = 0u64;
    let mut segment: Option<SegmentId> = None;
    let (mut in_segment, mut next) = (0, 0);
    Box::new(move |iters| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            if segment.is_none() || in_segment == FULL {
                if segment.is_some() {
                    segments = fresh(&segments);
                }
                n_segments += 1;
                let name = format!("bench {n_segments}");
                segment = Some(segments.create(&org, NewSegment::new(name)).unwrap().id);
                in_segment = 0;
            }
            let batch = pids(next, BATCH);
            next += BATCH;
            let start = Instant::now();
            let out = segments
                .add_members(&org, segment.unwrap(), &batch)
                .unwrap();
            total += start.elapsed();
            assert_eq!(out.n_added, BATCH);
            in_segment += BATCH;
        }
        total
    })
}

/// `add_members` on SQLite (file, WAL, NORMAL) vs raw
/// `INSERT … ON CONFLICT DO UPDATE` of the same rows, one transaction per
/// batch, into the same table.
pub fn add_sqlite() -> Case {
    let (lib_dir, lib_path) = fresh_db("library.db");
    let segments = Segments::new(SqliteStore::open(&lib_path).unwrap());
    let mut add = add_routine(segments, |s| Segments::new(s.store().clone()));
    let library: Routine = Box::new(move |iters| {
        let _keep = &lib_dir;
        add(iters)
    });

    let (floor_dir, floor_path) = fresh_db("floor.db");
    let setup = Segments::new(SqliteStore::open(&floor_path).unwrap());
    let org = OrgId::new("acme").unwrap();
    let conn = raw_connection(&floor_path);
    let seq_of = move |n: u64| -> i64 {
        let id = setup
            .create(&org, NewSegment::new(format!("floor {n}")))
            .unwrap()
            .id;
        conn_seq(&setup, id)
    };
    let mut n_segments = 1;
    let mut seq = seq_of(n_segments);
    let (mut in_segment, mut next) = (0, 0);
    let floor: Routine = Box::new(move |iters| {
        let _keep = &floor_dir;
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            if in_segment == FULL {
                n_segments += 1;
                seq = seq_of(n_segments);
                in_segment = 0;
            }
            let batch = pids(next, BATCH);
            next += BATCH;
            let now = chrono::Utc::now().timestamp_micros();
            let start = Instant::now();
            let tx = conn.unchecked_transaction().unwrap();
            {
                let mut upsert = tx
                    .prepare_cached(
                        "INSERT INTO segment_memberships (segment, pid, first_added_at, last_added_at)
                         VALUES (?1, ?2, ?3, ?3)
                         ON CONFLICT (segment, pid) DO UPDATE SET last_added_at = excluded.last_added_at",
                    )
                    .unwrap();
                for pid in &batch {
                    upsert.execute(params![seq, pid, now]).unwrap();
                }
            }
            tx.commit().unwrap();
            total += start.elapsed();
            in_segment += BATCH;
        }
        total
    });
    Case {
        id: "add_members/sqlite_file".into(),
        name: "add_members (with its ledger), 10k-PID batches up to 1M members, SqliteStore file vs raw INSERT … ON CONFLICT without a ledger, one transaction".into(),
        unit: "PIDs",
        ops_per_iter: BATCH,
        target: Target::RatioAtLeast(0.6),
        library,
        floor,
    }
}

/// The row id of a segment, for floors that write segment_memberships directly.
fn conn_seq(segments: &Segments<SqliteStore>, id: SegmentId) -> i64 {
    let conn = raw_connection(segments.store().path().unwrap());
    conn.query_row(
        "SELECT seq FROM segments WHERE id = ?1",
        [id.as_bytes()],
        |r| r.get(0),
    )
    .unwrap()
}

/// `add_members` on MemoryStore vs inserting the same PIDs into a bare
/// `HashMap` (PID → first and last added time), with the hasher and the
/// inline key type the store itself uses (foldhash, `SmolStr`): the least
/// work that remembers a member.
///
/// One iteration fills an empty segment (or map) to 1M members in 10,000-PID
/// batches, and only the add calls are timed: a figure covers whole fills,
/// so it does not depend on where a timing window falls among the table
/// growths of one.
pub fn add_memory() -> Case {
    let batches: std::rc::Rc<Vec<Vec<String>>> =
        std::rc::Rc::new((0..FULL / BATCH).map(|b| pids(b * BATCH, BATCH)).collect());
    let org = OrgId::new("acme").unwrap();
    let mine = batches.clone();
    let library: Routine = Box::new(move |iters| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let segments = Segments::new(MemoryStore::new());
            let id = segments.create(&org, NewSegment::new("fill")).unwrap().id;
            for batch in mine.iter() {
                let start = Instant::now();
                let out = segments.add_members(&org, id, batch).unwrap();
                total += start.elapsed();
                assert_eq!(out.n_added, BATCH);
            }
        }
        total
    });
    let floor: Routine = Box::new(move |iters| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let mut map: foldhash::HashMap<smol_str::SmolStr, (i64, i64)> = Default::default();
            for batch in batches.iter() {
                let now = chrono::Utc::now().timestamp_micros();
                let start = Instant::now();
                for pid in batch {
                    map.entry(smol_str::SmolStr::new(pid))
                        .or_insert((now, now))
                        .1 = now;
                }
                total += start.elapsed();
            }
            assert_eq!(map.len() as u64, FULL);
        }
        total
    });
    Case {
        id: "add_members/memory".into(),
        name: "add_members (with its ledger), fills of an empty segment to 1M members in 10k-PID batches, MemoryStore vs bare HashMap insert (foldhash, inline keys)".into(),
        unit: "PIDs",
        ops_per_iter: FULL,
        target: Target::RateAtLeast(5e6),
        library,
        floor,
    }
}

/// A 1M-member segment (so a 1M-entry ledger) and an empty one in org
/// `acme`; a cursor near the end of the big one; a time halfway through its
/// filling; and org `small`, whose ledger holds a dozen entries.
struct Big<S> {
    /// Keeps a database directory alive as long as any routine.
    _dir: Option<tempfile::TempDir>,
    segments: Segments<S>,
    org: OrgId,
    big: SegmentId,
    empty: SegmentId,
    deep: MemberCursor,
    halfway: DateTime<Utc>,
    small_org: OrgId,
    small: SegmentId,
}

fn build_big<S: SegmentStore + Clone>(store: S, dir: Option<tempfile::TempDir>) -> Big<S> {
    let segments = Segments::new(store);
    let org = OrgId::new("acme").unwrap();
    let big = segments
        .create(&org, NewSegment::new("one million"))
        .unwrap()
        .id;
    let empty = segments.create(&org, NewSegment::new("empty")).unwrap().id;
    let mut halfway = Utc::now();
    for batch in 0..FULL / BATCH {
        segments
            .add_members(&org, big, &pids(batch * BATCH, BATCH))
            .unwrap();
        if batch == FULL / BATCH / 2 - 1 {
            std::thread::sleep(Duration::from_millis(2));
            halfway = Utc::now();
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    // Page 200 starts at member 995,000.
    let deep = segments.members_page(&org, big, 200).unwrap().items[0].cursor();
    let small_org = OrgId::new("small").unwrap();
    let small = segments
        .create(&small_org, NewSegment::new("small"))
        .unwrap()
        .id;
    segments
        .add_members(&small_org, small, &pids(0, 10))
        .unwrap();
    Big {
        _dir: dir,
        segments,
        org,
        big,
        empty,
        deep,
        halfway,
        small_org,
        small,
    }
}

/// One read of a [`Big`] fixture.
type Read<S> = Box<dyn Fn(&Big<S>)>;

/// Reads of the 1M-member segment (and its 1M-entry ledger) beside the same
/// reads of an empty segment, a small ledger, or the start.
fn big_cases<S: SegmentStore + Clone + 'static>(
    store: S,
    dir: Option<tempfile::TempDir>,
    label: &str,
) -> Vec<Case> {
    let b = std::sync::Arc::new(build_big(store, dir));
    let routine = |f: Read<S>| -> Routine {
        let b = std::sync::Arc::clone(&b);
        Box::new(move |iters| {
            let start = Instant::now();
            for _ in 0..iters {
                f(&b);
            }
            start.elapsed()
        })
    };
    let (store_name, id) = match label {
        "sqlite" => ("SqliteStore file", "sqlite_file"),
        _ => ("MemoryStore", "memory"),
    };
    let case = |group: &str, name: &str, unit: &'static str, target, library, floor| Case {
        id: format!("{group}/{id}"),
        name: format!("{name}, {store_name}"),
        unit,
        ops_per_iter: 1,
        target,
        library,
        floor,
    };
    vec![
        case(
            "get",
            "get (current_size): 1M-member vs empty segment",
            "gets",
            Target::RatioAtLeast(0.5),
            routine(Box::new(|b| {
                assert_eq!(b.segments.get(&b.org, b.big).unwrap().current_size, FULL);
            })),
            routine(Box::new(|b| {
                assert_eq!(b.segments.get(&b.org, b.empty).unwrap().current_size, 0);
            })),
        ),
        case(
            "cursor",
            "cursor page of 1,000: depth 995k vs depth 0",
            "pages",
            Target::RatioAtLeast(0.5),
            routine(Box::new(|b| {
                let page = MemberOptions::new().after(b.deep.clone()).limit(PAGE);
                let got = b.segments.members(&b.org, b.big, page).unwrap();
                assert_eq!(got.members.len(), PAGE);
            })),
            routine(Box::new(|b| {
                let page = MemberOptions::new().limit(PAGE);
                let got = b.segments.members(&b.org, b.big, page).unwrap();
                assert_eq!(got.members.len(), PAGE);
            })),
        ),
        case(
            "page200",
            "documented page API: page 200 (1M members) vs page 1",
            "pages",
            Target::Report,
            routine(Box::new(|b| {
                let page = b.segments.members_page(&b.org, b.big, 200).unwrap();
                assert_eq!(page.items.len(), 5_000);
            })),
            routine(Box::new(|b| {
                let page = b.segments.members_page(&b.org, b.big, 1).unwrap();
                assert_eq!(page.items.len(), 5_000);
            })),
        ),
        case(
            "size_as_of",
            "size_as_of halfway through a 1M-entry ledger vs a 12-entry ledger",
            "reads",
            Target::RatioAtLeast(0.5),
            routine(Box::new(|b| {
                let size = b.segments.size_as_of(&b.org, b.big, b.halfway).unwrap();
                assert_eq!(size, FULL / 2);
            })),
            routine(Box::new(|b| {
                let size = b
                    .segments
                    .size_as_of(&b.small_org, b.small, Utc::now())
                    .unwrap();
                assert_eq!(size, 10);
            })),
        ),
        case(
            "changes_since",
            "changes_since, 1,000 entries: after entry 995k vs after 0 of a 1M-entry ledger",
            "pages",
            Target::RatioAtLeast(0.5),
            routine(Box::new(|b| {
                let page = b.segments.changes_since(&b.org, 995_000, PAGE).unwrap();
                assert_eq!(page.changes.len(), PAGE);
            })),
            routine(Box::new(|b| {
                let page = b.segments.changes_since(&b.org, 0, PAGE).unwrap();
                assert_eq!(page.changes.len(), PAGE);
            })),
        ),
    ]
}

/// The 1M-member reads on a SQLite file (WAL, NORMAL).
pub fn big_sqlite() -> Vec<Case> {
    let (dir, path) = fresh_db("big.db");
    big_cases(SqliteStore::open(&path).unwrap(), Some(dir), "sqlite")
}

/// The 1M-member reads on MemoryStore.
pub fn big_memory() -> Vec<Case> {
    big_cases(MemoryStore::new(), None, "memory")
}
