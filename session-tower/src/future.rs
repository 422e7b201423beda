//! The response future of [`SessionManager`](crate::SessionManager).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The future [`SessionManager`](crate::SessionManager) returns: the inner
/// service's response, then the session's write and cookie.
pub struct ResponseFuture<Res, E> {
    inner: BoxFuture<Result<Res, E>>,
}

impl<Res, E> ResponseFuture<Res, E> {
    pub(crate) fn new(inner: impl Future<Output = Result<Res, E>> + Send + 'static) -> Self {
        Self {
            inner: Box::pin(inner),
        }
    }
}

impl<Res, E> Future for ResponseFuture<Res, E> {
    type Output = Result<Res, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<Res, E> fmt::Debug for ResponseFuture<Res, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
