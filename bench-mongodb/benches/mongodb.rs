//! `MongoDBStore` beside the raw driver doing `find_one`/`replace_one` by
//! `_id` (the floor) and `tower-sessions-mongodb-store` (the peer), same
//! workloads, same server, same run.
//!
//! ```text
//! MONGODB_URL=mongodb://127.0.0.1:27117 cargo bench -p bench-mongodb
//! ```
//!
//! Each target gets a collection of its own, dropped when the bench ends.

use std::{hint::black_box, sync::Arc};

use bench::{
    population, runtime, sample_record, Contenders, Settings, StoreTarget, Target, Workload,
};
use session_core::{codec, Id, Record};
use session_mongodb::{
    mongodb::{
        self,
        bson::{doc, rawdoc, spec::BinarySubtype, Binary, DateTime, RawDocumentBuf},
        Collection,
    },
    MongoDBStore,
};
use tower_sessions_core_0_11::{session, SessionStore as _};
use tower_sessions_mongodb_store::{mongodb as peer_mongodb, MongoDBStore as PeerStore};

const POPULATION: usize = 1_000;
const DATABASE: &str = "session_mongodb_bench";

fn url() -> String {
    std::env::var("MONGODB_URL").unwrap_or_else(|_| "mongodb://127.0.0.1:27117".to_owned())
}

/// Ours, through the harness's `StoreTarget`, on its own collection.
async fn ours() -> StoreTarget<MongoDBStore> {
    let store = MongoDBStore::connect(&url(), DATABASE)
        .await
        .expect("connect")
        .with_collection_name("ours");
    store.collection().drop().await.expect("drop");
    store.migrate().await.expect("migrate");
    StoreTarget::populated(store, POPULATION).await
}

/// The driver alone: documents of the same shape and size with the same TTL
/// index, built from bytes encoded once, read back as raw BSON without
/// decoding the data or filtering on the expiry.
struct Raw {
    collection: Collection<RawDocumentBuf>,
    ids: Vec<String>,
    data: Vec<u8>,
    expires_at: DateTime,
    expires_at_micros: i64,
}

impl Raw {
    async fn new() -> Self {
        let mut options = mongodb::options::ClientOptions::parse(url())
            .await
            .expect("parse");
        session_mongodb::bounded_timeouts(&mut options);
        let client = mongodb::Client::with_options(options).expect("client");
        let collection: Collection<RawDocumentBuf> = client.database(DATABASE).collection("raw");
        collection.drop().await.expect("drop");
        // The same TTL index as ours, so a write maintains the same indexes.
        let ttl = mongodb::IndexModel::builder()
            .keys(doc! { "expires_at": 1 })
            .options(
                mongodb::options::IndexOptions::builder()
                    .expire_after(std::time::Duration::ZERO)
                    .build(),
            )
            .build();
        collection.create_index(ttl).await.expect("TTL index");
        let template = sample_record();
        let micros = (template.expiry_date.unix_timestamp_nanos() / 1_000) as i64;
        let raw = Self {
            collection,
            ids: population(POPULATION)
                .iter()
                .map(ToString::to_string)
                .collect(),
            data: codec::encode_data(&template.data).expect("encode"),
            expires_at: DateTime::from_millis(micros / 1_000 + 1),
            expires_at_micros: micros,
        };
        for key in 0..POPULATION as u64 {
            raw.save(key).await;
        }
        raw
    }

    fn document(&self, id: &str) -> RawDocumentBuf {
        rawdoc! {
            "_id": id,
            "data": Binary { subtype: BinarySubtype::Generic, bytes: self.data.clone() },
            "expires_at": self.expires_at,
            "expires_at_micros": self.expires_at_micros,
        }
    }

    fn pick(&self, key: u64) -> &str {
        &self.ids[key as usize % self.ids.len()]
    }
}

impl Target for Raw {
    async fn load(&self, key: u64) {
        let found = self
            .collection
            .find_one(doc! { "_id": self.pick(key) })
            .await
            .expect("find_one");
        black_box(found);
    }
    async fn save(&self, key: u64) {
        let id = self.pick(key);
        self.collection
            .replace_one(doc! { "_id": id }, self.document(id))
            .upsert(true)
            .await
            .expect("replace_one");
    }
    async fn create(&self) {
        let id = Id::default().to_string();
        self.collection
            .insert_one(self.document(&id))
            .await
            .expect("insert_one");
    }
    async fn delete(&self, key: u64) {
        self.collection
            .delete_one(doc! { "_id": self.pick(key) })
            .await
            .expect("delete_one");
    }
}

/// tower-sessions-mongodb-store 0.11 (its latest release; on mongodb 2.x and
/// tower-sessions-core 0.11, whose `SessionStore` has no `create`: a new
/// session is a `save` under a fresh id there).
struct Peer {
    store: PeerStore,
    records: Vec<session::Record>,
    template: session::Record,
}

fn to_peer(record: &Record) -> session::Record {
    session::Record {
        id: session::Id(record.id.0),
        data: record.data.clone(),
        expiry_date: record.expiry_date,
    }
}

impl Peer {
    async fn new() -> Self {
        let mut options = peer_mongodb::options::ClientOptions::parse(url())
            .await
            .expect("parse");
        options.server_selection_timeout = Some(session_mongodb::DEFAULT_SERVER_SELECTION_TIMEOUT);
        options.connect_timeout = Some(session_mongodb::DEFAULT_CONNECT_TIMEOUT);
        let client = peer_mongodb::Client::with_options(options).expect("client");
        // The peer's collection name is fixed ("sessions"): a database of its own.
        let database = format!("{DATABASE}_peer");
        client.database(&database).drop(None).await.expect("drop");
        let store = PeerStore::new(client, database);
        let template = to_peer(&sample_record());
        let records: Vec<session::Record> = population(POPULATION)
            .into_iter()
            .map(|id| session::Record {
                id: session::Id(id.0),
                ..template.clone()
            })
            .collect();
        for record in &records {
            store.save(record).await.expect("populate");
        }
        Self {
            store,
            records,
            template,
        }
    }

    fn pick(&self, key: u64) -> &session::Record {
        &self.records[key as usize % self.records.len()]
    }
}

impl Target for Peer {
    async fn load(&self, key: u64) {
        black_box(self.store.load(&self.pick(key).id).await.expect("load"));
    }
    async fn save(&self, key: u64) {
        self.store.save(self.pick(key)).await.expect("save");
    }
    async fn create(&self) {
        let record = session::Record {
            id: session::Id::default(),
            ..self.template.clone()
        };
        self.store.save(&record).await.expect("create");
    }
    async fn delete(&self, key: u64) {
        self.store.delete(&self.pick(key).id).await.expect("delete");
    }
}

fn main() {
    if !Settings::is_bench_run() {
        return;
    }
    let runtime = runtime();
    let ours = Arc::new(runtime.block_on(ours()));
    let raw = Arc::new(runtime.block_on(Raw::new()));
    let peer = Arc::new(runtime.block_on(Peer::new()));

    // Contenders interleaves the three targets cell by cell, so the test
    // server's drift (it slows down as collections grow) hits all alike.
    Contenders::new(&runtime)
        .add("ours", Arc::clone(&ours))
        .add("raw-driver", Arc::clone(&raw))
        .add("tower-sessions", Arc::clone(&peer))
        .run("mongodb", &Workload::ALL);

    runtime.block_on(async {
        ours.store().collection().drop().await.expect("drop ours");
        raw.collection.drop().await.expect("drop raw");
    });
}
