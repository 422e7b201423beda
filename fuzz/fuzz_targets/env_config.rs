//! Fuzz target `env_config`: see `session_fuzz::env_config` for the input format and
//! the invariants checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| session_fuzz::env_config(data));
