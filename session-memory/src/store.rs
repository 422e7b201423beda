use std::{
    collections::{hash_map::Entry, HashMap, HashSet},
    fmt,
    hash::{BuildHasher, RandomState},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
    },
};

use session_core::{
    async_trait,
    support::{next_version, store_span, FreshIds},
    time::OffsetDateTime,
    Error, ExpiredDeletion, Id, Record, Result, SessionStore, Update,
};

use crate::error::StoreFull;

/// How many sessions [`MemoryStore::default`] holds at most: 100,000.
///
/// With a few hundred bytes of JSON per session (a user, some flags, a small
/// cart) a record takes about 2.7 KiB of heap, so a full default store takes
/// roughly 270 MiB; with empty sessions about 18 MiB.
pub const DEFAULT_MAX_SESSIONS: usize = 100_000;

/// Shards per store: enough that 64 busy tasks rarely meet on one lock, few
/// enough that a sweep over all of them stays cheap.
const SHARDS: usize = 64;

/// Shards of the user index: it is locked only by writes that change a
/// record's user and by user lookups, so fewer suffice.
const USER_SHARDS: usize = 16;

type Shard = RwLock<Records>;

/// The records of one shard.
#[derive(Default)]
struct Records {
    map: HashMap<Id, Record>,
    /// No record in `map` expires before this (`None`: no record was written
    /// since the last sweep emptied the shard). Every write lowers it and a
    /// sweep makes it exact again, so it is a lower bound, which is all that
    /// is needed to tell without a scan that a shard holds nothing expired.
    earliest_expiry: Option<OffsetDateTime>,
}

impl Records {
    fn note_expiry(&mut self, expiry_date: OffsetDateTime) {
        self.earliest_expiry = Some(match self.earliest_expiry {
            Some(earliest) => earliest.min(expiry_date),
            None => expiry_date,
        });
    }

    /// Whether some record may have expired at `now`; `false` is certain.
    fn may_hold_expired(&self, now: OffsetDateTime) -> bool {
        self.earliest_expiry.is_some_and(|earliest| earliest <= now)
    }
}

/// The ids of each user's records, for one slice of the users.
type UserShard = Mutex<HashMap<String, HashSet<Id>>>;

/// A process-local session store, sharded over independent locks, holding
/// at most a bounded number of sessions.
///
/// Cloning is cheap and every clone sees the same sessions.
///
/// # Bound
///
/// [`MemoryStore::default`] holds at most [`DEFAULT_MAX_SESSIONS`] records;
/// [`with_max_sessions`](Self::with_max_sessions) picks another bound and
/// [`unbounded`](Self::unbounded) removes it. Every record the store holds
/// counts, including one that has expired but was not swept yet. When the
/// store is full, a write that would add a record (`create`, or `save` of an
/// id it does not hold) first sweeps the expired records out (as
/// [`delete_expired`](ExpiredDeletion::delete_expired) does); if that frees
/// nothing, the write is refused with [`Error::Backend`] whose source is a
/// [`StoreFull`], and nothing is written. A write to a session the store
/// holds (`save`, `update`, `touch`) is never refused for lack of room, and
/// no session is ever dropped to make room. The count is one atomic counter,
/// changed only when a record is added or removed: loads and updates never
/// touch it.
///
/// The bound counts records, not bytes: what a session holds is up to the
/// application, and sizing every JSON value on every write would cost more
/// than the rest of the write. Size the bound for the largest sessions the
/// application writes.
///
/// # Concurrency
///
/// The user index is kept in the same critical section as the record: a
/// write that changes a record's user updates the index while it still holds
/// the record's shard lock (locks are always taken record shard first, index
/// shard second), so a lookup never misses a session and, since it reads
/// each listed record under its own lock, never lists one of another user.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Shard]>,
    users: Box<[UserShard]>,
    // Picks the shard. Keyed per store so ids chosen by a client (a cookie)
    // cannot be aimed at one shard.
    shard_hasher: RandomState,
    /// Records in the shards plus slots claimed for records about to be
    /// inserted: never below the number of records, never above
    /// `max_sessions`. A slot is claimed before its record is inserted and
    /// given back after its record is removed.
    claimed: AtomicUsize,
    /// `usize::MAX` when unbounded.
    max_sessions: usize,
}

