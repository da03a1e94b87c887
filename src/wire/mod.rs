//! The documented HTTP contract, transport-free (feature `wire`).
//!
//! [`Wire::handle`] takes an [`http::Request`] whose body is bytes and
//! returns the [`http::Response`] the documented Segments API gives, byte for
//! byte in shape: field names, JSON types and order, status codes, the
//! `YYYY-MM-DDTHH:MM:SS.ffffffZ` timestamps, the error body with its
//! deprecated `statusCode` and `body` fields. Any host serves it from any
//! framework; the `server` example does it with axum.
//!
//! | route | | |
//! |---|---|---|
//! | `POST /v2/segments/create` | documented | `{name, description?}` → `segment_id` |
//! | `POST /v2/segments/members/add` | documented | `{segment_id, minerva_pids}` → `results` |
//! | `GET /v2/segments/members?segment_id=&page=` | documented | pages of 5,000 → `results` |
//! | `POST /v2/segments/members/remove` | documented | `{segment_id, minerva_pids}` → `results` |
//! | `POST /v2/segments/create_from` | extension | `{name, description?, expression}` → the new segment's metadata |
//! | `POST /v2/segments/members/add_from` | extension | `{segment_id, expression}` → `results` as `members/add` |
//! | `POST /v2/segments/members/remove_from` | extension | `{segment_id, expression}` → `results` as `members/remove` |
//! | `GET /v2/segments/get?segment_id=` | extension | the segment's metadata |
//! | `GET /v2/segments/list?cursor=&limit=` | extension | the org's segments, in creation order |
//! | `POST /v2/segments/delete` | extension | `{segment_id}` → `segment_id` |
//! | `GET /v2/segments/signals/deaths?segment_id=` | documented | death records of current members |
//! | `GET /v2/usage/limits` | documented | the org's rate limits |
//!
//! Around every request, in this order: the route (`/v1/segments/...` is a
//! 404 saying only v2 exists; another method is a 405 with `Allow`; an
//! unknown path a 404), the `x-api-key` (missing or unknown: 401), the org's
//! rate (over it: 429 with `Retry-After`), the body size (over 16 MiB: 413).
//! Nothing is done for a request refused on the way. A host that reads
//! bodies itself checks the head first with [`Wire::admit`] and reads the
//! body only for an admitted request, then calls [`Wire::respond`]; the
//! body `Content-Type` is not checked. Every response is
//! `application/json` and carries an `api_request_id`; every 200 carries
//! `request_completed_at`. Unknown body fields are ignored.
//!
//! **Set operations** (extension routes) take an `expression`:
//! `{"segment": "<id>"}`, `{"union": [e, e, …]}`, `{"intersect": [e, e, …]}`
//! (2 to 32 operands, nested as a balanced tree) or `{"minus": [a, b]}`,
//! nested; see [`SetExpr`](crate::SetExpr) for what they mean and their
//! limits (422 beyond them; 404 for an unknown source).
//!
//! **Idempotency keys.** A write (every `POST` route) with an
//! `Idempotency-Key` header, as in the IETF httpapi draft
//! (`Idempotency-Key: "8e03978e-40d5-43e8"`, a structured-field string; a
//! bare value is taken as it is), applies once per key and org: a retry
//! with the same key and body gets the first answer, with the first
//! request's `api_request_id` (a duplicate name's 404 included); the same
//! key with another body is a 422, a retry racing the first call a 409
//! (try again); a malformed key a 422 naming `idempotency_key`. Keys are
//! remembered for the service's
//! [TTL](crate::Segments::with_idempotency_ttl) (24 hours by default).
//! `GET` routes ignore the header. A replay's `request_completed_at` is
//! when the replay was answered.
//!
//! ```
//! use segments_engine::wire::{KeyRing, Wire};
//! use segments_engine::{MemoryStore, OrgId, Segments};
//!
//! let mut keys = KeyRing::new();
//! keys.insert("mk_live_example", OrgId::new("acme")?);
//! let wire = Wire::new(Segments::new(MemoryStore::new()), keys);
//!
//! let request = http::Request::post("/v2/segments/create")
//!     .header("x-api-key", "mk_live_example")
//!     .header("content-type", "application/json")
//!     .body(br#"{"name": "Q1 2024 Enterprise Prospects"}"#.to_vec())?;
//! let response = wire.handle(request);
//! assert_eq!(response.status(), 200);
//! let body: serde_json::Value = serde_json::from_slice(response.body())?;
//! assert!(body["segment_id"].is_string());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A failed request's [`Error`] rides along in the response's extensions
//! as an [`ErrorDetail`], so a host can log what a 500 hides from the client.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use uuid::Uuid;

