//! The documented HTTP contract, checked through `Wire::handle`: one test per
//! documented example and per row of the error table (SPEC §4), then a
//! property test that throws arbitrary input at every route.

#![cfg(feature = "wire")]

use chrono::{DateTime, TimeZone, Utc};
use http::{Method, Request, Response, StatusCode};
use proptest::prelude::*;
use segments_engine::PageOptions;
use segments_engine::clock::{ManualClock, SequentialIds};
use segments_engine::store::{
    KeyRecord, MemberSlice, MemberStart, Page, SegmentChange, SegmentInsert, Stamp,
    StoreAddOutcome, StoreDeathsIngested, StoreRemoveOutcome,
};
use segments_engine::wire::{ErrorDetail, KeyRing, RateLimit, Wire};
use segments_engine::{
    Change, DeathCursor, DeathRecord, DeathSignals, Error, MemberCursor, MemoryStore, OrgId,
    PastMember, Pid, Result, Segment, SegmentCursor, SegmentId, SegmentStore, Segments, SetExpr,
};
use serde_json::{Value, json};

const KEY: &str = "mk_live_acme";
const OTHER_KEY: &str = "mk_live_globex";

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(1_705_314_645, 123_456_789).unwrap()
}

fn keys() -> KeyRing {
    let mut keys = KeyRing::new();
    keys.insert(KEY, OrgId::new("acme").unwrap());
    keys.insert(OTHER_KEY, OrgId::new("globex").unwrap());
    keys
}

fn wire_over<S: SegmentStore>(store: S) -> Wire<S> {
    let segments = Segments::new(store)
        .with_clock(ManualClock::new(now()))
        .with_id_generator(SequentialIds::new());
    Wire::new(segments, keys())
}

fn wire() -> Wire<MemoryStore> {
    wire_over(MemoryStore::new())
}

/// A response, decoded.
struct Answer {
    status: StatusCode,
    response: Response<Vec<u8>>,
    json: Value,
}

impl Answer {
    fn raw(&self) -> &str {
        std::str::from_utf8(self.response.body()).expect("bodies are UTF-8")
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap())
    }

    /// The top-level keys, in the order the body holds them.
    fn keys_in_order(&self) -> Vec<String> {
        let mut keys: Vec<(usize, String)> = self
            .json
            .as_object()
            .expect("an object")
            .keys()
            .map(|k| {
                (
                    self.raw().find(&format!("\"{k}\":")).expect("key in body"),
                    k.clone(),
                )
            })
            .collect();
        keys.sort();
        keys.into_iter().map(|(_, k)| k).collect()
    }
}

fn call<S: SegmentStore>(
    wire: &Wire<S>,
    method: Method,
    uri: &str,
    key: Option<&str>,
    body: &[u8],
) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    let response = wire.handle(request.body(body.to_vec()).unwrap());
    let status = response.status();
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap()),
        Some("application/json"),
        "every response is JSON"
    );
    let json: Value = serde_json::from_slice(response.body()).expect("every body is JSON");
    let id = json["api_request_id"]
        .as_str()
        .expect("every response has an api_request_id");
    assert!(!id.is_empty());
    Answer {
        status,
        response,
        json,
    }
}

fn post<S: SegmentStore>(wire: &Wire<S>, path: &str, body: Value) -> Answer {
    call(
        wire,
        Method::POST,
        path,
        Some(KEY),
        body.to_string().as_bytes(),
    )
}

fn get<S: SegmentStore>(wire: &Wire<S>, uri: &str) -> Answer {
    call(wire, Method::GET, uri, Some(KEY), b"")
}

/// The documented error body, with its deprecated fields.
fn assert_error(answer: &Answer, status: u16, message: &str) {
    assert_eq!(
        answer.status.as_u16(),
        status,
        "status, body: {}",
        answer.raw()
    );
    assert_eq!(
        answer.keys_in_order(),
        ["api_request_id", "error_message", "statusCode", "body"]
    );
    assert_eq!(answer.json["error_message"], message);
    assert_eq!(answer.json["statusCode"], status);
    let legacy: Value =
        serde_json::from_str(answer.json["body"].as_str().expect("body is a JSON string")).unwrap();
    assert_eq!(
        legacy,
        json!({"error": message, "status_code": status}),
        "the deprecated body"
    );
}

fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 27
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            26 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

fn create<S: SegmentStore>(wire: &Wire<S>, name: &str) -> String {
    let a = post(wire, "/v2/segments/create", json!({ "name": name }));
    assert_eq!(a.status, 200, "{}", a.raw());
    a.json["segment_id"].as_str().unwrap().to_owned()
}

#[test]
fn create_answers_the_documented_fields() {
    let wire = wire();
    let a = post(
        &wire,
        "/v2/segments/create",
        json!({"name": "Q1 2024 Enterprise Prospects", "description": "High-value enterprise leads"}),
    );
    assert_eq!(a.status, 200);
    assert_eq!(
        a.keys_in_order(),
        ["api_request_id", "segment_id", "request_completed_at"]
    );
    let id = a.json["segment_id"].as_str().unwrap();
    assert_eq!(
        id.parse::<SegmentId>().unwrap().to_string(),
        id,
        "a lowercase hyphenated UUID"
    );
    assert_eq!(
        a.json["request_completed_at"],
        "2024-01-15T10:30:45.123456Z"
    );
    let got = get(&wire, &format!("/v2/segments/get?segment_id={id}"));
    assert_eq!(
        got.json["results"]["source"], "api",
        "created via the API: source \"api\""
    );
    assert_eq!(
        got.json["results"]["current_size"], 0,
        "new segments start empty"
    );
}

