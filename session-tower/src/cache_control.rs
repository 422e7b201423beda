//! `Cache-Control` on responses that set or remove the session cookie.
//!
//! A shared cache (a CDN, a corporate proxy) that stores a response with a
//! `Set-Cookie` can hand that cookie, hence that session, to the next
//! visitor who asks for the same URL. `private` forbids shared caches to
//! store the response at all, while still letting the visitor's own browser
//! cache the page (back/forward navigation stays fast): the browser's cache
//! is the visitor's own, and browsers do not apply `Set-Cookie` from it.
//! `no-store` would also forbid that, for no gain against the replay; a
//! handler that wants it sets it and it is kept.

use http::{header::CACHE_CONTROL, HeaderMap, HeaderValue};

/// Makes the response `private` without weakening what the handler set:
/// `no-store` or `private` already there are kept as they are; otherwise the
/// directives that let a shared cache store the response (`public`,
/// `s-maxage`, a `private` limited to some fields) are dropped, the others
/// kept, and `private` added. A `Cache-Control` that is not text becomes
/// `no-store`.
pub(crate) fn make_private(headers: &mut HeaderMap) {
    let mut directives: Vec<String> = Vec::new();
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(text) = value.to_str() else {
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return;
        };
        directives.extend(split_directives(text).map(str::to_owned));
    }
    if directives.is_empty() {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("private"));
        return;
    }
    if directives.iter().any(|directive| {
        directive.eq_ignore_ascii_case("no-store") || directive.eq_ignore_ascii_case("private")
    }) {
        return;
    }
    directives.retain(|directive| {
        let name = directive.split('=').next().unwrap_or_default().trim();
        !["public", "s-maxage", "private"]
            .iter()
            .any(|shared| name.eq_ignore_ascii_case(shared))
    });
    directives.push("private".to_owned());
    match HeaderValue::try_from(directives.join(", ")) {
        Ok(value) => headers.insert(CACHE_CONTROL, value),
        // Made of parts of valid header values: cannot happen, but the
        // strictest answer is the safe one.
        Err(_) => headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store")),
    };
}

/// The comma-separated directives of a `Cache-Control` value, trimmed, empty
/// ones left out; a comma inside a quoted argument does not split.
fn split_directives(text: &str) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    let mut escaped = false;
    text.split(move |c: char| {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == ',' && !quoted {
            return true;
        }
        false
    })
    .map(str::trim)
    .filter(|directive| !directive.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(values: &[&str]) -> Vec<String> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                CACHE_CONTROL,
                HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("x")),
            );
        }
        make_private(&mut headers);
        headers
            .get_all(CACHE_CONTROL)
            .iter()
            .map(|value| value.to_str().unwrap_or("<bytes>").to_owned())
            .collect()
    }

    #[test]
    fn added_when_missing() {
        assert_eq!(after(&[]), ["private"]);
    }

    #[test]
    fn stricter_or_equal_settings_are_kept() {
        assert_eq!(after(&["no-store"]), ["no-store"]);
        assert_eq!(after(&["private, max-age=60"]), ["private, max-age=60"]);
        assert_eq!(after(&["max-age=0", "No-Store"]), ["max-age=0", "No-Store"]);
    }

    #[test]
    fn shared_cache_permissions_are_replaced() {
        assert_eq!(after(&["public, max-age=3600"]), ["max-age=3600, private"]);
        assert_eq!(
            after(&["max-age=60, s-maxage=600", "must-revalidate"]),
            ["max-age=60, must-revalidate, private"]
        );
        assert_eq!(
            after(&[r#"private="set-cookie, x-a", no-cache="a,b""#]),
            [r#"no-cache="a,b", private"#]
        );
        assert_eq!(after(&["no-cache"]), ["no-cache, private"]);
    }

    #[test]
    fn bytes_that_are_not_text_become_no_store() {
        let mut headers = HeaderMap::new();
        headers.insert(
            CACHE_CONTROL,
            HeaderValue::from_bytes(b"public, \xff")
                .unwrap_or_else(|_| HeaderValue::from_static("x")),
        );
        make_private(&mut headers);
        assert_eq!(headers[CACHE_CONTROL], "no-store");
    }
}
