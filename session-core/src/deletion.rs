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

/// Sweeps a store's expired records: once at start, then every period.
///
/// Sweeps never overlap: the next one is scheduled from the start of the
/// previous one, and a sweep that runs past the period delays the next
/// instead of running beside it. A failed sweep is logged with `tracing` and
/// the task tries again at the next tick. Stopping waits for a sweep in
/// progress to finish, so the report counts what was really removed; stores
/// bound each call's time, which bounds the wait.
#[derive(Debug)]
pub struct ExpiredDeletionTask<S> {
    store: S,
    period: Duration,
    jitter: Duration,
}

/// What a deletion task did before it stopped.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeletionReport {
    /// Records removed over all sweeps.
    pub removed: u64,
    /// Sweeps that succeeded.
    pub sweeps: u64,
    /// Sweeps that returned an error.
    pub failed_sweeps: u64,
}

impl<S: ExpiredDeletion> ExpiredDeletionTask<S> {
    /// A task that sweeps `store` every `period`.
    ///
    /// A zero period is raised to one millisecond so the task cannot spin.
    pub fn new(store: S, period: Duration) -> Self {
        Self {
            store,
            period: period.max(Duration::from_millis(1)),
            jitter: Duration::ZERO,
        }
    }

    /// Adds a random delay of up to `jitter` to every period, so a fleet of
    /// processes started together does not sweep in lockstep. The first sweep
    /// still runs at once.
    pub fn with_jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
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
        let mut next = Instant::now();
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = tokio::time::sleep_until(next) => {}
            }
            let started = Instant::now();
            self.sweep(&mut report).await;
            next = (started + self.next_delay()).max(Instant::now());
        }
        tracing::debug!(?report, "expired-deletion task stopped");
        report
    }

    /// Spawns the task on the current tokio runtime.
    pub fn spawn(self) -> DeletionTaskHandle {
        let (stop, stopped) = oneshot::channel::<()>();
        let join = tokio::spawn(self.run_until(async move {
            // A dropped handle stops the task as a shutdown request does.
            let _ = stopped.await;
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
        self.period + extra
    }

    async fn sweep(&self, report: &mut DeletionReport) {
        let span = tracing::info_span!("session.delete_expired");
        match self.store.delete_expired().instrument(span.clone()).await {
            Ok(removed) => {
                report.sweeps += 1;
                report.removed += removed;
                tracing::debug!(parent: &span, removed, "swept expired sessions");
            }
            Err(error) => {
                report.failed_sweeps += 1;
                tracing::error!(
                    parent: &span,
                    %error,
                    "expired-session sweep failed; retrying next period"
                );
            }
        }
    }
}

/// A running [`ExpiredDeletionTask`]. Dropping it stops the task after the
/// sweep in progress, if any; [`shutdown`](Self::shutdown) also waits for it
/// and returns its report.
#[derive(Debug)]
pub struct DeletionTaskHandle {
    stop: Option<oneshot::Sender<()>>,
    join: JoinHandle<DeletionReport>,
}

impl DeletionTaskHandle {
    /// Asks the task to stop and waits until it has.
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
