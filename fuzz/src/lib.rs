//! The bodies of the fuzz targets, one function per target, each taking the
//! raw input. They return normally on any input and panic only when an
//! invariant breaks; `fuzz_targets/*.rs` hand them to libFuzzer, and
//! `session-tower/tests/fuzz_corpus.rs` runs them over the committed corpus
//! in the ordinary test run (no nightly, no libFuzzer).
//!
//! Only crates `session-tower`'s tests can reach are used here, so the test
//! can include this file as a module.
#![forbid(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

use std::{
    collections::HashMap,
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::OnceLock,
    task::{Context, Poll},
};

use http::{header, HeaderValue, Request, Response};
use session_core::{codec, time::Duration, Id, Record, SessionStore};
use session_memory::MemoryStore;
use session_tower::{
    config::{Backend, ConfigError},
    Expiry, Key, Keys, Session, SessionConfig, SessionManagerLayer,
};
use tower_layer::Layer as _;
use tower_service::Service;

// ---------------------------------------------------------------- Id

/// `Id::from_str` on any text: never a panic, and whatever parses is the
/// canonical spelling of its id. Any 16 bytes make an id that round-trips.
pub fn id_parse(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(id) = text.parse::<Id>() {
            assert_eq!(
                id.to_string(),
                text,
                "an id parsed from a non-canonical spelling"
            );
        }
    }
    if let Some(bytes) = data.get(..16) {
        let mut array = [0u8; 16];
        array.copy_from_slice(bytes);
        let id = Id(i128::from_le_bytes(array));
        assert_eq!(id.to_string().parse::<Id>(), Ok(id));
    }
}

// ---------------------------------------------------------------- codec

/// The record codec on any bytes: never a panic (an undecodable record is
/// `Error::Decode`), and what decodes encodes and decodes to itself.
pub fn record_codec(data: &[u8]) {
    match codec::decode_record(data) {
        Ok(record) => {
            let bytes = codec::encode_record(&record).expect("a decoded record encodes");
            let again = codec::decode_record(&bytes).expect("an encoded record decodes");
            assert_eq!(again, record);
        }
        Err(error) => assert!(error.is_decode(), "{error:?}"),
    }
    match codec::decode_data(data) {
        Ok(values) => {
            let bytes = codec::encode_data(&values).expect("decoded data encodes");
            let again = codec::decode_data(&bytes).expect("encoded data decodes");
            assert_eq!(again, values);
        }
        Err(error) => assert!(error.is_decode(), "{error:?}"),
    }
}

// ---------------------------------------------------------------- config

/// The variables `SessionConfig` reads, without their prefix.
const SUFFIXES: [&str; 15] = [
    "BACKEND",
    "EXPIRY",
    "TTL",
    "COOKIE_NAME",
    "COOKIE_PATH",
    "COOKIE_DOMAIN",
    "COOKIE_SECURE",
    "COOKIE_HTTP_ONLY",
    "COOKIE_SAME_SITE",
    "SIGNING_KEYS",
    "ENCRYPTION_KEYS",
    "LEGACY_SIGNATURES",
    "ALWAYS_SAVE",
    "ALLOW_INSECURE",
    "UNKNOWN",
];

/// `SessionConfig::from_lookup` on any set of variables. Input: lines, each
/// a selector byte (which variable; its top bit: under the application's
/// prefix or `SESSION_`) and the value.
///
/// Invariants: no panic; whatever it accepts builds a layer that
/// `validate` accepts (and a cookie-only one for the `cookie` backend); an
/// error never shows a value that could be a secret.
pub fn env_config(data: &[u8]) {
    let mut vars: HashMap<String, String> = HashMap::new();
    for line in data.split(|&byte| byte == b'\n') {
        let Some((&selector, value)) = line.split_first() else {
            continue;
        };
        // The process environment gives text only (`std::env::var`).
        let Ok(value) = std::str::from_utf8(value) else {
            continue;
        };
        let prefix = if selector & 0x80 == 0 {
            "SESSION_"
        } else {
            "APP_SESSION_"
        };
        let suffix = SUFFIXES[usize::from(selector & 0x7f) % SUFFIXES.len()];
        vars.insert(format!("{prefix}{suffix}"), value.to_owned());
    }
    let lookup = |name: &str| vars.get(name).cloned();
    match SessionConfig::from_lookup(&["APP_SESSION_", "SESSION_"], lookup) {
        Ok(config) => {
            let layer = config.apply(SessionManagerLayer::new(MemoryStore::default()));
            if let Err(error) = layer.validate() {
                panic!("from_lookup accepted what the layer refuses: {error}; {config:?}");
            }
            if config.backend() == &Backend::Cookie {
                let layer = config
                    .cookie_only_layer()
                    .expect("the cookie backend has its keys");
                layer.validate().expect("a valid cookie-only layer");
            }
        }
        Err(error) => {
            if let ConfigError::Invalid { value, .. } = &error {
                let harmless = value.len() <= 24
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b" _.,/-".contains(&b));
                assert!(
                    harmless || value.starts_with("<redacted"),
                    "an error shows {value:?}"
                );
            }
            // No message template holds an `@`: a value with one (a URL with
            // credentials) is never shown.
            let shown = format!("{error} {error:?}");
            for value in vars.values().filter(|value| value.contains('@')) {
                assert!(!shown.contains(value.as_str()), "{shown}");
            }
        }
    }
}

