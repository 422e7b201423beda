//! The whole session-testkit suite against a real (wire-compatible) MongoDB.

mod common;

mod without_ttl_index {
    session_testkit::conformance_suite!(
        || async { crate::common::fresh_store("conformance").await },
        sweep = exact
    );
}

// The same checks with the TTL index in place: the index must not change what
// `load` returns. The sweep checks run as `native` here because MongoDB's TTL
// monitor (about once a minute) may remove an expired record before
// `delete_expired` counts it.
mod with_ttl_index {
    session_testkit::conformance_suite!(
        || async {
            let store = crate::common::fresh_store("conformance_ttl").await;
            store.migrate().await.expect("create the TTL index");
            store
        },
        sweep = native
    );
}
