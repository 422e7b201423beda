//! Strongly-typed session data: one struct under one key, read and written
//! through a small wrapper extractor instead of string keys everywhere.
//!
//! ```sh
//! cargo run -p examples --example typed   # then open http://127.0.0.1:3000
//! ```

use axum::{
    extract::FromRequestParts,
    http::request::Parts,
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use serde::{Deserialize, Serialize};
use session_memory::MemoryStore;
use session_tower::{Session, SessionManagerLayer};

/// Everything this app keeps about a visitor.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Visitor {
    visits: u32,
    pages: Vec<String>,
}

/// The visitor's data and the session it lives in.
struct VisitorSession {
    session: Session,
    visitor: Visitor,
}

impl VisitorSession {
    const KEY: &'static str = "visitor";

    async fn update(mut self, page: &str) -> Result<Visitor, session_tower::Error> {
        self.visitor.visits += 1;
        self.visitor.pages.push(page.to_owned());
        self.session.insert(Self::KEY, &self.visitor).await?;
        Ok(self.visitor)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for VisitorSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let visitor = session
            .get(Self::KEY)
            .await
            .map_err(IntoResponse::into_response)?
            .unwrap_or_default();
        Ok(Self { session, visitor })
    }
}

async fn page(visitor: VisitorSession, name: &str) -> Result<String, session_tower::Error> {
    let visitor = visitor.update(name).await?;
    Ok(format!(
        "visit {} to this site; pages so far: {:?}\n",
        visitor.visits, visitor.pages
    ))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt().init();
    let sessions = SessionManagerLayer::new(MemoryStore::default()).with_secure(false);
    let app = Router::new()
        .route("/", get(|v: VisitorSession| page(v, "home")))
        .route("/about", get(|v: VisitorSession| page(v, "about")))
        .layer(sessions);
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
