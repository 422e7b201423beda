//! [`MongoDBStore`]: one document per session, keyed by the session id.

use std::{fmt, time::Duration};

use mongodb::{
    bson::{
        cstr, doc, rawdoc, spec::BinarySubtype, spec::ElementType, Binary, Bson, DateTime,
        Document, RawBsonRef, RawDocument, RawDocumentBuf,
    },
    options::{ClientOptions, IndexOptions},
    Client, Collection, Database, IndexModel,
};
use session_core::{
    async_trait, codec,
    support::{next_version, store_span, version_from_i64, version_to_i64, FreshIds, MissedSwaps},
    time::OffsetDateTime,
    Error, ExpiredDeletion, Id, Record, Result, SessionStore, Update,
};
use tracing::Instrument as _;

use crate::error::{backend_error, is_duplicate_key, write_error};

/// The collection sessions live in unless
/// [`with_collection_name`](MongoDBStore::with_collection_name) says otherwise.
pub const DEFAULT_COLLECTION_NAME: &str = "sessions";

/// The name of the TTL index [`MongoDBStore::migrate`] creates on
/// [`EXPIRES_AT_FIELD`].
pub const TTL_INDEX_NAME: &str = "expires_at_ttl";

/// The name of the user index [`MongoDBStore::migrate`] creates:
/// `{ user_id: 1, expires_at_micros: 1 }`, partial on
/// `{ user_id: { $gte: "" } }` so that sessions without a user have no entry.
pub const USER_INDEX_NAME: &str = "user_id_active";

/// The BSON `DateTime` field MongoDB's TTL monitor reads: the expiry date
/// rounded *up* to the millisecond, so the monitor never removes a session
/// that is still active.
pub const EXPIRES_AT_FIELD: &str = "expires_at";

/// The exact expiry date in microseconds since the Unix epoch (a BSON
/// `Int64`): what `load`, `update`, `touch`, the user lookups and
/// `delete_expired` compare, since a BSON `DateTime` only keeps milliseconds.
pub const EXPIRES_AT_MICROS_FIELD: &str = "expires_at_micros";

/// The session data: the bytes of [`session_core::codec::encode_data`] (MessagePack)
/// in a BSON binary (generic subtype).
pub const DATA_FIELD: &str = "data";

/// The record's [`version`](Record::version), a BSON `Int64`. A document
/// without it (written before versions existed) is at version 0.
pub const VERSION_FIELD: &str = "version";

/// The record's [`user_id`](Record::user_id), a BSON string; absent when the
/// session has no user.
pub const USER_ID_FIELD: &str = "user_id";

/// The server selection timeout [`MongoDBStore::connect`] and
/// [`bounded_timeouts`] set when the connection string sets none. The driver's
/// own default is 30 seconds.
pub const DEFAULT_SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// The connect timeout [`MongoDBStore::connect`] and [`bounded_timeouts`] set
/// when the connection string sets none. The driver's own default is 10
/// seconds.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The store's kind in every span ([`store_span`]).
const STORE: &str = "mongodb";

/// Sets the timeouts that bound how long an operation waits for a server that
/// is down, where `options` has none: [`DEFAULT_SERVER_SELECTION_TIMEOUT`]
/// and [`DEFAULT_CONNECT_TIMEOUT`]. Values the connection string set
/// (`serverSelectionTimeoutMS`, `connectTimeoutMS`) are kept.
pub fn bounded_timeouts(options: &mut ClientOptions) {
    options
        .server_selection_timeout
        .get_or_insert(DEFAULT_SERVER_SELECTION_TIMEOUT);
    options
        .connect_timeout
        .get_or_insert(DEFAULT_CONNECT_TIMEOUT);
}

