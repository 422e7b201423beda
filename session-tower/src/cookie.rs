//! The session cookie: its attributes, and how its value is protected.
//!
//! Everything here works on the cookie's *value* as a string, whatever it
//! holds (today a session id; a cookie-only store would put the encrypted
//! record there), so the protection modes and key rotation serve both.

use std::{borrow::Cow, fmt};

use cookie::{Cookie, CookieJar, SameSite};
use http::HeaderValue;
use time::Duration;

pub use cookie::Key;

/// The keys that protect cookies, newest first.
///
/// The newest key signs or encrypts every cookie the server sends; every key
/// verifies or decrypts what a browser sends back. To rotate a secret, put a
/// new key in front and keep the old one behind it for as long as cookies
/// made with it may still be around (the longest session lifetime): nobody is
/// logged out, and each session moves to the new key the next time it is
/// saved.
///
/// ```
/// use session_tower::{Key, Keys};
///
/// let old = Key::generate();
/// let new = Key::generate();
/// let keys = Keys::new(new).with_older(old);
/// assert_eq!(keys.len(), 2);
/// ```
#[derive(Clone)]
pub struct Keys {
    // Never empty: `new` takes the newest key.
    keys: Vec<Key>,
}

impl Keys {
    /// Keys made of `newest` alone.
    pub fn new(newest: Key) -> Self {
        Self { keys: vec![newest] }
    }

    /// Adds an older key, still accepted but never used to sign or encrypt.
    /// Keys added first are tried first.
    pub fn with_older(mut self, older: Key) -> Self {
        self.keys.push(older);
        self
    }

    /// How many keys there are (at least one).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always `false`: there is at least the newest key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn newest(&self) -> &Key {
        // `keys` is never empty (see the field).
        &self.keys[0]
    }
}