impl Default for MemoryStore {
    /// A store of at most [`DEFAULT_MAX_SESSIONS`] sessions.
    fn default() -> Self {
        Self::with_max_sessions(DEFAULT_MAX_SESSIONS)
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shards", &self.inner.shards.len())
            .field("max_sessions", &self.max_sessions())
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// A store of at most `max_sessions` sessions (see [the bound](Self#bound)).
    ///
    /// ```
    /// use session_memory::MemoryStore;
    ///
    /// let store = MemoryStore::with_max_sessions(10_000);
    /// assert_eq!(store.max_sessions(), Some(10_000));
    /// ```
    pub fn with_max_sessions(max_sessions: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                shards: (0..SHARDS).map(|_| Shard::default()).collect(),
                users: (0..USER_SHARDS).map(|_| UserShard::default()).collect(),
                shard_hasher: RandomState::new(),
                claimed: AtomicUsize::new(0),
                max_sessions,
            }),
        }
    }

    /// A store without a bound: it grows as long as sessions are written.
    ///
    /// Only for when something else bounds the number of sessions (tests,
    /// benchmarks, a service whose every session is authenticated):
    /// otherwise requests without a cookie, each writing a new session, grow
    /// it until the process runs out of memory.
    pub fn unbounded() -> Self {
        Self::with_max_sessions(usize::MAX)
    }

    /// The most sessions the store holds, `None` when it is unbounded.
    pub fn max_sessions(&self) -> Option<usize> {
        (self.inner.max_sessions != usize::MAX).then_some(self.inner.max_sessions)
    }

    /// How many records the store holds, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| read(s).map.len()).sum()
    }

    /// Whether the store holds no records at all.
    pub fn is_empty(&self) -> bool {
        self.inner.shards.iter().all(|s| read(s).map.is_empty())
    }

    fn shard(&self, id: &Id) -> &Shard {
        let hash = self.inner.shard_hasher.hash_one(id);
        // The top bits of SipHash are as good as any; SHARDS is a power of two.
        &self.inner.shards[(hash >> 32) as usize % SHARDS]
    }

    fn user_shard(&self, user_id: &str) -> MutexGuard<'_, HashMap<String, HashSet<Id>>> {
        let hash = self.inner.shard_hasher.hash_one(user_id);
        self.inner.users[(hash >> 32) as usize % USER_SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves `id` in the user index from `old`'s entry to `new`'s. Called
    /// with the record's shard lock held.
    fn reindex(&self, id: Id, old: Option<&str>, new: Option<&str>) {
        if old == new {
            return;
        }
        if let Some(old) = old {
            let mut users = self.user_shard(old);
            if let Some(ids) = users.get_mut(old) {
                ids.remove(&id);
                if ids.is_empty() {
                    users.remove(old);
                }
            }
        }
        if let Some(new) = new {
            self.user_shard(new)
                .entry(new.to_owned())
                .or_default()
                .insert(id);
        }
    }

    /// The ids the index holds for `user_id`, copied so no index lock is
    /// held while records are read.
    fn indexed_ids(&self, user_id: &str) -> Vec<Id> {
        self.user_shard(user_id)
            .get(user_id)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Claims a slot for one more record, if the bound allows it.
    fn try_claim(&self) -> bool {
        let max = self.inner.max_sessions;
        self.inner
            .claimed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |claimed| {
                (claimed < max).then_some(claimed + 1)
            })
            .is_ok()
    }

    /// Gives back the slots of `count` records that were removed.
    fn release(&self, count: usize) {
        if count > 0 {
            self.inner.claimed.fetch_sub(count, Ordering::AcqRel);
        }
    }

    /// Called when a write found no free slot: sweeps the expired records of
    /// every shard, once per write, so that it can try again; refuses the
    /// write when the store was swept for it already or the sweep freed
    /// nothing.
    fn make_room(&self, swept: &mut bool) -> Result<()> {
        if !*swept {
            *swept = true;
            // Shards whose earliest expiry is still ahead are skipped under a
            // read lock, so a full store of active sessions costs a refused
            // write one uncontended read lock per shard, not a scan.
            if self.sweep_all(OffsetDateTime::now_utc()) > 0 {
                return Ok(());
            }
        }
        tracing::debug!(
            max_sessions = self.inner.max_sessions,
            "memory store full; new session refused"
        );
        Err(Error::backend(StoreFull::new(self.inner.max_sessions)))
    }

    /// Sweeps every shard that may hold a record expired at `now`; returns
    /// how many records it removed.
    fn sweep_all(&self, now: OffsetDateTime) -> u64 {
        let mut removed = 0u64;
        for shard in self.inner.shards.iter() {
            // Decided under a read lock, so a shard with nothing expired
            // never blocks its readers.
            if read(shard).may_hold_expired(now) {
                removed += self.sweep(&mut write(shard), now) as u64;
            }
        }
        removed
    }

    /// Removes the records of a locked shard that are expired at `now`, and
    /// their index entries, gives their slots back, and returns how many.
    /// Afterwards the shard's earliest expiry is exact.
    fn sweep(&self, records: &mut Records, now: OffsetDateTime) -> usize {
        if !records.may_hold_expired(now) {
            return 0;
        }
        let before = records.map.len();
        let mut earliest = None::<OffsetDateTime>;
        records.map.retain(|id, record| {
            let keep = record.is_active_at(now);
            if keep {
                earliest = Some(earliest.map_or(record.expiry_date, |e| e.min(record.expiry_date)));
            } else {
                self.reindex(*id, record.user_id.as_deref(), None);
            }
            keep
        });
        records.earliest_expiry = earliest;
        let removed = before - records.map.len();
        self.release(removed);
        // `retain` keeps the table's capacity; give memory back once the
        // shard is mostly empty so a burst of sessions does not pin it.
        if records.map.capacity() > 64 && records.map.len() < records.map.capacity() / 4 {
            let keep = records.map.len() * 2;
            records.map.shrink_to(keep);
        }
        removed
    }
}

