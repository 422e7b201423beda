//! [`PostgresStore`]: sessions in a PostgreSQL table.

use std::sync::Arc;

use session_core::{time::OffsetDateTime, Id, Record, Result};
use sqlx::PgPool;

use crate::{
    error::from_sqlx,
    schema::{pg_expiry_index_name, pg_user_index_name, Name, DEFAULT_DELETE_BATCH_SIZE},
    store::{id_from_column, record_from_row, sql_session_store, traced, Dialect, Row},
    InvalidName,
};

/// A session store on a PostgreSQL table, through a [`sqlx::PgPool`].
///
/// The table's columns: `id TEXT PRIMARY KEY` (the id's 22-character text
/// form), `data BYTEA` (the session data in the workspace's shared encoding,
/// [`session_core::codec`]), `expiry_date TIMESTAMPTZ` (indexed),
/// `version BIGINT` and `user_id TEXT`, nullable, with a partial index on the
/// rows that have one. [`migrate`](Self::migrate) creates them, or adds the
/// last two to a table of an earlier release.
///
/// Every operation is one statement, so each is atomic on its own: `update`
/// is an `UPDATE .. WHERE id = $ AND version = $ AND expiry_date > now`
/// (a read follows only when it wrote nothing, to tell `Conflict` from
/// `Gone`), `touch` an `UPDATE .. SET expiry_date = GREATEST(expiry_date, $)`
/// and `delete_sessions_of_user` one `DELETE` of the user's active rows.
///
/// Cloning is cheap: clones share the pool.
///
/// ```no_run
/// use session_sqlx::PostgresStore;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/test").await?;
/// let store = PostgresStore::new(pool)
///     .with_schema_name("auth")?
///     .with_table_name("web_sessions")?;
/// store.migrate().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
    schema_name: Option<Name>,
    table_name: Name,
    delete_batch_size: u32,
    sql: Arc<Sql>,
}

/// The statements of one table, written once when the names are set.
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
    touch_many: String,
    of_user: String,
    delete_of_user: String,
    delete_of_user_but: String,
    delete_expired: String,
}

impl Sql {
    fn new(schema_name: Option<&Name>, table_name: &Name) -> Self {
        let table = match schema_name {
            Some(schema) => format!("{}.{}", schema.double_quoted(), table_name.double_quoted()),
            None => table_name.double_quoted(),
        };
        let upsert = format!(
            "INSERT INTO {table} AS s (id, data, expiry_date, version, user_id) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data, \
             expiry_date = EXCLUDED.expiry_date, version = EXCLUDED.version, \
             user_id = EXCLUDED.user_id"
        );
        let delete_of_user = format!("DELETE FROM {table} WHERE user_id = $1 AND expiry_date > $2");
        Self {
            // Insert-if-absent in one statement; a row whose time is up is as
            // good as absent, so it is taken over rather than kept as a
            // tombstone that blocks its id until the next sweep.
            create: format!("{upsert} WHERE s.expiry_date <= $6"),
            save: upsert,
            load: format!(
                "SELECT data, expiry_date, version, user_id FROM {table} \
                 WHERE id = $1 AND expiry_date > $2"
            ),
            delete: format!("DELETE FROM {table} WHERE id = $1"),
            // The compare-and-swap: under READ COMMITTED, a writer that
            // waited on the row's lock re-checks the condition on the row
            // as the winner left it, so of two updates over one version
            // exactly one matches.
            update: format!(
                "UPDATE {table} SET data = $1, expiry_date = $2, version = $3, user_id = $4 \
                 WHERE id = $5 AND version = $6 AND expiry_date > $7"
            ),
            touch: format!(
                "UPDATE {table} SET expiry_date = GREATEST(expiry_date, $2) \
                 WHERE id = $1 AND expiry_date > $3"
            ),
            // Many touches in one statement: the latest date per id (an id
            // may come twice), joined to the active rows.
            touch_many: format!(
                "UPDATE {table} AS s SET expiry_date = GREATEST(s.expiry_date, t.expiry_date) \
                 FROM (SELECT id, max(expiry_date) AS expiry_date \
                       FROM unnest($1::text[], $2::timestamptz[]) AS u(id, expiry_date) \
                       GROUP BY id) AS t \
                 WHERE s.id = t.id AND s.expiry_date > $3 \
                 RETURNING s.id"
            ),
            // `user_id = $1` implies `user_id IS NOT NULL`, so the partial
            // index serves it.
            of_user: format!(
                "SELECT id, data, expiry_date, version, user_id FROM {table} \
                 WHERE user_id = $1 AND expiry_date > $2"
            ),
            delete_of_user_but: format!("{delete_of_user} AND id <> $3"),
            delete_of_user,
            // Rows another sweep is deleting right now are skipped, so two
            // sweepers never wait on each other or count a row twice.
            delete_expired: format!(
                "DELETE FROM {table} WHERE id IN \
                 (SELECT id FROM {table} WHERE expiry_date <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)"
            ),
            // An index lives in its table's schema, so it is named without one.
            expiry_index: format!("\"{}\"", pg_expiry_index_name(table_name)),
            user_index: format!("\"{}\"", pg_user_index_name(table_name)),
            table,
        }
    }
}

