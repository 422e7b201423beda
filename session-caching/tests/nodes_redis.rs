//! Several nodes over one Redis store, coherent through Redis pub/sub:
//! standalone Redis (127.0.0.1:6379 or `REDIS_URL`) and the Redis Cluster
//! the test command starts (`REDIS_CLUSTER_URL`).
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{nodes, nodes::Node, Faulty};
use fred::{
    clients::Client,
    interfaces::ClientLike,
    prelude::{Builder, Config},
};
use session_caching::RedisChannel;
use session_core::Id;
use session_redis::{fred::prelude::Pool, RedisStore};

type Store = RedisStore<Pool>;

/// The shared store: a Redis store under a key prefix of its own.
async fn store(url: &str) -> Store {
    let config = Config::from_url(url).unwrap();
    let pool = session_redis::recommended_builder(config)
        .build_pool(2)
        .unwrap();
    pool.init().await.unwrap();
    RedisStore::new(pool).with_key_prefix(format!("session-caching-test:{}", Id::default()))
}

fn cluster_url() -> String {
    std::env::var("REDIS_CLUSTER_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .expect("REDIS_CLUSTER_URL is not set: run the tests with ./scripts/test, which starts the cluster")
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

async fn client(url: &str) -> (Client, Config) {
    let config = Config::from_url(url).unwrap();
    let client = Builder::from_config(config.clone()).build().unwrap();
    client.init().await.unwrap();
    (client, config)
}

/// A channel of its own for one test, its subscriptions named `name`.
async fn channel(url: &str, name: &str) -> RedisChannel {
    let (publisher, config) = client(url).await;
    RedisChannel::new(publisher, config)
        .with_channel_name(format!("session-caching-test:{}", Id::default()))
        .with_client_name(name)
}

/// Two nodes with their own subscriber connections, named `<test>-a` and
/// `<test>-b`.
async fn two(store: &Store, test: &str) -> (Node<Store>, Node<Store>, String) {
    let shared = channel(&redis_url(), "unused").await;
    let name = format!("{test}-{}", std::process::id());
    let a = nodes::builder(store, shared.clone().with_client_name(format!("{name}-a")))
        .build()
        .unwrap();
    let b = nodes::builder(store, shared.with_client_name(format!("{name}-b")))
        .build()
        .unwrap();
    common::all_live(&[&a, &b]).await;
    (a, b, format!("{name}-b"))
}

/// Kills the connections named `name` (`CLIENT KILL ID`).
async fn kill(url: &str, name: &str) {
    let (admin, _) = client(url).await;
    let list: String = admin
        .custom(fred::cmd!("CLIENT"), vec!["LIST"])
        .await
        .unwrap();
    let mut killed = 0;
    for line in list
        .lines()
        .filter(|line| line.contains(&format!(" name={name} ")))
    {
        let id = line
            .split(' ')
            .find_map(|field| field.strip_prefix("id="))
            .unwrap();
        let _: () = admin
            .custom(fred::cmd!("CLIENT"), vec!["KILL", "ID", id])
            .await
            .unwrap();
        killed += 1;
    }
    assert!(killed > 0, "no connection named {name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_node_is_not_served_by_another() {
    let store = store(&redis_url()).await;
    let (a, b, _) = two(&store, "logout").await;
    nodes::a_logout_on_one_node_is_not_served_by_another(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_on_one_node_is_seen_on_another() {
    let store = store(&redis_url()).await;
    let (a, b, _) = two(&store, "update").await;
    nodes::an_update_on_one_node_is_seen_on_another(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_that_read_before_a_delete_is_dropped() {
    let store = store(&redis_url()).await;
    let (a, b, _) = two(&store, "fill").await;
    nodes::a_fill_that_read_before_a_delete_is_dropped(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_subscriber_clears_bypasses_and_recovers() {
    let store = store(&redis_url()).await;
    let (a, b, b_name) = two(&store, "kill").await;
    nodes::a_gap_clears_bypasses_and_recovers(a, b, || async {
        kill(&redis_url(), &b_name).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_invalidation_is_stale_for_at_most_the_bound() {
    let store = store(&redis_url()).await;
    let channel = Faulty::new(channel(&redis_url(), "stale").await);
    nodes::a_lost_invalidation_is_stale_for_at_most_the_bound(
        &store,
        channel,
        Duration::from_millis(500),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_a_users_sessions_reaches_every_node() {
    let store = store(&redis_url()).await;
    let (a, b, _) = two(&store, "users").await;
    nodes::ending_a_users_sessions_reaches_every_node(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touches_are_written_back_in_batches() {
    let store = store(&redis_url()).await;
    nodes::touches_are_written_back_in_batches(&store, channel(&redis_url(), "touch").await).await;
}

/// Over a Redis Cluster, store and channel: a PUBLISH on one node reaches
/// subscribers on any.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_a_cluster_a_logout_on_one_node_is_not_served_by_another() {
    let url = cluster_url();
    let store = store(&url).await;
    let shared = channel(&url, "cluster").await;
    let a = nodes::builder(&store, shared.clone()).build().unwrap();
    let b = nodes::builder(&store, shared).build().unwrap();
    common::all_live(&[&a, &b]).await;
    nodes::a_logout_on_one_node_is_not_served_by_another(a, b).await;
}

/// A live `NearCache` over a Redis store at `url`, through a Redis channel:
/// what the conformance suites run on.
async fn suite_cache(url: String) -> session_caching::NearCache<Store> {
    let cache =
        session_caching::NearCache::builder(store(&url).await, channel(&url, "suite").await)
            .build()
            .unwrap();
    assert!(cache.wait_live(common::PATIENCE).await);
    cache
}

/// The conformance suite on a `NearCache` over a Redis store, through a
/// Redis channel, standalone and cluster.
mod conformance {
    use super::*;

    session_testkit::conformance_suite!(|| suite_cache(redis_url()), sweep = native);
}

mod conformance_cluster {
    use super::*;

    session_testkit::conformance_suite!(|| suite_cache(cluster_url()), sweep = native);
}
