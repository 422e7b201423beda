//! What a request gets when the store cannot be reached, under each
//! [`OnStoreError`] policy, against a real Redis that the test stops: a
//! redis-server of the test's own on a free loopback port (never the shared
//! 6379), killed mid-test and started again on the same data.
#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failed test.

mod common;

use std::time::{Duration as StdDuration, Instant};

use axum::{
    http::StatusCode,
    routing::{get, post},
    Router,
};
use common::*;
use session_core::{async_trait, Id, Record, SessionStore, Update};
use session_memory::MemoryStore;
use session_redis::{
    fred::prelude::{ClientLike, Config, Pool},
    RedisStore,
};
use session_testkit::{FaultyStore, Operation, RedisServer};
use session_tower::{OnStoreError, Session, SessionManagerLayer};

async fn redis_store(url: &str) -> RedisStore<Pool> {
    let config = Config::from_url(url).unwrap();
    let pool = session_redis::recommended_builder(config)
        .build_pool(1)
        .unwrap();
    pool.init().await.expect("connect to the test's own Redis");
    RedisStore::new(pool).with_key_prefix(format!("session-tower-outage:{}", Id::default()))
}

/// The common routes, plus one showing what a handler sees.
fn routes() -> Router {
    async fn state(session: Session) -> Outcome<String> {
        let count: u64 = session.get("count").await?.unwrap_or(0);
        Ok(format!(
            "count={count} detached={} id={}",
            session.is_detached(),
            session.id().await?.is_some()
        ))
    }
    async fn logout(session: Session) -> Outcome<StatusCode> {
        session.flush().await?;
        Ok(StatusCode::NO_CONTENT)
    }
    common::routes()
        .route("/state", get(state))
        .route("/logout-now", post(logout))
}

async fn serve_policy(store: impl SessionStore + Clone, policy: OnStoreError) -> String {
    let layer = SessionManagerLayer::new(store)
        .with_secure(false)
        .with_on_store_error(policy)
        .validate()
        .unwrap();
    serve(routes().layer(layer)).await
}

