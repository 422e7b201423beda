//! axum-login 0.18 on tower-sessions 0.14's layer over the adapter, driven
//! through HTTP by clients with cookie jars, with what the store holds
//! checked after each step.

use std::{convert::Infallible, sync::Arc};

use axum::{
    extract::{Form, Query},
    http::StatusCode,
    routing::{get, post},
    Router,
};
use axum_login::{login_required, AuthManagerLayerBuilder, AuthSession, AuthUser, AuthnBackend};
use reqwest::{
    cookie::{CookieStore as _, Jar},
    header::CONTENT_TYPE,
    Url,
};
use serde::Deserialize;
use serde_json::json;
use session_core::{time::Duration, ExpiredDeletion, Id, SessionStore as _};
use session_testkit::{Operation, When};
use session_tower_sessions::TowerSessionsStore;
use tower_sessions_0_14::{Expiry, SessionManagerLayer};

use crate::common::{serve, Shared};

/// The checks, under the name `bridge_suite!` looks them up by.
pub mod axum_login_0_18 {
    pub use super::{
        a_failed_write_is_a_500_and_loses_nothing, login_cycles_the_session_id,
        login_protects_and_logout_ends, logout_everywhere_through_the_user_index,
        logout_stays_final_for_requests_in_flight,
    };
}

#[derive(Clone, Debug)]
pub struct User {
    id: i64,
    name: &'static str,
    password: &'static str,
}

impl AuthUser for User {
    type Id = i64;

    fn id(&self) -> i64 {
        self.id
    }

    fn session_auth_hash(&self) -> &[u8] {
        self.password.as_bytes()
    }
}

const USERS: [User; 2] = [
    User {
        id: 1,
        name: "ferris",
        password: "crab",
    },
    User {
        id: 2,
        name: "corro",
        password: "unsafe",
    },
];

#[derive(Clone, Debug, Deserialize)]
pub struct Credentials {
    name: String,
    password: String,
}

#[derive(Clone, Debug)]
pub struct Users;

impl AuthnBackend for Users {
    type User = User;
    type Credentials = Credentials;
    type Error = Infallible;

    async fn authenticate(&self, creds: Credentials) -> Result<Option<User>, Infallible> {
        Ok(USERS
            .iter()
            .find(|user| user.name == creds.name && user.password == creds.password)
            .cloned())
    }

    async fn get_user(&self, user_id: &i64) -> Result<Option<User>, Infallible> {
        Ok(USERS.iter().find(|user| user.id == *user_id).cloned())
    }
}

type Auth = AuthSession<Users>;

fn failed<E: std::fmt::Debug>(error: E) -> (StatusCode, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, format!("{error:?}"))
}

async fn login(
    mut auth: Auth,
    Form(creds): Form<Credentials>,
) -> Result<String, (StatusCode, String)> {
    let Some(user) = auth.authenticate(creds).await.map_err(failed)? else {
        return Err((StatusCode::UNAUTHORIZED, "who are you?".to_owned()));
    };
    auth.login(&user).await.map_err(failed)?;
    Ok(format!("welcome {}", user.name))
}

async fn logout(mut auth: Auth) -> Result<(), (StatusCode, String)> {
    auth.logout().await.map_err(failed).map(drop)
}

async fn me(auth: Auth) -> String {
    auth.user.map_or("nobody", |user| user.name).to_owned()
}

#[derive(Deserialize)]
struct Note {
    text: String,
}

async fn note(auth: Auth, Query(note): Query<Note>) -> Result<(), (StatusCode, String)> {
    auth.session.insert("note", note.text).await.map_err(failed)
}

async fn visit(auth: Auth) -> Result<String, (StatusCode, String)> {
    let visits = auth.session.get::<u64>("visits").await.map_err(failed)?;
    let visits = visits.unwrap_or(0) + 1;
    auth.session
        .insert("visits", visits)
        .await
        .map_err(failed)?;
    Ok(visits.to_string())
}

