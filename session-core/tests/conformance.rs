//! The conformance suite on the pointer stores and the caching store.

use std::sync::Arc;

use session_core::{CachingSessionStore, SessionStore};
use session_memory::MemoryStore;

mod arc_dyn {
    use super::*;
    // `Arc<dyn SessionStore>` has no `ExpiredDeletion`.
    session_testkit::conformance_suite!(
        || async { Arc::new(MemoryStore::default()) as Arc<dyn SessionStore> },
        sweep = none
    );
}

mod arc_dyn_expired_deletion {
    use session_core::ExpiredDeletion;

    use super::*;
    session_testkit::conformance_suite!(|| async {
        Arc::new(MemoryStore::default()) as Arc<dyn ExpiredDeletion>
    });
}

mod boxed {
    use super::*;
    session_testkit::conformance_suite!(|| async { Box::new(MemoryStore::default()) });
}

mod caching {
    use super::*;
    session_testkit::conformance_suite!(|| async {
        CachingSessionStore::new(MemoryStore::default(), MemoryStore::default())
    });
}
