//! Errors a [`Session`](crate::Session) method can return.

/// What went wrong while using a session.
///
/// With the `axum` feature it is an `IntoResponse`: a handler can use `?` and
/// the visitor gets a bare 500 while the error is logged with `tracing`.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The session store failed; the source is the store's error.
    #[error("session store error: {0}")]
    Store(#[from] session_core::Error),
    /// A value could not be turned into JSON or back into the requested type.
    #[error("session value could not be (de)serialized: {0}")]
    Value(#[from] serde_json::Error),
}

impl Error {
    /// Whether the store failed (rather than a value's (de)serialization).
    pub fn is_store(&self) -> bool {
        matches!(self, Self::Store(_))
    }
}

/// The result of a [`Session`](crate::Session) method.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for Error {
    fn into_response(self) -> axum_core::response::Response {
        tracing::error!(error = %self, "session error; answering 500");
        (
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
        )
            .into_response()
    }
}
