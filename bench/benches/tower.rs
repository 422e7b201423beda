//! Requests per second of one axum app with our `SessionManagerLayer` on a
//! memory store, with our cookie-only sessions
//! (`SessionManagerLayer::cookie_only`), with the tower-sessions 0.15 layer on
//! its memory store (the peer; it has no cookie-only mode) and with no
//! session layer (the floor), in the same run: routes that do not touch the
//! session, that read it and that write it, at 1 and 64 concurrent keep-alive
//! connections on loopback.
//!
//! A small load tool rather than criterion: the variants run in interleaved
//! rounds and each figure is the median, so a busy machine slows all three
//! alike instead of whichever ran during a spike. It prints a markdown table.
//!
//! ```sh
//! cargo bench -p bench --bench tower
//! TOWER_BENCH_ROUNDS=9 TOWER_BENCH_ROUND_MS=2000 cargo bench -p bench --bench tower
//! ```

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{routing::get, Router};
use bench::{median, runtime, CONCURRENCY};
use reqwest::header::{COOKIE, SET_COOKIE};

/// Who serves the requests.
#[derive(Clone, Copy)]
enum Variant {
    /// session-tower on a memory store.
    Ours,
    /// session-tower, the whole session encrypted in the cookie.
    CookieOnly,
    /// tower-sessions 0.15 with its memory store.
    Peer,
    /// No session layer (the untouched route's floor).
    None,
}

impl Variant {
    const ALL: [Variant; 4] = [
        Variant::Ours,
        Variant::CookieOnly,
        Variant::Peer,
        Variant::None,
    ];

    fn app(self) -> Router {
        let ours = || {
            Router::new()
                .route("/untouched", get(|| async { "ok" }))
                .route("/read", get(ours::read))
                .route("/write", get(ours::write))
        };
        match self {
            Variant::Ours => ours().layer(session_tower::SessionManagerLayer::new(
                session_memory::MemoryStore::unbounded(),
            )),
            Variant::CookieOnly => ours().layer(session_tower::SessionManagerLayer::cookie_only(
                session_tower::Key::generate(),
            )),
            Variant::Peer => Router::new()
                .route("/untouched", get(|| async { "ok" }))
                .route("/read", get(peer::read))
                .route("/write", get(peer::write))
                .layer(tower_sessions::SessionManagerLayer::new(
                    tower_sessions_memory_store::MemoryStore::default(),
                )),
            // The read and write routes do the same work minus the session.
            Variant::None => Router::new()
                .route("/untouched", get(|| async { "ok" }))
                .route("/read", get(|| async { "0" }))
                .route("/write", get(|| async { "1" })),
        }
    }
}

mod ours {
    use session_tower::Session;

    pub(crate) async fn read(session: Session) -> String {
        let n: u64 = session.get("n").await.expect("read").unwrap_or(0);
        n.to_string()
    }

    pub(crate) async fn write(session: Session) -> String {
        let n: u64 = session.get("n").await.expect("read").unwrap_or(0) + 1;
        session.insert("n", n).await.expect("write");
        n.to_string()
    }
}

mod peer {
    use tower_sessions::Session;

    pub(crate) async fn read(session: Session) -> String {
        let n: u64 = session.get("n").await.expect("read").unwrap_or(0);
        n.to_string()
    }

    pub(crate) async fn write(session: Session) -> String {
        let n: u64 = session.get("n").await.expect("read").unwrap_or(0) + 1;
        session.insert("n", n).await.expect("write");
        n.to_string()
    }
}

/// A served app and one session cookie per connection.
struct Served {
    base: String,
    client: reqwest::Client,
    cookies: Vec<Option<String>>,
}

async fn serve(variant: Variant) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let app = variant.app();
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .build()
        .expect("client");
    let max = CONCURRENCY.iter().copied().max().unwrap_or(1);
    let mut cookies = Vec::with_capacity(max);
    for _ in 0..max {
        // Each connection's visitor starts with a session holding a value.
        // The cookie is sent as first issued (a cookie-only write re-issues
        // it; replaying the first one keeps every request alike).
        let response = client
            .get(format!("{base}/write"))
            .send()
            .await
            .expect("first write");
        let cookie = response
            .headers()
            .get(SET_COOKIE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .map(str::to_owned);
        cookies.push(cookie);
    }
    Served {
        base,
        client,
        cookies,
    }
}

/// Sends requests to `path` over `concurrency` connections for `length`;
/// returns requests per second.
async fn drive(
    served: &Arc<Served>,
    path: &'static str,
    concurrency: usize,
    length: Duration,
) -> f64 {
    let started = Instant::now();
    let deadline = started + length;
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let served = served.clone();
            tokio::spawn(async move {
                let url = format!("{}{path}", served.base);
                let mut sent = 0u64;
                while Instant::now() < deadline {
                    let mut request = served.client.get(&url);
                    if let Some(cookie) = &served.cookies[task] {
                        request = request.header(COOKIE, cookie);
                    }
                    let response = request.send().await.expect("request");
                    assert!(response.status().is_success(), "{}", response.status());
                    response.bytes().await.expect("body");
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    let mut sent = 0;
    for task in tasks {
        sent += task.await.expect("client task");
    }
    sent as f64 / started.elapsed().as_secs_f64()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[allow(clippy::print_stdout)] // The table is the output.
fn main() {
    // `cargo bench` passes criterion-style flags; this load tool has its
    // own knobs (environment) and ignores them. `cargo test --benches`
    // passes no `--bench`: do nothing then.
    if !bench::Settings::is_bench_run() {
        return;
    }
    let rounds: usize = env_or("TOWER_BENCH_ROUNDS", 5);
    let length = Duration::from_millis(env_or("TOWER_BENCH_ROUND_MS", 1000));
    let warm_up = Duration::from_millis(env_or("TOWER_BENCH_WARM_UP_MS", 300));
    let rt = runtime();
    let served: Vec<Arc<Served>> = Variant::ALL
        .into_iter()
        .map(|variant| Arc::new(rt.block_on(serve(variant))))
        .collect();
    println!(
        "requests/second, median of {rounds} interleaved rounds of {} ms per variant",
        length.as_millis()
    );
    println!("| route | connections | ours (memory) | ours (cookie-only) | tower-sessions (memory) | no layer | ours / no layer | ours / tower-sessions | cookie-only / tower-sessions |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for path in ["/untouched", "/read", "/write"] {
        for concurrency in CONCURRENCY {
            let mut figures: Vec<Vec<f64>> = vec![Vec::new(); served.len()];
            rt.block_on(async {
                for one in &served {
                    drive(one, path, concurrency, warm_up).await;
                }
                // Interleaved, so a noisy neighbour hits every variant alike.
                for _ in 0..rounds {
                    for (index, one) in served.iter().enumerate() {
                        figures[index].push(drive(one, path, concurrency, length).await);
                    }
                }
            });
            let [ours, cookie, peer, none] =
                [0, 1, 2, 3].map(|index| median(figures[index].clone()));
            println!(
                "| {path} | {concurrency} | {ours:.0} | {cookie:.0} | {peer:.0} | {none:.0} | {:.2} | {:.2} | {:.2} |",
                ours / none,
                ours / peer,
                cookie / peer
            );
        }
    }
}
