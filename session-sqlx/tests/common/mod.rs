//! Set-up shared by the test binaries: real databases on loopback, one
//! table per test.
// Best-effort clean-up reports its failures on the test output, the only
// place a test can say something without failing.
#![allow(dead_code, unreachable_pub, clippy::print_stderr)]

use std::time::Duration;

use session_core::Id;

/// The schema (PostgreSQL) or database (MySQL) the tests' tables live in,
/// so one `DROP` clears what the tests left behind.
pub const TEST_SCHEMA: &str = "session_sqlx_test";

/// A name no other test, run or developer uses: `prefix` and 64 random bits.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{:016x}", Id::random().0 as u64)
}

/// The `acquire_timeout` the README recommends, which bounds how long a call
/// on an unreachable database takes to fail.
pub const RECOMMENDED_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a test table may live before a later run's suite factory drops
/// it: far longer than any test runs.
pub const TABLE_MAX_AGE: session_core::time::Duration = session_core::time::Duration::HOUR;

/// `t<UTC yyyymmddhhmmss>`: the age of a test table is readable from its
/// name, so a later run can drop what an earlier one left behind.
fn stamp(instant: session_core::time::OffsetDateTime) -> String {
    format!(
        "t{:04}{:02}{:02}{:02}{:02}{:02}",
        instant.year(),
        u8::from(instant.month()),
        instant.day(),
        instant.hour(),
        instant.minute(),
        instant.second()
    )
}

/// A fresh test table name: its creation time and 64 random bits.
pub fn table_name() -> String {
    unique_name(&stamp(session_core::time::OffsetDateTime::now_utc()))
}

/// Of `names`, the test tables created more than [`TABLE_MAX_AGE`] ago.
/// Anything not named by [`table_name`] is left alone.
pub fn stale_tables(names: Vec<String>) -> Vec<String> {
    let cutoff = stamp(session_core::time::OffsetDateTime::now_utc() - TABLE_MAX_AGE);
    names
        .into_iter()
        .filter(|name| {
            let bytes = name.as_bytes();
            name.len() == 32
                && bytes[0] == b't'
                && bytes[1..15].iter().all(u8::is_ascii_digit)
                && bytes[15] == b'_'
                && bytes[16..].iter().all(u8::is_ascii_hexdigit)
                && name[..15] < *cutoff
        })
        .collect()
}

/// Runs `drop` on a runtime and connection of its own, so it works from
/// `Drop`, whatever state the test's runtime is in. Failures are reported,
/// not raised: the next run's factory drops what is left.
fn drop_on_own_runtime<F, Fut>(what: &str, drop: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), sqlx::Error>>,
{
    let what = what.to_owned();
    let outcome = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(sqlx::Error::Io)?
            .block_on(drop())
    })
    .join();
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(error)) => eprintln!("could not drop the test table {what}: {error}"),
        Err(_) => eprintln!("dropping the test table {what} panicked"),
    }
}

/// What a test reads or writes in a store's table behind the store's back:
/// each dialect's SQL, so the checks below are written once.
#[allow(async_fn_in_trait)]
pub trait RawTable {
    /// How many rows of the table have this user id, expired ones included.
    async fn rows_of_user(&self, user_id: &str) -> i64;

    /// Overwrites the stored version of a row, as something else might.
    async fn set_version(&self, id: &Id, version: i64);
}

/// Takes the migration lock of PostgresStore::migrate on the test schema and
/// creates the schema: `CREATE SCHEMA IF NOT EXISTS` alone fails when two
/// test processes run it at once.
#[cfg(feature = "postgres")]
pub const PG_CREATE_TEST_SCHEMA: &str =
    "SELECT pg_advisory_xact_lock(hashtext('session-sqlx migrate session_sqlx_test')); \
     CREATE SCHEMA IF NOT EXISTS session_sqlx_test;";

#[cfg(feature = "postgres")]
pub mod postgres {
    use session_sqlx::{sqlx::postgres::PgPoolOptions, PostgresStore};

    use super::*;

