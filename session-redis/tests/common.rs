//! Set-up shared by the Redis test files: clients built with the
//! recommended settings, and a key prefix per test so parallel tests never
//! see each other's sessions.

#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU64, Ordering};

use session_redis::{
    fred::prelude::{ClientLike, Config, Pool},
    RedisStore,
};

/// The standalone Redis the tests use.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The Redis Cluster the tests use, if the test command started one.
pub fn redis_cluster_url() -> Option<String> {
    std::env::var("REDIS_CLUSTER_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// A key prefix no other test (in this process or another) uses.
pub fn unique_prefix(topic: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "session-redis-test:{topic}:{}:{}:{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        session_core::Id::default()
    )
}

/// A connected pool on `url` with the crate's recommended settings.
pub async fn connect(url: &str) -> Pool {
    let config = Config::from_url(url).expect("valid Redis URL");
    let pool = session_redis::recommended_builder(config)
        .build_pool(2)
        .expect("build a fred pool");
    pool.init().await.expect("connect to Redis");
    pool
}

/// A store on the standalone Redis under a fresh prefix.
pub async fn standalone_store(topic: &str) -> RedisStore<Pool> {
    RedisStore::new(connect(&redis_url()).await).with_key_prefix(unique_prefix(topic))
}

/// A store on the Redis Cluster under a fresh prefix, when the test command
/// started one (`REDIS_CLUSTER_URL`).
pub async fn cluster_store(topic: &str) -> Option<RedisStore<Pool>> {
    let url = redis_cluster_url()?;
    Some(RedisStore::new(connect(&url).await).with_key_prefix(unique_prefix(topic)))
}

/// A store per topology the tests can reach: standalone always, the cluster
/// when `REDIS_CLUSTER_URL` is set. Each is named for assertion messages.
pub async fn every_topology(topic: &str) -> Vec<(&'static str, RedisStore<Pool>)> {
    let mut stores = vec![("standalone", standalone_store(topic).await)];
    match cluster_store(topic).await {
        Some(store) => stores.push(("cluster", store)),
        #[allow(clippy::print_stderr)]
        None => eprintln!(
            "note: REDIS_CLUSTER_URL is not set; {topic} runs on standalone Redis only \
             (./scripts/test starts a cluster and sets it)"
        ),
    }
    stores
}

/// Now, to the microsecond: the precision the store keeps expiry dates in.
pub fn now_micros() -> session_core::time::OffsetDateTime {
    let now = session_core::time::OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .expect("a valid nanosecond")
}
