//! The adapter, and what it does whichever tower-sessions release calls it.

use std::{
    borrow::Cow,
    fmt,
    sync::{Arc, Mutex, PoisonError},
};

use session_core::{time::OffsetDateTime, Data, Error, Id, Record, Result, SessionStore, Update};

/// The JSON pointer, into a session's data, of the user id axum-login keeps
/// there with its default data key (`"axum-login.data"`).
///
/// See [`TowerSessionsStore::with_axum_login_user_id`].
pub const AXUM_LOGIN_USER_ID: &str = "/axum-login.data/user_id";

/// How many writes that keep losing the race to another writer of the same
/// session `save` tries before it gives up with [`Error::Backend`].
pub(crate) const MAX_SAVE_ATTEMPTS: u32 = 16;

/// How many sessions the adapter remembers the version of (see [`Versions`]).
const VERSION_SLOTS: usize = 4096;

/// One of our stores as a tower-sessions `SessionStore` (and
/// `ExpiredDeletion` when the store sweeps).
///
/// Which tower-sessions releases it serves depends on the crate's features:
/// `tower-sessions-0-15` (default) for tower-sessions 0.15,
/// `tower-sessions-0-14` for tower-sessions 0.14 and axum-login 0.18.
///
/// - `create` is the store's atomic insert-if-absent (a fresh id on a
///   collision), never an overwrite.
/// - `save` writes the session back only while it still exists, by a
///   compare-and-swap on the version the adapter last saw: a session that
///   was deleted meanwhile (a logout in another tab, "log out everywhere",
///   expiry) stays deleted, and nothing is written. A concurrent write of
///   the same session is overwritten (tower-sessions' own rule, last writer
///   wins) instead of failing the request.
/// - `load`, `delete` and `delete_expired` are the store's own.
///
/// The store's [`Record::version`] and [`Record::user_id`] survive tower-sessions'
/// writes, which do not know them: the user id is either kept as stored or,
/// with [`with_user_id_at`](Self::with_user_id_at), read from the session data
/// on every write, so the store's user index works under tower-sessions and
/// axum-login.
///
/// ```
/// use session_memory::MemoryStore;
/// use session_tower_sessions::TowerSessionsStore;
/// use tower_sessions::SessionManagerLayer;
///
/// let layer = SessionManagerLayer::new(TowerSessionsStore::new(MemoryStore::default()));
/// # let _ = layer;
/// ```
pub struct TowerSessionsStore<S> {
    store: S,
    user_id_at: Option<Cow<'static, str>>,
    versions: Arc<Versions>,
}

impl<S: SessionStore> TowerSessionsStore<S> {
    /// `store`, seen as a tower-sessions store. The user id of each record is
    /// kept as stored (tower-sessions' writes never change it).
    pub fn new(store: S) -> Self {
        Self {
            store,
            user_id_at: None,
            versions: Arc::new(Versions::new(VERSION_SLOTS)),
        }
    }

    /// Reads each record's [`user_id`](Record::user_id) from its data, at the
    /// JSON `pointer` (RFC 6901), on every `create` and `save`: the store's
    /// user index then follows whoever the application logged in.
    ///
    /// A string there is the user id as is; a number or any other JSON value
    /// is its JSON text (`42` is `"42"`); nothing there, or `null`, is no
    /// user. `"/user_id"` is the top-level key `user_id`; a `/` or `~` inside
    /// a key is written `~1` or `~0`.
    #[must_use]
    pub fn with_user_id_at(mut self, pointer: impl Into<Cow<'static, str>>) -> Self {
        self.user_id_at = Some(pointer.into());
        self
    }

    /// [`with_user_id_at`](Self::with_user_id_at) where axum-login keeps the
    /// logged-in user's id ([`AXUM_LOGIN_USER_ID`]). With a data key of your
    /// own (`AuthManagerLayerBuilder::with_data_key`), use
    /// `with_user_id_at("/<your key>/user_id")` instead.
    #[must_use]
    pub fn with_axum_login_user_id(self) -> Self {
        self.with_user_id_at(AXUM_LOGIN_USER_ID)
    }

    /// The store underneath: for what tower-sessions has no word for, such as
    /// [`sessions_of_user`](SessionStore::sessions_of_user) and
    /// [`delete_sessions_of_user`](SessionStore::delete_sessions_of_user).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store underneath, by value.
    pub fn into_store(self) -> S {
        self.store
    }

