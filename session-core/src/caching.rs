//! A fast store in front of a durable one.

use std::{
    fmt,
    hash::{BuildHasher, RandomState},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::sync::{Mutex, MutexGuard};
use tracing::Instrument as _;

use crate::{Error, ExpiredDeletion, Id, Record, Result, SessionStore, Update};

/// Reads from a cache store first and keeps it filled from a backing store,
/// within one process.
///
/// - `load` asks the cache; on a miss it asks the store and, when the store
///   has the record, puts it in the cache.
/// - Every write (`create`, `save`, `update`, `touch`, `delete`, the user
///   deletions) goes to the store first, then to the cache: the record the
///   store accepted is written through, anything else (a failed or refused
///   write, a `Gone` update, a delete) evicts the cached copy.
/// - `sessions_of_user` asks the store, which holds every session.
/// - [`ExpiredDeletion`] sweeps the store, then the cache.
///
/// # Concurrency
///
/// Whatever the interleaving of concurrent calls, the cache never serves a
/// record the store has deleted, nor an older version than the store holds,
/// once the call that changed the store has returned. Each write and each
/// fill takes a ticket (a per-id generation, striped over a fixed number of
/// locks) before it calls the store, and touches the cache only under that
/// id's lock and only if no other write or fill of the id came in between;
/// otherwise it evicts. A load that read the store before a delete can
/// therefore not put the deleted record back, and of two racing writes the
/// later one to reach the cache evicts rather than overwrite with what may be
/// the older version. Deleting a user's sessions holds every lock at once.
///
/// # Failures
///
/// The cache is an optimisation and never the reason a request fails on its
/// own: a cache that fails to load is bypassed (with a warning), and a cache
/// that fails to fill on a read is skipped. When the cache fails to take a
/// write that the store accepted, the cached copy is evicted so it cannot be
/// served stale; only if that eviction also fails does the call return the
/// cache's error. A store that fails a write (which it may or may not have
/// applied) also evicts the cached copy.
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
#[derive(Clone)]
pub struct CachingSessionStore<Cache: SessionStore, Store: SessionStore> {
    cache: Cache,
    store: Store,
    guard: Arc<Guard>,
}

impl<Cache: SessionStore, Store: SessionStore> fmt::Debug for CachingSessionStore<Cache, Store> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachingSessionStore")
            .field("cache", &self.cache)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Lock stripes of the fill guard: enough that concurrent writes of
/// different sessions rarely share one (a shared stripe costs a needless
/// eviction, never a wrong answer), few enough that locking them all for a
/// user's sessions stays cheap.
const STRIPES: usize = 64;

/// Per-id generations, striped: the ordering of cache writes.
struct Guard {
    stripes: Box<[Stripe]>,
    // Keyed per store, so ids chosen by clients cannot be aimed at one stripe.
    hasher: RandomState,
}

#[derive(Default)]
struct Stripe {
    /// Changed only under `lock`; read without it for tickets.
    generation: AtomicU64,
    lock: Mutex<()>,
}

/// The generation of an id's stripe, taken before calling the store.
#[derive(Clone, Copy)]
struct Ticket {
    stripe: usize,
    generation: u64,
}

impl Guard {
    fn new() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
            hasher: RandomState::new(),
        }
    }

    fn ticket(&self, id: &Id) -> Ticket {
        let stripe = (self.hasher.hash_one(id) >> 32) as usize % STRIPES;
        Ticket {
            stripe,
            generation: self.stripes[stripe].generation.load(Ordering::Acquire),
        }
    }

    /// Locks the ticket's stripe and says whether nothing else entered it
    /// since the ticket was taken (then the caller may write the cache);
    /// either way, later holders of older tickets will find it changed.
    async fn enter(&self, ticket: Ticket) -> (MutexGuard<'_, ()>, bool) {
        let stripe = &self.stripes[ticket.stripe];
        let locked = stripe.lock.lock().await;
        let previous = stripe.generation.fetch_add(1, Ordering::AcqRel);
        (locked, previous == ticket.generation)
    }

    /// Locks every stripe (in order, so two callers cannot deadlock) and
    /// invalidates every ticket taken so far.
    async fn enter_all(&self) -> Vec<MutexGuard<'_, ()>> {
        let mut locked = Vec::with_capacity(STRIPES);
        for stripe in self.stripes.iter() {
            locked.push(stripe.lock.lock().await);
            stripe.generation.fetch_add(1, Ordering::AcqRel);
        }
        locked
    }
}

