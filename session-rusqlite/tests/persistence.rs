//! Sessions live in the file: reopening it, or opening it twice, sees them.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure.

mod common;

use rusqlite::Connection;
use session_core::{time::Duration, ExpiredDeletion, SessionStore};
use session_rusqlite::RusqliteStore;
use session_testkit::suite::record_expiring_in;

use common::{db_path, temp_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_the_file_keeps_sessions() {
    let dir = temp_dir();
    let mut closed = record_expiring_in(Duration::hours(1), serde_json::json!({"via": "close"}));
    let mut dropped = record_expiring_in(Duration::hours(1), serde_json::json!({"via": "drop"}));
    let expired = record_expiring_in(-Duration::hours(1), serde_json::json!({}));
    {
        let store = RusqliteStore::open(db_path(&dir)).await.unwrap();
        store.migrate().await.unwrap();
        store.create(&mut closed).await.unwrap();
        store.save(&expired).await.unwrap();
        store.close().await;
    }
    {
        let store = RusqliteStore::open(db_path(&dir)).await.unwrap();
        store.migrate().await.unwrap();
        assert_eq!(
            store.load(&closed.id).await.unwrap().as_ref(),
            Some(&closed)
        );
        store.create(&mut dropped).await.unwrap();
        // Dropped without `close`: the connections close as the pool drops.
    }
    let store = RusqliteStore::open(db_path(&dir)).await.unwrap();
    assert_eq!(store.load(&closed.id).await.unwrap(), Some(closed));
    assert_eq!(store.load(&dropped.id).await.unwrap(), Some(dropped));
    assert_eq!(store.load(&expired.id).await.unwrap(), None);
    assert_eq!(store.delete_expired().await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_is_in_wal_mode_and_shared_between_stores() {
    let dir = temp_dir();
    let first = RusqliteStore::open(db_path(&dir)).await.unwrap();
    first.migrate().await.unwrap();
    let second = RusqliteStore::open(db_path(&dir)).await.unwrap();

    let raw = Connection::open(db_path(&dir)).unwrap();
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");

    let mut record = record_expiring_in(Duration::hours(1), serde_json::json!({"n": 1}));
    first.create(&mut record).await.unwrap();
    assert_eq!(
        second.load(&record.id).await.unwrap().as_ref(),
        Some(&record)
    );
    second.delete(&record.id).await.unwrap();
    assert_eq!(first.load(&record.id).await.unwrap(), None);
}
