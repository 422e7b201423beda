//! The checks run once per tower-sessions release: `v0_15` and `v0_14` are
//! the same bodies over `tower_sessions` 0.15 and 0.14.

macro_rules! release_checks {
    ($release:ident, $ts:ident) => {
        pub mod $release {
            use std::{sync::Arc, time::Duration as StdDuration};

            use axum::{extract::Query, http::StatusCode, routing::get, Router};
            use $ts::{
                cookie::{Cookie, SameSite},
                session::{Id as TowerId, Record as TowerRecord},
                session_store::Error as TowerError,
                ExpiredDeletion as _, Expiry, Session, SessionManagerLayer, SessionStore as _,
            };
            use reqwest::header::{COOKIE, SET_COOKIE};
            use serde_json::json;
            use session_core::{
                time::{Duration, OffsetDateTime},
                ExpiredDeletion, Id, Record, SessionStore as _,
            };
            use session_testkit::Operation;
            use session_tower_sessions::{TowerSessionsStore, AXUM_LOGIN_USER_ID};

            use crate::common::{about, now_micros, serve, Shared};

            type Adapter<S> = TowerSessionsStore<Shared<S>>;

            fn adapter<S: ExpiredDeletion>(store: &Shared<S>) -> Adapter<S> {
                TowerSessionsStore::new(Arc::clone(store))
            }

            fn tower_record(data: serde_json::Value, ttl: Duration) -> TowerRecord {
                TowerRecord {
                    id: TowerId::default(),
                    data: serde_json::from_value(data).expect("a JSON object"),
                    expiry_date: now_micros() + ttl,
                }
            }

            fn data(value: serde_json::Value) -> session_core::Data {
                serde_json::from_value(value).expect("a JSON object")
            }

            // ---- The store through tower-sessions' trait ----

            pub async fn ids_and_records_map_faithfully<S: ExpiredDeletion>(store: Shared<S>) {
                for bits in [0, 1, -1, i128::MIN, i128::MAX, Id::random().0] {
                    let text = TowerId(bits).to_string();
                    assert_eq!(text, Id(bits).to_string(), "same text form");
                    assert_eq!(text.parse::<Id>().expect("ours reads theirs"), Id(bits));
                    assert_eq!(
                        Id(bits).to_string().parse::<TowerId>().expect("theirs reads ours"),
                        TowerId(bits)
                    );
                }

                let adapter = adapter(&store);
                let mut record = tower_record(
                    json!({
                        "float": 0.1,
                        "big": u64::MAX,
                        "text": "héllo \u{1F980}",
                        "nested": { "list": [1, null, true], "empty": {} },
                    }),
                    Duration::hours(1),
                );
                adapter.create(&mut record).await.expect("create");

                let ours = store.load(&Id(record.id.0)).await.expect("load").expect("stored");
                assert_eq!(ours.id.0, record.id.0);
                assert_eq!(ours.data, record.data);
                assert_eq!(ours.expiry_date, record.expiry_date);
                assert_eq!((ours.version, ours.user_id), (0, None));

                let theirs = adapter.load(&record.id).await.expect("load").expect("stored");
                assert_eq!(theirs, record, "what tower-sessions wrote, it reads back");
                assert_eq!(adapter.load(&TowerId::default()).await.expect("load"), None);
            }

            pub async fn create_never_overwrites<S: ExpiredDeletion>(store: Shared<S>) {
                let mut first = Record::new(now_micros() + Duration::hours(1));
                first.data = data(json!({ "owner": "first" }));
                store.create(&mut first).await.expect("create");

                let adapter = adapter(&store);
                let mut second = tower_record(json!({ "owner": "second" }), Duration::hours(1));
                second.id = TowerId(first.id.0);
                adapter.create(&mut second).await.expect("create");

                assert_ne!(second.id.0, first.id.0, "a fresh id, not an overwrite");
                assert_eq!(store.load(&first.id).await.expect("load"), Some(first));
                let stored = adapter.load(&second.id).await.expect("load").expect("stored");
                assert_eq!(stored.data, second.data);
            }

            pub async fn save_writes_back_with_one_update<S: ExpiredDeletion>(store: Shared<S>) {
                let adapter = adapter(&store);
                let mut record = tower_record(json!({ "n": 0 }), Duration::hours(1));
                adapter.create(&mut record).await.expect("create");

                let faults = store.faults();
                for n in 1..=2u64 {
                    faults.reset_calls();
                    let mut loaded = adapter.load(&record.id).await.expect("load").expect("stored");
                    loaded.data.insert("n".into(), json!(n));
                    loaded.expiry_date = now_micros() + Duration::hours(2);
                    adapter.save(&loaded).await.expect("save");

                    assert_eq!(faults.calls(Operation::Load), 1, "the request's own load only");
                    assert_eq!(faults.calls(Operation::Update), 1);
                    assert_eq!(faults.calls(Operation::Save), 0, "never an upsert");
                    let ours = store.load(&Id(record.id.0)).await.expect("load").expect("stored");
                    assert_eq!(ours.data, loaded.data);
                    assert_eq!(ours.expiry_date, loaded.expiry_date);
                    assert_eq!(ours.version, n, "each write is one compare-and-swap");
                }
            }

            pub async fn save_without_a_remembered_version_reads_it_first<S: ExpiredDeletion>(
                store: Shared<S>,
            ) {
                let mut record = tower_record(json!({ "n": 0 }), Duration::hours(1));
                adapter(&store).create(&mut record).await.expect("create");

                // Another process: it never loaded this session.
                let other = adapter(&store);
                let faults = store.faults();
                faults.reset_calls();
                record.data.insert("n".into(), json!(1));
                other.save(&record).await.expect("save");

                assert_eq!(faults.calls(Operation::Load), 1, "reads the version");
                assert_eq!(faults.calls(Operation::Update), 1);
                let ours = store.load(&Id(record.id.0)).await.expect("load").expect("stored");
                assert_eq!((ours.data, ours.version), (record.data, 1));
            }

            pub async fn save_over_a_concurrent_write_keeps_the_last<S: ExpiredDeletion>(
                store: Shared<S>,
            ) {
                let first = adapter(&store);
                let mut record = tower_record(json!({ "by": "nobody" }), Duration::hours(1));
                first.create(&mut record).await.expect("create");

                // Two requests load the session; the second writes first.
                let mut slow = first.load(&record.id).await.expect("load").expect("stored");
                let second = adapter(&store);
                let mut fast = second.load(&record.id).await.expect("load").expect("stored");
                fast.data.insert("by".into(), json!("fast"));
                second.save(&fast).await.expect("save");

                let faults = store.faults();
                faults.reset_calls();
                slow.data.insert("by".into(), json!("slow"));
                first.save(&slow).await.expect("no error page for a lost race");

                assert_eq!(faults.calls(Operation::Update), 2, "a conflict, then the write");
                assert_eq!(faults.calls(Operation::Load), 0, "the conflict names the version");
                let ours = store.load(&Id(record.id.0)).await.expect("load").expect("stored");
                assert_eq!(ours.data, slow.data, "the last writer wins, as in tower-sessions");
                assert_eq!(ours.version, 2);
            }

            pub async fn save_never_brings_back_an_ended_session<S: ExpiredDeletion>(
                store: Shared<S>,
            ) {
                let adapter = adapter(&store);
                let faults = store.faults();

                // Deleted (a logout elsewhere) between this request's load and save.
                let mut record = tower_record(json!({ "user": "ferris" }), Duration::hours(1));
                adapter.create(&mut record).await.expect("create");
                let mut loaded = adapter.load(&record.id).await.expect("load").expect("stored");
                store.delete(&Id(record.id.0)).await.expect("delete");
                loaded.data.insert("cart".into(), json!(["socks"]));
                adapter.save(&loaded).await.expect("not an error");
                assert_eq!(store.load(&Id(record.id.0)).await.expect("load"), None);
                assert_eq!(faults.calls(Operation::Save), 0);

                // The same, from a process that never saw the session.
                let mut record = tower_record(json!({ "user": "ferris" }), Duration::hours(1));
                adapter.create(&mut record).await.expect("create");
                store.delete(&Id(record.id.0)).await.expect("delete");
                faults.reset_calls();
                self::adapter(&store).save(&record).await.expect("not an error");
                assert_eq!(store.load(&Id(record.id.0)).await.expect("load"), None);
                assert_eq!(faults.calls(Operation::Update), 0, "nothing to write over");

                // Expired meanwhile: also gone for good.
                let mut record = tower_record(json!({ "user": "ferris" }), Duration::hours(1));
                adapter.create(&mut record).await.expect("create");
                let loaded = adapter.load(&record.id).await.expect("load").expect("stored");
                let mut ours = store.load(&Id(record.id.0)).await.expect("load").expect("stored");
                ours.expiry_date = now_micros() - Duration::seconds(1);
                store.save(&ours).await.expect("expire it");
                adapter.save(&loaded).await.expect("not an error");
                assert_eq!(store.load(&Id(record.id.0)).await.expect("load"), None);
            }

            pub async fn user_id_is_kept_as_stored<S: ExpiredDeletion>(store: Shared<S>) {
                let mut ours = Record::new(now_micros() + Duration::hours(1));
                ours.user_id = Some("ferris".to_owned());
                store.create(&mut ours).await.expect("create");

                let adapter = adapter(&store);
                let mut loaded = adapter
                    .load(&TowerId(ours.id.0))
                    .await
                    .expect("load")
                    .expect("stored");
                loaded.data.insert("theme".into(), json!("dark"));
                adapter.save(&loaded).await.expect("save");
                // And from a process that did not load it.
                self::adapter(&store).save(&loaded).await.expect("save");

                let stored = store.load(&ours.id).await.expect("load").expect("stored");
                assert_eq!(stored.user_id.as_deref(), Some("ferris"));
                assert_eq!(stored.version, 2);
                let listed = store.sessions_of_user("ferris").await.expect("index");
                assert_eq!(listed.len(), 1);
                assert_eq!(listed[0].data, loaded.data);
            }

            pub async fn user_id_is_read_from_the_data<S: ExpiredDeletion>(store: Shared<S>) {
                let adapter = adapter(&store).with_axum_login_user_id();
                let login = |user_id: serde_json::Value| {
                    json!({ "axum-login.data": { "user_id": user_id, "auth_hash": [1, 2] } })
                };

                let mut record = tower_record(login(json!(7)), Duration::hours(1));
                adapter.create(&mut record).await.expect("create");
                let listed = store.sessions_of_user("7").await.expect("index");
                assert_eq!(listed.len(), 1);
                assert_eq!(listed[0].id.0, record.id.0);

                record.data = data(login(json!("eight")));
                adapter.save(&record).await.expect("save");
                assert!(store.sessions_of_user("7").await.expect("index").is_empty());
                assert_eq!(store.sessions_of_user("eight").await.expect("index").len(), 1);

                record.data = data(json!({ "visits": 1 }));
                adapter.save(&record).await.expect("save");
                assert!(store.sessions_of_user("eight").await.expect("index").is_empty());
                let stored = store.load(&Id(record.id.0)).await.expect("load").expect("stored");
                assert_eq!(stored.user_id, None);

                // A pointer of the application's own.
                let adapter = self::adapter(&store).with_user_id_at("/account/id");
                let mut record =
                    tower_record(json!({ "account": { "id": "a-1" } }), Duration::hours(1));
                adapter.create(&mut record).await.expect("create");
                assert_eq!(store.sessions_of_user("a-1").await.expect("index").len(), 1);
                assert_eq!(AXUM_LOGIN_USER_ID, "/axum-login.data/user_id");
            }

            pub async fn expired_deletion_is_the_stores_own<S: ExpiredDeletion>(store: Shared<S>) {
                for _ in 0..3 {
                    let mut expired = Record::new(now_micros() - Duration::seconds(1));
                    expired.data = data(json!({ "old": true }));
                    store.save(&expired).await.expect("save");
                }
                let mut active = tower_record(json!({ "new": true }), Duration::hours(1));
                let adapter = adapter(&store);
                adapter.create(&mut active).await.expect("create");

                let faults = store.faults();
                faults.reset_calls();
                adapter.delete_expired().await.expect("sweep");
                assert_eq!(faults.calls(Operation::DeleteExpired), 1);
                assert_eq!(
                    store.delete_expired().await.expect("sweep"),
                    0,
                    "the sweep through tower-sessions removed every expired record"
                );
                assert!(adapter.load(&active.id).await.expect("load").is_some());
            }

            pub async fn errors_keep_their_kind_and_message<S: ExpiredDeletion>(
                store: Shared<S>,
            ) {
                let adapter = adapter(&store);
                let faults = store.faults();
                let mut record = tower_record(json!({ "n": 1 }), Duration::hours(1));

                let backend = |error: TowerError, what: &str| match error {
                    TowerError::Backend(message) => assert_eq!(
                        message,
                        format!("session backend error: injected failure of {what}")
                    ),
                    other => panic!("expected a backend error, got {other:?}"),
                };

                faults.fail(Operation::Create);
                backend(adapter.create(&mut record).await.expect_err("fails"), "Create");
                faults.heal_all();
                adapter.create(&mut record).await.expect("create");

                faults.fail(Operation::Load);
                backend(adapter.load(&record.id).await.expect_err("fails"), "Load");
                faults.heal_all();

                faults.fail(Operation::Update);
                backend(adapter.save(&record).await.expect_err("fails"), "Update");
                faults.heal_all();
                // The store is fine again, and so is the next write.
                adapter.save(&record).await.expect("save");

                faults.fail(Operation::Delete);
                backend(adapter.delete(&record.id).await.expect_err("fails"), "Delete");
                faults.fail(Operation::DeleteExpired);
                backend(adapter.delete_expired().await.expect_err("fails"), "DeleteExpired");
                faults.heal_all();
                assert!(adapter.load(&record.id).await.expect("load").is_some());
            }

            // ---- tower-sessions' layer over the store, through HTTP ----

            fn routes() -> Router {
                fn failed(error: impl std::fmt::Display) -> (StatusCode, String) {
                    (StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
                }
                Router::new()
                    .route("/", get(|_: Session| async { "Hello, world!" }))
                    .route(
                        "/insert",
                        get(|session: Session| async move {
                            session.insert("foo", 42).await.map_err(failed)
                        }),
                    )
                    .route(
                        "/set",
                        get(|session: Session, query: Query<Value>| async move {
                            session.insert("value", query.0.value).await.map_err(failed)
                        }),
                    )
                    .route(
                        "/get",
                        get(|session: Session| async move {
                            let foo: Option<u64> = session.get("foo").await.map_err(failed)?;
                            Ok::<_, (StatusCode, String)>(format!("{foo:?}"))
                        }),
                    )
                    .route(
                        "/get_value",
                        get(|session: Session| async move {
                            let foo = session.get_value("foo").await.map_err(failed)?;
                            Ok::<_, (StatusCode, String)>(format!("{foo:?}"))
                        }),
                    )
                    .route(
                        "/remove_value",
                        get(|session: Session| async move {
                            session.remove_value("foo").await.map_err(failed).map(drop)
                        }),
                    )
                    .route(
                        "/cycle_id",
                        get(|session: Session| async move {
                            session.cycle_id().await.map_err(failed)
                        }),
                    )
                    .route(
                        "/flush",
                        get(|session: Session| async move { session.flush().await.map_err(failed) }),
                    )
                    .route(
                        "/set_expiry",
                        get(|session: Session| async move {
                            let at = OffsetDateTime::now_utc() + Duration::days(1);
                            session.set_expiry(Some(Expiry::AtDateTime(at)));
                        }),
                    )
                    .route(
                        "/remove_expiry",
                        get(|session: Session| async move {
                            session.set_expiry(Some(Expiry::OnSessionEnd));
                        }),
                    )
            }

            /// tower-sessions' layer over the adapter over `store`, served.
            async fn app<S: ExpiredDeletion>(
                store: &Shared<S>,
                max_age: Option<Duration>,
                domain: Option<&str>,
            ) -> String {
                let mut layer = SessionManagerLayer::new(adapter(store)).with_secure(true);
                if let Some(max_age) = max_age {
                    layer = layer.with_expiry(Expiry::OnInactivity(max_age));
                }
                if let Some(domain) = domain {
                    layer = layer.with_domain(domain.to_owned());
                }
                serve(routes().layer(layer)).await
            }

            #[derive(serde::Deserialize)]
            struct Value {
                value: u64,
            }

            struct Answer {
                status: StatusCode,
                cookie: Option<Cookie<'static>>,
                body: String,
            }

            async fn call(base: &str, path: &str, cookie: Option<&Cookie<'_>>) -> Answer {
                let mut request = reqwest::Client::new().get(format!("{base}{path}"));
                if let Some(cookie) = cookie {
                    request = request.header(COOKIE, cookie.stripped().encoded().to_string());
                }
                let response = request.send().await.expect("the server answers");
                let cookie = response.headers().get(SET_COOKIE).map(|header| {
                    let text = header.to_str().expect("an ASCII cookie").to_owned();
                    Cookie::parse_encoded(text).expect("a valid Set-Cookie")
                });
                Answer {
                    status: response.status(),
                    cookie,
                    body: response.text().await.expect("a body"),
                }
            }

            fn id_of(cookie: &Cookie<'_>) -> Id {
                cookie.value().parse().expect("a session id")
            }

            fn one_hour() -> Option<Duration> {
                Some(Duration::hours(1))
            }

            pub async fn no_session_no_cookie_no_store_call<S: ExpiredDeletion>(
                store: Shared<S>,
            ) {
                let base = app(&store, one_hour(), None).await;
                let answer = call(&base, "/", None).await;
                assert_eq!(answer.status, StatusCode::OK);
                assert!(answer.cookie.is_none());
                assert_eq!(store.faults().total_calls(), 0);
            }

            pub async fn unknown_session_cookie_gets_a_fresh_session<S: ExpiredDeletion>(
                store: Shared<S>,
            ) {
                let base = app(&store, one_hour(), None).await;
                let bogus = Cookie::new("id", "AAAAAAAAAAAAAAAAAAAAAA");
                let answer = call(&base, "/insert", Some(&bogus)).await;
                assert_eq!(answer.status, StatusCode::OK);
                let cookie = answer.cookie.expect("a session cookie");
                assert_ne!(cookie.value(), bogus.value());
                let stored = store.load(&id_of(&cookie)).await.expect("load").expect("stored");
                assert_eq!(stored.data, data(json!({ "foo": 42 })));
                assert_eq!(store.load(&id_of(&bogus)).await.expect("load"), None);
            }

            pub async fn malformed_session_cookie_gets_a_fresh_session<S: ExpiredDeletion>(
                store: Shared<S>,
            ) {
                let base = app(&store, one_hour(), None).await;
                let answer = call(&base, "/", Some(&Cookie::new("id", "malformed"))).await;
                assert_eq!(answer.status, StatusCode::OK);
                let cookie = answer.cookie.expect("the malformed cookie is removed");
                assert_ne!(cookie.value(), "malformed");
                assert_eq!(store.faults().total_calls(), 0, "never reaches the store");
            }

            pub async fn insert_sets_the_cookie_and_stores_the_record<S: ExpiredDeletion>(
                store: Shared<S>,
            ) {
                let base = app(&store, one_hour(), None).await;
                let before = OffsetDateTime::now_utc();
                let answer = call(&base, "/insert", None).await;
                assert_eq!(answer.status, StatusCode::OK);
                let cookie = answer.cookie.expect("a session cookie");
                assert_eq!(cookie.name(), "id");
                assert_eq!(cookie.http_only(), Some(true));
                assert_eq!(cookie.same_site(), Some(SameSite::Strict));
                assert!(cookie.max_age().is_some_and(|age| age <= Duration::hours(1)));
                assert_eq!(cookie.secure(), Some(true));
                assert_eq!(cookie.path(), Some("/"));

                let faults = store.faults();
                assert_eq!(faults.calls(Operation::Create), 1);
                assert_eq!(faults.calls(Operation::Save), 0);
                let stored = store.load(&id_of(&cookie)).await.expect("load").expect("stored");
                assert_eq!(stored.data, data(json!({ "foo": 42 })));
                assert!(about(
                    stored.expiry_date,
                    before + Duration::hours(1),
                    StdDuration::from_secs(5)
                ));
                assert_eq!((stored.version, stored.user_id), (0, None));
            }

            pub async fn no_expiry_is_a_session_cookie<S: ExpiredDeletion>(store: Shared<S>) {
                let base = app(&store, None, None).await;
                let answer = call(&base, "/insert", None).await;
                let cookie = answer.cookie.expect("a session cookie");
                assert_eq!(cookie.name(), "id");
                assert!(cookie.max_age().is_none());
                assert_eq!(cookie.secure(), Some(true));
                let stored = store.load(&id_of(&cookie)).await.expect("load").expect("stored");
                // tower-sessions' default for a session cookie: two weeks in the store.
                assert!(stored.expiry_date > OffsetDateTime::now_utc() + Duration::days(13));
                store.delete(&stored.id).await.expect("clean up");
            }

            pub async fn get_reads_the_stored_session<S: ExpiredDeletion>(store: Shared<S>) {
                let base = app(&store, one_hour(), None).await;
                let cookie = call(&base, "/insert", None).await.cookie.expect("a cookie");
                let answer = call(&base, "/get", Some(&cookie)).await;
                assert_eq!(answer.status, StatusCode::OK);
                assert_eq!(answer.body, "Some(42)");
                assert_eq!(store.faults().calls(Operation::Load), 1);
            }

            pub async fn get_without_a_session<S: ExpiredDeletion>(store: Shared<S>) {
                let base = app(&store, one_hour(), None).await;
                let answer = call(&base, "/get_value", None).await;
                assert_eq!(answer.body, "None");
                assert!(answer.cookie.is_none());
            }

            pub async fn remove_last_value<S: ExpiredDeletion>(store: Shared<S>) {
                let base = app(&store, one_hour(), None).await;
                let cookie = call(&base, "/insert", None).await.cookie.expect("a cookie");
                call(&base, "/remove_value", Some(&cookie)).await;
                let answer = call(&base, "/get_value", Some(&cookie)).await;
                assert_eq!(answer.body, "None");
            }

            pub async fn cycle_id_moves_the_session<S: ExpiredDeletion>(store: Shared<S>) {
                let base = app(&store, one_hour(), None).await;
                let first = call(&base, "/insert", None).await.cookie.expect("a cookie");
                let second = call(&base, "/cycle_id", Some(&first)).await.cookie.expect("a cookie");
                assert_ne!(first.value(), second.value());
                let answer = call(&base, "/get", Some(&second)).await;
                assert_eq!(answer.body, "Some(42)");

                assert_eq!(store.load(&id_of(&first)).await.expect("load"), None);
                let moved = store.load(&id_of(&second)).await.expect("load").expect("stored");
                assert_eq!(moved.data, data(json!({ "foo": 42 })));
                assert_eq!(call(&base, "/get", Some(&first)).await.body, "None");
            }

            pub async fn flush_ends_the_session<S: ExpiredDeletion>(store: Shared<S>) {
                let base = app(&store, one_hour(), None).await;
                let cookie = call(&base, "/insert", None).await.cookie.expect("a cookie");
                let removal = call(&base, "/flush", Some(&cookie)).await.cookie.expect("a cookie");
                assert_eq!(removal.value(), "");
                assert_eq!(removal.max_age(), Some(Duration::ZERO));
                assert_eq!(removal.path(), Some("/"));
                assert_eq!(store.load(&id_of(&cookie)).await.expect("load"), None);
                assert_eq!(call(&base, "/get", Some(&cookie)).await.body, "None");
            }

            pub async fn flush_with_domain<S: ExpiredDeletion>(store: Shared<S>) {
                let base = app(&store, one_hour(), Some("localhost")).await;
                let cookie = call(&base, "/insert", None).await.cookie.expect("a cookie");
                let removal = call(&base, "/flush", Some(&cookie)).await.cookie.expect("a cookie");
                assert_eq!(removal.value(), "");
                assert_eq!(removal.max_age(), Some(Duration::ZERO));
                assert_eq!(removal.domain(), Some("localhost"));
                assert_eq!(removal.path(), Some("/"));
                assert_eq!(store.load(&id_of(&cookie)).await.expect("load"), None);
            }

            pub async fn set_expiry_moves_the_stored_expiry<S: ExpiredDeletion>(
                store: Shared<S>,
            ) {
                let base = app(&store, one_hour(), Some("localhost")).await;
                let cookie = call(&base, "/insert", None).await.cookie.expect("a cookie");
                let age = cookie.max_age().expect("a max age");
                assert!((age - Duration::hours(1)).abs() <= Duration::seconds(1));

                let before = OffsetDateTime::now_utc();
                let answer = call(&base, "/set_expiry", Some(&cookie)).await;
                let cookie = answer.cookie.expect("a cookie");
                let age = cookie.max_age().expect("a max age");
                assert!((age - Duration::days(1)).abs() <= Duration::seconds(1));
                let stored = store.load(&id_of(&cookie)).await.expect("load").expect("stored");
                assert!(about(
                    stored.expiry_date,
                    before + Duration::days(1),
                    StdDuration::from_secs(5)
                ));
            }

            pub async fn concurrent_writes_all_go_through<S: ExpiredDeletion>(store: Shared<S>) {
                const WRITERS: u64 = 16;
                let base = app(&store, one_hour(), None).await;
                let cookie = call(&base, "/insert", None).await.cookie.expect("a cookie");
                let writes = (0..WRITERS).map(|value| {
                    let (base, cookie) = (base.clone(), cookie.clone());
                    tokio::spawn(async move {
                        call(&base, &format!("/set?value={value}"), Some(&cookie)).await.status
                    })
                });
                for write in writes.collect::<Vec<_>>() {
                    assert_eq!(write.await.expect("a request task"), StatusCode::OK);
                }
                let stored = store.load(&id_of(&cookie)).await.expect("load").expect("stored");
                assert_eq!(stored.version, WRITERS, "each request wrote exactly once");
                let value = stored.data.get("value").and_then(serde_json::Value::as_u64);
                assert!(value.is_some_and(|value| value < WRITERS));
                assert_eq!(store.faults().calls(Operation::Save), 0);
            }

            pub async fn change_expiry_type<S: ExpiredDeletion>(store: Shared<S>) {
                let base = app(&store, None, Some("localhost")).await;
                let cookie = call(&base, "/insert", None).await.cookie.expect("a cookie");
                assert_eq!(cookie.max_age(), None);
                let cookie = call(&base, "/set_expiry", Some(&cookie)).await.cookie.expect("a cookie");
                let age = cookie.max_age().expect("a max age now");
                assert!((age - Duration::days(1)).abs() <= Duration::seconds(1));

                let base = app(&store, one_hour(), Some("localhost")).await;
                let cookie = call(&base, "/insert", None).await.cookie.expect("a cookie");
                let age = cookie.max_age().expect("a max age");
                assert!((age - Duration::hours(1)).abs() <= Duration::seconds(1));
                let answer = call(&base, "/remove_expiry", Some(&cookie)).await;
                let cookie = answer.cookie.expect("a cookie");
                assert_eq!(cookie.max_age(), None);
                store.delete(&id_of(&cookie)).await.expect("clean up");
            }
        }
    };
}

release_checks!(v0_15, tower_sessions);
release_checks!(v0_14, tower_sessions_0_14);
