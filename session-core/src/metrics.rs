//! Counts and latencies through the [`metrics`](https://docs.rs/metrics)
//! facade (feature `metrics`): install any recorder (Prometheus, StatsD,
//! ...) and they are collected; without one they cost next to nothing.
//!
//! | metric | kind | labels | what |
//! |---|---|---|---|
//! | `session_store_operations_total` | counter | `store`, `operation`, `outcome` | calls through a [`MeteredStore`]; `outcome` is `ok`, `written`/`conflict`/`gone` (`update`), `touched`/`missing` (`touch`), `found`/`not_found` (`load`) or the error's kind (`backend`, `decode`, `encode`, `unsupported`) |
//! | `session_store_operation_duration_seconds` | histogram | `store`, `operation` | how long those calls took |
//! | `session_cache_lookups_total` | counter | `cache`, `result` (`hit`, `miss`) | reads of [`CachingSessionStore`](crate::CachingSessionStore) (`cache="caching"`) and of session-caching's `NearCache` (`cache="near"`) |
//! | `session_expired_deletion_sweeps_total` | counter | `outcome` (`ok`, `error`) | sweeps of the expired-deletion task |
//! | `session_expired_deletion_removed_total` | counter | | records those sweeps removed |
//!
//! session-caching and session-tower add their own (their crate docs list
//! them). No metric ever carries a session or user id as a label.

use std::time::Instant;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::{Error, ExpiredDeletion, Id, Record, Result, SessionStore, Update};

/// Counts a cache lookup (`result` is `hit` or `miss`).
pub(crate) fn cache_lookup(cache: &'static str, hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    metrics::counter!("session_cache_lookups_total", "cache" => cache, "result" => result)
        .increment(1);
}

/// Counts a sweep of the deletion task and what it removed.
#[cfg(feature = "deletion-task")]
pub(crate) fn sweep(removed: Option<u64>) {
    let outcome = if removed.is_some() { "ok" } else { "error" };
    metrics::counter!("session_expired_deletion_sweeps_total", "outcome" => outcome).increment(1);
    if let Some(removed) = removed {
        metrics::counter!("session_expired_deletion_removed_total").increment(removed);
    }
}

/// Wraps any store and records, for every call, its outcome and how long it
/// took, labelled with the name given (`"postgres"`, `"redis"`, ...).
///
/// ```
/// use session_core::metrics::MeteredStore;
/// use session_memory::MemoryStore;
///
/// let store = MeteredStore::new(MemoryStore::default(), "memory");
/// // SessionManagerLayer::new(store) ...
/// # let _ = store;
/// ```
#[derive(Debug, Clone)]
pub struct MeteredStore<S> {
    inner: S,
    name: &'static str,
}

impl<S> MeteredStore<S> {
    /// Counts the calls to `inner` under the label `store = name`.
    pub fn new(inner: S, name: &'static str) -> Self {
        Self { inner, name }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

/// What a call's result is called in `outcome`.
trait Outcome {
    fn outcome(&self) -> &'static str;
}

fn error_kind(error: &Error) -> &'static str {
    match error {
        Error::Encode(_) => "encode",
        Error::Decode(_) => "decode",
        Error::Backend(_) => "backend",
        Error::Unsupported(_) => "unsupported",
    }
}

impl<T: Outcome> Outcome for Result<T> {
    fn outcome(&self) -> &'static str {
        match self {
            Ok(value) => value.outcome(),
            Err(error) => error_kind(error),
        }
    }
}

impl Outcome for () {
    fn outcome(&self) -> &'static str {
        "ok"
    }
}

impl Outcome for u64 {
    fn outcome(&self) -> &'static str {
        "ok"
    }
}

impl Outcome for Vec<Record> {
    fn outcome(&self) -> &'static str {
        "ok"
    }
}

impl Outcome for Vec<bool> {
    fn outcome(&self) -> &'static str {
        "ok"
    }
}

impl Outcome for Option<Record> {
    fn outcome(&self) -> &'static str {
        if self.is_some() {
            "found"
        } else {
            "not_found"
        }
    }
}

impl Outcome for bool {
    fn outcome(&self) -> &'static str {
        if *self {
            "touched"
        } else {
            "missing"
        }
    }
}

impl Outcome for Update {
    fn outcome(&self) -> &'static str {
        match self {
            Update::Written => "written",
            Update::Conflict(_) => "conflict",
            Update::Gone => "gone",
        }
    }
}

impl<S> MeteredStore<S> {
    fn record<T: Outcome>(&self, operation: &'static str, started: Instant, result: &T) {
        let store = self.name;
        metrics::counter!(
            "session_store_operations_total",
            "store" => store,
            "operation" => operation,
            "outcome" => result.outcome()
        )
        .increment(1);
        metrics::histogram!(
            "session_store_operation_duration_seconds",
            "store" => store,
            "operation" => operation
        )
        .record(started.elapsed().as_secs_f64());
    }
}

/// Times one call of the wrapped store and records it.
macro_rules! metered {
    ($self:ident, $operation:literal, $call:expr) => {{
        let started = Instant::now();
        let result = $call.await;
        $self.record($operation, started, &result);
        result
    }};
}

#[async_trait]
impl<S: SessionStore> SessionStore for MeteredStore<S> {
    async fn create(&self, record: &mut Record) -> Result<()> {
        metered!(self, "create", self.inner.create(record))
    }

    async fn save(&self, record: &Record) -> Result<()> {
        metered!(self, "save", self.inner.save(record))
    }

    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        metered!(self, "load", self.inner.load(session_id))
    }

    async fn delete(&self, session_id: &Id) -> Result<()> {
        metered!(self, "delete", self.inner.delete(session_id))
    }

    async fn update(&self, record: &mut Record) -> Result<Update> {
        metered!(self, "update", self.inner.update(record))
    }

    async fn touch(&self, session_id: &Id, expiry_date: OffsetDateTime) -> Result<bool> {
        metered!(self, "touch", self.inner.touch(session_id, expiry_date))
    }

    async fn touch_many(&self, touches: &[(Id, OffsetDateTime)]) -> Result<Vec<bool>> {
        metered!(self, "touch_many", self.inner.touch_many(touches))
    }

    async fn sessions_of_user(&self, user_id: &str) -> Result<Vec<Record>> {
        metered!(
            self,
            "sessions_of_user",
            self.inner.sessions_of_user(user_id)
        )
    }

    async fn delete_sessions_of_user(&self, user_id: &str, keep: Option<&Id>) -> Result<u64> {
        metered!(
            self,
            "delete_sessions_of_user",
            self.inner.delete_sessions_of_user(user_id, keep)
        )
    }
}

#[async_trait]
impl<S: ExpiredDeletion> ExpiredDeletion for MeteredStore<S> {
    async fn delete_expired(&self) -> Result<u64> {
        metered!(self, "delete_expired", self.inner.delete_expired())
    }
}