use crate::domain::limits::MAX_BODY_BYTES;
use crate::error::{Field, Rule, ValidationError};
use crate::{
    AddOutcome, DeathRecord, Error, MembersPage, NewSegment, OrgId, PageOptions, RemoveOutcome,
    Result, Segment, SegmentCursor, SegmentId, SegmentPage, SegmentStore, Segments,
};

mod auth;
mod json;
mod responses;
mod routes;

pub use auth::{Authenticator, KeyRing};
use json::{
    AddResults, DeathItem, ErrorResponse, LegacyErrorBody, LimitsResponse, ListResults, MemberItem,
    MembersResults, Query, RemoveResults, ResultsResponse, SegmentIdResponse, SegmentItem,
};
pub use responses::error_response;
use responses::*;
use routes::*;

/// An org's request rate: a sustained rate and a burst above it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per second, sustained.
    pub per_second: NonZeroU32,
    /// Requests that may arrive at once.
    pub burst: NonZeroU32,
}

impl RateLimit {
    /// `per_second` sustained, `burst` at once; `None` if either is 0 (a
    /// limit of 0 would refuse every request: leave the limit off instead).
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        Some(Self {
            per_second: NonZeroU32::new(per_second)?,
            burst: NonZeroU32::new(burst)?,
        })
    }
}

/// The error behind a failed response, in its extensions, for the host's
/// logs: `response.extensions().get::<ErrorDetail>()`.
#[derive(Clone, Debug)]
pub struct ErrorDetail(pub Arc<Error>);

/// A request whose head passed [`Wire::admit`]: its route, org and
/// `api_request_id`, waiting for its body.
#[derive(Debug)]
pub struct Admitted {
    request_id: String,
    route: Route,
    org: OrgId,
    query: Option<String>,
    idempotency_key: Option<HeaderValue>,
}

impl Admitted {
    /// The org the request acts for.
    pub fn org(&self) -> &OrgId {
        &self.org
    }

    /// The `api_request_id` its response will carry.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }
}

/// The documented API over a [`Segments`] service.
///
/// `Wire` is `Send + Sync`: share one in an `Arc` across a server's
/// threads. [`handle`](Wire::handle) is synchronous; async hosts call it in
/// `spawn_blocking`.
pub struct Wire<S> {
    segments: Segments<S>,
    auth: Arc<dyn Authenticator>,
    rate: Option<(RateLimit, DefaultKeyedRateLimiter<OrgId>)>,
}

impl<S> fmt::Debug for Wire<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wire")
            .field("auth", &self.auth)
            .field("rate", &self.rate.as_ref().map(|(r, _)| r))
            .finish_non_exhaustive()
    }
}

/// What a route did, before it is written as JSON.
enum Answer {
    Created(SegmentId),
    Deleted(SegmentId),
    Added(AddOutcome),
    Removed(RemoveOutcome),
    /// A members page, with the digits of a page asked past `u64`.
    Page(MembersPage, Option<String>),
    Segment(Segment),
    List(SegmentPage),
    Deaths(Vec<DeathRecord>),
    Limits,
}

/// The `name` and `description` of a create.
fn new_segment(body: &serde_json::Map<String, serde_json::Value>) -> Result<NewSegment, Refusal> {
    let mut new = NewSegment::new(json::required_str(body, Field::Name)?);
    if let Some(d) = json::optional_str(body, Field::Description)? {
        new = new.description(d);
    }
    Ok(new)
}

/// The key an `Idempotency-Key` header gives: as the IETF draft has it, a
/// structured-field string (`"…"`, printable ASCII, `\"` and `\\`
/// escaped); a bare value of visible ASCII, as many clients send, is taken
/// as it is. The service checks the key itself (length, characters).
fn idempotency_key(header: &HeaderValue) -> Result<String, ValidationError> {
    let malformed = || {
        ValidationError::new(
            Field::IdempotencyKey,
            Rule::Malformed {
                expected: "a structured-field string of printable ASCII",
            },
        )
    };
    let raw = std::str::from_utf8(header.as_bytes())
        .map_err(|_| malformed())?
        .trim_matches(' ');
    let Some(quoted) = raw.strip_prefix('"') else {
        return if raw.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(raw.to_owned())
        } else {
            Err(malformed())
        };
    };
    let mut key = String::new();
    let mut chars = quoted.chars();
    loop {
        match chars.next() {
            Some('"') if chars.as_str().is_empty() => return Ok(key),
            Some('\\') => match chars.next() {
                Some(c @ ('"' | '\\')) => key.push(c),
                _ => return Err(malformed()),
            },
            Some(c) if c != '"' && (' '..='~').contains(&c) => key.push(c),
            _ => return Err(malformed()),
        }
    }
}

