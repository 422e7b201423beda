//! Runnable examples live in `examples/`.
//!
//! The library holds what an example and a test both need: [`shop`], the
//! demo app (`cargo run -p examples --example demo`), which the browser test
//! drives in-process.

pub mod shop;
