//! The sled-backed store.

use std::{fmt, ops::Bound, path::Path};

use session_core::{
    async_trait, time::OffsetDateTime, Error, ExpiredDeletion, Id, Record, Result, SessionStore,
};
use sled::{
    transaction::{ConflictableTransactionResult, TransactionalTree},
    Db, IVec, Transactional, Tree,
};

use crate::{
    error,
    layout::{self, ExpiryKey},
};

/// The name of the session tree [`SledStore::new`] opens; its expiry index
/// is the tree of the same name followed by `.expiry`.
pub const DEFAULT_TREE_NAME: &str = "sessions";

/// How many expiry index entries one sweep transaction handles, so a sweep
/// of a million expired sessions neither builds one huge transaction nor
/// holds up concurrent writers for long.
const SWEEP_BATCH: usize = 256;

/// The (empty) value of an expiry index entry: everything is in its key.
const NO_VALUE: &[u8] = &[];

/// An embedded, persistent session store on [sled](sled).
///
/// Records live in one sled tree keyed by the id's 16 bytes; a second tree
/// indexes them by expiry date, so [`delete_expired`] reads only the expired
/// part of the index instead of every session. Every write changes both trees
/// in one sled transaction, so the index always matches the records, however
/// `save`, `delete` and a sweep interleave.
///
/// # Durability
///
/// A write is in sled's memory when the call returns and reaches disk at
/// sled's next flush: every `flush_every_ms` of its
/// [`Config`](sled::Config) (500 ms by default), and when the last handle to
/// the database is dropped. A crash can lose the writes of that window. Call
/// [`flush_async`](Self::flush_async) (or [`flush`](Self::flush)) after a
/// write that must survive one.
///
/// # Blocking
///
/// sled's calls are synchronous. They work in memory and leave disk I/O to
/// sled's background flusher, so they are made directly from the async
/// methods; only [`flush_async`](Self::flush_async) waits for the disk.
///
/// Cloning is cheap and every clone sees the same sessions.
///
/// [`delete_expired`]: ExpiredDeletion::delete_expired
#[derive(Clone)]
pub struct SledStore {
    records: Tree,
    expiry_index: Tree,
}

impl fmt::Debug for SledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledStore")
            .field("records", &String::from_utf8_lossy(&self.records.name()))
            .field(
                "expiry_index",
                &String::from_utf8_lossy(&self.expiry_index.name()),
            )
            .finish()
    }
}

impl SledStore {
    /// Opens (or creates) the sled database at `path` with sled's default
    /// configuration and the session trees in it.
    ///
    /// sled locks the directory: one process at a time may open it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let db = sled::open(path).map_err(error::backend)?;
        Self::new(&db)
    }

    /// Opens (or creates) the session trees [`DEFAULT_TREE_NAME`] and its
    /// expiry index in `db`.
    pub fn new(db: &Db) -> Result<Self> {
        Self::with_tree_name(db, DEFAULT_TREE_NAME)
    }

    /// Opens (or creates) the session tree `name` and its expiry index
    /// `name.expiry` in `db`, so several stores can share a database.
    pub fn with_tree_name(db: &Db, name: &str) -> Result<Self> {
        let records = db.open_tree(name).map_err(error::backend)?;
        let expiry_index = db
            .open_tree(format!("{name}.expiry"))
            .map_err(error::backend)?;
        Ok(Self::from_trees(records, expiry_index))
    }

    /// A store on two trees you opened: one for the records and one, used
    /// for nothing else, for their expiry index. Give the same pair every
    /// time, and the index stays right.
    pub fn from_trees(records: Tree, expiry_index: Tree) -> Self {
        Self {
            records,
            expiry_index,
        }
    }

    /// Writes everything written so far to disk and waits for it, without
    /// blocking the async runtime; returns the number of bytes flushed.
    pub async fn flush_async(&self) -> Result<usize> {
        // One flush writes the whole database, both trees included.
        self.records.flush_async().await.map_err(error::backend)
    }

    /// Writes everything written so far to disk, blocking the calling thread
    /// until it is done; returns the number of bytes flushed.
    pub fn flush(&self) -> Result<usize> {
        self.records.flush().map_err(error::backend)
    }

    /// How many records the store holds, expired ones not swept yet
    /// included. This walks the whole tree.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the store holds no records at all.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn transaction<A>(
        &self,
        body: impl Fn(&TransactionalTree, &TransactionalTree) -> ConflictableTransactionResult<A, Error>,
    ) -> Result<A> {
        (&self.records, &self.expiry_index)
            .transaction(|(records, index)| body(records, index))
            .map_err(error::transaction)
    }

    /// Removes, in one transaction, the records of `hints` (expiry index
    /// keys) that are expired at `now`, and the index entries that point
    /// nowhere; returns how many records it removed.
    fn sweep_batch(&self, hints: &[IVec], now: OffsetDateTime) -> Result<u64> {
        let now_key = ExpiryKey::of(now);
        self.transaction(|records, index| {
            let mut removed = 0;
            for hint in hints {
                let Some((expiry, id)) = hint.split_first_chunk::<8>() else {
                    index.remove(hint.clone())?;
                    continue;
                };
                if id.len() != 16 {
                    // Not an entry this store wrote: not a session's.
                    index.remove(hint.clone())?;
                    continue;
                }
                let Some(value) = records.get(id)? else {
                    index.remove(hint.clone())?;
                    continue;
                };
                match layout::expiry_of(&value) {
                    Ok(stored) if stored.bytes() == *expiry => {
                        // Keys are floored to the microsecond: within now's
                        // own microsecond only the full date can tell.
                        let expired = stored < now_key
                            || layout::decode(&value).is_ok_and(|r| !r.is_active_at(now));
                        if expired {
                            records.remove(id)?;
                            index.remove(hint.clone())?;
                            removed += 1;
                        }
                    }
                    // The record moved on to another expiry date.
                    Ok(_) => {
                        index.remove(hint.clone())?;
                    }
                    // Unreadable: left for `load` to report as a decode error.
                    Err(_) => {}
                }
            }
            Ok(removed)
        })
    }
}

