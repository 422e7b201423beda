//! The expired-deletion task, on tokio's paused clock.
#![cfg(feature = "deletion-task")]

use std::time::Duration;

use session_core::{
    deletion::ExpiredDeletionTask,
    time::{Duration as TimeDuration, OffsetDateTime},
    Record, SessionStore,
};
use session_memory::MemoryStore;
use session_testkit::{FaultyStore, Operation};

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
    let task = ExpiredDeletionTask::new(store.clone(), Duration::from_secs(10)).spawn();
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

    // Shutdown during a sweep waits for it and counts it.
    let report = task.shutdown().await;
    assert_eq!(report.sweeps, 2);
}

#[tokio::test(start_paused = true)]
async fn jitter_delays_within_bounds() {
    let store = FaultyStore::new(MemoryStore::default());
    let faults = store.faults();
    let task = ExpiredDeletionTask::new(store, Duration::from_secs(10))
        .with_jitter(Duration::from_secs(5))
        .spawn();
    settle().await;
    assert_eq!(faults.calls(Operation::DeleteExpired), 1);
    tokio::time::advance(Duration::from_millis(9_999)).await;
    settle().await;
    assert_eq!(
        faults.calls(Operation::DeleteExpired),
        1,
        "jitter never shortens the period"
    );
    tokio::time::advance(Duration::from_millis(5_001)).await;
    settle().await;
    assert_eq!(
        faults.calls(Operation::DeleteExpired),
        2,
        "jitter is bounded"
    );
    task.shutdown().await;
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
async fn dropping_the_handle_stops_the_task() {
    let store = FaultyStore::new(MemoryStore::default());
    let faults = store.faults();
    let task = ExpiredDeletionTask::new(store, Duration::from_secs(1)).spawn();
    settle().await;
    drop(task);
    settle().await;
    let calls = faults.calls(Operation::DeleteExpired);
    tokio::time::advance(Duration::from_secs(10)).await;
    settle().await;
    assert_eq!(faults.calls(Operation::DeleteExpired), calls);
}
