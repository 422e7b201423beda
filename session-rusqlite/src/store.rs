//! [`RusqliteStore`] and its options.

use std::{fmt, path::Path, sync::Arc, time::Duration};

use rusqlite::{
    params, types::ValueRef, Connection, OpenFlags, OptionalExtension as _, Row,
    TransactionBehavior,
};
use session_core::{
    async_trait, codec,
    support::{next_version, store_span, version_from_i64, version_to_i64, FreshIds, MissedSwaps},
    time::OffsetDateTime,
    Error, ExpiredDeletion, Id, Record, Result, SessionStore, Update,
};
use tracing::Instrument as _;

use crate::{
    error::from_sqlite,
    pool::Pool,
    schema::{self, Sql},
    RusqliteStoreError,
};

/// How many expired rows one `DELETE` statement removes at most, unless
/// [`RusqliteStore::with_delete_batch_size`] says otherwise.
pub const DEFAULT_DELETE_BATCH_SIZE: u32 = 1_000;

/// The store kind in [`store_span`].
const STORE: &str = "rusqlite";

/// How durably a commit reaches the disk (SQLite's `PRAGMA synchronous`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// `NORMAL`: in WAL mode the database cannot be corrupted, but the last
    /// commits before a power loss or OS crash may roll back (an application
    /// crash loses nothing). SQLite's recommendation with WAL, and the
    /// default here: sessions are cheap to lose, fsyncs are not.
    #[default]
    Normal,
    /// `FULL`: every commit is synced to disk before it returns.
    Full,
}

impl Synchronous {
    fn pragma_value(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
        }
    }
}

/// How [`RusqliteStore::open_with`] sets up its connections.
///
/// ```
/// use std::time::Duration;
///
/// use session_rusqlite::{RusqliteOptions, Synchronous};
///
/// let options = RusqliteOptions::new()
///     .readers(2)
///     .busy_timeout(Duration::from_secs(2))
///     .synchronous(Synchronous::Full);
/// ```
#[derive(Debug, Clone)]
pub struct RusqliteOptions {
    readers: usize,
    busy_timeout: Duration,
    synchronous: Synchronous,
}

impl Default for RusqliteOptions {
    fn default() -> Self {
        Self {
            readers: 4,
            busy_timeout: Duration::from_secs(5),
            synchronous: Synchronous::default(),
        }
    }
}

impl RusqliteOptions {
    /// The defaults: 4 readers, a 5 second busy timeout, `synchronous =
    /// NORMAL`.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many read-only connections serve `load` beside the one writer
    /// (default 4). With 0, the writer serves reads too. An in-memory
    /// database (`:memory:` or an empty path) always has none: each
    /// connection to one would see a database of its own.
    pub fn readers(mut self, readers: usize) -> Self {
        self.readers = readers;
        self
    }

    /// How long a statement waits for a lock held by another process (or by
    /// another connection to the same file) before it fails with
    /// [`session_core::Error::Backend`] (default 5 seconds).
    pub fn busy_timeout(mut self, busy_timeout: Duration) -> Self {
        self.busy_timeout = busy_timeout;
        self
    }

    /// How durably commits reach the disk (default [`Synchronous::Normal`]).
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }
}

/// A session store in a SQLite database, on rusqlite.
///
/// Cloning is cheap and clones share the connections. See the
/// [crate documentation](crate) for the concurrency model.
#[derive(Clone)]
pub struct RusqliteStore {
    pool: Arc<Pool>,
    sql: Arc<Sql>,
    delete_batch_size: u32,
}

impl fmt::Debug for RusqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RusqliteStore")
            .field("table_name", &self.sql.table)
            .field("readers", &self.pool.readers())
            .field("delete_batch_size", &self.delete_batch_size)
            .finish_non_exhaustive()
    }
}

