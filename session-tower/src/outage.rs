//! What a request gets when the session store cannot be reached.

use std::time::Duration;

use http::{header, HeaderValue, Response, StatusCode};

/// What the layer does when the session store cannot be reached (the store
/// returns [`session_core::Error::Backend`]: down, refusing connections,
/// timing out), set with
/// [`SessionManagerLayer::with_on_store_error`](crate::SessionManagerLayer::with_on_store_error).
///
/// Other store errors (a record that does not decode, an unsupported
/// operation) and the layer's own ([`Error::Contention`](crate::Error::Contention),
/// [`Error::CookieTooLarge`](crate::Error::CookieTooLarge)) are not outages:
/// they always give a 500.
///
/// Whatever the choice, the response never changes the browser's cookie
/// while the store is unreachable, so the visitor finds the session again
/// once it is back.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStoreError {
    /// A bare `500 Internal Server Error` (the default): when the write after
    /// the handler fails, the layer answers 500 instead of the handler's
    /// response; when loading fails, the [`Session`](crate::Session) method
    /// returns [`Error::Store`](crate::Error::Store) and the handler answers
    /// (with `?`, a 500).
    #[default]
    InternalServerError,
    /// `503 Service Unavailable` with `Retry-After` (whole seconds, rounded
    /// up), so clients and load balancers retry later: when the write after
    /// the handler fails, and in place of the 500 a handler answers by
    /// returning a store [`Error`](crate::Error) (its `IntoResponse`, with
    /// the `axum` feature, marks the response for the layer). A handler that
    /// catches the error and answers something else keeps its response.
    ServiceUnavailable {
        /// The delay `Retry-After` asks for.
        retry_after: Duration,
    },
    /// Serve the request without its session: when loading fails, the
    /// handler gets an empty, detached session
    /// ([`Session::is_detached`](crate::Session::is_detached) says so) whose
    /// changes are never written; when the write after the handler fails,
    /// the handler's response goes out without `Set-Cookie` and the
    /// request's changes are lost. Both are logged. Operations a handler
    /// asks of the store itself ([`Session::flush`](crate::Session::flush),
    /// [`Session::user_sessions`](crate::Session::user_sessions),
    /// [`Session::end_other_sessions`](crate::Session::end_other_sessions))
    /// still return the error: a logout must not pretend to succeed.
    ServeWithoutSession,
}

impl OnStoreError {
    /// [`OnStoreError::ServiceUnavailable`] asking clients to retry after
    /// `retry_after`.
    pub fn service_unavailable(retry_after: Duration) -> Self {
        Self::ServiceUnavailable { retry_after }
    }
}

/// Put in the extensions of the response [`crate::Error`] makes for a store
/// outage, so the layer can tell it from any other 500.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
pub(crate) struct StoreUnavailable;

/// A bare `503` with `Retry-After`.
pub(crate) fn unavailable<B: Default>(retry_after: Duration) -> Response<B> {
    let seconds = retry_after
        .as_secs()
        .saturating_add(u64::from(retry_after.subsec_nanos() > 0));
    let mut response = Response::new(B::default());
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// A bare `500`.
pub(crate) fn internal_error<B: Default>() -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        for (duration, expected) in [
            (Duration::ZERO, "0"),
            (Duration::from_millis(1), "1"),
            (Duration::from_secs(30), "30"),
            (Duration::from_millis(30_001), "31"),
            (Duration::MAX, "18446744073709551615"),
        ] {
            let response = unavailable::<()>(duration);
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers()[header::RETRY_AFTER], expected);
        }
    }
}
