//! [`RedisStore`]: one Redis string per session, expired by Redis's TTL.

use std::{
    fmt,
    fmt::Write as _,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use fred::{
    bytes::Bytes,
    prelude::{ClientLike, Expiration, KeysInterface, SetOptions, Value},
};
use session_core::{
    async_trait, codec, time::OffsetDateTime, ExpiredDeletion, Id, Record, Result, SessionStore,
};

use crate::{error::backend, RedisStoreError};

/// The key prefix a new store uses: keys look like `session:<id>`.
pub const DEFAULT_KEY_PREFIX: &str = "session";

/// What goes between the key prefix and the session id.
pub const KEY_SEPARATOR: char = ':';

/// The oldest Redis (major, minor) the store works with: `SET .. PXAT`
/// arrived in Redis 6.2.
pub const MIN_REDIS_VERSION: (u64, u64) = (6, 2);

/// A session store on Redis, through a fred [`Client`](fred::prelude::Client)
/// or [`Pool`](fred::prelude::Pool), standalone, sentinel or cluster.
///
/// Each session is one Redis string holding the record encoded by
/// [`session_core::codec`], under the key `<prefix>:<id>` (see
/// [`with_key_prefix`](Self::with_key_prefix)), with an absolute expiry
/// (`PXAT`) at the record's expiry date. Redis removes expired sessions
/// itself, so [`delete_expired`](ExpiredDeletion::delete_expired) has nothing
/// to do and returns 0.
///
/// | operation | command |
/// |---|---|
/// | `create` | `SET key value NX PXAT <ms>`, retried with a fresh id when the key exists |
/// | `save` | `SET key value PXAT <ms>` (always writes) |
/// | `load` | `GET key` |
/// | `delete` | `DEL key` |
///
/// Needs Redis >= 6.2 ([`MIN_REDIS_VERSION`]); against an older server
/// `create` and `save` fail with [`RedisStoreError::UnsupportedServer`] as
/// the source of an [`Error::Backend`](session_core::Error::Backend).
pub struct RedisStore<C> {
    client: C,
    key_prefix: Arc<str>,
    // Set once the server reported a version that knows `PXAT`.
    version_checked: Arc<AtomicBool>,
}

impl<C: Clone> Clone for RedisStore<C> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            key_prefix: Arc::clone(&self.key_prefix),
            version_checked: Arc::clone(&self.version_checked),
        }
    }
}

impl<C> fmt::Debug for RedisStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

