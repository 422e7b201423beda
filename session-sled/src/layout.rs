//! How records and their two indexes are laid out in sled.
//!
//! - Session tree: key = the id's 16 bytes (`Id::to_bytes`), value = the
//!   record's expiry as an 8-byte `ExpiryKey` followed by
//!   [`codec::encode_record`] (`[id, data, expiry, version, user]`). The
//!   header lets a write find the expiry entry of the value it replaces, and
//!   a read skip an expired value, without decoding it.
//! - Expiry tree: key = 8-byte `ExpiryKey` followed by the 16 id bytes,
//!   value = empty. Keys sort by expiry, so the expired sessions are a prefix.
//! - User tree: key = the user id's length in bytes as a big-endian `u32`,
//!   the user id's UTF-8 bytes, then the 16 id bytes; value = empty. The
//!   length comes first so that one user's keys are exactly the keys under
//!   [`user_prefix`]: a user whose id is a prefix of another's (`al`,
//!   `alice`) has a different length, so the two never share a prefix.
//!
//! The previous release wrote the same session and expiry trees, with a
//! three-element record (`[id, data, expiry]`, which the codec reads as
//! version 0 and no user), and no user tree. Records without a user need no
//! user entry, so such a database is already consistent once the (empty)
//! user tree exists.

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

/// The prefix every user-index key of `user_id` starts with, and no other
/// user's key does.
pub(crate) fn user_prefix(user_id: &str) -> Result<Vec<u8>> {
    let len = u32::try_from(user_id.len())
        .map_err(|_| Error::encode(LayoutError::UserTooLong(user_id.len())))?;
    let mut prefix = Vec::with_capacity(4 + user_id.len() + 16);
    prefix.extend_from_slice(&len.to_be_bytes());
    prefix.extend_from_slice(user_id.as_bytes());
    Ok(prefix)
}

/// The user-index key of the session `id` of `user_id`.
pub(crate) fn user_key(user_id: &str, id: &[u8]) -> Result<Vec<u8>> {
    let mut key = user_prefix(user_id)?;
    key.extend_from_slice(id);
    Ok(key)
}

/// A stored value's user-index key, when it has a user: what a write that
/// replaces or removes the value must remove from the user tree.
pub(crate) fn user_key_of(record: &Record, id: &[u8]) -> Option<Vec<u8>> {
    // A user too long for a key was never indexed.
    record
        .user_id
        .as_deref()
        .and_then(|user| user_key(user, id).ok())
}

/// A value for the session tree and the record's expiry key.
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

/// The record a stored value holds if it is active at `now`; `None` when it
/// has expired. The header alone tells most expired values, without decoding
/// them.
pub(crate) fn decode_active(value: &[u8], now: OffsetDateTime) -> Result<Option<Record>> {
    if expiry_of(value)? < ExpiryKey::of(now) {
        return Ok(None);
    }
    let record = decode(value)?;
    Ok(record.is_active_at(now).then_some(record))
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
        let mut record = Record::new(datetime!(2030-01-01 0:00 UTC));
        record.version = 9;
        record.user_id = Some("ferris".into());
        let (expiry, value) = encode(&record).unwrap();
        assert_eq!(expiry_of(&value).unwrap(), expiry);
        assert_eq!(decode(&value).unwrap(), record);
        assert!(decode(b"short").unwrap_err().is_decode());
        assert!(decode(b"12345678garbage").unwrap_err().is_decode());
    }

    #[test]
    fn user_prefixes_never_overlap() {
        let id = [7; 16];
        let users = ["", "a", "al", "alice", "alice\0", "ålice", "*", "%"];
        for a in users {
            let key = user_key(a, &id).unwrap();
            assert_eq!(key.len(), 4 + a.len() + 16);
            for b in users {
                let prefix = user_prefix(b).unwrap();
                assert_eq!(key.starts_with(&prefix), a == b, "{a:?} under {b:?}");
            }
        }
        // The id follows the user's bytes exactly.
        assert_eq!(
            user_key("ab", &id).unwrap(),
            [&[0, 0, 0, 2, b'a', b'b'][..], &id].concat()
        );
    }
}
