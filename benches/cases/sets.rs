//! Set operations on big sources: `create_from` of `A ∪ B`, `A ∩ B` and
//! `A − B`, and `add_from` of `A − B` into an empty segment, where A and B
//! hold [`Config::size`] random PIDs each (1M by default) and share half of
//! them (so `A ∪ B` has 1.5 × size members, `A ∩ B` and `A − B` half a
//! size). Beside each, its floor: the same set operation with no library
//! around it, writing its result the plainest way (rows of a plain
//! `(segment, pid)` table in one transaction, or a new `BTreeSet`), on the
//! same engine and durability settings.
//!
//! One iteration is one whole operation: a new segment (or new rows, a new
//! set) holding the result. The sources are filled once, untimed, when a
//! case first runs (`add_members` in [`BATCH`]-PID calls on the library's
//! side; the floor's own table or sets get the same PIDs), and every
//! operation starts from them as they were filled: on SQLite each side's
//! file is copied (and synced) before each operation, untimed; elsewhere
//! the result is deleted after it, untimed (the library's segment with
//! [`Segments::delete`], whose ledger entries stay; on PostgreSQL both
//! sides then vacuum). Every result is checked: the new segment's
//! `current_size`, the rows inserted, the set's length.
//!
//! Each operation takes seconds at 1M on SQLite and PostgreSQL, so
//! criterion takes ten samples of one operation a side
//! (`cargo bench --bench segments -- sets/`). The report also prints, for
//! SQLite and MemoryStore, how the union's cost grows with the sources'
//! size (a tenth, a quarter, half of the size, and all of it).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use rusqlite::params;
use segments_engine::{
    MemoryStore, NewSegment, OrgId, SegmentId, SegmentStore, Segments, SetExpr, SqliteStore,
};
use smol_str::SmolStr;
use tempfile::TempDir;

#[cfg(feature = "postgres")]
use super::postgres::server;

use super::pids::{self, PidForm};
use super::{BATCH, Case, Config, Curve, Entry, Routine, Target, count, fresh_dir, raw_connection};

/// The PIDs of the sources: A is PIDs `0..n`, B is PIDs `n/2..3n/2`.
const FORM: PidForm = PidForm::Short;

/// A MemoryStore fixture is rebuilt (untimed) once the operations have
/// written this many times its sources' size: its ledger keeps an entry
/// per member written, and would otherwise grow by gigabytes over a run.
const MEMORY_WEAR: u64 = 8;

/// Runs of each side at each size of a curve.
const CURVE_RUNS: usize = 3;

/// The set operations the rows measure.
#[derive(Clone, Copy, Debug)]
enum Op {
    Union,
    Intersect,
    Minus,
}

impl Op {
    fn tag(self) -> &'static str {
        match self {
            Op::Union => "union",
            Op::Intersect => "intersect",
            Op::Minus => "minus",
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Op::Union => "A ∪ B",
            Op::Intersect => "A ∩ B",
            Op::Minus => "A − B",
        }
    }

    /// The SQL compound operator.
    fn sql(self) -> &'static str {
        match self {
            Op::Union => "UNION",
            Op::Intersect => "INTERSECT",
            Op::Minus => "EXCEPT",
        }
    }

    fn expr(self, a: SegmentId, b: SegmentId) -> SetExpr {
        let (a, b) = (SetExpr::segment(a), SetExpr::segment(b));
        match self {
            Op::Union => a.union(b),
            Op::Intersect => a.intersect(b),
            Op::Minus => a.minus(b),
        }
    }

    /// Members of the result when A and B hold `n` each and share `n / 2`.
    fn expected(self, n: u64) -> u64 {
        match self {
            Op::Union => n + n / 2,
            Op::Intersect | Op::Minus => n / 2,
        }
    }
}

/// The PIDs of source A (`b = false`) or B, in calls of at most [`BATCH`].
fn source(n: u64, b: bool) -> impl Iterator<Item = Vec<String>> {
    let first = if b { n / 2 } else { 0 };
    (0..n)
        .step_by(BATCH as usize)
        .map(move |s| pids::batch(FORM, first + s, BATCH.min(n - s)))
}

/// A fixture built on first use and rebuilt after [`Fixture::retire`], so
/// that a case filtered out never pays for it.
struct Fixture<T> {
    slot: RefCell<Option<T>>,
    make: Box<dyn Fn() -> T>,
}

