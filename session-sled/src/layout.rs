//! How records and the expiry index are laid out in sled.
//!
//! - Session tree: key = the id's 16 bytes (`Id::to_bytes`), value = the
//!   record's expiry as an 8-byte `ExpiryKey` followed by
//!   [`codec::encode_record`]. The header lets a write find the index entry of
//!   the value it replaces without decoding it.
//! - Expiry tree: key = 8-byte `ExpiryKey` followed by the 16 id bytes,
//!   value = empty. Keys sort by expiry, so the expired sessions are a prefix.

use session_core::{codec, time::OffsetDateTime, Error, Record, Result};

use crate::error::LayoutError;

/// An expiry instant as 8 bytes that sort like the instant: whole
/// microseconds since the Unix epoch, clamped to `i64`, with the sign bit
/// flipped and big-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ExpiryKey([u8; 8]);

impl ExpiryKey {
    pub(crate) fn of(instant: OffsetDateTime) -> Self {
        // Floored to the microsecond, so an index key is never later than
        // the instant it stands for.
        let micros = codec::unix_micros(instant);
        Self(((micros as u64) ^ (1 << 63)).to_be_bytes())
    }

    /// The first key after every instant within this one's microsecond.
    pub(crate) fn next(self) -> Option<Self> {
        u64::from_be_bytes(self.0)
            .checked_add(1)
            .map(|n| Self(n.to_be_bytes()))
    }

    pub(crate) fn index_key(self, id: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(8 + id.len());
        key.extend_from_slice(&self.0);
        key.extend_from_slice(id);
        key
    }

    pub(crate) fn bytes(self) -> [u8; 8] {
        self.0
    }
}

pub(crate) fn encode(record: &Record) -> Result<(ExpiryKey, Vec<u8>)> {
    let expiry = ExpiryKey::of(record.expiry_date);
    let body = codec::encode_record(record)?;
    let mut value = Vec::with_capacity(8 + body.len());
    value.extend_from_slice(&expiry.0);
    value.extend_from_slice(&body);
    Ok((expiry, value))
}

/// The expiry header of a stored value.
pub(crate) fn expiry_of(value: &[u8]) -> Result<ExpiryKey> {
    value
        .get(..8)
        .and_then(|head| <[u8; 8]>::try_from(head).ok())
        .map(ExpiryKey)
        .ok_or_else(|| Error::decode(LayoutError::TooShort(value.len())))
}

pub(crate) fn decode(value: &[u8]) -> Result<Record> {
    expiry_of(value)?;
    codec::decode_record(&value[8..])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use time::{macros::datetime, Duration};

    use super::*;

    #[test]
    fn expiry_keys_sort_like_instants() {
        let instants = [
            datetime!(1900-01-01 0:00 UTC),
            datetime!(1969-12-31 23:59:59.999999 UTC),
            datetime!(1970-01-01 0:00 UTC),
            datetime!(1970-01-01 0:00:00.000001 UTC),
            datetime!(2026-11-21 12:00 +05:00),
            datetime!(2026-11-21 12:00 UTC),
            datetime!(9999-12-31 23:59:59.999999 UTC),
        ];
        for pair in instants.windows(2) {
            assert!(ExpiryKey::of(pair[0]) < ExpiryKey::of(pair[1]), "{pair:?}");
        }
        let t = datetime!(2026-11-21 12:00 UTC);
        assert_eq!(
            ExpiryKey::of(t),
            ExpiryKey::of(t + Duration::nanoseconds(999))
        );
        assert_eq!(
            ExpiryKey::of(t).next(),
            Some(ExpiryKey::of(t + Duration::microseconds(1)))
        );
    }

    #[test]
    fn values_round_trip_and_short_ones_are_decode_errors() {
        let record = Record::new(datetime!(2030-01-01 0:00 UTC));
        let (expiry, value) = encode(&record).unwrap();
        assert_eq!(expiry_of(&value).unwrap(), expiry);
        assert_eq!(decode(&value).unwrap(), record);
        assert!(decode(b"short").unwrap_err().is_decode());
        assert!(decode(b"12345678garbage").unwrap_err().is_decode());
    }
}
