//! The HTTP side of the `server` example: the adapter ([`Wire`]) behind
//! axum and the tower-http layers that do a transport's jobs.
//!
//! Every request under `/v2/` (and any other path the host does not serve
//! itself) goes to the adapter: first its head to [`Wire::admit`] (route,
//! `x-api-key`, rate), then, if admitted, its body to [`Wire::respond`]. The
//! adapter decides everything the documented API says (routes, `405` with
//! `Allow`, `401`, `429`, the error bodies); this module moves bytes between
//! axum and [`http`] types, reads no body for a refused head, runs the
//! adapter (which is synchronous: it calls the store) in
//! [`tokio::task::spawn_blocking`] so it never stalls the async workers,
//! and adds what a transport adds:
//!
//! - [`TraceLayer`]: one log line per request ([`subscriber`] sets up text
//!   or JSON lines), with the error chain the client never sees for a 5xx;
//! - [`TimeoutLayer`]: a request that has no answer after the timeout gets
//!   a `503` (the store call, already running, still runs to its end);
//! - [`RequestBodyLimitLayer`], after the head is admitted: a body over
//!   [`MAX_BODY_BYTES`] is a `413`, refused before any of it is read when
//!   its `Content-Length` says so, else when reading reaches the first
//!   byte past the limit, so no more than the limit is ever held;
//! - two routes of the host's own: `GET /healthz` (a read of the store,
//!   through [`AsyncSegments`], the service's async facade) and
//!   `GET /openapi.json` (the [`OPENAPI`] document).
//!
//! Nothing that holds the store is dropped on an async thread (a sync
//! `PostgresStore` connection may not close there): the adapter is held in
//! a [`DropOffRuntime`] and the service in an [`AsyncSegments`], which drop
//! what they hold on the blocking pool, whichever handle goes last (a
//! connection task, a request that timed out, the server at shutdown).
//!
//! A layer that answers by itself (the body limit, the timeout, axum's
//! `405` on the host's routes) answers in the documented error body too,
//! built by [`segments_engine::wire::error_response`].
//!
//! It names nothing from the example's `main.rs`, so a test can include it
//! with `#[path = "../examples/server/app.rs"] mod app;`.

use std::error::Error as _;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{self, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use segments_engine::limits::MAX_BODY_BYTES;
use segments_engine::wire::{Admitted, ErrorDetail, Wire, error_response};
use segments_engine::{AsyncSegments, DropOffRuntime, OrgId, PageOptions, SegmentStore};
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;

/// The store the server runs on: a SQLite file or a PostgreSQL database,
/// shared by the adapter and the host's own routes.
pub type Store = Arc<dyn SegmentStore>;

/// The adapter every request is answered by, shared across the server.
pub type SharedWire = Arc<Wire<Store>>;

/// The OpenAPI 3.1 document of every route the server serves (the
/// documented ones, the extensions, and the host's own), served at
/// [`OPENAPI_PATH`]. Kept in the repository as `openapi.json`.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// Where the server serves [`OPENAPI`].
pub const OPENAPI_PATH: &str = "/openapi.json";

/// The health check: `200 {"status":"ok"}` when a read of the store
/// works, else a `503` in the documented error body.
pub const HEALTHZ_PATH: &str = "/healthz";

/// The status of a request that ran past its timeout.
pub const TIMEOUT_STATUS: StatusCode = StatusCode::SERVICE_UNAVAILABLE;

/// What every handler shares.
#[derive(Clone, Debug)]
struct App {
    /// The adapter, dropped off the async threads when the last handle
    /// goes.
    wire: Arc<DropOffRuntime<SharedWire>>,
    /// The adapter's service (the same store, clock and cache of page
    /// ends), async, for the host's own routes.
    segments: AsyncSegments<Store>,
}

/// The whole server: the host's routes, every other request to `wire`, and
/// around all of it the log line, the documented error bodies and the
/// timeout.
pub fn router(wire: SharedWire, request_timeout: Duration) -> Router {
    let app = App {
        segments: AsyncSegments::new(wire.segments().clone()),
        wire: Arc::new(DropOffRuntime::new(wire)),
    };
    let api = ServiceBuilder::new()
        // The head first: route, key and rate. A refused head costs no
        // body read.
        .layer(middleware::from_fn_with_state(app.clone(), admit))
        // Then the body's size.
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .service(axum::handler::Handler::with_state(respond, app.clone()));
    Router::new()
        .route(HEALTHZ_PATH, get(healthz))
        .route(OPENAPI_PATH, get(openapi))
        .fallback_service(api)
        .with_state(app)
        .layer(
            ServiceBuilder::new()
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_span)
                        .on_request(())
                        .on_response(log_response)
                        .on_failure(()),
                )
                .layer(middleware::from_fn_with_state(
                    request_timeout,
                    documented_errors,
                ))
                .layer(TimeoutLayer::with_status_code(
                    TIMEOUT_STATUS,
                    request_timeout,
                )),
        )
}

