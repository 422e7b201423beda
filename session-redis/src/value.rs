//! The bytes stored under a session key: a fixed-size header the store's Lua
//! scripts read with `GETRANGE` (version, expiry, index horizon, user), then
//! the session data as `session_core::codec` MessagePack.
//!
//! ```text
//! offset  size  field
//!      0     1  0xc1: the one byte MessagePack never uses, so a header never
//!               looks like a record of an earlier release (`0x93`/`0x95`
//!               MessagePack arrays, or JSON objects)
//!      1     1  format, 1
//!      2     8  version, u64 big-endian (at most `MAX_VERSION`)
//!     10     8  expiry date, i64 microseconds since the Unix epoch with the
//!               sign bit flipped, big-endian: unsigned byte order is time order
//!     18     8  index horizon, u64 Unix milliseconds, big-endian: the user's
//!               index key is known to live at least this long (0 without user)
//!     26     1  1 when the session has a user, else 0
//!     27     4  the user id's length in bytes, u32 big-endian (0 without user)
//!     31     n  the user id, UTF-8
//!   31+n   ...  the data, `codec::encode_data`
//! ```
//!
//! The Lua prelude in `scripts.rs` reads the same offsets: change both
//! together.

use session_core::{
    codec,
    support::{VersionOutOfRange, MAX_VERSION},
    time::OffsetDateTime,
    Data, Error, Id, Record, Result,
};

/// The first byte of every value this release writes.
pub(crate) const MAGIC: u8 = 0xc1;
/// The header layout this release writes and reads.
pub(crate) const FORMAT: u8 = 1;
const VERSION_AT: usize = 2;
pub(crate) const EXPIRY_AT: usize = 10;
pub(crate) const HORIZON_AT: usize = 18;
const USER_FLAG_AT: usize = 26;
const USER_LEN_AT: usize = 27;
/// Length of the fixed part of the header; the user id follows it.
pub(crate) const FIXED_LEN: usize = 31;

/// Why stored bytes are not a session record. Reaches callers as the source
/// of an [`Error::Decode`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorruptValue {
    /// The value starts like this release's header but is shorter than one.
    #[error("stored session value is {0} bytes long, shorter than its header")]
    Truncated(usize),
    /// The header names a format this release does not know.
    #[error("stored session value has header format {0}, this release reads format 1")]
    Format(u8),
    /// The version is past [`MAX_VERSION`].
    #[error("stored session version {0} is past the highest version {MAX_VERSION}")]
    Version(u64),
    /// The user flag is neither 0 nor 1, or says "no user" with a length.
    #[error("stored session user flag {flag} with length {len} is invalid")]
    UserFlag {
        /// The flag byte.
        flag: u8,
        /// The user id length that came with it.
        len: u32,
    },
    /// A script found a value that starts like this release's header but is
    /// not one (read through `GETRANGE`, so the precise fault is not known).
    #[error("stored session value has a header this release cannot read")]
    Header,
    /// The user id is not valid UTF-8.
    #[error("stored session user id is not UTF-8")]
    UserText,
    /// A record written by an earlier release names another session id than
    /// the key it is stored under.
    #[error("stored session record names another session id than its key")]
    IdMismatch,
}

/// What a stored value holds.
#[derive(Debug)]
pub(crate) enum Stored<'a> {
    /// This release's format.
    Current(Header<'a>),
    /// No header: a record as the previous release wrote it (MessagePack,
    /// or JSON before that), decoded by `session_core::codec`.
    Legacy,
}

/// The parsed header of a value in this release's format, borrowing the
/// user id and the encoded data from the value.
#[derive(Debug)]
pub(crate) struct Header<'a> {
    pub(crate) version: u64,
    pub(crate) expiry_micros: i64,
    /// The user id's bytes, checked as UTF-8 only when the record is
    /// decoded: whether a session is some user's is a comparison of bytes,
    /// the same the scripts make.
    pub(crate) user: Option<&'a [u8]>,
    pub(crate) data: &'a [u8],
}

impl Header<'_> {
    /// The expiry date, or an [`Error::Decode`] past what `time` supports.
    pub(crate) fn expiry_date(&self) -> Result<OffsetDateTime> {
        codec::from_unix_micros(self.expiry_micros)
    }

    /// Whether the record is still active at `now`.
    pub(crate) fn is_active_at(&self, now: OffsetDateTime) -> bool {
        self.expiry_micros > codec::unix_micros(now)
    }
}

