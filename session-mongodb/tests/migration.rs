//! `migrate` brings a collection written by the previous release (commit
//! 0bc9a3e: no `version`, no `user_id`, only the TTL index) up to this
//! release's layout, and its sessions keep working: they load at version 0
//! without a user, `update` over version 0 and `touch` work, and the user
//! index covers them once they get a user. Old processes may keep writing
//! their layout during a rolling upgrade.

mod common;

use std::time::Duration;

use mongodb::{
    bson::{doc, rawdoc, spec::BinarySubtype, Binary, DateTime, RawDocumentBuf},
    options::IndexOptions,
    IndexModel,
};
use serde_json::json;
use session_core::{codec, time, ExpiredDeletion, Record, SessionStore, Update};
use session_mongodb::{mongodb, MongoDBStore, TTL_INDEX_NAME, USER_INDEX_NAME};
use session_testkit::suite::now_micros;

// ---------------------------------------------------------------------------
// The previous release's layout, copied from 0bc9a3e:session-mongodb/src/store.rs.
// ---------------------------------------------------------------------------

fn old_ttl_date(micros: i64) -> DateTime {
    let millis = micros.div_euclid(1_000) + i64::from(micros.rem_euclid(1_000) != 0);
    DateTime::from_millis(millis)
}

fn old_to_document(record: &Record) -> RawDocumentBuf {
    let micros = codec::unix_micros(record.expiry_date);
    let data = Binary {
        subtype: BinarySubtype::Generic,
        bytes: codec::encode_data(&record.data).expect("encode"),
    };
    rawdoc! {
        "_id": record.id.to_string(),
        "data": data,
        "expires_at": old_ttl_date(micros),
        "expires_at_micros": micros,
    }
}

/// The previous release's `migrate`: the TTL index only.
async fn old_migrate(store: &MongoDBStore) {
    let index = IndexModel::builder()
        .keys(doc! { "expires_at": 1 })
        .options(
            IndexOptions::builder()
                .name("expires_at_ttl".to_owned())
                .expire_after(Duration::ZERO)
                .build(),
        )
        .build();
    store
        .collection()
        .create_index(index)
        .await
        .expect("old migrate");
}

/// The previous release's `create` (`insert_one`) and `save`
/// (`replace_one` with upsert) of `record`.
async fn old_insert(store: &MongoDBStore, record: &Record) {
    store
        .collection()
        .insert_one(old_to_document(record))
        .await
        .expect("old create");
}

async fn old_save(store: &MongoDBStore, record: &Record) {
    store
        .collection()
        .replace_one(
            doc! { "_id": record.id.to_string() },
            old_to_document(record),
        )
        .upsert(true)
        .await
        .expect("old save");
}

// ---------------------------------------------------------------------------

/// A session as the previous release created it: version 0, no user.
fn old_session(value: &str, ttl: time::Duration) -> Record {
    let mut record = Record::new(now_micros() + ttl);
    record.data.insert("value".into(), json!(value));
    record
}

