//! [`NearCache`]: the cache, its fill guard, and the task that listens to
//! the invalidation channel.

use std::{
    collections::HashMap,
    fmt,
    hash::{BuildHasher, RandomState},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, PoisonError, Weak,
    },
    time::Duration,
};

use moka::sync::Cache;
use session_core::{
    async_trait, time::OffsetDateTime, ExpiredDeletion, Id, Record, Result, SessionStore, Update,
};
use tokio::{sync::watch, task::JoinHandle, time::Instant};
use tracing::Instrument as _;

use crate::{
    channel::InvalidationChannel,
    message::{Message, Received, MAX_IDS_PER_MESSAGE},
};

/// Why a [`NearCache`] could not be built.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The cache runs tasks (the channel listener, the write-back) and must
    /// be built inside a tokio runtime.
    #[error("NearCache must be built inside a tokio runtime")]
    NoRuntime,
    /// A setting is out of range.
    #[error("invalid NearCache setting: {0}")]
    Invalid(&'static str),
}

/// A bounded in-process cache of sessions in front of a shared store `S`,
/// kept coherent across every process of a deployment by an
/// [`InvalidationChannel`].
///
/// - **Reads** are served from the cache only while the channel is live
///   (its subscription confirmed end to end by a heartbeat this process
///   published and received back) and only for entries younger than the
///   staleness bound ([`max_staleness`](NearCacheBuilder::max_staleness));
///   otherwise they go to the store, and fill the cache.
/// - **Writes** (`create`, `save`, `update`, `touch`, `delete`, the user
///   deletions) go to the store first; then this process's copy is replaced
///   or evicted and the id is published, so every other process evicts its
///   copy on receipt.
/// - **Fills are guarded**: each fill and each write takes a ticket (a
///   per-id generation, plus a generation of the whole cache) before calling
///   the store, and touches the cache only if nothing came in between: an
///   invalidation, a concurrent write, a gap in the channel. A read that saw
///   the store before a delete or a newer write can therefore never put the
///   older record back.
/// - **Gaps**: when the subscription breaks (a disconnect, a lagging
///   receiver, a failed resubscribe, or a heartbeat that does not come back
///   in time — a half-open connection), the cache is cleared and bypassed
///   until a new subscription is confirmed; invalidations lost in the gap
///   cannot leave a stale entry behind.
/// - **Expiry write-back** (optional,
///   [`touch_write_back`](NearCacheBuilder::touch_write_back)): sliding
///   expiry `touch`es of cached sessions are absorbed and written to the
///   store in batches ([`SessionStore::touch_many`]), forward only, and
///   flushed on [`shutdown`](Self::shutdown).
///
/// Whatever happens to the channel, no entry is ever served older than the
/// staleness bound: the cache's time-to-live is that bound.
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use session_caching::{LocalChannel, NearCache};
/// use session_core::{time::{Duration, OffsetDateTime}, Record, SessionStore};
/// use session_memory::MemoryStore;
///
/// let shared = MemoryStore::default(); // in production: Redis, PostgreSQL, ...
/// let channel = LocalChannel::default(); // in production: RedisChannel, PostgresChannel
/// let node_a = NearCache::builder(shared.clone(), channel.clone()).build()?;
/// let node_b = NearCache::builder(shared.clone(), channel.clone()).build()?;
/// node_a.wait_live(std::time::Duration::from_secs(5)).await;
/// node_b.wait_live(std::time::Duration::from_secs(5)).await;
///
/// let mut record = Record::new(OffsetDateTime::now_utc() + Duration::hours(1));
/// node_a.create(&mut record).await?;
/// assert!(node_b.load(&record.id).await?.is_some()); // now cached on B too
/// node_a.delete(&record.id).await?; // B evicts its copy when the message arrives
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
/// ```
pub struct NearCache<S: SessionStore> {
    shared: Arc<Shared<S>>,
    tasks: Arc<Tasks>,
}

impl<S: SessionStore> Clone for NearCache<S> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            tasks: Arc::clone(&self.tasks),
        }
    }
}

impl<S: SessionStore> fmt::Debug for NearCache<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NearCache")
            .field("store", &self.shared.store)
            .field("channel", &self.shared.channel)
            .field("live", &self.shared.is_live())
            .field("entries", &self.shared.cache.entry_count())
            .finish_non_exhaustive()
    }
}

