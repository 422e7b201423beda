//! Session settings from the environment: [`SessionConfig::from_env`].
//!
//! Every variable is optional; an unset one keeps the layer's default. With a
//! prefix of your own ([`SessionConfig::from_env_with_prefix`]), each
//! variable is read under that prefix first and under `SESSION_` second, so
//! `TIDEWAY_SESSION_TTL` wins over `SESSION_TTL`.
//!
//! | variable | values | default |
//! |---|---|---|
//! | `SESSION_BACKEND` | `memory`, `cookie`, or the name of any store your application wires up (`redis`, `postgres`, ...) | `memory` |
//! | `SESSION_EXPIRY` | `inactivity` (sliding), `session-end` (browser-session cookie) | `inactivity` when `SESSION_TTL` is set, else the layer's default (`session-end`) |
//! | `SESSION_TTL` | a positive duration: seconds (`3600`) or a number with `s`, `m`, `h`, `d` (`30m`, `12h`, `14d`), ending before year 9999 | 2 weeks for `session-end` |
//! | `SESSION_COOKIE_NAME` | a cookie name (RFC 6265 token); `__Host-id` for a host-only cookie (needs `Secure`, path `/`, no domain) | `id` |
//! | `SESSION_COOKIE_PATH` | a path starting with `/` | `/` |
//! | `SESSION_COOKIE_DOMAIN` | a domain | none (this host only) |
//! | `SESSION_COOKIE_SECURE` | `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`) | `true` |
//! | `SESSION_COOKIE_HTTP_ONLY` | `true`/`false` | `true` |
//! | `SESSION_COOKIE_SAME_SITE` | `strict`, `lax`, `none` | `strict` |
//! | `SESSION_SIGNING_KEYS` | comma-separated keys, newest first, each hex or base64 of at least 64 bytes: sign the cookie | none |
//! | `SESSION_LEGACY_SIGNATURES` | `true` to also accept cookies signed by earlier builds (over the value alone) for one session lifetime after upgrading | `false` |
//! | `SESSION_ENCRYPTION_KEYS` | the same, to encrypt the cookie (required by the `cookie` backend) | none |
//! | `SESSION_ALWAYS_SAVE` | `true`/`false` | `false` |
//! | `SESSION_ALLOW_INSECURE` | `true` to allow `SESSION_COOKIE_SECURE=false`, for local development over plain HTTP | `false` |
//!
//! An invalid value is a [`ConfigError`] naming the variable and what it
//! expected. Key material is never echoed, nor any other value that could be
//! a secret: a value is shown only when it is at most 24 bytes of letters,
//! digits, spaces and `_.,/-`, otherwise as `<redacted, N bytes>` (a
//! mistyped `SESSION_BACKEND=redis://:password@host` must not put the
//! password in the logs).

use std::fmt;

use ::cookie::SameSite;
use time::Duration;

use crate::{
    cookie::{self, parse_key, KeyError},
    Expiry, Keys, SessionManagerLayer,
};

/// The prefix every variable is read under when no other is given, and the
/// fallback under a custom one.
pub const DEFAULT_PREFIX: &str = "SESSION_";

pub use crate::cookie::MIN_KEY_BYTES;

/// Where sessions are kept, as named by `SESSION_BACKEND`.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A process-local store (`session-memory`).
    Memory,
    /// The whole session encrypted in the cookie; needs encryption keys.
    Cookie,
    /// Any other store, by the name the application gives it (lowercase
    /// letters, digits, `-` and `_`).
    Store(String),
}

impl Backend {
    /// The name as written in the variable.
    pub fn name(&self) -> &str {
        match self {
            Backend::Memory => "memory",
            Backend::Cookie => "cookie",
            Backend::Store(name) => name,
        }
    }
}

/// How the cookie is protected, from the key variables.
#[derive(Clone)]
pub enum CookieKeys {
    /// Neither key variable is set: the cookie carries the bare id.
    None,
    /// `SESSION_SIGNING_KEYS`: the cookie is signed.
    Signing(Keys),
    /// `SESSION_ENCRYPTION_KEYS`: the cookie is encrypted.
    Encryption(Keys),
}

