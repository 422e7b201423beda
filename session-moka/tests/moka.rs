//! Behaviour particular to `MokaStore`: bounds, weighing and native expiry.

#![allow(clippy::unwrap_used)] // tests may panic on what they set up

use serde_json::json;
use session_core::{
    time::{Duration, OffsetDateTime},
    ExpiredDeletion, Record, SessionStore, Update,
};
use session_moka::MokaStore;

fn record(ttl: Duration, payload: &str) -> Record {
    let mut record = Record::new(OffsetDateTime::now_utc() + ttl);
    record.data.insert("payload".into(), json!(payload));
    record
}

#[tokio::test]
async fn count_bound_evicts_down_to_capacity() {
    let store = MokaStore::new(Some(16));
    for _ in 0..500 {
        store.save(&record(Duration::hours(1), "x")).await.unwrap();
    }
    store.run_pending_tasks();
    let count = store.entry_count();
    assert!(
        count <= 16,
        "{count} sessions held by a store bounded to 16"
    );
    assert!(count > 0, "a bounded store still keeps sessions");
}

#[tokio::test]
async fn byte_bound_weighs_encoded_records() {
    let big = "b".repeat(10_000);
    let store = MokaStore::with_max_bytes(100_000);
    for _ in 0..50 {
        store.save(&record(Duration::hours(1), &big)).await.unwrap();
    }
    store.run_pending_tasks();
    let bytes = store.weighted_size();
    let count = store.entry_count();
    assert!(
        bytes <= 100_000,
        "{bytes} bytes held by a store bounded to 100000"
    );
    assert!(count <= 10, "{count} records of 10 kB fit in 100 kB");
    assert!(bytes >= count * 10_000, "weight must be the encoded size");
}

#[tokio::test]
async fn a_record_heavier_than_the_bound_is_not_kept() {
    let store = MokaStore::with_max_bytes(1_000);
    let huge = record(Duration::hours(1), &"h".repeat(5_000));
    store.save(&huge).await.unwrap();
    store.run_pending_tasks();
    assert_eq!(store.load(&huge.id).await.unwrap(), None);
    assert_eq!(store.weighted_size(), 0);
}

