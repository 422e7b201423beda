//! The moka-backed store.

use std::{fmt, sync::Arc};

use moka::{ops::compute::Op, policy::EvictionPolicy, sync::Cache, Entry};
use session_core::{
    async_trait, codec,
    support::{next_version, store_span, FreshIds},
    time::{Duration, OffsetDateTime},
    ExpiredDeletion, Id, Record, Result, SessionStore, Update,
};

use crate::{
    expiry::RecordExpiry,
    index::UserIndex,
    slot::{list, Slot, State, Value},
};

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
/// # Atomicity
///
/// Every write that puts, replaces or removes a session's cache entry
/// (`create`, `save`, `delete`, an `update` or `touch` that moves the expiry
/// date past what moka scheduled, `delete_sessions_of_user`) runs as one
/// moka compute operation on the id (`entry(id).and_compute_with`), which
/// moka runs one at a time per id: the check (id free, record active,
/// version equal) and the write are one step. A write that keeps the entry
/// and only swaps its record (see
/// [`with_expiry_slack`](Self::with_expiry_slack)) does the check and the
/// swap under the entry's own lock; an entry being replaced or removed is
/// first marked retired under that lock, so no write lands in an entry the
/// cache is dropping. `update` writes version + 1 only over an active record
/// of the same version; `touch` only moves an active record's expiry date
/// forward, and moka's expiry timer follows it.
///
/// moka's own evictions (over the bound, or at expiry) are not ordered with
/// the store's writes: an `update` or `touch` that found its session just
/// before moka evicted it for room may put it back, as if moka had not
/// evicted it. moka never expires an active record (its timer fires at the
/// expiry date plus the slack), and a `delete` is final.
///
/// # User index
///
/// Beside the cache, a map from each user to the ids of its sessions (see
/// [`indexed_sessions`](Self::indexed_sessions)), so `sessions_of_user`
/// costs in proportion to that user's sessions:
///
/// - A write that gives a session a user lists it *before* the record with
///   that user becomes visible, in the same step; a write that takes the
///   user away (another user, none, `delete`) unlists it *after* the record
///   is gone from that user. A write that keeps the user leaves the index
///   alone. So a lookup never misses a session.
/// - moka's eviction listener unlists what moka drops by itself.
/// - Each listing names the cache entry that made it, so a late unlisting
///   (an eviction reported after the id was stored again) cannot remove a
///   newer entry's listing.
/// - Repaired on read: `sessions_of_user` reads each listed record and keeps
///   it only if it is there, active and still of that user, so a listing
///   that lags a concurrent write never shows another user's session.
///
/// Cloning is cheap and every clone sees the same sessions.
#[derive(Clone)]
pub struct MokaStore {
    cache: Cache<Id, Value>,
    index: Arc<UserIndex>,
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

/// How many sessions [`MokaStore::default`] holds at most.
pub const DEFAULT_MAX_CAPACITY: u64 = 100_000;

impl Default for MokaStore {
    /// A store holding at most [`DEFAULT_MAX_CAPACITY`] sessions: a cache
    /// that grows without bound is a memory leak waiting for a flood of
    /// cookieless requests.
    fn default() -> Self {
        Self::new(Some(DEFAULT_MAX_CAPACITY))
    }
}

impl MokaStore {
    /// A store holding at most `max_capacity` sessions (`None`: unbounded).
    ///
    /// Past the bound the least recently used sessions are evicted, never
    /// the one just written: a session `create` stored is loadable right
    /// after, however full the store. (moka's default admission policy,
    /// TinyLFU, would rather refuse a brand-new entry than evict a popular
    /// one, so a login could "succeed" and be gone at once; this store uses
    /// moka's LRU policy instead.) Evicted sessions are lost: see the crate
    /// documentation for what `MokaStore` is for.
    ///
    /// ```
    /// let store = session_moka::MokaStore::new(Some(100_000));
    /// ```
    pub fn new(max_capacity: Option<u64>) -> Self {
        Self::build(max_capacity, false)
    }

    /// A store whose sessions take at most `max_bytes` of encoded records
    /// (the size [`session_core::codec::encode_record`] gives), so a few large
    /// sessions cannot crowd memory the way a count bound allows.
    ///
    /// Each write that inserts a cache entry then encodes the record once to
    /// weigh it; a record larger than 4 GiB weighs 4 GiB. A `touch` keeps the
    /// weight measured when the entry was inserted.
    ///
    /// ```
    /// // About 64 MiB of session data.
    /// let store = session_moka::MokaStore::with_max_bytes(64 << 20);
    /// ```
    pub fn with_max_bytes(max_bytes: u64) -> Self {
        Self::build(Some(max_bytes), true)
    }

