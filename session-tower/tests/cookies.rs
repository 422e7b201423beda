//! The cookie over real HTTP: its attributes for each setting, signed and
//! private values, key rotation, and bad cookies.
#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failed test.

mod common;

use common::*;
use cookie::SameSite;
use session_core::time::Duration;
use session_memory::MemoryStore;
use session_testkit::FaultyStore;
use session_tower::{Expiry, Key, Keys, SessionManagerLayer};

async fn first_cookie(layer: SessionManagerLayer) -> cookie::Cookie<'static> {
    let url = serve_with(layer).await;
    let response = bare().get(format!("{url}/count")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    the_cookie(&response)
}

#[tokio::test]
async fn default_attributes() {
    let cookie = first_cookie(SessionManagerLayer::new(MemoryStore::default())).await;
    assert_eq!(cookie.name(), "id");
    assert_eq!(cookie.path(), Some("/"));
    assert_eq!(cookie.domain(), None);
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(cookie.same_site(), Some(SameSite::Strict));
    assert_eq!(
        cookie.max_age(),
        None,
        "a browser-session cookie by default"
    );
    assert!(cookie.value().parse::<session_core::Id>().is_ok());
}

#[tokio::test]
async fn each_setting_shows_in_the_cookie() {
    let layer = SessionManagerLayer::new(MemoryStore::default())
        .with_name("sid")
        .with_path("/app")
        .with_domain("example.test")
        .with_secure(false)
        .with_http_only(false)
        .with_same_site(SameSite::Lax)
        .with_expiry(Expiry::OnInactivity(Duration::hours(1)));
    let cookie = first_cookie(layer).await;
    assert_eq!(cookie.name(), "sid");
    assert_eq!(cookie.path(), Some("/app"));
    assert_eq!(cookie.domain(), Some("example.test"));
    assert_eq!(cookie.secure(), None);
    assert_eq!(cookie.http_only(), None);
    assert_eq!(cookie.same_site(), Some(SameSite::Lax));
    let max_age = cookie.max_age().expect("Max-Age for on-inactivity");
    assert!(max_age > Duration::minutes(59) && max_age <= Duration::hours(1));

    let layer = SessionManagerLayer::new(MemoryStore::default()).with_same_site(SameSite::None);
    assert_eq!(first_cookie(layer).await.same_site(), Some(SameSite::None));
}

