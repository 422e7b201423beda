//! [`SessionManagerLayer`]: the tower layer and its settings.

use std::{borrow::Cow, fmt, sync::Arc};

use ::cookie::SameSite;
use session_core::{time::OffsetDateTime, Id, Record, SessionStore, Update};
use time::Duration;
use tower_layer::Layer;

use crate::{
    cookie::{self, Keys, Protection, HOST_PREFIX},
    session::Config,
    Expiry, OnStoreError, SessionManager,
};

/// Gives every request a lazily loaded [`Session`](crate::Session) kept in
/// `store`, identified by a cookie.
///
/// Defaults: cookie `id`, path `/`, no domain, `Secure`, `HttpOnly`,
/// `SameSite=Strict`, plain (the id is 128 random bits, unguessable), and
/// [`Expiry::default`] (a browser-session cookie; the stored record lives two
/// weeks past its last save).
///
/// What it does per request:
/// - a handler that never touches the session costs no store call and leaves
///   the response alone;
/// - the first access loads the record; a missing, malformed, tampered,
///   unknown or expired cookie gives a fresh empty session;
/// - after the handler answers, a new session is created if it holds
///   something; a stored one is written back with the store's
///   compare-and-swap `update` only when it changed (or with
///   [`with_always_save`](Self::with_always_save)), merging over concurrent
///   writes and writing nothing if another request ended it; an unchanged
///   [`Expiry::OnInactivity`] session has its expiry moved with a `touch`,
///   at most once per [refresh interval](Self::with_refresh_interval) (see
///   the crate documentation, "Concurrent requests");
/// - a store error gives a 500 (logged with `tracing`) and no cookie change,
///   unless [`with_on_store_error`](Self::with_on_store_error) says
///   otherwise;
/// - a response that sets or removes the cookie is made
///   `Cache-Control: private`, so no shared cache hands it to someone else.
///
/// The `with_*` settings return the layer for chaining and are checked all
/// together by [`validate`](Self::validate), which returns the first invalid
/// one as a [`SettingError`]: call it at start-up, before serving. A layer
/// with invalid settings that was not validated answers every request with a
/// 500 (logged) rather than serve with a cookie browsers would drop or a
/// duration that cannot be a date; it never panics.
///
/// ```
/// use session_memory::MemoryStore;
/// use session_tower::{Expiry, SameSite, SessionManagerLayer};
/// use session_core::time::Duration;
///
/// # fn main() -> Result<(), session_tower::SettingError> {
/// let layer = SessionManagerLayer::new(MemoryStore::default())
///     .with_name("sid")
///     .with_same_site(SameSite::Lax)
///     .with_expiry(Expiry::OnInactivity(Duration::hours(1)))
///     .validate()?;
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Clone)]
pub struct SessionManagerLayer {
    store: Arc<dyn SessionStore>,
    config: Config,
}

impl SessionManagerLayer {
    /// A layer keeping sessions in `store`, with the default settings.
    pub fn new(store: impl SessionStore) -> Self {
        Self::from_arc(Arc::new(store))
    }

    /// A layer keeping each whole session (values, expiry date and an id) in
    /// its cookie, encrypted and authenticated with AES-256-GCM by the
    /// `cookie` crate's private jar: no store, no server state.
    ///
    /// The newest of `keys` encrypts, all of them decrypt, so keys rotate as
    /// with [`with_private`](Self::with_private). The expiry date travels
    /// inside the encrypted record and is checked on every read: a cookie
    /// replayed after it gives a fresh session, whatever the browser did with
    /// `Max-Age`. A change that would make the `Set-Cookie` header longer
    /// than [`COOKIE_SIZE_LIMIT`](crate::COOKIE_SIZE_LIMIT) is refused with
    /// [`Error::CookieTooLarge`](crate::Error::CookieTooLarge) by the
    /// [`Session`](crate::Session) method that makes it. See the crate
    /// documentation for the size budget and what cookie-only sessions
    /// cannot do (revocation).
    ///
    /// Every other setting works as with a store; [`with_private`] replaces
    /// the keys, and [`with_signed`](Self::with_signed) is ignored (with a
    /// warning): the record is always encrypted.
    ///
    /// [`with_private`]: Self::with_private
    ///
    /// ```
    /// use session_tower::{Keys, SessionManagerLayer};
    ///
    /// let keys = Keys::from_hex(&"0f".repeat(64)).expect("64 bytes of hex");
    /// let layer = SessionManagerLayer::cookie_only(keys).with_name("session");
    /// # let _ = layer;
    /// ```
    pub fn cookie_only(keys: impl Into<Keys>) -> Self {
        let mut layer = Self::from_arc(Arc::new(CookieOnly));
        layer.config.cookie_only = true;
        layer.config.cookie.protection = Protection::Private(keys.into());
        layer
    }

