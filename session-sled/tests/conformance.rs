//! The whole conformance suite on `SledStore`.

use session_sled::{sled, SledStore};

fn temporary_db() -> sled::Db {
    sled::Config::new()
        .temporary(true)
        .open()
        .expect("open a temporary sled database")
}

mod default_trees {
    session_testkit::conformance_suite!(|| async {
        session_sled::SledStore::new(&super::temporary_db()).expect("open the session trees")
    });
}

mod named_trees_beside_others {
    // Two stores in one database must not see each other's sessions or
    // sweep each other's records: the suite runs on one while the other
    // holds expired and active sessions of its own.
    use session_core::{time::Duration, time::OffsetDateTime, Record, SessionStore};

    session_testkit::conformance_suite!(|| async {
        let db = super::temporary_db();
        let neighbour = super::SledStore::with_tree_name(&db, "neighbour").expect("open trees");
        for ttl in [-Duration::hours(1), Duration::hours(1)] {
            neighbour
                .save(&Record::new(OffsetDateTime::now_utc() + ttl))
                .await
                .expect("neighbour save");
        }
        super::SledStore::with_tree_name(&db, "mine").expect("open trees")
    });
}
