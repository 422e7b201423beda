//! The table, its validated name, the SQL run against it, and `migrate`.
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS "sessions" (
//!     id          TEXT    PRIMARY KEY NOT NULL, -- the Id's 22-character text form
//!     data        BLOB    NOT NULL,             -- session_core::codec::encode_data
//!     expiry_date INTEGER NOT NULL,             -- microseconds since the Unix epoch, UTC
//!     version     INTEGER NOT NULL DEFAULT 0,   -- Record::version, 0 ..= i64::MAX
//!     user_id     TEXT                          -- Record::user_id, compared BINARY (exactly)
//! );
//! CREATE INDEX IF NOT EXISTS "sessions_expiry_date_idx" ON "sessions" (expiry_date);
//! CREATE INDEX IF NOT EXISTS "sessions_user_id_idx" ON "sessions" (user_id)
//!     WHERE user_id IS NOT NULL;
//! ```
//!
//! The expiry is an integer count of microseconds since the Unix epoch, so
//! the `expiry_date > ?` filter compares instants exactly whatever UTC offset
//! the application's `OffsetDateTime` carried (text timestamps compare as
//! strings, which goes wrong as soon as two offsets meet).
//!
//! The user index is an ordinary SQLite index on the sessions table: SQLite
//! updates it in the same statement, and so the same transaction, as the row
//! it indexes. It is partial because most sessions have no user, and the
//! lookups (`user_id = ?`) imply `user_id IS NOT NULL`, so SQLite uses it.

use rusqlite::{Connection, TransactionBehavior};
use session_core::support::check_identifier;

use crate::RusqliteStoreError;

/// The table name used unless [`RusqliteStore::with_table_name`](crate::RusqliteStore::with_table_name) says otherwise.
pub(crate) const DEFAULT_TABLE_NAME: &str = "sessions";

/// The longest table name accepted (index names add a suffix to it).
pub(crate) const MAX_TABLE_NAME_LEN: usize = 48;

/// The columns the previous layout (`id`, `data`, `expiry_date`) lacks, and
/// how `migrate` adds each. SQLite has no `ADD COLUMN IF NOT EXISTS`: the
/// migration looks the columns up first, in the same write transaction.
const ADDED_COLUMNS: [(&str, &str); 2] = [
    ("version", "version INTEGER NOT NULL DEFAULT 0"),
    ("user_id", "user_id TEXT"),
];

/// Accepts a plain identifier of at most [`MAX_TABLE_NAME_LEN`] bytes outside
/// SQLite's reserved `sqlite_` namespace. Such a name needs no escaping; it
/// is double-quoted anyway.
fn check_table_name(name: &str) -> Result<(), RusqliteStoreError> {
    check_identifier(name, MAX_TABLE_NAME_LEN)?;
    if name
        .get(..7)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("sqlite_"))
    {
        return Err(RusqliteStoreError::ReservedTableName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Every statement the store runs, built once from a validated table name.
#[derive(Debug)]
pub(crate) struct Sql {
    pub(crate) table: String,
    create_table: String,
    add_column: [(&'static str, String); 2],
    create_indexes: String,
    pub(crate) load: String,
    pub(crate) insert_if_absent: String,
    pub(crate) upsert: String,
    pub(crate) update: String,
    pub(crate) touch: String,
    pub(crate) delete: String,
    pub(crate) sessions_of_user: String,
    pub(crate) delete_sessions_of_user: String,
    pub(crate) delete_expired_batch: String,
}

impl Sql {
    /// The statements for table `table`, if its name is valid.
    pub(crate) fn new(table: &str) -> Result<Self, RusqliteStoreError> {
        check_table_name(table)?;
        Ok(Self::for_checked_name(table))
    }

    /// The statements for the default table.
    pub(crate) fn default_table() -> Self {
        Self::for_checked_name(DEFAULT_TABLE_NAME)
    }

    // Only for names `check_table_name` accepts (the default one is checked
    // by a test below).
    fn for_checked_name(table: &str) -> Self {
        let t = format!("\"{table}\"");
        let expiry_index = format!("\"{table}_expiry_date_idx\"");
        let user_index = format!("\"{table}_user_id_idx\"");
        let columns = "data, expiry_date, version, user_id";
        Self {
            table: table.to_owned(),
            create_table: format!(
                "CREATE TABLE IF NOT EXISTS {t} (\
                     id TEXT PRIMARY KEY NOT NULL, \
                     data BLOB NOT NULL, \
                     expiry_date INTEGER NOT NULL, \
                     version INTEGER NOT NULL DEFAULT 0, \
                     user_id TEXT\
                 )"
            ),
            add_column: ADDED_COLUMNS.map(|(name, definition)| {
                (name, format!("ALTER TABLE {t} ADD COLUMN {definition}"))
            }),
            create_indexes: format!(
                "CREATE INDEX IF NOT EXISTS {expiry_index} ON {t} (expiry_date); \
                 CREATE INDEX IF NOT EXISTS {user_index} ON {t} (user_id) \
                 WHERE user_id IS NOT NULL;"
            ),
            load: format!("SELECT {columns} FROM {t} WHERE id = ?1 AND expiry_date > ?2"),
            // Insert-if-absent in one statement; a row whose time is up is
            // as good as absent, so it is taken over (the `WHERE` reads the
            // stored row).
            insert_if_absent: format!(
                "INSERT INTO {t} (id, {columns}) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (id) DO UPDATE SET \
                 data = excluded.data, expiry_date = excluded.expiry_date, \
                 version = excluded.version, user_id = excluded.user_id \
                 WHERE {t}.expiry_date <= ?6"
            ),
            upsert: format!(
                "INSERT INTO {t} (id, {columns}) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (id) DO UPDATE SET \
                 data = excluded.data, expiry_date = excluded.expiry_date, \
                 version = excluded.version, user_id = excluded.user_id"
            ),
            // The compare-and-swap: the version and the activity are checked
            // by the statement that writes.
            update: format!(
                "UPDATE {t} SET data = ?2, expiry_date = ?3, version = ?4, user_id = ?5 \
                 WHERE id = ?1 AND version = ?6 AND expiry_date > ?7"
            ),
            // SQLite counts the rows an UPDATE matched, also those it wrote
            // unchanged, so an expiry already later still counts as touched.
            touch: format!(
                "UPDATE {t} SET expiry_date = max(expiry_date, ?2) \
                 WHERE id = ?1 AND expiry_date > ?3"
            ),
            delete: format!("DELETE FROM {t} WHERE id = ?1"),
            sessions_of_user: format!(
                "SELECT id, {columns} FROM {t} WHERE user_id = ?1 AND expiry_date > ?2"
            ),
            // `id IS NOT NULL` holds for every row, so a NULL `keep` keeps
            // none. One row per deleted session says whether it was active.
            delete_sessions_of_user: format!(
                "DELETE FROM {t} WHERE user_id = ?1 AND id IS NOT ?2 \
                 RETURNING expiry_date > ?3"
            ),
            delete_expired_batch: format!(
                "DELETE FROM {t} WHERE rowid IN \
                 (SELECT rowid FROM {t} WHERE expiry_date <= ?1 LIMIT ?2)"
            ),
        }
    }
}

/// Creates the table and its indexes if missing, and brings a table of the
/// previous layout (`id`, `data`, `expiry_date`) up to this one: `version`
/// (0 for the rows already there) and `user_id` (NULL) are added, then the
/// user index.
///
/// `BEGIN IMMEDIATE` takes SQLite's write lock up front, so concurrent
/// migrations (other connections, other processes) queue behind each other
/// within the busy timeout, and each finds the work done or does all of it:
/// the columns it looks up cannot change before it commits.
pub(crate) fn migrate(connection: &mut Connection, sql: &Sql) -> rusqlite::Result<()> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    transaction.execute(&sql.create_table, [])?;
    let existing = transaction
        .prepare("SELECT name FROM pragma_table_info(?1)")?
        .query_map([&sql.table], |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for (column, add) in &sql.add_column {
        // Column names are case-insensitive in SQLite.
        if !existing
            .iter()
            .any(|name| name.eq_ignore_ascii_case(column))
        {
            transaction.execute(add, [])?;
            tracing::debug!(table = %sql.table, column, "added a column to the sessions table");
        }
    }
    transaction.execute_batch(&sql.create_indexes)?;
    transaction.commit()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure.
mod tests {
    use session_core::support::InvalidName;

    use super::*;

    #[test]
    fn default_table_name_is_valid() {
        assert!(check_table_name(DEFAULT_TABLE_NAME).is_ok());
    }

    #[test]
    fn table_names_are_validated() {
        for good in [
            "sessions",
            "_s",
            "Tower_Sessions_2",
            "sqlite",
            &"a".repeat(MAX_TABLE_NAME_LEN),
        ] {
            assert!(Sql::new(good).is_ok(), "{good:?} should be accepted");
        }
        for bad in [
            "",
            "1sessions",
            "sessions; DROP TABLE x",
            "ses\"sions",
            "ses-sions",
            "séssions",
            &"a".repeat(MAX_TABLE_NAME_LEN + 1),
        ] {
            let error = Sql::new(bad).expect_err(bad);
            assert!(
                matches!(error, RusqliteStoreError::InvalidTableName(_)),
                "{bad:?}: {error:?}"
            );
        }
        assert!(matches!(
            Sql::new(""),
            Err(RusqliteStoreError::InvalidTableName(InvalidName::Empty))
        ));
        for reserved in ["sqlite_master", "SQLITE_sessions", "Sqlite_"] {
            match Sql::new(reserved) {
                Err(RusqliteStoreError::ReservedTableName { name }) => assert_eq!(name, reserved),
                other => panic!("{reserved:?} should be reserved: {other:?}"),
            }
        }
    }

    #[test]
    fn the_user_lookup_uses_the_partial_index() {
        let mut connection = Connection::open_in_memory().unwrap();
        let sql = Sql::default_table();
        migrate(&mut connection, &sql).unwrap();
        let lookups: [(&str, &[&dyn rusqlite::ToSql]); 2] = [
            (&sql.sessions_of_user, &[&"alice", &0]),
            (&sql.delete_sessions_of_user, &[&"alice", &"id", &0]),
        ];
        for (statement, params) in lookups {
            let plan: Vec<String> = connection
                .prepare(&format!("EXPLAIN QUERY PLAN {statement}"))
                .unwrap()
                .query_map(params, |row| row.get(3))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert!(
                plan.iter()
                    .any(|step| step.contains("sessions_user_id_idx")),
                "{statement}: {plan:?}"
            );
            assert!(
                !plan.iter().any(|step| step.starts_with("SCAN")),
                "{statement} scans the table: {plan:?}"
            );
        }
    }
}