    pub fn url() -> String {
        std::env::var("POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    pub async fn pool() -> sqlx::PgPool {
        PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect(&url())
            .await
            .unwrap_or_else(|error| panic!("PostgreSQL at {}: {error}", url()))
    }

    /// A migrated store on a fresh table of the test schema, for the
    /// conformance suite, whose checks cannot hold a guard: first drops the
    /// test tables older than [`TABLE_MAX_AGE`].
    pub async fn suite_store() -> PostgresStore {
        let pool = pool().await;
        drop_stale_tables(&pool).await;
        migrated(pool).await
    }

    /// A migrated store on a fresh table of the test schema, and the guard
    /// that drops that table when the test ends.
    pub async fn store() -> (PostgresStore, DropTable) {
        let store = migrated(pool().await).await;
        let guard = DropTable(qualified(&store));
        (store, guard)
    }

    async fn migrated(pool: sqlx::PgPool) -> PostgresStore {
        let store = PostgresStore::new(pool)
            .with_schema_name(TEST_SCHEMA)
            .expect("valid schema")
            .with_table_name(table_name())
            .expect("valid table");
        store.migrate().await.expect("migrate");
        store
    }

    /// Drops the tables earlier runs left in the test schema more than an
    /// hour ago (a test that failed, or a suite check). Best effort: another
    /// test may be dropping the same ones.
    async fn drop_stale_tables(pool: &sqlx::PgPool) {
        let names: Vec<String> =
            match sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = $1")
                .bind(TEST_SCHEMA)
                .fetch_all(pool)
                .await
            {
                Ok(names) => names,
                Err(error) => return eprintln!("listing stale test tables: {error}"),
            };
        for name in stale_tables(names) {
            let sql = format!("DROP TABLE IF EXISTS \"{TEST_SCHEMA}\".\"{name}\"");
            if let Err(error) = sqlx::raw_sql(&sql).execute(pool).await {
                eprintln!("dropping stale test table {name}: {error}");
            }
        }
    }

    /// Drops its table (schema-qualified and quoted) when dropped.
    #[must_use = "the table is dropped when the guard is"]
    pub struct DropTable(pub String);

    impl Drop for DropTable {
        fn drop(&mut self) {
            let sql = format!("DROP TABLE IF EXISTS {}", self.0);
            drop_on_own_runtime(&self.0, move || async move {
                use sqlx::Connection as _;
                let mut connection = sqlx::PgConnection::connect(&url()).await?;
                sqlx::raw_sql(&sql).execute(&mut connection).await?;
                connection.close().await
            });
        }
    }

    /// A store whose server does not exist: nothing listens on port 1.
    pub fn unreachable_store() -> PostgresStore {
        // The README's recommended settings, whose bound the errors must
        // come within (the test asserts the kind, not the time).
        let pool = PgPoolOptions::new()
            .acquire_timeout(RECOMMENDED_ACQUIRE_TIMEOUT)
            .test_before_acquire(true)
            .connect_lazy("postgres://postgres@127.0.0.1:1/test")
            .expect("lazy pool");
        PostgresStore::new(pool)
    }

    impl RawTable for PostgresStore {
        async fn rows_of_user(&self, user_id: &str) -> i64 {
            let sql = format!(
                "SELECT count(*) FROM {} WHERE user_id = $1",
                qualified(self)
            );
            sqlx::query_scalar(&sql)
                .bind(user_id)
                .fetch_one(self.pool())
                .await
                .expect("count the user's rows")
        }

        async fn set_version(&self, id: &Id, version: i64) {
            let sql = format!("UPDATE {} SET version = $1 WHERE id = $2", qualified(self));
            sqlx::query(&sql)
                .bind(version)
                .bind(id.to_string())
                .execute(self.pool())
                .await
                .expect("overwrite the version");
        }
    }

    pub fn qualified(store: &PostgresStore) -> String {
        match store.schema_name() {
            Some(schema) => format!("\"{schema}\".\"{}\"", store.table_name()),
            None => format!("\"{}\"", store.table_name()),
        }
    }
}

#[cfg(feature = "mysql")]
pub mod mysql {
    use session_sqlx::{sqlx::mysql::MySqlPoolOptions, MySqlStore};

