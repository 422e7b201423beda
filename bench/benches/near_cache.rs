//! What `NearCache`'s expiry write-back saves: sliding-expiry touches of
//! cached sessions on PostgreSQL and Redis, sent to the store one by one
//! (the store itself, or a `NearCache` without write-back) or absorbed and
//! written back in batches once a second.
//!
//! ```sh
//! cargo bench -p bench --bench near_cache
//! ```
//!
//! Prints the usual tables (µs per operation) and, on stderr, per
//! contender, how many store calls 1,000 touches cost; then, per store:
//!
//! - `load`: a cache hit (`near`, a warm `NearCache`) against the store's
//!   own `load`, and against `MemoryStore::load` (an owned copy of the
//!   record from a sharded map: the least any in-process cache can cost,
//!   since `load` returns an owned `Record`);
//! - `mixed` on two nodes: two `NearCache`s with their own channel
//!   connections over one store, each operation sent to one of the two at
//!   random, against the same two-node traffic sent to the store directly;
//! - the invalidation delay: from a `save` on node A returning to node B
//!   having applied the invalidation (B polls its message count without
//!   sleeping), p50 and p99 over 500 writes, on an otherwise idle cache.

use std::{sync::Arc, time::Duration};

use bench::{runtime, Contenders, StoreTarget, Workload};
use session_caching::{InvalidationChannel, NearCache, PostgresChannel, RedisChannel};
use session_core::SessionStore as _;
use session_memory::MemoryStore;
use session_redis::{fred::prelude::*, RedisStore};
use session_sqlx::{sqlx::postgres::PgPoolOptions, PostgresStore};
use session_testkit::{Faults, FaultyStore, Operation};

const POPULATION: usize = 2_000;

