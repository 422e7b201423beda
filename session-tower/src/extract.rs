//! The axum extractor for [`Session`].

use axum_core::{
    extract::FromRequestParts,
    response::{IntoResponse, Response},
};
use http::{request::Parts, StatusCode};

use crate::Session;

/// The rejection of the [`Session`] extractor: the request has no session
/// because [`SessionManagerLayer`](crate::SessionManagerLayer) is not
/// installed around the route. Answers 500 and logs the cause.
#[derive(Debug, Clone, Copy, Default, thiserror::Error)]
#[error(
    "no session in the request: add `SessionManagerLayer` (session-tower) as a layer \
     around this route to use the `Session` extractor"
)]
#[non_exhaustive]
pub struct SessionRejection;

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        tracing::error!("{self}");
        (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or(SessionRejection)
    }
}
