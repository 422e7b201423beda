//! `RedisStore` beside raw fred `GET`/`SET` of the same bytes (the floor) and
//! `tower-sessions-redis-store` (the peer), all on one fred pool against the
//! Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`).
//!
//! ```text
//! cargo bench -p bench --bench redis
//! ```

use std::sync::Arc;

use bench::{
    population, runtime, sample_record, Contenders, Settings, StoreTarget, Target, Workload,
};
use fred::{
    bytes::Bytes,
    prelude::{ClientLike, Config, Expiration, KeysInterface, Pool, SetOptions, Value},
    types::{ClusterHash, CustomCommand},
};
use session_core::{codec, Id};
use session_redis::RedisStore;
use tower_sessions_core::SessionStore as _;

/// Sessions each target holds before the run.
const POPULATION: usize = 1_000;
/// Connections in the pool every target shares.
const POOL_SIZE: usize = 4;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The floor: fred `GET`/`SET .. PXAT`/`DEL` of the same encoded bytes,
/// with no encoding, decoding or expiry check. With `codec` set, it also
/// encodes the picked session's record before each write (one record per
/// session, as an application saves the record its handler changed, not one
/// record kept hot in the cache) and decodes what each read returns, with
/// the workspace's codec: the work any store must add to the floor, so the
/// gap between this and ours is what the store itself costs.
struct Raw {
    pool: Pool,
    keys: Vec<String>,
    bytes: Bytes,
    expiry_ms: i64,
    codec: Option<Vec<session_core::Record>>,
}

impl Raw {
    fn index(&self, key: u64) -> usize {
        (key % self.keys.len() as u64) as usize
    }

    fn key(&self, key: u64) -> &str {
        &self.keys[self.index(key)]
    }

    fn value(&self, key: u64) -> Bytes {
        match &self.codec {
            Some(records) => {
                Bytes::from(codec::encode_record(&records[self.index(key)]).expect("encode"))
            }
            None => self.bytes.clone(),
        }
    }
}

impl Target for Raw {
    async fn load(&self, key: u64) {
        let bytes: Option<Bytes> = self.pool.get(self.key(key)).await.expect("GET");
        if let (Some(_), Some(bytes)) = (&self.codec, bytes) {
            std::hint::black_box(codec::decode_record(&bytes).expect("decode"));
        }
    }

    async fn save(&self, key: u64) {
        let _: Value = self
            .pool
            .set(
                self.key(key),
                self.value(key),
                Some(Expiration::PXAT(self.expiry_ms)),
                None,
                false,
            )
            .await
            .expect("SET");
    }

    async fn create(&self) {
        let id = Id::default();
        let _: Value = self
            .pool
            .set(
                format!("bench:raw:{id}"),
                self.value(id.0 as u64),
                Some(Expiration::PXAT(self.expiry_ms)),
                Some(SetOptions::NX),
                false,
            )
            .await
            .expect("SET NX");
    }

    async fn delete(&self, key: u64) {
        let _: i64 = self.pool.del(self.key(key)).await.expect("DEL");
    }
}

/// The peer: `tower-sessions-redis-store` (MessagePack, `SET .. XX` saves).
///
/// Not `bench::peer_target!`: that fills the population with `save`, which
/// for this peer is `SET .. XX` and writes nothing to an empty Redis, and it
/// fails on a save after the mixed workload's deletes.
struct Peer {
    store: tower_sessions_redis_store::RedisStore<Pool>,
    ids: Vec<tower_sessions_core::session::Id>,
    template: tower_sessions_core::session::Record,
}

impl Peer {
    fn record(&self, id: tower_sessions_core::session::Id) -> tower_sessions_core::session::Record {
        tower_sessions_core::session::Record {
            id,
            ..self.template.clone()
        }
    }
}

impl Target for Peer {
    async fn load(&self, key: u64) {
        let id = self.ids[(key % self.ids.len() as u64) as usize];
        self.store.load(&id).await.expect("peer load");
    }