#[test]
fn create_error_table() {
    let wire = wire();
    create(&wire, "Q1 2024 Enterprise Leads");
    let cases: Vec<(&[u8], u16, String)> = vec![
        (
            b"{not json",
            400,
            "Request body must be a JSON object".into(),
        ),
        (b"", 400, "Request body must be a JSON object".into()),
        (
            b"[\"name\"]",
            400,
            "Request body must be a JSON object".into(),
        ),
        (
            b"\"name\"",
            400,
            "Request body must be a JSON object".into(),
        ),
        (br#"{"name": 5}"#, 400, "'name' must be a string".into()),
        (
            br#"{"name": "x", "description": []}"#,
            400,
            "'description' must be a string".into(),
        ),
        (b"{}", 422, "Input data must contain a 'name' field".into()),
        (
            br#"{"name": null}"#,
            422,
            "Input data must contain a 'name' field".into(),
        ),
        (
            br#"{"description": "no name"}"#,
            422,
            "Input data must contain a 'name' field".into(),
        ),
        (
            br#"{"name": "   "}"#,
            422,
            "'name' must not be empty or only whitespace".into(),
        ),
        (
            format!(r#"{{"name": "{}"}}"#, "x".repeat(256))
                .into_bytes()
                .leak(),
            422,
            "'name' must be at most 255 characters".into(),
        ),
        (
            br#"{"name": "a\u0007b"}"#,
            422,
            "'name' must not contain control characters".into(),
        ),
        (
            br#"{"name": " q1 2024  ENTERPRISE leads"}"#,
            404,
            "Segment name q1 2024  ENTERPRISE leads already exists".into(),
        ),
    ];
    for (body, status, message) in cases {
        let a = call(&wire, Method::POST, "/v2/segments/create", Some(KEY), body);
        assert_error(&a, status, &message);
    }
    let listed = get(&wire, "/v2/segments/list");
    assert_eq!(
        listed.json["results"]["items"].as_array().unwrap().len(),
        1,
        "refused creates created nothing"
    );
}

#[test]
fn unknown_fields_are_ignored_and_null_description_is_none() {
    let wire = wire();
    let a = post(
        &wire,
        "/v2/segments/create",
        json!({"name": "Extra", "description": null, "source": "spoofed", "x": {"y": [1]}}),
    );
    assert_eq!(a.status, 200);
    let id = a.json["segment_id"].as_str().unwrap();
    let got = get(&wire, &format!("/v2/segments/get?segment_id={id}"));
    assert_eq!(got.json["results"]["description"], Value::Null);
    assert_eq!(
        got.json["results"]["source"], "api",
        "a body cannot set the source"
    );
}

#[test]
fn routes_methods_and_versions() {
    let wire = wire();
    let a = call(&wire, Method::POST, "/v1/segments/create", Some(KEY), b"{}");
    assert_error(
        &a,
        404,
        "Segments create endpoint only supports v2 API version",
    );
    let a = call(
        &wire,
        Method::POST,
        "/v1/segments/members/add",
        Some(KEY),
        b"{}",
    );
    assert_error(
        &a,
        404,
        "Segments members/add endpoint only supports v2 API version",
    );
    for method in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
        let a = call(
            &wire,
            method.clone(),
            "/v2/segments/create",
            Some(KEY),
            b"{}",
        );
        assert_eq!(a.status, 405, "{method} on create");
        assert_eq!(a.header("allow"), Some("POST"));
        assert_eq!(a.json["statusCode"], 405);
    }
    let a = call(
        &wire,
        Method::POST,
        "/v2/segments/members",
        Some(KEY),
        b"{}",
    );
    assert_eq!((a.status.as_u16(), a.header("allow")), (405, Some("GET")));
    for path in [
        "/",
        "/v2/segments",
        "/v2/segments/",
        "/v2/segments/create/",
        "/v2/segments/unknown",
        "/v3/segments/create",
    ] {
        let a = call(&wire, Method::POST, path, Some(KEY), b"{}");
        assert_eq!(a.status, 404, "{path}");
        assert_eq!(a.json["statusCode"], 404);
    }
}

#[test]
fn missing_or_unknown_keys_are_unauthorized_and_do_nothing() {
    let wire = wire();
    for key in [None, Some("mk_live_wrong"), Some("")] {
        let a = call(
            &wire,
            Method::POST,
            "/v2/segments/create",
            key,
            br#"{"name": "Sneaky"}"#,
        );
        assert_error(&a, 401, "Unauthorized");
    }
    let listed = get(&wire, "/v2/segments/list");
    assert!(
        listed.json["results"]["items"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing was created"
    );
}

#[test]
fn rate_limits_answer_429_with_retry_after_and_do_nothing() {
    let wire = wire().with_rate_limit(RateLimit::new(1, 2).unwrap());
    assert_eq!(
        post(&wire, "/v2/segments/create", json!({"name": "one"})).status,
        200
    );
    assert_eq!(
        post(&wire, "/v2/segments/create", json!({"name": "two"})).status,
        200
    );
    let a = post(&wire, "/v2/segments/create", json!({"name": "three"}));
    assert_error(
        &a,
        429,
        "You reached your total request-rate limit, please contact help@minerva.io for help",
    );
    let retry: u64 = a
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(retry >= 1, "whole seconds, at least 1");
    // Another org has its own budget.
    let other = call(
        &wire,
        Method::POST,
        "/v2/segments/create",
        Some(OTHER_KEY),
        br#"{"name": "three"}"#,
    );
    assert_eq!(other.status, 200, "limits are per org");
    let limits = call(&wire, Method::GET, "/v2/usage/limits", Some(OTHER_KEY), b"");
    assert_eq!(limits.json["rps_limit"], 1);
    assert_eq!(limits.json["burst_limit"], 2);
}

#[test]
fn usage_limits_have_the_documented_shape() {
    let wire = wire().with_rate_limit(RateLimit::new(100, 150).unwrap());
    assert_eq!(
        RateLimit::new(0, 150),
        None,
        "a zero rate is refused, not rounded"
    );
    let a = get(&wire, "/v2/usage/limits");
    assert_eq!(a.status, 200);
    assert_eq!(
        a.keys_in_order(),
        [
            "api_request_id",
            "rps_limit",
            "burst_limit",
            "daily_quota",
            "daily_quota_used",
            "reset_at_utc",
            "request_completed_at"
        ]
    );
    assert_eq!(a.json["rps_limit"], 100);
    assert_eq!(a.json["burst_limit"], 150);
    for axis in ["daily_quota", "daily_quota_used", "reset_at_utc"] {
        assert_eq!(
            a.json[axis],
            Value::Null,
            "{axis}: null means no limit on this axis"
        );
    }
    let unlimited = get(&wire_over(MemoryStore::new()), "/v2/usage/limits");
    assert_eq!(unlimited.json["rps_limit"], Value::Null);
}

#[test]
fn members_add_answers_the_documented_example() {
    let wire = wire();
    let id = create(&wire, "Prospects");
    let a = post(
        &wire,
        "/v2/segments/members/add",
        json!({"segment_id": id, "minerva_pids": ["p-a1b2c3d4e5f6", "p-x9y8z7w6v5u4", "p-invalid!"]}),
    );
    assert_eq!(a.status, 200, "{}", a.raw());
    assert_eq!(
        a.keys_in_order(),
        ["api_request_id", "results", "request_completed_at"]
    );
    assert_eq!(
        a.json["results"],
        json!({"invalid_minerva_pids": ["p-invalid!"], "n_redundant_additions": 0, "n_added": 2, "new_current_size": 2})
    );
    let order: Vec<usize> = [
        "invalid_minerva_pids",
        "n_redundant_additions",
        "n_added",
        "new_current_size",
    ]
    .iter()
    .map(|k| a.raw().find(k).unwrap())
    .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "results fields in the documented order"
    );
    assert!(is_timestamp(
        a.json["request_completed_at"].as_str().unwrap()
    ));
    let again = post(
        &wire,
        "/v2/segments/members/add",
        json!({"segment_id": id, "minerva_pids": ["p-a1b2c3d4e5f6"]}),
    );
    assert_eq!(again.json["results"]["n_redundant_additions"], 1);
}

#[test]
fn members_add_and_remove_error_table() {
    let wire = wire();
    let id = create(&wire, "Strict");
    let ghost = "550e8400-e29b-41d4-a716-446655440000";
    let too_many: Vec<String> = (0..100_001).map(|i| format!("p-{i}")).collect();
    for path in ["/v2/segments/members/add", "/v2/segments/members/remove"] {
        let cases: Vec<(Value, u16, String)> = vec![
            (
                json!({"minerva_pids": []}),
                422,
                "Input data must contain a 'segment_id' field".into(),
            ),
            (
                json!({"segment_id": id}),
                422,
                "Input data must contain a 'minerva_pids' field".into(),
            ),
            (
                json!({"segment_id": id, "minerva_pids": null}),
                422,
                "Input data must contain a 'minerva_pids' field".into(),
            ),
            (
                json!({"segment_id": "not-a-uuid", "minerva_pids": []}),
                422,
                "'segment_id' must be a UUID".into(),
            ),
            (
                json!({"segment_id": 7, "minerva_pids": []}),
                400,
                "'segment_id' must be a string".into(),
            ),
            (
                json!({"segment_id": id, "minerva_pids": "p-a"}),
                400,
                "'minerva_pids' must be an array of strings".into(),
            ),
            (
                json!({"segment_id": id, "minerva_pids": ["p-a", 1]}),
                400,
                "'minerva_pids' must be an array of strings".into(),
            ),
            (
                json!({"segment_id": ghost, "minerva_pids": ["p-a"]}),
                404,
                format!("Segment {ghost} not found"),
            ),
            (
                json!({"segment_id": id, "minerva_pids": too_many}),
                413,
                "More than 100000 minerva_pids in request".into(),
            ),
        ];
        for (body, status, message) in cases {
            let a = post(&wire, path, body);
            assert_error(&a, status, &message);
        }
    }
    let other = call(
        &wire,
        Method::POST,
        "/v2/segments/members/add",
        Some(OTHER_KEY),
        json!({"segment_id": id, "minerva_pids": ["p-a"]})
            .to_string()
            .as_bytes(),
    );
    assert_error(&other, 404, &format!("Segment {id} not found"));
    let size = get(&wire, &format!("/v2/segments/get?segment_id={id}"));
    assert_eq!(
        size.json["results"]["current_size"], 0,
        "no refused call added anything"
    );
}

#[test]
fn bodies_over_16_mib_are_too_large() {
    let wire = wire();
    let body = vec![b' '; 16 * 1024 * 1024 + 1];
    let a = call(&wire, Method::POST, "/v2/segments/create", Some(KEY), &body);
    assert_error(&a, 413, "More than 16777216 bytes in request");
    let exactly = vec![b' '; 16 * 1024 * 1024];
    let a = call(
        &wire,
        Method::POST,
        "/v2/segments/create",
        Some(KEY),
        &exactly,
    );
    assert_eq!(
        a.status, 400,
        "16 MiB exactly is read (and is not a JSON object)"
    );
}

#[test]
fn members_pages_answer_the_documented_shape() {
    let wire = wire();
    let id = create(&wire, "Paged");
    let pids: Vec<String> = (0..5_003).map(|i| format!("p-{i:05}")).collect();
    post(
        &wire,
        "/v2/segments/members/add",
        json!({"segment_id": id, "minerva_pids": pids}),
    );
    let a = get(&wire, &format!("/v2/segments/members?segment_id={id}"));
    assert_eq!(a.status, 200);
    assert_eq!(
        a.keys_in_order(),
        ["api_request_id", "results", "request_completed_at"]
    );
    let results = &a.json["results"];
    assert_eq!(results["page"], 1, "page defaults to 1");
    assert_eq!(results["total_count"], 5_003);
    assert_eq!(results["list_continues"], true);
    let items = results["items"].as_array().unwrap();
    assert_eq!(items.len(), 5_000, "pages of exactly 5,000");
    assert_eq!(
        items[0],
        json!({"minerva_pid": "p-00000", "first_added_at": "2024-01-15T10:30:45.123456Z"})
    );
    let second = get(
        &wire,
        &format!("/v2/segments/members?segment_id={id}&page=2"),
    );
    assert_eq!(second.json["results"]["items"].as_array().unwrap().len(), 3);
    assert_eq!(second.json["results"]["list_continues"], false);
    let past = get(
        &wire,
        &format!("/v2/segments/members?segment_id={id}&page=9"),
    );
    assert_eq!(past.status, 200, "past the end is still 200");
    assert_eq!(past.json["results"]["items"], json!([]));
    // However large (SPEC §5): past u64, past u128, with a plus sign or
    // leading zeros, a whole page number is a 200 with no members that
    // names the page asked for.
    for (page, named) in [
        ("18446744073709551615", "18446744073709551615"),
        ("18446744073709551616", "18446744073709551616"),
        ("%2B18446744073709551616", "18446744073709551616"),
        (
            "000340282366920938463463374607431768211456",
            "340282366920938463463374607431768211456",
        ),
        (&"9".repeat(300), &"9".repeat(300)),
    ] {
        let huge = get(
            &wire,
            &format!("/v2/segments/members?segment_id={id}&page={page}"),
        );
        assert_eq!(huge.status, 200, "page {page} is past the end: a 200");
        let results = &huge.json["results"];
        assert_eq!(results["items"], json!([]), "page {page}: no members");
        assert_eq!(results["total_count"], 5_003, "page {page}: the size");
        assert_eq!(results["list_continues"], false, "page {page}");
        assert!(
            huge.raw()
                .contains(&format!("\"page\":{named},\"list_continues\"")),
            "page {page}: the answer names the page asked for as a JSON number: {}",
            huge.raw()
        );
    }
    for (query, status, message) in [
        (
            format!("segment_id={id}&page=0"),
            422,
            "'page' must be at least 1".to_owned(),
        ),
        (
            format!("segment_id={id}&page=two"),
            422,
            "'page' must be a whole number".to_owned(),
        ),
        (
            format!("segment_id={id}&page=-1"),
            422,
            "'page' must be a whole number".to_owned(),
        ),
        (
            format!("segment_id={id}&page=00"),
            422,
            "'page' must be at least 1".to_owned(),
        ),
        (
            format!("segment_id={id}&page=1.0"),
            422,
            "'page' must be a whole number".to_owned(),
        ),
        (
            format!("segment_id={id}&page=1e30"),
            422,
            "'page' must be a whole number".to_owned(),
        ),
        (
            "page=1".to_owned(),
            422,
            "Input data must contain a 'segment_id' field".to_owned(),
        ),
        (
            "segment_id=xyz".to_owned(),
            422,
            "'segment_id' must be a UUID".to_owned(),
        ),
    ] {
        let a = get(&wire, &format!("/v2/segments/members?{query}"));
        assert_error(&a, status, &message);
    }
}

#[test]
fn members_remove_answers_the_documented_example() {
    let wire = wire();
    let id = create(&wire, "Shrinking");
    post(
        &wire,
        "/v2/segments/members/add",
        json!({"segment_id": id, "minerva_pids": ["p-a", "p-b", "p-c"]}),
    );
    let a = post(
        &wire,
        "/v2/segments/members/remove",
        json!({"segment_id": id, "minerva_pids": ["p-a", "p-b", "p-never"]}),
    );
    assert_eq!(a.status, 200);
    assert_eq!(
        a.keys_in_order(),
        ["api_request_id", "results", "request_completed_at"]
    );
    assert_eq!(
        a.json["results"],
        json!({"invalid_minerva_pids": [], "n_deleted": 2, "new_current_size": 1})
    );
    let order: Vec<usize> = ["invalid_minerva_pids", "n_deleted", "new_current_size"]
        .iter()
        .map(|k| a.raw().find(k).unwrap())
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "results fields in the documented order"
    );
}

