//! The demo shop's `/metrics` once a Prometheus recorder is installed (one
//! test per process under nextest, so the global recorder is this test's).
#![allow(clippy::unwrap_used, clippy::expect_used)] // A panic is a failed test.

use examples::shop;
use reqwest::{redirect::Policy, Client};

#[tokio::test]
async fn metrics_are_served_in_prometheus_format() {
    shop::install_metrics().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = shop::store(dir.path()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = shop::app(store);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let browser = Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap();
    let response = browser
        .post(format!("{url}/login"))
        .form(&[("username", "ada")])
        .send()
        .await
        .unwrap();
    assert!(response.status().is_redirection());
    assert!(browser
        .get(format!("{url}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .contains("Hello, ada!"));
    // A cookie that is not an id.
    Client::new()
        .get(format!("{url}/"))
        .header("cookie", "shop_session=forged")
        .send()
        .await
        .unwrap();

    let response = Client::new()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers().get("set-cookie").is_none(),
        "no session work"
    );
    let text = response.text().await.unwrap();
    for expected in [
        "session_store_operations_total{store=\"shop\",operation=\"create\",outcome=\"ok\"} 1",
        "session_store_operations_total{store=\"shop\",operation=\"load\",outcome=\"found\"}",
        "session_cache_lookups_total{cache=\"caching\",result=\"hit\"}",
        "session_cookies_rejected_total{reason=\"malformed\"} 1",
        "session_store_operation_duration_seconds",
    ] {
        assert!(text.contains(expected), "{expected} in:\n{text}");
    }
    // Never an id, nor a user id, in a label.
    assert!(!text.contains("ada"), "{text}");
}
