//! The core without any server: a `MemoryStore` behind a
//! `CachingSessionStore`, sessions created, saved, loaded and expired, and the
//! expired-deletion task running and shutting down cleanly.
//!
//! ```sh
//! cargo run -p examples --example core
//! ```

use std::time::Duration;

use serde_json::json;
use session_core::{
    deletion::ExpiredDeletionTask,
    time::{Duration as TimeDuration, OffsetDateTime},
    CachingSessionStore, Record, SessionStore,
};
use session_memory::MemoryStore;

#[tokio::main]
async fn main() -> Result<(), session_core::Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,session_core=debug".into()),
        )
        .init();

    // A cache in front of a store. With a database, the store would be e.g.
    // a `PostgresStore` and the cache a `MokaStore`.
    let durable = MemoryStore::default();
    let store = CachingSessionStore::new(MemoryStore::default(), durable.clone());

    // Sweep expired sessions every 200 ms (a minute or more in production).
    let deletion = ExpiredDeletionTask::new(durable.clone(), Duration::from_millis(200))
        .with_jitter(Duration::from_millis(50))
        .spawn();

    // A visitor's session: created with a fresh id, then changed and saved.
    let mut session = Record::new(OffsetDateTime::now_utc() + TimeDuration::hours(1));
    session.data.insert("user".into(), json!("ferris"));
    store.create(&mut session).await?;
    session
        .data
        .insert("cart".into(), json!(["crab plush", "rust mug"]));
    store.save(&session).await?;
    // Never log the id itself: a session id in a log is a credential.
    tracing::info!("session saved");

    let loaded = store.load(&session.id).await?;
    assert_eq!(loaded.as_ref(), Some(&session));
    tracing::info!(data = ?loaded.map(|r| r.data), "session loaded");

    // A short-lived session: it stops loading at its expiry date, and the
    // deletion task frees it shortly after.
    let mut short = Record::new(OffsetDateTime::now_utc() + TimeDuration::milliseconds(300));
    store.create(&mut short).await?;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(store.load(&short.id).await?, None);
    tracing::info!(
        remaining = durable.len(),
        "short session expired and was swept"
    );

    store.delete(&session.id).await?;
    let report = deletion.shutdown().await;
    tracing::info!(
        removed = report.removed,
        sweeps = report.sweeps,
        failed = report.failed_sweeps,
        "deletion task stopped"
    );
    Ok(())
}