#[test]
fn extensions_get_list_and_delete() {
    let wire = wire();
    let a = create(&wire, "Alpha");
    let b = create(&wire, "Beta");
    let got = get(&wire, &format!("/v2/segments/get?segment_id={a}"));
    assert_eq!(got.status, 200);
    let r = &got.json["results"];
    let keys: Vec<&str> = [
        "segment_id",
        "name",
        "description",
        "source",
        "current_size",
        "created_at",
        "updated_at",
    ]
    .to_vec();
    assert_eq!(r.as_object().unwrap().len(), keys.len());
    assert_eq!(r["segment_id"], a.as_str());
    assert_eq!(r["name"], "Alpha");
    assert!(
        is_timestamp(r["created_at"].as_str().unwrap())
            && is_timestamp(r["updated_at"].as_str().unwrap())
    );
    let page = get(&wire, "/v2/segments/list?limit=1");
    assert_eq!(page.json["results"]["items"][0]["segment_id"], a.as_str());
    let cursor = page.json["results"]["next_cursor"]
        .as_str()
        .expect("more pages")
        .to_owned();
    let rest = get(&wire, &format!("/v2/segments/list?cursor={cursor}"));
    assert_eq!(rest.json["results"]["items"][0]["segment_id"], b.as_str());
    assert_eq!(rest.json["results"]["next_cursor"], Value::Null);
    assert_error(
        &get(&wire, "/v2/segments/list?cursor=garbage"),
        422,
        "'cursor' must be a cursor returned by a previous list call",
    );
    assert_error(
        &get(&wire, "/v2/segments/list?limit=0"),
        422,
        "'limit' must be between 1 and 10000",
    );
    let deleted = post(&wire, "/v2/segments/delete", json!({"segment_id": a}));
    assert_eq!(deleted.status, 200);
    assert_eq!(
        deleted.keys_in_order(),
        ["api_request_id", "segment_id", "request_completed_at"]
    );
    assert_error(
        &get(&wire, &format!("/v2/segments/get?segment_id={a}")),
        404,
        &format!("Segment {a} not found"),
    );
    assert_error(
        &post(&wire, "/v2/segments/delete", json!({"segment_id": a})),
        404,
        &format!("Segment {a} not found"),
    );
    let other = call(
        &wire,
        Method::GET,
        &format!("/v2/segments/get?segment_id={b}"),
        Some(OTHER_KEY),
        b"",
    );
    assert_error(&other, 404, &format!("Segment {b} not found"));
}