/// A request the adapter admitted, carried from [`admit`] to [`respond`]
/// in the request's extensions (which hold only `Clone` values; it is
/// taken once).
#[derive(Clone, Debug)]
struct Admission(Arc<Mutex<Option<Admitted>>>);

/// The `api_request_id` the adapter gave a request it admitted, set by
/// [`admit`] in a slot that [`documented_errors`] put in the request's
/// extensions, so that a layer's own answer (a timeout's) carries the id
/// the request's changes are recorded under.
#[derive(Clone, Debug, Default)]
struct RequestId(Arc<OnceLock<String>>);

/// The adapter's checks on the head. A refused request is answered here;
/// an admitted one goes on, with its [`Admission`], to the body limit and
/// [`respond`].
async fn admit(State(app): State<App>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    match app.wire.admit(&parts) {
        Err(refused) => {
            record_request_id(&refused);
            let mut response = refused.map(Body::from);
            if body_left_unread(&parts.headers, parts.version) {
                close_connection(&mut response);
            }
            response
        }
        Ok(admitted) => {
            // Recorded now, so that the library's own spans and events
            // (feature `tracing`), which nest under this one, carry it.
            Span::current().record("api_request_id", admitted.request_id());
            if let Some(RequestId(slot)) = parts.extensions.get() {
                let _ = slot.set(admitted.request_id().to_owned());
            }
            parts
                .extensions
                .insert(Admission(Arc::new(Mutex::new(Some(admitted)))));
            next.run(Request::from_parts(parts, body)).await
        }
    }
}

/// Reads the admitted request's body (through the body limit) and answers
/// it with the adapter, off the async workers.
async fn respond(State(App { wire, .. }): State<App>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let admitted = parts
        .extensions
        .get::<Admission>()
        .and_then(|admission| admission.0.lock().ok()?.take());
    let Some(admitted) = admitted else {
        let detail = "a request reached the handler without its admission";
        return host_error(StatusCode::INTERNAL_SERVER_ERROR, None, detail.into()).map(Body::from);
    };
    let id = admitted.request_id().to_owned();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(e) if is_over_limit(&e) => {
            return error_response(StatusCode::PAYLOAD_TOO_LARGE, Some(&id)).map(Body::from);
        }
        Err(e) => {
            let detail = format!("reading the body failed: {e}");
            return host_error(StatusCode::BAD_REQUEST, Some(&id), detail).map(Body::from);
        }
    };
    // The library's own spans (feature `tracing`) nest under the request's.
    let span = Span::current();
    let response =
        tokio::task::spawn_blocking(move || span.in_scope(|| wire.respond(admitted, &bytes)))
            .await
            .unwrap_or_else(|join| {
                let detail = format!("the request task failed: {join}");
                host_error(StatusCode::INTERNAL_SERVER_ERROR, Some(&id), detail)
            });
    // A replay of an Idempotency-Key answers with the first request's id:
    // the log line names it too.
    if let Some(first) = answer_id(&response).filter(|answered| *answered != id) {
        Span::current().record("replay_of", first);
    }
    response.map(Body::from)
}

