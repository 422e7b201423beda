//! `sessions_of_user` for a user with 10 sessions among 1,000,000 stored
//! sessions (100,000 users of 10 sessions each), on PostgreSQL, Redis and
//! sled: the user index must cost what the user's own sessions cost, not
//! what the table holds. Beside it, in the same run, a `load` of one
//! session of the same store, for scale.
//!
//! ```sh
//! cargo bench -p bench --bench user_index
//! BENCH_USER_INDEX_SESSIONS=100000 cargo bench -p bench --bench user_index   # quicker
//! ```
//!
//! The population is written with the store's own `create` (64 tasks;
//! PostgreSQL with `synchronous_commit = off` for the filling only, which
//! does not change a read). PostgreSQL keeps its table (schema
//! `session_user_index_bench`) between runs when it already holds the
//! population; Redis uses database 14, emptied first and last; sled a
//! temporary database.

// A benchmark reports on stdout (the table) and stderr (progress).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::{sync::Arc, time::Instant};

use bench::{median, runtime, sample_record, Settings};
use fred::{
    prelude::*,
    types::{ClusterHash, CustomCommand},
};
use session_core::{Id, SessionStore};
use session_redis::RedisStore;
use session_sled::{sled, SledStore};
use session_sqlx::{
    sqlx::{
        self,
        postgres::{PgConnectOptions, PgPoolOptions},
    },
    PostgresStore,
};

const SESSIONS_PER_USER: usize = 10;
const SCHEMA: &str = "session_user_index_bench";
const REDIS_DATABASE: u8 = 14;
/// Lookups timed per store.
const LOOKUPS: usize = 2_000;

fn sessions() -> usize {
    std::env::var("BENCH_USER_INDEX_SESSIONS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1_000_000)
}

fn user_of(index: usize) -> String {
    format!("user-{}", index / SESSIONS_PER_USER)
}

/// Creates sessions `0..count` (user `index / 10`) on 64 tasks.
async fn fill<S: SessionStore + Clone>(store: &S, count: usize) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (store, next) = (store.clone(), Arc::clone(&next));
            tokio::spawn(async move {
                loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if index >= count {
                        break;
                    }
                    let mut record = sample_record();
                    record.id = Id::default();
                    record.user_id = Some(user_of(index));
                    store.create(&mut record).await.expect("create");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("filling task");
    }
    eprintln!("  filled {count} sessions in {:.1?}", started.elapsed());
}

/// Times `sessions_of_user` for users spread over the population, and a
/// `load` of one of their sessions; prints a table row.
async fn measure<S: SessionStore>(name: &str, store: &S, count: usize) {
    let users = count / SESSIONS_PER_USER;
    let mut lookups = Vec::with_capacity(LOOKUPS);
    let mut loads = Vec::with_capacity(LOOKUPS);
    for round in 0..LOOKUPS {
        // Users far apart, so no lookup reads what the previous one cached.
        let user = format!("user-{}", (round * 7_919) % users);
        let started = Instant::now();
        let found = store
            .sessions_of_user(&user)
            .await
            .expect("sessions_of_user");
        lookups.push(started.elapsed().as_secs_f64() * 1e6);
        assert_eq!(found.len(), SESSIONS_PER_USER, "{name}: {user}");
        let started = Instant::now();
        let loaded = store.load(&found[0].id).await.expect("load");
        loads.push(started.elapsed().as_secs_f64() * 1e6);
        assert!(loaded.is_some());
    }
    let p99 = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() * 99 / 100]
    };
    println!(
        "| {name} | {count} | {} | {} | {} | {} |",
        bench::three_digits(median(lookups.clone())),
        bench::three_digits(p99(lookups)),
        bench::three_digits(median(loads.clone())),
        bench::three_digits(p99(loads)),
    );
}

async fn postgres(count: usize) {
    let url = std::env::var("POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let options: PgConnectOptions = url.parse().expect("POSTGRES_URL");
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .connect_with(options.options([("synchronous_commit", "off")]))
        .await
        .expect("PostgreSQL");
    let store = PostgresStore::new(pool.clone())
        .with_schema_name(SCHEMA)
        .expect("schema name")
        .with_table_name("sessions")
        .expect("table name");
    store.migrate().await.expect("migrate");
    let held: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {SCHEMA}.sessions"))
        .fetch_one(&pool)
        .await
        .expect("count");
    if held != count as i64 {
        sqlx::raw_sql(&format!("TRUNCATE {SCHEMA}.sessions"))
            .execute(&pool)
            .await
            .expect("truncate");
        fill(&store, count).await;
        sqlx::raw_sql(&format!("VACUUM ANALYZE {SCHEMA}.sessions"))
            .execute(&pool)
            .await
            .expect("analyze");
    }
    measure("PostgreSQL", &store, count).await;
}

async fn redis(count: usize) {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let mut config = Config::from_url(&url).expect("REDIS_URL");
    config.database = Some(REDIS_DATABASE);
    let pool = session_redis::recommended_builder(config)
        .build_pool(4)
        .expect("fred pool");
    pool.init().await.expect("Redis");
    let flush = || async {
        let flushdb = CustomCommand::new_static("FLUSHDB", ClusterHash::FirstKey, false);
        let _: Value = pool
            .custom(flushdb, Vec::<Value>::new())
            .await
            .expect("FLUSHDB");
    };
    flush().await;
    let store = RedisStore::new(pool.clone());
    fill(&store, count).await;
    measure("Redis", &store, count).await;
    flush().await;
}

async fn sled(count: usize) {
    let db = sled::Config::new()
        .temporary(true)
        .open()
        .expect("temporary sled database");
    let store = SledStore::new(&db).expect("session trees");
    fill(&store, count).await;
    measure("sled", &store, count).await;
}

fn main() {
    if !Settings::is_bench_run() {
        return;
    }
    let count = sessions();
    let runtime = runtime();
    println!("sessions_of_user for a user with {SESSIONS_PER_USER} sessions, µs, {LOOKUPS} lookups of different users");
    println!();
    println!("| store | sessions stored | lookup median | lookup p99 | load median | load p99 |");
    println!("|---|---|---|---|---|---|");
    runtime.block_on(async {
        postgres(count).await;
        redis(count).await;
        sled(count).await;
    });
}
