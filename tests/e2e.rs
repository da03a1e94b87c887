//! The `server` example end to end: its axum router on a real socket, over a
//! SQLite file in a temporary directory, driven by a blocking HTTP client
//! (ureq) through every route and every refusal the adapter documents.
//!
//! Each test starts its own server (a Tokio runtime, the server in a
//! background task, its own database) and shuts it down gracefully at the
//! end. Every response is checked for `Content-Type: application/json` and an
//! `api_request_id`; every 200 for a well-formed `request_completed_at`;
//! every refusal for the documented error body, including those the
//! server's layers make themselves (the body limit, the timeout, a host
//! route's `405`). The log lines are checked on the router itself, under a
//! subscriber that writes to memory.

#[path = "../examples/server/app.rs"]
mod app;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use axum::http;
use segments_engine::limits::MAX_BODY_BYTES;
use segments_engine::wire::{ErrorDetail, KeyRing, RateLimit, Wire};
use segments_engine::{OrgId, Segments, SqliteStore};
use serde_json::{Value, json};
use tower::ServiceExt as _;
use ureq::Agent;
use ureq::http::HeaderMap;

/// Acts for org `acme`.
const ACME: &str = "mk_live_e2e_acme";
/// Acts for org `globex`.
const GLOBEX: &str = "mk_live_e2e_globex";

/// The request timeout of a test server, unless a test sets its own.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The log lines of every server of this test process, as JSON, in memory.
///
/// One subscriber for the whole process, set before any test makes a
/// request: a subscriber set for one thread only misses events whose
/// callsites another thread (another test's server) met first.
fn logs() -> &'static Logs {
    static LOGS: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = app::subscriber(
            app::LogFormat::Json,
            tracing_subscriber::EnvFilter::new("info"),
            move || writer.clone(),
            false,
        );
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        logs
    })
}

/// The adapter over a new SQLite file in `dir`, for `acme` and `globex`.
fn wire_in(dir: &std::path::Path, rate: Option<RateLimit>) -> Wire<app::Store> {
    let store: app::Store =
        Arc::new(SqliteStore::open(dir.join("segments.db")).expect("the store opens"));
    let mut keys = KeyRing::new();
    keys.insert(ACME, OrgId::new("acme").unwrap());
    keys.insert(GLOBEX, OrgId::new("globex").unwrap());
    let wire = Wire::new(Segments::new(store), keys);
    match rate {
        Some(rate) => wire.with_rate_limit(rate),
        None => wire,
    }
}

/// Drops every table of the SQLite file at `db`, under a running store.
fn sabotage(db: &std::path::Path) {
    let sabotage = rusqlite::Connection::open(db).expect("a second connection");
    let tables: Vec<String> = sabotage
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .and_then(|mut tables| tables.query_map([], |row| row.get(0))?.collect())
        .expect("the table names");
    assert!(!tables.is_empty(), "the store made its tables");
    for table in tables {
        sabotage
            .execute_batch(&format!("DROP TABLE \"{table}\""))
            .expect("the table goes");
    }
}

/// One running server and a client for it.
struct Server {
    /// `http://127.0.0.1:<port>`.
    base: String,
    /// Non-2xx statuses are answers, not errors.
    agent: Agent,
    /// Dropping or sending on it starts the graceful shutdown.
    stop: Option<mpsc::Sender<()>>,
    /// The database file.
    db: std::path::PathBuf,
    /// The `axum::serve` task.
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    runtime: tokio::runtime::Runtime,
    /// Holds the database; removed when the server is dropped.
    _dir: tempfile::TempDir,
}

impl Server {
    /// A server with no rate limit.
    fn start() -> Self {
        Self::start_with(None, TIMEOUT)
    }

    /// A server with `rate` as each org's limit, if any, and
    /// `request_timeout`.
    fn start_with(rate: Option<RateLimit>, request_timeout: Duration) -> Self {
        logs();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = dir.path().join("segments.db");
        let wire = wire_in(dir.path(), rate);

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a Tokio runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a free port");
        let addr = listener.local_addr().expect("the bound address");
        let (stop, stopped) = mpsc::channel::<()>();
        let task = runtime.spawn(async move {
            axum::serve(listener, app::router(Arc::new(wire), request_timeout))
                .with_graceful_shutdown(async move {
                    // Ends on a message or when the sender is dropped.
                    let _ = tokio::task::spawn_blocking(move || stopped.recv()).await;
                })
                .await
        });

        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Self {
            base: format!("http://{addr}"),
            agent,
            stop: Some(stop),
            db,
            task: Some(task),
            runtime,
            _dir: dir,
        }
    }

