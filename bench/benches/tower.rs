//! Requests per second of one axum app with our `SessionManagerLayer` on a
//! memory store, with our cookie-only sessions
//! (`SessionManagerLayer::cookie_only`), with the tower-sessions 0.15 layer on
//! its memory store (the peer; it has no cookie-only mode) and with no
//! session layer (the floor), in the same run: routes that do not touch the
//! session, that read it and that write it, and a read route under sliding
//! (on-inactivity) expiry, at 1 and 64 concurrent keep-alive connections on
//! loopback. A second table gives the store writes per 1,000 requests (each
//! layer's store counts its writes), and for the sliding route the bound
//! "at most one write per session per refresh interval".
//!
//! A small load tool rather than criterion: the variants run in interleaved
//! rounds and each figure is the median, so a busy machine slows all three
//! alike instead of whichever ran during a spike. It prints a markdown table.
//!
//! ```sh
//! cargo bench -p bench --bench tower
//! TOWER_BENCH_ROUNDS=9 TOWER_BENCH_ROUND_MS=2000 cargo bench -p bench --bench tower
//! TOWER_BENCH_ROUTES=/read,/sliding/read cargo bench -p bench --bench tower
//! ```

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
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

    /// The app, and the counter of its store's writes (none without a
    /// store).
    fn app(self) -> (Router, Option<Arc<AtomicU64>>) {
        let ours = || {
            Router::new()
                .route("/untouched", get(|| async { "ok" }))
                .route("/read", get(ours::read))
                .route("/write", get(ours::write))
        };
        let ours_sliding = || {
            Router::new()
                .route("/sliding/read", get(ours::read))
                .route("/sliding/write", get(ours::write))
        };
        let writes = Arc::new(AtomicU64::new(0));
        match self {
            Variant::Ours => {
                let store = Counting::new(session_memory::MemoryStore::unbounded(), &writes);
                let app = ours()
                    .layer(session_tower::SessionManagerLayer::new(store.clone()))
                    .merge(
                        ours_sliding().layer(
                            session_tower::SessionManagerLayer::new(store)
                                .with_expiry(session_tower::Expiry::OnInactivity(INACTIVITY))
                                .with_refresh_interval(REFRESH_INTERVAL),
                        ),
                    );
                (app, Some(writes))
            }
            Variant::CookieOnly => {
                let key = session_tower::Key::generate();
                let app = ours()
                    .layer(session_tower::SessionManagerLayer::cookie_only(key.clone()))
                    .merge(
                        ours_sliding().layer(
                            session_tower::SessionManagerLayer::cookie_only(key)
                                .with_expiry(session_tower::Expiry::OnInactivity(INACTIVITY))
                                .with_refresh_interval(REFRESH_INTERVAL),
                        ),
                    );
                (app, None)
            }
            Variant::Peer => {
                let store = peer::Counting::new(
                    tower_sessions_memory_store::MemoryStore::default(),
                    &writes,
                );
                let app = Router::new()
                    .route("/untouched", get(|| async { "ok" }))
                    .route("/read", get(peer::read))
                    .route("/write", get(peer::write))
                    .layer(tower_sessions::SessionManagerLayer::new(store.clone()))
                    .merge(
                        Router::new()
                            .route("/sliding/read", get(peer::read))
                            .route("/sliding/write", get(peer::write))
                            // tower-sessions slides the expiry only by saving
                            // the session: on every request.
                            .layer(
                                tower_sessions::SessionManagerLayer::new(store)
                                    .with_expiry(tower_sessions::Expiry::OnInactivity(INACTIVITY))
                                    .with_always_save(true),
                            ),
                    );
                (app, Some(writes))
            }
            // The read and write routes do the same work minus the session.
            Variant::None => (
                Router::new()
                    .route("/untouched", get(|| async { "ok" }))
                    .route("/read", get(|| async { "0" }))
                    .route("/write", get(|| async { "1" }))
                    .route("/sliding/read", get(|| async { "0" }))
                    .route("/sliding/write", get(|| async { "1" })),
                None,
            ),
        }
    }
}

/// The sliding route's inactivity period.
const INACTIVITY: session_core::time::Duration = session_core::time::Duration::minutes(30);

/// The sliding route's refresh interval: short, so that the bound it sets
/// (one write per session per interval) shows within a run.
const REFRESH_INTERVAL: session_core::time::Duration = session_core::time::Duration::seconds(1);

/// Our store, counting its writes (`create`, `save`, `update`, `touch`,
/// `touch_many`, deletes) with one relaxed atomic add each.
#[derive(Debug, Clone)]
struct Counting<S> {
    inner: S,
    writes: Arc<AtomicU64>,
}

impl<S> Counting<S> {
    fn new(inner: S, writes: &Arc<AtomicU64>) -> Self {
        Self {
            inner,
            writes: Arc::clone(writes),
        }
    }

    fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }
}

