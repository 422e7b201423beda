//! Session records.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::Id;

/// The key-value data of a session.
pub type Data = HashMap<String, serde_json::Value>;

/// What a store keeps for one session: its id, its data, when it expires,
/// which version of it this is and, when the application says so, whose it
/// is.
///
/// Two records are equal when all their fields are equal, expiry dates
/// denoting the same instant (the UTC offset does not matter).
///
/// Records written before `version` and `user_id` existed read back with
/// version 0 and no user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The session's identifier.
    pub id: Id,
    /// The session's data.
    pub data: Data,
    /// The instant after which the session no longer exists.
    pub expiry_date: OffsetDateTime,
    /// The optimistic-concurrency version: 0 for a new record;
    /// [`SessionStore::update`](crate::SessionStore::update) writes only over
    /// the same version and bumps it by one.
    #[serde(default)]
    pub version: u64,
    /// The user the session belongs to, when the application says so. Stores
    /// index it: see
    /// [`SessionStore::sessions_of_user`](crate::SessionStore::sessions_of_user).
    #[serde(default)]
    pub user_id: Option<String>,
}

impl Record {
    /// A record with a fresh random [`Id`], no data, expiring at
    /// `expiry_date`, at version 0 and of no user.
    ///
    /// ```
    /// use session_core::Record;
    /// use time::{Duration, OffsetDateTime};
    ///
    /// let record = Record::new(OffsetDateTime::now_utc() + Duration::hours(1));
    /// assert!(record.data.is_empty());
    /// assert_eq!((record.version, record.user_id.as_deref()), (0, None));
    /// assert!(record.is_active());
    /// ```
    pub fn new(expiry_date: OffsetDateTime) -> Self {
        Self {
            id: Id::default(),
            data: Data::new(),
            expiry_date,
            version: 0,
            user_id: None,
        }
    }

    /// Whether the record still exists at `instant`: its expiry date is
    /// strictly after it.
    pub fn is_active_at(&self, instant: OffsetDateTime) -> bool {
        self.expiry_date > instant
    }

    /// Whether the record still exists now.
    pub fn is_active(&self) -> bool {
        self.is_active_at(OffsetDateTime::now_utc())
    }
}

#[cfg(test)]
mod tests {
    use time::{macros::offset, Duration};

    use super::*;

    #[test]
    fn activity_is_strict_and_ignores_offsets() {
        let now = OffsetDateTime::now_utc();
        let mut record = Record::new(now);
        assert!(!record.is_active_at(now), "expiry == now is expired");
        assert!(record.is_active_at(now - Duration::microseconds(1)));
        // One hour ago, written in a zone whose wall clock reads 4h ahead.
        record.expiry_date = (now - Duration::hours(1)).to_offset(offset!(+5));
        assert!(!record.is_active_at(now));
        record.expiry_date = (now + Duration::hours(1)).to_offset(offset!(-10));
        assert!(record.is_active_at(now));
    }
}
