//! The demo shop: a login form, a cart, a "your devices" list with "log out
//! other devices", and logout, on axum, with sessions from `session-tower`.
//!
//! What it shows of the session library: a new id at login (`cycle_id`), the
//! session tied to its user (`set_user_id`) so the user's other sessions can
//! be listed and ended, carts filled from two tabs at once that keep both
//! additions (a stored session is written back with a compare-and-swap and
//! merged on conflict), and a logout that stays final even if another tab's
//! request was in flight.
//!
//! [`store`] is the one place the session store is chosen; [`app`] is the
//! router (used in-process by the browser test); [`serve`] runs it with the
//! expired-deletion task beside it until a shutdown signal.

use std::{
    future::Future,
    io,
    path::Path,
    sync::{Arc, OnceLock},
    time::Duration,
};

use axum::{
    extract::Form,
    http::{header::USER_AGENT, HeaderMap},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
    Router,
};
use metrics_exporter_prometheus::{BuildError, PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use session_core::{
    deletion::{DeletionReport, ExpiredDeletionTask},
    metrics::MeteredStore,
    time, CachingSessionStore, ExpiredDeletion,
};
use session_moka::MokaStore;
use session_sled::SledStore;
use session_tower::{Expiry, SameSite, Session, SessionManagerLayer};
use tokio::net::TcpListener;

/// The session store the shop uses: a bounded in-process cache (moka) in
/// front of an embedded persistent store (sled), so sessions survive a
/// restart and no server is needed.
pub type ShopStore = CachingSessionStore<MokaStore, SledStore>;

/// Builds the shop's session store, keeping sessions in the sled database at
/// `dir` (created if missing; one process at a time).
pub fn store(dir: &Path) -> session_core::Result<ShopStore> {
    Ok(CachingSessionStore::new(
        MokaStore::new(Some(10_000)),
        SledStore::open(dir)?,
    ))
}

/// What the shop sells.
pub const PRODUCTS: [&str; 3] = ["apple", "bread", "cheese"];

/// Each product's count in the cart lives under a key of its own
/// (`cart.apple`, ...): two tabs adding different products at once both keep
/// their addition, since concurrent requests are merged key by key. (Two
/// tabs adding the same product at once: the last writer wins that key.)
const CART_PREFIX: &str = "cart.";
/// What the devices list shows of a session: the browser it was logged in
/// from and when.
const DEVICE: &str = "device";
const SINCE: &str = "since";

/// The cart: how many of each product, in the order of [`PRODUCTS`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cart {
    /// Product names and counts (above zero).
    pub items: Vec<(String, u32)>,
}

impl Cart {
    /// The cart kept in `session`.
    pub async fn of(session: &Session) -> Result<Self, session_tower::Error> {
        let mut items = Vec::new();
        for product in PRODUCTS {
            let count: u32 = session
                .get(&format!("{CART_PREFIX}{product}"))
                .await?
                .unwrap_or(0);
            if count > 0 {
                items.push((product.to_owned(), count));
            }
        }
        Ok(Self { items })
    }
}

#[derive(Deserialize)]
struct Login {
    username: String,
}

#[derive(Deserialize)]
struct AddToCart {
    item: String,
}

#[derive(Deserialize)]
struct EndDevice {
    handle: String,
}

/// Where `/metrics` reads from, once [`install_metrics`] has run.
static METRICS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs a Prometheus recorder for the `metrics` facade, for the whole
/// process: from then on, [`app`] counts its store's operations (outcomes
/// and latencies), cache hits and misses, update conflicts and retries,
/// touches written and skipped, and rejected cookies, and serves them at
/// `/metrics` in Prometheus text format. The demo does this when started
/// with `SHOP_METRICS=1`.
///
/// Fails if another recorder is installed already; calling it twice is
/// fine.
pub fn install_metrics() -> Result<(), BuildError> {
    if METRICS.get().is_some() {
        return Ok(());
    }
    let handle = PrometheusBuilder::new().install_recorder()?;
    // Should two threads race here, the recorder that lost is not installed
    // (the facade's global recorder is set once) and its handle is dropped.
    let _ = METRICS.set(handle);
    Ok(())
}