impl<C> RedisStore<C>
where
    C: KeysInterface + ClientLike + Send + Sync + 'static,
{
    /// A store on `client`, a fred `Client` or `Pool` (connected or not: fred
    /// queues commands until it connects), with keys `session:<id>`.
    ///
    /// Build the client with [`recommended_builder`](crate::recommended_builder)
    /// so calls fail within a bounded time when Redis is down.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use session_redis::{fred::prelude::*, RedisStore};
    ///
    /// let config = Config::from_url("redis://127.0.0.1:6379")?;
    /// let pool = session_redis::recommended_builder(config).build_pool(4)?;
    /// pool.init().await?;
    /// let store = RedisStore::new(pool);
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(client: C) -> Self {
        Self {
            client,
            key_prefix: Arc::from(DEFAULT_KEY_PREFIX),
            version_checked: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Puts the sessions under `prefix`: the key of a session is `prefix`,
    /// [`KEY_SEPARATOR`] (`:`) and the session id (22 URL-safe base64
    /// characters), e.g. `myapp:session:AAECAwQFBgcICQoLDA0ODw`. An empty
    /// prefix means keys are the bare id, with no separator.
    ///
    /// On Redis Cluster, a prefix holding a hash tag (`{...}`) sends every
    /// session to the same slot, hence the same node: leave braces out so
    /// sessions spread over the cluster.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = Arc::from(prefix.into());
        self
    }

    /// The key prefix (without the separator).
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// The fred client or pool the store uses.
    pub fn client(&self) -> &C {
        &self.client
    }

    /// The Redis key of the session `id`.
    pub fn key(&self, id: &Id) -> String {
        let mut key = String::with_capacity(self.key_prefix.len() + 1 + session_core::ID_TEXT_LEN);
        if !self.key_prefix.is_empty() {
            key.push_str(&self.key_prefix);
            key.push(KEY_SEPARATOR);
        }
        // Writing to a String cannot fail.
        let _ = write!(key, "{id}");
        key
    }

    /// An error if the server is known to be too old for `SET .. PXAT`.
    ///
    /// fred reads the server version when it connects; until then it is
    /// unknown and the command is sent anyway (an old server then rejects it
    /// and the next call reports the version).
    fn check_server_version(&self) -> Result<()> {
        if self.version_checked.load(Ordering::Relaxed) {
            return Ok(());
        }
        match self.client.server_version() {
            Some(version) if !supports_pxat(version.major, version.minor) => {
                Err(RedisStoreError::UnsupportedServer {
                    found: version.to_string(),
                }
                .into())
            }
            Some(_) => {
                self.version_checked.store(true, Ordering::Relaxed);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// `SET key value [NX] PXAT <expiry>`: whether the value was written.
    ///
    /// Every fred command future here is boxed on its own: it is about 5 KB,
    /// and held inline it would make the future `#[async_trait]` boxes for
    /// each store call 5 KB too, copied whole as it moves into its box. A box
    /// of its own is one allocation of a future built once; measured at 64
    /// concurrent loads it saves about 1 µs of CPU per call (see the README's
    /// Redis figures).
    async fn set(&self, record: &Record, only_if_absent: bool) -> Result<bool> {
        self.check_server_version()?;
        let value = Bytes::from(codec::encode_record(record)?);
        let options = only_if_absent.then_some(SetOptions::NX);
        let reply: Value = Box::pin(self.client.set(
            self.key(&record.id),
            value,
            Some(Expiration::PXAT(expiry_millis(record.expiry_date))),
            options,
            false,
        ))
        .await
        .map_err(|error| {
            // An old server rejects PXAT as a syntax error; say why.
            match self.check_server_version() {
                Err(too_old) => too_old,
                Ok(()) => backend(error),
            }
        })?;
        // `OK` when written, nil when NX found the key taken.
        Ok(!reply.is_null())
    }
}

/// Whether Redis `major.minor` knows `SET .. PXAT`.
fn supports_pxat(major: u64, minor: u64) -> bool {
    (major, minor) >= MIN_REDIS_VERSION
}

/// The record's expiry as Unix milliseconds for `PXAT`, rounded up: Redis
/// keeps a key at most one millisecond past its expiry date (and `load`
/// filters that millisecond out), never drops it early. Dates at or before
/// the epoch become 1 ms, as `PXAT` must be positive: Redis removes a key
/// whose `PXAT` has passed at once.
fn expiry_millis(expiry: OffsetDateTime) -> i64 {
    let nanos = expiry.unix_timestamp_nanos();
    let millis = nanos.div_euclid(1_000_000) + i128::from(nanos.rem_euclid(1_000_000) != 0);
    i64::try_from(millis.max(1)).unwrap_or(i64::MAX)
}

#[async_trait]
impl<C> SessionStore for RedisStore<C>
where
    C: KeysInterface + ClientLike + Send + Sync + 'static,
{
    #[tracing::instrument(level = "debug", skip_all, fields(session.id = %record.id))]
    async fn create(&self, record: &mut Record) -> Result<()> {
        while !self.set(record, true).await? {
            tracing::debug!("session id collision on create; drawing a new id");
            record.id = Id::default();
        }
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(session.id = %record.id))]
    async fn save(&self, record: &Record) -> Result<()> {
        self.set(record, false).await.map(drop)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(session.id = %session_id))]
    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        let bytes: Option<Bytes> = Box::pin(self.client.get(self.key(session_id)))
            .await
            .map_err(backend)?;
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let record = codec::decode_record(&bytes)?;
        // Redis may keep a key up to a millisecond past the expiry date.
        Ok(record
            .is_active_at(OffsetDateTime::now_utc())
            .then_some(record))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(session.id = %session_id))]
    async fn delete(&self, session_id: &Id) -> Result<()> {
        let _removed: i64 = Box::pin(self.client.del(self.key(session_id)))
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl<C> ExpiredDeletion for RedisStore<C>
where
    C: KeysInterface + ClientLike + Send + Sync + 'static,
{
    /// Redis expires sessions by their TTL: there is never anything to sweep.
    async fn delete_expired(&self) -> Result<u64> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use session_core::time::{macros::datetime, Duration};

    use super::*;

    #[test]
    fn expiry_rounds_up_to_the_millisecond() {
        let whole = datetime!(2030-01-01 00:00:00.123 UTC);
        let ms = whole.unix_timestamp_nanos() / 1_000_000;
        assert_eq!(i128::from(expiry_millis(whole)), ms);
        let micro_after = whole + Duration::microseconds(1);
        assert_eq!(i128::from(expiry_millis(micro_after)), ms + 1);
        let micro_before = whole - Duration::microseconds(1);
        assert_eq!(i128::from(expiry_millis(micro_before)), ms);
    }

    #[test]
    fn expiry_at_or_before_the_epoch_is_positive() {
        assert_eq!(expiry_millis(OffsetDateTime::UNIX_EPOCH), 1);
        assert_eq!(expiry_millis(datetime!(1900-01-01 0:00 UTC)), 1);
        assert_eq!(
            expiry_millis(OffsetDateTime::UNIX_EPOCH - Duration::microseconds(1)),
            1
        );
    }

    #[test]
    fn pxat_needs_redis_6_2() {
        assert!(!supports_pxat(5, 0));
        assert!(!supports_pxat(6, 0));
        assert!(supports_pxat(6, 2));
        assert!(supports_pxat(7, 0));
        assert!(supports_pxat(8, 0));
    }

    #[test]
    fn keys_have_prefix_and_separator() {
        let client = fred::prelude::Client::default();
        let id: Id = "AAECAwQFBgcICQoLDA0ODw".parse().expect("valid id");
        let store = RedisStore::new(client.clone());
        assert_eq!(store.key(&id), "session:AAECAwQFBgcICQoLDA0ODw");
        let store = store.with_key_prefix("app:sess");
        assert_eq!(store.key(&id), "app:sess:AAECAwQFBgcICQoLDA0ODw");
        let store = RedisStore::new(client).with_key_prefix("");
        assert_eq!(store.key(&id), "AAECAwQFBgcICQoLDA0ODw");
    }
}
