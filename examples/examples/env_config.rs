//! Sessions configured from the environment: `SESSION_BACKEND` picks memory
//! or cookie-only sessions, and the other `SESSION_*` variables set the
//! cookie and the expiry (see `session_tower::config` for the table).
//!
//! ```sh
//! cargo run -p examples --example env_config     # memory, defaults
//! SESSION_BACKEND=cookie SESSION_ENCRYPTION_KEYS=$(openssl rand -hex 64) \
//!   SESSION_TTL=30m SESSION_COOKIE_NAME=sid \
//!   SESSION_COOKIE_SECURE=false SESSION_ALLOW_INSECURE=true \
//!   cargo run -p examples --example env_config
//! ```
//!
//! An invalid variable stops the program with a message naming it, e.g.
//! `SESSION_TTL="soon" is invalid: expected a positive duration like 3600,
//! 90s, 30m, 12h or 14d`.

use axum::{routing::get, Router};
use session_memory::MemoryStore;
use session_tower::{config::Backend, Session, SessionConfig, SessionManagerLayer};

async fn counter(session: Session) -> Result<String, session_tower::Error> {
    let count: u64 = session.get("count").await?.unwrap_or(0) + 1;
    session.insert("count", count).await?;
    Ok(format!("count {count}\n"))
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
    let config = SessionConfig::from_env()?;
    let sessions = match config.backend() {
        Backend::Memory => config.apply(SessionManagerLayer::new(MemoryStore::default())),
        Backend::Cookie => config.cookie_only_layer()?,
        other => {
            return Err(format!(
                "SESSION_BACKEND={}: this example knows memory and cookie only",
                other.name()
            )
            .into())
        }
    };
    tracing::info!(backend = config.backend().name(), "sessions configured");
    let app = Router::new().route("/", get(counter)).layer(sessions);
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
