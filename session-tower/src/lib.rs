#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod config;
mod cookie;
mod error;
mod expiry;
#[cfg(feature = "axum")]
mod extract;
pub mod future;
mod layer;
mod service;
mod session;

pub use crate::config::SessionConfig;
pub use crate::cookie::{
    key_from_base64, key_from_bytes, key_from_hex, parse_key, Key, KeyError, Keys, MIN_KEY_BYTES,
};
pub use ::cookie::SameSite;
pub use error::{Error, Result};
pub use expiry::Expiry;
#[cfg(feature = "axum")]
pub use extract::SessionRejection;
pub use layer::SessionManagerLayer;
pub use service::SessionManager;
pub use session::{Session, COOKIE_SIZE_LIMIT, EXPIRY_KEY};
pub use session_core::{Id, SessionStore};
