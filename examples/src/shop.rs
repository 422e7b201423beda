//! The demo shop: a login form, a cart and logout on axum, with sessions
//! from `session-tower`.
//!
//! [`store`] is the one place the session store is chosen; [`app`] is the
//! router (used in-process by the browser test); [`serve`] runs it with the
//! expired-deletion task beside it until a shutdown signal.

use std::{future::Future, io, path::Path, sync::Arc, time::Duration};

use axum::{
    extract::Form,
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
    Router,
};
use serde::{Deserialize, Serialize};
use session_core::{
    deletion::{DeletionReport, ExpiredDeletionTask},
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

const USER: &str = "user";
const CART: &str = "cart";

/// The cart, kept in the session as typed data.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Cart {
    /// Product names, in the order they were added.
    pub items: Vec<String>,
}

#[derive(Deserialize)]
struct Login {
    username: String,
}

#[derive(Deserialize)]
struct AddToCart {
    item: String,
}

/// The shop's routes behind the session layer, with sessions kept in `store`.
pub fn app<S: session_core::SessionStore + Clone>(store: S) -> Router {
    let sessions = SessionManagerLayer::new(store)
        .with_name("shop_session")
        // Plain HTTP on loopback: a `Secure` cookie would not come back.
        .with_secure(false)
        .with_same_site(SameSite::Lax)
        .with_expiry(Expiry::OnInactivity(time::Duration::hours(1)));
    Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/cart", post(add_to_cart))
        .route("/logout", post(logout))
        .layer(sessions)
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
    let user: Option<String> = session.get(USER).await?;
    let cart: Cart = session.get(CART).await?.unwrap_or_default();
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
    for item in &cart.items {
        page += &format!("<li class=\"item\">{}</li>\n", escape(item));
    }
    page += "</ul>\n</body></html>\n";
    Ok(Html(page))
}

async fn login(
    session: Session,
    Form(form): Form<Login>,
) -> Result<Response, session_tower::Error> {
    let username = form.username.trim();
    if username.is_empty() {
        return Ok(Redirect::to("/").into_response());
    }
    // A new id on login, against session fixation; the cart comes along.
    session.cycle_id().await?;
    session.insert(USER, username).await?;
    Ok(Redirect::to("/").into_response())
}

async fn add_to_cart(
    session: Session,
    Form(form): Form<AddToCart>,
) -> Result<Redirect, session_tower::Error> {
    if PRODUCTS.contains(&form.item.as_str()) {
        let mut cart: Cart = session.get(CART).await?.unwrap_or_default();
        cart.items.push(form.item);
        session.insert(CART, cart).await?;
    }
    Ok(Redirect::to("/"))
}

async fn logout(session: Session) -> Result<Redirect, session_tower::Error> {
    // The record goes, and the cookie with it: the cart is gone.
    session.flush().await?;
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
