//! What every HTTP-level test shares: an app with routes that use the
//! session in each way, served on 127.0.0.1:0, and a client keeping cookies.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use axum::{
    extract::Path,
    http::StatusCode,
    routing::{get, post},
    Router,
};
use cookie::Cookie;
use reqwest::{header::SET_COOKIE, Response};
use session_core::{time::OffsetDateTime, Id, SessionStore};
use session_tower::{Expiry, Session, SessionManagerLayer};

pub type Outcome<T> = Result<T, session_tower::Error>;

/// The routes the tests call.
pub fn routes() -> Router {
    Router::new()
        .route("/untouched", get(|| async { "untouched" }))
        .route("/count", get(count))
        .route("/read", get(read))
        .route("/id", get(id))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/expire-at/{unix}", post(expire_at))
        .route("/expiry", get(expiry))
        .route("/set/{key}/{value}", post(set))
        .route("/remove/{key}", post(remove))
        .route("/clear", post(clear))
        .route("/data", get(data))
        .route("/login-as/{user}", post(login_as))
        .route("/whoami", get(whoami))
        .route("/devices", get(devices))
        .route("/logout-others", post(logout_others))
        .route("/end/{handle}", post(end))
}

async fn set(session: Session, Path((key, value)): Path<(String, String)>) -> Outcome<StatusCode> {
    session.insert(&key, value).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(session: Session, Path(key): Path<String>) -> Outcome<StatusCode> {
    session.remove_value(&key).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn clear(session: Session) -> Outcome<StatusCode> {
    session.clear().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The session's data as sorted `key=value` pairs.
async fn data(session: Session) -> Outcome<String> {
    let mut pairs = Vec::new();
    for key in ["a", "b", "c", "k", "count", "user", "device"] {
        if let Some(value) = session.get_value(key).await? {
            pairs.push(format!("{key}={value}"));
        }
    }
    Ok(pairs.join(","))
}

/// Logs in as `user`: a new id, the user set, the device noted.
async fn login_as(
    session: Session,
    Path(user): Path<String>,
    headers: axum::http::HeaderMap,
) -> Outcome<StatusCode> {
    session.cycle_id().await?;
    session.set_user_id(Some(user)).await?;
    let device = headers
        .get("x-device")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("unknown")
        .to_owned();
    session.insert("device", device).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn whoami(session: Session) -> Outcome<String> {
    Ok(session.user_id().await?.unwrap_or_default())
}

/// One line per device of the user: `handle device current`.
async fn devices(session: Session) -> Outcome<String> {
    let mut lines: Vec<String> = session
        .user_sessions()
        .await?
        .iter()
        .map(|device| {
            let name: String = device.get("device").unwrap_or_default();
            format!("{} {name} {}", device.handle(), device.is_current())
        })
        .collect();
    lines.sort();
    Ok(lines.join("\n"))
}

async fn logout_others(session: Session) -> Outcome<String> {
    Ok(session.end_other_sessions().await?.to_string())
}

async fn end(session: Session, Path(handle): Path<String>) -> Outcome<String> {
    Ok(session.end_user_session(&handle).await?.to_string())
}

async fn count(session: Session) -> Outcome<String> {
    let count: u64 = session.get("count").await?.unwrap_or(0) + 1;
    session.insert("count", count).await?;
    Ok(count.to_string())
}

async fn read(session: Session) -> Outcome<String> {
    let count: u64 = session.get("count").await?.unwrap_or(0);
    Ok(count.to_string())
}

async fn id(session: Session) -> Outcome<String> {
    Ok(session
        .id()
        .await?
        .map(|id| id.to_string())
        .unwrap_or_default())
}

async fn login(session: Session) -> Outcome<StatusCode> {
    session.cycle_id().await?;
    session.insert("user", "ferris").await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn logout(session: Session) -> Outcome<StatusCode> {
    session.flush().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn expire_at(session: Session, Path(unix): Path<i64>) -> Outcome<StatusCode> {
    let at = OffsetDateTime::from_unix_timestamp(unix).unwrap();
    session.set_expiry(Some(Expiry::AtDateTime(at))).await?;
    session.insert("pinned", true).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn expiry(session: Session) -> Outcome<String> {
    Ok(format!("{:?}", session.expiry().await?))
}

/// Serves `app` on a fresh loopback port; returns its base URL.
pub async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// Serves the test routes behind `layer`.
pub async fn serve_with(layer: SessionManagerLayer) -> String {
    serve(routes().layer(layer)).await
}

/// A client that keeps cookies, like a browser.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

/// A client that keeps nothing: the test sets `Cookie` itself.
pub fn bare() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

/// The response's `Set-Cookie` headers, parsed.
pub fn set_cookies(response: &Response) -> Vec<Cookie<'static>> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|value| Cookie::parse(value.to_str().unwrap().to_owned()).unwrap())
        .collect()
}

/// The one `Set-Cookie` of the response.
pub fn the_cookie(response: &Response) -> Cookie<'static> {
    let mut cookies = set_cookies(response);
    assert_eq!(
        cookies.len(),
        1,
        "expected exactly one Set-Cookie: {cookies:?}"
    );
    cookies.remove(0)
}

/// The session id a plain cookie carries.
pub fn id_of(cookie: &Cookie<'_>) -> Id {
    cookie.value().parse().unwrap()
}

/// The body as text, after checking the status is 200.
pub async fn ok_text(response: Response) -> String {
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

/// Whether the store still holds `id`.
pub async fn stored(store: &impl SessionStore, id: Id) -> bool {
    store.load(&id).await.unwrap().is_some()
}
