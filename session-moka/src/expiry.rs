//! moka's per-entry expiry, computed from each record's `expiry_date`.

use std::time::{Duration, Instant};

use moka::Expiry;
use session_core::{time::OffsetDateTime, Id};

use crate::slot::Value;

/// Expires an entry at the `expiry_date` of the record it was inserted with,
/// plus the store's slack.
///
/// A `save` whose expiry date stays within that replaces the record in its
/// slot without telling moka, so moka may hold a slot past its record's
/// expiry, never less; a `save` beyond it inserts a new slot.
///
/// moka measures time with a monotonic [`Instant`] while records carry a wall
/// clock date, so the date is turned into "how long from now" when the entry
/// is written. A record already expired gets zero time to live, so moka never
/// returns it; `load` also checks the date against the wall clock, so a clock
/// step between the two cannot bring an expired record back.
pub(crate) struct RecordExpiry;

fn time_to_live(value: &Value) -> Duration {
    let left = value.scheduled_expiry - OffsetDateTime::now_utc();
    // A negative or zero span is "expired now"; `unsigned_abs` would flip it.
    if left.is_positive() {
        left.unsigned_abs()
    } else {
        Duration::ZERO
    }
}

impl Expiry<Id, Value> for RecordExpiry {
    fn expire_after_create(&self, _id: &Id, value: &Value, _at: Instant) -> Option<Duration> {
        Some(time_to_live(value))
    }

    fn expire_after_update(
        &self,
        _id: &Id,
        value: &Value,
        _at: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        // `save` may move the expiry date either way.
        Some(time_to_live(value))
    }
}
