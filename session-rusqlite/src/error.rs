//! Errors of the store itself, and the mapping of rusqlite errors onto
//! [`session_core::Error`].

use session_core::support::InvalidName;

/// What can go wrong in this crate besides SQLite itself.
///
/// Store operations return [`session_core::Error`]; these errors reach users
/// as its [`source`](std::error::Error::source), or directly from
/// configuration methods such as
/// [`RusqliteStore::with_table_name`](crate::RusqliteStore::with_table_name).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum RusqliteStoreError {
    /// A table name that is not a plain SQL identifier of at most
    /// 48 bytes (see [`check_identifier`](session_core::support::check_identifier)).
    /// Names are checked, then quoted, and never spliced into SQL unchecked.
    #[error("invalid table name: {0}")]
    InvalidTableName(#[from] InvalidName),
    /// A table name in SQLite's reserved `sqlite_` namespace (any case).
    #[error("invalid table name {name:?}: names starting with `sqlite_` are reserved by SQLite")]
    ReservedTableName {
        /// The rejected name.
        name: String,
    },
    /// The store was closed with [`RusqliteStore::close`](crate::RusqliteStore::close).
    #[error("the session store is closed")]
    Closed,
    /// The blocking task running a query panicked or was cancelled.
    #[error("the blocking task running a SQLite query failed")]
    Task(#[source] tokio::task::JoinError),
    /// A column holding something other than what the store writes there.
    #[error("column `{column}` holds a value of the wrong type")]
    WrongColumnType {
        /// The column's name.
        column: &'static str,
    },
}

impl From<RusqliteStoreError> for session_core::Error {
    fn from(error: RusqliteStoreError) -> Self {
        match error {
            RusqliteStoreError::WrongColumnType { .. } => session_core::Error::decode(error),
            _ => session_core::Error::backend(error),
        }
    }
}

/// Maps a rusqlite error by its kind: values that cannot be read back are
/// [`session_core::Error::Decode`], everything else is
/// [`session_core::Error::Backend`]. The rusqlite error stays the source.
pub(crate) fn from_sqlite(error: rusqlite::Error) -> session_core::Error {
    match error {
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::Utf8Error(..) => session_core::Error::decode(error),
        _ => session_core::Error::backend(error),
    }
}
