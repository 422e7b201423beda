#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod expiry;
mod store;

pub use store::{MokaStore, DEFAULT_EXPIRY_SLACK};
