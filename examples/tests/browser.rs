//! The demo shop in a real headless Chromium, driven through chromedriver:
//! log in, add to the cart, reload, log out, and the cart is gone; and two
//! independent browsers of one user, where "log out all other devices" in
//! the first logs the second out.
//!
//! Needs Debian's `chromium` and `chromium-driver`; `scripts/test` installs
//! them (`scripts/services/60-chromium.sh`) and exports `CHROMEDRIVER`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // A panic is a failed test.

use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener as StdListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use examples::shop;
use fantoccini::{ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

/// Chromium is slow to start on a busy machine: give each step this long.
const PATIENCE: Duration = Duration::from_secs(60);

/// chromedriver, killed when the test ends however it ends.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = StdListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

fn start_chromedriver() -> Driver {
    let binary = std::env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
    assert!(
        binary.exists(),
        "chromedriver not found at {}: run scripts/test (it installs Debian's \
         chromium and chromium-driver) or set CHROMEDRIVER",
        binary.display()
    );
    // Another process may grab the port between these lines; retry then.
    for _ in 0..5 {
        let port = free_port();
        let child = Command::new(&binary)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let mut driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = driver.child.try_wait() {
                break; // exited: the port was taken
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return driver;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = driver.child.kill();
    }
    panic!("chromedriver did not start listening on loopback");
}

/// The cart's items, or `None` while the page is being replaced (an element
/// found on the old page goes stale).
async fn read_cart(client: &fantoccini::Client) -> Option<Vec<String>> {
    let mut items = Vec::new();
    for item in client.find_all(Locator::Css("#cart li")).await.ok()? {
        items.push(item.text().await.ok()?);
    }
    Some(items)
}

/// The cart once it shows `expected`, or what it shows when patience runs
/// out. The `#cart` list is on every page, so waiting for the element alone
/// could read the page from before a form post landed.
async fn cart_showing(client: &fantoccini::Client, expected: &[&str]) -> Vec<String> {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let items = read_cart(client).await;
        let done = items.as_deref().is_some_and(|items| items == expected);
        if done || std::time::Instant::now() >= deadline {
            return items.unwrap_or_default();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A headless Chromium with a profile of its own (its own cookies), closed
/// with [`Browser::close`].
struct Browser {
    client: fantoccini::Client,
    profile: PathBuf,
}

impl Browser {
    async fn start(driver: &Driver) -> Self {
        let profile = std::env::temp_dir().join(format!(
            "session-tower-chromium-{}-{}",
            std::process::id(),
            session_core::Id::default()
        ));
        let mut options = json!({
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage",
                format!("--user-data-dir={}", profile.display()),
            ],
        });
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        if std::path::Path::new(&chromium).exists() {
            options["binary"] = json!(chromium);
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        let client = tokio::time::timeout(
            PATIENCE,
            ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities)
                .connect(&driver.url),
        )
        .await
        .expect("Chromium started in time")
        .expect("a WebDriver session");
        Self { client, profile }
    }

    async fn close(self) {
        let _ = self.client.close().await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Opens the shop and logs in as `name`; returns once the greeting shows.
async fn log_in(client: &fantoccini::Client, shop_url: &str, name: &str) {
    client.goto(shop_url).await.unwrap();
    let field = client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Id("username"));
    field.await.unwrap().send_keys(name).await.unwrap();
    client
        .find(Locator::Id("login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let greeting = client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Id("greeting"));
    assert!(greeting.await.unwrap().text().await.unwrap().contains(name));
}

/// How many devices the page lists, once it lists `expected` (or what it
/// lists when patience runs out).
async fn devices_showing(client: &fantoccini::Client, expected: usize) -> usize {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let count = client
            .find_all(Locator::Css("#devices li"))
            .await
            .map(|items| items.len())
            .unwrap_or(0);
        if count == expected || Instant::now() >= deadline {
            return count;
        }
        client.refresh().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reports the outcome of a flow spawned on its own task, once the browsers
/// are closed, so no Chromium outlives a failed assertion.
fn report(outcome: Result<Result<(), tokio::task::JoinError>, tokio::time::error::Elapsed>) {
    match outcome.expect("the flow finished in time") {
        Ok(()) => {}
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => panic!("the flow did not finish: {error}"),
    }
}

/// The shop, in-process, on a free loopback port: its store, its URL, and
/// the directory its sessions live in (removed when dropped).
async fn open_shop() -> (Arc<shop::ShopStore>, String, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(shop::store(data.path()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shop_url = format!("http://{}/", listener.local_addr().unwrap());
    let app = shop::app(store.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (store, shop_url, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_in_fill_the_cart_reload_and_log_out() {
    let (store, shop_url, _data) = open_shop().await;
    let driver = start_chromedriver();
    let browser = Browser::start(&driver).await;

    // The flow runs in its own task so a failed assertion still lets the
    // browser close below instead of outliving the test.
    let client = browser.client.clone();
    let flow = tokio::spawn(async move {
        log_in(&client, &shop_url, "ferris").await;
        // Fill the cart, one form post at a time.
        let mut expected = Vec::new();
        for product in ["apple", "bread"] {
            let button = format!("add-{product}");
            client
                .find(Locator::Id(&button))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            expected.push(product);
            assert_eq!(cart_showing(&client, &expected).await, expected);
        }
        // Reload: the session, and the cart in it, persists.
        client.refresh().await.unwrap();
        client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Id("greeting"))
            .await
            .unwrap();
        assert_eq!(
            cart_showing(&client, &["apple", "bread"]).await,
            ["apple", "bread"]
        );
        assert_eq!(store.store().len(), 1, "one session stored");
        // Log out: the record and the cookie go, and the cart with them.
        client
            .find(Locator::Id("logout"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Id("username"))
            .await
            .unwrap();
        assert_eq!(read_cart(&client).await, Some(Vec::new()));
        client.refresh().await.unwrap();
        client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Id("username"))
            .await
            .unwrap();
        assert_eq!(read_cart(&client).await, Some(Vec::new()));
        let cookies = client.get_all_cookies().await.unwrap();
        assert!(
            cookies.iter().all(|c| c.name() != "shop_session"),
            "{cookies:?}"
        );
        assert_eq!(store.store().len(), 0, "the record is gone");
    });
    let outcome = tokio::time::timeout(PATIENCE * 3, flow).await;
    // Close the browser before reporting, so no Chromium outlives the test.
    browser.close().await;
    drop(driver);
    report(outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_other_devices_logs_out_the_second_browser() {
    let (store, shop_url, _data) = open_shop().await;

    // Two independent browsers (profiles of their own: separate cookies).
    let driver = start_chromedriver();
    let first = Browser::start(&driver).await;
    let second = Browser::start(&driver).await;
    let (one, two) = (first.client.clone(), second.client.clone());
    let flow = tokio::spawn(async move {
        log_in(&one, &shop_url, "ferris").await;
        log_in(&two, &shop_url, "ferris").await;
        assert_eq!(store.store().len(), 2, "one session per browser");
        // The first lists both devices and logs the other one out.
        assert_eq!(devices_showing(&one, 2).await, 2);
        one.find(Locator::Id("end-others"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        assert_eq!(devices_showing(&one, 1).await, 1);
        // The second, reloaded, is logged out; the first is not.
        two.refresh().await.unwrap();
        two.wait()
            .at_most(PATIENCE)
            .for_element(Locator::Id("username"))
            .await
            .unwrap();
        assert!(two.find(Locator::Id("greeting")).await.is_err());
        one.refresh().await.unwrap();
        one.wait()
            .at_most(PATIENCE)
            .for_element(Locator::Id("greeting"))
            .await
            .unwrap();
        assert_eq!(store.store().len(), 1, "only the first session is left");
    });
    let outcome = tokio::time::timeout(PATIENCE * 4, flow).await;
    first.close().await;
    second.close().await;
    drop(driver);
    report(outcome);
}
