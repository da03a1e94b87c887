//! Writing answers and refusals as HTTP responses.

use super::*;

/// Why a request got no answer from the service.
pub(super) enum Refusal {
    /// The service (or the checks around it) said no.
    Domain(Error),
    /// The path or method has no route.
    Route {
        status: StatusCode,
        message: String,
        allow: Option<&'static str>,
    },
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Self::Domain(e)
    }
}

impl From<ValidationError> for Refusal {
    fn from(e: ValidationError) -> Self {
        Self::Domain(e.into())
    }
}

pub(super) fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The documented error response for a refusal a host makes itself, around
/// the adapter rather than in it (a body-size layer's `413`, a timeout's
/// `503`, a host route's `405`), in the shape of the adapter's own:
/// `application/json`, `api_request_id`, `error_message`, and the
/// deprecated `statusCode` and `body` fields.
///
/// `request_id` is the `api_request_id` to give: an admitted request's
/// ([`Admitted::request_id`]), so that its answer carries the id its changes
/// are recorded under; `None` for a fresh one.
///
/// `error_message` is the adapter's own text where it has one for `status`
/// (`413`: the body-size message, `401`: `Unauthorized`, `500`: `Internal
/// server error`), else the status's reason phrase. No header is set but
/// `Content-Type`: a host that answers `405` adds its `Allow`, one that
/// answers `429` its `Retry-After`.
///
/// ```
/// use segments_engine::wire::error_response;
/// let response = error_response(http::StatusCode::PAYLOAD_TOO_LARGE, None);
/// assert_eq!(response.status(), 413);
/// let body: serde_json::Value = serde_json::from_slice(response.body())?;
/// assert_eq!(body["error_message"], "More than 16777216 bytes in request");
/// assert_eq!(body["statusCode"], 413);
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn error_response(status: StatusCode, request_id: Option<&str>) -> Response<Vec<u8>> {
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => Error::TooLarge {
            what: "bytes",
            limit: MAX_BODY_BYTES,
        }
        .public_message()
        .into_owned(),
        StatusCode::UNAUTHORIZED => Error::Unauthorized.public_message().into_owned(),
        StatusCode::INTERNAL_SERVER_ERROR => "Internal server error".to_owned(),
        other => other.canonical_reason().unwrap_or("Error").to_owned(),
    };
    let refusal = Refusal::Route {
        status,
        message,
        allow: None,
    };
    match request_id {
        Some(id) => refusal_response(refusal, id),
        None => refusal_response(refusal, &Uuid::now_v7().hyphenated().to_string()),
    }
}

pub(super) fn refusal_response(refusal: Refusal, request_id: &str) -> Response<Vec<u8>> {
    let (status, message, allow, retry_after, error) = match refusal {
        Refusal::Route {
            status,
            message,
            allow,
        } => (status, message, allow, None, None),
        Refusal::Domain(error) => {
            let status = StatusCode::from_u16(error.status_code())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let retry_after = match &error {
                Error::RateLimited { retry_after } => Some(whole_seconds(*retry_after)),
                _ => None,
            };
            (
                status,
                error.public_message().into_owned(),
                None,
                retry_after,
                Some(error),
            )
        }
    };
    let legacy = json::to_vec(&LegacyErrorBody {
        error: &message,
        status_code: status.as_u16(),
    });
    let body = json::to_vec(&ErrorResponse {
        api_request_id: request_id,
        error_message: &message,
        status_code: status.as_u16(),
        body: String::from_utf8(legacy).expect("serde_json writes UTF-8"),
    });
    let mut response = json_response(status, body);
    if let Some(allow) = allow {
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if let Some(error) = error {
        response
            .extensions_mut()
            .insert(ErrorDetail(Arc::new(error)));
    }
    response
}

/// `Retry-After` is whole seconds: round up, and never 0.
pub(super) fn whole_seconds(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}