    /// Whether this layer keeps sessions in the cookie alone
    /// ([`cookie_only`](Self::cookie_only)).
    pub fn is_cookie_only(&self) -> bool {
        self.config.cookie_only
    }

    /// A layer keeping sessions in a store already behind an `Arc`.
    pub fn from_arc(store: Arc<dyn SessionStore>) -> Self {
        Self {
            store,
            config: Config::default(),
        }
    }

    /// The cookie's name (default `id`): an RFC 6265 token (letters, digits
    /// and ``!#$%&'*+-.^_`|~``), checked by [`validate`](Self::validate).
    ///
    /// A name starting with `__Host-` ([`HOST_PREFIX`](crate::HOST_PREFIX))
    /// makes browsers accept the cookie only when it is `Secure`, has
    /// `Path=/` and no `Domain`, so no sibling subdomain and no plain-HTTP
    /// page can set one that shadows it: see
    /// [`with_host_prefix`](Self::with_host_prefix). `validate` refuses a
    /// `__Host-` or `__Secure-` name whose attributes browsers would reject.
    pub fn with_name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.config.cookie.name = name.into();
        self
    }

    /// Makes the cookie a `__Host-` cookie, the strongest a browser offers:
    /// prefixes the name with `__Host-` (unless it has it already), and sets
    /// `Secure`, `Path=/` and no `Domain`, which browsers require of such a
    /// cookie. Browsers then refuse a cookie of that name set by any other
    /// host (a sibling subdomain, the parent domain) or over plain HTTP, so
    /// nobody can toss in a cookie that hides or fixes the session.
    ///
    /// Call it after [`with_name`](Self::with_name); a later `with_path`,
    /// `with_domain` or `with_secure(false)` breaks the rules and
    /// [`validate`](Self::validate) refuses it. Over plain HTTP (local
    /// development) browsers drop `Secure` cookies, `__Host-` ones included.
    ///
    /// Changing the name logs everybody out once (their cookie has the old
    /// name).
    ///
    /// ```
    /// use session_memory::MemoryStore;
    /// use session_tower::SessionManagerLayer;
    ///
    /// # fn main() -> Result<(), session_tower::SettingError> {
    /// let layer = SessionManagerLayer::new(MemoryStore::default())
    ///     .with_name("sid")
    ///     .with_host_prefix() // the cookie is `__Host-sid`
    ///     .validate()?;
    /// # let _ = layer; Ok(()) }
    /// ```
    pub fn with_host_prefix(mut self) -> Self {
        let cookie = &mut self.config.cookie;
        if !cookie::has_prefix(&cookie.name, HOST_PREFIX) {
            cookie.name = Cow::Owned(format!("{HOST_PREFIX}{}", cookie.name));
        }
        cookie.secure = true;
        cookie.path = Cow::Borrowed("/");
        cookie.domain = None;
        self
    }

    /// The cookie's `Path` (default `/`): starts with `/`, printable ASCII
    /// but `;` (checked by [`validate`](Self::validate)).
    pub fn with_path(mut self, path: impl Into<Cow<'static, str>>) -> Self {
        self.config.cookie.path = path.into();
        self
    }

    /// The cookie's `Domain` (default none: this host only): letters, digits,
    /// `.` and `-` (checked by [`validate`](Self::validate)).
    pub fn with_domain(mut self, domain: impl Into<Cow<'static, str>>) -> Self {
        self.config.cookie.domain = Some(domain.into());
        self
    }

    /// Whether the cookie is `Secure`, sent over HTTPS only (default `true`).
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.config.cookie.secure = secure;
        self
    }

    /// Whether the cookie is `HttpOnly`, hidden from scripts (default `true`).
    pub fn with_http_only(mut self, http_only: bool) -> Self {
        self.config.cookie.http_only = http_only;
        self
    }

    /// The cookie's `SameSite` (default `Strict`). `None` needs `Secure`
    /// (browsers drop the cookie otherwise; [`validate`](Self::validate)
    /// refuses it).
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        self.config.cookie.same_site = same_site;
        self
    }

    /// How long sessions live (default [`Expiry::default`]). A session can
    /// override it with [`Session::set_expiry`](crate::Session::set_expiry).
    ///
    /// Durations must be positive and small enough to be a date from now
    /// ([`Expiry::is_valid`]); [`validate`](Self::validate) refuses others.
    pub fn with_expiry(mut self, expiry: Expiry) -> Self {
        self.config.expiry = expiry;
        self
    }

    /// Sliding sessions ([`Expiry::OnInactivity`]): how far the expiry date
    /// must move before an unchanged session is written (a `touch` of its
    /// expiry date alone). Default: a tenth of the inactivity period, at
    /// most a minute, so a session read by many requests costs at most one
    /// write a minute and ends at most that much earlier than the exact
    /// inactivity period. `Duration::ZERO` touches on every request; a
    /// negative interval, or one too large to be a date from now, is refused
    /// by [`validate`](Self::validate).
    pub fn with_refresh_interval(mut self, interval: Duration) -> Self {
        self.config.refresh_interval = Some(interval);
        self
    }

    /// Ends sessions this long after they were created (at login, with
    /// [`Session::cycle_id`](crate::Session::cycle_id)), however active they
    /// are: an absolute timeout on top of the expiry policy, which no
    /// activity extends (default: none). Applies to sessions on the layer's
    /// policy; one given its own with
    /// [`Session::set_expiry`](crate::Session::set_expiry) (remember-me)
    /// follows that alone.
    ///
    /// A session stored before this was set counts from its next write. The
    /// timeout must be positive and small enough to be a date from now
    /// ([`validate`](Self::validate) refuses others).
    pub fn with_absolute_timeout(mut self, timeout: Duration) -> Self {
        self.config.absolute_timeout = Some(timeout);
        self
    }

    /// Writes every stored session a handler touched, changed or not
    /// (default `false`). New sessions with no values are still not written.
    pub fn with_always_save(mut self, always_save: bool) -> Self {
        self.config.always_save = always_save;
        self
    }

    /// Signs the cookie (HMAC): visitors can read the id but not forge one.
    /// The newest key signs; every key verifies (see [`Keys`]).
    ///
    /// Ignored, with a warning, on a [cookie-only](Self::cookie_only) layer,
    /// whose cookie is always encrypted.
    pub fn with_signed(mut self, keys: impl Into<Keys>) -> Self {
        if self.config.cookie_only {
            tracing::warn!(
                "with_signed ignored: a cookie-only session is always encrypted; use with_private to change its keys"
            );
            return self;
        }
        self.config.cookie.protection = Protection::Signed(keys.into());
        self
    }

    /// Encrypts the cookie (AES-GCM): visitors can neither read nor forge it.
    /// The newest key encrypts; every key decrypts (see [`Keys`]). The
    /// cookie's name is authenticated with it, so a value encrypted for
    /// another cookie under the same key does not open as this one.
    pub fn with_private(mut self, keys: impl Into<Keys>) -> Self {
        self.config.cookie.protection = Protection::Private(keys.into());
        self
    }

    /// Signed cookies ([`with_signed`](Self::with_signed)): also accept the
    /// signatures earlier builds of this crate made, over the value alone
    /// (the `cookie` crate's signed jar), and re-sign each such cookie on its
    /// response (default `false`).
    ///
    /// Signatures now cover the cookie's name as well as its value, so a
    /// value signed with the same key for another cookie (by your
    /// application, with the `cookie` crate's signed jar) is not a session
    /// cookie. Old-style signatures lack that binding: after upgrading, turn
    /// this on for one session lifetime so signed-in visitors stay signed in
    /// and move to the new signature, then turn it off. While it is on, the
    /// old weakness remains. Without it, every old signed cookie gives a
    /// fresh session (everybody is logged out once).
    pub fn with_legacy_signatures(mut self, accept: bool) -> Self {
        self.config.cookie.legacy_signatures = accept;
        self
    }

    /// What a request gets when the store cannot be reached (default
    /// [`OnStoreError::InternalServerError`], a bare 500): a 503 with
    /// `Retry-After`, or the request served without its session. See
    /// [`OnStoreError`].
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use session_memory::MemoryStore;
    /// use session_tower::{OnStoreError, SessionManagerLayer};
    ///
    /// let layer = SessionManagerLayer::new(MemoryStore::default())
    ///     .with_on_store_error(OnStoreError::service_unavailable(Duration::from_secs(30)));
    /// # let _ = layer;
    /// ```
    pub fn with_on_store_error(mut self, policy: OnStoreError) -> Self {
        self.config.on_store_error = policy;
        self
    }

    /// Reads the session's id from the request header `name` too, for API
    /// and mobile clients that keep a token rather than cookies, and returns
    /// the new or rotated id in the same header of the response.
    ///
    /// The header's value is protected as the cookie's is
    /// ([`with_signed`](Self::with_signed), [`with_private`](Self::with_private),
    /// plain by default), the signature or encryption bound to the header's
    /// name, so a signed cookie value does not verify as a header token, nor
    /// the other way round. A request carrying both is read from the header
    /// first. The response carries the header whenever the cookie would be
    /// set (a new session, [`cycle_id`](crate::Session::cycle_id), an expiry
    /// that moved, a key rotation), and carries it empty when the session
    /// ends ([`flush`](crate::Session::flush)) for a request that sent it:
    /// the client then drops its token. As with the cookie, a request whose
    /// session another request ended meanwhile gets no header at all.
    ///
    /// With [`with_cookie(false)`](Self::with_cookie) the header is the only
    /// way. Not for [cookie-only](Self::cookie_only) layers
    /// ([`validate`](Self::validate) refuses it), nor the `Cookie` and
    /// `Set-Cookie` headers.
    ///
    /// ```
    /// use session_memory::MemoryStore;
    /// use session_tower::SessionManagerLayer;
    ///
    /// # fn main() -> Result<(), session_tower::SettingError> {
    /// // Browsers use the cookie, the mobile app sends `x-session: <token>`.
    /// let layer = SessionManagerLayer::new(MemoryStore::default())
    ///     .with_header(http::HeaderName::from_static("x-session"))
    ///     .validate()?;
    /// # let _ = layer; Ok(()) }
    /// ```
    pub fn with_header(mut self, name: http::HeaderName) -> Self {
        self.config.cookie.header = Some(name);
        self
    }

    /// Whether the session's id travels in a cookie (default `true`). Turn
    /// it off for an API that uses [`with_header`](Self::with_header) alone:
    /// no `Cookie` header is read and no `Set-Cookie` is sent.
    pub fn with_cookie(mut self, use_cookie: bool) -> Self {
        self.config.cookie.use_cookie = use_cookie;
        self
    }

    /// Checks every setting and returns the layer, or the first invalid
    /// setting: a cookie name, path or domain a browser would not take,
    /// `__Host-`/`__Secure-` rules, `SameSite=None` without `Secure`, an
    /// expiry policy, refresh interval or absolute timeout that is not
    /// positive or too large to be a date from now.
    ///
    /// Call it once at start-up, so a mistake stops the server with a clear
    /// message instead of showing up in production; a layer with invalid
    /// settings that is used anyway answers every request with a 500.
    pub fn validate(self) -> Result<Self, SettingError> {
        match self.config.check() {
            Some(error) => Err(error),
            None => Ok(self),
        }
    }
}

