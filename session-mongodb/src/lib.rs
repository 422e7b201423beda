#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod store;

/// The MongoDB driver this crate is built on, for building a
/// [`Client`](mongodb::Client) without naming it in your own `Cargo.toml`.
pub use mongodb;
pub use store::{
    bounded_timeouts, MongoDBStore, DATA_FIELD, DEFAULT_COLLECTION_NAME, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_SERVER_SELECTION_TIMEOUT, EXPIRES_AT_FIELD, EXPIRES_AT_MICROS_FIELD, TTL_INDEX_NAME,
    USER_ID_FIELD, USER_INDEX_NAME, VERSION_FIELD,
};