    use super::*;

    pub fn url() -> String {
        std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned())
    }

    pub async fn pool() -> sqlx::MySqlPool {
        MySqlPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect(&url())
            .await
            .unwrap_or_else(|error| panic!("MySQL/MariaDB at {}: {error}", url()))
    }

    /// A migrated store on a fresh table of the test database, for the
    /// conformance suite, whose checks cannot hold a guard: first drops the
    /// test tables older than [`TABLE_MAX_AGE`].
    pub async fn suite_store() -> MySqlStore {
        let pool = pool().await;
        drop_stale_tables(&pool).await;
        migrated(pool).await
    }

    /// A migrated store on a fresh table of the test database, and the guard
    /// that drops that table when the test ends.
    pub async fn store() -> (MySqlStore, DropTable) {
        let store = migrated(pool().await).await;
        let guard = DropTable(qualified(&store));
        (store, guard)
    }

    async fn migrated(pool: sqlx::MySqlPool) -> MySqlStore {
        let store = MySqlStore::new(pool)
            .with_schema_name(TEST_SCHEMA)
            .expect("valid schema")
            .with_table_name(table_name())
            .expect("valid table");
        store.migrate().await.expect("migrate");
        store
    }

    /// Drops the tables earlier runs left in the test database more than an
    /// hour ago (a test that failed, or a suite check). Best effort: another
    /// test may be dropping the same ones.
    async fn drop_stale_tables(pool: &sqlx::MySqlPool) {
        let names: Vec<String> = match sqlx::query_scalar(
            "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = ?",
        )
        .bind(TEST_SCHEMA)
        .fetch_all(pool)
        .await
        {
            Ok(names) => names,
            Err(error) => return eprintln!("listing stale test tables: {error}"),
        };
        for name in stale_tables(names) {
            let sql = format!("DROP TABLE IF EXISTS `{TEST_SCHEMA}`.`{name}`");
            if let Err(error) = sqlx::raw_sql(&sql).execute(pool).await {
                eprintln!("dropping stale test table {name}: {error}");
            }
        }
    }

    /// Drops its table (database-qualified and quoted) when dropped.
    #[must_use = "the table is dropped when the guard is"]
    pub struct DropTable(pub String);

    impl Drop for DropTable {
        fn drop(&mut self) {
            let sql = format!("DROP TABLE IF EXISTS {}", self.0);
            drop_on_own_runtime(&self.0, move || async move {
                use sqlx::Connection as _;
                let mut connection = sqlx::MySqlConnection::connect(&url()).await?;
                sqlx::raw_sql(&sql).execute(&mut connection).await?;
                connection.close().await
            });
        }
    }

    /// A store whose server does not exist: nothing listens on port 1.
    pub fn unreachable_store() -> MySqlStore {
        // The README's recommended settings, whose bound the errors must
        // come within (the test asserts the kind, not the time).
        let pool = MySqlPoolOptions::new()
            .acquire_timeout(RECOMMENDED_ACQUIRE_TIMEOUT)
            .test_before_acquire(true)
            .connect_lazy("mysql://root@127.0.0.1:1/test")
            .expect("lazy pool");
        MySqlStore::new(pool)
    }

    impl RawTable for MySqlStore {
        async fn rows_of_user(&self, user_id: &str) -> i64 {
            let sql = format!("SELECT COUNT(*) FROM {} WHERE user_id = ?", qualified(self));
            sqlx::query_scalar(&sql)
                .bind(user_id.as_bytes())
                .fetch_one(self.pool())
                .await
                .expect("count the user's rows")
        }

        async fn set_version(&self, id: &Id, version: i64) {
            let sql = format!("UPDATE {} SET version = ? WHERE id = ?", qualified(self));
            sqlx::query(&sql)
                .bind(version)
                .bind(id.to_string())
                .execute(self.pool())
                .await
                .expect("overwrite the version");
        }
    }

    pub fn qualified(store: &MySqlStore) -> String {
        match store.schema_name() {
            Some(schema) => format!("`{schema}`.`{}`", store.table_name()),
            None => format!("`{}`", store.table_name()),
        }
    }
}