/// Whether a body read failed because the body limit cut it.
fn is_over_limit(error: &axum::Error) -> bool {
    let mut source = error.source();
    while let Some(cause) = source {
        if cause.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// `GET /healthz`: reads the store (the first segment of an org named
/// `healthz`, which need not exist) and says whether that worked.
async fn healthz(State(App { segments, .. }): State<App>) -> Response {
    static ORG: OnceLock<OrgId> = OnceLock::new();
    let org = ORG.get_or_init(|| OrgId::new("healthz").expect("a valid org id"));
    let checked = segments.list(org, PageOptions::new().limit(1)).await;
    let response = match checked {
        Ok(_) => {
            let mut ok = http::Response::new(br#"{"status":"ok"}"#.to_vec());
            ok.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            ok
        }
        Err(error) => {
            let mut failed = error_response(StatusCode::SERVICE_UNAVAILABLE, None);
            failed.extensions_mut().insert(ErrorDetail(Arc::new(error)));
            record_request_id(&failed);
            failed
        }
    };
    response.map(Body::from)
}

/// `GET /openapi.json`: the [`OPENAPI`] document.
async fn openapi() -> Response {
    let mut response = Response::new(Body::from(OPENAPI));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Gives a layer's own error answer (the body limit's `413` on a
/// `Content-Length` over it, the timeout's bare status, axum's `405` on a
/// host route) the documented error body, keeping its `Allow`, with the
/// `api_request_id` the adapter gave the request if it admitted it.
/// Answers that already are JSON pass as they are.
async fn documented_errors(
    State(request_timeout): State<Duration>,
    mut request: Request,
    next: Next,
) -> Response {
    let id = RequestId::default();
    request.extensions_mut().insert(id.clone());
    let unread = body_left_unread(request.headers(), request.version());
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let mut documented = error_response(status, id.0.get().map(String::as_str));
    if id.0.get().is_none() {
        record_request_id(&documented);
    }
    if let Some(allow) = response.headers().get(header::ALLOW) {
        documented
            .headers_mut()
            .insert(header::ALLOW, allow.clone());
    }
    // A layer's own answer (the body limit's, axum's 405) is given before
    // the body is read.
    if unread && status != TIMEOUT_STATUS {
        close_connection(&mut documented);
    }
    if status == TIMEOUT_STATUS && response.headers().get(header::CONTENT_TYPE).is_none() {
        documented.extensions_mut().insert(HostErrorDetail(format!(
            "no answer within the request timeout ({} s)",
            request_timeout.as_secs_f64()
        )));
    }
    documented.map(Body::from)
}

/// Whether an answer given now, before the request's body is read, leaves
/// a body on an HTTP/1 connection: the request declares one (a length
/// over 0, or a chunked body).
fn body_left_unread(headers: &http::HeaderMap, version: http::Version) -> bool {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    version <= http::Version::HTTP_11
        && (length.is_some_and(|n| n > 0) || headers.contains_key(header::TRANSFER_ENCODING))
}

/// Says the connection closes after this answer (RFC 9112, 9.6): the
/// server answered without reading the request's body, so it will not
/// read the next request on this connection either. Without the header a
/// client may send its next request on the connection as it closes, and
/// get no answer.
fn close_connection<B>(response: &mut http::Response<B>) {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
}

/// Records on the request's span, for its log line, the `api_request_id`
/// of an answer made without an admission (a refused head, a host route's
/// error); an admitted request's id is recorded when it is admitted.
fn record_request_id(response: &http::Response<Vec<u8>>) {
    if let Some(id) = answer_id(response) {
        Span::current().record("api_request_id", id);
    }
}

/// The `api_request_id` of an answer. The adapter writes it first in every
/// body, so only the body's start is read, whatever its size.
fn answer_id(response: &http::Response<Vec<u8>>) -> Option<&str> {
    let rest = response.body().strip_prefix(br#"{"api_request_id":""#)?;
    std::str::from_utf8(rest.get(..rest.iter().position(|&b| b == b'"')?)?).ok()
}

/// A failure of the host itself, around the adapter, in the documented
/// error body with `request_id` (a fresh one if `None`); `detail` goes to
/// the log only.
fn host_error(
    status: StatusCode,
    request_id: Option<&str>,
    detail: String,
) -> http::Response<Vec<u8>> {
    let mut response = error_response(status, request_id);
    response.extensions_mut().insert(HostErrorDetail(detail));
    response
}

/// What went wrong in the host itself, for the log (the adapter's own
/// failures ride in [`ErrorDetail`]).
#[derive(Clone, Debug)]
struct HostErrorDetail(String);

/// The span of one request: its method and path, its `api_request_id`
/// once known, and for the replay of an `Idempotency-Key` the first
/// request's id, which the answer carries.
fn request_span(request: &Request) -> Span {
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        api_request_id = tracing::field::Empty,
        replay_of = tracing::field::Empty,
    )
}

/// The log line of one request, in its span: status and latency, and for a
/// failure, what the client never sees ([`error_chain`]). A 5xx is logged
/// at `ERROR`, anything else at `INFO`.
fn log_response(response: &Response, latency: Duration, _span: &Span) {
    let status = response.status().as_u16();
    let latency_ms = (latency.as_secs_f64() * 1e6).round() / 1e3;
    match error_chain(response) {
        Some(error) if response.status().is_server_error() => {
            tracing::error!(status, latency_ms, error, "request failed");
        }
        _ => tracing::info!(status, latency_ms, "request served"),
    }
}

/// What went wrong behind a 5xx (the adapter's [`ErrorDetail`], walked
/// through [`std::error::Error::source`]), or in the host itself; `None`
/// for a response without either, and for an adapter error that is not a
/// 5xx (its message is already the client's).
pub fn error_chain<B>(response: &http::Response<B>) -> Option<String> {
    if let Some(HostErrorDetail(detail)) = response.extensions().get() {
        return Some(detail.clone());
    }
    let ErrorDetail(error) = response.extensions().get()?;
    if !response.status().is_server_error() {
        return None;
    }
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(chain, ": {cause}");
        source = cause.source();
    }
    Some(chain)
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, the request's span fields beside the
    /// event's.
    Json,
}

/// The log subscriber: every event at `filter`'s levels (`RUST_LOG`
/// syntax, say `info` or `segments_engine=debug,info`) as a line of `format` on
/// `writer`.
pub fn subscriber<W>(
    format: LogFormat,
    filter: tracing_subscriber::EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
    }
}