/// A store whose backend always fails, to see what a 500 looks like.
#[derive(Debug)]
struct Broken;

fn broken<T>() -> Result<T> {
    Err(Error::storage(std::io::Error::other(
        "disk on fire at /var/secret/segments.db",
    )))
}

impl SegmentStore for Broken {
    fn insert_segment(&self, _: &OrgId, _: SegmentInsert, _: Stamp<'_>) -> Result<Segment> {
        broken()
    }
    fn segment(&self, _: &OrgId, _: SegmentId) -> Result<Segment> {
        broken()
    }
    fn segment_by_key(&self, _: &OrgId, _: &str) -> Result<Option<Segment>> {
        broken()
    }
    fn segments(&self, _: &OrgId, _: Page<Option<SegmentCursor>>) -> Result<Vec<Segment>> {
        broken()
    }
    fn update_segment(
        &self,
        _: &OrgId,
        _: SegmentId,
        _: &SegmentChange,
        _: Stamp<'_>,
    ) -> Result<Segment> {
        broken()
    }
    fn delete_segment(&self, _: &OrgId, _: SegmentId, _: Stamp<'_>) -> Result<()> {
        broken()
    }
    fn add_members(
        &self,
        _: &OrgId,
        _: SegmentId,
        _: &[Pid],
        _: Stamp<'_>,
    ) -> Result<StoreAddOutcome> {
        broken()
    }
    fn remove_members(
        &self,
        _: &OrgId,
        _: SegmentId,
        _: &[Pid],
        _: Stamp<'_>,
    ) -> Result<StoreRemoveOutcome> {
        broken()
    }
    fn create_from(
        &self,
        _: &OrgId,
        _: SegmentInsert,
        _: &SetExpr,
        _: Stamp<'_>,
    ) -> Result<Segment> {
        broken()
    }
    fn add_from(
        &self,
        _: &OrgId,
        _: SegmentId,
        _: &SetExpr,
        _: Stamp<'_>,
    ) -> Result<StoreAddOutcome> {
        broken()
    }
    fn remove_from(
        &self,
        _: &OrgId,
        _: SegmentId,
        _: &SetExpr,
        _: Stamp<'_>,
    ) -> Result<StoreRemoveOutcome> {
        broken()
    }
    fn members(&self, _: &OrgId, _: SegmentId, _: Page<MemberStart<'_>>) -> Result<MemberSlice> {
        broken()
    }
    fn changes_since(&self, _: &OrgId, _: Page<u64>) -> Result<Vec<Change>> {
        broken()
    }
    fn last_seq(&self, _: &OrgId) -> Result<u64> {
        broken()
    }
    fn timeline(&self, _: &OrgId, _: &Pid, _: Page<u64>) -> Result<Vec<Change>> {
        broken()
    }
    fn size_as_of(&self, _: &OrgId, _: SegmentId, _: DateTime<Utc>) -> Result<u64> {
        broken()
    }
    fn members_as_of(
        &self,
        _: &OrgId,
        _: SegmentId,
        _: DateTime<Utc>,
        _: Page<Option<&MemberCursor>>,
    ) -> Result<Vec<PastMember>> {
        broken()
    }
    fn idempotency_record(
        &self,
        _: &OrgId,
        _: &str,
        _: DateTime<Utc>,
    ) -> Result<Option<KeyRecord>> {
        broken()
    }
    fn record_idempotency(
        &self,
        _: &OrgId,
        _: &str,
        _: KeyRecord,
        _: DateTime<Utc>,
    ) -> Result<KeyRecord> {
        broken()
    }
    fn upsert_deaths(&self, _: &[DeathRecord], _: DateTime<Utc>) -> Result<StoreDeathsIngested> {
        broken()
    }
    fn death_signals(&self, _: &OrgId, _: SegmentId, _: Page<DeathCursor>) -> Result<DeathSignals> {
        broken()
    }
}