impl<T> Fixture<T> {
    fn new(make: impl Fn() -> T + 'static) -> Rc<Self> {
        Rc::new(Self {
            slot: RefCell::new(None),
            make: Box::new(make),
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut slot = self.slot.borrow_mut();
        f(slot.get_or_insert_with(&self.make))
    }

    /// Drops the fixture if `worn`: the next use builds a fresh one.
    fn retire(&self, worn: impl FnOnce(&T) -> bool) {
        let mut slot = self.slot.borrow_mut();
        if slot.as_ref().is_some_and(worn) {
            *slot = None;
        }
    }
}

/// Fills sources A and B of `n` members each in org `acme`, with
/// `add_members` in [`BATCH`]-PID calls.
fn fill_sources<S: SegmentStore>(
    segments: &Segments<S>,
    org: &OrgId,
    n: u64,
    label: &str,
) -> (SegmentId, SegmentId) {
    let started = Instant::now();
    let fill = |name: &str, b: bool| {
        let id = segments.create(org, NewSegment::new(name)).unwrap().id;
        for batch in source(n, b) {
            segments.add_members(org, id, &batch).unwrap();
        }
        assert_eq!(segments.get(org, id).unwrap().current_size, n);
        id
    };
    let sources = (fill("A", false), fill("B", true));
    eprintln!(
        "  (built {label} sources A and B of {} members each in {:.1?})",
        count(n),
        started.elapsed()
    );
    sources
}

/// The library's side: sources A and B in org `acme` of a store.
struct Lib<S> {
    segments: Segments<S>,
    org: OrgId,
    a: SegmentId,
    b: SegmentId,
    /// Members of each source.
    n: u64,
    /// Segments made so far (for their names).
    made: u64,
    /// Members written by the operations so far.
    written: u64,
    /// A store holding the sources as filled, for each operation (a new
    /// copy of a file). Without it, each result is deleted instead.
    fresh: Option<Box<dyn Fn() -> Segments<S>>>,
    /// Run (untimed) after each result is deleted.
    tidy: Option<Box<dyn FnMut()>>,
    /// What must outlive the store (a database directory, a schema).
    _keep: Option<Box<dyn Any>>,
}

impl<S: SegmentStore> Lib<S> {
    /// Sources filled in `store`.
    fn build(store: S, n: u64, label: &str) -> Self {
        let segments = Segments::new(store);
        let org = OrgId::new("acme").unwrap();
        let (a, b) = fill_sources(&segments, &org, n, label);
        Self {
            segments,
            org,
            a,
            b,
            n,
            made: 0,
            written: 0,
            fresh: None,
            tidy: None,
            _keep: None,
        }
    }

    /// Makes a new segment's name.
    fn name(&mut self, what: &str) -> NewSegment {
        self.made += 1;
        NewSegment::new(format!("{what} {}", self.made))
    }

    /// Before an operation: a fresh store, if there is a way to get one.
    fn renew(&mut self) {
        if let Some(fresh) = &self.fresh {
            self.segments = fresh();
        }
    }

    /// After an operation: deletes its result, unless the next one gets a
    /// fresh store.
    fn discard(&mut self, id: SegmentId, members: u64) {
        if self.fresh.is_none() {
            self.segments.delete(&self.org, id).unwrap();
            if let Some(tidy) = &mut self.tidy {
                tidy();
            }
        }
        self.written += members;
    }

    /// One timed `create_from` of `op`; checks the new segment's size.
    fn create_from(&mut self, op: Op) -> Duration {
        self.renew();
        let new = self.name(op.tag());
        let expr = op.expr(self.a, self.b);
        let start = Instant::now();
        let made = self.segments.create_from(&self.org, new, &expr).unwrap();
        let took = start.elapsed();
        let expected = op.expected(self.n);
        assert_eq!(made.current_size, expected, "{} members", op.symbol());
        self.discard(made.id, expected);
        took
    }

    /// One timed `add_from` of `op` into a new empty segment (created
    /// untimed); checks the outcome.
    fn add_from(&mut self, op: Op) -> Duration {
        self.renew();
        let new = self.name("target");
        let target = self.segments.create(&self.org, new).unwrap().id;
        let expr = op.expr(self.a, self.b);
        let start = Instant::now();
        let out = self.segments.add_from(&self.org, target, &expr).unwrap();
        let took = start.elapsed();
        let expected = op.expected(self.n);
        assert_eq!((out.n_added, out.new_current_size), (expected, expected));
        let size = self.segments.get(&self.org, target).unwrap().current_size;
        assert_eq!(size, expected, "{} members", op.symbol());
        self.discard(target, expected);
        took
    }
}

/// A database file written once, copied for every operation so that each
/// starts from the same sources. At most two copies are kept: the one in
/// use and the one before it (whose connections may still be closing).
struct Template {
    dir: TempDir,
    path: PathBuf,
    copies: Cell<u64>,
}

impl Template {
    /// The template at `path`, once everything that wrote it is closed:
    /// checkpointed, so that the file alone holds it all.
    fn seal(dir: TempDir, path: PathBuf) -> Self {
        let conn = raw_connection(&path);
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap();
        drop(conn);
        Self {
            dir,
            path,
            copies: Cell::new(0),
        }
    }

    /// A new copy of the template, synced to disk (so that no write-back
    /// of it lands in a timed commit); removes the copy before last.
    fn copy(&self) -> PathBuf {
        let k = self.copies.get() + 1;
        self.copies.set(k);
        let name = |k: u64, suffix: &str| self.dir.path().join(format!("copy-{k}.db{suffix}"));
        if k > 2 {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(name(k - 2, suffix));
            }
        }
        let to = name(k, "");
        std::fs::copy(&self.path, &to).unwrap();
        std::fs::File::open(&to).unwrap().sync_all().unwrap();
        to
    }
}

/// The floor's side: the same sources, and the same operation with no
/// library around it.
trait Floor {
    /// One timed operation writing its result; checks the result's size.
    fn run(&mut self, op: Op) -> Duration;
}

/// Raw rusqlite on a file with the store's PRAGMAs: a plain
/// `members (segment, pid)` table keyed by both (`WITHOUT ROWID`, as the
/// fill's floor), A as segment 1 and B as segment 2; each operation on a
/// fresh copy of the file, writing segment 3.
struct RawSqlite {
    template: Template,
    n: u64,
}

impl RawSqlite {
    fn build(n: u64) -> Self {
        let started = Instant::now();
        let (dir, path) = fresh_dir("floor.db");
        let conn = raw_connection(&path);
        conn.execute_batch(
            "CREATE TABLE members (
                segment INTEGER,
                pid     TEXT,
                PRIMARY KEY (segment, pid)
            ) WITHOUT ROWID",
        )
        .unwrap();
        for (segment, b) in [(1, false), (2, true)] {
            for batch in source(n, b) {
                let tx = conn.unchecked_transaction().unwrap();
                {
                    let mut insert = tx
                        .prepare_cached("INSERT INTO members (segment, pid) VALUES (?1, ?2)")
                        .unwrap();
                    for pid in &batch {
                        insert.execute(params![segment, pid]).unwrap();
                    }
                }
                tx.commit().unwrap();
            }
        }
        drop(conn);
        eprintln!(
            "  (built the raw SQLite sources of {} rows each in {:.1?})",
            count(n),
            started.elapsed()
        );
        Self {
            template: Template::seal(dir, path),
            n,
        }
    }
}

