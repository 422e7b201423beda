//! What the user index leaves in Redis: one sorted set per user, members
//! pruned when a lookup finds them stale, an expiry at least as long as the
//! user's sessions, a size that stays bounded when nobody lists the user.
//! On standalone Redis and, when the test command started one, on Redis
//! Cluster (where sessions and indexes sit in different slots).

mod common;

use serde_json::json;
use session_core::{
    time::{Duration, OffsetDateTime},
    Id, Record, SessionStore,
};
use session_redis::{
    fred::prelude::{KeysInterface, Pool, SortedSetsInterface},
    RedisStore,
};

fn of_user(user: &str, ttl: Duration) -> Record {
    let mut record = Record::new(common::now_micros() + ttl);
    record.data.insert("k".into(), json!("v"));
    record.user_id = Some(user.to_owned());
    record
}

/// The members of `user`'s index, the score member `#` included, sorted.
async fn members(store: &RedisStore<Pool>, user: &str) -> Vec<String> {
    let mut members: Vec<String> = store
        .client()
        .zrange(store.user_index_key(user), 0, -1, None, false, None, false)
        .await
        .expect("ZRANGE");
    members.sort();
    members
}

fn listed(ids: &[&Id]) -> Vec<String> {
    let mut members: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    members.push("#".to_owned());
    members.sort();
    members
}

async fn expire_time_ms(store: &RedisStore<Pool>, key: String) -> i64 {
    store.client().pexpire_time(key).await.expect("PEXPIRETIME")
}

