//! `migrate` and table names.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure.

mod common;

use session_core::{time::Duration, Record, SessionStore};
use session_rusqlite::{RusqliteStore, RusqliteStoreError};
use session_testkit::suite::record_expiring_in;

use common::{db_path, temp_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_from_tasks_and_connections() {
    let dir = temp_dir();
    // Separate stores stand in for separate processes: each has its own
    // connections, so only SQLite's locking orders their migrations.
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(RusqliteStore::open(db_path(&dir)).await.unwrap());
    }
    let mut tasks = Vec::new();
    for store in &stores {
        for _ in 0..4 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move { store.migrate().await }));
        }
    }
    for task in tasks {
        task.await.unwrap().expect("concurrent migrate succeeds");
    }
    // And every store works on the one table.
    let mut record = record_expiring_in(Duration::hours(1), serde_json::json!({"n": 1}));
    stores[0].create(&mut record).await.unwrap();
    for store in &stores {
        assert_eq!(
            store.load(&record.id).await.unwrap().as_ref(),
            Some(&record)
        );
    }
}

#[tokio::test]
async fn migrate_is_idempotent_and_keeps_data() {
    let dir = temp_dir();
    let store = RusqliteStore::open(db_path(&dir)).await.unwrap();
    store.migrate().await.unwrap();
    let mut record = record_expiring_in(Duration::hours(1), serde_json::json!({"kept": true}));
    store.create(&mut record).await.unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.load(&record.id).await.unwrap(), Some(record));
}

#[tokio::test]
async fn bad_table_names_are_refused() {
    let store = RusqliteStore::from_connection(rusqlite_memory());
    for bad in [
        "",
        "9lives",
        "a b",
        "x\"; DROP TABLE users; --",
        "sqlite_schema",
        "naïve",
    ] {
        match store.clone().with_table_name(bad) {
            Err(RusqliteStoreError::InvalidTableName { name }) => assert_eq!(name, bad),
            other => panic!("{bad:?} was not refused: {other:?}"),
        }
    }
    let renamed = store.with_table_name("_Sessions_2").unwrap();
    assert_eq!(renamed.table_name(), "_Sessions_2");
}

#[tokio::test]
async fn tables_in_one_file_are_independent() {
    let dir = temp_dir();
    let store = RusqliteStore::open(db_path(&dir)).await.unwrap();
    let a = store.clone().with_table_name("sessions_a").unwrap();
    let b = store.with_table_name("sessions_b").unwrap();
    a.migrate().await.unwrap();
    b.migrate().await.unwrap();
    let mut record = Record::new(session_testkit::suite::now_micros() + Duration::hours(1));
    a.create(&mut record).await.unwrap();
    assert!(a.load(&record.id).await.unwrap().is_some());
    assert!(b.load(&record.id).await.unwrap().is_none());
}

fn rusqlite_memory() -> session_rusqlite::rusqlite::Connection {
    session_rusqlite::rusqlite::Connection::open_in_memory().unwrap()
}
