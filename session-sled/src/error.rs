//! Mapping sled's errors to the store error.

use session_core::Error;
use sled::transaction::TransactionError;

/// Why a value does not fit this crate's layout in sled.
///
/// The record itself is encoded and decoded by [`session_core::codec`],
/// whose errors are returned as they are.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A stored value is shorter than the expiry header every value starts
    /// with. Returned inside [`Error::Decode`].
    #[error("stored session value is {0} bytes long, shorter than its 8-byte expiry header")]
    TooShort(usize),
    /// A record's `user_id` is longer (in bytes) than the 32-bit length its
    /// user-index key holds. Returned inside [`Error::Encode`]; nothing was
    /// written.
    #[error("a user id of {0} bytes is too long for the user index (at most 4 GiB)")]
    UserTooLong(usize),
}

/// Why [`SledStore::with_tree_name`](crate::SledStore::with_tree_name)
/// refused a name. Returned inside [`Error::Backend`] (find it with
/// [`InvalidTreeName::find`]); no tree was opened or created.
///
/// A store named `name` keeps its records in the tree `name` and its indexes
/// in `name.expiry` and `name.users`. A name that ends with one of those
/// suffixes is the index tree of another store in the same database, so two
/// stores would write into one tree and each would read the other's entries
/// as its own. Refusing those names is enough for no two stores' trees ever
/// to meet.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTreeName {
    /// The name is empty.
    #[error("a session tree name must not be empty")]
    Empty,
    /// The name ends with an index suffix ([`EXPIRY_INDEX_SUFFIX`] or
    /// [`USER_INDEX_SUFFIX`]): it is an index tree of the store named
    /// `store`.
    ///
    /// [`EXPIRY_INDEX_SUFFIX`]: crate::EXPIRY_INDEX_SUFFIX
    /// [`USER_INDEX_SUFFIX`]: crate::USER_INDEX_SUFFIX
    #[error(
        "the session tree name `{name}` ends with `{suffix}`: that is an index tree of the store named `{store}`"
    )]
    IndexSuffix {
        /// The refused name.
        name: String,
        /// The index suffix it ends with.
        suffix: &'static str,
        /// The store whose index tree it names.
        store: String,
    },
    /// The name starts with `__sled__`, which sled keeps for itself (its
    /// default tree, the one `Db` reads and writes, is `__sled__default`).
    #[error("the session tree name `{name}` is reserved by sled")]
    Reserved {
        /// The refused name.
        name: String,
    },
}

impl InvalidTreeName {
    /// The `InvalidTreeName` behind `error`, when a refused name is why it
    /// failed.
    pub fn find(error: &Error) -> Option<&InvalidTreeName> {
        match error {
            Error::Backend(source) => source.downcast_ref(),
            _ => None,
        }
    }
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