impl Floor for RawSqlite {
    fn run(&mut self, op: Op) -> Duration {
        let conn = raw_connection(&self.template.copy());
        let sql = format!(
            "INSERT INTO members (segment, pid) SELECT 3, pid FROM (
                 SELECT pid FROM members WHERE segment = 1
                 {}
                 SELECT pid FROM members WHERE segment = 2
             )",
            op.sql()
        );
        let start = Instant::now();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let inserted = conn.execute(&sql, []).unwrap();
        conn.execute_batch("COMMIT").unwrap();
        let took = start.elapsed();
        assert_eq!(inserted as u64, op.expected(self.n), "{} rows", op.symbol());
        took
    }
}

/// Two `BTreeSet`s of the PID strings (`SmolStr`, the store's own key
/// type); an operation walks them together and collects a new set.
struct RawSets {
    a: BTreeSet<SmolStr>,
    b: BTreeSet<SmolStr>,
    n: u64,
}

impl RawSets {
    fn build(n: u64) -> Self {
        let set = |b| source(n, b).flatten().map(SmolStr::from).collect();
        Self {
            a: set(false),
            b: set(true),
            n,
        }
    }
}

impl Floor for RawSets {
    fn run(&mut self, op: Op) -> Duration {
        let start = Instant::now();
        let out: BTreeSet<SmolStr> = match op {
            Op::Union => self.a.union(&self.b).cloned().collect(),
            Op::Intersect => self.a.intersection(&self.b).cloned().collect(),
            Op::Minus => self.a.difference(&self.b).cloned().collect(),
        };
        let took = start.elapsed();
        assert_eq!(
            out.len() as u64,
            op.expected(self.n),
            "{} members",
            op.symbol()
        );
        drop(out);
        took
    }
}

