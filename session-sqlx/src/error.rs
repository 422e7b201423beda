//! Errors of the sqlx stores, and the mapping of sqlx's errors to
//! [`session_core::Error`].

/// Why a schema or table name was refused by a store's `with_*_name`.
///
/// Names are spliced into SQL, so only plain identifiers are accepted: ASCII
/// letters, digits and `_`, not starting with a digit, at most
/// [`MAX_NAME_LEN`](crate::MAX_NAME_LEN) bytes.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    /// The name is empty.
    #[error("a schema or table name must not be empty")]
    Empty,
    /// The name is longer than the databases accept.
    #[error("the name `{name}` is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// The refused name.
        name: String,
        /// Its length in bytes.
        len: usize,
        /// The longest name accepted.
        max: usize,
    },
    /// The name holds something other than ASCII letters, digits and `_`, or
    /// starts with a digit.
    #[error(
        "the name `{name}` may hold only ASCII letters, digits and `_`, and must not start with a digit"
    )]
    Character {
        /// The refused name.
        name: String,
    },
}

/// A failure of a sqlx store that is not sqlx's own.
///
/// It reaches the caller inside [`session_core::Error::Backend`], from which
/// it can be downcast.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// `create` met a taken id on every attempt. Ids are 128 random bits, so
    /// this means the table misbehaves (a trigger or rule swallowing inserts),
    /// not bad luck.
    #[error("no free session id found after {attempts} attempts")]
    NoFreeId {
        /// How many ids were tried.
        attempts: u32,
    },
}

/// Maps a sqlx error to the store error kind it stands for, keeping it as the
/// source: a value sqlx could not decode is [`session_core::Error::Decode`],
/// one it could not encode [`session_core::Error::Encode`], anything else
/// (connection, pool, database errors) [`session_core::Error::Backend`].
pub(crate) fn from_sqlx(error: sqlx::Error) -> session_core::Error {
    match error {
        sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => {
            session_core::Error::decode(error)
        }
        sqlx::Error::Encode(_) => session_core::Error::encode(error),
        _ => session_core::Error::backend(error),
    }
}

/// Whether the database refused a row because its key is taken, by the
/// driver's classification of the error code (never by the message).
#[cfg(feature = "mysql")]
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn sqlx_errors_map_by_kind_and_keep_their_source() {
        let decode = from_sqlx(sqlx::Error::Decode("bad bytes".into()));
        assert!(decode.is_decode());
        let encode = from_sqlx(sqlx::Error::Encode("bad value".into()));
        assert!(encode.is_encode());
        let backend = from_sqlx(sqlx::Error::PoolTimedOut);
        assert!(backend.is_backend());
        let source = backend.source().expect("source kept");
        assert!(matches!(
            source.downcast_ref::<sqlx::Error>(),
            Some(sqlx::Error::PoolTimedOut)
        ));
    }
}
