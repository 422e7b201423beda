//! A fast store in front of a durable one.

use async_trait::async_trait;
use tracing::Instrument as _;

use crate::{ExpiredDeletion, Id, Record, Result, SessionStore};

/// Reads from a cache store first and keeps it filled from a backing store.
///
/// - `load` asks the cache; on a miss it asks the store and, when the store
///   has the record, puts it in the cache.
/// - `create` and `save` write the store first, then the cache. A store
///   failure returns the error and leaves the cache untouched.
/// - `delete` removes from the store, then from the cache.
/// - [`ExpiredDeletion`] is forwarded to the store when the store has it; the
///   cache never returns expired records, whatever it does with them.
///
/// The cache is an optimisation and never the reason a request fails on its
/// own: a cache that fails to load is bypassed (with a warning), and a cache
/// that fails to fill on a read is skipped. When the cache fails to take a
/// write that the store accepted, the cached copy is evicted so it cannot be
/// served stale; only if that eviction also fails does the call return the
/// cache's error.
///
/// ```
/// # async fn demo() -> session_core::Result<()> {
/// use session_core::{CachingSessionStore, Record, SessionStore};
/// use session_memory::MemoryStore;
/// use time::{Duration, OffsetDateTime};
///
/// let store = CachingSessionStore::new(MemoryStore::default(), MemoryStore::default());
/// let mut record = Record::new(OffsetDateTime::now_utc() + Duration::hours(1));
/// store.create(&mut record).await?;
/// assert_eq!(store.load(&record.id).await?, Some(record));
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct CachingSessionStore<Cache: SessionStore, Store: SessionStore> {
    cache: Cache,
    store: Store,
}

impl<Cache: SessionStore, Store: SessionStore> CachingSessionStore<Cache, Store> {
    /// Puts `cache` in front of `store`.
    pub fn new(cache: Cache, store: Store) -> Self {
        Self { cache, store }
    }

    /// The cache store.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The backing store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Writes a record the store already holds into the cache; on failure,
    /// evicts the id so the cache cannot serve an older copy.
    async fn fill_cache(&self, record: &Record) -> Result<()> {
        let Err(save_error) = self.cache.save(record).await else {
            return Ok(());
        };
        tracing::warn!(error = %save_error, "session cache rejected a write; evicting");
        match self.cache.delete(&record.id).await {
            Ok(()) => Ok(()),
            Err(delete_error) => {
                tracing::error!(error = %delete_error, "session cache could not evict a stale entry");
                Err(delete_error)
            }
        }
    }
}

#[async_trait]
impl<Cache: SessionStore, Store: SessionStore> SessionStore for CachingSessionStore<Cache, Store> {
    async fn create(&self, record: &mut Record) -> Result<()> {
        let span = tracing::debug_span!("session.cache.create");
        async {
            self.store.create(record).await?;
            self.fill_cache(record).await
        }
        .instrument(span)
        .await
    }

    async fn save(&self, record: &Record) -> Result<()> {
        let span = tracing::debug_span!("session.cache.save");
        async {
            self.store.save(record).await?;
            self.fill_cache(record).await
        }
        .instrument(span)
        .await
    }

    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        let span = tracing::debug_span!("session.cache.load", hit = tracing::field::Empty);
        async {
            match self.cache.load(session_id).await {
                Ok(Some(record)) => {
                    tracing::Span::current().record("hit", true);
                    return Ok(Some(record));
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "session cache failed to load; asking the store");
                }
            }
            tracing::Span::current().record("hit", false);
            let loaded = self.store.load(session_id).await?;
            if let Some(record) = &loaded {
                if let Err(error) = self.cache.save(record).await {
                    tracing::warn!(%error, "session cache failed to fill");
                }
            }
            Ok(loaded)
        }
        .instrument(span)
        .await
    }

    async fn delete(&self, session_id: &Id) -> Result<()> {
        let span = tracing::debug_span!("session.cache.delete");
        async {
            // Store first: a load racing with this delete can then only
            // refill the cache from a store that still had the record, and
            // the cache delete below removes that copy.
            self.store.delete(session_id).await?;
            self.cache.delete(session_id).await
        }
        .instrument(span)
        .await
    }
}

#[async_trait]
impl<Cache, Store> ExpiredDeletion for CachingSessionStore<Cache, Store>
where
    Cache: SessionStore,
    Store: ExpiredDeletion,
{
    async fn delete_expired(&self) -> Result<u64> {
        self.store.delete_expired().await
    }
}
