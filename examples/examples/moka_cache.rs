//! moka as the cache in front of a persistent store (sled here), with the
//! expired-session sweep running on the pair.
//!
//! ```text
//! cargo run -p examples --example moka_cache
//! ```

use std::{sync::Arc, time::Duration as StdDuration};

use session_core::{
    deletion::ExpiredDeletionTask,
    time::{Duration, OffsetDateTime},
    CachingSessionStore, Record, SessionStore,
};
use session_moka::MokaStore;
use session_sled::SledStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                "info,session_core=debug,session_moka=debug,session_sled=debug".into()
            }),
        )
        .init();

    let dir = std::env::temp_dir().join("session-example-moka-cache");
    // The cache holds the 10 000 busiest sessions; sled holds them all.
    let store = Arc::new(CachingSessionStore::new(
        MokaStore::new(Some(10_000)),
        SledStore::open(&dir)?,
    ));

    // moka expires its copies by itself; the sweep removes expired sessions
    // from sled (`CachingSessionStore` forwards `delete_expired` to it).
    let sweeper = ExpiredDeletionTask::new(Arc::clone(&store), StdDuration::from_secs(60)).spawn();

    let mut record = Record::new(OffsetDateTime::now_utc() + Duration::hours(1));
    record.data.insert("user".into(), "ferris".into());
    store.create(&mut record).await?;
    // Never log the id itself: a session id in a log is a credential.
    tracing::info!("created a session");

    // Served by moka; after a restart (empty cache) sled answers and the
    // cache fills again.
    let loaded = store.load(&record.id).await?;
    tracing::info!(found = loaded.is_some(), "loaded it back");

    store.delete(&record.id).await?;
    store.store().flush_async().await?;
    let report = sweeper.shutdown().await;
    tracing::info!(?report, "sweeper stopped");
    Ok(())
}
