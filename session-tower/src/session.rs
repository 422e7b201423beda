//! The [`Session`] handle a handler reads and changes, and the per-request
//! state behind it. What happens to the state after the handler (the write
//! decision) lives in `finish.rs`.

use std::{
    collections::HashMap,
    fmt, mem,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;
use session_core::{Data, Id, Record, SessionStore};
use time::{Duration, OffsetDateTime};
use tokio::sync::{Mutex, MutexGuard};
use tracing::Instrument as _;

use crate::{
    cookie::{Carried, CookieConfig},
    metrics::{self, Rejected},
    user_sessions::UserSession,
    Error, Expiry, OnStoreError, Result,
};

/// The most bytes a cookie may take, name, value and attributes together, as
/// the `Set-Cookie` header carries them (RFC 6265 section 6.1; browsers drop
/// bigger cookies without a word). Cookie-only sessions refuse to grow past
/// it.
pub const COOKIE_SIZE_LIMIT: usize = 4096;

/// The prefix of the data keys this crate keeps in a stored record for
/// itself. The [`Session`] API never shows them and refuses keys that start
/// with it ([`Error::ReservedKey`]), so a handler that lets visitors pick
/// keys cannot let them write these.
pub const RESERVED_KEY_PREFIX: &str = "__session_tower.";

/// The data key under which a session's own [`Expiry`] (set with
/// [`Session::set_expiry`]) is kept in its stored record, so it survives
/// across requests.
pub const EXPIRY_KEY: &str = "__session_tower.expiry";

/// The data key under which a stored session keeps when it was created (Unix
/// seconds), for [`SessionManagerLayer::with_absolute_timeout`](crate::SessionManagerLayer::with_absolute_timeout).
pub const CREATED_KEY: &str = "__session_tower.created";

/// What the layer applies to every session.
#[derive(Debug, Clone, Default)]
pub(crate) struct Config {
    pub(crate) cookie: CookieConfig,
    pub(crate) expiry: Expiry,
    pub(crate) always_save: bool,
    /// The whole record lives in the (encrypted) cookie; the store is never
    /// called.
    pub(crate) cookie_only: bool,
    /// Sliding sessions: the least an expiry date moves before it is written
    /// (`None`: derived from the inactivity period).
    pub(crate) refresh_interval: Option<Duration>,
    /// The most a session following the layer's policy lives from its
    /// creation, however active.
    pub(crate) absolute_timeout: Option<Duration>,
    /// What a request gets when the store cannot be reached.
    pub(crate) on_store_error: OnStoreError,
}

impl Config {
    /// The policy in force for a session with its own policy `own`.
    pub(crate) fn policy(&self, own: Option<Expiry>) -> Expiry {
        own.unwrap_or(self.expiry)
    }

    /// The expiry date a session gets when written at `now`: its policy's,
    /// capped by the absolute timeout for sessions on the layer's policy.
    pub(crate) fn expiry_date_at(
        &self,
        own: Option<Expiry>,
        created: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> OffsetDateTime {
        let date = self.policy(own).expiry_date_at(now);
        match (own, self.absolute_timeout) {
            (None, Some(timeout)) => {
                let cap = crate::expiry::saturating_add(created.unwrap_or(now), timeout);
                date.min(cap)
            }
            _ => date,
        }
    }

    /// How far a sliding session's expiry date must move before `finish`
    /// writes it: the configured interval, or a tenth of the inactivity
    /// period, at most a minute.
    pub(crate) fn refresh_interval(&self, inactivity: Duration) -> Duration {
        self.refresh_interval
            .unwrap_or_else(|| (inactivity / 10_i32).min(Duration::MINUTE))
    }
}

/// A visitor's session, handed to handlers through request extensions (and
/// the axum extractor).
///
/// Cheap to clone: clones share one state. Lazy: the store is read the first
/// time a method needs the data, and not at all when no method is called.
/// Changes are written once, after the handler has answered, and only when
/// something changed (see [`SessionManagerLayer`](crate::SessionManagerLayer)).
///
/// A missing, malformed, tampered, unknown or expired cookie gives a fresh
/// empty session.
///
/// # Concurrent requests
///
/// Each request works on its own copy and records what it changed, key by
/// key. After the handler, a stored session is written back with the store's
/// compare-and-swap [`update`](session_core::SessionStore::update), never an
/// unconditional save:
///
/// - if another request wrote the session meanwhile, this request's own
///   changes (keys set, keys removed, a `clear`, the user, the expiry policy)
///   are applied again onto what is stored now, and the write retried: two
///   requests changing different keys both keep their change. For the same
///   key, the request that writes last wins.
/// - if another request ended the session meanwhile (logout, `cycle_id`,
///   [`end_other_sessions`](Self::end_other_sessions)) or it expired, nothing
///   is written, nothing is created and the response carries no
///   `Set-Cookie` at all: a logout stays final.
#[derive(Clone)]
pub struct Session {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) config: Arc<Config>,
    /// The request's `Cookie` headers and session header values, read only
    /// once the session is used.
    pub(crate) carried: Carried,
    /// Whether any method was called: if not, the response is left alone.
    touched: AtomicBool,
    /// The store could not be reached to load the session and the layer
    /// serves the request without it ([`OnStoreError::ServeWithoutSession`]).
    detached: AtomicBool,
    pub(crate) state: Mutex<State>,
}

/// A request's view of its session.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) loaded: bool,
    /// A store call failed during this request: change nothing afterwards.
    pub(crate) failed: bool,
    /// The stored record this session is bound to, as this request last saw
    /// it; `None` for a session not stored (new, flushed or cycled: the next
    /// write uses `create`).
    pub(crate) stored: Option<Stored>,
    /// The values as the handler sees them (never the reserved keys).
    pub(crate) data: Data,
    pub(crate) user_id: Option<String>,
    /// This session's own expiry policy, overriding the layer's.
    pub(crate) expiry: Option<Expiry>,
    /// When the stored session was created, if known.
    pub(crate) created: Option<OffsetDateTime>,
    /// What this request changed, to apply again over a concurrent write.
    pub(crate) changes: Changes,
    /// A record to delete once this session is stored under a new id.
    pub(crate) stale: Option<Id>,
    /// The cookie must go (flush, or a cycled session left empty).
    pub(crate) remove_cookie: bool,
    /// The cookie was opened with an older key: send it again, sealed with
    /// the newest, so key rotation completes.
    pub(crate) reseal: bool,
}

