//! Reliability across processes, with real OS processes standing in for
//! app servers: on one SQLite file, and (feature `postgres`) on one
//! PostgreSQL database (the throwaway test server, or
//! `SEGMENTS_POSTGRES_URL`), reached directly and through PgBouncer in
//! transaction pooling (started beside the throwaway server, or
//! `SEGMENTS_PGBOUNCER_URL`).
//!
//! This test binary is its own harness (`harness = false`): run plainly it
//! is the parent and runs the checks below; with `SEGMENTS_CHILD` set it is
//! one of the child processes the parent starts.
//!
//! - **Races**: child processes (two threads each, sharing the child's one
//!   store) and threads of the parent create overlapping names and add and
//!   remove overlapping PIDs at once: exactly one winner per name, no busy
//!   error reaches a caller, every `current_size` equals its segment's
//!   members afterwards. Meanwhile a poller follows
//!   `changes_since` and must see every seq exactly once, in order.
//! - **Crashes**: a child adding large batches from four threads (so that
//!   a SQLite store is killed in the middle of a group of commits) is
//!   killed with SIGKILL at a random moment, again and again (on SQLite in
//!   both durability modes):
//!   the store opens (`PRAGMA integrity_check` is ok on SQLite), every batch
//!   is all or nothing, every batch the child saw committed is there, every
//!   size matches.
//!
//! - **Many writers**: two processes of 32 writer threads each add and
//!   remove overlapping PIDs in four shared segments at once (on SQLite,
//!   whose writers wait in line and commit in groups): every
//!   `current_size` equals its members, and the org's ledger is numbered
//!   1, 2, 3, … without a gap up to `last_seq`.
//! - **Imports**: a child importing a list of PIDs under an idempotency key
//!   is killed with SIGKILL partway (after two batches, at a random moment
//!   in the next ones); the same import rerun with the same key completes
//!   it: its counts are those of an uninterrupted import and the ledger
//!   records each PID's join once.
//!
//! `SEGMENTS_SOAK=N` multiplies the rounds and kills by N (see docs/testing.md).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use segments_engine::sqlite::Synchronous;
use segments_engine::{
    Error, NewSegment, OrgId, PageOptions, SegmentId, SegmentStore, Segments, SqliteStore,
};

#[cfg(feature = "postgres")]
mod support;

const CHILD: &str = "SEGMENTS_CHILD";
const TARGET: &str = "SEGMENTS_TARGET";
const SYNC: &str = "SEGMENTS_SYNC";
const BATCH: usize = 2_000;

fn main() {
    match std::env::var(CHILD).as_deref() {
        Ok("race") => race_child(),
        Ok("writer") => writer_child(),
        Ok("importer") => importer_child(),
        Ok("writers") => many_writers_child(),
        Ok(other) => panic!("unknown child mode {other:?}"),
        Err(_) => {
            let soak: usize = std::env::var("SEGMENTS_SOAK")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(1);
            let started = Instant::now();
            let dir = tempfile::tempdir().unwrap();
            for round in 0..soak {
                let target = Target::Sqlite(dir.path().join(format!("race{round}.db")));
                races_across_processes_have_one_winner_per_name(&target, round);
            }
            killed_writers_leave_whole_batches(30 * soak, |kill| {
                // Both durability modes, on files of their own: after a
                // process crash neither may lose a batch whose call returned.
                let sync = if kill % 2 == 0 { "normal" } else { "full" };
                (Target::Sqlite(dir.path().join(format!("{sync}.db"))), sync)
            });
            for sync in ["normal", "full"] {
                let target = Target::Sqlite(dir.path().join(format!("writers-{sync}.db")));
                two_processes_of_many_writers_keep_sizes_and_the_ledger(&target, sync);
            }
            let target = Target::Sqlite(dir.path().join("import.db"));
            killed_imports_resume_with_their_key(&target, 3 * soak);
            #[cfg(feature = "postgres")]
            {
                let url = support::postgres::url();
                let target = Target::postgres(&url, "import");
                killed_imports_resume_with_their_key(&target, 2 * soak);
                target.clean_up();
                for round in 0..soak {
                    let target = Target::postgres(&url, "race");
                    races_across_processes_have_one_winner_per_name(&target, round);
                    target.clean_up();
                }
                let target = Target::postgres(&url, "crash");
                killed_writers_leave_whole_batches(10 * soak, |_| (target.clone(), "default"));
                target.clean_up();
                // The same through PgBouncer in transaction pooling: each
                // transaction may run on another server session, and a
                // killed client's transaction ends with its session.
                let bouncer = support::postgres::pgbouncer();
                for round in 0..soak {
                    let target = Target::postgres(&bouncer, "race_bouncer");
                    races_across_processes_have_one_winner_per_name(&target, round);
                    target.clean_up();
                }
                let target = Target::postgres(&bouncer, "crash_bouncer");
                killed_writers_leave_whole_batches(10 * soak, |_| (target.clone(), "default"));
                target.clean_up();
            }
            println!("processes: all checks passed in {:.1?}", started.elapsed());
        }
    }
}

