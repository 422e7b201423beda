//! What the store cannot decode is `Error::Decode`, and touches nothing else.

mod common;

use mongodb::bson::{doc, spec::BinarySubtype, Binary, DateTime, Document};
use serde_json::json;
use session_core::{time, Id, Record, SessionStore};
use session_mongodb::{DATA_FIELD, EXPIRES_AT_FIELD, EXPIRES_AT_MICROS_FIELD};
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