impl RusqliteStore {
    /// Opens (creating it if needed) the database file at `path` with the
    /// default [`RusqliteOptions`]: WAL mode, a 5 second busy timeout, one
    /// writer and 4 reader connections.
    ///
    /// Run [`migrate`](Self::migrate) before first use.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, RusqliteOptions::default()).await
    }

    /// Opens (creating it if needed) the database file at `path` with
    /// `options`.
    pub async fn open_with(path: impl AsRef<Path>, options: RusqliteOptions) -> Result<Self> {
        let path = path.as_ref().to_owned();
        let (writer, readers) =
            tokio::task::spawn_blocking(move || open_connections(&path, &options))
                .await
                .map_err(RusqliteStoreError::Task)?
                .map_err(from_sqlite)?;
        Ok(Self::from_pool(Pool::new(writer, readers)))
    }

    /// A store on an existing connection, which serves reads and writes
    /// alike, used as it is configured: set its busy timeout and journal mode
    /// yourself if you need them. This is the way to keep sessions in an
    /// in-memory database (`Connection::open_in_memory()`).
    ///
    /// Run [`migrate`](Self::migrate) before first use.
    pub fn from_connection(connection: Connection) -> Self {
        Self::from_pool(Pool::new(connection, Vec::new()))
    }

    fn from_pool(pool: Pool) -> Self {
        Self {
            pool: Arc::new(pool),
            sql: Arc::new(Sql::default_table()),
            delete_batch_size: DEFAULT_DELETE_BATCH_SIZE,
        }
    }

    /// Keeps sessions in table `table_name` instead of `sessions`.
    ///
    /// The name must be 1 to 48 ASCII letters, digits or underscores, not
    /// starting with a digit (checked by
    /// [`check_identifier`](session_core::support::check_identifier); else
    /// [`RusqliteStoreError::InvalidTableName`]) nor with `sqlite_`, which
    /// SQLite reserves ([`RusqliteStoreError::ReservedTableName`]). The
    /// indexes are named `<table_name>_expiry_date_idx` and
    /// `<table_name>_user_id_idx`.
    pub fn with_table_name(
        mut self,
        table_name: impl AsRef<str>,
    ) -> std::result::Result<Self, RusqliteStoreError> {
        self.sql = Arc::new(Sql::new(table_name.as_ref())?);
        Ok(self)
    }

    /// How many rows one `DELETE` statement of
    /// [`delete_expired`](ExpiredDeletion::delete_expired) removes at most
    /// (default [`DEFAULT_DELETE_BATCH_SIZE`], at least 1). Each batch is its
    /// own short transaction, so a large sweep never holds the write lock
    /// for long and other writes get in between batches.
    pub fn with_delete_batch_size(mut self, rows: u32) -> Self {
        self.delete_batch_size = rows.max(1);
        self
    }

    /// The table sessions are kept in.
    pub fn table_name(&self) -> &str {
        &self.sql.table
    }

    /// Creates the table and its indexes if they do not exist, and brings a
    /// table created by the previous release (`id`, `data`, `expiry_date`
    /// only) up to the current layout: it adds `version` (existing sessions
    /// get 0), `user_id` (NULL: no user) and the user index. Existing
    /// sessions keep working: they load, `update` over version 0 and `touch`
    /// them as usual.
    ///
    /// Idempotent, and safe to run from several tasks or processes at once:
    /// it runs in one `BEGIN IMMEDIATE` transaction, so SQLite's write lock
    /// orders the migrations, and each looks up the table's columns (SQLite
    /// has no `ADD COLUMN IF NOT EXISTS`) after it holds the lock.
    pub async fn migrate(&self) -> Result<()> {
        let sql = Arc::clone(&self.sql);
        self.pool
            .write(move |connection| schema::migrate(connection, &sql).map_err(from_sqlite))
            .instrument(store_span(STORE, "migrate"))
            .await
    }

    /// Closes the store's connections once the operations under way have
    /// finished. Later operations on this store and its clones fail with
    /// [`session_core::Error::Backend`] (source
    /// [`RusqliteStoreError::Closed`]). Dropping the last clone closes the
    /// connections too; this lets you wait for it.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Opens the writer, switches the file to WAL mode, then opens the readers.
fn open_connections(
    path: &Path,
    options: &RusqliteOptions,
) -> rusqlite::Result<(Connection, Vec<Connection>)> {
    let writer = Connection::open(path)?;
    configure(&writer, options)?;
    // WAL lets readers read while the writer writes. An in-memory database
    // answers "memory" and stays so; nothing else can share it anyway.
    let _mode: String = writer.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    let in_memory = path.as_os_str().is_empty() || path.as_os_str() == ":memory:";
    let readers = if in_memory { 0 } else { options.readers };
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let readers = (0..readers)
        .map(|_| {
            let reader = Connection::open_with_flags(path, flags)?;
            configure(&reader, options)?;
            Ok(reader)
        })
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((writer, readers))
}