/// A [`SessionStore`] keeping each session in a MongoDB document:
///
/// ```text
/// { _id: "<session id>", data: BinData(0, <MessagePack>),
///   expires_at: ISODate(..), expires_at_micros: NumberLong(..),
///   version: NumberLong(..), user_id: "<user>" /* only when there is one */ }
/// ```
///
/// Every write is one single-document operation, which MongoDB applies
/// atomically together with every index entry of that document:
///
/// - `create` is `insert_one` (a duplicate `_id` means a fresh id and another
///   try), `save` is `replace_one` with upsert.
/// - [`update`](SessionStore::update) is one `replace_one` filtered on
///   `{ _id, version: <the caller's>, expires_at_micros: { $gt: now } }`; when
///   it matches nothing, a read tells a conflict (the stored record is
///   returned) from a session that is gone.
/// - [`touch`](SessionStore::touch) is one `update_one` filtered on
///   `{ _id, expires_at_micros: { $gt: now } }` with `$max` on the expiry.
/// - The user lookups query `{ user_id, expires_at_micros: { $gt: now } }`
///   through the [`USER_INDEX_NAME`] index; `delete_sessions_of_user` is one
///   `delete_many` with that filter (and `_id: { $ne: keep }`).
///
/// `load` asks only for a document whose `expires_at_micros` is in the future,
/// and [`delete_expired`](ExpiredDeletion::delete_expired) is a `delete_many`.
/// Run [`migrate`](Self::migrate) once per deployment (it is idempotent) to
/// create the TTL index and the user index.
#[derive(Clone, Debug)]
pub struct MongoDBStore {
    database: Database,
    collection: Collection<RawDocumentBuf>,
}

impl MongoDBStore {
    /// A store on `client` keeping sessions in the
    /// [`DEFAULT_COLLECTION_NAME`] collection of `database_name`.
    ///
    /// How long an operation waits for a server that is down is the client's
    /// server selection timeout: set it (and the connect timeout) in the
    /// client's options, e.g. with [`bounded_timeouts`], or build the store
    /// with [`connect`](Self::connect).
    // The client by value is the contract (`MongoDBStore::new(Client, ..)`):
    // the store holds it through the database handle.
    #[allow(clippy::needless_pass_by_value)]
    pub fn new(client: Client, database_name: &str) -> Self {
        let database = client.database(database_name);
        Self {
            collection: database.collection(DEFAULT_COLLECTION_NAME),
            database,
        }
    }

    /// Connects to the deployment at `uri` (a `mongodb://` connection string)
    /// with [`bounded_timeouts`] applied, and returns a store in
    /// `database_name`.
    ///
    /// No connection is made yet: the driver connects in the background, and
    /// the first operation waits for it at most the server selection timeout.
    pub async fn connect(uri: &str, database_name: &str) -> Result<Self> {
        let mut options = ClientOptions::parse(uri).await.map_err(backend_error)?;
        bounded_timeouts(&mut options);
        let client = Client::with_options(options).map_err(backend_error)?;
        Ok(Self::new(client, database_name))
    }

    /// The same store on the collection `name` of the same database.
    ///
    /// The name is not interpreted by this crate (it never becomes part of a
    /// query); the server refuses an invalid one on the first operation.
    #[must_use]
    pub fn with_collection_name(self, name: &str) -> Self {
        Self {
            collection: self.database.collection(name),
            database: self.database,
        }
    }

    /// The collection the sessions live in, e.g. to drop it in tests.
    pub fn collection(&self) -> &Collection<RawDocumentBuf> {
        &self.collection
    }