#[test]
fn storage_failures_are_500_without_detail_and_keep_the_error_for_the_host() {
    let wire = wire_over(Broken);
    let a = post(&wire, "/v2/segments/create", json!({"name": "Doomed"}));
    assert_error(&a, 500, "Internal server error");
    assert!(
        !a.raw().contains("secret") && !a.raw().contains("fire"),
        "no internal detail leaks: {}",
        a.raw()
    );
    let detail = a
        .response
        .extensions()
        .get::<ErrorDetail>()
        .expect("the error rides along for the host");
    let source = std::error::Error::source(&*detail.0).expect("the cause is chained");
    assert!(source.to_string().contains("disk on fire"));
    // Validation still answers before the store is asked.
    assert_eq!(post(&wire, "/v2/segments/create", json!({})).status, 422);
}

// ---------------------------------------------------------------------------
// Arbitrary input: never a panic, never a 500, always the documented shape.

const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v2/segments/create"),
    ("POST", "/v2/segments/members/add"),
    ("POST", "/v2/segments/members/remove"),
    ("POST", "/v2/segments/delete"),
    ("GET", "/v2/segments/members"),
    ("GET", "/v2/segments/get"),
    ("GET", "/v2/segments/list"),
    ("GET", "/v2/segments/signals/deaths"),
    ("GET", "/v2/usage/limits"),
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        "p-[a-z0-9]{1,12}".prop_map(Value::String),
        Just(Value::String("550e8400-e29b-41d4-a716-446655440000".into())),
        "\\PC{0,300}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::hash_map("[a-z_]{1,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A body with the documented fields set to arbitrary values.
fn field_body() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::option::of(json_value()),
        prop::option::of(json_value()),
        prop::option::of(json_value()),
        prop::option::of(json_value()),
    )
        .prop_map(|(name, description, segment_id, pids)| {
            let mut body = serde_json::Map::new();
            for (k, v) in [
                ("name", name),
                ("description", description),
                ("segment_id", segment_id),
                ("minerva_pids", pids),
            ] {
                if let Some(v) = v {
                    body.insert(k.into(), v);
                }
            }
            Value::Object(body).to_string().into_bytes()
        })
}

