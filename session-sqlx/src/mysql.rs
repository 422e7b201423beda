//! [`MySqlStore`]: sessions in a MySQL or MariaDB table.

use std::sync::Arc;

use session_core::{time::OffsetDateTime, Error, Id, Record, Result};
use sqlx::MySqlPool;

use crate::{
    error::{from_sqlx, is_unique_violation, mysql_error_number},
    schema::{Name, DEFAULT_DELETE_BATCH_SIZE},
    store::{id_from_column, record_from_row, sql_session_store, traced, Dialect, Row},
    InvalidName, MAX_USER_ID_LEN,
};

/// `ER_DUP_FIELDNAME`: `ADD COLUMN` of a column that exists.
const DUPLICATE_COLUMN: u16 = 1060;
/// `ER_DUP_KEYNAME`: `ADD INDEX` of an index name that exists.
const DUPLICATE_INDEX: u16 = 1061;

/// A session store on a MySQL 8 or MariaDB table, through a
/// [`sqlx::MySqlPool`].
///
/// The table's columns: `id CHAR(22)` with a binary collation (ids
/// differing only in case are different sessions), `data LONGBLOB` (the
/// session data in the workspace's shared encoding,
/// [`session_core::codec`]), `expiry_date DATETIME(6)` in UTC (indexed),
/// `version BIGINT` and `user_id VARBINARY(255)`, nullable and indexed.
/// The user id is kept as bytes so that it compares byte for byte: no
/// collation folds case, and no `PAD SPACE` makes `'alice '` equal `'alice'`.
/// An index needs a bounded column, hence [`MAX_USER_ID_LEN`].
/// [`migrate`](Self::migrate) creates them, or adds the last two to a table
/// of an earlier release.
///
/// Every operation is one statement, so each is atomic on its own: `update`
/// is an `UPDATE .. WHERE id = ? AND version = ? AND expiry_date > now` (a
/// read follows only when it wrote nothing, to tell `Conflict` from `Gone`),
/// `touch` an `UPDATE .. SET expiry_date = GREATEST(expiry_date, ?)` whose
/// count is of matched rows (sqlx connects with `CLIENT_FOUND_ROWS`), and
/// `delete_sessions_of_user` one `DELETE` of the user's active rows. Only
/// `create` may take two: an `INSERT`, and when its id is taken (by the
/// duplicate-key error code) an `UPDATE` that takes the row over only while
/// it is expired.
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
    update: String,
    touch: String,
    of_user: String,
    delete_of_user: String,
    delete_of_user_but: String,
    delete_expired: String,
}