    /// The user id `data` names, if the adapter reads it from the data.
    /// `None` means "not configured": keep what is stored.
    fn user_id_in(&self, data: &Data) -> Option<Option<String>> {
        let pointer = self.user_id_at.as_deref()?;
        Some(user_id_at(data, pointer))
    }

    /// Our `create` for a record tower-sessions made: `id` is updated when
    /// the store had to pick a fresh one.
    pub(crate) async fn create_parts(
        &self,
        id: &mut Id,
        data: &Data,
        expiry_date: OffsetDateTime,
    ) -> Result<()> {
        let mut record = Record {
            id: *id,
            data: data.clone(),
            expiry_date,
            version: 0,
            user_id: self.user_id_in(data).flatten(),
        };
        self.store.create(&mut record).await?;
        *id = record.id;
        self.versions.remember(&record);
        Ok(())
    }

    /// tower-sessions' `save`: writes `data` and `expiry_date` over the
    /// session `id` if it still exists, whatever version is stored now.
    ///
    /// A compare-and-swap from the version last seen (remembered from this
    /// process's last load or write, else read now); when another writer got
    /// there first, again from the version it left. The session having ended
    /// meanwhile is not an error: nothing is written, and the next request
    /// with its cookie starts a fresh session.
    pub(crate) async fn save_parts(
        &self,
        id: Id,
        data: &Data,
        expiry_date: OffsetDateTime,
    ) -> Result<()> {
        let user_id_in_data = self.user_id_in(data);
        let mut seen = self.versions.recall(&id);
        let mut record = Record {
            id,
            data: data.clone(),
            expiry_date,
            version: 0,
            user_id: None,
        };
        for _ in 0..MAX_SAVE_ATTEMPTS {
            let (version, stored_user_id) = match seen.take() {
                Some(seen) => seen,
                None => match self.store.load(&id).await? {
                    Some(stored) => (stored.version, stored.user_id),
                    None => {
                        self.ended_meanwhile(&id);
                        return Ok(());
                    }
                },
            };
            record.version = version;
            record.user_id = match &user_id_in_data {
                Some(user_id) => user_id.clone(),
                None => stored_user_id,
            };
            match self.store.update(&mut record).await? {
                Update::Written => {
                    self.versions.remember(&record);
                    return Ok(());
                }
                Update::Conflict(stored) => seen = Some((stored.version, stored.user_id)),
                Update::Gone => {
                    self.ended_meanwhile(&id);
                    return Ok(());
                }
                _ => {
                    self.versions.forget(&id);
                    return Err(Error::backend(
                        "the store answered an update with an outcome this adapter does not know",
                    ));
                }
            }
        }
        self.versions.forget(&id);
        Err(Error::backend(format!(
            "gave up saving the session: {MAX_SAVE_ATTEMPTS} concurrent writes of it got there \
             first in a row"
        )))
    }

    fn ended_meanwhile(&self, id: &Id) {
        self.versions.forget(id);
        tracing::debug!(
            "session ended while a request was using it (logout, expiry or deletion); \
             its changes were not written"
        );
    }

    /// Our `load`; the version is remembered for the `save` that may follow.
    pub(crate) async fn load_record(&self, id: &Id) -> Result<Option<Record>> {
        let record = self.store.load(id).await?;
        match &record {
            Some(record) => self.versions.remember(record),
            None => self.versions.forget(id),
        }
        Ok(record)
    }

    /// Our `delete`.
    pub(crate) async fn delete_record(&self, id: &Id) -> Result<()> {
        self.versions.forget(id);
        self.store.delete(id).await
    }
}

impl<S: SessionStore> From<S> for TowerSessionsStore<S> {
    fn from(store: S) -> Self {
        Self::new(store)
    }
}

impl<S: Clone> Clone for TowerSessionsStore<S> {
    /// A second handle on the same store, sharing what the first remembers of
    /// session versions.
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            user_id_at: self.user_id_at.clone(),
            versions: Arc::clone(&self.versions),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for TowerSessionsStore<S> {
    // Leaves out the remembered versions: they are keyed by session id, and
    // a session id never goes into a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TowerSessionsStore")
            .field("store", &self.store)
            .field("user_id_at", &self.user_id_at)
            .finish_non_exhaustive()
    }
}

/// The user id at `pointer` in `data` (see
/// [`TowerSessionsStore::with_user_id_at`]).
fn user_id_at(data: &Data, pointer: &str) -> Option<String> {
    // The first token names a key of the map; the rest points into its value.
    let rest = pointer.strip_prefix('/')?;
    let (key, inner) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, ""),
    };
    let key = key.replace("~1", "/").replace("~0", "~");
    match data.get(&key)?.pointer(inner)? {
        serde_json::Value::Null => None,
        serde_json::Value::String(user_id) => Some(user_id.clone()),
        other => Some(other.to_string()),
    }
}

