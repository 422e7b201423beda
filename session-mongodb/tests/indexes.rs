//! `migrate` creates the TTL index, idempotently, and documents carry the
//! fields it needs.

mod common;

use std::time::Duration;

use mongodb::bson::{doc, spec::ElementType, Document};
use serde_json::json;
use session_core::{time, Record, SessionStore};
use session_mongodb::{
    mongodb, DATA_FIELD, EXPIRES_AT_FIELD, EXPIRES_AT_MICROS_FIELD, TTL_INDEX_NAME,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_creates_the_ttl_index_idempotently() {
    let store = common::fresh_store("indexes").await;
    store.migrate().await.expect("first migrate");
    store.migrate().await.expect("second migrate is a no-op");

    let mut cursor = store
        .collection()
        .list_indexes()
        .await
        .expect("list indexes");
    let mut ttl = Vec::new();
    while cursor.advance().await.expect("next index") {
        let index: mongodb::IndexModel = cursor.deserialize_current().expect("index model");
        let name = index.options.as_ref().and_then(|o| o.name.clone());
        if name.as_deref() == Some(TTL_INDEX_NAME) {
            ttl.push(index);
        }
    }
    assert_eq!(ttl.len(), 1, "exactly one TTL index after two migrations");
    let index = &ttl[0];
    assert_eq!(index.keys, doc! { EXPIRES_AT_FIELD: 1 });
    let options = index.options.as_ref().expect("index options");
    assert_eq!(options.expire_after, Some(Duration::ZERO));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_hold_a_ttl_date_rounded_up_and_the_exact_expiry() {
    let store = common::fresh_store("indexes").await;
    store.migrate().await.expect("migrate");
    let mut record = Record::new(
        time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .expect("valid")
            + time::Duration::hours(1)
            + time::Duration::microseconds(1_500),
    );
    record.data.insert("user".into(), json!("ferris"));
    store.create(&mut record).await.expect("create");

    let document: Document = store
        .collection()
        .clone_with_type::<Document>()
        .find_one(doc! { "_id": record.id.to_string() })
        .await
        .expect("find")
        .expect("document exists");
    assert_eq!(
        document.get(DATA_FIELD).map(|v| v.element_type()),
        Some(ElementType::Binary)
    );
    let ttl = document.get_datetime(EXPIRES_AT_FIELD).expect("TTL date");
    let micros = document
        .get_i64(EXPIRES_AT_MICROS_FIELD)
        .expect("exact expiry");
    let exact = i64::try_from(record.expiry_date.unix_timestamp_nanos() / 1_000).expect("fits");
    assert_eq!(micros, exact);
    assert_eq!(ttl.timestamp_millis(), exact / 1_000 + 1, "rounded up");
}
