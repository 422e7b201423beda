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
    /// Cookie-only sessions: the session would need a `Set-Cookie` header of
    /// `size` bytes (name, encrypted value and attributes), more than `limit`.
    ///
    /// From a [`Session`](crate::Session) method, the change that would have
    /// caused it was not made, and `limit` is
    /// [`COOKIE_SIZE_LIMIT`](crate::COOKIE_SIZE_LIMIT) less 24 bytes kept
    /// for the expiry date, which is encoded again when the cookie is
    /// written. When writing the cookie after the handler (which the
    /// margin makes all but impossible), `limit` is `COOKIE_SIZE_LIMIT`
    /// itself and the response becomes a 500, logged.
    #[error(
        "the session cookie would be {size} bytes, over the {limit}-byte browser limit; \
         keep less in a cookie-only session or use a store"
    )]
    CookieTooLarge {
        /// The encoded cookie's size in bytes.
        size: usize,
        /// The most a cookie may take.
        limit: usize,
    },
    /// The key starts with [`RESERVED_KEY_PREFIX`](crate::RESERVED_KEY_PREFIX),
    /// which this crate keeps for itself; nothing was changed.
    #[error("the session key `{0}` is reserved for session-tower's own use")]
    ReservedKey(String),
    /// An expiry policy whose duration is not positive or too large for a
    /// date (see [`Expiry::is_valid`](crate::Expiry::is_valid)); nothing was
    /// changed.
    #[error(
        "invalid session expiry policy {0:?}: durations must be positive and end before year 9999"
    )]
    InvalidExpiry(crate::Expiry),
    /// The session was written by other requests at the same time so often
    /// that this request's changes could not be merged in `attempts` tries;
    /// nothing of this request was written.
    #[error("the session kept changing under this request; gave up after {attempts} merges")]
    Contention {
        /// How many writes were tried.
        attempts: u32,
    },
}

impl Error {
    /// Whether the store failed (rather than a value's (de)serialization).
    pub fn is_store(&self) -> bool {
        matches!(self, Self::Store(_))
    }

    /// Whether a cookie-only session outgrew the cookie size limit.
    pub fn is_cookie_too_large(&self) -> bool {
        matches!(self, Self::CookieTooLarge { .. })
    }
}

/// The result of a [`Session`](crate::Session) method.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for Error {
    /// A 500 with the error logged. When the store could not be reached, the
    /// response is marked so that a layer with
    /// [`OnStoreError::ServiceUnavailable`](crate::OnStoreError::ServiceUnavailable)
    /// turns it into a 503.
    fn into_response(self) -> axum_core::response::Response {
        tracing::error!(error = %self, "session error; answering 500");
        let mut response = (
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
        )
            .into_response();
        if matches!(&self, Self::Store(error) if error.is_backend()) {
            response
                .extensions_mut()
                .insert(crate::outage::StoreUnavailable);
        }
        response
    }
}
