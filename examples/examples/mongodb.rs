//! Sessions in MongoDB: the TTL index, and the expired-deletion task beside it.
//!
//! ```text
//! MONGODB_URL=mongodb://127.0.0.1:27117 cargo run -p examples --example mongodb
//! ```
//!
//! MongoDB's TTL monitor removes expired sessions about once a minute, using
//! the index `migrate` creates; `load` never returns an expired session in
//! the meantime. The deletion task is for when you want the sweep on your own
//! schedule (or a count of what was removed): here it runs beside the index.

use std::time::Duration;

use serde_json::json;
use session_core::{
    deletion::ExpiredDeletionTask,
    time::{self, OffsetDateTime},
    Record, SessionStore,
};
use session_mongodb::MongoDBStore;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let url =
        std::env::var("MONGODB_URL").unwrap_or_else(|_| "mongodb://127.0.0.1:27117".to_owned());
    // Bounded timeouts: a server that is down fails a call within seconds.
    let store = MongoDBStore::connect(&url, "session_examples")
        .await?
        .with_collection_name("sessions");
    // The TTL index on `expires_at`; idempotent, so run it at every start.
    store.migrate().await?;

    // One session that lives, two that are already expired.
    let mut alive = Record::new(OffsetDateTime::now_utc() + time::Duration::hours(1));
    alive.data.insert("user".into(), json!("ferris"));
    store.create(&mut alive).await?;
    for n in 0..2 {
        let mut expired = Record::new(OffsetDateTime::now_utc() - time::Duration::seconds(1));
        expired.data.insert("n".into(), json!(n));
        store.create(&mut expired).await?;
        assert_eq!(store.load(&expired.id).await?, None, "never returned");
    }
    tracing::info!("created one live and two expired sessions");

    // Sweep at once, then every five minutes; stop on Ctrl-C or after a
    // moment, whichever comes first.
    let task = ExpiredDeletionTask::new(store.clone(), Duration::from_secs(300)).spawn();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
    let report = task.shutdown().await;
    tracing::info!(
        removed = report.removed,
        sweeps = report.sweeps,
        failed = report.failed_sweeps,
        "deletion task stopped"
    );

    // Expiry dates are kept to the microsecond, so compare the data.
    let loaded = store.load(&alive.id).await?;
    assert_eq!(loaded.map(|record| record.data), Some(alive.data.clone()));
    store.delete(&alive.id).await?;
    Ok(())
}
