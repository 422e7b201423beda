//! [`MongoDBStore`]: one document per session, keyed by the session id.

use std::time::Duration;

use mongodb::{
    bson::{doc, rawdoc, spec::BinarySubtype, Binary, DateTime, Document, RawDocumentBuf},
    options::{ClientOptions, IndexOptions},
    Client, Collection, Database, IndexModel,
};
use session_core::{
    async_trait, codec, time::OffsetDateTime, Error, ExpiredDeletion, Id, Record, Result,
    SessionStore,
};

use crate::error::{backend_error, is_duplicate_key, write_error};

/// The collection sessions live in unless
/// [`with_collection_name`](MongoDBStore::with_collection_name) says otherwise.
pub const DEFAULT_COLLECTION_NAME: &str = "sessions";

/// The name of the TTL index [`MongoDBStore::migrate`] creates on
/// [`EXPIRES_AT_FIELD`].
pub const TTL_INDEX_NAME: &str = "expires_at_ttl";

/// The BSON `DateTime` field MongoDB's TTL monitor reads: the expiry date
/// rounded *up* to the millisecond, so the monitor never removes a session
/// that is still active.
pub const EXPIRES_AT_FIELD: &str = "expires_at";

/// The exact expiry date in microseconds since the Unix epoch (a BSON
/// `Int64`): what `load` and `delete_expired` compare, since a BSON
/// `DateTime` only keeps milliseconds.
pub const EXPIRES_AT_MICROS_FIELD: &str = "expires_at_micros";

/// The session data: the bytes of [`session_core::codec::encode_data`] (MessagePack)
/// in a BSON binary (generic subtype).
pub const DATA_FIELD: &str = "data";

/// The server selection timeout [`MongoDBStore::connect`] and
/// [`bounded_timeouts`] set when the connection string sets none. The driver's
/// own default is 30 seconds.
pub const DEFAULT_SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// The connect timeout [`MongoDBStore::connect`] and [`bounded_timeouts`] set
/// when the connection string sets none. The driver's own default is 10
/// seconds.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How many fresh ids `create` tries before it gives up. A collision of 128
/// random bits is already unheard of; this only stops a server that answers
/// every insert with a duplicate-key error from looping forever.
const MAX_CREATE_ATTEMPTS: usize = 8;

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
///   expires_at: ISODate(..), expires_at_micros: NumberLong(..) }
/// ```
///
/// `create` inserts (a duplicate `_id` means a fresh id and another try),
/// `save` replaces with upsert, `load` asks only for a document whose
/// `expires_at_micros` is in the future, and
/// [`delete_expired`](ExpiredDeletion::delete_expired) is a `delete_many`.
/// Run [`migrate`](Self::migrate) once to create the TTL index that lets
/// MongoDB remove expired sessions by itself.
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

    /// Creates the TTL index on [`EXPIRES_AT_FIELD`] (`expireAfterSeconds:
    /// 0`, named [`TTL_INDEX_NAME`]), so MongoDB deletes expired sessions by
    /// itself about once a minute. Idempotent: creating an index that exists
    /// with the same options is a no-op on the server, so several processes
    /// may run it at start-up.
    #[tracing::instrument(level = "debug", skip_all, fields(collection = %self.collection.name()))]
    pub async fn migrate(&self) -> Result<()> {
        let index = IndexModel::builder()
            .keys(doc! { EXPIRES_AT_FIELD: 1 })
            .options(
                IndexOptions::builder()
                    .name(TTL_INDEX_NAME.to_owned())
                    .expire_after(Duration::ZERO)
                    .build(),
            )
            .build();
        self.collection
            .create_index(index)
            .await
            .map_err(backend_error)?;
        Ok(())
    }
}

/// The BSON `DateTime` for the TTL index: `micros` rounded up to the
/// millisecond.
fn ttl_date(micros: i64) -> DateTime {
    let millis = micros.div_euclid(1_000) + i64::from(micros.rem_euclid(1_000) != 0);
    DateTime::from_millis(millis)
}

