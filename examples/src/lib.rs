//! Runnable examples live in `examples/`.
//!
//! The library holds what an example and a test both need: [`shop`], the
//! demo app (`cargo run -p examples --example demo`), which the browser test
//! drives in-process.

pub mod shop;

/// The root README's Rust examples, compiled and run as doc tests so the
/// quick starts stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
