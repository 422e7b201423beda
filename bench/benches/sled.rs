//! `SledStore` beside raw sled `get`/`insert` of the same bytes (the floor),
//! each on its own temporary database. There is no tower-sessions sled store
//! on crates.io to compare with (no `tower-sessions-sled-store`; the sled
//! stores that exist target older tower-sessions releases or other
//! frameworks), so there is no peer.
//!
//! ```text
//! cargo bench -p bench --bench sled -- --warm-up-time 1 --measurement-time 3
//! ```

use std::sync::Arc;

use bench::{bench_target, criterion::Criterion, population, runtime, sample_record, Target};
use session_core::{codec, Id, Record, SessionStore};
use session_sled::{sled, SledStore};

/// Sessions each target holds before the run.
const POPULATION: usize = 1_000;

fn pick<T>(items: &[T], key: u64) -> &T {
    &items[(key % items.len() as u64) as usize]
}

fn temporary_db() -> sled::Db {
    sled::Config::new()
        .temporary(true)
        .open()
        .expect("open a temporary sled database")
}

/// Ours: `session_sled::SledStore` (both trees, one transaction per write).
struct Ours {
    store: SledStore,
    records: Vec<Record>,
    // Keeps the temporary database open for the whole run.
    _db: sled::Db,
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

/// The floor: one sled tree, `get`/`insert`/`remove` of the same encoded
/// bytes, with no encoding, decoding, expiry check or index.
struct Raw {
    tree: sled::Tree,
    keys: Vec<[u8; 16]>,
    bytes: sled::IVec,
}

impl Target for Raw {
    async fn load(&self, key: u64) {
        std::hint::black_box(self.tree.get(pick(&self.keys, key)).expect("get"));
    }

    async fn save(&self, key: u64) {
        self.tree
            .insert(pick(&self.keys, key), self.bytes.clone())
            .expect("insert");
    }

    async fn create(&self) {
        let key = Id::default().to_bytes();
        self.tree
            .compare_and_swap(key, None as Option<&[u8]>, Some(self.bytes.clone()))
            .expect("compare_and_swap")
            .expect("fresh key");
    }

    async fn delete(&self, key: u64) {
        self.tree.remove(pick(&self.keys, key)).expect("remove");
    }
}

fn main() {
    let runtime = runtime();
    let mut criterion = Criterion::default().configure_from_args();

    let records: Vec<Record> = population(POPULATION)
        .into_iter()
        .map(|id| Record {
            id,
            ..sample_record()
        })
        .collect();
    let db = temporary_db();
    let ours = Arc::new(Ours {
        store: SledStore::new(&db).expect("open the session trees"),
        records: records.clone(),
        _db: db,
    });
    let raw_db = temporary_db();
    let raw = Arc::new(Raw {
        tree: raw_db.open_tree("raw").expect("open the raw tree"),
        keys: records.iter().map(|r| r.id.to_bytes()).collect(),
        bytes: codec::encode_record(&records[0]).expect("encode").into(),
    });
    runtime.block_on(async {
        for record in &ours.records {
            ours.store.save(record).await.expect("fill ours");
        }
    });
    for key in &raw.keys {
        raw.tree.insert(key, raw.bytes.clone()).expect("fill raw");
    }

    let mut group = criterion.benchmark_group("sled");
    bench_target(&mut group, &runtime, "ours", ours);
    bench_target(&mut group, &runtime, "raw", raw);
    group.finish();
    criterion.final_summary();
}
