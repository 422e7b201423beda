//! `SledStore` beside raw sled `get`/`insert` of the same bytes (the floor),
//! raw sled doing the equivalent tree operations in a transaction
//! (`raw-transaction`: the record and its expiry entry together),
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

/// The equivalent tree operations: what a session store on sled must at
/// least do, with no encoding or decoding. A record tree and an expiry index
/// tree (`expiry ‖ id`), changed together in one sled transaction, as ours
/// does (ours has a third tree, the user index, which these records without
/// a user do not touch). `update` and `touch` read the record in the
/// transaction before writing it, as a compare-and-swap must.
struct RawTransaction {
    records: sled::Tree,
    expiry: sled::Tree,
    keys: Vec<[u8; 16]>,
    bytes: sled::IVec,
}

type TxResult = sled::transaction::ConflictableTransactionResult<(), ()>;

impl RawTransaction {
    fn expiry_key(id: &[u8; 16]) -> [u8; 24] {
        let mut key = [0u8; 24];
        key[..8].copy_from_slice(&1_800_000_000u64.to_be_bytes());
        key[8..].copy_from_slice(id);
        key
    }

    /// Writes the record and moves its expiry entry; with `read`, reads the
    /// record first.
    fn write(&self, id: &[u8; 16], read: bool) {
        use sled::Transactional as _;
        let result: sled::transaction::TransactionResult<(), ()> = (&self.records, &self.expiry)
            .transaction(|(records, expiry)| -> TxResult {
                if read {
                    std::hint::black_box(records.get(id)?);
                }
                let key = Self::expiry_key(id);
                if records.insert(id, self.bytes.clone())?.is_some() {
                    expiry.remove(&key)?;
                }
                expiry.insert(&key, &[])?;
                Ok(())
            });
        result.expect("transaction");
    }
}

impl Target for RawTransaction {
    async fn load(&self, key: u64) {
        std::hint::black_box(self.records.get(pick(&self.keys, key)).expect("get"));
    }

    async fn save(&self, key: u64) {
        self.write(pick(&self.keys, key), false);
    }

    async fn create(&self) {
        use sled::Transactional as _;
        let id = Id::default().to_bytes();
        let result: sled::transaction::TransactionResult<(), ()> = (&self.records, &self.expiry)
            .transaction(|(records, expiry)| -> TxResult {
                if records.get(id)?.is_some() {
                    return sled::transaction::abort(());
                }
                records.insert(&id, self.bytes.clone())?;
                expiry.insert(&Self::expiry_key(&id), &[])?;
                Ok(())
            });
        result.expect("fresh id");
    }

    async fn delete(&self, key: u64) {
        use sled::Transactional as _;
        let id = pick(&self.keys, key);
        let result: sled::transaction::TransactionResult<(), ()> = (&self.records, &self.expiry)
            .transaction(|(records, expiry)| -> TxResult {
                if records.remove(id)?.is_some() {
                    expiry.remove(&Self::expiry_key(id))?;
                }
                Ok(())
            });
        result.expect("transaction");
    }

    async fn update(&self, key: u64) {
        self.write(pick(&self.keys, key), true);
    }

    async fn touch(&self, key: u64) {
        self.write(pick(&self.keys, key), true);
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

    let tx_db = temporary_db();
    let raw_transaction = RawTransaction {
        records: tx_db.open_tree("records").expect("open the records tree"),
        expiry: tx_db.open_tree("expiry").expect("open the expiry tree"),
        keys: raw.keys.clone(),
        bytes: raw.bytes.clone(),
    };
    for key in &raw_transaction.keys {
        raw_transaction.write(key, false);
    }

    Contenders::new(&runtime)
        .add("ours", Arc::new(ours))
        .add("raw", Arc::new(raw))
        .add("raw-transaction", Arc::new(raw_transaction))
        .run("sled", &Workload::ALL);
    // The temporary databases live until here.
    drop((db, raw_db, tx_db));
}
