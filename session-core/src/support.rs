//! What every store does alike, written once: the bounded retry of `create`
//! on a taken id, what a missed compare-and-swap of `update` means, version
//! arithmetic that cannot overflow, names safe to splice into a query, and
//! the one span every store operation runs in.
//!
//! A store crate uses these instead of its own copies, so the rules (how many
//! ids `create` tries, which versions exist, which names are accepted, what a
//! span is called and that it never carries a session id) are the same
//! everywhere.

use crate::{Error, Record, Result, Update};

/// How many ids [`SessionStore::create`](crate::SessionStore::create) tries
/// before giving up with [`NoFreeId`]. Ids are 128 random bits: a second
/// attempt already means someone reused an id on purpose.
pub const MAX_CREATE_ATTEMPTS: u32 = 16;

/// `create` met a taken id on every one of [`MAX_CREATE_ATTEMPTS`] tries.
///
/// It reaches the caller inside [`Error::Backend`]. With random 128-bit ids
/// this is not bad luck: the backend misbehaves (a trigger or rule that
/// swallows inserts, a key space shared with something else).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no free session id found after {attempts} attempts")]
pub struct NoFreeId {
    /// How many ids were tried.
    pub attempts: u32,
}

/// The retry half of an atomic `create`: the store tries its one
/// insert-if-absent step, and on a taken id asks this for a fresh id.
///
/// ```
/// use session_core::{support::FreshIds, Record, Result};
///
/// /// One insert-if-absent step of a backend: `false` when the id is taken.
/// async fn insert_if_absent(record: &Record) -> Result<bool> {
///     # let _ = record;
///     Ok(true)
/// }
///
/// async fn create(record: &mut Record) -> Result<()> {
///     let mut ids = FreshIds::default();
///     while !insert_if_absent(record).await? {
///         ids.next(record)?;
///     }
///     Ok(())
/// }
/// ```
#[derive(Debug, Default)]
pub struct FreshIds {
    taken: u32,
}

impl FreshIds {
    /// The record's id was taken: gives it a fresh [`Id`](crate::Id) to try
    /// next, or fails with [`NoFreeId`] (as [`Error::Backend`]) once
    /// [`MAX_CREATE_ATTEMPTS`] ids were taken.
    pub fn next(&mut self, record: &mut Record) -> Result<()> {
        self.taken += 1;
        if self.taken >= MAX_CREATE_ATTEMPTS {
            return Err(Error::backend(NoFreeId {
                attempts: self.taken,
            }));
        }
        tracing::debug!("session id taken on create; drawing a new one");
        record.id = crate::Id::default();
        Ok(())
    }
}

/// How many times [`SessionStore::update`](crate::SessionStore::update)
/// tries its compare-and-swap when the record read after a miss holds the
/// very version it asked for (see [`MissedSwaps`]).
pub const MAX_UPDATE_ATTEMPTS: u32 = 3;

/// The classifying half of an `update` whose compare-and-swap is one
/// conditional write that says only whether it wrote (an SQL `UPDATE ..
/// WHERE version = ? AND expiry_date > ?` counting its rows): after a miss
/// the store reads the active record, and this says what the miss means.
///
/// The write is the atomic step; the read only tells the caller why nothing
/// was written and what is stored now. If that read finds the very version
/// the update expected, someone deleted the session and saved it again at
/// that version between the two steps, and the swap is tried again, at most
/// [`MAX_UPDATE_ATTEMPTS`] times in all (then the record read is the
/// conflict): the bound only keeps a pathological writer from holding a
/// caller in a loop.
///
/// ```
/// use session_core::{support::MissedSwaps, Record, Result, Update};
///
/// /// The backend's one conditional write: whether it wrote.
/// async fn swap(record: &Record, expected: u64) -> Result<bool> {
///     # let _ = (record, expected);
///     Ok(false)
/// }
/// /// The active record, if any.
/// async fn read(record: &Record) -> Result<Option<Record>> {
///     # let _ = record;
///     Ok(None)
/// }
///
/// async fn update(record: &Record, expected: u64) -> Result<Update> {
///     let mut misses = MissedSwaps::default();
///     loop {
///         if swap(record, expected).await? {
///             return Ok(Update::Written);
///         }
///         if let Some(answer) = misses.after(expected, read(record).await?) {
///             return Ok(answer);
///         }
///     }
/// }
/// # let record = Record::new(session_core::time::OffsetDateTime::now_utc());
/// # let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # assert!(matches!(runtime.block_on(update(&record, 0)), Ok(Update::Gone)));
/// ```
#[derive(Debug, Default)]
pub struct MissedSwaps {
    missed: u32,
}

