//! The documented Segments HTTP API, served with axum over a SQLite file or
//! a PostgreSQL database.
//!
//! ```text
//! cargo run --features wire --example server -- --db segments.db --listen 127.0.0.1:8080 \
//!     --api-key KEY=ORG [--api-key K2=ORG2] [--rps N [--burst N]]
//! cargo run --features wire,postgres --example server -- --postgres postgresql://app@db/app \
//!     --api-key KEY=ORG
//! ```
//!
//! - `--db PATH`: the SQLite file, created if missing (default `segments.db`).
//! - `--postgres URL`: a PostgreSQL database instead of a file (needs the
//!   `postgres` feature); several servers may share it.
//! - `--listen ADDR`: the socket address to bind (default `127.0.0.1:8080`;
//!   port `0` picks a free one, and the address printed is the real one).
//! - `--api-key KEY=ORG`: lets requests whose `x-api-key` header is `KEY`
//!   act for organization `ORG`. At least one; repeat for more. Only the
//!   SHA-256 digest of each key is kept in memory.
//! - `--rps N`, `--burst N`: each organization's request rate; over it, a
//!   `429` with `Retry-After`. `--burst` defaults to `--rps`. Without
//!   `--rps` there is no limit.
//!
//! Bad arguments print what is wrong and exit with status 2. Ctrl-C (or
//! SIGTERM) stops accepting connections, lets requests in flight finish,
//! and exits with status 0. One line per request goes to stdout.

use std::collections::HashMap;
use std::error::Error as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use segments::wire::{KeyRing, RateLimit, Wire};
use segments::{OrgId, Segments, SqliteStore};

use app::Store;

mod app;

/// The usage text, printed for `--help` and after a bad argument.
const USAGE: &str = "\
usage: server [--db PATH | --postgres URL] [--listen ADDR]
              --api-key KEY=ORG [--api-key KEY=ORG ...] [--rps N [--burst N]]

  --db PATH          SQLite file, created if missing (default segments.db)
  --postgres URL     a PostgreSQL database instead (feature postgres)
  --listen ADDR      address to bind (default 127.0.0.1:8080)
  --api-key KEY=ORG  x-api-key KEY acts for organization ORG (at least one)
  --rps N            per-organization requests per second (default: no limit)
  --burst N          requests allowed at once (default: the --rps value)";

/// Where the server keeps its data.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Database {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by URL.
    Postgres(String),
}

impl Database {
    /// Opens the store.
    fn open(&self) -> segments::Result<Store> {
        match self {
            Database::Sqlite(path) => Ok(Box::new(SqliteStore::open(path)?)),
            #[cfg(feature = "postgres")]
            Database::Postgres(url) => Ok(Box::new(segments::PostgresStore::connect(url)?)),
            #[cfg(not(feature = "postgres"))]
            Database::Postgres(_) => unreachable!("refused when the arguments were read"),
        }
    }

    /// How the startup line names it (a URL without its password).
    fn describe(&self) -> String {
        match self {
            Database::Sqlite(path) => path.display().to_string(),
            Database::Postgres(url) => match url.split_once('@') {
                Some((_, host)) => format!("postgresql://…@{host}"),
                None => url.clone(),
            },
        }
    }
}

/// What the command line asks for.
#[derive(Debug)]
struct Args {
    /// The store.
    db: Database,
    /// Where to listen.
    listen: SocketAddr,
    /// API keys and the org each acts for.
    keys: Vec<(String, OrgId)>,
    /// The per-org rate limit, if any.
    rate: Option<RateLimit>,
}

/// What to do after reading the command line.
#[derive(Debug)]
enum Command {
    /// Serve with these arguments.
    Serve(Args),
    /// Print the usage and stop.
    Help,
}

/// Reads the arguments after the program name; `Err` says what is wrong.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut db = None;
    let mut postgres: Option<String> = None;
    let mut listen = None;
    let mut keys: Vec<(String, OrgId)> = Vec::new();
    let mut rps = None;
    let mut burst = None;

    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(Command::Help);
        }
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--db" => set_once(&mut db, &flag, PathBuf::from(value()?))?,
            "--postgres" => {
                let url = value()?;
                if !cfg!(feature = "postgres") {
                    return Err("--postgres needs the postgres feature: \
                         cargo run --features wire,postgres --example server -- ..."
                        .into());
                }
                set_once(&mut postgres, &flag, url)?;
            }
            "--listen" => {
                let text = value()?;
                let addr = text.parse::<SocketAddr>().map_err(|e| {
                    format!("--listen {text:?} is not a socket address like 127.0.0.1:8080: {e}")
                })?;
                set_once(&mut listen, &flag, addr)?;
            }
            "--api-key" => {
                let text = value()?;
                let (key, org) = text
                    .split_once('=')
                    .ok_or_else(|| format!("--api-key {text:?} must be KEY=ORG (no '=' found)"))?;
                if key.is_empty() {
                    return Err(format!("--api-key {text:?} has an empty KEY"));
                }
                let org = OrgId::new(org).map_err(|e| {
                    format!("--api-key {text:?}: {org:?} is not a valid org id: {e}")
                })?;
                if keys.iter().any(|(k, _)| k == key) {
                    return Err(format!("--api-key: the key {key:?} is given twice"));
                }
                keys.push((key.to_owned(), org));
            }
            "--rps" => set_once(&mut rps, &flag, positive(&flag, &value()?)?)?,
            "--burst" => set_once(&mut burst, &flag, positive(&flag, &value()?)?)?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }

    if keys.is_empty() {
        return Err(
            "at least one --api-key KEY=ORG is needed; without one every request is refused".into(),
        );
    }
    let rate = match (rps, burst) {
        // `positive` refused zeros above, so the limit exists.
        (Some(rps), burst) => RateLimit::new(rps, burst.unwrap_or(rps)),
        (None, Some(_)) => return Err("--burst needs --rps".into()),
        (None, None) => None,
    };
    let db = match (db, postgres) {
        (Some(_), Some(_)) => return Err("give --db or --postgres, not both".into()),
        (None, Some(url)) => Database::Postgres(url),
        (db, None) => Database::Sqlite(db.unwrap_or_else(|| PathBuf::from("segments.db"))),
    };
    Ok(Command::Serve(Args {
        db,
        listen: listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
        keys,
        rate,
    }))
}

