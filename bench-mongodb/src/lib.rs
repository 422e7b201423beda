//! Nothing here: the benchmark is `benches/mongodb.rs` (`cargo bench -p bench-mongodb`).
