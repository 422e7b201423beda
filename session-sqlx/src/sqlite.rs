//! [`SqliteStore`]: sessions in a SQLite table.

use std::sync::Arc;

use session_core::{time::OffsetDateTime, Id, Record, Result};
use sqlx::{Executor as _, Row as _, SqlitePool};
// Expiry dates are kept as whole microseconds since the epoch, UTC, so
// SQLite compares integers, never text dates whose UTC offsets could differ.
use session_core::codec::{from_unix_micros as from_micros, unix_micros as to_micros};

use crate::{
    error::from_sqlx,
    schema::{Name, DEFAULT_DELETE_BATCH_SIZE},
    store::{id_from_column, record_from_row, sql_session_store, traced, Dialect, Row},
    InvalidName,
};

/// A session store on a SQLite table, through a [`sqlx::SqlitePool`].
///
/// The table's columns: `id TEXT PRIMARY KEY`, `data BLOB` (the session data
/// in the workspace's shared encoding, [`session_core::codec`]),
/// `expiry_date INTEGER` (indexed), `version INTEGER` and `user_id TEXT`,
/// nullable, with a partial index on the rows that have one. SQLite has no
/// date type, and text dates compare wrongly across UTC offsets, so the
/// expiry is kept as microseconds since the Unix epoch, UTC. Text compares
/// byte for byte (SQLite's `BINARY` collation). [`migrate`](Self::migrate)
/// creates the table, or adds the last two columns to one of an earlier
/// release.
///
/// Every operation is one statement, and SQLite runs each under the
/// database's write lock: `update` is an
/// `UPDATE .. WHERE id = ? AND version = ? AND expiry_date > now` (a read
/// follows only when it wrote nothing, to tell `Conflict` from `Gone`),
/// `touch` an `UPDATE .. SET expiry_date = MAX(expiry_date, ?)` and
/// `delete_sessions_of_user` one `DELETE` of the user's active rows.
///
/// Open the pool in WAL mode (`SqliteConnectOptions::journal_mode`) so loads
/// do not wait for writes. Cloning the store is cheap: clones share the pool.
///
/// ```
/// use session_core::{time::{Duration, OffsetDateTime}, Record, SessionStore, Update};
/// use session_sqlx::SqliteStore;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// // One connection: each connection to `:memory:` is a database of its own.
/// let pool = sqlx::sqlite::SqlitePoolOptions::new()
///     .max_connections(1)
///     .connect("sqlite::memory:")
///     .await?;
/// let store = SqliteStore::new(pool);
/// store.migrate().await?;
///
/// let mut record = Record::new(OffsetDateTime::now_utc() + Duration::hours(1));
/// record.data.insert("cart".into(), "CRAB-PLUSH-01".into());
/// store.create(&mut record).await?;
///
/// // Two requests loaded version 0; the first to write wins.
/// let mut other = record.clone();
/// record.user_id = Some("ferris".into());
/// assert_eq!(store.update(&mut record).await?, Update::Written);
/// assert_eq!(record.version, 1);
/// other.data.insert("coupon".into(), "SAVE10".into());
/// match store.update(&mut other).await? {
///     // Merge onto what is stored now, and try again.
///     Update::Conflict(current) => assert_eq!(current.version, 1),
///     outcome => panic!("expected a conflict, got {outcome:?}"),
/// }
///
/// // The user index: every session of a user, and "log out everywhere".
/// let sessions = store.sessions_of_user("ferris").await?;
/// assert_eq!(sessions.iter().map(|s| s.id).collect::<Vec<_>>(), [record.id]);
/// assert_eq!(store.delete_sessions_of_user("ferris", None).await?, 1);
/// assert_eq!(store.load(&record.id).await?, None);
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    table_name: Name,
    delete_batch_size: u32,
    sql: Arc<Sql>,
}

/// The statements of one table, written once when the name is set.
#[derive(Debug)]
struct Sql {
    table: String,
    expiry_index: String,
    user_index: String,
    create: String,
    save: String,
    load: String,
    delete: String,
    update: String,
    touch: String,
    of_user: String,
    delete_of_user: String,
    delete_of_user_but: String,
    delete_expired: String,
}