/// Splits a stored value into its header, or says it has none.
pub(crate) fn parse(bytes: &[u8]) -> Result<Stored<'_>> {
    if bytes.first() != Some(&MAGIC) {
        return Ok(Stored::Legacy);
    }
    let Some((fixed, rest)) = bytes.split_first_chunk::<FIXED_LEN>() else {
        return Err(Error::decode(CorruptValue::Truncated(bytes.len())));
    };
    if fixed[1] != FORMAT {
        return Err(Error::decode(CorruptValue::Format(fixed[1])));
    }
    let version = u64::from_be_bytes(field(fixed, VERSION_AT));
    if version > MAX_VERSION {
        return Err(Error::decode(CorruptValue::Version(version)));
    }
    let expiry_micros = i64_from_ordered(field(fixed, EXPIRY_AT));
    let flag = fixed[USER_FLAG_AT];
    let len = u32::from_be_bytes(field(fixed, USER_LEN_AT));
    let (user, data) = match (flag, len) {
        (0, 0) => (None, rest),
        (1, _) => {
            let len = usize::try_from(len).map_err(|_| Error::decode(CorruptValue::UserText))?;
            if rest.len() < len {
                return Err(Error::decode(CorruptValue::Truncated(bytes.len())));
            }
            let (user, data) = rest.split_at(len);
            (Some(user), data)
        }
        (flag, len) => return Err(Error::decode(CorruptValue::UserFlag { flag, len })),
    };
    Ok(Stored::Current(Header {
        version,
        expiry_micros,
        user,
        data,
    }))
}

/// The record stored under `id`'s key, in either format.
///
/// Values of the previous release carry no header: they decode through
/// `session_core::codec`, with version 0 and no user.
pub(crate) fn decode(id: Id, bytes: &[u8]) -> Result<Record> {
    match parse(bytes)? {
        Stored::Current(header) => Ok(Record {
            id,
            data: decode_data(header.data)?,
            expiry_date: header.expiry_date()?,
            version: header.version,
            user_id: header
                .user
                .map(|user| String::from_utf8(user.to_vec()))
                .transpose()
                .map_err(|_| Error::decode(CorruptValue::UserText))?,
        }),
        Stored::Legacy => decode_legacy(id, bytes),
    }
}

/// A record as the previous release stored it.
pub(crate) fn decode_legacy(id: Id, bytes: &[u8]) -> Result<Record> {
    let record = codec::decode_record(bytes)?;
    if record.id != id {
        return Err(Error::decode(CorruptValue::IdMismatch));
    }
    Ok(record)
}

fn decode_data(bytes: &[u8]) -> Result<Data> {
    codec::decode_data(bytes)
}

/// The value for `record` stored at `version` with the given index horizon
/// (Unix milliseconds; 0 when the writer has not extended the user's index).
///
/// The record's own `version` is not used: `update` stores the next one.
pub(crate) fn encode(record: &Record, version: u64, horizon_ms: u64) -> Result<Vec<u8>> {
    if version > MAX_VERSION {
        return Err(Error::encode(VersionOutOfRange(version)));
    }
    let user = record.user_id.as_deref().map(str::as_bytes);
    let user_len = match user {
        Some(user) => u32::try_from(user.len()).map_err(|_| Error::encode(UserTooLong))?,
        None => 0,
    };
    let data = codec::encode_data(&record.data)?;
    let mut value = Vec::with_capacity(FIXED_LEN + user.map_or(0, <[u8]>::len) + data.len());
    value.push(MAGIC);
    value.push(FORMAT);
    value.extend_from_slice(&version.to_be_bytes());
    value.extend_from_slice(&ordered_micros(record.expiry_date));
    value.extend_from_slice(&horizon_ms.to_be_bytes());
    value.push(u8::from(user.is_some()));
    value.extend_from_slice(&user_len.to_be_bytes());
    value.extend_from_slice(user.unwrap_or_default());
    value.extend_from_slice(&data);
    Ok(value)
}

/// A user id longer than the header's 32-bit length field.
#[derive(Debug, thiserror::Error)]
#[error("a session user id may be at most 4 GiB long")]
struct UserTooLong;

/// `instant` as the header stores it: microseconds since the epoch, sign bit
/// flipped, big-endian, so that comparing the bytes compares the instants.
pub(crate) fn ordered_micros(instant: OffsetDateTime) -> [u8; 8] {
    let mut bytes = codec::unix_micros(instant).to_be_bytes();
    bytes[0] ^= 0x80;
    bytes
}

fn i64_from_ordered(mut bytes: [u8; 8]) -> i64 {
    bytes[0] ^= 0x80;
    i64::from_be_bytes(bytes)
}

