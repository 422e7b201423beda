#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod pool;
mod schema;
mod store;

pub use error::RusqliteStoreError;
/// Why a table name was refused: the reason inside
/// [`RusqliteStoreError::InvalidTableName`].
pub use session_core::support::InvalidName;
pub use store::{RusqliteOptions, RusqliteStore, Synchronous, DEFAULT_DELETE_BATCH_SIZE};

/// The rusqlite crate this store is built on, for
/// [`RusqliteStore::from_connection`].
pub use rusqlite;
