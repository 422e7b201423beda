//! The bound on the number of sessions a `MemoryStore` holds.

use std::sync::Arc;

use session_core::{
    time::{Duration, OffsetDateTime},
    Error, ExpiredDeletion, Record, SessionStore, Update,
};
use session_memory::{MemoryStore, StoreFull, DEFAULT_MAX_SESSIONS};

fn active() -> Record {
    Record::new(OffsetDateTime::now_utc() + Duration::hours(1))
}

fn expired() -> Record {
    Record::new(OffsetDateTime::now_utc() - Duration::seconds(1))
}

fn assert_full(error: &Error, max: usize) {
    assert!(error.is_backend(), "{error:?}");
    let full = StoreFull::find(error).expect("the source is StoreFull");
    assert_eq!(full.max_sessions(), max);
}

async fn fill(store: &MemoryStore, count: usize) -> Vec<Record> {
    let mut records = Vec::with_capacity(count);
    for _ in 0..count {
        let mut record = active();
        store.create(&mut record).await.expect("room left");
        records.push(record);
    }
    records
}

#[test]
fn default_and_constructors_say_their_bound() {
    assert_eq!(DEFAULT_MAX_SESSIONS, 100_000);
    assert_eq!(
        MemoryStore::default().max_sessions(),
        Some(DEFAULT_MAX_SESSIONS)
    );
    assert_eq!(MemoryStore::with_max_sessions(7).max_sessions(), Some(7));
    assert_eq!(MemoryStore::unbounded().max_sessions(), None);
}

#[tokio::test]
async fn the_default_store_refuses_a_session_past_its_bound() {
    let store = MemoryStore::default();
    let mut record = active();
    for _ in 0..DEFAULT_MAX_SESSIONS {
        record.id = session_core::Id::default();
        store.save(&record).await.expect("room left");
    }
    assert_eq!(store.len(), DEFAULT_MAX_SESSIONS);
    let error = store.create(&mut active()).await.unwrap_err();
    assert_full(&error, DEFAULT_MAX_SESSIONS);
    assert_eq!(store.len(), DEFAULT_MAX_SESSIONS);
}

#[tokio::test]
async fn create_at_the_bound_is_refused_and_loses_nothing() {
    let store = MemoryStore::with_max_sessions(3);
    let stored = fill(&store, 3).await;

    let mut refused = active();
    let error = store.create(&mut refused).await.unwrap_err();
    assert_full(&error, 3);
    assert_eq!(
        error.to_string(),
        "session backend error: the memory session store is full (3 sessions): new session refused"
    );
    assert_eq!(store.load(&refused.id).await.unwrap(), None);
    assert_eq!(store.len(), 3);
    for record in &stored {
        assert_eq!(store.load(&record.id).await.unwrap().as_ref(), Some(record));
    }
}

#[tokio::test]
async fn writes_to_stored_sessions_go_through_at_the_bound() {
    let store = MemoryStore::with_max_sessions(2);
    let [mut first, mut second] = <[Record; 2]>::try_from(fill(&store, 2).await).unwrap();

    // `save` of a stored id replaces it.
    first.data.insert("cart".into(), 3.into());
    store.save(&first).await.expect("save of a stored session");
    assert_eq!(store.load(&first.id).await.unwrap(), Some(first.clone()));

    // `update` and `touch` too.
    second.user_id = Some("ferris".into());
    assert_eq!(store.update(&mut second).await.unwrap(), Update::Written);
    assert!(store
        .touch(&second.id, OffsetDateTime::now_utc() + Duration::hours(2))
        .await
        .unwrap());
    assert_eq!(store.sessions_of_user("ferris").await.unwrap().len(), 1);

    // `save` of a new id is a new session: refused.
    let error = store.save(&active()).await.unwrap_err();
    assert_full(&error, 2);
    assert_eq!(store.len(), 2);

    // Room comes back when a session ends, whichever way it ends.
    store.delete(&first.id).await.unwrap();
    let mut third = active();
    store.create(&mut third).await.expect("room after delete");
    assert_full(&store.create(&mut active()).await.unwrap_err(), 2);
    assert_eq!(
        store.delete_sessions_of_user("ferris", None).await.unwrap(),
        1
    );
    store
        .save(&active())
        .await
        .expect("room after delete_sessions_of_user");
    assert_eq!(store.len(), 2);
}

