//! The expired-deletion task, on tokio's paused clock.
//!
//! No `cfg(feature = "deletion-task")` here: session-core's dev-dependencies
//! turn the feature on for its tests, so these run under a plain `cargo test
//! -p session-core`, and fail to build rather than vanish if that changes.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use session_core::{
    async_trait,
    deletion::{DeletionReport, ExpiredDeletionTask, DEFAULT_SHUTDOWN_TIMEOUT},
    time::{Duration as TimeDuration, OffsetDateTime},
    ExpiredDeletion, Id, Record, Result, SessionStore, Update,
};
use session_memory::MemoryStore;
use session_testkit::{FaultyStore, Operation};
use tokio::time::Instant;

async fn save_expired(store: &MemoryStore, count: usize) {
    for _ in 0..count {
        let record = Record::new(OffsetDateTime::now_utc() - TimeDuration::seconds(1));
        store.save(&record).await.expect("save an expired record");
    }
}

/// Lets the spawned task run until it waits on the (paused) clock again.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

/// A store that notes the (paused) instant of every sweep.
#[derive(Debug, Clone, Default)]
struct Clocked {
    store: MemoryStore,
    sweeps: Arc<Mutex<Vec<Instant>>>,
}

impl Clocked {
    fn sweeps(&self) -> Vec<Instant> {
        self.sweeps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[async_trait]
impl SessionStore for Clocked {
    async fn create(&self, record: &mut Record) -> Result<()> {
        self.store.create(record).await
    }
    async fn save(&self, record: &Record) -> Result<()> {
        self.store.save(record).await
    }
    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        self.store.load(session_id).await
    }
    async fn delete(&self, session_id: &Id) -> Result<()> {
        self.store.delete(session_id).await
    }
    async fn update(&self, record: &mut Record) -> Result<Update> {
        self.store.update(record).await
    }
    async fn touch(&self, session_id: &Id, expiry_date: OffsetDateTime) -> Result<bool> {
        self.store.touch(session_id, expiry_date).await
    }
}

#[async_trait]
impl ExpiredDeletion for Clocked {
    async fn delete_expired(&self) -> Result<u64> {
        self.sweeps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Instant::now());
        self.store.delete_expired().await
    }
}

