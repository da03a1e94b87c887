//! Fuzzes the wire adapter: any method, path, query, API key and body.
//! It must never panic, and never answer 500 (there is no storage failure
//! in memory); every answer is JSON with an `api_request_id`.
//!
//! ```text
//! cargo fuzz run wire
//! ```

#![no_main]

use libfuzzer_sys::fuzz_target;
use segments_engine::wire::{KeyRing, RateLimit, Wire};
use segments_engine::{MemoryStore, NewSegment, OrgId, Segments};
use std::sync::OnceLock;

const KEY: &str = "mk_live_fuzz";

fn wire() -> &'static (Wire<MemoryStore>, String) {
    static WIRE: OnceLock<(Wire<MemoryStore>, String)> = OnceLock::new();
    WIRE.get_or_init(|| {
        let org = OrgId::new("fuzz").unwrap();
        let segments = Segments::new(MemoryStore::new());
        let id = segments.create(&org, NewSegment::new("Target")).unwrap().id;
        segments.add_members(&org, id, &["p-a", "p-b"]).unwrap();
        let mut keys = KeyRing::new();
        keys.insert(KEY, org);
        let wire = Wire::new(segments, keys)
            .with_rate_limit(RateLimit::new(1_000_000, 1_000_000).unwrap());
        (wire, id.to_string())
    })
}

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "HEAD"];
const PATHS: [&str; 10] = [
    "/v2/segments/create",
    "/v2/segments/members/add",
    "/v2/segments/members",
    "/v2/segments/members/remove",
    "/v2/segments/get",
    "/v2/segments/list",
    "/v2/segments/delete",
    "/v2/segments/signals/deaths",
    "/v2/usage/limits",
    "/v1/segments/create",
];

fuzz_target!(|data: &[u8]| {
    let (wire, id) = wire();
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    // The first byte picks method, path and key; the rest is split into a
    // query and a body at the first 0xff, with `@ID` standing for the live
    // segment's id so the fuzzer reaches real segments.
    let (query, body) = match rest.iter().position(|&b| b == 0xff) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&[][..], rest),
    };
    let query = String::from_utf8_lossy(query).replace("@ID", id);
    let body = String::from_utf8_lossy(body)
        .replace("@ID", id)
        .into_bytes();
    let method = METHODS[selector as usize % METHODS.len()];
    let path = PATHS[(selector as usize / METHODS.len()) % PATHS.len()];
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("{path}?{query}"));
    if selector & 0x80 == 0 {
        request = request.header("x-api-key", KEY);
    }
    let Ok(request) = request.body(body) else {
        return;
    };
    let response = wire.handle(request);
    assert_ne!(response.status(), 500, "a 500 without a storage failure");
    let json: serde_json::Value =
        serde_json::from_slice(response.body()).expect("every answer is JSON");
    assert!(
        json["api_request_id"].is_string(),
        "every answer has an api_request_id"
    );
});
