//! `session-sqlx` beside raw sqlx (the floor) and `tower-sessions-sqlx-store`
//! (the peer), per database, in the same run, on the same pool settings.
//!
//! - `ours`: `PostgresStore`, `MySqlStore`, `SqliteStore`.
//! - `raw`: sqlx running the very statements our store runs, on the same
//!   pool settings. It neither encodes nor decodes session data (the bytes
//!   are encoded once up front, and a load copies them out): that work is the
//!   store's, and the gap to the floor shows its price. Its `create` is one
//!   insert-if-absent with no retry.
//! - `peer`: `tower-sessions-sqlx-store` 0.15 (MessagePack; `create` is a
//!   transaction of existence checks and an upsert).
//! - `raw-no-expiry-index` (SQLite only): `raw` on a table of ours whose
//!   expiry index was dropped, like the peer's table: what that index costs
//!   each write.
//!
//! Each target has a table of its own, filled with the same population.
//! Databases: `POSTGRES_URL`, `MYSQL_URL` (loopback defaults as in the
//! tests), SQLite files in WAL mode with `synchronous = NORMAL` under cargo's
//! scratch directory. Tables live in the schema / database
//! `session_sqlx_bench` and are recreated on every run.
//!
//! `cargo bench -p bench --bench sqlx`, with, in the environment:
//!
//! - `BENCH_DIALECTS=postgres,mysql,sqlite`: which databases (default all);
//! - `BENCH_PG_SYNCHRONOUS_COMMIT=off`: PostgreSQL connections (every
//!   target's) commit without waiting for the WAL flush;
//! - `BENCH_SQL_PING=off`: pools hand out connections without sqlx's ping,
//!   so each call is one round trip (the floor the crate docs mention);
//!
//! and the load tool's own settings (`bench::Settings`).

use std::{path::PathBuf, sync::Arc, time::Duration};

use bench::{
    changed_data, changed_records, population, runtime, sample_record, Contenders, Flips, Settings,
    Target, Workload,
};
use session_core::{codec, time::OffsetDateTime, Id, Record, SessionStore};
use session_sqlx::{
    sqlx::{
        self,
        mysql::MySqlPoolOptions,
        postgres::{PgConnectOptions, PgPoolOptions},
        sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
        MySqlPool, PgPool, SqlitePool,
    },
    MySqlStore, PostgresStore, SqliteStore,
};
use tower_sessions_core::SessionStore as PeerStore;

const POPULATION: usize = 2_000;
const SCHEMA: &str = "session_sqlx_bench";
/// Connections per pool: enough for 64 tasks to keep the server busy on two
/// cores without measuring the pool's queue alone.
const CONNECTIONS: u32 = 16;

fn postgres_url() -> String {
    std::env::var("POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn mysql_url() -> String {
    std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned())
}

/// The population every target of one database holds, as records with the
/// sample data.
fn records() -> Vec<Record> {
    let template = sample_record();
    population(POPULATION)
        .into_iter()
        .map(|id| Record {
            id,
            ..template.clone()
        })
        .collect()
}

fn pick(records: &[Record], key: u64) -> &Record {
    &records[key as usize % records.len()]
}

// ---- ours -----------------------------------------------------------------

struct Ours<S> {
    store: S,
    records: Vec<Record>,
    changed: Vec<Record>,
    flips: Flips,
}

impl<S: SessionStore> Ours<S> {
    async fn new(store: S) -> Self {
        let records = records();
        for record in &records {
            store.save(record).await.expect("populate");
        }
        Self {
            store,
            changed: changed_records(&records),
            flips: Flips::new(records.len()),
            records,
        }
    }
}

impl<S: SessionStore> Target for Ours<S> {
    async fn load(&self, key: u64) {
        let record = self.store.load(&pick(&self.records, key).id).await;
        std::hint::black_box(record.expect("load"));
    }

    async fn save(&self, key: u64) {
        let records = self.flips.pick(key, &self.records, &self.changed);
        self.store.save(pick(records, key)).await.expect("save");
    }

    async fn create(&self) {
        let mut record = sample_record();
        self.store.create(&mut record).await.expect("create");
    }

    async fn delete(&self, key: u64) {
        let id = pick(&self.records, key).id;
        self.store.delete(&id).await.expect("delete");
    }
}

// ---- peer -----------------------------------------------------------------

use tower_sessions_core::session::{Id as PeerId, Record as PeerRecord};

fn to_peer(record: &Record) -> PeerRecord {
    PeerRecord {
        id: PeerId(record.id.0),
        data: record.data.clone(),
        expiry_date: record.expiry_date,
    }
}

