//! The salvo application through HTTP, by clients with cookie jars, with
//! what the store holds checked after each step.

use std::sync::Arc;

use reqwest::{
    cookie::{CookieStore as _, Jar},
    header::CONTENT_TYPE,
    StatusCode, Url,
};
use salvo::prelude::*;
use serde_json::json;
use session_core::{Id, SessionStore as _};
use session_memory::MemoryStore;
use session_tower::SessionManagerLayer;

/// Serves the application over `store` on a free loopback port.
async fn serve(store: &Arc<MemoryStore>) -> String {
    let sessions = SessionManagerLayer::new(Arc::clone(store)).with_secure(false);
    let acceptor = TcpListener::new("127.0.0.1:0").bind().await;
    let address = acceptor.local_addr().expect("the bound address");
    tokio::spawn(Server::new(acceptor).serve(examples_salvo::router(sessions)));
    format!("http://{address}")
}

/// A browser: a client with a cookie jar of its own.
struct Browser {
    client: reqwest::Client,
    jar: Arc<Jar>,
    base: String,
}

impl Browser {
    fn new(base: &str) -> Self {
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(Arc::clone(&jar))
            .build()
            .expect("a client");
        Self {
            client,
            jar,
            base: base.to_owned(),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, String) {
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        (status, response.text().await.expect("a body"))
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post(&self, path: &str, form: &str) -> (StatusCode, String) {
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form.to_owned());
        self.send(request).await
    }

    fn url(&self) -> Url {
        self.base.parse().expect("a URL")
    }

    /// The session id in the jar.
    fn session_id(&self) -> Option<Id> {
        let cookies = self.jar.cookies(&self.url())?;
        let cookies = cookies.to_str().expect("ASCII cookies").to_owned();
        let value = cookies
            .split("; ")
            .find_map(|pair| pair.strip_prefix("id="))?
            .to_owned();
        Some(value.parse().expect("a session id"))
    }

    /// Another browser holding a copy of this one's session cookie.
    fn copy(&self) -> Self {
        let copy = Self::new(&self.base);
        if let Some(id) = self.session_id() {
            copy.jar
                .add_cookie_str(&format!("id={id}; Path=/"), &self.url());
        }
        copy
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visit_login_logout() {
    let store = Arc::new(MemoryStore::default());
    let browser = Browser::new(&serve(&store).await);

    assert_eq!(browser.get("/visit").await.1, "visit number 1");
    assert_eq!(browser.get("/visit").await.1, "visit number 2");
    let anonymous = browser.session_id().expect("a session cookie");
    let stored = store.load(&anonymous).await.expect("load").expect("stored");
    assert_eq!(stored.data.get("visits"), Some(&json!(2)));
    assert_eq!(browser.get("/me").await.0, StatusCode::UNAUTHORIZED);

    assert_eq!(browser.post("/login", "").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        browser.post("/login", "name=ferris").await,
        (StatusCode::OK, "welcome ferris".to_owned())
    );
    let logged_in = browser.session_id().expect("a session cookie");
    assert_ne!(logged_in, anonymous, "a new id at login");
    assert_eq!(store.load(&anonymous).await.expect("load"), None);
    let stored = store.load(&logged_in).await.expect("load").expect("stored");
    assert_eq!(stored.user_id.as_deref(), Some("ferris"));
    assert_eq!(stored.data.get("name"), Some(&json!("ferris")));
    assert_eq!(
        stored.data.get("visits"),
        Some(&json!(2)),
        "the data came along"
    );
    let listed = store.sessions_of_user("ferris").await.expect("index");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, logged_in);

    assert_eq!(
        browser.get("/me").await,
        (StatusCode::OK, "ferris".to_owned())
    );
    assert_eq!(browser.get("/visit").await.1, "visit number 3");

    let stolen = browser.copy();
    assert_eq!(browser.post("/logout", "").await.0, StatusCode::OK);
    assert_eq!(store.load(&logged_in).await.expect("load"), None);
    assert!(store
        .sessions_of_user("ferris")
        .await
        .expect("index")
        .is_empty());
    assert_eq!(browser.get("/me").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        stolen.get("/me").await.0,
        StatusCode::UNAUTHORIZED,
        "the old cookie is worth nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_an_empty_session_sets_no_cookie() {
    let store = Arc::new(MemoryStore::default());
    let browser = Browser::new(&serve(&store).await);
    assert_eq!(browser.get("/me").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(browser.session_id(), None, "reading nothing writes nothing");
}
