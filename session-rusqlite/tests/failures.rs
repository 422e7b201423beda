//! A store that cannot reach its database answers `Error::Backend`, never a
//! panic, and works again once the database is back.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure.

mod common;

use std::{error::Error as _, time::Duration as StdDuration};

use rusqlite::{Connection, OpenFlags};
use session_core::{time::Duration, Error, ExpiredDeletion, SessionStore};
use session_rusqlite::{RusqliteOptions, RusqliteStore, RusqliteStoreError};
use session_testkit::suite::record_expiring_in;

use common::{db_path, temp_dir};

fn assert_backend<T: std::fmt::Debug>(result: session_core::Result<T>, what: &str) -> Error {
    match result {
        Err(error @ Error::Backend(_)) => error,
        other => panic!("{what} should be a backend error: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_store_is_a_backend_error() {
    let temp = common::temp_store().await;
    let store = temp.store.clone();
    let mut record = record_expiring_in(Duration::hours(1), serde_json::json!({"n": 1}));
    store.create(&mut record).await.unwrap();

    store.close().await;
    // Closing twice is fine.
    temp.store.close().await;

    let error = assert_backend(store.load(&record.id).await, "load");
    let source = error
        .source()
        .and_then(|s| s.downcast_ref::<RusqliteStoreError>());
    assert!(
        matches!(source, Some(RusqliteStoreError::Closed)),
        "{error:?}"
    );
    assert_backend(store.save(&record).await, "save");
    assert_backend(store.create(&mut record.clone()).await, "create");
    assert_backend(store.delete(&record.id).await, "delete");
    assert_backend(store.delete_expired().await, "delete_expired");
    assert_backend(store.migrate().await, "migrate");
}

#[tokio::test]
async fn a_missing_table_is_a_backend_error_until_migrated() {
    let dir = temp_dir();
    let store = RusqliteStore::open(db_path(&dir)).await.unwrap();
    let record = record_expiring_in(Duration::hours(1), serde_json::json!({}));
    let error = assert_backend(store.load(&record.id).await, "load before migrate");
    assert!(
        error
            .source()
            .and_then(|s| s.downcast_ref::<rusqlite::Error>())
            .is_some(),
        "the rusqlite error is kept as the source: {error:?}"
    );
    assert_backend(store.save(&record).await, "save before migrate");

    store.migrate().await.unwrap();
    store.save(&record).await.unwrap();

    // Dropped underneath the store by someone else.
    let raw = Connection::open(db_path(&dir)).unwrap();
    raw.busy_timeout(StdDuration::from_secs(5)).unwrap();
    raw.execute_batch("DROP TABLE sessions").unwrap();
    assert_backend(store.load(&record.id).await, "load of a dropped table");
    assert_backend(store.delete_expired().await, "sweep of a dropped table");

    store.migrate().await.unwrap();
    assert_eq!(store.load(&record.id).await.unwrap(), None);
}

#[tokio::test]
async fn writes_through_a_read_only_connection_are_backend_errors() {
    let dir = temp_dir();
    let setup = RusqliteStore::open(db_path(&dir)).await.unwrap();
    setup.migrate().await.unwrap();
    let read_only = Connection::open_with_flags(
        db_path(&dir),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap();
    let store = RusqliteStore::from_connection(read_only);
    let mut record = record_expiring_in(Duration::hours(1), serde_json::json!({}));
    assert_backend(store.create(&mut record).await, "create");
    assert_backend(store.save(&record).await, "save");
    assert_eq!(store.load(&record.id).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_elsewhere_times_out_then_the_store_recovers() {
    let dir = temp_dir();
    let options = RusqliteOptions::new().busy_timeout(StdDuration::from_millis(100));
    let store = RusqliteStore::open_with(db_path(&dir), options)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let record = record_expiring_in(Duration::hours(1), serde_json::json!({"n": 1}));

    // Another "process" takes the write lock and keeps it.
    let mut other = Connection::open(db_path(&dir)).unwrap();
    let transaction = other
        .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
        .unwrap();
    let error = assert_backend(store.save(&record).await, "save under a foreign lock");
    let code = error
        .source()
        .and_then(|s| s.downcast_ref::<rusqlite::Error>())
        .and_then(rusqlite::Error::sqlite_error_code);
    assert_eq!(code, Some(rusqlite::ErrorCode::DatabaseBusy), "{error:?}");
    transaction.rollback().unwrap();

    store.save(&record).await.unwrap();
    assert_eq!(store.load(&record.id).await.unwrap(), Some(record));
}

#[tokio::test]
async fn an_unopenable_path_is_a_backend_error() {
    let dir = temp_dir();
    let path = dir.path().join("missing-directory").join("sessions.db");
    match RusqliteStore::open(path).await {
        Err(Error::Backend(_)) => {}
        other => panic!("open should fail with a backend error: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_operations_give_their_connections_back() {
    let temp = common::temp_store().await;
    let store = &temp.store;
    let mut tasks = Vec::new();
    for n in 0..64 {
        let store = store.clone();
        let record = record_expiring_in(Duration::hours(1), serde_json::json!({"n": n}));
        tasks.push(tokio::spawn(async move {
            // Dropped at once or part-way: never mid-statement for SQLite.
            let _ = tokio::time::timeout(StdDuration::ZERO, store.save(&record)).await;
            let _ = tokio::time::timeout(StdDuration::ZERO, store.load(&record.id)).await;
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // Every connection came back: operations still run, and close completes.
    let mut record = record_expiring_in(Duration::hours(1), serde_json::json!({"after": true}));
    store.create(&mut record).await.unwrap();
    assert_eq!(store.load(&record.id).await.unwrap(), Some(record));
    tokio::time::timeout(StdDuration::from_secs(30), store.close())
        .await
        .expect("close waits only for operations under way");
}