/// Builds a [`NearCache`]; see each setting for its default.
#[must_use]
pub struct NearCacheBuilder<S> {
    store: S,
    channel: Arc<dyn InvalidationChannel>,
    capacity: Capacity,
    max_staleness: Duration,
    heartbeat_interval: Duration,
    heartbeat_timeout: Duration,
    write_back: Option<Duration>,
}

enum Capacity {
    Entries(u64),
    Bytes(u64),
}

impl<S: SessionStore> NearCacheBuilder<S> {
    /// Holds at most this many sessions (default 10,000), evicting the least
    /// useful.
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.capacity = Capacity::Entries(entries);
        self
    }

    /// Holds sessions whose data takes at most about this many bytes (an
    /// estimate of their encoded size), instead of a number of entries.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.capacity = Capacity::Bytes(bytes);
        self
    }

    /// The oldest an entry may be when it is served (default 30 seconds):
    /// the bound on staleness when a message is lost without the channel
    /// noticing. Shorter means fresher and more store reads.
    pub fn max_staleness(mut self, max_staleness: Duration) -> Self {
        self.max_staleness = max_staleness;
        self
    }

    /// How often the cache checks its subscription end to end, by
    /// publishing a heartbeat it must receive back within `timeout`
    /// (defaults: every second, 5 seconds). A heartbeat that does not come
    /// back (a half-open connection) is a gap: the cache is cleared and
    /// bypassed until a new subscription is confirmed.
    ///
    /// `timeout` also bounds how long a write waits for its invalidation to
    /// be published: past it the write returns (it is in the store), the
    /// failure is logged, and other processes' copies age out within the
    /// staleness bound, as for any lost message.
    pub fn heartbeat(mut self, interval: Duration, timeout: Duration) -> Self {
        self.heartbeat_interval = interval;
        self.heartbeat_timeout = timeout;
        self
    }

    /// Absorbs `touch`es of cached, active sessions and writes them to the
    /// store in one batch per `interval` (default: off, every touch goes to
    /// the store). Choose an interval far shorter than the shortest
    /// inactivity period: an absorbed touch is not durable until flushed.
    pub fn touch_write_back(mut self, interval: Duration) -> Self {
        self.write_back = Some(interval);
        self
    }

    /// Builds the cache and starts its tasks (the channel listener, the
    /// write-back) on the current tokio runtime. It is live once its first
    /// subscription is confirmed ([`NearCache::wait_live`]); until then
    /// every read goes to the store.
    pub fn build(self) -> std::result::Result<NearCache<S>, BuildError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        if self.max_staleness.is_zero() {
            return Err(BuildError::Invalid("max_staleness must be above zero"));
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_timeout < self.heartbeat_interval {
            return Err(BuildError::Invalid(
                "the heartbeat interval must be above zero and the timeout at least the interval",
            ));
        }
        if self.write_back.is_some_and(|interval| interval.is_zero()) {
            return Err(BuildError::Invalid(
                "the write-back interval must be above zero",
            ));
        }
        let builder = Cache::builder().time_to_live(self.max_staleness);
        let cache = match self.capacity {
            Capacity::Entries(entries) => builder.max_capacity(entries).build(),
            Capacity::Bytes(bytes) => builder
                .max_capacity(bytes)
                .weigher(|_, record: &Arc<Record>| weight(record))
                .build(),
        };
        let shared = Arc::new(Shared {
            store: self.store,
            channel: self.channel,
            cache,
            guard: Guard::new(),
            node: rand::random(),
            pending: Mutex::new(HashMap::new()),
            write_back: self.write_back.is_some(),
            received: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            publish_timeout: self.heartbeat_timeout,
        });
        let (stop, stopped) = watch::channel(false);
        let mut handles = vec![runtime.spawn(listen(
            Arc::downgrade(&shared),
            Arc::clone(&shared.channel),
            shared.node,
            self.heartbeat_interval,
            self.heartbeat_timeout,
            stopped.clone(),
        ))];
        if let Some(interval) = self.write_back {
            handles.push(runtime.spawn(write_back(Arc::downgrade(&shared), interval, stopped)));
        }
        Ok(NearCache {
            shared,
            tasks: Arc::new(Tasks {
                stop,
                handles: Mutex::new(handles),
            }),
        })
    }
}

