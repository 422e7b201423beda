//! [`MySqlStore`]: sessions in a MySQL or MariaDB table.

use std::sync::Arc;

use session_core::{
    async_trait, codec, time::OffsetDateTime, ExpiredDeletion, Id, Record, Result, SessionStore,
};
use sqlx::MySqlPool;

use crate::{
    create_with_fresh_ids,
    error::{from_sqlx, is_unique_violation},
    schema::{Name, DEFAULT_DELETE_BATCH_SIZE},
    InvalidName,
};

/// A session store on a MySQL 8 or MariaDB table, through a
/// [`sqlx::MySqlPool`].
///
/// The table has three columns: `id CHAR(22)` with a binary collation (ids
/// differing only in case are different sessions), `data LONGBLOB` (the
/// session data in the workspace's shared encoding,
/// [`session_core::codec`]) and `expiry_date DATETIME(6)` in UTC, indexed.
/// [`migrate`](Self::migrate) creates them.
///
/// Cloning is cheap: clones share the pool.
///
/// ```no_run
/// use session_sqlx::MySqlStore;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = sqlx::MySqlPool::connect("mysql://root@127.0.0.1:3306/test").await?;
/// let store = MySqlStore::new(pool).with_table_name("web_sessions")?;
/// store.migrate().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct MySqlStore {
    pool: MySqlPool,
    schema_name: Option<Name>,
    table_name: Name,
    delete_batch_size: u32,
    sql: Arc<Sql>,
}

/// The statements of one table, written once when the names are set.
#[derive(Debug)]
struct Sql {
    table: String,
    insert: String,
    take_over_expired: String,
    save: String,
    load: String,
    delete: String,
    delete_expired: String,
}

impl Sql {
    fn new(schema_name: Option<&Name>, table_name: &Name) -> Self {
        let table = match schema_name {
            Some(schema) => format!("{}.{}", schema.backticked(), table_name.backticked()),
            None => table_name.backticked(),
        };
        Self {
            insert: format!("INSERT INTO {table} (id, data, expiry_date) VALUES (?, ?, ?)"),
            take_over_expired: format!(
                "UPDATE {table} SET data = ?, expiry_date = ? WHERE id = ? AND expiry_date <= ?"
            ),
            // `VALUES(col)` rather than the row alias of MySQL 8.0.19+, which
            // MariaDB does not understand.
            save: format!(
                "INSERT INTO {table} (id, data, expiry_date) VALUES (?, ?, ?) \
                 ON DUPLICATE KEY UPDATE data = VALUES(data), expiry_date = VALUES(expiry_date)"
            ),
            load: format!("SELECT data, expiry_date FROM {table} WHERE id = ? AND expiry_date > ?"),
            delete: format!("DELETE FROM {table} WHERE id = ?"),
            delete_expired: format!("DELETE FROM {table} WHERE expiry_date <= ? LIMIT ?"),
            table,
        }
    }
}

impl MySqlStore {
    /// A store on `pool`, using the table `sessions` in the connection's
    /// database until told otherwise.
    pub fn new(pool: MySqlPool) -> Self {
        let table_name = Name::default_table();
        Self {
            pool,
            sql: Arc::new(Sql::new(None, &table_name)),
            schema_name: None,
            table_name,
            delete_batch_size: DEFAULT_DELETE_BATCH_SIZE,
        }
    }

    /// Uses a table in the database (MySQL's schema) `schema_name`, which
    /// [`migrate`](Self::migrate) creates if it is missing.
    pub fn with_schema_name(
        mut self,
        schema_name: impl AsRef<str>,
    ) -> std::result::Result<Self, InvalidName> {
        self.schema_name = Some(Name::new(schema_name.as_ref())?);
        self.sql = Arc::new(Sql::new(self.schema_name.as_ref(), &self.table_name));
        Ok(self)
    }

    /// Uses the table `table_name` (default `sessions`).
    pub fn with_table_name(
        mut self,
        table_name: impl AsRef<str>,
    ) -> std::result::Result<Self, InvalidName> {
        self.table_name = Name::new(table_name.as_ref())?;
        self.sql = Arc::new(Sql::new(self.schema_name.as_ref(), &self.table_name));
        Ok(self)
    }

    /// How many expired rows one `DELETE` of
    /// [`delete_expired`](ExpiredDeletion::delete_expired) removes at most
    /// (default 5000; 0 counts as 1). A sweep repeats its `DELETE` until a
    /// batch comes back short.
    pub fn with_delete_batch_size(mut self, rows: u32) -> Self {
        self.delete_batch_size = rows.max(1);
        self
    }

