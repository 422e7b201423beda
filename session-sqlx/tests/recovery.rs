//! Recovery: the server drops the pool's connections (as a restart or a
//! failover does) and the same store works again within a few calls, with
//! no restart of the application. A call in between may fail, and then only
//! with `Error::Backend`.
//!
//! The shared servers are never stopped: the test kills only its own pool's
//! connections, found by an `application_name` (PostgreSQL) or by the
//! connection ids the pool's connections report (MySQL/MariaDB).

#![cfg(any(feature = "postgres", feature = "mysql"))]

mod common;

use std::time::Duration;

use session_core::{
    time::{Duration as TimeDuration, OffsetDateTime},
    Record, SessionStore,
};

/// How many calls may fail after the kill: each killed connection fails at
/// most the one call that meets it (the pools here hold at most four).
const ATTEMPTS: usize = 10;

fn record() -> Record {
    let mut record = Record::new(OffsetDateTime::now_utc() + TimeDuration::hours(1));
    record.data.insert("user".into(), "ferris".into());
    // Microseconds, as every store keeps them.
    let expiry = record.expiry_date;
    record.expiry_date = expiry
        .replace_nanosecond(expiry.nanosecond() / 1_000 * 1_000)
        .expect("valid nanosecond");
    record
}

/// Runs `$call` until it succeeds, counting in `$failures` the calls that
/// failed: each must be an `Error::Backend` (a dead connection), and all
/// calls together may fail at most [`ATTEMPTS`] times. Each call is bounded
/// by the pool's acquire timeout; the outer timeout only turns a hang into
/// a failure, it measures nothing.
macro_rules! until_it_works {
    ($failures:ident, $what:literal, $call:expr) => {
        loop {
            let outcome = tokio::time::timeout(Duration::from_secs(60), $call)
                .await
                .expect(concat!(
                    "a ",
                    $what,
                    " hung after the connections were killed"
                ));
            match outcome {
                Ok(value) => break value,
                Err(error) => {
                    common::checks::assert_backend(concat!($what, " after the kill"), &error);
                    $failures += 1;
                    assert!(
                        $failures <= ATTEMPTS,
                        "the store did not recover within {ATTEMPTS} failed calls"
                    );
                }
            }
        }
    };
}

/// After the pool's connections were killed: the session is read back
/// unchanged, and create, save and load work again. Any call may meet a
/// dead connection still in the pool (not only the first: the pool hands
/// out a new connection and an old dead one in no fixed order), so every
/// call may fail once per dead connection. Returns how many calls failed.
async fn recovers<S: SessionStore>(store: &S, expected: &Record) -> usize {
    let mut failures = 0;
    let loaded = until_it_works!(failures, "load", store.load(&expected.id));
    assert_eq!(loaded.as_ref(), Some(expected), "the session changed");
    let mut fresh = record();
    until_it_works!(failures, "create", store.create(&mut fresh));
    until_it_works!(failures, "save", store.save(&fresh));
    let loaded = until_it_works!(failures, "load", store.load(&fresh.id));
    assert_eq!(loaded, Some(fresh));
    failures
}

#[cfg(feature = "postgres")]
mod postgres {
    use session_sqlx::{
        sqlx::postgres::{PgConnectOptions, PgPoolOptions},
        PostgresStore,
    };

    use super::*;

    async fn kill(application_name: &str) -> u64 {
        let admin = common::postgres::pool().await;
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        )
        .bind(application_name)
        .fetch_all(&admin)
        .await
        .expect("terminate the pool's backends");
        admin.close().await;
        killed.into_iter().filter(|&done| done).count() as u64
    }

    async fn store_named(application_name: &str, test_before_acquire: bool) -> PostgresStore {
        let options: PgConnectOptions = common::postgres::url()
            .parse::<PgConnectOptions>()
            .expect("valid URL")
            .application_name(application_name);
        // The recommended settings, except `test_before_acquire` where the
        // test checks the store without the ping's safety net.
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .min_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .test_before_acquire(test_before_acquire)
            .connect_with(options)
            .await
            .expect("connect");
        PostgresStore::new(pool)
            .with_schema_name(common::TEST_SCHEMA)
            .expect("valid schema")
            .with_table_name(common::table_name())
            .expect("valid table")
    }

    async fn recovers_after_terminate(test_before_acquire: bool) {
        let application_name = common::unique_name("session_sqlx_recovery");
        let store = store_named(&application_name, test_before_acquire).await;
        store.migrate().await.expect("migrate");
        let _table = common::postgres::DropTable(common::postgres::qualified(&store));
        let mut kept = record();
        store.create(&mut kept).await.expect("create");
        // Several connections open, so more than one dies.
        let (a, b) = tokio::join!(store.load(&kept.id), store.load(&kept.id));
        a.expect("load");
        b.expect("load");

        let killed = kill(&application_name).await;
        assert!(killed >= 1, "no connection of the pool was found to kill");
        recovers(&store, &kept).await;
        // The server's kill did not leave stray backends under our name.
        store.pool().close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn store_recovers_after_its_connections_are_terminated() {
        recovers_after_terminate(true).await;
    }

    /// Without the ping before acquire, the first call on a dead connection
    /// fails (as a backend error) and sqlx drops that connection; later calls
    /// reconnect.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn store_recovers_without_test_before_acquire() {
        recovers_after_terminate(false).await;
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    use session_sqlx::{sqlx::mysql::MySqlPoolOptions, MySqlStore};

    use super::*;

    const CONNECTIONS: u32 = 4;

    async fn store(test_before_acquire: bool) -> MySqlStore {
        let pool = MySqlPoolOptions::new()
            .max_connections(CONNECTIONS)
            .acquire_timeout(Duration::from_secs(5))
            .test_before_acquire(test_before_acquire)
            .connect(&common::mysql::url())
            .await
            .expect("connect");
        MySqlStore::new(pool)
            .with_schema_name(common::TEST_SCHEMA)
            .expect("valid schema")
            .with_table_name(common::table_name())
            .expect("valid table")
    }

    /// The server-side ids of every connection of the pool: holding them all
    /// at once opens the pool to its maximum.
    async fn connection_ids(pool: &sqlx::MySqlPool) -> Vec<u64> {
        let mut held = Vec::new();
        for _ in 0..CONNECTIONS {
            held.push(pool.acquire().await.expect("acquire"));
        }
        let mut ids = Vec::new();
        for connection in &mut held {
            let id: u64 = sqlx::query_scalar("SELECT CONNECTION_ID()")
                .fetch_one(&mut **connection)
                .await
                .expect("connection id");
            ids.push(id);
        }
        ids
    }

    async fn recovers_after_kill(test_before_acquire: bool) {
        let store = store(test_before_acquire).await;
        store.migrate().await.expect("migrate");
        let _table = common::mysql::DropTable(common::mysql::qualified(&store));
        let mut kept = record();
        store.create(&mut kept).await.expect("create");

        let ids = connection_ids(store.pool()).await;
        let admin = common::mysql::pool().await;
        for id in &ids {
            // Only ids this pool reported: no one else's connection.
            sqlx::raw_sql(&format!("KILL {id}"))
                .execute(&admin)
                .await
                .expect("kill a connection of the pool");
        }
        admin.close().await;
        recovers(&store, &kept).await;
        store.pool().close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn store_recovers_after_its_connections_are_killed() {
        recovers_after_kill(true).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn store_recovers_without_test_before_acquire() {
        recovers_after_kill(false).await;
    }
}
