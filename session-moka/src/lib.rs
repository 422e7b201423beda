#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod expiry;
mod index;
mod slot;
mod store;

pub use store::{MokaStore, DEFAULT_EXPIRY_SLACK, DEFAULT_MAX_CAPACITY};
