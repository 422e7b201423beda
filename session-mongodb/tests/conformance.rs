//! The whole session-testkit suite against a real (wire-compatible) MongoDB.

mod common;

// Without `migrate()`: no TTL index and no user index. The semantics must be
// the same; only user lookups scan the collection.
mod without_migrate {
    session_testkit::conformance_suite!(
        || async { crate::common::fresh_store("conformance").await },
        sweep = exact
    );
}

// The same checks on a migrated collection (TTL index and user index): the
// indexes must not change what any operation returns. The sweep checks run as
// `native` here because MongoDB's TTL monitor (about once a minute) may
// remove an expired record before `delete_expired` counts it.
mod migrated {
    session_testkit::conformance_suite!(
        || async {
            let store = crate::common::fresh_store("conformance_ttl").await;
            store.migrate().await.expect("create the indexes");
            store
        },
        sweep = native
    );
}
