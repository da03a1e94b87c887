//! Reliability across processes, with real OS processes on one SQLite file.
//!
//! This test binary is its own harness (`harness = false`): run plainly it
//! is the parent and runs the checks below; with `SEGMENTS_CHILD` set it is
//! one of the child processes the parent starts.
//!
//! - **Races**: child processes and threads of the parent create overlapping
//!   names and add and remove overlapping PIDs at once: exactly one winner
//!   per name, no busy error reaches a caller, every `current_size` equals
//!   its segment's members afterwards.
//! - **Crashes**: a child adding large batches is killed with SIGKILL at a
//!   random moment, again and again, in both durability modes: the file
//!   opens, `PRAGMA integrity_check` is ok, every batch is all or nothing,
//!   every batch the child saw committed is there, every size matches.
//!
//! `SEGMENTS_SOAK=N` multiplies the rounds and kills by N (see the README).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use segments::{
    Error, ListOptions, MemberOptions, NewSegment, OrgId, SegmentId, Segments, SqliteStore,
    Synchronous,
};

const CHILD: &str = "SEGMENTS_CHILD";
const DB: &str = "SEGMENTS_DB";
const SYNC: &str = "SEGMENTS_SYNC";
const BATCH: usize = 2_000;

fn main() {
    match std::env::var(CHILD).as_deref() {
        Ok("race") => race_child(),
        Ok("writer") => writer_child(),
        Ok(other) => panic!("unknown child mode {other:?}"),
        Err(_) => {
            let soak: usize = std::env::var("SEGMENTS_SOAK")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(1);
            let started = Instant::now();
            races_across_processes_have_one_winner_per_name(soak);
            killed_writers_leave_whole_batches(soak);
            println!("processes: all checks passed in {:.1?}", started.elapsed());
        }
    }
}

fn org() -> OrgId {
    OrgId::new("acme").unwrap()
}

fn open(path: &Path, sync: Synchronous) -> Segments<SqliteStore> {
    Segments::new(
        SqliteStore::builder()
            .synchronous(sync)
            .open(path)
            .expect("the file opens"),
    )
}

