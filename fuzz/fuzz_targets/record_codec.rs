//! Fuzz target `record_codec`: see `session_fuzz::record_codec` for the input format and
//! the invariants checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| session_fuzz::record_codec(data));
