//! Reads of a full segment ([`Config::size`] members, 1M by default, filled
//! in 10,000-PID batches of random PIDs) beside the same reads of an empty
//! segment, a small ledger, the start of the list, or a 1k-member segment:
//! each read should cost about the same however big the data behind it.

use std::cell::OnceCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use segments_engine::limits::MEMBERS_PAGE_SIZE;
use segments_engine::store::{MemberStart, Page};
use segments_engine::{
    DeathCursor, DeathReport, MemberCursor, MemoryStore, NewSegment, OrgId, PageOptions, SegmentId,
    SegmentStore, Segments, SignalMetadata, SqliteStore,
};
use tempfile::TempDir;

use super::pids::{self, PidForm};
use super::{BATCH, Case, Config, Curve, Entry, Routine, Target, count, fresh_dir};

/// Members per page in the cursor cases.
const PAGE: usize = 1_000;
/// Members of the small segment of the death-signal poll.
const SMALL_SEGMENT: u64 = 1_000;
/// New death records, for members of each segment, that a poll finds.
const NEW_DEATHS: u64 = 100;
/// Members of the segment of the small org.
const SMALL_ORG_MEMBERS: u64 = 10;

/// The fixture: in org `acme`, a full segment (its ledger as long), an
/// empty one and a 1k-member one; in org `small`, one segment of ten,
/// filled in two calls.
/// The death feed holds old records and then [`NEW_DEATHS`] new ones for
/// members of the full segment and as many for the 1k one, interleaved.
struct Big<S> {
    /// Keeps a database directory alive as long as any routine.
    _dir: Option<TempDir>,
    store: S,
    segments: Segments<S>,
    size: u64,
    org: OrgId,
    big: SegmentId,
    empty: SegmentId,
    thousand: SegmentId,
    /// Just before the last [`PAGE`] members of `big`.
    deep: MemberCursor,
    /// A time halfway through the filling of `big`.
    halfway: DateTime<Utc>,
    small_org: OrgId,
    small: SegmentId,
    /// A time halfway through the filling of `small`.
    small_halfway: DateTime<Utc>,
    /// The death feed's end before the new records.
    deaths_from: DeathCursor,
}

fn death(pid: String, n: u64) -> DeathReport {
    DeathReport {
        minerva_pid: pid,
        obituary_id: format!("obit-{n}"),
        date_of_death: "2024-03-01".to_owned(),
        publication_last_update_date: Some("2024-03-04".to_owned()),
        first_observed_at: None,
        signal_metadata: SignalMetadata {
            source: "obituary_database".to_owned(),
            obituary_url: Some(format!("https://obituaries.example/{n}")),
            publication_name: Some("The Example Gazette".to_owned()),
            confidence_score: 0.93,
        },
    }
}

