#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod caching;
pub mod codec;
#[cfg(feature = "deletion-task")]
pub mod deletion;
mod error;
mod id;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
mod record;
mod store;
pub mod support;

pub use async_trait::async_trait;
pub use caching::CachingSessionStore;
pub use error::{BoxError, Error, Result};
pub use id::{Id, IdParseError, ID_TEXT_LEN};
pub use record::{Data, Record};
pub use store::{ExpiredDeletion, SessionStore, Update};
/// The `time` crate, whose `OffsetDateTime` is the record's expiry type.
pub use time;