fn postgres_url() -> String {
    std::env::var("POSTGRES_URL").unwrap_or_else(|_| "postgres://127.0.0.1:5432/test".into())
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Store calls per 1,000 touches, from the counters of a run.
#[allow(clippy::print_stderr)]
fn report(name: &str, faults: &Faults, touches: u64) {
    let calls = faults.calls(Operation::Touch) + faults.calls(Operation::TouchMany);
    eprintln!(
        "{name}: {calls} store calls for {touches} touches ({:.1} per 1,000)",
        calls as f64 * 1_000.0 / touches.max(1) as f64
    );
}

fn main() {
    if !bench::Settings::is_bench_run() {
        return;
    }
    let runtime = runtime();
    // PostgreSQL.
    let (store, near, write_back, other) = runtime.block_on(async {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect(&postgres_url())
            .await
            .expect("connect to PostgreSQL");
        let store = PostgresStore::new(pool.clone())
            .with_table_name("bench_near_cache")
            .expect("table name");
        store.migrate().await.expect("migrate");
        nodes(store, || PostgresChannel::new(pool.clone())).await
    });
    run(&runtime, "postgres", &store, &near, &write_back);
    two_nodes(&runtime, "postgres", &store, &near, other);

    // Redis.
    let (store, near, write_back, other) = runtime.block_on(async {
        let config = Config::from_url(&redis_url()).expect("Redis URL");
        let pool = session_redis::recommended_builder(config.clone())
            .build_pool(4)
            .expect("build the pool");
        pool.init().await.expect("connect to Redis");
        let store = RedisStore::new(pool.clone()).with_key_prefix("bench-near-cache");
        nodes(store, || {
            RedisChannel::new(pool.next().clone(), config.clone())
        })
        .await
    });
    run(&runtime, "redis", &store, &near, &write_back);
    two_nodes(&runtime, "redis", &store, &near, other);
}

/// What [`nodes`] makes.
type Nodes<S> = (
    Arc<StoreTarget<FaultyStore<S>>>,
    Arc<StoreTarget<NearCache<FaultyStore<S>>>>,
    Arc<StoreTarget<NearCache<FaultyStore<S>>>>,
    NearCache<FaultyStore<S>>,
);

/// The store, a near cache, one with touch write-back (each populated as a
/// target) and a second plain cache for the two-node runs, all over `store`,
/// each cache on a channel of its own from `channel`, all live.
async fn nodes<S, C>(store: S, channel: impl Fn() -> C) -> Nodes<S>
where
    S: session_core::SessionStore + Clone,
    C: InvalidationChannel,
{
    let build = |write_back: bool| {
        let builder = NearCache::builder(FaultyStore::new(store.clone()), channel())
            .max_staleness(Duration::from_secs(3_600));
        let builder = if write_back {
            builder.touch_write_back(Duration::from_secs(1))
        } else {
            builder
        };
        builder.build().expect("build the cache")
    };
    let (near, write_back, other) = (build(false), build(true), build(false));
    for cache in [&near, &write_back, &other] {
        assert!(cache.wait_live(Duration::from_secs(10)).await);
    }
    (
        Arc::new(StoreTarget::populated(FaultyStore::new(store), POPULATION).await),
        Arc::new(StoreTarget::populated(near, POPULATION).await),
        Arc::new(StoreTarget::populated(write_back, POPULATION).await),
        other,
    )
}

/// A target that counts the touches it is asked for.
struct Counted<T> {
    inner: Arc<T>,
    touches: std::sync::atomic::AtomicU64,
}

impl<T> Counted<T> {
    fn new(inner: Arc<T>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            touches: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn touches(&self) -> u64 {
        self.touches.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl<T: bench::Target> bench::Target for Counted<T> {
    async fn load(&self, key: u64) {
        self.inner.load(key).await;
    }
    async fn save(&self, key: u64) {
        self.inner.save(key).await;
    }
    async fn create(&self) {
        self.inner.create().await;
    }
    async fn delete(&self, key: u64) {
        self.inner.delete(key).await;
    }
    async fn touch(&self, key: u64) {
        self.touches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.touch(key).await;
    }
}

fn run<S: session_core::SessionStore + Clone>(
    runtime: &tokio::runtime::Runtime,
    name: &str,
    store: &Arc<StoreTarget<FaultyStore<S>>>,
    near: &Arc<StoreTarget<NearCache<FaultyStore<S>>>>,
    write_back: &Arc<StoreTarget<NearCache<FaultyStore<S>>>>,
) {
    let faults = [
        write_back.store().store().faults(),
        near.store().store().faults(),
        store.store().faults(),
    ];
    for faults in &faults {
        faults.reset_calls();
    }
    let counted = [
        Counted::new(Arc::clone(write_back)),
        Counted::new(Arc::clone(near)),
    ];
    let direct = Counted::new(Arc::clone(store));
    Contenders::new(runtime)
        .add("write-back", Arc::clone(&counted[0]))
        .add("near", Arc::clone(&counted[1]))
        .add("store", Arc::clone(&direct))
        .run(&format!("{name}, touch"), &[Workload::Touch]);
    // The last batch goes out before counting.
    runtime
        .block_on(write_back.store().shutdown())
        .expect("flush");
    let touches = [counted[0].touches(), counted[1].touches(), direct.touches()];
    for ((contender, faults), touches) in ["write-back", "near", "store"]
        .iter()
        .zip(&faults)
        .zip(touches)
    {
        report(&format!("{name} {contender}"), faults, touches);
    }
}

/// Two nodes over one store: each operation goes to one of them, picked by
/// the key, on the first node's population.
struct TwoNodes<S> {
    first: Arc<StoreTarget<S>>,
    second: S,
}

impl<S: session_core::SessionStore> TwoNodes<S> {
    fn node(&self, key: u64) -> &S {
        if key.count_ones().is_multiple_of(2) {
            self.first.store()
        } else {
            &self.second
        }
    }
}

impl<S: session_core::SessionStore> bench::Target for TwoNodes<S> {
    async fn load(&self, key: u64) {
        let id = self.first.pick(key).id;
        std::hint::black_box(self.node(key).load(&id).await.expect("load"));
    }
    async fn save(&self, key: u64) {
        self.node(key)
            .save(self.first.pick(key))
            .await
            .expect("save");
    }
    async fn create(&self) {
        self.first.create().await;
    }
    async fn delete(&self, key: u64) {
        let id = self.first.pick(key).id;
        self.node(key).delete(&id).await.expect("delete");
    }
}

fn two_nodes<S: session_core::SessionStore + Clone>(
    runtime: &tokio::runtime::Runtime,
    name: &str,
    store: &Arc<StoreTarget<FaultyStore<S>>>,
    near: &Arc<StoreTarget<NearCache<FaultyStore<S>>>>,
    other: NearCache<FaultyStore<S>>,
) {
    // A hit against the store's own load, and against the cheapest owned
    // copy any in-process cache can hand out (the memory store: a sharded
    // map, no channel, no staleness check), the ceiling of the ratio.
    let copy = runtime.block_on(StoreTarget::populated(MemoryStore::unbounded(), POPULATION));
    Contenders::new(runtime)
        .add("near", Arc::clone(near))
        .add("store", Arc::clone(store))
        .add("memory-store", Arc::new(copy))
        .run(
            &format!("{name}, cache hit against the store's load"),
            &[Workload::Load],
        );
    invalidation_delay(runtime, name, near, &other);
    let cached = Arc::new(TwoNodes {
        first: Arc::clone(near),
        second: other,
    });
    let direct = Arc::new(TwoNodes {
        first: Arc::clone(store),
        second: store.store().clone(),
    });
    Contenders::new(runtime)
        .add("two near caches", cached)
        .add("store", direct)
        .run(&format!("{name}, two nodes"), &[Workload::Mixed]);
}

/// From a `save` on `a` returning to `b` having applied its invalidation.
#[allow(clippy::print_stdout)]
fn invalidation_delay<S: session_core::SessionStore + Clone>(
    runtime: &tokio::runtime::Runtime,
    name: &str,
    a: &Arc<StoreTarget<NearCache<FaultyStore<S>>>>,
    b: &NearCache<FaultyStore<S>>,
) {
    const WRITES: u64 = 500;
    let delays = runtime.block_on(async {
        let mut delays = Vec::new();
        for key in 0..WRITES {
            let record = a.pick(key);
            // B holds the session, so the message has something to evict.
            b.load(&record.id).await.expect("load on B");
            let before = b.messages_received();
            a.store().save(record).await.expect("save on A");
            let saved = std::time::Instant::now();
            let deadline = saved + Duration::from_secs(5);
            while b.messages_received() == before {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{name}: no invalidation within 5 s"
                );
                tokio::task::yield_now().await;
            }
            delays.push(saved.elapsed().as_secs_f64() * 1e6);
        }
        delays
    });
    let mut sorted = delays;
    sorted.sort_by(f64::total_cmp);
    let at = |quantile: f64| sorted[((sorted.len() - 1) as f64 * quantile) as usize];
    println!(
        "\n{name}, invalidation delay over {WRITES} writes: p50 {} µs, p99 {} µs\n",
        bench::three_digits(at(0.5)),
        bench::three_digits(at(0.99)),
    );
}
