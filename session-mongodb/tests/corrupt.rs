//! What the store cannot decode is `Error::Decode`, and touches nothing else.

mod common;

use mongodb::bson::{doc, spec::BinarySubtype, Binary, Bson, DateTime, Document};
use serde_json::json;
use session_core::{time, Id, Record, SessionStore};
use session_mongodb::{
    DATA_FIELD, EXPIRES_AT_FIELD, EXPIRES_AT_MICROS_FIELD, USER_ID_FIELD, VERSION_FIELD,
};
use session_testkit::suite::now_micros;

fn future_micros() -> i64 {
    let expiry = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    i64::try_from(expiry.unix_timestamp_nanos() / 1_000).expect("fits")
}

async fn assert_decode_error(document: Document, what: &str) {
    let store = common::fresh_store("corrupt").await;
    let mut neighbour = Record::new(now_micros() + time::Duration::hours(1));
    neighbour.data.insert("ok".into(), json!(true));
    store
        .create(&mut neighbour)
        .await
        .expect("create neighbour");

    let id: Id = document
        .get_str("_id")
        .expect("test document has an _id")
        .parse()
        .expect("valid id");
    store
        .collection()
        .clone_with_type::<Document>()
        .insert_one(document)
        .await
        .expect("insert corrupt document");

    match store.load(&id).await {
        Err(error) => assert!(error.is_decode(), "{what}: expected Decode, got {error:?}"),
        Ok(record) => panic!("{what}: expected Decode, got {record:?}"),
    }
    let loaded = store.load(&neighbour.id).await.expect("neighbour loads");
    assert_eq!(loaded, Some(neighbour), "{what}: neighbour untouched");

    // Saving over a corrupt document repairs it; deleting it works too.
    let mut repaired = Record::new(now_micros() + time::Duration::hours(1));
    repaired.id = id;
    store.save(&repaired).await.expect("save over corrupt");
    let loaded = store.load(&id).await.expect("repaired loads");
    assert_eq!(
        loaded.map(|r| r.data),
        Some(repaired.data),
        "{what}: repaired"
    );
    store.delete(&id).await.expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_that_is_not_json_is_a_decode_error() {
    let document = doc! {
        "_id": Id::default().to_string(),
        DATA_FIELD: Binary { subtype: BinarySubtype::Generic, bytes: b"\xff\x00 not json".to_vec() },
        EXPIRES_AT_FIELD: DateTime::now(),
        EXPIRES_AT_MICROS_FIELD: future_micros(),
    };
    assert_decode_error(document, "garbage bytes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_that_is_json_but_not_an_object_is_a_decode_error() {
    let document = doc! {
        "_id": Id::default().to_string(),
        DATA_FIELD: Binary { subtype: BinarySubtype::Generic, bytes: b"[1, 2, 3]".to_vec() },
        EXPIRES_AT_FIELD: DateTime::now(),
        EXPIRES_AT_MICROS_FIELD: future_micros(),
    };
    assert_decode_error(document, "JSON array").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_of_the_wrong_bson_type_is_a_decode_error() {
    let document = doc! {
        "_id": Id::default().to_string(),
        DATA_FIELD: { "user": "ferris" },
        EXPIRES_AT_FIELD: DateTime::now(),
        EXPIRES_AT_MICROS_FIELD: future_micros(),
    };
    assert_decode_error(document, "embedded document instead of binary").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_data_field_is_a_decode_error() {
    let document = doc! {
        "_id": Id::default().to_string(),
        EXPIRES_AT_FIELD: DateTime::now(),
        EXPIRES_AT_MICROS_FIELD: future_micros(),
    };
    assert_decode_error(document, "no data field").await;
}

fn ok_data() -> Binary {
    Binary {
        subtype: BinarySubtype::Generic,
        bytes: session_core::codec::encode_data(&Default::default()).expect("encode"),
    }
}

/// A well-formed session document with `field` set to `value`.
fn document_with(field: &str, value: Bson) -> Document {
    let mut document = doc! {
        "_id": Id::default().to_string(),
        DATA_FIELD: ok_data(),
        EXPIRES_AT_FIELD: DateTime::now(),
        EXPIRES_AT_MICROS_FIELD: future_micros(),
    };
    document.insert(field, value);
    document
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_negative_version_is_a_decode_error() {
    assert_decode_error(
        document_with(VERSION_FIELD, Bson::Int64(-1)),
        "negative version",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_of_the_wrong_bson_type_is_a_decode_error() {
    for (value, what) in [
        (Bson::String("1".into()), "string version"),
        (Bson::Double(1.0), "double version"),
        (Bson::Int32(1), "int32 version"),
        (Bson::Document(doc! { "v": 1_i64 }), "document version"),
    ] {
        assert_decode_error(document_with(VERSION_FIELD, value), what).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_of_the_wrong_bson_type_is_a_decode_error() {
    for (value, what) in [
        (Bson::Int64(7), "integer user"),
        (
            Bson::Array(vec![Bson::String("alice".into())]),
            "array user",
        ),
        (Bson::Boolean(true), "boolean user"),
    ] {
        assert_decode_error(document_with(USER_ID_FIELD, value), what).await;
    }
}

/// An `update` over a document whose version cannot be read is refused
/// with `Error::Decode` and writes nothing; it never takes the corrupt
/// version for the caller's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_over_a_corrupt_version_is_a_decode_error_and_writes_nothing() {
    let store = common::fresh_store("corrupt").await;
    for (value, what) in [
        (Bson::Int64(-1), "negative version"),
        (Bson::String("0".into()), "string version"),
    ] {
        let document = document_with(VERSION_FIELD, value);
        let id: Id = document
            .get_str("_id")
            .expect("_id")
            .parse()
            .expect("valid id");
        let raw = store.collection().clone_with_type::<Document>();
        raw.insert_one(document.clone()).await.expect("insert");

        let mut record = Record::new(now_micros() + time::Duration::hours(1));
        record.id = id;
        record.data.insert("k".into(), json!("overwritten?"));
        match store.update(&mut record).await {
            Err(error) => assert!(error.is_decode(), "{what}: {error:?}"),
            Ok(update) => panic!("{what}: expected Decode, got {update:?}"),
        }
        assert_eq!(record.version, 0, "{what}: the caller's version is kept");
        let stored = raw
            .find_one(doc! { "_id": id.to_string() })
            .await
            .expect("find")
            .expect("still there");
        assert_eq!(stored, document, "{what}: nothing was written");
    }
}

/// A user's corrupt session fails the listing of that user (it cannot be
/// returned, and leaving it out would hide it) but not other users'
/// listings, and "log out everywhere" still ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_session_of_a_user_fails_only_that_users_listing() {
    for migrated in [false, true] {
        let store = common::fresh_store("corrupt").await;
        if migrated {
            store.migrate().await.expect("migrate");
        }
        let mut fine = Record::new(now_micros() + time::Duration::hours(1));
        fine.user_id = Some("mallory".into());
        store.create(&mut fine).await.expect("create");
        let mut other = Record::new(now_micros() + time::Duration::hours(1));
        other.user_id = Some("trent".into());
        store.create(&mut other).await.expect("create");

        let mut corrupt = document_with(VERSION_FIELD, Bson::String("x".into()));
        corrupt.insert(USER_ID_FIELD, "mallory");
        store
            .collection()
            .clone_with_type::<Document>()
            .insert_one(corrupt)
            .await
            .expect("insert corrupt");

        match store.sessions_of_user("mallory").await {
            Err(error) => assert!(error.is_decode(), "migrated={migrated}: {error:?}"),
            Ok(records) => panic!("migrated={migrated}: expected Decode, got {records:?}"),
        }
        assert_eq!(
            store.sessions_of_user("trent").await.expect("other user"),
            vec![other.clone()]
        );
        assert_eq!(
            store
                .delete_sessions_of_user("mallory", Some(&fine.id))
                .await
                .expect("delete mallory's others"),
            1,
            "the corrupt session is ended and counted"
        );
        assert_eq!(
            store.sessions_of_user("mallory").await.expect("list"),
            vec![fine]
        );
    }
}

/// A document whose `_id` is not a session id, found through the user
/// index, is `Error::Decode` too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_session_with_a_foreign_id_is_a_decode_error() {
    let store = common::fresh_store("corrupt").await;
    store.migrate().await.expect("migrate");
    let mut document = document_with(USER_ID_FIELD, Bson::String("eve".into()));
    document.insert("_id", "not a session id");
    store
        .collection()
        .clone_with_type::<Document>()
        .insert_one(document)
        .await
        .expect("insert");
    match store.sessions_of_user("eve").await {
        Err(error) => assert!(error.is_decode(), "{error:?}"),
        Ok(records) => panic!("expected Decode, got {records:?}"),
    }
}