fn spawn(mode: &str, db: &Path, sync: &str, seed: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .env(CHILD, mode)
        .env(DB, db)
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
fn race(segments: &Segments<SqliteStore>, seed: u64, out: &mut impl Write) {
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

fn race_child() {
    let db = std::env::var(DB).unwrap();
    let segments = open(Path::new(&db), Synchronous::Normal);
    let mut out = std::io::stdout().lock();
    race(&segments, seed(), &mut out);
    writeln!(out, "done").unwrap();
}

fn races_across_processes_have_one_winner_per_name(soak: usize) {
    const PROCESSES: usize = 3;
    const THREADS: usize = 2;
    for round in 0..soak {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("race.db");
        let base = seed();
        println!(
            "race round {round}: seed {base}, {PROCESSES} processes and {THREADS} threads on one file"
        );
        // No one creates the file first: the processes race to do it.
        let children: Vec<Child> = (0..PROCESSES)
            .map(|i| spawn("race", &db, "normal", base + i as u64))
            .collect();
        let mut wins: HashMap<String, usize> = HashMap::new();
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let db = db.clone();
                    scope.spawn(move || {
                        let segments = open(&db, Synchronous::Normal);
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
        });
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
        // Deletions free names, so a name may be won again later; what must
        // hold is that live names are unique and sizes are exact.
        let segments = open(&db, Synchronous::Normal);
        let org = org();
        let live = segments
            .list(&org, ListOptions::new().limit(1_000))
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
        let ledger = segments.changes_since(&org, 0, 10_000).unwrap().changes;
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
        let count = |kind: fn(&segments::ChangeKind) -> bool| {
            ledger.iter().filter(|c| kind(&c.kind)).count()
        };
        let deletions = count(|k| *k == segments::ChangeKind::Deleted);
        assert_eq!(
            count(|k| matches!(k, segments::ChangeKind::Created { .. })),
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
}

fn members_of(segments: &Segments<SqliteStore>, org: &OrgId, id: SegmentId) -> u64 {
    let mut n = 0;
    let mut options = MemberOptions::new().limit(10_000);
    loop {
        let page = segments.members(org, id, options.clone()).unwrap();
        n += page.members.len() as u64;
        match page.next {
            Some(next) => options = MemberOptions::new().after(next).limit(10_000),
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
    let db = std::env::var(DB).unwrap();
    let sync = match std::env::var(SYNC).as_deref() {
        Ok("full") => Synchronous::Full,
        _ => Synchronous::Normal,
    };
    let segments = open(Path::new(&db), sync);
    let org = org();
    let id = match segments.find_by_name(&org, "crash").unwrap() {
        Some(s) => s.id,
        None => segments.create(&org, NewSegment::new("crash")).unwrap().id,
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    let start: u64 = seed() * 10_000;
    for batch in start.. {
        let pids: Vec<String> = (0..BATCH).map(|i| format!("p-{batch}x{i}")).collect();
        segments.add_members(&org, id, &pids).unwrap();
        if batch % 3 == 2 {
            let some: Vec<&str> = pids.iter().step_by(2).map(String::as_str).collect();
            segments.remove_members(&org, id, &some).unwrap();
            writeln!(out, "committed {batch} halved").unwrap();
        } else {
            writeln!(out, "committed {batch}").unwrap();
        }
        out.flush().unwrap();
    }
}

fn killed_writers_leave_whole_batches(soak: usize) {
    let kills = 30 * soak;
    let dir = tempfile::tempdir().unwrap();
    let base = seed();
    let mut rng = Rng(base);
    println!("crash: seed {base}, {kills} SIGKILLs of a writer mid-batch");
    let mut committed: Vec<(u64, bool)> = Vec::new();
    for kill in 0..kills {
        // Both durability modes, on files of their own: after a process
        // crash neither may lose a batch whose call returned.
        let (sync, db) = if kill % 2 == 0 {
            ("normal", dir.path().join("normal.db"))
        } else {
            ("full", dir.path().join("full.db"))
        };
        let mut child = spawn("writer", &db, sync, kill as u64 + 1);
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        assert_eq!(
            lines.next().unwrap().unwrap(),
            "ready",
            "the writer started"
        );
        std::thread::sleep(Duration::from_millis(20 + rng.below(180)));
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        let mut seen = Vec::new();
        for line in lines.map_while(Result::ok) {
            let mut words = line.split_whitespace().skip(1);
            let batch: u64 = words.next().unwrap().parse().unwrap();
            seen.push((batch, words.next() == Some("halved")));
        }
        check_file(&db, &seen, sync);
        committed.extend(seen);
    }
    println!(
        "crash: {kills} kills, {} batches committed before a kill, every one whole and present",
        committed.len()
    );
}

/// After a kill: the file is sound, every batch is whole or absent, the
/// reported ones are present, and the size is exact.
fn check_file(db: &Path, reported: &[(u64, bool)], sync: &str) {
    let raw = rusqlite::Connection::open(db).unwrap();
    let integrity: String = raw
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok", "integrity_check after a kill ({sync})");
    drop(raw);
    let segments = open(db, Synchronous::Normal);
    let org = org();
    let s = segments
        .find_by_name(&org, "crash")
        .unwrap()
        .expect("the segment survived");
    let mut by_batch: BTreeMap<u64, usize> = BTreeMap::new();
    let mut options = MemberOptions::new().limit(10_000);
    loop {
        let page = segments.members(&org, s.id, options.clone()).unwrap();
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
            Some(next) => options = MemberOptions::new().after(next).limit(10_000),
            None => break,
        }
    }
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
        s.current_size as usize, total,
        "current_size matches the members after a kill ({sync})"
    );
}
