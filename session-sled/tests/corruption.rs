//! A value the store cannot decode is `Error::Decode` for its own id only.

#![allow(clippy::unwrap_used)] // tests may panic on what they set up

use session_core::{
    time::{Duration, OffsetDateTime},
    ExpiredDeletion, Id, Record, SessionStore,
};
use session_sled::{sled, SledStore};

fn setup() -> (sled::Db, SledStore) {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let store = SledStore::new(&db).unwrap();
    (db, store)
}

#[tokio::test]
async fn corrupt_values_are_decode_errors_and_leave_others_alone() {
    let (db, store) = setup();
    let records = db.open_tree(session_sled::DEFAULT_TREE_NAME).unwrap();

    let mut good = Record::new(OffsetDateTime::now_utc() + Duration::hours(1));
    store.create(&mut good).await.unwrap();
    let expired = Record::new(OffsetDateTime::now_utc() - Duration::hours(1));
    store.save(&expired).await.unwrap();

    let short = Id::default();
    records.insert(short.to_bytes(), &b"oops"[..]).unwrap();
    // A far-future header over a body that is not a record.
    let mut garbage = vec![0xff; 8];
    garbage.extend_from_slice(b"{not json");
    let bad_body = Id::default();
    records.insert(bad_body.to_bytes(), garbage).unwrap();

    for id in [short, bad_body] {
        let error = store.load(&id).await.unwrap_err();
        assert!(error.is_decode(), "{error:?}");
        assert!(std::error::Error::source(&error).is_some(), "source kept");
    }
    assert_eq!(store.load(&good.id).await.unwrap(), Some(good.clone()));

    // The sweep removes the expired record and leaves the corrupt ones.
    assert_eq!(store.delete_expired().await.unwrap(), 1);
    assert_eq!(store.load(&good.id).await.unwrap(), Some(good.clone()));
    assert!(store.load(&bad_body).await.unwrap_err().is_decode());

    // Overwriting or deleting a corrupt record works; create will not
    // overwrite what it cannot read.
    let mut fixed = Record::new(OffsetDateTime::now_utc() + Duration::hours(1));
    fixed.id = short;
    store.create(&mut fixed).await.unwrap();
    assert_ne!(
        fixed.id, short,
        "create must not overwrite an unreadable value"
    );
    let mut replaced = fixed.clone();
    replaced.id = short;
    store.save(&replaced).await.unwrap();
    assert_eq!(store.load(&short).await.unwrap(), Some(replaced));
    store.delete(&bad_body).await.unwrap();
    assert_eq!(store.load(&bad_body).await.unwrap(), None);
}
