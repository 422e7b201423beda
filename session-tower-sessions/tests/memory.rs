//! The bridge over `MemoryStore`.

#[macro_use]
mod common;

bridge_suite!(crate::common::memory);
