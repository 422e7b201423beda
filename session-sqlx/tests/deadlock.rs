//! InnoDB rolls a statement back to break a deadlock, even a statement that
//! is a transaction of its own; its manual asks the application to run it
//! again. The stores do, a bounded number of times, and the caller sees
//! the statement's result, not error 1213.
//!
//! The deadlock is forced, not hoped for: the test's own transaction holds
//! one of a user's two rows, the store's `delete_sessions_of_user` locks the
//! other and waits (seen in `information_schema.innodb_trx`), then the test
//! asks for the row the store holds. InnoDB rolls back the lighter of the
//! two, the store's statement (the test's transaction has changed many
//! rows), and the store runs it again once the test commits.

#![cfg(feature = "mysql")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use session_core::{time::OffsetDateTime, Record, SessionStore};
use sqlx::{Connection as _, Executor as _};

/// How long the store's statement may take to start waiting for the row
/// the test holds: a bound on a poll, which returns as soon as it does.
const WAIT_BOUND: Duration = Duration::from_secs(30);

/// Rows the test's transaction changes so that InnoDB, which rolls back the
/// transaction that changed fewer rows, picks the store's statement.
const WEIGHT: u32 = 200;

/// How many deadlocks InnoDB has broken since the server started (MySQL and
/// MariaDB both keep this counter, enabled by default).
async fn deadlocks(connection: &mut sqlx::MySqlConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT `count` FROM information_schema.innodb_metrics WHERE name = 'lock_deadlocks'",
    )
    .fetch_one(connection)
    .await
    .expect("read the lock_deadlocks metric")
}

/// Whether a transaction of `DELETE FROM .. table` waits for a row lock, as
/// `SHOW ENGINE INNODB STATUS` lists it (MariaDB's `innodb_trx` table leaves
/// out a transaction waiting this way; the status text, on MySQL as on
/// MariaDB, shows each transaction with `LOCK WAIT` and its statement).
async fn delete_waits(connection: &mut sqlx::MySqlConnection, table: &str) -> bool {
    let (_, _, status): (String, String, String) = sqlx::query_as("SHOW ENGINE INNODB STATUS")
        .fetch_one(connection)
        .await
        .expect("read the InnoDB status");
    status.split("---TRANSACTION").any(|transaction| {
        transaction.contains("LOCK WAIT")
            && transaction.contains("DELETE FROM")
            && transaction.contains(table)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_rolled_back_by_a_deadlock_runs_again() {
    let (store, _table) = common::mysql::store().await;
    let table = common::mysql::qualified(&store);

    // Two sessions of one user, the one whose id sorts first also expiring
    // first, so that the `DELETE` reaches it first whichever index it walks.
    let now = OffsetDateTime::now_utc();
    let mut first = Record::new(now + session_core::time::Duration::hours(1));
    let mut second = Record::new(now + session_core::time::Duration::hours(1));
    for record in [&mut first, &mut second] {
        record.user_id = Some("deadlocked".to_owned());
        store.create(record).await.expect("create");
    }
    if second.id.to_string() < first.id.to_string() {
        std::mem::swap(&mut first, &mut second);
    }
    second.expiry_date = now + session_core::time::Duration::hours(2);
    store.save(&second).await.expect("save");

    // The weight, in a table of its own, so that its locks are apart.
    let weight = format!("{}_weight", table.trim_end_matches('`'));
    let weight = format!("{weight}`");
    sqlx::raw_sql(&format!(
        "CREATE TABLE {weight} (n INT PRIMARY KEY); \
         INSERT INTO {weight} WITH RECURSIVE s (n) AS \
         (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {WEIGHT}) SELECT n FROM s"
    ))
    .execute(store.pool())
    .await
    .expect("create and fill the weight table");
    // Declared before the connection, so dropped after it: the connection's
    // open transaction would keep the `DROP TABLE` waiting for ever.
    let _weight_table = common::mysql::DropTable(weight.clone());
    let mut test = sqlx::MySqlConnection::connect(&common::mysql::url())
        .await
        .expect("connect");
    let deadlocks_before = deadlocks(&mut test).await;

    test.execute("BEGIN").await.expect("begin");
    test.execute(format!("UPDATE {weight} SET n = n + {WEIGHT}").as_str())
        .await
        .expect("weigh the transaction");
    sqlx::query(&format!("SELECT id FROM {table} WHERE id = ? FOR UPDATE"))
        .bind(second.id.to_string())
        .execute(&mut test)
        .await
        .expect("hold the second row");

    let deleting = tokio::spawn({
        let store = store.clone();
        async move { store.delete_sessions_of_user("deadlocked", None).await }
    });

    // Until the store's `DELETE` holds the first row and waits for the second.
    let started = Instant::now();
    while !delete_waits(&mut test, store.table_name()).await {
        assert!(
            started.elapsed() < WAIT_BOUND,
            "the store's DELETE never waited for the row the test holds"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // The cycle: InnoDB rolls the store's statement back, the test gets the row.
    sqlx::query(&format!("SELECT id FROM {table} WHERE id = ? FOR UPDATE"))
        .bind(first.id.to_string())
        .execute(&mut test)
        .await
        .expect("the test's transaction, the heavier, must not be the victim");
    test.execute("COMMIT").await.expect("commit");

    let deleted = deleting
        .await
        .unwrap()
        .expect("the deadlock victim must run again, not fail");
    assert_eq!(deleted, 2, "both sessions of the user are deleted");
    assert!(
        deadlocks(&mut test).await > deadlocks_before,
        "InnoDB reported no deadlock: the test did not force one"
    );
    assert_eq!(store.load(&first.id).await.expect("load"), None);
    assert_eq!(store.load(&second.id).await.expect("load"), None);
    assert!(store
        .sessions_of_user("deadlocked")
        .await
        .expect("list")
        .is_empty());
}
