//! [`PostgresChannel`]: invalidations over PostgreSQL `LISTEN`/`NOTIFY`.

use std::fmt;

use session_core::{async_trait, support::check_identifier};
use sqlx::{postgres::PgListener, PgPool};

use crate::{ChannelError, InvalidationChannel, Subscription};

/// The channel name unless told otherwise.
const DEFAULT_CHANNEL: &str = "session_invalidations";

/// The longest channel name PostgreSQL keeps (an identifier).
const MAX_CHANNEL_LEN: usize = 63;

/// Invalidations over PostgreSQL `LISTEN`/`NOTIFY`: no other server needed
/// when sessions live in PostgreSQL.
///
/// Messages are sent with `pg_notify` on a connection of the pool (delivered
/// at commit, in commit order), and each subscription is a `PgListener`, a
/// connection taken from the pool for as long as it listens: size the pool
/// for one more connection than the store needs. A subscription ends at the first sign that
/// notifications may have been lost (the connection dropped); the
/// [`NearCache`](crate::NearCache) then clears itself and listens anew.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use session_caching::{NearCache, PostgresChannel};
/// use session_sqlx::{sqlx::PgPool, PostgresStore};
///
/// let pool = PgPool::connect("postgres://127.0.0.1/test").await?;
/// let store = PostgresStore::new(pool.clone());
/// store.migrate().await?;
/// let sessions = NearCache::builder(store, PostgresChannel::new(pool)).build()?;
/// # let _ = sessions; Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresChannel {
    pool: PgPool,
    channel: String,
}

impl PostgresChannel {
    /// Notifies and listens through `pool` on `session_invalidations`.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            channel: DEFAULT_CHANNEL.to_owned(),
        }
    }

    /// Uses another channel: one per group of processes that share a
    /// store. The name must be a plain identifier (ASCII letters, digits,
    /// `_`, at most 63 bytes).
    pub fn with_channel_name(
        mut self,
        name: &str,
    ) -> Result<Self, session_core::support::InvalidName> {
        check_identifier(name, MAX_CHANNEL_LEN)?;
        name.clone_into(&mut self.channel);
        Ok(self)
    }

    /// The channel name.
    pub fn channel_name(&self) -> &str {
        &self.channel
    }
}

impl fmt::Debug for PostgresChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresChannel")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl InvalidationChannel for PostgresChannel {
    async fn publish(&self, message: &str) -> Result<(), ChannelError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.channel)
            .bind(message)
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(|error| ChannelError::new("PostgreSQL NOTIFY failed", error))
    }

    async fn subscribe(&self) -> Result<Box<dyn Subscription>, ChannelError> {
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(|error| ChannelError::new("could not connect a PostgreSQL listener", error))?;
        // A lost connection must reach the cache at once, as a gap: left to
        // itself, the listener would first reconnect (waiting for a pool
        // connection) and only then say that it had lost one.
        listener.eager_reconnect(false);
        listener
            .listen(&self.channel)
            .await
            .map_err(|error| ChannelError::new("PostgreSQL LISTEN failed", error))?;
        Ok(Box::new(PostgresSubscription { listener }))
    }
}

struct PostgresSubscription {
    listener: PgListener,
}

#[async_trait]
impl Subscription for PostgresSubscription {
    async fn next(&mut self) -> Result<String, ChannelError> {
        // `try_recv` says when the connection was lost (`None`) instead of
        // reconnecting behind our back: what was notified meanwhile is lost.
        match self.listener.try_recv().await {
            Ok(Some(notification)) => Ok(notification.payload().to_owned()),
            Ok(None) => Err(ChannelError::msg(
                "PostgreSQL listener connection lost; notifications may be lost",
            )),
            Err(error) => Err(ChannelError::new("PostgreSQL listener failed", error)),
        }
    }
}