fn check_shape(a: &Answer) -> std::result::Result<(), TestCaseError> {
    prop_assert!(
        a.status != StatusCode::INTERNAL_SERVER_ERROR,
        "a 500 on bad input: {}",
        a.raw()
    );
    prop_assert!(
        [200, 400, 401, 404, 405, 413, 422, 429].contains(&a.status.as_u16()),
        "an undocumented status {}: {}",
        a.status,
        a.raw()
    );
    if a.status == 200 {
        prop_assert!(
            a.json["request_completed_at"]
                .as_str()
                .is_some_and(is_timestamp)
        );
    } else {
        prop_assert_eq!(
            a.keys_in_order(),
            ["api_request_id", "error_message", "statusCode", "body"]
        );
        prop_assert_eq!(
            a.json["statusCode"].as_u64(),
            Some(u64::from(a.status.as_u16()))
        );
        let legacy: Value = serde_json::from_str(a.json["body"].as_str().unwrap()).unwrap();
        prop_assert_eq!(&legacy["error"], &a.json["error_message"]);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_break_a_route(route in 0..ROUTES.len(), body in prop::collection::vec(any::<u8>(), 0..512)) {
        let wire = wire();
        let (method, path) = ROUTES[route];
        let a = call(&wire, method.parse().unwrap(), path, Some(KEY), &body);
        check_shape(&a)?;
    }

    #[test]
    fn arbitrary_json_fields_never_break_a_route(route in 0..ROUTES.len(), body in field_body()) {
        let wire = wire();
        let id = create(&wire, "Target");
        let (method, path) = ROUTES[route];
        let body = String::from_utf8(body).unwrap().replace("550e8400-e29b-41d4-a716-446655440000", &id);
        let a = call(&wire, method.parse().unwrap(), path, Some(KEY), body.as_bytes());
        check_shape(&a)?;
    }

    #[test]
    fn arbitrary_queries_and_paths_never_break(
        route in 0..ROUTES.len(),
        query in "[a-z_=&%0-9A-F.\\-]{0,80}",
        suffix in "\\PC{0,20}",
        method in prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
    ) {
        let wire = wire();
        let (_, path) = ROUTES[route];
        // Only what the http crate accepts as a URI reaches a host.
        let uri = format!("{path}{}?{query}", suffix.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '/').collect::<String>());
        prop_assume!(uri.parse::<http::Uri>().is_ok());
        let a = call(&wire, method.parse().unwrap(), &uri, Some(KEY), b"{}");
        check_shape(&a)?;
    }

    #[test]
    fn huge_and_unicode_strings_are_refused_cleanly(name in "\\PC{200,400}", description in "\\PC{1900,2100}", pids in prop::collection::vec("\\PC{0,80}", 0..50)) {
        let wire = wire();
        let a = post(&wire, "/v2/segments/create", json!({"name": name, "description": description}));
        check_shape(&a)?;
        let id = create(&wire, "Unicode target");
        let a = post(&wire, "/v2/segments/members/add", json!({"segment_id": id, "minerva_pids": pids}));
        check_shape(&a)?;
        prop_assert_eq!(a.status, 200, "malformed PIDs never fail an add");
    }
}

#[test]
fn heads_are_admitted_or_refused_before_any_body_is_read() {
    let wire = wire().with_rate_limit(RateLimit::new(1, 1).unwrap());
    let head = |key: Option<&str>, path: &str| {
        let mut request = Request::post(path);
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        request.body(()).unwrap().into_parts().0
    };
    let refused = wire.admit(&head(None, "/v2/segments/create")).unwrap_err();
    assert_eq!(refused.status(), 401, "no key: refused on the head");
    let refused = wire
        .admit(&head(Some(KEY), "/v1/segments/create"))
        .unwrap_err();
    assert_eq!(refused.status(), 404, "a v1 path: refused on the head");
    let admitted = wire
        .admit(&head(Some(KEY), "/v2/segments/create"))
        .expect("admitted");
    assert_eq!(admitted.org().as_str(), "acme");
    let limited = wire
        .admit(&head(Some(KEY), "/v2/segments/create"))
        .unwrap_err();
    assert_eq!(limited.status(), 429, "admitting counts against the rate");
    let request_id = admitted.request_id().to_owned();
    let response = wire.respond(admitted, br#"{"name": "Admitted"}"#);
    assert_eq!(response.status(), 200);
    let body: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(
        body["api_request_id"],
        request_id.as_str(),
        "the response carries the admitted id"
    );
}

#[test]
fn death_signals_answer_the_documented_shape() {
    use segments_engine::{DeathReport, SignalMetadata};
    let wire = wire();
    let id = create(&wire, "Watched");
    post(
        &wire,
        "/v2/segments/members/add",
        json!({"segment_id": id, "minerva_pids": ["p-a1b2c3d4e5f6", "p-alive"]}),
    );
    let empty = get(
        &wire,
        &format!("/v2/segments/signals/deaths?segment_id={id}"),
    );
    assert_eq!(
        empty.json["results"],
        json!([]),
        "an empty array when no member has a signal"
    );
    let out = wire
        .segments()
        .ingest_deaths(vec![DeathReport {
            minerva_pid: "p-a1b2c3d4e5f6".into(),
            obituary_id: "obit-xyz789".into(),
            date_of_death: "2023-12-15".into(),
            publication_last_update_date: Some("2023-12-18".into()),
            first_observed_at: Some(Utc.with_ymd_and_hms(2023, 12, 20, 8, 30, 0).unwrap()),
            signal_metadata: SignalMetadata {
                source: "obituary_database".into(),
                obituary_url: Some("https://example.com/obituary/xyz789".into()),
                publication_name: Some("Local News".into()),
                confidence_score: 0.95,
            },
        }])
        .unwrap();
    assert_eq!(out.n_inserted, 1);
    let a = get(
        &wire,
        &format!("/v2/segments/signals/deaths?segment_id={id}"),
    );
    assert_eq!(a.status, 200);
    assert_eq!(
        a.keys_in_order(),
        ["api_request_id", "results", "request_completed_at"]
    );
    assert_eq!(
        a.json["results"],
        json!([{
            "minerva_pid": "p-a1b2c3d4e5f6",
            "obituary_id": "obit-xyz789",
            "date_of_death": "2023-12-15",
            "publication_last_update_date": "2023-12-18",
            "first_observed_at": "2023-12-20T08:30:00.000000Z",
            "signal_metadata": {
                "source": "obituary_database",
                "obituary_url": "https://example.com/obituary/xyz789",
                "publication_name": "Local News",
                "confidence_score": 0.95
            }
        }]),
        "the documented example, field for field"
    );
    let order: Vec<usize> = [
        "minerva_pid",
        "obituary_id",
        "date_of_death",
        "publication_last_update_date",
        "first_observed_at",
        "signal_metadata",
        "\"source",
        "obituary_url",
        "publication_name",
        "confidence_score",
    ]
    .iter()
    .map(|k| a.raw().find(k).unwrap())
    .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "fields in the documented order: {}",
        a.raw()
    );
    assert_error(
        &get(&wire, "/v2/segments/signals/deaths"),
        422,
        "Input data must contain a 'segment_id' field",
    );
    let other = call(
        &wire,
        Method::GET,
        &format!("/v2/segments/signals/deaths?segment_id={id}"),
        Some(OTHER_KEY),
        b"",
    );
    assert_error(&other, 404, &format!("Segment {id} not found"));
    assert_error(
        &call(
            &wire,
            Method::GET,
            "/v1/segments/signals/deaths",
            Some(KEY),
            b"",
        ),
        404,
        "Segments signals/deaths endpoint only supports v2 API version",
    );
}

