#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Without a backend feature the crate holds only its name checks and error
// types, which nothing uses.
#![cfg_attr(
    not(any(feature = "postgres", feature = "mysql", feature = "sqlite")),
    allow(dead_code)
)]

mod error;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
mod schema;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use error::{InvalidName, StoreError};
#[cfg(feature = "mysql")]
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
pub use mysql::MySqlStore;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::PostgresStore;
pub use schema::MAX_NAME_LEN;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteStore;
/// The sqlx version the stores are built on, for opening their pools.
pub use sqlx;

/// How many ids `create` tries before giving up with
/// [`StoreError::NoFreeId`]. Ids are 128 random bits: a second attempt
/// already means someone reused an id on purpose.
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
const MAX_CREATE_ATTEMPTS: u32 = 16;

/// What every dialect's `create` does around its one insert-if-absent
/// statement: `insert` gets the record's id as text and says whether it
/// stored the row; when the id is taken, the record gets a fresh id and
/// another try, up to [`MAX_CREATE_ATTEMPTS`].
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
async fn create_with_fresh_ids<F, Fut>(
    record: &mut session_core::Record,
    mut insert: F,
) -> session_core::Result<()>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = session_core::Result<bool>>,
{
    for _ in 0..MAX_CREATE_ATTEMPTS {
        if insert(record.id.to_string()).await? {
            return Ok(());
        }
        tracing::debug!("session id taken on create; drawing a new one");
        record.id = session_core::Id::default();
    }
    Err(session_core::Error::backend(StoreError::NoFreeId {
        attempts: MAX_CREATE_ATTEMPTS,
    }))
}