/// `/metrics`: what the facade recorded, in Prometheus text format.
async fn metrics() -> Response {
    match METRICS.get() {
        Some(handle) => {
            // Histograms' upkeep, which an exporter's own server would run.
            handle.run_upkeep();
            handle.render().into_response()
        }
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

/// The shop's routes behind the session layer, with sessions kept in `store`
/// (and `/metrics`, outside the layer, once [`install_metrics`] has run).
pub fn app<S: session_core::SessionStore + Clone>(store: S) -> Router {
    let metered = METRICS.get().is_some();
    let sessions = if metered {
        SessionManagerLayer::new(MeteredStore::new(store, "shop"))
    } else {
        SessionManagerLayer::new(store)
    };
    let sessions = sessions
        .with_name("shop_session")
        // Plain HTTP on loopback: a `Secure` cookie would not come back.
        .with_secure(false)
        .with_same_site(SameSite::Lax)
        .with_expiry(Expiry::OnInactivity(time::Duration::hours(1)));
    let router = Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/cart", post(add_to_cart))
        .route("/logout", post(logout))
        .route("/devices/end", post(end_device))
        .route("/devices/end-others", post(end_other_devices))
        .layer(sessions);
    if metered {
        // Added after the layer: scraping costs no session work.
        router.route("/metrics", get(metrics))
    } else {
        router
    }
}

/// Serves the shop on `listener` until `shutdown` completes, with the
/// expired-deletion task sweeping `store` every minute; stops both cleanly
/// and returns what the task removed.
pub async fn serve<S, F>(listener: TcpListener, store: S, shutdown: F) -> io::Result<DeletionReport>
where
    S: ExpiredDeletion + Clone,
    F: Future<Output = ()> + Send + 'static,
{
    let deletion = ExpiredDeletionTask::new(store.clone(), Duration::from_secs(60))
        .with_jitter(Duration::from_secs(5))
        .spawn();
    let served = axum::serve(listener, app(store))
        .with_graceful_shutdown(shutdown)
        .await;
    let report = deletion.shutdown().await;
    served.map(|()| report)
}

/// [`serve`] on the store from [`store`] at `dir`, shared by the layer and
/// the task.
pub async fn serve_default<F>(
    listener: TcpListener,
    dir: &Path,
    shutdown: F,
) -> io::Result<DeletionReport>
where
    F: Future<Output = ()> + Send + 'static,
{
    let store = store(dir).map_err(|error| {
        io::Error::other(format!(
            "cannot open the session database at {}: {error}",
            dir.display()
        ))
    })?;
    let store = Arc::new(store);
    let report = serve(listener, Arc::clone(&store), shutdown).await?;
    // Make the last writes durable before the process ends.
    if let Err(error) = store.store().flush_async().await {
        tracing::error!(%error, "could not flush the session database");
    }
    Ok(report)
}

async fn home(session: Session) -> Result<Html<String>, session_tower::Error> {
    let user = session.user_id().await?;
    let cart = Cart::of(&session).await?;
    let mut page = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Shop</title></head><body>\n",
    );
    match &user {
        Some(user) => {
            page += &format!(
                "<p id=\"greeting\">Hello, {}!</p>\n\
                 <form method=\"post\" action=\"/logout\">\
                 <button id=\"logout\" type=\"submit\">Log out</button></form>\n",
                escape(user)
            );
        }
        None => {
            page += "<form method=\"post\" action=\"/login\">\
                     <label>Name <input id=\"username\" name=\"username\" required></label> \
                     <button id=\"login\" type=\"submit\">Log in</button></form>\n";
        }
    }
    page += "<h2>Products</h2>\n";
    for product in PRODUCTS {
        page += &format!(
            "<form method=\"post\" action=\"/cart\" style=\"display:inline\">\
             <input type=\"hidden\" name=\"item\" value=\"{product}\">\
             <button id=\"add-{product}\" type=\"submit\">Add {product}</button></form>\n"
        );
    }
    page += "<h2>Cart</h2>\n<ul id=\"cart\">\n";
    for (item, count) in &cart.items {
        for _ in 0..*count {
            page += &format!("<li class=\"item\">{}</li>\n", escape(item));
        }
    }
    page += "</ul>\n";
    if user.is_some() {
        page += &devices(&session).await?;
    }
    page += "</body></html>\n";
    Ok(Html(page))
}

/// The "your devices" list: every active session of the user, this one
/// marked, each other one with a button that ends it. A session is named by
/// its handle, never by its id (an id is a credential).
async fn devices(session: &Session) -> Result<String, session_tower::Error> {
    let mut devices = session.user_sessions().await?;
    devices.sort_by_key(|device| (!device.is_current(), device.handle().to_owned()));
    let mut html = String::from("<h2>Your devices</h2>\n<ul id=\"devices\">\n");
    for device in &devices {
        let name: String = device
            .get(DEVICE)
            .unwrap_or_else(|| "unknown browser".into());
        let since: String = device.get(SINCE).unwrap_or_default();
        if device.is_current() {
            html += &format!(
                "<li class=\"device current\">{} (since {}) — this device</li>\n",
                escape(&name),
                escape(&since)
            );
        } else {
            html += &format!(
                "<li class=\"device\">{} (since {}) \
                 <form method=\"post\" action=\"/devices/end\" style=\"display:inline\">\
                 <input type=\"hidden\" name=\"handle\" value=\"{}\">\
                 <button type=\"submit\">Log it out</button></form></li>\n",
                escape(&name),
                escape(&since),
                escape(device.handle())
            );
        }
    }
    html += "</ul>\n";
    if devices.len() > 1 {
        html += "<form method=\"post\" action=\"/devices/end-others\">\
                 <button id=\"end-others\" type=\"submit\">Log out all other devices</button></form>\n";
    }
    Ok(html)
}

async fn login(
    session: Session,
    headers: HeaderMap,
    Form(form): Form<Login>,
) -> Result<Response, session_tower::Error> {
    let username = form.username.trim();
    if username.is_empty() {
        return Ok(Redirect::to("/").into_response());
    }
    // A new id on login, against session fixation; the cart comes along.
    session.cycle_id().await?;
    // Tie the session to its user, and note what the devices list shows.
    session.set_user_id(Some(username)).await?;
    let device = headers
        .get(USER_AGENT)
        .and_then(|agent| agent.to_str().ok())
        .map(|agent| agent.chars().take(80).collect::<String>())
        .unwrap_or_else(|| "unknown browser".into());
    session.insert(DEVICE, device).await?;
    let since = time::OffsetDateTime::now_utc();
    let since = format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        since.year(),
        u8::from(since.month()),
        since.day(),
        since.hour(),
        since.minute()
    );
    session.insert(SINCE, since).await?;
    Ok(Redirect::to("/").into_response())
}

async fn add_to_cart(
    session: Session,
    Form(form): Form<AddToCart>,
) -> Result<Redirect, session_tower::Error> {
    if PRODUCTS.contains(&form.item.as_str()) {
        let key = format!("{CART_PREFIX}{}", form.item);
        let count: u32 = session.get(&key).await?.unwrap_or(0);
        session.insert(&key, count.saturating_add(1)).await?;
    }
    Ok(Redirect::to("/"))
}

async fn logout(session: Session) -> Result<Redirect, session_tower::Error> {
    // The record goes, and the cookie with it: the cart is gone. A request
    // of another tab still in flight cannot bring it back.
    session.flush().await?;
    Ok(Redirect::to("/"))
}

async fn end_device(
    session: Session,
    Form(form): Form<EndDevice>,
) -> Result<Redirect, session_tower::Error> {
    session.end_user_session(&form.handle).await?;
    Ok(Redirect::to("/"))
}

async fn end_other_devices(session: Session) -> Result<Redirect, session_tower::Error> {
    session.end_other_sessions().await?;
    Ok(Redirect::to("/"))
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}
