//! The one encoding every byte-oriented store uses for session data, so a
//! record written by one store reads back the same in another.
//!
//! Stores that keep the expiry in a column of its own encode only the
//! [`Data`] ([`encode_data`]/[`decode_data`]); stores that keep one value per
//! session encode the whole [`Record`] ([`encode_record`]/[`decode_record`]).
//!
//! # Format
//!
//! [MessagePack](https://msgpack.org) through `rmp-serde`: data is a map of
//! string keys to values, a record the array
//! `[id, data, expiry_date, version, user_id]` (the id as 16 big-endian
//! bytes, the expiry date as `time`'s compact tuple, the user as a string or
//! nil). Floats are stored as their 64 bits, so they come back exactly.
//! Records written before `version` and `user_id` existed (three elements)
//! decode with version 0 and no user.
//!
//! It was chosen over JSON by the `codec` criterion bench in `bench/` (see the
//! README for the figures): a typical session (250 bytes) decodes in 1.1 µs
//! instead of 1.6 µs and takes 30% fewer bytes; encoding is about 0.1 µs
//! slower. Every request that uses its session decodes it, while only the
//! requests that change it encode, so decoding is what counts. JSON's
//! advantage, being readable in `redis-cli` or `psql`, did not outweigh that
//! on the hot path of every request.
//!
//! The decoders also read the JSON that earlier builds of this workspace
//! wrote (a JSON object starts with `{`, which no MessagePack map or array
//! does), so sessions stored before the switch stay readable and are
//! rewritten as MessagePack on their next save.
//!
//! Decoding is strict: bytes left over after a complete value are an
//! [`Error::Decode`] too, as is anything that is not a record or data.
//!
//! Nesting is bounded: a value nested deeper than [`MAX_VALUE_DEPTH`]
//! arrays and objects is refused by the encoders ([`Error::Encode`]) and by
//! the decoders ([`Error::Decode`]), which also stop reading at 128 levels
//! of nesting in all, as `serde_json` does for JSON. Bytes from a store are
//! data a store controls: without the bound, a record nested a thousand
//! levels deep overflowed the stack of a debug build and aborted the
//! process. So what the encoders write decodes, and what the decoders
//! return encodes.

use serde::Deserialize as _;
use serde_json::Value;
use time::OffsetDateTime;

use crate::{Data, Error, Record, Result};

/// The deepest a session value may nest arrays and objects (`[[1]]` is 2
/// deep): deeper ones are refused by the encoders.
pub const MAX_VALUE_DEPTH: usize = 100;

/// The deepest nesting the decoders take: a value's, the data map and the
/// record around it, and some room; `serde_json`'s own limit, so both
/// formats agree.
const MAX_DECODE_DEPTH: usize = 128;

/// Encodes session data.
pub fn encode_data(data: &Data) -> Result<Vec<u8>> {
    if too_deep(data) {
        return Err(Error::encode(TooDeep));
    }
    rmp_serde::to_vec(data).map_err(Error::encode)
}

/// Decodes session data written by [`encode_data`] (or as a JSON object).
pub fn decode_data(bytes: &[u8]) -> Result<Data> {
    let data = decode(bytes)?;
    if too_deep(&data) {
        return Err(Error::decode(TooDeep));
    }
    Ok(data)
}

/// Encodes a whole record (id, data, expiry date, version and user).
pub fn encode_record(record: &Record) -> Result<Vec<u8>> {
    if too_deep(&record.data) {
        return Err(Error::encode(TooDeep));
    }
    rmp_serde::to_vec(record).map_err(Error::encode)
}

