//! [`SessionManagerLayer`]: the tower layer and its settings.

use std::{borrow::Cow, fmt, sync::Arc};

use cookie::SameSite;
use session_core::{Id, Record, SessionStore};
use tower_layer::Layer;

use crate::{
    cookie::{Keys, Protection},
    session::Config,
    Expiry, SessionManager,
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
/// - after the handler answers, the record is written only when it changed,
///   when [`with_always_save`](Self::with_always_save) is on, or when an
///   [`Expiry::OnInactivity`] session needs its expiry pushed back; a new
///   session with no values is never written;
/// - a store error gives a 500 (logged with `tracing`) and no cookie change.
///
/// ```
/// use session_memory::MemoryStore;
/// use session_tower::{Expiry, SameSite, SessionManagerLayer};
/// use session_core::time::Duration;
///
/// let layer = SessionManagerLayer::new(MemoryStore::default())
///     .with_name("sid")
///     .with_same_site(SameSite::Lax)
///     .with_expiry(Expiry::OnInactivity(Duration::hours(1)));
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

    /// The cookie's name (default `id`).
    pub fn with_name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.config.cookie.name = name.into();
        self
    }

    /// The cookie's `Path` (default `/`).
    pub fn with_path(mut self, path: impl Into<Cow<'static, str>>) -> Self {
        self.config.cookie.path = path.into();
        self
    }

    /// The cookie's `Domain` (default none: this host only).
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

    /// The cookie's `SameSite` (default `Strict`).
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        self.config.cookie.same_site = same_site;
        self
    }

    /// How long sessions live (default [`Expiry::default`]). A session can
    /// override it with [`Session::set_expiry`](crate::Session::set_expiry).
    pub fn with_expiry(mut self, expiry: Expiry) -> Self {
        self.config.expiry = expiry;
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
    /// The newest key encrypts; every key decrypts (see [`Keys`]).
    pub fn with_private(mut self, keys: impl Into<Keys>) -> Self {
        self.config.cookie.protection = Protection::Private(keys.into());
        self
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
        SessionManager::new(inner, self.store.clone(), Arc::new(self.config.clone()))
    }
}
