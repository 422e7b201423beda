//! Cookie-only sessions over real HTTP: the whole record encrypted in the
//! cookie, expiry enforced on read, the size limit, key rotation, and keys
//! refused at start-up.
#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failed test.

mod common;

use std::{collections::HashMap, time::Duration as StdDuration};

use axum::{http::StatusCode, routing::get, Router};
use common::*;
use cookie::{Cookie, CookieJar};
use serde_json::json;
use session_core::{
    time::{Duration, OffsetDateTime},
    Id, Record,
};
use session_tower::{
    Expiry, Key, KeyError, Keys, Session, SessionManagerLayer, COOKIE_SIZE_LIMIT, MIN_KEY_BYTES,
};

/// A value far over what fits in a cookie.
const BIG: usize = 5 * 1024;

async fn big(session: Session) -> Outcome<StatusCode> {
    session.insert("big", "x".repeat(BIG)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Counts, then tries a big value and reports the refusal instead of failing.
async fn big_caught(session: Session) -> Outcome<String> {
    let count: u64 = session.get("count").await?.unwrap_or(0) + 1;
    session.insert("count", count).await?;
    match session.insert("big", "x".repeat(BIG)).await {
        Ok(()) => Ok("accepted".into()),
        Err(error @ session_tower::Error::CookieTooLarge { size, limit }) => {
            assert!(error.is_cookie_too_large());
            assert!(size > limit);
            assert_eq!(session.get::<String>("big").await?, None, "rolled back");
            Ok(format!("refused {size} > {limit}"))
        }
        Err(other) => Err(other),
    }
}

fn routes_with_big() -> Router {
    routes()
        .route("/big", get(big))
        .route("/big-caught", get(big_caught))
}

fn layer(keys: impl Into<Keys>) -> SessionManagerLayer {
    SessionManagerLayer::cookie_only(keys).with_secure(false)
}

async fn serve_cookie_only(layer: SessionManagerLayer) -> String {
    serve(routes_with_big().layer(layer)).await
}

/// Sends `id=<value>` to `path` without any cookie store.
async fn send(url: &str, path: &str, value: &str) -> reqwest::Response {
    bare()
        .get(format!("{url}{path}"))
        .header("cookie", format!("id={value}"))
        .send()
        .await
        .unwrap()
}

/// The record a cookie value carries, decrypted with `key` as a test would
/// from outside.
fn open(key: &Key, value: &str) -> Record {
    let cookie = CookieJar::new()
        .private(key)
        .decrypt(Cookie::new("id", value.to_owned()))
        .expect("decrypts with the key");
    serde_json::from_str(cookie.value()).unwrap()
}

/// A cookie value holding `record`, encrypted with `key` as the layer does.
fn craft(key: &Key, record: &Record) -> String {
    let json = serde_json::to_string(record).unwrap();
    let mut jar = CookieJar::new();
    jar.private_mut(key).add(Cookie::new("id", json));
    jar.get("id").unwrap().value().to_owned()
}

fn record_with_count(count: u64, expiry_date: OffsetDateTime) -> Record {
    Record {
        id: Id::default(),
        data: HashMap::from([("count".to_owned(), json!(count))]),
        expiry_date,
        version: 0,
        user_id: None,
    }
}

#[tokio::test]
async fn round_trip_through_a_browser() {
    let url = serve_cookie_only(layer(Key::generate())).await;
    let browser = browser();
    for expected in ["1", "2", "3"] {
        let response = browser.get(format!("{url}/count")).send().await.unwrap();
        assert_eq!(ok_text(response).await, expected);
    }
    let response = browser.get(format!("{url}/read")).send().await.unwrap();
    assert!(set_cookies(&response).is_empty(), "a read writes nothing");
    assert_eq!(ok_text(response).await, "3");
    // The id travels in the payload and stays put.
    let first = ok_text(browser.get(format!("{url}/id")).send().await.unwrap()).await;
    let second = ok_text(browser.get(format!("{url}/id")).send().await.unwrap()).await;
    assert!(first.parse::<Id>().is_ok(), "{first:?}");
    assert_eq!(first, second);
    // Untouched: no cookie.
    let response = browser
        .get(format!("{url}/untouched"))
        .send()
        .await
        .unwrap();
    assert!(set_cookies(&response).is_empty());
}

#[tokio::test]
async fn the_cookie_is_encrypted_and_carries_the_record() {
    let key = Key::generate();
    let layer = layer(key.clone()).with_expiry(Expiry::OnInactivity(Duration::hours(1)));
    let url = serve_cookie_only(layer).await;
    let response = bare().get(format!("{url}/count")).send().await.unwrap();
    let cookie = the_cookie(&response);
    assert!(
        !cookie.value().contains("count"),
        "the data is not readable"
    );
    let before = OffsetDateTime::now_utc();
    let record = open(&key, cookie.value());
    assert_eq!(record.data.get("count"), Some(&json!(1)));
    // Max-Age agrees with the expiry date inside the payload.
    let max_age = cookie.max_age().expect("Max-Age for on-inactivity");
    let gap = (record.expiry_date - (before + max_age)).abs();
    assert!(gap < Duration::seconds(5), "{gap}");
}

#[tokio::test]
async fn a_tampered_or_truncated_cookie_is_a_fresh_session() {
    let url = serve_cookie_only(layer(Key::generate())).await;
    let response = bare().get(format!("{url}/count")).send().await.unwrap();
    let value = the_cookie(&response).value().to_owned();
    // The genuine cookie works (so the refusals below mean something).
    assert_eq!(ok_text(send(&url, "/read", &value).await).await, "1");

    let mut tampered: Vec<char> = value.chars().collect();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    let truncated = &value[..value.len() / 2];
    for bad in [tampered.as_str(), truncated, "", "not base64!", "AAAA"] {
        let response = send(&url, "/read", bad).await;
        assert!(set_cookies(&response).is_empty(), "{bad:?}");
        assert_eq!(ok_text(response).await, "0", "{bad:?}");
        // And writing starts a new session rather than failing.
        assert_eq!(ok_text(send(&url, "/count", bad).await).await, "1");
    }
}

#[tokio::test]
async fn a_cookie_past_its_expiry_is_a_fresh_session() {
    let key = Key::generate();
    let url = serve_cookie_only(layer(key.clone())).await;
    let now = OffsetDateTime::now_utc();
    // Crafted with the server's key: valid while the payload says so...
    let alive = craft(&key, &record_with_count(5, now + Duration::hours(1)));
    assert_eq!(ok_text(send(&url, "/read", &alive).await).await, "5");
    // ...and refused once its expiry date has passed, whatever the browser
    // was told about Max-Age.
    let expired = craft(&key, &record_with_count(5, now - Duration::seconds(1)));
    let response = send(&url, "/read", &expired).await;
    assert!(set_cookies(&response).is_empty());
    assert_eq!(ok_text(response).await, "0");
    // Another key's cookie is not ours.
    let foreign = craft(
        &Key::generate(),
        &record_with_count(5, now + Duration::hours(1)),
    );
    assert_eq!(ok_text(send(&url, "/read", &foreign).await).await, "0");
}

#[tokio::test]
async fn a_replayed_cookie_dies_at_its_expiry_date() {
    let url = serve_cookie_only(layer(Key::generate())).await;
    // Whole seconds, as the route takes them.
    let at = OffsetDateTime::from_unix_timestamp(
        (OffsetDateTime::now_utc() + Duration::seconds(2)).unix_timestamp(),
    )
    .unwrap();
    let response = bare()
        .post(format!("{url}/expire-at/{}", at.unix_timestamp()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let value = the_cookie(&response).value().to_owned();
    assert_eq!(
        ok_text(send(&url, "/expiry", &value).await).await,
        format!("{:?}", Expiry::AtDateTime(at))
    );
    // Wait until the payload's expiry date has passed, then replay.
    while OffsetDateTime::now_utc() <= at + Duration::milliseconds(200) {
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    }
    let response = send(&url, "/expiry", &value).await;
    assert_eq!(
        ok_text(response).await,
        format!("{:?}", Expiry::default()),
        "a fresh session with the layer's policy"
    );
}

#[tokio::test]
async fn a_value_over_the_size_limit_is_refused() {
    let url = serve_cookie_only(layer(Key::generate())).await;
    // Propagated with `?`: a 500 and no cookie.
    let response = bare().get(format!("{url}/big")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(set_cookies(&response).is_empty());

    // Caught: the handler sees the error, the rest of the session is saved.
    let browser = browser();
    let response = browser
        .get(format!("{url}/big-caught"))
        .send()
        .await
        .unwrap();
    let cookie = the_cookie(&response);
    assert!(cookie.to_string().len() <= COOKIE_SIZE_LIMIT);
    let text = ok_text(response).await;
    assert!(text.starts_with("refused "), "{text}");
    let limit: usize = text.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(limit <= COOKIE_SIZE_LIMIT, "{text}");
    let response = browser.get(format!("{url}/read")).send().await.unwrap();
    assert_eq!(ok_text(response).await, "1");
}

#[tokio::test]
async fn key_rotation_accepts_old_cookies_and_reissues_with_the_new_key() {
    let (old, new) = (Key::generate(), Key::generate());
    let before = serve_cookie_only(layer(old.clone())).await;
    let response = bare().get(format!("{before}/count")).send().await.unwrap();
    let old_cookie = the_cookie(&response).value().to_owned();

    let rotated = serve_cookie_only(layer(Keys::new(new.clone()).with_older(old.clone()))).await;
    assert_eq!(
        ok_text(send(&rotated, "/read", &old_cookie).await).await,
        "1"
    );
    let response = send(&rotated, "/count", &old_cookie).await;
    let new_cookie = the_cookie(&response).value().to_owned();
    assert_eq!(ok_text(response).await, "2");
    // Re-issued with the newest key: the old one cannot open it, the new
    // one alone can.
    assert!(CookieJar::new()
        .private(&old)
        .decrypt(Cookie::new("id", new_cookie.clone()))
        .is_none());
    assert_eq!(open(&new, &new_cookie).data.get("count"), Some(&json!(2)));

    let only_new = serve_cookie_only(layer(new)).await;
    assert_eq!(
        ok_text(send(&only_new, "/read", &new_cookie).await).await,
        "2"
    );
    assert_eq!(
        ok_text(send(&only_new, "/read", &old_cookie).await).await,
        "0"
    );
}

#[tokio::test]
async fn flush_removes_the_cookie_and_cycle_id_changes_the_id() {
    let url = serve_cookie_only(layer(Key::generate())).await;
    let browser = browser();
    browser.get(format!("{url}/count")).send().await.unwrap();
    let first = ok_text(browser.get(format!("{url}/id")).send().await.unwrap()).await;

    let response = browser.post(format!("{url}/login")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(set_cookies(&response).len(), 1);
    let second = ok_text(browser.get(format!("{url}/id")).send().await.unwrap()).await;
    assert_ne!(first, second, "a new id in the payload");
    assert!(second.parse::<Id>().is_ok());
    let response = browser.get(format!("{url}/read")).send().await.unwrap();
    assert_eq!(ok_text(response).await, "1", "values kept across cycle_id");

    let response = browser.post(format!("{url}/logout")).send().await.unwrap();
    let removal = the_cookie(&response);
    assert_eq!(removal.value(), "");
    assert_eq!(removal.max_age(), Some(Duration::ZERO));
    let response = browser.get(format!("{url}/read")).send().await.unwrap();
    assert_eq!(ok_text(response).await, "0");
}

#[tokio::test]
async fn with_signed_does_not_weaken_a_cookie_only_layer() {
    let key = Key::generate();
    let layer = layer(key.clone()).with_signed(Key::generate());
    assert!(layer.is_cookie_only());
    let url = serve_cookie_only(layer).await;
    let response = bare().get(format!("{url}/count")).send().await.unwrap();
    let value = the_cookie(&response).value().to_owned();
    assert!(!value.contains("count"));
    assert_eq!(open(&key, &value).data.get("count"), Some(&json!(1)));
}

#[test]
fn short_or_malformed_keys_are_refused_at_start_up() {
    let short = vec![7u8; MIN_KEY_BYTES - 1];
    let error = Keys::from_bytes(&short).unwrap_err();
    assert_eq!(
        error,
        KeyError::TooShort {
            len: MIN_KEY_BYTES - 1,
            min: MIN_KEY_BYTES
        }
    );
    assert!(error.to_string().contains("at least 64 bytes"), "{error}");
    assert!(Keys::from_bytes(&[7u8; MIN_KEY_BYTES]).is_ok());

    assert!(matches!(
        Keys::from_hex(&"ab".repeat(32)),
        Err(KeyError::TooShort { len: 32, .. })
    ));
    assert!(Keys::from_hex(&"ab".repeat(64)).is_ok());
    assert_eq!(Keys::from_hex("xyz").unwrap_err(), KeyError::Encoding);

    use base64::{engine::general_purpose::STANDARD, Engine as _};
    assert!(matches!(
        Keys::from_base64(&STANDARD.encode([1u8; 48])),
        Err(KeyError::TooShort { len: 48, .. })
    ));
    assert!(Keys::from_base64(&STANDARD.encode([1u8; 64])).is_ok());
    assert_eq!(Keys::from_base64("!!").unwrap_err(), KeyError::Encoding);

    let good = "cd".repeat(64);
    let list = format!("{good}, {}", "cd".repeat(10));
    assert!(matches!(
        Keys::parse_list(&list),
        Err((2, KeyError::TooShort { len: 10, .. }))
    ));
    assert_eq!(
        Keys::parse_list(&format!("{good},{good}")).unwrap().len(),
        2
    );
}

/// Found by the `cookie_only` fuzz target: an authentic cookie made
/// elsewhere (another build, another program holding the key) whose record
/// this layer cannot write back within the size limit. Honouring it made
/// every request carrying it a 500; it is no session at all instead.
#[tokio::test]
async fn an_authentic_record_too_large_to_write_back_is_a_fresh_session() {
    let key = Key::generate();
    for expiry in [Expiry::default(), Expiry::OnInactivity(Duration::hours(1))] {
        let url = serve_cookie_only(layer(key.clone()).with_expiry(expiry)).await;
        // Compact numbers this layer writes out in full: `1e9` comes back as
        // `1000000000.0`, so 1.3 KB of JSON grows past 4 KB.
        let numbers = vec!["1e9"; 320].join(",");
        let expiry_date = (OffsetDateTime::now_utc() + Duration::hours(1)).unix_timestamp();
        let expiry_date =
            serde_json::to_string(&OffsetDateTime::from_unix_timestamp(expiry_date).unwrap())
                .unwrap();
        let json = format!(
            r#"{{"id":{},"data":{{"count":41,"n":[{numbers}]}},"expiry_date":{expiry_date}}}"#,
            Id::default().0
        );
        assert!(json.len() < 1_500, "{}", json.len());
        let mut jar = CookieJar::new();
        jar.private_mut(&key).add(Cookie::new("id", json));
        let value = jar.get("id").unwrap().value().to_owned();
        for path in ["/read", "/count"] {
            let response = send(&url, path, &value).await;
            assert_eq!(response.status(), 200, "{expiry:?} {path}");
            let expected = if path == "/read" { "0" } else { "1" };
            assert_eq!(ok_text(response).await, expected, "{expiry:?} {path}");
        }

        // One that fits is honoured, even right at the limit.
        let mut record = record_with_count(41, OffsetDateTime::now_utc() + Duration::hours(1));
        let mut filler = 2_000;
        loop {
            record
                .data
                .insert("f".into(), json!("x".repeat(filler + 1)));
            if craft(&key, &record).len() + 200 > COOKIE_SIZE_LIMIT {
                break;
            }
            filler += 1;
        }
        record.data.insert("f".into(), json!("x".repeat(filler)));
        let response = send(&url, "/read", &craft(&key, &record)).await;
        assert_eq!(ok_text(response).await, "41", "{expiry:?}");
    }
}

/// Found by the `cookie_only` fuzz target: ids travel as numbers of 1 to 40
/// characters, so `cycle_id` on a session near the size limit could make the
/// cookie written after the handler too large, a 500. The new id is now
/// checked like any other change, and refused when it does not fit.
#[tokio::test]
async fn cycle_id_near_the_size_limit_is_refused_not_a_500() {
    async fn cycle(session: Session) -> Outcome<String> {
        let count: u64 = session.get("count").await?.unwrap_or(0);
        Ok(match session.cycle_id().await {
            Ok(()) => format!("{count} cycled"),
            Err(error) if error.is_cookie_too_large() => format!("{count} refused"),
            Err(other) => return Err(other),
        })
    }
    let key = Key::generate();
    let url = serve(
        routes()
            .route("/cycle", get(cycle))
            .layer(layer(key.clone())),
    )
    .await;
    // A session with the shortest id there is, as full as the layer takes.
    let mut record = record_with_count(41, OffsetDateTime::now_utc() + Duration::hours(1));
    record.id = Id(1);
    let with_filler = |record: &mut Record, filler: usize| {
        record.data.insert("f".into(), json!("x".repeat(filler)));
        craft(&key, record)
    };
    let (mut fits, mut too_big) = (1_000, 4_000);
    while too_big - fits > 1 {
        let middle = (fits + too_big) / 2;
        let response = send(&url, "/read", &with_filler(&mut record, middle)).await;
        if ok_text(response).await == "41" {
            fits = middle;
        } else {
            too_big = middle;
        }
    }
    // Not right at the limit: the cookie written back carries the expiry
    // the layer computes from the clock, whose digits vary by a few bytes
    // from one request to the next (a full suite run under load once found
    // the exact limit too big on the next request). The new id adds about 38
    // characters to the one-character id, far more than this margin.
    let near = fits - 16;
    let response = send(&url, "/cycle", &with_filler(&mut record, near)).await;
    assert_eq!(response.status(), 200);
    assert!(
        set_cookies(&response).is_empty(),
        "refused: nothing written"
    );
    assert_eq!(ok_text(response).await, "41 refused");

    // With room to spare, the id changes and the new cookie fits.
    let response = send(&url, "/cycle", &with_filler(&mut record, fits - 100)).await;
    assert_eq!(response.status(), 200);
    let cookie = the_cookie(&response);
    assert_eq!(ok_text(response).await, "41 cycled");
    assert_ne!(open(&key, cookie.value()).id, Id(1));
}
