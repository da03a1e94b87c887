//! The `server` example as a process: it serves requests, then stops on
//! SIGINT (Ctrl-C) or SIGTERM with exit status 0 and no panic, on SQLite
//! and (feature `postgres`) on PostgreSQL (the throwaway test server, or
//! `SEGMENTS_POSTGRES_URL`).
//!
//! The example's binary is built by `cargo build --example server` with
//! this test's own features and profile (so it is the library this test
//! was built with), then run on a free loopback port. Before the signal,
//! each case creates a segment through HTTP and reads `/healthz` (a call
//! through `AsyncSegments`), so the store has connections open and the
//! service has run calls on the blocking pool when the server stops.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

use serde_json::{Value, json};

#[cfg(feature = "postgres")]
mod support;

/// The API key of the org a case acts for.
const KEY: &str = "mk_live_signals";

/// The example's binary, built once per test process.
fn server_binary() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let features: Vec<&str> = [
            ("sqlite", cfg!(feature = "sqlite")),
            ("postgres", cfg!(feature = "postgres")),
            ("postgres-tls", cfg!(feature = "postgres-tls")),
            ("conformance", cfg!(feature = "conformance")),
            ("serde", cfg!(feature = "serde")),
            ("tracing", cfg!(feature = "tracing")),
            ("wire", cfg!(feature = "wire")),
            ("tokio", cfg!(feature = "tokio")),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
        let mut build = Command::new(env!("CARGO"));
        build
            .args(["build", "--example", "server", "--no-default-features"])
            .args(["--features", &features.join(",")])
            .args([
                "--manifest-path",
                concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
            ])
            .arg("--message-format=json-render-diagnostics")
            .stderr(Stdio::inherit());
        if !cfg!(debug_assertions) {
            build.arg("--release");
        }
        let built = build.output().expect("cargo runs");
        assert!(
            built.status.success(),
            "cargo build --example server failed"
        );
        String::from_utf8_lossy(&built.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "server")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo names the example's executable")
    })
}

/// A running server process.
struct Server {
    child: Child,
    base: String,
    stdout: BufReader<ChildStdout>,
}

impl Server {
    /// Starts the example with `database` (`--db PATH` or `--postgres URL`)
    /// for org `org`, and waits for its line saying where it listens.
    fn start(database: &[&str], org: &str) -> Server {
        let mut child = Command::new(server_binary())
            .args(database)
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(["--api-key", &format!("{KEY}={org}")])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut line = String::new();
        let base = loop {
            line.clear();
            let read = stdout.read_line(&mut line).expect("the server's stdout");
            assert!(
                read > 0,
                "the server exited before listening: {}",
                rest(&mut child)
            );
            let message = serde_json::from_str::<Value>(&line)
                .ok()
                .and_then(|l| l["message"].as_str().map(str::to_owned));
            if let Some(at) = message
                .as_deref()
                .and_then(|m| m.split_once("listening on "))
            {
                break at.1.to_owned();
            }
        };
        Server {
            child,
            base,
            stdout,
        }
    }

    /// Serves a create, then a health check.
    fn serve_requests(&self, name: &str) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut created = agent
            .post(format!("{}/v2/segments/create", self.base))
            .header("x-api-key", KEY)
            .header("content-type", "application/json")
            .send(json!({ "name": name }).to_string())
            .expect("the create is answered");
        let body: Value =
            serde_json::from_str(&created.body_mut().read_to_string().unwrap()).unwrap();
        assert_eq!(created.status(), 200, "created: {body}");
        assert!(body["segment_id"].is_string(), "a segment id: {body}");
        let mut health = agent
            .get(format!("{}/healthz", self.base))
            .call()
            .expect("the health check is answered");
        let health_body = health.body_mut().read_to_string().unwrap();
        assert_eq!(health.status(), 200, "healthy: {health_body}");
    }

    /// Sends `signal` (`INT` or `TERM`) and waits for the process to end:
    /// its exit status, its remaining stdout and its stderr.
    fn stop_with(mut self, signal: &str) -> (std::process::ExitStatus, String, String) {
        let sent = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "the signal is sent");
        let mut stdout = String::new();
        self.stdout
            .read_to_string(&mut stdout)
            .expect("the server's stdout");
        let stderr = rest(&mut self.child);
        let status = self.child.wait().expect("the server ends");
        (status, stdout, stderr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A case that failed midway still stops its server.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the process wrote on stderr, to its end.
fn rest(child: &mut Child) -> String {
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    stderr
}

/// Serves a create and a health check on `database`, stops the server
/// with `signal`, and checks that it stopped cleanly.
fn serves_then_stops_cleanly(database: &[&str], org: &str, signal: &str) {
    let server = Server::start(database, org);
    server.serve_requests(&format!("Before SIG{signal}"));
    let (status, stdout, stderr) = server.stop_with(signal);
    assert!(
        !stderr.contains("panic") && !stdout.contains("panic"),
        "no panic on SIG{signal}: stderr {stderr:?}, stdout {stdout:?}"
    );
    assert_eq!(
        status.code(),
        Some(0),
        "exit status 0 on SIG{signal} ({status}); stderr {stderr:?}"
    );
    assert!(
        stdout.contains("server stopped"),
        "a graceful stop is logged: {stdout:?}"
    );
}

#[test]
fn on_sqlite_sigint_stops_the_server_with_status_0() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("segments.db");
    serves_then_stops_cleanly(&["--db", db.to_str().unwrap()], "acme", "INT");
}

#[test]
fn on_sqlite_sigterm_stops_the_server_with_status_0() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("segments.db");
    serves_then_stops_cleanly(&["--db", db.to_str().unwrap()], "acme", "TERM");
}

/// An org of this test run's own, so the cases share a database safely.
#[cfg(feature = "postgres")]
fn pg_org(case: &str) -> String {
    format!("signals-{case}-{}", uuid_like())
}

/// A fresh suffix: the process id and the time, in hex.
#[cfg(feature = "postgres")]
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}-{nanos:x}", std::process::id())
}

#[cfg(feature = "postgres")]
#[test]
fn on_postgres_sigint_stops_the_server_with_status_0() {
    let url = support::postgres::url();
    serves_then_stops_cleanly(&["--postgres", &url], &pg_org("int"), "INT");
}

#[cfg(feature = "postgres")]
#[test]
fn on_postgres_sigterm_stops_the_server_with_status_0() {
    let url = support::postgres::url();
    serves_then_stops_cleanly(&["--postgres", &url], &pg_org("term"), "TERM");
}
