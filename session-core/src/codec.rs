//! The one encoding every byte-oriented store uses for session data, so a
//! record written by one store reads back the same in another.
//!
//! Stores that keep the expiry in a column of its own encode only the
//! [`Data`] ([`encode_data`]/[`decode_data`]); stores that keep one value per
//! session encode the whole [`Record`] ([`encode_record`]/[`decode_record`]).
//!
//! The format is JSON (`serde_json`, with exact float round trips). It was
//! chosen by the `codec` criterion bench in `bench/`: see the README for the
//! figures against MessagePack.

use time::OffsetDateTime;

use crate::{Data, Error, Record, Result};

/// Encodes session data.
pub fn encode_data(data: &Data) -> Result<Vec<u8>> {
    serde_json::to_vec(data).map_err(Error::encode)
}

/// Decodes session data written by [`encode_data`].
pub fn decode_data(bytes: &[u8]) -> Result<Data> {
    serde_json::from_slice(bytes).map_err(Error::decode)
}

/// Encodes a whole record (id, data and expiry date).
pub fn encode_record(record: &Record) -> Result<Vec<u8>> {
    serde_json::to_vec(record).map_err(Error::encode)
}

/// Decodes a record written by [`encode_record`].
pub fn decode_record(bytes: &[u8]) -> Result<Record> {
    serde_json::from_slice(bytes).map_err(Error::decode)
}

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
    }
}
