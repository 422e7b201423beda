//! Failures: rows that do not decode, servers that cannot be reached, tables
//! that were never migrated. Each is the right `session_core::Error` kind,
//! keeps the sqlx error as its source, and touches no other session.

#![cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]

mod common;

use common::checks;
use session_core::{
    time::{Duration, OffsetDateTime},
    ExpiredDeletion, Id, Record, SessionStore,
};

fn future() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::hours(1)
}

/// Bytes that are not the shared encoding of session data.
const GARBAGE: &[u8] = b"\xff\x00 not json";

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn corrupt_row_is_a_decode_error() {
        let (store, _table) = common::postgres::store().await;
        let corrupt = Id::default();
        let sql = format!(
            "INSERT INTO {} (id, data, expiry_date) VALUES ($1, $2, $3)",
            common::postgres::qualified(&store)
        );
        sqlx::query(&sql)
            .bind(corrupt.to_string())
            .bind(GARBAGE)
            .bind(future())
            .execute(store.pool())
            .await
            .expect("insert a corrupt row");
        checks::corrupt_row_is_a_decode_error(&store, corrupt).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unreachable_server_is_a_backend_error() {
        let store = common::postgres::unreachable_store();
        checks::unreachable_is_a_backend_error(&store).await;
        let error = store.migrate().await.expect_err("migrate without a server");
        checks::assert_backend("migrate", &error);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn missing_table_is_a_backend_error() {
        let store = session_sqlx::PostgresStore::new(common::postgres::pool().await)
            .with_table_name(common::unique_name("never_migrated"))
            .expect("valid name");
        let error = store.load(&Id::default()).await.expect_err("load");
        checks::assert_backend("load", &error);
        let mut record = Record::new(future());
        let error = store.create(&mut record).await.expect_err("create");
        checks::assert_backend("create", &error);
        let error = store.delete_expired().await.expect_err("sweep");
        checks::assert_backend("delete_expired", &error);
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn corrupt_row_is_a_decode_error() {
        let (store, _table) = common::mysql::store().await;
        let corrupt = Id::default();
        let sql = format!(
            "INSERT INTO {} (id, data, expiry_date) VALUES (?, ?, ?)",
            common::mysql::qualified(&store)
        );
        sqlx::query(&sql)
            .bind(corrupt.to_string())
            .bind(GARBAGE)
            .bind(future())
            .execute(store.pool())
            .await
            .expect("insert a corrupt row");
        checks::corrupt_row_is_a_decode_error(&store, corrupt).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unreachable_server_is_a_backend_error() {
        let store = common::mysql::unreachable_store();
        checks::unreachable_is_a_backend_error(&store).await;
        let error = store.migrate().await.expect_err("migrate without a server");
        checks::assert_backend("migrate", &error);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn missing_table_is_a_backend_error() {
        let store = session_sqlx::MySqlStore::new(common::mysql::pool().await)
            .with_table_name(common::unique_name("never_migrated"))
            .expect("valid name");
        let error = store.load(&Id::default()).await.expect_err("load");
        checks::assert_backend("load", &error);
        let mut record = Record::new(future());
        let error = store.create(&mut record).await.expect_err("create");
        checks::assert_backend("create", &error);
        let error = store.delete_expired().await.expect_err("sweep");
        checks::assert_backend("delete_expired", &error);
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;

    fn micros(instant: OffsetDateTime) -> i64 {
        (instant.unix_timestamp_nanos() / 1_000) as i64
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn corrupt_row_is_a_decode_error() {
        let (store, _table) = common::sqlite::store().await;
        let corrupt = Id::default();
        let sql = format!(
            "INSERT INTO \"{}\" (id, data, expiry_date) VALUES (?1, ?2, ?3)",
            store.table_name()
        );
        sqlx::query(&sql)
            .bind(corrupt.to_string())
            .bind(GARBAGE)
            .bind(micros(future()))
            .execute(store.pool())
            .await
            .expect("insert a corrupt row");
        checks::corrupt_row_is_a_decode_error(&store, corrupt).await;
    }

    /// SQLite keeps any value in any column: an expiry that is not an
    /// integer is a decode error too (sqlx's column decode error).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn expiry_of_the_wrong_type_is_a_decode_error() {
        let (store, _table) = common::sqlite::store().await;
        let corrupt = Id::default();
        let sql = format!(
            "INSERT INTO \"{}\" (id, data, expiry_date) VALUES (?1, ?2, 'tomorrow')",
            store.table_name()
        );
        sqlx::query(&sql)
            .bind(corrupt.to_string())
            .bind(b"{}".as_slice())
            .execute(store.pool())
            .await
            .expect("insert a corrupt row");
        let error = store.load(&corrupt).await.expect_err("corrupt row loaded");
        assert!(error.is_decode(), "expected a decode error, got {error:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unopenable_database_is_a_backend_error() {
        let store = common::sqlite::unreachable_store();
        checks::unreachable_is_a_backend_error(&store).await;
        let error = store
            .migrate()
            .await
            .expect_err("migrate without a database");
        checks::assert_backend("migrate", &error);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn missing_table_is_a_backend_error() {
        let pool = common::sqlite::pool_at(&common::sqlite::fresh_path()).await;
        let store = session_sqlx::SqliteStore::new(pool);
        let error = store.load(&Id::default()).await.expect_err("load");
        checks::assert_backend("load", &error);
        let mut record = Record::new(future());
        let error = store.create(&mut record).await.expect_err("create");
        checks::assert_backend("create", &error);
        let error = store.delete_expired().await.expect_err("sweep");
        checks::assert_backend("delete_expired", &error);
    }
}
