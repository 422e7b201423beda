//! `cargo run -p examples-salvo`: the salvo application of `src/lib.rs`,
//! sessions in memory, on <http://127.0.0.1:5800> (`PORT` to change it).

use salvo::prelude::*;
use session_memory::MemoryStore;
use session_tower::SessionManagerLayer;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt::init();
    let port = std::env::var("PORT").unwrap_or_else(|_| "5800".to_owned());
    let sessions = SessionManagerLayer::new(MemoryStore::default()).with_secure(false); // plain HTTP on localhost only
    let acceptor = TcpListener::new(format!("127.0.0.1:{port}")).bind().await;
    tracing::info!("listening on http://127.0.0.1:{port}");
    Server::new(acceptor)
        .serve(examples_salvo::router(sessions))
        .await;
}