/// What a call leaves in the cache for one id, once the store has answered.
enum Settle<'a> {
    /// The record the store now holds.
    Fill(&'a Record),
    /// The store moved the expiry date forward to this instant.
    Touch(OffsetDateTime),
    /// Nothing: drop any cached copy.
    Evict,
}

impl<Cache: SessionStore, Store: SessionStore> CachingSessionStore<Cache, Store> {
    /// Puts `cache` in front of `store`.
    pub fn new(cache: Cache, store: Store) -> Self {
        Self {
            cache,
            store,
            guard: Arc::new(Guard::new()),
        }
    }

    /// The cache store.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The backing store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Brings the cache in line with what the store answered for `id`, under
    /// the id's lock: `settle` when no other write or fill came in since
    /// `ticket` was taken (`None`: unknown, so evict), else an eviction. A
    /// cache write that fails falls back to an eviction; only a failed
    /// eviction is an error.
    async fn settle(&self, ticket: Option<Ticket>, id: &Id, settle: Settle<'_>) -> Result<()> {
        let (_locked, clean) = match ticket {
            Some(ticket) => self.guard.enter(ticket).await,
            None => {
                let ticket = self.guard.ticket(id);
                let (locked, _) = self.guard.enter(ticket).await;
                (locked, false)
            }
        };
        let written = match settle {
            Settle::Fill(record) if clean => self.cache.save(record).await.map(|()| true),
            // A cache that no longer holds the id has nothing to move.
            Settle::Touch(expiry_date) if clean => {
                self.cache.touch(id, expiry_date).await.map(|_| true)
            }
            _ => Ok(false),
        };
        match written {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "session cache rejected a write; evicting"),
        }
        self.cache.delete(id).await.inspect_err(|error| {
            tracing::error!(%error, "session cache could not evict a stale entry");
        })
    }

    /// [`settle`](Self::settle) for a call whose own result matters more
    /// than the cache's: a failed eviction is logged, not returned.
    async fn settle_quietly(&self, ticket: Option<Ticket>, id: &Id, settle: Settle<'_>) {
        // `settle` has logged it.
        let _ = self.settle(ticket, id, settle).await;
    }
}

#[async_trait]
impl<Cache: SessionStore, Store: SessionStore> SessionStore for CachingSessionStore<Cache, Store> {
    async fn create(&self, record: &mut Record) -> Result<()> {
        async {
            let requested = record.id;
            let ticket = self.guard.ticket(&requested);
            if let Err(error) = self.store.create(record).await {
                self.settle_quietly(Some(ticket), &requested, Settle::Evict)
                    .await;
                return Err(error);
            }
            // A fresh id drawn by the store has no ticket of its own.
            let ticket = (record.id == requested).then_some(ticket);
            self.settle(ticket, &record.id, Settle::Fill(record)).await
        }
        .instrument(tracing::debug_span!("session.cache.create"))
        .await
    }