fn tamper(value: &str) -> String {
    // Change one character in the middle, keeping the alphabet.
    let mut chars: Vec<char> = value.chars().collect();
    let middle = chars.len() / 2;
    chars[middle] = if chars[middle] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[tokio::test]
async fn signed_and_private_cookies_reject_tampering_without_store_writes() {
    let key = Key::generate();
    for (name, layer) in [
        ("signed", SessionManagerLayer::new as fn(_) -> _),
        ("private", SessionManagerLayer::new),
    ] {
        let store = FaultyStore::new(MemoryStore::default());
        let faults = store.faults();
        let layer = layer(store.clone()).with_secure(false);
        let layer = if name == "signed" {
            layer.with_signed(key.clone())
        } else {
            layer.with_private(key.clone())
        };
        let url = serve_with(layer).await;
        let response = bare().get(format!("{url}/count")).send().await.unwrap();
        let cookie = the_cookie(&response);
        assert!(
            cookie.value().parse::<session_core::Id>().is_err(),
            "{name}: not a bare id"
        );

        let send = |value: String| {
            bare()
                .get(format!("{url}/read"))
                .header("cookie", format!("id={value}"))
                .send()
        };
        // The genuine cookie loads the session.
        assert_eq!(
            ok_text(send(cookie.value().to_owned()).await.unwrap()).await,
            "1"
        );
        // A tampered one is a fresh session: no error, no write, no cookie.
        faults.reset_calls();
        let response = send(tamper(cookie.value())).await.unwrap();
        assert!(set_cookies(&response).is_empty(), "{name}");
        assert_eq!(ok_text(response).await, "0", "{name}");
        assert_eq!(faults.total_calls(), 0, "{name}: not even a load");
        // So is the bare id inside it: valid in the store, but not protected.
        let bare_id = session_core::Id::default().to_string();
        let response = send(bare_id).await.unwrap();
        assert_eq!(ok_text(response).await, "0", "{name}");
        assert_eq!(store.inner().len(), 1, "{name}: nothing written");
    }
}

#[tokio::test]
async fn key_rotation_keeps_old_cookies_valid() {
    let (old, new) = (Key::generate(), Key::generate());
    let store = MemoryStore::default();
    for private in [false, true] {
        let protect = |layer: SessionManagerLayer, keys: Keys| {
            if private {
                layer.with_private(keys)
            } else {
                layer.with_signed(keys)
            }
        };
        let before = protect(SessionManagerLayer::new(store.clone()), old.clone().into());
        let url = serve_with(before).await;
        let response = bare().get(format!("{url}/count")).send().await.unwrap();
        let old_cookie = the_cookie(&response).value().to_owned();

        // After rotation: the old cookie still works, and the session moves
        // to the new key when it is next saved.
        let rotated = protect(
            SessionManagerLayer::new(store.clone()),
            Keys::new(new.clone()).with_older(old.clone()),
        );
        let url = serve_with(rotated).await;
        let response = bare()
            .get(format!("{url}/count"))
            .header("cookie", format!("id={old_cookie}"))
            .send()
            .await
            .unwrap();
        let new_cookie = the_cookie(&response).value().to_owned();
        assert_eq!(ok_text(response).await, "2", "private={private}");
        assert_ne!(new_cookie, old_cookie);

        // Once the old key is retired, only the new cookie is accepted.
        let retired = protect(SessionManagerLayer::new(store.clone()), new.clone().into());
        let url = serve_with(retired).await;
        let read = |value: String| {
            bare()
                .get(format!("{url}/read"))
                .header("cookie", format!("id={value}"))
                .send()
        };
        assert_eq!(ok_text(read(new_cookie).await.unwrap()).await, "2");
        assert_eq!(ok_text(read(old_cookie).await.unwrap()).await, "0");
    }
}

#[tokio::test]
async fn bad_cookies_give_a_fresh_session_and_no_store_write() {
    let store = FaultyStore::new(MemoryStore::default());
    let faults = store.faults();
    let url = serve_with(SessionManagerLayer::new(store.clone()).with_secure(false)).await;
    let expired_id = {
        // A record that expired: stored, but not loadable.
        let mut record = session_core::Record::new(
            session_core::time::OffsetDateTime::now_utc() - Duration::minutes(1),
        );
        record.data.insert("count".into(), 41.into());
        session_core::SessionStore::save(store.inner(), &record)
            .await
            .unwrap();
        record.id.to_string()
    };
    let unknown_id = session_core::Id::default().to_string();
    for cookie in [
        "id=".to_owned(),
        "id=not-an-id".to_owned(),
        "id=AAAAAAAAAAAAAAAAAAAAAA==".to_owned(),
        "id=%%%".to_owned(),
        "garbage".to_owned(),
        format!("id={unknown_id}"),
        format!("id={expired_id}"),
    ] {
        faults.reset_calls();
        let response = bare()
            .get(format!("{url}/read"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert!(set_cookies(&response).is_empty(), "{cookie}");
        assert_eq!(ok_text(response).await, "0", "{cookie}");
        assert_eq!(
            faults.calls(session_testkit::Operation::Save),
            0,
            "{cookie}"
        );
        assert_eq!(
            faults.calls(session_testkit::Operation::Create),
            0,
            "{cookie}"
        );
    }
    // Writing through a bad cookie starts a new session under a new id.
    let response = bare()
        .get(format!("{url}/count"))
        .header("cookie", format!("id={unknown_id}"))
        .send()
        .await
        .unwrap();
    let cookie = the_cookie(&response);
    assert_ne!(cookie.value(), unknown_id);
    assert_eq!(ok_text(response).await, "1");
}
