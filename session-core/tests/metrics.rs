//! What the `metrics` feature records, read back with a debugging recorder.
#![allow(clippy::unwrap_used)]

use std::{sync::Arc, time::Duration};

use metrics_util::{
    debugging::{DebugValue, DebuggingRecorder, Snapshotter},
    CompositeKey, MetricKind,
};
use session_core::{
    deletion::ExpiredDeletionTask,
    metrics::MeteredStore,
    time::{Duration as TimeDuration, OffsetDateTime},
    CachingSessionStore, Record, SessionStore, Update,
};
use session_memory::MemoryStore;

type Metrics = Vec<(CompositeKey, DebugValue)>;

/// Everything recorded so far (a snapshot resets the counters: take one).
fn snapshot(snapshotter: &Snapshotter) -> Metrics {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| (key, value))
        .collect()
}

/// The counters named `name`, as `(sorted labels, value)`.
fn counters(metrics: &Metrics, name: &str) -> Vec<(Vec<(String, String)>, u64)> {
    let mut found: Vec<_> = metrics
        .iter()
        .filter_map(|(key, value)| {
            if key.kind() != MetricKind::Counter || key.key().name() != name {
                return None;
            }
            let mut labels: Vec<_> = key
                .key()
                .labels()
                .map(|label| (label.key().to_owned(), label.value().to_owned()))
                .collect();
            labels.sort();
            match value {
                DebugValue::Counter(value) => Some((labels, *value)),
                _ => None,
            }
        })
        .collect();
    found.sort();
    found
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut labels: Vec<_> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.sort();
    labels
}

fn record() -> Record {
    Record::new(OffsetDateTime::now_utc() + TimeDuration::hours(1))
}

#[test]
fn a_metered_store_counts_each_operation_by_outcome_and_times_it() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                let store = MeteredStore::new(MemoryStore::default(), "memory");
                let mut session = record();
                store.create(&mut session).await.unwrap();
                store.load(&session.id).await.unwrap();
                let mut stale = session.clone();
                assert!(store.update(&mut session).await.unwrap().is_written());
                assert!(store.update(&mut stale).await.unwrap().is_conflict());
                store.delete(&session.id).await.unwrap();
                assert_eq!(store.update(&mut session).await.unwrap(), Update::Gone);
                store.load(&session.id).await.unwrap();
                assert!(!store
                    .touch(&session.id, OffsetDateTime::now_utc())
                    .await
                    .unwrap());
            });
    });
    let metrics = snapshot(&snapshotter);
    let counted = counters(&metrics, "session_store_operations_total");
    let count = |operation: &str, outcome: &str| {
        counted
            .iter()
            .find(|(found, _)| {
                *found
                    == labels(&[
                        ("store", "memory"),
                        ("operation", operation),
                        ("outcome", outcome),
                    ])
            })
            .map_or(0, |(_, value)| *value)
    };
    assert_eq!(count("create", "ok"), 1);
    assert_eq!(count("load", "found"), 1);
    assert_eq!(count("load", "not_found"), 1);
    assert_eq!(count("update", "written"), 1);
    assert_eq!(count("update", "conflict"), 1);
    assert_eq!(count("update", "gone"), 1);
    assert_eq!(count("delete", "ok"), 1);
    assert_eq!(count("touch", "missing"), 1);
    let timed = metrics
        .iter()
        .filter(|(key, _)| {
            key.kind() == MetricKind::Histogram
                && key.key().name() == "session_store_operation_duration_seconds"
        })
        .count();
    assert_eq!(timed, 5, "one histogram per operation used");
}

#[test]
fn caches_count_hits_and_misses_and_the_task_counts_sweeps() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(async {
                let store = Arc::new(CachingSessionStore::new(
                    MemoryStore::default(),
                    MemoryStore::default(),
                ));
                let session = record();
                store.store().save(&session).await.unwrap();
                store.load(&session.id).await.unwrap(); // miss, fills
                store.load(&session.id).await.unwrap(); // hit
                let mut expired = record();
                expired.expiry_date = OffsetDateTime::now_utc() - TimeDuration::seconds(1);
                store.store().save(&expired).await.unwrap();
                let task =
                    ExpiredDeletionTask::new(Arc::clone(&store), Duration::from_secs(60)).spawn();
                tokio::time::sleep(Duration::from_secs(1)).await;
                task.shutdown().await;
            });
    });
    let metrics = snapshot(&snapshotter);
    assert_eq!(
        counters(&metrics, "session_cache_lookups_total"),
        vec![
            (labels(&[("cache", "caching"), ("result", "hit")]), 1),
            (labels(&[("cache", "caching"), ("result", "miss")]), 1),
        ]
    );
    assert_eq!(
        counters(&metrics, "session_expired_deletion_sweeps_total"),
        vec![(labels(&[("outcome", "ok")]), 1)]
    );
    assert_eq!(
        counters(&metrics, "session_expired_deletion_removed_total"),
        vec![(Vec::new(), 1)]
    );
}