    fn build(max_capacity: Option<u64>, weigh_by_size: bool) -> Self {
        let index = Arc::new(UserIndex::default());
        let unlist = Arc::clone(&index);
        let builder = Cache::builder()
            // Least recently used goes first, and a new session is always
            // admitted (see `new`).
            .eviction_policy(EvictionPolicy::lru())
            .expire_after(RecordExpiry)
            .eviction_listener(move |id: Arc<Id>, slot: Value, _cause| {
                slot.evicted(&id, &unlist);
            });
        let builder = match max_capacity {
            Some(max) => builder.max_capacity(max),
            None => builder,
        };
        let builder = if weigh_by_size {
            builder.weigher(|_id: &Id, slot: &Value| slot.weight)
        } else {
            builder
        };
        Self {
            cache: builder.build(),
            index,
            weigh_by_size,
            expiry_slack: DEFAULT_EXPIRY_SLACK,
        }
    }

    /// Lets moka keep a session up to `slack` past its expiry date
    /// (default [`DEFAULT_EXPIRY_SLACK`], one minute; negative counts as
    /// zero).
    ///
    /// `load` never returns an expired session either way; the slack only
    /// delays when moka frees it. In exchange, a write that moves the
    /// expiry date later by less than the slack (a sliding expiry saved or
    /// touched on every request) replaces the record in place instead of
    /// inserting a new moka entry, so a busy session costs one moka insert
    /// per `slack` rather than one per write. Zero makes moka free sessions
    /// at their expiry date and every extending write an insert.
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

    /// How many sessions the user index lists, over all users: the cached
    /// sessions that have a user, including those moka has not dropped yet
    /// past their expiry date (call
    /// [`run_pending_tasks`](Self::run_pending_tasks) first to let it drop
    /// them).
    pub fn indexed_sessions(&self) -> usize {
        self.index.len()
    }

    /// Runs moka's pending maintenance now: applies recorded writes, evicts
    /// over the bound and drops expired sessions (and their user-index
    /// listings). moka also does this on its own as the cache is used.
    pub fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks();
    }

    /// When moka drops a slot holding `record`, and what it weighs.
    fn placement(&self, record: &Record) -> Result<(OffsetDateTime, u32)> {
        let weight = if self.weigh_by_size {
            let size = codec::encode_record(record)?.len();
            u32::try_from(size).unwrap_or(u32::MAX)
        } else {
            1
        };
        Ok((record.expiry_date.saturating_add(self.expiry_slack), weight))
    }

    /// Whether `record` may replace the record of `slot` in place: moka's
    /// timer still fires at or after its expiry date, and no weight is in
    /// play.
    fn fits_in_place(&self, slot: &Slot, record: &Record) -> bool {
        !self.weigh_by_size && record.expiry_date <= slot.scheduled_expiry
    }

    /// Swaps the record of a live slot, moving its listing when the user
    /// changes: the new user's first, then the record, then the old
    /// user's, so the index never lacks the record under the user it shows.
    /// Returns the old record, to be dropped outside the lock.
    fn replace_in_place(&self, state: &mut State, record: Record) -> Record {
        if state.record.user_id == record.user_id {
            return std::mem::replace(&mut state.record, record);
        }
        let token = list(&record, &self.index);
        let old = std::mem::replace(&mut state.record, record);
        if let (Some(user_id), Some(token)) = (
            old.user_id.as_deref(),
            std::mem::replace(&mut state.token, token),
        ) {
            self.index.remove(user_id, old.id, token);
        }
        old
    }

    /// One insert-if-absent step: `false` when an active record holds the
    /// id. An expired record that moka still holds counts as absent.
    fn insert_if_absent(&self, record: &Record) -> Result<bool> {
        let (scheduled_expiry, weight) = self.placement(record)?;
        let mut inserted = false;
        let mut retired = None;
        self.cache.entry(record.id).and_compute_with(|entry| {
            let token = match entry.map(Entry::into_value) {
                Some(slot) => {
                    let mut state = slot.lock();
                    if !state.live {
                        // moka is dropping it: absent.
                        list(record, &self.index)
                    } else if state.record.is_active_at(OffsetDateTime::now_utc()) {
                        return Op::Nop;
                    } else {
                        let token = state.retire_for(record, &self.index);
                        drop(state);
                        retired = Some(slot);
                        token
                    }
                }
                None => list(record, &self.index),
            };
            inserted = true;
            Op::Put(Arc::new(Slot::new(
                record.clone(),
                token,
                scheduled_expiry,
                weight,
            )))
        });
        if let Some(slot) = retired {
            slot.unindex(&self.index);
        }
        Ok(inserted)
    }

