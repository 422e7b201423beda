//! Layers built from environment-style settings, over real HTTP: the cookie
//! backend in one call, and its refusals naming the variable.
#![allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failed test.

mod common;

use std::collections::HashMap;

use common::*;
use session_core::time::Duration;
use session_memory::MemoryStore;
use session_tower::{
    config::{Backend, ConfigError, CookieKeys, DEFAULT_PREFIX},
    SameSite, SessionConfig, SessionManagerLayer,
};

fn config(prefixes: &[&str], vars: &[(&str, &str)]) -> Result<SessionConfig, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    SessionConfig::from_lookup(prefixes, |name| map.get(name).cloned())
}

fn hex_key(seed: u8) -> String {
    (0..64u8)
        .map(|i| format!("{:02x}", i.wrapping_mul(7) ^ seed))
        .collect()
}

#[tokio::test]
async fn the_cookie_backend_builds_a_cookie_only_layer_in_one_call() {
    let key = hex_key(1);
    let config = config(
        &[DEFAULT_PREFIX],
        &[
            ("SESSION_BACKEND", "cookie"),
            ("SESSION_ENCRYPTION_KEYS", &key),
            ("SESSION_COOKIE_NAME", "sess"),
            ("SESSION_COOKIE_SAME_SITE", "lax"),
            ("SESSION_COOKIE_SECURE", "false"),
            ("SESSION_ALLOW_INSECURE", "true"),
            ("SESSION_TTL", "1h"),
        ],
    )
    .unwrap();
    assert_eq!(config.backend(), &Backend::Cookie);
    let layer = config.cookie_only_layer().unwrap();
    assert!(layer.is_cookie_only());

    let url = serve_with(layer).await;
    let browser = browser();
    for expected in ["1", "2"] {
        let response = browser.get(format!("{url}/count")).send().await.unwrap();
        let cookie = the_cookie(&response);
        assert_eq!(cookie.name(), "sess");
        assert_eq!(cookie.same_site(), Some(SameSite::Lax));
        assert_eq!(cookie.secure(), None);
        let max_age = cookie.max_age().expect("SESSION_TTL gives Max-Age");
        assert!(max_age > Duration::minutes(59) && max_age <= Duration::hours(1));
        assert!(cookie.value().parse::<session_core::Id>().is_err());
        assert_eq!(ok_text(response).await, expected);
    }

    // A second process with rotated keys (new in front) still reads it.
    let rotated = config_with_keys(&format!("{},{key}", hex_key(2)));
    let response = browser.get(format!("{url}/count")).send().await.unwrap();
    let value = the_cookie(&response).value().to_owned();
    let other = serve_with(rotated.cookie_only_layer().unwrap()).await;
    let response = bare()
        .get(format!("{other}/read"))
        .header("cookie", format!("sess={value}"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok_text(response).await, "3");
}

fn config_with_keys(keys: &str) -> SessionConfig {
    config(
        &[DEFAULT_PREFIX],
        &[
            ("SESSION_BACKEND", "cookie"),
            ("SESSION_ENCRYPTION_KEYS", keys),
            ("SESSION_COOKIE_NAME", "sess"),
            ("SESSION_COOKIE_SECURE", "false"),
            ("SESSION_ALLOW_INSECURE", "true"),
        ],
    )
    .unwrap()
}

#[test]
fn cookie_only_needs_encryption_keys_and_names_the_variable() {
    // Read as a memory backend, then asked for a cookie-only layer anyway.
    let error = config(&[DEFAULT_PREFIX], &[]).unwrap().cookie_only_layer();
    let message = error.unwrap_err().to_string();
    assert!(message.starts_with("SESSION_ENCRYPTION_KEYS"), "{message}");

    // Signing keys are not enough: the record would be readable. The keys
    // must really be loaded for this to test anything.
    let signed = config(
        &["APP_SESSION_"],
        &[("APP_SESSION_SIGNING_KEYS", &hex_key(3))],
    )
    .unwrap();
    assert!(
        matches!(signed.keys(), CookieKeys::Signing(keys) if keys.len() == 1),
        "the signing key was not read: {:?}",
        signed.keys()
    );
    let message = signed.cookie_only_layer().unwrap_err().to_string();
    assert!(
        message.starts_with("APP_SESSION_ENCRYPTION_KEYS"),
        "{message}"
    );

    // The backend itself refuses to start without them, short ones, or bad
    // ones, each message naming the variable.
    for (vars, variable, expected) in [
        (
            vec![("SESSION_BACKEND", "cookie")],
            "SESSION_ENCRYPTION_KEYS",
            "needs encryption keys",
        ),
        (
            vec![
                ("SESSION_BACKEND", "cookie"),
                ("SESSION_ENCRYPTION_KEYS", "abcd"),
            ],
            "SESSION_ENCRYPTION_KEYS",
            "at least 64 bytes (it has 2)",
        ),
        (
            vec![
                ("SESSION_BACKEND", "cookie"),
                ("SESSION_ENCRYPTION_KEYS", "%%%"),
            ],
            "SESSION_ENCRYPTION_KEYS",
            "hex or base64",
        ),
    ] {
        let message = config(&[DEFAULT_PREFIX], &vars).unwrap_err().to_string();
        assert!(message.starts_with(variable), "{message}");
        assert!(message.contains(expected), "{message}");
    }

    // A prefix of the application's own wins over SESSION_.
    let message = config(
        &["TIDEWAY_SESSION_", DEFAULT_PREFIX],
        &[
            ("SESSION_BACKEND", "cookie"),
            ("SESSION_ENCRYPTION_KEYS", &hex_key(4)),
            (
                "TIDEWAY_SESSION_ENCRYPTION_KEYS",
                &format!("{},00", hex_key(5)),
            ),
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(
        message.starts_with("TIDEWAY_SESSION_ENCRYPTION_KEYS"),
        "{message}"
    );
    assert!(message.contains("key 2 of the list"), "{message}");
}

#[tokio::test]
async fn memory_and_custom_store_names_apply_to_a_store_layer() {
    for backend in ["memory", "redis"] {
        let config = config(
            &[DEFAULT_PREFIX],
            &[
                ("SESSION_BACKEND", backend),
                ("SESSION_COOKIE_NAME", "app"),
                ("SESSION_COOKIE_PATH", "/"),
            ],
        )
        .unwrap();
        // An application maps its own store names; here both use memory.
        let layer = match config.backend() {
            Backend::Memory => SessionManagerLayer::new(MemoryStore::default()),
            Backend::Store(name) if name == "redis" => {
                SessionManagerLayer::new(MemoryStore::default())
            }
            other => panic!("unexpected backend {other:?}"),
        };
        let layer = config.apply(layer);
        assert!(!layer.is_cookie_only());
        let url = serve_with(layer).await;
        let response = bare().get(format!("{url}/count")).send().await.unwrap();
        let cookie = the_cookie(&response);
        assert_eq!(cookie.name(), "app");
        assert!(cookie.value().parse::<session_core::Id>().is_ok());
    }
}

#[test]
fn a_ttl_too_large_for_a_date_is_refused_at_start_up() {
    // Each fits in an i64 of seconds, none in a date before year 9999.
    for ttl in [
        "9999999999999",
        "3000000000000s",
        "99999999999m",
        "9999999999h",
        "4000000d",
    ] {
        let error = config(&[DEFAULT_PREFIX], &[("SESSION_TTL", ttl)])
            .expect_err(ttl)
            .to_string();
        assert!(error.starts_with("SESSION_TTL"), "{error}");
        assert!(error.contains("before year 9999"), "{error}");
    }
    // The largest sensible ones still work, and build a valid layer.
    for ttl in ["36500d", "876000h"] {
        let config = config(&[DEFAULT_PREFIX], &[("SESSION_TTL", ttl)]).unwrap();
        config
            .apply(SessionManagerLayer::new(MemoryStore::default()))
            .validate()
            .unwrap();
    }
}

#[test]
fn values_that_could_be_secrets_are_never_echoed() {
    for (variable, value, secret) in [
        (
            "SESSION_BACKEND",
            "redis://:hunter2@db.internal:6379",
            "hunter2",
        ),
        (
            "SESSION_BACKEND",
            "postgres://app:s3cr3t@db/sessions",
            "s3cr3t",
        ),
        (
            "SESSION_TTL",
            "token=abcdefghijklmnopqrstuvwxyz0123",
            "abcdefghijklmnop",
        ),
        (
            "SESSION_COOKIE_DOMAIN",
            "user:pa55word@example.com",
            "pa55word",
        ),
        ("SESSION_COOKIE_SECURE", "Tr0ub4dor&3", "Tr0ub4dor"),
    ] {
        let error = config(&[DEFAULT_PREFIX], &[(variable, value)]).expect_err(value);
        for shown in [error.to_string(), format!("{error:?}")] {
            assert!(!shown.contains(secret), "{shown}");
            assert!(shown.contains(variable), "{shown}");
            assert!(
                shown.contains(&format!("<redacted, {} bytes>", value.len())),
                "{shown}"
            );
        }
    }
    // A plain typo is still shown, to help whoever fixes it.
    let error = config(&[DEFAULT_PREFIX], &[("SESSION_TTL", "10w")]).unwrap_err();
    assert!(error.to_string().contains("\"10w\""), "{error}");
}

#[test]
fn a_host_prefixed_name_needs_its_attributes() {
    let ok = config(&[DEFAULT_PREFIX], &[("SESSION_COOKIE_NAME", "__Host-id")]).unwrap();
    ok.apply(SessionManagerLayer::new(MemoryStore::default()))
        .validate()
        .unwrap();
    for (vars, variable) in [
        (vec![("SESSION_COOKIE_PATH", "/app")], "SESSION_COOKIE_PATH"),
        (
            vec![("SESSION_COOKIE_DOMAIN", "example.com")],
            "SESSION_COOKIE_DOMAIN",
        ),
        (
            vec![
                ("SESSION_COOKIE_SECURE", "false"),
                ("SESSION_ALLOW_INSECURE", "true"),
            ],
            "SESSION_COOKIE_SECURE",
        ),
    ] {
        let mut vars = vars;
        vars.push(("SESSION_COOKIE_NAME", "__Host-id"));
        let message = config(&[DEFAULT_PREFIX], &vars).unwrap_err().to_string();
        assert!(message.starts_with(variable), "{message}");
        assert!(message.contains("__Host-"), "{message}");
    }
    let message = config(
        &[DEFAULT_PREFIX],
        &[
            ("SESSION_COOKIE_NAME", "__Secure-id"),
            ("SESSION_COOKIE_SECURE", "false"),
            ("SESSION_ALLOW_INSECURE", "true"),
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(message.starts_with("SESSION_COOKIE_SECURE"), "{message}");
}
