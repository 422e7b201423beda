//! `MemoryStore` beside `tower-sessions-memory-store` and a floor (a plain
//! concurrent map of records: 64 shards of `RwLock<HashMap<Id, Record>>`,
//! returning an owned copy on load, with no expiry check, version or user
//! index), same workloads, same run.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use bench::{
    peer_target, population, runtime, sample_record, Contenders, Settings, StoreTarget, Target,
    Workload,
};
use session_core::{Id, Record};
use session_memory::MemoryStore;

/// The floor: what any in-memory store must at least do.
struct Floor {
    shards: Vec<RwLock<HashMap<Id, Record>>>,
    records: Vec<Record>,
    template: Record,
}

impl Floor {
    fn populated(count: usize) -> Self {
        let template = sample_record();
        let shards = (0..64).map(|_| RwLock::new(HashMap::new())).collect();
        let records: Vec<Record> = population(count)
            .into_iter()
            .map(|id| Record {
                id,
                ..template.clone()
            })
            .collect();
        let floor = Self {
            shards,
            records,
            template,
        };
        for record in &floor.records {
            floor.insert(record.clone());
        }
        floor
    }

    fn shard(&self, id: &Id) -> &RwLock<HashMap<Id, Record>> {
        let hash = u128::from_le_bytes(id.to_bytes()) as usize;
        &self.shards[hash % self.shards.len()]
    }

    fn insert(&self, record: Record) {
        let shard = self.shard(&record.id);
        shard.write().expect("shard").insert(record.id, record);
    }

    fn pick(&self, key: u64) -> &Record {
        &self.records[key as usize % self.records.len()]
    }
}

impl Target for Floor {
    async fn load(&self, key: u64) {
        let id = self.pick(key).id;
        let copy = self.shard(&id).read().expect("shard").get(&id).cloned();
        std::hint::black_box(copy);
    }
    async fn save(&self, key: u64) {
        self.insert(self.pick(key).clone());
    }
    async fn create(&self) {
        self.insert(Record {
            id: Id::default(),
            ..self.template.clone()
        });
    }
    async fn delete(&self, key: u64) {
        let id = self.pick(key).id;
        self.shard(&id).write().expect("shard").remove(&id);
    }
}

peer_target!(PeerTarget, tower_sessions_core_0_15);

const POPULATION: usize = 10_000;

fn main() {
    if !Settings::is_bench_run() {
        return;
    }
    let runtime = runtime();
    let ours =
        Arc::new(runtime.block_on(StoreTarget::populated(MemoryStore::unbounded(), POPULATION)));
    let peer = Arc::new(runtime.block_on(PeerTarget::populated(
        tower_sessions_memory_store::MemoryStore::default(),
        POPULATION,
    )));
    Contenders::new(&runtime)
        .add("ours", ours)
        .add("tower-sessions", peer)
        .add("floor", Arc::new(Floor::populated(POPULATION)))
        .run("memory", &Workload::ALL);
}