#[session_core::async_trait]
impl<S: session_core::SessionStore> session_core::SessionStore for Counting<S> {
    async fn create(&self, record: &mut session_core::Record) -> session_core::Result<()> {
        self.wrote();
        self.inner.create(record).await
    }

    async fn save(&self, record: &session_core::Record) -> session_core::Result<()> {
        self.wrote();
        self.inner.save(record).await
    }

    async fn load(
        &self,
        session_id: &session_core::Id,
    ) -> session_core::Result<Option<session_core::Record>> {
        self.inner.load(session_id).await
    }

    async fn delete(&self, session_id: &session_core::Id) -> session_core::Result<()> {
        self.wrote();
        self.inner.delete(session_id).await
    }

    async fn update(
        &self,
        record: &mut session_core::Record,
    ) -> session_core::Result<session_core::Update> {
        self.wrote();
        self.inner.update(record).await
    }

    async fn touch(
        &self,
        session_id: &session_core::Id,
        expiry_date: session_core::time::OffsetDateTime,
    ) -> session_core::Result<bool> {
        self.wrote();
        self.inner.touch(session_id, expiry_date).await
    }

    async fn touch_many(
        &self,
        touches: &[(session_core::Id, session_core::time::OffsetDateTime)],
    ) -> session_core::Result<Vec<bool>> {
        self.wrote();
        self.inner.touch_many(touches).await
    }

    async fn sessions_of_user(
        &self,
        user_id: &str,
    ) -> session_core::Result<Vec<session_core::Record>> {
        self.inner.sessions_of_user(user_id).await
    }

    async fn delete_sessions_of_user(
        &self,
        user_id: &str,
        keep: Option<&session_core::Id>,
    ) -> session_core::Result<u64> {
        self.wrote();
        self.inner.delete_sessions_of_user(user_id, keep).await
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
    use std::sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    };

    use tower_sessions::{
        session::{Id, Record},
        session_store, Session, SessionStore,
    };

    /// The peer's store, counting its writes like ours.
    #[derive(Debug, Clone)]
    pub(crate) struct Counting<S> {
        inner: S,
        writes: Arc<AtomicU64>,
    }

    impl<S> Counting<S> {
        pub(crate) fn new(inner: S, writes: &Arc<AtomicU64>) -> Self {
            Self {
                inner,
                writes: Arc::clone(writes),
            }
        }
    }

    #[async_trait::async_trait]
    impl<S: SessionStore + Clone> SessionStore for Counting<S> {
        async fn create(&self, record: &mut Record) -> session_store::Result<()> {
            self.writes.fetch_add(1, Ordering::Relaxed);
            self.inner.create(record).await
        }

        async fn save(&self, record: &Record) -> session_store::Result<()> {
            self.writes.fetch_add(1, Ordering::Relaxed);
            self.inner.save(record).await
        }

        async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
            self.inner.load(session_id).await
        }

        async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
            self.writes.fetch_add(1, Ordering::Relaxed);
            self.inner.delete(session_id).await
        }
    }

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

/// A served app, one session cookie per connection for each of its two
/// layers, and its store's write counter.
struct Served {
    base: String,
    client: reqwest::Client,
    cookies: Vec<Option<String>>,
    sliding_cookies: Vec<Option<String>>,
    writes: Option<Arc<AtomicU64>>,
}

impl Served {
    /// The store writes so far (0 without a store).
    fn writes(&self) -> u64 {
        self.writes
            .as_ref()
            .map_or(0, |writes| writes.load(Ordering::Relaxed))
    }
}

async fn serve(variant: Variant) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let (app, writes) = variant.app();
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .build()
        .expect("client");
    let mut cookies = first_cookies(&client, &format!("{base}/write")).await;
    let mut sliding_cookies = first_cookies(&client, &format!("{base}/sliding/write")).await;
    if let Variant::None = variant {
        // The same requests as the others: a browser sends its cookies
        // whether or not the app reads them (the length of ours).
        let cookie = Some(format!("id={}", "x".repeat(session_core::ID_TEXT_LEN)));
        cookies.fill(cookie.clone());
        sliding_cookies.fill(cookie);
    }
    Served {
        base,
        client,
        cookies,
        sliding_cookies,
        writes,
    }
}

