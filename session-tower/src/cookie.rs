//! The session cookie: its attributes, and how its value is protected.
//!
//! Everything here works on the cookie's *value* as a string, whatever it
//! holds (today a session id; a cookie-only store would put the encrypted
//! record there), so the protection modes and key rotation serve both.

use std::{borrow::Cow, fmt};

use base64::{
    engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD},
    Engine as _,
};
use cookie::{Cookie, CookieJar, SameSite};
use http::HeaderValue;
use time::Duration;

pub use cookie::Key;

/// The fewest bytes of key material a [`Key`] is made from: 32 to sign and
/// 32 to encrypt (AES-256-GCM), as the `cookie` crate derives them.
pub const MIN_KEY_BYTES: usize = 64;

/// Why key material cannot make a [`Key`]: refused at start-up, so a weak or
/// mistyped secret never reaches a cookie.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is neither hex nor base64 (standard or URL-safe, padded or
    /// not).
    #[error("a cookie key must be hex or base64")]
    Encoding,
    /// Too few bytes for the cipher.
    #[error(
        "a cookie key must decode to at least {min} bytes (it has {len}): \
         32 to sign and 32 to encrypt; generate one with `openssl rand -hex 64`"
    )]
    TooShort {
        /// How many bytes the key has.
        len: usize,
        /// How many it needs ([`MIN_KEY_BYTES`]).
        min: usize,
    },
}

/// A [`Key`] from raw bytes, at least [`MIN_KEY_BYTES`] long.
///
/// Unlike `Key::from`, which panics on short input, this returns an error.
pub fn key_from_bytes(bytes: &[u8]) -> Result<Key, KeyError> {
    if bytes.len() < MIN_KEY_BYTES {
        return Err(KeyError::TooShort {
            len: bytes.len(),
            min: MIN_KEY_BYTES,
        });
    }
    Key::try_from(bytes).map_err(|_| KeyError::TooShort {
        len: bytes.len(),
        min: MIN_KEY_BYTES,
    })
}

/// A [`Key`] from hex text (either case) of at least [`MIN_KEY_BYTES`] bytes.
pub fn key_from_hex(text: &str) -> Result<Key, KeyError> {
    key_from_bytes(&decode_hex(text.trim()).ok_or(KeyError::Encoding)?)
}

/// A [`Key`] from base64 text (standard or URL-safe alphabet, padded or not)
/// of at least [`MIN_KEY_BYTES`] bytes.
pub fn key_from_base64(text: &str) -> Result<Key, KeyError> {
    let text = text.trim();
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or(KeyError::Encoding)?;
    key_from_bytes(&bytes)
}

/// A [`Key`] from hex or, failing that, base64 text: what the `SESSION_*_KEYS`
/// variables hold.
pub fn parse_key(text: &str) -> Result<Key, KeyError> {
    key_from_hex(text).or_else(|hex_error| match hex_error {
        KeyError::Encoding => key_from_base64(text),
        short => Err(short),
    })
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

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

impl Keys {
    /// Keys made of one key from raw bytes (see [`key_from_bytes`]): an error,
    /// not a panic, when there are fewer than [`MIN_KEY_BYTES`].
    pub fn from_bytes(newest: &[u8]) -> Result<Self, KeyError> {
        key_from_bytes(newest).map(Self::new)
    }

    /// Keys made of one key in hex (see [`key_from_hex`]).
    pub fn from_hex(newest: &str) -> Result<Self, KeyError> {
        key_from_hex(newest).map(Self::new)
    }

    /// Keys made of one key in base64 (see [`key_from_base64`]).
    pub fn from_base64(newest: &str) -> Result<Self, KeyError> {
        key_from_base64(newest).map(Self::new)
    }

    /// Keys from a comma-separated list, newest first, each hex or base64:
    /// the format of `SESSION_ENCRYPTION_KEYS`. The error says which key
    /// (counting from 1) is wrong.
    pub fn parse_list(list: &str) -> Result<Self, (usize, KeyError)> {
        let mut keys: Option<Keys> = None;
        for (index, part) in list.split(',').map(str::trim).enumerate() {
            let key = parse_key(part).map_err(|error| (index + 1, error))?;
            keys = Some(match keys {
                None => Keys::new(key),
                Some(keys) => keys.with_older(key),
            });
        }
        keys.ok_or((1, KeyError::Encoding))
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
