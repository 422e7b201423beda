//! A store on a temporary database, with its three trees opened directly so
//! tests can see what the store wrote.

// Each test file uses a part of this module.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeSet;

use session_core::{
    time::{Duration, OffsetDateTime},
    Record,
};
use session_sled::{sled, SledStore};

pub(crate) struct Fixture {
    pub(crate) store: SledStore,
    pub(crate) records: sled::Tree,
    pub(crate) expiry: sled::Tree,
    pub(crate) users: sled::Tree,
}

pub(crate) fn fixture() -> Fixture {
    let db = sled::Config::new().temporary(true).open().unwrap();
    Fixture {
        store: SledStore::new(&db).unwrap(),
        records: db.open_tree("sessions").unwrap(),
        expiry: db.open_tree("sessions.expiry").unwrap(),
        users: db.open_tree("sessions.users").unwrap(),
    }
}

pub(crate) fn record(ttl: Duration) -> Record {
    Record::new(OffsetDateTime::now_utc() + ttl)
}

pub(crate) fn of_user(user: &str, ttl: Duration) -> Record {
    let mut record = record(ttl);
    record.user_id = Some(user.to_owned());
    record
}

/// The user-index key the layout documents: the user's length as a
/// big-endian u32, its bytes, then the id's 16 bytes.
pub(crate) fn user_key(user: &str, id: &[u8]) -> Vec<u8> {
    let mut key = u32::try_from(user.len()).unwrap().to_be_bytes().to_vec();
    key.extend_from_slice(user.as_bytes());
    key.extend_from_slice(id);
    key
}

/// The record a stored value holds, read the way the layout documents.
pub(crate) fn stored_record(value: &[u8]) -> Record {
    session_core::codec::decode_record(&value[8..]).unwrap()
}

pub(crate) fn keys(tree: &sled::Tree) -> BTreeSet<Vec<u8>> {
    tree.iter()
        .keys()
        .map(|key| key.unwrap().to_vec())
        .collect()
}

/// Every record has exactly one expiry entry, carrying its expiry header, and
/// one user entry when it has a user; every entry of either index belongs to
/// a record.
pub(crate) fn assert_consistent(f: &Fixture) {
    let mut expiry = BTreeSet::new();
    let mut users = BTreeSet::new();
    for entry in f.records.iter() {
        let (id, value) = entry.unwrap();
        let mut index_key = value[..8].to_vec();
        index_key.extend_from_slice(&id);
        expiry.insert(index_key);
        if let Some(user) = stored_record(&value).user_id {
            users.insert(user_key(&user, &id));
        }
    }
    assert_eq!(
        keys(&f.expiry),
        expiry,
        "the expiry index disagrees with the records"
    );
    assert_eq!(
        keys(&f.users),
        users,
        "the user index disagrees with the records"
    );
}

/// Opens the database at `path` again after its last handle was dropped.
/// sled's flusher thread lets go of the file lock a moment after that, so
/// an open right away can fail with "could not acquire lock": wait for the
/// lock, at most 10 s.
pub async fn reopen(path: &std::path::Path) -> session_sled::SledStore {
    let started = std::time::Instant::now();
    loop {
        match session_sled::SledStore::open(path) {
            Ok(store) => return store,
            Err(error)
                if error.to_string().contains("could not acquire lock")
                    && started.elapsed() < std::time::Duration::from_secs(10) =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(error) => panic!("reopen {}: {error}", path.display()),
        }
    }
}