impl fmt::Debug for CookieKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        match self {
            CookieKeys::None => f.write_str("None"),
            CookieKeys::Signing(keys) => write!(f, "Signing({} keys)", keys.len()),
            CookieKeys::Encryption(keys) => write!(f, "Encryption({} keys)", keys.len()),
        }
    }
}

/// A variable that holds something other than what it should.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The variable's value cannot be parsed.
    #[error("{variable}={value:?} is invalid: expected {expected}")]
    Invalid {
        /// The variable, with its prefix.
        variable: String,
        /// What it holds, or `<redacted>` (keys) or `<redacted, N bytes>`
        /// (anything that could be a secret: see the
        /// [module documentation](self)).
        value: String,
        /// What it should hold.
        expected: String,
    },
    /// Two settings that are each fine cannot go together.
    #[error("{variable}: {reason}")]
    Conflict {
        /// The variable to change.
        variable: String,
        /// Why.
        reason: String,
    },
}

/// Session settings read from environment variables (see the
/// [module documentation](self) for the variables).
///
/// ```
/// use session_memory::MemoryStore;
/// use session_tower::{config::Backend, SessionConfig, SessionManagerLayer};
///
/// # fn main() -> Result<(), session_tower::config::ConfigError> {
/// let config = SessionConfig::from_env()?;
/// let layer = match config.backend() {
///     Backend::Memory => config.apply(SessionManagerLayer::new(MemoryStore::default())),
///     other => panic!("this application has no {} backend", other.name()),
/// };
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SessionConfig {
    backend: Backend,
    expiry: Option<Expiry>,
    cookie_name: Option<String>,
    cookie_path: Option<String>,
    cookie_domain: Option<String>,
    secure: Option<bool>,
    http_only: Option<bool>,
    same_site: Option<SameSite>,
    keys: CookieKeys,
    legacy_signatures: Option<bool>,
    always_save: Option<bool>,
    /// The first prefix, to name variables in later errors.
    prefix: String,
}

