//! The routes of the API: which path and method reach which call.

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Route {
    Create,
    CreateFrom,
    MembersAdd,
    MembersAddFrom,
    Members,
    MembersRemove,
    MembersRemoveFrom,
    Get,
    List,
    Delete,
    Deaths,
    UsageLimits,
}

impl Route {
    /// Whether the route writes: the routes an `Idempotency-Key` applies
    /// to.
    pub(super) fn writes(self) -> bool {
        matches!(
            self,
            Self::Create
                | Self::CreateFrom
                | Self::MembersAdd
                | Self::MembersAddFrom
                | Self::MembersRemove
                | Self::MembersRemoveFrom
                | Self::Delete
        )
    }
}

/// The routes under `/v2/segments/`, with their method.
pub(super) const SEGMENT_ROUTES: &[(&str, Method, Route)] = &[
    ("create", Method::POST, Route::Create),
    ("create_from", Method::POST, Route::CreateFrom),
    ("members/add", Method::POST, Route::MembersAdd),
    ("members/add_from", Method::POST, Route::MembersAddFrom),
    ("members", Method::GET, Route::Members),
    ("members/remove", Method::POST, Route::MembersRemove),
    (
        "members/remove_from",
        Method::POST,
        Route::MembersRemoveFrom,
    ),
    ("get", Method::GET, Route::Get),
    ("list", Method::GET, Route::List),
    ("delete", Method::POST, Route::Delete),
    ("signals/deaths", Method::GET, Route::Deaths),
];

/// The route of `path`, or why there is none.
pub(super) fn route(method: &Method, path: &str) -> Result<Route, Refusal> {
    let found = if path == "/v2/usage/limits" {
        Some((&Method::GET, Route::UsageLimits))
    } else if let Some(name) = path.strip_prefix("/v2/segments/") {
        SEGMENT_ROUTES
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, m, r)| (m, *r))
    } else if let Some(name) = path.strip_prefix("/v1/segments/") {
        if SEGMENT_ROUTES.iter().any(|(n, _, _)| *n == name) {
            return Err(Refusal::Route {
                status: StatusCode::NOT_FOUND,
                message: format!("Segments {name} endpoint only supports v2 API version"),
                allow: None,
            });
        }
        None
    } else {
        None
    };
    match found {
        None => Err(Refusal::Route {
            status: StatusCode::NOT_FOUND,
            message: format!("No endpoint at {path}"),
            allow: None,
        }),
        Some((allowed, _)) if allowed != method => Err(Refusal::Route {
            status: StatusCode::METHOD_NOT_ALLOWED,
            message: format!("Method {method} is not allowed; this endpoint accepts {allowed}"),
            allow: Some(allowed.as_str()),
        }),
        Some((_, route)) => Ok(route),
    }
}
