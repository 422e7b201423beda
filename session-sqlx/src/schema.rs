//! Validated schema and table names, and what every SQL dialect shares about
//! the table.

use session_core::support::check_identifier;

use crate::InvalidName;

/// The longest schema or table name accepted, in bytes: PostgreSQL's limit
/// (MySQL's is 64).
pub const MAX_NAME_LEN: usize = 63;

/// The longest [`user_id`](session_core::Record::user_id) stored, in bytes
/// of UTF-8, on every dialect: MySQL/MariaDB keep it in a `VARBINARY(255)`
/// (an index needs a bounded column), and PostgreSQL and SQLite accept the
/// same, so a session can move between them. A longer one is refused with
/// [`InvalidUserId`](crate::InvalidUserId), never cut.
pub const MAX_USER_ID_LEN: usize = 255;

/// The table every store uses unless told otherwise.
pub(crate) const DEFAULT_TABLE_NAME: &str = "sessions";

/// How many expired rows one `DELETE` of `delete_expired` removes at most,
/// unless told otherwise: small enough that a sweep never holds locks on a
/// large part of a busy table, large enough that few round trips are needed.
pub(crate) const DEFAULT_DELETE_BATCH_SIZE: u32 = 5_000;

/// An identifier that is safe to splice into SQL: ASCII letters, digits and
/// `_`, not starting with a digit, 1 to [`MAX_NAME_LEN`] bytes. It is still
/// quoted where it is used, so its case is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Name(String);

impl Name {
    pub(crate) fn new(name: &str) -> std::result::Result<Self, InvalidName> {
        check_identifier(name, MAX_NAME_LEN)?;
        Ok(Self(name.to_owned()))
    }

    /// A name known to be valid.
    pub(crate) fn default_table() -> Self {
        Self(DEFAULT_TABLE_NAME.to_owned())
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The name in ANSI double quotes (PostgreSQL, SQLite). Validation rules
    /// out quotes inside it.
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    pub(crate) fn double_quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }

    /// The name in MySQL's backticks.
    #[cfg(feature = "mysql")]
    pub(crate) fn backticked(&self) -> String {
        format!("`{}`", self.0)
    }
}

/// The name of the PostgreSQL expiry index of `table`:
/// `<table>_expiry_date_idx`, cut to the 63 bytes PostgreSQL keeps of a
/// name exactly as PostgreSQL cut it for earlier releases, so their index is
/// found again. Only a 63-byte table name, which the cut would turn into the
/// table's own name, gets a hashed name instead.
#[cfg(feature = "postgres")]
pub(crate) fn pg_expiry_index_name(table: &Name) -> String {
    const SUFFIX: &str = "_expiry_date_idx";
    let table = table.as_str();
    if table.len() >= MAX_NAME_LEN {
        return hashed_index_name(table, SUFFIX);
    }
    let full = format!("{table}{SUFFIX}");
    // Names are ASCII: every byte boundary is a character boundary.
    full[..full.len().min(MAX_NAME_LEN)].to_owned()
}

/// The name of the PostgreSQL user index of `table`: `<table>_user_id_idx`
/// when that fits in 63 bytes, a hashed name otherwise (a cut could make it
/// the table's name or the expiry index's).
#[cfg(feature = "postgres")]
pub(crate) fn pg_user_index_name(table: &Name) -> String {
    const SUFFIX: &str = "_user_id_idx";
    let table = table.as_str();
    if table.len() + SUFFIX.len() <= MAX_NAME_LEN {
        format!("{table}{SUFFIX}")
    } else {
        hashed_index_name(table, SUFFIX)
    }
}

/// `<start of table>_<hash of table><suffix>`, 63 bytes: tables sharing a
/// long prefix still get indexes apart.
#[cfg(feature = "postgres")]
fn hashed_index_name(table: &str, suffix: &str) -> String {
    // FNV-1a: stable across releases and platforms, unlike std's hasher.
    let hash = table.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    let keep = (MAX_NAME_LEN - suffix.len() - 9).min(table.len());
    format!("{}_{hash:08x}{suffix}", &table[..keep])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_identifiers_are_accepted() {
        for name in ["sessions", "_x", "S1", "tower_sessions", &"a".repeat(63)] {
            assert_eq!(Name::new(name).expect(name).as_str(), name);
        }
    }

    #[test]
    fn anything_else_is_refused() {
        assert_eq!(Name::new(""), Err(InvalidName::Empty));
        assert!(matches!(
            Name::new(&"a".repeat(64)),
            Err(InvalidName::TooLong {
                len: 64,
                max: 63,
                ..
            })
        ));
        for name in [
            "1abc",
            "a-b",
            "a b",
            "a.b",
            "a\"b",
            "a`b",
            "a;DROP TABLE x",
            "ünï",
            "a\0",
            "tab\t",
        ] {
            assert!(
                matches!(Name::new(name), Err(InvalidName::Character { .. })),
                "{name:?} must be refused"
            );
        }
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn pg_index_names_fit_and_stay_apart() {
        let short = Name::new("sessions").expect("valid");
        assert_eq!(pg_expiry_index_name(&short), "sessions_expiry_date_idx");
        assert_eq!(pg_user_index_name(&short), "sessions_user_id_idx");
        // Cut as PostgreSQL cut it for earlier releases.
        let long = Name::new(&"a".repeat(55)).expect("valid");
        assert_eq!(
            pg_expiry_index_name(&long),
            format!("{}_expiry_", "a".repeat(55))
        );
        for len in 40..=MAX_NAME_LEN {
            let table = Name::new(&"t".repeat(len)).expect("valid");
            let expiry = pg_expiry_index_name(&table);
            let user = pg_user_index_name(&table);
            assert!(expiry.len() <= MAX_NAME_LEN && user.len() <= MAX_NAME_LEN);
            assert_ne!(expiry, user, "table name of {len} bytes");
            assert_ne!(expiry, table.as_str(), "table name of {len} bytes");
            assert_ne!(user, table.as_str(), "table name of {len} bytes");
        }
    }
}