struct Peer<S> {
    store: S,
    records: Vec<PeerRecord>,
    changed: Vec<PeerRecord>,
    flips: Flips,
}

impl<S: PeerStore> Peer<S> {
    async fn new(store: S) -> Self {
        let ours = records();
        let records: Vec<PeerRecord> = ours.iter().map(to_peer).collect();
        for record in &records {
            store.save(record).await.expect("populate");
        }
        Self {
            store,
            records,
            changed: changed_records(&ours).iter().map(to_peer).collect(),
            flips: Flips::new(ours.len()),
        }
    }

    fn pick(&self, key: u64) -> &PeerRecord {
        &self.records[key as usize % self.records.len()]
    }
}

impl<S: PeerStore> Target for Peer<S> {
    async fn load(&self, key: u64) {
        let record = self.store.load(&self.pick(key).id).await;
        std::hint::black_box(record.expect("load"));
    }

    async fn save(&self, key: u64) {
        let records = self.flips.pick(key, &self.records, &self.changed);
        let record = &records[key as usize % records.len()];
        self.store.save(record).await.expect("save");
    }

    async fn create(&self) {
        let mut record = to_peer(&sample_record());
        self.store.create(&mut record).await.expect("create");
    }

    async fn delete(&self, key: u64) {
        self.store.delete(&self.pick(key).id).await.expect("delete");
    }
}

// ---- raw ------------------------------------------------------------------

/// What every raw target holds: the population's ids as text, the sample
/// data encoded once, and the statements our store runs.
struct Raw<P> {
    pool: P,
    ids: Vec<String>,
    data: Vec<u8>,
    /// [`changed_data`] encoded: saves of one session write the two in turn.
    changed: Vec<u8>,
    flips: Flips,
    expiry_date: OffsetDateTime,
    sql: RawSql,
}

struct RawSql {
    insert_if_absent: String,
    upsert: String,
    load: String,
    delete: String,
}

impl<P> Raw<P> {
    fn new(pool: P, sql: RawSql) -> Self {
        let template = sample_record();
        Self {
            pool,
            ids: records().iter().map(|r| r.id.to_string()).collect(),
            data: codec::encode_data(&template.data).expect("encode"),
            changed: codec::encode_data(&changed_data(&template.data)).expect("encode"),
            flips: Flips::new(POPULATION),
            expiry_date: template.expiry_date,
            sql,
        }
    }

    fn id(&self, key: u64) -> &str {
        &self.ids[key as usize % self.ids.len()]
    }
}

/// The raw target of one database: the same four statements, bound the way
/// its store binds them.
macro_rules! raw_target {
    ($pool:ty, $expiry:expr) => {
        impl Raw<$pool> {
            async fn populate(self) -> Self {
                for id in &self.ids {
                    sqlx::query(&self.sql.upsert)
                        .bind(id.as_str())
                        .bind(self.data.as_slice())
                        .bind($expiry(self.expiry_date))
                        .execute(&self.pool)
                        .await
                        .expect("populate");
                }
                self
            }
        }

        impl Target for Raw<$pool> {
            async fn load(&self, key: u64) {
                let row: Option<(Vec<u8>,)> = sqlx::query_as(&self.sql.load)
                    .bind(self.id(key))
                    .bind($expiry(OffsetDateTime::now_utc()))
                    .fetch_optional(&self.pool)
                    .await
                    .expect("load");
                std::hint::black_box(row);
            }

            async fn save(&self, key: u64) {
                let data = self.flips.pick(key, &self.data, &self.changed);
                sqlx::query(&self.sql.upsert)
                    .bind(self.id(key))
                    .bind(data.as_slice())
                    .bind($expiry(self.expiry_date))
                    .execute(&self.pool)
                    .await
                    .expect("save");
            }

            async fn create(&self) {
                sqlx::query(&self.sql.insert_if_absent)
                    .bind(Id::default().to_string())
                    .bind(self.data.as_slice())
                    .bind($expiry(self.expiry_date))
                    .execute(&self.pool)
                    .await
                    .expect("create");
            }

            async fn delete(&self, key: u64) {
                sqlx::query(&self.sql.delete)
                    .bind(self.id(key))
                    .execute(&self.pool)
                    .await
                    .expect("delete");
            }
        }
    };
}

raw_target!(PgPool, |instant: OffsetDateTime| instant);
raw_target!(MySqlPool, |instant: OffsetDateTime| instant);
raw_target!(SqlitePool, codec::unix_micros);

// ---- set-up ---------------------------------------------------------------

/// Whether pools ping a connection before handing it out (sqlx's default,
/// a second round trip per call); `BENCH_SQL_PING=off` turns it off for
/// every networked pool of the bench, to measure the one-round-trip floor.
fn ping_before_acquire() -> bool {
    std::env::var("BENCH_SQL_PING").map_or(true, |value| value != "off")
}

