//! What the three dialects do alike, written once: turning records into the
//! values a row holds and back, the retry of `create`, telling a `Conflict`
//! from `Gone` after a compare-and-swap that did not write, refusing user ids
//! no row can hold, and the batched sweep. Each dialect supplies only its
//! statements, through [`Dialect`]; [`sql_session_store!`] then implements
//! the store traits on it, each operation in
//! [`store_span`](session_core::support::store_span).

use std::future::Future;

use session_core::{
    codec,
    support::{next_version, store_span, version_from_i64, version_to_i64, FreshIds, MissedSwaps},
    time::OffsetDateTime,
    Error, Id, Record, Result, Update,
};
use tracing::{instrument::Instrumented, Instrument as _};

use crate::error::{check_user_id, is_deadlock_victim};

/// How many times one statement runs while the database keeps rolling it back
/// as a deadlock victim. A victim wrote nothing, so running it again is safe;
/// the bound turns a livelock into the error the caller would have had.
const DEADLOCK_ATTEMPTS: u32 = 5;

/// `statement`, run again when the database chose it as a deadlock victim
/// ([`is_deadlock_victim`]). Every write of these stores is one statement, so
/// a rolled-back one left nothing behind and the retry keeps it atomic.
/// InnoDB deadlocks even single-row statements when two of them lock the
/// same row's index entries in opposite orders (a sweep walks the expiry
/// index, then the row; a `touch` locks the row, then moves its expiry
/// entry), and its manual asks applications to retry.
pub(crate) async fn retrying<T, F, Fut>(mut statement: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 1;
    loop {
        match statement().await {
            Err(error) if attempt < DEADLOCK_ATTEMPTS && is_deadlock_victim(&error) => {
                tracing::debug!(
                    attempt,
                    "rolled back as a deadlock victim; running it again"
                );
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// A record as the columns of its row hold it.
#[derive(Debug)]
pub(crate) struct Row {
    /// The id's text form, the primary key.
    pub(crate) id: String,
    /// The data in the workspace's shared encoding.
    pub(crate) data: Vec<u8>,
    pub(crate) expiry_date: OffsetDateTime,
    pub(crate) version: i64,
    pub(crate) user_id: Option<String>,
}

impl Row {
    /// The row of `record`, or an [`Error::Encode`] when a column cannot hold
    /// a value (a version past `MAX_VERSION`, a user id too long).
    pub(crate) fn new(record: &Record) -> Result<Self> {
        if let Some(user_id) = &record.user_id {
            check_user_id(user_id).map_err(Error::encode)?;
        }
        Ok(Self {
            id: record.id.to_string(),
            data: codec::encode_data(&record.data)?,
            expiry_date: record.expiry_date,
            version: version_to_i64(record.version)?,
            user_id: record.user_id.clone(),
        })
    }
}

/// The record a row of `id` holds; a negative version is an
/// [`Error::Decode`], as is data that does not decode.
pub(crate) fn record_from_row(
    id: Id,
    data: &[u8],
    expiry_date: OffsetDateTime,
    version: i64,
    user_id: Option<String>,
) -> Result<Record> {
    Ok(Record {
        id,
        data: codec::decode_data(data)?,
        expiry_date,
        version: version_from_i64(version)?,
        user_id,
    })
}

/// An id read from a row's `id` column; text that is no id is an
/// [`Error::Decode`].
pub(crate) fn id_from_column(text: &str) -> Result<Id> {
    text.parse().map_err(Error::decode)
}

/// The statements of one dialect, each one atomic in its database. `now` is
/// the caller's clock, so every store of the workspace agrees on what has
/// expired.
pub(crate) trait Dialect: Send + Sync {
    /// The store's kind, as spans name it.
    const KIND: &'static str;

    /// How many rows one sweep statement deletes at most.
    fn delete_batch_size(&self) -> u32;

    /// Inserts `row` unless an active row has its id (an expired one is
    /// taken over); whether it was stored.
    fn insert_if_absent(
        &self,
        row: &Row,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Inserts or replaces `row`, every column.
    fn upsert(&self, row: &Row) -> impl Future<Output = Result<()>> + Send;

    /// The active record with this id.
    fn select_active(
        &self,
        id: &Id,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<Record>>> + Send;

    /// Deletes the row with this id, if there is one.
    fn delete_by_id(&self, id: &Id) -> impl Future<Output = Result<()>> + Send;

    /// Replaces the active row of `row.id` with `row` if it holds version
    /// `expected`; whether it did.
    fn swap_version(
        &self,
        row: &Row,
        expected: i64,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Sets the expiry of the active row with this id to the later of its
    /// own and `expiry_date`; whether an active row has the id.
    fn extend_expiry(
        &self,
        id: &Id,
        expiry_date: OffsetDateTime,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// [`extend_expiry`](Self::extend_expiry) for many ids: which had an
    /// active row, in order. One statement per id unless the dialect can do
    /// better.
    fn extend_expiries(
        &self,
        touches: &[(Id, OffsetDateTime)],
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<bool>>> + Send {
        async move {
            let mut touched = Vec::with_capacity(touches.len());
            for (id, expiry_date) in touches {
                touched.push(self.extend_expiry(id, *expiry_date, now).await?);
            }
            Ok(touched)
        }
    }

    /// The active records of `user_id`, through the user index.
    fn select_of_user(
        &self,
        user_id: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<Record>>> + Send;

    /// Deletes the active rows of `user_id` but `keep`, in one statement;
    /// how many. Expired rows are left to the sweep, so the count is exact.
    fn delete_of_user(
        &self,
        user_id: &str,
        keep: Option<&Id>,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<u64>> + Send;

    /// Deletes at most `limit` rows that expired by `now`; how many.
    fn delete_expired_batch(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> impl Future<Output = Result<u64>> + Send;
}

pub(crate) async fn create<D: Dialect>(store: &D, record: &mut Record) -> Result<()> {
    let mut row = Row::new(record)?;
    let mut ids = FreshIds::default();
    while !retrying(|| store.insert_if_absent(&row, OffsetDateTime::now_utc())).await? {
        ids.next(record)?;
        row.id = record.id.to_string();
    }
    Ok(())
}

pub(crate) async fn update<D: Dialect>(store: &D, record: &mut Record) -> Result<Update> {
    // Refused before any statement: nothing is written past the maximum.
    let next = next_version(record.version)?;
    let expected = version_to_i64(record.version)?;
    let mut row = Row::new(record)?;
    row.version = version_to_i64(next)?;
    let mut misses = MissedSwaps::default();
    loop {
        // The write is one conditional statement; the read after a miss only
        // tells the caller why, and what is stored now.
        if retrying(|| store.swap_version(&row, expected, OffsetDateTime::now_utc())).await? {
            record.version = next;
            return Ok(Update::Written);
        }
        let current = store
            .select_active(&record.id, OffsetDateTime::now_utc())
            .await?;
        if let Some(answer) = misses.after(record.version, current) {
            return Ok(answer);
        }
    }
}

pub(crate) async fn sessions_of_user<D: Dialect>(store: &D, user_id: &str) -> Result<Vec<Record>> {
    // No row can hold such a user id, so none has it.
    if check_user_id(user_id).is_err() {
        return Ok(Vec::new());
    }
    store
        .select_of_user(user_id, OffsetDateTime::now_utc())
        .await
}

pub(crate) async fn delete_sessions_of_user<D: Dialect>(
    store: &D,
    user_id: &str,
    keep: Option<&Id>,
) -> Result<u64> {
    if check_user_id(user_id).is_err() {
        return Ok(0);
    }
    retrying(|| store.delete_of_user(user_id, keep, OffsetDateTime::now_utc())).await
}

pub(crate) async fn delete_expired<D: Dialect>(store: &D) -> Result<u64> {
    // One instant for the whole sweep: it removes what had expired when it
    // started, however many batches that takes.
    let now = OffsetDateTime::now_utc();
    let limit = store.delete_batch_size();
    let mut removed = 0;
    loop {
        let deleted = retrying(|| store.delete_expired_batch(now, limit)).await?;
        removed += deleted;
        if deleted < u64::from(limit) {
            break;
        }
    }
    tracing::debug!(removed, "swept expired sessions");
    Ok(removed)
}

/// `future`, run in the span of `operation` on a store of dialect `D`.
pub(crate) fn traced<D: Dialect, F: Future>(operation: &'static str, future: F) -> Instrumented<F> {
    future.instrument(store_span(D::KIND, operation))
}

/// Implements `SessionStore` and `ExpiredDeletion` on a [`Dialect`] with
/// the shared logic above, every operation in its `store_span`.
macro_rules! sql_session_store {
    ($store:ty) => {
        #[::session_core::async_trait]
        impl ::session_core::SessionStore for $store {
            async fn create(
                &self,
                record: &mut ::session_core::Record,
            ) -> ::session_core::Result<()> {
                let create = $crate::store::create(self, record);
                $crate::store::traced::<Self, _>("create", create).await
            }

            async fn save(&self, record: &::session_core::Record) -> ::session_core::Result<()> {
                let save = async {
                    let row = $crate::store::Row::new(record)?;
                    $crate::store::retrying(|| $crate::store::Dialect::upsert(self, &row)).await
                };
                $crate::store::traced::<Self, _>("save", save).await
            }

            async fn load(
                &self,
                session_id: &::session_core::Id,
            ) -> ::session_core::Result<Option<::session_core::Record>> {
                let now = ::session_core::time::OffsetDateTime::now_utc();
                let load = $crate::store::Dialect::select_active(self, session_id, now);
                $crate::store::traced::<Self, _>("load", load).await
            }

            async fn delete(&self, session_id: &::session_core::Id) -> ::session_core::Result<()> {
                let delete = $crate::store::retrying(|| {
                    $crate::store::Dialect::delete_by_id(self, session_id)
                });
                $crate::store::traced::<Self, _>("delete", delete).await
            }

            async fn update(
                &self,
                record: &mut ::session_core::Record,
            ) -> ::session_core::Result<::session_core::Update> {
                let update = $crate::store::update(self, record);
                $crate::store::traced::<Self, _>("update", update).await
            }

            async fn touch(
                &self,
                session_id: &::session_core::Id,
                expiry_date: ::session_core::time::OffsetDateTime,
            ) -> ::session_core::Result<bool> {
                let touch = $crate::store::retrying(|| {
                    let now = ::session_core::time::OffsetDateTime::now_utc();
                    $crate::store::Dialect::extend_expiry(self, session_id, expiry_date, now)
                });
                $crate::store::traced::<Self, _>("touch", touch).await
            }

            async fn touch_many(
                &self,
                touches: &[(::session_core::Id, ::session_core::time::OffsetDateTime)],
            ) -> ::session_core::Result<Vec<bool>> {
                let touch = $crate::store::retrying(|| {
                    let now = ::session_core::time::OffsetDateTime::now_utc();
                    $crate::store::Dialect::extend_expiries(self, touches, now)
                });
                $crate::store::traced::<Self, _>("touch_many", touch).await
            }

            async fn sessions_of_user(
                &self,
                user_id: &str,
            ) -> ::session_core::Result<Vec<::session_core::Record>> {
                let list = $crate::store::sessions_of_user(self, user_id);
                $crate::store::traced::<Self, _>("sessions_of_user", list).await
            }

            async fn delete_sessions_of_user(
                &self,
                user_id: &str,
                keep: Option<&::session_core::Id>,
            ) -> ::session_core::Result<u64> {
                let delete = $crate::store::delete_sessions_of_user(self, user_id, keep);
                $crate::store::traced::<Self, _>("delete_sessions_of_user", delete).await
            }
        }

        #[::session_core::async_trait]
        impl ::session_core::ExpiredDeletion for $store {
            async fn delete_expired(&self) -> ::session_core::Result<u64> {
                let sweep = $crate::store::delete_expired(self);
                $crate::store::traced::<Self, _>("delete_expired", sweep).await
            }
        }
    };
}

pub(crate) use sql_session_store;