/// A [`SessionManagerLayer`] setting that cannot work, from
/// [`SessionManagerLayer::validate`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    /// The cookie name is not an RFC 6265 token.
    #[error("invalid session cookie name {0:?}: expected letters, digits and !#$%&'*+-.^_`|~")]
    Name(String),
    /// The cookie path does not start with `/` or holds a character a
    /// `Path` attribute cannot.
    #[error("invalid session cookie path {0:?}: expected a path starting with / (printable ASCII, no ;)")]
    Path(String),
    /// The cookie domain holds a character a domain name cannot.
    #[error("invalid session cookie domain {0:?}: expected letters, digits, . and -")]
    Domain(String),
    /// The cookie's name has a prefix (`__Host-`, `__Secure-`) whose rules
    /// its attributes break: browsers would drop it.
    #[error("session cookie {name:?}: {rule}")]
    Prefix {
        /// The cookie's name.
        name: String,
        /// The rule broken.
        rule: &'static str,
    },
    /// `SameSite=None` without `Secure`: browsers drop the cookie.
    #[error("a SameSite=None session cookie must be Secure")]
    SameSiteNone,
    /// The expiry policy's duration is not positive or too large for a date.
    #[error(
        "invalid session expiry policy {0:?}: durations must be positive and end before year 9999"
    )]
    Expiry(Expiry),
    /// The refresh interval is negative or too large for a date.
    #[error(
        "invalid session refresh interval {0}: expected zero or more, ending before year 9999"
    )]
    RefreshInterval(Duration),
    /// The absolute timeout is not positive or too large for a date.
    #[error("invalid session absolute timeout {0}: expected a positive duration ending before year 9999")]
    AbsoluteTimeout(Duration),
    /// The session header setting cannot work: the `Cookie` or `Set-Cookie`
    /// header, a cookie-only layer, or neither cookie nor header.
    #[error("invalid session header setting: {0}")]
    Header(&'static str),
}

