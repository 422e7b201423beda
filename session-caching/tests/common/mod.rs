//! What the node tests share: a channel that can lose messages or go
//! silent on command, nodes over one store, and bounded polls.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

pub mod nodes;

use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use serde_json::json;
use session_caching::{ChannelError, InvalidationChannel, NearCache, Subscription};
use session_core::{async_trait, time::Duration as TimeDuration, Record, SessionStore};
use tokio::time::Instant;

/// How long a poll waits for something that must happen.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// Waits until `check` holds, polling; panics with `what` after
/// [`PATIENCE`]. Returns how long it took.
pub async fn eventually<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < PATIENCE, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A record holding `value`, an hour from expiry (to the microsecond, the
/// precision every store keeps).
pub fn record(value: i64) -> Record {
    session_testkit::suite::record_expiring_in(TimeDuration::hours(1), json!({ "v": value }))
}

/// Waits until every node is live.
pub async fn all_live<S: SessionStore>(nodes: &[&NearCache<S>]) {
    for node in nodes {
        assert!(node.wait_live(PATIENCE).await, "a node never went live");
    }
}

/// Waits until `node` has applied `count` more messages than `before`.
pub async fn received<S: SessionStore>(node: &NearCache<S>, before: u64, count: u64) {
    eventually("the invalidation to arrive", || async {
        node.messages_received() >= before + count
    })
    .await;
}

/// A channel around another that, on command, drops invalidations on
/// publish (a message lost without anyone noticing) or delivers nothing at
/// all (a half-open connection).
#[derive(Debug, Clone)]
pub struct Faulty<C> {
    inner: C,
    pub faults: Arc<ChannelFaults>,
}

#[derive(Debug, Default)]
pub struct ChannelFaults {
    /// Drop every invalidation published.
    pub lose_invalidations: AtomicBool,
    /// Deliver nothing to subscribers, with no error.
    pub silent: AtomicBool,
    /// Hold every publish until this is cleared (a pool with no connection
    /// to give, a server that stopped answering).
    pub stall_publish: AtomicBool,
}

impl<C> Faulty<C> {
    pub fn new(inner: C) -> Self {
        Self {
            inner,
            faults: Arc::default(),
        }
    }
}

#[async_trait]
impl<C: InvalidationChannel> InvalidationChannel for Faulty<C> {
    async fn publish(&self, message: &str) -> Result<(), ChannelError> {
        while self.faults.stall_publish.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if self.faults.lose_invalidations.load(Ordering::SeqCst) && !message.starts_with('h') {
            return Ok(());
        }
        self.inner.publish(message).await
    }

    async fn subscribe(&self) -> Result<Box<dyn Subscription>, ChannelError> {
        Ok(Box::new(FaultySubscription {
            inner: self.inner.subscribe().await?,
            faults: Arc::clone(&self.faults),
        }))
    }
}

struct FaultySubscription {
    inner: Box<dyn Subscription>,
    faults: Arc<ChannelFaults>,
}

#[async_trait]
impl Subscription for FaultySubscription {
    async fn next(&mut self) -> Result<String, ChannelError> {
        loop {
            let message = self.inner.next().await?;
            if !self.faults.silent.load(Ordering::SeqCst) {
                return Ok(message);
            }
        }
    }
}