/// One session per connection, each holding a value: the cookie of a first
/// write to `url`. The cookie is sent as first issued (a cookie-only write
/// re-issues it; replaying the first one keeps every request alike).
async fn first_cookies(client: &reqwest::Client, url: &str) -> Vec<Option<String>> {
    let max = CONCURRENCY.iter().copied().max().unwrap_or(1);
    let mut cookies = Vec::with_capacity(max);
    for _ in 0..max {
        let response = client.get(url).send().await.expect("first write");
        let cookie = response
            .headers()
            .get(SET_COOKIE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .map(str::to_owned);
        cookies.push(cookie);
    }
    cookies
}

/// Sends requests to `path` over `concurrency` connections for `length`;
/// returns requests per second and how many were sent.
async fn drive(
    served: &Arc<Served>,
    path: &'static str,
    concurrency: usize,
    length: Duration,
) -> (f64, u64) {
    let started = Instant::now();
    let deadline = started + length;
    let sliding = path.starts_with("/sliding/");
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let served = served.clone();
            tokio::spawn(async move {
                let url = format!("{}{path}", served.base);
                let cookies = if sliding {
                    &served.sliding_cookies
                } else {
                    &served.cookies
                };
                let cookie = cookies[task].clone();
                let mut sent = 0u64;
                while Instant::now() < deadline {
                    let mut request = served.client.get(&url);
                    if let Some(cookie) = &cookie {
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
    (sent as f64 / started.elapsed().as_secs_f64(), sent)
}

/// One route at one concurrency, for every variant.
struct Cell {
    path: &'static str,
    concurrency: usize,
    /// Median requests per second, per variant.
    rates: Vec<f64>,
    /// Store writes per 1,000 measured requests, per variant.
    writes_per_1000: Vec<f64>,
    /// Store writes in the measured rounds, per variant.
    writes: Vec<u64>,
    /// Wall time from the first measured round to the last.
    wall: Duration,
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
    // `TOWER_BENCH_ROUTES=/read,/write` runs only those routes.
    let routes = std::env::var("TOWER_BENCH_ROUTES").unwrap_or_default();
    let wanted = |path: &str| routes.is_empty() || routes.split(',').any(|r| r.trim() == path);
    let mut cells = Vec::new();
    for path in ["/untouched", "/read", "/write", "/sliding/read"] {
        if !wanted(path) {
            continue;
        }
        for concurrency in CONCURRENCY {
            let mut figures: Vec<Vec<f64>> = vec![Vec::new(); served.len()];
            let mut sent = vec![0u64; served.len()];
            let (before, wall) = rt.block_on(async {
                for one in &served {
                    drive(one, path, concurrency, warm_up).await;
                }
                let before: Vec<u64> = served.iter().map(|one| one.writes()).collect();
                let started = Instant::now();
                // Interleaved, so a noisy neighbour hits every variant alike.
                for _ in 0..rounds {
                    for (index, one) in served.iter().enumerate() {
                        let (rate, requests) = drive(one, path, concurrency, length).await;
                        figures[index].push(rate);
                        sent[index] += requests;
                    }
                }
                (before, started.elapsed())
            });
            let writes: Vec<u64> = served
                .iter()
                .zip(&before)
                .map(|(one, before)| one.writes() - before)
                .collect();
            cells.push(Cell {
                path,
                concurrency,
                rates: figures.into_iter().map(median).collect(),
                writes_per_1000: writes
                    .iter()
                    .zip(&sent)
                    .map(|(writes, sent)| *writes as f64 * 1000.0 / (*sent).max(1) as f64)
                    .collect(),
                writes,
                wall,
            });
        }
    }
    print_tables(&cells, rounds, length);
}

#[allow(clippy::print_stdout)] // The tables are the output.
fn print_tables(cells: &[Cell], rounds: usize, length: Duration) {
    println!(
        "requests/second, median of {rounds} interleaved rounds of {} ms per variant",
        length.as_millis()
    );
    println!("| route | connections | ours (memory) | ours (cookie-only) | tower-sessions (memory) | no layer | ours / no layer | ours / tower-sessions | cookie-only / tower-sessions |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for cell in cells {
        let [ours, cookie, peer, none] = [0, 1, 2, 3].map(|index| cell.rates[index]);
        println!(
            "| {} | {} | {ours:.0} | {cookie:.0} | {peer:.0} | {none:.0} | {:.2} | {:.2} | {:.2} |",
            cell.path,
            cell.concurrency,
            ours / none,
            ours / peer,
            cookie / peer
        );
    }
    println!();
    println!(
        "store writes per 1,000 requests in the measured rounds (cookie-only and no layer have no store); \
         sliding route: writes per session per refresh interval ({} s), at most 1 asked",
        REFRESH_INTERVAL.whole_seconds()
    );
    println!("| route | connections | ours (memory) | tower-sessions (memory) | ours: writes per session per interval | tower-sessions: the same |");
    println!("|---|---|---|---|---|---|");
    for cell in cells {
        let per_interval = |index: usize| {
            if !cell.path.starts_with("/sliding/") {
                return "—".to_owned();
            }
            // Each connection is one session; the rounds span `wall`.
            let intervals = (cell.wall.as_secs_f64() / REFRESH_INTERVAL.whole_seconds() as f64)
                .ceil()
                .max(1.0);
            format!(
                "{:.2}",
                cell.writes[index] as f64 / (cell.concurrency as f64 * intervals)
            )
        };
        println!(
            "| {} | {} | {:.1} | {:.1} | {} | {} |",
            cell.path,
            cell.concurrency,
            cell.writes_per_1000[0],
            cell.writes_per_1000[2],
            per_interval(0),
            per_interval(2)
        );
    }
}
