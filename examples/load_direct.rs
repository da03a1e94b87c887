//! The load script's other half (`benches/load.sh`): the library's own
//! throughput for the mix the script drives the server with, and the checks
//! of a database after a run.
//!
//! ```text
//! cargo run --release --example load_direct -- run --db load.db --threads 64 --seconds 30 [--synchronous full]
//! cargo run --release --example load_direct -- check --db load.db --org load
//! ```
//!
//! `run`: `--threads` threads call one `Segments<SqliteStore>` directly for
//! `--seconds`, each in a loop of the mix: 10% `create`, 60% `add_members`
//! of 10 random PIDs (`p-` and 12 hex digits) to one of the thread's last
//! 32 segments, 30% `members_page(1)` of one of them. It prints one line:
//! `DIRECT threads=… ops=… seconds=… ops_per_s=… p50_ms=… p99_ms=… errors=…`.
//!
//! `check`: the file's `PRAGMA integrity_check`, then every segment of
//! `--org`: its `current_size` against its members counted by walking the
//! cursor API. Prints `CHECK integrity=ok segments=… members=…`, and exits
//! with status 1 on any mismatch.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use segments_engine::{
    ListOptions, MemberOptions, NewSegment, OrgId, SegmentId, Segments, SqliteStore, Synchronous,
};

#[derive(Debug, Parser)]
#[command(name = "load_direct")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the mix on the library directly and prints its rate.
    Run {
        /// The SQLite file (created if missing).
        #[arg(long)]
        db: PathBuf,
        /// Threads calling the library at once.
        #[arg(long, default_value_t = 64)]
        threads: usize,
        /// How long to run.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// The organization to act for.
        #[arg(long, default_value = "load")]
        org: String,
        /// `PRAGMA synchronous`: `normal` (the store's default) or `full`.
        #[arg(long, default_value = "normal", value_parser = ["normal", "full"])]
        synchronous: String,
    },
    /// Checks a database after a run.
    Check {
        /// The SQLite file.
        #[arg(long)]
        db: PathBuf,
        /// The organization whose segments are checked.
        #[arg(long, default_value = "load")]
        org: String,
    },
}

/// The share of each call in the mix, out of 100.
const CREATE_PERCENT: u64 = 10;
const ADD_PERCENT: u64 = 60;
/// PIDs in each add.
const PIDS_PER_ADD: usize = 10;
/// How many of its latest segments a thread spreads its calls over.
const RECENT: usize = 32;

/// A small, fast generator (xorshift64*), seeded per thread.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// What one thread did.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
}

fn run(
    db: PathBuf,
    threads: usize,
    seconds: u64,
    org: &str,
    synchronous: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let synchronous = match synchronous {
        "full" => Synchronous::Full,
        _ => Synchronous::Normal,
    };
    let store = SqliteStore::builder().synchronous(synchronous).open(&db)?;
    let segments = Arc::new(Segments::new(store));
    let org = OrgId::new(org)?;
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let segments = Arc::clone(&segments);
            let org = org.clone();
            std::thread::spawn(move || {
                let mut rng =
                    Rng(0x9e37_79b9_7f4a_7c15 ^ ((t as u64 + 1) << 32) ^ std::process::id() as u64);
                let mut mine: Vec<SegmentId> = Vec::new();
                let mut tally = Tally::default();
                let mut created = 0u64;
                while Instant::now() < until {
                    let roll = rng.next() % 100;
                    let began = Instant::now();
                    let ok = if mine.is_empty() || roll < CREATE_PERCENT {
                        created += 1;
                        let name = format!("direct {t} {created} {:x}", rng.next());
                        segments
                            .create(&org, NewSegment::new(name))
                            .map(|s| mine.push(s.id))
                            .is_ok()
                    } else {
                        let recent = &mine[mine.len().saturating_sub(RECENT)..];
                        let id = recent[(rng.next() % recent.len() as u64) as usize];
                        if roll < CREATE_PERCENT + ADD_PERCENT {
                            let pids: Vec<String> = (0..PIDS_PER_ADD)
                                .map(|_| format!("p-{:012x}", rng.next() >> 16))
                                .collect();
                            segments.add_members(&org, id, &pids).is_ok()
                        } else {
                            segments.members_page(&org, id, 1).is_ok()
                        }
                    };
                    let micros = began.elapsed().as_micros();
                    tally
                        .latencies_us
                        .push(u32::try_from(micros).unwrap_or(u32::MAX));
                    tally.errors += u64::from(!ok);
                }
                tally
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for handle in handles {
        let tally = handle.join().expect("a load thread does not panic");
        latencies.extend(tally.latencies_us);
        errors += tally.errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let percentile = |p: f64| {
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        f64::from(latencies[i]) / 1000.0
    };
    println!(
        "DIRECT threads={threads} ops={} seconds={elapsed:.3} ops_per_s={:.1} p50_ms={:.3} p99_ms={:.3} errors={errors}",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        percentile(0.50),
        percentile(0.99),
    );
    if errors > 0 {
        return Err(format!("{errors} calls failed").into());
    }
    Ok(())
}

fn check(db: PathBuf, org: &str) -> Result<(), Box<dyn std::error::Error>> {
    let integrity: Vec<String> = {
        let conn = rusqlite::Connection::open(&db)?;
        let mut statement = conn.prepare("PRAGMA integrity_check")?;
        statement
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?
    };
    if integrity != ["ok"] {
        return Err(format!("PRAGMA integrity_check: {integrity:?}").into());
    }
    let segments = Segments::new(SqliteStore::open(&db)?);
    let org = OrgId::new(org)?;
    let (mut n_segments, mut n_members, mut mismatches) = (0u64, 0u64, Vec::new());
    let mut options = ListOptions::new().limit(1_000);
    loop {
        let page = segments.list(&org, options)?;
        for segment in &page.segments {
            let mut counted = 0u64;
            let mut members = MemberOptions::new().limit(10_000);
            loop {
                let list = segments.members(&org, segment.id, members)?;
                counted += list.members.len() as u64;
                match list.next {
                    Some(next) => members = MemberOptions::new().limit(10_000).after(next),
                    None => break,
                }
            }
            if counted != segment.current_size {
                mismatches.push(format!(
                    "{}: current_size {} but {counted} members",
                    segment.id, segment.current_size
                ));
            }
            n_segments += 1;
            n_members += counted;
        }
        match page.next {
            Some(next) => options = ListOptions::new().limit(1_000).after(next),
            None => break,
        }
    }
    println!(
        "CHECK integrity=ok segments={n_segments} members={n_members} mismatches={}",
        mismatches.len()
    );
    if !mismatches.is_empty() {
        return Err(mismatches.join("\n").into());
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let outcome = match Args::parse().command {
        Command::Run {
            db,
            threads,
            seconds,
            org,
            synchronous,
        } => run(db, threads, seconds, &org, &synchronous),
        Command::Check { db, org } => check(db, &org),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