const RETRY_AFTER: StdDuration = StdDuration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_redis_gives_each_policy_its_answer() {
    let mut redis = RedisServer::start_durable("session-tower-outage");
    let store = redis_store(&redis.url()).await;
    let default = serve_policy(store.clone(), OnStoreError::default()).await;
    let unavailable = serve_policy(
        store.clone(),
        OnStoreError::service_unavailable(RETRY_AFTER),
    )
    .await;
    let without = serve_policy(store.clone(), OnStoreError::ServeWithoutSession).await;

    // A visitor with a stored session (count 1).
    let visitor = browser();
    let response = visitor
        .get(format!("{default}/count"))
        .send()
        .await
        .unwrap();
    let cookie = the_cookie(&response);
    assert_eq!(ok_text(response).await, "1");
    let with_cookie = |url: &str, path: &str| {
        bare()
            .get(format!("{url}{path}"))
            .header("cookie", format!("id={}", cookie.value()))
            .send()
    };

    redis.stop();

    // Default: a bare 500, the cookie left alone.
    let response = with_cookie(&default, "/count").await.unwrap();
    assert_eq!(response.status(), 500);
    assert!(set_cookies(&response).is_empty());
    let response = bare().get(format!("{default}/count")).send().await.unwrap();
    assert_eq!(response.status(), 500, "a new visitor's create fails too");
    assert!(set_cookies(&response).is_empty());

    // 503 with Retry-After: for the load a handler propagates with `?`...
    let response = with_cookie(&unavailable, "/count").await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "30");
    assert!(set_cookies(&response).is_empty());
    // ...and for the write after the handler (a new visitor's create).
    let response = bare()
        .get(format!("{unavailable}/count"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "30");
    assert!(set_cookies(&response).is_empty());

    // Without the session: the handler sees an empty, detached session and
    // its changes go nowhere; no cookie is set or removed.
    let response = with_cookie(&without, "/state").await.unwrap();
    assert!(set_cookies(&response).is_empty());
    assert_eq!(ok_text(response).await, "count=0 detached=true id=false");
    let response = with_cookie(&without, "/count").await.unwrap();
    assert!(set_cookies(&response).is_empty());
    assert_eq!(ok_text(response).await, "1");
    // A new visitor: served, its session not created, no cookie.
    let response = bare().get(format!("{without}/count")).send().await.unwrap();
    assert!(set_cookies(&response).is_empty());
    assert_eq!(ok_text(response).await, "1");
    // A logout does not pretend: the delete fails and so does the request.
    let response = bare()
        .post(format!("{without}/logout-now"))
        .header("cookie", format!("id={}", cookie.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    assert!(set_cookies(&response).is_empty());

    redis.restart();
    // Back: the session is as it was before the outage (nothing written).
    let deadline = Instant::now() + StdDuration::from_secs(30);
    loop {
        let response = with_cookie(&without, "/state").await.unwrap();
        let text = response.text().await.unwrap();
        if text == "count=1 detached=false id=true" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the session did not come back with Redis: {text}"
        );
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn each_failing_operation_follows_the_policy() {
    let store = FaultyStore::new(MemoryStore::default());
    let faults = store.faults();
    let unavailable = serve_policy(
        store.clone(),
        OnStoreError::service_unavailable(RETRY_AFTER),
    )
    .await;
    let without = serve_policy(store.clone(), OnStoreError::ServeWithoutSession).await;
    let visitor = browser();
    let response = visitor
        .get(format!("{without}/count"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok_text(response).await, "1");

    for op in [Operation::Load, Operation::Update, Operation::Create] {
        faults.heal_all();
        faults.fail(op);
        let client = if op == Operation::Create {
            browser()
        } else {
            visitor.clone()
        };
        let response = client
            .get(format!("{unavailable}/count"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503, "{op:?}");
        assert_eq!(response.headers()["retry-after"], "30", "{op:?}");
        assert!(set_cookies(&response).is_empty(), "{op:?}");

        let response = client.get(format!("{without}/count")).send().await.unwrap();
        assert!(set_cookies(&response).is_empty(), "{op:?}");
        let expected = if op == Operation::Update { "2" } else { "1" };
        assert_eq!(ok_text(response).await, expected, "{op:?}");
    }
    faults.heal_all();
    let response = visitor.get(format!("{without}/read")).send().await.unwrap();
    assert_eq!(ok_text(response).await, "1", "nothing was written");
}

/// A store whose records do not decode: corrupt data, not an outage.
#[derive(Debug, Clone)]
struct Undecodable;

#[async_trait]
impl SessionStore for Undecodable {
    async fn create(&self, _: &mut Record) -> session_core::Result<()> {
        Ok(())
    }
    async fn save(&self, _: &Record) -> session_core::Result<()> {
        Ok(())
    }
    async fn load(&self, _: &Id) -> session_core::Result<Option<Record>> {
        Err(session_core::Error::decode("corrupt record"))
    }
    async fn delete(&self, _: &Id) -> session_core::Result<()> {
        Ok(())
    }
    async fn update(&self, _: &mut Record) -> session_core::Result<Update> {
        Err(session_core::Error::decode("corrupt record"))
    }
    async fn touch(
        &self,
        _: &Id,
        _: session_core::time::OffsetDateTime,
    ) -> session_core::Result<bool> {
        Ok(false)
    }
}

#[tokio::test]
async fn errors_that_are_not_outages_stay_500() {
    for policy in [
        OnStoreError::service_unavailable(RETRY_AFTER),
        OnStoreError::ServeWithoutSession,
    ] {
        let url = serve_policy(Undecodable, policy).await;
        let response = bare()
            .get(format!("{url}/count"))
            .header("cookie", format!("id={}", Id::default()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 500, "{policy:?}");
        assert!(response.headers().get("retry-after").is_none());
    }
}