impl PostgresStore {
    /// A store on `pool`, using the table `sessions` in the connection's
    /// `search_path` (normally `public`) until told otherwise.
    pub fn new(pool: PgPool) -> Self {
        let table_name = Name::default_table();
        Self {
            pool,
            sql: Arc::new(Sql::new(None, &table_name)),
            schema_name: None,
            table_name,
            delete_batch_size: DEFAULT_DELETE_BATCH_SIZE,
        }
    }

    /// Uses a table in `schema_name`, which [`migrate`](Self::migrate)
    /// creates if it is missing.
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
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema of the table, if one was set.
    pub fn schema_name(&self) -> Option<&str> {
        self.schema_name.as_ref().map(Name::as_str)
    }

    /// The name of the table.
    pub fn table_name(&self) -> &str {
        self.table_name.as_str()
    }

    /// Brings the table to this release's layout, creating or adding only
    /// what is missing: the schema (if one was set), the table, its
    /// `version` and `user_id` columns (on a table of an earlier release:
    /// existing sessions read back at version 0 and of no user), the expiry
    /// index and the partial user index.
    ///
    /// Several processes may migrate at once: they take turns on a
    /// transaction-scoped advisory lock keyed by the schema's name, because
    /// concurrent `CREATE ... IF NOT EXISTS` of one object can fail in
    /// PostgreSQL. Objects are looked up in the catalog before they are
    /// created, so a migration with nothing to do takes no lock on the
    /// table and never waits for the sessions in use.
    ///
    /// Adding the columns is instant (PostgreSQL 11 and later). Building the
    /// user index on a large table blocks writes to it while it runs; to
    /// avoid that, create it first with `CREATE INDEX CONCURRENTLY` under
    /// the same name (`<table>_user_id_idx`), and `migrate` leaves it be.
    pub async fn migrate(&self) -> Result<()> {
        traced::<Self, _>("migrate", self.migrate_in_span()).await
    }

