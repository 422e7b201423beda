//! Fuzz target `id_parse`: see `session_fuzz::id_parse` for the input format and
//! the invariants checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| session_fuzz::id_parse(data));
