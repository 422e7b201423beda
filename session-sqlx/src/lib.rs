#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Without a backend feature the crate holds only its name checks and error
// types, which nothing uses.
#![cfg_attr(
    not(any(feature = "postgres", feature = "mysql", feature = "sqlite")),
    allow(dead_code, unused_imports, unused_macros)
)]

mod error;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
mod schema;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;

pub use error::InvalidUserId;
#[cfg(feature = "mysql")]
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
pub use mysql::MySqlStore;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::PostgresStore;
pub use schema::{MAX_NAME_LEN, MAX_USER_ID_LEN};
/// Why a schema or table name was refused by a store's `with_*_name`: the
/// workspace's one rule for names spliced into queries, at most
/// [`MAX_NAME_LEN`] bytes here.
pub use session_core::support::InvalidName;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteStore;
/// The sqlx version the stores are built on, for opening their pools.
pub use sqlx;
