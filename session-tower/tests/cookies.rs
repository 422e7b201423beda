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

/// The session's `name=value`, as a browser sends it back.
fn pair(cookie: &cookie::Cookie<'_>) -> String {
    format!("{}={}", cookie.name(), cookie.value())
}

/// A `/read` with this `Cookie` header, given as bytes.
async fn read_with(url: &str, header: &[u8]) -> reqwest::Response {
    bare()
        .get(format!("{url}/read"))
        .header(
            "cookie",
            reqwest::header::HeaderValue::from_bytes(header).unwrap(),
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_cookie_that_is_not_text_costs_only_itself() {
    let key = Key::generate();
    for protection in ["plain", "signed", "private"] {
        let layer = SessionManagerLayer::new(MemoryStore::default()).with_secure(false);
        let layer = match protection {
            "signed" => layer.with_signed(key.clone()),
            "private" => layer.with_private(key.clone()),
            _ => layer,
        };
        let url = serve_with(layer).await;
        let response = bare().get(format!("{url}/count")).send().await.unwrap();
        let session = pair(&the_cookie(&response));
        // Set by page script or a sibling subdomain: UTF-8, or raw Latin-1.
        for header in [
            format!("lang=中文; {session}").into_bytes(),
            format!("{session}; lang=中文").into_bytes(),
            [b"x=\xe9t\xe9; ".as_slice(), session.as_bytes(), b"; y=\xff"].concat(),
            format!("a=1;{session}  ;b").into_bytes(),
        ] {
            let response = read_with(&url, &header).await;
            assert_eq!(
                ok_text(response).await,
                "1",
                "{protection}: {}",
                String::from_utf8_lossy(&header)
            );
        }
    }
}

#[tokio::test]
async fn a_cookie_of_the_same_name_that_is_not_an_id_is_skipped() {
    let url = serve_with(SessionManagerLayer::new(MemoryStore::default()).with_secure(false)).await;
    let response = bare().get(format!("{url}/count")).send().await.unwrap();
    let session = pair(&the_cookie(&response));
    // Another application's `id` on the parent domain, or one a subdomain
    // tossed in, sent before ours.
    for other in ["id=42", "id=", "id=not-an-id", "id=\"quoted\""] {
        let header = format!("{other}; {session}");
        let response = read_with(&url, header.as_bytes()).await;
        assert_eq!(ok_text(response).await, "1", "{header}");
    }
}

#[tokio::test]
async fn a_host_prefixed_cookie_is_secure_host_only_and_found() {
    let layer = SessionManagerLayer::new(MemoryStore::default())
        .with_name("sid")
        .with_path("/app")
        .with_domain("example.test")
        .with_secure(false)
        .with_host_prefix()
        .validate()
        .unwrap();
    let url = serve_with(layer).await;
    let response = bare().get(format!("{url}/count")).send().await.unwrap();
    let cookie = the_cookie(&response);
    assert_eq!(cookie.name(), "__Host-sid");
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(cookie.path(), Some("/"));
    assert_eq!(cookie.domain(), None);
    // What a browser sends back (it never shows a client the attributes).
    let header = format!("sid=other; {}", pair(&cookie));
    assert_eq!(ok_text(read_with(&url, header.as_bytes()).await).await, "1");

    // Already prefixed: not prefixed twice.
    let layer = SessionManagerLayer::new(MemoryStore::default())
        .with_name("__Host-id")
        .with_host_prefix();
    assert_eq!(first_cookie(layer).await.name(), "__Host-id");
}

#[tokio::test]
async fn a_value_signed_for_another_cookie_is_not_a_session_cookie() {
    let key = Key::generate();
    let store = MemoryStore::default();
    let url = serve_with(
        SessionManagerLayer::new(store.clone())
            .with_secure(false)
            .with_signed(key.clone()),
    )
    .await;
    let response = bare().get(format!("{url}/count")).send().await.unwrap();
    let genuine = the_cookie(&response);
    let id = genuine.value()[44..].to_owned();
    assert!(id.parse::<session_core::Id>().is_ok());
    assert_eq!(
        ok_text(read_with(&url, pair(&genuine).as_bytes()).await).await,
        "1"
    );

    // The application signs a cookie of its own with the same key (the
    // `cookie` crate's signed jar), over a value a visitor can choose.
    let mut jar = cookie::CookieJar::new();
    jar.signed_mut(&key)
        .add(cookie::Cookie::new("theme", id.clone()));
    let theme = jar.get("theme").unwrap().value().to_owned();
    let response = read_with(&url, format!("id={theme}").as_bytes()).await;
    assert_eq!(
        ok_text(response).await,
        "0",
        "the jar's signature is not ours"
    );

    // Another layer with the same key but another cookie name (a second
    // application): its cookie does not open here either.
    let other = serve_with(
        SessionManagerLayer::new(store.clone())
            .with_secure(false)
            .with_name("other")
            .with_signed(key.clone()),
    )
    .await;
    let response = bare().get(format!("{other}/count")).send().await.unwrap();
    let other_cookie = the_cookie(&response);
    assert_eq!(other_cookie.name(), "other");
    assert_eq!(ok_text(response).await, "1");
    let moved = format!("id={}", other_cookie.value());
    assert_eq!(ok_text(read_with(&url, moved.as_bytes()).await).await, "0");
}

#[tokio::test]
async fn legacy_signatures_are_accepted_only_when_asked_and_then_re_signed() {
    let key = Key::generate();
    let store = MemoryStore::default();
    // A session stored and its cookie signed as earlier builds did: the
    // `cookie` crate's signed jar, over the value alone.
    let mut record = session_core::Record::new(
        session_core::time::OffsetDateTime::now_utc() + Duration::hours(1),
    );
    record.data.insert("count".into(), 7.into());
    session_core::SessionStore::create(&store, &mut record)
        .await
        .unwrap();
    let mut jar = cookie::CookieJar::new();
    jar.signed_mut(&key)
        .add(cookie::Cookie::new("id", record.id.to_string()));
    let legacy = format!("id={}", jar.get("id").unwrap().value());

    let strict = serve_with(
        SessionManagerLayer::new(store.clone())
            .with_secure(false)
            .with_signed(key.clone()),
    )
    .await;
    assert_eq!(
        ok_text(read_with(&strict, legacy.as_bytes()).await).await,
        "0"
    );

    let upgrading = serve_with(
        SessionManagerLayer::new(store.clone())
            .with_secure(false)
            .with_signed(key.clone())
            .with_legacy_signatures(true),
    )
    .await;
    let response = read_with(&upgrading, legacy.as_bytes()).await;
    let resigned = pair(&the_cookie(&response));
    assert_eq!(ok_text(response).await, "7");
    assert_ne!(resigned, legacy);
    // The new signature is the name-bound one: the strict layer takes it.
    assert_eq!(
        ok_text(read_with(&strict, resigned.as_bytes()).await).await,
        "7"
    );
}
