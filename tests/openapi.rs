//! The OpenAPI document (`openapi.json`, served at `/openapi.json`) against
//! the server it describes.
//!
//! The routes the server serves are found by asking it: every path named
//! anywhere in the adapter's and the server's sources (string literals,
//! the adapter's route names under `/v2/segments/`, paths in doc comments),
//! and every path of the document, is sent each method without a key. A
//! route answers something other than `404` or `405` (a `401` for the
//! adapter's routes, which check the key after the route; the host's own
//! routes answer). Those must be exactly the document's operations: a
//! route missing from the document fails, and so does an operation the
//! server lacks.

#[path = "../examples/server/app.rs"]
#[allow(dead_code)]
mod app;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, header};
use segments_engine::wire::{KeyRing, Wire};
use segments_engine::{OrgId, Segments, SqliteStore};
use serde_json::Value;
use tower::ServiceExt as _;

/// The methods each candidate path is tried with.
const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// The routes of the publicly documented API (`reference/`): every other
/// operation is an extension and must say so.
const DOCUMENTED: [(&str, &str); 6] = [
    ("POST", "/v2/segments/create"),
    ("POST", "/v2/segments/members/add"),
    ("GET", "/v2/segments/members"),
    ("POST", "/v2/segments/members/remove"),
    ("GET", "/v2/segments/signals/deaths"),
    ("GET", "/v2/usage/limits"),
];

fn document() -> Value {
    serde_json::from_str(app::OPENAPI).expect("openapi.json is JSON")
}

/// The document's operations: `(METHOD, path)` → the operation.
fn operations(doc: &Value) -> BTreeMap<(String, String), Value> {
    let mut operations = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            if ["parameters", "summary", "description", "servers"].contains(&method.as_str()) {
                continue;
            }
            operations.insert(
                (method.to_ascii_uppercase(), path.clone()),
                operation.clone(),
            );
        }
    }
    operations
}

/// The server as the example runs it, over a SQLite file in `dir`.
fn router(dir: &std::path::Path) -> axum::Router {
    let store: app::Store =
        Arc::new(SqliteStore::open(dir.join("segments.db")).expect("the store opens"));
    let mut keys = KeyRing::new();
    keys.insert("mk_live_openapi", OrgId::new("acme").unwrap());
    let wire = Wire::new(Segments::new(store), keys);
    app::router(Arc::new(wire), Duration::from_secs(60))
}

/// Paths named in the adapter's and the server's sources.
fn paths_in_sources() -> BTreeSet<String> {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut files = Vec::new();
    for dir in ["src/wire", "examples/server"] {
        for entry in std::fs::read_dir(format!("{root}/{dir}")).expect("a source directory") {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 4, "the sources are found: {files:?}");
    let is_path = |s: &str| {
        s.starts_with('/')
            && s.len() > 1
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_.-".contains(&b))
    };
    let is_route_name = |s: &str| {
        !s.is_empty()
            && s.split('/').all(|part| {
                !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            })
    };
    let mut paths = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines() {
            // String literals (a line's odd pieces between quotes), and
            // words in backticks, such as the adapter's route table.
            let quoted = line.split('"').skip(1).step_by(2);
            let ticked = line.split('`').skip(1).step_by(2);
            for piece in quoted.chain(ticked) {
                for word in piece.split([' ', '?']) {
                    if is_path(word) {
                        paths.insert(word.to_owned());
                    } else if is_route_name(word) {
                        paths.insert(format!("/v2/segments/{word}"));
                    }
                }
            }
        }
    }
    paths
}