impl Config {
    /// The first setting that cannot work, if any.
    pub(crate) fn check(&self) -> Option<SettingError> {
        let cookie = &self.cookie;
        if !cookie::is_valid_name(&cookie.name) {
            return Some(SettingError::Name(cookie.name.to_string()));
        }
        if !cookie::is_valid_path(&cookie.path) {
            return Some(SettingError::Path(cookie.path.to_string()));
        }
        if let Some(domain) = cookie
            .domain
            .as_deref()
            .filter(|d| !cookie::is_valid_domain(d))
        {
            return Some(SettingError::Domain(domain.to_owned()));
        }
        if let Some(rule) = cookie::prefix_violation(
            &cookie.name,
            cookie.secure,
            &cookie.path,
            cookie.domain.as_deref(),
        ) {
            return Some(SettingError::Prefix {
                name: cookie.name.to_string(),
                rule,
            });
        }
        if cookie.same_site == SameSite::None && !cookie.secure {
            return Some(SettingError::SameSiteNone);
        }
        if let Some(rule) = self.header_violation() {
            return Some(SettingError::Header(rule));
        }
        if !self.expiry.is_valid() {
            return Some(SettingError::Expiry(self.expiry));
        }
        let fits = crate::expiry::fits_from_now;
        if let Some(interval) = self.refresh_interval {
            if interval.is_negative() || !fits(interval) {
                return Some(SettingError::RefreshInterval(interval));
            }
        }
        if let Some(timeout) = self.absolute_timeout {
            if !timeout.is_positive() || !fits(timeout) {
                return Some(SettingError::AbsoluteTimeout(timeout));
            }
        }
        None
    }
}

