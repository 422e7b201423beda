//! Session identifiers.

use std::{fmt, str::FromStr};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use rand::{rngs::OsRng, TryRngCore as _};
use serde::{Deserialize, Serialize};

/// The length of an [`Id`]'s text form: 16 bytes in unpadded base64.
pub const ID_TEXT_LEN: usize = 22;

/// A session identifier: 128 bits drawn from the operating system's
/// cryptographically secure generator.
///
/// Its text form (`Display`) is the URL-safe, unpadded base64 of the 16
/// little-endian bytes, 22 characters long; this is the form tower-sessions
/// puts in cookies, so existing cookies stay valid. [`FromStr`] is the exact
/// inverse and rejects anything else with an [`IdParseError`].
///
/// ```
/// use session_core::Id;
///
/// let id = Id::default();
/// let text = id.to_string();
/// assert_eq!(text.len(), 22);
/// assert_eq!(text.parse::<Id>().unwrap(), id);
/// assert!("not-an-id".parse::<Id>().is_err());
/// ```
///
/// # Where the bits come from
///
/// [`Id::random`] (and so [`Id::default`] and
/// [`Record::new`](crate::Record::new)) asks the operating system for every
/// id (`getrandom(2)` on Linux, through the `getrandom` crate), not a
/// generator kept in the process. An id is a credential: a generator state
/// held in memory is copied by `fork(2)`, and `rand`'s `ThreadRng` does not
/// reseed in the child, so a parent and its child would hand out the same
/// ids, and a visitor of one could predict the other's. Asking the kernel
/// each time is safe across `fork` with nothing to do, in every process,
/// whoever forks and when.
///
/// It costs a system call per id: 0.5 to 0.8 µs measured on a Linux virtual
/// machine with glibc 2.36, against about 20 ns from `ThreadRng` (glibc 2.41
/// on Linux 6.11 or later can answer it in user space, through the vDSO).
/// That is small beside any store's write, and beside a request; only the
/// in-memory store's `create` is noticeably slower for it. Should the
/// operating system's generator ever fail (it does not on a running Linux,
/// macOS or Windows), the id is drawn from `ThreadRng` instead and the
/// failure is logged.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Id(pub i128);

impl Id {
    /// Draws a fresh random identifier from the operating system's
    /// generator (same as [`Id::default`]; see
    /// [where the bits come from](Id#where-the-bits-come-from)).
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        match OsRng.try_fill_bytes(&mut bytes) {
            Ok(()) => Id(i128::from_le_bytes(bytes)),
            Err(error) => {
                // Still a CSPRNG seeded from the OS; only its fork-safety is
                // lost, and only while the OS generator fails.
                tracing::error!(
                    %error,
                    "the operating system's random generator failed; session id drawn from ThreadRng"
                );
                Id(rand::random::<i128>())
            }
        }
    }

    /// The 16 little-endian bytes behind the text form.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_le_bytes()
    }
}

impl Default for Id {
    fn default() -> Self {
        Self::random()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; ID_TEXT_LEN];
        // 16 bytes always encode to exactly 22 characters without padding,
        // so the buffer is large enough and the output is ASCII.
        let written = URL_SAFE_NO_PAD
            .encode_slice(self.to_bytes(), &mut buf)
            .map_err(|_| fmt::Error)?;
        let text = std::str::from_utf8(&buf[..written]).map_err(|_| fmt::Error)?;
        f.write_str(text)
    }
}

/// Why a string is not a session [`Id`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdParseError {
    /// The text is not 22 characters long.
    #[error("a session id is {ID_TEXT_LEN} characters long, got {0}")]
    Length(usize),
    /// The text holds a byte outside the URL-safe base64 alphabet.
    #[error("a session id uses only A-Z, a-z, 0-9, '-' and '_'")]
    Alphabet,
    /// The last character carries bits that the canonical encoding leaves at
    /// zero, so the text is not the `Display` form of any id.
    #[error("a session id's last character is not canonical")]
    NonCanonical,
}

