//! What the `metrics` feature counts, read back with a debugging recorder.
#![cfg(feature = "metrics")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use metrics_util::{
    debugging::{DebugValue, DebuggingRecorder},
    MetricKind,
};
use session_caching::{LocalChannel, NearCache};
use session_core::SessionStore;
use session_memory::MemoryStore;

#[test]
fn hits_misses_messages_and_write_back_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        // One thread: the caches' tasks record into the local recorder too.
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let store = MemoryStore::default();
                let channel = LocalChannel::default();
                let a = NearCache::builder(store.clone(), channel.clone())
                    .build()
                    .unwrap();
                let b = NearCache::builder(store.clone(), channel)
                    .touch_write_back(Duration::from_millis(20))
                    .build()
                    .unwrap();
                common::all_live(&[&a, &b]).await;
                let mut session = common::record(1);
                a.create(&mut session).await.unwrap();
                b.load(&session.id).await.unwrap(); // miss
                b.load(&session.id).await.unwrap(); // hit
                let later = session.expiry_date + session_core::time::Duration::hours(1);
                assert!(b.touch(&session.id, later).await.unwrap()); // absorbed
                common::eventually("the write-back", || async { b.pending_touches() == 0 }).await;
                let before = b.messages_received();
                a.delete(&session.id).await.unwrap();
                common::received(&b, before, 1).await;
            });
    });
    let counted: Vec<(String, Vec<String>, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| match (key.kind(), value) {
            (MetricKind::Counter, DebugValue::Counter(value)) => Some((
                key.key().name().to_owned(),
                key.key()
                    .labels()
                    .map(|label| format!("{}={}", label.key(), label.value()))
                    .collect(),
                value,
            )),
            _ => None,
        })
        .collect();
    let count = |name: &str, label: &str| -> u64 {
        counted
            .iter()
            .filter(|(found, labels, _)| {
                found == name && (label.is_empty() || labels.iter().any(|l| l == label))
            })
            .map(|(_, _, value)| value)
            .sum()
    };
    assert_eq!(count("session_cache_lookups_total", "result=hit"), 1);
    assert_eq!(count("session_cache_lookups_total", "result=miss"), 1);
    assert_eq!(count("session_near_cache_touches_absorbed_total", ""), 1);
    assert_eq!(count("session_near_cache_touches_written_total", ""), 1);
    assert!(
        count(
            "session_near_cache_messages_received_total",
            "kind=invalidate"
        ) >= 1
    );
}
