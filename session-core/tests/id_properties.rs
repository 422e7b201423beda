//! Property tests of `Id`'s text form.

use proptest::prelude::*;
use session_core::Id;

proptest! {
    #[test]
    fn display_then_parse_is_identity(bits in any::<i128>()) {
        let id = Id(bits);
        let text = id.to_string();
        prop_assert_eq!(text.len(), 22);
        prop_assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        prop_assert_eq!(text.parse::<Id>(), Ok(id));
    }

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        if let Ok(id) = text.parse::<Id>() {
            // Whatever parses is canonical: it prints back as the input.
            prop_assert_eq!(id.to_string(), text);
        }
    }

    #[test]
    fn near_miss_strings_never_panic(text in "[A-Za-z0-9_+/=-]{20,24}") {
        if let Ok(id) = text.parse::<Id>() {
            prop_assert_eq!(id.to_string(), text);
        }
    }
}
