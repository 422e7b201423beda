//! Sessions in Redis: standalone or Redis Cluster, the same code.
//!
//! ```sh
//! # standalone (REDIS_URL, default redis://127.0.0.1:6379)
//! cargo run -p examples --example redis
//! # a three-master cluster, e.g. the one ./scripts/test starts
//! cargo run -p examples --example redis -- \
//!     'redis-cluster://127.0.0.1:7001?node=127.0.0.1:7002&node=127.0.0.1:7003'
//! ```

use serde_json::json;
use session_core::{
    time::{Duration, OffsetDateTime},
    Record, SessionStore,
};
use session_redis::{
    fred::prelude::{ClientLike, Config},
    RedisStore,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,session_redis=debug".into()),
        )
        .init();

    // `redis://host:port` for one server, `redis-cluster://host:port?node=..`
    // for a cluster, `redis-sentinel://..` for sentinel: fred reads them all.
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("REDIS_URL").ok())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
    let config = Config::from_url(&url)?;
    // A command timeout and an unlimited reconnect policy: a call against a
    // Redis that is down fails within `COMMAND_TIMEOUT` instead of hanging,
    // and the pool reconnects by itself when Redis returns.
    let pool = session_redis::recommended_builder(config).build_pool(4)?;
    pool.init().await?;
    tracing::info!(%url, clustered = pool.is_clustered(), "connected");

    let store = RedisStore::new(pool.clone()).with_key_prefix("example:session");

    let mut record = Record::new(OffsetDateTime::now_utc() + Duration::minutes(30));
    record.data.insert("user".into(), json!("ferris"));
    store.create(&mut record).await?;
    // Never log the id (nor the key, which contains it): an id is a credential.
    tracing::info!("created");

    record.data.insert("cart".into(), json!(["crab plush"]));
    store.save(&record).await?;
    let loaded = store.load(&record.id).await?;
    tracing::info!(?loaded, "loaded");

    store.delete(&record.id).await?;
    let gone = store.load(&record.id).await?;
    tracing::info!(gone = gone.is_none(), "deleted");

    pool.quit().await?;
    Ok(())
}
