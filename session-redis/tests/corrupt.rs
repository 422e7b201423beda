//! Values in Redis the codec cannot read are `Error::Decode`, and they touch
//! no other session.

mod common;

use serde_json::json;
use session_core::{
    time::{Duration, OffsetDateTime},
    Id, Record, SessionStore,
};
use session_redis::fred::prelude::{Expiration, KeysInterface};

fn record(value: serde_json::Value) -> Record {
    let mut record = Record::new(OffsetDateTime::now_utc() + Duration::hours(1));
    record.data.insert("value".into(), value);
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_values_are_decode_errors_and_leave_others_alone() {
    let store = common::standalone_store("corrupt").await;
    let mut before = record(json!("before"));
    store.create(&mut before).await.expect("create");

    let garbage: [&[u8]; 4] = [
        b"\xff\x00not json at all",
        b"",
        br#"{"id": "not an id", "data": {}, "expiry_date": 1}"#,
        br#"[1, 2, 3]"#,
    ];
    let mut corrupt_ids = Vec::new();
    for bytes in garbage {
        let id = Id::default();
        let _: () = store
            .client()
            .set(
                store.key(&id),
                bytes,
                Some(Expiration::EX(3_600)),
                None,
                false,
            )
            .await
            .expect("write a corrupt value straight into Redis");
        corrupt_ids.push(id);
    }

    let mut after = record(json!("after"));
    store.create(&mut after).await.expect("create after");

    for id in &corrupt_ids {
        match store.load(id).await {
            Err(error) => assert!(error.is_decode(), "expected Error::Decode, got {error:?}"),
            Ok(loaded) => panic!("a corrupt value loaded as {loaded:?}"),
        }
    }
    assert_eq!(store.load(&before.id).await.expect("load"), Some(before));
    assert_eq!(
        store.load(&after.id).await.expect("load"),
        Some(after.clone())
    );

    // A corrupt session can be overwritten or deleted like any other.
    let mut fixed = record(json!("fixed"));
    fixed.id = corrupt_ids[0];
    store.save(&fixed).await.expect("save over a corrupt value");
    assert_eq!(store.load(&fixed.id).await.expect("load"), Some(fixed));
    store
        .delete(&corrupt_ids[1])
        .await
        .expect("delete a corrupt value");
    assert_eq!(store.load(&corrupt_ids[1]).await.expect("load"), None);
}
