//! The session id in a request header (APIs, mobile clients), beside or
//! instead of the cookie, over real HTTP.
#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failed test.

mod common;

use common::*;
use http::HeaderName;
use session_memory::MemoryStore;
use session_testkit::{FaultyStore, Operation, When};
use session_tower::{Key, SessionManagerLayer, SettingError};

const HEADER: HeaderName = HeaderName::from_static("x-session");

/// The session header's value in `response`, if it has one.
fn token(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("x-session")
        .map(|value| value.to_str().unwrap().to_owned())
}

async fn post(url: &str, token: Option<&str>) -> reqwest::Response {
    let request = bare().post(url);
    let request = match token {
        Some(token) => request.header("x-session", token),
        None => request,
    };
    request.send().await.unwrap()
}

async fn get(url: &str, token: Option<&str>) -> reqwest::Response {
    let request = bare().get(url);
    let request = match token {
        Some(token) => request.header("x-session", token),
        None => request,
    };
    request.send().await.unwrap()
}

#[tokio::test]
async fn header_only_sessions_live_and_end_through_the_header() {
    let store = MemoryStore::default();
    let layer = SessionManagerLayer::new(store.clone())
        .with_header(HEADER)
        .with_cookie(false)
        .validate()
        .unwrap();
    let url = serve_with(layer).await;

    // A new session: its id in the header, no cookie.
    let response = get(&format!("{url}/count"), None).await;
    assert!(set_cookies(&response).is_empty(), "no cookie");
    let first = token(&response).expect("the new id in the header");
    assert_eq!(ok_text(response).await, "1");
    let response = get(&format!("{url}/count"), Some(&first)).await;
    assert_eq!(token(&response), None, "unchanged id: no header");
    assert_eq!(ok_text(response).await, "2");

    // A cookie carrying the id is not read: the header is the only way.
    let response = bare()
        .get(format!("{url}/read"))
        .header("cookie", format!("id={first}"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok_text(response).await, "0");

    // Login rotates the id: the new one comes back in the header, the old
    // one no longer opens anything.
    let response = post(&format!("{url}/login"), Some(&first)).await;
    assert_eq!(response.status(), 204);
    let second = token(&response).expect("the rotated id in the header");
    assert_ne!(first, second);
    assert!(!stored(&store, first.parse().unwrap()).await);
    assert_eq!(
        ok_text(get(&format!("{url}/read"), Some(&second)).await).await,
        "2"
    );
    assert_eq!(
        ok_text(get(&format!("{url}/read"), Some(&first)).await).await,
        "0"
    );

    // Logout: an empty header tells the client to drop its token.
    let response = post(&format!("{url}/logout"), Some(&second)).await;
    assert_eq!(token(&response).as_deref(), Some(""));
    assert!(!stored(&store, second.parse().unwrap()).await);
}

#[tokio::test]
async fn beside_the_cookie_either_one_finds_the_session() {
    let layer = SessionManagerLayer::new(MemoryStore::default())
        .with_secure(false)
        .with_header(HEADER);
    let url = serve_with(layer).await;
    let response = get(&format!("{url}/count"), None).await;
    let cookie = the_cookie(&response);
    let header = token(&response).unwrap();
    assert_eq!(cookie.value(), header, "plain: the id in both");
    ok_text(response).await;

    let response = get(&format!("{url}/count"), Some(&header)).await;
    assert_eq!(ok_text(response).await, "2");
    let response = bare()
        .get(format!("{url}/count"))
        .header("cookie", format!("id={}", cookie.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(ok_text(response).await, "3");

    // Both sent, naming different sessions: the header wins.
    let other = token(&get(&format!("{url}/count"), None).await).unwrap();
    let response = bare()
        .get(format!("{url}/read"))
        .header("cookie", format!("id={}", cookie.value()))
        .header("x-session", &other)
        .send()
        .await
        .unwrap();
    assert_eq!(ok_text(response).await, "1");
}

#[tokio::test]
async fn signed_and_private_tokens_are_bound_to_the_header() {
    let key = Key::generate();
    for private in [false, true] {
        let layer = SessionManagerLayer::new(MemoryStore::default())
            .with_secure(false)
            .with_header(HEADER);
        let layer = if private {
            layer.with_private(key.clone())
        } else {
            layer.with_signed(key.clone())
        };
        let url = serve_with(layer).await;
        let response = get(&format!("{url}/count"), None).await;
        let cookie = the_cookie(&response);
        let header = token(&response).unwrap();
        ok_text(response).await;
        assert!(
            header.parse::<session_core::Id>().is_err(),
            "private {private}: protected, not a bare id"
        );
        assert_ne!(cookie.value(), header, "private {private}: bound to names");

        // The token opens the session.
        let response = get(&format!("{url}/count"), Some(&header)).await;
        assert_eq!(ok_text(response).await, "2", "private {private}");
        // The cookie's value, moved into the header, does not.
        let response = get(&format!("{url}/read"), Some(cookie.value())).await;
        assert_eq!(ok_text(response).await, "0", "private {private}");
        // Nor the token moved into the cookie.
        let response = bare()
            .get(format!("{url}/read"))
            .header("cookie", format!("id={header}"))
            .send()
            .await
            .unwrap();
        assert_eq!(ok_text(response).await, "0", "private {private}");
        // Nor a tampered token.
        let mut tampered = header.clone().into_bytes();
        let middle = tampered.len() / 2;
        tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        let response = get(&format!("{url}/read"), Some(&tampered)).await;
        assert_eq!(ok_text(response).await, "0", "private {private}");
    }
}

#[tokio::test]
async fn a_logout_in_flight_is_final_for_header_clients_too() {
    let store = FaultyStore::new(MemoryStore::default());
    let faults = store.faults();
    let layer = SessionManagerLayer::new(store.clone())
        .with_header(HEADER)
        .with_cookie(false);
    let url = serve_with(layer).await;
    let response = get(&format!("{url}/count"), None).await;
    let id = token(&response).unwrap();
    ok_text(response).await;

    // A request changing the session reaches its write ...
    let mut held = faults.hold(Operation::Update, When::Before);
    let in_flight = tokio::spawn({
        let (url, id) = (url.clone(), id.clone());
        async move { post(&format!("{url}/set/a/1"), Some(&id)).await }
    });
    held.reached().await;
    // ... when another logs out.
    let logout = post(&format!("{url}/logout"), Some(&id)).await;
    assert_eq!(token(&logout).as_deref(), Some(""));
    held.release();

    let late = in_flight.await.unwrap();
    assert_eq!(late.status(), 204);
    assert_eq!(token(&late), None, "the late response sends no token");
    assert!(
        !stored(&store, id.parse().unwrap()).await,
        "not resurrected"
    );
}

#[test]
fn validate_refuses_header_settings_that_cannot_work() {
    let store = MemoryStore::default;
    assert!(matches!(
        SessionManagerLayer::new(store())
            .with_cookie(false)
            .validate(),
        Err(SettingError::Header(_))
    ));
    assert!(matches!(
        SessionManagerLayer::new(store())
            .with_header(http::header::COOKIE)
            .validate(),
        Err(SettingError::Header(_))
    ));
    assert!(matches!(
        SessionManagerLayer::cookie_only(Key::generate())
            .with_header(HEADER)
            .validate(),
        Err(SettingError::Header(_))
    ));
    assert!(SessionManagerLayer::new(store())
        .with_header(HEADER)
        .with_cookie(false)
        .validate()
        .is_ok());
}