fn build<S: SegmentStore + Clone>(
    store: S,
    dir: Option<TempDir>,
    size: u64,
    label: &str,
) -> Big<S> {
    let started = Instant::now();
    let form = PidForm::Short;
    let segments = Segments::new(store.clone());
    let org = OrgId::new("acme").unwrap();
    let create = |org: &OrgId, name: &str| segments.create(org, NewSegment::new(name)).unwrap().id;
    let big = create(&org, "full");
    let empty = create(&org, "empty");
    let thousand = create(&org, "one thousand");
    let mut halfway = Utc::now();
    for b in 0..size / BATCH {
        segments
            .add_members(&org, big, &pids::batch(form, b * BATCH, BATCH))
            .unwrap();
        if b == size / BATCH / 2 - 1 {
            std::thread::sleep(Duration::from_millis(2));
            halfway = Utc::now();
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    segments
        .add_members(&org, thousand, &pids::batch(form, size, SMALL_SEGMENT))
        .unwrap();
    let small_org = OrgId::new("small").unwrap();
    let small = create(&small_org, "small");
    let half = SMALL_ORG_MEMBERS / 2;
    let first = size + SMALL_SEGMENT;
    segments
        .add_members(&small_org, small, &pids::batch(form, first, half))
        .unwrap();
    std::thread::sleep(Duration::from_millis(2));
    let small_halfway = Utc::now();
    std::thread::sleep(Duration::from_millis(2));
    segments
        .add_members(
            &small_org,
            small,
            &pids::batch(form, first + half, SMALL_ORG_MEMBERS - half),
        )
        .unwrap();

    // Deaths: old ones, then the new ones a poll from `deaths_from` finds,
    // for members spread over each segment.
    let big_member = |j: u64| pids::pid(form, j * (size / (2 * NEW_DEATHS)));
    let small_member = |j: u64| pids::pid(form, size + j * (SMALL_SEGMENT / (2 * NEW_DEATHS)));
    let old: Vec<DeathReport> = (0..NEW_DEATHS)
        .flat_map(|j| {
            [
                death(big_member(2 * j), 2 * j),
                death(small_member(2 * j), 2 * j + 1),
            ]
        })
        .collect();
    let done = segments.ingest_deaths(old).unwrap();
    assert!(done.rejected.is_empty());
    let deaths_from = segments
        .death_signals_since(&org, big, PageOptions::new().limit(10_000))
        .unwrap()
        .next;
    let new: Vec<DeathReport> = (0..NEW_DEATHS)
        .flat_map(|j| {
            let n = 2 * NEW_DEATHS + 2 * j;
            [
                death(big_member(2 * j + 1), n),
                death(small_member(2 * j + 1), n + 1),
            ]
        })
        .collect();
    let done = segments.ingest_deaths(new).unwrap();
    assert_eq!(done.n_inserted, 2 * NEW_DEATHS);

    let deep = store
        .members(
            &org,
            big,
            Page::new(MemberStart::Offset(size - PAGE as u64 - 1), 1),
        )
        .unwrap()
        .members[0]
        .cursor();
    eprintln!(
        "  (built the {label} fixture, a {}-member segment, in {:.1?})",
        count(size),
        started.elapsed()
    );
    Big {
        _dir: dir,
        store,
        segments,
        size,
        org,
        big,
        empty,
        thousand,
        deep,
        halfway,
        small_org,
        small,
        small_halfway,
        deaths_from,
    }
}

/// A [`Big`] built on first use, so that a bench filtered out never pays
/// for it.
struct Fixture<S> {
    cell: OnceCell<Big<S>>,
    make: Box<dyn Fn() -> Big<S>>,
}

impl<S> Fixture<S> {
    fn get(&self) -> &Big<S> {
        self.cell.get_or_init(&self.make)
    }
}

/// One read of a [`Big`] fixture.
type Read<S> = Box<dyn Fn(&Big<S>)>;

/// The page the page-API cases read: page 200 at 1M members (the last
/// one), the last page for smaller sizes.
fn deep_page(size: u64) -> u64 {
    (size / MEMBERS_PAGE_SIZE as u64).min(200)
}

/// Reads of the full segment beside the same reads of an empty segment, a
/// small ledger, the start of the list or a 1k-member segment.
fn cases<S: SegmentStore + Clone + 'static>(
    config: Config,
    make: Box<dyn Fn() -> Big<S>>,
    store_name: &'static str,
    id: &'static str,
) -> Vec<Entry> {
    let size = config.size;
    let n = count(size);
    let fx = Rc::new(Fixture {
        cell: OnceCell::new(),
        make,
    });
    // A routine timing `iters` calls of `read`; the fixture is built before
    // the clock starts.
    let routine = |read: Read<S>| -> Routine {
        let fx = Rc::clone(&fx);
        Box::new(move |iters| {
            let b = fx.get();
            let start = Instant::now();
            for _ in 0..iters {
                read(b);
            }
            start.elapsed()
        })
    };
    let case = |group: &str, name: String, unit: &'static str, target, library, floor| {
        Entry::Rate(Case {
            id: format!("{group}/{id}"),
            name: format!("{name}, {store_name}"),
            unit,
            ops_per_iter: 1,
            target,
            library,
            floor,
        })
    };
    let page = deep_page(size);

    // Page `page` reached by walking: a client's service that served pages
    // 1..page (untimed, once) knows where page `page` starts.
    let walked: Routine = {
        let fx = Rc::clone(&fx);
        let walker: OnceCell<Segments<S>> = OnceCell::new();
        Box::new(move |iters| {
            let b = fx.get();
            let w = walker.get_or_init(|| {
                let w = Segments::new(b.store.clone());
                for p in 1..page {
                    w.members_page(&b.org, b.big, p).unwrap();
                }
                w
            });
            let start = Instant::now();
            for _ in 0..iters {
                let got = w.members_page(&b.org, b.big, page).unwrap();
                assert_eq!(got.items.len(), MEMBERS_PAGE_SIZE);
            }
            start.elapsed()
        })
    };
    let walk_curve = {
        let fx = Rc::clone(&fx);
        Curve {
            id: format!("page_walk/{id}"),
            run: Box::new(move || walk(fx.get(), page, store_name)),
        }
    };

    vec![
        case(
            "get",
            format!("get (current_size): {n}-member vs empty segment"),
            "gets",
            Target::RatioAtLeast(0.5),
            routine(Box::new(|b| {
                assert_eq!(b.segments.get(&b.org, b.big).unwrap().current_size, b.size);
            })),
            routine(Box::new(|b| {
                assert_eq!(b.segments.get(&b.org, b.empty).unwrap().current_size, 0);
            })),
        ),
        case(
            "cursor",
            format!(
                "cursor page of {}: depth {} vs depth 0",
                count(PAGE as u64),
                count(size - PAGE as u64)
            ),
            "pages",
            Target::RatioAtLeast(0.5),
            routine(Box::new(|b| {
                let options = PageOptions::new().after(b.deep.clone()).limit(PAGE);
                let got = b.segments.members(&b.org, b.big, options).unwrap();
                assert_eq!(got.members.len(), PAGE);
            })),
            routine(Box::new(|b| {
                let options = PageOptions::new().limit(PAGE);
                let got = b.segments.members(&b.org, b.big, options).unwrap();
                assert_eq!(got.members.len(), PAGE);
            })),
        ),
        case(
            "size_as_of",
            format!(
                "size_as_of halfway through a {n}-entry ledger vs halfway through a {}-entry ledger",
                SMALL_ORG_MEMBERS + 1
            ),
            "reads",
            Target::RatioAtLeast(0.5),
            routine(Box::new(|b| {
                let got = b.segments.size_as_of(&b.org, b.big, b.halfway).unwrap();
                assert_eq!(got, b.size / 2);
            })),
            routine(Box::new(|b| {
                let got = b
                    .segments
                    .size_as_of(&b.small_org, b.small, b.small_halfway)
                    .unwrap();
                assert_eq!(got, SMALL_ORG_MEMBERS / 2);
            })),
        ),
        case(
            "page_walked",
            format!(
                "page API, {}-member pages: page {page} reached by walking pages 1..{page} in order vs page 1, {n} members",
                count(MEMBERS_PAGE_SIZE as u64)
            ),
            "pages",
            Target::RatioAtLeast(0.5),
            walked,
            routine(Box::new(|b| {
                let got = b.segments.members_page(&b.org, b.big, 1).unwrap();
                assert_eq!(got.items.len(), MEMBERS_PAGE_SIZE);
            })),
        ),
        case(
            "page_cold",
            format!(
                "page API: page {page} asked for first (no walk: counted from the start) vs page 1, {n} members"
            ),
            "pages",
            Target::Report,
            routine(Box::new(move |b| {
                // A service that served no page of this segment yet.
                let cold = Segments::new(b.store.clone());
                let got = cold.members_page(&b.org, b.big, page).unwrap();
                assert_eq!(got.items.len(), MEMBERS_PAGE_SIZE);
            })),
            routine(Box::new(|b| {
                let cold = Segments::new(b.store.clone());
                let got = cold.members_page(&b.org, b.big, 1).unwrap();
                assert_eq!(got.items.len(), MEMBERS_PAGE_SIZE);
            })),
        ),
        case(
            "death_poll",
            format!(
                "death-signal poll (death_signals_since, cursor), {NEW_DEATHS} new deaths each: {n}-member vs {}-member segment",
                count(SMALL_SEGMENT)
            ),
            "polls",
            Target::RatioAtLeast(0.5),
            routine(Box::new(|b| {
                let got = b
                    .segments
                    .death_signals_since(
                        &b.org,
                        b.big,
                        PageOptions::new().after(b.deaths_from).limit(1_000),
                    )
                    .unwrap();
                assert_eq!(got.records.len() as u64, NEW_DEATHS);
            })),
            routine(Box::new(|b| {
                let got = b
                    .segments
                    .death_signals_since(
                        &b.org,
                        b.thousand,
                        PageOptions::new().after(b.deaths_from).limit(1_000),
                    )
                    .unwrap();
                assert_eq!(got.records.len() as u64, NEW_DEATHS);
            })),
        ),
        case(
            "changes_since",
            format!(
                "changes_since, {} entries: after entry {} vs after 0, {n}-entry ledger",
                count(PAGE as u64),
                count(size - 5 * PAGE as u64)
            ),
            "pages",
            Target::Report,
            routine(Box::new(|b| {
                let after = b.size - 5 * PAGE as u64;
                let got = b
                    .segments
                    .changes_since(&b.org, PageOptions::new().after(after).limit(PAGE))
                    .unwrap();
                assert_eq!(got.changes.len(), PAGE);
            })),
            routine(Box::new(|b| {
                let got = b
                    .segments
                    .changes_since(&b.org, PageOptions::new().limit(PAGE))
                    .unwrap();
                assert_eq!(got.changes.len(), PAGE);
            })),
        ),
        Entry::Curve(walk_curve),
    ]
}

