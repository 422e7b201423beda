//! Test bodies for several "nodes" (separate `NearCache`s, each with its own
//! subscription) over one shared store, run once per channel: in-process,
//! Redis pub/sub and PostgreSQL LISTEN/NOTIFY.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::{
    future::Future,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use serde_json::json;
use session_caching::{InvalidationChannel, NearCache, NearCacheBuilder};
use session_core::{SessionStore, Update};
use session_testkit::{FaultyStore, Operation, When};

use super::{all_live, eventually, received, record, ChannelFaults, Faulty, PATIENCE};

/// A node: a cache over its own handle on the shared store (faulty, to
/// count and hold its calls), with quick heartbeats.
pub type Node<S> = NearCache<FaultyStore<S>>;

/// How long a heartbeat may take to come back before the tests that look
/// for a silent channel call it lost.
pub const QUICK_HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(600);

/// A node's builder: heartbeats every 100 ms, and a timeout long enough
/// (3 s) that a loaded machine does not make a gap the test did not ask
/// for (a gap bypasses the cache, and the tests count store calls). The
/// tests of silent channels shorten it to [`QUICK_HEARTBEAT_TIMEOUT`].
pub fn builder<S: SessionStore + Clone, C: InvalidationChannel>(
    store: &S,
    channel: C,
) -> NearCacheBuilder<FaultyStore<S>> {
    NearCache::builder(FaultyStore::new(store.clone()), channel)
        .heartbeat(Duration::from_millis(100), Duration::from_secs(3))
}

/// A node's builder whose heartbeat is given up after
/// [`QUICK_HEARTBEAT_TIMEOUT`].
fn quick_builder<S: SessionStore + Clone, C: InvalidationChannel>(
    store: &S,
    channel: C,
) -> NearCacheBuilder<FaultyStore<S>> {
    builder(store, channel).heartbeat(Duration::from_millis(100), QUICK_HEARTBEAT_TIMEOUT)
}

pub async fn two<S: SessionStore + Clone, C: InvalidationChannel + Clone>(
    store: &S,
    channel: &C,
) -> (Node<S>, Node<S>) {
    let a = builder(store, channel.clone()).build().unwrap();
    let b = builder(store, channel.clone()).build().unwrap();
    all_live(&[&a, &b]).await;
    (a, b)
}

/// A logout on A is not served by B once the invalidation arrived; B did
/// serve the session from its cache before.
pub async fn a_logout_on_one_node_is_not_served_by_another<S: SessionStore>(
    a: Node<S>,
    b: Node<S>,
) {
    let mut session = record(1);
    a.create(&mut session).await.unwrap();
    assert_eq!(b.load(&session.id).await.unwrap(), Some(session.clone()));
    let reads = b.store().faults().calls(Operation::Load);
    assert_eq!(b.load(&session.id).await.unwrap(), Some(session.clone()));
    assert_eq!(
        b.store().faults().calls(Operation::Load),
        reads,
        "B must serve a live, fresh entry from its cache"
    );

    a.delete(&session.id).await.unwrap();
    eventually("B to stop serving the deleted session", || async {
        b.load(&session.id).await.unwrap().is_none()
    })
    .await;
    assert_eq!(a.load(&session.id).await.unwrap(), None);
}

/// An update on A is seen on B.
pub async fn an_update_on_one_node_is_seen_on_another<S: SessionStore>(a: Node<S>, b: Node<S>) {
    let mut session = record(1);
    a.create(&mut session).await.unwrap();
    assert_eq!(b.load(&session.id).await.unwrap(), Some(session.clone()));
    session.data.insert("v".into(), json!(2));
    assert_eq!(a.update(&mut session).await.unwrap(), Update::Written);
    eventually("B to see the update", || async {
        b.load(&session.id).await.unwrap() == Some(session.clone())
    })
    .await;

    // B writes over the version it now holds: no conflict.
    let mut on_b = b.load(&session.id).await.unwrap().unwrap();
    on_b.data.insert("v".into(), json!(3));
    assert_eq!(b.update(&mut on_b).await.unwrap(), Update::Written);
    eventually("A to see B's update", || async {
        a.load(&session.id).await.unwrap() == Some(on_b.clone())
    })
    .await;
}

/// A read on B that saw the store before A deleted the session, and fills
/// after the invalidation arrived, does not put the session back.
pub async fn a_fill_that_read_before_a_delete_is_dropped<S: SessionStore>(a: Node<S>, b: Node<S>) {
    let mut session = record(1);
    a.create(&mut session).await.unwrap();

    let mut hold = b.store().faults().hold(Operation::Load, When::After);
    let loader = {
        let b = b.clone();
        let id = session.id;
        tokio::spawn(async move { b.load(&id).await.unwrap() })
    };
    hold.reached().await;
    let before = b.messages_received();
    a.delete(&session.id).await.unwrap();
    received(&b, before, 1).await;
    hold.release();
    assert_eq!(
        loader.await.unwrap(),
        Some(session.clone()),
        "the read saw the store before the delete"
    );
    assert_eq!(
        b.load(&session.id).await.unwrap(),
        None,
        "B cached what the store had deleted"
    );
}