impl<S: SegmentStore> Wire<S> {
    /// The API over `segments`, with `auth` deciding who may call it, and no
    /// rate limit.
    pub fn new(segments: Segments<S>, auth: impl Authenticator + 'static) -> Self {
        Self {
            segments,
            auth: Arc::new(auth),
            rate: None,
        }
    }

    /// Limits each org to `rate`; requests over it get a 429 with
    /// `Retry-After` and do nothing.
    pub fn with_rate_limit(mut self, rate: RateLimit) -> Self {
        let quota = Quota::per_second(rate.per_second).allow_burst(rate.burst);
        self.rate = Some((rate, RateLimiter::keyed(quota)));
        self
    }

    /// The service underneath.
    pub fn segments(&self) -> &Segments<S> {
        &self.segments
    }

    /// Answers one request as the documented API does. Never panics on any
    /// input; a 500 only for a real storage failure, with no detail in the
    /// body.
    pub fn handle<B: AsRef<[u8]>>(&self, request: Request<B>) -> Response<Vec<u8>> {
        let (head, body) = request.into_parts();
        match self.admit(&head) {
            Ok(admitted) => self.respond(admitted, body.as_ref()),
            Err(refused) => refused,
        }
    }

    /// The checks on a request's head, before its body is read: route,
    /// API key, rate. A host that reads bodies itself calls this first, so a
    /// caller without a key, or over its rate, costs it no body read; then
    /// [`respond`](Wire::respond) with the body. [`handle`](Wire::handle)
    /// does both.
    ///
    /// # Errors
    /// The response to send as it is (404, 405, 401 or 429), when the head
    /// is refused. Admitting counts against the org's rate.
    // The refusal is a whole response, moved once per refused request: not
    // worth a box.
    #[allow(clippy::result_large_err)]
    pub fn admit(&self, head: &http::request::Parts) -> Result<Admitted, Response<Vec<u8>>> {
        let request_id = Uuid::now_v7().hyphenated().to_string();
        let checked = route(&head.method, head.uri.path()).and_then(|route| {
            let org = head
                .headers
                .get("x-api-key")
                .and_then(|key| key.to_str().ok())
                .and_then(|key| self.auth.authenticate(key))
                .ok_or(Error::Unauthorized)?;
            self.check_rate(&org)?;
            Ok((route, org))
        });
        match checked {
            Ok((route, org)) => Ok(Admitted {
                request_id,
                route,
                org,
                query: head.uri.query().map(str::to_owned),
                idempotency_key: head.headers.get("idempotency-key").cloned(),
            }),
            Err(refusal) => Err(refusal_response(refusal, &request_id)),
        }
    }

    /// Answers an admitted request with its body (at most
    /// [`MAX_BODY_BYTES`] are read: a host may cut the body one byte past
    /// it, and the answer is the documented 413).
    pub fn respond(&self, admitted: Admitted, body: &[u8]) -> Response<Vec<u8>> {
        // Every change is recorded in the ledger with this request's id.
        let s = self.segments.for_request(&admitted.request_id);
        let key = admitted
            .idempotency_key
            .as_ref()
            .filter(|_| admitted.route.writes());
        let (outcome, first_id) = match key.map(idempotency_key) {
            None => (self.apply(&s, &admitted, body), None),
            Some(Err(e)) => (Err(e.into()), None),
            Some(Ok(key)) => {
                let keyed = s.with_idempotency_key(key.as_str());
                let outcome = self.apply(&keyed, &admitted, body);
                // An outcome a key can replay is the one its record
                // holds: a replay answers with the first request's id.
                let replayable = matches!(
                    outcome,
                    Ok(_)
                        | Err(Refusal::Domain(
                            Error::DuplicateName { .. } | Error::NotFound { .. }
                        ))
                );
                let first_id = replayable
                    .then(|| keyed.idempotency_record(&admitted.org, &key))
                    .and_then(|found| found.ok().flatten())
                    .and_then(|record| record.request_id);
                (outcome, first_id)
            }
        };
        let request_id = first_id.as_deref().unwrap_or(&admitted.request_id);
        match outcome {
            Ok(answer) => json_response(StatusCode::OK, self.render(&answer, request_id)),
            Err(refusal) => refusal_response(refusal, request_id),
        }
    }

