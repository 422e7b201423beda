//! What users can rely on when requests of one session overlap: a logout
//! stays final, concurrent changes to different keys both survive, sliding
//! expiry costs at most one touch per interval, a login's new cookie is not
//! replaced by a request still carrying the old id, and sessions of a user
//! can be listed and ended.
//!
//! Interleavings are forced with the testkit's hold points: a request's
//! store call stops until the test has done what must happen meanwhile.
#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failed test.

mod common;

use std::sync::Arc;

use common::*;
use reqwest::{header::COOKIE, Response};
use session_core::{
    async_trait,
    time::{Duration, OffsetDateTime},
    Id, Record, SessionStore, Update,
};
use session_memory::MemoryStore;
use session_testkit::{Faults, FaultyStore, Operation, When};
use session_tower::{Expiry, SessionManagerLayer};
use tokio::task::JoinHandle;

type Store = FaultyStore<MemoryStore>;

struct App {
    url: String,
    store: Store,
    faults: Faults,
}

async fn app(configure: impl FnOnce(SessionManagerLayer) -> SessionManagerLayer) -> App {
    let store = FaultyStore::new(MemoryStore::default());
    let faults = store.faults();
    let layer = configure(SessionManagerLayer::new(store.clone()).with_secure(false));
    App {
        url: serve_with(layer).await,
        store,
        faults,
    }
}

impl App {
    /// A `POST` (or `GET` for paths without side effects) with this cookie.
    fn send(&self, method: &str, path: &str, cookie: &str) -> JoinHandle<Response> {
        let url = format!("{}{path}", self.url);
        let request = match method {
            "GET" => bare().get(url),
            _ => bare().post(url),
        };
        let request = request.header(COOKIE, cookie.to_owned());
        tokio::spawn(async move { request.send().await.unwrap() })
    }

    async fn call(&self, method: &str, path: &str, cookie: &str) -> Response {
        self.send(method, path, cookie).await.unwrap()
    }

    /// A new session holding `count = 1`; its `Cookie` header value.
    async fn session(&self) -> (String, Id) {
        let response = bare()
            .get(format!("{}/count", self.url))
            .send()
            .await
            .unwrap();
        let cookie = the_cookie(&response);
        (format!("id={}", cookie.value()), id_of(&cookie))
    }

    async fn record(&self, id: Id) -> Option<Record> {
        self.store.inner().load(&id).await.unwrap()
    }
}

#[tokio::test]
async fn a_logout_is_final_against_a_write_in_flight() {
    let app = app(|layer| layer).await;
    let (cookie, id) = app.session().await;

    // A request that changes the session reaches its write ...
    let mut held = app.faults.hold(Operation::Update, When::Before);
    let in_flight = app.send("POST", "/set/a/1", &cookie);
    held.reached().await;
    // ... when another logs out.
    let logout = app.call("POST", "/logout", &cookie).await;
    assert_eq!(
        the_cookie(&logout).value(),
        "",
        "the logout removes the cookie"
    );
    held.release();

    let late = in_flight.await.unwrap();
    assert_eq!(late.status(), 204);
    assert!(
        set_cookies(&late).is_empty(),
        "the late response must not set any cookie"
    );
    assert_eq!(app.record(id).await, None, "the session came back");
    assert_eq!(app.store.inner().len(), 0, "nothing was created instead");
    assert_eq!(app.faults.calls(Operation::Save), 0);
}

#[tokio::test]
async fn a_logout_is_final_against_a_sliding_read_in_flight() {
    let app = app(|layer| {
        layer
            .with_expiry(Expiry::OnInactivity(Duration::hours(1)))
            .with_refresh_interval(Duration::ZERO)
    })
    .await;
    let (cookie, id) = app.session().await;

    let mut held = app.faults.hold(Operation::Touch, When::Before);
    let in_flight = app.send("GET", "/read", &cookie);
    held.reached().await;
    app.call("POST", "/logout", &cookie).await;
    held.release();

    let late = in_flight.await.unwrap();
    assert!(set_cookies(&late).is_empty(), "no cookie from a late read");
    assert_eq!(app.record(id).await, None);
    assert_eq!(app.store.inner().len(), 0);
}

