//! Builder settings that cannot work are refused by `validate`, and a layer
//! used with them anyway answers 500 instead of panicking or silently
//! dropping the cookie; responses that set or remove the cookie are private
//! to the visitor.
#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failed test.

mod common;

use axum::{
    http::{header::CACHE_CONTROL, HeaderValue},
    response::IntoResponse,
    routing::get,
    Router,
};
use common::*;
use session_core::time::Duration;
use session_memory::MemoryStore;
use session_testkit::FaultyStore;
use session_tower::{Expiry, SameSite, Session, SessionManagerLayer, SettingError};

fn layer() -> SessionManagerLayer {
    SessionManagerLayer::new(MemoryStore::default())
}

/// Every kind of setting `validate` refuses, with what it must say.
fn invalid_layers() -> Vec<(SessionManagerLayer, &'static str)> {
    vec![
        (layer().with_name("my id"), "cookie name"),
        (layer().with_name(""), "cookie name"),
        (layer().with_name("id;x"), "cookie name"),
        (layer().with_name("ïd"), "cookie name"),
        (layer().with_path("app"), "cookie path"),
        (layer().with_path("/a;b"), "cookie path"),
        (layer().with_path("/a\nb"), "cookie path"),
        (layer().with_domain("exa mple.com"), "cookie domain"),
        (layer().with_domain(""), "cookie domain"),
        (
            layer().with_host_prefix().with_path("/app"),
            "__Host- cookie must have Path=/",
        ),
        (
            layer().with_host_prefix().with_domain("example.com"),
            "__Host- cookie must have no Domain",
        ),
        (
            layer().with_name("__host-id").with_secure(false),
            "__Host- cookie must be Secure",
        ),
        (
            layer().with_name("__Secure-id").with_secure(false),
            "__Secure- cookie must be Secure",
        ),
        (
            layer().with_same_site(SameSite::None).with_secure(false),
            "SameSite=None",
        ),
        (
            layer().with_expiry(Expiry::OnInactivity(Duration::MAX)),
            "expiry policy",
        ),
        (
            layer().with_expiry(Expiry::OnInactivity(Duration::days(365 * 9000))),
            "expiry policy",
        ),
        (
            layer().with_expiry(Expiry::OnInactivity(Duration::ZERO)),
            "expiry policy",
        ),
        (
            layer().with_expiry(Expiry::OnSessionEnd {
                lifetime: Duration::seconds(-1),
            }),
            "expiry policy",
        ),
        (
            layer().with_refresh_interval(Duration::seconds(-1)),
            "refresh interval",
        ),
        (
            layer().with_refresh_interval(Duration::MAX),
            "refresh interval",
        ),
        (
            layer().with_absolute_timeout(Duration::ZERO),
            "absolute timeout",
        ),
        (
            layer().with_absolute_timeout(Duration::MAX),
            "absolute timeout",
        ),
        (
            layer().with_absolute_timeout(Duration::MIN),
            "absolute timeout",
        ),
    ]
}

#[test]
fn validate_refuses_each_setting_that_cannot_work() {
    for (layer, expected) in invalid_layers() {
        let error = layer.validate().expect_err(expected);
        let message = error.to_string();
        assert!(
            message.contains(expected),
            "{message} should say {expected}"
        );
    }
    assert!(matches!(
        layer()
            .with_expiry(Expiry::OnInactivity(Duration::MAX))
            .validate(),
        Err(SettingError::Expiry(_))
    ));
}

#[test]
fn validate_takes_every_setting_that_works() {
    let valid = layer()
        .with_name("__Secure-sid")
        .with_path("/app/v1")
        .with_domain("example.com")
        .with_same_site(SameSite::None)
        .with_expiry(Expiry::OnInactivity(Duration::days(365 * 100)))
        .with_refresh_interval(Duration::ZERO)
        .with_absolute_timeout(Duration::hours(12));
    assert!(valid.validate().is_ok());
    assert!(layer().with_host_prefix().validate().is_ok());
    assert!(layer()
        .with_expiry(Expiry::AtDateTime(
            session_core::time::OffsetDateTime::now_utc() - Duration::days(1)
        ))
        .validate()
        .is_ok());
}