/// A rough size of a record in bytes, for a bound in bytes.
fn weight(record: &Record) -> u32 {
    fn size(value: &serde_json::Value) -> usize {
        match value {
            serde_json::Value::String(text) => text.len() + 2,
            serde_json::Value::Array(items) => items.iter().map(size).sum::<usize>() + 2,
            serde_json::Value::Object(map) => {
                map.iter().map(|(k, v)| k.len() + size(v)).sum::<usize>() + 2
            }
            _ => 8,
        }
    }
    let data: usize = record.data.iter().map(|(k, v)| k.len() + size(v)).sum();
    let size = 64 + data + record.user_id.as_ref().map_or(0, String::len);
    u32::try_from(size).unwrap_or(u32::MAX)
}

/// The background tasks; stopped when the last clone of the cache goes.
struct Tasks {
    stop: watch::Sender<bool>,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Tasks {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for handle in self
            .handles
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            handle.abort();
        }
    }
}

struct Shared<S> {
    store: S,
    channel: Arc<dyn InvalidationChannel>,
    cache: Cache<Id, Arc<Record>>,
    guard: Guard,
    /// This cache's name on the channel: its own messages are not
    /// invalidations for it, and its heartbeats are recognised.
    node: u64,
    /// Absorbed touches not yet written: the latest expiry date per id.
    pending: Mutex<HashMap<Id, OffsetDateTime>>,
    write_back: bool,
    /// Invalidation and clear messages from other processes applied so far.
    received: AtomicU64,
    /// How many times the channel went down (each cleared the cache).
    gaps: AtomicU64,
    /// How long a publish may take (the heartbeat timeout).
    publish_timeout: Duration,
}

/// How a publish ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Published {
    Sent,
    Failed,
    TimedOut,
}

/// Counts `name` with `labels` when the `metrics` feature is on.
macro_rules! count {
    ($name:literal $(, $key:literal => $value:expr)* ; $amount:expr) => {{
        #[cfg(feature = "metrics")]
        metrics::counter!($name $(, $key => $value)*).increment($amount);
    }};
}

/// Lock stripes of the fill guard (see `CachingSessionStore` in
/// session-core for the reasoning; here the cache is synchronous, so the
/// stripes are plain mutexes held only around a map operation).
const STRIPES: usize = 64;

struct Guard {
    stripes: Box<[Stripe]>,
    /// Bumped by every gap and every clear: voids every ticket taken before.
    epoch: AtomicU64,
    live: AtomicBool,
    hasher: RandomState,
}

#[derive(Default)]
struct Stripe {
    lock: Mutex<()>,
    generation: AtomicU64,
}

#[derive(Clone, Copy)]
struct Ticket {
    stripe: usize,
    generation: u64,
    epoch: u64,
}

impl Guard {
    fn new() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
            epoch: AtomicU64::new(0),
            live: AtomicBool::new(false),
            hasher: RandomState::new(),
        }
    }

    fn ticket(&self, id: &Id) -> Ticket {
        let stripe = (self.hasher.hash_one(id) >> 32) as usize % STRIPES;
        Ticket {
            stripe,
            generation: self.stripes[stripe].generation.load(Ordering::Acquire),
            epoch: self.epoch.load(Ordering::Acquire),
        }
    }

    /// Runs `apply(clean)` under the ticket's stripe lock, `clean` saying
    /// whether nothing came in since the ticket was taken and the channel
    /// is live; every later holder of an older ticket finds it changed.
    fn enter<T>(&self, ticket: Ticket, apply: impl FnOnce(bool) -> T) -> T {
        let stripe = &self.stripes[ticket.stripe];
        let _locked = stripe.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = stripe.generation.fetch_add(1, Ordering::AcqRel);
        let clean = previous == ticket.generation
            && self.epoch.load(Ordering::Acquire) == ticket.epoch
            && self.live.load(Ordering::Acquire);
        apply(clean)
    }
}

impl<S: SessionStore> Shared<S> {
    /// A write carries its own expiry date: an earlier absorbed touch must
    /// not move it afterwards.
    fn forget_touch(&self, id: &Id) {
        if self.write_back {
            self.pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(id);
        }
    }