#[tokio::test]
async fn concurrent_changes_to_different_keys_both_survive() {
    let app = app(|layer| layer).await;
    let (cookie, id) = app.session().await;

    let mut held = app.faults.hold(Operation::Update, When::Before);
    let first = app.send("POST", "/set/a/1", &cookie);
    held.reached().await;
    let second = app.call("POST", "/set/b/2", &cookie).await;
    assert_eq!(second.status(), 204);
    held.release();
    assert_eq!(first.await.unwrap().status(), 204);

    let record = app.record(id).await.unwrap();
    assert_eq!(record.data["a"], "1", "the first request's change was lost");
    assert_eq!(
        record.data["b"], "2",
        "the second request's change was lost"
    );
    assert_eq!(record.data["count"], 1);
    assert_eq!(record.version, 2, "two writes, one merged");
    assert_eq!(
        app.faults.calls(Operation::Update),
        3,
        "one conflict, retried once"
    );
}

#[tokio::test]
async fn a_removal_and_a_clear_are_merged_too() {
    let app = app(|layer| layer).await;
    let (cookie, id) = app.session().await;
    app.call("POST", "/set/a/1", &cookie).await;

    // Removing `a` while another request sets `b`: `a` stays removed.
    let mut held = app.faults.hold(Operation::Update, When::Before);
    let removal = app.send("POST", "/remove/a", &cookie);
    held.reached().await;
    app.call("POST", "/set/b/2", &cookie).await;
    held.release();
    removal.await.unwrap();
    let body = ok_text(app.call("GET", "/data", &cookie).await).await;
    assert_eq!(body, "b=\"2\",count=1");

    // A clear removes every key, those set meanwhile included (it is the
    // last writer of each of them), but keeps what it set afterwards.
    let mut held = app.faults.hold(Operation::Update, When::Before);
    let clear = app.send("POST", "/clear", &cookie);
    held.reached().await;
    app.call("POST", "/set/c/3", &cookie).await;
    held.release();
    clear.await.unwrap();
    let record = app.record(id).await.unwrap();
    assert!(record.data.is_empty(), "{:?}", record.data);
}

#[tokio::test]
async fn for_the_same_key_the_last_writer_wins() {
    let app = app(|layer| layer).await;
    let (cookie, id) = app.session().await;
    let mut held = app.faults.hold(Operation::Update, When::Before);
    let first = app.send("POST", "/set/k/first", &cookie);
    held.reached().await;
    app.call("POST", "/set/k/second", &cookie).await;
    held.release();
    first.await.unwrap();
    assert_eq!(app.record(id).await.unwrap().data["k"], "first");
}

#[tokio::test]
async fn a_sliding_read_touches_at_most_once_per_interval_and_never_rewrites() {
    let app = app(|layer| layer.with_expiry(Expiry::OnInactivity(Duration::minutes(30)))).await;
    let (cookie, id) = app.session().await;
    let created = app.record(id).await.unwrap();

    // Within the refresh interval (default: a minute here), reads cost one
    // load each and nothing else.
    app.faults.reset_calls();
    for _ in 0..3 {
        let response = app.call("GET", "/read", &cookie).await;
        assert!(set_cookies(&response).is_empty());
        assert_eq!(ok_text(response).await, "1");
    }
    assert_eq!(app.faults.calls(Operation::Load), 3);
    assert_eq!(app.faults.total_calls(), 3, "{:?}", app.faults);
    assert_eq!(app.record(id).await.unwrap(), created);
}

#[tokio::test]
async fn a_due_sliding_read_touches_the_expiry_only() {
    let app = app(|layer| {
        layer
            .with_expiry(Expiry::OnInactivity(Duration::minutes(30)))
            .with_refresh_interval(Duration::ZERO)
    })
    .await;
    let (cookie, id) = app.session().await;
    let before = app.record(id).await.unwrap();

    // A read due for a touch, while another request changes the data: the
    // touch moves the expiry and keeps the other request's change.
    let mut held = app.faults.hold(Operation::Touch, When::Before);
    app.faults.reset_calls();
    let read = app.send("GET", "/read", &cookie);
    held.reached().await;
    app.call("POST", "/set/b/2", &cookie).await;
    held.release();
    let read = read.await.unwrap();

    let after = app.record(id).await.unwrap();
    assert_eq!(after.data["b"], "2", "a read-only request rewrote the data");
    assert_eq!(
        after.version,
        before.version + 1,
        "only the change bumped it"
    );
    assert!(after.expiry_date > before.expiry_date);
    assert_eq!(app.faults.calls(Operation::Touch), 1);
    assert_eq!(
        app.faults.calls(Operation::Update),
        1,
        "the change's write only"
    );
    assert_eq!(app.faults.calls(Operation::Save), 0);
    // Its cookie agrees with the expiry it wrote.
    let cookie = the_cookie(&read);
    let max_age = cookie.max_age().unwrap();
    let expected = after.expiry_date - OffsetDateTime::now_utc();
    assert!((max_age - expected).abs() < Duration::seconds(2));
}

