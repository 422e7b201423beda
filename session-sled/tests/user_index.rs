//! The user index as stored: one entry per record with a user, under that
//! user's exact key, gone as soon as the record leaves the user by any path.

#![allow(clippy::unwrap_used)] // tests may panic on what they set up

mod common;

use std::collections::BTreeSet;

use common::{assert_consistent, fixture, keys, of_user, record, user_key};
use session_core::{
    time::{Duration, OffsetDateTime},
    ExpiredDeletion, Id, SessionStore, Update,
};

const HOUR: Duration = Duration::hours(1);

fn set<const N: usize>(keys: [Vec<u8>; N]) -> BTreeSet<Vec<u8>> {
    keys.into_iter().collect()
}

#[tokio::test]
async fn an_entry_follows_its_record_from_user_to_user() {
    let f = fixture();
    let mut session = of_user("alice", HOUR);
    f.store.create(&mut session).await.unwrap();
    let id = session.id.to_bytes();
    assert_eq!(keys(&f.users), set([user_key("alice", &id)]));

    session.user_id = Some("bob".into());
    assert_eq!(f.store.update(&mut session).await.unwrap(), Update::Written);
    assert_eq!(
        keys(&f.users),
        set([user_key("bob", &id)]),
        "update to another user must move the entry"
    );
    assert_consistent(&f);

    // A touch leaves the entry alone.
    let later = OffsetDateTime::now_utc() + Duration::days(1);
    assert!(f.store.touch(&session.id, later).await.unwrap());
    assert_eq!(keys(&f.users), set([user_key("bob", &id)]));

    session.user_id = None;
    f.store.save(&session).await.unwrap();
    assert!(
        f.users.is_empty(),
        "save clearing the user must drop the entry"
    );

    session.user_id = Some("carol".into());
    f.store.save(&session).await.unwrap();
    assert_eq!(keys(&f.users), set([user_key("carol", &id)]));
    assert_consistent(&f);

    f.store.delete(&session.id).await.unwrap();
    assert!(f.users.is_empty(), "delete must drop the entry");
    assert!(f.expiry.is_empty());
    assert!(f.records.is_empty());
}

#[tokio::test]
async fn a_sweep_drops_the_entries_of_what_it_removes() {
    let f = fixture();
    let mut active = of_user("dave", HOUR);
    f.store.create(&mut active).await.unwrap();
    for i in 1..=3 {
        f.store
            .save(&of_user("dave", -Duration::seconds(i)))
            .await
            .unwrap();
    }
    f.store
        .save(&of_user("erin", -Duration::seconds(1)))
        .await
        .unwrap();
    assert_eq!(f.users.len(), 5);

    assert_eq!(f.store.delete_expired().await.unwrap(), 4);
    assert_eq!(
        keys(&f.users),
        set([user_key("dave", &active.id.to_bytes())])
    );
    assert_consistent(&f);
}

#[tokio::test]
async fn create_over_an_expired_record_drops_its_entry() {
    let f = fixture();
    let expired = of_user("frank", -HOUR);
    f.store.save(&expired).await.unwrap();
    let mut taker = of_user("grace", HOUR);
    taker.id = expired.id;
    f.store.create(&mut taker).await.unwrap();
    assert_eq!(taker.id, expired.id, "an expired record's id is free");
    assert_eq!(
        keys(&f.users),
        set([user_key("grace", &taker.id.to_bytes())])
    );
    assert_consistent(&f);
}

#[tokio::test]
async fn deleting_a_users_sessions_drops_only_their_entries() {
    let f = fixture();
    // Users whose ids are prefixes of each other, and the empty user.
    let mut sessions = Vec::new();
    for user in ["al", "al", "al", "alice", "", "al\0"] {
        let mut session = of_user(user, HOUR);
        f.store.create(&mut session).await.unwrap();
        sessions.push(session);
    }
    let expired = of_user("al", -HOUR);
    f.store.save(&expired).await.unwrap();
    let kept = sessions[1].id;

    assert_eq!(
        f.store
            .delete_sessions_of_user("al", Some(&kept))
            .await
            .unwrap(),
        2,
        "two active sessions ended; the expired one goes uncounted"
    );
    let expected: BTreeSet<Vec<u8>> = [1, 3, 4, 5]
        .iter()
        .map(|&i| &sessions[i])
        .map(|s| user_key(s.user_id.as_deref().unwrap(), &s.id.to_bytes()))
        .collect();
    assert_eq!(keys(&f.users), expected);
    assert_eq!(f.store.len(), 4);
    assert_consistent(&f);

    assert_eq!(f.store.delete_sessions_of_user("", None).await.unwrap(), 1);
    assert_eq!(
        f.store.delete_sessions_of_user("al", None).await.unwrap(),
        1
    );
    assert_eq!(
        f.store.sessions_of_user("alice").await.unwrap(),
        vec![sessions[3].clone()]
    );
    assert_eq!(
        f.store.sessions_of_user("al\0").await.unwrap(),
        vec![sessions[5].clone()]
    );
    assert_eq!(f.users.len(), 2);
    assert_consistent(&f);
}

#[tokio::test]
async fn stale_entries_never_list_or_end_another_users_session() {
    // Entries the store would never write (a value rewritten behind its back
    // can leave them): an entry under "mallory" for alice's session, one for
    // a session that does not exist, and one too short to hold an id.
    let f = fixture();
    let mut alice = of_user("alice", HOUR);
    f.store.create(&mut alice).await.unwrap();
    let stale = user_key("mallory", &alice.id.to_bytes());
    let dangling = user_key("mallory", &Id::default().to_bytes());
    let short = user_key("mallory", b"short");
    for key in [&stale, &dangling, &short] {
        f.users.insert(key.as_slice(), &[][..]).unwrap();
    }

    assert!(f
        .store
        .sessions_of_user("mallory")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        f.store
            .delete_sessions_of_user("mallory", None)
            .await
            .unwrap(),
        0
    );
    assert_eq!(f.store.load(&alice.id).await.unwrap(), Some(alice.clone()));
    assert_eq!(
        keys(&f.users),
        set([user_key("alice", &alice.id.to_bytes())]),
        "the stale entries are gone, alice's is not"
    );
    assert_consistent(&f);
}

#[tokio::test]
async fn sessions_without_a_user_have_no_entry() {
    let f = fixture();
    let mut anonymous = record(HOUR);
    f.store.create(&mut anonymous).await.unwrap();
    f.store.save(&record(HOUR)).await.unwrap();
    anonymous.data.insert("k".into(), "v".into());
    assert!(f.store.update(&mut anonymous).await.unwrap().is_written());
    assert!(f.users.is_empty());
    assert!(f.store.sessions_of_user("").await.unwrap().is_empty());
    assert_consistent(&f);
}
