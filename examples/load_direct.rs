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
use std::time::Duration;

use clap::{Parser, Subcommand};
use segments_engine::sqlite::Synchronous;
use segments_engine::{OrgId, PageOptions, Segments, SqliteStore};

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

#[path = "../benches/mix.rs"]
mod mix;

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
    let out = mix::run(&segments, &org, threads, Duration::from_secs(seconds));
    let errors = out.errors;
    println!(
        "DIRECT threads={threads} ops={} seconds={:.3} ops_per_s={:.1} p50_ms={:.3} p99_ms={:.3} errors={errors}",
        out.ops,
        out.seconds,
        out.ops_per_s(),
        out.p50_ms,
        out.p99_ms,
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
    let mut options = PageOptions::new().limit(1_000);
    loop {
        let page = segments.list(&org, options)?;
        for segment in &page.segments {
            let mut counted = 0u64;
            let mut members = PageOptions::new().limit(10_000);
            loop {
                let list = segments.members(&org, segment.id, members)?;
                counted += list.members.len() as u64;
                match list.next {
                    Some(next) => members = PageOptions::new().limit(10_000).after(next),
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
            Some(next) => options = PageOptions::new().limit(1_000).after(next),
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
