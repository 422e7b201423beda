//! The error every store returns.

/// A boxed error from a driver, codec or anything else a store calls.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in a session store.
///
/// Each variant keeps the underlying error reachable through
/// [`std::error::Error::source`], and its message is also part of this
/// error's `Display` so a single log line says what happened.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A record could not be turned into what the backend stores.
    #[error("failed to encode session record: {0}")]
    Encode(#[source] BoxError),
    /// What the backend holds could not be turned back into a record: the
    /// stored value is corrupt or was written by something else.
    #[error("failed to decode session record: {0}")]
    Decode(#[source] BoxError),
    /// The backend failed or could not be reached.
    #[error("session backend error: {0}")]
    Backend(#[source] BoxError),
    /// The store does not implement this operation (the name of the
    /// [`SessionStore`](crate::SessionStore) method). Every store of this
    /// workspace implements them all; a third-party store may not.
    #[error("this session store does not support `{0}`")]
    Unsupported(&'static str),
}

impl Error {
    /// An [`Error::Encode`] wrapping `source`.
    pub fn encode(source: impl Into<BoxError>) -> Self {
        Self::Encode(source.into())
    }

    /// An [`Error::Decode`] wrapping `source`.
    pub fn decode(source: impl Into<BoxError>) -> Self {
        Self::Decode(source.into())
    }

    /// An [`Error::Backend`] wrapping `source`.
    pub fn backend(source: impl Into<BoxError>) -> Self {
        Self::Backend(source.into())
    }

    /// Whether this is an [`Error::Encode`].
    pub fn is_encode(&self) -> bool {
        matches!(self, Self::Encode(_))
    }

    /// Whether this is an [`Error::Decode`].
    pub fn is_decode(&self) -> bool {
        matches!(self, Self::Decode(_))
    }

    /// Whether this is an [`Error::Backend`].
    pub fn is_backend(&self) -> bool {
        matches!(self, Self::Backend(_))
    }

    /// Whether this is an [`Error::Unsupported`].
    pub fn is_unsupported(&self) -> bool {
        matches!(self, Self::Unsupported(_))
    }
}

/// The result of a store operation.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn source_is_kept() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = Error::backend(io);
        assert!(err.is_backend());
        assert_eq!(err.to_string(), "session backend error: refused");
        let source = err.source().expect("source kept");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
    }
}