    fn is_live(&self) -> bool {
        self.guard.live.load(Ordering::Acquire)
    }

    /// The cached copy, if the cache may be used and holds an active one.
    fn cached(&self, id: &Id) -> Option<Record> {
        if !self.is_live() {
            return None;
        }
        let record = self.cache.get(id)?;
        record.is_active().then(|| Record::clone(&record))
    }

    /// [`cached`](Self::cached) for a read, counted as a hit or a miss.
    fn lookup(&self, id: &Id) -> Option<Record> {
        let found = self.cached(id);
        count!("session_cache_lookups_total", "cache" => "near", "result" => if found.is_some() { "hit" } else { "miss" }; 1);
        found
    }

    /// After a store call about `id` that began with `ticket`: caches
    /// `record` (what the store holds now) if nothing came in between, or
    /// evicts.
    fn settle(&self, ticket: Ticket, id: &Id, record: Option<&Record>) {
        self.guard.enter(ticket, |clean| match record {
            Some(record) if clean && record.is_active() => {
                self.cache.insert(*id, Arc::new(record.clone()));
            }
            _ => self.cache.invalidate(id),
        });
    }

    /// Another process changed `id`.
    fn evict(&self, id: &Id) {
        let ticket = self.guard.ticket(id);
        self.guard.enter(ticket, |_| self.cache.invalidate(id));
    }

    /// Forgets everything and voids every ticket (a user's sessions were
    /// deleted somewhere).
    fn clear(&self) {
        self.guard.epoch.fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate_all();
    }

    /// The channel broke: bypass the cache until it is live again.
    fn down(&self) {
        if self.guard.live.swap(false, Ordering::AcqRel) {
            tracing::warn!("session cache channel down; bypassing the cache");
            count!("session_near_cache_gaps_total"; 1);
            self.gaps.fetch_add(1, Ordering::AcqRel);
        }
        self.clear();
    }

    /// A subscription is confirmed: what was cached before is cleared (it
    /// may have missed invalidations), and the cache is used again.
    fn up(&self) {
        self.clear();
        self.guard.live.store(true, Ordering::Release);
        tracing::debug!("session cache channel live");
    }

    /// Tells every other process that these ids changed. A failure, or a
    /// publish that takes longer than the heartbeat timeout (a pool with no
    /// connection to give, a server that stopped answering), is logged: the
    /// store write it follows stands, and other processes' copies still age
    /// out within the staleness bound.
    async fn publish(&self, message: Message<'_>) -> Published {
        let text = message.encode(self.node);
        match tokio::time::timeout(self.publish_timeout, self.channel.publish(&text)).await {
            Ok(Ok(())) => Published::Sent,
            Ok(Err(error)) => {
                tracing::warn!(%error, "session cache could not publish to its channel");
                Published::Failed
            }
            Err(_) => {
                tracing::warn!("session cache gave up publishing to its channel (timed out)");
                Published::TimedOut
            }
        }
    }

    async fn publish_ids(&self, ids: &[Id]) {
        for chunk in ids.chunks(MAX_IDS_PER_MESSAGE) {
            self.publish(Message::Invalidate(chunk)).await;
        }
    }

    /// `record` as read from the store, with the expiry date of a touch
    /// absorbed here and not written back yet, which is newer.
    fn with_pending_touch(&self, record: &mut Record) {
        if !self.write_back {
            return;
        }
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&record.id)
            .copied();
        if let Some(expiry_date) = pending {
            record.expiry_date = record.expiry_date.max(expiry_date);
        }
    }

    /// Writes the absorbed touches to the store.
    async fn flush_touches(&self) -> Result<()> {
        let touches: Vec<(Id, OffsetDateTime)> = {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            pending.drain().collect()
        };
        if touches.is_empty() {
            return Ok(());
        }
        let span = tracing::debug_span!("session.near_cache.write_back", count = touches.len());
        let touched = match self.store.touch_many(&touches).instrument(span).await {
            Ok(touched) => touched,
            Err(error) => {
                // Touches only move forward: trying them all again later is
                // harmless, losing them is not.
                let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
                for (id, expiry_date) in touches {
                    let slot = pending.entry(id).or_insert(expiry_date);
                    *slot = (*slot).max(expiry_date);
                }
                return Err(error);
            }
        };
        // The sessions touched have a later expiry in the store now, and
        // those gone must not stay cached: other processes evict their
        // copies, and this one drops the gone.
        for ((id, _), touched) in touches.iter().zip(&touched) {
            if !touched {
                self.evict(id);
            }
        }
        count!("session_near_cache_touches_written_total"; touches.len() as u64);
        let ids: Vec<Id> = touches.iter().map(|(id, _)| *id).collect();
        self.publish_ids(&ids).await;
        Ok(())
    }
}

