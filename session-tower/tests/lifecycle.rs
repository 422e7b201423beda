//! A session's life over real HTTP: counting, login with `cycle_id`,
//! logout with `flush`, and each expiry policy.
#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failed test.

mod common;

use common::*;
use session_core::{
    time::{Duration, OffsetDateTime},
    SessionStore,
};
use session_memory::MemoryStore;
use session_tower::{Expiry, SessionManagerLayer};

fn layer(store: &MemoryStore) -> SessionManagerLayer {
    SessionManagerLayer::new(store.clone()).with_secure(false)
}

#[tokio::test]
async fn counter_increments_across_requests() {
    let store = MemoryStore::default();
    let url = serve_with(layer(&store)).await;
    let client = browser();
    for expected in 1..=3 {
        let response = client.get(format!("{url}/count")).send().await.unwrap();
        assert_eq!(ok_text(response).await, expected.to_string());
    }
    // Reading does not write, and a new visitor starts from scratch.
    let response = client.get(format!("{url}/read")).send().await.unwrap();
    assert!(set_cookies(&response).is_empty());
    assert_eq!(ok_text(response).await, "3");
    let stranger = browser();
    let response = stranger.get(format!("{url}/read")).send().await.unwrap();
    assert!(set_cookies(&response).is_empty(), "empty session not saved");
    assert_eq!(ok_text(response).await, "0");
    assert_eq!(store.len(), 1);
}

