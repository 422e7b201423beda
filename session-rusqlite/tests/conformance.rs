//! The workspace's conformance suite against real SQLite databases.

mod common;

/// The default set-up: a file in WAL mode, one writer and four readers.
mod file {
    session_testkit::conformance_suite!(|| async { super::common::temp_store().await });
}

/// Reads served by the writer: a file opened with no reader connections.
mod file_without_readers {
    use session_rusqlite::{RusqliteOptions, RusqliteStore};

    use super::common::{db_path, temp_dir, TempStore};

    session_testkit::conformance_suite!(|| async {
        let dir = temp_dir();
        let store = RusqliteStore::open_with(db_path(&dir), RusqliteOptions::new().readers(0))
            .await
            .expect("open the database");
        store.migrate().await.expect("migrate");
        TempStore { store, dir }
    });
}

/// One in-memory connection handed over with `from_connection`, and a
/// smallest possible sweep batch.
mod in_memory_connection {
    use session_rusqlite::{rusqlite::Connection, RusqliteStore};

    session_testkit::conformance_suite!(|| async {
        let connection = Connection::open_in_memory().expect("open an in-memory database");
        let store = RusqliteStore::from_connection(connection)
            .with_table_name("memory_sessions")
            .expect("valid name")
            .with_delete_batch_size(1);
        store.migrate().await.expect("migrate");
        store
    });
}
