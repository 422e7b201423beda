//! Several nodes over one PostgreSQL store, coherent through PostgreSQL
//! LISTEN/NOTIFY (127.0.0.1:5432, database `test`, or `POSTGRES_URL`).
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)]

mod common;

use std::{str::FromStr, time::Duration};

use common::{nodes, nodes::Node, Faulty, PATIENCE};
use session_caching::{InvalidationChannel, PostgresChannel};
use session_core::{time::OffsetDateTime, Id};
use session_sqlx::{
    sqlx::{
        self,
        postgres::{PgConnectOptions, PgPoolOptions},
        PgPool,
    },
    PostgresStore,
};

type Store = PostgresStore;

/// Where the test tables live.
const SCHEMA: &str = "session_caching_test";

/// A migrated store on a table of its own, named for its creation time so
/// that tables left by failed runs are dropped an hour later.
async fn store() -> Store {
    let pool = pool("store").await;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let stale: Vec<(String,)> =
        sqlx::query_as("SELECT tablename FROM pg_tables WHERE schemaname = $1")
            .bind(SCHEMA)
            .fetch_all(&pool)
            .await
            .unwrap();
    for (table,) in stale {
        let created = table
            .strip_prefix('t')
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<i64>().ok());
        if created.is_some_and(|created| now - created > 3_600) {
            let _ = sqlx::query(&format!("DROP TABLE IF EXISTS \"{SCHEMA}\".\"{table}\""))
                .execute(&pool)
                .await;
        }
    }
    let table = format!("t{now}_{:x}", Id::default().0 as u64);
    let store = PostgresStore::new(pool)
        .with_schema_name(SCHEMA)
        .unwrap()
        .with_table_name(&table)
        .unwrap();
    store.migrate().await.unwrap();
    store
}

fn postgres_url() -> String {
    std::env::var("POSTGRES_URL").unwrap_or_else(|_| "postgres://127.0.0.1:5432/test".to_owned())
}

/// A pool whose connections are named `name` (`application_name`).
async fn pool(name: &str) -> PgPool {
    let options = PgConnectOptions::from_str(&postgres_url())
        .unwrap()
        .application_name(name);
    PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .unwrap()
}

/// A channel name of its own for one test.
fn channel_name() -> String {
    format!("session_caching_test_{:x}", Id::default().0 as u64)
}

/// Two nodes, each with a pool (and so a listener) of its own, named
/// `<test>-a` and `<test>-b`.
async fn two(store: &Store, test: &str) -> (Node<Store>, Node<Store>, String) {
    let name = format!("{test}-{}", std::process::id());
    let channel = channel_name();
    let a_channel = PostgresChannel::new(pool(&format!("{name}-a")).await)
        .with_channel_name(&channel)
        .unwrap();
    let b_channel = PostgresChannel::new(pool(&format!("{name}-b")).await)
        .with_channel_name(&channel)
        .unwrap();
    let a = nodes::builder(store, a_channel).build().unwrap();
    let b = nodes::builder(store, b_channel).build().unwrap();
    common::all_live(&[&a, &b]).await;
    (a, b, format!("{name}-b"))
}

/// Terminates the LISTEN connection of the pool named `name`.
async fn terminate_listener(name: &str) {
    let admin = pool("session-caching-admin").await;
    let killed: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1 AND query LIKE 'LISTEN%'",
    )
    .bind(name)
    .fetch_all(&admin)
    .await
    .unwrap();
    assert!(
        killed.iter().any(|(done,)| *done),
        "no listener named {name}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_node_is_not_served_by_another() {
    let store = store().await;
    let (a, b, _) = two(&store, "logout").await;
    nodes::a_logout_on_one_node_is_not_served_by_another(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_on_one_node_is_seen_on_another() {
    let store = store().await;
    let (a, b, _) = two(&store, "update").await;
    nodes::an_update_on_one_node_is_seen_on_another(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_that_read_before_a_delete_is_dropped() {
    let store = store().await;
    let (a, b, _) = two(&store, "fill").await;
    nodes::a_fill_that_read_before_a_delete_is_dropped(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_listener_clears_bypasses_and_recovers() {
    let store = store().await;
    let (a, b, b_name) = two(&store, "terminate").await;
    nodes::a_gap_clears_bypasses_and_recovers(a, b, || async {
        terminate_listener(&b_name).await;
    })
    .await;
}

/// A wait for the next message that is cancelled while the lost listener
/// connection is being replaced must not swallow the loss. The cache's loop
/// cancels that wait at every heartbeat tick, and sqlx's listener, left to
/// itself, reconnects inside the wait that learns of the loss: cancelled
/// there, the next wait would quietly listen on a new connection, and what
/// was notified in between would be lost with no gap (seen under load: the
/// cache stayed live, serving from its cache, after its listener was
/// killed). Forced here by holding every new connection of the pool at a
/// gate until the test opens it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_listener_is_reported_even_if_waits_are_cancelled() {
    let name = format!("lost-{}", std::process::id());
    let (open, gate) = tokio::sync::watch::channel(true);
    let options = PgConnectOptions::from_str(&postgres_url())
        .unwrap()
        .application_name(&name);
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(PATIENCE)
        .after_connect(move |_, _| {
            let mut gate = gate.clone();
            Box::pin(async move {
                let _ = gate.wait_for(|open| *open).await;
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .unwrap();
    let channel = PostgresChannel::new(pool)
        .with_channel_name(&channel_name())
        .unwrap();
    let mut subscription = channel.subscribe().await.unwrap();

    open.send_replace(false);
    terminate_listener(&name).await;
    let mut reported = false;
    for _ in 0..20 {
        match tokio::time::timeout(Duration::from_millis(20), subscription.next()).await {
            Ok(Err(_)) => {
                reported = true;
                break;
            }
            Ok(Ok(message)) => panic!("a message ({message}) instead of the loss"),
            Err(_) => {}
        }
    }
    open.send_replace(true);
    if !reported {
        // A listener that reconnected by itself waits on as if nothing had
        // been lost (and receives what is published from now on).
        channel.publish("after the loss").await.unwrap();
        let next = tokio::time::timeout(PATIENCE, subscription.next()).await;
        assert!(
            matches!(next, Ok(Err(_))),
            "the loss of the listener connection was swallowed: {next:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_invalidation_is_stale_for_at_most_the_bound() {
    let store = store().await;
    let channel = PostgresChannel::new(pool("stale").await)
        .with_channel_name(&channel_name())
        .unwrap();
    nodes::a_lost_invalidation_is_stale_for_at_most_the_bound(
        &store,
        Faulty::new(channel),
        Duration::from_millis(500),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_a_users_sessions_reaches_every_node() {
    let store = store().await;
    let (a, b, _) = two(&store, "users").await;
    nodes::ending_a_users_sessions_reaches_every_node(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touches_are_written_back_in_batches() {
    let store = store().await;
    let channel = PostgresChannel::new(pool("touch").await)
        .with_channel_name(&channel_name())
        .unwrap();
    nodes::touches_are_written_back_in_batches(&store, channel).await;
}

/// The conformance suite through a PostgreSQL channel.
mod conformance {
    use session_caching::NearCache;

    use super::*;

    session_testkit::conformance_suite!(|| async {
        let channel = PostgresChannel::new(pool("suite").await)
            .with_channel_name(&channel_name())
            .unwrap();
        let cache = NearCache::builder(store().await, channel).build().unwrap();
        assert!(cache.wait_live(common::PATIENCE).await);
        cache
    });
}
