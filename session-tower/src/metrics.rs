//! What the layer counts through the [`metrics`](https://docs.rs/metrics)
//! facade with the feature `metrics` (without it, these are no-ops).
//!
//! | metric | kind | labels | what |
//! |---|---|---|---|
//! | `session_updates_total` | counter | `outcome` (`written`, `gone`, `contention`) | writes of a changed stored session, once each is settled |
//! | `session_update_conflicts_total` | counter | | `update`s answered `Conflict` (another request wrote first) |
//! | `session_update_retries_total` | counter | | `update`s tried again after merging over a conflict |
//! | `session_touches_total` | counter | `result` (`written`, `skipped`, `gone`) | unchanged sliding sessions: expiry moved with a `touch`, not written because the last move is younger than the refresh interval, or ended meanwhile |
//! | `session_cookies_rejected_total` | counter | `reason` (`malformed`, `bad_signature`, `expired`) | session cookies (and header tokens) a request carried that gave no session: not an id or record, failing verification or decryption, or naming no live session (expired, ended or unknown) |
//!
//! Store operations, cache lookups and sweeps are counted by session-core's
//! `metrics` feature (`MeteredStore`). No metric carries a session or user id.

/// Why a session cookie or header token a request carried gave no session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// Not an id (or, cookie-only, not a record this layer can read).
    Malformed,
    /// Signature or decryption failed: tampered with, or a key we lack.
    BadSignature,
    /// No live session: expired, ended or unknown to the store.
    Expired,
}

/// Counts `name` with `labels` when the `metrics` feature is on.
macro_rules! count {
    ($name:literal $(, $key:literal => $value:expr)*) => {{
        #[cfg(feature = "metrics")]
        metrics::counter!($name $(, $key => $value)*).increment(1);
    }};
}

pub(crate) fn cookie_rejected(reason: Rejected) {
    let reason = match reason {
        Rejected::Malformed => "malformed",
        Rejected::BadSignature => "bad_signature",
        Rejected::Expired => "expired",
    };
    let _ = reason;
    count!("session_cookies_rejected_total", "reason" => reason);
}

pub(crate) fn update_conflict() {
    count!("session_update_conflicts_total");
}

pub(crate) fn update_retry() {
    count!("session_update_retries_total");
}

pub(crate) fn update_settled(outcome: &'static str) {
    let _ = outcome;
    count!("session_updates_total", "outcome" => outcome);
}

pub(crate) fn touch(result: &'static str) {
    let _ = result;
    count!("session_touches_total", "result" => result);
}
