//! The [`Session`] handle a handler reads and changes.

use std::{
    fmt, mem,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use http::HeaderValue;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;
use session_core::{Data, Id, Record, SessionStore};
use time::OffsetDateTime;
use tokio::sync::{Mutex, MutexGuard};
use tracing::Instrument as _;

use crate::{cookie::CookieConfig, Error, Expiry, Result};

/// The most bytes a cookie may take, name, value and attributes together, as
/// the `Set-Cookie` header carries them (RFC 6265 section 6.1; browsers drop
/// bigger cookies without a word). Cookie-only sessions refuse to grow past
/// it.
pub const COOKIE_SIZE_LIMIT: usize = 4096;

/// The data key under which a session's own [`Expiry`] (set with
/// [`Session::set_expiry`]) is kept in its stored record, so it survives
/// across requests. It is never visible through the [`Session`] API.
pub const EXPIRY_KEY: &str = "__session_tower.expiry";

/// What the layer applies to every session.
#[derive(Debug, Clone, Default)]
pub(crate) struct Config {
    pub(crate) cookie: CookieConfig,
    pub(crate) expiry: Expiry,
    pub(crate) always_save: bool,
    /// The whole record lives in the (encrypted) cookie; the store is never
    /// called.
    pub(crate) cookie_only: bool,
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
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn SessionStore>,
    config: Arc<Config>,
    /// The request's `Cookie` headers, read only once the session is used.
    cookie_headers: Vec<HeaderValue>,
    /// Whether any method was called: if not, the response is left alone.
    touched: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    loaded: bool,
    /// A store call failed during this request: change nothing afterwards.
    failed: bool,
    /// The stored record this session is bound to; `None` for a session not
    /// stored yet (the next write uses `create`).
    id: Option<Id>,
    data: Data,
    /// The stored record's expiry date, once loaded or saved.
    expiry_date: Option<OffsetDateTime>,
    /// This session's own expiry policy, overriding the layer's.
    expiry: Option<Expiry>,
    modified: bool,
    /// A record to delete once the session is saved under a new id.
    stale: Option<Id>,
    /// The cookie must go (flush, or a cycled session left empty).
    remove_cookie: bool,
}

/// What the layer does to the response once the handler has answered.
pub(crate) enum Outcome {
    /// Nothing: no `Set-Cookie`.
    Unchanged,
    /// Add this `Set-Cookie` header.
    SetCookie(HeaderValue),
}

impl Session {
    pub(crate) fn new(
        store: Arc<dyn SessionStore>,
        config: Arc<Config>,
        cookie_headers: Vec<HeaderValue>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                config,
                cookie_headers,
                touched: AtomicBool::new(false),
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
    /// Storing a value equal to the current one is not a change. On a
    /// cookie-only session, a value that would make the cookie too large is
    /// refused with [`Error::CookieTooLarge`](crate::Error::CookieTooLarge)
    /// and the session keeps its previous value.
    pub async fn insert_value(&self, key: &str, value: Value) -> Result<Option<Value>> {
        let mut state = self.loaded().await?;
        if state.data.get(key) == Some(&value) {
            return Ok(Some(value));
        }
        let previous = state.data.insert(key.to_owned(), value);
        if let Err(error) = self.check_cookie_size(&state) {
            // Refused: the session stays as it was.
            match &previous {
                Some(previous) => state.data.insert(key.to_owned(), previous.clone()),
                None => state.data.remove(key),
            };
            return Err(error);
        }
        state.modified = true;
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
        let mut state = self.loaded().await?;
        let removed = state.data.remove(key);
        state.modified |= removed.is_some();
        Ok(removed)
    }

    /// Removes every value. The session keeps its id and record (saved
    /// empty); use [`flush`](Self::flush) to end it.
    pub async fn clear(&self) -> Result<()> {
        let mut state = self.loaded().await?;
        if !state.data.is_empty() {
            state.data.clear();
            state.modified = true;
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
        // No need to load what is about to be deleted: the cookie's id will do.
        let id = if state.loaded {
            state.id
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
        Ok(())
    }

    /// Gives the session a new id, keeping its values: the next write creates
    /// a new record and deletes the old one, and the response carries the new
    /// cookie. Call it on login and privilege changes, against session
    /// fixation.
    ///
    /// Cookie-only: the payload gets a new id at once and the response a new
    /// cookie.
    pub async fn cycle_id(&self) -> Result<()> {
        let mut state = self.loaded().await?;
        if self.inner.config.cookie_only {
            // No record to delete: the payload just carries a new id.
            if state.id.is_some() {
                state.id = Some(Id::default());
                state.modified = true;
            }
            return Ok(());
        }
        if let Some(id) = state.id.take() {
            state.stale = Some(id);
            state.modified = true;
        }
        Ok(())
    }

    /// The id of the stored record: `None` for a session not stored yet (or
    /// whose id was just cycled; the new one is known once it is saved).
    /// Cookie-only sessions carry an id in their payload too, given when the
    /// cookie is first written.
    pub async fn id(&self) -> Result<Option<Id>> {
        Ok(self.loaded().await?.id)
    }

    /// The expiry policy in force: this session's own
    /// ([`set_expiry`](Self::set_expiry)), kept across requests, or the
    /// layer's.
    pub async fn expiry(&self) -> Result<Expiry> {
        let state = self.loaded().await?;
        Ok(state.expiry.unwrap_or(self.inner.config.expiry))
    }

    /// Sets this session's own expiry policy (`None`: back to the layer's).
    /// It is stored with the session, so it holds on later requests too.
    pub async fn set_expiry(&self, expiry: Option<Expiry>) -> Result<()> {
        let mut state = self.loaded().await?;
        if state.expiry != expiry {
            let previous = mem::replace(&mut state.expiry, expiry);
            if let Err(error) = self.check_cookie_size(&state) {
                state.expiry = previous;
                return Err(error);
            }
            state.modified = true;
        }
        Ok(())
    }

    /// When the session expires: for a stored, unchanged session the stored
    /// record's expiry date; otherwise the date the next write will give it.
    pub async fn expiry_date(&self) -> Result<OffsetDateTime> {
        let state = self.loaded().await?;
        let policy = state.expiry.unwrap_or(self.inner.config.expiry);
        Ok(match state.expiry_date {
            Some(date) if !state.modified => date,
            _ => policy.expiry_date_at(OffsetDateTime::now_utc()),
        })
    }

    fn cookie_id(&self) -> Option<Id> {
        let value = self.inner.config.cookie.read(&self.inner.cookie_headers)?;
        value.parse().ok()
    }

    /// Cookie-only: the record the cookie carries, if it decrypts (with any
    /// key), decodes and has not expired. Anything else is a fresh session.
    fn cookie_record(&self) -> Option<Record> {
        let value = self.inner.config.cookie.read(&self.inner.cookie_headers)?;
        let record = match serde_json::from_str::<Record>(&value) {
            Ok(record) => record,
            Err(error) => {
                // Authentic yet undecodable: written by another version.
                tracing::debug!(%error, "cookie-only session not decodable; starting afresh");
                return None;
            }
        };
        record.is_active().then_some(record)
    }

    /// Cookie-only: refuses a state whose cookie would pass the size limit.
    fn check_cookie_size(&self, state: &State) -> Result<()> {
        if self.inner.config.cookie_only {
            let now = OffsetDateTime::now_utc();
            sealed_cookie(&self.inner.config, state, now, CHANGE_LIMIT)?;
        }
        Ok(())
    }

    /// The state, loaded from the store on first use.
    async fn loaded(&self) -> Result<MutexGuard<'_, State>> {
        self.inner.touched.store(true, Ordering::Release);
        let mut state = self.inner.state.lock().await;
        if state.loaded {
            return Ok(state);
        }
        if self.inner.config.cookie_only {
            if let Some(record) = self.cookie_record() {
                bind(&mut state, record);
            }
            state.loaded = true;
            return Ok(state);
        }
        if let Some(id) = self.cookie_id() {
            // No id in the span: a session id in a log is a credential.
            let span = tracing::debug_span!("session.load");
            match self.inner.store.load(&id).instrument(span).await {
                Ok(Some(record)) if record.is_active() => bind(&mut state, record),
                // Unknown or expired: a fresh session.
                Ok(_) => {}
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

    /// Writes what changed, once the handler has answered, and says what the
    /// response's cookie becomes.
    pub(crate) async fn finish(&self) -> Result<Outcome> {
        if !self.is_touched() {
            return Ok(Outcome::Unchanged);
        }
        let config = &self.inner.config;
        let store = &self.inner.store;
        let mut state = self.inner.state.lock().await;
        if state.failed || !state.loaded {
            return Ok(Outcome::Unchanged);
        }
        if config.cookie_only {
            return self.finish_cookie_only(&mut state);
        }
        let policy = state.expiry.unwrap_or(config.expiry);
        let stored = state.id.is_some();
        let extend = stored && matches!(policy, Expiry::OnInactivity(_));
        // A new session with nothing in it is not worth a record.
        let write =
            (stored || !state.data.is_empty()) && (state.modified || config.always_save || extend);
        if !write {
            if let Some(stale) = state.stale.take() {
                store.delete(&stale).await?;
                state.remove_cookie = true;
            }
            if state.remove_cookie && !self.inner.cookie_headers.is_empty() {
                return Ok(config
                    .cookie
                    .removal_cookie()
                    .map_or(Outcome::Unchanged, Outcome::SetCookie));
            }
            return Ok(Outcome::Unchanged);
        }

        let now = OffsetDateTime::now_utc();
        let mut data = mem::take(&mut state.data);
        if let Some(expiry) = state.expiry {
            data.insert(
                EXPIRY_KEY.to_owned(),
                serde_json::to_value(expiry).map_err(session_core::Error::encode)?,
            );
        }
        let mut record = Record {
            id: state.id.unwrap_or_default(),
            data,
            expiry_date: policy.expiry_date_at(now),
        };
        let written = if stored {
            store.save(&record).await
        } else {
            store.create(&mut record).await
        };
        record.data.remove(EXPIRY_KEY);
        state.data = record.data;
        written?;
        state.id = Some(record.id);
        state.expiry_date = Some(record.expiry_date);
        state.modified = false;
        if let Some(stale) = state.stale.take() {
            store.delete(&stale).await?;
        }
        let max_age = policy.max_age_at(record.expiry_date, now);
        Ok(config
            .cookie
            .set_cookie(record.id.to_string(), max_age)
            .map_or(Outcome::Unchanged, Outcome::SetCookie))
    }
}

impl Session {
    /// [`finish`](Self::finish) for a cookie-only session: the same rules
    /// for when to write, but the write is the cookie itself.
    fn finish_cookie_only(&self, state: &mut State) -> Result<Outcome> {
        let config = &self.inner.config;
        let policy = state.expiry.unwrap_or(config.expiry);
        let stored = state.id.is_some();
        let extend = stored && matches!(policy, Expiry::OnInactivity(_));
        let write =
            (stored || !state.data.is_empty()) && (state.modified || config.always_save || extend);
        if !write {
            if state.remove_cookie && !self.inner.cookie_headers.is_empty() {
                return Ok(config
                    .cookie
                    .removal_cookie()
                    .map_or(Outcome::Unchanged, Outcome::SetCookie));
            }
            return Ok(Outcome::Unchanged);
        }
        let now = OffsetDateTime::now_utc();
        let sealed = sealed_cookie(config, state, now, COOKIE_SIZE_LIMIT)?;
        state.id = Some(sealed.id);
        state.expiry_date = Some(sealed.expiry_date);
        state.modified = false;
        Ok(Outcome::SetCookie(sealed.header))
    }
}

/// A cookie-only session's `Set-Cookie` header, and what it carries.
struct Sealed {
    header: HeaderValue,
    id: Id,
    expiry_date: OffsetDateTime,
}

/// The most a change ([`Session::insert`], [`Session::set_expiry`]) lets a
/// cookie-only session's `Set-Cookie` header take: [`COOKIE_SIZE_LIMIT`] less
/// a margin, because the cookie is sealed again after the handler with a
/// later expiry date, whose encoding can be a few digits longer (a
/// nanosecond field of 1 to 9 digits, day of year, hour, minute and second:
/// at most 13 more bytes of JSON, so 20 more of base64).
pub(crate) const CHANGE_LIMIT: usize = COOKIE_SIZE_LIMIT - 24;

/// Encodes `state` as a record saved at `now` (as JSON),
/// encrypts it into the cookie, and checks the header fits `limit`.
fn sealed_cookie(
    config: &Config,
    state: &State,
    now: OffsetDateTime,
    limit: usize,
) -> Result<Sealed> {
    let policy = state.expiry.unwrap_or(config.expiry);
    let mut data = state.data.clone();
    if let Some(expiry) = state.expiry {
        data.insert(EXPIRY_KEY.to_owned(), serde_json::to_value(expiry)?);
    }
    let record = Record {
        id: state.id.unwrap_or_default(),
        data,
        expiry_date: policy.expiry_date_at(now),
    };
    // JSON, not the stores' MessagePack: a cookie value is text, and the
    // private jar encrypts and base64-encodes it once; MessagePack would
    // need a base64 pass of its own first and end up longer.
    let json = serde_json::to_string(&record).map_err(session_core::Error::encode)?;
    let max_age = policy.max_age_at(record.expiry_date, now);
    let header = config.cookie.set_cookie(json, max_age).ok_or_else(|| {
        session_core::Error::encode("the session cookie is not a valid header value")
    })?;
    if header.len() > limit {
        return Err(Error::CookieTooLarge {
            size: header.len(),
            limit,
        });
    }
    Ok(Sealed {
        header,
        id: record.id,
        expiry_date: record.expiry_date,
    })
}

fn bind(state: &mut State, mut record: Record) {
    state.expiry = record
        .data
        .remove(EXPIRY_KEY)
        .and_then(|value| serde_json::from_value(value).ok());
    state.id = Some(record.id);
    state.data = record.data;
    state.expiry_date = Some(record.expiry_date);
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("store", &self.inner.store)
            .field("touched", &self.inner.touched.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{cookie::Protection, Key};

    fn cookie_only(expiry: Expiry) -> Config {
        let mut config = Config {
            cookie_only: true,
            expiry,
            ..Config::default()
        };
        config.cookie.protection = Protection::Private(Key::generate().into());
        config
    }

    /// The largest string value under one key that a change may store, and
    /// the data's JSON size then.
    fn budget(config: &Config) -> (usize, usize) {
        let mut state = State::default();
        // Well inside the budget: only the last few hundred bytes are tried.
        let mut fits = 2_500;
        loop {
            let value = Value::String("x".repeat(fits + 1));
            state.data.insert("k".into(), value);
            let now = OffsetDateTime::now_utc();
            if sealed_cookie(config, &state, now, CHANGE_LIMIT).is_err() {
                break;
            }
            fits += 1;
        }
        state
            .data
            .insert("k".into(), Value::String("x".repeat(fits)));
        (fits, serde_json::to_vec(&state.data).unwrap().len())
    }

    #[test]
    fn the_documented_budget_holds() {
        // See "Cookie-only sessions or a store?" in the README.
        for expiry in [
            Expiry::default(),
            Expiry::OnInactivity(time::Duration::days(14)),
        ] {
            let (_, json) = budget(&cookie_only(expiry));
            println!("{expiry:?}: {json} bytes of JSON data");
            assert!((2_850..=2_900).contains(&json), "{expiry:?}: {json}");
        }
    }

    #[test]
    fn what_a_change_may_store_always_fits_when_written() {
        let config = cookie_only(Expiry::OnInactivity(time::Duration::days(14)));
        let (fits, _) = budget(&config);
        let mut state = State::default();
        state
            .data
            .insert("k".into(), Value::String("x".repeat(fits)));
        for _ in 0..200 {
            let now = OffsetDateTime::now_utc();
            let sealed = sealed_cookie(&config, &state, now, COOKIE_SIZE_LIMIT).unwrap();
            assert!(sealed.header.len() <= COOKIE_SIZE_LIMIT);
        }
        state
            .data
            .insert("k".into(), Value::String("x".repeat(fits + 40)));
        let error = sealed_cookie(
            &config,
            &state,
            OffsetDateTime::now_utc(),
            COOKIE_SIZE_LIMIT,
        )
        .err()
        .unwrap();
        assert!(
            matches!(error, Error::CookieTooLarge { limit: COOKIE_SIZE_LIMIT, size } if size > COOKIE_SIZE_LIMIT)
        );
    }
}
