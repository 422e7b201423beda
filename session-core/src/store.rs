//! The store traits.

use std::{fmt::Debug, sync::Arc};

use async_trait::async_trait;

use crate::{Id, Record, Result};

/// Where sessions live.
///
/// Every implementation meets the same semantics, checked by the
/// `session-testkit` conformance suite:
///
/// - [`create`](SessionStore::create) never overwrites: when the record's id
///   already exists it gives the record a fresh [`Id`] and tries again, with
///   an atomic insert-if-absent in the backend.
/// - [`save`](SessionStore::save) is an upsert of the whole record, expiry
///   date included.
/// - [`load`](SessionStore::load) returns `None` for a missing id and for a
///   record whose expiry date is not in the future, deleted yet or not; what
///   it returns equals what was saved (timestamps to the microsecond).
/// - [`delete`](SessionStore::delete) of a missing id is `Ok(())`.
/// - Data that cannot be decoded is [`Error::Decode`](crate::Error::Decode), an
///   unreachable backend is [`Error::Backend`](crate::Error::Backend); neither
///   panics nor touches other sessions.
///
/// The trait is object safe: `Arc<dyn SessionStore>` is a store, and so are
/// `Arc<S>` and `Box<S>` for any store `S`.
#[async_trait]
pub trait SessionStore: Debug + Send + Sync + 'static {
    /// Stores a new record. If its id is taken, assigns a fresh one to
    /// `record` and retries, so the caller sees the id that was stored.
    async fn create(&self, record: &mut Record) -> Result<()>;

    /// Inserts or replaces the whole record.
    async fn save(&self, record: &Record) -> Result<()>;

    /// The active record with this id, if there is one.
    async fn load(&self, session_id: &Id) -> Result<Option<Record>>;

    /// Removes the record with this id; a missing id is not an error.
    async fn delete(&self, session_id: &Id) -> Result<()>;
}

/// A store that can remove its expired records on request.
///
/// Run it periodically with
/// [`ExpiredDeletionTask`](crate::deletion::ExpiredDeletionTask) (feature
/// `deletion-task`).
#[async_trait]
pub trait ExpiredDeletion: SessionStore {
    /// Removes every record whose expiry date is not in the future and
    /// returns how many were removed. A backend that expires records by itself
    /// (Redis TTL, moka) may return 0.
    async fn delete_expired(&self) -> Result<u64>;
}

macro_rules! forward_store {
    ($($ptr:ident),*) => {$(
        #[async_trait]
        impl<S: SessionStore + ?Sized> SessionStore for $ptr<S> {
            async fn create(&self, record: &mut Record) -> Result<()> {
                (**self).create(record).await
            }

            async fn save(&self, record: &Record) -> Result<()> {
                (**self).save(record).await
            }

            async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
                (**self).load(session_id).await
            }

            async fn delete(&self, session_id: &Id) -> Result<()> {
                (**self).delete(session_id).await
            }
        }

        #[async_trait]
        impl<S: ExpiredDeletion + ?Sized> ExpiredDeletion for $ptr<S> {
            async fn delete_expired(&self) -> Result<u64> {
                (**self).delete_expired().await
            }
        }
    )*};
}

forward_store!(Arc, Box);
