//! The expiry index: a sweep reads only expired entries, and the index stays
//! in step with the records under any mix of concurrent writes.

#![allow(clippy::unwrap_used)] // tests may panic on what they set up

use std::{collections::HashMap, sync::Arc};

use session_core::{
    time::{Duration, OffsetDateTime},
    ExpiredDeletion, Id, Record, SessionStore,
};
use session_sled::{sled, SledStore};

struct Fixture {
    store: SledStore,
    records: sled::Tree,
    index: sled::Tree,
}

fn fixture() -> Fixture {
    let db = sled::Config::new().temporary(true).open().unwrap();
    Fixture {
        store: SledStore::new(&db).unwrap(),
        records: db.open_tree("sessions").unwrap(),
        index: db.open_tree("sessions.expiry").unwrap(),
    }
}

/// Every record has exactly one index entry, carrying its expiry header, and
/// every index entry points at a record.
fn assert_consistent(f: &Fixture) {
    let mut expected: HashMap<Vec<u8>, ()> = HashMap::new();
    for entry in f.records.iter() {
        let (key, value) = entry.unwrap();
        let mut index_key = value[..8].to_vec();
        index_key.extend_from_slice(&key);
        expected.insert(index_key, ());
    }
    let mut found = 0;
    for key in f.index.iter().keys() {
        let key = key.unwrap();
        assert!(
            expected.contains_key(key.as_ref()),
            "index entry {key:?} points at no record with that expiry"
        );
        found += 1;
    }
    assert_eq!(found, expected.len(), "a record is missing from the index");
}

fn record(ttl: Duration) -> Record {
    Record::new(OffsetDateTime::now_utc() + ttl)
}

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
    assert_eq!(f.index.len(), 1);
    f.store.delete(&session.id).await.unwrap();
    assert_consistent(&f);
    assert!(f.index.is_empty());
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
fn concurrent_writes_and_sweeps_keep_the_index_consistent() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let f = Arc::new(fixture());
        // Few ids, many writers: every interleaving of save, delete, create
        // and sweep on one id gets a chance.
        let ids: Arc<Vec<Id>> = Arc::new((0..8).map(|_| Id::default()).collect());
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
                    let mut session = record(ttl);
                    session.id = id;
                    match (state >> 20) % 10 {
                        0 => f.store.delete(&id).await.unwrap(),
                        1 => {
                            f.store.delete_expired().await.unwrap();
                        }
                        2 => f.store.create(&mut session).await.unwrap(),
                        _ => f.store.save(&session).await.unwrap(),
                    }
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        assert_consistent(&f);
        f.store.delete_expired().await.unwrap();
        assert_consistent(&f);
        let now = OffsetDateTime::now_utc();
        for entry in f.records.iter() {
            let (_, value) = entry.unwrap();
            let record: Record = session_core::codec::decode_record(&value[8..]).unwrap();
            assert!(record.is_active_at(now), "the sweep left an expired record");
        }
    });
}