    /// `POST path` with `body`, as `key` if any.
    fn post(&self, path: &str, key: Option<&str>, body: &[u8]) -> Reply {
        let mut request = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        Reply::from(request.send(body))
    }

    /// `POST path` with `body` serialized, as `acme`.
    fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.post(path, Some(ACME), body.to_string().as_bytes())
    }

    /// `GET path_and_query`, as `key` if any.
    fn get(&self, path_and_query: &str, key: Option<&str>) -> Reply {
        let mut request = self.agent.get(format!("{}{path_and_query}", self.base));
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        Reply::from(request.call())
    }

    /// Sends `head` (then `body`, if any) on a new connection, as is, and
    /// reads the answer: for requests no HTTP client sends (a body that
    /// stops midway, a length and no body).
    fn raw(&self, head: &str, body: &[u8]) -> RawReply {
        let addr = self.base.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).expect("a connection");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        stream.write_all(head.as_bytes()).expect("the head is sent");
        // The server may answer, and close, before the body is all sent.
        let _ = stream.write_all(body);
        RawReply::read(&mut stream)
    }

    /// Shuts the server down gracefully and checks that it stopped cleanly.
    fn stop(mut self) {
        drop(self.stop.take());
        let task = self.task.take().expect("stopped once");
        let served = self.runtime.block_on(task).expect("the server task ends");
        served.expect("the server stops without an error");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A test that failed midway still lets the server go.
        drop(self.stop.take());
    }
}

/// A response, checked for what every response carries.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HeaderMap,
    json: Value,
}

