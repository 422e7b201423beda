//! `MemoryStore` beside `tower-sessions-memory-store`, same workloads, same
//! run.

use std::{hint::black_box, sync::Arc};

use bench::{population, runtime, sample_record, Contenders, Target, Workload};
use criterion::{criterion_group, criterion_main, Criterion};
use session_core::{Id, Record, SessionStore as _};
use session_memory::MemoryStore;
use tower_sessions_core_0_15::{session, SessionStore as _};
use tower_sessions_memory_store::MemoryStore as PeerStore;

const POPULATION: usize = 10_000;

struct Ours {
    store: MemoryStore,
    records: Vec<Record>,
    template: Record,
}

impl Ours {
    async fn new() -> Self {
        let store = MemoryStore::default();
        let template = sample_record();
        let records: Vec<Record> = population(POPULATION)
            .into_iter()
            .map(|id| Record {
                id,
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

    fn pick(&self, key: u64) -> &Record {
        &self.records[key as usize % self.records.len()]
    }
}

impl Target for Ours {
    async fn load(&self, key: u64) {
        black_box(self.store.load(&self.pick(key).id).await.expect("load"));
    }
    async fn save(&self, key: u64) {
        self.store.save(self.pick(key)).await.expect("save");
    }
    async fn create(&self) {
        let mut record = Record {
            id: Id::default(),
            ..self.template.clone()
        };
        self.store.create(&mut record).await.expect("create");
    }
    async fn delete(&self, key: u64) {
        self.store.delete(&self.pick(key).id).await.expect("delete");
    }
}

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
        let store = PeerStore::default();
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
        let mut record = session::Record {
            id: session::Id::default(),
            ..self.template.clone()
        };
        self.store.create(&mut record).await.expect("create");
    }
    async fn delete(&self, key: u64) {
        self.store.delete(&self.pick(key).id).await.expect("delete");
    }
}

fn memory(c: &mut Criterion) {
    let runtime = runtime();
    let ours = Arc::new(runtime.block_on(Ours::new()));
    let peer = Arc::new(runtime.block_on(Peer::new()));
    let mut group = c.benchmark_group("memory");
    Contenders::new(&runtime)
        .add("ours", ours)
        .add("tower-sessions", peer)
        .run(&mut group, &Workload::ALL);
    group.finish();
}

criterion_group!(benches, memory);
criterion_main!(benches);
