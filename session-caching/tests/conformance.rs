//! The conformance suite on `NearCache` with each channel.

use std::time::Duration;

use session_caching::{LocalChannel, NearCache};
use session_memory::MemoryStore;

const LIVE: Duration = Duration::from_secs(10);

mod local {
    use super::*;
    session_testkit::conformance_suite!(|| async {
        let cache = NearCache::builder(MemoryStore::default(), LocalChannel::default())
            .build()
            .expect("build");
        assert!(cache.wait_live(LIVE).await);
        cache
    });
}

mod local_write_back {
    use super::*;
    session_testkit::conformance_suite!(|| async {
        let cache = NearCache::builder(MemoryStore::default(), LocalChannel::default())
            .touch_write_back(Duration::from_millis(50))
            .build()
            .expect("build");
        assert!(cache.wait_live(LIVE).await);
        cache
    });
}

mod local_bounded_by_bytes {
    use super::*;
    session_testkit::conformance_suite!(|| async {
        let cache = NearCache::builder(MemoryStore::default(), LocalChannel::default())
            .max_bytes(64 * 1024)
            .build()
            .expect("build");
        assert!(cache.wait_live(LIVE).await);
        cache
    });
}