/// Whether a value of `data` nests deeper than [`MAX_VALUE_DEPTH`] (walked
/// without recursion, so the check itself cannot overflow). Only arrays and
/// objects are queued, each with its depth, so data without them allocates
/// nothing, and the rest one growing stack.
fn too_deep(data: &Data) -> bool {
    fn containers<'a>(
        values: impl Iterator<Item = &'a Value>,
        depth: usize,
    ) -> impl Iterator<Item = (&'a Value, usize)> {
        values
            .filter(|value| matches!(value, Value::Array(_) | Value::Object(_)))
            .map(move |value| (value, depth))
    }
    let mut pending: Vec<(&Value, usize)> = containers(data.values(), 0).collect();
    while let Some((value, depth)) = pending.pop() {
        if depth >= MAX_VALUE_DEPTH {
            return true;
        }
        match value {
            Value::Array(items) => pending.extend(containers(items.iter(), depth + 1)),
            Value::Object(fields) => pending.extend(containers(fields.values(), depth + 1)),
            _ => {}
        }
    }
    false
}

/// A value nested deeper than [`MAX_VALUE_DEPTH`].
#[derive(Debug, thiserror::Error)]
#[error("a session value nests arrays and objects deeper than {MAX_VALUE_DEPTH} levels")]
struct TooDeep;

/// Decodes a record written by [`encode_record`] (or as a JSON object).
pub fn decode_record(bytes: &[u8]) -> Result<Record> {
    let record: Record = decode(bytes)?;
    if too_deep(&record.data) {
        return Err(Error::decode(TooDeep));
    }
    Ok(record)
}

/// Whether `bytes` hold JSON rather than MessagePack: their first byte that
/// is not JSON white space is `{`. In MessagePack, `{` and the white space
/// bytes are small integers, never the start of a map or array.
fn is_json(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|byte| !matches!(byte, b' ' | b'\t' | b'\n' | b'\r'))
        == Some(&b'{')
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    if is_json(bytes) {
        return serde_json::from_slice(bytes).map_err(Error::decode);
    }
    let mut deserializer = rmp_serde::Deserializer::from_read_ref(bytes);
    deserializer.set_max_depth(MAX_DECODE_DEPTH);
    let value = T::deserialize(&mut deserializer).map_err(Error::decode)?;
    // The input must end here: reading one more value must find nothing.
    match serde::de::IgnoredAny::deserialize(&mut deserializer) {
        Err(rmp_serde::decode::Error::InvalidMarkerRead(error))
            if error.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            Ok(value)
        }
        _ => Err(Error::decode(TrailingBytes)),
    }
}

/// Bytes after a complete encoded value.
#[derive(Debug, thiserror::Error)]
#[error("unexpected bytes after the encoded value")]
struct TrailingBytes;

/// An instant as whole microseconds since the Unix epoch (UTC), rounded
/// toward the past: the representation stores without a native timestamp
/// type use, so ordering and comparison are exact whatever the UTC offset the
/// instant was written in.
pub fn unix_micros(instant: OffsetDateTime) -> i64 {
    // i64 microseconds reach year ±292,000: beyond `time`'s default ±9999,
    // but not its `large-dates` ±999,999, so saturate rather than wrap.
    let micros = instant.unix_timestamp_nanos().div_euclid(1_000);
    i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX })
}