async fn index_names(store: &MongoDBStore) -> Vec<String> {
    let mut cursor = store
        .collection()
        .list_indexes()
        .await
        .expect("list indexes");
    let mut names = Vec::new();
    while cursor.advance().await.expect("next index") {
        let index: IndexModel = cursor.deserialize_current().expect("index model");
        names.extend(index.options.and_then(|o| o.name));
    }
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_of_the_previous_release_keep_working_after_migrate() {
    let store = common::fresh_store("migration").await;
    old_migrate(&store).await;
    let hour = time::Duration::hours(1);
    let mut first = old_session("first", hour);
    let mut second = old_session("second", hour);
    let third = old_session("third", hour);
    let expired = old_session("expired", -time::Duration::seconds(5));
    for record in [&first, &second, &third, &expired] {
        old_insert(&store, record).await;
    }

    // Several processes starting at once, each with its own client, then
    // one more run: all succeed and leave one of each index.
    let mut migrations = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let collection = store.collection().name().to_owned();
        migrations.spawn(async move {
            let store = MongoDBStore::connect(&common::url(), common::DATABASE)
                .await
                .expect("connect")
                .with_collection_name(&collection);
            store.migrate().await
        });
    }
    while let Some(migrated) = migrations.join_next().await {
        migrated.expect("migrate task").expect("concurrent migrate");
    }
    store.migrate().await.expect("migrate again");
    assert_eq!(
        index_names(&store).await,
        vec![
            "_id_".to_owned(),
            TTL_INDEX_NAME.to_owned(),
            USER_INDEX_NAME.to_owned()
        ]
    );

    // Old sessions load at version 0 without a user, exactly as written.
    assert_eq!(
        store.load(&first.id).await.expect("load"),
        Some(first.clone())
    );
    assert_eq!(
        store.load(&third.id).await.expect("load"),
        Some(third.clone())
    );
    assert_eq!(
        store.load(&expired.id).await.expect("load expired"),
        None,
        "an expired old session stays expired"
    );

    // `update` over version 0 matches a document without a version.
    first.data.insert("value".into(), json!("first, updated"));
    first.user_id = Some("alice".into());
    assert_eq!(
        store.update(&mut first).await.expect("update"),
        Update::Written
    );
    assert_eq!(first.version, 1);
    assert_eq!(
        store.load(&first.id).await.expect("load"),
        Some(first.clone())
    );

    // A stale or made-up version over an old session conflicts and returns
    // it at version 0.
    let mut ahead = third.clone();
    ahead.version = 2;
    assert_eq!(
        store.update(&mut ahead).await.expect("update"),
        Update::Conflict(third.clone())
    );

    // `touch` moves an old session's expiry and keeps it at version 0.
    let later = now_micros() + time::Duration::days(2);
    assert!(store.touch(&second.id, later).await.expect("touch"));
    second.expiry_date = later;
    assert_eq!(
        store.load(&second.id).await.expect("load"),
        Some(second.clone())
    );
    assert_eq!(
        store.update(&mut second).await.expect("update"),
        Update::Written
    );
    assert_eq!(second.version, 1);

    // The user index covers an old session once it has a user.
    assert_eq!(
        store.sessions_of_user("alice").await.expect("list"),
        vec![first.clone()]
    );

    // Rolling upgrade: a process of the previous release saves the session
    // in its layout, dropping version and user. It reads as version 0
    // without a user, leaves the user index, and updates over it work.
    let mut old_copy = first.clone();
    old_copy
        .data
        .insert("value".into(), json!("saved by an old process"));
    old_save(&store, &old_copy).await;
    old_copy.version = 0;
    old_copy.user_id = None;
    assert_eq!(
        store.load(&first.id).await.expect("load"),
        Some(old_copy.clone())
    );
    assert!(store
        .sessions_of_user("alice")
        .await
        .expect("list")
        .is_empty());
    assert!(
        store
            .update(&mut first)
            .await
            .expect("update")
            .is_conflict(),
        "the caller's version 1 is no longer stored"
    );
    old_copy.user_id = Some("alice".into());
    assert_eq!(
        store.update(&mut old_copy).await.expect("update"),
        Update::Written
    );
    assert_eq!(
        store.sessions_of_user("alice").await.expect("list"),
        vec![old_copy.clone()]
    );
    assert_eq!(
        store
            .delete_sessions_of_user("alice", None)
            .await
            .expect("delete alice's"),
        1
    );
    assert_eq!(store.load(&first.id).await.expect("load"), None);

    // The sweep removes the expired old session (the TTL monitor may have
    // been first).
    assert!(store.delete_expired().await.expect("sweep") <= 1);
    let remaining = store
        .collection()
        .count_documents(doc! {})
        .await
        .expect("count");
    assert_eq!(remaining, 2, "second and third are left");
}

/// A session the previous release still creates after the upgrade (a
/// process not yet restarted) is as good as one written before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_an_old_process_writes_after_migrate_work() {
    let store = common::fresh_store("migration").await;
    old_migrate(&store).await;
    store.migrate().await.expect("migrate");
    let mut record = old_session("late", time::Duration::hours(1));
    old_insert(&store, &record).await;
    assert_eq!(
        store.load(&record.id).await.expect("load"),
        Some(record.clone())
    );
    record.user_id = Some("late user".into());
    assert_eq!(
        store.update(&mut record).await.expect("update"),
        Update::Written
    );
    assert_eq!(
        store.sessions_of_user("late user").await.expect("list"),
        vec![record]
    );
}
