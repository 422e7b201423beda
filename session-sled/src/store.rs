//! The sled-backed store.

use std::{fmt, ops::Bound, path::Path};

use session_core::{
    async_trait,
    support::{next_version, store_span, FreshIds},
    time::OffsetDateTime,
    Error, ExpiredDeletion, Id, Record, Result, SessionStore, Update,
};
use sled::{
    transaction::{
        ConflictableTransactionError, ConflictableTransactionResult, TransactionalTree,
        UnabortableTransactionError,
    },
    Db, IVec, Transactional, Tree,
};

use crate::{
    error::{self, InvalidTreeName},
    layout::{self, ExpiryKey},
};

/// The name of the session tree [`SledStore::new`] opens; its indexes are
/// the trees of the same name followed by [`EXPIRY_INDEX_SUFFIX`] and
/// [`USER_INDEX_SUFFIX`].
pub const DEFAULT_TREE_NAME: &str = "sessions";

/// What [`SledStore::with_tree_name`] appends to the session tree's name to
/// name its expiry index.
pub const EXPIRY_INDEX_SUFFIX: &str = ".expiry";

/// What [`SledStore::with_tree_name`] appends to the session tree's name to
/// name its user index.
pub const USER_INDEX_SUFFIX: &str = ".users";

/// The store's name in [`store_span`].
const STORE: &str = "sled";

/// How many expiry index entries one sweep transaction handles, so a sweep
/// of a million expired sessions neither builds one huge transaction nor
/// holds up concurrent writers for long.
const SWEEP_BATCH: usize = 256;

/// The (empty) value of an index entry: everything is in its key.
const NO_VALUE: &[u8] = &[];

/// An embedded, persistent session store on [sled](sled).
///
/// Records live in one sled tree keyed by the id's 16 bytes. Two more trees
/// index them: one by expiry date, so [`delete_expired`] reads only the
/// expired part of the index instead of every session, and one by user, so
/// [`sessions_of_user`] and [`delete_sessions_of_user`] read only that
/// user's entries. Every write changes the records and both indexes in one
/// sled transaction, so the indexes always match the records, however
/// writes, sweeps and user deletions interleave.
///
/// # Atomicity
///
/// Each of `create`, `save`, `update`, `touch`, `delete` and
/// `delete_sessions_of_user` is one serializable sled transaction over the
/// three trees, and `delete_expired` is one per batch of 256 index entries:
///
/// - `create` inserts only if no active record holds the id (an expired one
///   is taken over, its index entries removed); otherwise it retries with a
///   fresh id ([`FreshIds`]).
/// - `update` reads the stored record, compares its version and activity,
///   and writes the new record at the next version with its index entries,
///   all in the transaction: of concurrent updates over one version exactly
///   one is written, and a deleted or expired record is never brought back.
/// - `touch` reads the stored record and, when the given date is later,
///   writes it with that expiry date and moves its expiry index entry.
/// - `delete_sessions_of_user` collects the user's index entries (sled
///   transactions cannot scan), then removes, in one transaction, each of
///   those records that still belongs to the user. A session given to the
///   user after the scan began is not removed: it was created concurrently
///   with the call.
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
/// [`sessions_of_user`]: SessionStore::sessions_of_user
/// [`delete_sessions_of_user`]: SessionStore::delete_sessions_of_user
#[derive(Clone)]
pub struct SledStore {
    records: Tree,
    expiry_index: Tree,
    user_index: Tree,
}

impl fmt::Debug for SledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |tree: &Tree| String::from_utf8_lossy(&tree.name()).into_owned();
        f.debug_struct("SledStore")
            .field("records", &name(&self.records))
            .field("expiry_index", &name(&self.expiry_index))
            .field("user_index", &name(&self.user_index))
            .finish()
    }
}

/// A record ready to be written: its value and its index keys.
struct Encoded {
    value: Vec<u8>,
    expiry: ExpiryKey,
    user_key: Option<Vec<u8>>,
}

impl Encoded {
    fn of(record: &Record) -> Result<Self> {
        let (expiry, value) = layout::encode(record)?;
        let user_key = match &record.user_id {
            Some(user) => Some(layout::user_key(user, &record.id.to_bytes())?),
            None => None,
        };
        Ok(Self {
            value,
            expiry,
            user_key,
        })
    }
}

