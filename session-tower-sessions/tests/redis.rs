//! The bridge over `RedisStore` (session-redis): on the standalone Redis at
//! `REDIS_URL` (default `redis://127.0.0.1:6379`), and on the Redis Cluster
//! at `REDIS_CLUSTER_URL` when the test command started one.

#[macro_use]
mod common;

mod standalone {
    bridge_suite!(crate::common::redis);
}

mod cluster {
    bridge_suite!(crate::common::redis_cluster);
}
