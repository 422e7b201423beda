//! Errors of the sqlx stores, and the mapping of sqlx's errors to
//! [`session_core::Error`].

use crate::MAX_USER_ID_LEN;

/// Why a record's [`user_id`](session_core::Record::user_id) cannot be
/// stored. It reaches the caller inside [`session_core::Error::Encode`],
/// from which it can be downcast; nothing was written.
///
/// A user id is kept as it is, never cut: one the column cannot hold whole
/// is refused, on every dialect alike, so that a session can move between
/// the three databases.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidUserId {
    /// The user id is longer than [`MAX_USER_ID_LEN`] bytes (of UTF-8).
    #[error("a user id of {len} bytes is longer than the {max} bytes the session table holds")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The longest user id stored, in bytes.
        max: usize,
    },
    /// The user id holds a NUL character, which PostgreSQL's `TEXT` cannot.
    #[error("a user id must not contain a NUL character")]
    Nul,
}

/// Whether `user_id` can be stored, and why not.
pub(crate) fn check_user_id(user_id: &str) -> Result<(), InvalidUserId> {
    if user_id.len() > MAX_USER_ID_LEN {
        return Err(InvalidUserId::TooLong {
            len: user_id.len(),
            max: MAX_USER_ID_LEN,
        });
    }
    if user_id.contains('\0') {
        return Err(InvalidUserId::Nul);
    }
    Ok(())
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

/// Whether the database rolled the statement back to break a deadlock (or a
/// serialization failure), which leaves nothing written and asks for the
/// statement to run again: SQLSTATE `40001` (MySQL and MariaDB error 1213,
/// PostgreSQL's `serialization_failure`) or `40P01` (PostgreSQL's
/// `deadlock_detected`). By code, never by message.
pub(crate) fn is_deadlock_victim(error: &session_core::Error) -> bool {
    let session_core::Error::Backend(source) = error else {
        return false;
    };
    let Some(sqlx::Error::Database(db)) = source.downcast_ref::<sqlx::Error>() else {
        return false;
    };
    matches!(db.code().as_deref(), Some("40001" | "40P01"))
}

/// Whether the database refused a row because its key is taken, by the
/// driver's classification of the error code (never by the message).
#[cfg(feature = "mysql")]
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// The MySQL/MariaDB error number of a database error, if it is one.
#[cfg(feature = "mysql")]
pub(crate) fn mysql_error_number(error: &sqlx::Error) -> Option<u16> {
    let sqlx::Error::Database(db) = error else {
        return None;
    };
    db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .map(sqlx::mysql::MySqlDatabaseError::number)
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

    #[test]
    fn user_ids_are_checked_whole() {
        assert_eq!(check_user_id(""), Ok(()));
        assert_eq!(check_user_id(&"u".repeat(MAX_USER_ID_LEN)), Ok(()));
        // Bytes, not characters: 128 two-byte characters are 256 bytes.
        assert_eq!(
            check_user_id(&"é".repeat(128)),
            Err(InvalidUserId::TooLong {
                len: 256,
                max: MAX_USER_ID_LEN
            })
        );
        assert_eq!(check_user_id("a\0b"), Err(InvalidUserId::Nul));
    }
}
