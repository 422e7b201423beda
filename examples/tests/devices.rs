//! The demo shop over HTTP with two "devices" (clients with their own
//! cookies) of one user: the devices list, "log out all other devices",
//! ending one device, and two tabs filling the cart at once.
#![allow(clippy::unwrap_used, clippy::expect_used)] // A panic is a failed test.

use std::sync::Arc;

use examples::shop;
use reqwest::{header::USER_AGENT, redirect::Policy, Client};
use session_testkit::{FaultyStore, Operation, When};

struct Shop {
    url: String,
    store: FaultyStore<Arc<shop::ShopStore>>,
    _dir: tempfile::TempDir,
}

async fn open_shop() -> Shop {
    let dir = tempfile::tempdir().unwrap();
    let store = FaultyStore::new(Arc::new(shop::store(dir.path()).unwrap()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = shop::app(store.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Shop {
        url,
        store,
        _dir: dir,
    }
}

/// A browser: keeps its cookies, does not follow redirects (the tests
/// look at each response).
fn device() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap()
}

impl Shop {
    async fn log_in(&self, device: &Client, user: &str, agent: &str) {
        let response = device
            .post(format!("{}/login", self.url))
            .header(USER_AGENT, agent)
            .form(&[("username", user)])
            .send()
            .await
            .unwrap();
        assert!(response.status().is_redirection());
    }

    async fn home(&self, device: &Client) -> String {
        device
            .get(format!("{}/", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn post(&self, device: &Client, path: &str, form: &[(&str, &str)]) {
        let response = device
            .post(format!("{}{path}", self.url))
            .form(form)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_redirection(),
            "{path}: {}",
            response.status()
        );
    }
}

/// The handle of the device named `agent` in a page's devices list.
fn handle_of(page: &str, agent: &str) -> String {
    let line = page
        .lines()
        .find(|line| line.contains("class=\"device\"") && line.contains(agent))
        .unwrap_or_else(|| panic!("no device {agent} listed:\n{page}"));
    let start = line.find("name=\"handle\" value=\"").unwrap() + 21;
    line[start..start + 22].to_owned()
}

#[tokio::test]
async fn a_user_sees_their_devices_and_logs_the_others_out() {
    let shop = open_shop().await;
    let (laptop, phone, tablet) = (device(), device(), device());
    shop.log_in(&laptop, "ferris", "Laptop").await;
    shop.log_in(&phone, "ferris", "Phone").await;
    shop.log_in(&tablet, "ferris", "Tablet").await;
    let stranger = device();
    shop.log_in(&stranger, "corro", "Stranger").await;

    let page = shop.home(&laptop).await;
    assert!(page.contains("Hello, ferris!"));
    assert!(page.contains("Laptop (since"));
    assert!(page.contains("this device"));
    assert!(page.contains("Phone") && page.contains("Tablet"));
    assert!(
        !page.contains("Stranger"),
        "another user's device is listed"
    );

    // Log one device out by its handle.
    let tablet_handle = handle_of(&page, "Tablet");
    shop.post(&laptop, "/devices/end", &[("handle", &tablet_handle)])
        .await;
    assert!(shop.home(&tablet).await.contains("id=\"login\""));
    assert!(!shop.home(&laptop).await.contains("Tablet"));

    // Log out all the others.
    shop.post(&laptop, "/devices/end-others", &[]).await;
    assert!(
        shop.home(&phone).await.contains("id=\"login\""),
        "the phone is still logged in"
    );
    let page = shop.home(&laptop).await;
    assert!(page.contains("Hello, ferris!"));
    assert!(!page.contains("Phone"));
    assert!(shop.home(&stranger).await.contains("Hello, corro!"));
}

#[tokio::test]
async fn two_tabs_filling_the_cart_at_once_keep_both_items() {
    let shop = open_shop().await;
    let browser = device();
    shop.log_in(&browser, "ferris", "Laptop").await;
    shop.post(&browser, "/cart", &[("item", "apple")]).await;

    // One tab's write waits at the store while the other tab adds too.
    let faults = shop.store.faults();
    let mut held = faults.hold(Operation::Update, When::Before);
    let first_tab = {
        let browser = browser.clone();
        let url = shop.url.clone();
        tokio::spawn(async move {
            browser
                .post(format!("{url}/cart"))
                .form(&[("item", "bread")])
                .send()
                .await
                .unwrap()
        })
    };
    held.reached().await;
    shop.post(&browser, "/cart", &[("item", "cheese")]).await;
    held.release();
    assert!(first_tab.await.unwrap().status().is_redirection());

    let page = shop.home(&browser).await;
    for item in ["apple", "bread", "cheese"] {
        assert!(
            page.contains(&format!("<li class=\"item\">{item}</li>")),
            "{item} is missing from the cart:\n{page}"
        );
    }
    assert_eq!(
        faults.calls(Operation::Save),
        0,
        "never an unconditional save"
    );
}

#[tokio::test]
async fn a_logout_stays_final_when_another_tab_was_in_flight() {
    let shop = open_shop().await;
    let browser = device();
    shop.log_in(&browser, "ferris", "Laptop").await;

    let faults = shop.store.faults();
    let mut held = faults.hold(Operation::Update, When::Before);
    let other_tab = {
        let browser = browser.clone();
        let url = shop.url.clone();
        tokio::spawn(async move {
            browser
                .post(format!("{url}/cart"))
                .form(&[("item", "apple")])
                .send()
                .await
                .unwrap()
        })
    };
    held.reached().await;
    shop.post(&browser, "/logout", &[]).await;
    held.release();
    let late = other_tab.await.unwrap();
    assert!(late.headers().get("set-cookie").is_none());
    assert!(shop.home(&browser).await.contains("id=\"login\""));
}
