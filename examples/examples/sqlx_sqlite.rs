//! Sessions in SQLite with `session-sqlx`: a pool on a WAL-mode file with
//! bounded waits, `migrate()`, a round trip, and the expired-deletion task.
//!
//! `cargo run -p examples --example sqlx_sqlite`
//!
//! Keeps its database in a fresh temporary directory, removed at the end.

use std::time::Duration;

use session_core::{
    deletion::ExpiredDeletionTask,
    time::{Duration as TimeDuration, OffsetDateTime},
    Record, SessionStore,
};
use session_sqlx::{
    sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions},
    SqliteStore,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,session_sqlx=debug".into()),
        )
        .init();

    let dir = std::env::temp_dir().join(format!("session-sqlx-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let options = SqliteConnectOptions::new()
        .filename(dir.join("sessions.db"))
        .create_if_missing(true)
        // Readers do not wait for the writer.
        .journal_mode(SqliteJournalMode::Wal)
        // A writer waits this long for another one before `SQLITE_BUSY`.
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        // The bound on a failure: a call that cannot get a working
        // connection (file unopenable, pool exhausted) is `Error::Backend`
        // after at most this long, opening included.
        .acquire_timeout(Duration::from_secs(5))
        // Ping a pooled connection before handing it out (sqlx's default),
        // so one the server dropped is replaced rather than failing a call.
        .test_before_acquire(true)
        .connect_with(options)
        .await?;
    let store = SqliteStore::new(pool).with_table_name("sqlx_example_sessions")?;
    // Idempotent, and safe when several processes open the file at once.
    store.migrate().await?;

    // An expired session: `load` ignores it at once, the first sweep
    // removes it.
    let stale = Record::new(OffsetDateTime::now_utc() - TimeDuration::minutes(1));
    store.save(&stale).await?;
    assert!(store.load(&stale.id).await?.is_none());

    // Sweeps now, then every 10 minutes give or take a minute.
    let sweeper = ExpiredDeletionTask::new(store.clone(), Duration::from_secs(600))
        .with_jitter(Duration::from_secs(60))
        .spawn();

    let mut session = Record::new(OffsetDateTime::now_utc() + TimeDuration::hours(1));
    session.data.insert("user".into(), "ferris".into());
    store.create(&mut session).await?;
    let loaded = store.load(&session.id).await?;
    // Expiry dates come back to the microsecond; the data exactly.
    assert_eq!(loaded.map(|record| record.data), Some(session.data.clone()));
    tracing::info!("session stored and loaded");
    store.delete(&session.id).await?;

    // Give the first sweep a moment, then stop the task cleanly.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let report = sweeper.shutdown().await;
    tracing::info!(
        removed = report.removed,
        sweeps = report.sweeps,
        failed = report.failed_sweeps,
        "deletion task stopped"
    );
    store.pool().close().await;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
