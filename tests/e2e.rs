//! The `server` example end to end: its axum router on a real socket, over a
//! SQLite file in a temporary directory, driven by a blocking HTTP client
//! (ureq) through every route and every refusal the adapter documents.
//!
//! Each test starts its own server (a Tokio runtime, the server in a
//! background task, its own database) and shuts it down gracefully at the
//! end. Every response is checked for `Content-Type: application/json` and an
//! `api_request_id`; every 200 for a well-formed `request_completed_at`;
//! every refusal for the documented error body.

#[path = "../examples/server/app.rs"]
mod app;

use std::sync::{Arc, mpsc};
use std::time::Duration;

use axum::http;
use segments::limits::MAX_BODY_BYTES;
use segments::wire::{ErrorDetail, KeyRing, RateLimit, Wire};
use segments::{OrgId, Segments, SqliteStore};
use serde_json::{Value, json};
use ureq::Agent;
use ureq::http::HeaderMap;

/// Acts for org `acme`.
const ACME: &str = "mk_live_e2e_acme";
/// Acts for org `globex`.
const GLOBEX: &str = "mk_live_e2e_globex";

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
        Self::start_with(None)
    }

    /// A server with `rate` as each org's limit, if any.
    fn start_with(rate: Option<RateLimit>) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = dir.path().join("segments.db");
        let store: app::Store = Box::new(SqliteStore::open(&db).expect("the store opens"));
        let mut keys = KeyRing::new();
        keys.insert(ACME, OrgId::new("acme").unwrap());
        keys.insert(GLOBEX, OrgId::new("globex").unwrap());
        let mut wire = Wire::new(Segments::new(store), keys);
        if let Some(rate) = rate {
            wire = wire.with_rate_limit(rate);
        }

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
            axum::serve(listener, app::router(Arc::new(wire)))
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

#[test]
fn a_body_over_16_mib_is_413_and_one_at_the_limit_is_served() {
    let server = Server::start();

    let mut over = vec![b' '; MAX_BODY_BYTES + 1];
    over[..2].copy_from_slice(b"{}");
    let refused = server.post("/v2/segments/create", Some(ACME), &over);
    assert_eq!(
        refused.refused(413),
        format!("More than {MAX_BODY_BYTES} bytes in request")
    );
    drop(over);

    // Exactly at the limit: a valid object padded with whitespace.
    let mut at = br#"{"name": "Big"}"#.to_vec();
    at.resize(MAX_BODY_BYTES, b' ');
    let created = server.post("/v2/segments/create", Some(ACME), &at).ok();
    assert_segment_id(&created["segment_id"]);

    server.stop();
}

#[test]
fn over_the_rate_is_429_with_retry_after_per_org() {
    let server = Server::start_with(RateLimit::new(1, 1));

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
    let sabotage = rusqlite::Connection::open(&server.db).expect("a second connection");
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
    drop(sabotage);

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
fn the_log_line_carries_the_error_chain_of_a_5xx() {
    let cause = std::io::Error::other("disk I/O error");
    let mut response = http::Response::new(Vec::new());
    *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
    response
        .extensions_mut()
        .insert(ErrorDetail(Arc::new(segments::Error::storage(cause))));
    let line = app::log_line(
        &http::Method::POST,
        "/v2/segments/create",
        &response,
        Duration::from_micros(1_500),
    );
    assert_eq!(
        line,
        "POST /v2/segments/create 500 1.5ms error: storage failure: the storage backend failed: disk I/O error"
    );

    *response.status_mut() = http::StatusCode::NOT_FOUND;
    let line = app::log_line(&http::Method::GET, "/x", &response, Duration::ZERO);
    assert_eq!(line, "GET /x 404 0.0ms", "only a 5xx shows its error");
}

#[test]
fn the_body_reader_stops_at_its_limit() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let read = |bytes: Vec<u8>, limit: usize| {
        runtime
            .block_on(app::read_body(axum::body::Body::from(bytes), limit))
            .expect("the body reads")
    };
    assert_eq!(read(vec![7; 100], 10), vec![7; 10], "cut at the limit");
    assert_eq!(read(vec![7; 10], 10).len(), 10);
    assert_eq!(read(vec![7; 3], 10), vec![7; 3], "a short body whole");
    assert!(read(Vec::new(), 10).is_empty());
}
