//! The HTTP side of the `server` example: one axum handler that gives every
//! request, whatever its method and path, to the adapter: first its head to
//! [`Wire::admit`], then, if admitted, its body to [`Wire::respond`].
//!
//! The adapter decides everything (routes, `405` with `Allow`, `401`, `429`,
//! `413`, the error bodies); this module only moves bytes between axum and
//! [`http`] types, reads no body for a refused head, runs the synchronous
//! store call in
//! [`tokio::task::spawn_blocking`] so it never stalls the async workers, and
//! prints one line per request to stdout ([`log_line`]).
//!
//! It names nothing from the example's `main.rs`, so a test can include it
//! with `#[path = "../examples/server/app.rs"] mod app;`.

use std::error::Error as _;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{self, HeaderValue, StatusCode, header};
use axum::response::Response;
use http_body_util::BodyExt as _;
use segments::SegmentStore;
use segments::limits::MAX_BODY_BYTES;
use segments::wire::{ErrorDetail, Wire};

/// The store the server runs on: a SQLite file or a PostgreSQL database.
pub type Store = Box<dyn SegmentStore>;

/// The adapter every request is answered by, shared across the server.
pub type SharedWire = Arc<Wire<Store>>;

/// The whole server: a fallback handler for any method and any path, which
/// hands the request to `wire`.
///
/// A body is read as it streams in and reading stops after
/// [`MAX_BODY_BYTES`]` + 1` bytes: enough for the adapter to see that it is
/// too large and answer `413`, and never more than that held in memory.
pub fn router(wire: SharedWire) -> Router {
    Router::new().fallback(handle).with_state(wire)
}

/// Reads `body` up to `limit` bytes and stops there: a longer body comes
/// back cut to exactly `limit` bytes, and the rest is never read.
///
/// # Errors
/// The transport's error when the body cannot be read (say, the client
/// went away mid-body).
pub async fn read_body(mut body: Body, limit: usize) -> Result<Vec<u8>, axum::Error> {
    let mut bytes = Vec::new();
    while bytes.len() < limit {
        let Some(frame) = body.frame().await else {
            break;
        };
        // Trailers carry no body bytes; they are skipped.
        if let Ok(data) = frame?.into_data() {
            let room = limit - bytes.len();
            bytes.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    Ok(bytes)
}

/// Answers one request through the adapter and logs it.
async fn handle(State(wire): State<SharedWire>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let method = parts.method.clone();
    let path = parts.uri.path().to_owned();

    // Route, key and rate are checked on the head: a refused request costs
    // no body read.
    let response = match wire.admit(&parts) {
        Err(refused) => refused,
        Ok(admitted) => match read_body(body, MAX_BODY_BYTES + 1).await {
            Ok(bytes) => {
                match tokio::task::spawn_blocking(move || wire.respond(admitted, &bytes)).await {
                    Ok(response) => response,
                    Err(join) => host_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Internal server error",
                        &format!("the request task failed: {join}"),
                    ),
                }
            }
            Err(read) => host_error(
                StatusCode::BAD_REQUEST,
                "Request body could not be read",
                &format!("reading the body failed: {read}"),
            ),
        },
    };

    println!("{}", log_line(&method, &path, &response, started.elapsed()));
    response.map(Body::from)
}

/// A failure of the host, before or around the adapter, in the adapter's
/// error body shape so clients parse it the same way; `detail` goes to the
/// log only.
fn host_error(status: StatusCode, message: &str, detail: &str) -> http::Response<Vec<u8>> {
    let legacy = serde_json::json!({ "error": message, "status_code": status.as_u16() });
    let body = serde_json::json!({
        "api_request_id": uuid::Uuid::now_v7().hyphenated().to_string(),
        "error_message": message,
        "statusCode": status.as_u16(),
        "body": legacy.to_string(),
    });
    let mut response = http::Response::new(body.to_string().into_bytes());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .extensions_mut()
        .insert(HostErrorDetail(detail.to_owned()));
    response
}

/// What went wrong in the host itself, for the log (the adapter's own
/// failures ride in [`ErrorDetail`]).
#[derive(Clone, Debug)]
struct HostErrorDetail(String);

/// The log line for one request: method, path, status, elapsed
/// milliseconds, and for a 5xx the whole error chain the client never sees
/// (the adapter's [`ErrorDetail`], walked through
/// [`std::error::Error::source`]), or what failed in the host itself.
pub fn log_line(
    method: &http::Method,
    path: &str,
    response: &http::Response<Vec<u8>>,
    elapsed: Duration,
) -> String {
    let status = response.status();
    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
    let mut line = format!("{method} {path} {} {elapsed_ms:.1}ms", status.as_u16());
    if let Some(HostErrorDetail(detail)) = response.extensions().get() {
        let _ = write!(line, " error: {detail}");
    } else if status.is_server_error()
        && let Some(ErrorDetail(error)) = response.extensions().get()
    {
        let _ = write!(line, " error: {error}");
        let mut source = error.source();
        while let Some(cause) = source {
            let _ = write!(line, ": {cause}");
            source = cause.source();
        }
    }
    line
}
