//! Invalidation channels: how the processes of a deployment tell each other
//! which sessions changed.

use std::{fmt, sync::Arc};

use session_core::async_trait;
use tokio::sync::broadcast;

/// A channel failed: it could not publish, subscribe, or its subscription
/// broke (a disconnect, a lagging receiver). Keeps the driver's error.
#[derive(Debug, thiserror::Error)]
#[error("invalidation channel: {message}")]
pub struct ChannelError {
    message: &'static str,
    #[source]
    source: Option<session_core::BoxError>,
}

impl ChannelError {
    /// An error saying `message`, caused by `source`.
    pub fn new(message: &'static str, source: impl Into<session_core::BoxError>) -> Self {
        Self {
            message,
            source: Some(source.into()),
        }
    }

    /// An error saying `message`, with no underlying error.
    pub fn msg(message: &'static str) -> Self {
        Self {
            message,
            source: None,
        }
    }
}

/// A publish/subscribe channel that carries short text messages to every
/// subscriber, the publishing process included, in the order the backend
/// received them.
///
/// [`NearCache`](crate::NearCache) publishes one message per write and a
/// heartbeat now and then, and keeps one subscription open; when the
/// subscription breaks it opens a new one. A channel does not need to
/// reconnect by itself: it reports the break ([`Subscription::next`]
/// failing) and the cache does the rest.
#[async_trait]
pub trait InvalidationChannel: fmt::Debug + Send + Sync + 'static {
    /// Sends `message` to every current subscriber.
    async fn publish(&self, message: &str) -> Result<(), ChannelError>;

    /// Opens a subscription, once the backend confirmed it: messages
    /// published after this returns are delivered to it.
    async fn subscribe(&self) -> Result<Box<dyn Subscription>, ChannelError>;
}

/// One open subscription of an [`InvalidationChannel`].
#[async_trait]
pub trait Subscription: Send {
    /// The next message. An error means messages may have been lost (the
    /// connection dropped, the receiver lagged): the subscription is
    /// dropped and a new one opened.
    ///
    /// Must be cancel-safe: the cache drops a pending `next` whenever a
    /// heartbeat is due and calls it again, so a break noticed by a call
    /// that is then dropped must still be reported by the next call, never
    /// mended behind the cache's back (a subscription that reconnects by
    /// itself inside `next` would lose messages without a gap).
    async fn next(&mut self) -> Result<String, ChannelError>;
}

#[async_trait]
impl<C: InvalidationChannel + ?Sized> InvalidationChannel for Arc<C> {
    async fn publish(&self, message: &str) -> Result<(), ChannelError> {
        (**self).publish(message).await
    }

    async fn subscribe(&self) -> Result<Box<dyn Subscription>, ChannelError> {
        (**self).subscribe().await
    }
}

/// An in-process channel: every [`NearCache`](crate::NearCache) holding a
/// clone of it hears the others. For tests (several "nodes" in one process)
/// and for a single process with several caches.
///
/// It can also simulate what goes wrong with real channels:
/// [`disconnect`](Self::disconnect) breaks every subscription, as a
/// dropped connection would.
#[derive(Clone)]
pub struct LocalChannel {
    sender: broadcast::Sender<Delivery>,
}

#[derive(Clone, Debug)]
enum Delivery {
    Message(Arc<str>),
    Disconnect,
}

impl LocalChannel {
    /// A channel whose subscribers may fall this many messages behind
    /// before their subscription breaks as lagging.
    pub fn with_capacity(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }

    /// Breaks every open subscription, as a lost connection would.
    pub fn disconnect(&self) {
        let _ = self.sender.send(Delivery::Disconnect);
    }
}

impl Default for LocalChannel {
    /// Subscribers may fall 4,096 messages behind.
    fn default() -> Self {
        Self::with_capacity(4_096)
    }
}

impl fmt::Debug for LocalChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalChannel")
            .field("subscribers", &self.sender.receiver_count())
            .finish()
    }
}

#[async_trait]
impl InvalidationChannel for LocalChannel {
    async fn publish(&self, message: &str) -> Result<(), ChannelError> {
        // No subscriber is not an error: nobody has anything to evict.
        let _ = self.sender.send(Delivery::Message(message.into()));
        Ok(())
    }

    async fn subscribe(&self) -> Result<Box<dyn Subscription>, ChannelError> {
        Ok(Box::new(LocalSubscription {
            receiver: self.sender.subscribe(),
        }))
    }
}

struct LocalSubscription {
    receiver: broadcast::Receiver<Delivery>,
}

#[async_trait]
impl Subscription for LocalSubscription {
    async fn next(&mut self) -> Result<String, ChannelError> {
        match self.receiver.recv().await {
            Ok(Delivery::Message(message)) => Ok(message.to_string()),
            Ok(Delivery::Disconnect) => Err(ChannelError::msg("disconnected")),
            Err(broadcast::error::RecvError::Lagged(_)) => {
                Err(ChannelError::msg("subscriber lagged; messages lost"))
            }
            Err(broadcast::error::RecvError::Closed) => Err(ChannelError::msg("channel closed")),
        }
    }
}
