//! The write decision, in one place: what a request's session does to the
//! store and to the response once the handler has answered — create, update
//! (merging over concurrent writes), touch, or nothing — and the cookie that
//! goes with it.

use http::HeaderValue;
use serde::{Deserialize, Serialize};
use session_core::{Data, Id, Record, Update};
use time::OffsetDateTime;
use tracing::Instrument as _;

use crate::{
    metrics::{self, Rejected},
    session::{Config, State, Stored},
    Error, Expiry, Result, Session, COOKIE_SIZE_LIMIT,
};

/// How many times a write that keeps meeting concurrent writes is merged and
/// tried again before the request gives up with
/// [`Error::Contention`](crate::Error::Contention).
pub(crate) const MAX_UPDATE_ATTEMPTS: u32 = 8;

/// What the layer does to the response once the handler has answered.
pub(crate) enum Outcome {
    /// Nothing: no `Set-Cookie`, no session header.
    Unchanged,
    /// Send the session's id (or its removal): a `Set-Cookie`, the session
    /// header's value, or both, as the layer's settings say.
    Send {
        /// The `Set-Cookie` header.
        cookie: Option<HeaderValue>,
        /// The session header's value (empty: the client drops its token).
        token: Option<HeaderValue>,
    },
}

impl Outcome {
    fn send(cookie: Option<HeaderValue>, token: Option<HeaderValue>) -> Self {
        if cookie.is_none() && token.is_none() {
            Outcome::Unchanged
        } else {
            Outcome::Send { cookie, token }
        }
    }
}

impl Session {
    /// Writes what changed, once the handler has answered, and says what the
    /// response's cookie becomes.
    pub(crate) async fn finish(&self) -> Result<Outcome> {
        if !self.is_touched() {
            return Ok(Outcome::Unchanged);
        }
        let config = &*self.inner.config;
        let mut state = self.inner.state.lock().await;
        if state.failed || !state.loaded {
            return Ok(Outcome::Unchanged);
        }
        if config.cookie_only {
            return self.finish_cookie_only(&mut state);
        }
        let now = OffsetDateTime::now_utc();
        match state.stored {
            None => self.finish_new(&mut state, now).await,
            Some(stored) => {
                if !state.changes.is_empty() || config.always_save {
                    self.finish_update(&mut state, stored, now).await
                } else {
                    self.finish_unchanged(&mut state, stored, now).await
                }
            }
        }
    }

    /// A session not stored: a new one, one just flushed, or one whose id
    /// was cycled. Created when it holds something.
    async fn finish_new(&self, state: &mut State, now: OffsetDateTime) -> Result<Outcome> {
        let config = &*self.inner.config;
        let store = &self.inner.store;
        // A new session with nothing in it is not worth a record.
        if state.data.is_empty() && state.user_id.is_none() {
            if let Some(stale) = state.stale.take() {
                self.delete_stale(stale).await;
                state.remove_cookie = true;
            }
            if state.remove_cookie {
                return Ok(self.removal());
            }
            return Ok(Outcome::Unchanged);
        }
        state.created = Some(now);
        let mut record = state.to_record(config, now)?;
        store
            .create(&mut record)
            .instrument(tracing::debug_span!("session.create"))
            .await?;
        let expiry_date = record.expiry_date;
        state.bind(record);
        state.changes = Default::default();
        if let Some(stale) = state.stale.take() {
            self.delete_stale(stale).await;
        }
        Ok(self.set_cookie(state, expiry_date, now))
    }

