//! Shard-restricting filters: `_miroir_shard IN [..]` AND the client's own filter.
//!
//! With RF = 1 every node holds exactly the shards the covering set assigns it, so no filter
//! is needed. With RF > 1 (or during a migration) a node can hold shards that this covering
//! set assigned to *another* node; asking it unrestricted would return those documents twice.
//! Then the node's request gets `_miroir_shard IN [assigned shards]` added.
//!
//! Composition uses Meilisearch's **array form** (elements are ANDed): `[ours, client]`. The
//! client's filter is never rewritten or re-parenthesised, so a malformed client filter fails
//! on the node with exactly the error message (and character positions) a single
//! Meilisearch would give — we relay that error verbatim.
//! - no filter / `null` / blank string → `"_miroir_shard IN [..]"`;
//! - string `f` → `["_miroir_shard IN [..]", f]`;
//! - array `[a, [b, c]]` → `["_miroir_shard IN [..]", a, [b, c]]` (inner arrays stay ORs);
//! - any other JSON type is invalid for Meilisearch: left untouched so the node rejects it
//!   with its own `invalid_search_filter` error.

pub use miroir_core::documents::shard_clause;
use miroir_core::ShardId;
use serde_json::{Map, Value};

/// A JSON request body for one node: `body` as is, or with its `filter` restricted to
/// `shards` when the node must be asked for only some of the shards it holds.
pub fn node_body_for(body: &Map<String, Value>, shards: Option<&[ShardId]>) -> Vec<u8> {
    let bytes = |m: &Map<String, Value>| serde_json::to_vec(m).expect("a JSON map serialises");
    match shards {
        None => bytes(body),
        Some(shards) => {
            let mut b = body.clone();
            b.insert(
                "filter".into(),
                restrict_to_shards(body.get("filter"), shards),
            );
            bytes(&b)
        }
    }
}

/// Combines the shard restriction with the client's filter (see module docs).
/// `client` is the `filter` value of the client's request, `None` when absent.
pub fn restrict_to_shards(client: Option<&Value>, shards: &[ShardId]) -> Value {
    let ours = Value::String(shard_clause(shards));
    match client {
        None | Some(Value::Null) => ours,
        Some(Value::String(s)) if s.trim().is_empty() => ours,
        Some(Value::String(s)) => Value::Array(vec![ours, Value::String(s.clone())]),
        Some(Value::Array(items)) => {
            let mut v = Vec::with_capacity(items.len() + 1);
            v.push(ours);
            v.extend(items.iter().cloned());
            Value::Array(v)
        }
        Some(other) => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(v: &[u32]) -> Vec<ShardId> {
        v.iter().map(|&x| ShardId(x)).collect()
    }

    #[test]
    fn clause_text() {
        assert_eq!(shard_clause(&s(&[3])), r##"_miroir_shard IN [")"]"##);
        assert_eq!(
            shard_clause(&s(&[1, 5, 9])),
            r##"_miroir_shard IN ["#", "+", ";"]"##
        );
    }

    #[test]
    fn no_client_filter() {
        let expect = json!(r##"_miroir_shard IN ["#", "("]"##);
        assert_eq!(restrict_to_shards(None, &s(&[1, 2])), expect);
        assert_eq!(restrict_to_shards(Some(&Value::Null), &s(&[1, 2])), expect);
        assert_eq!(restrict_to_shards(Some(&json!("  ")), &s(&[1, 2])), expect);
    }

    #[test]
    fn string_filter_becomes_array_and_is_not_rewritten() {
        let f = json!("genre = horror OR year > 2000");
        assert_eq!(
            restrict_to_shards(Some(&f), &s(&[0])),
            json!([
                r##"_miroir_shard IN ["!"]"##,
                "genre = horror OR year > 2000"
            ])
        );
    }

    #[test]
    fn array_filter_keeps_inner_ors() {
        let f = json!(["a = 1", ["b = 2", "c = 3"]]);
        assert_eq!(
            restrict_to_shards(Some(&f), &s(&[4, 7])),
            json!([
                r##"_miroir_shard IN ["*", "."]"##,
                "a = 1",
                ["b = 2", "c = 3"]
            ])
        );
    }

    #[test]
    fn invalid_types_untouched() {
        assert_eq!(restrict_to_shards(Some(&json!(42)), &s(&[1])), json!(42));
        assert_eq!(
            restrict_to_shards(Some(&json!({"a": 1})), &s(&[1])),
            json!({"a": 1})
        );
    }
}
