//! Values in Redis the store cannot read are `Error::Decode`, and they touch
//! no other session.

mod common;

use serde_json::json;
use session_core::{
    time::{Duration, OffsetDateTime},
    Id, Record, SessionStore,
};
use session_redis::{
    fred::prelude::{Expiration, KeysInterface, Pool},
    RedisStore,
};

fn record(value: serde_json::Value) -> Record {
    let mut record = Record::new(common::now_micros() + Duration::hours(1));
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

/// A session of user `owner` whose stored value is replaced by `bytes`.
async fn corrupt_session_of_owner(store: &RedisStore<Pool>, bytes: Vec<u8>) -> Record {
    let mut session = record(json!("broken"));
    session.user_id = Some("owner".into());
    store.create(&mut session).await.expect("create");
    let _: () = store
        .client()
        .set(
            store.key(&session.id),
            bytes,
            Some(Expiration::EX(3_600)),
            None,
            false,
        )
        .await
        .expect("overwrite with a corrupt value");
    session
}

/// A valid value of `owner`, to be broken in different places.
async fn owner_value(store: &RedisStore<Pool>) -> Vec<u8> {
    let mut template = record(json!("template"));
    template.user_id = Some("owner".into());
    store.create(&mut template).await.expect("create");
    let good: Vec<u8> = store
        .client()
        .get(store.key(&template.id))
        .await
        .expect("GET");
    store.delete(&template.id).await.expect("delete");
    good
}

async fn must_be_decode<T: std::fmt::Debug>(what: &str, result: session_core::Result<T>) {
    match result {
        Err(error) => assert!(
            error.is_decode(),
            "{what}: expected Error::Decode, got {error:?}"
        ),
        Ok(value) => panic!("{what}: expected Error::Decode, got {value:?}"),
    }
}

/// `save` overwrites whatever is there, and the session is whole and listed
/// again next to the owner's healthy one.
async fn save_repairs(store: &RedisStore<Pool>, what: &str, session: &Record, healthy: &Record) {
    store
        .save(session)
        .await
        .expect("save over a corrupt value");
    assert_eq!(
        store.load(&session.id).await.expect("load"),
        Some(session.clone())
    );
    let mut listed = store.sessions_of_user("owner").await.expect("list");
    listed.sort_by_key(|record| record.id.0);
    let mut wanted = vec![healthy.clone(), session.clone()];
    wanted.sort_by_key(|record| record.id.0);
    assert_eq!(listed, wanted, "{what}");
    store.delete(&session.id).await.expect("delete");
}

/// A header that cannot be read (version, expiry, user unknown): every
/// operation is `Error::Decode`, never a panic, and the owner's other
/// sessions stay as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_headers_are_decode_errors_everywhere() {
    for (topology, store) in common::every_topology("corrupt-header").await {
        let mut healthy = record(json!("healthy"));
        healthy.user_id = Some("owner".into());
        store.create(&mut healthy).await.expect("create");
        let good = owner_value(&store).await;

        let broken: Vec<(&str, Vec<u8>)> = vec![
            ("only the magic byte", vec![0xc1]),
            ("a truncated header", good[..20].to_vec()),
            ("an unknown format", patched(&good, 1, &[9])),
            ("a version past the maximum", patched(&good, 2, &[0x80])),
            ("a user flag of 7", patched(&good, 26, &[7])),
            ("no user but a user length", patched(&good, 26, &[0])),
            ("a user longer than the value", patched(&good, 27, &[0x7f])),
        ];
        for (what, bytes) in broken {
            let what = format!("{what} on {topology}");
            let session = corrupt_session_of_owner(&store, bytes).await;
            must_be_decode(&what, store.load(&session.id).await).await;
            let mut update = session.clone();
            must_be_decode(&what, store.update(&mut update).await).await;
            let later = OffsetDateTime::now_utc() + Duration::days(1);
            must_be_decode(&what, store.touch(&session.id, later).await).await;
            must_be_decode(&what, store.sessions_of_user("owner").await).await;
            must_be_decode(
                &what,
                store
                    .delete_sessions_of_user("owner", Some(&healthy.id))
                    .await,
            )
            .await;
            assert_eq!(
                store.load(&healthy.id).await.expect("load"),
                Some(healthy.clone()),
                "{what}: the owner's other session changed"
            );
            save_repairs(&store, &what, &session, &healthy).await;
        }
    }
}

/// A readable header over an unreadable payload (data that is not
/// MessagePack, a user id that is not UTF-8): reading the record is
/// `Error::Decode`; what needs only the header works on it: `update` (a
/// compare-and-swap on the version) and `touch`, and a user's deletion
/// removes it when the header names that user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_payloads_are_decode_errors_when_read() {
    for (topology, store) in common::every_topology("corrupt-payload").await {
        let mut healthy = record(json!("healthy"));
        healthy.user_id = Some("owner".into());
        store.create(&mut healthy).await.expect("create");
        let good = owner_value(&store).await;
        let later = OffsetDateTime::now_utc() + Duration::days(1);

        // The owner's, with data that is not MessagePack.
        let what = format!("garbage data on {topology}");
        let mut garbage = good[..31 + "owner".len()].to_vec();
        garbage.extend_from_slice(b"\xc1\xc1 not MessagePack");
        let session = corrupt_session_of_owner(&store, garbage.clone()).await;
        must_be_decode(&what, store.load(&session.id).await).await;
        must_be_decode(&what, store.sessions_of_user("owner").await).await;
        assert!(
            store.touch(&session.id, later).await.expect("touch"),
            "{what}"
        );
        assert_eq!(
            store
                .delete_sessions_of_user("owner", Some(&healthy.id))
                .await
                .expect("delete"),
            1,
            "{what}: the owner's unreadable session is still the owner's to end"
        );
        assert_eq!(store.load(&session.id).await.expect("load"), None);
        let session = corrupt_session_of_owner(&store, garbage).await;
        let mut update = session.clone();
        assert!(
            store
                .update(&mut update)
                .await
                .expect("update")
                .is_written(),
            "{what}"
        );
        assert_eq!(
            store.load(&session.id).await.expect("load"),
            Some(update.clone())
        );
        save_repairs(&store, &what, &update, &healthy).await;

        // A user id that is not UTF-8: nobody's (no UTF-8 id has those bytes).
        let what = format!("a user id that is not UTF-8 on {topology}");
        let session = corrupt_session_of_owner(&store, patched(&good, 31, &[0xff])).await;
        must_be_decode(&what, store.load(&session.id).await).await;
        assert_eq!(
            store.sessions_of_user("owner").await.expect("list"),
            vec![healthy.clone()],
            "{what}"
        );
        assert_eq!(
            store
                .delete_sessions_of_user("owner", Some(&healthy.id))
                .await
                .expect("delete"),
            0,
            "{what}"
        );
        assert!(
            store.touch(&session.id, later).await.expect("touch"),
            "{what}"
        );
        save_repairs(&store, &what, &session, &healthy).await;
    }
}

fn patched(bytes: &[u8], at: usize, with: &[u8]) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    bytes[at..at + with.len()].copy_from_slice(with);
    bytes
}
