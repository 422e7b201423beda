//! Sessions in a SQLite file with `session-rusqlite`: open the store, run
//! `migrate()`, use it, and sweep expired sessions with the deletion task.
//!
//! `cargo run -p examples --example rusqlite [path/to/sessions.db]`
//! (default: `sessions-example.db` in the system's temporary directory).

use std::time::Duration;

use session_core::{
    deletion::ExpiredDeletionTask,
    time::{Duration as TimeDuration, OffsetDateTime},
    Record, SessionStore,
};
use session_rusqlite::{RusqliteOptions, RusqliteStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,session_rusqlite=debug".into()),
        )
        .init();

    let path = std::env::args_os()
        .nth(1)
        .map(Into::into)
        .unwrap_or_else(|| std::env::temp_dir().join("sessions-example.db"));

    // One writer and two readers, WAL mode; wait up to 2 s for a lock held by
    // another process sharing the file.
    let options = RusqliteOptions::new()
        .readers(2)
        .busy_timeout(Duration::from_secs(2));
    let store = RusqliteStore::open_with(&path, options)
        .await?
        .with_table_name("example_sessions")?;
    // Idempotent, and safe when several processes start at once.
    store.migrate().await?;

    // A session that has already expired: `load` ignores it at once, and the
    // deletion task's first sweep removes it.
    let stale = Record::new(OffsetDateTime::now_utc() - TimeDuration::minutes(1));
    store.save(&stale).await?;
    assert!(store.load(&stale.id).await?.is_none());

    // Sweep now, then every 10 minutes (give or take a minute).
    let sweeper = ExpiredDeletionTask::new(store.clone(), Duration::from_secs(600))
        .with_jitter(Duration::from_secs(60))
        .spawn();

    let mut session = Record::new(OffsetDateTime::now_utc() + TimeDuration::hours(1));
    session.data.insert("user".into(), "ferris".into());
    store.create(&mut session).await?;
    let loaded = store.load(&session.id).await?;
    tracing::info!(found = loaded.is_some(), path = %path.display(), "session stored");

    tokio::time::sleep(Duration::from_millis(200)).await;
    let report = sweeper.shutdown().await;
    tracing::info!(
        removed = report.removed,
        sweeps = report.sweeps,
        failed = report.failed_sweeps,
        "deletion task stopped"
    );
    store.close().await;
    Ok(())
}
