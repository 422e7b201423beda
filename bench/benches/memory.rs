//! `MemoryStore` beside `tower-sessions-memory-store`, same workloads, same
//! run.

use std::sync::Arc;

use bench::{peer_target, runtime, Contenders, StoreTarget, Workload};
use criterion::{criterion_group, criterion_main, Criterion};
use session_memory::MemoryStore;

peer_target!(PeerTarget, tower_sessions_core_0_15);

const POPULATION: usize = 10_000;

fn memory(c: &mut Criterion) {
    let runtime = runtime();
    let ours =
        Arc::new(runtime.block_on(StoreTarget::populated(MemoryStore::default(), POPULATION)));
    let peer = Arc::new(runtime.block_on(PeerTarget::populated(
        tower_sessions_memory_store::MemoryStore::default(),
        POPULATION,
    )));
    let mut group = c.benchmark_group("memory");
    Contenders::new(&runtime)
        .add("ours", ours)
        .add("tower-sessions", peer)
        .run(&mut group, &Workload::ALL);
    group.finish();
}

criterion_group!(benches, memory);
criterion_main!(benches);