#[async_trait]
impl SessionStore for SledStore {
    #[tracing::instrument(level = "debug", name = "session.sled.create", skip_all)]
    async fn create(&self, record: &mut Record) -> Result<()> {
        loop {
            let (expiry, value) = layout::encode(record)?;
            let key = record.id.to_bytes();
            let now = ExpiryKey::of(OffsetDateTime::now_utc());
            // Insert-if-absent: the transactional form of
            // `compare_and_swap(key, None, value)`, which cannot also write
            // the index tree.
            let stored = self.transaction(|records, index| {
                if let Some(old) = records.get(key)? {
                    match layout::expiry_of(&old) {
                        // Expired: free to take, index entry and all.
                        Ok(old_expiry) if old_expiry < now => {
                            index.remove(old_expiry.index_key(&key))?;
                        }
                        // Active, or unreadable: not ours to overwrite.
                        _ => return Ok(false),
                    }
                }
                records.insert(&key, value.as_slice())?;
                index.insert(expiry.index_key(&key), NO_VALUE)?;
                Ok(true)
            })?;
            if stored {
                return Ok(());
            }
            tracing::debug!("session id collision on create; drawing a new id");
            record.id = Id::default();
        }
    }

    #[tracing::instrument(level = "debug", name = "session.sled.save", skip_all)]
    async fn save(&self, record: &Record) -> Result<()> {
        let (expiry, value) = layout::encode(record)?;
        let key = record.id.to_bytes();
        self.transaction(|records, index| {
            if let Some(old) = records.insert(&key, value.as_slice())? {
                match layout::expiry_of(&old) {
                    Ok(old_expiry) if old_expiry != expiry => {
                        index.remove(old_expiry.index_key(&key))?;
                    }
                    _ => {}
                }
            }
            index.insert(expiry.index_key(&key), NO_VALUE)?;
            Ok(())
        })
    }

    #[tracing::instrument(level = "debug", name = "session.sled.load", skip_all)]
    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        let Some(value) = self
            .records
            .get(session_id.to_bytes())
            .map_err(error::backend)?
        else {
            return Ok(None);
        };
        let now = OffsetDateTime::now_utc();
        // The header alone tells most expired records without decoding them.
        if layout::expiry_of(&value)? < ExpiryKey::of(now) {
            return Ok(None);
        }
        let record = layout::decode(&value)?;
        Ok(record.is_active_at(now).then_some(record))
    }

    #[tracing::instrument(level = "debug", name = "session.sled.delete", skip_all)]
    async fn delete(&self, session_id: &Id) -> Result<()> {
        let key = session_id.to_bytes();
        self.transaction(|records, index| {
            if let Some(old) = records.remove(&key)? {
                if let Ok(old_expiry) = layout::expiry_of(&old) {
                    index.remove(old_expiry.index_key(&key))?;
                }
            }
            Ok(())
        })
    }
}

#[async_trait]
impl ExpiredDeletion for SledStore {
    /// Walks the expiry index up to now, in batches of 256 entries each
    /// removed in one transaction, and returns how many records it removed.
    #[tracing::instrument(
        level = "debug",
        name = "session.sled.delete_expired",
        skip_all,
        fields(removed)
    )]
    async fn delete_expired(&self) -> Result<u64> {
        let now = OffsetDateTime::now_utc();
        // Every index key of an instant up to now sorts before `end`.
        let end = match ExpiryKey::of(now).next() {
            Some(next) => Bound::Excluded(next.index_key(&[])),
            None => Bound::Unbounded,
        };
        let mut start = Bound::Unbounded;
        let mut removed = 0;
        loop {
            let hints = self
                .expiry_index
                .range::<Vec<u8>, _>((start, end.clone()))
                .keys()
                .take(SWEEP_BATCH)
                .collect::<sled::Result<Vec<IVec>>>()
                .map_err(error::backend)?;
            let Some(last) = hints.last() else { break };
            // Entries left behind (not expired within now's microsecond, or
            // unreadable) are not read again by this sweep.
            start = Bound::Excluded(last.to_vec());
            removed += self.sweep_batch(&hints, now)?;
            if hints.len() < SWEEP_BATCH {
                break;
            }
        }
        tracing::Span::current().record("removed", removed);
        Ok(removed)
    }
}