fn millis(instant: OffsetDateTime) -> i64 {
    (instant.unix_timestamp_nanos() / 1_000_000) as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_has_a_sorted_set_that_outlives_their_sessions() {
    for (topology, store) in common::every_topology("index-layout").await {
        let users = ["alice", "alice*", "alice:1", "", "Alice", "{alice}"];
        let mut records = Vec::new();
        for user in users {
            let mut record = of_user(user, Duration::hours(1));
            store.create(&mut record).await.expect("create");
            records.push(record);
        }
        for record in &records {
            let user = record.user_id.as_deref().expect("a user");
            assert_eq!(
                members(&store, user).await,
                listed(&[&record.id]),
                "{topology}: {user:?} has an index of its own"
            );
            let index_expiry = expire_time_ms(&store, store.user_index_key(user)).await;
            assert!(
                index_expiry >= millis(record.expiry_date),
                "{topology}: the index of {user:?} expires at {index_expiry}, before its session"
            );
        }

        // A touch far past the index's expiry extends the index first.
        let record = &records[0];
        let later = record.expiry_date + Duration::days(30);
        assert!(store.touch(&record.id, later).await.expect("touch"));
        let index_expiry = expire_time_ms(&store, store.user_index_key("alice")).await;
        assert!(
            index_expiry >= millis(later),
            "{topology}: after touch the index expires at {index_expiry}, before {}",
            millis(later)
        );
        assert_eq!(
            store.sessions_of_user("alice").await.expect("list")[0].expiry_date,
            later
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_prune_what_is_no_longer_the_users() {
    for (topology, store) in common::every_topology("index-prune").await {
        let mut kept = of_user("bob", Duration::hours(1));
        store.create(&mut kept).await.expect("create");
        let mut deleted = of_user("bob", Duration::hours(1));
        store.create(&mut deleted).await.expect("create");
        let mut moved = of_user("bob", Duration::hours(1));
        store.create(&mut moved).await.expect("create");
        let mut cleared = of_user("bob", Duration::hours(1));
        store.create(&mut cleared).await.expect("create");
        let mut ended = of_user("bob", Duration::hours(1));
        store.create(&mut ended).await.expect("create");
        let mut expired = of_user("bob", Duration::hours(1));
        store.create(&mut expired).await.expect("create");
        assert_eq!(members(&store, "bob").await.len(), 7);

        store.delete(&deleted.id).await.expect("delete");
        moved.user_id = Some("carol".into());
        store.save(&moved).await.expect("save to another user");
        cleared.user_id = None;
        store.save(&cleared).await.expect("save without user");
        ended.expiry_date = OffsetDateTime::now_utc() - Duration::seconds(1);
        store.save(&ended).await.expect("save expired");
        // Expired by its header while Redis still holds the key: what `load`
        // sees in the millisecond before Redis drops a key (here for an hour).
        let past = OffsetDateTime::now_utc() - Duration::seconds(1);
        let mut stamp = ((past.unix_timestamp_nanos() / 1_000) as i64).to_be_bytes();
        stamp[0] ^= 0x80;
        let _: i64 = store
            .client()
            .setrange(store.key(&expired.id), 10, stamp.to_vec())
            .await
            .expect("SETRANGE of the header's expiry");
        assert_eq!(store.load(&expired.id).await.expect("load"), None);

        assert_eq!(
            store.sessions_of_user("bob").await.expect("list"),
            vec![kept.clone()],
            "{topology}"
        );
        // The expired session stays listed (not returned) until Redis drops
        // its key: a server clock behind ours may still count it active.
        assert_eq!(
            members(&store, "bob").await,
            listed(&[&kept.id, &expired.id]),
            "{topology}: the lookup must prune every stale member"
        );
        assert_eq!(
            store
                .delete_sessions_of_user("bob", None)
                .await
                .expect("delete of user"),
            1,
            "{topology}: only the active session counts"
        );
        let exists: i64 = store
            .client()
            .exists(store.key(&expired.id))
            .await
            .expect("EXISTS");
        assert_eq!(
            exists, 0,
            "{topology}: bob's expired session is deleted too"
        );
        assert_eq!(members(&store, "bob").await, listed(&[]), "{topology}");
        assert_eq!(
            store.sessions_of_user("carol").await.expect("list"),
            vec![moved],
            "{topology}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_nobody_lists_stays_bounded() {
    for (topology, store) in common::every_topology("index-churn").await {
        for _ in 0..100 {
            let mut record = of_user("churn", Duration::hours(1));
            store.create(&mut record).await.expect("create");
            store.delete(&record.id).await.expect("delete");
        }
        let size: i64 = store
            .client()
            .zcard(store.user_index_key("churn"))
            .await
            .expect("ZCARD");
        assert!(
            size <= 32,
            "{topology}: 100 short sessions left {size} members in an index never listed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_users_sessions_touches_only_theirs() {
    for (topology, store) in common::every_topology("index-delete").await {
        let mut mine = of_user("dave", Duration::hours(1));
        store.create(&mut mine).await.expect("create");
        let mut other = of_user("dave", Duration::hours(1));
        store.create(&mut other).await.expect("create");
        // The session changes hands behind the index's back (as a save from
        // another process would): it stays listed under dave until read.
        other.user_id = Some("erin".into());
        store.save(&other).await.expect("save");
        assert_eq!(
            members(&store, "dave").await,
            listed(&[&mine.id, &other.id])
        );

        assert_eq!(
            store
                .delete_sessions_of_user("dave", None)
                .await
                .expect("delete"),
            1,
            "{topology}: only dave's own session counts"
        );
        assert_eq!(store.load(&mine.id).await.expect("load"), None);
        assert_eq!(
            store.load(&other.id).await.expect("load"),
            Some(other.clone()),
            "{topology}: erin's session must survive dave's logout"
        );
        let exists: i64 = store
            .client()
            .exists(store.key(&other.id))
            .await
            .expect("EXISTS");
        assert_eq!(exists, 1);
        assert_eq!(members(&store, "dave").await, listed(&[]), "{topology}");
    }
}

/// Lookups (which prune) racing writers that move sessions between two
/// users: once the writers are done, each session is listed under its final
/// user and nowhere else. Checked after each of several bursts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_racing_writers_never_lose_a_session() {
    use std::sync::Arc;

    use tokio::{sync::Barrier, task::JoinSet};

    const SESSIONS: usize = 4;
    const WRITERS: usize = 6;
    const LOOKUPS: usize = 4;
    const BURSTS: usize = 8;
    let users = ["left", "right"];
    for (topology, store) in common::every_topology("index-race").await {
        let store = Arc::new(store);
        let mut sessions = Vec::new();
        for _ in 0..SESSIONS {
            let mut record = of_user("left", Duration::hours(1));
            store.create(&mut record).await.expect("create");
            sessions.push(record);
        }
        for burst in 0..BURSTS {
            let start = Arc::new(Barrier::new(WRITERS + LOOKUPS));
            let mut tasks = JoinSet::new();
            for writer in 0..WRITERS {
                let store = Arc::clone(&store);
                let start = Arc::clone(&start);
                let sessions = sessions.clone();
                tasks.spawn(async move {
                    start.wait().await;
                    for (i, session) in sessions.iter().enumerate() {
                        let mut mine = session.clone();
                        mine.user_id = Some(users[(writer + i + burst) % 2].into());
                        mine.data.insert("by".into(), json!(writer));
                        if writer % 2 == 0 {
                            store.save(&mine).await.expect("save");
                        } else {
                            // Update over whatever is stored now.
                            let stored = store.load(&mine.id).await.expect("load");
                            mine.version = stored.expect("present").version;
                            let _ = store.update(&mut mine).await.expect("update");
                        }
                    }
                });
            }
            for lookup in 0..LOOKUPS {
                let store = Arc::clone(&store);
                let start = Arc::clone(&start);
                tasks.spawn(async move {
                    start.wait().await;
                    for _ in 0..3 {
                        let listed = store
                            .sessions_of_user(users[lookup % 2])
                            .await
                            .expect("lookup");
                        for record in listed {
                            assert_eq!(record.user_id.as_deref(), Some(users[lookup % 2]));
                        }
                    }
                });
            }
            while let Some(joined) = tasks.join_next().await {
                joined.expect("task");
            }
            let mut wanted = [Vec::new(), Vec::new()];
            for session in &sessions {
                let stored = store
                    .load(&session.id)
                    .await
                    .expect("load")
                    .expect("present");
                let side = usize::from(stored.user_id.as_deref() == Some("right"));
                wanted[side].push(stored);
            }
            for (side, user) in users.iter().enumerate() {
                let mut listed = store.sessions_of_user(user).await.expect("list");
                listed.sort_by_key(|record| record.id.0);
                wanted[side].sort_by_key(|record| record.id.0);
                assert_eq!(
                    listed, wanted[side],
                    "{topology}, burst {burst}: the index of {user} disagrees with the records"
                );
            }
        }
    }
}
