//! Rows the store cannot read back are `Error::Decode`, and only for them.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure.

mod common;

use rusqlite::{params, Connection};
use session_core::{time::Duration, Error, Id, SessionStore};
use session_testkit::suite::{now_micros, record_expiring_in};

fn future_micros() -> i64 {
    let expiry = now_micros() + Duration::hours(1);
    i64::try_from(expiry.unix_timestamp_nanos() / 1_000).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_rows_are_decode_errors_and_leave_others_readable() {
    let temp = common::temp_store().await;
    let store = &temp.store;
    let mut good = record_expiring_in(Duration::hours(1), serde_json::json!({"user": "ferris"}));
    store.create(&mut good).await.unwrap();

    // Another connection writes what no store would.
    let raw = Connection::open(temp.path()).unwrap();
    raw.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    let garbage: Vec<(Id, rusqlite::types::Value, rusqlite::types::Value)> = vec![
        // Not JSON at all.
        (
            Id::default(),
            b"\xff\x00garbage".to_vec().into(),
            future_micros().into(),
        ),
        // JSON, but not an object.
        (
            Id::default(),
            b"[1, 2, 3]".to_vec().into(),
            future_micros().into(),
        ),
        // Data of the wrong type.
        (Id::default(), 42_i64.into(), future_micros().into()),
        // An expiry that is text, not microseconds.
        (
            Id::default(),
            b"{}".to_vec().into(),
            "2099-01-01T00:00:00Z".to_owned().into(),
        ),
        // An expiry that is a float, not integer microseconds. (Every i64 is
        // a date when `time`'s `large-dates` is on, so an out-of-range
        // integer is not garbage in every build.)
        (
            Id::default(),
            b"{}".to_vec().into(),
            4_000_000_000_000_000.5_f64.into(),
        ),
    ];
    for (id, data, expiry) in &garbage {
        raw.execute(
            "INSERT INTO sessions (id, data, expiry_date) VALUES (?1, ?2, ?3)",
            params![id.to_string(), data, expiry],
        )
        .unwrap();
    }

    for (id, data, expiry) in &garbage {
        match store.load(id).await {
            Err(Error::Decode(_)) => {}
            other => panic!("row ({data:?}, {expiry:?}) should be a decode error: {other:?}"),
        }
    }
    // The good session still loads, and the store still writes.
    assert_eq!(store.load(&good.id).await.unwrap().as_ref(), Some(&good));
    let mut other = record_expiring_in(Duration::hours(1), serde_json::json!({"n": 2}));
    store.create(&mut other).await.unwrap();
    assert_eq!(store.load(&other.id).await.unwrap(), Some(other));
    // A garbage row can be replaced by a good one.
    let mut fixed = good.clone();
    fixed.id = garbage[0].0;
    store.save(&fixed).await.unwrap();
    assert_eq!(store.load(&fixed.id).await.unwrap(), Some(fixed));
}

/// A version or user that no store writes, in a row another connection
/// wrote or changed: `Error::Decode` from every read of that row (`load`,
/// the user index, the record an `update` conflicts with), never a panic,
/// and the neighbours stay readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_versions_and_users_are_decode_errors() {
    let temp = common::temp_store().await;
    let store = &temp.store;
    let mut good = record_expiring_in(Duration::hours(1), serde_json::json!({"ok": true}));
    good.user_id = Some("mallory".into());
    store.create(&mut good).await.unwrap();

    let raw = Connection::open(temp.path()).unwrap();
    raw.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    // (version, user_id) pairs as SQL expressions.
    let corrupt = [
        ("-1", "'mallory'"),
        ("'seven'", "'mallory'"),
        ("2.5", "'mallory'"),
        ("x'00'", "'mallory'"),
        ("0", "x'6d616c6c6f7279'"),
        // Text that is not UTF-8 (its bytes cast to TEXT).
        ("0", "CAST(x'ff00' AS TEXT)"),
    ];
    let mut ids = Vec::new();
    for (version, user) in corrupt {
        let id = Id::default();
        raw.execute(
            &format!(
                "INSERT INTO sessions (id, data, expiry_date, version, user_id) \
                 VALUES (?1, ?2, ?3, {version}, {user})"
            ),
            params![id.to_string(), b"{}".to_vec(), future_micros()],
        )
        .unwrap();
        ids.push((id, version, user));
    }
    for (id, version, user) in &ids {
        let error = store
            .load(id)
            .await
            .expect_err("a corrupt row must not load");
        assert!(error.is_decode(), "({version}, {user}): {error:?}");
        let mut record = record_expiring_in(Duration::hours(1), serde_json::json!({}));
        record.id = *id;
        record.version = 99;
        let error = store
            .update(&mut record)
            .await
            .expect_err("a conflict with a corrupt row cannot return it");
        assert!(error.is_decode(), "({version}, {user}): {error:?}");
    }
    // A user whose rows include a corrupt one cannot be listed...
    let error = store.sessions_of_user("mallory").await.unwrap_err();
    assert!(error.is_decode(), "{error:?}");
    // ...but can be logged out everywhere, and the good rows stay readable.
    assert_eq!(store.load(&good.id).await.unwrap().as_ref(), Some(&good));
    assert_eq!(
        store
            .delete_sessions_of_user("mallory", Some(&good.id))
            .await
            .unwrap(),
        4
    );
    assert_eq!(store.sessions_of_user("mallory").await.unwrap(), [good]);
}

/// A user-index row whose id is not an id is a decode error for the
/// listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_id_in_the_user_index_is_a_decode_error() {
    let temp = common::temp_store().await;
    let raw = Connection::open(temp.path()).unwrap();
    raw.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    for (n, id) in [
        rusqlite::types::Value::from("not an id".to_owned()),
        rusqlite::types::Value::from(7_i64),
    ]
    .into_iter()
    .enumerate()
    {
        let user = format!("user{n}");
        raw.execute(
            "INSERT INTO sessions (id, data, expiry_date, user_id) VALUES (?1, ?2, ?3, ?4)",
            params![id, b"{}".to_vec(), future_micros(), user],
        )
        .unwrap();
        let error = temp.store.sessions_of_user(&user).await.unwrap_err();
        assert!(error.is_decode(), "{id:?}: {error:?}");
    }
}
