//! The session cookie: its attributes, how its value is protected, and how
//! it is found among the request's cookies.
//!
//! Everything here works on the cookie's *value* as a string, whatever it
//! holds (a session id, or a cookie-only session's record), so the
//! protection modes and key rotation serve both.

use std::{borrow::Cow, fmt};

use base64::{
    engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD},
    Engine as _,
};
use cookie::{Cookie, CookieJar, SameSite};
use hmac::{Hmac, Mac as _};
use http::{header, HeaderMap, HeaderName, HeaderValue};
use sha2::Sha256;
use time::Duration;

use crate::metrics::Rejected;

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
    keys: Vec<KeyEntry>,
}

/// A key, and the signing key derived from it for name-bound signatures.
#[derive(Clone)]
struct KeyEntry {
    key: Key,
    /// `HMAC-SHA256(key.signing(), NAME_BOUND_CONTEXT)`: a key of its own,
    /// so no signature the `cookie` crate's signed jar makes with the same
    /// key (over a value alone) is ever a valid name-bound signature.
    name_bound: [u8; 32],
}

impl KeyEntry {
    fn new(key: Key) -> Self {
        let name_bound = hmac_sha256(key.signing(), &[NAME_BOUND_CONTEXT]).unwrap_or_default();
        Self { key, name_bound }
    }
}

impl Keys {
    /// Keys made of `newest` alone.
    pub fn new(newest: Key) -> Self {
        Self {
            keys: vec![KeyEntry::new(newest)],
        }
    }

    /// Adds an older key, still accepted but never used to sign or encrypt.
    /// Keys added first are tried first.
    pub fn with_older(mut self, older: Key) -> Self {
        self.keys.push(KeyEntry::new(older));
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

    fn newest(&self) -> &KeyEntry {
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
    /// Signed (HMAC-SHA256 over the cookie's name and value): readable, but
    /// tampering is detected, and a value signed for another cookie does not
    /// verify as this one.
    Signed(Keys),
    /// Encrypted and authenticated (AES-256-GCM, the cookie's name as
    /// associated data): neither readable nor forgeable, nor movable to
    /// another cookie name.
    Private(Keys),
}

/// Our cookie's value, opened.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) value: String,
    /// Verified or decrypted with an older key than the newest, or signed in
    /// the legacy format: the response should carry it sealed anew.
    pub(crate) reseal: bool,
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
    /// Signed cookies: also accept signatures over the value alone, as
    /// releases before name binding made them (and reseal them).
    pub(crate) legacy_signatures: bool,
    /// A request header that carries the session's id too (APIs, mobile
    /// clients), protected as the cookie is but bound to the header's name;
    /// the response carries the new or rotated id in it.
    pub(crate) header: Option<HeaderName>,
    /// Whether the cookie carries the id (`false`: the header alone).
    pub(crate) use_cookie: bool,
}

/// What a request carried that may name its session: its `Cookie` headers
/// (when the layer uses the cookie) and the values of the session header
/// (when it has one).
#[derive(Debug, Default)]
pub(crate) struct Carried {
    pub(crate) cookies: Vec<HeaderValue>,
    pub(crate) tokens: Vec<HeaderValue>,
}

impl Carried {
    /// What `headers` carry for a layer with these settings.
    pub(crate) fn from_headers(config: &CookieConfig, headers: &HeaderMap) -> Self {
        let cookies = if config.use_cookie {
            headers.get_all(header::COOKIE).iter().cloned().collect()
        } else {
            Vec::new()
        };
        let tokens = match &config.header {
            Some(name) => headers.get_all(name).iter().cloned().collect(),
            None => Vec::new(),
        };
        Self { cookies, tokens }
    }
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
            legacy_signatures: false,
            header: None,
            use_cookie: true,
        }
    }
}

/// The most cookies of our name looked at in one request: a browser sends
/// two or three at most (other paths, a stale one); a header stuffed with
/// thousands must not cost a signature check each.
pub(crate) const MAX_CANDIDATES: usize = 16;

/// The context the name-bound signing key is derived under.
const NAME_BOUND_CONTEXT: &[u8] = b"session-tower signed cookie, bound to its name, v1";

/// The length of a signature as it leads a signed value: base64 (standard,
/// padded) of 32 bytes, as the `cookie` crate's signed jar writes it.
const SIGNATURE_LEN: usize = 44;

impl CookieConfig {
    /// The verified (and decrypted) value of our cookie among the request's
    /// `Cookie` headers: `None` when it is missing, malformed, tampered with
    /// or made with a key we do not hold.
    #[cfg(test)]
    pub(crate) fn read(&self, headers: &[HeaderValue]) -> Option<Opened> {
        let carried = Carried {
            cookies: headers.to_vec(),
            tokens: Vec::new(),
        };
        self.find(&carried, |value| Ok(value.to_owned()), |_| {})
            .map(|(value, reseal)| Opened { value, reseal })
    }