impl Config {
    /// Why the session header settings cannot work, if they cannot.
    fn header_violation(&self) -> Option<&'static str> {
        match &self.cookie.header {
            None if !self.cookie.use_cookie => {
                Some("with_cookie(false) needs a session header (with_header)")
            }
            Some(_) if self.cookie_only => {
                Some("a cookie-only layer keeps the session in the cookie, not a header")
            }
            Some(name) if name == http::header::COOKIE || name == http::header::SET_COOKIE => {
                Some("the session header cannot be Cookie or Set-Cookie")
            }
            _ => None,
        }
    }
}

/// The store of a [cookie-only](SessionManagerLayer::cookie_only) layer: a
/// placeholder the session never calls, since the record lives in the cookie.
/// Should a call happen anyway, it fails loudly rather than losing data.
#[derive(Debug, Clone, Copy)]
struct CookieOnly;

#[session_core::async_trait]
impl SessionStore for CookieOnly {
    async fn create(&self, _: &mut Record) -> session_core::Result<()> {
        Err(no_store())
    }
    async fn save(&self, _: &Record) -> session_core::Result<()> {
        Err(no_store())
    }
    async fn load(&self, _: &Id) -> session_core::Result<Option<Record>> {
        Err(no_store())
    }
    async fn delete(&self, _: &Id) -> session_core::Result<()> {
        Err(no_store())
    }
    async fn update(&self, _: &mut Record) -> session_core::Result<Update> {
        Err(no_store())
    }
    async fn touch(&self, _: &Id, _: OffsetDateTime) -> session_core::Result<bool> {
        Err(no_store())
    }
}

fn no_store() -> session_core::Error {
    session_core::Error::backend("a cookie-only session layer has no store")
}

impl fmt::Debug for SessionManagerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionManagerLayer")
            .field("store", &self.store)
            .field("config", &self.config)
            .finish()
    }
}

impl<S> Layer<S> for SessionManagerLayer {
    type Service = SessionManager<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let invalid = self.config.check().map(|error| {
            tracing::error!(%error, "invalid SessionManagerLayer settings: every request will get a 500; call SessionManagerLayer::validate at start-up");
            Arc::new(error)
        });
        SessionManager::new(
            inner,
            self.store.clone(),
            Arc::new(self.config.clone()),
            invalid,
        )
    }
}
