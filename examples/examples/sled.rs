//! sled as an embedded, persistent session store: sessions survive the
//! process, and expired ones are swept through sled's expiry index.
//!
//! ```text
//! cargo run -p examples --example sled          # run it twice: the visit count goes on
//! ```

use session_core::{
    time::{Duration, OffsetDateTime},
    ExpiredDeletion, Id, Record, SessionStore,
};
use session_sled::SledStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();

    let dir = std::env::temp_dir().join("session-example-sled");
    let store = SledStore::open(&dir)?;

    // The id a cookie would carry between runs; here, a file beside the db.
    let id_file = dir.join("example-session-id");
    let known: Option<Id> = std::fs::read_to_string(&id_file)
        .ok()
        .and_then(|text| text.trim().parse().ok());

    let mut record = match known {
        Some(id) => store.load(&id).await?,
        None => None,
    }
    .unwrap_or_else(|| Record::new(OffsetDateTime::now_utc() + Duration::days(1)));
    let visits = record
        .data
        .get("visits")
        .and_then(|v| v.as_u64())
        .unwrap_or(0)
        + 1;
    record.data.insert("visits".into(), visits.into());
    record.expiry_date = OffsetDateTime::now_utc() + Duration::days(1);
    if known == Some(record.id) {
        store.save(&record).await?;
    } else {
        store.create(&mut record).await?;
        std::fs::write(&id_file, record.id.to_string())?;
    }
    tracing::info!(visits, "session saved");

    // sled writes to disk every 500 ms and on close; flush to be sure now.
    store.flush_async().await?;
    let removed = store.delete_expired().await?;
    tracing::info!(removed, "expired sessions swept");
    Ok(())
}
