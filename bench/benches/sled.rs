//! `SledStore` beside raw sled `get`/`insert` of the same bytes (the floor),
//! each on its own temporary database, measured interleaved cell by cell.
//! No peer: no tower-sessions store on sled is known to us (none among the
//! tower-sessions stores this workspace uses; crates.io search was not
//! reachable to look further).
//!
//! ```text
//! cargo bench -p bench --bench sled
//! ```

use std::sync::Arc;

use bench::{
    population, runtime, sample_record, Contenders, Settings, StoreTarget, Target, Workload,
};
use session_core::{codec, Id};
use session_sled::{sled, SledStore};

/// Sessions each target holds before the run.
const POPULATION: usize = 10_000;

fn pick<T>(items: &[T], key: u64) -> &T {
    &items[(key % items.len() as u64) as usize]
}

fn temporary_db() -> sled::Db {
    sled::Config::new()
        .temporary(true)
        .open()
        .expect("open a temporary sled database")
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
    if !Settings::is_bench_run() {
        return;
    }
    let runtime = runtime();

    let db = temporary_db();
    let store = SledStore::new(&db).expect("open the session trees");
    let ours = runtime.block_on(StoreTarget::populated(store, POPULATION));
    let raw_db = temporary_db();
    let raw = Raw {
        tree: raw_db.open_tree("raw").expect("open the raw tree"),
        keys: population(POPULATION)
            .iter()
            .map(|id| id.to_bytes())
            .collect(),
        bytes: codec::encode_record(&sample_record())
            .expect("encode")
            .into(),
    };
    for key in &raw.keys {
        raw.tree.insert(key, raw.bytes.clone()).expect("fill raw");
    }

    Contenders::new(&runtime)
        .add("ours", Arc::new(ours))
        .add("raw", Arc::new(raw))
        .run("sled", &Workload::ALL);
    // Both temporary databases live until here.
    drop((db, raw_db));
}
