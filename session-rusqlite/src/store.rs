//! [`RusqliteStore`] and its options.

use std::{fmt, path::Path, sync::Arc, time::Duration};

use rusqlite::{params, types::ValueRef, Connection, OpenFlags, OptionalExtension as _, Row};
use session_core::{
    async_trait, codec, time::OffsetDateTime, ExpiredDeletion, Id, Record, Result, SessionStore,
};

use crate::{
    error::from_sqlite,
    pool::Pool,
    schema::{self, Sql},
    RusqliteStoreError,
};

/// How many expired rows one `DELETE` statement removes at most, unless
/// [`RusqliteStore::with_delete_batch_size`] says otherwise.
pub const DEFAULT_DELETE_BATCH_SIZE: u32 = 1_000;

// A fresh random id colliding this many times in a row means the random
// source is broken: give up rather than spin.
const MAX_CREATE_ATTEMPTS: u32 = 16;

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
    /// starting with a digit or `sqlite_`; anything else is
    /// [`RusqliteStoreError::InvalidTableName`]. The expiry index is named
    /// `<table_name>_expiry_date_idx`.
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

    /// Creates the table and its expiry index if they do not exist.
    ///
    /// Idempotent, and safe to run from several tasks or processes at once:
    /// it runs in a `BEGIN IMMEDIATE` transaction, so SQLite's write lock
    /// orders the migrations.
    #[tracing::instrument(level = "debug", skip_all, fields(table = %self.sql.table))]
    pub async fn migrate(&self) -> Result<()> {
        let sql = Arc::clone(&self.sql);
        self.pool
            .write(move |connection| schema::migrate(connection, &sql).map_err(from_sqlite))
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

/// The expiry as stored: microseconds since the Unix epoch (rounded down),
/// the same instant whatever the UTC offset.
fn to_micros(instant: OffsetDateTime) -> std::result::Result<i64, RusqliteStoreError> {
    let micros = instant.unix_timestamp_nanos().div_euclid(1_000);
    i64::try_from(micros).map_err(|_| RusqliteStoreError::ExpiryOutOfRange { micros })
}

fn from_micros(micros: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).map_err(|_| {
        session_core::Error::decode(RusqliteStoreError::ExpiryOutOfRange {
            micros: i128::from(micros),
        })
    })
}

fn now_micros() -> Result<i64> {
    to_micros(OffsetDateTime::now_utc()).map_err(session_core::Error::backend)
}

/// Turns a `SELECT data, expiry_date` row into a record, decoding the data
/// straight from SQLite's buffer.
fn decode_row(id: Id, row: &Row<'_>) -> Result<Record> {
    let data = match row.get_ref(0).map_err(from_sqlite)? {
        // TEXT is accepted too: a row written by hand with JSON text in it.
        ValueRef::Blob(bytes) | ValueRef::Text(bytes) => codec::decode_data(bytes)?,
        _ => return Err(RusqliteStoreError::WrongColumnType { column: "data" }.into()),
    };
    let expiry_date = match row.get_ref(1).map_err(from_sqlite)? {
        ValueRef::Integer(micros) => from_micros(micros)?,
        _ => {
            return Err(RusqliteStoreError::WrongColumnType {
                column: "expiry_date",
            }
            .into())
        }
    };
    Ok(Record {
        id,
        data,
        expiry_date,
    })
}

/// What `create` and `save` write.
fn encode(record: &Record) -> Result<(Vec<u8>, i64)> {
    let data = codec::encode_data(&record.data)?;
    let expiry = to_micros(record.expiry_date).map_err(session_core::Error::encode)?;
    Ok((data, expiry))
}

#[async_trait]
impl SessionStore for RusqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(table = %self.sql.table))]
    async fn create(&self, record: &mut Record) -> Result<()> {
        let (data, expiry) = encode(record)?;
        let sql = Arc::clone(&self.sql);
        let first_id = record.id;
        let id = self
            .pool
            .write(move |connection| {
                let mut statement = connection
                    .prepare_cached(&sql.insert_if_absent)
                    .map_err(from_sqlite)?;
                let mut id = first_id;
                for _ in 0..MAX_CREATE_ATTEMPTS {
                    let inserted = statement
                        .execute(params![id.to_string(), data, expiry])
                        .map_err(from_sqlite)?;
                    if inserted == 1 {
                        return Ok(id);
                    }
                    tracing::debug!("session id taken, retrying with a fresh one");
                    id = Id::default();
                }
                Err(RusqliteStoreError::IdsExhausted {
                    attempts: MAX_CREATE_ATTEMPTS,
                }
                .into())
            })
            .await?;
        record.id = id;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(table = %self.sql.table))]
    async fn save(&self, record: &Record) -> Result<()> {
        let (data, expiry) = encode(record)?;
        let sql = Arc::clone(&self.sql);
        let id = record.id.to_string();
        self.pool
            .write(move |connection| {
                connection
                    .prepare_cached(&sql.upsert)
                    .and_then(|mut statement| statement.execute(params![id, data, expiry]))
                    .map_err(from_sqlite)?;
                Ok(())
            })
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(table = %self.sql.table))]
    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        let now = now_micros()?;
        let sql = Arc::clone(&self.sql);
        let id = *session_id;
        self.pool
            .read(move |connection| {
                let mut statement = connection.prepare_cached(&sql.load).map_err(from_sqlite)?;
                statement
                    .query_row(params![id.to_string(), now], |row| Ok(decode_row(id, row)))
                    .optional()
                    .map_err(from_sqlite)?
                    .transpose()
            })
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(table = %self.sql.table))]
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
            .await
    }
}

#[async_trait]
impl ExpiredDeletion for RusqliteStore {
    /// Deletes the records expired at the start of the sweep, at most
    /// [`with_delete_batch_size`](RusqliteStore::with_delete_batch_size) rows
    /// per statement, each batch a transaction of its own.
    #[tracing::instrument(level = "debug", skip_all, fields(table = %self.sql.table, removed))]
    async fn delete_expired(&self) -> Result<u64> {
        let now = now_micros()?;
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
        tracing::Span::current().record("removed", removed);
        Ok(removed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure.
mod tests {
    use session_core::time::UtcOffset;

    use super::*;

    #[test]
    fn micros_round_trip_and_ignore_offsets() {
        let nanos = 1_927_515_906_123_456_789_i128;
        let instant = OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .unwrap()
            .to_offset(UtcOffset::from_hms(5, 30, 0).unwrap());
        let micros = to_micros(instant).unwrap();
        assert_eq!(micros, 1_927_515_906_123_456);
        assert_eq!(
            micros,
            to_micros(instant.to_offset(UtcOffset::UTC)).unwrap()
        );
        let back = from_micros(micros).unwrap();
        assert_eq!(back.unix_timestamp_nanos(), nanos - 789);
        // Before the epoch, rounding is down, not toward zero.
        let early = OffsetDateTime::from_unix_timestamp_nanos(-500).unwrap();
        assert_eq!(to_micros(early).unwrap(), -1);
    }
}
