//! `migrate` creates the TTL index and the user index, idempotently;
//! documents carry the fields they need; user lookups go through the index.

mod common;

use std::time::Duration;

use mongodb::bson::{doc, spec::ElementType, Document};
use serde_json::json;
use session_core::{time, Record, SessionStore};
use session_mongodb::{
    mongodb, DATA_FIELD, EXPIRES_AT_FIELD, EXPIRES_AT_MICROS_FIELD, TTL_INDEX_NAME, USER_ID_FIELD,
    USER_INDEX_NAME, VERSION_FIELD,
};
use session_testkit::suite::now_micros;

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

/// The indexes `migrate` left on the store's collection, by name.
async fn indexes_by_name(
    store: &session_mongodb::MongoDBStore,
) -> std::collections::HashMap<String, mongodb::IndexModel> {
    let mut cursor = store
        .collection()
        .list_indexes()
        .await
        .expect("list indexes");
    let mut indexes = std::collections::HashMap::new();
    while cursor.advance().await.expect("next index") {
        let index: mongodb::IndexModel = cursor.deserialize_current().expect("index model");
        let name = index
            .options
            .as_ref()
            .and_then(|o| o.name.clone())
            .expect("an index has a name");
        indexes.insert(name, index);
    }
    indexes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_creates_the_partial_user_index_idempotently() {
    let store = common::fresh_store("indexes").await;
    store.migrate().await.expect("first migrate");
    store.migrate().await.expect("second migrate is a no-op");

    let indexes = indexes_by_name(&store).await;
    let user = indexes.get(USER_INDEX_NAME).expect("the user index exists");
    assert_eq!(
        user.keys,
        doc! { USER_ID_FIELD: 1, EXPIRES_AT_MICROS_FIELD: 1 }
    );
    let options = user.options.as_ref().expect("index options");
    assert_eq!(
        options.partial_filter_expression,
        Some(doc! { USER_ID_FIELD: { "$gte": "" } }),
        "only sessions with a (string) user have an entry"
    );
    assert_eq!(options.expire_after, None);
    assert_eq!(
        indexes.len(),
        3,
        "_id, TTL and user index, nothing else: {:?}",
        indexes.keys()
    );
}

/// The name of the index the winning plan of an `explain` output scans, if
/// any: the plan is a tree of stages, and the index scan is a leaf.
fn scanned_index(stage: &Document) -> Option<String> {
    if let Ok(name) = stage.get_str("indexName") {
        return Some(name.to_owned());
    }
    stage
        .get_document("inputStage")
        .ok()
        .and_then(scanned_index)
}

/// How the server runs the query `sessions_of_user` sends (the same filter,
/// copied here): which index it scans and how many documents it reads.
async fn explain_user_lookup(
    store: &session_mongodb::MongoDBStore,
    user_id: &str,
) -> (Option<String>, i64) {
    let client = mongodb::Client::with_uri_str(common::url())
        .await
        .expect("client");
    let now = i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000)
        .expect("fits");
    let explained = client
        .database(common::DATABASE)
        .run_command(doc! {
            "explain": {
                "find": store.collection().name(),
                "filter": { USER_ID_FIELD: user_id, EXPIRES_AT_MICROS_FIELD: { "$gt": now } },
            },
            "verbosity": "executionStats",
        })
        .await
        .expect("explain");
    let plan = explained
        .get_document("queryPlanner")
        .and_then(|planner| planner.get_document("winningPlan"))
        .expect("a winning plan");
    let stats = explained
        .get_document("executionStats")
        .expect("execution stats");
    let examined = match stats.get("totalDocsExamined") {
        Some(mongodb::bson::Bson::Int32(n)) => i64::from(*n),
        Some(mongodb::bson::Bson::Int64(n)) => *n,
        other => panic!("totalDocsExamined: {other:?}"),
    };
    (scanned_index(plan), examined)
}