impl Sql {
    fn new(schema_name: Option<&Name>, table_name: &Name) -> Self {
        let table = match schema_name {
            Some(schema) => format!("{}.{}", schema.backticked(), table_name.backticked()),
            None => table_name.backticked(),
        };
        let delete_of_user = format!("DELETE FROM {table} WHERE user_id = ? AND expiry_date > ?");
        // A statement on one id goes through the primary key, never a range of
        // the expiry index: on a small table the optimizer may prefer
        // `expiry_date > ?`, and that plan locks other sessions' index entries
        // before the row, the reverse of a `DELETE`'s order, so the two
        // deadlock. (MySQL and MariaDB take index hints on `SELECT` and
        // single-table `UPDATE`, not on single-table `DELETE`, which already
        // uses the key.)
        let by_id = "FORCE INDEX (PRIMARY)";
        Self {
            insert: format!(
                "INSERT INTO {table} (id, data, expiry_date, version, user_id) \
                 VALUES (?, ?, ?, ?, ?)"
            ),
            take_over_expired: format!(
                "UPDATE {table} {by_id} SET data = ?, expiry_date = ?, version = ?, user_id = ? \
                 WHERE id = ? AND expiry_date <= ?"
            ),
            // `VALUES(col)` rather than the row alias of MySQL 8.0.19+, which
            // MariaDB does not understand.
            save: format!(
                "INSERT INTO {table} (id, data, expiry_date, version, user_id) \
                 VALUES (?, ?, ?, ?, ?) \
                 ON DUPLICATE KEY UPDATE data = VALUES(data), expiry_date = VALUES(expiry_date), \
                 version = VALUES(version), user_id = VALUES(user_id)"
            ),
            load: format!(
                "SELECT data, expiry_date, version, user_id FROM {table} {by_id} \
                 WHERE id = ? AND expiry_date > ?"
            ),
            delete: format!("DELETE FROM {table} WHERE id = ?"),
            // The compare-and-swap: InnoDB evaluates an `UPDATE`'s condition
            // on the latest committed row under its lock, so of two updates
            // over one version exactly one matches.
            update: format!(
                "UPDATE {table} {by_id} SET data = ?, expiry_date = ?, version = ?, user_id = ? \
                 WHERE id = ? AND version = ? AND expiry_date > ?"
            ),
            touch: format!(
                "UPDATE {table} {by_id} SET expiry_date = GREATEST(expiry_date, ?) \
                 WHERE id = ? AND expiry_date > ?"
            ),
            of_user: format!(
                "SELECT id, data, expiry_date, version, user_id FROM {table} \
                 WHERE user_id = ? AND expiry_date > ?"
            ),
            delete_of_user_but: format!("{delete_of_user} AND id <> ?"),
            delete_of_user,
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
    /// [`delete_expired`](session_core::ExpiredDeletion::delete_expired)
    /// removes at most (default 5000; 0 counts as 1). A sweep repeats its
    /// `DELETE` until a batch comes back short.
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

    /// Brings the table to this release's layout, creating or adding only
    /// what is missing: the database (if one was set), the table with its
    /// indexes, and on a table of an earlier release the `version` and
    /// `user_id` columns and the user index (existing sessions read back at
    /// version 0 and of no user).
    ///
    /// Several processes may migrate at once. MySQL and MariaDB serialise
    /// `CREATE ... IF NOT EXISTS` on metadata locks; the columns and the
    /// index are added only when `information_schema` lacks them (MySQL 8
    /// has no `ADD COLUMN IF NOT EXISTS`), and a migrator that loses the
    /// race to add one gets the server's "duplicate column" or "duplicate
    /// key name" error code, which means done. A migration with nothing to
    /// do alters nothing.
    ///
    /// The columns are added in place (instantly on MySQL 8.0.12+ and
    /// MariaDB 10.3+); the user index is built online, without blocking
    /// writes.
    pub async fn migrate(&self) -> Result<()> {
        traced::<Self, _>("migrate", self.migrate_in_span()).await
    }

    async fn migrate_in_span(&self) -> Result<()> {
        if let Some(schema) = &self.schema_name {
            let sql = format!("CREATE DATABASE IF NOT EXISTS {}", schema.backticked());
            self.execute_ddl(&sql, None).await?;
        }
        let table = &self.sql.table;
        let user_id_column = format!("user_id VARBINARY({MAX_USER_ID_LEN}) NULL");
        // MySQL has no `CREATE INDEX IF NOT EXISTS`: a new table gets its
        // indexes in its definition.
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {table} (\
                 id CHAR(22) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY, \
                 data LONGBLOB NOT NULL, \
                 expiry_date DATETIME(6) NOT NULL, \
                 version BIGINT NOT NULL DEFAULT 0, \
                 {user_id_column}, \
                 INDEX expiry_date_idx (expiry_date), \
                 INDEX user_id_idx (user_id)\
             )"
        );
        self.execute_ddl(&sql, None).await?;

        // A table of an earlier release lacks what this one added.
        let schema = self.schema_name.as_ref().map(Name::as_str);
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(column_name AS CHAR) FROM information_schema.columns \
             WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ?",
        )
        .bind(schema)
        .bind(self.table_name.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        if !columns.iter().any(|column| column == "version") {
            let sql = format!("ALTER TABLE {table} ADD COLUMN version BIGINT NOT NULL DEFAULT 0");
            self.execute_ddl(&sql, Some(DUPLICATE_COLUMN)).await?;
        }
        if !columns.iter().any(|column| column == "user_id") {
            let sql = format!("ALTER TABLE {table} ADD COLUMN {user_id_column}");
            self.execute_ddl(&sql, Some(DUPLICATE_COLUMN)).await?;
        }
        let user_indexed: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.statistics \
             WHERE table_schema = COALESCE(?, DATABASE()) AND table_name = ? \
             AND index_name = 'user_id_idx'",
        )
        .bind(schema)
        .bind(self.table_name.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(from_sqlx)?;
        if user_indexed == 0 {
            let sql = format!("ALTER TABLE {table} ADD INDEX user_id_idx (user_id)");
            self.execute_ddl(&sql, Some(DUPLICATE_INDEX)).await?;
        }
        Ok(())
    }

    /// Runs one DDL statement; the error with number `done` means another
    /// migrator did the same first.
    async fn execute_ddl(&self, sql: &str, done: Option<u16>) -> Result<()> {
        match sqlx::raw_sql(sql).execute(&self.pool).await {
            Ok(_) => Ok(()),
            Err(error) if done.is_some() && mysql_error_number(&error) == done => {
                tracing::debug!("another process migrated the session table first");
                Ok(())
            }
            Err(error) => Err(from_sqlx(error)),
        }
    }
}

/// A user id read from its `VARBINARY` column; bytes that are not UTF-8
/// (written by something else) are an [`Error::Decode`].
fn user_id_from_column(bytes: Option<Vec<u8>>) -> Result<Option<String>> {
    bytes
        .map(|bytes| String::from_utf8(bytes).map_err(Error::decode))
        .transpose()
}

/// A row's `data, expiry_date, version, user_id`, as sqlx reads them.
type Columns = (Vec<u8>, OffsetDateTime, i64, Option<Vec<u8>>);
/// The same, after the row's `id` (bytes: sqlx reads no text from a column
/// with a binary collation).
type IdAndColumns = (Vec<u8>, Vec<u8>, OffsetDateTime, i64, Option<Vec<u8>>);

impl Dialect for MySqlStore {
    const KIND: &'static str = "mysql";