impl<S: SessionStore> NearCache<S> {
    /// A builder for a cache in front of `store`, coherent over `channel`.
    pub fn builder(store: S, channel: impl InvalidationChannel) -> NearCacheBuilder<S> {
        NearCacheBuilder {
            store,
            channel: Arc::new(channel),
            capacity: Capacity::Entries(10_000),
            max_staleness: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(5),
            write_back: None,
        }
    }

    /// The shared store.
    pub fn store(&self) -> &S {
        &self.shared.store
    }

    /// Whether the channel's subscription is confirmed, so reads may be
    /// served from the cache.
    pub fn is_live(&self) -> bool {
        self.shared.is_live()
    }

    /// Waits until the cache is live, at most `timeout`; whether it is.
    pub async fn wait_live(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.is_live() {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// How many sessions are cached (an estimate: evictions are applied
    /// lazily).
    pub fn entry_count(&self) -> u64 {
        self.shared.cache.entry_count()
    }

    /// How many messages from other processes (invalidations, clears) this
    /// cache has applied: for tests and metrics.
    pub fn messages_received(&self) -> u64 {
        self.shared.received.load(Ordering::Acquire)
    }

    /// How many times the channel went down since the cache was built (each
    /// time the cache was cleared and bypassed until live again): for tests
    /// and metrics. A gap can be over before [`is_live`](Self::is_live) is
    /// next read; this count keeps it.
    pub fn gaps(&self) -> u64 {
        self.shared.gaps.load(Ordering::Acquire)
    }

    /// How many absorbed touches wait for the next write-back.
    pub fn pending_touches(&self) -> usize {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Writes the absorbed touches now, then stops the background tasks:
    /// call it on graceful shutdown so no sliding expiry is lost. The cache
    /// keeps working afterwards, bypassed (not live) and without
    /// write-back.
    pub async fn shutdown(&self) -> Result<()> {
        let _ = self.tasks.stop.send(true);
        let handles: Vec<JoinHandle<()>> = self
            .tasks
            .handles
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
            .collect();
        for handle in handles {
            let _ = handle.await;
        }
        self.shared.down();
        self.shared.flush_touches().await
    }
}

#[async_trait]
impl<S: SessionStore> SessionStore for NearCache<S> {
    async fn create(&self, record: &mut Record) -> Result<()> {
        let shared = &*self.shared;
        let requested = record.id;
        let ticket = shared.guard.ticket(&requested);
        let created = shared.store.create(record).await;
        // An id drawn fresh by the store is new to everyone: nothing to
        // invalidate elsewhere, and no ticket of its own to fill with.
        if record.id != requested || created.is_err() {
            shared.settle(ticket, &requested, None);
        }
        created?;
        // No message: no process can hold an active copy of an id that had
        // no active record (an expired copy is never served).
        if record.id == requested {
            shared.settle(ticket, &record.id, Some(record));
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> Result<()> {
        let shared = &*self.shared;
        let ticket = shared.guard.ticket(&record.id);
        shared.forget_touch(&record.id);
        let saved = shared.store.save(record).await;
        shared.settle(ticket, &record.id, saved.is_ok().then_some(record));
        shared.publish_ids(&[record.id]).await;
        saved
    }

    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        let shared = &*self.shared;
        if let Some(record) = shared.lookup(session_id) {
            return Ok(Some(record));
        }
        let ticket = shared.guard.ticket(session_id);
        let mut loaded = shared.store.load(session_id).await?;
        if let Some(record) = &mut loaded {
            shared.with_pending_touch(record);
        }
        shared.settle(ticket, session_id, loaded.as_ref());
        Ok(loaded)
    }

    async fn delete(&self, session_id: &Id) -> Result<()> {
        let shared = &*self.shared;
        let ticket = shared.guard.ticket(session_id);
        shared.forget_touch(session_id);
        let deleted = shared.store.delete(session_id).await;
        shared.settle(ticket, session_id, None);
        shared.publish_ids(&[*session_id]).await;
        deleted
    }

    async fn update(&self, record: &mut Record) -> Result<Update> {
        let shared = &*self.shared;
        let id = record.id;
        let ticket = shared.guard.ticket(&id);
        let updated = shared.store.update(record).await;
        match &updated {
            Ok(Update::Written) => {
                shared.forget_touch(&id);
                shared.settle(ticket, &id, Some(record));
                shared.publish_ids(&[id]).await;
            }
            // What the store holds now, as fresh as a read.
            Ok(Update::Conflict(current)) => shared.settle(ticket, &id, Some(current)),
            Ok(_) => shared.settle(ticket, &id, None),
            Err(_) => {
                shared.settle(ticket, &id, None);
                shared.publish_ids(&[id]).await;
            }
        }
        updated
    }

    async fn touch(&self, session_id: &Id, expiry_date: OffsetDateTime) -> Result<bool> {
        let shared = &*self.shared;
        if shared.write_back {
            if let Some(absorbed) = self.absorb_touch(session_id, expiry_date) {
                return Ok(absorbed);
            }
        }
        let ticket = shared.guard.ticket(session_id);
        let touched = shared.store.touch(session_id, expiry_date).await;
        shared.settle(ticket, session_id, None);
        if matches!(touched, Ok(true) | Err(_)) {
            shared.publish_ids(&[*session_id]).await;
        }
        touched
    }

    async fn touch_many(&self, touches: &[(Id, OffsetDateTime)]) -> Result<Vec<bool>> {
        let shared = &*self.shared;
        let tickets: Vec<Ticket> = touches
            .iter()
            .map(|(id, _)| shared.guard.ticket(id))
            .collect();
        let touched = shared.store.touch_many(touches).await;
        for ((id, _), ticket) in touches.iter().zip(tickets) {
            shared.settle(ticket, id, None);
        }
        let ids: Vec<Id> = touches.iter().map(|(id, _)| *id).collect();
        shared.publish_ids(&ids).await;
        touched
    }

    async fn sessions_of_user(&self, user_id: &str) -> Result<Vec<Record>> {
        let mut records = self.shared.store.sessions_of_user(user_id).await?;
        for record in &mut records {
            self.shared.with_pending_touch(record);
        }
        Ok(records)
    }

    async fn delete_sessions_of_user(&self, user_id: &str, keep: Option<&Id>) -> Result<u64> {
        let shared = &*self.shared;
        let deleted = shared.store.delete_sessions_of_user(user_id, keep).await;
        // Which ids went is not known here, and any process may hold some
        // of them: every process clears its cache (a rare operation).
        shared.clear();
        shared.publish(Message::Clear).await;
        deleted
    }
}

impl<S: SessionStore> NearCache<S> {
    /// Write-back: absorbs a touch of a cached, active session, moving the
    /// cached expiry forward; `None` when the store must be asked.
    fn absorb_touch(&self, id: &Id, expiry_date: OffsetDateTime) -> Option<bool> {
        let shared = &*self.shared;
        let cached = shared.cached(id)?;
        let ticket = shared.guard.ticket(id);
        shared.guard.enter(ticket, |clean| {
            // Only over the copy just read: anything newer (an
            // invalidation, a write) in between sends the touch to the
            // store.
            let current = shared.cache.get(id)?;
            if !clean || *current != cached {
                return None;
            }
            let mut moved = cached;
            moved.expiry_date = moved.expiry_date.max(expiry_date);
            shared
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(*id)
                .and_modify(|pending| *pending = (*pending).max(expiry_date))
                .or_insert(expiry_date);
            shared.cache.insert(*id, Arc::new(moved));
            count!("session_near_cache_touches_absorbed_total"; 1);
            Some(true)
        })
    }
}

#[async_trait]
impl<S: ExpiredDeletion> ExpiredDeletion for NearCache<S> {
    /// Sweeps the store; the cache never serves expired entries and lets
    /// them age out.
    async fn delete_expired(&self) -> Result<u64> {
        self.shared.store.delete_expired().await
    }
}

/// The listener: keeps one confirmed subscription, applies what arrives,
/// checks it end to end with heartbeats, and treats any break as a gap.
async fn listen<S: SessionStore>(
    shared: Weak<Shared<S>>,
    channel: Arc<dyn InvalidationChannel>,
    node: u64,
    interval: Duration,
    timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    const FIRST_BACKOFF: Duration = Duration::from_millis(50);
    const MAX_BACKOFF: Duration = Duration::from_secs(5);
    let mut backoff = FIRST_BACKOFF;
    let mut sequence: u64 = 0;
    loop {
        match shared.upgrade() {
            Some(shared) => shared.down(),
            None => return,
        }
        let subscribed = tokio::select! {
            subscribed = channel.subscribe() => subscribed,
            _ = stop.changed() => return,
        };
        let mut subscription = match subscribed {
            Ok(subscription) => subscription,
            Err(error) => {
                tracing::warn!(%error, "session cache could not subscribe; retrying");
                if pause(&mut stop, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        // Live only once a heartbeat made the round trip: the subscription
        // really receives what is published from now on.
        let mut outstanding: Option<(u64, Instant)> = None;
        let mut confirmed = false;
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = ticker.tick() => {
                    if let Some((_, sent)) = outstanding {
                        if sent.elapsed() > timeout {
                            tracing::warn!("session cache heartbeat did not come back; resubscribing");
                            break;
                        }
                    }
                    sequence += 1;
                    let Some(strong) = shared.upgrade() else { return };
                    // A publish that hangs (a pool with no free connection, a
                    // server that stopped answering) must not keep this loop
                    // from noticing a broken subscription: past the timeout
                    // it counts as a heartbeat that did not come back.
                    let heartbeat = strong.publish(Message::Heartbeat(sequence)).await;
                    if matches!(heartbeat, Published::TimedOut) {
                        tracing::warn!("session cache heartbeat could not be published in time; resubscribing");
                        break;
                    }
                    outstanding.get_or_insert((sequence, Instant::now()));
                }
                received = subscription.next() => {
                    let text = match received {
                        Ok(text) => text,
                        Err(error) => {
                            tracing::warn!(%error, "session cache subscription broke; resubscribing");
                            break;
                        }
                    };
                    let Some(strong) = shared.upgrade() else { return };
                    match Received::decode(&text) {
                        Some((from, Received::Heartbeat(seen))) if from == node => {
                            if outstanding.is_some_and(|(first, _)| seen >= first) {
                                outstanding = None;
                            }
                            if !confirmed {
                                confirmed = true;
                                backoff = FIRST_BACKOFF;
                                strong.up();
                            }
                        }
                        Some((from, _)) if from == node => {}
                        Some((_, Received::Invalidate(ids))) => {
                            for id in ids {
                                strong.evict(&id);
                            }
                            strong.received.fetch_add(1, Ordering::AcqRel);
                            count!("session_near_cache_messages_received_total", "kind" => "invalidate"; 1);
                        }
                        Some((_, Received::Clear)) => {
                            count!("session_near_cache_messages_received_total", "kind" => "clear"; 1);
                            strong.clear();
                            strong.received.fetch_add(1, Ordering::AcqRel);
                        }
                        Some((_, Received::Heartbeat(_))) => {}
                        None => tracing::debug!("ignoring a malformed session cache message"),
                    }
                }
            }
        }
        drop(subscription);
        // At once: messages may be lost from here on.
        match shared.upgrade() {
            Some(shared) => shared.down(),
            None => return,
        }
        if pause(&mut stop, backoff).await {
            return;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Sleeps `duration` unless asked to stop; whether it was.
async fn pause(stop: &mut watch::Receiver<bool>, duration: Duration) -> bool {
    tokio::select! {
        _ = stop.changed() => true,
        () = tokio::time::sleep(duration) => false,
    }
}

/// The write-back task: flushes absorbed touches every `interval`.
async fn write_back<S: SessionStore>(
    shared: Weak<Shared<S>>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = ticker.tick() => {}
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if let Err(error) = shared.flush_touches().await {
            tracing::warn!(%error, "session cache could not write back touches; trying again next time");
        }
    }
}