/// Stores `value` in `slot`, refusing a flag given twice.
fn set_once<T>(slot: &mut Option<T>, flag: &str, value: T) -> Result<(), String> {
    if slot.replace(value).is_some() {
        return Err(format!("{flag} is given twice"));
    }
    Ok(())
}

/// A whole number of at least 1.
fn positive(flag: &str, text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "{flag} {text:?} must be a whole number from 1 to {}",
            u32::MAX
        )),
    }
}

/// Resolves when the process is asked to stop: Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            eprintln!("cannot listen for Ctrl-C ({e}); stop the server another way");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    println!("shutting down: finishing requests in flight");
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Serve(args)) => args,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    // Stores are synchronous (PostgreSQL's client runs its own small
    // runtime): they open, like every call, off the async threads.
    let db = args.db.clone();
    let opened = tokio::task::spawn_blocking(move || db.open())
        .await
        .expect("opening the store does not panic");
    let store = match opened {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: cannot open {}: {e}", args.db.describe());
            let mut source = e.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            return ExitCode::FAILURE;
        }
    };

    let mut ring = KeyRing::new();
    let mut orgs: HashMap<&str, usize> = HashMap::new();
    for (key, org) in &args.keys {
        ring.insert(key, org.clone());
        *orgs.entry(org.as_str()).or_default() += 1;
    }
    let mut wire = Wire::new(Segments::new(store), ring);
    if let Some(rate) = args.rate {
        wire = wire.with_rate_limit(rate);
    }

    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().map_or(args.listen, |a| a);
    let mut orgs: Vec<_> = orgs.into_iter().collect();
    orgs.sort_unstable();
    let orgs: Vec<String> = orgs
        .iter()
        .map(|(org, n)| format!("{org} ({n} key(s))"))
        .collect();
    let rate = args.rate.map_or_else(
        || "no rate limit".to_owned(),
        |r| format!("{} req/s, burst {} per org", r.per_second, r.burst),
    );
    println!(
        "segments server listening on http://{addr} (database {}; orgs: {}; {rate})",
        args.db.describe(),
        orgs.join(", "),
    );

    let served = axum::serve(listener, app::router(Arc::new(wire)))
        .with_graceful_shutdown(shutdown_signal())
        .await;
    match served {
        Ok(()) => {
            println!("server stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: the server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_args(args.iter().map(|a| (*a).to_owned()))
    }

    #[test]
    fn arguments_are_read_and_checked() {
        let Ok(Command::Serve(args)) = parse(&["--api-key", "k=acme", "--rps", "5"]) else {
            panic!("a key and --rps are enough");
        };
        assert_eq!(args.db, Database::Sqlite(PathBuf::from("segments.db")));
        assert!(
            parse(&[
                "--api-key",
                "k=a",
                "--db",
                "x.db",
                "--postgres",
                "postgresql://h/d"
            ])
            .unwrap_err()
            .contains("not both")
        );
        if cfg!(feature = "postgres") {
            let Ok(Command::Serve(args)) =
                parse(&["--api-key", "k=a", "--postgres", "postgresql://u:pw@h/d"])
            else {
                panic!("--postgres is read");
            };
            assert_eq!(args.db, Database::Postgres("postgresql://u:pw@h/d".into()));
            assert_eq!(
                args.db.describe(),
                "postgresql://…@h/d",
                "no password printed"
            );
        }
        assert_eq!(args.rate, RateLimit::new(5, 5), "burst defaults to rps");
        assert!(parse(&["--api-key", "k"]).unwrap_err().contains("KEY=ORG"));
        assert!(
            parse(&["--api-key", "k=a b"])
                .unwrap_err()
                .contains("org id")
        );
        assert!(parse(&["--api-key", "k=a", "--burst", "3"]).is_err());
        assert!(parse(&["--api-key", "k=a", "--rps", "0"]).is_err());
        assert!(parse(&["--api-key", "k=a", "--listen", "localhost"]).is_err());
        assert!(parse(&[]).is_err(), "no key");
        assert!(matches!(parse(&["--help"]), Ok(Command::Help)));
    }
}
