//! The user index beside moka's cache: listings really go when sessions
//! leave (by a write, a delete, an eviction or expiry), and concurrent
//! writes, evictions and lookups never make a lookup miss a session.

#![allow(clippy::unwrap_used)] // tests may panic on what they set up

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use serde_json::json;
use session_core::{
    time::{Duration, OffsetDateTime},
    ExpiredDeletion, Id, Record, SessionStore, Update,
};
use session_moka::MokaStore;
use tokio::{sync::Barrier, task::JoinSet};

fn of_user(user: Option<&str>, ttl: Duration) -> Record {
    let mut record = Record::new(OffsetDateTime::now_utc() + ttl);
    record.user_id = user.map(str::to_owned);
    record.data.insert("k".into(), json!("v"));
    record
}

fn ids_of(records: &[Record]) -> BTreeSet<i128> {
    records.iter().map(|record| record.id.0).collect()
}

/// The stores whose write paths differ: in-place swaps, new moka entries
/// for every extending write (no slack), and weighed entries (every update
/// a new entry, touches in place).
fn stores() -> Vec<(&'static str, MokaStore)> {
    vec![
        ("slack", MokaStore::new(None)),
        (
            "no slack",
            MokaStore::new(None).with_expiry_slack(Duration::ZERO),
        ),
        ("by bytes", MokaStore::with_max_bytes(64 << 20)),
    ]
}

#[tokio::test]
async fn listings_go_with_the_writes_that_take_the_user_away() {
    for (name, store) in stores() {
        let mut record = of_user(Some("ann"), Duration::hours(1));
        store.create(&mut record).await.unwrap();
        assert_eq!(store.indexed_sessions(), 1, "{name}: create lists");

        record.user_id = Some("bob".into());
        record.expiry_date = OffsetDateTime::now_utc() + Duration::hours(2);
        assert_eq!(store.update(&mut record).await.unwrap(), Update::Written);
        assert_eq!(store.indexed_sessions(), 1, "{name}: update moves");
        assert!(store.sessions_of_user("ann").await.unwrap().is_empty());
        assert_eq!(
            store.sessions_of_user("bob").await.unwrap(),
            vec![record.clone()]
        );

        // Same user, later date: the listing stays as it is.
        assert!(store
            .touch(&record.id, OffsetDateTime::now_utc() + Duration::hours(3))
            .await
            .unwrap());
        record.data.insert("k".into(), json!("w"));
        assert_eq!(store.update(&mut record).await.unwrap(), Update::Written);
        assert_eq!(store.indexed_sessions(), 1, "{name}: same user");

        record.user_id = None;
        store.save(&record).await.unwrap();
        assert_eq!(store.indexed_sessions(), 0, "{name}: user cleared");

        record.user_id = Some("cy".into());
        store.save(&record).await.unwrap();
        assert_eq!(store.indexed_sessions(), 1, "{name}: save lists");
        store.delete(&record.id).await.unwrap();
        assert_eq!(store.indexed_sessions(), 0, "{name}: delete unlists");

        let mut dee = Vec::new();
        for _ in 0..3 {
            let mut record = of_user(Some("dee"), Duration::hours(1));
            store.create(&mut record).await.unwrap();
            dee.push(record);
        }
        let mut eve = of_user(Some("eve"), Duration::hours(1));
        store.create(&mut eve).await.unwrap();
        assert_eq!(store.indexed_sessions(), 4);
        assert_eq!(store.delete_sessions_of_user("dee", None).await.unwrap(), 3);
        assert_eq!(
            store.indexed_sessions(),
            1,
            "{name}: delete_sessions_of_user unlists"
        );

        eve.expiry_date = OffsetDateTime::now_utc() - Duration::seconds(1);
        store.save(&eve).await.unwrap();
        assert_eq!(
            store.indexed_sessions(),
            0,
            "{name}: a save of an expired record unlists"
        );
    }
}

