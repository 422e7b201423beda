//! What the layer asks of the store: nothing for a request that does not use
//! the session, and a 500 without a cookie when the store fails.
#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failed test.

mod common;

use axum::{routing::get, Router};
use common::*;
use session_memory::MemoryStore;
use session_testkit::{FaultyStore, Operation};
use session_tower::{Session, SessionManagerLayer};

#[tokio::test]
async fn untouched_requests_make_no_store_calls() {
    let store = FaultyStore::new(MemoryStore::default());
    let faults = store.faults();
    let url = serve_with(SessionManagerLayer::new(store).with_secure(false)).await;
    let client = browser();
    // A real session cookie in the jar...
    let response = client.get(format!("{url}/count")).send().await.unwrap();
    assert_eq!(ok_text(response).await, "1");
    assert!(faults.total_calls() > 0, "the counter did use the store");
    faults.reset_calls();
    // ...and requests that never touch the session, with and without it.
    for client in [client, browser()] {
        let response = client.get(format!("{url}/untouched")).send().await.unwrap();
        assert!(set_cookies(&response).is_empty());
        assert_eq!(ok_text(response).await, "untouched");
    }
    assert_eq!(faults.total_calls(), 0, "{faults:?}");
}

#[tokio::test]
async fn reading_makes_one_load_and_no_write() {
    let store = FaultyStore::new(MemoryStore::default());
    let faults = store.faults();
    let url = serve_with(SessionManagerLayer::new(store).with_secure(false)).await;
    let client = browser();
    client.get(format!("{url}/count")).send().await.unwrap();
    faults.reset_calls();
    let response = client.get(format!("{url}/read")).send().await.unwrap();
    assert_eq!(ok_text(response).await, "1");
    assert_eq!(faults.calls(Operation::Load), 1);
    assert_eq!(faults.total_calls(), 1, "{faults:?}");
}

#[tokio::test]
async fn a_failing_store_gives_500_and_no_cookie() {
    let store = FaultyStore::new(MemoryStore::default());
    let faults = store.faults();
    let url = serve_with(SessionManagerLayer::new(store.clone()).with_secure(false)).await;
    let client = browser();
    let response = client.get(format!("{url}/count")).send().await.unwrap();
    assert_eq!(ok_text(response).await, "1");

    for op in [
        Operation::Load,
        Operation::Update,
        Operation::Create,
        Operation::Delete,
    ] {
        faults.heal_all();
        faults.fail(op);
        let (client, path) = match op {
            // A fresh visitor: the first write is a create.
            Operation::Create => (browser(), "/count"),
            Operation::Delete => (client.clone(), "/logout"),
            _ => (client.clone(), "/count"),
        };
        let request = if op == Operation::Delete {
            client.post(format!("{url}{path}"))
        } else {
            client.get(format!("{url}{path}"))
        };
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 500, "{op:?}");
        assert!(
            set_cookies(&response).is_empty(),
            "{op:?}: no cookie change"
        );
    }
    // Healed: the session is as it was before the failures.
    faults.heal_all();
    let response = client.get(format!("{url}/read")).send().await.unwrap();
    assert_eq!(ok_text(response).await, "1");
    assert_eq!(store.inner().len(), 1, "no stray record");
}

#[tokio::test]
async fn a_failing_cycle_keeps_the_old_session() {
    let store = FaultyStore::new(MemoryStore::default());
    let faults = store.faults();
    let url = serve_with(SessionManagerLayer::new(store.clone()).with_secure(false)).await;
    let client = browser();
    client.get(format!("{url}/count")).send().await.unwrap();
    faults.fail(Operation::Create);
    let response = client.post(format!("{url}/login")).send().await.unwrap();
    assert_eq!(response.status(), 500);
    assert!(set_cookies(&response).is_empty());
    faults.heal_all();
    let response = client.get(format!("{url}/read")).send().await.unwrap();
    assert_eq!(ok_text(response).await, "1", "still logged in as before");
}

#[tokio::test]
async fn the_extractor_without_the_layer_is_a_500() {
    async fn handler(session: Session) -> String {
        format!("{:?}", session.id().await.ok())
    }
    let url = serve(Router::new().route("/", get(handler))).await;
    let response = bare().get(format!("{url}/")).send().await.unwrap();
    assert_eq!(response.status(), 500);
    let body = response.text().await.unwrap();
    assert!(
        !body.contains("SessionManagerLayer"),
        "details stay in the log"
    );
}

#[tokio::test]
async fn always_save_writes_stored_sessions_but_not_empty_new_ones() {
    let store = FaultyStore::new(MemoryStore::default());
    let faults = store.faults();
    let layer = SessionManagerLayer::new(store)
        .with_secure(false)
        .with_always_save(true);
    let url = serve_with(layer).await;
    // A visitor with nothing in the session: still nothing written.
    let response = browser().get(format!("{url}/read")).send().await.unwrap();
    assert!(set_cookies(&response).is_empty());
    assert_eq!(faults.calls(Operation::Create), 0);

    let client = browser();
    client.get(format!("{url}/count")).send().await.unwrap();
    faults.reset_calls();
    let response = client.get(format!("{url}/read")).send().await.unwrap();
    // Written (its stored lifetime starts again), but a browser-session
    // cookie has nothing to refresh.
    assert!(set_cookies(&response).is_empty());
    assert_eq!(ok_text(response).await, "1");
    assert_eq!(faults.calls(Operation::Update), 1);
    assert_eq!(
        faults.calls(Operation::Save),
        0,
        "never an unconditional save"
    );
}
