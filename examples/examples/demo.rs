//! The demo shop: log in, fill a cart, log out, with sessions from
//! `session-tower` in the store built by `examples::shop::store()`.
//!
//! ```sh
//! cargo run -p examples --example demo          # http://127.0.0.1:3000
//! PORT=8080 cargo run -p examples --example demo
//! ```
//!
//! Sessions live in a sled database (moka in front of it) under
//! `SHOP_DATA_DIR`, by default `session-demo-shop` in the system's temporary
//! directory, so they survive a restart. Ctrl-C stops the server gracefully
//! and the expired-deletion task with it.
//!
//! With `SHOP_METRICS=1` the shop serves `/metrics` in Prometheus text
//! format: store operations, cache hits, update conflicts, touches and
//! rejected cookies (`curl http://127.0.0.1:3000/metrics`).

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
    if std::env::var_os("SHOP_METRICS").is_some_and(|value| value == "1") {
        examples::shop::install_metrics().map_err(std::io::Error::other)?;
    }
    let dir = std::env::var_os("SHOP_DATA_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("session-demo-shop"));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let address = listener.local_addr()?;
    #[allow(clippy::print_stdout)] // The lines a user of the demo needs.
    {
        println!("The shop is open at http://{address}/ (Ctrl-C to stop)");
        println!("Sessions are kept in {}", dir.display());
        if std::env::var_os("SHOP_METRICS").is_some_and(|value| value == "1") {
            println!("Metrics at http://{address}/metrics");
        }
    }
    let report = shop::serve_default(listener, &dir, async {
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
