//! The smallest session app: a per-visitor counter.
//!
//! ```sh
//! cargo run -p examples --example counter   # then open http://127.0.0.1:3000
//! ```

use axum::{routing::get, Router};
use session_memory::MemoryStore;
use session_tower::{Session, SessionManagerLayer};

async fn counter(session: Session) -> Result<String, session_tower::Error> {
    let count: u64 = session.get("count").await?.unwrap_or(0) + 1;
    session.insert("count", count).await?;
    Ok(format!("You have been here {count} time(s).\n"))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt().init();
    // Plain HTTP on loopback, so the cookie is not `Secure`.
    let sessions = SessionManagerLayer::new(MemoryStore::default()).with_secure(false);
    let app = Router::new().route("/", get(counter)).layer(sessions);
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
