//! `delete_expired` in batches.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure.

mod common;

use session_core::{time::Duration, ExpiredDeletion, SessionStore};
use session_rusqlite::RusqliteStore;
use session_testkit::suite::record_expiring_in;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeps_in_batches_count_every_row() {
    let temp = common::temp_store().await;
    let store: RusqliteStore = temp.store.clone().with_delete_batch_size(7);
    let mut active = Vec::new();
    for n in 0..5 {
        let mut record = record_expiring_in(Duration::hours(1), serde_json::json!({"n": n}));
        store.create(&mut record).await.unwrap();
        active.push(record);
    }
    // 21 is a multiple of the batch size: the sweep must still stop.
    for n in 0..21 {
        let record = record_expiring_in(-Duration::seconds(n + 1), serde_json::json!({"n": n}));
        store.save(&record).await.unwrap();
    }
    assert_eq!(store.delete_expired().await.unwrap(), 21);
    assert_eq!(store.delete_expired().await.unwrap(), 0);
    for record in active {
        assert_eq!(store.load(&record.id).await.unwrap(), Some(record));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deletion_task_sweeps_the_store() {
    use std::time::Duration as StdDuration;

    use session_core::deletion::ExpiredDeletionTask;

    let temp = common::temp_store().await;
    let store = temp.store.clone().with_delete_batch_size(2);
    for n in 0..5 {
        let record = record_expiring_in(-Duration::seconds(n + 1), serde_json::json!({"n": n}));
        store.save(&record).await.unwrap();
    }
    let mut active = record_expiring_in(Duration::hours(1), serde_json::json!({}));
    store.create(&mut active).await.unwrap();

    let raw = rusqlite::Connection::open(temp.path()).unwrap();
    raw.busy_timeout(StdDuration::from_secs(5)).unwrap();
    // Stop once the rows are gone (the first sweep runs at once).
    let swept = async {
        loop {
            let rows: i64 = raw
                .query_row("SELECT count(*) FROM sessions", [], |row| row.get(0))
                .unwrap();
            if rows == 1 {
                break;
            }
            tokio::time::sleep(StdDuration::from_millis(10)).await;
        }
    };
    let task = ExpiredDeletionTask::new(store.clone(), StdDuration::from_secs(3600));
    let report = tokio::time::timeout(StdDuration::from_secs(30), task.run_until(swept))
        .await
        .expect("the first sweep removes the expired rows");
    assert_eq!(report.removed, 5);
    assert_eq!(report.failed_sweeps, 0);
    assert_eq!(store.load(&active.id).await.unwrap(), Some(active));
}

/// An expired row still stored (no sweep yet) does not hold its id: `create`
/// takes it over in its one statement. An active row is never overwritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_takes_over_only_expired_ids() {
    let temp = common::temp_store().await;
    let store = &temp.store;
    let stale = record_expiring_in(-Duration::hours(1), serde_json::json!({"v": "stale"}));
    let id = stale.id;
    store.save(&stale).await.unwrap();

    let mut fresh = record_expiring_in(Duration::hours(1), serde_json::json!({"v": "fresh"}));
    fresh.id = id;
    store.create(&mut fresh).await.unwrap();
    assert_eq!(fresh.id, id, "an expired record blocked its id");
    assert_eq!(store.load(&id).await.unwrap(), Some(fresh.clone()));

    let mut again = record_expiring_in(Duration::hours(1), serde_json::json!({"v": "again"}));
    again.id = id;
    store.create(&mut again).await.unwrap();
    assert_ne!(again.id, id, "create overwrote an active record");
    assert_eq!(store.load(&id).await.unwrap(), Some(fresh));
    assert_eq!(store.load(&again.id).await.unwrap(), Some(again));
    // The take-over left one row, not two.
    assert_eq!(store.delete_expired().await.unwrap(), 0);
}