    async fn save(&self, key: u64) {
        let record = self.record(self.ids[(key % self.ids.len() as u64) as usize]);
        // The peer saves with `SET .. XX`: once the mixed workload deleted
        // the session, Redis replies nil, which the peer fails to read as a
        // bool (fred without `default-nil-types`). The round trip was made;
        // count it like the others.
        let _ = self.store.save(&record).await;
    }

    async fn create(&self) {
        let mut record = self.record(tower_sessions_core::session::Id::default());
        self.store.create(&mut record).await.expect("peer create");
    }

    async fn delete(&self, key: u64) {
        let id = self.ids[(key % self.ids.len() as u64) as usize];
        self.store.delete(&id).await.expect("peer delete");
    }
}

/// The logical database the bench fills and empties, so its millions of keys
/// never mix with anything else on the server.
const BENCH_DATABASE: u8 = 15;

async fn flush_bench_database(pool: &Pool) {
    // ASYNC: millions of keys would outlast the command timeout.
    let flushdb = CustomCommand::new_static("FLUSHDB", ClusterHash::FirstKey, false);
    let _: Value = pool
        .custom(flushdb, vec![Value::from("ASYNC")])
        .await
        .expect("empty the bench database");
}

fn main() {
    if !Settings::is_bench_run() {
        return;
    }
    let rt = runtime();
    let mut config = Config::from_url(&redis_url()).expect("valid REDIS_URL");
    config.database = Some(BENCH_DATABASE);
    let pool = session_redis::recommended_builder(config)
        .build_pool(POOL_SIZE)
        .expect("build the fred pool");
    rt.block_on(pool.init()).expect("connect to Redis");
    rt.block_on(flush_bench_database(&pool));
    let pool_for_cleanup = pool.clone();

    let template = sample_record();
    let ours = rt.block_on(StoreTarget::populated(
        RedisStore::new(pool.clone()).with_key_prefix("bench:ours"),
        POPULATION,
    ));
    let bytes = Bytes::from(codec::encode_record(&template).expect("encode"));
    let expiry_ms = (template.expiry_date.unix_timestamp_nanos() / 1_000_000) as i64 + 1;
    let raw = Raw {
        pool: pool.clone(),
        keys: population(POPULATION)
            .iter()
            .map(|id| format!("bench:raw:{id}"))
            .collect(),
        bytes,
        expiry_ms,
        codec: None,
    };
    let raw_codec = Raw {
        keys: raw
            .keys
            .iter()
            .map(|key| key.replace("bench:raw:", "bench:raw-codec:"))
            .collect(),
        bytes: raw.bytes.clone(),
        pool: raw.pool.clone(),
        expiry_ms,
        codec: Some(
            population(POPULATION)
                .into_iter()
                .map(|id| session_core::Record {
                    id,
                    ..template.clone()
                })
                .collect(),
        ),
    };
    let peer = Peer {
        store: tower_sessions_redis_store::RedisStore::new(pool),
        ids: (0..POPULATION)
            .map(|_| tower_sessions_core::session::Id::default())
            .collect(),
        template: tower_sessions_core::session::Record {
            id: tower_sessions_core::session::Id::default(),
            data: template.data.clone(),
            expiry_date: template.expiry_date,
        },
    };
    rt.block_on(async {
        for key in 0..POPULATION as u64 {
            raw.save(key).await;
            raw_codec.save(key).await;
            // The peer's save is `SET .. XX`: it only updates, so fill by create.
            let mut record = peer.record(peer.ids[key as usize]);
            peer.store.create(&mut record).await.expect("peer fill");
        }
    });

    Contenders::new(&rt)
        .add("ours", Arc::new(ours))
        .add("raw-fred", Arc::new(raw))
        .add("raw-fred+codec", Arc::new(raw_codec))
        .add("tower-sessions-redis-store", Arc::new(peer))
        .run("redis", &Workload::ALL);
    rt.block_on(flush_bench_database(&pool_for_cleanup));
}
