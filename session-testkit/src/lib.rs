#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod faulty;
mod macros;
mod redis_server;
pub mod suite;
mod traces;

pub use faulty::{Faults, FaultyStore, Hold, InjectedFault, Operation, When};
pub use redis_server::RedisServer;
pub use suite::Sweep;

#[doc(hidden)]
pub mod __private {

    use std::{future::Future, time::Duration};

    /// How long one conformance check may run before it fails as hung.
    pub const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

    /// Runs one check on a fresh two-worker runtime, so concurrency checks
    /// really run in parallel, and fails it if it hangs.
    pub fn run<F: Future<Output = ()>>(check: F) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("build a tokio runtime for the conformance check");
        runtime.block_on(async {
            if tokio::time::timeout(CHECK_TIMEOUT, check).await.is_err() {
                panic!("conformance check did not finish within {CHECK_TIMEOUT:?}");
            }
        });
    }
}
