//! A visit counter on cookie-only sessions: the whole session lives in the
//! browser's cookie, encrypted and authenticated (AES-256-GCM); the server
//! keeps nothing.
//!
//! ```sh
//! SESSION_ENCRYPTION_KEYS=$(openssl rand -hex 64) cargo run -p examples --example cookie_only
//! curl -c jar -b jar http://127.0.0.1:3000/   # count 1, 2, 3, ...
//! ```
//!
//! `SESSION_ENCRYPTION_KEYS` holds comma-separated keys, newest first, each
//! hex or base64 of at least 64 bytes: the newest encrypts, all decrypt, so
//! a key can be rotated without logging anyone out. Without it a random key
//! is generated (with a warning) and cookies die with the process; a short
//! or malformed key stops the program at start-up.

use axum::{
    http::StatusCode,
    routing::{get, post},
    Router,
};
use session_core::time::Duration;
use session_tower::{Expiry, Key, Keys, Session, SessionManagerLayer};

async fn counter(session: Session) -> Result<String, session_tower::Error> {
    let count: u64 = session.get("count").await?.unwrap_or(0) + 1;
    session.insert("count", count).await?;
    Ok(format!(
        "count {count} (kept in your cookie, encrypted: edit it and you start over)\n"
    ))
}

/// Shows the 4 KB limit: a value that does not fit is refused by `insert`.
async fn too_big(session: Session) -> (StatusCode, String) {
    match session.insert("essay", "x".repeat(5_000)).await {
        Ok(()) => (StatusCode::OK, "stored\n".into()),
        Err(error) => (StatusCode::PAYLOAD_TOO_LARGE, format!("{error}\n")),
    }
}

async fn logout(session: Session) -> Result<StatusCode, session_tower::Error> {
    // Clears the browser's copy; the server has nothing to revoke.
    session.flush().await?;
    Ok(StatusCode::NO_CONTENT)
}

fn keys() -> Result<Keys, String> {
    match std::env::var("SESSION_ENCRYPTION_KEYS") {
        Ok(list) if !list.trim().is_empty() => {
            Keys::parse_list(&list).map_err(|(position, error)| {
                format!("SESSION_ENCRYPTION_KEYS, key {position}: {error}")
            })
        }
        _ => {
            tracing::warn!(
                "no SESSION_ENCRYPTION_KEYS: using a random key; every session ends with the \
                 process (set it to `openssl rand -hex 64`)"
            );
            Ok(Keys::new(Key::generate()))
        }
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt().init();
    if let Err(error) = run().await {
        // Display, not Debug: the message names the variable at fault.
        tracing::error!("{error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let sessions = SessionManagerLayer::cookie_only(keys()?)
        .with_secure(false) // plain HTTP on localhost; keep `Secure` in production
        .with_expiry(Expiry::OnInactivity(Duration::hours(1)));
    let app = Router::new()
        .route("/", get(counter))
        .route("/too-big", get(too_big))
        .route("/logout", post(logout))
        .layer(sessions);
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