#[tokio::test]
async fn an_invalid_layer_used_anyway_answers_500_and_never_panics() {
    for (layer, expected) in invalid_layers() {
        let url = serve_with(layer).await;
        for path in ["/count", "/untouched"] {
            let response = bare().get(format!("{url}{path}")).send().await.unwrap();
            assert_eq!(response.status(), 500, "{expected}: {path}");
            assert!(set_cookies(&response).is_empty(), "{expected}");
        }
    }
}

/// Routes answering with and without a `Cache-Control` of their own.
fn cache_routes() -> Router {
    async fn count(session: Session) -> Outcome<String> {
        let count: u64 = session.get("count").await?.unwrap_or(0) + 1;
        session.insert("count", count).await?;
        Ok(count.to_string())
    }
    async fn with(session: Session, value: &'static str) -> Outcome<axum::response::Response> {
        let body = count(session).await?;
        Ok(([(CACHE_CONTROL, HeaderValue::from_static(value))], body).into_response())
    }
    Router::new()
        .route("/count", get(count))
        .route("/public", get(|s: Session| with(s, "public, max-age=3600")))
        .route("/no-store", get(|s: Session| with(s, "no-store")))
        .route(
            "/read",
            get(|s: Session| async move {
                let count: Option<u64> = s.get("count").await?;
                Outcome::Ok(count.unwrap_or(0).to_string())
            }),
        )
        .route("/logout", get(|s: Session| async move { s.flush().await }))
}

fn cache_control(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all(CACHE_CONTROL)
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn responses_that_set_or_remove_the_cookie_are_private() {
    let url = serve(cache_routes().layer(layer().with_secure(false))).await;
    let client = browser();

    let response = client.get(format!("{url}/count")).send().await.unwrap();
    assert_eq!(set_cookies(&response).len(), 1);
    assert_eq!(cache_control(&response), ["private"]);

    // A handler's own setting: made private, never weakened (new visitors,
    // so each response sets the cookie).
    let response = browser().get(format!("{url}/public")).send().await.unwrap();
    assert_eq!(set_cookies(&response).len(), 1);
    assert_eq!(cache_control(&response), ["max-age=3600, private"]);
    let response = browser()
        .get(format!("{url}/no-store"))
        .send()
        .await
        .unwrap();
    assert_eq!(set_cookies(&response).len(), 1);
    assert_eq!(cache_control(&response), ["no-store"]);
    // A changed session whose cookie stays as it is (a browser-session
    // cookie): no Set-Cookie, the handler's header untouched.
    let response = client.get(format!("{url}/public")).send().await.unwrap();
    assert!(set_cookies(&response).is_empty());
    assert_eq!(cache_control(&response), ["public, max-age=3600"]);

    // No cookie, no change: a read of an unchanged session.
    let response = client.get(format!("{url}/read")).send().await.unwrap();
    assert!(set_cookies(&response).is_empty());
    assert!(cache_control(&response).is_empty());

    // The removal cookie too.
    let response = client.get(format!("{url}/logout")).send().await.unwrap();
    assert_eq!(set_cookies(&response).len(), 1);
    assert_eq!(cache_control(&response), ["private"]);
}

#[tokio::test]
async fn cookie_only_and_sliding_cookies_are_private_too() {
    let layer = SessionManagerLayer::cookie_only(session_tower::Key::generate())
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(Duration::hours(1)));
    let url = serve(cache_routes().layer(layer)).await;
    let client = browser();
    let response = client.get(format!("{url}/public")).send().await.unwrap();
    assert_eq!(cache_control(&response), ["max-age=3600, private"]);

    // A touch of a sliding session resends the cookie: private as well.
    let store = FaultyStore::new(MemoryStore::default());
    let layer = SessionManagerLayer::new(store)
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(Duration::hours(1)))
        .with_refresh_interval(Duration::ZERO);
    let url = serve(cache_routes().layer(layer)).await;
    let client = browser();
    client.get(format!("{url}/count")).send().await.unwrap();
    let response = client.get(format!("{url}/read")).send().await.unwrap();
    assert_eq!(set_cookies(&response).len(), 1, "touched");
    assert_eq!(cache_control(&response), ["private"]);
}
