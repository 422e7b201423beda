//! The moka-backed store.

use std::{
    fmt,
    sync::{Arc, Mutex, MutexGuard},
};

use moka::sync::Cache;
use session_core::{
    async_trait, codec,
    time::{Duration, OffsetDateTime},
    ExpiredDeletion, Id, Record, Result, SessionStore,
};

use crate::expiry::RecordExpiry;

/// What the cache holds per session.
///
/// Behind an [`Arc`] so moka, which hands out copies of values, copies a
/// pointer instead of the record.
pub(crate) type Value = Arc<Slot>;

/// One session's place in the cache.
///
/// The record sits behind a lock so a `save` that does not push the expiry
/// date past the one moka scheduled can replace it in place: a cache read
/// and a swap, instead of a moka insert, which costs several times more
/// (a new entry, a write log record and its share of moka's maintenance).
pub(crate) struct Slot {
    record: Mutex<Record>,
    /// When moka's timer drops the slot: the expiry date of the record it
    /// was inserted with plus the store's slack. Records written in place
    /// never expire later than this.
    pub(crate) scheduled_expiry: OffsetDateTime,
    /// The record's encoded size in bytes (saturated to `u32::MAX`) when the
    /// store weighs by size, else 1.
    weight: u32,
}

impl Slot {
    // A poisoned lock means a panic while a record was being replaced, and
    // a replacement is a single move: the record is whole either way, so the
    // store keeps serving rather than panicking every later caller.
    fn record(&self) -> MutexGuard<'_, Record> {
        self.record
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A bounded, process-local session store on a [moka](moka) cache.
///
/// Each session expires by itself at its record's `expiry_date` (moka's
/// per-entry [`Expiry`](moka::Expiry) policy), and `load` also checks the date
/// against the wall clock, so an expired record is never returned.
///
/// The cache is bounded either by a number of sessions ([`MokaStore::new`])
/// or by the encoded size of their records ([`MokaStore::with_max_bytes`]);
/// when full, moka evicts the sessions least likely to be used again
/// (TinyLFU). Evicted sessions are gone: use it alone only where losing a
/// session is acceptable, or as the cache of a
/// [`CachingSessionStore`](session_core::CachingSessionStore) in front of a
/// persistent store.
///
/// Cloning is cheap and every clone sees the same sessions.
#[derive(Clone)]
pub struct MokaStore {
    cache: Cache<Id, Value>,
    weigh_by_size: bool,
    expiry_slack: Duration,
}

/// How long past its expiry date moka may keep a session by default; see
/// [`MokaStore::with_expiry_slack`].
pub const DEFAULT_EXPIRY_SLACK: Duration = Duration::minutes(1);

impl fmt::Debug for MokaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MokaStore")
            .field("max_capacity", &self.cache.policy().max_capacity())
            .field("weigh_by_size", &self.weigh_by_size)
            .field("expiry_slack", &self.expiry_slack)
            .finish_non_exhaustive()
    }
}

impl Default for MokaStore {
    /// An unbounded store: sessions leave only when they expire or are
    /// deleted.
    fn default() -> Self {
        Self::new(None)
    }
}

impl MokaStore {
    /// A store holding at most `max_capacity` sessions (`None`: unbounded).
    ///
    /// ```
    /// let store = session_moka::MokaStore::new(Some(100_000));
    /// ```
    pub fn new(max_capacity: Option<u64>) -> Self {
        let builder = Cache::builder().expire_after(RecordExpiry);
        let builder = match max_capacity {
            Some(max) => builder.max_capacity(max),
            None => builder,
        };
        Self {
            cache: builder.build(),
            weigh_by_size: false,
            expiry_slack: DEFAULT_EXPIRY_SLACK,
        }
    }

    /// A store whose sessions take at most `max_bytes` of encoded records
    /// (the size [`session_core::codec::encode_record`] gives), so a few large
    /// sessions cannot crowd memory the way a count bound allows.
    ///
    /// Each `save` and `create` then encodes the record once to weigh it; a
    /// record larger than 4 GiB weighs 4 GiB.
    ///
    /// ```
    /// // About 64 MiB of session data.
    /// let store = session_moka::MokaStore::with_max_bytes(64 << 20);
    /// ```
    pub fn with_max_bytes(max_bytes: u64) -> Self {
        Self {
            cache: Cache::builder()
                .expire_after(RecordExpiry)
                .max_capacity(max_bytes)
                .weigher(|_id: &Id, value: &Value| value.weight)
                .build(),
            weigh_by_size: true,
            expiry_slack: DEFAULT_EXPIRY_SLACK,
        }
    }

