//! `migrate()` on a table of the previous release (commit 0bc9a3e, before
//! `version` and `user_id` existed): the table is created with that
//! release's DDL, copied here, a session is written the way that release
//! wrote it, several processes migrate at once, and the store then works on
//! the old session (load, update over version 0, touch, the user index).

#![cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]

mod common;

use serde_json::json;
use session_core::{
    codec,
    time::{Duration, OffsetDateTime},
    ExpiredDeletion, Record,
};

/// How many "processes" migrate the old table at once.
const MIGRATORS: usize = 6;

/// The session the previous release wrote, and one of its sessions that
/// has expired since.
fn old_sessions() -> (Record, Record) {
    let now = OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .expect("valid nanosecond");
    let mut active = Record::new(now + Duration::hours(1));
    active.data.insert("cart".into(), json!(["CRAB-PLUSH-01"]));
    let mut expired = Record::new(now - Duration::hours(1));
    expired.data.insert("cart".into(), json!([]));
    (active, expired)
}

/// Runs `migrate` from `MIGRATORS` tasks at once, each with a pool of its
/// own, and returns one of the stores.
async fn migrate_concurrently<S, F, Fut>(open: F) -> S
where
    S: Send + 'static,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = (S, session_core::Result<()>)> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..MIGRATORS {
        tasks.spawn(open());
    }
    let mut stores = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (store, migrated) = joined.expect("migrator panicked");
        migrated.expect("concurrent migrate of an old table");
        stores.push(store);
    }
    stores.pop().expect("at least one migrator")
}

/// After the migration: the old session works, the expired one is swept,
/// and migrating again changes nothing.
async fn use_after_migrate<S: ExpiredDeletion>(store: &S, active: &Record, expired: &Record) {
    assert_eq!(store.load(&expired.id).await.expect("load"), None);
    common::checks::old_session_works_after_migrate(store, active).await;
    assert_eq!(store.delete_expired().await.expect("sweep"), 1);
}

#[cfg(feature = "postgres")]
mod postgres {
    use session_sqlx::{sqlx::postgres::PgPoolOptions, PostgresStore};

    use super::*;