impl SessionConfig {
    /// Reads the `SESSION_*` variables of this process.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&[DEFAULT_PREFIX], |name| std::env::var(name).ok())
    }

    /// Reads `<prefix>*` variables, falling back to `SESSION_*` for each one
    /// that is unset.
    pub fn from_env_with_prefix(prefix: &str) -> Result<Self, ConfigError> {
        Self::from_lookup(&[prefix, DEFAULT_PREFIX], |name| std::env::var(name).ok())
    }

    /// Reads the variables through `lookup` instead of the process
    /// environment, trying each prefix in turn (for tests, or settings from a
    /// file).
    pub fn from_lookup(
        prefixes: &[&str],
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let vars = Vars { prefixes, lookup };

        let backend = match vars.get("BACKEND") {
            None => Backend::Memory,
            Some((variable, value)) => parse_backend(&variable, &value)?,
        };
        let ttl = vars.parse(
            "TTL",
            "a positive duration like 3600, 90s, 30m, 12h or 14d, ending before year 9999",
            parse_duration,
        )?;
        let expiry = match vars.get("EXPIRY") {
            None => ttl.map(|(_, ttl)| Expiry::OnInactivity(ttl)),
            Some((variable, value)) => Some(match value.trim().to_ascii_lowercase().as_str() {
                "inactivity" | "on-inactivity" | "on_inactivity" => {
                    Expiry::OnInactivity(ttl.map(|(_, ttl)| ttl).ok_or_else(|| {
                        ConfigError::Conflict {
                            variable: vars.name("TTL"),
                            reason: format!("{variable}=inactivity needs a TTL"),
                        }
                    })?)
                }
                "session-end" | "on-session-end" | "session_end" | "on_session_end" => {
                    Expiry::OnSessionEnd {
                        lifetime: ttl
                            .map(|(_, ttl)| ttl)
                            .unwrap_or(Expiry::DEFAULT_SESSION_END_LIFETIME),
                    }
                }
                _ => return Err(invalid(&variable, &value, "inactivity or session-end")),
            }),
        };

        let cookie_name = vars.parse(
            "COOKIE_NAME",
            "a cookie name (letters, digits and !#$%&'*+-.^_`|~)",
            |v| cookie::is_valid_name(v).then(|| v.to_owned()),
        )?;
        let cookie_path = vars.parse("COOKIE_PATH", "a path starting with /", |v| {
            cookie::is_valid_path(v).then(|| v.to_owned())
        })?;
        let cookie_domain = vars.parse("COOKIE_DOMAIN", "a domain name", |v| {
            cookie::is_valid_domain(v).then(|| v.to_owned())
        })?;
        let secure = vars.parse("COOKIE_SECURE", BOOL_EXPECTED, parse_bool)?;
        let http_only = vars.parse("COOKIE_HTTP_ONLY", BOOL_EXPECTED, parse_bool)?;
        let same_site = vars.parse("COOKIE_SAME_SITE", "strict, lax or none", |v| {
            match v.to_ascii_lowercase().as_str() {
                "strict" => Some(SameSite::Strict),
                "lax" => Some(SameSite::Lax),
                "none" => Some(SameSite::None),
                _ => None,
            }
        })?;
        let always_save = vars.parse("ALWAYS_SAVE", BOOL_EXPECTED, parse_bool)?;
        let legacy_signatures = vars.parse("LEGACY_SIGNATURES", BOOL_EXPECTED, parse_bool)?;
        let allow_insecure = vars.parse("ALLOW_INSECURE", BOOL_EXPECTED, parse_bool)?;

        let signing = vars.keys("SIGNING_KEYS")?;
        let encryption = vars.keys("ENCRYPTION_KEYS")?;
        let keys = match (signing, encryption) {
            (None, None) => CookieKeys::None,
            (Some(keys), None) => CookieKeys::Signing(keys),
            (None, Some(keys)) => CookieKeys::Encryption(keys),
            (Some(_), Some(_)) => {
                return Err(ConfigError::Conflict {
                    variable: vars.name("SIGNING_KEYS"),
                    reason: format!(
                        "set either it or {} (encryption also authenticates), not both",
                        vars.name("ENCRYPTION_KEYS")
                    ),
                })
            }
        };

        let secure_value = secure.as_ref().is_none_or(|(_, s)| *s);
        let insecure_allowed = allow_insecure.as_ref().is_some_and(|(_, a)| *a);
        if let Some((variable, false)) = &secure {
            if !insecure_allowed {
                return Err(ConfigError::Conflict {
                    variable: variable.clone(),
                    reason: format!(
                        "a cookie without Secure travels over plain HTTP; set {}=true to allow it for local development",
                        vars.name("ALLOW_INSECURE")
                    ),
                });
            }
        }
        if let Some((variable, SameSite::None)) = &same_site {
            if !secure_value {
                return Err(ConfigError::Conflict {
                    variable: variable.clone(),
                    reason: "browsers reject SameSite=None without Secure".into(),
                });
            }
        }
        if let Some((name_variable, name)) = &cookie_name {
            let path = cookie_path.as_ref().map_or("/", |(_, path)| path.as_str());
            let domain = cookie_domain.as_ref().map(|(_, domain)| domain.as_str());
            if let Some(rule) = cookie::prefix_violation(name, secure_value, path, domain) {
                // Name the variable to change: the one breaking the rule.
                let variable = if !secure_value {
                    secure.as_ref().map(|(variable, _)| variable.clone())
                } else if path != "/" {
                    cookie_path.as_ref().map(|(variable, _)| variable.clone())
                } else {
                    cookie_domain.as_ref().map(|(variable, _)| variable.clone())
                };
                return Err(ConfigError::Conflict {
                    variable: variable.unwrap_or_else(|| name_variable.clone()),
                    reason: format!("{name_variable}={name}: {rule}"),
                });
            }
        }
        if backend == Backend::Cookie && !matches!(keys, CookieKeys::Encryption(_)) {
            return Err(ConfigError::Conflict {
                variable: vars.name("ENCRYPTION_KEYS"),
                reason: "the cookie backend keeps the whole session in the cookie and needs encryption keys".into(),
            });
        }

        Ok(Self {
            backend,
            expiry,
            cookie_name: cookie_name.map(|(_, v)| v),
            cookie_path: cookie_path.map(|(_, v)| v),
            cookie_domain: cookie_domain.map(|(_, v)| v),
            secure: secure.map(|(_, v)| v),
            http_only: http_only.map(|(_, v)| v),
            same_site: same_site.map(|(_, v)| v),
            keys,
            legacy_signatures: legacy_signatures.map(|(_, v)| v),
            always_save: always_save.map(|(_, v)| v),
            prefix: prefixes
                .first()
                .copied()
                .unwrap_or(DEFAULT_PREFIX)
                .to_owned(),
        })
    }

    /// The backend the environment asks for.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The expiry policy, if the environment sets one.
    pub fn expiry(&self) -> Option<Expiry> {
        self.expiry
    }

    /// The cookie keys the environment provides.
    pub fn keys(&self) -> &CookieKeys {
        &self.keys
    }

    /// A cookie-only layer ([`SessionManagerLayer::cookie_only`]) with the
    /// encryption keys and every other setting the environment made: what an
    /// application calls when [`backend`](Self::backend) is
    /// [`Backend::Cookie`].
    ///
    /// An error naming `SESSION_ENCRYPTION_KEYS` when no encryption keys are
    /// set (signing keys are not enough: the record would be readable).
    ///
    /// ```
    /// use session_tower::SessionConfig;
    ///
    /// let key = "ab".repeat(64); // in real life: `openssl rand -hex 64`
    /// let config = SessionConfig::from_lookup(&["SESSION_"], |name| match name {
    ///     "SESSION_BACKEND" => Some("cookie".to_owned()),
    ///     "SESSION_ENCRYPTION_KEYS" => Some(key.clone()),
    ///     _ => None,
    /// })?;
    /// let layer = config.cookie_only_layer()?;
    /// # let _ = layer;
    /// # Ok::<(), session_tower::config::ConfigError>(())
    /// ```
    pub fn cookie_only_layer(&self) -> Result<SessionManagerLayer, ConfigError> {
        match &self.keys {
            CookieKeys::Encryption(keys) => {
                Ok(self.apply(SessionManagerLayer::cookie_only(keys.clone())))
            }
            _ => Err(ConfigError::Conflict {
                variable: format!("{}ENCRYPTION_KEYS", self.prefix),
                reason: "cookie-only sessions keep the whole session in the cookie and need \
                         encryption keys (hex or base64 of at least 64 bytes, newest first)"
                    .into(),
            }),
        }
    }

    /// Applies every setting the environment made to `layer`; unset ones
    /// keep the layer's values.
    pub fn apply(&self, mut layer: SessionManagerLayer) -> SessionManagerLayer {
        if let Some(name) = &self.cookie_name {
            layer = layer.with_name(name.clone());
        }
        if let Some(path) = &self.cookie_path {
            layer = layer.with_path(path.clone());
        }
        if let Some(domain) = &self.cookie_domain {
            layer = layer.with_domain(domain.clone());
        }
        if let Some(secure) = self.secure {
            layer = layer.with_secure(secure);
        }
        if let Some(http_only) = self.http_only {
            layer = layer.with_http_only(http_only);
        }
        if let Some(same_site) = self.same_site {
            layer = layer.with_same_site(same_site);
        }
        if let Some(expiry) = self.expiry {
            layer = layer.with_expiry(expiry);
        }
        if let Some(always_save) = self.always_save {
            layer = layer.with_always_save(always_save);
        }
        if let Some(legacy_signatures) = self.legacy_signatures {
            layer = layer.with_legacy_signatures(legacy_signatures);
        }
        match &self.keys {
            CookieKeys::None => layer,
            CookieKeys::Signing(keys) => layer.with_signed(keys.clone()),
            CookieKeys::Encryption(keys) => layer.with_private(keys.clone()),
        }
    }
}