    /// Lets moka keep a session up to `slack` past its expiry date
    /// (default [`DEFAULT_EXPIRY_SLACK`], one minute; negative counts as
    /// zero).
    ///
    /// `load` never returns an expired session either way; the slack only
    /// delays when moka frees it. In exchange, a `save` that moves the
    /// expiry date later by less than the slack (a sliding expiry saved on
    /// every request) replaces the record in place instead of inserting a new
    /// moka entry, so a busy session costs one moka insert per `slack` rather
    /// than one per save. Zero makes moka free sessions at their expiry date
    /// and every extending `save` an insert.
    ///
    /// ```
    /// use session_core::time::Duration;
    ///
    /// let store = session_moka::MokaStore::new(Some(100_000))
    ///     .with_expiry_slack(Duration::minutes(5));
    /// ```
    pub fn with_expiry_slack(mut self, slack: Duration) -> Self {
        self.expiry_slack = if slack.is_negative() {
            Duration::ZERO
        } else {
            slack
        };
        self
    }

    /// How many sessions the cache holds, as of its last maintenance (call
    /// [`run_pending_tasks`](Self::run_pending_tasks) first for an exact
    /// figure).
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    /// The total weight of the cached sessions: their count, or their encoded
    /// size in bytes for a store made by
    /// [`with_max_bytes`](Self::with_max_bytes). Approximate like
    /// [`entry_count`](Self::entry_count).
    pub fn weighted_size(&self) -> u64 {
        self.cache.weighted_size()
    }

    /// Runs moka's pending maintenance now: applies recorded writes, evicts
    /// over the bound and drops expired sessions. moka also does this on its
    /// own as the cache is used.
    pub fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks();
    }

    fn value_of(&self, record: &Record) -> Result<Value> {
        let weight = if self.weigh_by_size {
            let size = codec::encode_record(record)?.len();
            u32::try_from(size).unwrap_or(u32::MAX)
        } else {
            1
        };
        Ok(Arc::new(Slot {
            record: Mutex::new(record.clone()),
            scheduled_expiry: record.expiry_date.saturating_add(self.expiry_slack),
            weight,
        }))
    }

    /// Replaces the record of a cached session in place when that keeps
    /// the cache's view right: moka's timer still fires at or after the new
    /// expiry date (within the slack), and the weight (when weighing) is not
    /// in play. Returns whether it did.
    fn save_in_place(&self, record: &Record) -> bool {
        if self.weigh_by_size {
            return false;
        }
        let Some(slot) = self.cache.get(&record.id) else {
            return false;
        };
        if record.expiry_date > slot.scheduled_expiry {
            // moka would drop the session before its new expiry date.
            return false;
        }
        let copy = record.clone();
        let old = std::mem::replace(&mut *slot.record(), copy);
        // The old record is freed outside the lock.
        drop(old);
        true
    }
}

#[async_trait]
impl SessionStore for MokaStore {
    #[tracing::instrument(level = "debug", name = "session.moka.create", skip_all)]
    async fn create(&self, record: &mut Record) -> Result<()> {
        loop {
            let value = self.value_of(record)?;
            let now = OffsetDateTime::now_utc();
            // Insert-if-absent under moka's per-key lock: concurrent creates of
            // one id are serialized and exactly one of them finds it free. An
            // expired record not yet dropped by moka counts as free.
            let entry = self
                .cache
                .entry(record.id)
                .or_insert_with_if(|| value, |held| !held.record().is_active_at(now));
            if entry.is_fresh() {
                return Ok(());
            }
            tracing::debug!("session id collision on create; drawing a new id");
            record.id = Id::default();
        }
    }

    #[tracing::instrument(level = "debug", name = "session.moka.save", skip_all)]
    async fn save(&self, record: &Record) -> Result<()> {
        if !record.is_active() {
            // Saved already expired: it could never load, and moka would
            // hold it until its timer wheel next turns (about a second).
            // The version it replaces must go all the same.
            self.cache.invalidate(&record.id);
            return Ok(());
        }
        if self.save_in_place(record) {
            return Ok(());
        }
        let value = self.value_of(record)?;
        self.cache.insert(record.id, value);
        Ok(())
    }

    #[tracing::instrument(level = "debug", name = "session.moka.load", skip_all)]
    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        let Some(slot) = self.cache.get(session_id) else {
            return Ok(None);
        };
        let now = OffsetDateTime::now_utc();
        let record = slot.record();
        Ok(record.is_active_at(now).then(|| record.clone()))
    }

    #[tracing::instrument(level = "debug", name = "session.moka.delete", skip_all)]
    async fn delete(&self, session_id: &Id) -> Result<()> {
        self.cache.invalidate(session_id);
        Ok(())
    }
}

/// Expiry is native: moka drops each session at its expiry date by itself.
/// `delete_expired` runs moka's pending maintenance, which frees the expired
/// entries at once, and returns 0 because moka does not say how many.
#[async_trait]
impl ExpiredDeletion for MokaStore {
    #[tracing::instrument(level = "debug", name = "session.moka.delete_expired", skip_all)]
    async fn delete_expired(&self) -> Result<u64> {
        self.cache.run_pending_tasks();
        Ok(0)
    }
}
