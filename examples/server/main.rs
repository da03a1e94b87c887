//! The documented Segments HTTP API, served with axum over a SQLite file or
//! a PostgreSQL database.
//!
//! ```text
//! cargo run --features wire,tokio --example server -- --db segments.db --listen 127.0.0.1:8080 \
//!     --api-key KEY=ORG [--api-key K2=ORG2] [--rps N [--burst N]] \
//!     [--request-timeout SECONDS] [--log-format text|json]
//! cargo run --features wire,tokio,postgres --example server -- --postgres postgresql://app@db/app \
//!     --api-key KEY=ORG
//! cargo run --features wire,tokio,postgres-tls --example server -- \
//!     --postgres postgresql://app@db/app --postgres-ca ca.pem --api-key KEY=ORG
//! ```
//!
//! `--help` lists the options. Bad arguments print what is wrong and exit
//! with status 2. Ctrl-C (or SIGTERM) stops accepting connections, lets
//! requests in flight finish, and exits with status 0. Logs go to stdout,
//! one line per request (`RUST_LOG` sets the levels; `info` by default);
//! the first line says where the server listens.

use std::collections::HashMap;
use std::error::Error as _;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use segments_engine::wire::{KeyRing, RateLimit, Wire};
use segments_engine::{AsyncSegments, OrgId, Segments, SqliteStore};
use tracing_subscriber::EnvFilter;

use app::{LogFormat, Store};

mod app;

/// The documented Segments HTTP API over a SQLite file or a PostgreSQL
/// database.
#[derive(Debug, Parser)]
#[command(name = "server", version)]
struct Args {
    /// SQLite file, created if missing.
    #[arg(long, value_name = "PATH", default_value = "segments.db")]
    db: PathBuf,

    /// A PostgreSQL database instead of --db (feature `postgres`); several
    /// servers may share it.
    #[arg(long, value_name = "URL", conflicts_with = "db", value_parser = postgres_url)]
    postgres: Option<String>,

    /// PEM file of the root certificates that vouch for the PostgreSQL
    /// server (feature `postgres-tls`): TCP connections use TLS (unless
    /// the URL says sslmode=disable), and the server's certificate and host
    /// name are checked.
    #[arg(long, value_name = "PATH", requires = "postgres", value_parser = postgres_ca)]
    postgres_ca: Option<Pem>,

    /// Address to bind; port 0 picks a free one (the address logged is the
    /// real one).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,

    /// Requests whose x-api-key header is KEY act for organization ORG. At
    /// least one; repeat for more. Only SHA-256 digests of the keys are kept.
    #[arg(long = "api-key", value_name = "KEY=ORG", required = true, value_parser = api_key)]
    api_keys: Vec<ApiKey>,

    /// Each organization's sustained requests per second; over it, a 429
    /// with Retry-After. No limit without it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    rps: Option<u32>,

    /// Requests an organization may make at once [default: the --rps value].
    #[arg(long, value_name = "N", requires = "rps", value_parser = clap::value_parser!(u32).range(1..))]
    burst: Option<u32>,

    /// Seconds a request may take before it is answered with a 503 (a store
    /// call already running still runs to its end).
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = seconds)]
    request_timeout: Duration,

    /// How log lines are written.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// One `--api-key KEY=ORG`.
#[derive(Clone, Debug)]
struct ApiKey {
    key: String,
    org: OrgId,
}

/// Reads `KEY=ORG`.
fn api_key(text: &str) -> Result<ApiKey, String> {
    let (key, org) = text
        .split_once('=')
        .ok_or("must be KEY=ORG (no '=' found)")?;
    if key.is_empty() {
        return Err("KEY is empty".into());
    }
    let org = OrgId::new(org).map_err(|e| format!("{org:?} is not a valid org id: {e}"))?;
    Ok(ApiKey {
        key: key.to_owned(),
        org,
    })
}

/// Refuses `--postgres` in a build without the `postgres` feature.
fn postgres_url(url: &str) -> Result<String, String> {
    if cfg!(feature = "postgres") {
        Ok(url.to_owned())
    } else {
        Err("--postgres needs the postgres feature: \
             cargo run --features wire,tokio,postgres --example server -- ..."
            .into())
    }
}

/// The contents of a PEM file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pem(Vec<u8>);

/// Reads `--postgres-ca`, in a build with the `postgres-tls` feature.
fn postgres_ca(path: &str) -> Result<Pem, String> {
    if !cfg!(feature = "postgres-tls") {
        return Err("--postgres-ca needs the postgres-tls feature: \
                    cargo run --features wire,tokio,postgres-tls --example server -- ..."
            .into());
    }
    std::fs::read(path)
        .map(Pem)
        .map_err(|e| format!("cannot read {path}: {e}"))
}