#[cfg(feature = "sqlite")]
pub mod sqlite {
    use std::path::PathBuf;

    use session_sqlx::{
        sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions},
        SqliteStore,
    };

    use super::*;

    /// A fresh database file under cargo's scratch directory for tests.
    pub fn fresh_path() -> PathBuf {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("session-sqlx")
            .join(format!("{}.db", unique_name("db")))
    }

    pub async fn pool_at(path: &std::path::Path) -> sqlx::SqlitePool {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create the test database directory");
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(30));
        SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .unwrap_or_else(|error| panic!("SQLite at {}: {error}", path.display()))
    }

    /// A migrated store in a fresh database file, for the conformance suite,
    /// whose checks cannot hold a guard: first removes the test database
    /// files last written more than [`TABLE_MAX_AGE`] ago.
    pub async fn suite_store() -> SqliteStore {
        remove_stale_files();
        let store = SqliteStore::new(pool_at(&fresh_path()).await)
            .with_table_name(table_name())
            .expect("valid table");
        store.migrate().await.expect("migrate");
        store
    }

    /// Best effort: another test may be removing the same files.
    fn remove_stale_files() {
        let Some(dir) = fresh_path().parent().map(std::path::Path::to_path_buf) else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let max_age = Duration::from_secs(TABLE_MAX_AGE.whole_seconds().unsigned_abs());
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|meta| meta.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|age| age > max_age);
            let ours = entry.file_name().to_string_lossy().starts_with("db_");
            if stale && ours {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// A migrated store in a fresh database file, and the guard that removes
    /// the file (and its WAL) when the test ends.
    pub async fn store() -> (SqliteStore, RemoveFile) {
        let path = fresh_path();
        let store = SqliteStore::new(pool_at(&path).await)
            .with_table_name(table_name())
            .expect("valid table");
        store.migrate().await.expect("migrate");
        (store, RemoveFile(path))
    }

    /// Removes a database file and its `-wal`/`-shm` companions when dropped.
    #[must_use = "the file is removed when the guard is"]
    pub struct RemoveFile(pub PathBuf);

    impl Drop for RemoveFile {
        fn drop(&mut self) {
            for suffix in ["", "-wal", "-shm"] {
                let mut path = self.0.clone().into_os_string();
                path.push(suffix);
                let _ = std::fs::remove_file(path);
            }
        }
    }

    impl RawTable for SqliteStore {
        async fn rows_of_user(&self, user_id: &str) -> i64 {
            let sql = format!(
                "SELECT count(*) FROM \"{}\" WHERE user_id = ?1",
                self.table_name()
            );
            sqlx::query_scalar(&sql)
                .bind(user_id)
                .fetch_one(self.pool())
                .await
                .expect("count the user's rows")
        }

        async fn set_version(&self, id: &Id, version: i64) {
            let sql = format!(
                "UPDATE \"{}\" SET version = ?1 WHERE id = ?2",
                self.table_name()
            );
            sqlx::query(&sql)
                .bind(version)
                .bind(id.to_string())
                .execute(self.pool())
                .await
                .expect("overwrite the version");
        }
    }

    /// A store whose database cannot be opened: its directory is missing.
    pub fn unreachable_store() -> SqliteStore {
        let options = SqliteConnectOptions::new()
            .filename(fresh_path().join("no-such-directory").join("x.db"))
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .acquire_timeout(RECOMMENDED_ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        SqliteStore::new(pool)
    }
}

/// Checks every store must pass, written once; each backend's test calls
/// them with its own store.
pub mod checks {
    use std::error::Error as _;

    use serde_json::json;
    use session_core::{
        time::{Duration, OffsetDateTime},
        ExpiredDeletion, Id, Record, SessionStore, Update,
    };
    use session_sqlx::{InvalidUserId, MAX_USER_ID_LEN};

    use super::RawTable;

    fn record(id: Id, expiry_date: OffsetDateTime, tag: &str) -> Record {
        let mut record = Record::new(expiry_date);
        record.id = id;
        record.data.insert("tag".into(), json!(tag));
        record
    }

    fn soon() -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
            .expect("valid nanosecond")
            + Duration::hours(1)
    }

    /// Ids are compared byte for byte: two ids whose text differs only in
    /// case are two sessions, and neither loads the other.
    pub async fn ids_differing_in_case_are_distinct<S: SessionStore>(store: &S) {
        let upper: Id = "QUJDREVGR0hJSktMTU5PUA".parse().expect("valid id");
        let lower: Id = "qUJDREVGR0hJSktMTU5PUA".parse().expect("valid id");
        assert_ne!(upper, lower);
        let first = record(upper, soon(), "upper");
        store.save(&first).await.expect("save upper");
        assert_eq!(
            store.load(&lower).await.expect("load lower"),
            None,
            "an id differing only in case loaded another session"
        );
        let mut second = record(lower, soon(), "lower");
        store.create(&mut second).await.expect("create lower");
        assert_eq!(second.id, lower, "create treated a case twin as taken");
        assert_eq!(store.load(&upper).await.expect("load"), Some(first));
        assert_eq!(store.load(&lower).await.expect("load"), Some(second));
    }

    /// `create` on the id of a record that expired but was not swept yet
    /// stores the new record under that id; on the id of a live record it
    /// draws a fresh one.
    pub async fn create_takes_over_only_expired_ids<S: SessionStore>(store: &S) {
        let id = Id::default();
        let stale = record(id, soon() - Duration::hours(2), "stale");
        store.save(&stale).await.expect("save stale");
        let mut fresh = record(id, soon(), "fresh");
        store.create(&mut fresh).await.expect("create over stale");
        assert_eq!(fresh.id, id, "an expired record blocked its id");
        assert_eq!(store.load(&id).await.expect("load"), Some(fresh.clone()));

        let mut again = record(id, soon(), "again");
        store.create(&mut again).await.expect("create over live");
        assert_ne!(again.id, id, "create overwrote a live record");
        assert_eq!(store.load(&id).await.expect("load"), Some(fresh));
        assert_eq!(store.load(&again.id).await.expect("load"), Some(again));
    }

    /// Saves `expired` expired records and `active` active ones; returns the
    /// active ones.
    pub async fn populate<S: SessionStore>(
        store: &S,
        expired: usize,
        active: usize,
    ) -> Vec<Record> {
        for i in 0..expired {
            let past = soon() - Duration::hours(2) - Duration::seconds(i as i64);
            store
                .save(&record(Id::default(), past, "expired"))
                .await
                .expect("save expired");
        }
        let mut kept = Vec::new();
        for _ in 0..active {
            let mut live = record(Id::default(), soon(), "active");
            store.create(&mut live).await.expect("create active");
            kept.push(live);
        }
        kept
    }

    /// A sweep whose batch is smaller than what expired still removes and
    /// counts every expired record, exactly, and nothing else.
    pub async fn sweep_counts_across_batches<S: ExpiredDeletion>(store: &S) {
        // 10 expired over batches of 3: three full batches and a short one.
        let active = populate(store, 10, 4).await;
        assert_eq!(store.delete_expired().await.expect("sweep"), 10);
        for record in &active {
            assert_eq!(
                store.load(&record.id).await.expect("load"),
                Some(record.clone())
            );
        }
        assert_eq!(store.delete_expired().await.expect("second sweep"), 0);
        // A batch size that divides the count: the last full batch is
        // followed by an empty one, which ends the sweep.
        populate(store, 6, 0).await;
        assert_eq!(store.delete_expired().await.expect("sweep"), 6);
    }

    /// Two sweeps at once (two processes) remove every expired record, and
    /// together count each exactly once.
    pub async fn concurrent_sweeps_count_each_record_once<S: ExpiredDeletion + Clone>(store: &S) {
        let active = populate(store, 40, 3).await;
        let (a, b) = (store.clone(), store.clone());
        let (first, second) = tokio::join!(
            tokio::spawn(async move { a.delete_expired().await }),
            tokio::spawn(async move { b.delete_expired().await }),
        );
        let first = first.expect("sweep task").expect("first sweep");
        let second = second.expect("sweep task").expect("second sweep");
        assert_eq!(
            first + second,
            40,
            "sweeps removed {first} + {second} of 40"
        );
        assert_eq!(store.delete_expired().await.expect("third sweep"), 0);
        for record in &active {
            assert_eq!(
                store.load(&record.id).await.expect("load"),
                Some(record.clone())
            );
        }
    }

    /// A row whose data is not the shared encoding is a decode error for
    /// that session only; it can still be deleted.
    pub async fn corrupt_row_is_a_decode_error<S: ExpiredDeletion>(store: &S, corrupt: Id) {
        let mut neighbour = record(Id::default(), soon(), "neighbour");
        store
            .create(&mut neighbour)
            .await
            .expect("create neighbour");
        let error = store.load(&corrupt).await.expect_err("corrupt row loaded");
        assert!(error.is_decode(), "expected a decode error, got {error:?}");
        assert!(error.source().is_some(), "the decode error lost its source");
        assert_eq!(
            store.load(&neighbour.id).await.expect("load neighbour"),
            Some(neighbour.clone())
        );
        assert_eq!(store.delete_expired().await.expect("sweep"), 0);
        store.delete(&corrupt).await.expect("delete corrupt");
        assert_eq!(store.load(&corrupt).await.expect("load deleted"), None);
        assert_eq!(
            store.load(&neighbour.id).await.expect("load neighbour"),
            Some(neighbour)
        );
    }

    /// Every operation of a store whose server cannot be reached is a backend
    /// error carrying the sqlx error, and nothing panics.
    pub async fn unreachable_is_a_backend_error<S: ExpiredDeletion>(store: &S) {
        let fresh = record(Id::default(), soon(), "x");
        let mut created = fresh.clone();
        let mut updated = fresh.clone();
        // At once: each waits out the pool's acquire timeout.
        let (create, save, load, delete, delete_expired) = tokio::join!(
            store.create(&mut created),
            store.save(&fresh),
            store.load(&fresh.id),
            store.delete(&fresh.id),
            store.delete_expired(),
        );
        let (update, touch, list, delete_of_user) = tokio::join!(
            store.update(&mut updated),
            store.touch(&fresh.id, soon()),
            store.sessions_of_user("alice"),
            store.delete_sessions_of_user("alice", Some(&fresh.id)),
        );
        let results = [
            ("create", create.err()),
            ("save", save.err()),
            ("load", load.err()),
            ("delete", delete.err()),
            ("delete_expired", delete_expired.err()),
            ("update", update.err()),
            ("touch", touch.err()),
            ("sessions_of_user", list.err()),
            ("delete_sessions_of_user", delete_of_user.err()),
        ];
        for (operation, error) in results {
            let error = error.unwrap_or_else(|| panic!("{operation} succeeded without a server"));
            assert_backend(operation, &error);
        }
    }

    /// `create` on a table that swallows every insert (a trigger) gives up
    /// after `MAX_CREATE_ATTEMPTS` ids with core's `NoFreeId` as the source
    /// of a backend error, and stores nothing.
    pub async fn create_gives_up_when_no_id_is_free<S: SessionStore>(store: &S) {
        use session_core::support::{NoFreeId, MAX_CREATE_ATTEMPTS};
        let mut record = record(Id::default(), soon(), "swallowed");
        let error = store.create(&mut record).await.expect_err("create");
        assert!(
            error.is_backend(),
            "expected a backend error, got {error:?}"
        );
        let source = error.source().expect("source kept");
        assert_eq!(
            source.downcast_ref::<NoFreeId>(),
            Some(&NoFreeId {
                attempts: MAX_CREATE_ATTEMPTS
            })
        );
        assert_eq!(store.load(&record.id).await.expect("load"), None);
    }

    /// `error` is a backend error whose source is a `sqlx::Error`.
    pub fn assert_backend(operation: &str, error: &session_core::Error) {
        assert!(
            error.is_backend(),
            "{operation}: expected a backend error, got {error:?}"
        );
        let source = error.source().expect("source kept");
        assert!(
            source.downcast_ref::<sqlx::Error>().is_some(),
            "{operation}: the source is not the sqlx error: {source:?}"
        );
    }

    fn of_user(user_id: &str, expiry_date: OffsetDateTime, tag: &str) -> Record {
        let mut record = record(Id::default(), expiry_date, tag);
        record.user_id = Some(user_id.to_owned());
        record
    }

    /// The user's rows leave the table with their sessions: on `delete`, on
    /// `delete_sessions_of_user` (the active ones; the expired ones are left
    /// to the sweep, which is what keeps its count exact) and on the sweep.
    pub async fn user_rows_leave_with_their_sessions<S: ExpiredDeletion + RawTable>(store: &S) {
        let mut first = of_user("alice", soon(), "first");
        store.create(&mut first).await.expect("create");
        let mut second = of_user("alice", soon(), "second");
        store.create(&mut second).await.expect("create");
        let expired = of_user("alice", soon() - Duration::hours(2), "expired");
        store.save(&expired).await.expect("save expired");
        let mut bob = of_user("bob", soon(), "bob");
        store.create(&mut bob).await.expect("create");
        assert_eq!(store.rows_of_user("alice").await, 3);

        store.delete(&first.id).await.expect("delete");
        assert_eq!(store.rows_of_user("alice").await, 2, "delete left the row");
        assert_eq!(
            store
                .delete_sessions_of_user("alice", None)
                .await
                .expect("delete_sessions_of_user"),
            1,
            "only the active session counts"
        );
        assert_eq!(
            store.rows_of_user("alice").await,
            1,
            "the expired row waits for the sweep"
        );
        assert_eq!(store.delete_expired().await.expect("sweep"), 1);
        assert_eq!(store.rows_of_user("alice").await, 0, "the sweep left a row");
        assert_eq!(store.rows_of_user("bob").await, 1);
        assert_eq!(store.load(&bob.id).await.expect("load"), Some(bob));
    }

    /// A user id is stored whole up to [`MAX_USER_ID_LEN`] bytes; a longer
    /// one, or one holding NUL, is an encode error that writes nothing (no
    /// cut version either), and looking it up finds nothing.
    pub async fn user_ids_are_bounded_never_cut<S: SessionStore + RawTable>(store: &S) {
        // 127 two-byte characters and one byte: exactly the limit, in bytes.
        let longest = format!("{}x", "é".repeat(127));
        assert_eq!(longest.len(), MAX_USER_ID_LEN);
        let mut record = of_user(&longest, soon(), "longest");
        store
            .create(&mut record)
            .await
            .expect("create at the limit");
        assert_eq!(
            store.load(&record.id).await.expect("load"),
            Some(record.clone())
        );
        assert_eq!(
            store.sessions_of_user(&longest).await.expect("list"),
            vec![record.clone()]
        );

        let too_long = format!("{longest}y");
        let assert_refused = |error: session_core::Error, operation: &str, why: InvalidUserId| {
            assert!(
                error.is_encode(),
                "{operation}: expected an encode error, got {error:?}"
            );
            let source = error.source().expect("source kept");
            assert_eq!(
                source.downcast_ref::<InvalidUserId>(),
                Some(&why),
                "{operation}: {source}"
            );
        };
        let long = InvalidUserId::TooLong {
            len: MAX_USER_ID_LEN + 1,
            max: MAX_USER_ID_LEN,
        };
        let mut created = of_user(&too_long, soon(), "too long");
        let error = store.create(&mut created).await.expect_err("create");
        assert_refused(error, "create", long);
        let saved = of_user(&too_long, soon(), "too long");
        let error = store.save(&saved).await.expect_err("save");
        assert_refused(error, "save", long);
        let mut updated = record.clone();
        updated.user_id = Some(too_long.clone());
        let error = store.update(&mut updated).await.expect_err("update");
        assert_refused(error, "update", long);
        assert_eq!(updated.version, record.version, "a refused update bumped");
        let mut nul = record.clone();
        nul.user_id = Some("ali\0ce".into());
        let error = store.update(&mut nul).await.expect_err("update with NUL");
        assert_refused(error, "update with NUL", InvalidUserId::Nul);

        for id in [created.id, saved.id] {
            assert_eq!(store.load(&id).await.expect("load"), None);
        }
        assert_eq!(
            store.load(&record.id).await.expect("load"),
            Some(record.clone()),
            "a refused update wrote"
        );
        assert_eq!(
            store.rows_of_user(&longest).await,
            1,
            "a too long user id was cut to the limit and stored"
        );
        assert!(store
            .sessions_of_user(&too_long)
            .await
            .expect("list")
            .is_empty());
        assert_eq!(
            store
                .delete_sessions_of_user(&too_long, None)
                .await
                .expect("delete_sessions_of_user"),
            0
        );
        assert!(store
            .sessions_of_user("ali\0ce")
            .await
            .expect("list")
            .is_empty());
    }

    /// A stored version below zero (written by something else) is a decode
    /// error for that session only, from every operation that reads it; it
    /// can still be touched and deleted.
    pub async fn negative_version_is_a_decode_error<S: SessionStore + RawTable>(store: &S) {
        let mut corrupt = of_user("mallory", soon(), "corrupt");
        store.create(&mut corrupt).await.expect("create");
        let mut neighbour = of_user("mallory2", soon(), "neighbour");
        store.create(&mut neighbour).await.expect("create");
        store.set_version(&corrupt.id, -1).await;

        let error = store.load(&corrupt.id).await.expect_err("load");
        assert!(error.is_decode(), "load: {error:?}");
        assert!(error.source().is_some(), "the decode error lost its source");
        let error = store.sessions_of_user("mallory").await.expect_err("list");
        assert!(error.is_decode(), "sessions_of_user: {error:?}");
        // The swap misses (the versions differ); reading why decodes the row.
        let error = store.update(&mut corrupt).await.expect_err("update");
        assert!(error.is_decode(), "update: {error:?}");
        assert_eq!(corrupt.version, 0);
        assert!(store.touch(&corrupt.id, soon()).await.expect("touch"));

        assert_eq!(
            store.sessions_of_user("mallory2").await.expect("list"),
            vec![neighbour.clone()]
        );
        store.delete(&corrupt.id).await.expect("delete");
        assert_eq!(store.load(&corrupt.id).await.expect("load"), None);
        assert_eq!(
            store.load(&neighbour.id).await.expect("load"),
            Some(neighbour)
        );
    }

    /// `old` was written by the previous release, before `version` and
    /// `user_id` existed, and its table has been migrated since: it loads at
    /// version 0 and of no user, `update` over version 0 and `touch` work on
    /// it, and the user index takes it in.
    pub async fn old_session_works_after_migrate<S: ExpiredDeletion>(store: &S, old: &Record) {
        assert_eq!((old.version, old.user_id.as_deref()), (0, None));
        let mut loaded = store
            .load(&old.id)
            .await
            .expect("load an old session")
            .expect("the old session is still there");
        assert_eq!(&loaded, old);

        // A stale copy, as another request holds it.
        let mut stale = loaded.clone();
        loaded.user_id = Some("alice".into());
        loaded.data.insert("migrated".into(), json!(true));
        assert_eq!(
            store.update(&mut loaded).await.expect("update"),
            Update::Written
        );
        assert_eq!(loaded.version, 1);
        assert_eq!(
            store.update(&mut stale).await.expect("update"),
            Update::Conflict(loaded.clone())
        );

        let later = soon() + Duration::days(1);
        assert!(store.touch(&old.id, later).await.expect("touch"));
        loaded.expiry_date = later;
        assert_eq!(
            store.load(&old.id).await.expect("load"),
            Some(loaded.clone())
        );
        assert_eq!(
            store.sessions_of_user("alice").await.expect("list"),
            vec![loaded.clone()]
        );

        let mut fresh = of_user("alice", soon(), "new");
        store.create(&mut fresh).await.expect("create");
        assert_eq!(
            store
                .delete_sessions_of_user("alice", Some(&fresh.id))
                .await
                .expect("delete_sessions_of_user"),
            1
        );
        assert_eq!(store.load(&old.id).await.expect("load"), None);
        assert_eq!(
            store.sessions_of_user("alice").await.expect("list"),
            vec![fresh]
        );
    }
}
