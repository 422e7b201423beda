//! [`SqliteStore`]: sessions in a SQLite table.

use std::sync::Arc;

use session_core::{
    async_trait, codec, time::OffsetDateTime, ExpiredDeletion, Id, Record, Result, SessionStore,
};
use sqlx::SqlitePool;
// Expiry dates are kept as whole microseconds since the epoch, UTC, so
// SQLite compares integers, never text dates whose UTC offsets could differ.
use session_core::codec::{from_unix_micros as from_micros, unix_micros as to_micros};

use crate::{
    create_with_fresh_ids,
    error::from_sqlx,
    schema::{Name, DEFAULT_DELETE_BATCH_SIZE},
    InvalidName,
};

/// A session store on a SQLite table, through a [`sqlx::SqlitePool`].
///
/// The table has three columns: `id TEXT PRIMARY KEY`, `data BLOB` (the
/// session data in the workspace's shared encoding, [`session_core::codec`])
/// and `expiry_date INTEGER`, indexed. SQLite has no date type, and text
/// dates compare wrongly across UTC offsets, so the expiry is kept as
/// microseconds since the Unix epoch, UTC. [`migrate`](Self::migrate)
/// creates the table.
///
/// Open the pool in WAL mode (`SqliteConnectOptions::journal_mode`) so loads
/// do not wait for writes. Cloning the store is cheap: clones share the pool.
///
/// ```
/// use session_core::{time::{Duration, OffsetDateTime}, Record, SessionStore};
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
/// record.data.insert("user".into(), "ferris".into());
/// store.create(&mut record).await?;
/// assert_eq!(store.load(&record.id).await?.map(|r| r.data), Some(record.data));
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
    index: String,
    create: String,
    save: String,
    load: String,
    delete: String,
    delete_expired: String,
}

impl Sql {
    fn new(table_name: &Name) -> Self {
        let table = table_name.double_quoted();
        let index = format!("\"{}_expiry_date_idx\"", table_name.as_str());
        let upsert = format!(
            "INSERT INTO {table} (id, data, expiry_date) VALUES (?1, ?2, ?3) \
             ON CONFLICT (id) DO UPDATE SET data = excluded.data, expiry_date = excluded.expiry_date"
        );
        Self {
            // Insert-if-absent in one statement; a row whose time is up is as
            // good as absent, so it is taken over.
            create: format!("{upsert} WHERE {table}.expiry_date <= ?4"),
            save: upsert,
            load: format!(
                "SELECT data, expiry_date FROM {table} WHERE id = ?1 AND expiry_date > ?2"
            ),
            delete: format!("DELETE FROM {table} WHERE id = ?1"),
            // `DELETE .. LIMIT` needs a compile-time option the bundled
            // SQLite lacks; a rowid subquery bounds the batch instead.
            delete_expired: format!(
                "DELETE FROM {table} WHERE rowid IN \
                 (SELECT rowid FROM {table} WHERE expiry_date <= ?1 LIMIT ?2)"
            ),
            table,
            index,
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
    /// [`delete_expired`](ExpiredDeletion::delete_expired) removes at most
    /// (default 5000; 0 counts as 1). A sweep repeats its `DELETE` until a
    /// batch comes back short, so writers get the database between batches.
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

    /// Creates the table and its expiry index, each only if missing. Several
    /// processes may migrate at once: SQLite takes the database's write lock
    /// for each statement, and `IF NOT EXISTS` is checked under it.
    #[tracing::instrument(level = "debug", name = "session_sqlx.migrate", skip_all, fields(table = %self.sql.table))]
    pub async fn migrate(&self) -> Result<()> {
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {table} (\
                 id TEXT PRIMARY KEY NOT NULL, \
                 data BLOB NOT NULL, \
                 expiry_date INTEGER NOT NULL\
             ); \
             CREATE INDEX IF NOT EXISTS {index} ON {table} (expiry_date);",
            table = self.sql.table,
            index = self.sql.index,
        );
        sqlx::raw_sql(&sql)
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    #[tracing::instrument(level = "debug", name = "session_sqlx.create", skip_all, fields(table = %self.sql.table))]
    async fn create(&self, record: &mut Record) -> Result<()> {
        let data = codec::encode_data(&record.data)?;
        let expiry_date = to_micros(record.expiry_date);
        create_with_fresh_ids(record, |id| async {
            let inserted = sqlx::query(&self.sql.create)
                .bind(id)
                .bind(data.as_slice())
                .bind(expiry_date)
                .bind(to_micros(OffsetDateTime::now_utc()))
                .execute(&self.pool)
                .await
                .map_err(from_sqlx)?
                .rows_affected();
            Ok(inserted == 1)
        })
        .await
    }

    #[tracing::instrument(level = "debug", name = "session_sqlx.save", skip_all, fields(table = %self.sql.table))]
    async fn save(&self, record: &Record) -> Result<()> {
        let data = codec::encode_data(&record.data)?;
        sqlx::query(&self.sql.save)
            .bind(record.id.to_string())
            .bind(data)
            .bind(to_micros(record.expiry_date))
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", name = "session_sqlx.load", skip_all, fields(table = %self.sql.table))]
    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        let row: Option<(Vec<u8>, i64)> = sqlx::query_as(&self.sql.load)
            .bind(session_id.to_string())
            .bind(to_micros(OffsetDateTime::now_utc()))
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlx)?;
        row.map(|(data, expiry_date)| {
            Ok(Record {
                id: *session_id,
                data: codec::decode_data(&data)?,
                expiry_date: from_micros(expiry_date)?,
            })
        })
        .transpose()
    }

    #[tracing::instrument(level = "debug", name = "session_sqlx.delete", skip_all, fields(table = %self.sql.table))]
    async fn delete(&self, session_id: &Id) -> Result<()> {
        sqlx::query(&self.sql.delete)
            .bind(session_id.to_string())
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for SqliteStore {
    #[tracing::instrument(level = "debug", name = "session_sqlx.delete_expired", skip_all, fields(table = %self.sql.table))]
    async fn delete_expired(&self) -> Result<u64> {
        // One instant for the whole sweep: it removes what had expired when
        // it started, however many batches that takes.
        let now = to_micros(OffsetDateTime::now_utc());
        let batch = u64::from(self.delete_batch_size);
        let mut removed = 0;
        loop {
            let deleted = sqlx::query(&self.sql.delete_expired)
                .bind(now)
                .bind(i64::from(self.delete_batch_size))
                .execute(&self.pool)
                .await
                .map_err(from_sqlx)?
                .rows_affected();
            removed += deleted;
            if deleted < batch {
                break;
            }
        }
        tracing::debug!(removed, "swept expired sessions");
        Ok(removed)
    }
}