/// Every PostgreSQL pool of the bench (ours, raw, peer alike). With
/// `BENCH_PG_SYNCHRONOUS_COMMIT` set (`off`, `local`, ...), its connections
/// run with that `synchronous_commit`: `off` takes the wait for the WAL flush
/// out of every commit, so what remains is round trips and server work.
async fn postgres_pool() -> PgPool {
    let mut options: PgConnectOptions = postgres_url()
        .parse()
        .unwrap_or_else(|error| panic!("POSTGRES_URL {}: {error}", postgres_url()));
    if let Ok(mode) = std::env::var("BENCH_PG_SYNCHRONOUS_COMMIT") {
        options = options.options([("synchronous_commit", mode)]);
    }
    PgPoolOptions::new()
        .max_connections(CONNECTIONS)
        .test_before_acquire(ping_before_acquire())
        .connect_with(options)
        .await
        .unwrap_or_else(|error| panic!("PostgreSQL at {}: {error}", postgres_url()))
}

async fn mysql_pool() -> MySqlPool {
    MySqlPoolOptions::new()
        .max_connections(CONNECTIONS)
        .test_before_acquire(ping_before_acquire())
        .connect(&mysql_url())
        .await
        .unwrap_or_else(|error| panic!("MySQL/MariaDB at {}: {error}", mysql_url()))
}

fn sqlite_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("session-sqlx-bench")
}

