//! The user index is a SQLite index on the sessions table: its entries come
//! and go with the rows, whatever removes or changes them.

#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure.

mod common;

use rusqlite::Connection;
use session_core::{time::Duration, ExpiredDeletion, Record, SessionStore, Update};
use session_testkit::suite::{now_micros, record_expiring_in};

/// How many entries the user index holds for `user`, read from the index
/// alone (`INDEXED BY` makes SQLite use it or fail).
fn index_entries(raw: &Connection, user: &str) -> i64 {
    raw.query_row(
        "SELECT count(*) FROM sessions INDEXED BY sessions_user_id_idx WHERE user_id = ?1",
        [user],
        |row| row.get(0),
    )
    .unwrap()
}

fn all_index_entries(raw: &Connection) -> i64 {
    raw.query_row(
        "SELECT count(*) FROM sessions INDEXED BY sessions_user_id_idx WHERE user_id IS NOT NULL",
        [],
        |row| row.get(0),
    )
    .unwrap()
}

fn assert_integrity(raw: &Connection) {
    let check: String = raw
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok", "the indexes disagree with the table");
}

fn of_user(user: &str) -> Record {
    let mut record = record_expiring_in(Duration::hours(1), serde_json::json!({"u": user}));
    record.user_id = Some(user.to_owned());
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_entries_go_with_delete_sweep_update_and_save() {
    let temp = common::temp_store().await;
    let store = &temp.store;
    let raw = Connection::open(temp.path()).unwrap();
    raw.busy_timeout(std::time::Duration::from_secs(5)).unwrap();

    let mut alice = [of_user("alice"), of_user("alice")];
    for record in &mut alice {
        store.create(record).await.unwrap();
    }
    let mut expired = of_user("alice");
    expired.expiry_date = now_micros() - Duration::seconds(1);
    store.save(&expired).await.unwrap();
    let mut bob = of_user("bob");
    store.create(&mut bob).await.unwrap();
    let mut anonymous = record_expiring_in(Duration::hours(1), serde_json::json!({}));
    store.create(&mut anonymous).await.unwrap();
    assert_eq!(index_entries(&raw, "alice"), 3);
    assert_eq!(
        all_index_entries(&raw),
        4,
        "rows without a user are not indexed"
    );

    store.delete(&alice[0].id).await.unwrap();
    assert_eq!(index_entries(&raw, "alice"), 2);

    assert_eq!(store.delete_expired().await.unwrap(), 1);
    assert_eq!(index_entries(&raw, "alice"), 1);

    alice[1].user_id = Some("bob".into());
    assert_eq!(store.update(&mut alice[1]).await.unwrap(), Update::Written);
    assert_eq!(index_entries(&raw, "alice"), 0);
    assert_eq!(index_entries(&raw, "bob"), 2);

    assert_eq!(
        store
            .delete_sessions_of_user("bob", Some(&bob.id))
            .await
            .unwrap(),
        1
    );
    assert_eq!(index_entries(&raw, "bob"), 1);

    bob.user_id = None;
    store.save(&bob).await.unwrap();
    assert_eq!(all_index_entries(&raw), 0);
    let rows: i64 = raw
        .query_row("SELECT count(*) FROM sessions", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 2, "bob's and the anonymous session remain");
    assert_integrity(&raw);
}

/// User ids are compared as SQLite's BINARY collation does: byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_ids_match_byte_for_byte() {
    let temp = common::temp_store().await;
    let store = &temp.store;
    let users = [
        "alice",
        "Alice",
        "alice ",
        "ALICE",
        "alice\0",
        "alıce",
        "alice\u{301}",
    ];
    let mut records = Vec::new();
    for user in users {
        let mut record = of_user(user);
        store.create(&mut record).await.unwrap();
        records.push(record);
    }
    for record in &records {
        let user = record.user_id.as_deref().unwrap();
        assert_eq!(
            store.sessions_of_user(user).await.unwrap(),
            std::slice::from_ref(record),
            "{user:?}"
        );
    }
    assert_eq!(
        store.delete_sessions_of_user("alice", None).await.unwrap(),
        1
    );
    for record in &records[1..] {
        assert_eq!(store.load(&record.id).await.unwrap().as_ref(), Some(record));
    }
}
