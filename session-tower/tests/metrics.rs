//! What the `metrics` feature counts, read back with a debugging recorder:
//! requests go through the layer in process, on one thread, so every count
//! lands in the test's own recorder.
#![cfg(feature = "metrics")]
#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failed test.

mod common;

use std::future::poll_fn;

use axum::{body::Body, Router};
use http::{header, Request, Response};
use metrics_util::{
    debugging::{DebugValue, DebuggingRecorder},
    MetricKind,
};
use session_core::{time::Duration, Id, SessionStore as _};
use session_memory::MemoryStore;
use session_testkit::{FaultyStore, Operation, When};
use session_tower::{Expiry, Key, SessionManagerLayer};
use tower_service::Service;

/// One request through `app`, with `cookie` as its `Cookie` header.
async fn call(app: &Router, method: &str, path: &str, cookie: Option<&str>) -> Response<Body> {
    let mut app = app.clone();
    let mut request = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    poll_fn(|cx| <Router as Service<Request<Body>>>::poll_ready(&mut app, cx))
        .await
        .unwrap();
    app.call(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

/// `id=<value>` of the response's `Set-Cookie`.
fn cookie_of(response: &Response<Body>) -> String {
    let set = response.headers()[header::SET_COOKIE].to_str().unwrap();
    let cookie = cookie::Cookie::parse(set.to_owned()).unwrap();
    format!("id={}", cookie.value())
}

/// The counters recorded, as (name, labels, value).
fn counters(snapshot: metrics_util::debugging::Snapshot) -> Vec<(String, Vec<String>, u64)> {
    snapshot
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| match (key.kind(), value) {
            (MetricKind::Counter, DebugValue::Counter(value)) => Some((
                key.key().name().to_owned(),
                key.key()
                    .labels()
                    .map(|label| format!("{}={}", label.key(), label.value()))
                    .collect(),
                value,
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn conflicts_retries_touches_and_rejected_cookies_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(scenario());
    });
    let counted = counters(snapshotter.snapshot());
    let count = |name: &str, label: &str| -> u64 {
        counted
            .iter()
            .filter(|(found, labels, _)| {
                found == name && (label.is_empty() || labels.iter().any(|l| l == label))
            })
            .map(|(_, _, value)| value)
            .sum()
    };
    assert_eq!(
        count("session_update_conflicts_total", ""),
        1,
        "{counted:?}"
    );
    assert_eq!(count("session_update_retries_total", ""), 1, "{counted:?}");
    // The crossing write, the merged retry, and one more below.
    assert_eq!(count("session_updates_total", "outcome=written"), 3);
    assert_eq!(count("session_updates_total", "outcome=gone"), 1);
    assert_eq!(count("session_updates_total", "outcome=contention"), 0);
    assert_eq!(count("session_touches_total", "result=skipped"), 1);
    assert_eq!(count("session_touches_total", "result=written"), 1);
    assert_eq!(count("session_touches_total", "result=gone"), 0);
    assert_eq!(
        count("session_cookies_rejected_total", "reason=malformed"),
        1
    );
    assert_eq!(
        count("session_cookies_rejected_total", "reason=bad_signature"),
        1
    );
    assert_eq!(count("session_cookies_rejected_total", "reason=expired"), 1);
}

async fn scenario() {
    let store = FaultyStore::new(MemoryStore::default());
    let faults = store.faults();
    let sliding = Expiry::OnInactivity(Duration::hours(1));
    let app = common::routes().layer(
        SessionManagerLayer::new(store.clone())
            .with_expiry(sliding)
            .with_refresh_interval(Duration::minutes(10)),
    );
    let session = cookie_of(&call(&app, "GET", "/count", None).await);

    // Two writes cross: the held one meets a conflict, merges and retries.
    let mut held = faults.hold(Operation::Update, When::Before);
    let in_flight = tokio::spawn({
        let (app, session) = (app.clone(), session.clone());
        async move { call(&app, "POST", "/set/a/1", Some(&session)).await }
    });
    held.reached().await;
    assert_eq!(
        call(&app, "POST", "/set/b/2", Some(&session))
            .await
            .status(),
        204
    );
    held.release();
    assert_eq!(in_flight.await.unwrap().status(), 204);
    // An unchanged sliding session read within the refresh interval: no
    // touch.
    assert_eq!(
        call(&app, "GET", "/read", Some(&session)).await.status(),
        200
    );

    // A write that finds its session ended meanwhile.
    let mut held = faults.hold(Operation::Update, When::Before);
    let in_flight = tokio::spawn({
        let (app, session) = (app.clone(), session.clone());
        async move { call(&app, "POST", "/set/a/3", Some(&session)).await }
    });
    held.reached().await;
    let id: Id = session.trim_start_matches("id=").parse().unwrap();
    store.delete(&id).await.unwrap();
    held.release();
    assert_eq!(in_flight.await.unwrap().status(), 204);

    // A touch written: a layer refreshing on every request.
    let eager = common::routes().layer(
        SessionManagerLayer::new(store.clone())
            .with_expiry(sliding)
            .with_refresh_interval(Duration::ZERO),
    );
    let other = cookie_of(&call(&eager, "POST", "/set/c/1", None).await);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let read = call(&eager, "GET", "/read", Some(&other)).await;
    assert!(read.headers().contains_key(header::SET_COOKIE));
    // A further write of that session, to count a plain `written`.
    assert_eq!(
        call(&eager, "POST", "/set/c/2", Some(&other))
            .await
            .status(),
        204
    );

    // Rejected cookies: not an id; an id no session has (the one ended
    // above); a signature that does not verify.
    call(&app, "GET", "/read", Some("id=not-an-id")).await;
    call(&app, "GET", "/read", Some(&session)).await;
    let signed = common::routes()
        .layer(SessionManagerLayer::new(store.clone()).with_signed(Key::generate()));
    call(&signed, "GET", "/read", Some("id=forged")).await;
}