impl MissedSwaps {
    /// After a compare-and-swap over `expected` wrote nothing and a read
    /// found `current` (the active record, if any): the answer to return,
    /// or `None` to try the swap again.
    pub fn after(&mut self, expected: u64, current: Option<Record>) -> Option<Update> {
        self.missed += 1;
        match current {
            None => Some(Update::Gone),
            Some(current) if current.version != expected || self.missed >= MAX_UPDATE_ATTEMPTS => {
                Some(Update::Conflict(current))
            }
            Some(_) => None,
        }
    }
}

/// The highest [`Record::version`] a store keeps: `i64::MAX`, so that every
/// backend can hold it in a signed 64-bit column or field.
pub const MAX_VERSION: u64 = i64::MAX as u64;

/// A version past [`MAX_VERSION`], or one that cannot be bumped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("session record version {0} is out of range (at most {MAX_VERSION})")]
pub struct VersionOutOfRange(pub u64);

/// The version an update writes over `version`: one more, or an
/// [`Error::Encode`] when that would pass [`MAX_VERSION`].
pub fn next_version(version: u64) -> Result<u64> {
    version
        .checked_add(1)
        .filter(|next| *next <= MAX_VERSION)
        .ok_or_else(|| Error::encode(VersionOutOfRange(version)))
}

/// A version as the signed 64-bit integer a backend stores; past
/// [`MAX_VERSION`] it is an [`Error::Encode`].
pub fn version_to_i64(version: u64) -> Result<i64> {
    i64::try_from(version).map_err(|_| Error::encode(VersionOutOfRange(version)))
}

/// A stored signed 64-bit version back as a [`Record::version`]; a negative
/// one (written by something else) is an [`Error::Decode`].
pub fn version_from_i64(stored: i64) -> Result<u64> {
    u64::try_from(stored).map_err(|_| Error::decode(NegativeVersion(stored)))
}

/// A stored version below zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stored session version {0} is negative")]
struct NegativeVersion(i64);

/// Why a schema, table, collection or key-prefix name was refused.
///
/// Names are spliced into queries, so only plain identifiers are accepted:
/// ASCII letters, digits and `_`, not starting with a digit, within a length
/// the backend allows (see [`check_identifier`]).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    /// The name is empty.
    #[error("a schema or table name must not be empty")]
    Empty,
    /// The name is longer than the backend accepts.
    #[error("the name `{name}` is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// The refused name.
        name: String,
        /// Its length in bytes.
        len: usize,
        /// The longest name accepted.
        max: usize,
    },
    /// The name holds something other than ASCII letters, digits and `_`, or
    /// starts with a digit.
    #[error(
        "the name `{name}` may hold only ASCII letters, digits and `_`, and must not start with a digit"
    )]
    Character {
        /// The refused name.
        name: String,
    },
}

