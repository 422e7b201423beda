//! Maps driver errors to [`session_core::Error`], by error kind and server
//! error code, never by message.

use mongodb::error::{ErrorKind, WriteFailure};
use session_core::Error;

/// The server error codes MongoDB uses for a unique index violation: 11000
/// is the one every current server returns; 11001 and 12582 are what older
/// servers (and some wire-compatible ones) send for the same condition.
const DUPLICATE_KEY_CODES: [i32; 3] = [11000, 11001, 12582];

/// Whether `error` says a document with the same `_id` already exists.
pub(crate) fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    match error.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(write)) => {
            DUPLICATE_KEY_CODES.contains(&write.code)
        }
        ErrorKind::Command(command) => DUPLICATE_KEY_CODES.contains(&command.code),
        _ => false,
    }
}

/// A driver error on a write: a record the driver could not turn into BSON is
/// [`Error::Encode`]; anything else (unreachable server, failed command) is
/// [`Error::Backend`].
pub(crate) fn write_error(error: mongodb::error::Error) -> Error {
    match error.kind.as_ref() {
        ErrorKind::Bson(_) | ErrorKind::BsonSerialization(_) => Error::encode(error),
        _ => Error::backend(error),
    }
}

/// A driver error on a read or a command: the server could not be reached or
/// refused the operation. Documents are decoded by the store itself, so a
/// corrupt one never surfaces here.
pub(crate) fn backend_error(error: mongodb::error::Error) -> Error {
    Error::backend(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_backend_errors() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = mongodb::error::Error::from(io);
        assert!(!is_duplicate_key(&error));
        assert!(backend_error(error.clone()).is_backend());
        assert!(write_error(error).is_backend());
    }
}