    fn save_now(&self, record: &Record) -> Result<()> {
        if !record.is_active() {
            // Saved already expired: it could never load, and moka would
            // hold it until its timer wheel next turns (about a second).
            // The version it replaces must go all the same.
            self.remove(record.id);
            return Ok(());
        }
        if self.save_in_place(record) {
            return Ok(());
        }
        let (scheduled_expiry, weight) = self.placement(record)?;
        let mut retired = None;
        self.cache.entry(record.id).and_compute_with(|entry| {
            let token = match entry.map(Entry::into_value) {
                Some(slot) => {
                    let mut state = slot.lock();
                    if state.live {
                        let token = state.retire_for(record, &self.index);
                        drop(state);
                        retired = Some(slot);
                        token
                    } else {
                        list(record, &self.index)
                    }
                }
                None => list(record, &self.index),
            };
            Op::Put(Arc::new(Slot::new(
                record.clone(),
                token,
                scheduled_expiry,
                weight,
            )))
        });
        if let Some(slot) = retired {
            slot.unindex(&self.index);
        }
        Ok(())
    }

    /// Replaces the record of a cached session in place when that keeps
    /// the cache's view right (see [`fits_in_place`](Self::fits_in_place)).
    /// Returns whether it did.
    fn save_in_place(&self, record: &Record) -> bool {
        if self.weigh_by_size {
            return false;
        }
        let Some(slot) = self.cache.get(&record.id) else {
            return false;
        };
        if !self.fits_in_place(&slot, record) {
            return false;
        }
        let mut state = slot.lock();
        if !state.live {
            return false;
        }
        let old = self.replace_in_place(&mut state, record.clone());
        drop(state);
        // The old record is freed outside the lock.
        drop(old);
        true
    }

    fn load_now(&self, id: &Id) -> Option<Record> {
        let slot = self.cache.get(id)?;
        let now = OffsetDateTime::now_utc();
        let state = slot.lock();
        state.record.is_active_at(now).then(|| state.record.clone())
    }

    /// Removes the id's slot, whatever it holds.
    fn remove(&self, id: Id) {
        self.remove_if(id, |_| true);
    }

    /// Removes the id's slot if `condition` holds for its record, and
    /// returns it (retired, so its record is what was stored last).
    fn remove_if(&self, id: Id, condition: impl FnOnce(&Record) -> bool) -> Option<Value> {
        let mut removed = None;
        self.cache.entry(id).and_compute_with(|entry| {
            let Some(slot) = entry.map(Entry::into_value) else {
                return Op::Nop;
            };
            let mut state = slot.lock();
            if !state.live {
                // Retired by moka's eviction listener: already on its way
                // out, and unlisted.
                return Op::Remove;
            }
            if !condition(&state.record) {
                return Op::Nop;
            }
            state.live = false;
            drop(state);
            removed = Some(slot);
            Op::Remove
        });
        if let Some(slot) = &removed {
            slot.unindex(&self.index);
        }
        removed
    }

    fn update_now(&self, record: &mut Record) -> Result<Update> {
        let next = next_version(record.version)?;
        let Some(slot) = self.cache.get(&record.id) else {
            return Ok(Update::Gone);
        };
        {
            let mut state = slot.lock();
            if state.live {
                if !state.record.is_active_at(OffsetDateTime::now_utc()) {
                    return Ok(Update::Gone);
                }
                if state.record.version != record.version {
                    return Ok(Update::Conflict(state.record.clone()));
                }
                if self.fits_in_place(&slot, record) {
                    let mut copy = record.clone();
                    copy.version = next;
                    let old = self.replace_in_place(&mut state, copy);
                    drop(state);
                    drop(old);
                    record.version = next;
                    return Ok(Update::Written);
                }
            }
        }
        drop(slot);

        // A new entry, so moka schedules the new expiry date; or the entry
        // was being replaced: decide again under moka's lock of the id.
        let mut copy = record.clone();
        copy.version = next;
        let (scheduled_expiry, weight) = self.placement(&copy)?;
        let mut outcome = Update::Gone;
        let mut retired = None;
        self.cache.entry(record.id).and_compute_with(|entry| {
            let Some(slot) = entry.map(Entry::into_value) else {
                return Op::Nop;
            };
            let mut state = slot.lock();
            if !state.live || !state.record.is_active_at(OffsetDateTime::now_utc()) {
                return Op::Nop;
            }
            if state.record.version != record.version {
                outcome = Update::Conflict(state.record.clone());
                return Op::Nop;
            }
            let token = state.retire_for(&copy, &self.index);
            drop(state);
            retired = Some(slot);
            outcome = Update::Written;
            Op::Put(Arc::new(Slot::new(copy, token, scheduled_expiry, weight)))
        });
        if let Some(slot) = retired {
            slot.unindex(&self.index);
        }
        if outcome.is_written() {
            record.version = next;
        }
        Ok(outcome)
    }

