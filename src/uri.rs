//! URI components, decoded and encoded once for both processes, with the crates Meilisearch's
//! own stack uses (`form_urlencoded` behind actix-web's `Query`, `percent-encoding`), so a
//! query string means the same thing to Miroir as to a node.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

/// Splits a query string into decoded `(key, value)` pairs, as Meilisearch does: `+` is a
/// space, an invalid escape (`%zz`, a trailing `%`) stays literal, invalid UTF-8 is replaced,
/// empty pieces (`a=1&&b=2`) are skipped and a key without `=` has an empty value.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// [`query_pairs`], or `None` when the query string has a malformed escape or does not
/// decode to UTF-8 — for callers that would rather hand such input to a node than guess.
pub fn query_pairs_exact(query: &str) -> Option<Vec<(String, String)>> {
    let exact = escapes_well_formed(query)
        && percent_encoding::percent_decode_str(query)
            .decode_utf8()
            .is_ok();
    exact.then(|| query_pairs(query))
}

/// Every `%` is followed by two hex digits.
fn escapes_well_formed(s: &str) -> bool {
    s.split('%').skip(1).all(|rest| {
        rest.as_bytes()
            .get(..2)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    })
}

/// Decodes one path segment strictly: `None` when an escape is malformed or the result is
/// not UTF-8 (such a path names no resource). `+` is a literal plus, as in any path.
pub fn decode_segment(s: &str) -> Option<String> {
    if !escapes_well_formed(s) {
        return None;
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// RFC 3986 unreserved characters; everything else in a segment is escaped.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a path segment (index uids and document ids are normally
/// `[A-Za-z0-9_-]`, but anything is relayed safely), uppercase hex.
pub fn encode_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_follow_form_urlencoding() {
        assert_eq!(
            query_pairs("statuses=enqueued%2Cfailed&limit=2&q=a+b&x&&p=%2B"),
            vec![
                ("statuses".into(), "enqueued,failed".into()),
                ("limit".into(), "2".into()),
                ("q".into(), "a b".into()),
                ("x".into(), "".into()),
                ("p".into(), "+".into()),
            ]
        );
        assert_eq!(
            query_pairs("a=100%&b=%zz"),
            vec![("a".into(), "100%".into()), ("b".into(), "%zz".into())]
        );
        assert_eq!(query_pairs("a=%ff"), vec![("a".into(), "\u{fffd}".into())]);
    }

    #[test]
    fn exact_pairs_refuse_what_they_would_have_to_guess() {
        assert_eq!(
            query_pairs_exact("q=a+b%2B&x"),
            Some(vec![("q".into(), "a b+".into()), ("x".into(), "".into())])
        );
        for q in ["q=%zz", "q=100%", "q=%ff", "q=%C3&r=%A9"] {
            assert_eq!(query_pairs_exact(q), None, "{q}");
        }
    }

    #[test]
    fn segments_decode_strictly() {
        assert_eq!(decode_segment("abc").as_deref(), Some("abc"));
        assert_eq!(decode_segment("a%20b+c").as_deref(), Some("a b+c"));
        assert_eq!(decode_segment("a%2"), None);
        assert_eq!(decode_segment("a%zz"), None);
        assert_eq!(decode_segment("%ff"), None);
    }

    #[test]
    fn segments_round_trip() {
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
        assert_eq!(encode_segment("Az09-_.~"), "Az09-_.~");
        for s in ["é/ü?#%", "a+b", ""] {
            assert_eq!(decode_segment(&encode_segment(s)).as_deref(), Some(s));
        }
    }
}
