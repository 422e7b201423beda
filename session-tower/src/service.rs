//! [`SessionManager`]: the service the layer wraps around yours.

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use http::{header, Request, Response, StatusCode};
use session_core::SessionStore;
use tower_service::Service;
use tracing::Instrument as _;

use crate::{
    future::ResponseFuture,
    session::{Config, Outcome},
    Session,
};

/// Puts a [`Session`] in each request's extensions, and writes it and sets
/// the cookie after the inner service answers. Made by
/// [`SessionManagerLayer`](crate::SessionManagerLayer).
#[derive(Clone)]
pub struct SessionManager<S> {
    inner: S,
    store: Arc<dyn SessionStore>,
    config: Arc<Config>,
}

impl<S> SessionManager<S> {
    pub(crate) fn new(inner: S, store: Arc<dyn SessionStore>, config: Arc<Config>) -> Self {
        Self {
            inner,
            store,
            config,
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
        // The clone is the one to drive next; the ready one serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let cookie_headers = request
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .cloned()
            .collect();
        let session = Session::new(self.store.clone(), self.config.clone(), cookie_headers);
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
                Ok(Outcome::SetCookie(cookie)) => {
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                }
                Err(error) => {
                    tracing::error!(%error, "could not save the session; answering 500");
                    let mut failed = Response::new(ResBody::default());
                    *failed.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                    return Ok(failed);
                }
            }
            Ok(response)
        })
    }
}
