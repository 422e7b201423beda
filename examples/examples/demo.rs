//! The demo shop: log in, fill a cart, log out, with sessions from
//! `session-tower` in the store built by `examples::shop::store()`.
//!
//! ```sh
//! cargo run -p examples --example demo          # http://127.0.0.1:3000
//! PORT=8080 cargo run -p examples --example demo
//! ```
//!
//! Ctrl-C stops the server gracefully and the expired-deletion task with it.

use examples::shop;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,session_tower=debug".into()),
        )
        .init();
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port
            .parse()
            .map_err(|_| std::io::Error::other(format!("PORT is not a port number: {port}")))?,
        Err(_) => 3000,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let address = listener.local_addr()?;
    #[allow(clippy::print_stdout)] // The one line a user of the demo needs.
    {
        println!("The shop is open at http://{address}/ (Ctrl-C to stop)");
    }
    let report = shop::serve_default(listener, async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C; stopping");
        }
        tracing::info!("Ctrl-C: shutting down");
    })
    .await?;
    tracing::info!(
        removed = report.removed,
        sweeps = report.sweeps,
        "stopped; expired-deletion task done"
    );
    Ok(())
}
