//! The store traits.

use std::{fmt::Debug, sync::Arc};

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::{Error, Id, Record, Result};

/// What [`SessionStore::update`] did.
#[non_exhaustive]
#[must_use = "an update may not have been written: check for `Conflict` and `Gone`"]
#[derive(Clone, Debug, PartialEq)]
pub enum Update {
    /// The record was stored; its `version` now equals the stored version.
    Written,
    /// Another writer got there first: nothing was written, and this is the
    /// record as it is stored now (active, with a different version).
    Conflict(Record),
    /// No active record has this id (never stored, deleted or expired):
    /// nothing was written, and nothing was created.
    Gone,
}

impl Update {
    /// Whether the record was written.
    pub fn is_written(&self) -> bool {
        matches!(self, Self::Written)
    }

    /// Whether another writer got there first.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict(_))
    }

    /// Whether there was no active record to update.
    pub fn is_gone(&self) -> bool {
        matches!(self, Self::Gone)
    }
}

/// Where sessions live.
///
/// Every implementation meets the same semantics, checked by the
/// `session-testkit` conformance suite:
///
/// - [`create`](SessionStore::create) never overwrites: when the record's id
///   already exists it gives the record a fresh [`Id`] and tries again, with
///   an atomic insert-if-absent in the backend, a bounded number of times
///   (see [`support::FreshIds`](crate::support::FreshIds)).
/// - [`save`](SessionStore::save) is an unconditional upsert of the whole
///   record as given: data, expiry date, version and user.
/// - [`update`](SessionStore::update) is a compare-and-swap on
///   [`Record::version`] in one atomic backend step; it never creates a
///   record, so a session deleted or expired meanwhile stays gone.
/// - [`touch`](SessionStore::touch) moves an active record's expiry date
///   forward (never backward), leaving data and version alone, in one
///   backend step.
/// - [`load`](SessionStore::load) returns `None` for a missing id and for a
///   record whose expiry date is not in the future, deleted yet or not; what
///   it returns equals what was stored (timestamps to the microsecond).
/// - [`delete`](SessionStore::delete) of a missing id is `Ok(())`.
/// - [`sessions_of_user`](SessionStore::sessions_of_user) and
///   [`delete_sessions_of_user`](SessionStore::delete_sessions_of_user) use
///   an index kept in the same atomic step as the write that sets
///   [`Record::user_id`]: they never list a session of another user, never
///   miss one, and cost in proportion to that user's sessions.
/// - Data that cannot be decoded is [`Error::Decode`], an unreachable backend
///   is [`Error::Backend`]; neither panics nor touches other sessions.
///
/// The trait is object safe: `Arc<dyn SessionStore>` is a store, and so are
/// `Arc<S>` and `Box<S>` for any store `S`.
#[async_trait]
pub trait SessionStore: Debug + Send + Sync + 'static {
    /// Stores a new record. If its id is taken, assigns a fresh one to
    /// `record` and retries, so the caller sees the id that was stored.
    async fn create(&self, record: &mut Record) -> Result<()>;

    /// Inserts or replaces the whole record, unconditionally.
    ///
    /// Prefer [`update`](Self::update) to write back a record that was
    /// loaded: `save` brings back a session that was deleted meanwhile and
    /// erases concurrent changes.
    async fn save(&self, record: &Record) -> Result<()>;

    /// The active record with this id, if there is one.
    async fn load(&self, session_id: &Id) -> Result<Option<Record>>;

    /// Removes the record with this id; a missing id is not an error.
    async fn delete(&self, session_id: &Id) -> Result<()>;

    /// Writes `record` only if an active record with its id is stored with
    /// the same [`version`](Record::version), in one atomic backend step.
    ///
    /// - [`Update::Written`]: stored with version `record.version + 1`, and
    ///   `record.version` is bumped to match.
    /// - [`Update::Conflict`]: the stored version differs; nothing was
    ///   written, and the stored record is returned so the caller can merge
    ///   and retry.
    /// - [`Update::Gone`]: no active record has this id; nothing was written
    ///   and nothing created.
    ///
    /// A version that cannot be bumped (`u64::MAX`, or past what the backend
    /// can hold) is an [`Error::Encode`].
    async fn update(&self, record: &mut Record) -> Result<Update>;

    /// Moves the expiry date of the active record with this id to
    /// `expiry_date` if that is later than the stored one (never earlier),
    /// leaving its data and version alone, in one backend step.
    ///
    /// `true` when an active record has this id (moved or already later),
    /// `false` when none has.
    async fn touch(&self, session_id: &Id, expiry_date: OffsetDateTime) -> Result<bool>;

    /// [`touch`](Self::touch) for many sessions at once, each moving forward
    /// only: what a cache writing sliding expiry back in batches calls. The
    /// answer says, in order, which ids had an active record.
    ///
    /// The default touches one after the other; a store that can do it in
    /// one statement or one pipeline overrides it. It is not atomic as a
    /// whole: each touch is.
    async fn touch_many(&self, touches: &[(Id, OffsetDateTime)]) -> Result<Vec<bool>> {
        let mut touched = Vec::with_capacity(touches.len());
        for (session_id, expiry_date) in touches {
            touched.push(self.touch(session_id, *expiry_date).await?);
        }
        Ok(touched)
    }

    /// The active records whose [`user_id`](Record::user_id) is `user_id`,
    /// in no particular order.
    ///
    /// The default is [`Error::Unsupported`]; every store of this workspace
    /// implements it with an index.
    async fn sessions_of_user(&self, user_id: &str) -> Result<Vec<Record>> {
        let _ = user_id;
        Err(Error::Unsupported("sessions_of_user"))
    }

    /// Deletes every record of `user_id` except `keep`, and returns how many
    /// active records it deleted: "log out everywhere (else)".
    ///
    /// The default is [`Error::Unsupported`]; every store of this workspace
    /// implements it with an index.
    async fn delete_sessions_of_user(&self, user_id: &str, keep: Option<&Id>) -> Result<u64> {
        let _ = (user_id, keep);
        Err(Error::Unsupported("delete_sessions_of_user"))
    }
}

/// A store that can remove its expired records on request.
///
/// Run it periodically with
/// [`ExpiredDeletionTask`](crate::deletion::ExpiredDeletionTask) (feature
/// `deletion-task`).
#[async_trait]
pub trait ExpiredDeletion: SessionStore {
    /// Removes every record whose expiry date is not in the future (and its
    /// user-index entry) and returns how many were removed. A backend that
    /// expires records by itself (Redis TTL, moka) may return 0.
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

            async fn update(&self, record: &mut Record) -> Result<Update> {
                (**self).update(record).await
            }

            async fn touch(&self, session_id: &Id, expiry_date: OffsetDateTime) -> Result<bool> {
                (**self).touch(session_id, expiry_date).await
            }

            async fn touch_many(
                &self,
                touches: &[(Id, OffsetDateTime)],
            ) -> Result<Vec<bool>> {
                (**self).touch_many(touches).await
            }

            async fn sessions_of_user(&self, user_id: &str) -> Result<Vec<Record>> {
                (**self).sessions_of_user(user_id).await
            }

            async fn delete_sessions_of_user(
                &self,
                user_id: &str,
                keep: Option<&Id>,
            ) -> Result<u64> {
                (**self).delete_sessions_of_user(user_id, keep).await
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