/// What a backend's cases are made from.
struct Backend<S, F> {
    /// The library's sources for `n` members each.
    lib: fn(u64) -> Lib<S>,
    /// The floor's sources for `n` members each.
    floor: fn(u64) -> F,
    /// Rebuild the library's fixture once it wrote this many times its
    /// sources' size.
    wear: Option<u64>,
    /// `SqliteStore file`: how the report names the store.
    store_name: &'static str,
    /// How the report names the floor of an operation.
    floor_name: fn(Op) -> String,
    /// `sqlite_file`: the end of the case ids.
    id: &'static str,
    /// Whether the group ends with the union's curve.
    curve: bool,
}

impl<S: SegmentStore, F: Floor> Backend<S, F> {
    /// One timed library operation on `lib` (`add_from` if `add`, else
    /// `create_from`), retiring the fixture once worn.
    fn lib_run(&self, lib: &Fixture<Lib<S>>, op: Op, add: bool) -> Duration {
        let took = lib.with(|l| {
            if add {
                l.add_from(op)
            } else {
                l.create_from(op)
            }
        });
        lib.retire(|l| self.wear.is_some_and(|w| l.written > w * l.n));
        took
    }
}

/// The rows of one backend: `create_from` of each operation and
/// `add_from` of `A − B`, and, if asked, the union's curve.
fn cases<S: SegmentStore + 'static, F: Floor + 'static>(
    config: Config,
    backend: Backend<S, F>,
) -> Vec<Entry> {
    let n = config.size;
    let backend = Rc::new(backend);
    let (make_lib, make_floor) = (backend.lib, backend.floor);
    let lib = Fixture::new(move || make_lib(n));
    let floor = Fixture::new(move || make_floor(n));

    let lib_routine = |op: Op, add: bool| -> Routine {
        let (backend, lib) = (Rc::clone(&backend), Rc::clone(&lib));
        Box::new(move |iters| (0..iters).map(|_| backend.lib_run(&lib, op, add)).sum())
    };
    let floor_routine = |op: Op| -> Routine {
        let floor = Rc::clone(&floor);
        Box::new(move |iters| (0..iters).map(|_| floor.with(|f| f.run(op))).sum())
    };
    let row = |op: Op, add: bool| {
        let (call, id, into) = if add {
            (
                "add_from",
                format!("add_from_{}", op.tag()),
                " into an empty segment",
            )
        } else {
            ("create_from", op.tag().to_owned(), "")
        };
        Entry::Rate(Case {
            id: format!("sets/{id}/{}", backend.id),
            name: format!(
                "{call} {}{into} ({} members), sources of {} random PIDs each sharing half, {} vs {}",
                op.symbol(),
                count(op.expected(n)),
                count(n),
                backend.store_name,
                (backend.floor_name)(op),
            ),
            unit: "members",
            ops_per_iter: op.expected(n),
            target: Target::Report,
            library: lib_routine(op, add),
            floor: floor_routine(op),
        })
    };
    let mut entries = vec![
        row(Op::Union, false),
        row(Op::Intersect, false),
        row(Op::Minus, false),
        row(Op::Minus, true),
    ];
    if backend.curve {
        entries.push(Entry::Curve(Curve {
            id: format!("sets_curve/{}", backend.id),
            run: Box::new(move || curve(n, &backend, &lib, &floor)),
        }));
    }
    entries
}

