//! A small pool of SQLite connections driven from async code without
//! blocking it.
//!
//! A task first waits, asynchronously, for a permit of the pool's semaphore
//! (one permit per connection), so waiting for a busy connection never ties
//! up a thread. It then runs its closure on tokio's blocking pool with a
//! connection of its own; the connection goes back to the pool when the
//! closure returns, panics, or its caller's future is dropped (the statement
//! still runs to completion: SQLite work is never abandoned half-way).

use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::Connection;
use tokio::sync::Semaphore;

use crate::RusqliteStoreError;

/// Connections of one role (the writer, or the readers).
#[derive(Debug)]
pub(crate) struct Connections {
    permits: Arc<Semaphore>,
    idle: Arc<Mutex<Vec<Connection>>>,
    size: u32,
}

impl Connections {
    pub(crate) fn new(connections: Vec<Connection>) -> Self {
        let size = u32::try_from(connections.len()).unwrap_or(u32::MAX);
        Self {
            permits: Arc::new(Semaphore::new(size as usize)),
            idle: Arc::new(Mutex::new(connections)),
            size,
        }
    }

    /// Runs `f` with a connection of this pool on tokio's blocking pool.
    pub(crate) async fn run<T, F>(&self, f: F) -> session_core::Result<T>
    where
        F: FnOnce(&mut Connection) -> session_core::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| RusqliteStoreError::Closed)?;
        let idle = Arc::clone(&self.idle);
        // The operation's span (`store_span`) covers the blocking part too.
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            // The permit guarantees an idle connection unless the pool was
            // closed in between.
            let mut checkout = Checkout::take(&idle).ok_or(RusqliteStoreError::Closed)?;
            let connection = checkout
                .connection
                .as_mut()
                .ok_or(RusqliteStoreError::Closed)?;
            let result = f(connection);
            drop(checkout);
            drop(permit);
            result
        })
        .await
        .map_err(RusqliteStoreError::Task)?
    }

    /// Takes the idle connections out without waiting for the others.
    fn take_idle(&self) -> Vec<Connection> {
        std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Waits for every connection to come back, stops handing them out and
    /// returns them.
    pub(crate) async fn close(&self) -> Vec<Connection> {
        match self.permits.acquire_many(self.size).await {
            Ok(all) => {
                self.permits.close();
                all.forget();
                self.take_idle()
            }
            // Closed already.
            Err(_) => Vec::new(),
        }
    }
}

/// A connection taken from the idle list, put back on drop (also when the
/// closure using it panics: rusqlite rolls back an unfinished transaction as
/// it unwinds, so the connection is safe to reuse).
struct Checkout<'a> {
    idle: &'a Mutex<Vec<Connection>>,
    connection: Option<Connection>,
}

impl<'a> Checkout<'a> {
    fn take(idle: &'a Mutex<Vec<Connection>>) -> Option<Self> {
        let connection = idle.lock().unwrap_or_else(PoisonError::into_inner).pop()?;
        Some(Self {
            idle,
            connection: Some(connection),
        })
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(connection);
        }
    }
}

/// The store's connections: one writer, and readers when the database is a
/// file (an in-memory database has only the connection that opened it).
#[derive(Debug)]
pub(crate) struct Pool {
    writer: Connections,
    readers: Option<Connections>,
}

impl Pool {
    pub(crate) fn new(writer: Connection, readers: Vec<Connection>) -> Self {
        Self {
            writer: Connections::new(vec![writer]),
            readers: (!readers.is_empty()).then(|| Connections::new(readers)),
        }
    }

    /// Runs `f` on the writer connection.
    pub(crate) async fn write<T, F>(&self, f: F) -> session_core::Result<T>
    where
        F: FnOnce(&mut Connection) -> session_core::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.writer.run(f).await
    }

    /// Runs `f` on a reader connection (the writer when there are none).
    pub(crate) async fn read<T, F>(&self, f: F) -> session_core::Result<T>
    where
        F: FnOnce(&mut Connection) -> session_core::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.readers.as_ref().unwrap_or(&self.writer).run(f).await
    }

    /// How many reader connections there are.
    pub(crate) fn readers(&self) -> u32 {
        self.readers.as_ref().map_or(0, |readers| readers.size)
    }

    /// Closes every connection once it is back in the pool.
    pub(crate) async fn close(&self) {
        let mut connections = match &self.readers {
            Some(readers) => readers.close().await,
            None => Vec::new(),
        };
        // The writer last: closing the last connection of a WAL database
        // checkpoints it and removes the `-wal` file.
        connections.extend(self.writer.close().await);
        let closed = tokio::task::spawn_blocking(move || {
            for connection in connections {
                if let Err((_, error)) = connection.close() {
                    tracing::warn!(%error, "closing a SQLite connection failed");
                }
            }
        })
        .await;
        if let Err(error) = closed {
            tracing::warn!(%error, "closing SQLite connections failed");
        }
    }
}

impl Drop for Pool {
    // Closing a connection can checkpoint the WAL, which is file I/O: when
    // the last store is dropped on an async worker, close them on the
    // blocking pool instead. (Connections still in use close on their
    // blocking thread as their task finishes.)
    fn drop(&mut self) {
        let mut connections = self.writer.take_idle();
        if let Some(readers) = &self.readers {
            connections.extend(readers.take_idle());
        }
        if connections.is_empty() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            drop(runtime.spawn_blocking(move || drop(connections)));
        }
    }
}