/// The instant `micros` microseconds after the Unix epoch, in UTC; a value
/// outside the range `time` supports is an [`Error::Decode`].
pub fn from_unix_micros(micros: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).map_err(Error::decode)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    #[test]
    fn record_round_trips_exactly() {
        let mut record = Record::new(datetime!(2031-02-03 04:05:06.123456 +05:30));
        record
            .data
            .insert("ünï".into(), json!({"f": 0.1 + 0.2, "n": null}));
        record
            .data
            .insert("big".into(), json!([u64::MAX, i64::MIN]));
        let bytes = encode_record(&record).unwrap();
        assert_eq!(decode_record(&bytes).unwrap(), record);
        let data = encode_data(&record.data).unwrap();
        assert_eq!(decode_data(&data).unwrap(), record.data);
    }

    #[test]
    fn unix_micros_round_trip_and_ignore_offsets() {
        let instant = datetime!(2031-02-03 04:05:06.123456789 +05:30);
        let micros = unix_micros(instant);
        assert_eq!(micros, unix_micros(instant.to_offset(time::UtcOffset::UTC)));
        let back = from_unix_micros(micros).unwrap();
        assert_eq!(back, datetime!(2031-02-03 04:05:06.123456 +05:30));
        // Before the epoch, rounding goes toward the past too.
        let early = datetime!(1969-12-31 23:59:59.9999995 UTC);
        assert_eq!(unix_micros(early), -1);
        // Whether year 294247 exists depends on `time`'s `large-dates`
        // feature, which another crate in the build may turn on.
        match from_unix_micros(i64::MAX) {
            Ok(far) => assert_eq!(unix_micros(far), i64::MAX),
            Err(error) => assert!(error.is_decode()),
        }
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(decode_record(b"\xff\x00garbage").unwrap_err().is_decode());
        assert!(decode_data(b"[1,2]").unwrap_err().is_decode());
        assert!(decode_data(b"").unwrap_err().is_decode());
        assert!(decode_record(b"{not json").unwrap_err().is_decode());
        // A record is not data, nor data a record.
        let record = Record::new(datetime!(2031-02-03 04:05:06 UTC));
        let record_bytes = encode_record(&record).unwrap();
        assert!(decode_data(&record_bytes).unwrap_err().is_decode());
        assert!(decode_record(&encode_data(&record.data).unwrap())
            .unwrap_err()
            .is_decode());
    }

    #[test]
    fn truncated_or_padded_bytes_are_decode_errors() {
        let mut record = Record::new(datetime!(2031-02-03 04:05:06 UTC));
        record.data.insert("k".into(), json!(["v", 1, 2.5]));
        let bytes = encode_record(&record).unwrap();
        for len in 0..bytes.len() {
            assert!(
                decode_record(&bytes[..len]).unwrap_err().is_decode(),
                "{len} of {} bytes decoded",
                bytes.len()
            );
        }
        let mut padded = bytes;
        padded.push(0);
        let error = decode_record(&padded).unwrap_err();
        assert!(error.is_decode());
        assert!(error.to_string().contains("unexpected bytes"), "{error}");
        // Trailing bytes that are not a value of their own are refused too.
        padded.pop();
        padded.push(0xc1); // The one marker MessagePack never uses.
        assert!(decode_record(&padded).unwrap_err().is_decode());
    }

    /// `depth` arrays around `null`.
    fn nested(depth: usize) -> serde_json::Value {
        (0..depth).fold(serde_json::Value::Null, |inner, _| json!([inner]))
    }

    #[test]
    fn what_encodes_decodes_and_deeper_values_are_refused() {
        let mut record = Record::new(datetime!(2031-02-03 04:05:06 UTC));
        record.data.insert("deep".into(), nested(MAX_VALUE_DEPTH));
        let bytes = encode_record(&record).unwrap();
        assert_eq!(decode_record(&bytes).unwrap(), record);
        assert_eq!(
            decode_data(&encode_data(&record.data).unwrap()).unwrap(),
            record.data
        );
        // The same depth as JSON, as earlier builds wrote it, decodes too.
        assert_eq!(
            decode_record(&serde_json::to_vec(&record).unwrap()).unwrap(),
            record
        );

        record
            .data
            .insert("deeper".into(), json!({"a": nested(MAX_VALUE_DEPTH)}));
        assert!(encode_record(&record).unwrap_err().is_encode());
        assert!(encode_data(&record.data).unwrap_err().is_encode());
        // Nor do the decoders return it, from JSON (which `serde_json` reads
        // up to 128 levels) or from MessagePack written by hand.
        let json = serde_json::to_vec(&record).unwrap();
        assert!(decode_record(&json).unwrap_err().is_decode());
        let data = serde_json::to_vec(&record.data).unwrap();
        assert!(decode_data(&data).unwrap_err().is_decode());
        let mut bytes = b"\x81\xa1k".to_vec();
        bytes.extend(std::iter::repeat_n(0x91, MAX_VALUE_DEPTH + 1));
        bytes.push(0xc0);
        assert!(decode_data(&bytes).unwrap_err().is_decode());
        bytes.truncate(3 + MAX_VALUE_DEPTH);
        bytes.push(0xc0);
        assert!(decode_data(&bytes).is_ok());
    }

    /// Found by the `record_codec` fuzz target's smoke run: bytes from a
    /// store nesting arrays a thousand deep overflowed the stack of a debug
    /// build (and would a small one in release) and aborted the process.
    #[test]
    fn deeply_nested_bytes_are_a_decode_error_not_a_stack_overflow() {
        let outcome = std::thread::Builder::new()
            // Less than a tokio worker's 2 MiB, as a margin.
            .stack_size(1 << 20)
            .spawn(|| {
                for depth in [1_000, 100_000] {
                    let mut data = b"\x81\xa1k".to_vec();
                    data.extend(std::iter::repeat_n(0x91, depth));
                    data.push(0xc0);
                    assert!(decode_data(&data).unwrap_err().is_decode());
                    let mut record = vec![0x95, 0xc4, 16];
                    record.extend([0; 16]);
                    record.extend(&data);
                    assert!(decode_record(&record).unwrap_err().is_decode());
                }
            })
            .unwrap()
            .join();
        assert!(outcome.is_ok());
    }

    #[test]
    fn json_written_by_earlier_builds_still_decodes() {
        let mut record = Record::new(datetime!(2031-02-03 04:05:06.123456 +01:00));
        record
            .data
            .insert("cart".into(), json!([{"sku": "CRAB", "price": 19.99}]));
        let json = serde_json::to_vec(&record).unwrap();
        assert_eq!(decode_record(&json).unwrap(), record);
        let mut indented = b" \n".to_vec();
        indented.extend(serde_json::to_vec(&record.data).unwrap());
        assert_eq!(decode_data(&indented).unwrap(), record.data);
    }

    #[test]
    fn the_format_is_messagepack() {
        let mut record = Record::new(datetime!(2031-02-03 04:05:06 UTC));
        let bytes = encode_record(&record).unwrap();
        // fixarray of 5: id, data, expiry date, version, user; the id as bin8
        // of 16 bytes.
        assert_eq!(bytes[..3], [0x95, 0xc4, 16]);
        assert_eq!(bytes[3..19], record.id.0.to_be_bytes());
        // The data: an empty fixmap.
        assert_eq!(bytes[19], 0x80);
        // Version 0 (positive fixint), no user (nil).
        assert_eq!(bytes[bytes.len() - 2..], [0x00, 0xc0]);
        assert_eq!(encode_data(&record.data).unwrap(), [0x80]);

        record.version = 7;
        record.user_id = Some("u".into());
        let bytes = encode_record(&record).unwrap();
        assert_eq!(bytes[bytes.len() - 3..], [0x07, 0xa1, b'u']);
        assert_eq!(decode_record(&bytes).unwrap(), record);
    }

    #[test]
    fn records_written_before_versions_decode_at_version_zero() {
        // What earlier builds wrote: `[id, data, expiry_date]`.
        let mut record = Record::new(datetime!(2031-02-03 04:05:06.5 UTC));
        record.data.insert("k".into(), json!("v"));
        let old = rmp_serde::to_vec(&(record.id, &record.data, record.expiry_date)).unwrap();
        assert_eq!(old[0], 0x93);
        assert_eq!(decode_record(&old).unwrap(), record);
        // And the JSON before that.
        #[derive(serde::Serialize)]
        struct Before<'a> {
            id: crate::Id,
            data: &'a Data,
            expiry_date: OffsetDateTime,
        }
        let json = serde_json::to_vec(&Before {
            id: record.id,
            data: &record.data,
            expiry_date: record.expiry_date,
        })
        .unwrap();
        assert_eq!(decode_record(&json).unwrap(), record);
    }
}
