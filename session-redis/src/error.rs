//! How Redis and fred failures become [`session_core::Error`].

use session_core::Error;

/// Errors of the Redis store itself, beside those fred reports.
///
/// They reach the caller as [`Error::Backend`], with this error as its
/// `source()`.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum RedisStoreError {
    /// The server is older than [`MIN_REDIS_VERSION`](crate::MIN_REDIS_VERSION):
    /// it does not know `SET .. PXAT`, which `create` and `save` use.
    #[error(
        "Redis {found} is too old for the session store: `SET .. PXAT` needs Redis >= {}.{}",
        crate::MIN_REDIS_VERSION.0,
        crate::MIN_REDIS_VERSION.1
    )]
    UnsupportedServer {
        /// The version the server reported.
        found: String,
    },
}

impl RedisStoreError {
    /// Whether this is [`RedisStoreError::UnsupportedServer`].
    pub fn is_unsupported_server(&self) -> bool {
        matches!(self, Self::UnsupportedServer { .. })
    }
}

impl From<RedisStoreError> for Error {
    fn from(error: RedisStoreError) -> Self {
        Error::backend(error)
    }
}

/// Every fred error is a backend failure: connection loss, a command timeout,
/// a server reply such as `WRONGTYPE` or `CLUSTERDOWN`. The fred error stays
/// reachable as the source, with its [`ErrorKind`](fred::error::ErrorKind).
pub(crate) fn backend(error: fred::error::Error) -> Error {
    Error::backend(error)
}