#[tokio::test]
async fn expired_sessions_leave_the_cache_by_themselves() {
    let store = MokaStore::new(None).with_expiry_slack(Duration::ZERO);
    for _ in 0..20 {
        store
            .save(&record(Duration::milliseconds(50), "short"))
            .await
            .unwrap();
        store
            .save(&record(-Duration::hours(1), "already gone"))
            .await
            .unwrap();
    }
    let keeper = record(Duration::hours(1), "long");
    store.save(&keeper).await.unwrap();
    // moka's timer wheel turns about once a second: poll, without asserting
    // how long it takes.
    let mut left = u64::MAX;
    for _ in 0..100 {
        assert_eq!(store.delete_expired().await.unwrap(), 0, "expiry is native");
        left = store.entry_count();
        if left == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(left, 1, "only the active session is left");
    assert_eq!(store.load(&keeper.id).await.unwrap(), Some(keeper));
}

#[tokio::test]
async fn saving_an_expired_record_replaces_the_active_one() {
    let store = MokaStore::new(None);
    let mut session = record(Duration::hours(1), "active");
    store.save(&session).await.unwrap();
    session.expiry_date = OffsetDateTime::now_utc() - Duration::seconds(1);
    store.save(&session).await.unwrap();
    assert_eq!(store.load(&session.id).await.unwrap(), None);
    store.run_pending_tasks();
    assert_eq!(store.entry_count(), 0, "an expired save holds no memory");
}

#[tokio::test]
async fn create_takes_over_an_expired_id_but_not_an_active_one() {
    let store = MokaStore::new(None);
    let active = record(Duration::hours(1), "active");
    store.save(&active).await.unwrap();
    let mut clash = record(Duration::hours(1), "clash");
    clash.id = active.id;
    store.create(&mut clash).await.unwrap();
    assert_ne!(clash.id, active.id, "create must not overwrite");
    assert_eq!(store.load(&active.id).await.unwrap(), Some(active));
    assert_eq!(store.load(&clash.id).await.unwrap(), Some(clash));

    // Expired a moment ago but maybe still held by moka: the id is free.
    let expired = record(-Duration::seconds(1), "expired");
    store.save(&expired).await.unwrap();
    let mut reuse = record(Duration::hours(1), "reuse");
    reuse.id = expired.id;
    store.create(&mut reuse).await.unwrap();
    assert_eq!(reuse.id, expired.id, "an expired id is free to take");
    assert_eq!(store.load(&reuse.id).await.unwrap(), Some(reuse));
}

#[tokio::test]
async fn clones_share_sessions() {
    let store = MokaStore::default();
    let clone = store.clone();
    let mut session = record(Duration::hours(1), "shared");
    store.create(&mut session).await.unwrap();
    assert_eq!(
        clone.load(&session.id).await.unwrap(),
        Some(session.clone())
    );
    clone.delete(&session.id).await.unwrap();
    assert_eq!(store.load(&session.id).await.unwrap(), None);
}

#[tokio::test]
async fn saves_that_keep_or_move_the_expiry_date_are_all_seen() {
    // No slack: the later date below must take the insert path.
    let store = MokaStore::new(Some(1_000)).with_expiry_slack(Duration::ZERO);
    let mut session = record(Duration::seconds(2), "first");
    store.save(&session).await.unwrap();

    // Same date, new data: replaced in place.
    session.data.insert("payload".into(), json!("second"));
    store.save(&session).await.unwrap();
    assert_eq!(
        store.load(&session.id).await.unwrap(),
        Some(session.clone())
    );

    // Earlier date: replaced in place, and the new date rules loads.
    let mut shorter = session.clone();
    shorter.expiry_date = OffsetDateTime::now_utc() + Duration::seconds(1);
    store.save(&shorter).await.unwrap();
    assert_eq!(
        store.load(&session.id).await.unwrap(),
        Some(shorter.clone())
    );

    // Later date: moka must keep the session past the date it was first
    // inserted with.
    let mut longer = shorter.clone();
    longer.expiry_date = OffsetDateTime::now_utc() + Duration::hours(1);
    longer.data.insert("payload".into(), json!("third"));
    store.save(&longer).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(3_500)).await;
    store.run_pending_tasks();
    assert_eq!(store.load(&session.id).await.unwrap(), Some(longer));
}

#[tokio::test]
async fn a_save_that_shortens_the_expiry_date_expires_at_the_new_date() {
    let store = MokaStore::new(None);
    let mut session = record(Duration::hours(1), "long");
    store.save(&session).await.unwrap();
    session.expiry_date = OffsetDateTime::now_utc() + Duration::milliseconds(300);
    store.save(&session).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(store.load(&session.id).await.unwrap(), None);
}

