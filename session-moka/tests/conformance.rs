//! The whole conformance suite on `MokaStore`, alone and as a cache.

mod unbounded {
    session_testkit::conformance_suite!(
        || async { session_moka::MokaStore::new(None) },
        sweep = native
    );
}

mod bounded_by_count {
    // Large enough for every check: a bound that evicted live sessions would
    // fail the suite, which expects a store, not a lossy cache.
    session_testkit::conformance_suite!(
        || async { session_moka::MokaStore::new(Some(10_000)) },
        sweep = native
    );
}

mod bounded_by_bytes {
    session_testkit::conformance_suite!(
        || async { session_moka::MokaStore::with_max_bytes(256 << 20) },
        sweep = native
    );
}

mod without_slack {
    // Every write that moves the expiry date later inserts a new moka entry:
    // `update` and `touch` take their compute path rather than the in-place
    // swap.
    session_testkit::conformance_suite!(
        || async {
            session_moka::MokaStore::new(Some(10_000))
                .with_expiry_slack(session_core::time::Duration::ZERO)
        },
        sweep = native
    );
}

mod caching_memory {
    use session_core::CachingSessionStore;
    use session_memory::MemoryStore;
    use session_moka::MokaStore;

    session_testkit::conformance_suite!(|| async {
        CachingSessionStore::new(MokaStore::new(Some(10_000)), MemoryStore::default())
    });
}

mod caching_sled {
    use session_core::CachingSessionStore;
    use session_moka::MokaStore;
    use session_sled::SledStore;

    session_testkit::conformance_suite!(|| async {
        let db = session_sled::sled::Config::new()
            .temporary(true)
            .open()
            .expect("open a temporary sled database");
        let store = SledStore::new(&db).expect("open the session trees");
        CachingSessionStore::new(MokaStore::new(Some(10_000)), store)
    });
}