/// The sizes of a curve: a tenth, a quarter, half of `n`, and `n`, each
/// even.
fn curve_sizes(n: u64) -> Vec<u64> {
    let mut sizes: Vec<u64> = [n / 10, n / 4, n / 2, n]
        .into_iter()
        .map(|m| m / 2 * 2)
        .filter(|&m| m >= 2)
        .collect();
    sizes.dedup();
    sizes
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The union at each of [`curve_sizes`]: [`CURVE_RUNS`] runs of each side,
/// alternating, on sources of that size (fresh ones, built untimed, below
/// `n`; the rows' own at `n`); medians, and the time per member written.
fn curve<S: SegmentStore, F: Floor>(
    n: u64,
    backend: &Backend<S, F>,
    lib: &Fixture<Lib<S>>,
    floor: &Fixture<F>,
) -> String {
    let op = Op::Union;
    let mut out = format!(
        "set-operation curve: create_from {}, {} vs {}, sources of m random PIDs each sharing half ({} runs per side, medians)\n\n\
         | sources (m) | result | library | floor | ratio | library ns/member | floor ns/member |\n|---|---|---|---|---|---|---|",
        op.symbol(),
        backend.store_name,
        (backend.floor_name)(op),
        CURVE_RUNS,
    );
    for m in curve_sizes(n) {
        let (mut l, mut f) = (Vec::new(), Vec::new());
        let mut measure = |lib_run: &mut dyn FnMut() -> Duration,
                           floor_run: &mut dyn FnMut() -> Duration| {
            for round in 0..CURVE_RUNS {
                if round % 2 == 0 {
                    l.push(lib_run());
                    f.push(floor_run());
                } else {
                    f.push(floor_run());
                    l.push(lib_run());
                }
            }
        };
        if m == n {
            measure(&mut || backend.lib_run(lib, op, false), &mut || {
                floor.with(|f| f.run(op))
            });
        } else {
            let mut small_lib = (backend.lib)(m);
            let mut small_floor = (backend.floor)(m);
            measure(&mut || small_lib.create_from(op), &mut || {
                small_floor.run(op)
            });
        }
        let (l, f) = (median(l), median(f));
        let members = op.expected(m) as f64;
        eprintln!(
            "  sets_curve/{} {}: library {l:.2?}, floor {f:.2?}",
            backend.id,
            count(m)
        );
        out.push_str(&format!(
            "\n| {} | {} | {:.0} ms | {:.0} ms | {:.2} | {:.0} | {:.0} |",
            count(m),
            count(op.expected(m)),
            l.as_secs_f64() * 1e3,
            f.as_secs_f64() * 1e3,
            f.as_secs_f64() / l.as_secs_f64(),
            l.as_secs_f64() * 1e9 / members,
            f.as_secs_f64() * 1e9 / members,
        ));
    }
    out
}

/// The library's sources in a SQLite file (WAL, NORMAL), filled once;
/// each operation runs on a store opened on a fresh copy of the file.
fn sqlite_lib(n: u64) -> Lib<SqliteStore> {
    let (dir, path) = fresh_dir("library.db");
    let segments = Segments::new(SqliteStore::open(&path).unwrap());
    let org = OrgId::new("acme").unwrap();
    let (a, b) = fill_sources(&segments, &org, n, "SqliteStore file");
    drop(segments);
    let template = Template::seal(dir, path);
    let fresh = move || Segments::new(SqliteStore::open(template.copy()).unwrap());
    Lib {
        segments: fresh(),
        org,
        a,
        b,
        n,
        made: 0,
        written: 0,
        fresh: Some(Box::new(fresh)),
        tidy: None,
        _keep: None,
    }
}

/// The set operations on a SQLite file (WAL, NORMAL) vs raw rusqlite
/// `INSERT … SELECT` of the compound `SELECT` on a file with the same
/// PRAGMAs.
pub fn sqlite(config: Config) -> Vec<Entry> {
    cases(
        config,
        Backend {
            lib: sqlite_lib,
            floor: RawSqlite::build,
            wear: None,
            store_name: "SqliteStore file",
            floor_name: |op| {
                format!(
                    "raw INSERT INTO members SELECT … {} … into a plain (segment, pid) table, 1 tx",
                    op.sql()
                )
            },
            id: "sqlite_file",
            curve: true,
        },
    )
}

/// The set operations on MemoryStore vs two `BTreeSet`s walked together
/// into a new one.
pub fn memory(config: Config) -> Vec<Entry> {
    cases(
        config,
        Backend {
            lib: |n| Lib::build(MemoryStore::new(), n, "MemoryStore"),
            floor: RawSets::build,
            wear: Some(MEMORY_WEAR),
            store_name: "MemoryStore",
            floor_name: |op| {
                let walk = match op {
                    Op::Union => "union",
                    Op::Intersect => "intersection",
                    Op::Minus => "difference",
                };
                format!("BTreeSet<SmolStr> {walk} collected into a new BTreeSet")
            },
            id: "memory",
            curve: true,
        },
    )
}

/// PostgreSQL: the sources in a fresh schema of their own on each side, on
/// the server the PostgreSQL rows use (a throwaway one started for the run,
/// or `SEGMENTS_POSTGRES_URL`'s).
#[cfg(feature = "postgres")]
mod pg {
    use std::time::{Duration, Instant};

    use postgres::{Client, NoTls};
    use segments_engine::PostgresStore;

    use super::super::postgres::{fresh_schema, raw, store};
    use super::{Floor, Lib, Op, server, source};

    /// Drops its schema when dropped.
    struct Schema(String);

    impl Drop for Schema {
        fn drop(&mut self) {
            if let Ok(mut client) = Client::connect(&server::url(), NoTls) {
                let _ = client.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.0));
            }
        }
    }

    /// The library's sources on PostgresStore; after each operation its
    /// deleted memberships are vacuumed away (untimed), as the floor's are.
    pub(super) fn lib(n: u64) -> Lib<PostgresStore> {
        let schema = fresh_schema("sets_lib");
        let store = store(&schema);
        let guard = Schema(schema.clone());
        let mut lib = Lib::build(store, n, "PostgresStore");
        let mut client = raw(&schema);
        client.batch_execute("ANALYZE").unwrap();
        lib.tidy = Some(Box::new(move || {
            client
                .batch_execute("VACUUM segment_memberships, segment_sizes, segments")
                .unwrap();
        }));
        // The store's pool closes before the schema goes.
        lib._keep = Some(Box::new(guard));
        lib
    }

    /// Raw `postgres` statements on a plain `members (segment, pid)` table
    /// (`COLLATE "C"`, keyed by both), A as segment 1 and B as segment 2.
    pub(super) struct RawPostgres {
        client: Client,
        n: u64,
        last: i64,
        _schema: Schema,
    }

    impl RawPostgres {
        pub(super) fn build(n: u64) -> Self {
            let schema = fresh_schema("sets_floor");
            let mut client = Client::connect(&server::url(), NoTls).unwrap();
            client
                .batch_execute(&format!(
                    "CREATE SCHEMA {schema};
                     SET search_path TO {schema};
                     CREATE TABLE members (
                         segment bigint,
                         pid     text COLLATE \"C\",
                         PRIMARY KEY (segment, pid)
                     );"
                ))
                .unwrap();
            let insert = client
                .prepare("INSERT INTO members (segment, pid) SELECT $1, pid FROM unnest($2::text[]) AS u (pid)")
                .unwrap();
            for (segment, b) in [(1i64, false), (2, true)] {
                for batch in source(n, b) {
                    client.execute(&insert, &[&segment, &batch]).unwrap();
                }
            }
            client.batch_execute("ANALYZE members").unwrap();
            Self {
                client,
                n,
                last: 2,
                _schema: Schema(schema),
            }
        }
    }

    impl Floor for RawPostgres {
        fn run(&mut self, op: Op) -> Duration {
            self.last += 1;
            let new = self.last;
            let sql = format!(
                "INSERT INTO members (segment, pid) SELECT $1, pid FROM (
                     SELECT pid FROM members WHERE segment = 1
                     {}
                     SELECT pid FROM members WHERE segment = 2
                 ) e",
                op.sql()
            );
            let start = Instant::now();
            let mut tx = self.client.transaction().unwrap();
            let inserted = tx.execute(&sql, &[&new]).unwrap();
            tx.commit().unwrap();
            let took = start.elapsed();
            assert_eq!(inserted, op.expected(self.n), "{} rows", op.symbol());
            self.client
                .execute("DELETE FROM members WHERE segment = $1", &[&new])
                .unwrap();
            self.client.batch_execute("VACUUM members").unwrap();
            took
        }
    }
}

/// The set operations on PostgresStore vs raw `INSERT … SELECT` of the
/// compound `SELECT` with the `postgres` crate, on the same server.
#[cfg(feature = "postgres")]
pub fn postgres(config: Config) -> Vec<Entry> {
    cases(
        config,
        Backend {
            lib: pg::lib,
            floor: pg::RawPostgres::build,
            wear: None,
            store_name: "PostgresStore",
            floor_name: |op| {
                format!(
                    "raw INSERT INTO members SELECT … {} … into a plain (segment, pid) table, 1 tx, same server",
                    op.sql()
                )
            },
            id: "postgres",
            curve: false,
        },
    )
}
