//! The table, its validated name, the SQL run against it, and `migrate`.
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS "sessions" (
//!     id          TEXT    PRIMARY KEY NOT NULL, -- the Id's 22-character text form
//!     data        BLOB    NOT NULL,             -- session_core::codec::encode_data
//!     expiry_date INTEGER NOT NULL              -- microseconds since the Unix epoch, UTC
//! );
//! CREATE INDEX IF NOT EXISTS "sessions_expiry_date_idx" ON "sessions" (expiry_date);
//! ```
//!
//! The expiry is an integer count of microseconds since the Unix epoch, so
//! the `expiry_date > ?` filter compares instants exactly whatever UTC offset
//! the application's `OffsetDateTime` carried (text timestamps compare as
//! strings, which goes wrong as soon as two offsets meet).

use rusqlite::{Connection, TransactionBehavior};

use crate::RusqliteStoreError;

/// The table name used unless [`RusqliteStore::with_table_name`](crate::RusqliteStore::with_table_name) says otherwise.
pub(crate) const DEFAULT_TABLE_NAME: &str = "sessions";

/// The longest table name accepted (the index name adds a suffix to it).
pub(crate) const MAX_TABLE_NAME_LEN: usize = 48;

/// Whether `name` is a plain identifier: ASCII letters, digits and
/// underscores, not starting with a digit, not in SQLite's reserved `sqlite_`
/// namespace. Such a name needs no escaping; it is double-quoted anyway.
fn is_valid_table_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let starts_well = bytes
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == b'_');
    starts_well
        && name.len() <= MAX_TABLE_NAME_LEN
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
        && !name
            .get(..7)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("sqlite_"))
}

/// Every statement the store runs, built once from a validated table name.
#[derive(Debug)]
pub(crate) struct Sql {
    pub(crate) table: String,
    pub(crate) migrate: String,
    pub(crate) load: String,
    pub(crate) insert_if_absent: String,
    pub(crate) upsert: String,
    pub(crate) delete: String,
    pub(crate) delete_expired_batch: String,
}

impl Sql {
    /// The statements for table `table`, if its name is valid.
    pub(crate) fn new(table: &str) -> Result<Self, RusqliteStoreError> {
        if !is_valid_table_name(table) {
            return Err(RusqliteStoreError::InvalidTableName {
                name: table.to_owned(),
            });
        }
        Ok(Self::for_checked_name(table))
    }

    /// The statements for the default table.
    pub(crate) fn default_table() -> Self {
        Self::for_checked_name(DEFAULT_TABLE_NAME)
    }

    // Only for names `is_valid_table_name` accepts (the default one is
    // checked by a test below).
    fn for_checked_name(table: &str) -> Self {
        let t = format!("\"{table}\"");
        let index = format!("\"{table}_expiry_date_idx\"");
        Self {
            table: table.to_owned(),
            migrate: format!(
                "CREATE TABLE IF NOT EXISTS {t} (\
                     id TEXT PRIMARY KEY NOT NULL, \
                     data BLOB NOT NULL, \
                     expiry_date INTEGER NOT NULL\
                 ); \
                 CREATE INDEX IF NOT EXISTS {index} ON {t} (expiry_date);"
            ),
            load: format!("SELECT data, expiry_date FROM {t} WHERE id = ?1 AND expiry_date > ?2"),
            insert_if_absent: format!(
                "INSERT INTO {t} (id, data, expiry_date) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (id) DO NOTHING"
            ),
            upsert: format!(
                "INSERT INTO {t} (id, data, expiry_date) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (id) DO UPDATE SET \
                 data = excluded.data, expiry_date = excluded.expiry_date"
            ),
            delete: format!("DELETE FROM {t} WHERE id = ?1"),
            delete_expired_batch: format!(
                "DELETE FROM {t} WHERE rowid IN \
                 (SELECT rowid FROM {t} WHERE expiry_date <= ?1 LIMIT ?2)"
            ),
        }
    }
}

/// Creates the table and its expiry index if missing.
///
/// `BEGIN IMMEDIATE` takes SQLite's write lock up front, so concurrent
/// migrations (other connections, other processes) queue behind each other
/// within the busy timeout, and each finds the work done or does all of it.
pub(crate) fn migrate(connection: &mut Connection, sql: &Sql) -> rusqlite::Result<()> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    transaction.execute_batch(&sql.migrate)?;
    transaction.commit()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap: a panic is a failure.
mod tests {
    use super::*;

    #[test]
    fn default_table_name_is_valid() {
        assert!(is_valid_table_name(DEFAULT_TABLE_NAME));
    }

    #[test]
    fn table_names_are_validated() {
        for good in [
            "sessions",
            "_s",
            "Tower_Sessions_2",
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
            "sqlite_master",
            "SQLITE_sessions",
            &"a".repeat(MAX_TABLE_NAME_LEN + 1),
        ] {
            let error = Sql::new(bad).expect_err(bad);
            assert!(error.to_string().contains("invalid table name"), "{error}");
        }
    }
}