    /// Does what the request asks of the service `s`.
    fn apply<T: SegmentStore>(
        &self,
        s: &Segments<T>,
        admitted: &Admitted,
        body: &[u8],
    ) -> Result<Answer, Refusal> {
        let Admitted {
            route, org, query, ..
        } = admitted;
        if body.len() > MAX_BODY_BYTES {
            return Err(Error::TooLarge {
                what: "bytes",
                limit: MAX_BODY_BYTES,
            }
            .into());
        }
        let query = || Query::parse(query.as_deref());
        let answer = match *route {
            Route::Create => {
                let body = json::object(body)?;
                let new = new_segment(&body)?;
                Answer::Created(s.create(org, new)?.id)
            }
            Route::CreateFrom => {
                let body = json::object(body)?;
                let new = new_segment(&body)?;
                let expr = json::expression(&body)?;
                Answer::Segment(s.create_from(org, new, &expr)?)
            }
            Route::MembersAdd => {
                let body = json::object(body)?;
                let id = json::segment_id(&body)?;
                Answer::Added(s.add_members(org, id, &json::pids(&body)?)?)
            }
            Route::MembersAddFrom => {
                let body = json::object(body)?;
                let id = json::segment_id(&body)?;
                Answer::Added(s.add_from(org, id, &json::expression(&body)?)?)
            }
            Route::MembersRemove => {
                let body = json::object(body)?;
                let id = json::segment_id(&body)?;
                Answer::Removed(s.remove_members(org, id, &json::pids(&body)?)?)
            }
            Route::MembersRemoveFrom => {
                let body = json::object(body)?;
                let id = json::segment_id(&body)?;
                Answer::Removed(s.remove_from(org, id, &json::expression(&body)?)?)
            }
            Route::Members => {
                let query = query();
                let id = query.segment_id()?;
                match query.page()?.unwrap_or(json::PageParam::Number(1)) {
                    json::PageParam::Number(page) => {
                        Answer::Page(s.members_page(org, id, page)?, None)
                    }
                    // Past the end of any segment: the page past u64's end
                    // (empty, with the segment's size), named as asked.
                    json::PageParam::Beyond(digits) => {
                        Answer::Page(s.members_page(org, id, u64::MAX)?, Some(digits))
                    }
                }
            }
            Route::Get => Answer::Segment(s.get(org, query().segment_id()?)?),
            Route::List => {
                let query = query();
                let mut options = PageOptions::new();
                if let Some(cursor) = query.get(Field::Cursor) {
                    options = options.after(cursor.parse::<SegmentCursor>()?);
                }
                if let Some(limit) = query.number(Field::Limit)? {
                    options = options.limit(usize::try_from(limit).unwrap_or(usize::MAX));
                }
                Answer::List(s.list(org, options)?)
            }
            Route::Delete => {
                let id = json::segment_id(&json::object(body)?)?;
                s.delete(org, id)?;
                Answer::Deleted(id)
            }
            Route::Deaths => Answer::Deaths(s.death_signals(org, query().segment_id()?)?),
            Route::UsageLimits => Answer::Limits,
        };
        Ok(answer)
    }