    async fn save(&self, record: &Record) -> Result<()> {
        async {
            let ticket = self.guard.ticket(&record.id);
            if let Err(error) = self.store.save(record).await {
                self.settle_quietly(Some(ticket), &record.id, Settle::Evict)
                    .await;
                return Err(error);
            }
            self.settle(Some(ticket), &record.id, Settle::Fill(record))
                .await
        }
        .instrument(tracing::debug_span!("session.cache.save"))
        .await
    }

    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        let span = tracing::debug_span!("session.cache.load", hit = tracing::field::Empty);
        async {
            match self.cache.load(session_id).await {
                Ok(Some(record)) => {
                    tracing::Span::current().record("hit", true);
                    #[cfg(feature = "metrics")]
                    crate::metrics::cache_lookup("caching", true);
                    return Ok(Some(record));
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "session cache failed to load; asking the store");
                }
            }
            tracing::Span::current().record("hit", false);
            #[cfg(feature = "metrics")]
            crate::metrics::cache_lookup("caching", false);
            let ticket = self.guard.ticket(session_id);
            let loaded = self.store.load(session_id).await?;
            let settle = match &loaded {
                Some(record) => Settle::Fill(record),
                None => Settle::Evict,
            };
            self.settle_quietly(Some(ticket), session_id, settle).await;
            Ok(loaded)
        }
        .instrument(span)
        .await
    }

    async fn delete(&self, session_id: &Id) -> Result<()> {
        async {
            let ticket = self.guard.ticket(session_id);
            let deleted = self.store.delete(session_id).await;
            // Evict even when the store failed: it may have deleted anyway.
            let evicted = self.settle(Some(ticket), session_id, Settle::Evict).await;
            deleted.and(evicted)
        }
        .instrument(tracing::debug_span!("session.cache.delete"))
        .await
    }

    async fn update(&self, record: &mut Record) -> Result<Update> {
        async {
            let ticket = Some(self.guard.ticket(&record.id));
            let id = record.id;
            match self.store.update(record).await {
                Ok(Update::Written) => {
                    self.settle(ticket, &id, Settle::Fill(record)).await?;
                    Ok(Update::Written)
                }
                Ok(Update::Conflict(current)) => {
                    self.settle_quietly(ticket, &id, Settle::Fill(&current))
                        .await;
                    Ok(Update::Conflict(current))
                }
                Ok(Update::Gone) => {
                    self.settle(ticket, &id, Settle::Evict).await?;
                    Ok(Update::Gone)
                }
                Err(error) => {
                    self.settle_quietly(ticket, &id, Settle::Evict).await;
                    Err(error)
                }
            }
        }
        .instrument(tracing::debug_span!("session.cache.update"))
        .await
    }

    async fn touch(&self, session_id: &Id, expiry_date: OffsetDateTime) -> Result<bool> {
        async {
            let ticket = Some(self.guard.ticket(session_id));
            match self.store.touch(session_id, expiry_date).await {
                Ok(true) => {
                    self.settle(ticket, session_id, Settle::Touch(expiry_date))
                        .await?;
                    Ok(true)
                }
                Ok(false) => {
                    self.settle(ticket, session_id, Settle::Evict).await?;
                    Ok(false)
                }
                Err(error) => {
                    self.settle_quietly(ticket, session_id, Settle::Evict).await;
                    Err(error)
                }
            }
        }
        .instrument(tracing::debug_span!("session.cache.touch"))
        .await
    }

    async fn sessions_of_user(&self, user_id: &str) -> Result<Vec<Record>> {
        self.store
            .sessions_of_user(user_id)
            .instrument(tracing::debug_span!("session.cache.sessions_of_user"))
            .await
    }

    async fn delete_sessions_of_user(&self, user_id: &str, keep: Option<&Id>) -> Result<u64> {
        async {
            // With every stripe locked, no fill or write-through can reach
            // the cache until the store and the cache both forgot the user's
            // sessions, and every ticket taken before is void.
            let _locked = self.guard.enter_all().await;
            let evicted = match self.cache.delete_sessions_of_user(user_id, keep).await {
                Err(Error::Unsupported(_)) => {
                    // A cache without a user index: evict what the store lists.
                    let listed = self.store.sessions_of_user(user_id).await?;
                    for record in listed.iter().filter(|r| Some(&r.id) != keep) {
                        self.cache.delete(&record.id).await?;
                    }
                    Ok(0)
                }
                evicted => evicted,
            };
            let removed = self.store.delete_sessions_of_user(user_id, keep).await;
            // A cache that could not evict might serve what the store
            // deleted: that is this call's error, after the store did its
            // part.
            let removed = removed?;
            evicted?;
            Ok(removed)
        }
        .instrument(tracing::debug_span!(
            "session.cache.delete_sessions_of_user"
        ))
        .await
    }
}

#[async_trait]
impl<Cache, Store> ExpiredDeletion for CachingSessionStore<Cache, Store>
where
    Cache: ExpiredDeletion,
    Store: ExpiredDeletion,
{
    /// Sweeps the store (whose count is returned), then the cache, whose
    /// copies of expired records are never served anyway but take room.
    async fn delete_expired(&self) -> Result<u64> {
        let removed = self.store.delete_expired().await?;
        if let Err(error) = self.cache.delete_expired().await {
            tracing::warn!(%error, "session cache failed to sweep expired copies");
        }
        Ok(removed)
    }
}