/// A positive number of seconds, whole or not.
fn seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 => Duration::try_from_secs_f64(s).map_err(|e| e.to_string()),
        _ => Err("must be a number of seconds above 0".into()),
    }
}

/// Where the server keeps its data.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Database {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by URL, and the roots that vouch for its
    /// TLS certificate, if it is to be checked.
    Postgres { url: String, ca: Option<Pem> },
}

impl Database {
    /// Opens the store.
    fn open(&self) -> segments_engine::Result<Store> {
        match self {
            Database::Sqlite(path) => Ok(Arc::new(SqliteStore::open(path)?)),
            #[cfg(feature = "postgres")]
            Database::Postgres { url, ca } => {
                let builder = segments_engine::PostgresStore::builder(url);
                #[cfg(feature = "postgres-tls")]
                let builder = match ca {
                    Some(Pem(pem)) => {
                        builder.tls(segments_engine::PostgresTls::root_certificates_pem(pem)?)
                    }
                    None => builder,
                };
                #[cfg(not(feature = "postgres-tls"))]
                assert!(ca.is_none(), "refused when the arguments were read");
                Ok(Arc::new(builder.connect()?))
            }
            #[cfg(not(feature = "postgres"))]
            Database::Postgres { .. } => unreachable!("refused when the arguments were read"),
        }
    }

    /// How the startup line names it (a URL without its password).
    fn describe(&self) -> String {
        match self {
            Database::Sqlite(path) => path.display().to_string(),
            Database::Postgres { url, .. } => match url.split_once('@') {
                Some((_, host)) => format!("postgresql://…@{host}"),
                None => url.clone(),
            },
        }
    }
}

impl Args {
    /// Reads the command line, or exits with clap's message (status 2; 0
    /// for `--help` and `--version`).
    fn read() -> Self {
        let args = Self::parse();
        if let Err(message) = args.check() {
            use clap::CommandFactory as _;
            Self::command()
                .error(clap::error::ErrorKind::ArgumentConflict, message)
                .exit();
        }
        args
    }

    /// What clap's declarations cannot say.
    fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for ApiKey { key, .. } in &self.api_keys {
            if !seen.insert(key) {
                return Err(format!("--api-key: the key {key:?} is given twice"));
            }
        }
        Ok(())
    }

    fn database(&self) -> Database {
        match &self.postgres {
            Some(url) => Database::Postgres {
                url: url.clone(),
                ca: self.postgres_ca.clone(),
            },
            None => Database::Sqlite(self.db.clone()),
        }
    }

    fn rate(&self) -> Option<RateLimit> {
        // clap refused zeros, so the limit exists when --rps is given.
        let rps = self.rps?;
        RateLimit::new(rps, self.burst.unwrap_or(rps))
    }
}

