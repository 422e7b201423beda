//! `session-rusqlite` beside raw rusqlite (the floor), same run, same file
//! settings, same threading model.
//!
//! - `ours`: `RusqliteStore` (one writer and 4 read-only readers, WAL,
//!   `synchronous = NORMAL`, statements on tokio's blocking pool).
//! - `raw`: rusqlite running the very statements `RusqliteStore` runs, by
//!   primary key, through the same model: an async semaphore hands out one
//!   writer or one of 4 readers, the statement runs in `spawn_blocking`.
//!   It neither encodes nor decodes session data (the bytes are encoded
//!   once up front, and a load copies them out): that work is the store's,
//!   and the gap to the floor shows its price.
//! - No tower-sessions peer: `tower-sessions-rusqlite-store` 0.15 depends on
//!   rusqlite 0.40 (libsqlite3-sys newer than 0.30), which cannot link beside
//!   the libsqlite3-sys 0.30 that sqlx 0.8 and rusqlite 0.32 share.
//!
//! `cargo bench -p bench --bench rusqlite`

use std::{
    hint::black_box,
    path::Path,
    sync::{Arc, Mutex},
};

use bench::{
    changed_data, population, runtime, sample_record, Contenders, Flips, Settings, StoreTarget,
    Target, Workload,
};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension as _};
use session_core::{codec, time::OffsetDateTime, Id};
use session_rusqlite::RusqliteStore;
use tempfile::TempDir;
use tokio::sync::Semaphore;

const POPULATION: usize = 10_000;
const READERS: usize = 4;

fn now_micros() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000) as i64
}

fn micros(instant: OffsetDateTime) -> i64 {
    (instant.unix_timestamp_nanos() / 1_000) as i64
}

/// Ours, through the harness's `StoreTarget`, on a file of its own; the
/// directory lives as long as the store.
async fn ours() -> (StoreTarget<RusqliteStore>, TempDir) {
    let dir = TempDir::new().expect("temp dir");
    let store = RusqliteStore::open(dir.path().join("ours.db"))
        .await
        .expect("open");
    store.migrate().await.expect("migrate");
    (StoreTarget::populated(store, POPULATION).await, dir)
}

/// One role's connections, handed out like `RusqliteStore` does.
struct Connections {
    permits: Arc<Semaphore>,
    idle: Arc<Mutex<Vec<Connection>>>,
}

impl Connections {
    fn new(connections: Vec<Connection>) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(connections.len())),
            idle: Arc::new(Mutex::new(connections)),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> T + Send + 'static,
    ) -> T {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .expect("permit");
        let idle = Arc::clone(&self.idle);
        tokio::task::spawn_blocking(move || {
            let mut connection = idle.lock().expect("idle").pop().expect("connection");
            let result = f(&mut connection);
            idle.lock().expect("idle").push(connection);
            drop(permit);
            result
        })
        .await
        .expect("blocking task")
    }
}

const LOAD: &str = "SELECT data, expiry_date FROM sessions WHERE id = ?1 AND expiry_date > ?2";
const INSERT: &str = "INSERT INTO sessions (id, data, expiry_date) VALUES (?1, ?2, ?3) \
                      ON CONFLICT (id) DO NOTHING";
const UPSERT: &str = "INSERT INTO sessions (id, data, expiry_date) VALUES (?1, ?2, ?3) \
                      ON CONFLICT (id) DO UPDATE SET \
                      data = excluded.data, expiry_date = excluded.expiry_date";
const DELETE: &str = "DELETE FROM sessions WHERE id = ?1";

struct Raw {
    writer: Connections,
    readers: Connections,
    ids: Vec<String>,
    data: Arc<Vec<u8>>,
    /// [`changed_data`] encoded: saves of one session write the two in turn.
    changed: Arc<Vec<u8>>,
    flips: Flips,
    expiry: i64,
    _dir: TempDir,
}

fn configure(connection: &Connection) {
    connection
        .busy_timeout(std::time::Duration::from_secs(5))
        .expect("busy timeout");
    connection
        .pragma_update(None, "synchronous", "NORMAL")
        .expect("synchronous");
}

impl Raw {
    async fn new() -> Self {
        let dir = TempDir::new().expect("temp dir");
        let path = dir.path().join("raw.db");
        let (writer, readers) = tokio::task::spawn_blocking(move || open(&path))
            .await
            .expect("open");
        let record = sample_record();
        let raw = Self {
            writer: Connections::new(vec![writer]),
            readers: Connections::new(readers),
            ids: population(POPULATION)
                .iter()
                .map(ToString::to_string)
                .collect(),
            data: Arc::new(codec::encode_data(&record.data).expect("encode")),
            changed: Arc::new(codec::encode_data(&changed_data(&record.data)).expect("encode")),
            flips: Flips::new(POPULATION),
            expiry: micros(record.expiry_date),
            _dir: dir,
        };
        for key in 0..POPULATION as u64 {
            raw.save(key).await;
        }
        raw
    }

    fn id(&self, key: u64) -> String {
        self.ids[key as usize % self.ids.len()].clone()
    }
}

fn open(path: &Path) -> (Connection, Vec<Connection>) {
    let writer = Connection::open(path).expect("open writer");
    configure(&writer);
    let _mode: String = writer
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .expect("wal");
    writer
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS sessions (\
                 id TEXT PRIMARY KEY NOT NULL, data BLOB NOT NULL, expiry_date INTEGER NOT NULL); \
             CREATE INDEX IF NOT EXISTS sessions_expiry_date_idx ON sessions (expiry_date);",
        )
        .expect("schema");
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let readers = (0..READERS)
        .map(|_| {
            let reader = Connection::open_with_flags(path, flags).expect("open reader");
            configure(&reader);
            reader
        })
        .collect();
    (writer, readers)
}

impl Target for Raw {
    async fn load(&self, key: u64) {
        let id = self.id(key);
        let now = now_micros();
        let row = self
            .readers
            .run(move |connection| {
                connection
                    .prepare_cached(LOAD)?
                    .query_row(params![id, now], |row| {
                        Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?))
                    })
                    .optional()
            })
            .await
            .expect("load");
        black_box(row);
    }

    async fn save(&self, key: u64) {
        let id = self.id(key);
        let data = Arc::clone(self.flips.pick(key, &self.data, &self.changed));
        let expiry = self.expiry;
        self.writer
            .run(move |connection| {
                connection
                    .prepare_cached(UPSERT)?
                    .execute(params![id, *data, expiry])
            })
            .await
            .expect("save");
    }

    async fn create(&self) {
        let data = Arc::clone(&self.data);
        let expiry = self.expiry;
        self.writer
            .run(move |connection| {
                let mut statement = connection.prepare_cached(INSERT)?;
                while statement.execute(params![Id::default().to_string(), *data, expiry])? == 0 {}
                Ok::<_, rusqlite::Error>(())
            })
            .await
            .expect("create");
    }

    async fn delete(&self, key: u64) {
        let id = self.id(key);
        self.writer
            .run(move |connection| connection.prepare_cached(DELETE)?.execute(params![id]))
            .await
            .expect("delete");
    }
}

fn main() {
    if !Settings::is_bench_run() {
        return;
    }
    let runtime = runtime();
    let (ours, _ours_dir) = runtime.block_on(ours());
    let ours = Arc::new(ours);
    let raw = Arc::new(runtime.block_on(Raw::new()));
    Contenders::new(&runtime)
        .add("ours", ours)
        .add("raw", raw)
        .run("rusqlite", &Workload::ALL);
}
