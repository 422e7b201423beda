//! Fuzz target `cookie_only`: see `session_fuzz::cookie_only` for the input format and
//! the invariants checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| session_fuzz::cookie_only(data));
