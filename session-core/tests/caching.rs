//! `CachingSessionStore` when one of its two stores fails.

use serde_json::json;
use session_core::{
    time::{Duration, OffsetDateTime},
    CachingSessionStore, ExpiredDeletion, Record, SessionStore,
};
use session_memory::MemoryStore;
use session_testkit::{FaultyStore, Operation};

fn record(value: i64) -> Record {
    let mut record = Record::new(OffsetDateTime::now_utc() + Duration::hours(1));
    record.data.insert("v".into(), json!(value));
    record
}

type Layered = CachingSessionStore<FaultyStore<MemoryStore>, FaultyStore<MemoryStore>>;

fn layered() -> Layered {
    CachingSessionStore::new(
        FaultyStore::new(MemoryStore::default()),
        FaultyStore::new(MemoryStore::default()),
    )
}

#[tokio::test]
async fn failed_store_save_leaves_cache_untouched() {
    let store = layered();
    let mut original = record(1);
    store.create(&mut original).await.unwrap();

    store.store().faults().fail(Operation::Save);
    let mut changed = original.clone();
    changed.data.insert("v".into(), json!(2));
    let error = store.save(&changed).await.unwrap_err();
    assert!(error.is_backend());

    // Neither layer holds the rejected version.
    assert_eq!(
        store.cache().inner().load(&original.id).await.unwrap(),
        Some(original.clone())
    );
    assert_eq!(store.load(&original.id).await.unwrap(), Some(original));
    assert_eq!(
        store.cache().faults().calls(Operation::Save),
        1,
        "only the create filled the cache"
    );
}

#[tokio::test]
async fn failed_store_create_leaves_cache_empty() {
    let store = layered();
    store.store().faults().fail(Operation::Create);
    let mut fresh = record(1);
    assert!(store.create(&mut fresh).await.unwrap_err().is_backend());
    assert!(store.cache().inner().is_empty());
    store.store().faults().heal_all();
    assert_eq!(store.load(&fresh.id).await.unwrap(), None);
}

#[tokio::test]
async fn load_fills_cache_on_miss_and_hits_afterwards() {
    let store = layered();
    let saved = record(7);
    store.store().inner().save(&saved).await.unwrap();

    assert_eq!(store.load(&saved.id).await.unwrap(), Some(saved.clone()));
    assert_eq!(store.store().faults().calls(Operation::Load), 1);
    assert_eq!(store.load(&saved.id).await.unwrap(), Some(saved));
    assert_eq!(
        store.store().faults().calls(Operation::Load),
        1,
        "second load must hit the cache"
    );
}

#[tokio::test]
async fn failing_cache_is_bypassed_on_load() {
    let store = layered();
    let saved = record(3);
    store.store().inner().save(&saved).await.unwrap();
    store.cache().faults().fail(Operation::Load);
    store.cache().faults().fail(Operation::Save);
    assert_eq!(store.load(&saved.id).await.unwrap(), Some(saved));
}

#[tokio::test]
async fn cache_write_failure_evicts_the_stale_copy() {
    let store = layered();
    let mut original = record(1);
    store.create(&mut original).await.unwrap();

    store.cache().faults().fail(Operation::Save);
    let mut changed = original.clone();
    changed.data.insert("v".into(), json!(2));
    store.save(&changed).await.unwrap();
    store.cache().faults().heal_all();

    // The cache did not keep version 1, so the store's version 2 is served.
    assert_eq!(store.load(&original.id).await.unwrap(), Some(changed));
}

#[tokio::test]
async fn cache_write_and_evict_failure_is_reported() {
    let store = layered();
    let mut original = record(1);
    store.create(&mut original).await.unwrap();
    store.cache().faults().fail(Operation::Save);
    store.cache().faults().fail(Operation::Delete);
    let error = store.save(&original).await.unwrap_err();
    assert!(error.is_backend());
}

#[tokio::test]
async fn delete_removes_from_both_and_failed_store_delete_keeps_both() {
    let store = layered();
    let mut kept = record(1);
    store.create(&mut kept).await.unwrap();

    store.store().faults().fail(Operation::Delete);
    assert!(store.delete(&kept.id).await.unwrap_err().is_backend());
    assert_eq!(store.load(&kept.id).await.unwrap(), Some(kept.clone()));
    store.store().faults().heal_all();

    store.delete(&kept.id).await.unwrap();
    assert_eq!(store.cache().inner().load(&kept.id).await.unwrap(), None);
    assert_eq!(store.store().inner().load(&kept.id).await.unwrap(), None);
}

#[tokio::test]
async fn expired_deletion_goes_to_the_store() {
    let store = layered();
    let mut expired = record(1);
    expired.expiry_date = OffsetDateTime::now_utc() - Duration::seconds(1);
    store.store().inner().save(&expired).await.unwrap();
    assert_eq!(store.delete_expired().await.unwrap(), 1);
    assert_eq!(store.store().faults().calls(Operation::DeleteExpired), 1);
    assert_eq!(store.cache().faults().calls(Operation::DeleteExpired), 0);
}
