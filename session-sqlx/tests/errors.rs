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

/// An hour from now, to the microsecond every store keeps.
fn future() -> OffsetDateTime {
    let future = OffsetDateTime::now_utc() + Duration::hours(1);
    future
        .replace_nanosecond(future.nanosecond() / 1_000 * 1_000)
        .expect("valid nanosecond")
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

    /// A table whose trigger swallows every insert: `create` gives up after
    /// `MAX_CREATE_ATTEMPTS` ids with core's `NoFreeId`, as a backend error.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn create_gives_up_when_no_id_is_free() {
        let (store, _table) = common::postgres::store().await;
        let table = common::postgres::qualified(&store);
        let function = format!(
            "\"{}\".\"{}_swallow\"",
            common::TEST_SCHEMA,
            store.table_name()
        );
        sqlx::raw_sql(&format!(
            "CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql \
                 AS $$ BEGIN RETURN NULL; END $$; \
             CREATE TRIGGER swallow BEFORE INSERT ON {table} \
                 FOR EACH ROW EXECUTE FUNCTION {function}();"
        ))
        .execute(store.pool())
        .await
        .expect("create the trigger");
        checks::create_gives_up_when_no_id_is_free(&store).await;
        sqlx::raw_sql(&format!("DROP TABLE {table}; DROP FUNCTION {function}();"))
            .execute(store.pool())
            .await
            .expect("drop the table and its trigger function");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn negative_version_is_a_decode_error() {
        let (store, _table) = common::postgres::store().await;
        checks::negative_version_is_a_decode_error(&store).await;
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
    async fn negative_version_is_a_decode_error() {
        let (store, _table) = common::mysql::store().await;
        checks::negative_version_is_a_decode_error(&store).await;
    }

    /// A user id column holding bytes that are not UTF-8 (written by
    /// something else) is a decode error for that session only; lookups of
    /// other users do not meet it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn user_id_that_is_not_utf8_is_a_decode_error() {
        let (store, _table) = common::mysql::store().await;
        let mut corrupt = Record::new(future());
        corrupt.user_id = Some("mallory".into());
        store.create(&mut corrupt).await.expect("create");
        let mut neighbour = Record::new(future());
        neighbour.user_id = Some("mallory".into());
        store.create(&mut neighbour).await.expect("create");
        let sql = format!(
            "UPDATE {} SET user_id = ? WHERE id = ?",
            common::mysql::qualified(&store)
        );
        sqlx::query(&sql)
            .bind(b"\xffmallory".as_slice())
            .bind(corrupt.id.to_string())
            .execute(store.pool())
            .await
            .expect("corrupt the user id");
        let error = store
            .load(&corrupt.id)
            .await
            .expect_err("corrupt row loaded");
        assert!(error.is_decode(), "expected a decode error, got {error:?}");
        assert_eq!(
            store.sessions_of_user("mallory").await.expect("list"),
            vec![neighbour]
        );
        store.delete(&corrupt.id).await.expect("delete");
        assert_eq!(store.load(&corrupt.id).await.expect("load"), None);
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

    /// A table whose trigger swallows every insert: `create` gives up after
    /// `MAX_CREATE_ATTEMPTS` ids with core's `NoFreeId`, as a backend error.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn create_gives_up_when_no_id_is_free() {
        let (store, _table) = common::sqlite::store().await;
        sqlx::raw_sql(&format!(
            "CREATE TRIGGER swallow BEFORE INSERT ON \"{}\" BEGIN SELECT RAISE(IGNORE); END",
            store.table_name()
        ))
        .execute(store.pool())
        .await
        .expect("create the trigger");
        checks::create_gives_up_when_no_id_is_free(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn negative_version_is_a_decode_error() {
        let (store, _table) = common::sqlite::store().await;
        checks::negative_version_is_a_decode_error(&store).await;
    }

    /// SQLite keeps any value in any column: a version that is not an
    /// integer, or a user id that is not text, is a decode error too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn version_or_user_of_the_wrong_type_is_a_decode_error() {
        let (store, _table) = common::sqlite::store().await;
        for (column, value) in [("version", "'seven'"), ("user_id", "X'FF00'")] {
            let mut corrupt = Record::new(future());
            corrupt.user_id = Some("mallory".into());
            store.create(&mut corrupt).await.expect("create");
            let sql = format!(
                "UPDATE \"{}\" SET {column} = {value} WHERE id = ?1",
                store.table_name()
            );
            sqlx::query(&sql)
                .bind(corrupt.id.to_string())
                .execute(store.pool())
                .await
                .expect("corrupt a column");
            let error = store
                .load(&corrupt.id)
                .await
                .expect_err("corrupt row loaded");
            assert!(
                error.is_decode(),
                "{column}: expected a decode error, got {error:?}"
            );
            assert!(
                std::error::Error::source(&error).is_some(),
                "the decode error lost its source"
            );
            store.delete(&corrupt.id).await.expect("delete");
        }
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