#[test]
fn changes_made_through_the_api_carry_its_request_id() {
    let wire = wire();
    let created = post(&wire, "/v2/segments/create", json!({"name": "Traced"}));
    let id = created.json["segment_id"].as_str().unwrap().to_owned();
    let added = post(
        &wire,
        "/v2/segments/members/add",
        json!({"segment_id": id, "minerva_pids": ["p-a"]}),
    );
    let org = OrgId::new("acme").unwrap();
    let feed = wire
        .segments()
        .changes_since(&org, PageOptions::new().limit(10))
        .unwrap();
    let ids: Vec<Option<&str>> = feed
        .changes
        .iter()
        .map(|c| c.request_id.as_deref())
        .collect();
    assert_eq!(
        ids,
        [
            created.json["api_request_id"].as_str(),
            added.json["api_request_id"].as_str()
        ],
        "each ledger entry names the api_request_id of the call that made it"
    );
}

/// A POST with an `Idempotency-Key` header (its raw value).
fn keyed_post<S: SegmentStore>(wire: &Wire<S>, path: &str, key: &str, body: Value) -> Answer {
    let request = Request::post(path)
        .header("x-api-key", KEY)
        .header("idempotency-key", key)
        .body(body.to_string().into_bytes())
        .unwrap();
    let response = wire.handle(request);
    let json = serde_json::from_slice(response.body()).expect("every body is JSON");
    Answer {
        status: response.status(),
        response,
        json,
    }
}

