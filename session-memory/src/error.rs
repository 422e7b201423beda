//! What `MemoryStore` refuses.

use session_core::Error;

/// The store holds as many sessions as its bound allows: a new session was
/// refused and nothing was written.
///
/// It reaches the caller as the source of an [`Error::Backend`]; find it
/// with [`StoreFull::find`]. Sessions the store holds are still loaded,
/// updated, touched and deleted as usual; new ones are taken again once
/// some end or expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the memory session store is full ({max_sessions} sessions): new session refused")]
pub struct StoreFull {
    max_sessions: usize,
}

impl StoreFull {
    pub(crate) fn new(max_sessions: usize) -> Self {
        Self { max_sessions }
    }

    /// The bound the store is at.
    pub fn max_sessions(&self) -> usize {
        self.max_sessions
    }

    /// The `StoreFull` behind `error`, when a full [`MemoryStore`](crate::MemoryStore)
    /// is why it failed.
    ///
    /// ```
    /// use session_core::{time::{Duration, OffsetDateTime}, Record, SessionStore};
    /// use session_memory::{MemoryStore, StoreFull};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStore::with_max_sessions(1);
    /// let expiry = OffsetDateTime::now_utc() + Duration::hours(1);
    /// store.create(&mut Record::new(expiry)).await?;
    /// let error = store.create(&mut Record::new(expiry)).await.unwrap_err();
    /// assert!(error.is_backend());
    /// assert_eq!(StoreFull::find(&error).map(StoreFull::max_sessions), Some(1));
    /// # Ok::<_, session_core::Error>(()) }).unwrap();
    /// ```
    pub fn find(error: &Error) -> Option<&StoreFull> {
        match error {
            Error::Backend(source) => source.downcast_ref(),
            _ => None,
        }
    }
}