#[tokio::test]
async fn expired_sessions_make_room_before_anything_is_refused() {
    let store = MemoryStore::with_max_sessions(4);
    let mut live = active();
    store.create(&mut live).await.unwrap();
    for _ in 0..3 {
        store.save(&expired()).await.unwrap();
    }
    assert_eq!(store.len(), 4);

    // Full, but three of the four have expired: they are swept, wherever
    // they are, and the new sessions are taken.
    let created = fill(&store, 3).await;
    assert_eq!(store.len(), 4);
    assert_full(&store.create(&mut active()).await.unwrap_err(), 4);
    assert!(store.load(&live.id).await.unwrap().is_some());
    for record in &created {
        assert!(store.load(&record.id).await.unwrap().is_some());
    }

    // The sweep gave the slots back exactly: nothing more to remove, and the
    // count still matches what is stored.
    assert_eq!(store.delete_expired().await.unwrap(), 0);
    store.delete(&live.id).await.unwrap();
    store.create(&mut active()).await.unwrap();
    assert_full(&store.save(&active()).await.unwrap_err(), 4);
}

#[tokio::test]
async fn delete_expired_gives_room_back() {
    let store = MemoryStore::with_max_sessions(2);
    store.save(&expired()).await.unwrap();
    store.save(&expired()).await.unwrap();
    assert_eq!(store.delete_expired().await.unwrap(), 2);
    assert!(store.is_empty());
    fill(&store, 2).await;
    assert_full(&store.create(&mut active()).await.unwrap_err(), 2);
}

#[tokio::test]
async fn an_expired_id_is_taken_over_without_a_new_slot() {
    let store = MemoryStore::with_max_sessions(1);
    let old = expired();
    store.save(&old).await.unwrap();
    let mut record = active();
    record.id = old.id;
    store
        .create(&mut record)
        .await
        .expect("takes the expired slot");
    assert_eq!(record.id, old.id);
    assert_eq!(store.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_at_the_bound_never_exceed_it() {
    const MAX: usize = 500;
    for _ in 0..5 {
        let store = Arc::new(MemoryStore::with_max_sessions(MAX));
        // Half the room is taken already.
        fill(&store, MAX / 2).await;
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let mut created = 0usize;
                    for _ in 0..100 {
                        match store.create(&mut active()).await {
                            Ok(()) => created += 1,
                            Err(error) => assert_full(&error, MAX),
                        }
                        tokio::task::yield_now().await;
                    }
                    created
                })
            })
            .collect();
        let mut created = 0;
        for task in tasks {
            created += task.await.unwrap();
        }
        assert_eq!(created, MAX / 2, "exactly the room left was taken");
        assert_eq!(store.len(), MAX);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_and_deletes_at_the_bound_never_exceed_it() {
    const MAX: usize = 200;
    let store = Arc::new(MemoryStore::with_max_sessions(MAX));
    let stored = fill(&store, MAX).await;
    let deleter = {
        let store = Arc::clone(&store);
        let doomed: Vec<_> = stored[..50].iter().map(|r| r.id).collect();
        tokio::spawn(async move {
            for id in doomed {
                store.delete(&id).await.unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    let creators: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut created = 0usize;
                for _ in 0..50 {
                    match store.create(&mut active()).await {
                        Ok(()) => created += 1,
                        Err(error) => assert_full(&error, MAX),
                    }
                    tokio::task::yield_now().await;
                }
                created
            })
        })
        .collect();
    deleter.await.unwrap();
    let mut created = 0;
    for task in creators {
        created += task.await.unwrap();
    }
    assert!(created <= 50, "{created} created with room for 50");
    assert_eq!(store.len(), MAX - 50 + created);
    assert!(store.len() <= MAX);
    // Whatever the interleaving, the count of the bound matches the records:
    // exactly the room left can still be taken.
    let left = MAX - store.len();
    fill(&store, left).await;
    assert_full(&store.create(&mut active()).await.unwrap_err(), MAX);
}

#[tokio::test]
async fn unbounded_takes_more_than_the_default() {
    let store = MemoryStore::unbounded();
    let mut record = active();
    for _ in 0..=DEFAULT_MAX_SESSIONS {
        record.id = session_core::Id::default();
        store.save(&record).await.unwrap();
    }
    assert_eq!(store.len(), DEFAULT_MAX_SESSIONS + 1);
}

/// The sweep skips shards by a lower bound of their expiry dates: a write
/// that moves a session's expiry earlier must lower it too.
#[tokio::test]
async fn expiry_moved_earlier_is_still_swept() {
    let store = MemoryStore::with_max_sessions(2);
    let far = OffsetDateTime::now_utc() + Duration::days(30);
    let past = OffsetDateTime::now_utc() - Duration::seconds(1);

    let mut by_update = Record::new(far);
    store.create(&mut by_update).await.unwrap();
    let mut by_save = Record::new(far);
    store.create(&mut by_save).await.unwrap();
    // Swept once while nothing had expired: the bounds are exact now.
    assert_eq!(store.delete_expired().await.unwrap(), 0);

    by_update.expiry_date = past;
    assert_eq!(store.update(&mut by_update).await.unwrap(), Update::Written);
    by_save.expiry_date = past;
    store.save(&by_save).await.unwrap();

    assert_eq!(store.delete_expired().await.unwrap(), 2);
    assert!(store.is_empty());
    fill(&store, 2).await;
}