    /// Brings the collection up to this release's layout, in one
    /// `createIndexes` command:
    ///
    /// - the TTL index on [`EXPIRES_AT_FIELD`] (`expireAfterSeconds: 0`,
    ///   named [`TTL_INDEX_NAME`]), so MongoDB deletes expired sessions by
    ///   itself about once a minute;
    /// - the user index [`USER_INDEX_NAME`] on `{ user_id: 1,
    ///   expires_at_micros: 1 }`, partial on `{ user_id: { $gte: "" } }`.
    ///   A `$gte` on a string matches every string and nothing of another
    ///   type, so exactly the sessions with a user have an entry: sessions
    ///   without one cost nothing. (`$exists: true` would do for the
    ///   documents this store writes, but the test server used for this
    ///   crate cannot plan a query on an index partial on `$exists`; MongoDB
    ///   and that server both plan this one.) Its second key lets a lookup
    ///   skip the user's expired sessions inside the index; the price is that
    ///   `touch` of a session with a user also moves its index entry.
    ///
    /// Documents need no rewrite: one written by the previous release (no
    /// `version`, no `user_id`) reads as version 0 without a user, and
    /// `update` over version 0 matches it, so migrating never scans the
    /// collection and old processes may keep writing during a rolling
    /// upgrade.
    ///
    /// Idempotent: creating an index that exists with the same options is a
    /// no-op on the server, so every process may run it at start-up, several
    /// at once. Without the user index the store still works, but each user
    /// lookup scans the collection.
    pub async fn migrate(&self) -> Result<()> {
        let ttl = IndexModel::builder()
            .keys(doc! { EXPIRES_AT_FIELD: 1 })
            .options(
                IndexOptions::builder()
                    .name(TTL_INDEX_NAME.to_owned())
                    .expire_after(Duration::ZERO)
                    .build(),
            )
            .build();
        let user = IndexModel::builder()
            .keys(doc! { USER_ID_FIELD: 1, EXPIRES_AT_MICROS_FIELD: 1 })
            .options(
                IndexOptions::builder()
                    .name(USER_INDEX_NAME.to_owned())
                    .partial_filter_expression(doc! { USER_ID_FIELD: { "$gte": "" } })
                    .build(),
            )
            .build();
        async {
            tracing::debug!(collection = %self.collection.name(), "creating the session indexes");
            self.collection
                .create_indexes([ttl, user])
                .await
                .map_err(backend_error)?;
            Ok(())
        }
        .instrument(store_span(STORE, "migrate"))
        .await
    }

    /// The active record with this id, decoded.
    async fn find_active(&self, id: &Id) -> Result<Option<Record>> {
        let found = self
            .collection
            .find_one(active(id, now()))
            .await
            .map_err(backend_error)?;
        found
            .map(|document| from_document(*id, &document))
            .transpose()
    }
}

/// Now, as [`EXPIRES_AT_MICROS_FIELD`] holds it.
fn now() -> i64 {
    codec::unix_micros(OffsetDateTime::now_utc())
}

/// The BSON `DateTime` for the TTL index: `micros` rounded up to the
/// millisecond.
fn ttl_date(micros: i64) -> DateTime {
    let millis = micros.div_euclid(1_000) + i64::from(micros.rem_euclid(1_000) != 0);
    DateTime::from_millis(millis)
}

/// The document for `record`, stored at `version` (which `update` passes
/// bumped, everything else as the record says).
fn to_document(record: &Record, version: u64) -> Result<RawDocumentBuf> {
    let micros = codec::unix_micros(record.expiry_date);
    let data = Binary {
        subtype: BinarySubtype::Generic,
        bytes: codec::encode_data(&record.data)?,
    };
    // rawdoc! and cstr! want literal keys: they are the `*_FIELD` constants.
    let mut document = rawdoc! {
        "_id": record.id.to_string(),
        "data": data,
        "expires_at": ttl_date(micros),
        "expires_at_micros": micros,
        "version": version_to_i64(version)?,
    };
    // Absent rather than null: the user index leaves such documents out, and
    // so did the previous release, whose documents read the same.
    if let Some(user_id) = &record.user_id {
        document.append(cstr!("user_id"), user_id.as_str());
    }
    Ok(document)
}

fn from_document(id: Id, document: &RawDocument) -> Result<Record> {
    let data = document.get_binary(DATA_FIELD).map_err(Error::decode)?;
    let micros = document
        .get_i64(EXPIRES_AT_MICROS_FIELD)
        .map_err(Error::decode)?;
    let expiry_date = codec::from_unix_micros(micros)?;
    let version = match document.get(VERSION_FIELD).map_err(Error::decode)? {
        // Written before versions existed (or by hand without one).
        None | Some(RawBsonRef::Null) => 0,
        Some(RawBsonRef::Int64(version)) => version_from_i64(version)?,
        Some(other) => return Err(wrong_type(VERSION_FIELD, other)),
    };
    let user_id = match document.get(USER_ID_FIELD).map_err(Error::decode)? {
        None | Some(RawBsonRef::Null) => None,
        Some(RawBsonRef::String(user_id)) => Some(user_id.to_owned()),
        Some(other) => return Err(wrong_type(USER_ID_FIELD, other)),
    };
    Ok(Record {
        id,
        data: codec::decode_data(data.bytes)?,
        expiry_date,
        version,
        user_id,
    })
}

