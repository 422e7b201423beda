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
    /// Redis answered one of the store's scripts with something they never
    /// reply: another program answers on the connection, or a bug.
    #[error("unexpected reply from Redis to a session store script: expected {expected}")]
    UnexpectedReply {
        /// What the store expected.
        expected: &'static str,
    },
    /// A write kept meeting a value it had to prepare first (a session of the
    /// previous release rewritten concurrently, or a session whose user kept
    /// changing while its index was extended) and gave up after a bounded
    /// number of rounds. Nothing was written to the session; at most its
    /// users' indexes list it once more, which lookups prune.
    #[error("gave up on a contended session after {rounds} rounds")]
    Contended {
        /// How many rounds were tried.
        rounds: u32,
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
