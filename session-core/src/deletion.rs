//! The expired-deletion task: sweeps a store's expired records periodically.
//!
//! ```
//! use std::time::Duration;
//!
//! use session_core::deletion::ExpiredDeletionTask;
//! use session_memory::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let store = MemoryStore::default();
//! // Sweep now, then every minute give or take up to 10 seconds.
//! let task = ExpiredDeletionTask::new(store.clone(), Duration::from_secs(60))
//!     .with_jitter(Duration::from_secs(10))
//!     .spawn();
//! // ... serve requests ...
//! let report = task.shutdown().await;
//! assert_eq!(report.failed_sweeps, 0);
//! # }
//! ```
//!
//! With axum's graceful shutdown, run it on the same signal instead:
//! `tokio::spawn(task.run_until(shutdown_signal()))`.

use std::{future::Future, time::Duration};

use rand::Rng as _;
use tokio::{sync::oneshot, task::JoinHandle, time::Instant};
use tracing::Instrument as _;

use crate::ExpiredDeletion;

/// How long stopping waits for a sweep in progress unless
/// [`with_shutdown_timeout`](ExpiredDeletionTask::with_shutdown_timeout)
/// says otherwise.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest period or jitter the task keeps: about a century. Anything
/// longer is cut to it, which in practice means "no further sweep", so that
/// the next sweep's instant can always be computed.
const MAX_DELAY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// Sweeps a store's expired records: once at start, then every period.
///
/// Sweeps never overlap: the next one is scheduled from the start of the
/// previous one, and a sweep that runs past the period delays the next
/// instead of running beside it. A failed sweep is logged with `tracing` and
/// the task tries again at the next tick.
///
/// # Stopping
///
/// A stop request ([`DeletionTaskHandle::shutdown`], or the future given to
/// [`run_until`](Self::run_until)) between sweeps stops the task at once. A
/// stop request during a sweep waits for that sweep up to the shutdown
/// timeout ([`DEFAULT_SHUTDOWN_TIMEOUT`], see
/// [`with_shutdown_timeout`](Self::with_shutdown_timeout)), so the report
/// counts what it removed; a sweep still running then is abandoned: its
/// future is dropped at its next `.await`, and the report counts it in
/// [`abandoned_sweeps`](DeletionReport::abandoned_sweeps), not what it
/// removed. A store that deletes in batches keeps what the batches before
/// removed, each batch being one backend step of its own.
///
/// [`ExpiredDeletion::delete_expired`] is one call, so the task cannot stop
/// a sweep between two batches of the store by itself, only drop it. A
/// store whose `delete_expired` never awaits (it works in memory, as
/// `MemoryStore` and `SledStore` do) finishes its sweep within one poll,
/// however long it takes: the timeout cannot cut that short.
#[derive(Debug)]
pub struct ExpiredDeletionTask<S> {
    store: S,
    period: Duration,
    jitter: Duration,
    shutdown_timeout: Duration,
}

/// What a deletion task did before it stopped.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeletionReport {
    /// Records removed over all sweeps that finished.
    pub removed: u64,
    /// Sweeps that succeeded.
    pub sweeps: u64,
    /// Sweeps that returned an error.
    pub failed_sweeps: u64,
    /// Sweeps still running when the shutdown timeout ran out: dropped
    /// unfinished, and what they removed is not in
    /// [`removed`](Self::removed).
    pub abandoned_sweeps: u64,
}

impl<S: ExpiredDeletion> ExpiredDeletionTask<S> {
    /// A task that sweeps `store` every `period`.
    ///
    /// A zero period is raised to one millisecond so the task cannot spin; a
    /// period longer than about a century is cut to that, so a huge period
    /// (`Duration::MAX`) means one sweep at start and no other, never an
    /// overflow.
    pub fn new(store: S, period: Duration) -> Self {
        Self {
            store,
            period: period.clamp(Duration::from_millis(1), MAX_DELAY),
            jitter: Duration::ZERO,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }

    /// Adds a random delay of up to `jitter` to every period, so a fleet of
    /// processes started together does not sweep in lockstep. The first sweep
    /// still runs at once. Like the period, it is cut to about a century.
    pub fn with_jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter.min(MAX_DELAY);
        self
    }