fn configure(connection: &Connection, options: &RusqliteOptions) -> rusqlite::Result<()> {
    connection.busy_timeout(options.busy_timeout)?;
    connection.pragma_update(None, "synchronous", options.synchronous.pragma_value())
}

/// Now as stored: microseconds since the Unix epoch. Read just before the
/// statement that compares with it, on the thread that runs it, so time
/// spent queueing for a connection cannot make an expired record look
/// active.
fn now_micros() -> i64 {
    codec::unix_micros(OffsetDateTime::now_utc())
}

/// A record's columns as they are bound to a statement.
#[derive(Debug)]
struct Columns {
    data: Vec<u8>,
    expiry_date: i64,
    version: i64,
    user_id: Option<String>,
}

impl Columns {
    fn of(record: &Record) -> Result<Self> {
        Ok(Self {
            data: codec::encode_data(&record.data)?,
            expiry_date: codec::unix_micros(record.expiry_date),
            version: version_to_i64(record.version)?,
            user_id: record.user_id.clone(),
        })
    }
}

fn wrong_type(column: &'static str) -> Error {
    RusqliteStoreError::WrongColumnType { column }.into()
}

/// The id in column `index`, as its text form.
fn decode_id(row: &Row<'_>, index: usize) -> Result<Id> {
    match row.get_ref(index).map_err(from_sqlite)? {
        ValueRef::Text(bytes) => std::str::from_utf8(bytes)
            .map_err(Error::decode)?
            .parse()
            .map_err(Error::decode),
        _ => Err(wrong_type("id")),
    }
}

/// Turns the columns `data, expiry_date, version, user_id` starting at
/// `first` into a record, decoding the data straight from SQLite's buffer.
fn decode_record(id: Id, row: &Row<'_>, first: usize) -> Result<Record> {
    let data = match row.get_ref(first).map_err(from_sqlite)? {
        // TEXT is accepted too: a row written by hand with JSON text in it.
        ValueRef::Blob(bytes) | ValueRef::Text(bytes) => codec::decode_data(bytes)?,
        _ => return Err(wrong_type("data")),
    };
    let expiry_date = match row.get_ref(first + 1).map_err(from_sqlite)? {
        ValueRef::Integer(micros) => codec::from_unix_micros(micros)?,
        _ => return Err(wrong_type("expiry_date")),
    };
    let version = match row.get_ref(first + 2).map_err(from_sqlite)? {
        ValueRef::Integer(version) => version_from_i64(version)?,
        _ => return Err(wrong_type("version")),
    };
    let user_id = match row.get_ref(first + 3).map_err(from_sqlite)? {
        ValueRef::Null => None,
        ValueRef::Text(bytes) => Some(
            std::str::from_utf8(bytes)
                .map_err(Error::decode)?
                .to_owned(),
        ),
        _ => return Err(wrong_type("user_id")),
    };
    Ok(Record {
        id,
        data,
        expiry_date,
        version,
        user_id,
    })
}

/// The active record `id`, read on `connection` (which may be in a
/// transaction).
fn load_on(connection: &Connection, sql: &Sql, id: Id, now: i64) -> Result<Option<Record>> {
    connection
        .prepare_cached(&sql.load)
        .map_err(from_sqlite)?
        .query_row(params![id.to_string(), now], |row| {
            Ok(decode_record(id, row, 0))
        })
        .optional()
        .map_err(from_sqlite)?
        .transpose()
}

impl RusqliteStore {
    /// One `INSERT .. ON CONFLICT (id) DO UPDATE .. WHERE` the stored row
    /// has expired: `false` when the id is taken by an active session.
    async fn insert_if_absent(&self, id: Id, columns: Arc<Columns>) -> Result<bool> {
        let sql = Arc::clone(&self.sql);
        self.pool
            .write(move |connection| {
                let inserted = connection
                    .prepare_cached(&sql.insert_if_absent)
                    .and_then(|mut statement| {
                        statement.execute(params![
                            id.to_string(),
                            columns.data,
                            columns.expiry_date,
                            columns.version,
                            columns.user_id,
                            now_micros(),
                        ])
                    })
                    .map_err(from_sqlite)?;
                Ok(inserted == 1)
            })
            .await
    }
}

