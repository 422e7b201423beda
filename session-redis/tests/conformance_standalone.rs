//! The whole conformance suite against standalone Redis (`REDIS_URL`), each
//! check under its own key prefix.

mod common;

mod standalone {
    session_testkit::conformance_suite!(
        || async { crate::common::standalone_store("conformance").await },
        sweep = native
    );
}