    async fn migrate_in_span(&self) -> Result<()> {
        // One simple-protocol query: PostgreSQL runs its statements as one
        // transaction, so the advisory lock is held until all are done.
        // Names are validated identifiers, safe inside quotes and literals.
        //
        // The lock is keyed by the schema, not the table: two stores with
        // tables in one new schema would otherwise race to create it.
        let schema_key = self.schema_name.as_ref().map_or("", Name::as_str);
        let mut sql =
            format!("SELECT pg_advisory_xact_lock(hashtext('session-sqlx migrate {schema_key}'));");
        if let Some(schema) = &self.schema_name {
            // `CREATE SCHEMA IF NOT EXISTS` needs the CREATE privilege even
            // when the schema exists; look first so a role that may only use
            // an existing schema can still migrate.
            sql.push_str(&format!(
                "DO $$ BEGIN \
                     IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = '{name}') THEN \
                         CREATE SCHEMA IF NOT EXISTS {quoted}; \
                     END IF; \
                 END $$;",
                name = schema.as_str(),
                quoted = schema.double_quoted(),
            ));
        }
        // `ALTER TABLE` and `CREATE INDEX` lock the table before they find
        // there is nothing to do, hence the catalog look-ups. The index
        // look-ups are by name among this table's indexes (the name of the
        // earlier release's expiry index included).
        let column_missing = |column: &str| {
            format!(
                "NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = '{table}'::regclass \
                 AND attname = '{column}' AND NOT attisdropped)",
                table = self.sql.table,
            )
        };
        let index_missing = |quoted: &str| {
            format!(
                "NOT EXISTS (SELECT 1 FROM pg_index JOIN pg_class ON pg_class.oid = indexrelid \
                 WHERE indrelid = '{table}'::regclass AND relname = '{name}')",
                table = self.sql.table,
                name = quoted.trim_matches('"'),
            )
        };
        sql.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (\
                 id TEXT PRIMARY KEY NOT NULL, \
                 data BYTEA NOT NULL, \
                 expiry_date TIMESTAMPTZ NOT NULL, \
                 version BIGINT NOT NULL DEFAULT 0, \
                 user_id TEXT\
             ); \
             DO $$ BEGIN \
                 IF {version_missing} THEN \
                     ALTER TABLE {table} ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 0; \
                 END IF; \
                 IF {user_missing} THEN \
                     ALTER TABLE {table} ADD COLUMN IF NOT EXISTS user_id TEXT; \
                 END IF; \
                 IF {expiry_index_missing} THEN \
                     CREATE INDEX {expiry_index} ON {table} (expiry_date); \
                 END IF; \
                 IF {user_index_missing} THEN \
                     CREATE INDEX {user_index} ON {table} (user_id) WHERE user_id IS NOT NULL; \
                 END IF; \
             END $$;",
            table = self.sql.table,
            expiry_index = self.sql.expiry_index,
            user_index = self.sql.user_index,
            version_missing = column_missing("version"),
            user_missing = column_missing("user_id"),
            expiry_index_missing = index_missing(&self.sql.expiry_index),
            user_index_missing = index_missing(&self.sql.user_index),
        ));
        sqlx::raw_sql(&sql)
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }
}

/// A row's `data, expiry_date, version, user_id`, as sqlx reads them.
type Columns = (Vec<u8>, OffsetDateTime, i64, Option<String>);
/// The same, after the row's `id`.
type IdAndColumns = (String, Vec<u8>, OffsetDateTime, i64, Option<String>);

impl Dialect for PostgresStore {
    const KIND: &'static str = "postgres";

    fn delete_batch_size(&self) -> u32 {
        self.delete_batch_size
    }

    async fn insert_if_absent(&self, row: &Row, now: OffsetDateTime) -> Result<bool> {
        let inserted = sqlx::query(&self.sql.create)
            .bind(&row.id)
            .bind(&row.data)
            .bind(row.expiry_date)
            .bind(row.version)
            .bind(row.user_id.as_deref())
            .bind(now)
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
            .bind(row.expiry_date)
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
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlx)?;
        row.map(|(data, expiry_date, version, user_id)| {
            record_from_row(*id, &data, expiry_date, version, user_id)
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
            .bind(row.expiry_date)
            .bind(row.version)
            .bind(row.user_id.as_deref())
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
        let matched = sqlx::query(&self.sql.touch)
            .bind(id.to_string())
            .bind(expiry_date)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?
            .rows_affected();
        Ok(matched == 1)
    }

    async fn extend_expiries(
        &self,
        touches: &[(Id, OffsetDateTime)],
        now: OffsetDateTime,
    ) -> Result<Vec<bool>> {
        if touches.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = touches.iter().map(|(id, _)| id.to_string()).collect();
        let dates: Vec<OffsetDateTime> = touches.iter().map(|(_, date)| *date).collect();
        let touched: Vec<(String,)> = sqlx::query_as(&self.sql.touch_many)
            .bind(&ids)
            .bind(&dates)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlx)?;
        let touched: std::collections::HashSet<String> =
            touched.into_iter().map(|(id,)| id).collect();
        Ok(ids.iter().map(|id| touched.contains(id)).collect())
    }

    async fn select_of_user(&self, user_id: &str, now: OffsetDateTime) -> Result<Vec<Record>> {
        let rows: Vec<IdAndColumns> = sqlx::query_as(&self.sql.of_user)
            .bind(user_id)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlx)?;
        rows.into_iter()
            .map(|(id, data, expiry_date, version, user_id)| {
                record_from_row(id_from_column(&id)?, &data, expiry_date, version, user_id)
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
                .bind(now)
                .bind(keep.to_string()),
            None => sqlx::query(&self.sql.delete_of_user)
                .bind(user_id)
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
            .bind(i64::from(limit))
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?
            .rows_affected();
        Ok(deleted)
    }
}

sql_session_store!(PostgresStore);