// ---------------------------------------------------------------- layer

/// How the session cookie is protected in a run of the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    Signed,
    SignedLegacy,
    Private,
    CookieOnly,
}

const MODES: [Mode; 5] = [
    Mode::Plain,
    Mode::Signed,
    Mode::SignedLegacy,
    Mode::Private,
    Mode::CookieOnly,
];

/// What the handler does with its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Read,
    Increment,
    Flush,
    CycleAndIncrement,
    /// Set-up only: stores the count the targets find (`SEEDED_COUNT`).
    Seed,
    /// Set-up only: answers the session's id.
    ShowId,
}

const ACTIONS: [Action; 4] = [
    Action::Read,
    Action::Increment,
    Action::Flush,
    Action::CycleAndIncrement,
];

/// The count the genuine session holds.
const SEEDED_COUNT: u64 = 41;

/// Stands for the genuine cookie's value in an input.
const GENUINE: u8 = 0x01;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a tokio runtime")
    })
}

fn keys() -> Keys {
    let older = Key::from(&[0x5a; 64]);
    Keys::new(Key::from(&[0x17; 64])).with_older(older)
}

fn layer(mode: Mode, store: MemoryStore) -> SessionManagerLayer {
    let layer = match mode {
        Mode::CookieOnly => SessionManagerLayer::cookie_only(keys()),
        _ => SessionManagerLayer::new(store),
    };
    let layer = layer
        .with_expiry(Expiry::OnInactivity(Duration::days(3650)))
        .with_refresh_interval(Duration::ZERO);
    let layer = match mode {
        Mode::Signed => layer.with_signed(keys()),
        Mode::SignedLegacy => layer.with_signed(keys()).with_legacy_signatures(true),
        Mode::Private => layer.with_private(keys()),
        Mode::Plain | Mode::CookieOnly => layer,
    };
    layer.validate().expect("valid settings")
}

/// The handler behind the layer: does `action`, answers what it saw.
#[derive(Clone, Copy)]
struct Handler(Action);

impl Service<Request<()>> for Handler {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<()>) -> Self::Future {
        let session = request
            .extensions()
            .get::<Session>()
            .cloned()
            .expect("the layer puts a session in the request");
        let action = self.0;
        Box::pin(async move { Ok(Response::new(handle(&session, action).await)) })
    }
}

/// `count=<what the session held> <outcome>`.
async fn handle(session: &Session, action: Action) -> String {
    let count = match session.get::<u64>("count").await {
        Ok(count) => count.unwrap_or(0),
        // A cookie-only record decoded from fuzzed JSON may hold anything.
        Err(_) => return "count=? error".to_owned(),
    };
    let outcome = match action {
        Action::Read => Ok(()),
        Action::Increment => session.insert("count", count + 1).await,
        Action::Flush => session.flush().await,
        Action::CycleAndIncrement => match session.cycle_id().await {
            Ok(()) => session.insert("count", count + 1).await,
            Err(error) => Err(error),
        },
        Action::Seed => session.insert("count", SEEDED_COUNT).await,
        Action::ShowId => {
            let id = session.id().await.ok().flatten();
            return id.map(|id| id.to_string()).unwrap_or_default();
        }
    };
    match outcome {
        Ok(()) => format!("count={count} ok"),
        Err(error) => format!("count={count} error {error}"),
    }
}