#[tokio::test]
async fn a_request_with_the_old_id_cannot_replace_the_login_cookie() {
    let app = app(|layer| layer).await;
    let (old_cookie, old_id) = app.session().await;

    let mut held = app.faults.hold(Operation::Update, When::Before);
    let in_flight = app.send("POST", "/set/a/1", &old_cookie);
    held.reached().await;
    let login = app.call("POST", "/login", &old_cookie).await;
    let new_id = id_of(&the_cookie(&login));
    assert_ne!(new_id, old_id);
    held.release();

    let late = in_flight.await.unwrap();
    assert!(
        set_cookies(&late).is_empty(),
        "a request with the old id sent a cookie after the login"
    );
    assert_eq!(app.record(old_id).await, None);
    let new = app.record(new_id).await.unwrap();
    assert_eq!(new.data["user"], "ferris");
    assert_eq!(app.store.inner().len(), 1);
}

#[tokio::test]
async fn a_login_completes_when_the_old_record_cannot_be_deleted() {
    let app = app(|layer| layer).await;
    let (old_cookie, old_id) = app.session().await;
    app.faults.fail(Operation::Delete);
    let login = app.call("POST", "/login", &old_cookie).await;
    assert_eq!(login.status(), 204);
    let new_id = id_of(&the_cookie(&login));
    assert_ne!(new_id, old_id);
    assert_eq!(app.record(new_id).await.unwrap().data["user"], "ferris");
    // The old session keeps what it had before the login, nothing more.
    let old = app.record(old_id).await.unwrap();
    assert!(!old.data.contains_key("user"));
}

#[tokio::test]
async fn sessions_of_a_user_are_listed_and_ended() {
    let app = app(|layer| layer).await;
    let mut devices = Vec::new();
    for device in ["laptop", "phone", "tablet"] {
        let response = bare()
            .post(format!("{}/login-as/ferris", app.url))
            .header("x-device", device)
            .send()
            .await
            .unwrap();
        let cookie = the_cookie(&response);
        devices.push((format!("id={}", cookie.value()), id_of(&cookie)));
    }
    let (laptop, laptop_id) = devices[0].clone();
    let (phone, phone_id) = devices[1].clone();
    let (tablet, tablet_id) = devices[2].clone();
    let other = bare()
        .post(format!("{}/login-as/ferrous", app.url))
        .send()
        .await
        .unwrap();
    let other = format!("id={}", the_cookie(&other).value());

    let listing = ok_text(app.call("GET", "/devices", &laptop).await).await;
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 3, "{listing}");
    for (id, device, current) in [
        (laptop_id, "laptop", true),
        (phone_id, "phone", false),
        (tablet_id, "tablet", false),
    ] {
        let line = lines
            .iter()
            .find(|line| line.contains(&format!(" {device} ")))
            .unwrap();
        assert!(line.ends_with(&current.to_string()), "{line}");
        assert!(
            !line.contains(&id.to_string()),
            "a device list must never show a session id"
        );
    }

    // Log out one device by its handle.
    let tablet_handle = lines
        .iter()
        .find(|line| line.contains(" tablet "))
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let ended = app
        .call("POST", &format!("/end/{tablet_handle}"), &laptop)
        .await;
    assert_eq!(ok_text(ended).await, "true");
    assert_eq!(app.record(tablet_id).await, None);
    assert_eq!(ok_text(app.call("GET", "/whoami", &tablet).await).await, "");

    // Log out everywhere else, while the phone has a write in flight.
    let mut held = app.faults.hold(Operation::Update, When::Before);
    let phone_write = app.send("POST", "/set/a/1", &phone);
    held.reached().await;
    let ended = app.call("POST", "/logout-others", &laptop).await;
    assert_eq!(ok_text(ended).await, "1");
    held.release();
    assert!(set_cookies(&phone_write.await.unwrap()).is_empty());
    assert_eq!(app.record(phone_id).await, None);
    assert_eq!(ok_text(app.call("GET", "/whoami", &phone).await).await, "");
    assert_eq!(
        ok_text(app.call("GET", "/whoami", &laptop).await).await,
        "ferris"
    );
    assert_eq!(
        ok_text(app.call("GET", "/whoami", &other).await).await,
        "ferrous",
        "another user's session was ended"
    );

    // From an admin handler or after a password change: every session of
    // the user, through the store.
    assert_eq!(
        app.store
            .delete_sessions_of_user("ferris", None)
            .await
            .unwrap(),
        1
    );
    assert_eq!(ok_text(app.call("GET", "/whoami", &laptop).await).await, "");
}