    fn delete_batch_size(&self) -> u32 {
        self.delete_batch_size
    }

    async fn insert_if_absent(&self, row: &Row, now: OffsetDateTime) -> Result<bool> {
        let user_id = row.user_id.as_deref().map(str::as_bytes);
        let inserted = sqlx::query(&self.sql.insert)
            .bind(&row.id)
            .bind(&row.data)
            .bind(row.expiry_date)
            .bind(row.version)
            .bind(user_id)
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
                    .bind(&row.data)
                    .bind(row.expiry_date)
                    .bind(row.version)
                    .bind(user_id)
                    .bind(&row.id)
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(from_sqlx)?
                    .rows_affected();
                Ok(taken_over == 1)
            }
            Err(error) => Err(from_sqlx(error)),
        }
    }

    async fn upsert(&self, row: &Row) -> Result<()> {
        sqlx::query(&self.sql.save)
            .bind(&row.id)
            .bind(&row.data)
            .bind(row.expiry_date)
            .bind(row.version)
            .bind(row.user_id.as_deref().map(str::as_bytes))
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }

    async fn select_active(&self, id: &Id, now: OffsetDateTime) -> Result<Option<Record>> {
        let row: Option<Columns> = sqlx::query_as(&self.sql.load)
            .bind(id.to_string())
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlx)?;
        row.map(|(data, expiry_date, version, user_id)| {
            record_from_row(
                *id,
                &data,
                expiry_date,
                version,
                user_id_from_column(user_id)?,
            )
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
        // The version always changes, so "changed" and "matched" rows agree.
        let written = sqlx::query(&self.sql.update)
            .bind(&row.data)
            .bind(row.expiry_date)
            .bind(row.version)
            .bind(row.user_id.as_deref().map(str::as_bytes))
            .bind(&row.id)
            .bind(expected)
            .bind(now)
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
        // A later stored expiry leaves the row unchanged; the count is still
        // 1, because sqlx connects with `CLIENT_FOUND_ROWS` (matched rows,
        // not changed ones).
        let matched = sqlx::query(&self.sql.touch)
            .bind(expiry_date)
            .bind(id.to_string())
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?
            .rows_affected();
        Ok(matched == 1)
    }

    async fn select_of_user(&self, user_id: &str, now: OffsetDateTime) -> Result<Vec<Record>> {
        let rows: Vec<IdAndColumns> = sqlx::query_as(&self.sql.of_user)
            .bind(user_id.as_bytes())
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlx)?;
        rows.into_iter()
            .map(|(id, data, expiry_date, version, user_id)| {
                let id = std::str::from_utf8(&id).map_err(Error::decode)?;
                record_from_row(
                    id_from_column(id)?,
                    &data,
                    expiry_date,
                    version,
                    user_id_from_column(user_id)?,
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
                .bind(user_id.as_bytes())
                .bind(now)
                .bind(keep.to_string()),
            None => sqlx::query(&self.sql.delete_of_user)
                .bind(user_id.as_bytes())
                .bind(now),
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
            .bind(now)
            .bind(limit)
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?
            .rows_affected();
        Ok(deleted)
    }
}

sql_session_store!(MySqlStore);
