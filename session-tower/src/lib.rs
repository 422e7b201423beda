#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cache_control;
pub mod config;
mod cookie;
mod error;
mod expiry;
#[cfg(feature = "axum")]
mod extract;
mod finish;
pub mod future;
mod layer;
mod metrics;
mod outage;
mod service;
mod session;
mod user_sessions;

pub use crate::config::SessionConfig;
pub use crate::cookie::{
    key_from_base64, key_from_bytes, key_from_hex, parse_key, Key, KeyError, Keys, HOST_PREFIX,
    MIN_KEY_BYTES, SECURE_PREFIX,
};
pub use ::cookie::SameSite;
pub use error::{Error, Result};
pub use expiry::Expiry;
#[cfg(feature = "axum")]
pub use extract::SessionRejection;
pub use layer::{SessionManagerLayer, SettingError};
pub use outage::OnStoreError;
pub use service::SessionManager;
pub use session::{Session, COOKIE_SIZE_LIMIT, CREATED_KEY, EXPIRY_KEY, RESERVED_KEY_PREFIX};
pub use session_core::{Id, SessionStore};
pub use user_sessions::UserSession;
