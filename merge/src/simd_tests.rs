//! The SIMD hit scan against the scalar scanner: on the same shard bodies, every available
//! level ([`simd::available`]) must give byte-identical merges and identical errors (same
//! kind, shard, offset and reason: the fast path either succeeds exactly like the scalar
//! scanner or hands the hit back to it).
//!
//! The bodies are built to stress what the fast path does differently: long strings with
//! escapes, backslash runs and `\u` escapes landing on every 64-byte boundary and on the
//! 1 KiB window refills; nesting beyond the fast path's depth; reserved `_miroir_*` keys,
//! `_formatted`, ranking scores and details (handled by the scalar code inside a fast hit);
//! escaped keys; hits with whitespace (handed back); then one byte corrupted or the body cut.

use crate::scan::simd::{self, Level};
use crate::search::merge_search_with_level;
use crate::{Bump, MergeError, Pagination, SearchMergeRequest, ShardInput};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// A JSON string literal (quotes included) built from pieces that exercise escapes.
fn string() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            6 => "[a-z ]{1,70}",
            1 => Just("\\\\".to_string()),
            1 => Just("\\\"".to_string()),
            1 => Just("\\\\\\\\\\\"".to_string()),
            1 => Just("\\n".to_string()),
            1 => Just("\\/".to_string()),
            1 => Just("\\u00e9".to_string()),
            1 => Just("\\ud83d\\ude00".to_string()),
            1 => Just("é—".to_string()),
            1 => Just("{}[],:".to_string()),
        ],
        0..40,
    )
    .prop_map(|parts| format!("\"{}\"", parts.concat()))
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => string(),
        2 => "-?(0|[1-9][0-9]{0,5})(\\.[0-9]{1,17})?([eE][+-]?[0-9]{1,2})?",
        1 => Just("true".to_string()),
        1 => Just("false".to_string()),
        1 => Just("null".to_string()),
    ]
}

/// Any value, nested up to 5 levels, compact.
fn value() -> impl Strategy<Value = String> {
    scalar().prop_recursive(5, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((string(), inner), 0..4).prop_map(|m| {
                let members: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

/// `[[…[1]…]]` nested `n` deep (the fast path hands deep values back).
fn deep(n: usize) -> String {
    "[".repeat(n) + "1" + &"]".repeat(n)
}

fn member() -> impl Strategy<Value = String> {
    let score = "(0|1)(\\.[0-9]{1,17})?";
    prop_oneof![
        6 => (string(), value()).prop_map(|(k, v)| format!("{k}:{v}")),
        1 => value().prop_map(|v| format!("\"_miroir_shard\":{v}")),
        1 => value().prop_map(|v| format!("\"_miroir_\\u0078\":{v}")),
        1 => value().prop_map(|v| format!("\"t\\u0069tle\":{v}")),
        2 => score.prop_map(|s| format!("\"_rankingScore\":{s}")),
        1 => (score, 0u64..3).prop_map(|(s, o)| format!(
            r#""_rankingScoreDetails":{{"words":{{"order":{o},"score":{s}}},"f:asc":{{"order":1,"value":"a\"b"}}}}"#
        )),
        1 => (string(), value()).prop_map(|(t, v)| format!(
            r#""_formatted":{{"title":{t},"_miroir_shard":{v},"x":1}}"#
        )),
        1 => (14usize..20).prop_map(|n| format!("\"deep\":{}", deep(n))),
        1 => value().prop_map(|v| format!("\"ws\" : {v}")),
    ]
}

fn hit() -> impl Strategy<Value = String> {
    prop::collection::vec(member(), 0..8).prop_map(|m| format!("{{{}}}", m.join(",")))
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec(hit(), 0..6), 0u64..9).prop_map(|(hits, n)| {
        format!(
            r#"{{"hits":[{}],"query":"q","processingTimeMs":{n},"limit":20,"offset":0,"estimatedTotalHits":{n}}}"#,
            hits.join(",")
        )
        .into_bytes()
    })
}

/// One byte replaced (by a byte that matters to JSON) or the body cut, or neither.
fn corrupt(mut body: Vec<u8>, how: u8, at: prop::sample::Index, byte: u8) -> Vec<u8> {
    const BYTES: &[u8] = b"\"\\{}[],: a0u-.e\x00\xff";
    if body.is_empty() {
        return body;
    }
    let i = at.index(body.len());
    match how {
        0 => body[i] = BYTES[byte as usize % BYTES.len()],
        1 => body.truncate(i),
        _ => {}
    }
    body
}

fn merge(bodies: &[Vec<u8>], flags: u8, limit: usize, level: Level) -> Result<Vec<u8>, MergeError> {
    let by = BTreeMap::new();
    let req = SearchMergeRequest {
        pagination: Pagination::OffsetLimit { offset: 0, limit },
        sort_requested: flags & 1 != 0,
        want_ranking_score: flags & 2 != 0,
        want_ranking_score_details: flags & 4 != 0,
        max_values_per_facet: 100,
        sort_facet_values_by: &by,
        max_total_hits: 1000,
        reserved_prefix: "_miroir_",
        query: None,
        distinct: None,
        drop: &[],
    };
    let shards: Vec<ShardInput> = bodies.iter().map(|b| ShardInput::Ok(b)).collect();
    let arena = Bump::new();
    let mut out = Vec::new();
    merge_search_with_level(&req, &shards, &arena, &mut out, level)?;
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn simd_levels_merge_like_the_scalar_scanner(
        bodies in prop::collection::vec(body(), 1..4),
        how in 0u8..4,
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        flags in 0u8..8,
        limit in 0usize..30,
    ) {
        let mut bodies = bodies;
        bodies[0] = corrupt(std::mem::take(&mut bodies[0]), how, at, byte);
        let want = merge(&bodies, flags, limit, Level::Scalar);
        for level in simd::available() {
            prop_assert_eq!(&merge(&bodies, flags, limit, level), &want, "{:?}", level);
        }
    }
}

/// The generator reaches the fast path's interesting cases (not only hand-backs): a long
/// escaped string across a window refill merges the same at every level.
#[test]
fn long_strings_across_window_refills() {
    let text = "x".repeat(1000) + "\\\\\\\"" + &"é".repeat(300) + "\\u00e9";
    let hit = |i: usize| {
        format!(r#"{{"id":{i},"t":"{text}","a":[{{"b":"{text}"}}],"_rankingScore":0.{i}}}"#)
    };
    let hits: Vec<String> = (1..9).map(hit).collect();
    let body = format!(
        r#"{{"hits":[{}],"query":"q","processingTimeMs":1,"limit":20,"offset":0,"estimatedTotalHits":8}}"#,
        hits.join(",")
    )
    .into_bytes();
    let want = merge(std::slice::from_ref(&body), 0, 20, Level::Scalar).expect("valid");
    for level in simd::available() {
        assert_eq!(
            merge(std::slice::from_ref(&body), 0, 20, level).expect("valid"),
            want
        );
    }
    let mut bad = body.clone();
    let at = bad
        .windows(2)
        .rposition(|w| w == b"\\u")
        .expect("an escape")
        + 1;
    bad[at] = b'x';
    let want = merge(std::slice::from_ref(&bad), 0, 20, Level::Scalar).unwrap_err();
    for level in simd::available() {
        assert_eq!(
            merge(std::slice::from_ref(&bad), 0, 20, level).unwrap_err(),
            want
        );
    }
}
