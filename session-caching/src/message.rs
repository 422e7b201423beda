//! What travels on the channel: short text messages, never more than a
//! PostgreSQL `NOTIFY` payload can hold.
//!
//! - `i <node> <id> <id> ...`: these sessions changed (evict them);
//! - `c <node>`: a user's sessions were deleted (clear everything);
//! - `h <node> <sequence>`: a heartbeat, for its sender to receive back.
//!
//! `<node>` is the sending cache's random name in hex: a cache ignores its
//! own invalidations (it already applied them) and recognises its own
//! heartbeats.

use session_core::Id;

/// At most this many ids go in one message: 256 ids of 22 characters and
/// their spaces stay under PostgreSQL's 8,000-byte `NOTIFY` payload limit.
pub(crate) const MAX_IDS_PER_MESSAGE: usize = 256;

/// A message to send.
pub(crate) enum Message<'a> {
    Invalidate(&'a [Id]),
    Clear,
    Heartbeat(u64),
}

/// A message received.
#[derive(Debug, PartialEq)]
pub(crate) enum Received {
    Invalidate(Vec<Id>),
    Clear,
    Heartbeat(u64),
}

impl Message<'_> {
    /// The message's text, sent by cache `node`.
    pub(crate) fn encode(&self, node: u64) -> String {
        match self {
            Message::Invalidate(ids) => {
                let mut text = format!("i {node:x}");
                for id in *ids {
                    text.push(' ');
                    text.push_str(&id.to_string());
                }
                text
            }
            Message::Clear => format!("c {node:x}"),
            Message::Heartbeat(sequence) => format!("h {node:x} {sequence}"),
        }
    }
}

impl Received {
    /// Who sent `text` and what it says; `None` when it is not one of ours.
    pub(crate) fn decode(text: &str) -> Option<(u64, Received)> {
        let mut parts = text.split(' ');
        let kind = parts.next()?;
        let node = u64::from_str_radix(parts.next()?, 16).ok()?;
        let received = match kind {
            "i" => Received::Invalidate(
                parts
                    .map(|id| id.parse().ok())
                    .collect::<Option<Vec<Id>>>()?,
            ),
            "c" => Received::Clear,
            "h" => Received::Heartbeat(parts.next()?.parse().ok()?),
            _ => return None,
        };
        Some((node, received))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_fit_a_notify_payload() {
        let ids: Vec<Id> = (0..MAX_IDS_PER_MESSAGE).map(|_| Id::default()).collect();
        let text = Message::Invalidate(&ids).encode(u64::MAX);
        assert!(text.len() < 8_000, "{}", text.len());
        assert_eq!(
            Received::decode(&text),
            Some((u64::MAX, Received::Invalidate(ids)))
        );
        assert_eq!(
            Received::decode(&Message::Clear.encode(7)),
            Some((7, Received::Clear))
        );
        assert_eq!(
            Received::decode(&Message::Heartbeat(42).encode(0)),
            Some((0, Received::Heartbeat(42)))
        );
        for garbage in ["", "i", "x 1", "i zz", "i 1 not-an-id", "h 1", "h 1 x"] {
            assert_eq!(Received::decode(garbage), None, "{garbage:?}");
        }
    }
}