#[tokio::test]
async fn slack_keeps_expired_sessions_unloadable() {
    let store = MokaStore::new(None).with_expiry_slack(Duration::hours(1));
    let mut session = record(Duration::milliseconds(200), "slides");
    store.save(&session).await.unwrap();
    // Moves the date within the slack: an in-place save.
    session.expiry_date = OffsetDateTime::now_utc() + Duration::milliseconds(300);
    store.save(&session).await.unwrap();
    assert_eq!(
        store.load(&session.id).await.unwrap(),
        Some(session.clone())
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(store.load(&session.id).await.unwrap(), None, "expired");
    store.run_pending_tasks();
    assert_eq!(store.entry_count(), 1, "moka holds it within the slack");
}

#[tokio::test]
async fn touch_past_the_scheduled_expiry_moves_mokas_timer() {
    // No slack: moka drops the entry at the first expiry date unless the
    // touch gave it a new one.
    let store = MokaStore::new(None).with_expiry_slack(Duration::ZERO);
    let mut session = record(Duration::milliseconds(500), "touched");
    store.create(&mut session).await.unwrap();
    let later = OffsetDateTime::now_utc() + Duration::hours(1);
    assert!(store.touch(&session.id, later).await.unwrap());
    session.expiry_date = later;
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    store.run_pending_tasks();
    assert_eq!(store.entry_count(), 1, "moka kept the touched session");
    assert_eq!(store.load(&session.id).await.unwrap(), Some(session));
}

#[tokio::test]
async fn update_past_the_scheduled_expiry_moves_mokas_timer() {
    let store = MokaStore::new(None).with_expiry_slack(Duration::ZERO);
    let mut session = record(Duration::milliseconds(500), "updated");
    store.create(&mut session).await.unwrap();
    session.expiry_date = OffsetDateTime::now_utc() + Duration::hours(1);
    session.data.insert("payload".into(), json!("later"));
    assert_eq!(store.update(&mut session).await.unwrap(), Update::Written);
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    store.run_pending_tasks();
    assert_eq!(store.entry_count(), 1, "moka kept the updated session");
    assert_eq!(store.load(&session.id).await.unwrap(), Some(session));
}

#[tokio::test]
async fn touch_and_update_within_the_slack_expire_at_the_new_date() {
    let store = MokaStore::new(None).with_expiry_slack(Duration::hours(1));
    let mut session = record(Duration::hours(1), "in place");
    store.create(&mut session).await.unwrap();
    // Shortened by an update: the new date rules loads at once, though moka
    // keeps the entry.
    session.expiry_date = OffsetDateTime::now_utc() + Duration::milliseconds(200);
    assert_eq!(store.update(&mut session).await.unwrap(), Update::Written);
    // Moved forward by a touch, still within what moka scheduled.
    let later = OffsetDateTime::now_utc() + Duration::milliseconds(400);
    assert!(store.touch(&session.id, later).await.unwrap());
    session.expiry_date = later;
    assert_eq!(
        store.load(&session.id).await.unwrap(),
        Some(session.clone())
    );
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(store.load(&session.id).await.unwrap(), None, "expired");
    assert!(!store.touch(&session.id, later).await.unwrap());
    assert_eq!(store.update(&mut session).await.unwrap(), Update::Gone);
}

#[tokio::test]
async fn updates_on_a_byte_bound_store_are_weighed_again() {
    let store = MokaStore::with_max_bytes(1 << 20);
    let mut session = record(Duration::hours(1), "small");
    store.create(&mut session).await.unwrap();
    store.run_pending_tasks();
    let small = store.weighted_size();
    session
        .data
        .insert("payload".into(), json!("l".repeat(10_000)));
    assert_eq!(store.update(&mut session).await.unwrap(), Update::Written);
    store.run_pending_tasks();
    let large = store.weighted_size();
    assert!(
        large >= small + 9_900,
        "the update's larger record must weigh more: {small}, then {large}"
    );
    // A touch keeps the entry and its weight.
    let weighed = store.weighted_size();
    let later = OffsetDateTime::now_utc() + Duration::hours(2);
    assert!(store.touch(&session.id, later).await.unwrap());
    store.run_pending_tasks();
    assert_eq!(store.weighted_size(), weighed);
    session.expiry_date = later;
    assert_eq!(store.load(&session.id).await.unwrap(), Some(session));
}

/// A full store still keeps every session it just created: the least
/// recently used ones go instead (moka's TinyLFU admission would refuse
/// brand-new entries and let `create` report a session that is gone).
#[tokio::test]
async fn a_full_store_keeps_each_new_session_and_evicts_the_oldest() {
    let store = MokaStore::new(Some(50));
    let mut created = Vec::new();
    for i in 0..500 {
        let mut record = session_testkit::suite::record_expiring_in(
            session_core::time::Duration::hours(1),
            serde_json::json!({ "i": i }),
        );
        store.create(&mut record).await.unwrap();
        // Let moka apply its admission and eviction now.
        store.run_pending_tasks();
        assert_eq!(
            store.load(&record.id).await.unwrap().as_ref(),
            Some(&record),
            "session {i} was created, then not stored"
        );
        created.push(record);
    }
    store.run_pending_tasks();
    assert!(store.entry_count() <= 50, "{}", store.entry_count());
    assert_eq!(
        store.load(&created[0].id).await.unwrap(),
        None,
        "the least recently used went"
    );
}

#[test]
fn the_default_store_is_bounded() {
    let store = MokaStore::default();
    assert!(format!("{store:?}").contains(&session_moka::DEFAULT_MAX_CAPACITY.to_string()));
}
