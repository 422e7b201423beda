//! Session identifiers.

use std::{fmt, str::FromStr};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde::{Deserialize, Serialize};

/// The length of an [`Id`]'s text form: 16 bytes in unpadded base64.
pub const ID_TEXT_LEN: usize = 22;

/// A session identifier: 128 bits drawn from a cryptographically secure
/// generator.
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
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Id(pub i128);

impl Id {
    /// Draws a fresh random identifier (same as [`Id::default`]).
    pub fn random() -> Self {
        // `ThreadRng` is a CSPRNG (ChaCha) reseeded from the OS.
        Id(rand::random::<i128>())
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
    fn random_ids_differ() {
        let a = Id::default();
        let b = Id::default();
        assert_ne!(a, b);
    }
}