    /// The first value the request carried for its session (session header
    /// values first, then our cookies) that opens (verifies, decrypts) and
    /// that `accept` takes, with whether it should be resealed; each one
    /// passed over is reported to `rejected`, with why.
    ///
    /// Several cookies may carry our name: one for another path, a stale one,
    /// one another application on the parent domain sets, one a sibling
    /// subdomain tossed in. Those that do not open, or that `accept` refuses
    /// (not an id, not a record), are skipped rather than hiding the real
    /// one. Only the first [`MAX_CANDIDATES`] are tried.
    pub(crate) fn find<T>(
        &self,
        carried: &Carried,
        mut accept: impl FnMut(&str) -> Result<T, Rejected>,
        mut rejected: impl FnMut(Rejected),
    ) -> Option<(T, bool)> {
        let header = self.header.as_ref().map(HeaderName::as_str);
        let tokens = carried.tokens.iter().filter_map(move |value| {
            let value = std::str::from_utf8(trim(value.as_bytes())).ok()?;
            Some((header?, value))
        });
        let cookies = values_named(&carried.cookies, &self.name).map(|value| (&*self.name, value));
        tokens
            .chain(cookies)
            .take(MAX_CANDIDATES)
            .find_map(|(name, value)| {
                let Some(opened) = self.open_as(name, value) else {
                    rejected(Rejected::BadSignature);
                    return None;
                };
                match accept(&opened.value) {
                    Ok(found) => Some((found, opened.reseal)),
                    Err(reason) => {
                        rejected(reason);
                        None
                    }
                }
            })
    }

    /// `value`, carried under `name` (our cookie's, or the session
    /// header's), verified or decrypted.
    fn open_as(&self, name: &str, value: &str) -> Option<Opened> {
        let (index, value, legacy) = match &self.protection {
            Protection::Plain => (0, value.to_owned(), false),
            Protection::Signed(keys) => {
                keys.keys.iter().enumerate().find_map(|(index, entry)| {
                    if let Some(value) = verify_name_bound(entry, name, value) {
                        return Some((index, value.to_owned(), false));
                    }
                    if self.legacy_signatures {
                        let cookie = Cookie::new(name.to_owned(), value.to_owned());
                        let opened = CookieJar::new().signed(&entry.key).verify(cookie)?;
                        return Some((index, opened.value().to_owned(), true));
                    }
                    None
                })?
            }
            Protection::Private(keys) => {
                keys.keys.iter().enumerate().find_map(|(index, entry)| {
                    let cookie = Cookie::new(name.to_owned(), value.to_owned());
                    let opened = CookieJar::new().private(&entry.key).decrypt(cookie)?;
                    Some((index, opened.value().to_owned(), false))
                })?
            }
        };
        Some(Opened {
            value,
            reseal: index > 0 || legacy,
        })
    }

    /// The session header's value carrying `value`, sealed as the cookie
    /// would be but bound to the header's name; `None` without a header.
    pub(crate) fn token(&self, value: String) -> Option<HeaderValue> {
        let header = self.header.as_ref()?;
        let sealed = self.seal_value(header.as_str(), value)?;
        HeaderValue::try_from(sealed).ok()
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
        let cookie = self.seal(cookie)?;
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

    fn seal(&self, mut cookie: Cookie<'static>) -> Option<Cookie<'static>> {
        let sealed = self.seal_value(&self.name, cookie.value().to_owned())?;
        cookie.set_value(sealed);
        Some(cookie)
    }

    /// `value` signed or encrypted with the newest key for the name it
    /// travels under.
    fn seal_value(&self, name: &str, value: String) -> Option<String> {
        match &self.protection {
            Protection::Plain => Some(value),
            Protection::Signed(keys) => sign_name_bound(keys.newest(), name, &value),
            Protection::Private(keys) => {
                let mut jar = CookieJar::new();
                jar.private_mut(&keys.newest().key)
                    .add(Cookie::new(name.to_owned(), value));
                jar.get(name).map(|cookie| cookie.value().to_owned())
            }
        }
    }
}

/// The values of the cookies named `name` in `Cookie` headers, in order.
///
/// Parsed per cookie at the byte level, so one cookie the header cannot
/// carry as text (`lang=中文`, set by page script or a sibling subdomain)
/// costs only itself, never the whole header: each `;`-separated pair is
/// trimmed of spaces and tabs and split at its first `=`; a value wrapped in
/// double quotes is unwrapped (RFC 6265 allows it); a value of our name that
/// is not UTF-8 is skipped (ours never are).
fn values_named<'a>(
    headers: &'a [HeaderValue],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .flat_map(|header| header.as_bytes().split(|&byte| byte == b';'))
        .filter_map(move |pair| {
            let equals = pair.iter().position(|&byte| byte == b'=')?;
            let (pair_name, value) = pair.split_at(equals);
            if trim(pair_name) != name.as_bytes() {
                return None;
            }
            // `value` starts with the `=`.
            let value = trim(value.get(1..).unwrap_or_default());
            let value = match value {
                [b'"', inner @ .., b'"'] => inner,
                value => value,
            };
            std::str::from_utf8(value).ok()
        })
}

/// `bytes` without leading and trailing spaces and tabs.
fn trim(bytes: &[u8]) -> &[u8] {
    let is_space = |byte: &u8| *byte == b' ' || *byte == b'\t';
    let start = bytes
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |end| end + 1);
    bytes.get(start..end).unwrap_or_default()
}