/// What the store holds for a session, as this request last saw it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stored {
    pub(crate) id: Id,
    pub(crate) version: u64,
    pub(crate) expiry_date: OffsetDateTime,
}

/// A request's own changes, key by key.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// `clear` was called: every key not set afterwards goes.
    pub(crate) cleared: bool,
    /// Keys set (`Some`) or removed (`None`), after any `clear`.
    pub(crate) keys: HashMap<String, Option<Value>>,
    /// The user was set or unset.
    pub(crate) user_id: Option<Option<String>>,
    /// The session's own expiry policy was set or unset.
    pub(crate) expiry: Option<Option<Expiry>>,
    /// Cookie-only: the payload got a new id.
    pub(crate) cycled: bool,
}

impl Changes {
    pub(crate) fn is_empty(&self) -> bool {
        !self.cleared
            && !self.cycled
            && self.keys.is_empty()
            && self.user_id.is_none()
            && self.expiry.is_none()
    }
}

impl State {
    /// Binds the state to `record` as stored: its reserved keys become the
    /// policy and creation time, the rest the handler's data.
    pub(crate) fn bind(&mut self, record: Record) {
        let Record {
            id,
            mut data,
            expiry_date,
            version,
            user_id,
        } = record;
        let reserved = Reserved::take(&mut data);
        self.stored = Some(Stored {
            id,
            version,
            expiry_date,
        });
        self.data = data;
        self.user_id = user_id;
        self.expiry = reserved.expiry;
        self.created = reserved.created;
    }

    /// The record this state stands for, as written at `now`.
    pub(crate) fn to_record(&self, config: &Config, now: OffsetDateTime) -> Result<Record> {
        let created = self.created.unwrap_or(now);
        let mut data = self.data.clone();
        Reserved {
            expiry: self.expiry,
            // Only an absolute timeout needs it: no bytes spent otherwise.
            created: config.absolute_timeout.map(|_| created),
        }
        .put(&mut data)?;
        Ok(Record {
            id: self.stored.map_or_else(Id::default, |stored| stored.id),
            data,
            expiry_date: config.expiry_date_at(self.expiry, Some(created), now),
            version: self.stored.map_or(0, |stored| stored.version),
            user_id: self.user_id.clone(),
        })
    }

