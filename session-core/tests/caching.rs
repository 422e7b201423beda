//! `CachingSessionStore` when one of its two stores fails, and when
//! concurrent calls interleave (forced with the testkit's hold points).

// Helpers of the tests below unwrap too: a panic there is the failure report.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use serde_json::json;
use session_core::{
    time::{Duration, OffsetDateTime},
    CachingSessionStore, ExpiredDeletion, Record, SessionStore, Update,
};
use session_memory::MemoryStore;
use session_testkit::{FaultyStore, Operation, When};

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
async fn failed_store_save_evicts_and_never_caches_the_rejected_version() {
    let store = layered();
    let mut original = record(1);
    store.create(&mut original).await.unwrap();

    store.store().faults().fail(Operation::Save);
    let mut changed = original.clone();
    changed.data.insert("v".into(), json!(2));
    let error = store.save(&changed).await.unwrap_err();
    assert!(error.is_backend());

    // A failed write may or may not have reached the store, so the cached
    // copy goes; the cache never holds the rejected version.
    assert_eq!(
        store.cache().inner().load(&original.id).await.unwrap(),
        None
    );
    assert_eq!(store.load(&original.id).await.unwrap(), Some(original));
    assert_eq!(
        store.cache().faults().calls(Operation::Save),
        2,
        "the create and the refill after the failure filled the cache"
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
async fn expired_deletion_sweeps_the_store_then_the_cache() {
    let store = layered();
    let mut expired = record(1);
    expired.expiry_date = OffsetDateTime::now_utc() - Duration::seconds(1);
    store.store().inner().save(&expired).await.unwrap();
    store.cache().inner().save(&expired).await.unwrap();
    assert_eq!(
        store.delete_expired().await.unwrap(),
        1,
        "the store's count, not the cache's copies too"
    );
    assert_eq!(store.store().faults().calls(Operation::DeleteExpired), 1);
    assert_eq!(store.cache().faults().calls(Operation::DeleteExpired), 1);
    assert!(store.cache().inner().is_empty(), "the cache was swept");

    // A cache that fails to sweep does not fail the sweep.
    store.cache().faults().fail(Operation::DeleteExpired);
    assert_eq!(store.delete_expired().await.unwrap(), 0);
}

type Shared = Arc<Layered>;

fn shared() -> Shared {
    Arc::new(layered())
}

/// Starts `store.load(id)` in a task that stops right after the backing
/// store answered, before the cache is filled; returns once it is there.
async fn load_held_after_store_read(
    store: &Shared,
    id: session_core::Id,
) -> (
    session_testkit::Hold,
    tokio::task::JoinHandle<Option<Record>>,
) {
    let mut hold = store.store().faults().hold(Operation::Load, When::After);
    let task = tokio::spawn({
        let store = Arc::clone(store);
        async move { store.load(&id).await.unwrap() }
    });
    hold.reached().await;
    (hold, task)
}

#[tokio::test]
async fn a_load_that_read_before_a_delete_does_not_bring_it_back() {
    let store = shared();
    let kept = record(1);
    store.store().inner().save(&kept).await.unwrap();

    let (hold, loader) = load_held_after_store_read(&store, kept.id).await;
    store.delete(&kept.id).await.unwrap();
    hold.release();
    // The load read before the delete: it may answer with the record...
    assert_eq!(loader.await.unwrap(), Some(kept.clone()));
    // ... but must not have put it back in the cache.
    assert_eq!(store.cache().inner().load(&kept.id).await.unwrap(), None);
    assert_eq!(store.load(&kept.id).await.unwrap(), None);
}

#[tokio::test]
async fn a_load_that_read_before_an_update_does_not_cache_the_old_version() {
    let store = shared();
    let mut current = record(1);
    store.store().inner().save(&current).await.unwrap();
    let old = current.clone();

    let (hold, loader) = load_held_after_store_read(&store, current.id).await;
    current.data.insert("v".into(), json!(2));
    assert_eq!(store.update(&mut current).await.unwrap(), Update::Written);
    hold.release();
    assert_eq!(loader.await.unwrap(), Some(old));
    assert_eq!(
        store.load(&current.id).await.unwrap(),
        Some(current.clone()),
        "the older version read by the held load was cached"
    );
}

#[tokio::test]
async fn a_load_that_read_before_a_touch_does_not_shorten_the_session() {
    let store = shared();
    let original = record(1);
    store.store().inner().save(&original).await.unwrap();

    let (hold, loader) = load_held_after_store_read(&store, original.id).await;
    let later = original.expiry_date + Duration::days(1);
    assert!(store.touch(&original.id, later).await.unwrap());
    hold.release();
    loader.await.unwrap();
    assert_eq!(
        store.load(&original.id).await.unwrap().unwrap().expiry_date,
        later,
        "the cache kept the expiry date from before the touch"
    );
}

#[tokio::test]
async fn of_two_racing_writes_the_cache_never_keeps_the_older() {
    let store = shared();
    let mut first = record(1);
    store.create(&mut first).await.unwrap();
    let mut second = first.clone();
    second.data.insert("v".into(), json!(2));

    // The first write reaches the store, then stops before the cache ...
    let mut hold = store.store().faults().hold(Operation::Save, When::After);
    let earlier = tokio::spawn({
        let store = Arc::clone(&store);
        let first = first.clone();
        async move { store.save(&first).await.unwrap() }
    });
    hold.reached().await;
    // ... while the second writes store and cache.
    store.save(&second).await.unwrap();
    hold.release();
    earlier.await.unwrap();
    assert_eq!(
        store.store().inner().load(&first.id).await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(
        store.load(&first.id).await.unwrap(),
        Some(second),
        "the cache kept the write the store had already replaced"
    );
}

#[tokio::test]
async fn a_conflict_refreshes_the_cache_with_the_stored_record() {
    let store = shared();
    let mut mine = record(1);
    store.create(&mut mine).await.unwrap();
    // Another process updates the store behind the cache's back.
    let mut theirs = mine.clone();
    theirs.data.insert("v".into(), json!(2));
    assert!(store
        .store()
        .inner()
        .update(&mut theirs)
        .await
        .unwrap()
        .is_written());

    mine.data.insert("v".into(), json!(3));
    assert_eq!(
        store.update(&mut mine).await.unwrap(),
        Update::Conflict(theirs.clone())
    );
    assert_eq!(store.load(&mine.id).await.unwrap(), Some(theirs));
}

#[tokio::test]
async fn a_gone_update_evicts() {
    let store = shared();
    let mut mine = record(1);
    store.create(&mut mine).await.unwrap();
    store.store().inner().delete(&mine.id).await.unwrap();
    assert_eq!(store.update(&mut mine).await.unwrap(), Update::Gone);
    assert_eq!(store.cache().inner().load(&mine.id).await.unwrap(), None);
    assert_eq!(store.load(&mine.id).await.unwrap(), None);
}

#[tokio::test]
async fn deleting_a_users_sessions_evicts_them_even_from_a_racing_load() {
    let store = shared();
    let mut sessions = Vec::new();
    for i in 0..3 {
        let mut session = record(i);
        session.user_id = Some("alice".into());
        store.create(&mut session).await.unwrap();
        sessions.push(session);
    }
    // A load of a session not in the cache yet read it from the store ...
    let mut uncached = record(9);
    uncached.user_id = Some("alice".into());
    store.store().inner().save(&uncached).await.unwrap();
    let (hold, loader) = load_held_after_store_read(&store, uncached.id).await;

    // ... when every session but the first is ended.
    let ended = store
        .delete_sessions_of_user("alice", Some(&sessions[0].id))
        .await
        .unwrap();
    assert_eq!(ended, 3);
    hold.release();
    loader.await.unwrap();

    assert_eq!(
        store.load(&sessions[0].id).await.unwrap(),
        Some(sessions[0].clone())
    );
    for ended in sessions[1..].iter().chain([&uncached]) {
        assert_eq!(
            store.load(&ended.id).await.unwrap(),
            None,
            "an ended session is still served"
        );
    }
}
