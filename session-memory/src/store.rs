use std::{
    collections::{hash_map::Entry, HashMap},
    fmt,
    hash::{BuildHasher, RandomState},
    sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use session_core::{
    async_trait, time::OffsetDateTime, ExpiredDeletion, Id, Record, Result, SessionStore,
};

/// Shards per store: enough that 64 busy tasks rarely meet on one lock, few
/// enough that a sweep over all of them stays cheap.
const SHARDS: usize = 64;

type Shard = RwLock<HashMap<Id, Record>>;

/// A process-local session store, sharded over independent locks.
///
/// Cloning is cheap and every clone sees the same sessions.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Shard]>,
    // Picks the shard. Keyed per store so ids chosen by a client (a cookie)
    // cannot be aimed at one shard.
    shard_hasher: RandomState,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                shards: (0..SHARDS).map(|_| Shard::default()).collect(),
                shard_hasher: RandomState::new(),
            }),
        }
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shards", &self.inner.shards.len())
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// How many records the store holds, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| read(s).len()).sum()
    }

    /// Whether the store holds no records at all.
    pub fn is_empty(&self) -> bool {
        self.inner.shards.iter().all(|s| read(s).is_empty())
    }

    fn shard(&self, id: &Id) -> &Shard {
        let hash = self.inner.shard_hasher.hash_one(id);
        // The top bits of SipHash are as good as any; SHARDS is a power of two.
        &self.inner.shards[(hash >> 32) as usize % SHARDS]
    }
}

// A poisoned lock means a panic happened while a map was being changed; the
// map operations used here cannot leave it half-changed, so the data is
// still sound and the store keeps serving rather than panicking every caller.
fn read(shard: &Shard) -> RwLockReadGuard<'_, HashMap<Id, Record>> {
    shard
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write(shard: &Shard) -> RwLockWriteGuard<'_, HashMap<Id, Record>> {
    shard
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        loop {
            let mut shard = write(self.shard(&record.id));
            // An expired record that was not swept yet is as good as absent.
            let now = OffsetDateTime::now_utc();
            match shard.entry(record.id) {
                Entry::Occupied(mut slot) if !slot.get().is_active_at(now) => {
                    slot.insert(record.clone());
                    return Ok(());
                }
                Entry::Occupied(_) => {}
                Entry::Vacant(slot) => {
                    slot.insert(record.clone());
                    return Ok(());
                }
            }
            drop(shard);
            tracing::debug!("session id collision on create; drawing a new id");
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> Result<()> {
        let copy = record.clone();
        let replaced = write(self.shard(&record.id)).insert(record.id, copy);
        // Drop the old version's data outside the lock.
        drop(replaced);
        Ok(())
    }

    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        let now = OffsetDateTime::now_utc();
        Ok(read(self.shard(session_id))
            .get(session_id)
            .filter(|record| record.is_active_at(now))
            .cloned())
    }

    async fn delete(&self, session_id: &Id) -> Result<()> {
        let removed = write(self.shard(session_id)).remove(session_id);
        // Drop the record's data outside the lock.
        drop(removed);
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for MemoryStore {
    async fn delete_expired(&self) -> Result<u64> {
        let now = OffsetDateTime::now_utc();
        let mut removed = 0u64;
        for shard in self.inner.shards.iter() {
            // Look under a read lock first so a sweep of a shard with nothing
            // expired never blocks its readers.
            if read(shard).values().all(|r| r.is_active_at(now)) {
                continue;
            }
            let mut map = write(shard);
            let before = map.len();
            map.retain(|_, record| record.is_active_at(now));
            removed += (before - map.len()) as u64;
            // `retain` keeps the table's capacity; give memory back once the
            // shard is mostly empty so a burst of sessions does not pin it.
            if map.capacity() > 64 && map.len() < map.capacity() / 4 {
                let keep = map.len() * 2;
                map.shrink_to(keep);
            }
        }
        tracing::debug!(removed, "memory store swept expired sessions");
        Ok(removed)
    }
}
