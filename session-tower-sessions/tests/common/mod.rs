//! Set-up shared by the bridge's test binaries: each backend on loopback,
//! an axum server on a free port, and the test bodies, written once and run
//! per backend (`bridge_suite!`) and per tower-sessions release.
// Each test binary uses part of this module; a skipped backend or a failed
// clean-up is reported on the test output, the one place a test can say
// something without failing.
#![allow(dead_code, unreachable_pub, clippy::print_stderr)]

use std::{sync::Arc, time::Duration};

use session_core::{time::OffsetDateTime, Id};
use session_memory::MemoryStore;
use session_redis::{
    fred::prelude::{ClientLike, Config, Pool},
    RedisStore,
};
use session_sqlx::{sqlx::postgres::PgPoolOptions, PostgresStore};
use session_testkit::FaultyStore;

#[macro_use]
mod suite;
pub mod checks;
pub mod login;

/// The store every test puts under the adapter: a backend behind the
/// testkit's fault-injecting, call-counting wrapper.
pub type Shared<S> = Arc<FaultyStore<S>>;

/// Wraps a backend for a test.
pub fn shared<S>(store: S) -> Shared<S> {
    Arc::new(FaultyStore::new(store))
}

/// Whatever a backend needs to clean up when the test ends.
pub type Guard = Box<dyn Send>;

/// Sessions in memory.
pub async fn memory() -> Option<(MemoryStore, Guard)> {
    Some((MemoryStore::default(), Box::new(())))
}

/// The PostgreSQL the tests use.
pub fn postgres_url() -> String {
    std::env::var("POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The schema this crate's test tables live in.
const PG_SCHEMA: &str = "session_tower_sessions_test";

/// A migrated `PostgresStore` on a table of its own, dropped when the guard
/// is.
pub async fn postgres() -> Option<(PostgresStore, Guard)> {
    let url = postgres_url();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(30))
        .connect(&url)
        .await
        .unwrap_or_else(|error| panic!("PostgreSQL at {url}: {error}"));
    let table = format!("t{:032x}", Id::random().0);
    let store = PostgresStore::new(pool)
        .with_schema_name(PG_SCHEMA)
        .expect("valid schema name")
        .with_table_name(table.clone())
        .expect("valid table name");
    store.migrate().await.expect("migrate the test table");
    Some((
        store,
        Box::new(DropTable(format!("\"{PG_SCHEMA}\".\"{table}\""))),
    ))
}

/// Drops a test table (schema-qualified and quoted) when dropped, on a
/// runtime and connection of its own, so it works whatever state the test's
/// runtime is in.
struct DropTable(String);

impl Drop for DropTable {
    fn drop(&mut self) {
        use session_sqlx::sqlx::{self, Connection as _};

        let sql = format!("DROP TABLE IF EXISTS {}", self.0);
        let outcome = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(sqlx::Error::Io)?;
            runtime.block_on(async move {
                let mut connection = sqlx::PgConnection::connect(&postgres_url()).await?;
                sqlx::raw_sql(&sql).execute(&mut connection).await?;
                connection.close().await
            })
        })
        .join();
        if !matches!(outcome, Ok(Ok(()))) {
            // Best effort: the table is the only thing left behind.
            eprintln!("could not drop the test table {}", self.0);
        }
    }
}

/// The standalone Redis the tests use.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A `RedisStore` on the standalone Redis, under a key prefix of its own.
pub async fn redis() -> Option<(RedisStore<Pool>, Guard)> {
    Some((redis_store(&redis_url()).await, Box::new(())))
}

/// A `RedisStore` on the Redis Cluster the test command starts
/// (`REDIS_CLUSTER_URL`); `None`, and the test passes with a note, without
/// one.
pub async fn redis_cluster() -> Option<(RedisStore<Pool>, Guard)> {
    let Some(url) = std::env::var("REDIS_CLUSTER_URL")
        .ok()
        .filter(|url| !url.is_empty())
    else {
        eprintln!(
            "note: REDIS_CLUSTER_URL is not set; skipped (./scripts/test starts a cluster and \
             sets it)"
        );
        return None;
    };
    Some((redis_store(&url).await, Box::new(())))
}

async fn redis_store(url: &str) -> RedisStore<Pool> {
    let config = Config::from_url(url).expect("a valid Redis URL");
    let pool = session_redis::recommended_builder(config)
        .build_pool(2)
        .expect("build a fred pool");
    pool.init()
        .await
        .unwrap_or_else(|error| panic!("Redis at {url}: {error}"));
    // Sessions expire by TTL (an hour in most tests): nothing to clean up.
    RedisStore::new(pool).with_key_prefix(format!("session-tower-sessions-test:{}", Id::random()))
}

/// Serves `app` on a free loopback port; the base URL.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let address = listener.local_addr().expect("the bound address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    format!("http://{address}")
}

/// Now, to the microsecond: what every store keeps.
pub fn now_micros() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .expect("a valid nanosecond")
}

/// Whether `actual` is `expected`, give or take `slack`.
pub fn about(actual: OffsetDateTime, expected: OffsetDateTime, slack: Duration) -> bool {
    (actual - expected).unsigned_abs() <= slack
}