/// A document found by something other than its id: the id comes from `_id`.
fn from_found_document(document: &RawDocument) -> Result<Record> {
    let id = document
        .get_str("_id")
        .map_err(Error::decode)?
        .parse()
        .map_err(Error::decode)?;
    from_document(id, document)
}

/// A stored field of a BSON type this store never writes there.
#[derive(Debug)]
struct WrongType {
    field: &'static str,
    found: ElementType,
}

impl fmt::Display for WrongType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the session field `{}` holds a BSON {:?}",
            self.field, self.found
        )
    }
}

impl std::error::Error for WrongType {}

fn wrong_type(field: &'static str, value: RawBsonRef<'_>) -> Error {
    Error::decode(WrongType {
        field,
        found: value.element_type(),
    })
}

fn by_id(id: &Id) -> Document {
    doc! { "_id": id.to_string() }
}

/// The record with this id, if it is active at `now`.
fn active(id: &Id, now: i64) -> Document {
    doc! { "_id": id.to_string(), EXPIRES_AT_MICROS_FIELD: { "$gt": now } }
}

/// The filter on [`VERSION_FIELD`] that matches a stored `version`. Version 0
/// also matches a document without the field (or with null): what the
/// previous release wrote, and what its processes keep writing during a
/// rolling upgrade. `$in` with `null` rather than an `$or` with `$exists`,
/// so the filter stays a plain conjunction every planner serves from `_id`.
fn version_filter(version: u64) -> Result<Bson> {
    let version = version_to_i64(version)?;
    Ok(if version == 0 {
        Bson::Document(doc! { "$in": [0_i64, Bson::Null] })
    } else {
        Bson::Int64(version)
    })
}

/// The active records of `user_id`, as served by the user index.
fn of_user(user_id: &str, now: i64) -> Document {
    // A plain string equality: never a regex or a pattern, whatever the id
    // holds. The collection's collation must be the default (binary) one.
    doc! { USER_ID_FIELD: user_id, EXPIRES_AT_MICROS_FIELD: { "$gt": now } }
}

