//! Tables: name validation and quoting, migrations that are idempotent and
//! safe to run from several processes at once, the expiry and user indexes,
//! and the id column's byte-exact comparison. (Migrating a table of the
//! previous release: `tests/migration.rs`.)

#![cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]

mod common;

use common::checks;
use session_core::{
    time::{Duration, OffsetDateTime},
    Record, SessionStore,
};
use session_sqlx::InvalidName;

/// How many "processes" migrate one table at once.
const MIGRATORS: usize = 8;

/// Names a configuration file could hold that must never reach the SQL.
const HOSTILE_NAMES: [&str; 5] = [
    "sessions; DROP TABLE users",
    "a\"b",
    "a`b",
    "schema.table",
    "1st",
];

fn assert_refused<T: std::fmt::Debug>(result: &Result<T, InvalidName>, name: &str) {
    assert!(
        matches!(result, Err(InvalidName::Character { .. })),
        "{name:?} was not refused as a bad name: {result:?}"
    );
}

async fn round_trip<S: SessionStore>(store: &S) {
    let mut record = Record::new(OffsetDateTime::now_utc() + Duration::hours(1));
    record.data.insert("k".into(), "v".into());
    store.create(&mut record).await.expect("create");
    let loaded = store
        .load(&record.id)
        .await
        .expect("load")
        .expect("present");
    assert_eq!(loaded.data, record.data);
}

#[cfg(feature = "postgres")]
mod postgres {
    use session_sqlx::{sqlx::postgres::PgPoolOptions, PostgresStore};

    use super::*;

    fn lazy_store() -> PostgresStore {
        let pool = PgPoolOptions::new()
            .connect_lazy(&common::postgres::url())
            .expect("lazy pool");
        PostgresStore::new(pool)
    }

    async fn drop_schema(schema: &str) {
        let pool = common::postgres::pool().await;
        sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .execute(&pool)
            .await
            .expect("drop the test schema");
    }

