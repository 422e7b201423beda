//! [`SessionManager`]: the service the layer wraps around yours.

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use http::{header, Request, Response};
use session_core::SessionStore;
use tower_service::Service;
use tracing::Instrument as _;

use crate::{
    cache_control,
    cookie::Carried,
    finish::Outcome,
    future::ResponseFuture,
    outage::{self, StoreUnavailable},
    session::Config,
    Error, OnStoreError, Session, SettingError,
};

/// Puts a [`Session`] in each request's extensions, and writes it and sets
/// the cookie after the inner service answers. Made by
/// [`SessionManagerLayer`](crate::SessionManagerLayer).
#[derive(Clone)]
pub struct SessionManager<S> {
    inner: S,
    store: Arc<dyn SessionStore>,
    config: Arc<Config>,
    /// Why the layer's settings are invalid, if they are (a layer used
    /// without [`SessionManagerLayer::validate`](crate::SessionManagerLayer::validate)):
    /// every request is then answered 500, never served with a broken
    /// cookie.
    invalid: Option<Arc<SettingError>>,
}

impl<S> SessionManager<S> {
    pub(crate) fn new(
        inner: S,
        store: Arc<dyn SessionStore>,
        config: Arc<Config>,
        invalid: Option<Arc<SettingError>>,
    ) -> Self {
        Self {
            inner,
            store,
            config,
            invalid,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for SessionManager<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionManager")
            .field("inner", &self.inner)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionManager<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<Response<ResBody>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        if let Some(invalid) = &self.invalid {
            tracing::error!(
                error = %invalid,
                "invalid SessionManagerLayer settings (see SessionManagerLayer::validate); answering 500"
            );
            return ResponseFuture::new(async { Ok(outage::internal_error()) });
        }
        // The clone is the one to drive next; the ready one serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let carried = Carried::from_headers(&self.config.cookie, request.headers());
        let config = self.config.clone();
        let session = Session::new(self.store.clone(), config.clone(), carried);
        request.extensions_mut().insert(session.clone());
        ResponseFuture::new(async move {
            let mut response = inner.call(request).await?;
            if !session.is_touched() {
                // The fast path: no store call, no cookie, no span.
                return Ok(response);
            }
            let span = tracing::debug_span!("session.finish");
            match session.finish().instrument(span).await {
                Ok(Outcome::Unchanged) => {}
                Ok(Outcome::Send { cookie, token }) => {
                    let headers = response.headers_mut();
                    if let Some(cookie) = cookie {
                        headers.append(header::SET_COOKIE, cookie);
                    }
                    if let (Some(token), Some(name)) = (token, &config.cookie.header) {
                        headers.insert(name.clone(), token);
                    }
                    // No shared cache may keep this visitor's session.
                    cache_control::make_private(headers);
                }
                Err(error) => return Ok(finish_failed(&config.on_store_error, &error, response)),
            }
            if let OnStoreError::ServiceUnavailable { retry_after } = config.on_store_error {
                // A handler that answered with a store outage error.
                if response.extensions().get::<StoreUnavailable>().is_some() {
                    return Ok(outage::unavailable(retry_after));
                }
            }
            Ok(response)
        })
    }
}

/// The response when writing the session after the handler failed.
fn finish_failed<B: Default>(
    policy: &OnStoreError,
    error: &Error,
    response: Response<B>,
) -> Response<B> {
    let outage = matches!(error, Error::Store(error) if error.is_backend());
    match policy {
        OnStoreError::ServiceUnavailable { retry_after } if outage => {
            tracing::error!(%error, "could not save the session, the store is unreachable; answering 503");
            outage::unavailable(*retry_after)
        }
        OnStoreError::ServeWithoutSession if outage => {
            tracing::error!(%error, "could not save the session, the store is unreachable; answering without it");
            response
        }
        _ => {
            tracing::error!(%error, "could not save the session; answering 500");
            outage::internal_error()
        }
    }
}
