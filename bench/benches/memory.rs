//! `MemoryStore` beside `tower-sessions-memory-store`, same workloads, same
//! run.

use std::sync::Arc;

use bench::{peer_target, runtime, Contenders, Settings, StoreTarget, Workload};
use session_memory::MemoryStore;

peer_target!(PeerTarget, tower_sessions_core_0_15);

const POPULATION: usize = 10_000;

fn main() {
    if !Settings::is_bench_run() {
        return;
    }
    let runtime = runtime();
    let ours =
        Arc::new(runtime.block_on(StoreTarget::populated(MemoryStore::default(), POPULATION)));
    let peer = Arc::new(runtime.block_on(PeerTarget::populated(
        tower_sessions_memory_store::MemoryStore::default(),
        POPULATION,
    )));
    Contenders::new(&runtime)
        .add("ours", ours)
        .add("tower-sessions", peer)
        .run("memory", &Workload::ALL);
}