impl Sql {
    fn new(table_name: &Name) -> Self {
        let table = table_name.double_quoted();
        let upsert = format!(
            "INSERT INTO {table} (id, data, expiry_date, version, user_id) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (id) DO UPDATE SET data = excluded.data, \
             expiry_date = excluded.expiry_date, version = excluded.version, \
             user_id = excluded.user_id"
        );
        let delete_of_user = format!("DELETE FROM {table} WHERE user_id = ?1 AND expiry_date > ?2");
        Self {
            // Insert-if-absent in one statement; a row whose time is up is as
            // good as absent, so it is taken over.
            create: format!("{upsert} WHERE {table}.expiry_date <= ?6"),
            save: upsert,
            load: format!(
                "SELECT data, expiry_date, version, user_id FROM {table} \
                 WHERE id = ?1 AND expiry_date > ?2"
            ),
            delete: format!("DELETE FROM {table} WHERE id = ?1"),
            update: format!(
                "UPDATE {table} SET data = ?1, expiry_date = ?2, version = ?3, user_id = ?4 \
                 WHERE id = ?5 AND version = ?6 AND expiry_date > ?7"
            ),
            // SQLite counts matched rows, changed or not.
            touch: format!(
                "UPDATE {table} SET expiry_date = MAX(expiry_date, ?2) \
                 WHERE id = ?1 AND expiry_date > ?3"
            ),
            // `user_id = ?1` implies `user_id IS NOT NULL`, so the partial
            // index serves it.
            of_user: format!(
                "SELECT id, data, expiry_date, version, user_id FROM {table} \
                 WHERE user_id = ?1 AND expiry_date > ?2"
            ),
            delete_of_user_but: format!("{delete_of_user} AND id <> ?3"),
            delete_of_user,
            // `DELETE .. LIMIT` needs a compile-time option the bundled
            // SQLite lacks; a rowid subquery bounds the batch instead.
            delete_expired: format!(
                "DELETE FROM {table} WHERE rowid IN \
                 (SELECT rowid FROM {table} WHERE expiry_date <= ?1 LIMIT ?2)"
            ),
            expiry_index: format!("\"{}_expiry_date_idx\"", table_name.as_str()),
            user_index: format!("\"{}_user_id_idx\"", table_name.as_str()),
            table,
        }
    }
}

impl SqliteStore {
    /// A store on `pool`, using the table `sessions` until told otherwise.
    pub fn new(pool: SqlitePool) -> Self {
        let table_name = Name::default_table();
        Self {
            pool,
            sql: Arc::new(Sql::new(&table_name)),
            table_name,
            delete_batch_size: DEFAULT_DELETE_BATCH_SIZE,
        }
    }

    /// Uses the table `table_name` (default `sessions`).
    pub fn with_table_name(
        mut self,
        table_name: impl AsRef<str>,
    ) -> std::result::Result<Self, InvalidName> {
        self.table_name = Name::new(table_name.as_ref())?;
        self.sql = Arc::new(Sql::new(&self.table_name));
        Ok(self)
    }

    /// How many expired rows one `DELETE` of
    /// [`delete_expired`](session_core::ExpiredDeletion::delete_expired)
    /// removes at most (default 5000; 0 counts as 1). A sweep repeats its
    /// `DELETE` until a batch comes back short, so writers get the database
    /// between batches.
    pub fn with_delete_batch_size(mut self, rows: u32) -> Self {
        self.delete_batch_size = rows.max(1);
        self
    }

    /// The pool the store uses.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The name of the table.
    pub fn table_name(&self) -> &str {
        self.table_name.as_str()
    }

    /// Brings the table to this release's layout, creating or adding only
    /// what is missing: the table, its `version` and `user_id` columns (on a
    /// table of an earlier release: existing sessions read back at version 0
    /// and of no user), the expiry index and the partial user index.
    ///
    /// Several processes may migrate at once: the migration is one
    /// `BEGIN IMMEDIATE` transaction, which holds the database's write lock
    /// from the start, so the columns a migrator finds missing are still
    /// missing when it adds them (SQLite has no `ADD COLUMN IF NOT EXISTS`).
    /// The others wait for the lock (the connection's `busy_timeout`) and
    /// find nothing to do.
    pub async fn migrate(&self) -> Result<()> {
        traced::<Self, _>("migrate", self.migrate_in_span()).await
    }

    async fn migrate_in_span(&self) -> Result<()> {
        let table = &self.sql.table;
        let mut transaction = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(from_sqlx)?;
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {table} (\
                 id TEXT PRIMARY KEY NOT NULL, \
                 data BLOB NOT NULL, \
                 expiry_date INTEGER NOT NULL, \
                 version INTEGER NOT NULL DEFAULT 0, \
                 user_id TEXT\
             )"
        );
        // `Executor`'s own methods rather than `query(..).execute(&mut *tx)`:
        // their boxed futures keep this future `Send` (rustc cannot prove
        // it through the generic executor of the latter).
        let connection = &mut *transaction;
        connection
            .execute(sqlx::raw_sql(&create))
            .await
            .map_err(from_sqlx)?;
        // A table of an earlier release lacks what this one added.
        let columns = connection
            .fetch_all(
                sqlx::query("SELECT name FROM pragma_table_info(?1)")
                    .bind(self.table_name.as_str()),
            )
            .await
            .map_err(from_sqlx)?
            .iter()
            .map(|row| row.try_get::<String, _>(0))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(from_sqlx)?;
        let mut sql = String::new();
        if !columns.iter().any(|column| column == "version") {
            sql.push_str(&format!(
                "ALTER TABLE {table} ADD COLUMN version INTEGER NOT NULL DEFAULT 0;"
            ));
        }
        if !columns.iter().any(|column| column == "user_id") {
            sql.push_str(&format!("ALTER TABLE {table} ADD COLUMN user_id TEXT;"));
        }
        sql.push_str(&format!(
            "CREATE INDEX IF NOT EXISTS {expiry_index} ON {table} (expiry_date); \
             CREATE INDEX IF NOT EXISTS {user_index} ON {table} (user_id) \
                 WHERE user_id IS NOT NULL;",
            expiry_index = self.sql.expiry_index,
            user_index = self.sql.user_index,
        ));
        connection
            .execute(sqlx::raw_sql(&sql))
            .await
            .map_err(from_sqlx)?;
        transaction.commit().await.map_err(from_sqlx)
    }
}

