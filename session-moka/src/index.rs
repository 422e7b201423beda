//! The user index: for each user, the sessions that belong to it.
//!
//! moka has no secondary index, so the store keeps one beside the cache:
//! a map from user id to the `(session id, token)` listings of that user,
//! sharded over a few locks.
//!
//! A listing is owned by exactly one cache slot, the one whose record put
//! it there, and the token says which: every time a slot takes a user it
//! draws a fresh token. Removing a listing therefore names the token too,
//! and can only ever remove the listing of a slot that gave it up (changed
//! its user, was replaced, deleted or evicted). A late removal, for
//! instance moka's eviction listener reporting a slot whose id has been
//! stored again since, cannot remove the listing of the newer slot, even
//! for the same user: that one holds a different token.

use std::{
    collections::{HashMap, HashSet},
    hash::{BuildHasher, RandomState},
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex, MutexGuard, PoisonError,
    },
};

use session_core::Id;

/// Shards of the index: it is locked only by writes that give a record a
/// user or take it away and by user lookups, so a few suffice.
const SHARDS: usize = 16;

/// Which slot listed a session under its user; drawn fresh each time a slot
/// takes a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Token(u64);

type Shard = Mutex<HashMap<String, HashSet<(Id, Token)>>>;

pub(crate) struct UserIndex {
    shards: Box<[Shard]>,
    // Keyed per store, so user ids chosen by clients cannot be aimed at one
    // shard.
    hasher: RandomState,
    next_token: AtomicU64,
}

impl Default for UserIndex {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            hasher: RandomState::new(),
            next_token: AtomicU64::new(0),
        }
    }
}

impl UserIndex {
    // A poisoned lock means a panic while a set was being changed; the set
    // operations used here cannot leave it half-changed, so the index keeps
    // serving rather than panicking every later caller.
    fn shard(&self, user_id: &str) -> MutexGuard<'_, HashMap<String, HashSet<(Id, Token)>>> {
        let hash = self.hasher.hash_one(user_id);
        self.shards[(hash >> 32) as usize % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Lists `id` under `user_id` with a fresh token, which the caller's
    /// slot then owns.
    pub(crate) fn add(&self, user_id: &str, id: Id) -> Token {
        // Unique, not ordered: nothing compares tokens but for equality.
        let token = Token(self.next_token.fetch_add(1, Ordering::Relaxed));
        let mut shard = self.shard(user_id);
        match shard.get_mut(user_id) {
            Some(listings) => {
                listings.insert((id, token));
            }
            None => {
                shard.insert(user_id.to_owned(), HashSet::from([(id, token)]));
            }
        }
        token
    }

    /// Removes the listing of `id` under `user_id` that `token` owns, if it
    /// is still there; other listings of `id` stay.
    pub(crate) fn remove(&self, user_id: &str, id: Id, token: Token) {
        let mut shard = self.shard(user_id);
        if let Some(listings) = shard.get_mut(user_id) {
            listings.remove(&(id, token));
            if listings.is_empty() {
                shard.remove(user_id);
            }
        }
    }

    /// The ids listed under `user_id`, each once, copied so no index lock is
    /// held while the records are read.
    pub(crate) fn ids(&self, user_id: &str) -> Vec<Id> {
        let mut ids: Vec<Id> = match self.shard(user_id).get(user_id) {
            Some(listings) => listings.iter().map(|(id, _)| *id).collect(),
            None => return Vec::new(),
        };
        // Two listings of one id exist only while a slot that is being
        // evicted still holds the old one.
        ids.sort_unstable_by_key(|id| id.0);
        ids.dedup();
        ids
    }

    /// How many listings the index holds, over all users.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                shard
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .values()
                    .map(HashSet::len)
                    .sum::<usize>()
            })
            .sum()
    }
}
