//! `MokaStore` beside raw moka `get`/`insert` of the same records (the
//! floor) and `tower-sessions-moka-store` (the peer), all holding the same
//! population of sessions in caches bounded to the same capacity, measured
//! interleaved cell by cell.
//!
//! A second group measures `save` with a sliding expiry (the date moves on
//! every save, as tower-sessions does), ours beside the peer, with
//! `MemoryStore` (a plain sharded map) as the reference for the least an
//! in-memory `save` can cost.
//!
//! ```text
//! cargo bench -p bench --bench moka
//! ```

use std::sync::Arc;

use bench::{
    peer_target, population, runtime, sample_record, Contenders, Settings, StoreTarget, Target,
    Workload,
};
use session_core::{
    time::{Duration, OffsetDateTime},
    Id, Record, SessionStore,
};
use session_memory::MemoryStore;
use session_moka::MokaStore;

// tower-sessions-moka-store 0.15 implements tower-sessions-core 0.14.
peer_target!(PeerTarget, tower_sessions_core);

/// Sessions each target holds before the run.
const POPULATION: usize = 10_000;
/// The capacity bound of every cache: far above what a run creates per
/// sample, as a real deployment would size it.
const CAPACITY: u64 = 100_000;

fn pick<T>(items: &[T], key: u64) -> &T {
    &items[(key % items.len() as u64) as usize]
}

/// The floor: a plain moka `sync::Cache<Id, Record>` (no expiry policy, no
/// expiry check), `get` and `insert` of the same records.
struct Raw {
    cache: moka::sync::Cache<Id, Record>,
    records: Vec<Record>,
}

impl Target for Raw {
    async fn load(&self, key: u64) {
        let id = pick(&self.records, key).id;
        std::hint::black_box(self.cache.get(&id));
    }

    async fn save(&self, key: u64) {
        let record = pick(&self.records, key);
        self.cache.insert(record.id, record.clone());
    }

    async fn create(&self) {
        let record = Record {
            id: Id::default(),
            ..self.records[0].clone()
        };
        self.cache.insert(record.id, record);
    }

    async fn delete(&self, key: u64) {
        self.cache.invalidate(&pick(&self.records, key).id);
    }
}

/// `save` with a sliding expiry: every save moves the expiry date later, so
/// ours cannot always replace the record in place. The record is copied and
/// its date bumped inside the target, for ours and the peer alike.
struct Sliding<T>(T);

impl Target for Sliding<StoreTarget<MokaStore>> {
    async fn load(&self, key: u64) {
        self.0.load(key).await;
    }

    async fn save(&self, key: u64) {
        let mut record = self.0.pick(key).clone();
        record.expiry_date = OffsetDateTime::now_utc() + Duration::days(1);
        self.0.store().save(&record).await.expect("save");
    }

    async fn create(&self) {
        self.0.create().await;
    }

    async fn delete(&self, key: u64) {
        self.0.delete(key).await;
    }
}

impl Target for Sliding<PeerTarget<tower_sessions_moka_store::MokaStore>> {
    async fn load(&self, key: u64) {
        self.0.load(key).await;
    }

    async fn save(&self, key: u64) {
        let mut record = self.0.pick(key).clone();
        record.expiry_date = OffsetDateTime::now_utc() + Duration::days(1);
        tower_sessions_core::SessionStore::save(&self.0.store, &record)
            .await
            .expect("save");
    }

    async fn create(&self) {
        self.0.create().await;
    }

    async fn delete(&self, key: u64) {
        self.0.delete(key).await;
    }
}

async fn ours() -> StoreTarget<MokaStore> {
    StoreTarget::populated(MokaStore::new(Some(CAPACITY)), POPULATION).await
}

async fn peer() -> PeerTarget<tower_sessions_moka_store::MokaStore> {
    PeerTarget::populated(
        tower_sessions_moka_store::MokaStore::new(Some(CAPACITY)),
        POPULATION,
    )
    .await
}

fn main() {
    if !Settings::is_bench_run() {
        return;
    }
    let runtime = runtime();

    let raw = Raw {
        cache: moka::sync::Cache::new(CAPACITY),
        records: population(POPULATION)
            .into_iter()
            .map(|id| Record {
                id,
                ..sample_record()
            })
            .collect(),
    };
    for record in &raw.records {
        raw.cache.insert(record.id, record.clone());
    }
    Contenders::new(&runtime)
        .add("ours", Arc::new(runtime.block_on(ours())))
        .add("raw", Arc::new(raw))
        .add("tower-sessions", Arc::new(runtime.block_on(peer())))
        .run("moka", &Workload::ALL);

    // Fresh caches holding only the population, like the `save` cells above.
    Contenders::new(&runtime)
        .add("ours", Arc::new(Sliding(runtime.block_on(ours()))))
        .add(
            "tower-sessions",
            Arc::new(Sliding(runtime.block_on(peer()))),
        )
        .add(
            "memory-store",
            Arc::new(
                runtime.block_on(StoreTarget::populated(MemoryStore::unbounded(), POPULATION)),
            ),
        )
        .run("moka, sliding expiry", &[Workload::Save]);
}