impl From<Result<ureq::http::Response<ureq::Body>, ureq::Error>> for Reply {
    fn from(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Self {
        let mut response = result.expect("the server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.body_mut().read_to_string().expect("a UTF-8 body");
        assert_eq!(
            headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "every response is JSON (status {status}, body {text})"
        );
        let json: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"));
        assert!(
            json["api_request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty()),
            "every response carries an api_request_id: {json}"
        );
        if status == 200 {
            let at = json["request_completed_at"].as_str().unwrap_or_default();
            assert!(
                is_timestamp(at),
                "every 200 carries request_completed_at as YYYY-MM-DDTHH:MM:SS.ffffffZ: {json}"
            );
        }
        Self {
            status,
            headers,
            json,
        }
    }
}

impl Reply {
    /// Asserts a 200 and gives the body.
    fn ok(self) -> Value {
        assert_eq!(self.status, 200, "expected a 200: {}", self.json);
        self.json
    }

    /// Asserts a refusal with `status`, in the documented error shape, and
    /// gives its `error_message`.
    fn refused(&self, status: u16) -> &str {
        let json = &self.json;
        assert!(
            json["api_request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty()),
            "an error carries an api_request_id: {json}"
        );
        assert_eq!(self.status, status, "status: {json}");
        assert_eq!(
            json["statusCode"], status,
            "statusCode mirrors the status: {json}"
        );
        let message = json["error_message"]
            .as_str()
            .unwrap_or_else(|| panic!("error_message is a string: {json}"));
        let legacy = json["body"]
            .as_str()
            .unwrap_or_else(|| panic!("the deprecated body is a JSON string: {json}"));
        let legacy: Value = serde_json::from_str(legacy).expect("body holds JSON");
        assert_eq!(
            legacy,
            json!({"error": message, "status_code": status}),
            "the deprecated body repeats the message and status"
        );
        message
    }
}

/// A response read off a socket by hand.
#[derive(Debug)]
struct RawReply {
    status: u16,
    /// Header lines, names lowercased.
    headers: Vec<(String, String)>,
    json: Value,
}

impl RawReply {
    /// Reads one HTTP/1.1 response with a `Content-Length`.
    fn read(stream: &mut TcpStream) -> Self {
        let mut bytes = Vec::new();
        let mut chunk = [0; 4096];
        let head_end = loop {
            if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            let n = stream.read(&mut chunk).expect("the answer is read");
            assert!(n > 0, "the connection closed before an answer");
            bytes.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8(bytes[..head_end].to_vec()).expect("a UTF-8 head");
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|line| {
                let (name, value) = line.split_once(':').expect("name: value");
                (name.to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();
        let length: usize = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .map(|(_, v)| v.parse().unwrap())
            .expect("a Content-Length");
        let mut body = bytes[head_end + 4..].to_vec();
        while body.len() < length {
            let n = stream.read(&mut chunk).expect("the body is read");
            assert!(n > 0, "the connection closed midway through the body");
            body.extend_from_slice(&chunk[..n]);
        }
        Self {
            status: status.parse().unwrap(),
            headers,
            json: serde_json::from_slice(&body).expect("a JSON body"),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// As [`Reply::refused`]: the documented error body, and its message.
    fn refused(&self, status: u16) -> String {
        assert_eq!(self.header("content-type"), Some("application/json"));
        Reply {
            status: self.status,
            headers: HeaderMap::new(),
            json: self.json.clone(),
        }
        .refused(status)
        .to_owned()
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, that is `^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$`.
fn is_timestamp(s: &str) -> bool {
    const PATTERN: &[u8] = b"dddd-dd-ddTdd:dd:dd.ddddddZ";
    s.len() == PATTERN.len()
        && s.bytes().zip(PATTERN).all(|(c, &p)| match p {
            b'd' => c.is_ascii_digit(),
            _ => c == p,
        })
}

/// A segment id: a UUID in lowercase hyphenated form.
fn assert_segment_id(id: &Value) -> String {
    let text = id
        .as_str()
        .unwrap_or_else(|| panic!("segment_id is a string: {id}"));
    let uuid = uuid::Uuid::parse_str(text).unwrap_or_else(|e| panic!("{text} is not a UUID: {e}"));
    assert_eq!(uuid.hyphenated().to_string(), text, "lowercase hyphenated");
    text.to_owned()
}

/// The keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap_or_else(|| panic!("an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

#[test]
fn every_route_round_trips() {
    let server = Server::start();

    // create
    let created = server
        .post_json(
            "/v2/segments/create",
            &json!({"name": "Q1 2024 Enterprise Prospects", "description": "500+ employees, tech"}),
        )
        .ok();
    assert_eq!(
        keys(&created),
        ["api_request_id", "request_completed_at", "segment_id"]
    );
    let id = assert_segment_id(&created["segment_id"]);

    // A duplicate name, whatever its case: 404, as documented.
    let duplicate = server.post_json(
        "/v2/segments/create",
        &json!({"name": "q1 2024 enterprise PROSPECTS"}),
    );
    assert_eq!(
        duplicate.refused(404),
        "Segment name q1 2024 enterprise PROSPECTS already exists"
    );

    // members/add: invalid PIDs reported, a repeat counted as redundant.
    let added = server
        .post_json(
            "/v2/segments/members/add",
            &json!({
                "segment_id": id,
                "minerva_pids": ["p-a1b2c3d4e5f6", "p-x9y8z7w6v5u4", "p-invalid!", "p-a1b2c3d4e5f6"],
            }),
        )
        .ok();
    assert_eq!(
        keys(&added),
        ["api_request_id", "request_completed_at", "results"]
    );
    assert_eq!(
        added["results"],
        json!({
            "invalid_minerva_pids": ["p-invalid!"],
            "n_redundant_additions": 1,
            "n_added": 2,
            "new_current_size": 2,
        })
    );

    // members, page 1 and past the end
    let page = server
        .get(
            &format!("/v2/segments/members?segment_id={id}&page=1"),
            Some(ACME),
        )
        .ok();
    let results = &page["results"];
    assert_eq!(
        keys(results),
        ["items", "list_continues", "page", "total_count"]
    );
    assert_eq!(
        (
            &results["total_count"],
            &results["page"],
            &results["list_continues"]
        ),
        (&json!(2), &json!(1), &json!(false))
    );
    let items = results["items"].as_array().expect("items is an array");
    let pids: Vec<&str> = items
        .iter()
        .map(|item| {
            assert_eq!(keys(item), ["first_added_at", "minerva_pid"]);
            assert!(is_timestamp(item["first_added_at"].as_str().unwrap()));
            item["minerva_pid"].as_str().unwrap()
        })
        .collect();
    assert_eq!(pids, ["p-a1b2c3d4e5f6", "p-x9y8z7w6v5u4"]);
    let past = server
        .get(
            &format!("/v2/segments/members?segment_id={id}&page=2"),
            Some(ACME),
        )
        .ok();
    assert_eq!(
        past["results"]["items"],
        json!([]),
        "past the end: empty, still 200"
    );

    // members/remove: a PID that was never a member is not counted.
    let removed = server
        .post_json(
            "/v2/segments/members/remove",
            &json!({"segment_id": id, "minerva_pids": ["p-x9y8z7w6v5u4", "p-neveradded"]}),
        )
        .ok();
    assert_eq!(
        removed["results"],
        json!({"invalid_minerva_pids": [], "n_deleted": 1, "new_current_size": 1})
    );

    // get (extension)
    let got = server
        .get(&format!("/v2/segments/get?segment_id={id}"), Some(ACME))
        .ok();
    let segment = &got["results"];
    assert_eq!(
        keys(segment),
        [
            "created_at",
            "current_size",
            "description",
            "name",
            "segment_id",
            "source",
            "updated_at"
        ]
    );
    assert_eq!(segment["segment_id"], json!(id));
    assert_eq!(segment["name"], "Q1 2024 Enterprise Prospects");
    assert_eq!(segment["description"], "500+ employees, tech");
    assert_eq!(segment["source"], "api");
    assert_eq!(segment["current_size"], 1);
    assert!(is_timestamp(segment["created_at"].as_str().unwrap()));
    assert!(is_timestamp(segment["updated_at"].as_str().unwrap()));

    // Another org sees nothing of it.
    let hidden = server.get(&format!("/v2/segments/get?segment_id={id}"), Some(GLOBEX));
    assert_eq!(hidden.refused(404), format!("Segment {id} not found"));

    // list (extension)
    let listed = server.get("/v2/segments/list", Some(ACME)).ok();
    let items = listed["results"]["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["segment_id"], json!(id));
    assert_eq!(listed["results"]["next_cursor"], Value::Null);
    let theirs = server.get("/v2/segments/list", Some(GLOBEX)).ok();
    assert_eq!(theirs["results"]["items"], json!([]));

    // delete (extension), then it is gone and its name is free.
    let deleted = server
        .post_json("/v2/segments/delete", &json!({"segment_id": id}))
        .ok();
    assert_eq!(deleted["segment_id"], json!(id));
    let gone = server.get(&format!("/v2/segments/get?segment_id={id}"), Some(ACME));
    assert_eq!(gone.refused(404), format!("Segment {id} not found"));
    server
        .post_json(
            "/v2/segments/create",
            &json!({"name": "Q1 2024 Enterprise Prospects"}),
        )
        .ok();

    // usage/limits: no limit configured, so every axis is null.
    let limits = server.get("/v2/usage/limits", Some(ACME)).ok();
    for field in [
        "rps_limit",
        "burst_limit",
        "daily_quota",
        "daily_quota_used",
        "reset_at_utc",
    ] {
        assert_eq!(limits[field], Value::Null, "{field}: {limits}");
    }

    server.stop();
}

#[test]
fn refusals_on_the_way_in() {
    let server = Server::start();
    let body = br#"{"name": "Q1 Leads"}"#;

    let v1 = server.post("/v1/segments/create", Some(ACME), body);
    assert_eq!(
        v1.refused(404),
        "Segments create endpoint only supports v2 API version"
    );

    let wrong_method = server.get("/v2/segments/create", Some(ACME));
    wrong_method.refused(405);
    assert_eq!(
        wrong_method
            .headers
            .get("allow")
            .and_then(|v| v.to_str().ok()),
        Some("POST"),
        "a 405 says which method the route takes"
    );
    let wrong_method = server.post("/v2/segments/members", Some(ACME), body);
    wrong_method.refused(405);
    assert_eq!(
        wrong_method
            .headers
            .get("allow")
            .and_then(|v| v.to_str().ok()),
        Some("GET")
    );

    let no_key = server.post("/v2/segments/create", None, body);
    assert_eq!(no_key.refused(401), "Unauthorized");
    let bad_key = server.post("/v2/segments/create", Some("mk_live_guess"), body);
    assert_eq!(bad_key.refused(401), "Unauthorized");
    let no_key = server.get("/v2/usage/limits", None);
    assert_eq!(no_key.refused(401), "Unauthorized");

    server.get("/v2/nothing/here", Some(ACME)).refused(404);
    server.get("/", Some(ACME)).refused(404);

    // Bad input: not an object, a missing field, a malformed id.
    server
        .post("/v2/segments/create", Some(ACME), b"[1, 2]")
        .refused(400);
    assert_eq!(
        server
            .post("/v2/segments/create", Some(ACME), b"{}")
            .refused(422),
        "Input data must contain a 'name' field"
    );
    server
        .get("/v2/segments/members?segment_id=not-a-uuid", Some(ACME))
        .refused(422);

    // Nothing refused above was created.
    let listed = server.get("/v2/segments/list", Some(ACME)).ok();
    assert_eq!(listed["results"]["items"], json!([]));

    server.stop();
}

/// A request refused before its body is read is answered with
/// `Connection: close`: the server reads nothing more on that connection,
/// and a client that reused it would get no answer.
#[test]
fn a_refusal_before_the_body_closes_the_connection() {
    let server = Server::start();
    let closes = |reply: &Reply| {
        reply
            .headers
            .get("connection")
            .and_then(|v| v.to_str().ok())
            == Some("close")
    };
    let body = br#"{"name": "Q1 Leads"}"#;

    let no_key = server.post("/v2/segments/create", None, body);
    no_key.refused(401);
    assert!(
        closes(&no_key),
        "a refused head with a body: {:?}",
        no_key.headers
    );
    let wrong_method = server.post("/v2/segments/members", Some(ACME), body);
    wrong_method.refused(405);
    assert!(closes(&wrong_method));
    // Nothing left unread: the connection stays open.
    let no_body = server.get("/v2/usage/limits", None);
    no_body.refused(401);
    assert!(!closes(&no_body));
    let created = server.post("/v2/segments/create", Some(ACME), body);
    assert!(!closes(&created), "an answer after the body was read");
    created.ok();

    server.stop();
}

#[test]
fn a_body_of_16_mib_is_served() {
    let server = Server::start();

    // Exactly at the limit: a valid object padded with whitespace.
    let mut at = br#"{"name": "Big"}"#.to_vec();
    at.resize(MAX_BODY_BYTES, b' ');
    let created = server.post("/v2/segments/create", Some(ACME), &at).ok();
    assert_segment_id(&created["segment_id"]);

    server.stop();
}

#[test]
fn over_the_rate_is_429_with_retry_after_per_org() {
    let server = Server::start_with(RateLimit::new(1, 1), TIMEOUT);

    let limits = server.get("/v2/usage/limits", Some(ACME)).ok();
    assert_eq!(
        (&limits["rps_limit"], &limits["burst_limit"]),
        (&json!(1), &json!(1))
    );

    // One a second, one at once: the next request is over, unless this
    // machine took a whole second to send it, so allow a few tries.
    let limited = (0..5)
        .map(|_| server.post("/v2/segments/create", Some(ACME), br#"{"name": "x"}"#))
        .find(|reply| reply.status != 200)
        .expect("requests in quick succession go over 1 per second");
    assert_eq!(
        limited.refused(429),
        "You reached your total request-rate limit, please contact help@minerva.io for help"
    );
    let retry_after: u64 = limited
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a 429 carries Retry-After in whole seconds");
    assert!(retry_after >= 1, "Retry-After is never 0");

    // Another org has its own budget.
    server.get("/v2/usage/limits", Some(GLOBEX)).ok();
    server.stop();
}

#[test]
fn a_storage_failure_is_a_bare_500_and_its_cause_is_logged() {
    let server = Server::start();
    // Break the database under the running server: drop every table.
    sabotage(&server.db);

    let failed = server.post_json("/v2/segments/create", &json!({"name": "Q1 Leads"}));
    assert_eq!(failed.refused(500), "Internal server error");
    let text = failed.json.to_string();
    assert!(
        !text.contains("segments") && !text.contains("table"),
        "no storage detail reaches the client: {text}"
    );
    server.stop();
}

#[test]
fn the_error_chain_of_a_5xx_is_for_the_log_only() {
    let cause = std::io::Error::other("disk I/O error");
    let mut response = http::Response::new(Vec::<u8>::new());
    *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
    response
        .extensions_mut()
        .insert(ErrorDetail(Arc::new(segments_engine::Error::storage(
            cause,
        ))));
    assert_eq!(
        app::error_chain(&response).as_deref(),
        Some("storage failure: the storage backend failed: disk I/O error")
    );
    *response.status_mut() = http::StatusCode::NOT_FOUND;
    assert_eq!(
        app::error_chain(&response),
        None,
        "only a 5xx shows its error"
    );
}

#[test]
fn a_body_over_the_limit_is_413_whether_its_length_is_declared_or_not() {
    let server = Server::start();
    let head = |key: &str, framing: &str| {
        format!(
            "POST /v2/segments/create HTTP/1.1\r\nhost: e2e\r\nx-api-key: {key}\r\n\
             content-type: application/json\r\n{framing}\r\n\r\n"
        )
    };
    let message = format!("More than {MAX_BODY_BYTES} bytes in request");

    // A declared length over the limit: refused before any of it is read
    // (none is sent here).
    let over = format!("content-length: {}", MAX_BODY_BYTES + 1);
    let refused = server.raw(&head(ACME, &over), b"");
    assert_eq!(refused.refused(413), message);

    // The head is checked first: without a key, the same request is a 401.
    let refused = server.raw(&head("mk_live_guess", &over), b"");
    assert_eq!(refused.refused(401), "Unauthorized");

    // A chunked body: reading stops once it passes the limit.
    let mut chunked = Vec::new();
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..17 {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(&chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let refused = server.raw(&head(ACME, "transfer-encoding: chunked"), &chunked);
    assert_eq!(refused.refused(413), message);

    // Nothing was created.
    let listed = server.get("/v2/segments/list", Some(ACME)).ok();
    assert_eq!(listed["results"]["items"], json!([]));
    server.stop();
}

#[test]
fn a_request_past_the_timeout_is_a_documented_503() {
    let server = Server::start_with(None, Duration::from_millis(300));
    // A body that stops midway: no answer can come from the adapter.
    let refused = server.raw(
        "POST /v2/segments/create HTTP/1.1\r\nhost: e2e\r\nx-api-key: mk_live_e2e_acme\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n",
        br#"{"name": "#,
    );
    assert_eq!(refused.refused(503), "Service Unavailable");
    // The server goes on answering.
    server
        .post_json("/v2/segments/create", &json!({"name": "After"}))
        .ok();
    server.stop();
}

#[test]
fn healthz_reads_the_store() {
    let server = Server::start();
    let health = |server: &Server| {
        let mut response = server
            .agent
            .get(format!("{}/healthz", server.base))
            .call()
            .expect("the server answers");
        let status = response.status().as_u16();
        let body: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap())
            .expect("a JSON body");
        (status, body)
    };
    assert_eq!(
        health(&server),
        (200, json!({"status": "ok"})),
        "no key needed"
    );

    // Another method: a 405 in the documented error body, with Allow.
    let wrong = server.post("/healthz", None, b"");
    wrong.refused(405);
    assert!(
        wrong
            .headers
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|allow| allow.contains("GET")),
        "{:?}",
        wrong.headers
    );

    sabotage(&server.db);
    let (status, body) = health(&server);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error_message"], "Service Unavailable");
    assert_eq!(body["statusCode"], 503);
    server.stop();
}

#[test]
fn the_openapi_document_is_served() {
    let server = Server::start();
    let mut response = server
        .agent
        .get(format!("{}/openapi.json", server.base))
        .call()
        .expect("the server answers");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "application/json"
    );
    let served = response.body_mut().read_to_string().unwrap();
    assert_eq!(served, app::OPENAPI);
    let on_disk = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
        .expect("openapi.json at the crate root");
    assert_eq!(served, on_disk, "the document served is the one kept");
    server.stop();
}

/// Log lines written to memory.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// The lines written so far, each parsed as JSON.
    fn lines(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }
}

#[test]
fn one_json_log_line_per_request_with_its_api_request_id() {
    let logs = logs();
    let dir = tempfile::tempdir().unwrap();
    let router = app::router(Arc::new(wire_in(dir.path(), None)), TIMEOUT);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let send_with = |method: &str, path: &str, key: Option<&str>, body: &str, retry: &str| {
        let mut request = http::Request::builder().method(method).uri(path);
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        if !retry.is_empty() {
            request = request.header("idempotency-key", retry);
        }
        let request = request
            .body(axum::body::Body::from(body.to_owned()))
            .unwrap();
        let response = runtime
            .block_on(router.clone().oneshot(request))
            .expect("infallible");
        let status = response.status().as_u16();
        let body = runtime
            .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
            .unwrap();
        let json: Value = serde_json::from_slice(&body).unwrap();
        (status, json)
    };
    let send = |method: &str, path: &str, key: Option<&str>, body: &str| {
        send_with(method, path, key, body, "")
    };

    let created = send(
        "POST",
        "/v2/segments/create",
        Some(ACME),
        r#"{"name": "Logged"}"#,
    );
    // A retry with an Idempotency-Key answers with the first request's id,
    // and its log line names that id, the one the client got.
    let body = r#"{"name": "Retried"}"#;
    let first = send_with("POST", "/v2/segments/create", Some(ACME), body, "\"k-1\"");
    let replay = send_with("POST", "/v2/segments/create", Some(ACME), body, "\"k-1\"");
    assert_eq!((first.0, replay.0), (200, 200));
    assert_eq!(
        first.1["api_request_id"], replay.1["api_request_id"],
        "the first answer again"
    );
    let refused = send("POST", "/v2/segments/create", None, r#"{"name": "Logged"}"#);
    sabotage(&dir.path().join("segments.db"));
    let unhealthy = send("GET", "/healthz", None, "");
    let failed = send(
        "POST",
        "/v2/segments/create",
        Some(ACME),
        r#"{"name": "Lost"}"#,
    );
    assert_eq!(
        (created.0, refused.0, unhealthy.0, failed.0),
        (200, 401, 503, 500)
    );

    // Other tests' servers log to the same place: find this test's lines
    // by the ids its requests got.
    let lines = logs.lines();
    let lines_of = |json: &Value| -> Vec<Value> {
        let id = &json["api_request_id"];
        lines
            .iter()
            .filter(|line| line["span"]["api_request_id"] == *id)
            .cloned()
            .collect()
    };
    let line = |json: &Value| {
        let mine = lines_of(json);
        assert_eq!(mine.len(), 1, "one line for request {json}: {mine:#?}");
        mine[0].clone()
    };
    assert_eq!(lines_of(&first.1).len(), 1, "the first call");
    let replayed: Vec<&Value> = lines
        .iter()
        .filter(|line| line["span"]["replay_of"] == first.1["api_request_id"])
        .collect();
    assert_eq!(
        replayed.len(),
        1,
        "the replay names the id it answered with"
    );
    assert_ne!(
        replayed[0]["span"]["api_request_id"],
        first.1["api_request_id"]
    );
    for ((status, json), path) in [
        (&created, "/v2/segments/create"),
        (&refused, "/v2/segments/create"),
        (&unhealthy, "/healthz"),
        (&failed, "/v2/segments/create"),
    ] {
        let line = line(json);
        assert_eq!(line["status"], *status, "{line}");
        assert!(line["latency_ms"].is_f64(), "{line}");
        assert_eq!(line["span"]["path"], path, "{line}");
    }
    let created = line(&created.1);
    assert_eq!(created["span"]["method"], "POST");
    assert_eq!(
        (&created["level"], &created["message"]),
        (&json!("INFO"), &json!("request served"))
    );
    for failure in [line(&unhealthy.1), line(&failed.1)] {
        assert_eq!(failure["level"], "ERROR", "{failure}");
        let error = failure["error"].as_str().expect("a 5xx logs its error");
        assert!(
            error.starts_with("storage failure: ") && error.contains("segment"),
            "the whole chain: {error}"
        );
    }
    assert_eq!(
        failed.1["error_message"], "Internal server error",
        "the client sees none of it"
    );
}