    /// How long a stop request waits for a sweep in progress before
    /// abandoning it ([`DEFAULT_SHUTDOWN_TIMEOUT`] unless set). Zero abandons
    /// it at once; `Duration::MAX` always waits for it.
    pub fn with_shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Runs until `shutdown` completes, then returns what it did.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use session_core::deletion::ExpiredDeletionTask;
    /// # async fn demo(store: session_memory::MemoryStore) {
    /// let task = ExpiredDeletionTask::new(store, Duration::from_secs(60));
    /// let report = task
    ///     .run_until(async { tokio::signal::ctrl_c().await.ok(); })
    ///     .await;
    /// # }
    /// ```
    pub async fn run_until<F>(self, shutdown: F) -> DeletionReport
    where
        F: Future<Output = ()>,
    {
        let mut report = DeletionReport::default();
        tokio::pin!(shutdown);
        // `None`: the next sweep is further away than the clock can say.
        let mut next = Some(Instant::now());
        loop {
            match next {
                Some(next) => tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::time::sleep_until(next) => {}
                },
                None => {
                    (&mut shutdown).await;
                    break;
                }
            }
            let started = Instant::now();
            let sweep = self.sweep();
            tokio::pin!(sweep);
            tokio::select! {
                biased;
                result = &mut sweep => report.count(result),
                () = &mut shutdown => {
                    match tokio::time::timeout(self.shutdown_timeout, sweep).await {
                        Ok(result) => report.count(result),
                        Err(_) => {
                            report.abandoned_sweeps += 1;
                            tracing::warn!(
                                timeout = ?self.shutdown_timeout,
                                "expired-session sweep still running at shutdown; abandoned"
                            );
                        }
                    }
                    break;
                }
            }
            next = started
                .checked_add(self.next_delay())
                .map(|next| next.max(Instant::now()));
        }
        tracing::debug!(?report, "expired-deletion task stopped");
        report
    }

    /// Spawns the task on the current tokio runtime.
    ///
    /// Keep the handle to stop the task with
    /// [`shutdown`](DeletionTaskHandle::shutdown). Dropping it detaches the
    /// task, which then sweeps until the runtime shuts down.
    #[must_use = "dropping the handle detaches the task: keep it to stop the task with `shutdown`"]
    pub fn spawn(self) -> DeletionTaskHandle {
        let (stop, stopped) = oneshot::channel::<()>();
        let join = tokio::spawn(self.run_until(async move {
            // Only a request stops the task: a dropped handle (the sender
            // gone, an error here) leaves it sweeping.
            if stopped.await.is_err() {
                std::future::pending::<()>().await;
            }
        }));
        DeletionTaskHandle {
            stop: Some(stop),
            join,
        }
    }

    fn next_delay(&self) -> Duration {
        if self.jitter.is_zero() {
            return self.period;
        }
        let extra = rand::rng().random_range(Duration::ZERO..=self.jitter);
        // Both are at most a century: this cannot saturate, but never panics.
        self.period.saturating_add(extra)
    }

    /// One sweep: how many records it removed, or `None` when it failed
    /// (the error is logged here).
    async fn sweep(&self) -> Option<u64> {
        let span = tracing::info_span!("session.delete_expired");
        let removed = match self.store.delete_expired().instrument(span.clone()).await {
            Ok(removed) => {
                tracing::debug!(parent: &span, removed, "swept expired sessions");
                Some(removed)
            }
            Err(error) => {
                tracing::error!(
                    parent: &span,
                    %error,
                    "expired-session sweep failed; retrying next period"
                );
                None
            }
        };
        #[cfg(feature = "metrics")]
        crate::metrics::sweep(removed);
        removed
    }
}

impl DeletionReport {
    fn count(&mut self, swept: Option<u64>) {
        match swept {
            Some(removed) => {
                self.sweeps += 1;
                self.removed = self.removed.saturating_add(removed);
            }
            None => self.failed_sweeps += 1,
        }
    }
}

/// A running [`ExpiredDeletionTask`].
///
/// [`shutdown`](Self::shutdown) stops the task and returns its report.
/// Dropping the handle does not stop the task: it detaches it, as dropping a
/// tokio `JoinHandle` does, and the task sweeps until the runtime shuts
/// down (which cancels it, mid-sweep perhaps, and its report is lost). So a
/// handle that is dropped at once, `let _ = task.spawn();`, still sweeps.
/// The handle is `#[must_use]` because without it the task can no longer be
/// stopped cleanly:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// # use std::time::Duration;
/// # use session_core::deletion::ExpiredDeletionTask;
/// # fn demo(store: session_memory::MemoryStore) {
/// ExpiredDeletionTask::new(store, Duration::from_secs(60)).spawn();
/// # }
/// ```
///
/// ```no_run
/// #![deny(unused_must_use)]
/// # use std::time::Duration;
/// # use session_core::deletion::ExpiredDeletionTask;
/// # async fn demo(store: session_memory::MemoryStore) {
/// let task = ExpiredDeletionTask::new(store, Duration::from_secs(60)).spawn();
/// // ...
/// let report = task.shutdown().await;
/// # }
/// ```
#[must_use = "dropping the handle detaches the task: keep it to stop the task with `shutdown`"]
#[derive(Debug)]
pub struct DeletionTaskHandle {
    stop: Option<oneshot::Sender<()>>,
    join: JoinHandle<DeletionReport>,
}

impl DeletionTaskHandle {
    /// Asks the task to stop and waits until it has: at once between
    /// sweeps, and during a sweep at most the task's shutdown timeout (see
    /// [Stopping](ExpiredDeletionTask#stopping)).
    ///
    /// A task that panicked (a store's `delete_expired` panicked) reports
    /// nothing and the panic is logged.
    pub async fn shutdown(mut self) -> DeletionReport {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.join).await {
            Ok(report) => report,
            Err(error) => {
                tracing::error!(%error, "expired-deletion task ended abnormally");
                DeletionReport::default()
            }
        }
    }

    /// Whether the task has stopped.
    pub fn is_finished(&self) -> bool {
        self.join.is_finished()
    }
}