/// The application: `/me` and `/note` need a login.
async fn app<S: ExpiredDeletion>(store: &Shared<S>) -> String {
    let sessions = SessionManagerLayer::new(
        TowerSessionsStore::new(Arc::clone(store)).with_axum_login_user_id(),
    )
    .with_secure(false) // plain HTTP on loopback
    .with_expiry(Expiry::OnInactivity(Duration::hours(1)));
    let auth = AuthManagerLayerBuilder::new(Users, sessions).build();
    let app = Router::new()
        .route("/me", get(me))
        .route("/note", get(note))
        .route_layer(login_required!(Users))
        .route("/login", post(login))
        .route("/logout", get(logout))
        .route("/visit", get(visit))
        .layer(auth);
    serve(app).await
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

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("the server answers");
        let status = response.status();
        (status, response.text().await.expect("a body"))
    }

    async fn login(&self, name: &str, password: &str) -> StatusCode {
        self.client
            .post(format!("{}/login", self.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!("name={name}&password={password}"))
            .send()
            .await
            .expect("the server answers")
            .status()
    }

    /// The session id in the jar.
    fn session_id(&self) -> Option<Id> {
        let url: Url = self.base.parse().expect("a URL");
        let cookies = self.jar.cookies(&url)?;
        let cookies = cookies.to_str().expect("ASCII cookies");
        cookies
            .split("; ")
            .find_map(|pair| pair.strip_prefix("id="))
            .map(|id| id.parse().expect("a session id"))
    }

    /// Another browser holding a copy of this one's session cookie.
    fn copy(&self) -> Self {
        let copy = Self::new(&self.base);
        let url: Url = self.base.parse().expect("a URL");
        if let Some(id) = self.session_id() {
            copy.jar.add_cookie_str(&format!("id={id}; Path=/"), &url);
        }
        copy
    }
}

fn ids(records: &[session_core::Record]) -> Vec<Id> {
    let mut ids: Vec<Id> = records.iter().map(|record| record.id).collect();
    ids.sort_by_key(|id| id.0);
    ids
}

pub async fn login_protects_and_logout_ends<S: ExpiredDeletion>(store: Shared<S>) {
    let base = app(&store).await;
    let browser = Browser::new(&base);
    let faults = store.faults();

    assert_eq!(browser.get("/me").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        browser.login("ferris", "wrong").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        faults.calls(Operation::Create),
        0,
        "no session for a failed login"
    );

    assert_eq!(browser.login("ferris", "crab").await, StatusCode::OK);
    let id = browser.session_id().expect("a session cookie");
    let stored = store.load(&id).await.expect("load").expect("stored");
    assert_eq!(
        stored.user_id.as_deref(),
        Some("1"),
        "indexed under the user"
    );
    assert_eq!(
        ids(&store.sessions_of_user("1").await.expect("index")),
        vec![id]
    );
    assert_eq!(
        browser.get("/me").await,
        (StatusCode::OK, "ferris".to_owned())
    );

    let stolen = browser.copy();
    assert_eq!(browser.get("/logout").await.0, StatusCode::OK);
    assert_eq!(store.load(&id).await.expect("load"), None);
    assert!(store.sessions_of_user("1").await.expect("index").is_empty());
    assert_eq!(browser.get("/me").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        stolen.get("/me").await.0,
        StatusCode::UNAUTHORIZED,
        "the old cookie is worth nothing"
    );
    assert_eq!(faults.calls(Operation::Save), 0, "never an upsert");
}

pub async fn login_cycles_the_session_id<S: ExpiredDeletion>(store: Shared<S>) {
    let base = app(&store).await;
    let browser = Browser::new(&base);

    assert_eq!(
        browser.get("/visit").await,
        (StatusCode::OK, "1".to_owned())
    );
    let anonymous = browser.session_id().expect("a session cookie");
    let stored = store.load(&anonymous).await.expect("load").expect("stored");
    assert_eq!(stored.user_id, None);

    assert_eq!(browser.login("ferris", "crab").await, StatusCode::OK);
    let logged_in = browser.session_id().expect("a session cookie");
    assert_ne!(logged_in, anonymous, "session fixation: a new id at login");
    assert_eq!(store.load(&anonymous).await.expect("load"), None);
    let stored = store.load(&logged_in).await.expect("load").expect("stored");
    assert_eq!(
        stored.data.get("visits"),
        Some(&json!(1)),
        "the data came along"
    );
    assert_eq!(stored.user_id.as_deref(), Some("1"));
    assert_eq!(
        browser.get("/visit").await,
        (StatusCode::OK, "2".to_owned())
    );
}

