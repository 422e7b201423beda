//! Our errors in tower-sessions' terms.
//!
//! tower-sessions' `Error` holds a string per kind (`Encode`, `Decode`,
//! `Backend`) and no source, so the kind is kept and the whole chain of
//! sources goes into the message.

use std::error::Error as _;

use session_core::Error;

/// Which tower-sessions variant an error of ours becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Encode,
    Decode,
    Backend,
}

/// The kind and message tower-sessions gets for `error`.
///
/// `Encode` and `Decode` carry the cause alone, since tower-sessions prefixes
/// them with "Encoding failed with: " / "Decoding failed with: ". `Backend`
/// (which tower-sessions shows as is) carries our whole message. An
/// [`Error::Unsupported`] and any kind added later are `Backend`.
pub(crate) fn describe(error: &Error) -> (Kind, String) {
    let (kind, mut message, mut next) = match error {
        Error::Encode(source) => (Kind::Encode, source.to_string(), source.source()),
        Error::Decode(source) => (Kind::Decode, source.to_string(), source.source()),
        // Our `Display` already shows the first source.
        Error::Backend(source) => (Kind::Backend, error.to_string(), source.source()),
        other => (Kind::Backend, other.to_string(), other.source()),
    };
    while let Some(source) = next {
        let text = source.to_string();
        // Many errors repeat their source's message in their own.
        if !text.is_empty() && !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        next = source.source();
    }
    (kind, message)
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::*;

    /// An error with a message and an optional source.
    #[derive(Debug)]
    struct Layered(&'static str, Option<Box<Layered>>);

    impl fmt::Display for Layered {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layered {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1
                .as_deref()
                .map(|source| source as &(dyn std::error::Error + 'static))
        }
    }

    fn chain() -> Layered {
        Layered(
            "pool timed out",
            Some(Box::new(Layered(
                "connection refused",
                Some(Box::new(Layered("os error 111", None))),
            ))),
        )
    }

    #[test]
    fn the_whole_chain_is_kept() {
        assert_eq!(
            describe(&Error::backend(chain())),
            (
                Kind::Backend,
                "session backend error: pool timed out: connection refused: os error 111"
                    .to_owned()
            )
        );
        assert_eq!(
            describe(&Error::decode(chain())),
            (
                Kind::Decode,
                "pool timed out: connection refused: os error 111".to_owned()
            )
        );
        assert_eq!(
            describe(&Error::encode("version overflow")),
            (Kind::Encode, "version overflow".to_owned())
        );
        assert_eq!(
            describe(&Error::Unsupported("sessions_of_user")),
            (
                Kind::Backend,
                "this session store does not support `sessions_of_user`".to_owned()
            )
        );
    }

    #[test]
    fn repeated_messages_are_not_repeated() {
        let error = Layered(
            "query failed: connection refused",
            Some(Box::new(Layered("connection refused", None))),
        );
        assert_eq!(
            describe(&Error::backend(error)).1,
            "session backend error: query failed: connection refused"
        );
    }
}
