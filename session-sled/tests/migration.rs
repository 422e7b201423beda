//! A database written by the previous release (a session tree and an expiry
//! tree, three-element records, no user tree) keeps working: opening it adds
//! the user tree, and its sessions load at version 0 with no user and take
//! `update`, `touch`, the sweep and the user index.

#![allow(clippy::unwrap_used)] // tests may panic on what they set up

mod common;

use std::path::PathBuf;

use serde_json::json;
use session_core::{
    time::{Duration, OffsetDateTime},
    Data, ExpiredDeletion, Id, Record, SessionStore, Update,
};
use session_sled::{sled, SledStore};

/// A fresh directory under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("session-sled-migration-{}", Id::default())))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The previous release's expiry header and index key prefix (its
/// `layout::ExpiryKey::of`): whole microseconds since the epoch, sign bit
/// flipped, big-endian.
fn old_expiry_key(instant: OffsetDateTime) -> [u8; 8] {
    let micros = session_core::codec::unix_micros(instant);
    ((micros as u64) ^ (1 << 63)).to_be_bytes()
}

/// How the previous release's MessagePack codec wrote a record: the array
/// `[id, data, expiry_date]`.
fn old_messagepack(id: Id, data: &Data, expiry_date: OffsetDateTime) -> Vec<u8> {
    rmp_serde::to_vec(&(id, data, expiry_date)).unwrap()
}

/// How the release before the MessagePack codec wrote one: a JSON object.
fn old_json(id: Id, data: &Data, expiry_date: OffsetDateTime) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct OldRecord<'a> {
        id: Id,
        data: &'a Data,
        expiry_date: OffsetDateTime,
    }
    serde_json::to_vec(&OldRecord {
        id,
        data,
        expiry_date,
    })
    .unwrap()
}

/// Writes a session the way the previous release's `save` did: the value is
/// the expiry header and the encoded record, the expiry index entry the
/// header and the id.
fn write_old(db: &sled::Db, record: &Record, body: &[u8]) {
    let records = db.open_tree("sessions").unwrap();
    let expiry = db.open_tree("sessions.expiry").unwrap();
    let header = old_expiry_key(record.expiry_date);
    let id = record.id.to_bytes();
    let mut value = header.to_vec();
    value.extend_from_slice(body);
    records.insert(id, value).unwrap();
    let mut index_key = header.to_vec();
    index_key.extend_from_slice(&id);
    expiry.insert(index_key, &[][..]).unwrap();
}

fn old_record(ttl: Duration, data: serde_json::Value) -> Record {
    let mut record = Record::new(OffsetDateTime::now_utc() + ttl);
    record.expiry_date = record
        .expiry_date
        .replace_nanosecond(record.expiry_date.microsecond() * 1_000)
        .unwrap();
    record.data = serde_json::from_value(data).unwrap();
    record
}

fn tree_names(db: &sled::Db) -> Vec<String> {
    db.tree_names()
        .into_iter()
        .map(|name| String::from_utf8_lossy(&name).into_owned())
        .collect()
}

#[tokio::test]
async fn a_database_of_the_previous_release_keeps_working() {
    let dir = TempDir::new();
    let cart = old_record(
        Duration::hours(1),
        json!({"cart": [{"sku": "CRAB", "qty": 2}]}),
    );
    let from_json = old_record(Duration::hours(2), json!({"theme": "dark"}));
    let expired = old_record(-Duration::minutes(5), json!({"gone": true}));
    {
        let db = sled::open(&dir.0).unwrap();
        for record in [&cart, &expired] {
            write_old(
                &db,
                record,
                &old_messagepack(record.id, &record.data, record.expiry_date),
            );
        }
        write_old(
            &db,
            &from_json,
            &old_json(from_json.id, &from_json.data, from_json.expiry_date),
        );
        assert!(!tree_names(&db).contains(&"sessions.users".to_owned()));
        db.flush().unwrap();
    }

    let db = sled::open(&dir.0).unwrap();
    let store = SledStore::new(&db).unwrap();
    assert!(
        tree_names(&db).contains(&"sessions.users".to_owned()),
        "opening must create the user tree"
    );
    let users = db.open_tree("sessions.users").unwrap();
    assert!(users.is_empty(), "records without a user need no entry");

    // They load as they were, at version 0 and of no user.
    assert_eq!(store.load(&cart.id).await.unwrap(), Some(cart.clone()));
    assert_eq!(
        store.load(&from_json.id).await.unwrap(),
        Some(from_json.clone())
    );
    assert_eq!(store.load(&expired.id).await.unwrap(), None);
    assert_eq!(cart.version, 0);
    assert_eq!(cart.user_id, None);

    // touch moves an old record's expiry and its old index entry.
    let later = OffsetDateTime::now_utc() + Duration::days(1);
    assert!(store.touch(&cart.id, later).await.unwrap());
    let mut loaded = store.load(&cart.id).await.unwrap().unwrap();
    assert_eq!((loaded.expiry_date, loaded.version), (later, 0));

    // update over version 0 works and can give the session a user.
    loaded.user_id = Some("ferris".into());
    loaded.data.insert("step".into(), json!(2));
    assert_eq!(store.update(&mut loaded).await.unwrap(), Update::Written);
    assert_eq!(loaded.version, 1);
    assert_eq!(store.load(&cart.id).await.unwrap(), Some(loaded.clone()));
    assert_eq!(
        store.sessions_of_user("ferris").await.unwrap(),
        vec![loaded.clone()]
    );

    // A stale version over an old record conflicts with it as stored.
    let mut stale = from_json.clone();
    stale.version = 3;
    assert_eq!(
        store.update(&mut stale).await.unwrap(),
        Update::Conflict(from_json.clone())
    );

    // The sweep finds the old expired record through its old index entry.
    assert_eq!(store.delete_expired().await.unwrap(), 1);
    let expiry = db.open_tree("sessions.expiry").unwrap();
    assert_eq!(expiry.len(), 2, "one entry per remaining record");
    assert_eq!(store.len(), 2);

    assert_eq!(
        store.delete_sessions_of_user("ferris", None).await.unwrap(),
        1
    );
    assert!(users.is_empty());
    assert_eq!(expiry.len(), 1);
    assert_eq!(
        store.load(&from_json.id).await.unwrap(),
        Some(from_json.clone())
    );
    store.flush().unwrap();
    drop((store, users, expiry, db));

    // Opening again changes nothing: the migration is idempotent.
    let store = common::reopen(&dir.0).await;
    assert_eq!(store.load(&from_json.id).await.unwrap(), Some(from_json));
    assert_eq!(store.len(), 1);
}
