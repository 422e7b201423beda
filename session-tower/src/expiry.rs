//! When a session ends.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// How long a session lives, for the cookie and for the stored record.
///
/// The cookie's `Max-Age` always agrees with the record's `expiry_date`: both
/// are computed from the same instant when the session is saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expiry {
    /// The cookie has no `Max-Age`, so the browser drops it when it closes.
    ///
    /// The server cannot see a browser close, so the stored record still
    /// expires `lifetime` after the session was last saved; the
    /// expired-deletion task then removes it.
    OnSessionEnd {
        /// How long the stored record outlives its last save.
        lifetime: Duration,
    },
    /// The session ends after this long without a request that uses it
    /// (sliding): every request that touches the session pushes the expiry
    /// back. A request whose handler never touches the session does not
    /// count, because it performs no store call at all.
    OnInactivity(Duration),
    /// The session ends at this instant, however active it is.
    AtDateTime(OffsetDateTime),
}

impl Expiry {
    /// The server-side lifetime [`Expiry::default`] gives a session that ends
    /// with the browser session: two weeks, as tower-sessions does.
    pub const DEFAULT_SESSION_END_LIFETIME: Duration = Duration::weeks(2);

    /// The expiry date a record saved at `now` gets. Never panics: a
    /// duration past what `time` can represent saturates.
    pub fn expiry_date_at(&self, now: OffsetDateTime) -> OffsetDateTime {
        match *self {
            Self::OnSessionEnd { lifetime } => saturating_add(now, lifetime),
            Self::OnInactivity(inactivity) => saturating_add(now, inactivity),
            Self::AtDateTime(date) => date,
        }
    }

    /// Whether this policy makes sense: durations positive and small enough
    /// that a date this far from now ends before year 10000 (whatever
    /// features `time` is built with: every store can hold such a date).
    /// Builders refuse invalid policies, and a stored one that is invalid is
    /// ignored in favour of the layer's.
    pub fn is_valid(&self) -> bool {
        match *self {
            Self::OnSessionEnd { lifetime: duration } | Self::OnInactivity(duration) => {
                duration.is_positive() && fits_from_now(duration)
            }
            Self::AtDateTime(_) => true,
        }
    }

    /// The cookie's `Max-Age` for a record expiring at `expiry_date`, seen at
    /// `now`: `None` for [`Expiry::OnSessionEnd`] (a browser-session cookie).
    pub fn max_age_at(&self, expiry_date: OffsetDateTime, now: OffsetDateTime) -> Option<Duration> {
        match self {
            Self::OnSessionEnd { .. } => None,
            Self::OnInactivity(_) | Self::AtDateTime(_) => {
                Some((expiry_date - now).max(Duration::ZERO))
            }
        }
    }
}

/// The latest date this crate writes: the last instant of year 9999. With
/// its `large-dates` feature (which another crate in a build may turn on)
/// `time` goes further, but MySQL, SQLite's text dates and browsers' cookie
/// dates do not, so this bound holds whatever features are on.
pub(crate) fn latest() -> OffsetDateTime {
    let last_day =
        time::Date::from_calendar_date(9999, time::Month::December, 31).unwrap_or(time::Date::MAX);
    last_day.with_time(time::Time::MAX).assume_utc()
}

/// Whether `now + duration` is a date no later than [`latest`].
pub(crate) fn fits_from_now(duration: Duration) -> bool {
    OffsetDateTime::now_utc()
        .checked_add(duration)
        .is_some_and(|date| date <= latest())
}

/// `instant + duration`, kept within the first instant `time` can represent
/// and [`latest`].
pub(crate) fn saturating_add(instant: OffsetDateTime, duration: Duration) -> OffsetDateTime {
    match instant.checked_add(duration) {
        Some(date) => date.min(latest()),
        None if duration.is_negative() => time::PrimitiveDateTime::MIN.assume_utc(),
        None => latest(),
    }
}

impl Default for Expiry {
    /// [`Expiry::OnSessionEnd`] with
    /// [`DEFAULT_SESSION_END_LIFETIME`](Self::DEFAULT_SESSION_END_LIFETIME).
    fn default() -> Self {
        Self::OnSessionEnd {
            lifetime: Self::DEFAULT_SESSION_END_LIFETIME,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn max_age_agrees_with_expiry_date() {
        let now = OffsetDateTime::now_utc();
        let expiry = Expiry::OnInactivity(Duration::minutes(5));
        let date = expiry.expiry_date_at(now);
        assert_eq!(expiry.max_age_at(date, now), Some(Duration::minutes(5)));
        assert_eq!(Expiry::default().max_age_at(date, now), None);
        let past = Expiry::AtDateTime(now - Duration::hours(1));
        let date = past.expiry_date_at(now);
        assert_eq!(past.max_age_at(date, now), Some(Duration::ZERO));
    }

    #[test]
    fn huge_durations_saturate_and_are_invalid() {
        let now = OffsetDateTime::now_utc();
        let huge = Expiry::OnInactivity(Duration::MAX);
        assert!(!huge.is_valid());
        assert!(huge.expiry_date_at(now) > now + Duration::days(365 * 1000));
        assert!(!Expiry::OnInactivity(Duration::ZERO).is_valid());
        assert!(!Expiry::OnSessionEnd {
            lifetime: Duration::seconds(-1)
        }
        .is_valid());
        assert!(Expiry::default().is_valid());
    }

    #[test]
    fn round_trips_through_json() {
        for expiry in [
            Expiry::default(),
            Expiry::OnInactivity(Duration::seconds(90)),
            Expiry::AtDateTime(OffsetDateTime::UNIX_EPOCH + Duration::days(20_000)),
        ] {
            let value = serde_json::to_value(expiry).unwrap();
            assert_eq!(serde_json::from_value::<Expiry>(value).unwrap(), expiry);
        }
    }
}