/// Where the processes meet: a SQLite file, or a schema of a PostgreSQL
/// database. Handed to children through the environment.
#[derive(Clone, Debug)]
enum Target {
    Sqlite(PathBuf),
    #[cfg(feature = "postgres")]
    Postgres {
        url: String,
        schema: String,
    },
}

impl Target {
    /// A fresh schema on the PostgreSQL server at `url`.
    #[cfg(feature = "postgres")]
    fn postgres(url: &str, what: &str) -> Self {
        let schema = format!(
            "{what}_{}",
            uuid::Uuid::now_v7().simple().to_string().get(16..).unwrap()
        );
        Target::Postgres {
            url: url.to_owned(),
            schema,
        }
    }

    fn to_env(&self) -> String {
        match self {
            Target::Sqlite(path) => format!("sqlite {}", path.display()),
            #[cfg(feature = "postgres")]
            Target::Postgres { url, schema } => format!("postgres {schema} {url}"),
        }
    }

    fn from_env() -> Self {
        let text = std::env::var(TARGET).expect("a child is told its target");
        match text.split_once(' ') {
            Some(("sqlite", path)) => Target::Sqlite(PathBuf::from(path)),
            #[cfg(feature = "postgres")]
            Some(("postgres", rest)) => {
                let (schema, url) = rest.split_once(' ').unwrap();
                Target::Postgres {
                    url: url.to_owned(),
                    schema: schema.to_owned(),
                }
            }
            _ => panic!("unknown target {text:?}"),
        }
    }

    fn open(&self, sync: Synchronous) -> Segments<Box<dyn SegmentStore>> {
        let store: Box<dyn SegmentStore> = match self {
            Target::Sqlite(path) => Box::new(
                SqliteStore::builder()
                    .synchronous(sync)
                    .open(path)
                    .expect("the file opens"),
            ),
            #[cfg(feature = "postgres")]
            Target::Postgres { url, schema } => Box::new(
                segments_engine::PostgresStore::builder(url)
                    .schema(schema.clone())
                    .pool_size(4)
                    .connect()
                    .expect("the database accepts the store"),
            ),
        };
        Segments::new(store)
    }

    /// After a kill: the storage itself is sound.
    fn check_sound(&self, sync: &str) {
        match self {
            Target::Sqlite(path) => {
                let raw = rusqlite::Connection::open(path).unwrap();
                let integrity: String = raw
                    .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                    .unwrap();
                assert_eq!(integrity, "ok", "integrity_check after a kill ({sync})");
            }
            // The server outlives its clients; what a kill can break is
            // checked through the store.
            #[cfg(feature = "postgres")]
            Target::Postgres { .. } => {}
        }
    }

    #[cfg(feature = "postgres")]
    fn clean_up(&self) {
        match self {
            Target::Sqlite(_) => {}
            #[cfg(feature = "postgres")]
            Target::Postgres { url, schema } => {
                ::postgres::Client::connect(url, ::postgres::NoTls)
                    .unwrap()
                    .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                    .unwrap();
            }
        }
    }
}

fn org() -> OrgId {
    OrgId::new("acme").unwrap()
}

