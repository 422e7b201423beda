//! The fuzz targets' bodies (`fuzz/src/lib.rs`) over their committed seed
//! inputs (`fuzz/seeds/<target>/`), each a short smoke run of its target in
//! the ordinary test command: no nightly compiler, no libFuzzer. Fuzzing
//! itself is `fuzz/README.md`.
#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failed test.

#[path = "../../fuzz/src/lib.rs"]
mod targets;

use std::path::PathBuf;

/// Runs `body` over every seed of `target`, naming the seed that fails.
fn over_seeds(target: &str, body: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let mut seeds: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    for seed in seeds {
        let input = std::fs::read(&seed).unwrap();
        let outcome = std::panic::catch_unwind(|| body(&input));
        assert!(outcome.is_ok(), "{target} fails on {}", seed.display());
    }
}

#[test]
fn cookie_header() {
    over_seeds("cookie_header", targets::cookie_header);
}

#[test]
fn id_parse() {
    over_seeds("id_parse", targets::id_parse);
}

#[test]
fn record_codec() {
    over_seeds("record_codec", targets::record_codec);
}

#[test]
fn cookie_only() {
    over_seeds("cookie_only", targets::cookie_only);
}

#[test]
fn env_config() {
    over_seeds("env_config", targets::env_config);
}