    /// The documented JSON of `answer`, with `request_id` as its
    /// `api_request_id`.
    fn render(&self, answer: &Answer, request_id: &str) -> Vec<u8> {
        let segment_id = |id: &SegmentId| {
            json::to_vec(&SegmentIdResponse {
                api_request_id: request_id,
                segment_id: id.to_string(),
                request_completed_at: self.completed_at(),
            })
        };
        match answer {
            Answer::Created(id) | Answer::Deleted(id) => segment_id(id),
            Answer::Added(out) => self.results(
                request_id,
                AddResults {
                    invalid_minerva_pids: &out.invalid_pids,
                    n_redundant_additions: out.n_redundant_additions,
                    n_added: out.n_added,
                    new_current_size: out.new_current_size,
                },
            ),
            Answer::Removed(out) => self.results(
                request_id,
                RemoveResults {
                    invalid_minerva_pids: &out.invalid_pids,
                    n_deleted: out.n_deleted,
                    new_current_size: out.new_current_size,
                },
            ),
            Answer::Page(page, beyond) => self.results(
                request_id,
                MembersResults {
                    items: page.items.iter().map(MemberItem::from).collect(),
                    total_count: page.total_count,
                    page: match beyond {
                        Some(digits) => json::PageNumber::Digits(digits),
                        None => json::PageNumber::Number(page.page),
                    },
                    list_continues: page.list_continues,
                },
            ),
            Answer::Segment(segment) => self.results(request_id, SegmentItem::from(segment)),
            Answer::List(page) => self.results(
                request_id,
                ListResults {
                    items: page.segments.iter().map(SegmentItem::from).collect(),
                    next_cursor: page.next.map(|c| c.to_string()),
                },
            ),
            Answer::Deaths(records) => self.results(
                request_id,
                records.iter().map(DeathItem::from).collect::<Vec<_>>(),
            ),
            Answer::Limits => {
                let rate = self.rate.as_ref().map(|(r, _)| r);
                json::to_vec(&LimitsResponse {
                    api_request_id: request_id,
                    rps_limit: rate.map(|r| r.per_second.get()),
                    burst_limit: rate.map(|r| r.burst.get()),
                    daily_quota: None,
                    daily_quota_used: None,
                    reset_at_utc: None,
                    request_completed_at: self.completed_at(),
                })
            }
        }
    }

    fn check_rate(&self, org: &OrgId) -> Result<(), Error> {
        let Some((_, limiter)) = &self.rate else {
            return Ok(());
        };
        limiter
            .check_key(org)
            .map_err(|not_until| Error::RateLimited {
                retry_after: not_until.wait_time_from(limiter.clock().now()),
            })
    }

    fn completed_at(&self) -> String {
        json::timestamp(self.segments.now())
    }

    fn results(&self, request_id: &str, results: impl serde::Serialize) -> Vec<u8> {
        json::to_vec(&ResultsResponse {
            api_request_id: request_id,
            results,
            request_completed_at: self.completed_at(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body of `response`, checked for the documented error shape.
    fn error_body(response: &Response<Vec<u8>>) -> serde_json::Value {
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).unwrap(),
            "application/json"
        );
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        let status = response.status().as_u16();
        assert_eq!(body["statusCode"], status, "{body}");
        assert!(
            body["api_request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
        );
        let legacy: serde_json::Value =
            serde_json::from_str(body["body"].as_str().expect("body is a string")).unwrap();
        assert_eq!(
            legacy,
            serde_json::json!({"error": body["error_message"], "status_code": status}),
            "the deprecated body repeats the message and status"
        );
        body
    }

    #[test]
    fn host_refusals_have_the_documented_error_body() {
        // The same 413 as the adapter's own for a body over the limit.
        let host = error_response(StatusCode::PAYLOAD_TOO_LARGE, Some("req_1"));
        let segments = Segments::new(crate::MemoryStore::new());
        let mut keys = KeyRing::new();
        keys.insert("k", OrgId::new("acme").unwrap());
        let over = Request::post("/v2/segments/create")
            .header("x-api-key", "k")
            .body(vec![b' '; MAX_BODY_BYTES + 1])
            .unwrap();
        let adapter = Wire::new(segments, keys).handle(over);
        assert_eq!(host.status(), 413);
        assert_eq!(adapter.status(), 413);
        assert_eq!(
            error_body(&host)["error_message"],
            error_body(&adapter)["error_message"]
        );
        assert_eq!(error_body(&host)["api_request_id"], "req_1", "the id given");

        for (status, message) in [
            (StatusCode::UNAUTHORIZED, "Unauthorized"),
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error"),
            (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"),
            (StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
        ] {
            let response = error_response(status, None);
            assert_eq!(response.status(), status);
            assert_eq!(error_body(&response)["error_message"], message, "{status}");
            assert_eq!(response.headers().len(), 1, "only Content-Type");
        }
        let a = error_body(&error_response(StatusCode::REQUEST_TIMEOUT, None));
        let b = error_body(&error_response(StatusCode::REQUEST_TIMEOUT, None));
        assert_ne!(a["api_request_id"], b["api_request_id"], "a fresh id each");
    }
}
