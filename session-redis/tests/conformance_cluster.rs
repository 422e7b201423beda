//! The whole conformance suite against Redis Cluster (`REDIS_CLUSTER_URL`,
//! which `scripts/test` always sets after starting a three-master cluster),
//! each check under its own key prefix.
//!
//! Run alone without `REDIS_CLUSTER_URL` (`cargo nextest run -p
//! session-redis`), each check prints a note and passes without running: the
//! test command never takes that path. The checks live in a test binary of
//! their own because skipping ends the process.

mod common;

use session_redis::{fred::prelude::Pool, RedisStore};

async fn cluster_store() -> RedisStore<Pool> {
    // Fail loudly: a suite that passes without a cluster proves nothing.
    let Some(url) = common::redis_cluster_url() else {
        panic!(
            "REDIS_CLUSTER_URL is not set: run the tests with ./scripts/test, which starts \
             a three-node Redis Cluster on 127.0.0.1:7001-7003 and sets it"
        );
    };
    let pool = common::connect(&url).await;
    RedisStore::new(pool).with_key_prefix(common::unique_prefix("cluster"))
}

mod cluster {
    session_testkit::conformance_suite!(|| async { crate::cluster_store().await }, sweep = native);
}
