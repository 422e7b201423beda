//! [`RedisChannel`]: invalidations over Redis pub/sub.

use std::fmt;

use fred::{
    clients::Client,
    cmd,
    interfaces::{ClientLike, EventInterface, PubsubInterface},
    prelude::{Builder, Config},
};
use session_core::async_trait;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::{ChannelError, InvalidationChannel, Subscription};

/// The channel name unless told otherwise.
const DEFAULT_CHANNEL: &str = "session-invalidations";

/// Invalidations over Redis pub/sub, standalone or cluster (a `PUBLISH` on
/// any node of a cluster reaches subscribers on every node).
///
/// Messages are published with the client you give (the store's, say), and
/// each subscription is a connection of its own, made from `config`: a
/// subscribed connection can do nothing else. A subscription ends at the
/// first sign that messages may have been lost (the connection dropped or
/// reconnected, the receiver lagged); the [`NearCache`](crate::NearCache)
/// then clears itself and opens a new one.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use fred::prelude::{Builder, ClientLike, Config};
/// use session_caching::{NearCache, RedisChannel};
/// use session_redis::RedisStore;
///
/// let config = Config::from_url("redis://127.0.0.1:6379")?;
/// let pool = Builder::from_config(config.clone()).build_pool(4)?;
/// pool.init().await?;
/// let channel = RedisChannel::new(pool.next().clone(), config);
/// let sessions = NearCache::builder(RedisStore::new(pool), channel).build()?;
/// # let _ = sessions; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisChannel {
    publisher: Client,
    config: Config,
    channel: String,
    client_name: Option<String>,
}

impl RedisChannel {
    /// Publishes with `publisher` (connected) and subscribes with new
    /// connections made from `config`, on the channel
    /// `session-invalidations`.
    pub fn new(publisher: Client, config: Config) -> Self {
        Self {
            publisher,
            config,
            channel: DEFAULT_CHANNEL.to_owned(),
            client_name: None,
        }
    }

    /// Names the subscription's connection (`CLIENT SETNAME`), so it can be
    /// told apart in `CLIENT LIST`: one name per process, say.
    pub fn with_client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = Some(name.into());
        self
    }

    /// Uses another channel name: one per group of processes that share a
    /// store.
    pub fn with_channel_name(mut self, name: impl Into<String>) -> Self {
        self.channel = name.into();
        self
    }

    /// The channel name.
    pub fn channel_name(&self) -> &str {
        &self.channel
    }
}

impl fmt::Debug for RedisChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The config may hold a password.
        f.debug_struct("RedisChannel")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl InvalidationChannel for RedisChannel {
    async fn publish(&self, message: &str) -> Result<(), ChannelError> {
        self.publisher
            .publish::<(), _, _>(self.channel.as_str(), message)
            .await
            .map_err(|error| ChannelError::new("Redis PUBLISH failed", error))
    }

    async fn subscribe(&self) -> Result<Box<dyn Subscription>, ChannelError> {
        let client = Builder::from_config(self.config.clone())
            .build()
            .map_err(|error| ChannelError::new("invalid Redis configuration", error))?;
        client
            .init()
            .await
            .map_err(|error| ChannelError::new("could not connect to Redis", error))?;
        if let Some(name) = &self.client_name {
            let named: Result<(), _> = client
                .custom(cmd!("CLIENT"), vec!["SETNAME", name.as_str()])
                .await;
            if let Err(error) = named {
                let _ = client.quit().await;
                return Err(ChannelError::new("Redis CLIENT SETNAME failed", error));
            }
        }
        // Before SUBSCRIBE, so nothing that follows it is missed.
        let messages = client.message_rx();
        let reconnects = client.reconnect_rx();
        let errors = client.error_rx();
        if let Err(error) = client.subscribe(self.channel.as_str()).await {
            let _ = client.quit().await;
            return Err(ChannelError::new("Redis SUBSCRIBE failed", error));
        }
        Ok(Box::new(RedisSubscription {
            client: Some(client),
            channel: self.channel.clone(),
            messages,
            reconnects,
            errors,
        }))
    }
}

struct RedisSubscription {
    client: Option<Client>,
    channel: String,
    messages: broadcast::Receiver<fred::types::Message>,
    reconnects: broadcast::Receiver<fred::types::config::Server>,
    errors: broadcast::Receiver<(fred::error::Error, Option<fred::types::config::Server>)>,
}

#[async_trait]
impl Subscription for RedisSubscription {
    async fn next(&mut self) -> Result<String, ChannelError> {
        loop {
            tokio::select! {
                message = self.messages.recv() => match message {
                    Ok(message) if *message.channel == *self.channel => {
                        return message
                            .value
                            .as_string()
                            .ok_or_else(|| ChannelError::msg("a Redis message that is not text"));
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => {
                        return Err(ChannelError::msg("Redis subscriber lagged; messages lost"));
                    }
                    Err(RecvError::Closed) => {
                        return Err(ChannelError::msg("Redis subscriber closed"));
                    }
                },
                // After a reconnect the subscription is gone, and whatever
                // was published meanwhile with it.
                _ = self.reconnects.recv() => {
                    return Err(ChannelError::msg("Redis subscriber reconnected; messages may be lost"));
                }
                error = self.errors.recv() => {
                    return Err(match error {
                        Ok((error, _)) => ChannelError::new("Redis subscriber connection failed", error),
                        Err(_) => ChannelError::msg("Redis subscriber connection failed"),
                    });
                }
            }
        }
    }
}

impl Drop for RedisSubscription {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = client.quit().await;
                });
            }
        }
    }
}