/// Times every page of three walks through pages 1..=`last` by a client
/// (a fresh service each walk), and tells the median time of some of them.
fn walk<S: SegmentStore + Clone>(b: &Big<S>, last: u64, store_name: &str) -> String {
    const WALKS: usize = 3;
    let mut per_page: Vec<Vec<Duration>> = vec![Vec::new(); last as usize];
    for _ in 0..WALKS {
        let client = Segments::new(b.store.clone());
        for p in 1..=last {
            let start = Instant::now();
            let got = client.members_page(&b.org, b.big, p).unwrap();
            per_page[p as usize - 1].push(start.elapsed());
            assert_eq!(got.items.len(), MEMBERS_PAGE_SIZE);
        }
    }
    let median = |p: u64| {
        let mut v = per_page[p as usize - 1].clone();
        v.sort();
        v[v.len() / 2]
    };
    let mut shown: Vec<u64> = vec![1, 2, last / 4, last / 2, 3 * last / 4, last - 1, last];
    shown.retain(|&p| p >= 1);
    shown.dedup();
    let steps: Vec<String> = shown
        .iter()
        .map(|&p| format!("p{p} {:.2} ms", median(p).as_secs_f64() * 1e3))
        .collect();
    let total: Duration = per_page.iter().map(|v| v.iter().sum::<Duration>()).sum();
    format!(
        "page walk, {store_name}, {} members, {} walks of pages 1..={last} (median per page): {}; page {last} / page 1 time = {:.2}; whole walk {:.0?} on average",
        count(b.size),
        WALKS,
        steps.join(", "),
        median(last).as_secs_f64() / median(1).as_secs_f64(),
        total / WALKS as u32,
    )
}

/// The reads on a SQLite file (WAL, NORMAL).
pub fn sqlite(config: Config) -> Vec<Entry> {
    let make = Box::new(move || {
        let (dir, path) = fresh_dir("big.db");
        build(
            SqliteStore::open(&path).unwrap(),
            Some(dir),
            config.size,
            "SqliteStore file",
        )
    });
    cases(config, make, "SqliteStore file", "sqlite_file")
}

/// The reads on MemoryStore.
pub fn memory(config: Config) -> Vec<Entry> {
    let make = Box::new(move || build(MemoryStore::new(), None, config.size, "MemoryStore"));
    cases(config, make, "MemoryStore", "memory")
}

/// The reads on PostgresStore, in a fresh schema of the server the
/// PostgreSQL rows use (a throwaway one started for the run, or
/// `SEGMENTS_POSTGRES_URL`'s).
#[cfg(feature = "postgres")]
pub fn postgres(config: Config) -> Vec<Entry> {
    use super::postgres::{fresh_schema, store};
    let make = Box::new(move || {
        let store = store(&fresh_schema("reads"));
        build(store, None, config.size, "PostgresStore")
    });
    cases(config, make, "PostgresStore", "postgres")
}