/// A user lookup reads that user's active sessions through the user index,
/// not the collection; sessions without a user, other users' sessions and
/// the user's expired or deleted sessions are never read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_lookups_read_only_that_users_active_sessions() {
    let store = common::fresh_store("indexes").await;
    store.migrate().await.expect("migrate");
    let hour = time::Duration::hours(1);
    for _ in 0..200 {
        let mut anonymous = Record::new(now_micros() + hour);
        store.create(&mut anonymous).await.expect("create");
    }
    let mut alice = Vec::new();
    for device in 0..3 {
        let mut record = Record::new(now_micros() + hour);
        record.user_id = Some("alice".into());
        record.data.insert("device".into(), json!(device));
        store.create(&mut record).await.expect("create");
        alice.push(record);
    }
    let mut expired = Record::new(now_micros() - time::Duration::seconds(1));
    expired.user_id = Some("alice".into());
    store.save(&expired).await.expect("save");
    for _ in 0..2 {
        let mut record = Record::new(now_micros() + hour);
        record.user_id = Some("bob".into());
        store.create(&mut record).await.expect("create");
    }

    assert_eq!(
        explain_user_lookup(&store, "alice").await,
        (Some(USER_INDEX_NAME.to_owned()), 3),
        "the lookup must read alice's three active sessions through the user index"
    );
    assert_eq!(
        store.sessions_of_user("alice").await.expect("list").len(),
        3
    );

    store.delete(&alice[0].id).await.expect("delete");
    assert_eq!(
        store
            .delete_sessions_of_user("bob", None)
            .await
            .expect("delete bob's"),
        2
    );
    assert_eq!(
        explain_user_lookup(&store, "alice").await,
        (Some(USER_INDEX_NAME.to_owned()), 2),
        "a deleted session must be gone from the index"
    );
    assert_eq!(
        explain_user_lookup(&store, "bob").await,
        (Some(USER_INDEX_NAME.to_owned()), 0)
    );
    assert_eq!(
        session_core::ExpiredDeletion::delete_expired(&store)
            .await
            .expect("sweep"),
        1,
        "the sweep removes alice's expired session (the TTL monitor has not run yet)"
    );
    let mut listed: Vec<_> = store
        .sessions_of_user("alice")
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.id)
        .collect();
    listed.sort_by_key(|id| id.0);
    let mut expected = vec![alice[1].id, alice[2].id];
    expected.sort_by_key(|id| id.0);
    assert_eq!(listed, expected);
}

/// A document's user field, as stored: a plain string, absent without a
/// user; the version a plain `Int64`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_hold_the_version_and_the_user_only_when_there_is_one() {
    let store = common::fresh_store("indexes").await;
    let mut record = Record::new(now_micros() + time::Duration::hours(1));
    store.create(&mut record).await.expect("create");
    let raw = |id: session_core::Id| {
        let collection = store.collection().clone_with_type::<Document>();
        async move {
            collection
                .find_one(doc! { "_id": id.to_string() })
                .await
                .expect("find")
                .expect("document exists")
        }
    };
    let document = raw(record.id).await;
    assert_eq!(document.get(USER_ID_FIELD), None, "no user, no field");
    assert_eq!(document.get_i64(VERSION_FIELD).ok(), Some(0));

    record.user_id = Some("a*b%c".into());
    assert!(store
        .update(&mut record)
        .await
        .expect("update")
        .is_written());
    let document = raw(record.id).await;
    assert_eq!(document.get_str(USER_ID_FIELD).ok(), Some("a*b%c"));
    assert_eq!(document.get_i64(VERSION_FIELD).ok(), Some(1));

    record.user_id = None;
    assert!(store
        .update(&mut record)
        .await
        .expect("update")
        .is_written());
    let document = raw(record.id).await;
    assert_eq!(
        document.get(USER_ID_FIELD),
        None,
        "clearing the user removes the field"
    );
    assert_eq!(document.get_i64(VERSION_FIELD).ok(), Some(2));
}