    fn touch_now(&self, id: &Id, expiry_date: OffsetDateTime) -> bool {
        let Some(slot) = self.cache.get(id) else {
            return false;
        };
        {
            let mut state = slot.lock();
            if state.live {
                if !state.record.is_active_at(OffsetDateTime::now_utc()) {
                    return false;
                }
                if expiry_date <= state.record.expiry_date {
                    return true;
                }
                // The weight may change by the few bytes the date takes: it
                // stays as measured when the entry was inserted.
                if expiry_date <= slot.scheduled_expiry {
                    state.record.expiry_date = expiry_date;
                    return true;
                }
            }
        }
        drop(slot);

        // Past what moka scheduled: a new entry, so moka's expiry policy
        // sees the new date.
        let mut touched = false;
        let mut retired = None;
        self.cache.entry(*id).and_compute_with(|entry| {
            let Some(slot) = entry.map(Entry::into_value) else {
                return Op::Nop;
            };
            let mut state = slot.lock();
            if !state.live || !state.record.is_active_at(OffsetDateTime::now_utc()) {
                return Op::Nop;
            }
            touched = true;
            if expiry_date <= state.record.expiry_date {
                return Op::Nop;
            }
            let mut record = state.record.clone();
            record.expiry_date = expiry_date;
            let token = state.retire_for(&record, &self.index);
            let scheduled_expiry = expiry_date.saturating_add(self.expiry_slack);
            let weight = slot.weight;
            drop(state);
            retired = Some(slot);
            Op::Put(Arc::new(Slot::new(record, token, scheduled_expiry, weight)))
        });
        if let Some(slot) = retired {
            slot.unindex(&self.index);
        }
        touched
    }

    fn sessions_of_user_now(&self, user_id: &str) -> Vec<Record> {
        let now = OffsetDateTime::now_utc();
        self.index
            .ids(user_id)
            .into_iter()
            .filter_map(|id| {
                let slot = self.cache.get(&id)?;
                let state = slot.lock();
                // The listing may lag a write in flight: keep only what is
                // there, active and still of this user.
                let theirs = state.record.is_active_at(now)
                    && state.record.user_id.as_deref() == Some(user_id);
                theirs.then(|| state.record.clone())
            })
            .collect()
    }

    fn delete_sessions_of_user_now(&self, user_id: &str, keep: Option<&Id>) -> u64 {
        let now = OffsetDateTime::now_utc();
        let mut removed = 0;
        for id in self.index.ids(user_id) {
            if Some(&id) == keep {
                continue;
            }
            let slot = self.remove_if(id, |record| record.user_id.as_deref() == Some(user_id));
            if let Some(slot) = slot {
                removed += u64::from(slot.lock().record.is_active_at(now));
            }
        }
        removed
    }
}

#[async_trait]
impl SessionStore for MokaStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        store_span("moka", "create").in_scope(|| {
            let mut ids = FreshIds::default();
            while !self.insert_if_absent(record)? {
                ids.next(record)?;
            }
            Ok(())
        })
    }

    async fn save(&self, record: &Record) -> Result<()> {
        store_span("moka", "save").in_scope(|| self.save_now(record))
    }

    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        Ok(store_span("moka", "load").in_scope(|| self.load_now(session_id)))
    }

    async fn delete(&self, session_id: &Id) -> Result<()> {
        store_span("moka", "delete").in_scope(|| self.remove(*session_id));
        Ok(())
    }

    async fn update(&self, record: &mut Record) -> Result<Update> {
        store_span("moka", "update").in_scope(|| self.update_now(record))
    }

    async fn touch(&self, session_id: &Id, expiry_date: OffsetDateTime) -> Result<bool> {
        Ok(store_span("moka", "touch").in_scope(|| self.touch_now(session_id, expiry_date)))
    }

    async fn sessions_of_user(&self, user_id: &str) -> Result<Vec<Record>> {
        Ok(store_span("moka", "sessions_of_user").in_scope(|| self.sessions_of_user_now(user_id)))
    }

    async fn delete_sessions_of_user(&self, user_id: &str, keep: Option<&Id>) -> Result<u64> {
        Ok(store_span("moka", "delete_sessions_of_user")
            .in_scope(|| self.delete_sessions_of_user_now(user_id, keep)))
    }
}

/// Expiry is native: moka drops each session by itself once its expiry
/// date (plus the slack) has passed. `delete_expired` runs moka's pending
/// maintenance, which frees those entries and their user-index listings at
/// once, and returns 0 because moka does not say how many.
#[async_trait]
impl ExpiredDeletion for MokaStore {
    async fn delete_expired(&self) -> Result<u64> {
        store_span("moka", "delete_expired").in_scope(|| self.cache.run_pending_tasks());
        Ok(0)
    }
}