#[async_trait]
impl SessionStore for MongoDBStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        async {
            let mut ids = FreshIds::default();
            loop {
                let document = to_document(record, record.version)?;
                match self.collection.insert_one(document).await {
                    Ok(_) => return Ok(()),
                    Err(error) if is_duplicate_key(&error) => ids.next(record)?,
                    Err(error) => return Err(write_error(error)),
                }
            }
        }
        .instrument(store_span(STORE, "create"))
        .await
    }

    async fn save(&self, record: &Record) -> Result<()> {
        async {
            self.collection
                .replace_one(by_id(&record.id), to_document(record, record.version)?)
                .upsert(true)
                .await
                .map_err(write_error)?;
            Ok(())
        }
        .instrument(store_span(STORE, "save"))
        .await
    }

    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        self.find_active(session_id)
            .instrument(store_span(STORE, "load"))
            .await
    }

    async fn delete(&self, session_id: &Id) -> Result<()> {
        async {
            self.collection
                .delete_one(by_id(session_id))
                .await
                .map_err(write_error)?;
            Ok(())
        }
        .instrument(store_span(STORE, "delete"))
        .await
    }

    async fn update(&self, record: &mut Record) -> Result<Update> {
        async {
            let next = next_version(record.version)?;
            let replacement = to_document(record, next)?;
            let expected = version_filter(record.version)?;
            let mut misses = MissedSwaps::default();
            loop {
                let mut filter = active(&record.id, now());
                filter.insert(VERSION_FIELD, expected.clone());
                // The whole compare-and-swap: the server matches and replaces
                // the one document atomically, and never inserts (no upsert),
                // so a deleted or expired session stays gone.
                let written = self
                    .collection
                    .replace_one(filter, &replacement)
                    .await
                    .map_err(write_error)?;
                if written.matched_count > 0 {
                    record.version = next;
                    return Ok(Update::Written);
                }
                // Nothing was written; this read only says why.
                let current = self.find_active(&record.id).await?;
                if let Some(answer) = misses.after(record.version, current) {
                    return Ok(answer);
                }
            }
        }
        .instrument(store_span(STORE, "update"))
        .await
    }

    async fn touch(&self, session_id: &Id, expiry_date: OffsetDateTime) -> Result<bool> {
        async {
            let micros = codec::unix_micros(expiry_date);
            // `$max` keeps the later expiry; both fields move together since
            // the TTL date is the exact one rounded up.
            let later = doc! {
                "$max": {
                    EXPIRES_AT_MICROS_FIELD: micros,
                    EXPIRES_AT_FIELD: ttl_date(micros),
                }
            };
            let result = self
                .collection
                .update_one(active(session_id, now()), later)
                .await
                .map_err(write_error)?;
            // Matched, not modified: an expiry already later changes nothing
            // but the session is there.
            Ok(result.matched_count > 0)
        }
        .instrument(store_span(STORE, "touch"))
        .await
    }

    async fn sessions_of_user(&self, user_id: &str) -> Result<Vec<Record>> {
        async {
            let mut cursor = self
                .collection
                .find(of_user(user_id, now()))
                .await
                .map_err(backend_error)?;
            let mut records = Vec::new();
            while cursor.advance().await.map_err(backend_error)? {
                records.push(from_found_document(cursor.current())?);
            }
            Ok(records)
        }
        .instrument(store_span(STORE, "sessions_of_user"))
        .await
    }

    async fn delete_sessions_of_user(&self, user_id: &str, keep: Option<&Id>) -> Result<u64> {
        async {
            // One delete_many: the server checks the whole filter on each
            // document as it deletes it, so the count is exactly the active
            // sessions of this user it ended. Expired ones are left to the
            // TTL monitor or `delete_expired`; no lookup shows them anyway.
            let mut filter = of_user(user_id, now());
            if let Some(keep) = keep {
                filter.insert("_id", doc! { "$ne": keep.to_string() });
            }
            let result = self
                .collection
                .delete_many(filter)
                .await
                .map_err(write_error)?;
            Ok(result.deleted_count)
        }
        .instrument(store_span(STORE, "delete_sessions_of_user"))
        .await
    }
}