    /// The pool the store uses.
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// The database (MySQL's schema) of the table, if one was set.
    pub fn schema_name(&self) -> Option<&str> {
        self.schema_name.as_ref().map(Name::as_str)
    }

    /// The name of the table.
    pub fn table_name(&self) -> &str {
        self.table_name.as_str()
    }

    /// Creates the database (if one was set), the table and its expiry index,
    /// each only if missing. Several processes may migrate at once: MySQL
    /// and MariaDB serialise `CREATE ... IF NOT EXISTS` on metadata locks.
    #[tracing::instrument(level = "debug", name = "session_sqlx.migrate", skip_all, fields(table = %self.sql.table))]
    pub async fn migrate(&self) -> Result<()> {
        if let Some(schema) = &self.schema_name {
            let sql = format!("CREATE DATABASE IF NOT EXISTS {}", schema.backticked());
            sqlx::raw_sql(&sql)
                .execute(&self.pool)
                .await
                .map_err(from_sqlx)?;
        }
        // The index is part of the table definition: MySQL has no
        // `CREATE INDEX IF NOT EXISTS`.
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} (\
                 id CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY, \
                 data LONGBLOB NOT NULL, \
                 expiry_date DATETIME(6) NOT NULL, \
                 INDEX expiry_date_idx (expiry_date)\
             )",
            self.sql.table
        );
        sqlx::raw_sql(&sql)
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }

    /// One attempt at storing `record` under its id: `Ok(false)` when the id
    /// belongs to a live session.
    async fn try_create(
        &self,
        id: String,
        data: &[u8],
        expiry_date: OffsetDateTime,
    ) -> Result<bool> {
        let inserted = sqlx::query(&self.sql.insert)
            .bind(id.as_str())
            .bind(data)
            .bind(expiry_date)
            .execute(&self.pool)
            .await;
        match inserted {
            Ok(_) => Ok(true),
            Err(error) if is_unique_violation(&error) => {
                // The id is taken; a row whose time is up is as good as
                // absent, so take it over in one statement that only matches
                // while it is still expired. The connection reports found
                // rows, so an identical rewrite still counts as 1.
                let taken_over = sqlx::query(&self.sql.take_over_expired)
                    .bind(data)
                    .bind(expiry_date)
                    .bind(id)
                    .bind(OffsetDateTime::now_utc())
                    .execute(&self.pool)
                    .await
                    .map_err(from_sqlx)?
                    .rows_affected();
                Ok(taken_over == 1)
            }
            Err(error) => Err(from_sqlx(error)),
        }
    }
}

#[async_trait]
impl SessionStore for MySqlStore {
    #[tracing::instrument(level = "debug", name = "session_sqlx.create", skip_all, fields(table = %self.sql.table))]
    async fn create(&self, record: &mut Record) -> Result<()> {
        let data = codec::encode_data(&record.data)?;
        let expiry_date = record.expiry_date;
        create_with_fresh_ids(record, |id| self.try_create(id, &data, expiry_date)).await
    }

    #[tracing::instrument(level = "debug", name = "session_sqlx.save", skip_all, fields(table = %self.sql.table))]
    async fn save(&self, record: &Record) -> Result<()> {
        let data = codec::encode_data(&record.data)?;
        sqlx::query(&self.sql.save)
            .bind(record.id.to_string())
            .bind(data)
            .bind(record.expiry_date)
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", name = "session_sqlx.load", skip_all, fields(table = %self.sql.table))]
    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        let row: Option<(Vec<u8>, OffsetDateTime)> = sqlx::query_as(&self.sql.load)
            .bind(session_id.to_string())
            .bind(OffsetDateTime::now_utc())
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlx)?;
        row.map(|(data, expiry_date)| {
            Ok(Record {
                id: *session_id,
                data: codec::decode_data(&data)?,
                expiry_date,
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
impl ExpiredDeletion for MySqlStore {
    #[tracing::instrument(level = "debug", name = "session_sqlx.delete_expired", skip_all, fields(table = %self.sql.table))]
    async fn delete_expired(&self) -> Result<u64> {
        // One instant for the whole sweep: it removes what had expired when
        // it started, however many batches that takes.
        let now = OffsetDateTime::now_utc();
        let batch = u64::from(self.delete_batch_size);
        let mut removed = 0;
        loop {
            let deleted = sqlx::query(&self.sql.delete_expired)
                .bind(now)
                .bind(self.delete_batch_size)
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
