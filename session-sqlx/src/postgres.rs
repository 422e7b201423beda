//! [`PostgresStore`]: sessions in a PostgreSQL table.

use std::sync::Arc;

use session_core::{
    async_trait, codec, time::OffsetDateTime, ExpiredDeletion, Id, Record, Result, SessionStore,
};
use sqlx::PgPool;

use crate::{
    create_with_fresh_ids,
    error::from_sqlx,
    schema::{Name, DEFAULT_DELETE_BATCH_SIZE},
    InvalidName,
};

/// A session store on a PostgreSQL table, through a [`sqlx::PgPool`].
///
/// The table has three columns: `id TEXT PRIMARY KEY` (the id's 22-character
/// text form), `data BYTEA` (the session data in the workspace's shared
/// encoding, [`session_core::codec`]) and `expiry_date TIMESTAMPTZ`, indexed.
/// [`migrate`](Self::migrate) creates them.
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
    index: String,
    create: String,
    save: String,
    load: String,
    delete: String,
    delete_expired: String,
}

impl Sql {
    fn new(schema_name: Option<&Name>, table_name: &Name) -> Self {
        let table = match schema_name {
            Some(schema) => format!("{}.{}", schema.double_quoted(), table_name.double_quoted()),
            None => table_name.double_quoted(),
        };
        // An index lives in its table's schema, so it is named without one.
        let index = format!("\"{}_expiry_date_idx\"", table_name.as_str());
        let upsert = format!(
            "INSERT INTO {table} AS s (id, data, expiry_date) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data, expiry_date = EXCLUDED.expiry_date"
        );
        Self {
            // Insert-if-absent in one statement; a row whose time is up is as
            // good as absent, so it is taken over rather than kept as a
            // tombstone that blocks its id until the next sweep.
            create: format!("{upsert} WHERE s.expiry_date <= $4"),
            save: upsert,
            load: format!(
                "SELECT data, expiry_date FROM {table} WHERE id = $1 AND expiry_date > $2"
            ),
            delete: format!("DELETE FROM {table} WHERE id = $1"),
            // Rows another sweep is deleting right now are skipped, so two
            // sweepers never wait on each other or count a row twice.
            delete_expired: format!(
                "DELETE FROM {table} WHERE id IN \
                 (SELECT id FROM {table} WHERE expiry_date <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)"
            ),
            table,
            index,
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
    /// [`delete_expired`](ExpiredDeletion::delete_expired) removes at most
    /// (default 5000; 0 counts as 1). A sweep repeats its `DELETE` until a
    /// batch comes back short.
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

    /// Creates the schema (if one was set and it is missing), the table and
    /// its expiry index, each only if missing.
    ///
    /// Several processes may migrate at once: they take turns on a
    /// transaction-scoped advisory lock keyed by the schema's name, because
    /// concurrent `CREATE ... IF NOT EXISTS` of one object can fail in
    /// PostgreSQL.
    #[tracing::instrument(level = "debug", name = "session_sqlx.migrate", skip_all, fields(table = %self.sql.table))]
    pub async fn migrate(&self) -> Result<()> {
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
        sql.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (\
                 id TEXT PRIMARY KEY NOT NULL, \
                 data BYTEA NOT NULL, \
                 expiry_date TIMESTAMPTZ NOT NULL\
             ); \
             CREATE INDEX IF NOT EXISTS {index} ON {table} (expiry_date);",
            table = self.sql.table,
            index = self.sql.index,
        ));
        sqlx::raw_sql(&sql)
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }
}

#[async_trait]
impl SessionStore for PostgresStore {
    #[tracing::instrument(level = "debug", name = "session_sqlx.create", skip_all, fields(table = %self.sql.table))]
    async fn create(&self, record: &mut Record) -> Result<()> {
        let data = codec::encode_data(&record.data)?;
        let expiry_date = record.expiry_date;
        create_with_fresh_ids(record, |id| async {
            let inserted = sqlx::query(&self.sql.create)
                .bind(id)
                .bind(data.as_slice())
                .bind(expiry_date)
                .bind(OffsetDateTime::now_utc())
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
impl ExpiredDeletion for PostgresStore {
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