const BOOL_EXPECTED: &str = "true or false";

struct Vars<'a, F> {
    prefixes: &'a [&'a str],
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Vars<'_, F> {
    /// The name under the first prefix, for messages about unset variables.
    fn name(&self, suffix: &str) -> String {
        format!(
            "{}{suffix}",
            self.prefixes.first().copied().unwrap_or(DEFAULT_PREFIX)
        )
    }

    /// The first prefixed variable that is set (an empty value counts as
    /// unset), with its full name.
    fn get(&self, suffix: &str) -> Option<(String, String)> {
        self.prefixes.iter().find_map(|prefix| {
            let variable = format!("{prefix}{suffix}");
            (self.lookup)(&variable)
                .filter(|value| !value.trim().is_empty())
                .map(|value| (variable, value))
        })
    }

    fn parse<T>(
        &self,
        suffix: &str,
        expected: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<(String, T)>, ConfigError> {
        match self.get(suffix) {
            None => Ok(None),
            Some((variable, value)) => match parse(value.trim()) {
                Some(parsed) => Ok(Some((variable, parsed))),
                None => Err(invalid(&variable, &value, expected)),
            },
        }
    }

    fn keys(&self, suffix: &str) -> Result<Option<Keys>, ConfigError> {
        let Some((variable, value)) = self.get(suffix) else {
            return Ok(None);
        };
        let mut keys: Option<Keys> = None;
        for (position, part) in value.split(',').map(str::trim).enumerate() {
            let key = parse_key(part).map_err(|error| ConfigError::Invalid {
                variable: variable.clone(),
                value: "<redacted>".into(),
                expected: format!("key {} of the list {}", position + 1, key_expected(&error)),
            })?;
            keys = Some(match keys {
                None => Keys::new(key),
                Some(keys) => keys.with_older(key),
            });
        }
        Ok(keys)
    }
}