#[tokio::test]
async fn cycle_id_changes_the_cookie_and_drops_the_old_record() {
    let store = MemoryStore::default();
    let url = serve_with(layer(&store)).await;
    let client = browser();
    let response = client.get(format!("{url}/count")).send().await.unwrap();
    let before = id_of(&the_cookie(&response));
    assert!(stored(&store, before).await);

    let response = client.post(format!("{url}/login")).send().await.unwrap();
    assert!(response.status().is_success());
    let after = id_of(&the_cookie(&response));
    assert_ne!(before, after);
    assert!(!stored(&store, before).await, "old id no longer loads");
    let record = store.load(&after).await.unwrap().expect("new record");
    assert_eq!(record.data["user"], "ferris");
    assert_eq!(record.data["count"], 1, "values survive the new id");

    // The old cookie now means a fresh session.
    let response = bare()
        .get(format!("{url}/read"))
        .header("cookie", format!("id={before}"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok_text(response).await, "0");
    // The browser carries on with the new one.
    let response = client.get(format!("{url}/count")).send().await.unwrap();
    assert_eq!(ok_text(response).await, "2");
}

#[tokio::test]
async fn flush_removes_the_cookie_and_the_record() {
    let store = MemoryStore::default();
    let url = serve_with(layer(&store)).await;
    let client = browser();
    let response = client.get(format!("{url}/count")).send().await.unwrap();
    let id = id_of(&the_cookie(&response));

    let response = client.post(format!("{url}/logout")).send().await.unwrap();
    assert!(response.status().is_success());
    let removal = the_cookie(&response);
    assert_eq!(removal.name(), "id");
    assert_eq!(removal.value(), "");
    assert_eq!(removal.max_age(), Some(Duration::ZERO));
    assert!(!stored(&store, id).await);
    assert_eq!(store.len(), 0);

    let response = client.get(format!("{url}/read")).send().await.unwrap();
    assert_eq!(ok_text(response).await, "0");
}

#[tokio::test]
async fn on_inactivity_extends_on_each_use() {
    let store = MemoryStore::default();
    let inactivity = Duration::minutes(30);
    let url = serve_with(
        layer(&store)
            .with_expiry(Expiry::OnInactivity(inactivity))
            .with_refresh_interval(Duration::ZERO),
    )
    .await;
    let client = browser();
    let response = client.get(format!("{url}/count")).send().await.unwrap();
    let cookie = the_cookie(&response);
    let id = id_of(&cookie);
    let first = store.load(&id).await.unwrap().unwrap().expiry_date;
    assert_max_age_agrees(&cookie, first);

    // A read-only request still counts as activity.
    let response = client.get(format!("{url}/read")).send().await.unwrap();
    let cookie = the_cookie(&response);
    assert_eq!(id_of(&cookie), id);
    let second = store.load(&id).await.unwrap().unwrap().expiry_date;
    assert!(second > first, "expiry pushed back: {first} -> {second}");
    assert_max_age_agrees(&cookie, second);
}

#[tokio::test]
async fn at_date_time_does_not_extend() {
    let store = MemoryStore::default();
    let at = (OffsetDateTime::now_utc() + Duration::hours(5))
        .replace_nanosecond(0)
        .unwrap();
    let url = serve_with(layer(&store).with_expiry(Expiry::AtDateTime(at))).await;
    let client = browser();
    let response = client.get(format!("{url}/count")).send().await.unwrap();
    let cookie = the_cookie(&response);
    let id = id_of(&cookie);
    assert_eq!(store.load(&id).await.unwrap().unwrap().expiry_date, at);
    assert_max_age_agrees(&cookie, at);

    let response = client.get(format!("{url}/read")).send().await.unwrap();
    assert!(
        set_cookies(&response).is_empty(),
        "reading does not touch expiry"
    );
    // A change is written, but the expiry date and so `Max-Age` stay: the
    // browser's cookie is left as it is.
    let response = client.get(format!("{url}/count")).send().await.unwrap();
    assert!(set_cookies(&response).is_empty());
    let record = store.load(&id).await.unwrap().unwrap();
    assert_eq!(
        (record.expiry_date, record.data["count"].clone()),
        (at, 2.into())
    );
}

#[tokio::test]
async fn a_sessions_own_expiry_is_kept_across_requests() {
    let store = MemoryStore::default();
    let url =
        serve_with(layer(&store).with_expiry(Expiry::OnInactivity(Duration::minutes(10)))).await;
    let client = browser();
    let at = (OffsetDateTime::now_utc() + Duration::days(3))
        .replace_nanosecond(0)
        .unwrap();
    let response = client
        .post(format!("{url}/expire-at/{}", at.unix_timestamp()))
        .send()
        .await
        .unwrap();
    let id = id_of(&the_cookie(&response));
    assert_eq!(store.load(&id).await.unwrap().unwrap().expiry_date, at);

    // Later requests keep the session's policy, not the layer's.
    let response = client.get(format!("{url}/expiry")).send().await.unwrap();
    assert!(set_cookies(&response).is_empty(), "no inactivity extension");
    assert_eq!(
        ok_text(response).await,
        format!("{:?}", Expiry::AtDateTime(at))
    );
    let response = client.get(format!("{url}/count")).send().await.unwrap();
    assert!(set_cookies(&response).is_empty(), "Max-Age did not change");
    let record = store.load(&id).await.unwrap().unwrap();
    assert_eq!(record.expiry_date, at);
}

#[tokio::test]
async fn on_session_end_has_no_max_age_but_a_stored_lifetime() {
    let store = MemoryStore::default();
    let lifetime = Duration::hours(2);
    let url = serve_with(layer(&store).with_expiry(Expiry::OnSessionEnd { lifetime })).await;
    let client = browser();
    let before = OffsetDateTime::now_utc();
    let response = client.get(format!("{url}/count")).send().await.unwrap();
    let after = OffsetDateTime::now_utc();
    let cookie = the_cookie(&response);
    assert_eq!(cookie.max_age(), None);
    assert_eq!(cookie.expires(), None);
    let expiry = store
        .load(&id_of(&cookie))
        .await
        .unwrap()
        .unwrap()
        .expiry_date;
    assert!(expiry >= before + lifetime && expiry <= after + lifetime);
}

/// The cookie's Max-Age, counted from when the test received it, lands on
/// the stored expiry date (within the second Max-Age is rounded to, plus the
/// time the response took to arrive).
fn assert_max_age_agrees(cookie: &cookie::Cookie<'_>, expiry_date: OffsetDateTime) {
    let max_age = cookie.max_age().expect("Max-Age");
    let implied = OffsetDateTime::now_utc() + max_age;
    let gap = (expiry_date - implied).abs();
    assert!(
        gap <= Duration::seconds(5),
        "Max-Age {max_age} vs expiry {expiry_date}"
    );
}