#[async_trait]
impl ExpiredDeletion for MongoDBStore {
    async fn delete_expired(&self) -> Result<u64> {
        async {
            let now = now();
            // The first condition is implied by the second (the TTL date is
            // the exact one rounded up) and lets the server use the TTL
            // index; the second keeps the cut exact to the microsecond.
            let filter = doc! {
                EXPIRES_AT_FIELD: { "$lte": ttl_date(now) },
                EXPIRES_AT_MICROS_FIELD: { "$lte": now },
            };
            let result = self
                .collection
                .delete_many(filter)
                .await
                .map_err(write_error)?;
            tracing::debug!(removed = result.deleted_count, "swept expired sessions");
            Ok(result.deleted_count)
        }
        .instrument(store_span(STORE, "delete_expired"))
        .await
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn ttl_date_rounds_up_to_the_millisecond() {
        assert_eq!(ttl_date(1_000).timestamp_millis(), 1);
        assert_eq!(ttl_date(1_001).timestamp_millis(), 2);
        assert_eq!(ttl_date(1_999).timestamp_millis(), 2);
        assert_eq!(ttl_date(0).timestamp_millis(), 0);
        assert_eq!(ttl_date(-1).timestamp_millis(), 0);
        assert_eq!(ttl_date(-1_001).timestamp_millis(), -1);
    }

    #[test]
    fn documents_round_trip_to_the_microsecond() {
        let mut record = Record::new(datetime!(2031-02-03 04:05:06.123456789 +05:30));
        record.data.insert("k".into(), "v".into());
        record.version = 7;
        record.user_id = Some("ünï \"user\" \0".into());
        let document = to_document(&record, record.version).unwrap();
        let back = from_document(record.id, &document).unwrap();
        assert_eq!(back.data, record.data);
        assert_eq!((back.version, back.user_id), (7, record.user_id.clone()));
        assert_eq!(
            back.expiry_date,
            datetime!(2031-02-03 04:05:06.123456 +05:30)
        );
        let ttl = document.get_datetime(EXPIRES_AT_FIELD).unwrap();
        assert_eq!(ttl.timestamp_millis() % 1_000, 124);
    }

    #[test]
    fn bounded_timeouts_keep_what_was_chosen() {
        let mut options = ClientOptions::default();
        bounded_timeouts(&mut options);
        assert_eq!(
            options.server_selection_timeout,
            Some(DEFAULT_SERVER_SELECTION_TIMEOUT)
        );
        assert_eq!(options.connect_timeout, Some(DEFAULT_CONNECT_TIMEOUT));

        let mut options = ClientOptions::default();
        options.server_selection_timeout = Some(Duration::from_millis(250));
        options.connect_timeout = Some(Duration::from_millis(100));
        bounded_timeouts(&mut options);
        assert_eq!(
            options.server_selection_timeout,
            Some(Duration::from_millis(250))
        );
        assert_eq!(options.connect_timeout, Some(Duration::from_millis(100)));
    }

    #[test]
    fn documents_without_a_user_have_no_user_field() {
        let record = Record::new(datetime!(2031-02-03 04:05:06 UTC));
        let document = to_document(&record, 3).unwrap();
        assert_eq!(document.get(USER_ID_FIELD).unwrap(), None);
        assert_eq!(document.get_i64(VERSION_FIELD).unwrap(), 3);
        assert!(to_document(&record, u64::MAX).unwrap_err().is_encode());
    }

    #[test]
    fn documents_of_the_previous_release_read_as_version_0_without_a_user() {
        let id = Id::default();
        let document = rawdoc! {
            "_id": id.to_string(),
            "data": Binary { subtype: BinarySubtype::Generic, bytes: codec::encode_data(&Default::default()).unwrap() },
            "expires_at": DateTime::from_millis(1_000),
            "expires_at_micros": 1_000_000_i64,
        };
        let record = from_document(id, &document).unwrap();
        assert_eq!((record.version, record.user_id), (0, None));
    }

    #[test]
    fn version_filters_match_missing_versions_only_for_0() {
        assert_eq!(
            version_filter(0).unwrap(),
            Bson::Document(doc! { "$in": [0_i64, Bson::Null] })
        );
        assert_eq!(version_filter(5).unwrap(), Bson::Int64(5));
    }

    #[test]
    fn wrong_version_and_user_types_are_decode_errors() {
        let id = Id::default();
        let base = || {
            rawdoc! {
                "_id": id.to_string(),
                "data": Binary { subtype: BinarySubtype::Generic, bytes: b"{}".to_vec() },
                "expires_at_micros": 1_i64,
            }
        };
        let mut negative = base();
        negative.append(cstr!("version"), -1_i64);
        let mut text = base();
        text.append(cstr!("version"), "1");
        let mut int32 = base();
        int32.append(cstr!("version"), 1_i32);
        let mut user = base();
        user.append(cstr!("user_id"), 7_i64);
        for document in [negative, text, int32, user] {
            let error = from_document(id, &document).unwrap_err();
            assert!(error.is_decode(), "{document:?}: {error:?}");
        }
    }

    #[test]
    fn wrong_field_types_are_decode_errors() {
        let id = Id::default();
        let document =
            rawdoc! { "_id": id.to_string(), "data": "text", "expires_at_micros": 1_i64 };
        assert!(from_document(id, &document).unwrap_err().is_decode());
        let document = rawdoc! { "_id": id.to_string(), "data": Binary { subtype: BinarySubtype::Generic, bytes: b"{}".to_vec() } };
        assert!(from_document(id, &document).unwrap_err().is_decode());
    }
}