#[test]
fn idempotency_key_header_replays_the_first_answer_with_its_request_id() {
    let wire = wire();
    let body = json!({"name": "Keyed", "description": "d"});
    let first = keyed_post(&wire, "/v2/segments/create", r#""k-create""#, body.clone());
    assert_eq!(first.status, 200, "{}", first.raw());
    let again = keyed_post(&wire, "/v2/segments/create", r#""k-create""#, body);
    assert_eq!(again.status, 200, "{}", again.raw());
    assert_eq!(
        again.json["segment_id"], first.json["segment_id"],
        "one segment"
    );
    assert_eq!(
        again.json["api_request_id"], first.json["api_request_id"],
        "a replay carries the first request's api_request_id"
    );
    let listed = get(&wire, "/v2/segments/list");
    assert_eq!(listed.json["results"]["items"].as_array().unwrap().len(), 1);
    assert_error(
        &keyed_post(
            &wire,
            "/v2/segments/create",
            r#""k-create""#,
            json!({"name": "Keyed", "description": "other"}),
        ),
        422,
        "Idempotency key k-create was used with a different request",
    );
    let id = first.json["segment_id"].as_str().unwrap();

    // A bare key, as many clients send it; member calls replay their counts.
    let add = json!({"segment_id": id, "minerva_pids": ["p-a1b2c3d4e5f6", "p-x9y8z7w6v5u4"]});
    let added = keyed_post(&wire, "/v2/segments/members/add", "k-add", add.clone());
    assert_eq!(added.json["results"]["n_added"], 2);
    let replayed = keyed_post(&wire, "/v2/segments/members/add", "k-add", add.clone());
    assert_eq!(
        replayed.json["results"], added.json["results"],
        "n_added 2 again"
    );
    assert_eq!(
        replayed.json["api_request_id"],
        added.json["api_request_id"]
    );
    let fresh = post(&wire, "/v2/segments/members/add", add);
    assert_eq!(
        fresh.json["results"]["n_redundant_additions"], 2,
        "without a key"
    );
    assert_ne!(fresh.json["api_request_id"], added.json["api_request_id"]);

    // An error is an outcome too: replayed with its request id, even once
    // the name is free.
    let taken = create(&wire, "Taken");
    let dup = keyed_post(
        &wire,
        "/v2/segments/create",
        "k-dup",
        json!({"name": "taken"}),
    );
    assert_error(&dup, 404, "Segment name taken already exists");
    post(&wire, "/v2/segments/delete", json!({"segment_id": taken}));
    let dup_again = keyed_post(
        &wire,
        "/v2/segments/create",
        "k-dup",
        json!({"name": "taken"}),
    );
    assert_error(&dup_again, 404, "Segment name taken already exists");
    assert_eq!(dup_again.json["api_request_id"], dup.json["api_request_id"]);

    // Bad keys are refused before anything happens; reads ignore keys.
    for bad in [r#""unterminated"#, r#""a\x""#, "two words", r#""""#] {
        let answer = keyed_post(
            &wire,
            "/v2/segments/create",
            bad,
            json!({"name": format!("never {bad}")}),
        );
        assert_eq!(answer.status, 422, "{bad}: {}", answer.raw());
        assert!(
            answer.json["error_message"]
                .as_str()
                .unwrap()
                .starts_with("'idempotency_key'"),
            "{bad}: {}",
            answer.raw()
        );
    }
    assert_eq!(
        get(&wire, "/v2/segments/list").json["results"]["items"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "bad keys created nothing"
    );
    let read = Request::get(format!("/v2/segments/get?segment_id={id}"))
        .header("x-api-key", KEY)
        .header("idempotency-key", "k-create")
        .body(Vec::new())
        .unwrap();
    let read = wire.handle(read);
    assert_eq!(read.status(), 200, "a read ignores the key");
    let read: Value = serde_json::from_slice(read.body()).unwrap();
    assert_ne!(read["api_request_id"], first.json["api_request_id"]);

    // Keys are per org.
    let elsewhere = Request::post("/v2/segments/create")
        .header("x-api-key", OTHER_KEY)
        .header("idempotency-key", r#""k-create""#)
        .body(
            json!({"name": "Keyed", "description": "d"})
                .to_string()
                .into_bytes(),
        )
        .unwrap();
    let elsewhere: Value = serde_json::from_slice(wire.handle(elsewhere).body()).unwrap();
    assert_ne!(elsewhere["segment_id"], first.json["segment_id"]);
}

#[test]
fn set_operation_routes_build_segments_from_others() {
    let wire = wire();
    let members = |id: &str, pids: &[&str]| {
        let a = post(
            &wire,
            "/v2/segments/members/add",
            json!({"segment_id": id, "minerva_pids": pids}),
        );
        assert_eq!(a.status, 200, "{}", a.raw());
    };
    let (a, b, c) = (create(&wire, "A"), create(&wire, "B"), create(&wire, "C"));
    members(&a, &["p-000000000001", "p-000000000002"]);
    members(&b, &["p-000000000003"]);
    members(&c, &["p-000000000002"]);
    let expression = json!({"minus": [
        {"union": [{"segment": a}, {"segment": b}]},
        {"segment": c},
    ]});
    let made = post(
        &wire,
        "/v2/segments/create_from",
        json!({"name": "A or B, not C", "expression": expression}),
    );
    assert_eq!(made.status, 200, "{}", made.raw());
    assert_eq!(
        made.keys_in_order(),
        ["api_request_id", "results", "request_completed_at"]
    );
    assert_eq!(made.json["results"]["name"], "A or B, not C");
    assert_eq!(made.json["results"]["current_size"], 2);
    let target = create(&wire, "Target");
    let added = post(
        &wire,
        "/v2/segments/members/add_from",
        json!({"segment_id": target, "expression": {"union": [{"segment": a}, {"segment": b}, {"segment": c}]}}),
    );
    assert_eq!(
        added.json["results"],
        json!({"invalid_minerva_pids": [], "n_redundant_additions": 0, "n_added": 3, "new_current_size": 3})
    );
    let removed = post(
        &wire,
        "/v2/segments/members/remove_from",
        json!({"segment_id": target, "expression": {"intersect": [{"segment": a}, {"segment": c}]}}),
    );
    assert_eq!(
        removed.json["results"],
        json!({"invalid_minerva_pids": [], "n_deleted": 1, "new_current_size": 2})
    );

    let shape = "'expression' must be an object with one of segment, union, intersect or minus";
    let refused = |expression: Value| {
        post(
            &wire,
            "/v2/segments/members/add_from",
            json!({"segment_id": target, "expression": expression}),
        )
    };
    assert_error(&refused(json!("A")), 422, shape);
    assert_error(&refused(json!({"union": [{"segment": a}]})), 422, shape);
    assert_error(
        &refused(json!({"minus": [{"segment": a}, {"segment": b}, {"segment": c}]})),
        422,
        shape,
    );
    assert_error(&refused(json!({"segment": a, "union": []})), 422, shape);
    assert_error(
        &refused(json!({"segment": "nope"})),
        422,
        "'expression' must be segment ids that are UUIDs",
    );
    let mut deep = json!({"segment": a});
    for _ in 0..9 {
        deep = json!({"minus": [deep, {"segment": b}]});
    }
    assert_error(
        &refused(deep),
        422,
        "'expression' must be at most 8 levels deep",
    );
    let many: Vec<Value> = (0..33).map(|_| json!({"segment": a})).collect();
    assert_error(
        &refused(json!({"union": many})),
        422,
        "'expression' must be at most 32 segments named",
    );
    assert_error(
        &post(&wire, "/v2/segments/create_from", json!({"name": "x"})),
        422,
        "Input data must contain a 'expression' field",
    );
    let ghost = "550e8400-e29b-41d4-a716-446655440000";
    assert_error(
        &refused(json!({"segment": ghost})),
        404,
        &format!("Segment {ghost} not found"),
    );
    assert_eq!(
        get(&wire, &format!("/v2/segments/get?segment_id={target}")).json["results"]["current_size"],
        2,
        "refused calls changed nothing"
    );
    let flat: Vec<Value> = (0..32).map(|_| json!({"segment": a})).collect();
    let other = create(&wire, "Flat");
    let flat_union = post(
        &wire,
        "/v2/segments/members/add_from",
        json!({"segment_id": other, "expression": {"union": flat}}),
    );
    assert_eq!(
        flat_union.status,
        200,
        "a flat union of 32 nests 6 levels, within the limit: {}",
        flat_union.raw()
    );
}
