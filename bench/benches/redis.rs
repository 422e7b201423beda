//! `RedisStore` beside raw fred `GET`/`SET` of the same bytes (the floor) and
//! `tower-sessions-redis-store` (the peer), all on one fred pool against the
//! Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`).
//!
//! ```text
//! cargo bench -p bench --bench redis -- --warm-up-time 1 --measurement-time 3
//! ```

use std::sync::Arc;

use bench::{bench_target, criterion::Criterion, population, runtime, sample_record, Target};
use fred::{
    bytes::Bytes,
    prelude::{ClientLike, Config, Expiration, KeysInterface, Pool, SetOptions, Value},
};
use session_core::{codec, Id, Record, SessionStore};
use session_redis::RedisStore;
use tower_sessions_core::SessionStore as _;

/// Sessions each target holds before the run.
const POPULATION: usize = 1_000;
/// Connections in the pool every target shares.
const POOL_SIZE: usize = 4;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Ours: `session_redis::RedisStore`.
struct Ours {
    store: RedisStore<Pool>,
    ids: Vec<Id>,
    template: Record,
}

impl Ours {
    fn record(&self, id: Id) -> Record {
        Record {
            id,
            ..self.template.clone()
        }
    }
}

impl Target for Ours {
    async fn load(&self, key: u64) {
        let id = self.ids[(key % self.ids.len() as u64) as usize];
        self.store.load(&id).await.expect("load");
    }

    async fn save(&self, key: u64) {
        let record = self.record(self.ids[(key % self.ids.len() as u64) as usize]);
        self.store.save(&record).await.expect("save");
    }

    async fn create(&self) {
        let mut record = self.record(Id::default());
        self.store.create(&mut record).await.expect("create");
    }

    async fn delete(&self, key: u64) {
        let id = self.ids[(key % self.ids.len() as u64) as usize];
        self.store.delete(&id).await.expect("delete");
    }
}

/// The floor: fred `GET`/`SET .. PXAT`/`DEL` of the same encoded bytes,
/// with no encoding, decoding or expiry check.
struct Raw {
    pool: Pool,
    keys: Vec<String>,
    bytes: Bytes,
    expiry_ms: i64,
}

impl Raw {
    fn key(&self, key: u64) -> &str {
        &self.keys[(key % self.keys.len() as u64) as usize]
    }
}

impl Target for Raw {
    async fn load(&self, key: u64) {
        let _: Option<Bytes> = self.pool.get(self.key(key)).await.expect("GET");
    }

    async fn save(&self, key: u64) {
        let _: Value = self
            .pool
            .set(
                self.key(key),
                self.bytes.clone(),
                Some(Expiration::PXAT(self.expiry_ms)),
                None,
                false,
            )
            .await
            .expect("SET");
    }

    async fn create(&self) {
        let _: Value = self
            .pool
            .set(
                format!("bench:raw:{}", Id::default()),
                self.bytes.clone(),
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

fn benches(c: &mut Criterion) {
    let rt = runtime();
    let config = Config::from_url(&redis_url()).expect("valid REDIS_URL");
    let pool = session_redis::recommended_builder(config)
        .build_pool(POOL_SIZE)
        .expect("build the fred pool");
    rt.block_on(pool.init()).expect("connect to Redis");

    let template = sample_record();
    let ours = Ours {
        store: RedisStore::new(pool.clone()).with_key_prefix("bench:ours"),
        ids: population(POPULATION),
        template: template.clone(),
    };
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
            ours.save(key).await;
            raw.save(key).await;
            // The peer's save is `SET .. XX`: it only updates, so fill by create.
            let mut record = peer.record(peer.ids[key as usize]);
            peer.store.create(&mut record).await.expect("peer fill");
        }
    });

    let mut group = c.benchmark_group("redis");
    bench_target(&mut group, &rt, "ours", Arc::new(ours));
    bench_target(&mut group, &rt, "raw-fred", Arc::new(raw));
    bench_target(
        &mut group,
        &rt,
        "tower-sessions-redis-store",
        Arc::new(peer),
    );
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
}