/// The version and user id this process last saw of recently used sessions,
/// so that tower-sessions' `save`, which carries neither, can write back with
/// one `update` instead of a `load` and an `update`.
///
/// A fixed number of slots, each holding one session, chosen by the low bits
/// of its (random) id: a newer session evicts an older one in the same slot.
/// What is remembered is a hint: a missing one costs a `load`, a stale one a
/// `Conflict` answered with the stored version. Neither changes what is
/// written.
struct Versions {
    slots: Box<[Mutex<Option<Seen>>]>,
}

struct Seen {
    id: Id,
    version: u64,
    user_id: Option<String>,
}

impl Versions {
    fn new(slots: usize) -> Self {
        Self {
            slots: (0..slots.max(1)).map(|_| Mutex::new(None)).collect(),
        }
    }

    fn slot(&self, id: &Id) -> std::sync::MutexGuard<'_, Option<Seen>> {
        // Truncation intended: ids are uniformly random, so their low bits are.
        let index = (id.0 as u64 % self.slots.len() as u64) as usize;
        // A panic while a slot was held cannot leave it half-written (it is
        // replaced whole), so a poisoned slot is still a valid hint.
        self.slots[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn remember(&self, record: &Record) {
        *self.slot(&record.id) = Some(Seen {
            id: record.id,
            version: record.version,
            user_id: record.user_id.clone(),
        });
    }

    fn recall(&self, id: &Id) -> Option<(u64, Option<String>)> {
        match &*self.slot(id) {
            Some(seen) if seen.id == *id => Some((seen.version, seen.user_id.clone())),
            _ => None,
        }
    }

    fn forget(&self, id: &Id) {
        let mut slot = self.slot(id);
        if slot.as_ref().is_some_and(|seen| seen.id == *id) {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn data(value: serde_json::Value) -> Data {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn user_id_from_data() {
        let login = |user_id| data(json!({ "axum-login.data": { "user_id": user_id } }));
        assert_eq!(
            user_id_at(&login(json!("ferris")), AXUM_LOGIN_USER_ID),
            Some("ferris".to_owned())
        );
        assert_eq!(
            user_id_at(&login(json!(42)), AXUM_LOGIN_USER_ID),
            Some("42".to_owned())
        );
        assert_eq!(
            user_id_at(&login(json!([1, "a"])), AXUM_LOGIN_USER_ID),
            Some(r#"[1,"a"]"#.to_owned())
        );
        assert_eq!(user_id_at(&login(json!(null)), AXUM_LOGIN_USER_ID), None);
        assert_eq!(user_id_at(&data(json!({})), AXUM_LOGIN_USER_ID), None);
        assert_eq!(
            user_id_at(&data(json!({ "axum-login.data": 1 })), AXUM_LOGIN_USER_ID),
            None
        );

        let top = data(json!({ "user_id": "u1", "a/b": { "c~d": 7 } }));
        assert_eq!(user_id_at(&top, "/user_id"), Some("u1".to_owned()));
        assert_eq!(user_id_at(&top, "/a~1b/c~0d"), Some("7".to_owned()));
        assert_eq!(user_id_at(&top, "user_id"), None, "not a pointer");
        assert_eq!(user_id_at(&top, ""), None, "the whole map is no user id");
    }

    #[test]
    fn versions_are_hints_per_slot() {
        let versions = Versions::new(4);
        let mut a = Record::new(OffsetDateTime::now_utc());
        a.id = Id(1);
        a.version = 3;
        a.user_id = Some("u".to_owned());
        versions.remember(&a);
        assert_eq!(versions.recall(&Id(1)), Some((3, Some("u".to_owned()))));

        // Same slot (1 % 4 == 5 % 4): the newer session evicts the older.
        let mut b = Record::new(OffsetDateTime::now_utc());
        b.id = Id(5);
        versions.remember(&b);
        assert_eq!(versions.recall(&Id(1)), None);
        versions.forget(&Id(1));
        assert_eq!(versions.recall(&Id(5)), Some((0, None)), "not another's");
        versions.forget(&Id(5));
        assert_eq!(versions.recall(&Id(5)), None);

        // Negative ids land in a slot too.
        let mut c = Record::new(OffsetDateTime::now_utc());
        c.id = Id(-1);
        versions.remember(&c);
        assert_eq!(versions.recall(&Id(-1)), Some((0, None)));
    }
}
