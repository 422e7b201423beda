//! Set-up shared by the integration tests: stores on fresh temporary files.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

use session_core::{
    async_trait, time::OffsetDateTime, ExpiredDeletion, Id, Record, Result, SessionStore, Update,
};
use session_rusqlite::RusqliteStore;
use tempfile::TempDir;

/// A store on a file in a temporary directory that is removed when the store
/// is dropped.
#[derive(Debug)]
pub struct TempStore {
    pub store: RusqliteStore,
    pub dir: TempDir,
}

impl TempStore {
    pub fn path(&self) -> PathBuf {
        db_path(&self.dir)
    }
}

pub fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("session-rusqlite-")
        .tempdir()
        .expect("create a temporary directory")
}

pub fn db_path(dir: &TempDir) -> PathBuf {
    dir.path().join("sessions.db")
}

/// A migrated store on a fresh file.
pub async fn temp_store() -> TempStore {
    let dir = temp_dir();
    let store = RusqliteStore::open(db_path(&dir))
        .await
        .expect("open the database");
    store.migrate().await.expect("migrate");
    TempStore { store, dir }
}

#[async_trait]
impl SessionStore for TempStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        self.store.create(record).await
    }

    async fn save(&self, record: &Record) -> Result<()> {
        self.store.save(record).await
    }

    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        self.store.load(session_id).await
    }

    async fn delete(&self, session_id: &Id) -> Result<()> {
        self.store.delete(session_id).await
    }

    async fn update(&self, record: &mut Record) -> Result<Update> {
        self.store.update(record).await
    }

    async fn touch(&self, session_id: &Id, expiry_date: OffsetDateTime) -> Result<bool> {
        self.store.touch(session_id, expiry_date).await
    }

    async fn touch_many(&self, touches: &[(Id, OffsetDateTime)]) -> Result<Vec<bool>> {
        self.store.touch_many(touches).await
    }

    async fn sessions_of_user(&self, user_id: &str) -> Result<Vec<Record>> {
        self.store.sessions_of_user(user_id).await
    }

    async fn delete_sessions_of_user(&self, user_id: &str, keep: Option<&Id>) -> Result<u64> {
        self.store.delete_sessions_of_user(user_id, keep).await
    }
}

#[async_trait]
impl ExpiredDeletion for TempStore {
    async fn delete_expired(&self) -> Result<u64> {
        self.store.delete_expired().await
    }
}