fn field<const N: usize>(fixed: &[u8; FIXED_LEN], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&fixed[at..at + N]);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use session_core::time::{macros::datetime, Duration};

    use super::*;

    fn record() -> Record {
        let mut record = Record::new(datetime!(2031-02-03 04:05:06.123456 UTC));
        record.data.insert("k".into(), json!(["v", 1, 2.5]));
        record
    }

    #[test]
    fn round_trips_with_and_without_user() {
        let mut record = record();
        record.version = 41;
        let bytes = encode(&record, 41, 0).unwrap();
        assert_eq!(bytes[..2], [MAGIC, FORMAT]);
        assert_eq!(decode(record.id, &bytes).unwrap(), record);
        for user in ["", "ünï 🔑 \"x\"", "alice*"] {
            record.user_id = Some(user.into());
            let bytes = encode(&record, 41, 7).unwrap();
            assert_eq!(decode(record.id, &bytes).unwrap(), record);
        }
    }

    #[test]
    fn the_header_sits_at_fixed_offsets() {
        let mut record = record();
        record.user_id = Some("ab".into());
        let bytes = encode(&record, 0x0102, 0x0304).unwrap();
        assert_eq!(bytes[VERSION_AT..VERSION_AT + 8], 0x0102u64.to_be_bytes());
        assert_eq!(
            bytes[EXPIRY_AT..EXPIRY_AT + 8],
            ordered_micros(record.expiry_date)
        );
        assert_eq!(bytes[HORIZON_AT..HORIZON_AT + 8], 0x0304u64.to_be_bytes());
        assert_eq!(bytes[USER_FLAG_AT], 1);
        assert_eq!(bytes[USER_LEN_AT..USER_LEN_AT + 4], [0, 0, 0, 2]);
        assert_eq!(bytes[FIXED_LEN..FIXED_LEN + 2], *b"ab");
        assert_eq!(
            bytes[FIXED_LEN + 2..],
            codec::encode_data(&record.data).unwrap()
        );
    }

    #[test]
    fn ordered_micros_sort_like_instants() {
        let instants = [
            OffsetDateTime::UNIX_EPOCH - Duration::days(400),
            OffsetDateTime::UNIX_EPOCH - Duration::microseconds(1),
            OffsetDateTime::UNIX_EPOCH,
            OffsetDateTime::UNIX_EPOCH + Duration::microseconds(1),
            datetime!(2031-02-03 04:05:06.123456 UTC),
            datetime!(9999-12-31 23:59:59.999999 UTC),
        ];
        for pair in instants.windows(2) {
            assert!(
                ordered_micros(pair[0]) < ordered_micros(pair[1]),
                "{pair:?}"
            );
        }
        for instant in instants {
            assert_eq!(
                i64_from_ordered(ordered_micros(instant)),
                codec::unix_micros(instant)
            );
        }
    }

    #[test]
    fn previous_release_values_decode_at_version_zero() {
        let mut record = record();
        let old = codec::encode_record(&record).unwrap();
        assert!(matches!(parse(&old).unwrap(), Stored::Legacy));
        assert_eq!(decode(record.id, &old).unwrap(), record);
        let json = serde_json::to_vec(&record).unwrap();
        assert_eq!(decode(record.id, &json).unwrap(), record);
        // A record under another id's key is refused.
        let other = Id::default();
        assert!(decode(other, &old).unwrap_err().is_decode());
        record.version = 3;
        assert_eq!(
            decode(record.id, &codec::encode_record(&record).unwrap()).unwrap(),
            record
        );
    }

    #[test]
    fn corrupt_headers_are_decode_errors() {
        let mut record = record();
        record.user_id = Some("user".into());
        let good = encode(&record, 5, 0).unwrap();
        for len in 1..good.len() {
            match decode(record.id, &good[..len]) {
                Err(error) => assert!(error.is_decode(), "{len}: {error}"),
                Ok(decoded) => panic!("{len} of {} bytes decoded: {decoded:?}", good.len()),
            }
        }
        let corrupt = |at: usize, byte: u8| {
            let mut bytes = good.clone();
            bytes[at] = byte;
            decode(record.id, &bytes)
        };
        assert!(corrupt(1, 2).unwrap_err().is_decode(), "unknown format");
        assert!(
            corrupt(VERSION_AT, 0x80).unwrap_err().is_decode(),
            "version"
        );
        assert!(
            corrupt(USER_FLAG_AT, 2).unwrap_err().is_decode(),
            "user flag"
        );
        assert!(
            corrupt(USER_FLAG_AT, 0).unwrap_err().is_decode(),
            "flag 0, len 4"
        );
        assert!(
            corrupt(USER_LEN_AT, 0xff).unwrap_err().is_decode(),
            "user length"
        );
        assert!(
            corrupt(FIXED_LEN, 0xff).unwrap_err().is_decode(),
            "user text"
        );
        // An expiry past what `time` supports.
        let mut far = good.clone();
        far[EXPIRY_AT..EXPIRY_AT + 8].copy_from_slice(&[0xff; 8]);
        match decode(record.id, &far) {
            Ok(decoded) => assert_eq!(codec::unix_micros(decoded.expiry_date), i64::MAX),
            Err(error) => assert!(error.is_decode()),
        }
        assert!(matches!(
            decode(record.id, &[MAGIC]).unwrap_err(),
            Error::Decode(_)
        ));
    }

    #[test]
    fn versions_past_the_maximum_are_not_encoded() {
        assert!(encode(&record(), MAX_VERSION + 1, 0)
            .unwrap_err()
            .is_encode());
        assert!(encode(&record(), MAX_VERSION, 0).is_ok());
    }
}