/// HMAC-SHA256 of the concatenation of `parts` under `key`. `None` never
/// happens (HMAC takes keys of any length); it keeps a panic out of reach.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Option<[u8; 32]> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    for part in parts {
        mac.update(part);
    }
    Some(mac.finalize().into_bytes().into())
}

/// What a name-bound signature covers: the name's length (so no name and
/// value pair reads as another), the name and the value.
fn name_bound_parts<'a>(length: &'a [u8; 8], name: &'a str, value: &'a str) -> [&'a [u8]; 3] {
    [length, name.as_bytes(), value.as_bytes()]
}

/// `value` signed for the cookie `name`: the base64 signature, then the
/// value (the layout of the `cookie` crate's signed jar, so sizes are
/// unchanged).
fn sign_name_bound(entry: &KeyEntry, name: &str, value: &str) -> Option<String> {
    let length = (name.len() as u64).to_be_bytes();
    let mac = hmac_sha256(&entry.name_bound, &name_bound_parts(&length, name, value))?;
    let mut signed = STANDARD.encode(mac);
    signed.push_str(value);
    Some(signed)
}

/// The value inside `signed` if its signature is `entry`'s for the cookie
/// `name` (compared in constant time).
fn verify_name_bound<'a>(entry: &KeyEntry, name: &str, signed: &'a str) -> Option<&'a str> {
    let (signature, value) = signed.split_at_checked(SIGNATURE_LEN)?;
    let signature = STANDARD.decode(signature).ok()?;
    let length = (name.len() as u64).to_be_bytes();
    let mut mac = Hmac::<Sha256>::new_from_slice(&entry.name_bound).ok()?;
    for part in name_bound_parts(&length, name, value) {
        mac.update(part);
    }
    mac.verify_slice(&signature).ok()?;
    Some(value)
}

/// The prefix that makes browsers keep a cookie to the host that set it:
/// they accept a cookie named `__Host-…` only with `Secure`, `Path=/` and no
/// `Domain`, so neither a sibling subdomain nor a plain-HTTP page can set or
/// shadow it.
pub const HOST_PREFIX: &str = "__Host-";

/// The prefix that makes browsers accept a cookie only with `Secure`.
pub const SECURE_PREFIX: &str = "__Secure-";

/// Whether `name` starts with `prefix`, as browsers compare it (ASCII case
/// insensitive, per RFC 6265bis).
pub(crate) fn has_prefix(name: &str, prefix: &str) -> bool {
    name.get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

/// Whether `name` is a cookie name: a non-empty RFC 6265 token.
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(is_token_byte)
}

/// Whether `path` is a `Path` attribute: `/`, then printable ASCII but `;`.
pub(crate) fn is_valid_path(path: &str) -> bool {
    path.starts_with('/') && path.bytes().all(is_attribute_byte)
}

/// Whether `domain` is a `Domain` attribute: letters, digits, `.` and `-`.
pub(crate) fn is_valid_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// Why browsers would refuse a cookie of this name with these attributes
/// (`__Host-` and `__Secure-` prefixes), if they would.
pub(crate) fn prefix_violation(
    name: &str,
    secure: bool,
    path: &str,
    domain: Option<&str>,
) -> Option<&'static str> {
    if has_prefix(name, HOST_PREFIX) {
        if !secure {
            return Some("a __Host- cookie must be Secure");
        }
        if path != "/" {
            return Some("a __Host- cookie must have Path=/");
        }
        if domain.is_some() {
            return Some("a __Host- cookie must have no Domain");
        }
    }
    if has_prefix(name, SECURE_PREFIX) && !secure {
        return Some("a __Secure- cookie must be Secure");
    }
    None
}

// RFC 6265 cookie-name token characters.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

// Characters a Path attribute may hold: printable ASCII but `;`.
fn is_attribute_byte(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b';'
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
                config
                    .read(std::slice::from_ref(&back))
                    .map(|opened| opened.value)
                    .as_deref(),
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
                assert!(config.read(&[tampered]).is_none(), "{protection:?}");
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
        let opened = after.read(std::slice::from_ref(&old_cookie)).unwrap();
        assert_eq!(opened.value, "v");
        assert!(opened.reseal, "opened with the older key: to be resealed");
        assert!(only_new.read(&[old_cookie]).is_none());
        let new_cookie = sent_back(&after.set_cookie("v".into(), None).unwrap());
        let opened = only_new.read(&[new_cookie]).unwrap();
        assert_eq!(opened.value, "v");
        assert!(!opened.reseal);
    }

    #[test]
    fn garbage_is_ignored() {
        let config = CookieConfig::default();
        let headers = [
            HeaderValue::from_static("other=1; id"),
            HeaderValue::from_bytes(b"id=\xff").unwrap(),
            HeaderValue::from_static("x=1; id=abc"),
        ];
        assert_eq!(config.read(&headers).unwrap().value, "abc");
        assert!(config.read(&[]).is_none());
    }
}
