//! Mapping sled's errors to the store error.

use session_core::Error;
use sled::transaction::TransactionError;

/// Why a stored value is not a session record of this crate.
///
/// Returned inside [`Error::Decode`]; the record itself is decoded by
/// [`session_core::codec::decode_record`], whose error is returned as is.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// The value is shorter than the expiry header every value starts with.
    #[error("stored session value is {0} bytes long, shorter than its 8-byte expiry header")]
    TooShort(usize),
}

/// Every sled error is the backend failing: I/O, on-disk corruption of sled's
/// own files, a dropped tree, or a sled bug. None of them is about what a
/// record holds.
pub(crate) fn backend(error: sled::Error) -> Error {
    Error::backend(error)
}

/// A transaction's error: our own abort passes through, storage failures are
/// backend errors.
pub(crate) fn transaction(error: TransactionError<Error>) -> Error {
    match error {
        TransactionError::Abort(error) => error,
        TransactionError::Storage(error) => backend(error),
    }
}