    /// This request's changes applied over `current`, what another request
    /// stored meanwhile; the state is bound to the result.
    pub(crate) fn rebase(&mut self, current: Record) {
        self.bind(current);
        if self.changes.cleared {
            self.data.clear();
        }
        for (key, value) in &self.changes.keys {
            match value {
                Some(value) => self.data.insert(key.clone(), value.clone()),
                None => self.data.remove(key),
            };
        }
        if let Some(user_id) = &self.changes.user_id {
            self.user_id.clone_from(user_id);
        }
        if let Some(expiry) = self.changes.expiry {
            self.expiry = expiry;
        }
    }
}

/// The reserved keys of a stored record.
#[derive(Debug, Default)]
struct Reserved {
    expiry: Option<Expiry>,
    created: Option<OffsetDateTime>,
}

impl Reserved {
    /// Takes the reserved keys out of `data`. A value that does not read as
    /// what it should be (written by another version, or by hand) is
    /// dropped with a warning: the layer's policy applies instead.
    fn take(data: &mut Data) -> Self {
        let mut reserved = Self::default();
        if !data.keys().any(|key| key.starts_with(RESERVED_KEY_PREFIX)) {
            return reserved;
        }
        data.retain(|key, value| {
            if !key.starts_with(RESERVED_KEY_PREFIX) {
                return true;
            }
            match key.as_str() {
                EXPIRY_KEY => match serde_json::from_value::<Expiry>(value.take()) {
                    Ok(expiry) if expiry.is_valid() => reserved.expiry = Some(expiry),
                    _ => tracing::warn!("stored session expiry policy is invalid; ignoring it"),
                },
                CREATED_KEY => {
                    reserved.created = value
                        .as_i64()
                        .and_then(|unix| OffsetDateTime::from_unix_timestamp(unix).ok());
                }
                _ => {}
            }
            false
        });
        reserved
    }

    fn put(&self, data: &mut Data) -> Result<()> {
        if let Some(expiry) = self.expiry {
            let value = serde_json::to_value(expiry).map_err(session_core::Error::encode)?;
            data.insert(EXPIRY_KEY.to_owned(), value);
        }
        if let Some(created) = self.created {
            data.insert(CREATED_KEY.to_owned(), created.unix_timestamp().into());
        }
        Ok(())
    }
}

/// How many more bytes of JSON an expiry date of the same year and offset
/// as `date` can take than `date` does: day of year, hour, minute, second
/// and nanosecond are numbers of varying width.
fn expiry_json_growth(date: OffsetDateTime) -> usize {
    let widest = time::Date::from_ordinal_date(date.year(), 300)
        .and_then(|day| day.with_hms_nano(23, 59, 59, 999_999_999))
        .map(|widest| widest.assume_offset(date.offset()));
    let length = |date: &OffsetDateTime| serde_json::to_vec(date).map_or(0, |json| json.len());
    match widest {
        Ok(widest) => length(&widest).saturating_sub(length(&date)),
        // Not a date `time` can hold: the most the fields can grow.
        Err(_) => 13,
    }
}

fn check_key(key: &str) -> Result<()> {
    if key.starts_with(RESERVED_KEY_PREFIX) {
        return Err(Error::ReservedKey(key.to_owned()));
    }
    Ok(())
}