pub async fn logout_everywhere_through_the_user_index<S: ExpiredDeletion>(store: Shared<S>) {
    let base = app(&store).await;
    let (phone, laptop, other) = (
        Browser::new(&base),
        Browser::new(&base),
        Browser::new(&base),
    );
    for (browser, name, password) in [
        (&phone, "ferris", "crab"),
        (&laptop, "ferris", "crab"),
        (&other, "corro", "unsafe"),
    ] {
        assert_eq!(browser.login(name, password).await, StatusCode::OK);
    }
    let mut expected = vec![
        phone.session_id().expect("a cookie"),
        laptop.session_id().expect("a cookie"),
    ];
    expected.sort_by_key(|id| id.0);
    assert_eq!(
        ids(&store.sessions_of_user("1").await.expect("index")),
        expected
    );

    // "Log out my other devices", from the phone.
    let keep = phone.session_id().expect("a cookie");
    assert_eq!(
        store
            .delete_sessions_of_user("1", Some(&keep))
            .await
            .expect("delete"),
        1
    );
    assert_eq!(
        phone.get("/me").await,
        (StatusCode::OK, "ferris".to_owned())
    );
    assert_eq!(laptop.get("/me").await.0, StatusCode::UNAUTHORIZED);

    // "Log out everywhere".
    assert_eq!(
        store
            .delete_sessions_of_user("1", None)
            .await
            .expect("delete"),
        1
    );
    assert_eq!(phone.get("/me").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(other.get("/me").await, (StatusCode::OK, "corro".to_owned()));
    assert_eq!(store.sessions_of_user("2").await.expect("index").len(), 1);
}

pub async fn logout_stays_final_for_requests_in_flight<S: ExpiredDeletion>(store: Shared<S>) {
    let base = app(&store).await;
    let browser = Browser::new(&base);
    assert_eq!(browser.login("ferris", "crab").await, StatusCode::OK);
    let id = browser.session_id().expect("a session cookie");

    // A request that changes the session is about to write it back...
    let faults = store.faults();
    let mut hold = faults.hold(Operation::Update, When::Before);
    let late = {
        let client = browser.client.clone();
        let url = format!("{base}/note?text=late");
        tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) })
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), hold.reached())
        .await
        .expect("the write back reached the store's update");
    // ...when the user logs out in another tab.
    assert_eq!(browser.get("/logout").await.0, StatusCode::OK);
    assert_eq!(store.load(&id).await.expect("load"), None);
    hold.release();
    let status = late.await.expect("the request task").expect("an answer");
    assert_eq!(
        status,
        StatusCode::OK,
        "the late request is not an error page"
    );

    assert_eq!(
        store.load(&id).await.expect("load"),
        None,
        "the late write did not bring the session back"
    );
    assert!(store.sessions_of_user("1").await.expect("index").is_empty());
    assert_eq!(faults.calls(Operation::Save), 0);
    assert_eq!(browser.get("/me").await.0, StatusCode::UNAUTHORIZED);
}

pub async fn a_failed_write_is_a_500_and_loses_nothing<S: ExpiredDeletion>(store: Shared<S>) {
    let base = app(&store).await;
    let browser = Browser::new(&base);
    assert_eq!(browser.login("ferris", "crab").await, StatusCode::OK);
    let id = browser.session_id().expect("a session cookie");
    assert_eq!(browser.get("/note?text=first").await.0, StatusCode::OK);

    let faults = store.faults();
    faults.fail(Operation::Update);
    assert_eq!(
        browser.get("/note?text=second").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    faults.fail(Operation::Load);
    assert!(browser.get("/me").await.0.is_server_error());
    faults.heal_all();

    let stored = store.load(&id).await.expect("load").expect("stored");
    assert_eq!(stored.data.get("note"), Some(&json!("first")));
    assert_eq!(stored.user_id.as_deref(), Some("1"));
    assert_eq!(
        browser.get("/me").await,
        (StatusCode::OK, "ferris".to_owned())
    );
    assert_eq!(browser.get("/note?text=third").await.0, StatusCode::OK);
    let stored = store.load(&id).await.expect("load").expect("stored");
    assert_eq!(stored.data.get("note"), Some(&json!("third")));
}
