//! Sessions outlive the database handle: close, reopen, still there.

#![allow(clippy::unwrap_used)] // tests may panic on what they set up

mod common;

use std::path::PathBuf;

use serde_json::json;
use session_core::{
    time::{Duration, OffsetDateTime},
    ExpiredDeletion, Id, Record, SessionStore,
};
use session_sled::SledStore;

/// A fresh directory under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("session-sled-test-{}", Id::default())))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn record(ttl: Duration) -> Record {
    let mut record = Record::new(OffsetDateTime::now_utc() + ttl);
    record
        .data
        .insert("cart".into(), json!([{"sku": "CRAB", "qty": 2}]));
    record
}

#[tokio::test]
async fn sessions_survive_close_and_reopen() {
    let dir = TempDir::new();
    let mut created = record(Duration::hours(1));
    let mut saved = record(Duration::hours(2));
    let deleted = record(Duration::hours(1));
    let expired = record(-Duration::minutes(1));
    {
        let store = SledStore::open(&dir.0).unwrap();
        store.create(&mut created).await.unwrap();
        store.save(&saved).await.unwrap();
        saved.data.insert("second".into(), json!("write"));
        store.save(&saved).await.unwrap();
        store.save(&deleted).await.unwrap();
        store.delete(&deleted.id).await.unwrap();
        store.save(&expired).await.unwrap();
        // No explicit flush: closing the database writes it out.
    }
    let store = common::reopen(&dir.0).await;
    assert_eq!(store.load(&created.id).await.unwrap(), Some(created));
    assert_eq!(store.load(&saved.id).await.unwrap(), Some(saved));
    assert_eq!(store.load(&deleted.id).await.unwrap(), None);
    assert_eq!(store.load(&expired.id).await.unwrap(), None);
    // The expiry index came back too: the sweep finds the expired record.
    assert_eq!(store.delete_expired().await.unwrap(), 1);
    assert_eq!(store.len(), 2);
}

#[tokio::test]
async fn flushed_sessions_are_on_disk_while_open() {
    let dir = TempDir::new();
    let store = SledStore::open(&dir.0).unwrap();
    let mut session = record(Duration::hours(1));
    store.create(&mut session).await.unwrap();
    let flushed = store.flush_async().await.unwrap();
    assert!(flushed > 0, "a flush after a write writes something");
    store.flush().unwrap();
    drop(store);
    let store = common::reopen(&dir.0).await;
    assert_eq!(store.load(&session.id).await.unwrap(), Some(session));
}

#[tokio::test]
async fn a_second_open_of_the_same_directory_is_a_backend_error() {
    let dir = TempDir::new();
    let _store = SledStore::open(&dir.0).unwrap();
    let second = SledStore::open(&dir.0).unwrap_err();
    assert!(second.is_backend(), "{second:?}");
}