impl From<Key> for Keys {
    fn from(key: Key) -> Self {
        Self::new(key)
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("Keys")
            .field("len", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// How the cookie's value is protected.
#[derive(Debug, Clone, Default)]
pub(crate) enum Protection {
    /// The value as is: fine for a random session id, which is unguessable.
    #[default]
    Plain,
    /// Signed (HMAC-SHA256): readable, but tampering is detected.
    Signed(Keys),
    /// Encrypted and authenticated (AES-256-GCM): neither readable nor
    /// forgeable.
    Private(Keys),
}

/// The session cookie's attributes and protection.
#[derive(Debug, Clone)]
pub(crate) struct CookieConfig {
    pub(crate) name: Cow<'static, str>,
    pub(crate) path: Cow<'static, str>,
    pub(crate) domain: Option<Cow<'static, str>>,
    pub(crate) secure: bool,
    pub(crate) http_only: bool,
    pub(crate) same_site: SameSite,
    pub(crate) protection: Protection,
}

impl Default for CookieConfig {
    fn default() -> Self {
        Self {
            name: Cow::Borrowed("id"),
            path: Cow::Borrowed("/"),
            domain: None,
            secure: true,
            http_only: true,
            same_site: SameSite::Strict,
            protection: Protection::Plain,
        }
    }
}

impl CookieConfig {
    /// The verified (and decrypted) value of our cookie among the request's
    /// `Cookie` headers: `None` when it is missing, malformed, tampered with
    /// or made with a key we do not hold.
    pub(crate) fn read(&self, headers: &[HeaderValue]) -> Option<String> {
        headers
            .iter()
            .filter_map(|header| header.to_str().ok())
            .flat_map(Cookie::split_parse)
            .filter_map(Result::ok)
            .filter(|cookie| cookie.name() == self.name)
            // Several cookies of that name (other paths, a stale one): take
            // the first that verifies.
            .find_map(|cookie| self.open(cookie.into_owned()))
    }

    fn open(&self, cookie: Cookie<'static>) -> Option<String> {
        let opened = match &self.protection {
            Protection::Plain => Some(cookie),
            Protection::Signed(keys) => keys
                .keys
                .iter()
                .find_map(|key| CookieJar::new().signed(key).verify(cookie.clone())),
            Protection::Private(keys) => keys
                .keys
                .iter()
                .find_map(|key| CookieJar::new().private(key).decrypt(cookie.clone())),
        };
        opened.map(|cookie| cookie.value().to_owned())
    }

    /// The `Set-Cookie` value carrying `value`, with `Max-Age` when given.
    pub(crate) fn set_cookie(
        &self,
        value: String,
        max_age: Option<Duration>,
    ) -> Option<HeaderValue> {
        let mut cookie = self.base(value);
        if let Some(max_age) = max_age {
            cookie.set_max_age(max_age);
        }
        let cookie = self.seal(cookie);
        HeaderValue::try_from(cookie.to_string()).ok()
    }

    /// The `Set-Cookie` value that makes the browser drop our cookie.
    pub(crate) fn removal_cookie(&self) -> Option<HeaderValue> {
        let mut cookie = self.base(String::new());
        cookie.make_removal();
        HeaderValue::try_from(cookie.to_string()).ok()
    }

    fn base(&self, value: String) -> Cookie<'static> {
        let mut cookie = Cookie::build((self.name.clone(), value))
            .path(self.path.clone())
            .secure(self.secure)
            .http_only(self.http_only)
            .same_site(self.same_site)
            .build();
        if let Some(domain) = &self.domain {
            cookie.set_domain(domain.clone());
        }
        cookie
    }

    fn seal(&self, cookie: Cookie<'static>) -> Cookie<'static> {
        let name = self.name.clone();
        let mut jar = CookieJar::new();
        match &self.protection {
            Protection::Plain => return cookie,
            Protection::Signed(keys) => jar.signed_mut(keys.newest()).add(cookie),
            Protection::Private(keys) => jar.private_mut(keys.newest()).add(cookie),
        }
        jar.get(&name)
            .cloned()
            .unwrap_or_else(|| Cookie::new(name, ""))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sent_back(set_cookie: &HeaderValue) -> HeaderValue {
        // What a browser returns: `name=value` only.
        let cookie = Cookie::parse(set_cookie.to_str().unwrap().to_owned()).unwrap();
        HeaderValue::try_from(format!("{}={}", cookie.name(), cookie.value())).unwrap()
    }

    #[test]
    fn each_protection_round_trips_and_rejects_tampering() {
        let key = Key::generate();
        for protection in [
            Protection::Plain,
            Protection::Signed(key.clone().into()),
            Protection::Private(key.into()),
        ] {
            let config = CookieConfig {
                protection: protection.clone(),
                ..CookieConfig::default()
            };
            let set = config.set_cookie("hello".into(), None).unwrap();
            let back = sent_back(&set);
            assert_eq!(
                config.read(std::slice::from_ref(&back)).as_deref(),
                Some("hello")
            );
            if !matches!(protection, Protection::Plain) {
                let tampered = back.to_str().unwrap().replace("hello", "hellp");
                let tampered = if tampered == back.to_str().unwrap() {
                    // Encrypted: flip a character of the ciphertext instead.
                    let mut bytes = tampered.into_bytes();
                    let last = bytes.len() - 2;
                    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
                    String::from_utf8(bytes).unwrap()
                } else {
                    tampered
                };
                let tampered = HeaderValue::try_from(tampered).unwrap();
                assert_eq!(config.read(&[tampered]), None, "{protection:?}");
            }
        }
    }

    #[test]
    fn older_keys_verify_newest_signs() {
        let (old, new) = (Key::generate(), Key::generate());
        let before = CookieConfig {
            protection: Protection::Signed(old.clone().into()),
            ..CookieConfig::default()
        };
        let after = CookieConfig {
            protection: Protection::Signed(Keys::new(new.clone()).with_older(old)),
            ..CookieConfig::default()
        };
        let only_new = CookieConfig {
            protection: Protection::Signed(new.into()),
            ..CookieConfig::default()
        };
        let old_cookie = sent_back(&before.set_cookie("v".into(), None).unwrap());
        assert_eq!(
            after.read(std::slice::from_ref(&old_cookie)).as_deref(),
            Some("v")
        );
        assert_eq!(only_new.read(&[old_cookie]), None);
        let new_cookie = sent_back(&after.set_cookie("v".into(), None).unwrap());
        assert_eq!(only_new.read(&[new_cookie]).as_deref(), Some("v"));
    }

    #[test]
    fn garbage_is_ignored() {
        let config = CookieConfig::default();
        let headers = [
            HeaderValue::from_static("other=1; id"),
            HeaderValue::from_bytes(b"id=\xff").unwrap(),
            HeaderValue::from_static("x=1; id=abc"),
        ];
        assert_eq!(config.read(&headers).as_deref(), Some("abc"));
        assert_eq!(config.read(&[]), None);
    }
}