    /// A stored session this request changed (or `always_save`): a
    /// compare-and-swap over the version it loaded; on a conflict, its own
    /// changes are applied over the stored record and the write tried again.
    async fn finish_update(
        &self,
        state: &mut State,
        loaded: Stored,
        now: OffsetDateTime,
    ) -> Result<Outcome> {
        let config = &*self.inner.config;
        let store = &self.inner.store;
        for attempt in 0..MAX_UPDATE_ATTEMPTS {
            if attempt > 0 {
                metrics::update_retry();
            }
            let mut record = state.to_record(config, now)?;
            let span = tracing::debug_span!("session.update");
            match store.update(&mut record).instrument(span).await? {
                Update::Written => {
                    metrics::update_settled("written");
                    let expiry_date = record.expiry_date;
                    state.bind(record);
                    state.changes = Default::default();
                    // The cookie changes only if its `Max-Age` does (or its
                    // seal): a browser-session cookie stays as it is.
                    let policy = config.policy(state.expiry);
                    let moved = expiry_date != loaded.expiry_date
                        && !matches!(policy, Expiry::OnSessionEnd { .. });
                    if moved || state.reseal {
                        return Ok(self.set_cookie(state, expiry_date, now));
                    }
                    return Ok(Outcome::Unchanged);
                }
                Update::Conflict(current) => {
                    metrics::update_conflict();
                    tracing::debug!("session written by a concurrent request; merging");
                    state.rebase(current);
                }
                // Ended meanwhile (logout, a new id, expiry): write nothing,
                // create nothing, and leave the browser's cookie alone, which
                // may already be a new session's.
                _ => {
                    metrics::update_settled("gone");
                    return Ok(Outcome::Unchanged);
                }
            }
        }
        metrics::update_settled("contention");
        Err(Error::Contention {
            attempts: MAX_UPDATE_ATTEMPTS,
        })
    }

    /// A stored session this request did not change: a sliding session's
    /// expiry moves with a `touch`, at most once per refresh interval; any
    /// other costs nothing.
    async fn finish_unchanged(
        &self,
        state: &mut State,
        stored: Stored,
        now: OffsetDateTime,
    ) -> Result<Outcome> {
        let config = &*self.inner.config;
        let Expiry::OnInactivity(inactivity) = config.policy(state.expiry) else {
            return Ok(self.resealed(state, stored.expiry_date, now));
        };
        let target = config.expiry_date_at(state.expiry, state.created, now);
        if target - stored.expiry_date < config.refresh_interval(inactivity) {
            metrics::touch("skipped");
            return Ok(self.resealed(state, stored.expiry_date, now));
        }
        let span = tracing::debug_span!("session.touch");
        if !self
            .inner
            .store
            .touch(&stored.id, target)
            .instrument(span)
            .await?
        {
            // Ended meanwhile: leave the cookie alone (see `finish_update`).
            metrics::touch("gone");
            return Ok(Outcome::Unchanged);
        }
        metrics::touch("written");
        if let Some(stored) = &mut state.stored {
            stored.expiry_date = stored.expiry_date.max(target);
        }
        Ok(self.set_cookie(state, target, now))
    }

    /// Deletes the record a cycled session leaves behind. A failure is
    /// logged, not returned: the new session is stored, and the old id can
    /// never be written again (every write of a stored session is an
    /// `update`, which finds it gone once it is deleted or expired).
    async fn delete_stale(&self, stale: Id) {
        let span = tracing::debug_span!("session.delete_stale");
        if let Err(error) = self.inner.store.delete(&stale).instrument(span).await {
            tracing::warn!(%error, "could not delete the session left behind by cycle_id; it expires on its own");
        }
    }

    /// The cookie again, unchanged but sealed with the newest key, when it
    /// came sealed with an older one.
    fn resealed(&self, state: &State, expiry_date: OffsetDateTime, now: OffsetDateTime) -> Outcome {
        if state.reseal {
            self.set_cookie(state, expiry_date, now)
        } else {
            Outcome::Unchanged
        }
    }