/// Accepts `name` when it is a plain identifier of 1 to `max_len` bytes:
/// ASCII letters, digits and `_`, not starting with a digit. Such a name
/// needs no escaping in SQL (quoted or not), in a MongoDB collection name or
/// in a Redis key.
///
/// ```
/// use session_core::support::{check_identifier, InvalidName};
///
/// assert!(check_identifier("tower_sessions", 63).is_ok());
/// assert!(matches!(check_identifier("a\"; DROP TABLE x", 63), Err(InvalidName::Character { .. })));
/// ```
pub fn check_identifier(name: &str, max_len: usize) -> std::result::Result<(), InvalidName> {
    if name.is_empty() {
        return Err(InvalidName::Empty);
    }
    if name.len() > max_len {
        return Err(InvalidName::TooLong {
            name: name.to_owned(),
            len: name.len(),
            max: max_len,
        });
    }
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(InvalidName::Character {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// The span a store operation runs in: named `session.store`, with the
/// store's kind (`"postgres"`, `"redis"`, ...) and the operation (the
/// [`SessionStore`](crate::SessionStore) method's name) as fields.
///
/// It never carries a session id: an id is a credential, and spans end up in
/// logs. Say more (a count of rows removed, a retry) with an event inside
/// it, e.g. `tracing::debug!(removed, "swept")`, never with an id.
///
/// ```
/// use session_core::support::store_span;
/// use tracing::Instrument as _;
///
/// # async fn demo() {
/// async { /* one backend call */ }
///     .instrument(store_span("memory", "load"))
///     .await;
/// # }
/// ```
pub fn store_span(store: &'static str, operation: &'static str) -> tracing::Span {
    tracing::debug_span!("session.store", store, operation)
}

#[cfg(test)]
mod tests {
    use time::{Duration, OffsetDateTime};

    use super::*;

    #[test]
    fn a_missed_swap_is_gone_conflict_or_tried_again_a_bounded_number_of_times() {
        let stored = |version| Record {
            version,
            ..Record::new(OffsetDateTime::now_utc() + Duration::hours(1))
        };
        assert!(matches!(
            MissedSwaps::default().after(3, None),
            Some(Update::Gone)
        ));
        assert!(matches!(
            MissedSwaps::default().after(3, Some(stored(4))),
            Some(Update::Conflict(current)) if current.version == 4
        ));
        // The expected version read back: try again, until the bound.
        let mut misses = MissedSwaps::default();
        for _ in 1..MAX_UPDATE_ATTEMPTS {
            assert!(misses.after(3, Some(stored(3))).is_none());
        }
        assert!(matches!(
            misses.after(3, Some(stored(3))),
            Some(Update::Conflict(current)) if current.version == 3
        ));
    }

    #[test]
    fn fresh_ids_are_bounded() {
        let mut record = Record::new(OffsetDateTime::now_utc() + Duration::hours(1));
        let first = record.id;
        let mut ids = FreshIds::default();
        for _ in 1..MAX_CREATE_ATTEMPTS {
            ids.next(&mut record).expect("within the bound");
        }
        assert_ne!(record.id, first);
        let error = ids.next(&mut record).expect_err("past the bound");
        assert!(error.is_backend());
        let source = std::error::Error::source(&error).expect("source kept");
        assert_eq!(
            source.downcast_ref::<NoFreeId>(),
            Some(&NoFreeId {
                attempts: MAX_CREATE_ATTEMPTS
            })
        );
    }

    #[test]
    fn versions_stay_in_range() {
        assert_eq!(next_version(0).ok(), Some(1));
        assert_eq!(next_version(MAX_VERSION - 1).ok(), Some(MAX_VERSION));
        assert!(next_version(MAX_VERSION).expect_err("past").is_encode());
        assert!(next_version(u64::MAX).expect_err("overflow").is_encode());
        assert_eq!(version_to_i64(MAX_VERSION).ok(), Some(i64::MAX));
        assert!(version_to_i64(MAX_VERSION + 1)
            .expect_err("past")
            .is_encode());
        assert_eq!(version_from_i64(7).ok(), Some(7));
        assert!(version_from_i64(-1).expect_err("negative").is_decode());
    }

    #[test]
    fn identifiers() {
        for name in ["sessions", "_x", "S1", "tower_sessions", &"a".repeat(63)] {
            assert_eq!(check_identifier(name, 63), Ok(()), "{name}");
        }
        assert_eq!(check_identifier("", 63), Err(InvalidName::Empty));
        assert!(matches!(
            check_identifier(&"a".repeat(64), 63),
            Err(InvalidName::TooLong {
                len: 64,
                max: 63,
                ..
            })
        ));
        for name in [
            "1abc", "a-b", "a b", "a.b", "a\"b", "a`b", "a'b", "a;DROP", "ünï", "a\0", "tab\t",
        ] {
            assert!(
                matches!(
                    check_identifier(name, 63),
                    Err(InvalidName::Character { .. })
                ),
                "{name:?} must be refused"
            );
        }
    }
}