// A poisoned lock means a panic happened while a map was being changed; the
// map operations used here cannot leave it half-changed, so the data is
// still sound and the store keeps serving rather than panicking every caller.
fn read(shard: &Shard) -> RwLockReadGuard<'_, Records> {
    shard.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(shard: &Shard) -> RwLockWriteGuard<'_, Records> {
    shard.write().unwrap_or_else(PoisonError::into_inner)
}

fn user_of(record: Option<&Record>) -> Option<&str> {
    record.and_then(|record| record.user_id.as_deref())
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        // Nothing below awaits: the span is entered for the whole call.
        let _span = store_span("memory", "create").entered();
        let mut ids = FreshIds::default();
        let mut swept = false;
        loop {
            let mut shard = write(self.shard(&record.id));
            let now = OffsetDateTime::now_utc();
            match shard
                .map
                .get(&record.id)
                .map(|stored| stored.is_active_at(now))
            {
                Some(true) => {
                    drop(shard);
                    ids.next(record)?;
                    continue;
                }
                // An expired record that was not swept yet is as good as
                // absent: it is replaced, and its slot taken over.
                Some(false) => {}
                None if self.try_claim() => {}
                None => {
                    drop(shard);
                    self.make_room(&mut swept)?;
                    continue;
                }
            }
            shard.note_expiry(record.expiry_date);
            let replaced = shard.map.insert(record.id, record.clone());
            self.reindex(
                record.id,
                user_of(replaced.as_ref()),
                record.user_id.as_deref(),
            );
            drop(shard);
            return Ok(());
        }
    }

    async fn save(&self, record: &Record) -> Result<()> {
        let _span = store_span("memory", "save").entered();
        let copy = record.clone();
        let mut swept = false;
        let mut shard = loop {
            let shard = write(self.shard(&record.id));
            if shard.map.contains_key(&record.id) || self.try_claim() {
                break shard;
            }
            drop(shard);
            self.make_room(&mut swept)?;
        };
        shard.note_expiry(record.expiry_date);
        let replaced = shard.map.insert(record.id, copy);
        self.reindex(
            record.id,
            user_of(replaced.as_ref()),
            record.user_id.as_deref(),
        );
        drop(shard);
        // The old version's data is dropped outside the lock.
        drop(replaced);
        Ok(())
    }

    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        let _span = store_span("memory", "load").entered();
        let now = OffsetDateTime::now_utc();
        Ok(read(self.shard(session_id))
            .map
            .get(session_id)
            .filter(|record| record.is_active_at(now))
            .cloned())
    }

    async fn delete(&self, session_id: &Id) -> Result<()> {
        let _span = store_span("memory", "delete").entered();
        let mut shard = write(self.shard(session_id));
        let removed = shard.map.remove(session_id);
        self.reindex(*session_id, user_of(removed.as_ref()), None);
        drop(shard);
        self.release(usize::from(removed.is_some()));
        // The record's data is dropped outside the lock.
        drop(removed);
        Ok(())
    }

    async fn update(&self, record: &mut Record) -> Result<Update> {
        let _span = store_span("memory", "update").entered();
        let next = next_version(record.version)?;
        let mut copy = record.clone();
        copy.version = next;
        let mut shard = write(self.shard(&record.id));
        let now = OffsetDateTime::now_utc();
        let Some(stored) = shard
            .map
            .get_mut(&record.id)
            .filter(|stored| stored.is_active_at(now))
        else {
            return Ok(Update::Gone);
        };
        if stored.version != record.version {
            return Ok(Update::Conflict(stored.clone()));
        }
        let replaced = std::mem::replace(stored, copy);
        shard.note_expiry(record.expiry_date);
        self.reindex(
            record.id,
            replaced.user_id.as_deref(),
            record.user_id.as_deref(),
        );
        drop(shard);
        drop(replaced);
        record.version = next;
        Ok(Update::Written)
    }

    async fn touch(&self, session_id: &Id, expiry_date: OffsetDateTime) -> Result<bool> {
        let _span = store_span("memory", "touch").entered();
        let mut shard = write(self.shard(session_id));
        let now = OffsetDateTime::now_utc();
        // Only ever later: the shard's earliest expiry stays a lower bound.
        match shard
            .map
            .get_mut(session_id)
            .filter(|stored| stored.is_active_at(now))
        {
            Some(stored) => {
                stored.expiry_date = stored.expiry_date.max(expiry_date);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn sessions_of_user(&self, user_id: &str) -> Result<Vec<Record>> {
        let _span = store_span("memory", "sessions_of_user").entered();
        let now = OffsetDateTime::now_utc();
        let records = self
            .indexed_ids(user_id)
            .into_iter()
            .filter_map(|id| {
                read(self.shard(&id))
                    .map
                    .get(&id)
                    .filter(|r| r.is_active_at(now) && r.user_id.as_deref() == Some(user_id))
                    .cloned()
            })
            .collect();
        Ok(records)
    }

    async fn delete_sessions_of_user(&self, user_id: &str, keep: Option<&Id>) -> Result<u64> {
        let _span = store_span("memory", "delete_sessions_of_user").entered();
        let now = OffsetDateTime::now_utc();
        let mut removed = 0;
        for id in self.indexed_ids(user_id) {
            if Some(&id) == keep {
                continue;
            }
            let mut shard = write(self.shard(&id));
            let Entry::Occupied(slot) = shard.map.entry(id) else {
                continue;
            };
            if slot.get().user_id.as_deref() != Some(user_id) {
                continue;
            }
            let record = slot.remove();
            removed += u64::from(record.is_active_at(now));
            self.reindex(id, Some(user_id), None);
            drop(shard);
            self.release(1);
        }
        Ok(removed)
    }
}

#[async_trait]
impl ExpiredDeletion for MemoryStore {
    async fn delete_expired(&self) -> Result<u64> {
        let _span = store_span("memory", "delete_expired").entered();
        let removed = self.sweep_all(OffsetDateTime::now_utc());
        tracing::debug!(removed, "memory store swept expired sessions");
        Ok(removed)
    }
}