    /// The `Set-Cookie` for the stored session, its `Max-Age` agreeing with
    /// `expiry_date`.
    fn set_cookie(
        &self,
        state: &State,
        expiry_date: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Outcome {
        let config = &*self.inner.config;
        let Some(stored) = state.stored else {
            return Outcome::Unchanged;
        };
        let max_age = config.policy(state.expiry).max_age_at(expiry_date, now);
        let id = stored.id.to_string();
        let cookie = if config.cookie.use_cookie {
            config.cookie.set_cookie(id.clone(), max_age)
        } else {
            None
        };
        Outcome::send(cookie, config.cookie.token(id))
    }

    /// [`finish`](Self::finish) for a cookie-only session: the same rules
    /// for when to write, but the write is the cookie itself.
    fn finish_cookie_only(&self, state: &mut State) -> Result<Outcome> {
        let config = &*self.inner.config;
        let policy = config.policy(state.expiry);
        let stored = state.stored.is_some();
        let extend = stored && matches!(policy, Expiry::OnInactivity(_));
        let write = (stored || !state.data.is_empty() || state.user_id.is_some())
            && (!state.changes.is_empty() || config.always_save || extend || state.reseal);
        if !write {
            if state.remove_cookie {
                return Ok(self.removal());
            }
            return Ok(Outcome::Unchanged);
        }
        let now = OffsetDateTime::now_utc();
        if state.created.is_none() {
            state.created = Some(now);
        }
        let sealed = sealed_cookie(config, state, now, COOKIE_SIZE_LIMIT)?;
        state.stored = Some(Stored {
            id: sealed.id,
            version: 0,
            expiry_date: sealed.expiry_date,
        });
        state.changes = Default::default();
        Ok(Outcome::send(Some(sealed.header), None))
    }

    /// What tells the client to drop the session: the removal cookie when
    /// the request carried cookies, an empty session header when it carried
    /// one.
    fn removal(&self) -> Outcome {
        let config = &self.inner.config.cookie;
        let carried = &self.inner.carried;
        let cookie = if carried.cookies.is_empty() {
            None
        } else {
            config.removal_cookie()
        };
        let token = (config.header.is_some() && !carried.tokens.is_empty())
            .then(|| HeaderValue::from_static(""));
        Outcome::send(cookie, token)
    }
}

/// What a cookie-only session's cookie carries, as JSON: a record without a
/// version (a cookie has no concurrent writers to order). The field names
/// are [`Record`]'s, so cookies written before users and versions existed
/// still open.
#[derive(Serialize, Deserialize)]
struct CookieRecord {
    id: Id,
    data: Data,
    expiry_date: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
}

/// Cookie-only: the record the cookie carries, if it decodes and has not
/// expired. Anything else is a fresh session.
pub(crate) fn open_cookie_record(value: &str) -> std::result::Result<Record, Rejected> {
    let record = match serde_json::from_str::<CookieRecord>(value) {
        Ok(record) => record,
        Err(error) => {
            // Authentic yet undecodable: written by another version.
            tracing::debug!(%error, "cookie-only session not decodable; starting afresh");
            return Err(Rejected::Malformed);
        }
    };
    let record = Record {
        id: record.id,
        data: record.data,
        expiry_date: record.expiry_date,
        version: 0,
        user_id: record.user_id,
    };
    if record.is_active() {
        Ok(record)
    } else {
        Err(Rejected::Expired)
    }
}

/// A cookie-only session's `Set-Cookie` header, and what it carries.
pub(crate) struct Sealed {
    pub(crate) header: HeaderValue,
    pub(crate) id: Id,
    pub(crate) expiry_date: OffsetDateTime,
}

/// The most a change ([`Session::insert`], [`Session::set_expiry`]) lets a
/// cookie-only session's `Set-Cookie` header take: [`COOKIE_SIZE_LIMIT`] less
/// a margin, because the cookie is sealed again after the handler with a
/// later expiry date, whose encoding can be a few digits longer (a
/// nanosecond field of 1 to 9 digits, day of year, hour, minute and second:
/// at most 13 more bytes of JSON, so 20 more of base64).
pub(crate) const CHANGE_LIMIT: usize = COOKIE_SIZE_LIMIT - 24;

/// Encodes `state` as a record saved at `now` (as JSON), encrypts it into
/// the cookie, and checks the header fits `limit`.
pub(crate) fn sealed_cookie(
    config: &Config,
    state: &State,
    now: OffsetDateTime,
    limit: usize,
) -> Result<Sealed> {
    let record = state.to_record(config, now)?;
    let record = CookieRecord {
        id: record.id,
        data: record.data,
        expiry_date: record.expiry_date,
        user_id: record.user_id,
    };
    // JSON, not the stores' MessagePack: a cookie value is text, and the
    // private jar encrypts and base64-encodes it once; MessagePack would
    // need a base64 pass of its own first and end up longer.
    let json = serde_json::to_string(&record).map_err(session_core::Error::encode)?;
    let max_age = config
        .policy(state.expiry)
        .max_age_at(record.expiry_date, now);
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::Value;

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
        let mut state = State {
            created: Some(OffsetDateTime::now_utc()),
            ..State::default()
        };
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
            assert!((2_800..=2_900).contains(&json), "{expiry:?}: {json}");
        }
    }

    #[test]
    fn what_a_change_may_store_always_fits_when_written() {
        let config = cookie_only(Expiry::OnInactivity(time::Duration::days(14)));
        let (fits, _) = budget(&config);
        let mut state = State {
            created: Some(OffsetDateTime::now_utc()),
            ..State::default()
        };
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