    #[tokio::test]
    async fn names_are_validated() {
        let store = lazy_store();
        assert_eq!(store.table_name(), "sessions");
        assert_eq!(store.schema_name(), None);
        for name in HOSTILE_NAMES {
            assert_refused(&lazy_store().with_table_name(name), name);
            assert_refused(&lazy_store().with_schema_name(name), name);
        }
        assert_eq!(
            lazy_store().with_table_name("").map(|_| ()),
            Err(InvalidName::Empty)
        );
        let store = lazy_store()
            .with_schema_name("auth")
            .expect("valid")
            .with_table_name("Web_Sessions")
            .expect("valid");
        assert_eq!(store.schema_name(), Some("auth"));
        assert_eq!(store.table_name(), "Web_Sessions");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reserved_words_and_case_are_kept() {
        let schema = common::unique_name("Order");
        let store = PostgresStore::new(common::postgres::pool().await)
            .with_schema_name(&schema)
            .expect("valid")
            .with_table_name("select")
            .expect("valid");
        store.migrate().await.expect("migrate");
        round_trip(&store).await;
        let found: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = 'select'",
        )
        .bind(&schema)
        .fetch_one(store.pool())
        .await
        .expect("catalog");
        assert_eq!(found, 1, "the schema's case was not kept");
        drop_schema(&schema).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_migrations_all_succeed() {
        // A new schema, so the migrators also race to create it.
        let schema = common::unique_name("migrate");
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..MIGRATORS {
            let schema = schema.clone();
            tasks.spawn(async move {
                // A pool of its own, like another process.
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&common::postgres::url())
                    .await
                    .expect("connect");
                let store = PostgresStore::new(pool)
                    .with_schema_name(schema)
                    .expect("valid")
                    .with_table_name("sessions")
                    .expect("valid");
                store.migrate().await.map(|()| store)
            });
        }
        let mut stores = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            stores.push(
                joined
                    .expect("migrator panicked")
                    .expect("concurrent migrate"),
            );
        }
        for store in &stores {
            round_trip(store).await;
        }
        drop_schema(&schema).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn migrate_again_keeps_sessions_and_indexes_expiry() {
        let (store, _table) = common::postgres::store().await;
        let mut record = Record::new(OffsetDateTime::now_utc() + Duration::hours(1));
        store.create(&mut record).await.expect("create");
        store.migrate().await.expect("second migrate");
        assert!(store.load(&record.id).await.expect("load").is_some());
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = $2",
        )
        .bind(store.schema_name())
        .bind(store.table_name())
        .fetch_all(store.pool())
        .await
        .expect("catalog");
        assert!(
            indexes.iter().any(|def| def.ends_with("(expiry_date)")),
            "no index on expiry_date: {indexes:?}"
        );
        assert!(
            indexes
                .iter()
                .any(|def| def.ends_with("(user_id) WHERE (user_id IS NOT NULL)")),
            "no partial index on user_id: {indexes:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ids_differing_in_case_are_distinct() {
        let (store, _table) = common::postgres::store().await;
        checks::ids_differing_in_case_are_distinct(&store).await;
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    use session_sqlx::{sqlx::mysql::MySqlPoolOptions, MySqlStore};

    use super::*;

    fn lazy_store() -> MySqlStore {
        let pool = MySqlPoolOptions::new()
            .connect_lazy(&common::mysql::url())
            .expect("lazy pool");
        MySqlStore::new(pool)
    }

    async fn drop_database(database: &str) {
        let pool = common::mysql::pool().await;
        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS `{database}`"))
            .execute(&pool)
            .await
            .expect("drop the test database");
    }

    #[tokio::test]
    async fn names_are_validated() {
        let store = lazy_store();
        assert_eq!(store.table_name(), "sessions");
        assert_eq!(store.schema_name(), None);
        for name in HOSTILE_NAMES {
            assert_refused(&lazy_store().with_table_name(name), name);
            assert_refused(&lazy_store().with_schema_name(name), name);
        }
        assert!(matches!(
            lazy_store().with_schema_name("x".repeat(64)),
            Err(InvalidName::TooLong { .. })
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reserved_words_are_quoted() {
        let database = common::unique_name("order");
        let store = MySqlStore::new(common::mysql::pool().await)
            .with_schema_name(&database)
            .expect("valid")
            .with_table_name("select")
            .expect("valid");
        store.migrate().await.expect("migrate");
        round_trip(&store).await;
        drop_database(&database).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_migrations_all_succeed() {
        let database = common::unique_name("migrate");
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..MIGRATORS {
            let database = database.clone();
            tasks.spawn(async move {
                let pool = MySqlPoolOptions::new()
                    .max_connections(1)
                    .connect(&common::mysql::url())
                    .await
                    .expect("connect");
                let store = MySqlStore::new(pool)
                    .with_schema_name(database)
                    .expect("valid");
                store.migrate().await.map(|()| store)
            });
        }
        let mut stores = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            stores.push(
                joined
                    .expect("migrator panicked")
                    .expect("concurrent migrate"),
            );
        }
        for store in &stores {
            round_trip(store).await;
        }
        drop_database(&database).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn migrate_again_keeps_sessions_and_indexes_expiry() {
        let (store, _table) = common::mysql::store().await;
        let mut record = Record::new(OffsetDateTime::now_utc() + Duration::hours(1));
        store.create(&mut record).await.expect("create");
        store.migrate().await.expect("second migrate");
        assert!(store.load(&record.id).await.expect("load").is_some());
        for column in ["expiry_date", "user_id"] {
            let indexed: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.statistics \
                 WHERE table_schema = ? AND table_name = ? AND column_name = ?",
            )
            .bind(store.schema_name())
            .bind(store.table_name())
            .bind(column)
            .fetch_one(store.pool())
            .await
            .expect("catalog");
            assert_eq!(indexed, 1, "no index on {column}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ids_differing_in_case_are_distinct() {
        let (store, _table) = common::mysql::store().await;
        checks::ids_differing_in_case_are_distinct(&store).await;
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use session_sqlx::{sqlx::sqlite::SqlitePoolOptions, SqliteStore};

    use super::*;

    fn lazy_store() -> SqliteStore {
        let pool = SqlitePoolOptions::new()
            .connect_lazy("sqlite::memory:")
            .expect("lazy pool");
        SqliteStore::new(pool)
    }

    #[tokio::test]
    async fn names_are_validated() {
        assert_eq!(lazy_store().table_name(), "sessions");
        for name in HOSTILE_NAMES {
            assert_refused(&lazy_store().with_table_name(name), name);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reserved_words_are_quoted() {
        let pool = common::sqlite::pool_at(&common::sqlite::fresh_path()).await;
        let store = SqliteStore::new(pool)
            .with_table_name("select")
            .expect("valid");
        store.migrate().await.expect("migrate");
        round_trip(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_migrations_all_succeed() {
        let path = common::sqlite::fresh_path();
        // Create the file first: opening it is not what is under test.
        common::sqlite::pool_at(&path).await.close().await;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..MIGRATORS {
            let path = path.clone();
            tasks.spawn(async move {
                let store = SqliteStore::new(common::sqlite::pool_at(&path).await);
                store.migrate().await.map(|()| store)
            });
        }
        let mut stores = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            stores.push(
                joined
                    .expect("migrator panicked")
                    .expect("concurrent migrate"),
            );
        }
        for store in &stores {
            round_trip(store).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn migrate_again_keeps_sessions_and_indexes_expiry() {
        let (store, _table) = common::sqlite::store().await;
        let mut record = Record::new(OffsetDateTime::now_utc() + Duration::hours(1));
        store.create(&mut record).await.expect("create");
        store.migrate().await.expect("second migrate");
        assert!(store.load(&record.id).await.expect("load").is_some());
        for column in ["expiry_date", "user_id"] {
            let indexed: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pragma_index_list(?1) AS l \
                 JOIN pragma_index_info(l.name) AS i WHERE i.name = ?2",
            )
            .bind(store.table_name())
            .bind(column)
            .fetch_one(store.pool())
            .await
            .expect("catalog");
            assert_eq!(indexed, 1, "no index on {column}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ids_differing_in_case_are_distinct() {
        let (store, _table) = common::sqlite::store().await;
        checks::ids_differing_in_case_are_distinct(&store).await;
    }
}