#[async_trait]
impl SessionStore for RusqliteStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        async {
            // Encoded once; a retry with a fresh id binds the same columns.
            let columns = Arc::new(Columns::of(record)?);
            let mut ids = FreshIds::default();
            while !self
                .insert_if_absent(record.id, Arc::clone(&columns))
                .await?
            {
                ids.next(record)?;
            }
            Ok(())
        }
        .instrument(store_span(STORE, "create"))
        .await
    }

    async fn save(&self, record: &Record) -> Result<()> {
        async {
            let columns = Columns::of(record)?;
            let sql = Arc::clone(&self.sql);
            let id = record.id.to_string();
            self.pool
                .write(move |connection| {
                    connection
                        .prepare_cached(&sql.upsert)
                        .and_then(|mut statement| {
                            statement.execute(params![
                                id,
                                columns.data,
                                columns.expiry_date,
                                columns.version,
                                columns.user_id,
                            ])
                        })
                        .map_err(from_sqlite)?;
                    Ok(())
                })
                .await
        }
        .instrument(store_span(STORE, "save"))
        .await
    }

    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        let sql = Arc::clone(&self.sql);
        let id = *session_id;
        self.pool
            .read(move |connection| load_on(connection, &sql, id, now_micros()))
            .instrument(store_span(STORE, "load"))
            .await
    }

    async fn delete(&self, session_id: &Id) -> Result<()> {
        let sql = Arc::clone(&self.sql);
        let id = session_id.to_string();
        self.pool
            .write(move |connection| {
                connection
                    .prepare_cached(&sql.delete)
                    .and_then(|mut statement| statement.execute(params![id]))
                    .map_err(from_sqlite)?;
                Ok(())
            })
            .instrument(store_span(STORE, "delete"))
            .await
    }

    /// One `UPDATE .. WHERE id = ? AND version = ? AND expiry_date > now`
    /// is the compare-and-swap, in SQLite's own autocommit transaction.
    /// Only when it matches no row does a `SELECT` on the same connection
    /// tell [`Update::Conflict`] (an active row with another version,
    /// returned) from [`Update::Gone`] ([`MissedSwaps`]); the read decides
    /// nothing that is written.
    async fn update(&self, record: &mut Record) -> Result<Update> {
        async {
            let next = next_version(record.version)?;
            let expected = record.version;
            let expected_stored = version_to_i64(expected)?;
            let mut columns = Columns::of(record)?;
            columns.version = version_to_i64(next)?;
            let sql = Arc::clone(&self.sql);
            let id = record.id;
            let update = self
                .pool
                .write(move |connection| {
                    let key = id.to_string();
                    let mut misses = MissedSwaps::default();
                    loop {
                        let written = connection
                            .prepare_cached(&sql.update)
                            .and_then(|mut statement| {
                                statement.execute(params![
                                    key,
                                    columns.data,
                                    columns.expiry_date,
                                    columns.version,
                                    columns.user_id,
                                    expected_stored,
                                    now_micros(),
                                ])
                            })
                            .map_err(from_sqlite)?;
                        if written == 1 {
                            return Ok(Update::Written);
                        }
                        let current = load_on(connection, &sql, id, now_micros())?;
                        if let Some(answer) = misses.after(expected, current) {
                            return Ok(answer);
                        }
                    }
                })
                .await?;
            if update.is_written() {
                record.version = next;
            }
            Ok(update)
        }
        .instrument(store_span(STORE, "update"))
        .await
    }

    async fn touch(&self, session_id: &Id, expiry_date: OffsetDateTime) -> Result<bool> {
        let sql = Arc::clone(&self.sql);
        let id = session_id.to_string();
        let expiry_date = codec::unix_micros(expiry_date);
        self.pool
            .write(move |connection| {
                let matched = connection
                    .prepare_cached(&sql.touch)
                    .and_then(|mut statement| {
                        statement.execute(params![id, expiry_date, now_micros()])
                    })
                    .map_err(from_sqlite)?;
                Ok(matched > 0)
            })
            .instrument(store_span(STORE, "touch"))
            .await
    }

    /// The `touch` statement once per id, in one `BEGIN IMMEDIATE`
    /// transaction on the writer: one trip to the blocking pool and one
    /// commit for the whole batch. Each touch is atomic; if one fails, the
    /// batch rolls back and the error is returned.
    async fn touch_many(&self, touches: &[(Id, OffsetDateTime)]) -> Result<Vec<bool>> {
        if touches.is_empty() {
            return Ok(Vec::new());
        }
        let sql = Arc::clone(&self.sql);
        let touches: Vec<(String, i64)> = touches
            .iter()
            .map(|(id, expiry_date)| (id.to_string(), codec::unix_micros(*expiry_date)))
            .collect();
        self.pool
            .write(move |connection| {
                let transaction = connection
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(from_sqlite)?;
                let touched = {
                    let mut statement = transaction
                        .prepare_cached(&sql.touch)
                        .map_err(from_sqlite)?;
                    let now = now_micros();
                    touches
                        .iter()
                        .map(|(id, expiry_date)| {
                            statement
                                .execute(params![id, expiry_date, now])
                                .map(|matched| matched > 0)
                                .map_err(from_sqlite)
                        })
                        .collect::<Result<Vec<_>>>()?
                };
                transaction.commit().map_err(from_sqlite)?;
                Ok(touched)
            })
            .instrument(store_span(STORE, "touch_many"))
            .await
    }

    /// One `SELECT .. WHERE user_id = ? AND expiry_date > now` on a reader,
    /// through the partial index on `user_id`. A row of the user that cannot
    /// be decoded makes the whole call an [`Error::Decode`].
    async fn sessions_of_user(&self, user_id: &str) -> Result<Vec<Record>> {
        let sql = Arc::clone(&self.sql);
        let user_id = user_id.to_owned();
        self.pool
            .read(move |connection| {
                let mut statement = connection
                    .prepare_cached(&sql.sessions_of_user)
                    .map_err(from_sqlite)?;
                let mut rows = statement
                    .query(params![user_id, now_micros()])
                    .map_err(from_sqlite)?;
                let mut records = Vec::new();
                while let Some(row) = rows.next().map_err(from_sqlite)? {
                    records.push(decode_record(decode_id(row, 0)?, row, 1)?);
                }
                Ok(records)
            })
            .instrument(store_span(STORE, "sessions_of_user"))
            .await
    }

    /// One `DELETE .. WHERE user_id = ? AND id IS NOT ?keep RETURNING
    /// expiry_date > now`: expired rows of the user go too, and only the
    /// active ones are counted.
    async fn delete_sessions_of_user(&self, user_id: &str, keep: Option<&Id>) -> Result<u64> {
        let sql = Arc::clone(&self.sql);
        let user_id = user_id.to_owned();
        let keep = keep.map(Id::to_string);
        self.pool
            .write(move |connection| {
                let mut statement = connection
                    .prepare_cached(&sql.delete_sessions_of_user)
                    .map_err(from_sqlite)?;
                let mut rows = statement
                    .query(params![user_id, keep, now_micros()])
                    .map_err(from_sqlite)?;
                let mut active = 0_u64;
                while let Some(row) = rows.next().map_err(from_sqlite)? {
                    let was_active: i64 = row.get(0).map_err(from_sqlite)?;
                    active += u64::from(was_active != 0);
                }
                Ok(active)
            })
            .instrument(store_span(STORE, "delete_sessions_of_user"))
            .await
    }
}

#[async_trait]
impl ExpiredDeletion for RusqliteStore {
    /// Deletes the records expired at the start of the sweep, at most
    /// [`with_delete_batch_size`](RusqliteStore::with_delete_batch_size) rows
    /// per statement, each batch a transaction of its own. SQLite removes
    /// their `user_id` index entries in the same statement.
    async fn delete_expired(&self) -> Result<u64> {
        async {
            let now = now_micros();
            let batch = self.delete_batch_size;
            let mut removed = 0_u64;
            loop {
                let sql = Arc::clone(&self.sql);
                let deleted = self
                    .pool
                    .write(move |connection| {
                        connection
                            .prepare_cached(&sql.delete_expired_batch)
                            .and_then(|mut statement| statement.execute(params![now, batch]))
                            .map_err(from_sqlite)
                    })
                    .await?;
                removed += deleted as u64;
                if deleted < batch as usize {
                    break;
                }
            }
            tracing::debug!(removed, "swept expired sessions");
            Ok(removed)
        }
        .instrument(store_span(STORE, "delete_expired"))
        .await
    }
}