impl FromStr for Id {
    type Err = IdParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != ID_TEXT_LEN {
            return Err(IdParseError::Length(s.len()));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(IdParseError::Alphabet);
        }
        let mut bytes = [0u8; 16];
        match URL_SAFE_NO_PAD.decode_slice(s, &mut bytes) {
            Ok(16) => Ok(Id(i128::from_le_bytes(bytes))),
            // The alphabet and length are checked above, so the only way left
            // to fail is trailing bits that are not zero.
            _ => Err(IdParseError::NonCanonical),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector_matches_tower_sessions_encoding() {
        // 16 little-endian bytes 0x00..0x0f, base64url without padding.
        let id = Id(i128::from_le_bytes([
            0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
        ]));
        assert_eq!(id.to_string(), "AAECAwQFBgcICQoLDA0ODw");
        assert_eq!("AAECAwQFBgcICQoLDA0ODw".parse::<Id>(), Ok(id));
    }

    #[test]
    fn extremes_round_trip() {
        for v in [0, 1, -1, i128::MIN, i128::MAX] {
            let id = Id(v);
            assert_eq!(id.to_string().parse::<Id>(), Ok(id));
        }
    }

    #[test]
    fn rejects_every_malformed_kind() {
        let good = Id(42).to_string();
        assert_eq!("".parse::<Id>(), Err(IdParseError::Length(0)));
        assert_eq!(good[..21].parse::<Id>(), Err(IdParseError::Length(21)));
        assert_eq!(
            format!("{good}A").parse::<Id>(),
            Err(IdParseError::Length(23))
        );
        assert_eq!(
            format!("{}==", &good[..20]).parse::<Id>(),
            Err(IdParseError::Alphabet)
        );
        assert_eq!(
            format!("+{}", &good[1..]).parse::<Id>(),
            Err(IdParseError::Alphabet)
        );
        assert_eq!(
            format!("/{}", &good[1..]).parse::<Id>(),
            Err(IdParseError::Alphabet)
        );
        // 'é' is two bytes: 20 ASCII + 'é' is 22 bytes but not ASCII.
        assert_eq!(
            format!("{}é", &good[..20]).parse::<Id>(),
            Err(IdParseError::Alphabet)
        );
        // The 22nd character holds 2 spare bits; 'B' sets one of them.
        assert_eq!(
            format!("{}B", &"A".repeat(21)).parse::<Id>(),
            Err(IdParseError::NonCanonical)
        );
    }

    #[test]
    fn random_ids_are_distinct_and_well_formed() {
        const THREADS: usize = 4;
        const PER_THREAD: usize = 5_000;
        let drawn: Vec<Id> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..THREADS)
                .map(|_| scope.spawn(|| (0..PER_THREAD).map(|_| Id::random()).collect::<Vec<_>>()))
                .collect();
            threads
                .into_iter()
                .flat_map(|thread| thread.join().expect("drawing thread"))
                .collect()
        });
        let distinct: std::collections::HashSet<Id> = drawn.iter().copied().collect();
        assert_eq!(distinct.len(), THREADS * PER_THREAD, "an id came twice");
        for id in &drawn {
            let text = id.to_string();
            assert_eq!(text.len(), ID_TEXT_LEN);
            assert!(text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            assert_eq!(text.parse::<Id>(), Ok(*id));
        }
        // Every one of the 128 bits is set in about half the ids: none is
        // stuck (a buffer left partly unfilled, a byte dropped). With 20,000
        // ids, 45% to 55% is over 14 standard deviations wide.
        for bit in 0..128 {
            let set = drawn.iter().filter(|id| (id.0 >> bit) & 1 == 1).count();
            assert!(
                (9_000..=11_000).contains(&set),
                "bit {bit} set in {set} of 20000 ids"
            );
        }
        assert_ne!(Id::default(), Id::default());
    }
}
