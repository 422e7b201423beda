//! `MokaStore` beside raw moka `get`/`insert` of the same records (the
//! floor) and `tower-sessions-moka-store` (the peer), all holding the same
//! population of sessions in a cache bounded to the same capacity.
//!
//! ```text
//! cargo bench -p bench --bench moka -- --warm-up-time 1 --measurement-time 3
//! ```

use std::sync::Arc;

use bench::{
    bench_target, bench_workload, criterion::Criterion, population, runtime, sample_record, Target,
    Workload,
};
use session_core::{
    time::{Duration, OffsetDateTime},
    Id, Record, SessionStore,
};
use session_moka::MokaStore;
use tower_sessions_core::{
    session::{Id as PeerId, Record as PeerRecord},
    SessionStore as _,
};

/// Sessions each target holds before the run.
const POPULATION: usize = 1_000;
/// The capacity bound of every cache: far above what a run creates per
/// sample, as a real deployment would size it.
const CAPACITY: u64 = 100_000;

fn pick<T>(items: &[T], key: u64) -> &T {
    &items[(key % items.len() as u64) as usize]
}

/// Ours: `session_moka::MokaStore`.
struct Ours {
    store: MokaStore,
    records: Vec<Record>,
}

impl Target for Ours {
    async fn load(&self, key: u64) {
        let id = pick(&self.records, key).id;
        self.store.load(&id).await.expect("load");
    }

    async fn save(&self, key: u64) {
        self.store
            .save(pick(&self.records, key))
            .await
            .expect("save");
    }

    async fn create(&self) {
        let mut record = Record {
            id: Id::default(),
            ..self.records[0].clone()
        };
        self.store.create(&mut record).await.expect("create");
    }

    async fn delete(&self, key: u64) {
        let id = pick(&self.records, key).id;
        self.store.delete(&id).await.expect("delete");
    }
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

/// The peer: `tower_sessions_moka_store::MokaStore` (moka's `future::Cache`).
struct Peer {
    store: tower_sessions_moka_store::MokaStore,
    records: Vec<PeerRecord>,
}

impl Target for Peer {
    async fn load(&self, key: u64) {
        let id = pick(&self.records, key).id;
        self.store.load(&id).await.expect("load");
    }

    async fn save(&self, key: u64) {
        self.store
            .save(pick(&self.records, key))
            .await
            .expect("save");
    }

    async fn create(&self) {
        let mut record = PeerRecord {
            id: PeerId::default(),
            ..self.records[0].clone()
        };
        self.store.create(&mut record).await.expect("create");
    }

    async fn delete(&self, key: u64) {
        let id = pick(&self.records, key).id;
        self.store.delete(&id).await.expect("delete");
    }
}

/// `save` with a sliding expiry, as tower-sessions does: every save moves
/// the expiry date a little later, so ours takes its moka-insert path. The
/// record is copied and its date bumped in the target, for ours and the peer
/// alike.
struct Sliding<T>(Arc<T>);

impl Target for Sliding<Ours> {
    async fn load(&self, key: u64) {
        self.0.load(key).await;
    }

    async fn save(&self, key: u64) {
        let mut record = pick(&self.0.records, key).clone();
        record.expiry_date = OffsetDateTime::now_utc() + Duration::days(1);
        self.0.store.save(&record).await.expect("save");
    }

    async fn create(&self) {
        self.0.create().await;
    }

    async fn delete(&self, key: u64) {
        self.0.delete(key).await;
    }
}

impl Target for Sliding<Peer> {
    async fn load(&self, key: u64) {
        self.0.load(key).await;
    }

    async fn save(&self, key: u64) {
        let mut record = pick(&self.0.records, key).clone();
        record.expiry_date = OffsetDateTime::now_utc() + Duration::days(1);
        self.0.store.save(&record).await.expect("save");
    }

    async fn create(&self) {
        self.0.create().await;
    }

    async fn delete(&self, key: u64) {
        self.0.delete(key).await;
    }
}

/// A reference for `save`: `session_memory::MemoryStore`, a plain sharded
/// map, whose save is a copy of the record, a map insert and the drop of the
/// copy it replaces: about the least any in-memory `save` can do.
struct PlainMap {
    store: session_memory::MemoryStore,
    records: Vec<Record>,
}

impl Target for PlainMap {
    async fn load(&self, key: u64) {
        let id = pick(&self.records, key).id;
        self.store.load(&id).await.expect("load");
    }

    async fn save(&self, key: u64) {
        self.store
            .save(pick(&self.records, key))
            .await
            .expect("save");
    }

    async fn create(&self) {
        let mut record = Record {
            id: Id::default(),
            ..self.records[0].clone()
        };
        self.store.create(&mut record).await.expect("create");
    }

    async fn delete(&self, key: u64) {
        let id = pick(&self.records, key).id;
        self.store.delete(&id).await.expect("delete");
    }
}

fn records() -> Vec<Record> {
    population(POPULATION)
        .into_iter()
        .map(|id| Record {
            id,
            ..sample_record()
        })
        .collect()
}

fn fresh_ours(runtime: &tokio::runtime::Runtime) -> Arc<Ours> {
    let ours = Ours {
        store: MokaStore::new(Some(CAPACITY)),
        records: records(),
    };
    runtime.block_on(async {
        for record in &ours.records {
            ours.store.save(record).await.expect("fill ours");
        }
    });
    Arc::new(ours)
}

fn fresh_peer(runtime: &tokio::runtime::Runtime) -> Arc<Peer> {
    let peer = Peer {
        store: tower_sessions_moka_store::MokaStore::new(Some(CAPACITY)),
        records: records()
            .into_iter()
            .map(|r| PeerRecord {
                id: PeerId(r.id.0),
                data: r.data,
                expiry_date: r.expiry_date,
            })
            .collect(),
    };
    runtime.block_on(async {
        for record in &peer.records {
            peer.store.save(record).await.expect("fill peer");
        }
    });
    Arc::new(peer)
}

fn main() {
    let runtime = runtime();
    let mut criterion = Criterion::default().configure_from_args();

    let ours = fresh_ours(&runtime);
    let raw = Arc::new(Raw {
        cache: moka::sync::Cache::new(CAPACITY),
        records: records(),
    });
    for record in &raw.records {
        raw.cache.insert(record.id, record.clone());
    }
    let peer = fresh_peer(&runtime);
    // The sliding runs get caches of their own, holding only the population
    // like the `save` runs, not what the `create` runs left behind.
    let ours_sliding = Arc::new(Sliding(fresh_ours(&runtime)));
    let peer_sliding = Arc::new(Sliding(fresh_peer(&runtime)));

    let plain_map = Arc::new(PlainMap {
        store: session_memory::MemoryStore::default(),
        records: records(),
    });
    runtime.block_on(async {
        for record in &plain_map.records {
            plain_map.store.save(record).await.expect("fill the map");
        }
    });

    let mut group = criterion.benchmark_group("moka");
    bench_target(&mut group, &runtime, "ours", ours);
    bench_target(&mut group, &runtime, "raw", raw);
    bench_target(&mut group, &runtime, "peer", peer);
    let save = Workload::Save;
    bench_workload(&mut group, &runtime, "ours_sliding", ours_sliding, save);
    bench_workload(&mut group, &runtime, "peer_sliding", peer_sliding, save);
    bench_workload(&mut group, &runtime, "plain_map", plain_map, save);
    group.finish();
    criterion.final_summary();
}