/// One request through the layer; the response.
fn request(
    mode: Mode,
    store: &MemoryStore,
    action: Action,
    cookies: &[HeaderValue],
) -> Response<String> {
    let mut service = layer(mode, store.clone()).layer(Handler(action));
    let mut request = Request::new(());
    for cookie in cookies {
        request.headers_mut().append(header::COOKIE, cookie.clone());
    }
    runtime()
        .block_on(service.call(request))
        .expect("the handler is infallible")
}

/// The value of the response's one `Set-Cookie`, if any.
fn set_cookie_value(response: &Response<String>) -> Option<String> {
    let mut values = response.headers().get_all(header::SET_COOKIE).iter();
    let value = values.next()?;
    assert!(values.next().is_none(), "two Set-Cookie headers");
    let cookie = cookie::Cookie::parse(value.to_str().expect("a text Set-Cookie"))
        .expect("a Set-Cookie that parses");
    assert_eq!(cookie.name(), "id");
    let cache_control = response.headers().get(header::CACHE_CONTROL);
    assert_eq!(
        cache_control.and_then(|value| value.to_str().ok()),
        Some("private"),
        "a response setting the cookie must be private"
    );
    Some(cookie.value().to_owned())
}

/// The genuine session of each mode: its cookie value, and its record for
/// the store modes.
struct Genuine {
    value: String,
    record: Option<Record>,
}

fn genuine(mode: Mode) -> &'static Genuine {
    static GENUINE: OnceLock<Vec<Genuine>> = OnceLock::new();
    let all = GENUINE.get_or_init(|| {
        MODES
            .iter()
            .map(|&mode| {
                let store = MemoryStore::default();
                let response = request(mode, &store, Action::Seed, &[]);
                let value = set_cookie_value(&response).expect("the seed sets the cookie");
                let cookie = HeaderValue::try_from(format!("id={value}")).expect("a header");
                let response = request(mode, &store, Action::ShowId, &[cookie]);
                let record = (mode != Mode::CookieOnly).then(|| {
                    let id: Id = response.body().parse().expect("the seeded id");
                    runtime()
                        .block_on(store.load(&id))
                        .expect("the memory store loads")
                        .expect("the seeded record")
                });
                Genuine { value, record }
            })
            .collect()
    });
    let index = MODES.iter().position(|&m| m == mode).unwrap_or_default();
    &all[index]
}

/// A store holding the genuine session of `mode` alone.
fn seeded_store(mode: Mode) -> MemoryStore {
    let store = MemoryStore::default();
    if let Some(record) = &genuine(mode).record {
        runtime()
            .block_on(store.save(record))
            .expect("the memory store saves");
    }
    store
}

/// Whether `input` puts the genuine cookie in a pair of its own (`id=`,
/// then the marker, spaces or tabs around, `;` or a header's end on both
/// sides) and names no other cookie `id`: then the layer must find the
/// genuine session whatever else the header holds.
fn genuine_must_be_found(input: &[u8]) -> bool {
    let mut markers = input.iter().enumerate().filter(|(_, &b)| b == GENUINE);
    let (Some((at, _)), None) = (markers.next(), markers.next()) else {
        return false;
    };
    if input.windows(2).filter(|pair| pair == b"id").count() != 1 {
        return false;
    }
    let is_space = |b: &&u8| **b == b' ' || **b == b'\t';
    let is_end = |b: Option<&u8>| matches!(b, None | Some(b';') | Some(b'\n'));
    let (before, after) = input.split_at(at);
    let Some(before) = before.strip_suffix(b"id=") else {
        return false;
    };
    let mut before = before.iter().rev().skip_while(is_space);
    let mut after = after.iter().skip(1).skip_while(is_space);
    is_end(before.next()) && is_end(after.next())
}

/// The `Cookie` header(s) → session lookup path, through the real layer on
/// a memory store, in every protection mode. Input: a mode byte, an action
/// byte, then the headers, one per line; byte 0x01 stands for the genuine
/// session's cookie value.
///
/// Invariants: no panic; the handler sees the genuine session or an empty
/// one, never anything else; the genuine session is found whenever its
/// cookie is in a pair of its own, whatever bytes surround it; a response
/// setting the cookie is `Cache-Control: private` and its cookie, sent
/// back, gives what the handler wrote.
pub fn cookie_header(data: &[u8]) {
    let [mode, action, input @ ..] = data else {
        return;
    };
    let mode = MODES[usize::from(*mode) % MODES.len()];
    let action = ACTIONS[usize::from(*action) % ACTIONS.len()];
    run_layer(mode, action, input, genuine_must_be_found(input));
}

