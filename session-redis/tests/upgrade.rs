//! Sessions the previous release wrote (commit 0bc9a3e: the record alone,
//! as MessagePack, or JSON before that, with `SET .. PXAT`) keep working
//! through this release: they load at version 0 with no user, and `update`,
//! `touch` and the user index work on them. On standalone Redis and, when
//! the test command started one, on Redis Cluster.

mod common;

use std::sync::Arc;

use serde_json::json;
use session_core::{time::Duration, Data, Id, Record, SessionStore, Update};
use session_redis::{
    fred::prelude::{Expiration, KeysInterface, Pool},
    RedisStore,
};
use tokio::{sync::Barrier, task::JoinSet};

fn old_record(data: serde_json::Value) -> Record {
    let mut record = Record::new(common::now_micros() + Duration::hours(1));
    record.data = match data {
        serde_json::Value::Object(map) => map.into_iter().collect::<Data>(),
        other => panic!("data must be an object, got {other}"),
    };
    record
}

/// The bytes the previous release stored: `rmp_serde::to_vec` of its
/// `Record { id, data, expiry_date }`, which MessagePack writes as the array
/// `[id, data, expiry_date]`, exactly as this tuple.
fn previous_release_bytes(record: &Record) -> Vec<u8> {
    let bytes = rmp_serde::to_vec(&(record.id, &record.data, record.expiry_date))
        .expect("encode like the previous release");
    assert_eq!(bytes[0], 0x93, "a MessagePack array of three");
    bytes
}

