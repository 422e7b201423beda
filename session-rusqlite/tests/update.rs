//! `update` and `touch` against writes the store did not make: other
//! connections (other processes) to the same file.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure.

mod common;

use std::{error::Error as _, time::Duration as StdDuration};

use rusqlite::{params, Connection, TransactionBehavior};
use session_core::{codec, time::Duration, SessionStore, Update};
use session_rusqlite::{RusqliteOptions, RusqliteStore};
use session_testkit::suite::{now_micros, record_expiring_in};

use common::{db_path, temp_dir};

fn raw_connection(path: &std::path::Path) -> Connection {
    let raw = Connection::open(path).unwrap();
    raw.busy_timeout(StdDuration::from_secs(5)).unwrap();
    raw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_writes_are_seen_by_the_compare_and_swap() {
    let temp = common::temp_store().await;
    let store = &temp.store;
    let raw = raw_connection(&temp.path());
    let mut record = record_expiring_in(Duration::hours(1), serde_json::json!({"n": 0}));
    store.create(&mut record).await.unwrap();

    // Another process updates the session behind this store's back.
    let mut theirs = record.clone();
    theirs.data.insert("n".into(), serde_json::json!(1));
    theirs.version = 1;
    raw.execute(
        "UPDATE sessions SET data = ?2, version = 1 WHERE id = ?1",
        params![
            record.id.to_string(),
            codec::encode_data(&theirs.data).unwrap()
        ],
    )
    .unwrap();
    let mut mine = record.clone();
    mine.data.insert("n".into(), serde_json::json!(2));
    assert_eq!(
        store.update(&mut mine).await.unwrap(),
        Update::Conflict(theirs.clone())
    );
    assert_eq!(mine.version, 0);

    // Then it lets the session expire: update and touch see it gone.
    raw.execute(
        "UPDATE sessions SET expiry_date = ?2 WHERE id = ?1",
        params![
            record.id.to_string(),
            codec::unix_micros(now_micros() - Duration::seconds(1))
        ],
    )
    .unwrap();
    assert_eq!(store.update(&mut theirs).await.unwrap(), Update::Gone);
    assert!(!store
        .touch(&record.id, now_micros() + Duration::hours(2))
        .await
        .unwrap());
    assert_eq!(store.load(&record.id).await.unwrap(), None);
}

/// SQLite counts the rows an `UPDATE` matched, not only those it changed:
/// a touch to the stored expiry (or an earlier one) is still `true`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touch_to_the_same_expiry_is_true() {
    let temp = common::temp_store().await;
    let store = &temp.store;
    let mut record = record_expiring_in(Duration::hours(1), serde_json::json!({}));
    store.create(&mut record).await.unwrap();
    assert!(store.touch(&record.id, record.expiry_date).await.unwrap());
    assert!(store
        .touch(&record.id, record.expiry_date - Duration::minutes(1))
        .await
        .unwrap());
    assert_eq!(store.load(&record.id).await.unwrap(), Some(record));
}

/// While another process holds the write lock, an update waits for the busy
/// timeout, then fails as a backend error having written nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_under_a_foreign_lock_times_out_and_writes_nothing() {
    let dir = temp_dir();
    let options = RusqliteOptions::new().busy_timeout(StdDuration::from_millis(100));
    let store = RusqliteStore::open_with(db_path(&dir), options)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let mut record = record_expiring_in(Duration::hours(1), serde_json::json!({"n": 0}));
    store.create(&mut record).await.unwrap();

    let mut other = raw_connection(&db_path(&dir));
    let lock = other
        .transaction_with_behavior(TransactionBehavior::Exclusive)
        .unwrap();
    let mut changed = record.clone();
    changed.data.insert("n".into(), serde_json::json!(1));
    let error = store.update(&mut changed).await.unwrap_err();
    assert!(error.is_backend(), "{error:?}");
    let code = error
        .source()
        .and_then(|s| s.downcast_ref::<rusqlite::Error>())
        .and_then(rusqlite::Error::sqlite_error_code);
    assert_eq!(code, Some(rusqlite::ErrorCode::DatabaseBusy), "{error:?}");
    assert_eq!(
        changed.version, 0,
        "a failed update must not bump the version"
    );
    lock.rollback().unwrap();

    assert_eq!(store.load(&record.id).await.unwrap(), Some(record));
    assert_eq!(store.update(&mut changed).await.unwrap(), Update::Written);
    assert_eq!(store.load(&changed.id).await.unwrap(), Some(changed));
}

/// A batch of touches runs as one transaction on the writer: every active
/// id answers `true`, in order, repeated ids included, and the latest date
/// of a repeated id wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touch_many_handles_large_batches_and_repeated_ids() {
    let temp = common::temp_store().await;
    let store = &temp.store;
    let mut records = Vec::new();
    for n in 0..300 {
        let mut record = record_expiring_in(Duration::hours(1), serde_json::json!({ "n": n }));
        store.create(&mut record).await.unwrap();
        records.push(record);
    }
    let later = now_micros() + Duration::days(1);
    let mut touches: Vec<_> = records.iter().map(|r| (r.id, later)).collect();
    touches.push((records[0].id, later + Duration::hours(1)));
    touches.push((records[0].id, later - Duration::hours(1)));
    touches.push((session_core::Id::default(), later));
    let touched = store.touch_many(&touches).await.unwrap();
    let mut expected = vec![true; 302];
    expected.push(false);
    assert_eq!(touched, expected);
    assert_eq!(
        store
            .load(&records[0].id)
            .await
            .unwrap()
            .unwrap()
            .expiry_date,
        later + Duration::hours(1)
    );
    for record in &records[1..] {
        let stored = store.load(&record.id).await.unwrap().unwrap();
        assert_eq!((stored.expiry_date, stored.version), (later, 0));
    }
}