/// The three trees inside one transaction.
struct Trees<'a> {
    records: &'a TransactionalTree,
    expiry: &'a TransactionalTree,
    users: &'a TransactionalTree,
}

type Step<T = ()> = std::result::Result<T, UnabortableTransactionError>;

impl Trees<'_> {
    /// Removes the index entries of `old`, the value that was stored under
    /// `id`. `old_record` is `old` decoded; when it could not be decoded, its
    /// user entry (if it had one) cannot be found and stays behind, which
    /// every reader of the user index tolerates (it checks the record).
    fn unindex(&self, id: &[u8], old: &[u8], old_record: Option<&Record>) -> Step {
        if let Ok(expiry) = layout::expiry_of(old) {
            self.expiry.remove(expiry.index_key(id))?;
        }
        if let Some(user_key) = old_record.and_then(|record| layout::user_key_of(record, id)) {
            self.users.remove(user_key)?;
        }
        Ok(())
    }

    /// Adds the index entries of `new`, the value now stored under `id`.
    /// After [`unindex`](Self::unindex) in the same transaction, an entry
    /// both removed and added stays: the last write of a key wins.
    fn index(&self, id: &[u8], new: &Encoded) -> Step {
        self.expiry.insert(new.expiry.index_key(id), NO_VALUE)?;
        if let Some(user_key) = &new.user_key {
            self.users.insert(user_key.as_slice(), NO_VALUE)?;
        }
        Ok(())
    }

    /// Stores `new` under `id` in place of `old` (decoded as `old_record`,
    /// when it could be), indexes and all.
    fn replace(
        &self,
        id: &[u8],
        new: &Encoded,
        old: Option<&[u8]>,
        old_record: Option<&Record>,
    ) -> Step {
        self.records.insert(id, new.value.as_slice())?;
        if let Some(old) = old {
            self.unindex(id, old, old_record)?;
        }
        self.index(id, new)
    }

    /// Removes the record `value` stored under `id`, indexes and all.
    fn remove(&self, id: &[u8], value: &[u8], record: Option<&Record>) -> Step {
        self.records.remove(id)?;
        self.unindex(id, value, record)
    }
}

/// Accepts a session tree name whose trees cannot be another store's.
fn check_tree_name(name: &str) -> std::result::Result<(), InvalidTreeName> {
    if name.is_empty() {
        return Err(InvalidTreeName::Empty);
    }
    if name.starts_with("__sled__") {
        return Err(InvalidTreeName::Reserved {
            name: name.to_owned(),
        });
    }
    for suffix in [EXPIRY_INDEX_SUFFIX, USER_INDEX_SUFFIX] {
        if let Some(store) = name.strip_suffix(suffix) {
            return Err(InvalidTreeName::IndexSuffix {
                name: name.to_owned(),
                suffix,
                store: store.to_owned(),
            });
        }
    }
    Ok(())
}

