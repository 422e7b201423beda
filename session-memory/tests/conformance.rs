//! The whole conformance suite on `MemoryStore`.

/// As the middleware gets it by default.
mod default {
    session_testkit::conformance_suite!(|| async { session_memory::MemoryStore::default() });
}

/// With a bound just above what any check stores at once (32 sessions), so
/// that every write path runs through the bound's accounting.
mod tight_bound {
    session_testkit::conformance_suite!(|| async {
        session_memory::MemoryStore::with_max_sessions(40)
    });
}