fn to_document(record: &Record) -> Result<RawDocumentBuf> {
    let micros = codec::unix_micros(record.expiry_date);
    let data = Binary {
        subtype: BinarySubtype::Generic,
        bytes: codec::encode_data(&record.data)?,
    };
    Ok(rawdoc! {
        "_id": record.id.to_string(),
        // rawdoc! wants literal keys: they are the `*_FIELD` constants.
        "data": data,
        "expires_at": ttl_date(micros),
        "expires_at_micros": micros,
    })
}

fn from_document(id: Id, document: &RawDocumentBuf) -> Result<Record> {
    let data = document.get_binary(DATA_FIELD).map_err(Error::decode)?;
    let micros = document
        .get_i64(EXPIRES_AT_MICROS_FIELD)
        .map_err(Error::decode)?;
    let expiry_date = codec::from_unix_micros(micros)?;
    Ok(Record {
        id,
        data: codec::decode_data(data.bytes)?,
        expiry_date,
    })
}

fn by_id(id: &Id) -> Document {
    doc! { "_id": id.to_string() }
}

#[async_trait]
impl SessionStore for MongoDBStore {
    #[tracing::instrument(level = "debug", skip_all, fields(collection = %self.collection.name()))]
    async fn create(&self, record: &mut Record) -> Result<()> {
        let mut attempt = 1;
        loop {
            match self.collection.insert_one(to_document(record)?).await {
                Ok(_) => return Ok(()),
                Err(error) if is_duplicate_key(&error) && attempt < MAX_CREATE_ATTEMPTS => {
                    tracing::debug!("session id taken; retrying with a fresh id");
                    record.id = Id::default();
                    attempt += 1;
                }
                Err(error) => return Err(write_error(error)),
            }
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(collection = %self.collection.name()))]
    async fn save(&self, record: &Record) -> Result<()> {
        self.collection
            .replace_one(by_id(&record.id), to_document(record)?)
            .upsert(true)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(collection = %self.collection.name()))]
    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        let now = codec::unix_micros(OffsetDateTime::now_utc());
        let mut filter = by_id(session_id);
        filter.insert(EXPIRES_AT_MICROS_FIELD, doc! { "$gt": now });
        let found = self
            .collection
            .find_one(filter)
            .await
            .map_err(backend_error)?;
        found
            .map(|document| from_document(*session_id, &document))
            .transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(collection = %self.collection.name()))]
    async fn delete(&self, session_id: &Id) -> Result<()> {
        self.collection
            .delete_one(by_id(session_id))
            .await
            .map_err(write_error)?;
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for MongoDBStore {
    #[tracing::instrument(level = "debug", skip_all, fields(collection = %self.collection.name()))]
    async fn delete_expired(&self) -> Result<u64> {
        let now = codec::unix_micros(OffsetDateTime::now_utc());
        // The first condition is implied by the second (the TTL date is the
        // exact one rounded up) and lets the server use the TTL index; the
        // second keeps the cut exact to the microsecond.
        let filter = doc! {
            EXPIRES_AT_FIELD: { "$lte": ttl_date(now) },
            EXPIRES_AT_MICROS_FIELD: { "$lte": now },
        };
        let result = self
            .collection
            .delete_many(filter)
            .await
            .map_err(write_error)?;
        Ok(result.deleted_count)
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
        let document = to_document(&record).unwrap();
        let back = from_document(record.id, &document).unwrap();
        assert_eq!(back.data, record.data);
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
    fn wrong_field_types_are_decode_errors() {
        let id = Id::default();
        let document =
            rawdoc! { "_id": id.to_string(), "data": "text", "expires_at_micros": 1_i64 };
        assert!(from_document(id, &document).unwrap_err().is_decode());
        let document = rawdoc! { "_id": id.to_string(), "data": Binary { subtype: BinarySubtype::Generic, bytes: b"{}".to_vec() } };
        assert!(from_document(id, &document).unwrap_err().is_decode());
    }
}
