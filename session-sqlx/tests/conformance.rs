//! The whole `session-testkit` conformance suite on each store, against a
//! real database, with a table of its own per check.

#![cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]

mod common;

#[cfg(feature = "postgres")]
mod postgres {
    session_testkit::conformance_suite!(|| async { super::common::postgres::suite_store().await });
}

#[cfg(feature = "mysql")]
mod mysql {
    session_testkit::conformance_suite!(|| async { super::common::mysql::suite_store().await });
}

#[cfg(feature = "sqlite")]
mod sqlite {
    session_testkit::conformance_suite!(|| async { super::common::sqlite::suite_store().await });
}
