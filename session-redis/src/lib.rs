#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod error;
mod scripts;
mod store;
mod value;

pub use config::{recommended_builder, COMMAND_TIMEOUT};
pub use error::RedisStoreError;
/// The fred crate this store is built on, so applications use the same
/// version to build their client or pool.
pub use fred;
pub use store::{RedisClient, RedisStore, DEFAULT_KEY_PREFIX, KEY_SEPARATOR, MIN_REDIS_VERSION};
pub use value::CorruptValue;
