//! A value the store cannot decode is `Error::Decode` for its own id only,
//! whichever operation meets it; none of them panics or writes over it.

#![allow(clippy::unwrap_used)] // tests may panic on what they set up

mod common;

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

/// Saves `record` (version 7, user "u") through the store, then rewrites the
/// end of its stored value, `[.., 7, "u"]`, as `tail`.
async fn stored_then_patched(f: &common::Fixture, tail: &[u8]) -> Record {
    let mut record = Record::new(OffsetDateTime::now_utc() + Duration::hours(1));
    record.version = 7;
    record.user_id = Some("u".into());
    f.store.save(&record).await.unwrap();
    let key = record.id.to_bytes();
    let mut value = f.records.get(key).unwrap().unwrap().to_vec();
    assert_eq!(
        value[value.len() - 3..],
        [0x07, 0xa1, b'u'],
        "version 7, user \"u\""
    );
    value.truncate(value.len() - 3);
    value.extend_from_slice(tail);
    f.records.insert(key, value).unwrap();
    record
}

#[tokio::test]
async fn corrupt_versions_and_users_are_decode_errors_everywhere() {
    let f = common::fixture();
    let mut other = Record::new(OffsetDateTime::now_utc() + Duration::hours(1));
    other.user_id = Some("u".into());
    f.store.create(&mut other).await.unwrap();

    // A negative version (MessagePack -1), and a user that is a number.
    let negative = stored_then_patched(&f, &[0xff, 0xa1, b'u']).await;
    let numeric_user = stored_then_patched(&f, &[0x07, 0x01]).await;
    for corrupt in [negative, numeric_user] {
        let key = corrupt.id.to_bytes();
        let before = f.records.get(key).unwrap();
        let error = f.store.load(&corrupt.id).await.unwrap_err();
        assert!(error.is_decode(), "load: {error:?}");

        let mut update = corrupt.clone();
        let error = f.store.update(&mut update).await.unwrap_err();
        assert!(error.is_decode(), "update: {error:?}");
        assert_eq!(
            update.version, 7,
            "a failed update leaves the version alone"
        );

        let later = OffsetDateTime::now_utc() + Duration::days(1);
        let error = f.store.touch(&corrupt.id, later).await.unwrap_err();
        assert!(error.is_decode(), "touch: {error:?}");
        assert_eq!(f.records.get(key).unwrap(), before, "nothing was written");
    }

    // Both are still indexed under "u": the listing reports them.
    let error = f.store.sessions_of_user("u").await.unwrap_err();
    assert!(error.is_decode(), "sessions_of_user: {error:?}");
    assert_eq!(f.store.load(&other.id).await.unwrap(), Some(other.clone()));

    // Ending the user's sessions ends the unreadable ones too, counting only
    // the one known to be active, and leaves no entry behind.
    assert_eq!(f.store.delete_sessions_of_user("u", None).await.unwrap(), 1);
    assert!(f.records.is_empty());
    assert!(f.expiry.is_empty());
    assert!(f.users.is_empty());
}

#[tokio::test]
async fn entries_of_an_unreadable_record_that_is_deleted_are_harmless() {
    let f = common::fixture();
    let corrupt = stored_then_patched(&f, &[0x07, 0x01]).await;
    // Its user cannot be read, so its user entry cannot be found and stays.
    f.store.delete(&corrupt.id).await.unwrap();
    assert!(f.records.is_empty());
    assert!(
        f.expiry.is_empty(),
        "the header still finds the expiry entry"
    );
    assert_eq!(f.users.len(), 1);
    // Readers check the record behind every entry: nothing is listed, and
    // a user deletion drops the entry.
    assert!(f.store.sessions_of_user("u").await.unwrap().is_empty());
    let mut reused = Record::new(OffsetDateTime::now_utc() + Duration::hours(1));
    reused.id = corrupt.id;
    reused.user_id = Some("v".into());
    f.store.create(&mut reused).await.unwrap();
    assert!(f.store.sessions_of_user("u").await.unwrap().is_empty());
    assert_eq!(f.store.delete_sessions_of_user("u", None).await.unwrap(), 0);
    assert_eq!(f.store.load(&reused.id).await.unwrap(), Some(reused));
    common::assert_consistent(&f);
}

#[tokio::test]
async fn the_sweep_removes_an_unreadable_record_its_header_says_expired() {
    let f = common::fixture();
    let mut expired = Record::new(OffsetDateTime::now_utc() - Duration::hours(1));
    expired.data.insert("k".into(), "v".into());
    f.store.save(&expired).await.unwrap();
    let key = expired.id.to_bytes();
    let mut value = f.records.get(key).unwrap().unwrap().to_vec();
    value.truncate(8);
    value.extend_from_slice(b"garbage");
    f.records.insert(key, value).unwrap();

    assert_eq!(
        f.store.load(&expired.id).await.unwrap(),
        None,
        "expired by its header"
    );
    assert_eq!(f.store.delete_expired().await.unwrap(), 1);
    assert!(f.records.is_empty());
    assert!(f.expiry.is_empty());
}
