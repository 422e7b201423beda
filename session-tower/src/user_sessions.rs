//! [`UserSession`]: one entry of a user's "your devices" list.

use std::fmt;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde::de::DeserializeOwned;
use serde_json::Value;
use session_core::{Data, Id, Record};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use crate::session::RESERVED_KEY_PREFIX;

/// One active session of a user, as
/// [`Session::user_sessions`](crate::Session::user_sessions) lists them: what
/// a "your devices" page shows, with what it needs to end one.
///
/// It never holds a usable session id: [`handle`](Self::handle) is derived
/// from the id by SHA-256, so a page that lists it (or a log that prints it)
/// cannot be used to take over the session, yet it names the session for
/// [`Session::end_user_session`](crate::Session::end_user_session). Put what
/// the page should show (user agent, login time, ...) in the session's data
/// at login; [`get`](Self::get) reads it back.
///
/// ```
/// use session_tower::Session;
///
/// async fn devices(session: Session) -> session_tower::Result<Vec<String>> {
///     Ok(session
///         .user_sessions()
///         .await?
///         .iter()
///         .map(|device| {
///             let agent: String = device.get("user_agent").unwrap_or_default();
///             let marker = if device.is_current() { " (this one)" } else { "" };
///             format!("{} {agent}{marker}", device.handle())
///         })
///         .collect())
/// }
/// ```
#[derive(Clone)]
pub struct UserSession {
    pub(crate) id: Id,
    handle: String,
    current: bool,
    expiry_date: OffsetDateTime,
    data: Data,
}

impl UserSession {
    pub(crate) fn new(mut record: Record, current: Option<Id>) -> Self {
        record
            .data
            .retain(|key, _| !key.starts_with(RESERVED_KEY_PREFIX));
        Self {
            id: record.id,
            handle: handle_of(&record.id),
            current: current == Some(record.id),
            expiry_date: record.expiry_date,
            data: record.data,
        }
    }

    /// A stable name for this session, safe to show and to put in a form:
    /// 22 URL-safe characters derived from the id, from which the id cannot
    /// be recovered.
    pub fn handle(&self) -> &str {
        &self.handle
    }

    /// Whether this is the session of the request that listed it.
    pub fn is_current(&self) -> bool {
        self.current
    }

    /// When this session expires unless used again.
    pub fn expiry_date(&self) -> OffsetDateTime {
        self.expiry_date
    }

    /// The value this session holds under `key`, as a `T`; `None` when
    /// missing or not a `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.get_value(key)
            .and_then(|value| serde_json::from_value(value.clone()).ok())
    }

    /// The JSON value this session holds under `key`.
    pub fn get_value(&self, key: &str) -> Option<&Value> {
        self.data.get(key)
    }

    /// Everything this session holds (never this crate's reserved keys).
    pub fn data(&self) -> &Data {
        &self.data
    }
}

impl fmt::Debug for UserSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the id: only the handle.
        f.debug_struct("UserSession")
            .field("handle", &self.handle)
            .field("current", &self.current)
            .field("expiry_date", &self.expiry_date)
            .finish_non_exhaustive()
    }
}

/// The handle of a session: the first 16 bytes of SHA-256 over a domain tag
/// and the id, in URL-safe base64.
fn handle_of(id: &Id) -> String {
    let digest = Sha256::new()
        .chain_update(b"session-tower user session handle\0")
        .chain_update(id.to_bytes())
        .finalize();
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_stable_distinct_and_not_the_id() {
        let id = Id::default();
        let handle = handle_of(&id);
        assert_eq!(handle, handle_of(&id));
        assert_eq!(handle.len(), 22);
        assert_ne!(handle, id.to_string());
        assert_ne!(handle, handle_of(&Id::default()));
        assert_ne!(handle.parse::<Id>().ok(), Some(id));
    }
}