/// A broken subscription on B clears and bypasses B's cache: B never serves
/// a session the store no longer has, even if the invalidation was lost in
/// the gap; and B recovers by itself. `break_b` breaks B's subscription
/// (a disconnect, `CLIENT KILL`, `pg_terminate_backend`).
pub async fn a_gap_clears_bypasses_and_recovers<S, F, Fut>(a: Node<S>, b: Node<S>, break_b: F)
where
    S: SessionStore,
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut session = record(1);
    a.create(&mut session).await.unwrap();
    assert!(b.load(&session.id).await.unwrap().is_some());

    // The gap may be over (B subscribed again) before a poll of `is_live`
    // sees it, so the poll waits for B's count of gaps.
    let gaps = b.gaps();
    break_b().await;
    eventually("B to notice the gap", || async { b.gaps() > gaps }).await;
    // Whatever A publishes now may be lost to B.
    a.delete(&session.id).await.unwrap();
    assert_eq!(
        b.load(&session.id).await.unwrap(),
        None,
        "B served from its cache during a gap"
    );
    let reads = b.store().faults().calls(Operation::Load);
    let mut other = record(2);
    a.create(&mut other).await.unwrap();
    b.load(&other.id).await.unwrap();
    b.load(&other.id).await.unwrap();
    if !b.is_live() {
        assert_eq!(
            b.store().faults().calls(Operation::Load),
            reads + 2,
            "a down cache must send every read to the store"
        );
    }

    assert!(b.wait_live(PATIENCE).await, "B did not recover by itself");
    // Live again, and coherent again.
    assert!(b.load(&other.id).await.unwrap().is_some());
    a.delete(&other.id).await.unwrap();
    eventually("B to see deletes again", || async {
        b.load(&other.id).await.unwrap().is_none()
    })
    .await;
}

