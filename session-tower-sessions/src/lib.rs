#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Without a tower-sessions release to serve, the adapter's plumbing has no
// caller; the crate still builds (each feature alone, and none, are checked).
#![cfg_attr(
    not(any(feature = "tower-sessions-0-15", feature = "tower-sessions-0-14")),
    allow(dead_code)
)]

mod bridge;
mod error;
mod store;

pub use store::{TowerSessionsStore, AXUM_LOGIN_USER_ID};
