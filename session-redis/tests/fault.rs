//! A Redis that goes away gives `Error::Backend` within the documented bound
//! instead of hanging, and the store recovers when Redis comes back.
//!
//! The test runs a redis-server of its own on a free loopback port (never
//! the shared 6379), stops it and starts it again on the same port.

mod common;

use std::time::{Duration as StdDuration, Instant};

use serde_json::json;
use session_core::{time::Duration, Record, SessionStore};
use session_redis::{RedisStore, COMMAND_TIMEOUT};
use session_testkit::RedisServer;

/// Slack on top of [`COMMAND_TIMEOUT`] for a loaded, shared machine: the
/// check is that calls do not hang, not how fast they fail.
const SLACK: StdDuration = StdDuration::from_secs(10);

fn record() -> Record {
    let mut record = Record::new(common::now_micros() + Duration::hours(1));
    record.data.insert("k".into(), json!("v"));
    record
}

async fn must_fail_as_backend<T: std::fmt::Debug>(
    what: &str,
    call: impl std::future::Future<Output = session_core::Result<T>>,
) {
    let started = Instant::now();
    match tokio::time::timeout(COMMAND_TIMEOUT + SLACK, call).await {
        Err(_) => panic!(
            "{what} against a stopped Redis still hangs after {:?}",
            started.elapsed()
        ),
        Ok(Ok(value)) => panic!("{what} against a stopped Redis succeeded: {value:?}"),
        Ok(Err(error)) => {
            assert!(
                error.is_backend(),
                "{what}: expected Error::Backend, got {error:?}"
            );
            let source = std::error::Error::source(&error).expect("the fred error is the source");
            assert!(
                source
                    .downcast_ref::<session_redis::fred::error::Error>()
                    .is_some(),
                "{what}: the source is not a fred error: {source:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_redis_fails_in_bounded_time_and_the_store_recovers() {
    let mut redis = RedisServer::start("session-redis-fault");
    let pool = common::connect(&redis.url()).await;
    let store = RedisStore::new(pool).with_key_prefix(common::unique_prefix("fault"));

    let mut before = record();
    store
        .create(&mut before)
        .await
        .expect("create while Redis is up");
    assert_eq!(
        store.load(&before.id).await.expect("load"),
        Some(before.clone())
    );

    redis.stop();
    must_fail_as_backend("load", store.load(&before.id)).await;
    must_fail_as_backend("save", store.save(&before)).await;
    let mut created = record();
    must_fail_as_backend("create", store.create(&mut created)).await;
    must_fail_as_backend("delete", store.delete(&before.id)).await;
    let mut updated = before.clone();
    must_fail_as_backend("update", store.update(&mut updated)).await;
    must_fail_as_backend("touch", store.touch(&before.id, before.expiry_date)).await;
    must_fail_as_backend("sessions_of_user", store.sessions_of_user("u")).await;
    must_fail_as_backend(
        "delete_sessions_of_user",
        store.delete_sessions_of_user("u", None),
    )
    .await;

    redis.restart();
    // fred reconnects on its own (backoff of at most a second); wait for it.
    let after = record();
    let deadline = Instant::now() + StdDuration::from_secs(30);
    loop {
        match store.save(&after).await {
            Ok(()) => break,
            Err(error) => {
                assert!(error.is_backend(), "unexpected error {error:?}");
                assert!(
                    Instant::now() < deadline,
                    "the store did not recover after Redis came back: {error}"
                );
                tokio::time::sleep(StdDuration::from_millis(100)).await;
            }
        }
    }
    assert_eq!(
        store.load(&after.id).await.expect("load after recovery"),
        Some(after)
    );
    let mut fresh = record();
    store
        .create(&mut fresh)
        .await
        .expect("create after recovery");
    assert_eq!(store.load(&fresh.id).await.expect("load"), Some(fresh));
}

/// A server that lost its script cache (a restart, a failover, `SCRIPT
/// FLUSH`) answers `EVALSHA` with `NOSCRIPT`; the store sends the script
/// with `EVAL` then, and every operation goes on working. On a server of the
/// test's own, so flushing its scripts disturbs no other test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_script_cache_is_refilled() {
    use session_redis::fred::prelude::LuaInterface;

    let redis = RedisServer::start("session-redis-fault");
    let pool = common::connect(&redis.url()).await;
    let store = RedisStore::new(pool).with_key_prefix(common::unique_prefix("noscript"));
    let mut record = record();
    record.user_id = Some("flushed".into());
    for round in 0..3 {
        store
            .client()
            .script_flush_cluster(false)
            .await
            .expect("SCRIPT FLUSH");
        if round == 0 {
            store
                .create(&mut record)
                .await
                .expect("create after a flush");
        } else {
            record.data.insert("round".into(), json!(round));
            assert!(store
                .update(&mut record)
                .await
                .expect("update after a flush")
                .is_written());
        }
        store
            .client()
            .script_flush_cluster(false)
            .await
            .expect("SCRIPT FLUSH");
        let later = record.expiry_date + Duration::days(round + 1);
        assert!(store
            .touch(&record.id, later)
            .await
            .expect("touch after a flush"));
        record.expiry_date = later;
        store
            .client()
            .script_flush_cluster(false)
            .await
            .expect("SCRIPT FLUSH");
        assert_eq!(
            store.sessions_of_user("flushed").await.expect("list"),
            vec![record.clone()]
        );
    }
    store
        .client()
        .script_flush_cluster(false)
        .await
        .expect("SCRIPT FLUSH");
    assert_eq!(
        store
            .delete_sessions_of_user("flushed", None)
            .await
            .expect("delete after a flush"),
        1
    );
}
