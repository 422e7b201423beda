//! Session records.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::Id;

/// The key-value data of a session.
pub type Data = HashMap<String, serde_json::Value>;

/// What a store keeps for one session: its id, its data and when it expires.
///
/// Two records are equal when their ids and data are equal and their expiry
/// dates denote the same instant (the UTC offset does not matter).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The session's identifier.
    pub id: Id,
    /// The session's data.
    pub data: Data,
    /// The instant after which the session no longer exists.
    pub expiry_date: OffsetDateTime,
}

impl Record {
    /// A record with a fresh random [`Id`], no data, expiring at `expiry_date`.
    ///
    /// ```
    /// use session_core::Record;
    /// use time::{Duration, OffsetDateTime};
    ///
    /// let record = Record::new(OffsetDateTime::now_utc() + Duration::hours(1));
    /// assert!(record.data.is_empty());
    /// assert!(record.is_active());
    /// ```
    pub fn new(expiry_date: OffsetDateTime) -> Self {
        Self {
            id: Id::default(),
            data: Data::new(),
            expiry_date,
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
