//! The expiry index: a sweep reads only expired entries, and both indexes
//! stay in step with the records under any mix of concurrent writes.

#![allow(clippy::unwrap_used)] // tests may panic on what they set up

mod common;

use std::sync::Arc;

use common::{assert_consistent, fixture, of_user, record};
use session_core::{
    time::{Duration, OffsetDateTime},
    ExpiredDeletion, Id, Record, SessionStore,
};

#[tokio::test]
async fn writes_keep_one_index_entry_per_record() {
    let f = fixture();
    let mut session = record(Duration::hours(1));
    f.store.create(&mut session).await.unwrap();
    assert_consistent(&f);
    for hours in [2, 3, 3, 1] {
        session.expiry_date = OffsetDateTime::now_utc() + Duration::hours(hours);
        f.store.save(&session).await.unwrap();
        assert_consistent(&f);
    }
    assert_eq!(f.expiry.len(), 1);
    assert!(f
        .store
        .touch(&session.id, OffsetDateTime::now_utc() + Duration::hours(5))
        .await
        .unwrap());
    assert_consistent(&f);
    assert!(f.store.update(&mut session).await.unwrap().is_written());
    assert_consistent(&f);
    assert_eq!(f.expiry.len(), 1);
    f.store.delete(&session.id).await.unwrap();
    assert_consistent(&f);
    assert!(f.expiry.is_empty());
}

#[tokio::test]
async fn sweep_counts_exactly_across_many_batches() {
    let f = fixture();
    for i in 0..1_000 {
        f.store
            .save(&record(-Duration::seconds(i + 1)))
            .await
            .unwrap();
    }
    let mut keep = Vec::new();
    for i in 0..300 {
        let mut active = record(Duration::minutes(i + 1));
        f.store.create(&mut active).await.unwrap();
        keep.push(active);
    }
    assert_eq!(f.store.delete_expired().await.unwrap(), 1_000);
    assert_eq!(f.store.len(), 300);
    assert_consistent(&f);
    for active in keep {
        assert_eq!(f.store.load(&active.id).await.unwrap(), Some(active));
    }
    assert_eq!(f.store.delete_expired().await.unwrap(), 0);
}

#[tokio::test]
async fn sweep_removes_only_what_the_index_says_is_expired() {
    // A record whose index entry says "expired" but which was saved again
    // with a later expiry in between must survive: the sweep checks the
    // record, not just the index.
    let f = fixture();
    let mut session = record(-Duration::minutes(1));
    f.store.save(&session).await.unwrap();
    session.expiry_date = OffsetDateTime::now_utc() + Duration::hours(1);
    f.store.save(&session).await.unwrap();
    assert_eq!(f.store.delete_expired().await.unwrap(), 0);
    assert_eq!(f.store.load(&session.id).await.unwrap(), Some(session));
    assert_consistent(&f);
}

#[test]
fn concurrent_writes_and_sweeps_keep_the_indexes_consistent() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let f = Arc::new(fixture());
        // Few ids and users, many writers: every interleaving of the writes,
        // user deletions and sweeps on one id gets a chance.
        let ids: Arc<Vec<Id>> = Arc::new((0..8).map(|_| Id::default()).collect());
        let users = ["al", "alice", ""];
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..16u64 {
            let f = Arc::clone(&f);
            let ids = Arc::clone(&ids);
            tasks.spawn(async move {
                let mut state = task + 1;
                for _ in 0..300 {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1);
                    let id = ids[(state >> 33) as usize % ids.len()];
                    let ttl = Duration::seconds((state >> 40) as i64 % 7 - 3);
                    let user = match (state >> 50) % 4 {
                        3 => None,
                        n => Some(users[n as usize]),
                    };
                    let mut session = match user {
                        Some(user) => of_user(user, ttl),
                        None => record(ttl),
                    };
                    session.id = id;
                    match (state >> 20) % 10 {
                        0 => f.store.delete(&id).await.unwrap(),
                        1 => {
                            f.store.delete_expired().await.unwrap();
                        }
                        2 => f.store.create(&mut session).await.unwrap(),
                        3 => {
                            if let Some(mut stored) = f.store.load(&id).await.unwrap() {
                                stored.user_id = session.user_id;
                                stored.expiry_date = session.expiry_date;
                                let _ = f.store.update(&mut stored).await.unwrap();
                            }
                        }
                        4 => {
                            f.store.touch(&id, session.expiry_date).await.unwrap();
                        }
                        5 => {
                            let keep = ids[(state >> 12) as usize % ids.len()];
                            f.store
                                .delete_sessions_of_user(user.unwrap_or("al"), Some(&keep))
                                .await
                                .unwrap();
                        }
                        _ => f.store.save(&session).await.unwrap(),
                    }
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        assert_consistent(&f);
        // The sweep's own clock reads no earlier than this: what it leaves
        // was active at this instant at least.
        let swept_at = OffsetDateTime::now_utc();
        f.store.delete_expired().await.unwrap();
        assert_consistent(&f);
        for entry in f.records.iter() {
            let (_, value) = entry.unwrap();
            let record: Record = common::stored_record(&value);
            assert!(
                record.is_active_at(swept_at),
                "the sweep left an expired record"
            );
        }
        // What the index lists is what the records say. Records may expire
        // while this runs: what is active after the listing must be listed,
        // and what is listed must have been active before it.
        let active_of = |user: &str, at: OffsetDateTime| -> Vec<Id> {
            let mut ids: Vec<Id> = f
                .records
                .iter()
                .values()
                .map(|value| common::stored_record(&value.unwrap()))
                .filter(|r| r.is_active_at(at) && r.user_id.as_deref() == Some(user))
                .map(|r| r.id)
                .collect();
            ids.sort_by_key(|id| id.0);
            ids
        };
        for user in users {
            let before = OffsetDateTime::now_utc();
            let mut listed: Vec<Id> = f
                .store
                .sessions_of_user(user)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect();
            let after = OffsetDateTime::now_utc();
            listed.sort_by_key(|id| id.0);
            let surely = active_of(user, after);
            let maybe = active_of(user, before);
            assert!(
                surely.iter().all(|id| listed.contains(id)),
                "sessions of {user:?}: {listed:?} misses some of {surely:?}"
            );
            assert!(
                listed.iter().all(|id| maybe.contains(id)),
                "sessions of {user:?}: {listed:?} lists more than {maybe:?}"
            );
        }
    });
}
