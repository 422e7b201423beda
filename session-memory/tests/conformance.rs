//! The whole conformance suite on `MemoryStore`.

session_testkit::conformance_suite!(|| async { session_memory::MemoryStore::default() });