#[tokio::test]
async fn create_over_an_expired_record_moves_its_listing() {
    for (name, store) in stores() {
        // Expired by the wall clock, still held by moka within the slack
        // (or not, without it): the id is free, and the old user loses it.
        let held = of_user(Some("old"), Duration::milliseconds(5));
        store.save(&held).await.unwrap();
        while held.is_active() {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        let mut taken = of_user(Some("new"), Duration::hours(1));
        taken.id = held.id;
        store.create(&mut taken).await.unwrap();
        assert_eq!(taken.id, held.id, "{name}: an expired id is free");
        assert!(store.sessions_of_user("old").await.unwrap().is_empty());
        assert_eq!(
            store.sessions_of_user("new").await.unwrap(),
            vec![taken.clone()]
        );
        store.run_pending_tasks();
        assert_eq!(store.indexed_sessions(), 1, "{name}");
    }
}

#[tokio::test]
async fn evicted_sessions_leave_the_index() {
    for store in [MokaStore::new(Some(16)), MokaStore::with_max_bytes(4_000)] {
        let users = ["u0", "u1", "u2", "u3", "u4"];
        let mut saved = Vec::new();
        for i in 0..500 {
            let record = of_user(Some(users[i % users.len()]), Duration::hours(1));
            store.save(&record).await.unwrap();
            saved.push(record);
        }
        store.run_pending_tasks();
        let mut held: BTreeMap<&str, BTreeSet<i128>> = BTreeMap::new();
        for record in &saved {
            if store.load(&record.id).await.unwrap().is_some() {
                let user = record.user_id.as_deref().unwrap();
                held.entry(user).or_default().insert(record.id.0);
            }
        }
        let held_count: usize = held.values().map(BTreeSet::len).sum();
        assert!(held_count > 0, "a bounded store still keeps sessions");
        assert!(held_count < 100, "{held_count} sessions held: no eviction");
        assert_eq!(
            store.indexed_sessions(),
            held_count,
            "the index lists exactly the sessions the cache holds"
        );
        for user in users {
            assert_eq!(
                ids_of(&store.sessions_of_user(user).await.unwrap()),
                held.get(user).cloned().unwrap_or_default(),
                "listing of {user}"
            );
        }
    }
}

#[tokio::test]
async fn expired_sessions_leave_the_index() {
    let store = MokaStore::new(None).with_expiry_slack(Duration::ZERO);
    for i in 0..20 {
        let user = format!("user{}", i % 3);
        store
            .save(&of_user(Some(&user), Duration::milliseconds(50)))
            .await
            .unwrap();
    }
    let keeper = of_user(Some("user0"), Duration::hours(1));
    store.save(&keeper).await.unwrap();
    // moka's timer wheel turns about once a second: poll, without asserting
    // how long it takes.
    let mut listed = usize::MAX;
    for _ in 0..100 {
        store.delete_expired().await.unwrap();
        listed = store.indexed_sessions();
        if listed == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(listed, 1, "only the active session is still listed");
    assert_eq!(
        store.sessions_of_user("user0").await.unwrap(),
        vec![keeper.clone()]
    );
}

/// moka drops an entry it considers expired only at its next maintenance,
/// and reports it then, possibly after the id was stored again for the same
/// user. That late report must not unlist the new session.
#[tokio::test]
async fn a_late_eviction_report_keeps_the_new_listing() {
    let store = MokaStore::new(None).with_expiry_slack(Duration::ZERO);
    let mut first = of_user(Some("ann"), Duration::milliseconds(20));
    store.create(&mut first).await.unwrap();
    while first.is_active() {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // Expired for moka too (no slack), and not dropped yet: maintenance
    // runs about once a second.
    let mut again = of_user(Some("ann"), Duration::hours(1));
    again.id = first.id;
    store.create(&mut again).await.unwrap();
    assert_eq!(again.id, first.id, "the expired id is free");
    store.run_pending_tasks();
    assert_eq!(
        store.sessions_of_user("ann").await.unwrap(),
        vec![again.clone()]
    );
    assert_eq!(store.indexed_sessions(), 1);

    // The same through `save`.
    let mut short = again.clone();
    short.expiry_date = OffsetDateTime::now_utc() + Duration::milliseconds(20);
    store.save(&short).await.unwrap();
    while short.is_active() {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let mut saved = short.clone();
    saved.expiry_date = OffsetDateTime::now_utc() + Duration::hours(1);
    store.save(&saved).await.unwrap();
    store.run_pending_tasks();
    assert_eq!(
        store.sessions_of_user("ann").await.unwrap(),
        vec![saved.clone()]
    );
    assert_eq!(store.indexed_sessions(), 1);
}

/// A tiny xorshift generator: the tests need varied, not secure, choices.
struct Choices(u64);

impl Choices {
    fn next(&mut self, below: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % below as u64) as usize
    }
}

const USERS: [Option<&str>; 5] = [None, Some("a"), Some("b"), Some("c"), Some("")];

/// Writers of every kind race each other and moka's evictions on a few ids
/// in a small cache; once they are done, the index lists exactly what the
/// cache holds, under the user each record has.
async fn churn_then_compare(store: MokaStore) {
    const IDS: usize = 96;
    const WRITERS: usize = 4;
    const OPS: usize = 3_000;
    let store = Arc::new(store);
    let ids: Arc<Vec<Id>> = Arc::new((0..IDS).map(|_| Id::default()).collect());
    let start = Arc::new(Barrier::new(WRITERS));
    let mut tasks = JoinSet::new();
    for writer in 0..WRITERS {
        let (store, ids, start) = (store.clone(), ids.clone(), start.clone());
        tasks.spawn(async move {
            let mut choose = Choices(0x9E37_79B9_7F4A_7C15 ^ (writer as u64 + 1));
            start.wait().await;
            for op in 0..OPS {
                let id = ids[choose.next(IDS)];
                let user = USERS[choose.next(USERS.len())];
                // Expiry dates spread over a few minutes, so extending
                // writes take both the in-place and the new-entry paths.
                let ttl = Duration::seconds(3_600 + choose.next(600) as i64);
                match choose.next(10) {
                    0..=2 => {
                        let mut record = of_user(user, ttl);
                        record.id = id;
                        record.data.insert("by".into(), json!(writer));
                        store.save(&record).await.unwrap();
                    }
                    3..=5 => {
                        if let Some(mut record) = store.load(&id).await.unwrap() {
                            record.user_id = user.map(str::to_owned);
                            record.expiry_date = OffsetDateTime::now_utc() + ttl;
                            let _ = store.update(&mut record).await.unwrap();
                        }
                    }
                    6 => {
                        let expiry = OffsetDateTime::now_utc() + ttl;
                        store.touch(&id, expiry).await.unwrap();
                    }
                    7 => store.delete(&id).await.unwrap(),
                    8 => {
                        let mut record = of_user(user, ttl);
                        record.id = id;
                        store.create(&mut record).await.unwrap();
                        if record.id != id {
                            // A fresh id: keep the population bounded.
                            store.delete(&record.id).await.unwrap();
                        }
                    }
                    _ => {
                        if op % 50 == 0 {
                            if let Some(user) = user {
                                store.delete_sessions_of_user(user, None).await.unwrap();
                            }
                        } else {
                            for record in store.sessions_of_user("a").await.unwrap() {
                                assert_eq!(record.user_id.as_deref(), Some("a"));
                            }
                        }
                    }
                }
                if op % 16 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("writer panicked");
    }

    store.run_pending_tasks();
    let mut held: BTreeMap<String, BTreeSet<i128>> = BTreeMap::new();
    let mut with_user = 0;
    for id in ids.iter() {
        if let Some(record) = store.load(id).await.unwrap() {
            if let Some(user) = record.user_id {
                held.entry(user).or_default().insert(id.0);
                with_user += 1;
            }
        }
    }
    for user in USERS.into_iter().flatten() {
        assert_eq!(
            ids_of(&store.sessions_of_user(user).await.unwrap()),
            held.get(user).cloned().unwrap_or_default(),
            "the listing of user {user:?} differs from what the cache holds"
        );
    }
    assert_eq!(
        store.indexed_sessions(),
        with_user,
        "the index holds listings of sessions the cache no longer holds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn churn_on_a_count_bound_store_leaves_the_index_exact() {
    churn_then_compare(MokaStore::new(Some(48))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn churn_without_slack_leaves_the_index_exact() {
    churn_then_compare(MokaStore::new(Some(48)).with_expiry_slack(Duration::ZERO)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn churn_on_a_byte_bound_store_leaves_the_index_exact() {
    churn_then_compare(MokaStore::with_max_bytes(6_000)).await;
}

/// While writers move other sessions in and out of a user, and that user's
/// sessions are replaced by new cache entries, every lookup lists each
/// session that stays with the user, and nothing of anybody else.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lookups_during_churn_never_miss_a_session() {
    const PINNED: usize = 16;
    const MOVING: usize = 32;
    const WRITERS: usize = 3;
    const ROUNDS: usize = 2_000;
    let store = Arc::new(MokaStore::new(None).with_expiry_slack(Duration::ZERO));
    let mut pinned = Vec::new();
    for _ in 0..PINNED {
        let mut record = of_user(Some("pinned"), Duration::hours(1));
        store.create(&mut record).await.unwrap();
        pinned.push(record.id.0);
    }
    let pinned: Arc<BTreeSet<i128>> = Arc::new(pinned.into_iter().collect());
    let moving: Arc<Vec<Id>> = Arc::new((0..MOVING).map(|_| Id::default()).collect());
    let start = Arc::new(Barrier::new(WRITERS + 1));
    let done = Arc::new(AtomicBool::new(false));
    let mut tasks = JoinSet::new();
    for writer in 0..WRITERS {
        let (store, moving, start) = (store.clone(), moving.clone(), start.clone());
        let pinned_ids: Vec<Id> = pinned.iter().map(|id| Id(*id)).collect();
        tasks.spawn(async move {
            let mut choose = Choices(0xD1B5_4A32_D192_ED03 ^ (writer as u64 + 7));
            start.wait().await;
            for round in 0..ROUNDS {
                let id = moving[choose.next(MOVING)];
                let user = ["pinned", "other"][choose.next(2)];
                match choose.next(4) {
                    0 => {
                        let mut record = of_user(Some(user), Duration::hours(1));
                        record.id = id;
                        store.save(&record).await.unwrap();
                    }
                    1 => store.delete(&id).await.unwrap(),
                    2 => {
                        // A pinned session gets a later date: a new moka
                        // entry, same user, same listing.
                        let pinned = pinned_ids[choose.next(pinned_ids.len())];
                        let later = OffsetDateTime::now_utc()
                            + Duration::hours(2)
                            + Duration::milliseconds(round as i64);
                        assert!(store.touch(&pinned, later).await.unwrap());
                    }
                    _ => {
                        if let Some(mut record) = store.load(&id).await.unwrap() {
                            record.user_id = Some(user.into());
                            let _ = store.update(&mut record).await.unwrap();
                        }
                    }
                }
                if round % 16 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        });
    }
    let reader = {
        let (store, pinned, done) = (store.clone(), pinned.clone(), done.clone());
        tokio::spawn(async move {
            start.wait().await;
            let mut lookups = 0;
            loop {
                let listed = store.sessions_of_user("pinned").await.unwrap();
                for record in &listed {
                    assert_eq!(record.user_id.as_deref(), Some("pinned"));
                }
                let listed = ids_of(&listed);
                let missing: Vec<_> = pinned.difference(&listed).collect();
                assert!(missing.is_empty(), "a lookup missed {missing:?}");
                lookups += 1;
                if done.load(Ordering::Acquire) && lookups > 100 {
                    return lookups;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    while let Some(joined) = tasks.join_next().await {
        joined.expect("writer panicked");
    }
    done.store(true, Ordering::Release);
    let lookups = reader.await.expect("reader panicked");
    assert!(lookups > 100);
}