/// Ends a transaction with the store's own error: nothing is written.
fn abort<T>(error: Error) -> ConflictableTransactionResult<T, Error> {
    Err(ConflictableTransactionError::Abort(error))
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

    /// Opens (or creates) the session tree [`DEFAULT_TREE_NAME`] and its
    /// indexes in `db`.
    pub fn new(db: &Db) -> Result<Self> {
        Self::with_tree_name(db, DEFAULT_TREE_NAME)
    }

    /// Opens (or creates) the session tree `name`, its expiry index
    /// `name.expiry` and its user index `name.users` in `db`, so several
    /// stores can share a database.
    ///
    /// A name that is empty, starts with `__sled__` (sled's own), or ends
    /// with [`EXPIRY_INDEX_SUFFIX`] or [`USER_INDEX_SUFFIX`] (it would be
    /// another store's index tree) is refused with [`Error::Backend`] whose
    /// source is an [`InvalidTreeName`](crate::InvalidTreeName), before any
    /// tree is opened.
    ///
    /// This is also the migration from the previous release, which had no
    /// user index: opening its database creates the (empty) user tree, which
    /// is all its records need, since none of them has a user.
    pub fn with_tree_name(db: &Db, name: &str) -> Result<Self> {
        check_tree_name(name).map_err(Error::backend)?;
        let open = |suffix: &str| db.open_tree(format!("{name}{suffix}"));
        let records = open("").map_err(error::backend)?;
        let expiry_index = open(EXPIRY_INDEX_SUFFIX).map_err(error::backend)?;
        let user_index = open(USER_INDEX_SUFFIX).map_err(error::backend)?;
        Ok(Self::from_trees(records, expiry_index, user_index))
    }

    /// A store on three trees you opened: one for the records and two, used
    /// for nothing else, for their expiry index and their user index. Give
    /// the same three every time, and the indexes stay right.
    pub fn from_trees(records: Tree, expiry_index: Tree, user_index: Tree) -> Self {
        Self {
            records,
            expiry_index,
            user_index,
        }
    }

    /// Writes everything written so far to disk and waits for it, without
    /// blocking the async runtime; returns the number of bytes flushed.
    pub async fn flush_async(&self) -> Result<usize> {
        // One flush writes the whole database, every tree included.
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
        body: impl Fn(&Trees<'_>) -> ConflictableTransactionResult<A, Error>,
    ) -> Result<A> {
        (&self.records, &self.expiry_index, &self.user_index)
            .transaction(|(records, expiry, users)| {
                body(&Trees {
                    records,
                    expiry,
                    users,
                })
            })
            .map_err(error::transaction)
    }

    /// One insert-if-absent: `false` when an active (or unreadable) record
    /// holds the id.
    fn insert_if_absent(&self, record: &Record) -> Result<bool> {
        let new = Encoded::of(record)?;
        let id = record.id.to_bytes();
        let now = OffsetDateTime::now_utc();
        self.transaction(|trees| {
            let old = trees.records.get(id)?;
            let old_record = match &old {
                None => None,
                Some(old) => match layout::decode(old) {
                    // Expired: free to take, index entries and all.
                    Ok(old_record) if !old_record.is_active_at(now) => Some(old_record),
                    // Active, or unreadable: not ours to overwrite.
                    _ => return Ok(false),
                },
            };
            trees.replace(&id, &new, old.as_deref(), old_record.as_ref())?;
            Ok(true)
        })
    }

    fn create_now(&self, record: &mut Record) -> Result<()> {
        let mut ids = FreshIds::default();
        while !self.insert_if_absent(record)? {
            ids.next(record)?;
        }
        Ok(())
    }

    fn save_now(&self, record: &Record) -> Result<()> {
        let new = Encoded::of(record)?;
        let id = record.id.to_bytes();
        self.transaction(|trees| {
            let old = trees.records.get(id)?;
            // Decoded only to find its user entry.
            let old_record = old.as_deref().and_then(|old| layout::decode(old).ok());
            trees.replace(&id, &new, old.as_deref(), old_record.as_ref())?;
            Ok(())
        })
    }

    fn load_now(&self, session_id: &Id) -> Result<Option<Record>> {
        let Some(value) = self
            .records
            .get(session_id.to_bytes())
            .map_err(error::backend)?
        else {
            return Ok(None);
        };
        layout::decode_active(&value, OffsetDateTime::now_utc())
    }

    fn delete_now(&self, session_id: &Id) -> Result<()> {
        let id = session_id.to_bytes();
        self.transaction(|trees| {
            if let Some(old) = trees.records.get(id)? {
                let old_record = layout::decode(&old).ok();
                trees.remove(&id, &old, old_record.as_ref())?;
            }
            Ok(())
        })
    }

    fn update_now(&self, record: &mut Record) -> Result<Update> {
        let expected = record.version;
        let next = next_version(expected)?;
        // Encoded at the next version without cloning the data.
        record.version = next;
        let new = Encoded::of(record);
        record.version = expected;
        let new = new?;
        let id = record.id.to_bytes();
        let now = OffsetDateTime::now_utc();
        let update = self.transaction(|trees| {
            let Some(old) = trees.records.get(id)? else {
                return Ok(Update::Gone);
            };
            let stored = match layout::decode_active(&old, now) {
                Ok(Some(stored)) => stored,
                Ok(None) => return Ok(Update::Gone),
                Err(error) => return abort(error),
            };
            if stored.version != expected {
                return Ok(Update::Conflict(stored));
            }
            trees.replace(&id, &new, Some(&old), Some(&stored))?;
            Ok(Update::Written)
        })?;
        if update.is_written() {
            record.version = next;
        }
        Ok(update)
    }

    fn touch_now(&self, session_id: &Id, expiry_date: OffsetDateTime) -> Result<bool> {
        let id = session_id.to_bytes();
        let now = OffsetDateTime::now_utc();
        self.transaction(|trees| {
            let Some(old) = trees.records.get(id)? else {
                return Ok(false);
            };
            let mut stored = match layout::decode_active(&old, now) {
                Ok(Some(stored)) => stored,
                Ok(None) => return Ok(false),
                Err(error) => return abort(error),
            };
            if expiry_date <= stored.expiry_date {
                // Already as late: nothing to write, but the session is there.
                return Ok(true);
            }
            stored.expiry_date = expiry_date;
            let new = match Encoded::of(&stored) {
                Ok(new) => new,
                Err(error) => return abort(error),
            };
            // Same user, so only the expiry entry moves.
            trees.records.insert(&id, new.value.as_slice())?;
            if let Ok(old_expiry) = layout::expiry_of(&old) {
                trees.expiry.remove(old_expiry.index_key(&id))?;
            }
            trees.expiry.insert(new.expiry.index_key(&id), NO_VALUE)?;
            Ok(true)
        })
    }

    /// The ids under `prefix` in the user index, and the index keys they
    /// were found under. A key that does not end in a 16-byte id was not
    /// written by this store; it is returned with `None` for its id.
    fn user_entries(&self, prefix: &[u8]) -> Result<Vec<(IVec, Option<[u8; 16]>)>> {
        self.user_index
            .scan_prefix(prefix)
            .keys()
            .map(|key| {
                let key = key.map_err(error::backend)?;
                let id = key
                    .get(prefix.len()..)
                    .and_then(|id| <[u8; 16]>::try_from(id).ok());
                Ok((key, id))
            })
            .collect()
    }

    fn sessions_of_user_now(&self, user_id: &str) -> Result<Vec<Record>> {
        // A user id too long to index cannot be any record's.
        let Ok(prefix) = layout::user_prefix(user_id) else {
            return Ok(Vec::new());
        };
        let now = OffsetDateTime::now_utc();
        let mut records = Vec::new();
        for (_, id) in self.user_entries(&prefix)? {
            let Some(id) = id else { continue };
            let Some(value) = self.records.get(id).map_err(error::backend)? else {
                continue;
            };
            // The index is exact for every record written by this store; the
            // user is checked anyway, so that an entry left behind by a
            // value rewritten outside the store never lists another user's.
            if let Some(record) = layout::decode_active(&value, now)? {
                if record.user_id.as_deref() == Some(user_id) {
                    records.push(record);
                }
            }
        }
        Ok(records)
    }

    fn delete_sessions_of_user_now(&self, user_id: &str, keep: Option<&Id>) -> Result<u64> {
        let Ok(prefix) = layout::user_prefix(user_id) else {
            return Ok(0);
        };
        let entries = self.user_entries(&prefix)?;
        if entries.is_empty() {
            return Ok(0);
        }
        let keep = keep.map(|id| id.to_bytes());
        let now = OffsetDateTime::now_utc();
        self.transaction(|trees| {
            let mut removed = 0;
            for (key, id) in &entries {
                let Some(id) = id else {
                    trees.users.remove(key)?;
                    continue;
                };
                if keep.as_ref() == Some(id) {
                    continue;
                }
                let Some(value) = trees.records.get(id)? else {
                    trees.users.remove(key)?;
                    continue;
                };
                match layout::decode(&value) {
                    Ok(record) if record.user_id.as_deref() == Some(user_id) => {
                        trees.remove(id, &value, Some(&record))?;
                        removed += u64::from(record.is_active_at(now));
                    }
                    // Another user's now (possible only after a value was
                    // rewritten outside the store): the stale entry goes.
                    Ok(_) => {
                        trees.users.remove(key)?;
                    }
                    // Unreadable, but indexed as this user's: ended too, as
                    // "log out everywhere" must leave nothing of the user's
                    // behind. Not counted: nothing says it was active.
                    Err(_) => {
                        trees.remove(id, &value, None)?;
                        trees.users.remove(key)?;
                    }
                }
            }
            Ok(removed)
        })
    }

    /// Removes, in one transaction, the records of `hints` (expiry index
    /// keys) that are expired at `now`, their user entries, and the index
    /// entries that point nowhere; returns how many records it removed.
    fn sweep_batch(&self, hints: &[IVec], now: OffsetDateTime) -> Result<u64> {
        let now_key = ExpiryKey::of(now);
        self.transaction(|trees| {
            let mut removed = 0;
            for hint in hints {
                let Some((expiry, id)) = hint.split_first_chunk::<8>() else {
                    trees.expiry.remove(hint)?;
                    continue;
                };
                if id.len() != 16 {
                    // Not an entry this store wrote: not a session's.
                    trees.expiry.remove(hint)?;
                    continue;
                }
                let Some(value) = trees.records.get(id)? else {
                    trees.expiry.remove(hint)?;
                    continue;
                };
                let Ok(stored) = layout::expiry_of(&value) else {
                    // No header: left for `load` to report as a decode error.
                    continue;
                };
                if stored.bytes() != *expiry {
                    // The record moved on to another expiry date.
                    trees.expiry.remove(hint)?;
                    continue;
                }
                match layout::decode(&value) {
                    // Keys are floored to the microsecond: within now's own
                    // microsecond only the full date can tell.
                    Ok(record) if !record.is_active_at(now) => {
                        trees.remove(id, &value, Some(&record))?;
                        removed += 1;
                    }
                    Ok(_) => {}
                    // Expired by its header, which `load` trusts too; its
                    // user entry, if it had one, cannot be found (readers
                    // check the record behind every entry).
                    Err(_) if stored < now_key => {
                        trees.remove(id, &value, None)?;
                        removed += 1;
                    }
                    Err(_) => {}
                }
            }
            Ok(removed)
        })
    }

    fn delete_expired_now(&self) -> Result<u64> {
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
        tracing::debug!(removed, "swept expired sessions");
        Ok(removed)
    }
}

#[async_trait]
impl SessionStore for SledStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        store_span(STORE, "create").in_scope(|| self.create_now(record))
    }

    async fn save(&self, record: &Record) -> Result<()> {
        store_span(STORE, "save").in_scope(|| self.save_now(record))
    }

    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        store_span(STORE, "load").in_scope(|| self.load_now(session_id))
    }

    async fn delete(&self, session_id: &Id) -> Result<()> {
        store_span(STORE, "delete").in_scope(|| self.delete_now(session_id))
    }

    async fn update(&self, record: &mut Record) -> Result<Update> {
        store_span(STORE, "update").in_scope(|| self.update_now(record))
    }

    async fn touch(&self, session_id: &Id, expiry_date: OffsetDateTime) -> Result<bool> {
        store_span(STORE, "touch").in_scope(|| self.touch_now(session_id, expiry_date))
    }

    /// Reads the user's entries in the user index (a prefix scan over that
    /// user's keys only) and the record behind each; an indexed record that
    /// cannot be decoded is an [`Error::Decode`], as for `load`.
    async fn sessions_of_user(&self, user_id: &str) -> Result<Vec<Record>> {
        store_span(STORE, "sessions_of_user").in_scope(|| self.sessions_of_user_now(user_id))
    }

    /// Reads the user's entries in the user index, then removes those
    /// records (but `keep`) and their index entries in one transaction. An
    /// indexed record that cannot be decoded is removed too, but not
    /// counted.
    async fn delete_sessions_of_user(&self, user_id: &str, keep: Option<&Id>) -> Result<u64> {
        store_span(STORE, "delete_sessions_of_user")
            .in_scope(|| self.delete_sessions_of_user_now(user_id, keep))
    }
}

#[async_trait]
impl ExpiredDeletion for SledStore {
    /// Walks the expiry index up to now, in batches of 256 entries each
    /// removed in one transaction with the records' user entries, and
    /// returns how many records it removed.
    async fn delete_expired(&self) -> Result<u64> {
        store_span(STORE, "delete_expired").in_scope(|| self.delete_expired_now())
    }
}
