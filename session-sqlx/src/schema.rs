//! Validated schema and table names, and what every SQL dialect shares about
//! them.

use crate::InvalidName;

/// The longest schema or table name accepted, in bytes: PostgreSQL's limit
/// (MySQL's is 64).
pub const MAX_NAME_LEN: usize = 63;

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
        if name.is_empty() {
            return Err(InvalidName::Empty);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(InvalidName::TooLong {
                name: name.to_owned(),
                len: name.len(),
                max: MAX_NAME_LEN,
            });
        }
        let mut bytes = name.bytes();
        let first_ok = bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
        if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(InvalidName::Character {
                name: name.to_owned(),
            });
        }
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
}