impl Session {
    pub(crate) fn new(store: Arc<dyn SessionStore>, config: Arc<Config>, carried: Carried) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                config,
                carried,
                touched: AtomicBool::new(false),
                detached: AtomicBool::new(false),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// The value stored under `key`, deserialized as a `T`.
    ///
    /// `Ok(None)` when there is no such key; an error when the store fails or
    /// the value is not a `T`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.get_value(key).await? {
            Some(value) => Ok(Some(serde_json::from_value(value)?)),
            None => Ok(None),
        }
    }

    /// The JSON value stored under `key`.
    pub async fn get_value(&self, key: &str) -> Result<Option<Value>> {
        let state = self.loaded().await?;
        Ok(state.data.get(key).cloned())
    }

    /// Stores `value` under `key`, replacing what was there.
    pub async fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<()> {
        let value = serde_json::to_value(value)?;
        self.insert_value(key, value).await?;
        Ok(())
    }

    /// Stores a JSON value under `key`, returning the one it replaces.
    ///
    /// Storing a value equal to the current one is not a change. A key
    /// starting with [`RESERVED_KEY_PREFIX`] is refused with
    /// [`Error::ReservedKey`]. On a cookie-only session, a value that would
    /// make the cookie too large is refused with
    /// [`Error::CookieTooLarge`](crate::Error::CookieTooLarge) and the
    /// session keeps its previous value.
    pub async fn insert_value(&self, key: &str, value: Value) -> Result<Option<Value>> {
        check_key(key)?;
        let mut state = self.loaded().await?;
        if state.data.get(key) == Some(&value) {
            return Ok(Some(value));
        }
        let previous = state.data.insert(key.to_owned(), value.clone());
        if let Err(error) = self.check_cookie_size(&state) {
            // Refused: the session stays as it was.
            match &previous {
                Some(previous) => state.data.insert(key.to_owned(), previous.clone()),
                None => state.data.remove(key),
            };
            return Err(error);
        }
        state.changes.keys.insert(key.to_owned(), Some(value));
        Ok(previous)
    }

    /// Removes `key`, returning its value deserialized as a `T`.
    pub async fn remove<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.remove_value(key).await? {
            Some(value) => Ok(Some(serde_json::from_value(value)?)),
            None => Ok(None),
        }
    }

    /// Removes `key`, returning its JSON value.
    pub async fn remove_value(&self, key: &str) -> Result<Option<Value>> {
        check_key(key)?;
        let mut state = self.loaded().await?;
        let removed = state.data.remove(key);
        if removed.is_some() {
            state.changes.keys.insert(key.to_owned(), None);
        }
        Ok(removed)
    }

    /// Removes every value. The session keeps its id, user and record (saved
    /// empty); use [`flush`](Self::flush) to end it.
    pub async fn clear(&self) -> Result<()> {
        let mut state = self.loaded().await?;
        if !state.data.is_empty() || !state.changes.keys.is_empty() {
            state.data.clear();
            state.changes.keys.clear();
            state.changes.cleared = true;
        }
        Ok(())
    }

    /// Whether the session holds no values.
    pub async fn is_empty(&self) -> Result<bool> {
        Ok(self.loaded().await?.data.is_empty())
    }

    /// Ends the session: deletes its record from the store now, and the
    /// response removes the cookie. Values inserted afterwards start a new
    /// session with a new id.
    ///
    /// Requests still in flight with this session cannot bring it back:
    /// their writes find it gone, write nothing and send no cookie.
    ///
    /// Cookie-only: there is nothing to delete; the response removes the
    /// browser's cookie, but a copy kept elsewhere stays valid until the
    /// expiry date inside it.
    pub async fn flush(&self) -> Result<()> {
        self.inner.touched.store(true, Ordering::Release);
        let mut state = self.inner.state.lock().await;
        if self.inner.config.cookie_only {
            // Nothing stored anywhere but in the cookie, which goes.
            *state = State {
                loaded: true,
                remove_cookie: true,
                ..State::default()
            };
            return Ok(());
        }
        // No need to load what is about to be deleted: the cookie's id will
        // do. A detached session never loaded its record, but the record may
        // well exist: a logout must still try to delete it.
        let id = if state.loaded && !self.is_detached() {
            state.stored.map(|stored| stored.id)
        } else {
            self.cookie_id()
        };
        let stale = state.stale.take();
        for id in [id, stale].into_iter().flatten() {
            let span = tracing::debug_span!("session.delete");
            if let Err(error) = self.inner.store.delete(&id).instrument(span).await {
                state.failed = true;
                return Err(error.into());
            }
        }
        *state = State {
            loaded: true,
            remove_cookie: true,
            ..State::default()
        };
        // The store answered: what follows is an ordinary new session.
        self.inner.detached.store(false, Ordering::Release);
        Ok(())
    }

    /// Gives the session a new id, keeping its values and user: the next
    /// write creates a new record and deletes the old one, and the response
    /// carries the new cookie. Call it on login and privilege changes,
    /// against session fixation.
    ///
    /// The old record is deleted after the new one is stored; should that
    /// delete fail, the failure is logged and the login still completes (the
    /// old session keeps only what it had before the login). A request still
    /// in flight with the old id finds it gone and sends no cookie, so it
    /// cannot replace the new cookie in the browser.
    ///
    /// Cookie-only: the payload gets a new id at once and the response a new
    /// cookie; should the new id make the cookie too large, it is refused
    /// with [`Error::CookieTooLarge`](crate::Error::CookieTooLarge) and the
    /// session keeps its id.
    pub async fn cycle_id(&self) -> Result<()> {
        let mut state = self.loaded().await?;
        if self.inner.config.cookie_only {
            // No record to delete: the payload just carries a new id. Ids
            // are written as numbers of 1 to 40 characters, so a new one
            // can make the cookie longer: checked like any other change.
            let Some(previous) = state.stored.map(|stored| stored.id) else {
                return Ok(());
            };
            if let Some(stored) = &mut state.stored {
                stored.id = Id::default();
            }
            if let Err(error) = self.check_cookie_size(&state) {
                if let Some(stored) = &mut state.stored {
                    stored.id = previous;
                }
                return Err(error);
            }
            state.changes.cycled = true;
            return Ok(());
        }
        if let Some(stored) = state.stored.take() {
            state.stale = Some(stored.id);
            // A new session: its lifetime starts now.
            state.created = None;
        }
        Ok(())
    }

    /// The id of the stored record: `None` for a session not stored yet (or
    /// whose id was just cycled; the new one is known once it is saved).
    /// Cookie-only sessions carry an id in their payload too, given when the
    /// cookie is first written.
    pub async fn id(&self) -> Result<Option<Id>> {
        Ok(self.loaded().await?.stored.map(|stored| stored.id))
    }

    /// The expiry policy in force: this session's own
    /// ([`set_expiry`](Self::set_expiry)), kept across requests, or the
    /// layer's.
    pub async fn expiry(&self) -> Result<Expiry> {
        let state = self.loaded().await?;
        Ok(self.inner.config.policy(state.expiry))
    }

    /// Sets this session's own expiry policy (`None`: back to the layer's).
    /// It is stored with the session, so it holds on later requests too. A
    /// session with its own policy follows it alone: the layer's absolute
    /// timeout does not apply to it (remember-me).
    pub async fn set_expiry(&self, expiry: Option<Expiry>) -> Result<()> {
        if let Some(expiry) = expiry.filter(|expiry| !expiry.is_valid()) {
            return Err(Error::InvalidExpiry(expiry));
        }
        let mut state = self.loaded().await?;
        if state.expiry != expiry {
            let previous = mem::replace(&mut state.expiry, expiry);
            if let Err(error) = self.check_cookie_size(&state) {
                state.expiry = previous;
                return Err(error);
            }
            state.changes.expiry = Some(expiry);
        }
        Ok(())
    }

    /// When the session expires: for a stored, unchanged session the stored
    /// record's expiry date; otherwise the date the next write will give it.
    pub async fn expiry_date(&self) -> Result<OffsetDateTime> {
        let state = self.loaded().await?;
        Ok(match state.stored {
            Some(stored) if state.changes.is_empty() => stored.expiry_date,
            _ => self.inner.config.expiry_date_at(
                state.expiry,
                state.created,
                OffsetDateTime::now_utc(),
            ),
        })
    }

    /// The user this session belongs to, if the application said so with
    /// [`set_user_id`](Self::set_user_id).
    pub async fn user_id(&self) -> Result<Option<String>> {
        Ok(self.loaded().await?.user_id.clone())
    }

    /// Ties this session to a user (`None`: to nobody), so that
    /// [`user_sessions`](Self::user_sessions) lists it and
    /// [`end_other_sessions`](Self::end_other_sessions) and the store's
    /// [`delete_sessions_of_user`](session_core::SessionStore::delete_sessions_of_user)
    /// can end it. Set it at login, after [`cycle_id`](Self::cycle_id).
    pub async fn set_user_id(&self, user_id: Option<impl Into<String>>) -> Result<()> {
        let user_id = user_id.map(Into::into);
        let mut state = self.loaded().await?;
        if state.user_id != user_id {
            let previous = mem::replace(&mut state.user_id, user_id.clone());
            if let Err(error) = self.check_cookie_size(&state) {
                state.user_id = previous;
                return Err(error);
            }
            state.changes.user_id = Some(user_id);
        }
        Ok(())
    }

    /// The active sessions of this session's user (this one included, once
    /// stored), for a "your devices" page: see [`UserSession`]. Empty for a
    /// session with no user.
    ///
    /// Cookie-only sessions have no store to list: an empty list.
    pub async fn user_sessions(&self) -> Result<Vec<UserSession>> {
        let (user_id, current) = {
            let state = self.loaded().await?;
            (state.user_id.clone(), state.stored.map(|stored| stored.id))
        };
        let Some(user_id) = user_id else {
            return Ok(Vec::new());
        };
        if self.inner.config.cookie_only {
            return Ok(Vec::new());
        }
        let records = self
            .inner
            .store
            .sessions_of_user(&user_id)
            .instrument(tracing::debug_span!("session.user_sessions"))
            .await?;
        Ok(records
            .into_iter()
            .map(|record| UserSession::new(record, current))
            .collect())
    }

    /// Ends every other session of this session's user, keeping this one
    /// ("log out other devices"), and returns how many were ended. Nothing
    /// to do (0) for a session with no user.
    ///
    /// Requests in flight with the ended sessions find them gone when they
    /// write: they write nothing and send no cookie.
    pub async fn end_other_sessions(&self) -> Result<u64> {
        let (user_id, current) = {
            let state = self.loaded().await?;
            (state.user_id.clone(), state.stored.map(|stored| stored.id))
        };
        let Some(user_id) = user_id else {
            return Ok(0);
        };
        if self.inner.config.cookie_only {
            return Err(session_core::Error::Unsupported("delete_sessions_of_user").into());
        }
        let ended = self
            .inner
            .store
            .delete_sessions_of_user(&user_id, current.as_ref())
            .instrument(tracing::debug_span!("session.end_other_sessions"))
            .await?;
        Ok(ended)
    }

    /// Ends one session of this session's user, chosen by its
    /// [`UserSession::handle`] (from [`user_sessions`](Self::user_sessions)):
    /// "log out that device". `false` when no active session of this user
    /// has that handle.
    pub async fn end_user_session(&self, handle: &str) -> Result<bool> {
        let target = self
            .user_sessions()
            .await?
            .into_iter()
            .find(|session| session.handle() == handle);
        let Some(target) = target else {
            return Ok(false);
        };
        if target.is_current() {
            self.flush().await?;
        } else {
            self.inner
                .store
                .delete(&target.id)
                .instrument(tracing::debug_span!("session.end_user_session"))
                .await?;
        }
        Ok(true)
    }

    /// The store sessions are kept in: for what the `Session` API does not
    /// cover, such as ending every session of another user from an admin
    /// handler or after a password change
    /// ([`delete_sessions_of_user`](session_core::SessionStore::delete_sessions_of_user)).
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.inner.store
    }

    fn cookie_id(&self) -> Option<Id> {
        let (id, _) = self.inner.config.cookie.find(
            &self.inner.carried,
            |value| value.parse().map_err(|_| Rejected::Malformed),
            |_| {},
        )?;
        Some(id)
    }

    /// Whether this request is served without its session because the store
    /// could not be reached to load it (only with
    /// [`OnStoreError::ServeWithoutSession`]).
    ///
    /// A detached session starts empty, as for a visitor without a cookie:
    /// reads find nothing, [`id`](Self::id) and
    /// [`user_id`](Self::user_id) are `None`, and changes last for this
    /// request only. After the handler nothing is written to the store and
    /// the response gets no `Set-Cookie`: the browser keeps its cookie, so
    /// the visitor finds the session again once the store is back.
    /// [`flush`](Self::flush) still tries to delete the cookie's record (a
    /// logout must not silently do nothing) and returns the store's error if
    /// it is still down. A handler that needs the real session (a checkout,
    /// an admin page) checks this and answers accordingly.
    pub fn is_detached(&self) -> bool {
        self.inner.detached.load(Ordering::Acquire)
    }

    /// Cookie-only: refuses a state whose cookie would pass the size limit.
    fn check_cookie_size(&self, state: &State) -> Result<()> {
        if self.inner.config.cookie_only {
            let now = OffsetDateTime::now_utc();
            crate::finish::sealed_cookie(
                &self.inner.config,
                state,
                now,
                crate::finish::CHANGE_LIMIT,
            )?;
        }
        Ok(())
    }

    /// Cookie-only: whether a record opened from a cookie can be written
    /// back within [`COOKIE_SIZE_LIMIT`] whenever the layer writes it (its
    /// expiry date is encoded anew then, perhaps with more digits).
    ///
    /// What this layer writes always can (changes are held to
    /// `CHANGE_LIMIT`, which keeps that margin), but an authentic cookie
    /// made elsewhere (another build, another program holding the key) may
    /// not: honouring it would make every request carrying it a 500, so it
    /// counts as no session at all.
    fn fits_in_a_cookie(&self, state: &State) -> bool {
        let config = &*self.inner.config;
        let now = OffsetDateTime::now_utc();
        let Ok(sealed) = crate::finish::sealed_cookie(config, state, now, COOKIE_SIZE_LIMIT) else {
            return false;
        };
        let growth = match config.policy(state.expiry) {
            // The date is the record's own, written the same every time.
            Expiry::AtDateTime(_) => 0,
            _ => expiry_json_growth(sealed.expiry_date),
        };
        // Base64 of the encrypted JSON: 4 bytes per 3, rounded up.
        sealed.header.len() + 4 * growth.div_ceil(3) <= COOKIE_SIZE_LIMIT
    }

    /// The state, loaded from the store on first use.
    pub(crate) async fn loaded(&self) -> Result<MutexGuard<'_, State>> {
        self.inner.touched.store(true, Ordering::Release);
        let mut state = self.inner.state.lock().await;
        if state.loaded {
            return Ok(state);
        }
        let cookie = &self.inner.config.cookie;
        let carried = &self.inner.carried;
        if self.inner.config.cookie_only {
            // The first of our cookies that opens to a live record this
            // layer can write back.
            let accept = |value: &str| {
                let mut candidate = State::default();
                candidate.bind(crate::finish::open_cookie_record(value)?);
                if self.fits_in_a_cookie(&candidate) {
                    Ok(candidate)
                } else {
                    Err(Rejected::Malformed)
                }
            };
            let found = cookie.find(carried, accept, metrics::cookie_rejected);
            if let Some((candidate, reseal)) = found {
                *state = candidate;
                state.reseal = reseal;
            }
            state.loaded = true;
            return Ok(state);
        }
        // The first of our cookies that holds an id: another application's
        // cookie of the same name on the parent domain is skipped.
        let parse = |value: &str| value.parse::<Id>().map_err(|_| Rejected::Malformed);
        if let Some((id, reseal)) = cookie.find(carried, parse, metrics::cookie_rejected) {
            // No id in the span: a session id in a log is a credential.
            let span = tracing::debug_span!("session.load");
            match self.inner.store.load(&id).instrument(span).await {
                Ok(Some(record)) if record.is_active() => {
                    state.bind(record);
                    state.reseal = reseal;
                }
                // Unknown or expired: a fresh session.
                Ok(_) => metrics::cookie_rejected(Rejected::Expired),
                Err(error)
                    if error.is_backend()
                        && self.inner.config.on_store_error
                            == OnStoreError::ServeWithoutSession =>
                {
                    tracing::warn!(
                        %error,
                        "session store unreachable; serving the request without its session"
                    );
                    // Nothing is written after the handler (see `finish`).
                    state.failed = true;
                    self.inner.detached.store(true, Ordering::Release);
                }
                Err(error) => {
                    state.failed = true;
                    return Err(error.into());
                }
            }
        }
        state.loaded = true;
        Ok(state)
    }

    /// Whether a handler called any method: if not, there is nothing to do.
    pub(crate) fn is_touched(&self) -> bool {
        self.inner.touched.load(Ordering::Acquire)
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("store", &self.inner.store)
            .field("touched", &self.inner.touched.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
