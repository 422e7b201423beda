//! Signed cookies with key rotation: the newest key signs, older keys still
//! verify, so a secret can change without logging anyone out.
//!
//! ```sh
//! SESSION_KEY=$(head -c 64 /dev/urandom | base64 -w0) cargo run -p examples --example signed
//! ```
//!
//! `SESSION_KEY` (and optionally `SESSION_KEY_OLD`) are base64 of at least 64
//! bytes of secret; without them a random key is generated at start.

use axum::{routing::get, Router};
use base64::{engine::general_purpose::STANDARD, Engine as _};
use session_memory::MemoryStore;
use session_tower::{Key, Keys, Session, SessionManagerLayer};

fn key_from_env(name: &str) -> Option<Key> {
    let text = std::env::var(name).ok()?;
    let bytes = match STANDARD.decode(text.trim()) {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::error!(%error, "{name} is not base64; ignoring it");
            return None;
        }
    };
    match Key::try_from(bytes.as_slice()) {
        Ok(key) => Some(key),
        Err(error) => {
            tracing::error!(%error, "{name} is not a usable key (64 bytes or more); ignoring it");
            None
        }
    }
}

async fn counter(session: Session) -> Result<String, session_tower::Error> {
    let count: u64 = session.get("count").await?.unwrap_or(0) + 1;
    session.insert("count", count).await?;
    Ok(format!(
        "count {count} (the cookie is signed: edit it and you start over)\n"
    ))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt().init();
    let newest = key_from_env("SESSION_KEY").unwrap_or_else(|| {
        tracing::warn!("no SESSION_KEY: using a random key; cookies die with the process");
        Key::generate()
    });
    let mut keys = Keys::new(newest);
    if let Some(old) = key_from_env("SESSION_KEY_OLD") {
        keys = keys.with_older(old);
    }
    let sessions = SessionManagerLayer::new(MemoryStore::default())
        .with_secure(false)
        .with_signed(keys);
    let app = Router::new().route("/", get(counter)).layer(sessions);
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