/// A fresh SQLite database file named `name`, in WAL mode.
async fn sqlite_pool(name: &str) -> SqlitePool {
    let dir = sqlite_dir();
    std::fs::create_dir_all(&dir).expect("bench directory");
    let path = dir.join(format!("{name}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(60));
    SqlitePoolOptions::new()
        .max_connections(CONNECTIONS)
        .connect_with(options)
        .await
        .expect("open SQLite")
}

async fn drop_postgres_tables(pool: &PgPool) {
    sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        .execute(pool)
        .await
        .expect("drop the bench schema");
}

async fn drop_mysql_tables(pool: &MySqlPool) {
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {SCHEMA}"))
        .execute(pool)
        .await
        .expect("drop the bench database");
}

fn postgres_sql(table: &str) -> RawSql {
    let table = format!("\"{SCHEMA}\".\"{table}\"");
    let insert = format!("INSERT INTO {table} (id, data, expiry_date) VALUES ($1, $2, $3)");
    RawSql {
        insert_if_absent: format!("{insert} ON CONFLICT (id) DO NOTHING"),
        upsert: format!(
            "{insert} ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data, expiry_date = EXCLUDED.expiry_date"
        ),
        load: format!("SELECT data, expiry_date FROM {table} WHERE id = $1 AND expiry_date > $2"),
        delete: format!("DELETE FROM {table} WHERE id = $1"),
    }
}

fn mysql_sql(table: &str) -> RawSql {
    let table = format!("`{SCHEMA}`.`{table}`");
    let insert = format!("INSERT INTO {table} (id, data, expiry_date) VALUES (?, ?, ?)");
    RawSql {
        insert_if_absent: insert.clone(),
        upsert: format!(
            "{insert} ON DUPLICATE KEY UPDATE data = VALUES(data), expiry_date = VALUES(expiry_date)"
        ),
        load: format!("SELECT data, expiry_date FROM {table} WHERE id = ? AND expiry_date > ?"),
        delete: format!("DELETE FROM {table} WHERE id = ?"),
    }
}

fn sqlite_sql(table: &str) -> RawSql {
    let table = format!("\"{table}\"");
    let insert = format!("INSERT INTO {table} (id, data, expiry_date) VALUES (?1, ?2, ?3)");
    RawSql {
        insert_if_absent: format!("{insert} ON CONFLICT (id) DO NOTHING"),
        upsert: format!(
            "{insert} ON CONFLICT (id) DO UPDATE SET data = excluded.data, expiry_date = excluded.expiry_date"
        ),
        load: format!("SELECT data, expiry_date FROM {table} WHERE id = ?1 AND expiry_date > ?2"),
        delete: format!("DELETE FROM {table} WHERE id = ?1"),
    }
}

/// Ours, raw and the peer on one database, interleaved per cell, so a burst
/// of load from another process touches all three alike.
fn compare(
    rt: &tokio::runtime::Runtime,
    title: &str,
    ours: impl Target,
    raw: impl Target,
    peer: impl Target,
) {
    Contenders::new(rt)
        .add("ours", Arc::new(ours))
        .add("raw", Arc::new(raw))
        .add("peer", Arc::new(peer))
        .run(title, &Workload::ALL);
}

fn sqlx_postgres() {
    let rt = runtime();
    let (ours, raw, peer) = rt.block_on(async {
        drop_postgres_tables(&postgres_pool().await).await;
        let ours = PostgresStore::new(postgres_pool().await)
            .with_schema_name(SCHEMA)
            .and_then(|s| s.with_table_name("ours"))
            .expect("names");
        ours.migrate().await.expect("migrate ours");
        // The raw target runs on a table our migration made.
        let raw_table = PostgresStore::new(postgres_pool().await)
            .with_schema_name(SCHEMA)
            .and_then(|s| s.with_table_name("raw"))
            .expect("names");
        raw_table.migrate().await.expect("migrate raw");
        let peer = tower_sessions_sqlx_store::PostgresStore::new(postgres_pool().await)
            .with_schema_name(SCHEMA)
            .and_then(|s| s.with_table_name("peer"))
            .expect("names");
        peer.migrate().await.expect("migrate peer");
        (
            Ours::new(ours).await,
            Raw::new(raw_table.pool().clone(), postgres_sql("raw"))
                .populate()
                .await,
            Peer::new(peer).await,
        )
    });
    compare(&rt, "sqlx-postgres", ours, raw, peer);
}

fn sqlx_mysql() {
    let rt = runtime();
    let (ours, raw, peer) = rt.block_on(async {
        drop_mysql_tables(&mysql_pool().await).await;
        let ours = MySqlStore::new(mysql_pool().await)
            .with_schema_name(SCHEMA)
            .and_then(|s| s.with_table_name("ours"))
            .expect("names");
        ours.migrate().await.expect("migrate ours");
        let raw_table = MySqlStore::new(mysql_pool().await)
            .with_schema_name(SCHEMA)
            .and_then(|s| s.with_table_name("raw"))
            .expect("names");
        raw_table.migrate().await.expect("migrate raw");
        let peer = tower_sessions_sqlx_store::MySqlStore::new(mysql_pool().await)
            .with_schema_name(SCHEMA)
            .and_then(|s| s.with_table_name("peer"))
            .expect("names");
        peer.migrate().await.expect("migrate peer");
        (
            Ours::new(ours).await,
            Raw::new(raw_table.pool().clone(), mysql_sql("raw"))
                .populate()
                .await,
            Peer::new(peer).await,
        )
    });
    compare(&rt, "sqlx-mysql", ours, raw, peer);
}

fn sqlx_sqlite() {
    let rt = runtime();
    let contenders = rt.block_on(async {
        let ours = SqliteStore::new(sqlite_pool("ours").await);
        ours.migrate().await.expect("migrate ours");
        let raw_table = SqliteStore::new(sqlite_pool("raw").await)
            .with_table_name("raw")
            .expect("names");
        raw_table.migrate().await.expect("migrate raw");
        let peer = tower_sessions_sqlx_store::SqliteStore::new(sqlite_pool("peer").await);
        peer.migrate().await.expect("migrate peer");
        // The same statements on our table without its expiry index: what
        // the index costs each write (the peer's table has none).
        let unindexed = SqliteStore::new(sqlite_pool("raw_unindexed").await)
            .with_table_name("raw_unindexed")
            .expect("names");
        unindexed.migrate().await.expect("migrate raw_unindexed");
        sqlx::query("DROP INDEX \"raw_unindexed_expiry_date_idx\"")
            .execute(unindexed.pool())
            .await
            .expect("drop the expiry index");
        (
            Ours::new(ours).await,
            Raw::new(raw_table.pool().clone(), sqlite_sql("raw"))
                .populate()
                .await,
            Peer::new(peer).await,
            Raw::new(unindexed.pool().clone(), sqlite_sql("raw_unindexed"))
                .populate()
                .await,
        )
    });
    let (ours, raw, peer, unindexed) = contenders;
    Contenders::new(&rt)
        .add("ours", Arc::new(ours))
        .add("raw", Arc::new(raw))
        .add("peer", Arc::new(peer))
        .add("raw-no-expiry-index", Arc::new(unindexed))
        .run("sqlx-sqlite", &Workload::ALL);
}

fn main() {
    if !Settings::is_bench_run() {
        return;
    }
    // `BENCH_DIALECTS=postgres,sqlite` runs only those (default: all three).
    let dialects = std::env::var("BENCH_DIALECTS").unwrap_or_default();
    let wanted = |name: &str| dialects.is_empty() || dialects.split(',').any(|d| d.trim() == name);
    if wanted("postgres") {
        sqlx_postgres();
    }
    if wanted("mysql") {
        sqlx_mysql();
    }
    if wanted("sqlite") {
        sqlx_sqlite();
    }
}