#[tokio::test(start_paused = true)]
async fn sweeps_at_once_then_every_period_and_reports() {
    let memory = MemoryStore::default();
    save_expired(&memory, 3).await;
    let store = FaultyStore::new(memory.clone());
    let faults = store.faults();

    let task = ExpiredDeletionTask::new(store, Duration::from_secs(60)).spawn();
    settle().await;
    assert_eq!(
        faults.calls(Operation::DeleteExpired),
        1,
        "first sweep runs at once"
    );
    assert!(memory.is_empty());

    save_expired(&memory, 2).await;
    tokio::time::advance(Duration::from_secs(59)).await;
    settle().await;
    assert_eq!(
        faults.calls(Operation::DeleteExpired),
        1,
        "no sweep before the period"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    settle().await;
    assert_eq!(faults.calls(Operation::DeleteExpired), 2);

    let report = task.shutdown().await;
    assert_eq!(report.removed, 5);
    assert_eq!(report.sweeps, 2);
    assert_eq!(report.failed_sweeps, 0);
    assert_eq!(report.abandoned_sweeps, 0);
}

#[tokio::test(start_paused = true)]
async fn failed_sweeps_are_retried_next_period() {
    let memory = MemoryStore::default();
    save_expired(&memory, 4).await;
    let store = FaultyStore::new(memory.clone());
    let faults = store.faults();
    faults.fail_next(Operation::DeleteExpired, 2);

    let task = ExpiredDeletionTask::new(store, Duration::from_secs(10)).spawn();
    settle().await;
    for _ in 0..2 {
        tokio::time::advance(Duration::from_secs(10)).await;
        settle().await;
    }
    assert_eq!(faults.calls(Operation::DeleteExpired), 3);
    assert!(memory.is_empty(), "third sweep succeeded");
    assert!(!task.is_finished(), "task survives failures");

    let report = task.shutdown().await;
    assert_eq!(report.failed_sweeps, 2);
    assert_eq!(report.sweeps, 1);
    assert_eq!(report.removed, 4);
}

#[tokio::test(start_paused = true)]
async fn slow_sweeps_never_overlap() {
    let store = FaultyStore::new(MemoryStore::default());
    let faults = store.faults();
    // Each sweep takes 25s with a 10s period.
    faults.set_latency(Operation::DeleteExpired, Duration::from_secs(25));
    let task = ExpiredDeletionTask::new(store.clone(), Duration::from_secs(10))
        .with_shutdown_timeout(Duration::from_secs(30))
        .spawn();
    settle().await;
    assert_eq!(faults.calls(Operation::DeleteExpired), 1);
    tokio::time::advance(Duration::from_secs(20)).await;
    settle().await;
    assert_eq!(
        faults.calls(Operation::DeleteExpired),
        1,
        "second sweep waits for the first"
    );
    tokio::time::advance(Duration::from_secs(5)).await;
    settle().await;
    assert_eq!(
        faults.calls(Operation::DeleteExpired),
        2,
        "next sweep starts when the slow one ends"
    );

    // Shutdown during a sweep that ends within the timeout waits for it and
    // counts it.
    let asked = Instant::now();
    let report = task.shutdown().await;
    assert_eq!(asked.elapsed(), Duration::from_secs(25));
    assert_eq!(report.sweeps, 2);
    assert_eq!(report.abandoned_sweeps, 0);
}

#[tokio::test(start_paused = true)]
async fn jitter_spreads_every_delay_over_its_whole_range() {
    const PERIOD: Duration = Duration::from_secs(10);
    const JITTER: Duration = Duration::from_secs(5);
    let store = Clocked::default();
    let task = ExpiredDeletionTask::new(store.clone(), PERIOD)
        .with_jitter(JITTER)
        .spawn();
    let started = Instant::now();
    // The paused clock jumps from one sweep to the next: about 800 sweeps.
    tokio::time::sleep(Duration::from_secs(10_000)).await;
    let report = task.shutdown().await;

    let sweeps = store.sweeps();
    assert_eq!(
        sweeps.first(),
        Some(&started),
        "the first sweep is not delayed"
    );
    let delays: Vec<Duration> = sweeps.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(delays.len() > 600, "{} sweeps", sweeps.len());
    assert_eq!(report.sweeps, sweeps.len() as u64);
    // tokio's timer rounds a deadline up to its next millisecond.
    let upper = PERIOD + JITTER + Duration::from_millis(1);
    for delay in &delays {
        assert!(
            (PERIOD..=upper).contains(delay),
            "delay {delay:?} outside [{PERIOD:?}, {upper:?}]"
        );
    }
    // Spread over the whole range, not a constant: ignoring the jitter (all
    // 10s) or always adding all of it (all 15s) fails here.
    let mut sorted = delays.clone();
    sorted.sort();
    let (shortest, longest) = (sorted[0], sorted[sorted.len() - 1]);
    let quarter = JITTER / 4;
    assert!(
        shortest < PERIOD + quarter && longest > PERIOD + 3 * quarter,
        "delays from {shortest:?} to {longest:?}"
    );
    sorted.dedup();
    assert!(
        sorted.len() > delays.len() / 2,
        "{} distinct delays of {}",
        sorted.len(),
        delays.len()
    );
}

#[tokio::test(start_paused = true)]
async fn run_until_stops_on_the_signal_without_cancelling() {
    let memory = MemoryStore::default();
    save_expired(&memory, 1).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = ExpiredDeletionTask::new(memory, Duration::from_secs(1));
    let running = tokio::spawn(task.run_until(async {
        let _ = stopped.await;
    }));
    settle().await;
    for _ in 0..3 {
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
    }
    stop.send(()).unwrap();
    let report = running.await.expect("task ends normally, not cancelled");
    assert_eq!(report.removed, 1);
    assert_eq!(report.sweeps, 4, "one at once, then one per elapsed period");
}

#[tokio::test(start_paused = true)]
async fn dropping_the_handle_leaves_the_task_sweeping() {
    let store = FaultyStore::new(MemoryStore::default());
    let faults = store.faults();
    // Dropped at once, before the task ever ran.
    drop(ExpiredDeletionTask::new(store, Duration::from_secs(1)).spawn());
    settle().await;
    assert_eq!(
        faults.calls(Operation::DeleteExpired),
        1,
        "the first sweep still runs"
    );
    for _ in 0..3 {
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
    }
    assert_eq!(
        faults.calls(Operation::DeleteExpired),
        4,
        "and so do the next ones"
    );
}

#[tokio::test(start_paused = true)]
async fn a_huge_period_or_jitter_never_panics() {
    for (period, jitter) in [
        (Duration::MAX, Duration::ZERO),
        (Duration::MAX, Duration::MAX),
        (Duration::from_secs(1), Duration::MAX),
        (
            Duration::from_secs(u64::MAX / 2),
            Duration::from_secs(u64::MAX / 2),
        ),
    ] {
        let store = FaultyStore::new(MemoryStore::default());
        let faults = store.faults();
        let task = ExpiredDeletionTask::new(store, period)
            .with_jitter(jitter)
            .spawn();
        settle().await;
        assert_eq!(faults.calls(Operation::DeleteExpired), 1);
        // Fifty years later the task is alive, and has not swept again
        // unless the period is short: a huge period or jitter counts as a
        // century.
        for _ in 0..10 {
            tokio::time::advance(Duration::from_secs(5 * 365 * 24 * 3600)).await;
            settle().await;
        }
        assert!(
            !task.is_finished(),
            "{period:?} + {jitter:?}: task panicked"
        );
        let report = task.shutdown().await;
        assert!(report.sweeps >= 1, "{period:?} + {jitter:?}: {report:?}");
        if jitter.is_zero() {
            assert_eq!(report.sweeps, 1);
        }
    }
}

/// A sweep that takes an hour (a huge backlog, a slow backend).
fn hour_long_sweeps() -> (FaultyStore<MemoryStore>, session_testkit::Faults) {
    let store = FaultyStore::new(MemoryStore::default());
    let faults = store.faults();
    faults.set_latency(Operation::DeleteExpired, Duration::from_secs(3600));
    (store, faults)
}

#[tokio::test(start_paused = true)]
async fn shutdown_abandons_a_sweep_that_outlasts_the_timeout() {
    let (store, faults) = hour_long_sweeps();
    let task = ExpiredDeletionTask::new(store, Duration::from_secs(60)).spawn();
    settle().await;
    assert_eq!(faults.calls(Operation::DeleteExpired), 1, "sweeping");

    let asked = Instant::now();
    let report = task.shutdown().await;
    assert_eq!(
        asked.elapsed(),
        DEFAULT_SHUTDOWN_TIMEOUT,
        "waits the timeout, not the hour"
    );
    let mut expected = DeletionReport::default();
    expected.abandoned_sweeps = 1;
    assert_eq!(report, expected);
}

#[tokio::test(start_paused = true)]
async fn run_until_abandons_a_sweep_that_outlasts_the_timeout() {
    let (store, faults) = hour_long_sweeps();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(
        ExpiredDeletionTask::new(store, Duration::from_secs(60))
            .with_shutdown_timeout(Duration::from_secs(2))
            .run_until(async {
                let _ = stopped.await;
            }),
    );
    settle().await;
    assert_eq!(faults.calls(Operation::DeleteExpired), 1, "sweeping");

    let asked = Instant::now();
    stop.send(()).unwrap();
    let report = running.await.expect("task ends normally, not cancelled");
    assert_eq!(asked.elapsed(), Duration::from_secs(2));
    assert_eq!((report.sweeps, report.abandoned_sweeps), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn a_zero_timeout_abandons_at_once_and_a_stop_between_sweeps_is_immediate() {
    let (store, _) = hour_long_sweeps();
    let task = ExpiredDeletionTask::new(store, Duration::from_secs(60))
        .with_shutdown_timeout(Duration::ZERO)
        .spawn();
    settle().await;
    let asked = Instant::now();
    let report = task.shutdown().await;
    assert_eq!(asked.elapsed(), Duration::ZERO);
    assert_eq!(report.abandoned_sweeps, 1);

    // Between sweeps, stopping never waits, whatever the timeout.
    let store = FaultyStore::new(MemoryStore::default());
    let task = ExpiredDeletionTask::new(store, Duration::from_secs(60))
        .with_shutdown_timeout(Duration::MAX)
        .spawn();
    settle().await;
    let asked = Instant::now();
    let report = task.shutdown().await;
    assert_eq!(asked.elapsed(), Duration::ZERO);
    assert_eq!((report.sweeps, report.abandoned_sweeps), (1, 0));
}