#[tokio::test]
async fn an_absolute_timeout_caps_a_sliding_session() {
    let timeout = Duration::minutes(10);
    let app = app(|layer| {
        layer
            .with_expiry(Expiry::OnInactivity(Duration::hours(1)))
            .with_refresh_interval(Duration::ZERO)
            .with_absolute_timeout(timeout)
    })
    .await;
    let start = OffsetDateTime::now_utc();
    let (cookie, id) = app.session().await;
    let created = app.record(id).await.unwrap().expiry_date;
    assert!(created <= start + timeout + Duration::seconds(2));
    assert!(created >= start + timeout - Duration::seconds(2));

    // Activity neither touches nor rewrites it past the cap.
    let response = app.call("GET", "/read", &cookie).await;
    assert!(set_cookies(&response).is_empty(), "nothing to extend");
    app.call("POST", "/set/a/1", &cookie).await;
    let record = app.record(id).await.unwrap();
    assert_eq!(
        record.expiry_date.unix_timestamp(),
        created.unix_timestamp()
    );
    assert_eq!(record.data["a"], "1");

    // Remember-me: a session's own policy is not capped.
    let remembered = OffsetDateTime::now_utc() + Duration::days(30);
    app.call(
        "POST",
        &format!("/expire-at/{}", remembered.unix_timestamp()),
        &cookie,
    )
    .await;
    let record = app.record(id).await.unwrap();
    assert_eq!(
        record.expiry_date.unix_timestamp(),
        remembered.unix_timestamp()
    );
}

/// A store on which every update meets a concurrent write.
#[derive(Debug, Clone)]
struct AlwaysConflicting(MemoryStore);

#[async_trait]
impl SessionStore for AlwaysConflicting {
    async fn create(&self, record: &mut Record) -> session_core::Result<()> {
        self.0.create(record).await
    }
    async fn save(&self, record: &Record) -> session_core::Result<()> {
        self.0.save(record).await
    }
    async fn load(&self, id: &Id) -> session_core::Result<Option<Record>> {
        self.0.load(id).await
    }
    async fn delete(&self, id: &Id) -> session_core::Result<()> {
        self.0.delete(id).await
    }
    async fn update(&self, record: &mut Record) -> session_core::Result<Update> {
        // Someone else bumps it first, every time.
        let mut theirs = self.0.load(&record.id).await?.unwrap();
        assert!(self.0.update(&mut theirs).await?.is_written());
        Ok(Update::Conflict(theirs))
    }
    async fn touch(&self, id: &Id, expiry: OffsetDateTime) -> session_core::Result<bool> {
        self.0.touch(id, expiry).await
    }
}

#[tokio::test]
async fn endless_contention_gives_up_with_a_500_and_writes_nothing() {
    let store = AlwaysConflicting(MemoryStore::default());
    let url = serve_with(SessionManagerLayer::new(store.clone()).with_secure(false)).await;
    let first = bare().get(format!("{url}/count")).send().await.unwrap();
    let cookie = the_cookie(&first);
    let id = id_of(&cookie);
    let response = bare()
        .post(format!("{url}/set/a/1"))
        .header(COOKIE, format!("id={}", cookie.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    assert!(set_cookies(&response).is_empty());
    let record = Arc::new(store.0).load(&id).await.unwrap().unwrap();
    assert!(!record.data.contains_key("a"));
    assert_eq!(record.version, 8, "each of the 8 tries met a new version");
}
