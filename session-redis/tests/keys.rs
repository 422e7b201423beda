//! What the store leaves in Redis: key layout, TTLs, upserts on vanished
//! keys, and no lingering expired records. Uses a plain fred `Client` (the
//! other tests use a `Pool`).

mod common;

use serde_json::json;
use session_core::{
    time::{Duration, OffsetDateTime},
    ExpiredDeletion, Record, SessionStore,
};
use session_redis::{
    fred::prelude::{Client, ClientLike, Config, KeysInterface},
    RedisStore,
};

async fn client_store(topic: &str) -> RedisStore<Client> {
    let config = Config::from_url(&common::redis_url()).expect("valid Redis URL");
    let client = session_redis::recommended_builder(config)
        .build()
        .expect("build a fred client");
    client.init().await.expect("connect to Redis");
    RedisStore::new(client).with_key_prefix(common::unique_prefix(topic))
}

fn record_in(ttl: Duration) -> Record {
    let mut record = Record::new(common::now_micros() + ttl);
    record.data.insert("k".into(), json!("v"));
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_prefix_separator_id_with_an_absolute_ttl() {
    let store = client_store("layout").await;
    let mut record = record_in(Duration::hours(1));
    store.create(&mut record).await.expect("create");

    let key = format!("{}:{}", store.key_prefix(), record.id);
    assert_eq!(store.key(&record.id), key);
    let exists: i64 = store.client().exists(&key).await.expect("EXISTS");
    assert_eq!(exists, 1, "the session is not under {key}");
    let expire_at_ms: i64 = store
        .client()
        .pexpire_time(&key)
        .await
        .expect("PEXPIRETIME");
    let wanted_ms = (record.expiry_date.unix_timestamp_nanos() / 1_000_000) as i64;
    assert!(
        (wanted_ms..=wanted_ms + 1).contains(&expire_at_ms),
        "PXAT {expire_at_ms} is not the expiry date {wanted_ms} rounded up"
    );

    // The value: this release's header (0xc1, format 1, version 0), no user.
    let value: Vec<u8> = store.client().get(&key).await.expect("GET");
    assert_eq!(value[..10], [0xc1, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(value[26..31], [0, 0, 0, 0, 0], "no user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touch_moves_the_header_and_the_ttl_together() {
    let store = client_store("touch").await;
    let mut record = record_in(Duration::hours(1));
    store.create(&mut record).await.expect("create");
    let key = store.key(&record.id);
    let later = common::now_micros() + Duration::days(2);
    assert!(store.touch(&record.id, later).await.expect("touch"));
    let expire_at_ms: i64 = store
        .client()
        .pexpire_time(&key)
        .await
        .expect("PEXPIRETIME");
    let wanted_ms = (later.unix_timestamp_nanos() / 1_000_000) as i64;
    assert!(
        (wanted_ms..=wanted_ms + 1).contains(&expire_at_ms),
        "after touch, PXAT {expire_at_ms} is not the new expiry {wanted_ms}"
    );
    let loaded = store
        .load(&record.id)
        .await
        .expect("load")
        .expect("present");
    assert_eq!(loaded.expiry_date, later);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_writes_even_when_the_key_vanished() {
    let store = client_store("vanished").await;
    let mut record = record_in(Duration::hours(1));
    store.create(&mut record).await.expect("create");
    let _: i64 = store
        .client()
        .del(store.key(&record.id))
        .await
        .expect("DEL behind the store's back");
    record.data.insert("k".into(), json!("changed"));
    store.save(&record).await.expect("save");
    assert_eq!(store.load(&record.id).await.expect("load"), Some(record));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_records_never_linger_in_redis() {
    let store = client_store("linger").await;

    // An upsert to a past expiry removes the session outright.
    let mut record = record_in(Duration::hours(1));
    store.create(&mut record).await.expect("create");
    record.expiry_date = OffsetDateTime::now_utc() - Duration::seconds(1);
    store.save(&record).await.expect("save expired");
    let exists: i64 = store
        .client()
        .exists(store.key(&record.id))
        .await
        .expect("EXISTS");
    assert_eq!(exists, 0, "an expired save left the key behind");

    // Created already expired, or before the epoch: nothing is kept.
    for expiry in [
        OffsetDateTime::now_utc() - Duration::minutes(5),
        OffsetDateTime::UNIX_EPOCH - Duration::days(1),
    ] {
        let mut record = record_in(Duration::ZERO);
        record.expiry_date = expiry;
        store.create(&mut record).await.expect("create expired");
        let exists: i64 = store
            .client()
            .exists(store.key(&record.id))
            .await
            .expect("EXISTS");
        assert_eq!(exists, 0, "an expired create left the key behind");
    }
    assert_eq!(store.delete_expired().await.expect("sweep"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_is_new_enough() {
    let store = client_store("version").await;
    store
        .save(&record_in(Duration::hours(1)))
        .await
        .expect("save");
    let version = store
        .client()
        .server_version()
        .expect("fred read the server version on connect");
    assert!(
        (version.major, version.minor) >= session_redis::MIN_REDIS_VERSION,
        "the test Redis is {version}"
    );
}
