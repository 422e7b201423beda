//! `migrate` and table names.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure.

mod common;

use std::path::Path;

use rusqlite::{params, Connection};
use session_core::{codec, time::Duration, ExpiredDeletion, Record, SessionStore, Update};
use session_rusqlite::{InvalidName, RusqliteStore, RusqliteStoreError};
use session_testkit::suite::{now_micros, record_expiring_in};

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
            Err(RusqliteStoreError::InvalidTableName(_)) => {}
            Err(RusqliteStoreError::ReservedTableName { name }) => assert_eq!(name, bad),
            other => panic!("{bad:?} was not refused: {other:?}"),
        }
    }
    assert!(matches!(
        store.clone().with_table_name("a\"b"),
        Err(RusqliteStoreError::InvalidTableName(
            InvalidName::Character { .. }
        ))
    ));
    assert!(matches!(
        store.clone().with_table_name("sqlite_schema"),
        Err(RusqliteStoreError::ReservedTableName { .. })
    ));
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

/// The layout of the previous release (commit 0bc9a3e), as its `migrate`
/// created it: no `version`, no `user_id`, no user index.
fn create_previous_layout(raw: &Connection, table: &str) {
    raw.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS \"{table}\" (\
             id TEXT PRIMARY KEY NOT NULL, \
             data BLOB NOT NULL, \
             expiry_date INTEGER NOT NULL\
         ); \
         CREATE INDEX IF NOT EXISTS \"{table}_expiry_date_idx\" ON \"{table}\" (expiry_date);"
    ))
    .unwrap();
}

/// A session written the way the previous release's `create` wrote it.
fn insert_the_old_way(raw: &Connection, table: &str, record: &Record) {
    let inserted = raw
        .execute(
            &format!(
                "INSERT INTO \"{table}\" (id, data, expiry_date) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (id) DO NOTHING"
            ),
            params![
                record.id.to_string(),
                codec::encode_data(&record.data).unwrap(),
                codec::unix_micros(record.expiry_date),
            ],
        )
        .unwrap();
    assert_eq!(inserted, 1);
}

fn raw_connection(path: &Path) -> Connection {
    let raw = Connection::open(path).unwrap();
    raw.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    raw
}

fn columns(raw: &Connection, table: &str) -> Vec<String> {
    raw.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
        .unwrap()
        .query_map([table], |row| row.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

fn indexes(raw: &Connection, table: &str) -> Vec<String> {
    raw.prepare("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL ORDER BY name")
        .unwrap()
        .query_map([table], |row| row.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

async fn previous_release_table_is_migrated_and_used(table: &str) {
    let dir = temp_dir();
    let raw = raw_connection(&db_path(&dir));
    create_previous_layout(&raw, table);
    let mut old = record_expiring_in(Duration::hours(1), serde_json::json!({"cart": [1, 2]}));
    let touched = record_expiring_in(Duration::hours(1), serde_json::json!({"n": 2}));
    let expired = record_expiring_in(-Duration::minutes(1), serde_json::json!({"n": 3}));
    for record in [&old, &touched, &expired] {
        insert_the_old_way(&raw, table, record);
    }

    let store = RusqliteStore::open(db_path(&dir))
        .await
        .unwrap()
        .with_table_name(table)
        .unwrap();
    store.migrate().await.unwrap();
    assert_eq!(
        columns(&raw, table),
        ["id", "data", "expiry_date", "version", "user_id"]
    );
    assert_eq!(
        indexes(&raw, table),
        [
            format!("{table}_expiry_date_idx"),
            format!("{table}_user_id_idx")
        ]
    );

    // Old sessions load at version 0 with no user.
    assert_eq!((old.version, old.user_id.as_deref()), (0, None));
    assert_eq!(store.load(&old.id).await.unwrap().as_ref(), Some(&old));
    assert_eq!(store.load(&expired.id).await.unwrap(), None);

    // `update` over version 0 works, and may give the session a user.
    old.data.insert("cart".into(), serde_json::json!([1, 2, 3]));
    old.user_id = Some("alice".into());
    assert_eq!(store.update(&mut old).await.unwrap(), Update::Written);
    assert_eq!(old.version, 1);
    assert_eq!(store.load(&old.id).await.unwrap().as_ref(), Some(&old));
    let mut stale = touched.clone();
    stale.version = 3;
    assert_eq!(
        store.update(&mut stale).await.unwrap(),
        Update::Conflict(touched.clone())
    );

    // `touch` works on an old session, and not on an expired one.
    let later = now_micros() + Duration::days(1);
    assert!(store.touch(&touched.id, later).await.unwrap());
    let mut expected = touched.clone();
    expected.expiry_date = later;
    assert_eq!(store.load(&touched.id).await.unwrap(), Some(expected));
    assert!(!store.touch(&expired.id, later).await.unwrap());

    // The user index works on the migrated table.
    assert_eq!(
        store.sessions_of_user("alice").await.unwrap(),
        [old.clone()]
    );

    // A process still on the previous release keeps writing rows this
    // release reads.
    let from_old_process = record_expiring_in(Duration::hours(1), serde_json::json!({"v": 1}));
    insert_the_old_way(&raw, table, &from_old_process);
    assert_eq!(
        store.load(&from_old_process.id).await.unwrap(),
        Some(from_old_process)
    );

    // Migrating again changes nothing.
    store.migrate().await.unwrap();
    assert_eq!(columns(&raw, table).len(), 5);
    assert_eq!(store.load(&old.id).await.unwrap().as_ref(), Some(&old));
    assert_eq!(
        store.delete_sessions_of_user("alice", None).await.unwrap(),
        1
    );
    assert_eq!(store.load(&old.id).await.unwrap(), None);
    assert_eq!(store.delete_expired().await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_of_the_previous_release_is_migrated_and_used() {
    previous_release_table_is_migrated_and_used("sessions").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_table_of_the_previous_release_is_migrated_and_used() {
    previous_release_table_is_migrated_and_used("web_sessions").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_of_a_previous_release_table() {
    let dir = temp_dir();
    let raw = raw_connection(&db_path(&dir));
    create_previous_layout(&raw, "sessions");
    let mut old = record_expiring_in(Duration::hours(1), serde_json::json!({"n": 1}));
    insert_the_old_way(&raw, "sessions", &old);

    // Separate stores stand in for separate processes.
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
    assert_eq!(
        columns(&raw, "sessions"),
        ["id", "data", "expiry_date", "version", "user_id"]
    );
    for store in &stores {
        assert_eq!(store.load(&old.id).await.unwrap().as_ref(), Some(&old));
    }
    old.user_id = Some("bob".into());
    assert_eq!(stores[1].update(&mut old).await.unwrap(), Update::Written);
    assert_eq!(stores[2].sessions_of_user("bob").await.unwrap(), [old]);
}

#[tokio::test]
async fn a_half_migrated_table_gets_what_it_lacks() {
    let dir = temp_dir();
    let raw = raw_connection(&db_path(&dir));
    create_previous_layout(&raw, "sessions");
    // Someone added `version` by hand (in another case), but not the rest.
    raw.execute_batch("ALTER TABLE sessions ADD COLUMN VERSION INTEGER NOT NULL DEFAULT 0")
        .unwrap();
    let old = record_expiring_in(Duration::hours(1), serde_json::json!({}));
    insert_the_old_way(&raw, "sessions", &old);

    let store = RusqliteStore::open(db_path(&dir)).await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(
        columns(&raw, "sessions"),
        ["id", "data", "expiry_date", "VERSION", "user_id"]
    );
    assert_eq!(store.load(&old.id).await.unwrap(), Some(old));
}