fn run_layer(mode: Mode, action: Action, input: &[u8], must_find: bool) {
    let genuine = genuine(mode);
    let mut headers = Vec::new();
    for line in input.split(|&byte| byte == b'\n') {
        let mut bytes = Vec::with_capacity(line.len());
        for &byte in line {
            if byte == GENUINE {
                bytes.extend_from_slice(genuine.value.as_bytes());
            } else {
                bytes.push(byte);
            }
        }
        // What a client cannot send (control bytes) never reaches the layer.
        let Ok(header) = HeaderValue::from_bytes(&bytes) else {
            return;
        };
        headers.push(header);
    }
    let store = seeded_store(mode);
    let response = request(mode, &store, action, &headers);
    assert_eq!(response.status(), 200, "{mode:?} {action:?}");
    let body = response.body().clone();
    let seen = body
        .strip_prefix("count=")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_default();
    let expected = format!("{SEEDED_COUNT}");
    assert!(
        seen == "0" || seen == expected,
        "{mode:?}: the handler saw {body:?}"
    );
    if must_find {
        assert_eq!(
            seen, expected,
            "{mode:?}: the genuine session was not found"
        );
    }
    let Some(value) = set_cookie_value(&response) else {
        return;
    };
    if value.is_empty() || !body.ends_with(" ok") {
        return;
    }
    // The cookie the response set gives back what the handler wrote.
    let written = match action {
        Action::Increment | Action::CycleAndIncrement => seen.parse::<u64>().unwrap_or(0) + 1,
        _ => seen.parse().unwrap_or(0),
    };
    let cookie = HeaderValue::try_from(format!("id={value}")).expect("a header");
    let response = request(mode, &store, Action::Read, &[cookie]);
    assert_eq!(
        response.body(),
        &format!("count={written} ok"),
        "{mode:?} {action:?}: the cookie set does not give back what was written"
    );
}

// ---------------------------------------------------------------- cookie-only

/// Cookie-only sessions: decryption of any cookie value, and decoding of
/// any plaintext that decrypts (encrypted here with the layer's key, as
/// another build or a holder of the key could). Input: a selector byte
/// (bit 0: the rest is the cookie's value as sent, or the plaintext to
/// encrypt; bit 1: the older key encrypts), an action byte, then the bytes.
///
/// Invariants: no panic, a 200, and a cookie set by the response gives back
/// what the handler wrote.
pub fn cookie_only(data: &[u8]) {
    let [selector, action, input @ ..] = data else {
        return;
    };
    let action = ACTIONS[usize::from(*action) % ACTIONS.len()];
    let value = if selector & 1 == 0 {
        input.to_vec()
    } else {
        let Ok(plaintext) = std::str::from_utf8(input) else {
            return;
        };
        let key = if selector & 2 == 0 {
            Key::from(&[0x17; 64])
        } else {
            Key::from(&[0x5a; 64])
        };
        let mut jar = cookie::CookieJar::new();
        jar.private_mut(&key)
            .add(cookie::Cookie::new("id", plaintext.to_owned()));
        let Some(sealed) = jar.get("id") else {
            return;
        };
        sealed.value().as_bytes().to_vec()
    };
    let mut header = b"id=".to_vec();
    header.extend_from_slice(&value);
    let Ok(header) = HeaderValue::from_bytes(&header) else {
        return;
    };
    let store = MemoryStore::default();
    let response = request(Mode::CookieOnly, &store, action, &[header]);
    assert_eq!(response.status(), 200);
    let body = response.body().clone();
    let Some(value) = set_cookie_value(&response) else {
        return;
    };
    if value.is_empty() || !body.ends_with(" ok") {
        return;
    }
    let seen: u64 = body
        .strip_prefix("count=")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or(0);
    let written = match action {
        Action::Increment | Action::CycleAndIncrement => seen + 1,
        _ => seen,
    };
    let cookie = HeaderValue::try_from(format!("id={value}")).expect("a header");
    let response = request(Mode::CookieOnly, &store, Action::Read, &[cookie]);
    assert_eq!(
        response.body(),
        &format!("count={written} ok"),
        "{action:?}: the cookie set does not give back what was written"
    );
}
