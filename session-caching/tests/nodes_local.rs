//! Several nodes over one store, coherent through a `LocalChannel`.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{nodes, nodes::two, Faulty};
use session_caching::LocalChannel;
use session_core::SessionStore;
use session_memory::MemoryStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_node_is_not_served_by_another() {
    let store = MemoryStore::default();
    let (a, b) = two(&store, &LocalChannel::default()).await;
    nodes::a_logout_on_one_node_is_not_served_by_another(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_on_one_node_is_seen_on_another() {
    let store = MemoryStore::default();
    let (a, b) = two(&store, &LocalChannel::default()).await;
    nodes::an_update_on_one_node_is_seen_on_another(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_that_read_before_a_delete_is_dropped() {
    let store = MemoryStore::default();
    let (a, b) = two(&store, &LocalChannel::default()).await;
    nodes::a_fill_that_read_before_a_delete_is_dropped(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_clears_bypasses_and_recovers() {
    let store = MemoryStore::default();
    let channel = LocalChannel::default();
    let (a, b) = two(&store, &channel).await;
    nodes::a_gap_clears_bypasses_and_recovers(a, b, || async { channel.disconnect() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_invalidation_is_stale_for_at_most_the_bound() {
    let store = MemoryStore::default();
    let channel = Faulty::new(LocalChannel::default());
    nodes::a_lost_invalidation_is_stale_for_at_most_the_bound(
        &store,
        channel,
        Duration::from_millis(400),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_channel_is_found_by_heartbeats() {
    let store = MemoryStore::default();
    nodes::a_silent_channel_is_found_by_heartbeats(&store, Faulty::new(LocalChannel::default()))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_publish_is_found_by_heartbeats() {
    let store = MemoryStore::default();
    nodes::a_stalled_publish_is_found_by_heartbeats(&store, Faulty::new(LocalChannel::default()))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_not_held_up_by_a_stalled_channel() {
    let store = MemoryStore::default();
    nodes::a_write_is_not_held_up_by_a_stalled_channel(
        &store,
        Faulty::new(LocalChannel::default()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_a_users_sessions_reaches_every_node() {
    let store = MemoryStore::default();
    let (a, b) = two(&store, &LocalChannel::default()).await;
    nodes::ending_a_users_sessions_reaches_every_node(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touches_are_written_back_in_batches() {
    let store = MemoryStore::default();
    nodes::touches_are_written_back_in_batches(&store, LocalChannel::default()).await;
}

/// Only in-process: a lagging subscriber is a gap too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_subscriber_is_a_gap() {
    let store = MemoryStore::default();
    let channel = LocalChannel::with_capacity(4);
    let (a, b) = two(&store, &channel).await;
    // Flood the channel faster than B can read it.
    let mut session = common::record(1);
    a.create(&mut session).await.unwrap();
    assert!(b.load(&session.id).await.unwrap().is_some());
    for _ in 0..64 {
        session_caching::InvalidationChannel::publish(&channel, "i 1 AAAAAAAAAAAAAAAAAAAAAA")
            .await
            .unwrap();
    }
    common::eventually("B to lag and recover", || async { b.is_live() }).await;
    a.delete(&session.id).await.unwrap();
    common::eventually("B to see the delete", || async {
        b.load(&session.id).await.unwrap().is_none()
    })
    .await;
}
