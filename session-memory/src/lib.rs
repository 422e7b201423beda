#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod store;

pub use error::StoreFull;
pub use store::{MemoryStore, DEFAULT_MAX_SESSIONS};