/// Resolves when the process is asked to stop: Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for Ctrl-C ({e}); stop the server another way");
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
    tracing::info!("shutting down: finishing requests in flight");
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::read();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stdout().is_terminal();
    let logs = app::subscriber(args.log_format, filter, std::io::stdout, ansi);
    tracing::subscriber::set_global_default(logs).expect("the only subscriber");

    // Stores are synchronous (PostgreSQL's client runs its own small
    // runtime): they open, like every call, off the async threads, and
    // whatever holds one is dropped off them too (see app.rs): `segments`
    // here, the adapter and the router's service there.
    let db = args.database();
    let opening = db.clone();
    let opened = AsyncSegments::open(move || Ok(Segments::new(opening.open()?))).await;
    let segments = match opened {
        Ok(segments) => segments,
        Err(e) => {
            let mut chain = e.to_string();
            let mut source = e.source();
            while let Some(cause) = source {
                chain = format!("{chain}: {cause}");
                source = cause.source();
            }
            tracing::error!(database = %db.describe(), error = %chain, "cannot open the store");
            return ExitCode::FAILURE;
        }
    };

    let mut ring = KeyRing::new();
    let mut orgs: HashMap<&str, usize> = HashMap::new();
    for ApiKey { key, org } in &args.api_keys {
        ring.insert(key, org.clone());
        *orgs.entry(org.as_str()).or_default() += 1;
    }
    let mut wire = Wire::new(segments.segments().clone(), ring);
    let rate = args.rate();
    if let Some(rate) = rate {
        wire = wire.with_rate_limit(rate);
    }

    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(address = %args.listen, error = %e, "cannot listen");
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
    let rate = rate.map_or_else(
        || "no rate limit".to_owned(),
        |r| format!("{} req/s, burst {} per org", r.per_second, r.burst),
    );
    tracing::info!(
        database = %db.describe(),
        orgs = %orgs.join(", "),
        rate = %rate,
        request_timeout_s = args.request_timeout.as_secs_f64(),
        "segments server listening on http://{addr}"
    );

    let router = app::router(Arc::new(wire), args.request_timeout);
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await;
    match served {
        Ok(()) => {
            tracing::info!("server stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "the server failed");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    fn parse(args: &[&str]) -> Result<Args, String> {
        let args = Args::try_parse_from(std::iter::once("server").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        args.check()?;
        Ok(args)
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn arguments_are_read_and_checked() {
        let args = parse(&["--api-key", "k=acme", "--rps", "5"]).expect("a key and --rps");
        assert_eq!(
            args.database(),
            Database::Sqlite(PathBuf::from("segments.db"))
        );
        assert_eq!(args.rate(), RateLimit::new(5, 5), "burst defaults to rps");
        assert_eq!(args.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(args.request_timeout, Duration::from_secs(30));
        assert_eq!(args.log_format, LogFormat::Text);

        let args = parse(&[
            "--api-key",
            "k=acme",
            "--api-key",
            "k2=globex",
            "--rps",
            "5",
            "--burst",
            "9",
            "--request-timeout",
            "2.5",
            "--log-format",
            "json",
            "--listen",
            "127.0.0.1:0",
        ])
        .expect("every option");
        assert_eq!(args.api_keys.len(), 2);
        assert_eq!(args.api_keys[1].org.as_str(), "globex");
        assert_eq!(args.rate(), RateLimit::new(5, 9));
        assert_eq!(args.request_timeout, Duration::from_millis(2_500));
        assert_eq!(args.log_format, LogFormat::Json);

        let conflict = parse(&["--api-key", "k=a", "--db", "x.db", "--postgres", "u"]);
        if cfg!(feature = "postgres") {
            assert!(conflict.unwrap_err().contains("cannot be used with"));
            let args = parse(&["--api-key", "k=a", "--postgres", "postgresql://u:pw@h/d"])
                .expect("--postgres is read");
            assert_eq!(
                args.database(),
                Database::Postgres {
                    url: "postgresql://u:pw@h/d".into(),
                    ca: None
                }
            );
            assert_eq!(
                args.database().describe(),
                "postgresql://…@h/d",
                "no password printed"
            );
        } else {
            assert!(conflict.is_err());
            let refused = parse(&["--api-key", "k=a", "--postgres", "postgresql://h/d"]);
            assert!(refused.unwrap_err().contains("postgres feature"));
        }
        let ca = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(ca.path(), b"-----BEGIN CERTIFICATE-----\n").unwrap();
        let ca_path = ca.path().to_str().unwrap();
        let with_ca = parse(&[
            "--api-key",
            "k=a",
            "--postgres",
            "u",
            "--postgres-ca",
            ca_path,
        ]);
        if cfg!(feature = "postgres-tls") {
            assert_eq!(
                with_ca.expect("--postgres-ca is read").database(),
                Database::Postgres {
                    url: "u".into(),
                    ca: Some(Pem(b"-----BEGIN CERTIFICATE-----\n".to_vec()))
                }
            );
            let missing = parse(&[
                "--api-key",
                "k=a",
                "--postgres",
                "u",
                "--postgres-ca",
                "/no/such.pem",
            ]);
            assert!(missing.unwrap_err().contains("cannot read /no/such.pem"));
            let alone = parse(&["--api-key", "k=a", "--postgres-ca", ca_path]);
            assert!(alone.is_err(), "--postgres-ca needs --postgres");
        } else {
            assert!(with_ca.is_err());
        }
        assert!(parse(&["--api-key", "k"]).unwrap_err().contains("KEY=ORG"));
        assert!(
            parse(&["--api-key", "=a"])
                .unwrap_err()
                .contains("KEY is empty")
        );
        assert!(
            parse(&["--api-key", "k=a b"])
                .unwrap_err()
                .contains("org id")
        );
        assert!(
            parse(&["--api-key", "k=a", "--api-key", "k=b"])
                .unwrap_err()
                .contains("given twice")
        );
        assert!(
            parse(&["--api-key", "k=a", "--burst", "3"]).is_err(),
            "--burst needs --rps"
        );
        assert!(parse(&["--api-key", "k=a", "--rps", "0"]).is_err());
        assert!(parse(&["--api-key", "k=a", "--db", "a", "--db", "b"]).is_err());
        assert!(parse(&["--api-key", "k=a", "--listen", "localhost"]).is_err());
        assert!(parse(&["--api-key", "k=a", "--request-timeout", "0"]).is_err());
        assert!(parse(&["--api-key", "k=a", "--log-format", "xml"]).is_err());
        assert!(parse(&[]).is_err(), "no key");
    }
}