/// A row's `data, expiry_date, version, user_id`, as sqlx reads them.
type Columns = (Vec<u8>, i64, i64, Option<String>);
/// The same, after the row's `id`.
type IdAndColumns = (String, Vec<u8>, i64, i64, Option<String>);

impl Dialect for SqliteStore {
    const KIND: &'static str = "sqlite";

    fn delete_batch_size(&self) -> u32 {
        self.delete_batch_size
    }

    async fn insert_if_absent(&self, row: &Row, now: OffsetDateTime) -> Result<bool> {
        let inserted = sqlx::query(&self.sql.create)
            .bind(&row.id)
            .bind(&row.data)
            .bind(to_micros(row.expiry_date))
            .bind(row.version)
            .bind(row.user_id.as_deref())
            .bind(to_micros(now))
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?
            .rows_affected();
        Ok(inserted == 1)
    }

    async fn upsert(&self, row: &Row) -> Result<()> {
        sqlx::query(&self.sql.save)
            .bind(&row.id)
            .bind(&row.data)
            .bind(to_micros(row.expiry_date))
            .bind(row.version)
            .bind(row.user_id.as_deref())
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }

    async fn select_active(&self, id: &Id, now: OffsetDateTime) -> Result<Option<Record>> {
        let row: Option<Columns> = sqlx::query_as(&self.sql.load)
            .bind(id.to_string())
            .bind(to_micros(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlx)?;
        row.map(|(data, expiry_date, version, user_id)| {
            record_from_row(*id, &data, from_micros(expiry_date)?, version, user_id)
        })
        .transpose()
    }

    async fn delete_by_id(&self, id: &Id) -> Result<()> {
        sqlx::query(&self.sql.delete)
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }

    async fn swap_version(&self, row: &Row, expected: i64, now: OffsetDateTime) -> Result<bool> {
        let written = sqlx::query(&self.sql.update)
            .bind(&row.data)
            .bind(to_micros(row.expiry_date))
            .bind(row.version)
            .bind(row.user_id.as_deref())
            .bind(&row.id)
            .bind(expected)
            .bind(to_micros(now))
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?
            .rows_affected();
        Ok(written == 1)
    }

    async fn extend_expiry(
        &self,
        id: &Id,
        expiry_date: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let matched = sqlx::query(&self.sql.touch)
            .bind(id.to_string())
            .bind(to_micros(expiry_date))
            .bind(to_micros(now))
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?
            .rows_affected();
        Ok(matched == 1)
    }

    async fn select_of_user(&self, user_id: &str, now: OffsetDateTime) -> Result<Vec<Record>> {
        let rows: Vec<IdAndColumns> = sqlx::query_as(&self.sql.of_user)
            .bind(user_id)
            .bind(to_micros(now))
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlx)?;
        rows.into_iter()
            .map(|(id, data, expiry_date, version, user_id)| {
                record_from_row(
                    id_from_column(&id)?,
                    &data,
                    from_micros(expiry_date)?,
                    version,
                    user_id,
                )
            })
            .collect()
    }

    async fn delete_of_user(
        &self,
        user_id: &str,
        keep: Option<&Id>,
        now: OffsetDateTime,
    ) -> Result<u64> {
        let query = match keep {
            Some(keep) => sqlx::query(&self.sql.delete_of_user_but)
                .bind(user_id)
                .bind(to_micros(now))
                .bind(keep.to_string()),
            None => sqlx::query(&self.sql.delete_of_user)
                .bind(user_id)
                .bind(to_micros(now)),
        };
        let deleted = query
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?
            .rows_affected();
        Ok(deleted)
    }

    async fn delete_expired_batch(&self, now: OffsetDateTime, limit: u32) -> Result<u64> {
        let deleted = sqlx::query(&self.sql.delete_expired)
            .bind(to_micros(now))
            .bind(i64::from(limit))
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?
            .rows_affected();
        Ok(deleted)
    }
}

sql_session_store!(SqliteStore);