    /// Creates the table as the previous release's `PostgresStore::migrate`
    /// did (its DDL, verbatim), with its two sessions, and returns the
    /// guard that drops it.
    async fn old_table(table_name: &str) -> (common::postgres::DropTable, Record, Record) {
        let pool = common::postgres::pool().await;
        sqlx::raw_sql(common::PG_CREATE_TEST_SCHEMA)
            .execute(&pool)
            .await
            .expect("create the test schema");
        let table = format!("\"{}\".\"{table_name}\"", common::TEST_SCHEMA);
        let guard = common::postgres::DropTable(table.clone());
        let index = format!("\"{table_name}_expiry_date_idx\"");
        // From 0bc9a3e:session-sqlx/src/postgres.rs.
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {table} (\
                 id TEXT PRIMARY KEY NOT NULL, \
                 data BYTEA NOT NULL, \
                 expiry_date TIMESTAMPTZ NOT NULL\
             ); \
             CREATE INDEX IF NOT EXISTS {index} ON {table} (expiry_date);",
        );
        sqlx::raw_sql(&sql)
            .execute(&pool)
            .await
            .expect("create the old table");
        let (active, expired) = old_sessions();
        for record in [&active, &expired] {
            // The previous release's `save`.
            sqlx::query(&format!(
                "INSERT INTO {table} AS s (id, data, expiry_date) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data, expiry_date = EXCLUDED.expiry_date"
            ))
            .bind(record.id.to_string())
            .bind(codec::encode_data(&record.data).expect("encode"))
            .bind(record.expiry_date)
            .execute(&pool)
            .await
            .expect("write an old session");
        }
        (guard, active, expired)
    }

    async fn migrated(table_name: String) -> PostgresStore {
        migrate_concurrently(move || {
            let table_name = table_name.clone();
            async move {
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&common::postgres::url())
                    .await
                    .expect("connect");
                let store = PostgresStore::new(pool)
                    .with_schema_name(common::TEST_SCHEMA)
                    .expect("valid schema")
                    .with_table_name(table_name)
                    .expect("valid table");
                let migrated = store.migrate().await;
                (store, migrated)
            }
        })
        .await
    }

    /// The definitions of the table's indexes.
    async fn indexes(store: &PostgresStore) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = $2",
        )
        .bind(store.schema_name())
        .bind(store.table_name())
        .fetch_all(store.pool())
        .await
        .expect("catalog")
    }

    fn assert_layout(indexes: &[String]) {
        let expiry = indexes
            .iter()
            .filter(|def| def.ends_with("(expiry_date)"))
            .count();
        assert_eq!(
            expiry, 1,
            "one expiry index, not a second one: {indexes:#?}"
        );
        let user = indexes
            .iter()
            .filter(|def| def.ends_with("(user_id) WHERE (user_id IS NOT NULL)"))
            .count();
        assert_eq!(user, 1, "one partial user index: {indexes:#?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn old_table_is_migrated_and_its_sessions_work() {
        let table_name = common::table_name();
        let (_table, active, expired) = old_table(&table_name).await;
        let store = migrated(table_name).await;
        assert_layout(&indexes(&store).await);
        use_after_migrate(&store, &active, &expired).await;
        store.migrate().await.expect("migrate again");
        assert_layout(&indexes(&store).await);
    }

    /// A table name long enough that PostgreSQL cut the old expiry index's
    /// name: the cut name is found again, so no second index is built.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn old_table_with_a_long_name_keeps_its_expiry_index() {
        let table_name = format!("{}_{}", common::table_name(), "l".repeat(25));
        assert_eq!(table_name.len(), 58);
        let (_table, active, expired) = old_table(&table_name).await;
        let store = migrated(table_name).await;
        assert_layout(&indexes(&store).await);
        use_after_migrate(&store, &active, &expired).await;
    }

    /// The longest table name gets both indexes (cut names would have been
    /// the table's own name).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn longest_table_name_gets_both_indexes() {
        let table_name = format!("{}_{}", common::table_name(), "m".repeat(30));
        assert_eq!(table_name.len(), session_sqlx::MAX_NAME_LEN);
        let store = PostgresStore::new(common::postgres::pool().await)
            .with_schema_name(common::TEST_SCHEMA)
            .expect("valid schema")
            .with_table_name(&table_name)
            .expect("valid table");
        store.migrate().await.expect("migrate");
        let _table = common::postgres::DropTable(common::postgres::qualified(&store));
        store.migrate().await.expect("migrate again");
        assert_layout(&indexes(&store).await);
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    use session_sqlx::{sqlx::mysql::MySqlPoolOptions, MySqlStore};

    use super::*;

    async fn old_table(table_name: &str) -> (common::mysql::DropTable, Record, Record) {
        let pool = common::mysql::pool().await;
        sqlx::raw_sql(&format!(
            "CREATE DATABASE IF NOT EXISTS `{}`",
            common::TEST_SCHEMA
        ))
        .execute(&pool)
        .await
        .expect("create the test database");
        let table = format!("`{}`.`{table_name}`", common::TEST_SCHEMA);
        let guard = common::mysql::DropTable(table.clone());
        // From 0bc9a3e:session-sqlx/src/mysql.rs.
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {table} (\
                 id CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY, \
                 data LONGBLOB NOT NULL, \
                 expiry_date DATETIME(6) NOT NULL, \
                 INDEX expiry_date_idx (expiry_date)\
             )"
        );
        sqlx::raw_sql(&sql)
            .execute(&pool)
            .await
            .expect("create the old table");
        let (active, expired) = old_sessions();
        for record in [&active, &expired] {
            sqlx::query(&format!(
                "INSERT INTO {table} (id, data, expiry_date) VALUES (?, ?, ?) \
                 ON DUPLICATE KEY UPDATE data = VALUES(data), expiry_date = VALUES(expiry_date)"
            ))
            .bind(record.id.to_string())
            .bind(codec::encode_data(&record.data).expect("encode"))
            .bind(record.expiry_date)
            .execute(&pool)
            .await
            .expect("write an old session");
        }
        (guard, active, expired)
    }

    /// `(column, type)` of the table's columns, and its indexed columns by
    /// index name.
    async fn layout(store: &MySqlStore) -> (Vec<(String, String)>, Vec<(String, String)>) {
        let columns = sqlx::query_as(
            "SELECT CAST(column_name AS CHAR), CAST(column_type AS CHAR) \
             FROM information_schema.columns WHERE table_schema = ? AND table_name = ? \
             ORDER BY ordinal_position",
        )
        .bind(store.schema_name())
        .bind(store.table_name())
        .fetch_all(store.pool())
        .await
        .expect("catalog");
        let mut indexes: Vec<(String, String)> = sqlx::query_as(
            "SELECT CAST(index_name AS CHAR), CAST(column_name AS CHAR) \
             FROM information_schema.statistics WHERE table_schema = ? AND table_name = ?",
        )
        .bind(store.schema_name())
        .bind(store.table_name())
        .fetch_all(store.pool())
        .await
        .expect("catalog");
        indexes.sort();
        (columns, indexes)
    }

    fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn old_table_is_migrated_and_its_sessions_work() {
        let table_name = common::table_name();
        let (_table, active, expired) = old_table(&table_name).await;
        let store = migrate_concurrently(move || {
            let table_name = table_name.clone();
            async move {
                let pool = MySqlPoolOptions::new()
                    .max_connections(1)
                    .connect(&common::mysql::url())
                    .await
                    .expect("connect");
                let store = MySqlStore::new(pool)
                    .with_schema_name(common::TEST_SCHEMA)
                    .expect("valid schema")
                    .with_table_name(table_name)
                    .expect("valid table");
                let migrated = store.migrate().await;
                (store, migrated)
            }
        })
        .await;
        let expected = (
            pairs(&[
                ("id", "char(22)"),
                ("data", "longblob"),
                ("expiry_date", "datetime(6)"),
                ("version", "bigint(20)"),
                ("user_id", "varbinary(255)"),
            ]),
            pairs(&[
                ("PRIMARY", "id"),
                ("expiry_date_idx", "expiry_date"),
                ("user_id_idx", "user_id"),
            ]),
        );
        let mut found = layout(&store).await;
        // MySQL 8 no longer shows an integer's display width.
        for (_, column_type) in &mut found.0 {
            if column_type == "bigint" {
                *column_type = "bigint(20)".into();
            }
        }
        assert_eq!(found, expected);
        use_after_migrate(&store, &active, &expired).await;
        store.migrate().await.expect("migrate again");
        let (_, indexes) = layout(&store).await;
        assert_eq!(indexes, expected.1, "a second migrate changed the indexes");
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use session_sqlx::SqliteStore;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn old_table_is_migrated_and_its_sessions_work() {
        let path = common::sqlite::fresh_path();
        let _file = common::sqlite::RemoveFile(path.clone());
        let pool = common::sqlite::pool_at(&path).await;
        let table_name = common::table_name();
        let table = format!("\"{table_name}\"");
        let index = format!("\"{table_name}_expiry_date_idx\"");
        // From 0bc9a3e:session-sqlx/src/sqlite.rs.
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {table} (\
                 id TEXT PRIMARY KEY NOT NULL, \
                 data BLOB NOT NULL, \
                 expiry_date INTEGER NOT NULL\
             ); \
             CREATE INDEX IF NOT EXISTS {index} ON {table} (expiry_date);",
        );
        sqlx::raw_sql(&sql)
            .execute(&pool)
            .await
            .expect("create the old table");
        let (active, expired) = old_sessions();
        for record in [&active, &expired] {
            sqlx::query(&format!(
                "INSERT INTO {table} (id, data, expiry_date) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (id) DO UPDATE SET data = excluded.data, expiry_date = excluded.expiry_date"
            ))
            .bind(record.id.to_string())
            .bind(codec::encode_data(&record.data).expect("encode"))
            .bind(codec::unix_micros(record.expiry_date))
            .execute(&pool)
            .await
            .expect("write an old session");
        }
        pool.close().await;

        let store = migrate_concurrently(move || {
            let (path, table_name) = (path.clone(), table_name.clone());
            async move {
                // A pool of its own on the file, like another process.
                let store = SqliteStore::new(common::sqlite::pool_at(&path).await)
                    .with_table_name(table_name)
                    .expect("valid table");
                let migrated = store.migrate().await;
                (store, migrated)
            }
        })
        .await;
        let columns: Vec<(String, String, i64, Option<String>)> = sqlx::query_as(
            "SELECT name, type, \"notnull\", dflt_value FROM pragma_table_info(?1) ORDER BY cid",
        )
        .bind(store.table_name())
        .fetch_all(store.pool())
        .await
        .expect("catalog");
        let columns: Vec<_> = columns
            .iter()
            .map(|(name, kind, not_null, default)| {
                (name.as_str(), kind.as_str(), *not_null, default.as_deref())
            })
            .collect();
        assert_eq!(
            columns,
            [
                ("id", "TEXT", 1, None),
                ("data", "BLOB", 1, None),
                ("expiry_date", "INTEGER", 1, None),
                ("version", "INTEGER", 1, Some("0")),
                ("user_id", "TEXT", 0, None),
            ]
        );
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = ?1 \
             AND sql IS NOT NULL ORDER BY name",
        )
        .bind(store.table_name())
        .fetch_all(store.pool())
        .await
        .expect("catalog");
        assert_eq!(indexes.len(), 2, "{indexes:#?}");
        assert!(
            indexes[1].ends_with("(user_id) WHERE user_id IS NOT NULL"),
            "{indexes:#?}"
        );
        use_after_migrate(&store, &active, &expired).await;
        store.migrate().await.expect("migrate again");
    }
}