/// The JSON the builds before MessagePack stored: `serde_json::to_vec` of
/// the same `Record`. Spelled out field by field because `json!` cannot hold
/// the id, a 128-bit integer.
fn json_build_bytes(record: &Record) -> Vec<u8> {
    let id = serde_json::to_string(&record.id).expect("id as JSON");
    let data = serde_json::to_string(&record.data).expect("data as JSON");
    let expiry = serde_json::to_string(&record.expiry_date).expect("expiry as JSON");
    format!(r#"{{"id":{id},"data":{data},"expiry_date":{expiry}}}"#).into_bytes()
}

/// The previous release's `SET key value PXAT <expiry rounded up to the ms>`.
async fn write_as_previous_release(store: &RedisStore<Pool>, record: &Record, bytes: Vec<u8>) {
    let nanos = record.expiry_date.unix_timestamp_nanos();
    let millis = nanos.div_euclid(1_000_000) + i128::from(nanos.rem_euclid(1_000_000) != 0);
    let millis = i64::try_from(millis).expect("a near expiry");
    let _: () = store
        .client()
        .set(
            store.key(&record.id),
            bytes,
            Some(Expiration::PXAT(millis)),
            None,
            false,
        )
        .await
        .expect("SET as the previous release did");
}

async fn stored_bytes(store: &RedisStore<Pool>, id: &Id) -> Vec<u8> {
    let bytes: Option<Vec<u8>> = store.client().get(store.key(id)).await.expect("GET");
    bytes.expect("the session is stored")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn previous_release_sessions_load_update_touch_and_join_the_index() {
    for (topology, store) in common::every_topology("upgrade").await {
        for (format, encode) in [
            (
                "MessagePack",
                previous_release_bytes as fn(&Record) -> Vec<u8>,
            ),
            ("JSON", json_build_bytes),
        ] {
            let what = format!("{format} on {topology}");

            // Load: version 0, no user, the data and expiry as written.
            let old = old_record(json!({"cart": ["crab"], "n": 1.5}));
            write_as_previous_release(&store, &old, encode(&old)).await;
            let loaded = store.load(&old.id).await.expect("load").expect("present");
            assert_eq!(loaded, old, "{what}: an old session must load unchanged");
            assert_eq!((loaded.version, loaded.user_id.as_deref()), (0, None));

            // Update over version 0, giving the session a user.
            let mut updated = loaded.clone();
            updated.data.insert("n".into(), json!(2));
            updated.user_id = Some(format!("upgrader-{format}"));
            assert_eq!(
                store.update(&mut updated).await.expect("update"),
                Update::Written,
                "{what}: an update over version 0 must be written"
            );
            assert_eq!(updated.version, 1);
            assert_eq!(
                store.load(&old.id).await.expect("load"),
                Some(updated.clone())
            );
            assert_eq!(
                stored_bytes(&store, &old.id).await[..2],
                [0xc1, 1],
                "{what}: the update stores this release's format"
            );
            let user = updated.user_id.clone().expect("set above");
            assert_eq!(
                store.sessions_of_user(&user).await.expect("list"),
                vec![updated.clone()],
                "{what}: the updated session must be in its user's index"
            );
            assert_eq!(
                store
                    .delete_sessions_of_user(&user, None)
                    .await
                    .expect("delete of user"),
                1
            );
            assert_eq!(store.load(&old.id).await.expect("load"), None);

            // Touch: the expiry moves (as `load` sees it), nothing else.
            let old = old_record(json!({"k": "v"}));
            write_as_previous_release(&store, &old, encode(&old)).await;
            let later = common::now_micros() + Duration::days(3);
            assert!(store.touch(&old.id, later).await.expect("touch"), "{what}");
            let touched = store.load(&old.id).await.expect("load").expect("present");
            assert_eq!(
                touched.expiry_date, later,
                "{what}: touch must move the expiry"
            );
            assert_eq!(
                (touched.data, touched.version, touched.user_id),
                (old.data.clone(), 0, None),
                "{what}: touch must change nothing else"
            );
            let ttl_ms: i64 = store.client().pttl(store.key(&old.id)).await.expect("PTTL");
            assert!(
                ttl_ms > Duration::days(2).whole_milliseconds() as i64,
                "{what}: touch must move the key's TTL too, it is {ttl_ms} ms"
            );

            // A stale version over an old session conflicts with version 0.
            let old = old_record(json!({"k": "v"}));
            write_as_previous_release(&store, &old, encode(&old)).await;
            let mut stale = old.clone();
            stale.version = 5;
            assert_eq!(
                store.update(&mut stale).await.expect("update"),
                Update::Conflict(old.clone()),
                "{what}"
            );
            // Old sessions belong to nobody: a user's deletion leaves them.
            assert_eq!(
                store
                    .delete_sessions_of_user("", None)
                    .await
                    .expect("delete of user"),
                0
            );
            assert_eq!(store.load(&old.id).await.expect("load"), Some(old.clone()));
            store.delete(&old.id).await.expect("delete");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_of_an_old_session_write_once() {
    const TASKS: usize = 8;
    for (topology, store) in common::every_topology("upgrade-race").await {
        let store = Arc::new(store);
        let old = old_record(json!({"writer": null}));
        write_as_previous_release(&store, &old, previous_release_bytes(&old)).await;
        let start = Arc::new(Barrier::new(TASKS));
        let mut tasks = JoinSet::new();
        for writer in 0..TASKS {
            let store = Arc::clone(&store);
            let start = Arc::clone(&start);
            let mut mine = old.clone();
            mine.data.insert("writer".into(), json!(writer));
            tasks.spawn(async move {
                start.wait().await;
                let update = store.update(&mut mine).await.expect("update");
                (mine, update)
            });
        }
        let mut winners = Vec::new();
        let mut conflicts = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined.expect("task") {
                (mine, Update::Written) => winners.push(mine),
                (_, Update::Conflict(current)) => conflicts.push(current),
                (_, other) => panic!("{topology}: unexpected {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "{topology}: one update of version 0 wins");
        assert_eq!(
            store.load(&old.id).await.expect("load"),
            Some(winners[0].clone())
        );
        for current in conflicts {
            assert_eq!(current, winners[0], "{topology}: conflicts see the winner");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_session_saved_with_a_user_is_indexed() {
    for (topology, store) in common::every_topology("upgrade-save").await {
        let old = old_record(json!({"k": 1}));
        write_as_previous_release(&store, &old, previous_release_bytes(&old)).await;
        let mut mine = old.clone();
        mine.user_id = Some("saver".into());
        store.save(&mine).await.expect("save");
        assert_eq!(
            store.sessions_of_user("saver").await.expect("list"),
            vec![mine],
            "{topology}"
        );
    }
}