fn spawn(mode: &str, target: &Target, sync: &str, seed: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .env(CHILD, mode)
        .env(TARGET, target.to_env())
        .env(SYNC, sync)
        .env("SEGMENTS_SEED", seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the child starts")
}

/// A small deterministic generator, so a failing run can be replayed from
/// its printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    std::env::var("SEGMENTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

// ---------------------------------------------------------------------------
// Races

const NAMES: u64 = 12;
const RACE_ROUNDS: usize = 60;

/// One racer: creates names from a shared list (spelled differently each
/// time), adds and removes PIDs from a shared pool. Prints `created NAME`
/// for each win; any error but a duplicate name fails the run.
fn race(segments: &Segments<Box<dyn SegmentStore>>, seed: u64, out: &mut impl Write) {
    let org = org();
    let mut rng = Rng(seed);
    for _ in 0..RACE_ROUNDS {
        let n = rng.below(NAMES);
        let spelled = if rng.below(2) == 0 {
            format!("Shared {n}")
        } else {
            format!("  shared   {n} ")
        };
        match segments.create(&org, NewSegment::new(spelled)) {
            Ok(_) => writeln!(out, "created shared {n}").unwrap(),
            Err(Error::DuplicateName { .. }) => {}
            Err(e) => panic!("create failed: {e:?}"),
        }
        let Some(target) = segments
            .find_by_name(&org, &format!("shared {}", rng.below(NAMES)))
            .unwrap()
        else {
            continue;
        };
        let pids: Vec<String> = (0..20).map(|_| format!("p-{}", rng.below(60))).collect();
        let result = if rng.below(3) == 0 {
            segments.remove_members(&org, target.id, &pids).map(drop)
        } else {
            segments.add_members(&org, target.id, &pids).map(drop)
        };
        match result {
            // Another racer may have deleted it: not a failure.
            Ok(()) | Err(Error::NotFound { .. }) => {}
            Err(e) => panic!("member call failed: {e:?}"),
        }
        if rng.below(25) == 0 {
            match segments.delete(&org, target.id) {
                Ok(()) | Err(Error::NotFound { .. }) => {}
                Err(e) => panic!("delete failed: {e:?}"),
            }
        }
    }
}

/// Racing threads in each child process, sharing its one store as an app
/// server's request threads share theirs.
const CHILD_THREADS: u64 = 2;

fn race_child() {
    let segments = Target::from_env().open(Synchronous::Normal);
    let seed = seed();
    let outputs: Vec<Vec<u8>> = std::thread::scope(|scope| {
        let segments = &segments;
        let handles: Vec<_> = (0..CHILD_THREADS)
            .map(|t| {
                scope.spawn(move || {
                    let mut out = Vec::new();
                    race(segments, seed + 1_000 * t, &mut out);
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no racing thread of the child panics"))
            .collect()
    });
    let mut out = std::io::stdout().lock();
    for output in outputs {
        out.write_all(&output).unwrap();
    }
    writeln!(out, "done").unwrap();
}

fn races_across_processes_have_one_winner_per_name(target: &Target, round: usize) {
    const PROCESSES: usize = 3;
    const THREADS: usize = 2;
    let base = seed();
    println!(
        "race round {round}: seed {base}, {PROCESSES} processes of {CHILD_THREADS} threads \
         and {THREADS} threads of this one on {target:?}"
    );
    // No one creates the store first: the processes race to do it.
    let children: Vec<Child> = (0..PROCESSES)
        .map(|i| spawn("race", target, "normal", base + i as u64))
        .collect();
    let mut wins: HashMap<String, usize> = HashMap::new();
    let racing = AtomicBool::new(true);
    let polled = std::thread::scope(|scope| {
        let poller = scope.spawn(|| follow_the_feed(target, &racing));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                scope.spawn(move || {
                    let segments = target.open(Synchronous::Normal);
                    let mut out = Vec::new();
                    race(&segments, base + 100 + t as u64, &mut out);
                    String::from_utf8(out).unwrap()
                })
            })
            .collect();
        for handle in handles {
            for line in handle.join().expect("no racing thread panics").lines() {
                *wins.entry(line.to_owned()).or_default() += 1;
            }
        }
        for child in children {
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "a racing process failed: {:?}",
                output.status
            );
            let text = String::from_utf8(output.stdout).unwrap();
            assert!(text.ends_with("done\n"), "the racing process finished");
            for line in text.lines().filter(|l| l.starts_with("created")) {
                *wins.entry(line.to_owned()).or_default() += 1;
            }
        }
        racing.store(false, Ordering::SeqCst);
        poller.join().expect("the poller does not panic")
    });
    // Deletions free names, so a name may be won again later; what must
    // hold is that live names are unique and sizes are exact.
    let segments = target.open(Synchronous::Normal);
    let org = org();
    let live = segments
        .list(&org, PageOptions::new().limit(1_000))
        .unwrap()
        .segments;
    let mut keys = BTreeMap::new();
    for s in &live {
        let key = s
            .name
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        assert!(
            keys.insert(key.clone(), s.id).is_none(),
            "two live segments named {key:?}"
        );
        let listed = members_of(&segments, &org, s.id);
        assert_eq!(
            s.current_size, listed,
            "current_size of {:?} equals its members",
            s.name
        );
    }
    let total_wins: usize = wins.values().sum();
    let ledger = whole_feed(&segments, &org);
    assert_eq!(
        polled,
        ledger.iter().map(|c| c.seq).collect::<Vec<_>>(),
        "the poller, following the feed during the race, saw every entry once, in order"
    );
    let seqs: Vec<u64> = ledger.iter().map(|c| c.seq).collect();
    assert_eq!(
        seqs,
        (1..=ledger.len() as u64).collect::<Vec<_>>(),
        "the writers of every process kept one gapless ledger"
    );
    assert!(
        ledger.windows(2).all(|w| w[0].at <= w[1].at),
        "ledger times never go back, whichever process wrote"
    );
    let count = |kind: fn(&segments_engine::ChangeKind) -> bool| {
        ledger.iter().filter(|c| kind(&c.kind)).count()
    };
    let deletions = count(|k| *k == segments_engine::ChangeKind::Deleted);
    assert_eq!(
        count(|k| matches!(k, segments_engine::ChangeKind::Created { .. })),
        total_wins,
        "every win is in the ledger once"
    );
    assert_eq!(
        total_wins,
        live.len() + deletions,
        "every win is a live segment or a deleted one"
    );
    println!(
        "race round {round}: {total_wins} creates won, {deletions} deleted, {} live, sizes exact",
        live.len()
    );
}

/// Polls the org's change feed while `racing` holds, then once more to the
/// end, checking each page starts right after the last entry seen: the
/// seqs seen, in order.
fn follow_the_feed(target: &Target, racing: &AtomicBool) -> Vec<u64> {
    // The store may not exist yet: the racers create it.
    let segments = loop {
        if let Target::Sqlite(path) = target
            && !path.exists()
        {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        break target.open(Synchronous::Normal);
    };
    let org = org();
    let mut seen = Vec::new();
    let mut next = 0;
    loop {
        let still_racing = racing.load(Ordering::SeqCst);
        loop {
            let page = segments
                .changes_since(&org, PageOptions::new().after(next).limit(50))
                .expect("polling the feed succeeds");
            for change in &page.changes {
                assert_eq!(
                    change.seq,
                    next + 1,
                    "the poller never skips or repeats an entry"
                );
                next = change.seq;
                seen.push(change.seq);
            }
            if page.changes.len() < 50 {
                break;
            }
        }
        if !still_racing {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn whole_feed(
    segments: &Segments<Box<dyn SegmentStore>>,
    org: &OrgId,
) -> Vec<segments_engine::Change> {
    let mut out: Vec<segments_engine::Change> = Vec::new();
    loop {
        let after = out.last().map_or(0, |c| c.seq);
        let page = segments
            .changes_since(org, PageOptions::new().after(after).limit(1_000))
            .unwrap();
        let done = page.changes.len() < 1_000;
        out.extend(page.changes);
        if done {
            return out;
        }
    }
}

fn members_of(segments: &Segments<Box<dyn SegmentStore>>, org: &OrgId, id: SegmentId) -> u64 {
    let mut n = 0;
    let mut options = PageOptions::new().limit(10_000);
    loop {
        let page = segments.members(org, id, options.clone()).unwrap();
        n += page.members.len() as u64;
        match page.next {
            Some(next) => options = PageOptions::new().after(next).limit(10_000),
            None => return n,
        }
    }
}

// ---------------------------------------------------------------------------
// Crashes

/// Adds batch after batch of new PIDs (`p-{batch}x{i}`) to segment
/// "crash", printing `committed N` once batch N's call has returned, until
/// it is killed.
fn writer_child() {
    let sync = match std::env::var(SYNC).as_deref() {
        Ok("full") => Synchronous::Full,
        _ => Synchronous::Normal,
    };
    let segments = Target::from_env().open(sync);
    let org = org();
    let id = match segments.find_by_name(&org, "crash").unwrap() {
        Some(s) => s.id,
        None => segments.create(&org, NewSegment::new("crash")).unwrap().id,
    };
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready").unwrap();
        out.flush().unwrap();
    }
    // Several writer threads, so that a store that groups its writers'
    // commits is killed in the middle of a group.
    let start: u64 = seed() * 10_000;
    std::thread::scope(|scope| {
        for thread in 0..WRITER_THREADS {
            let (segments, org) = (&segments, &org);
            scope.spawn(move || {
                for batch in (start + thread..).step_by(WRITER_THREADS as usize) {
                    let pids: Vec<String> = (0..BATCH).map(|i| format!("p-{batch}x{i}")).collect();
                    segments.add_members(org, id, &pids).unwrap();
                    let line = if batch % 3 == 2 {
                        let some: Vec<&str> = pids.iter().step_by(2).map(String::as_str).collect();
                        segments.remove_members(org, id, &some).unwrap();
                        format!("committed {batch} halved")
                    } else {
                        format!("committed {batch}")
                    };
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "{line}").unwrap();
                    out.flush().unwrap();
                }
            });
        }
    });
}

/// Writer threads in one writer child.
const WRITER_THREADS: u64 = 4;

/// Starts a writer `kills` times and kills it mid-batch; `target(kill)`
/// says where it writes and in which durability mode.
fn killed_writers_leave_whole_batches(
    kills: usize,
    target: impl Fn(usize) -> (Target, &'static str),
) {
    let base = seed();
    let mut rng = Rng(base);
    println!("crash: seed {base}, {kills} SIGKILLs of a writer mid-batch");
    let mut committed: Vec<(u64, bool)> = Vec::new();
    for kill in 0..kills {
        let (db, sync) = target(kill);
        let mut child = spawn("writer", &db, sync, kill as u64 + 1);
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        assert_eq!(
            lines.next().unwrap().unwrap(),
            "ready",
            "the writer started"
        );
        // A PostgreSQL batch is a few round trips slower: give it time to
        // commit some before the kill.
        let window = match db {
            Target::Sqlite(_) => 180,
            #[cfg(feature = "postgres")]
            Target::Postgres { .. } => 2_500,
        };
        std::thread::sleep(Duration::from_millis(20 + rng.below(window)));
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        let mut seen = Vec::new();
        for line in lines.map_while(Result::ok) {
            let mut words = line.split_whitespace().skip(1);
            let batch: u64 = words.next().unwrap().parse().unwrap();
            seen.push((batch, words.next() == Some("halved")));
        }
        check_after_kill(&db, &seen, sync);
        committed.extend(seen);
    }
    println!(
        "crash: {kills} kills, {} batches committed before a kill, every one whole and present",
        committed.len()
    );
}

/// After a kill: the store is sound, every batch is whole or absent, the
/// reported ones are present, and the size is exact.
fn check_after_kill(db: &Target, reported: &[(u64, bool)], sync: &str) {
    db.check_sound(sync);
    let segments = db.open(Synchronous::Normal);
    let org = org();
    let s = segments
        .find_by_name(&org, "crash")
        .unwrap()
        .expect("the segment survived");
    // A killed client's last transaction may still commit after the kill:
    // PostgreSQL finishes a COMMIT whose client is gone. The writer only
    // adds, so a walk between two equal sizes saw no commit.
    let (size, by_batch) = loop {
        let before = segments.get(&org, s.id).unwrap().current_size;
        let by_batch = batches_of(&segments, &org, s.id);
        let after = segments.get(&org, s.id).unwrap().current_size;
        if before == after {
            break (after, by_batch);
        }
    };
    for (batch, count) in &by_batch {
        assert!(
            *count == BATCH || (*count == BATCH / 2 && batch % 3 == 2),
            "batch {batch} has {count} members: a batch is all or nothing ({sync})"
        );
    }
    for (batch, halved) in reported {
        let expected = if *halved { BATCH / 2 } else { BATCH };
        assert_eq!(
            by_batch.get(batch),
            Some(&expected),
            "batch {batch}, committed before the kill, is there ({sync})"
        );
    }
    let total: usize = by_batch.values().sum();
    assert_eq!(
        size as usize, total,
        "current_size matches the members after a kill ({sync})"
    );
}

/// The members of segment `id`, counted by the batch that added them.
fn batches_of(
    segments: &Segments<Box<dyn SegmentStore>>,
    org: &OrgId,
    id: SegmentId,
) -> BTreeMap<u64, usize> {
    let mut by_batch: BTreeMap<u64, usize> = BTreeMap::new();
    let mut options = PageOptions::new().limit(10_000);
    loop {
        let page = segments.members(org, id, options.clone()).unwrap();
        for m in &page.members {
            let batch: u64 = m.pid.as_str()[2..]
                .split('x')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            *by_batch.entry(batch).or_default() += 1;
        }
        match page.next {
            Some(next) => options = PageOptions::new().after(next).limit(10_000),
            None => return by_batch,
        }
    }
}

// ---------------------------------------------------------------------------
// Imports

/// PIDs of one import: `IMPORT_LINES` lines, with repeats (every 7th line
/// repeats an earlier PID) and malformed lines (every 101st).
const IMPORT_LINES: usize = 64_000;

fn import_line(round: u64, i: usize) -> String {
    if i % 101 == 100 {
        format!("not a pid {i}")
    } else if i % 7 == 6 {
        format!("p-{round}i{}", i / 2)
    } else {
        format!("p-{round}i{i}")
    }
}

/// The uninterrupted import's counts: (added, redundant, invalid).
fn import_counts(round: u64) -> (u64, u64, u64) {
    let mut seen = std::collections::HashSet::new();
    let (mut added, mut redundant, mut invalid) = (0, 0, 0);
    for i in 0..IMPORT_LINES {
        let line = import_line(round, i);
        if line.starts_with("not") {
            invalid += 1;
        } else if seen.insert(line) {
            added += 1;
        } else {
            redundant += 1;
        }
    }
    (added, redundant, invalid)
}

/// Imports round `SEGMENTS_SEED`'s lines under its key, printing `read N`
/// each time the import asks for line N at a batch's start (so every batch
/// before N has committed).
fn importer_child() {
    let segments = Target::from_env().open(Synchronous::Normal);
    let round = seed();
    let org = org();
    let s = segments
        .find_or_create(&org, NewSegment::new(format!("import {round}")))
        .unwrap();
    let out = std::sync::Mutex::new(std::io::stdout());
    let lines = (0..IMPORT_LINES).map(|i| {
        if i % segments_engine::limits::IMPORT_BATCH_SIZE == 0 {
            let mut out = out.lock().unwrap();
            writeln!(out, "read {i}").unwrap();
            out.flush().unwrap();
        }
        import_line(round, i)
    });
    segments
        .with_idempotency_key(format!("import-{round}"))
        .import_members(&org, s.id, lines)
        .unwrap();
    writeln!(out.lock().unwrap(), "done").unwrap();
}

/// Kills an importer partway, `rounds` times (a segment each), then reruns
/// each import with its key in this process: the counts are exact and the
/// ledger has one join per PID.
fn killed_imports_resume_with_their_key(target: &Target, rounds: usize) {
    let base = seed();
    let mut rng = Rng(base);
    println!("imports: seed {base}, {rounds} importers killed partway, then rerun");
    let batch = segments_engine::limits::IMPORT_BATCH_SIZE;
    let mut killed_at = Vec::new();
    for r in 0..rounds {
        let round = base % 1_000_000 + r as u64;
        let mut child = spawn("importer", target, "normal", round);
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        // Two batches committed, then a kill in the next ones.
        let wanted = format!("read {}", 2 * batch);
        loop {
            let line = lines
                .next()
                .expect("the importer reports its progress")
                .unwrap();
            assert_ne!(
                line, "done",
                "the importer was to be killed before it ended"
            );
            if line == wanted {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(rng.below(40)));
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        target.check_sound("normal");

        let segments = target.open(Synchronous::Normal);
        let org = org();
        let s = segments
            .find_by_name(&org, &format!("import {round}"))
            .unwrap()
            .expect("the segment survived");
        let interrupted = segments.get(&org, s.id).unwrap().current_size;
        killed_at.push(interrupted);
        let out = segments
            .with_idempotency_key(format!("import-{round}"))
            .import_members(&org, s.id, (0..IMPORT_LINES).map(|i| import_line(round, i)))
            .unwrap();
        let (added, redundant, invalid) = import_counts(round);
        assert_eq!(
            (out.n_added, out.n_redundant_additions, out.n_invalid),
            (added, redundant, invalid),
            "round {round}: the rerun's counts are the uninterrupted import's (killed at size {interrupted})"
        );
        assert_eq!(out.n_batches as usize, IMPORT_LINES.div_ceil(batch));
        assert_eq!(
            segments.get(&org, s.id).unwrap().current_size,
            added,
            "round {round}: every distinct PID is a member"
        );
        let joins = whole_feed(&segments, &org)
            .iter()
            .filter(|c| {
                c.segment_id == s.id
                    && matches!(c.kind, segments_engine::ChangeKind::MemberAdded { .. })
            })
            .count() as u64;
        assert_eq!(
            joins, added,
            "round {round}: the ledger records each join once"
        );
        assert!(
            interrupted >= 2 * batch as u64 * 5 / 7,
            "round {round}: the killed import had committed its first batches ({interrupted})"
        );
    }
    println!(
        "imports: {rounds} killed imports (sizes at the kill: {killed_at:?}) resumed, counts exact, one join per PID"
    );
}

// ---------------------------------------------------------------------------
// Many writers

/// Writer threads in each of the two processes.
const MANY_WRITERS: u64 = 32;
/// Calls each writer thread makes.
const CALLS_PER_WRITER: u64 = 40;
/// Segments the writers share.
const SHARED_SEGMENTS: u64 = 4;

/// 32 threads sharing one store, each making [`CALLS_PER_WRITER`] adds and
/// removals of PIDs from a small pool in the shared segments; prints
/// `done N` with the calls that worked (every one must).
fn many_writers_child() {
    let sync = match std::env::var(SYNC).as_deref() {
        Ok("full") => Synchronous::Full,
        _ => Synchronous::Normal,
    };
    let segments = Target::from_env().open(sync);
    let org = org();
    let ids: Vec<SegmentId> = (0..SHARED_SEGMENTS)
        .map(|i| {
            segments
                .find_or_create(&org, NewSegment::new(format!("shared {i}")))
                .unwrap()
                .id
        })
        .collect();
    let base = seed();
    let calls: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..MANY_WRITERS)
            .map(|t| {
                let (segments, org, ids) = (&segments, &org, &ids);
                scope.spawn(move || {
                    let mut rng = Rng(base ^ (t + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                    let mut calls = 0;
                    for _ in 0..CALLS_PER_WRITER {
                        let id = ids[rng.below(SHARED_SEGMENTS) as usize];
                        let pids: Vec<String> =
                            (0..8).map(|_| format!("p-w{}", rng.below(300))).collect();
                        if rng.below(3) == 0 {
                            segments.remove_members(org, id, &pids).unwrap();
                        } else {
                            segments.add_members(org, id, &pids).unwrap();
                        }
                        calls += 1;
                    }
                    calls
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    println!("done {calls}");
}

/// Two processes of [`MANY_WRITERS`] writers each on one store: sizes
/// exact, the ledger gapless.
fn two_processes_of_many_writers_keep_sizes_and_the_ledger(target: &Target, sync: &str) {
    let base = seed();
    println!(
        "many writers: seed {base}, 2 processes of {MANY_WRITERS} writers on {target:?} ({sync})"
    );
    let children: Vec<Child> = (0..2)
        .map(|i| spawn("writers", target, sync, base + i))
        .collect();
    for mut child in children {
        let stdout = child.stdout.take().unwrap();
        let last = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .last()
            .unwrap_or_default();
        assert!(child.wait().unwrap().success(), "a writers process failed");
        assert_eq!(
            last,
            format!("done {}", MANY_WRITERS * CALLS_PER_WRITER),
            "every call of the process worked"
        );
    }
    target.check_sound(sync);
    let segments = target.open(Synchronous::Normal);
    let org = org();
    for i in 0..SHARED_SEGMENTS {
        let s = segments
            .find_by_name(&org, &format!("shared {i}"))
            .unwrap()
            .expect("the shared segment exists");
        assert_eq!(
            s.current_size,
            members_of(&segments, &org, s.id),
            "segment {i}: current_size equals its members ({sync})"
        );
    }
    let feed = whole_feed(&segments, &org);
    let seqs: Vec<u64> = feed.iter().map(|c| c.seq).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert!(
        seqs == expected,
        "the ledger is numbered without a gap ({sync})"
    );
    assert_eq!(
        segments.last_seq(&org).unwrap(),
        seqs.len() as u64,
        "last_seq is the feed's last entry ({sync})"
    );
    println!(
        "many writers: {} calls, {} ledger entries, sizes exact, ledger gapless ({sync})",
        2 * MANY_WRITERS * CALLS_PER_WRITER,
        seqs.len()
    );
}