/// An invalidation lost without anyone noticing is served stale for at
/// most the staleness bound. `lose` switches losing on for the channel.
pub async fn a_lost_invalidation_is_stale_for_at_most_the_bound<S: SessionStore + Clone, C>(
    store: &S,
    channel: Faulty<C>,
    bound: Duration,
) where
    C: InvalidationChannel + Clone,
{
    let a = builder(store, channel.clone())
        .max_staleness(bound)
        .build()
        .unwrap();
    let b = builder(store, channel.clone())
        .max_staleness(bound)
        .build()
        .unwrap();
    all_live(&[&a, &b]).await;
    let mut session = record(1);
    a.create(&mut session).await.unwrap();
    assert!(b.load(&session.id).await.unwrap().is_some());

    channel
        .faults
        .lose_invalidations
        .store(true, Ordering::SeqCst);
    let deleted_at = tokio::time::Instant::now();
    a.delete(&session.id).await.unwrap();
    // When the last read that served the deleted session began: the bound
    // holds if no read that began past it served the session. A read's
    // start is taken before it runs, so a slow machine can only make a
    // read look earlier than it was, never a legitimate one look late.
    let mut last_stale_read = None;
    loop {
        let began = deleted_at.elapsed();
        if b.load(&session.id).await.unwrap().is_none() {
            break;
        }
        last_stale_read = Some(began);
        assert!(began < PATIENCE, "B's stale entry never aged out");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Slack for the cache's clock only (an expiry is checked against a
    // reading of it), not for scheduling.
    let slack = Duration::from_millis(20);
    if let Some(began) = last_stale_read {
        assert!(
            began <= bound + slack,
            "a read begun {began:?} after the delete served the deleted session; bound {bound:?}"
        );
    }
    channel
        .faults
        .lose_invalidations
        .store(false, Ordering::SeqCst);
}

/// A subscription that goes silent without an error (a half-open
/// connection) is found by the heartbeat: B goes down, bypasses, and comes
/// back once messages flow again.
pub async fn a_silent_channel_is_found_by_heartbeats<S: SessionStore + Clone, C>(
    store: &S,
    channel: Faulty<C>,
) where
    C: InvalidationChannel + Clone,
{
    found_by_heartbeats(store, channel, |faults| &faults.silent, "the silence").await;
}

/// A heartbeat that cannot be published (the publish hangs) is a gap too:
/// the listener must not wait on the publish and stop watching its
/// subscription. B goes down, bypasses, and comes back once publishing does.
pub async fn a_stalled_publish_is_found_by_heartbeats<S: SessionStore + Clone, C>(
    store: &S,
    channel: Faulty<C>,
) where
    C: InvalidationChannel + Clone,
{
    found_by_heartbeats(
        store,
        channel,
        |faults| &faults.stall_publish,
        "that it cannot publish",
    )
    .await;
}

/// With `fault` on, B must notice (`what`) and stay down; with it off
/// again, B must come back by itself.
async fn found_by_heartbeats<S: SessionStore + Clone, C>(
    store: &S,
    channel: Faulty<C>,
    fault: impl Fn(&ChannelFaults) -> &AtomicBool,
    what: &str,
) where
    C: InvalidationChannel + Clone,
{
    let b = quick_builder(store, channel.clone()).build().unwrap();
    all_live(&[&b]).await;
    let gaps = b.gaps();
    fault(&channel.faults).store(true, Ordering::SeqCst);
    eventually(&format!("B to notice {what}"), || async { b.gaps() > gaps }).await;
    assert!(!b.is_live(), "B is live while it cannot hear itself");
    fault(&channel.faults).store(false, Ordering::SeqCst);
    assert!(b.wait_live(PATIENCE).await, "B did not come back");
}

/// A write is not held up by a channel whose publish hangs: it is done in
/// the store, and it returns once the publish is given up (after the
/// heartbeat timeout), not when the channel comes back.
pub async fn a_write_is_not_held_up_by_a_stalled_channel<S: SessionStore + Clone, C>(
    store: &S,
    channel: Faulty<C>,
) where
    C: InvalidationChannel + Clone,
{
    let a = quick_builder(store, channel.clone()).build().unwrap();
    all_live(&[&a]).await;
    let mut session = record(1);
    a.create(&mut session).await.unwrap();
    channel.faults.stall_publish.store(true, Ordering::SeqCst);
    let deleted = tokio::time::timeout(PATIENCE, a.delete(&session.id)).await;
    channel.faults.stall_publish.store(false, Ordering::SeqCst);
    assert!(
        matches!(deleted, Ok(Ok(()))),
        "the delete waited on the stalled channel: {deleted:?}"
    );
    assert_eq!(store.load(&session.id).await.unwrap(), None);
}

/// Deleting a user's sessions on A clears them from B's cache too.
pub async fn ending_a_users_sessions_reaches_every_node<S: SessionStore>(a: Node<S>, b: Node<S>) {
    let mut sessions = Vec::new();
    for i in 0..3 {
        let mut session = record(i);
        session.user_id = Some("ferris".into());
        a.create(&mut session).await.unwrap();
        assert!(b.load(&session.id).await.unwrap().is_some());
        sessions.push(session);
    }
    let ended = a
        .delete_sessions_of_user("ferris", Some(&sessions[0].id))
        .await
        .unwrap();
    assert_eq!(ended, 2);
    for ended in &sessions[1..] {
        eventually("B to forget an ended session", || async {
            b.load(&ended.id).await.unwrap().is_none()
        })
        .await;
    }
    assert!(b.load(&sessions[0].id).await.unwrap().is_some());
}

/// Touches absorbed on A are written in one batch per interval, forward
/// only, and what is pending is flushed on shutdown.
pub async fn touches_are_written_back_in_batches<S: SessionStore + Clone, C>(store: &S, channel: C)
where
    C: InvalidationChannel + Clone,
{
    let a = builder(store, channel.clone())
        .touch_write_back(Duration::from_millis(500))
        .build()
        .unwrap();
    all_live(&[&a]).await;
    let mut sessions = Vec::new();
    for i in 0..20 {
        let mut session = record(i);
        a.create(&mut session).await.unwrap();
        sessions.push(session);
    }
    let faults = a.store().faults();
    faults.reset_calls();
    let later = session_testkit::suite::now_micros() + session_core::time::Duration::days(1);
    for round in 0..5 {
        for session in &sessions {
            let expiry = later + session_core::time::Duration::seconds(round);
            assert!(a.touch(&session.id, expiry).await.unwrap());
        }
    }
    assert_eq!(
        faults.calls(Operation::Touch) + faults.calls(Operation::TouchMany),
        0,
        "no touch reached the store"
    );
    // A write-back may have run between two rounds and taken what was
    // absorbed so far; nothing else empties the queue.
    assert!(a.pending_touches() <= sessions.len());
    let expected = later + session_core::time::Duration::seconds(4);
    eventually("the write-back of every touched session", || async {
        for session in &sessions {
            let stored = store.load(&session.id).await.unwrap().unwrap();
            if stored.expiry_date != expected {
                assert!(
                    stored.expiry_date <= expected,
                    "a touch went past the latest absorbed"
                );
                return false;
            }
        }
        true
    })
    .await;
    assert_eq!(a.pending_touches(), 0);
    assert_eq!(
        faults.calls(Operation::Touch),
        0,
        "not one touch per touch absorbed"
    );
    // One batch, or two when a write-back ran while the rounds were under
    // way: 100 touches absorbed either way.
    assert!(
        (1..=2).contains(&faults.calls(Operation::TouchMany)),
        "written back in {} batches",
        faults.calls(Operation::TouchMany)
    );

    // Pending at shutdown: flushed.
    let latest = expected + session_core::time::Duration::hours(1);
    assert!(a.touch(&sessions[0].id, latest).await.unwrap());
    a.shutdown().await.unwrap();
    assert_eq!(a.pending_touches(), 0);
    assert_eq!(
        store
            .load(&sessions[0].id)
            .await
            .unwrap()
            .unwrap()
            .expiry_date,
        latest
    );
}