#[test]
fn the_document_and_the_server_have_the_same_routes() {
    let doc = document();
    let documented = operations(&doc);
    let mut candidates = paths_in_sources();
    assert!(
        candidates.contains("/v2/segments/create") && candidates.contains("/healthz"),
        "the source scan finds routes: {candidates:?}"
    );
    candidates.extend(documented.keys().map(|(_, path)| path.clone()));

    let dir = tempfile::tempdir().unwrap();
    let router = router(dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut served = BTreeSet::new();
    for path in &candidates {
        for method in &METHODS {
            let request = Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .unwrap();
            let response = runtime
                .block_on(router.clone().oneshot(request))
                .expect("infallible");
            if ![404, 405].contains(&response.status().as_u16()) {
                served.insert((method.to_string(), path.clone()));
            }
        }
    }

    let in_document: BTreeSet<_> = documented.keys().cloned().collect();
    let undocumented: Vec<_> = served.difference(&in_document).collect();
    let missing: Vec<_> = in_document.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "the server serves routes openapi.json does not name: {undocumented:?}"
    );
    assert!(
        missing.is_empty(),
        "openapi.json names routes the server lacks: {missing:?}"
    );
    assert!(served.len() >= 11, "{served:?}");

    // Each path's other methods are a 405 whose Allow names exactly the
    // document's methods (and HEAD beside GET, where the host serves it).
    for path in in_document.iter().map(|(_, path)| path) {
        let request = Request::builder()
            .method(Method::OPTIONS)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let response = runtime
            .block_on(router.clone().oneshot(request))
            .expect("infallible");
        assert_eq!(response.status(), 405, "OPTIONS {path}");
        let allow: BTreeSet<String> = response.headers()[header::ALLOW]
            .to_str()
            .unwrap()
            .split(',')
            .map(|m| m.trim().to_owned())
            .filter(|m| m != "HEAD")
            .collect();
        let methods: BTreeSet<String> = in_document
            .iter()
            .filter(|(_, p)| p == path)
            .map(|(m, _)| m.clone())
            .collect();
        assert_eq!(allow, methods, "Allow of {path}");
    }
}

#[test]
fn extensions_are_marked_and_the_documented_routes_are_not() {
    let doc = document();
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "OpenAPI 3.1"
    );
    let documented: BTreeSet<(String, String)> = DOCUMENTED
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let mut ids = BTreeSet::new();
    for ((method, path), operation) in operations(&doc) {
        let id = operation["operationId"].as_str().expect("an operationId");
        assert!(ids.insert(id.to_owned()), "operationId {id} is unique");
        let extension = operation["x-extension"] == Value::Bool(true);
        let is_documented = documented.contains(&(method.clone(), path.clone()));
        assert_eq!(
            extension, !is_documented,
            "{method} {path}: x-extension is set exactly on routes the documented API lacks"
        );
        let tags = &operation["tags"];
        if extension {
            assert!(
                tags == &serde_json::json!(["Extensions"])
                    || tags == &serde_json::json!(["Server"]),
                "{method} {path} is tagged as an extension: {tags}"
            );
            assert!(
                operation["description"]
                    .as_str()
                    .is_some_and(|d| d.contains("**Extension**")),
                "{method} {path} says it is an extension"
            );
        }
    }
    for route in &documented {
        assert!(
            ids.len() >= 11 && operations(&doc).contains_key(route),
            "{route:?}"
        );
    }
}

#[test]
fn the_documented_quirks_are_in_the_document() {
    let doc = document();
    let responses = &doc["components"]["responses"];
    let operations = operations(&doc);

    // A duplicate name is a 404, as documented.
    let create = &operations[&("POST".to_owned(), "/v2/segments/create".to_owned())];
    let not_found = &create["responses"]["404"];
    assert_eq!(not_found["$ref"], "#/components/responses/NotFound");
    assert!(
        responses["NotFound"]["description"]
            .as_str()
            .unwrap()
            .contains("already exists"),
        "the 404 names the duplicate name"
    );

    // The deprecated fields of every error body.
    let error = &doc["components"]["schemas"]["Error"];
    for field in ["statusCode", "body"] {
        assert_eq!(
            error["properties"][field]["deprecated"], true,
            "{field} is deprecated"
        );
    }
    assert_eq!(
        error["required"],
        serde_json::json!(["api_request_id", "error_message", "statusCode", "body"])
    );
    assert_eq!(
        error["properties"]["body"]["type"], "string",
        "a JSON string"
    );

    // Every operation behind the key can be a 401 and a 429, and a 429
    // carries Retry-After.
    let retry_after = &responses["RateLimited"]["headers"]["Retry-After"];
    assert_eq!(retry_after["required"], true);
    for ((method, path), operation) in &operations {
        let keyed = operation.get("security") != Some(&serde_json::json!([]));
        for status in ["401", "429"] {
            assert_eq!(
                operation["responses"].get(status).is_some(),
                keyed,
                "{method} {path}: {status} exactly where a key is needed"
            );
        }
        assert!(
            operation["responses"].get("200").is_some(),
            "{method} {path}"
        );
    }

    // Every reference resolves.
    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r);
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty());
    for r in found {
        let pointer = r.strip_prefix('#').expect("a local reference");
        assert!(doc.pointer(pointer).is_some(), "{r} resolves");
    }
}