fn invalid(variable: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        variable: variable.to_owned(),
        value: shown(value),
        expected: expected.to_owned(),
    }
}

/// The longest value an error shows as it is.
const SHOWN_MAX_LEN: usize = 24;

/// `value` as an error may show it: as it is when it cannot be a secret
/// (short, and none of the characters URLs with credentials, tokens and
/// passwords are made of), else only its length.
fn shown(value: &str) -> String {
    let harmless = value.len() <= SHOWN_MAX_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b" _.,/-".contains(&b));
    if harmless {
        value.to_owned()
    } else {
        format!("<redacted, {} bytes>", value.len())
    }
}

fn parse_backend(variable: &str, value: &str) -> Result<Backend, ConfigError> {
    let name = value.trim().to_ascii_lowercase();
    match name.as_str() {
        "memory" => Ok(Backend::Memory),
        "cookie" => Ok(Backend::Cookie),
        _ if name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_') =>
        {
            Ok(Backend::Store(name))
        }
        _ => Err(invalid(
            variable,
            value,
            "memory, cookie, or a store name (letters, digits, - and _)",
        )),
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn parse_duration(value: &str) -> Option<Duration> {
    let (number, unit) = match value.find(|c: char| !c.is_ascii_digit()) {
        Some(split) => value.split_at(split),
        None => (value, "s"),
    };
    let number: i64 = number.parse().ok()?;
    let seconds_per_unit = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return None,
    };
    let seconds = number.checked_mul(seconds_per_unit)?;
    let duration = Duration::seconds(seconds);
    // A TTL too large to be a date from now would be a session that cannot
    // be written: refused here, at start-up.
    (seconds > 0 && crate::expiry::fits_from_now(duration)).then_some(duration)
}

/// What a key variable should hold, for a key that is not that.
fn key_expected(error: &KeyError) -> String {
    match error {
        KeyError::TooShort { len, min } => format!(
            "to decode to at least {min} bytes (it has {len}); generate one with `openssl rand -hex 64`"
        ),
        _ => "to be hex or base64".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<SessionConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        SessionConfig::from_lookup(&[DEFAULT_PREFIX], |name| map.get(name).cloned())
    }

    fn error(vars: &[(&str, &str)]) -> String {
        read(vars).expect_err("must be rejected").to_string()
    }

    fn hex_key() -> String {
        (0..64).map(|i| format!("{:02x}", i * 3 % 256)).collect()
    }

    #[test]
    fn nothing_set_means_defaults() {
        let config = read(&[]).unwrap();
        assert_eq!(config.backend(), &Backend::Memory);
        assert_eq!(config.expiry(), None);
        assert!(matches!(config.keys(), CookieKeys::None));
    }

    #[test]
    fn every_variable_is_read() {
        let key = hex_key();
        let config = read(&[
            ("SESSION_BACKEND", "Redis"),
            ("SESSION_TTL", "30m"),
            ("SESSION_COOKIE_NAME", "sid"),
            ("SESSION_COOKIE_PATH", "/app"),
            ("SESSION_COOKIE_DOMAIN", "example.com"),
            ("SESSION_COOKIE_SECURE", "yes"),
            ("SESSION_COOKIE_HTTP_ONLY", "0"),
            ("SESSION_COOKIE_SAME_SITE", "Lax"),
            ("SESSION_SIGNING_KEYS", &format!("{key}, {key}")),
            ("SESSION_ALWAYS_SAVE", "on"),
        ])
        .unwrap();
        assert_eq!(config.backend(), &Backend::Store("redis".into()));
        assert_eq!(
            config.expiry(),
            Some(Expiry::OnInactivity(Duration::minutes(30)))
        );
        assert_eq!(config.cookie_name.as_deref(), Some("sid"));
        assert_eq!(config.cookie_path.as_deref(), Some("/app"));
        assert_eq!(config.cookie_domain.as_deref(), Some("example.com"));
        assert_eq!(config.secure, Some(true));
        assert_eq!(config.http_only, Some(false));
        assert_eq!(config.same_site, Some(SameSite::Lax));
        assert_eq!(config.always_save, Some(true));
        assert!(matches!(config.keys(), CookieKeys::Signing(keys) if keys.len() == 2));
    }

    #[test]
    fn durations_in_every_unit() {
        for (text, seconds) in [
            ("3600", 3600),
            ("90s", 90),
            ("30m", 1800),
            ("12h", 43_200),
            ("14d", 1_209_600),
        ] {
            let config = read(&[("SESSION_TTL", text)]).unwrap();
            assert_eq!(
                config.expiry(),
                Some(Expiry::OnInactivity(Duration::seconds(seconds))),
                "{text}"
            );
        }
        let config = read(&[("SESSION_EXPIRY", "session-end"), ("SESSION_TTL", "1d")]).unwrap();
        assert_eq!(
            config.expiry(),
            Some(Expiry::OnSessionEnd {
                lifetime: Duration::days(1)
            })
        );
        let config = read(&[("SESSION_EXPIRY", "session-end")]).unwrap();
        assert_eq!(
            config.expiry(),
            Some(Expiry::OnSessionEnd {
                lifetime: Expiry::DEFAULT_SESSION_END_LIFETIME
            })
        );
    }

    #[test]
    fn keys_in_hex_and_base64_and_encryption() {
        use base64::{
            engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD},
            Engine as _,
        };
        let raw: Vec<u8> = (0..64u8).collect();
        for text in [
            hex_key(),
            STANDARD.encode(&raw),
            STANDARD_NO_PAD.encode(&raw),
            URL_SAFE_NO_PAD.encode(&raw),
        ] {
            let config = read(&[
                ("SESSION_ENCRYPTION_KEYS", &text),
                ("SESSION_BACKEND", "cookie"),
            ])
            .unwrap();
            assert!(matches!(config.keys(), CookieKeys::Encryption(_)));
            assert_eq!(config.backend(), &Backend::Cookie);
        }
    }

    #[test]
    fn every_kind_of_invalid_value_names_its_variable() {
        let short_key = "00".repeat(32);
        let cases: &[(&str, &str, &str)] = &[
            (
                "SESSION_BACKEND",
                "red is!",
                "memory, cookie, or a store name",
            ),
            ("SESSION_TTL", "soon", "positive duration"),
            ("SESSION_TTL", "0", "positive duration"),
            ("SESSION_TTL", "-5m", "positive duration"),
            ("SESSION_TTL", "10w", "positive duration"),
            ("SESSION_TTL", "99999999999999999d", "positive duration"),
            ("SESSION_EXPIRY", "never", "inactivity or session-end"),
            ("SESSION_COOKIE_NAME", "my id", "cookie name"),
            ("SESSION_COOKIE_NAME", "id;x", "cookie name"),
            ("SESSION_COOKIE_PATH", "app", "path starting with /"),
            ("SESSION_COOKIE_PATH", "/a;b", "path starting with /"),
            ("SESSION_COOKIE_DOMAIN", "exa mple.com", "domain name"),
            ("SESSION_COOKIE_SECURE", "maybe", "true or false"),
            ("SESSION_COOKIE_HTTP_ONLY", "2", "true or false"),
            (
                "SESSION_COOKIE_SAME_SITE",
                "sometimes",
                "strict, lax or none",
            ),
            ("SESSION_ALWAYS_SAVE", "always", "true or false"),
            ("SESSION_ALLOW_INSECURE", "please", "true or false"),
            ("SESSION_SIGNING_KEYS", "not a key!", "hex or base64"),
            ("SESSION_SIGNING_KEYS", &short_key, "at least 64 bytes"),
            ("SESSION_ENCRYPTION_KEYS", &short_key, "at least 64 bytes"),
        ];
        for (variable, value, expected) in cases {
            let message = error(&[(variable, value)]);
            assert!(
                message.starts_with(variable),
                "{message} should name {variable}"
            );
            assert!(
                message.contains(expected),
                "{message} should say {expected}"
            );
        }
    }

    #[test]
    fn key_material_is_never_echoed() {
        let secret = "ab".repeat(20);
        let message = error(&[("SESSION_SIGNING_KEYS", &secret)]);
        assert!(!message.contains(&secret), "{message}");
        assert!(message.contains("<redacted>"));
        assert!(message.contains("key 1 of the list"));
        let config = read(&[("SESSION_SIGNING_KEYS", &hex_key())]).unwrap();
        assert!(!format!("{config:?}").contains(&hex_key()));
    }

    #[test]
    fn conflicts_are_explained() {
        let message = error(&[("SESSION_COOKIE_SECURE", "false")]);
        assert!(message.starts_with("SESSION_COOKIE_SECURE"), "{message}");
        assert!(message.contains("SESSION_ALLOW_INSECURE=true"), "{message}");
        assert!(read(&[
            ("SESSION_COOKIE_SECURE", "false"),
            ("SESSION_ALLOW_INSECURE", "true")
        ])
        .is_ok());

        let message = error(&[
            ("SESSION_COOKIE_SAME_SITE", "none"),
            ("SESSION_COOKIE_SECURE", "false"),
            ("SESSION_ALLOW_INSECURE", "true"),
        ]);
        assert!(message.starts_with("SESSION_COOKIE_SAME_SITE"), "{message}");

        let message = error(&[("SESSION_BACKEND", "cookie")]);
        assert!(message.starts_with("SESSION_ENCRYPTION_KEYS"), "{message}");

        let key = hex_key();
        let message = error(&[
            ("SESSION_SIGNING_KEYS", &key),
            ("SESSION_ENCRYPTION_KEYS", &key),
        ]);
        assert!(message.starts_with("SESSION_SIGNING_KEYS"), "{message}");

        let message = error(&[("SESSION_EXPIRY", "inactivity")]);
        assert!(message.starts_with("SESSION_TTL"), "{message}");
    }

    #[test]
    fn a_prefix_wins_and_falls_back_per_variable() {
        let map: HashMap<&str, &str> = [
            ("TIDEWAY_SESSION_TTL", "1h"),
            ("SESSION_TTL", "2h"),
            ("SESSION_COOKIE_NAME", "fallback"),
            ("TIDEWAY_SESSION_COOKIE_SECURE", "nope"),
        ]
        .into_iter()
        .collect();
        let lookup = |name: &str| map.get(name).map(|v| (*v).to_owned());
        let error = SessionConfig::from_lookup(&["TIDEWAY_SESSION_", DEFAULT_PREFIX], lookup)
            .expect_err("invalid secure");
        assert!(
            error
                .to_string()
                .starts_with("TIDEWAY_SESSION_COOKIE_SECURE"),
            "{error}"
        );

        let map: HashMap<&str, &str> = [
            ("TIDEWAY_SESSION_TTL", "1h"),
            ("SESSION_TTL", "2h"),
            ("SESSION_COOKIE_NAME", "fallback"),
        ]
        .into_iter()
        .collect();
        let config = SessionConfig::from_lookup(&["TIDEWAY_SESSION_", DEFAULT_PREFIX], |name| {
            map.get(name).map(|v| (*v).to_owned())
        })
        .unwrap();
        assert_eq!(
            config.expiry(),
            Some(Expiry::OnInactivity(Duration::hours(1)))
        );
        assert_eq!(config.cookie_name.as_deref(), Some("fallback"));
    }

    #[test]
    fn empty_values_count_as_unset() {
        let config = read(&[("SESSION_TTL", "  "), ("SESSION_BACKEND", "")]).unwrap();
        assert_eq!(config.expiry(), None);
        assert_eq!(config.backend(), &Backend::Memory);
    }
}
