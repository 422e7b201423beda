#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod layout;
mod store;

pub use error::{InvalidTreeName, LayoutError};
/// The sled version this crate is built on, for opening databases and trees
/// to hand to [`SledStore`].
pub use sled;
pub use store::{SledStore, DEFAULT_TREE_NAME, EXPIRY_INDEX_SUFFIX, USER_INDEX_SUFFIX};
