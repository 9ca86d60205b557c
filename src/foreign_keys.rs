//! Foreign keys (Meilisearch 1.50's experimental `foreignKeys` setting): the pure half of
//! hydration across shards (decision 044).
//!
//! An index's `foreignKeys` names fields whose values are document ids of another index. With
//! the `foreignKeys` experimental feature on, one Meilisearch replaces every such value of a
//! returned hit (in the document and in `_formatted`) by the foreign document, with the
//! foreign index's displayed fields. Over shards the foreign document may live on any node, so
//! Miroir keeps the setting itself (nodes never see it) and hydrates the merged page: collect
//! the ids ([`collect_ids`]), fetch them from their owners, then replace ([`hydrate`]).
//!
//! The field walk is Meilisearch's `permissive_json_pointer::map_leaf_values`: a key is
//! followed when it is a prefix of a selector or the selector a prefix of it (on `.`
//! boundaries), through objects and arrays; every scalar leaf reached is a candidate id.

use crate::documents::is_valid_string_id;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One entry of an index's `foreignKeys` setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForeignKey {
    /// The index whose documents the field's values name.
    pub foreign_index_uid: String,
    /// The field of this index holding those ids.
    pub field_name: String,
}

/// A leaf value as a document id, as milli's `validate_document_id_value` reads it: a valid
/// string id, or an integer (never a float). `None`: not an id, left as it is.
pub fn document_id(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if is_valid_string_id(s) => Some(s.clone()),
        Value::Number(n) if !n.is_f64() => Some(n.to_string()),
        _ => None,
    }
}

/// `permissive_json_pointer::contained_in`: `selector` starts with `key` at a `.` boundary.
fn contained_in(selector: &str, key: &str) -> bool {
    selector.starts_with(key)
        && selector[key.len()..]
            .chars()
            .next()
            .is_none_or(|c| c == '.')
}

fn map_object(
    object: &mut Map<String, Value>,
    selectors: &[&str],
    base: &str,
    f: &mut impl FnMut(&mut Value),
) {
    for (key, value) in object.iter_mut() {
        let key = if base.is_empty() {
            key.clone()
        } else {
            format!("{base}.{key}")
        };
        if selectors
            .iter()
            .any(|s| contained_in(s, &key) || contained_in(&key, s))
        {
            map_value(value, selectors, &key, f);
        }
    }
}

fn map_value(value: &mut Value, selectors: &[&str], key: &str, f: &mut impl FnMut(&mut Value)) {
    match value {
        Value::Object(o) => map_object(o, selectors, key, f),
        Value::Array(a) => {
            for v in a {
                map_value(v, selectors, key, f);
            }
        }
        leaf => f(leaf),
    }
}

/// Calls `f` on every scalar leaf `selectors` reach in `document` (`map_leaf_values`).
pub fn map_leaves(
    document: &mut Map<String, Value>,
    selectors: &[&str],
    mut f: impl FnMut(&mut Value),
) {
    map_object(document, selectors, "", &mut f);
}

/// The foreign ids `field` holds in `document` (duplicates kept; invalid ids skipped).
pub fn collect_ids(document: &Map<String, Value>, field: &str, out: &mut Vec<String>) {
    fn walk(v: &Value, selectors: &[&str], key: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, v) in o {
                    let key = if key.is_empty() {
                        k.clone()
                    } else {
                        format!("{key}.{k}")
                    };
                    if selectors
                        .iter()
                        .any(|s| contained_in(s, &key) || contained_in(&key, s))
                    {
                        walk(v, selectors, &key, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, selectors, key, out)),
            leaf => out.extend(document_id(leaf)),
        }
    }
    for (k, v) in document {
        if contained_in(field, k) || contained_in(k, field) {
            walk(v, &[field], k, out);
        }
    }
}

/// Replaces every foreign id `fields` reach in `document` by `lookup(id)`; invalid ids stay.
/// A valid id no document has becomes `{}`, in one search and in a federated one alike
/// (milli's document maker yields an empty map; checked on a real 1.50 node).
pub fn hydrate<'d>(
    document: &mut Map<String, Value>,
    fields: &[&str],
    lookup: impl Fn(&str) -> Option<&'d Map<String, Value>>,
) {
    map_leaves(document, fields, |leaf| {
        if let Some(id) = document_id(leaf) {
            *leaf = Value::Object(lookup(&id).cloned().unwrap_or_default());
        }
    });
}

/// One `_foreign(field, filter)` of a filter string (Meilisearch 1.50's foreign filter): the
/// documents of `field`'s foreign index matching `inner`, as `field IN [their ids]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignFilter {
    /// Byte range of the whole `_foreign(…)` in the filter string.
    pub span: std::ops::Range<usize>,
    /// The field as written (quotes kept), and unquoted.
    pub raw_field: String,
    pub field: String,
    /// The foreign index's filter, as written.
    pub inner: String,
}

/// Whether `b[i..]` starts a quoted string; returns the index after its closing quote.
fn skip_quoted(b: &[u8], i: usize) -> Option<usize> {
    let q = b[i];
    if q != b'"' && q != b'\'' {
        return None;
    }
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            c if c == q => return Some(j + 1),
            _ => j += 1,
        }
    }
    Some(b.len())
}

/// The `_foreign(…)` expressions of a filter string, outermost only (an inner `_foreign` is
/// part of `inner`), outside quoted strings. Malformed ones are left out: the nodes then
/// answer Meilisearch's syntax error.
pub fn find_foreign_filters(filter: &str) -> Vec<ForeignFilter> {
    const WORD: &[u8] = b"_foreign";
    let b = filter.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if let Some(next) = skip_quoted(b, i) {
            i = next;
            continue;
        }
        let boundary = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if !(boundary && b[i..].starts_with(WORD)) {
            i += 1;
            continue;
        }
        let start = i;
        let mut j = i + WORD.len();
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if j >= b.len() || b[j] != b'(' {
            i += 1;
            continue;
        }
        // The field: up to the first `,` outside quotes.
        let field_start = j + 1;
        let mut k = field_start;
        while k < b.len() && b[k] != b',' {
            k = skip_quoted(b, k).unwrap_or(k + 1);
        }
        if k >= b.len() {
            break;
        }
        let raw_field = filter[field_start..k].trim().to_string();
        // The inner filter: up to the matching `)`.
        let inner_start = k + 1;
        let mut depth = 0usize;
        let mut m = inner_start;
        let mut end = None;
        while m < b.len() {
            if let Some(next) = skip_quoted(b, m) {
                m = next;
                continue;
            }
            match b[m] {
                b'(' => depth += 1,
                b')' if depth == 0 => {
                    end = Some(m);
                    break;
                }
                b')' => depth -= 1,
                _ => {}
            }
            m += 1;
        }
        let Some(end) = end else { break };
        let field = raw_field
            .strip_prefix('"')
            .and_then(|f| f.strip_suffix('"'))
            .or_else(|| {
                raw_field
                    .strip_prefix('\'')
                    .and_then(|f| f.strip_suffix('\''))
            })
            .unwrap_or(&raw_field)
            .to_string();
        if !field.is_empty() {
            out.push(ForeignFilter {
                span: start..end + 1,
                field,
                raw_field,
                inner: filter[inner_start..end].trim().to_string(),
            });
        }
        i = end + 1;
    }
    out
}

/// `filter` with each `found[i]` replaced by `field IN [ids[i]…]`.
pub fn rewrite_foreign_filters(
    filter: &str,
    found: &[ForeignFilter],
    ids: &[Vec<String>],
) -> String {
    let mut out = String::with_capacity(filter.len());
    let mut at = 0;
    for (f, ids) in found.iter().zip(ids) {
        out.push_str(&filter[at..f.span.start]);
        out.push_str(&f.raw_field);
        out.push_str(" IN [");
        for (n, id) in ids.iter().enumerate() {
            if n > 0 {
                out.push_str(", ");
            }
            // Ids are `[A-Za-z0-9_-]` or integers: nothing to escape.
            out.push('"');
            out.push_str(id);
            out.push('"');
        }
        out.push(']');
        at = f.span.end;
    }
    out.push_str(&filter[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use std::collections::HashMap;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(o) => o,
            _ => unreachable!(),
        }
    }

    #[test]
    fn ids_are_milli_document_ids() {
        assert_eq!(document_id(&json!("a1")), Some("a1".into()));
        assert_eq!(document_id(&json!(12)), Some("12".into()));
        assert_eq!(document_id(&json!(-3)), Some("-3".into()));
        assert_eq!(document_id(&json!(1.5)), None);
        assert_eq!(document_id(&json!("a b")), None);
        assert_eq!(document_id(&json!("<em>a1</em>")), None);
        assert_eq!(document_id(&json!("")), None);
        assert_eq!(document_id(&json!(true)), None);
        assert_eq!(document_id(&json!(null)), None);
    }

    #[test]
    fn collects_scalars_arrays_and_nested_leaves() {
        let d = obj(json!({
            "author": "a1",
            "related": ["a2", 3, "bad id", 1.5],
            "nested": {"author": "a9", "other": "x1"},
            "authorship": "zz",
        }));
        let mut out = Vec::new();
        collect_ids(&d, "author", &mut out);
        collect_ids(&d, "related", &mut out);
        collect_ids(&d, "nested.author", &mut out);
        assert_eq!(out, vec!["a1", "a2", "3", "a9"]);
    }

    #[test]
    fn hydrates_found_ids_and_shows_missing_as_one_node_would() {
        let a1 = obj(json!({"id": "a1", "name": "Alice"}));
        let docs: HashMap<&str, &Map<String, Value>> = HashMap::from([("a1", &a1)]);
        let mut d = obj(json!({"id": "b1", "author": "a1", "co": ["a1", "a404", "no way"]}));
        hydrate(&mut d, &["author", "co"], |id| docs.get(id).copied());
        assert_eq!(
            Value::Object(d),
            json!({"id": "b1", "author": {"id": "a1", "name": "Alice"},
                   "co": [{"id": "a1", "name": "Alice"}, {}, "no way"]})
        );
        let mut d = obj(json!({"id": "b1", "author": "a1", "co": "a1"}));
        hydrate(&mut d, &["co"], |id| docs.get(id).copied());
        assert_eq!(Value::Object(d)["author"], json!("a1"), "other fields stay");
    }

    #[test]
    fn foreign_key_serialises_in_meilisearch_shape() {
        let fk = ForeignKey {
            foreign_index_uid: "authors".into(),
            field_name: "author".into(),
        };
        assert_eq!(
            serde_json::to_value(&fk).unwrap(),
            json!({"foreignIndexUid": "authors", "fieldName": "author"})
        );
    }

    #[test]
    fn foreign_filters_are_found_and_rewritten() {
        let f = r#"genre = "_foreign(no)" AND _foreign( author , name = 'O\'Neil' AND (age > 3 OR x = ")")) OR _foreign("related", _foreign(a, b = 1))"#;
        let found = find_foreign_filters(f);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].field, "author");
        assert_eq!(
            found[0].inner,
            r#"name = 'O\'Neil' AND (age > 3 OR x = ")")"#
        );
        assert_eq!(found[1].field, "related");
        assert_eq!(found[1].raw_field, r#""related""#);
        assert_eq!(found[1].inner, "_foreign(a, b = 1)");
        let ids = vec![vec!["a1".to_string(), "7".to_string()], vec![]];
        assert_eq!(
            rewrite_foreign_filters(f, &found, &ids),
            r#"genre = "_foreign(no)" AND author IN ["a1", "7"] OR "related" IN []"#
        );
        assert!(find_foreign_filters("my_foreign(a, b = 1)").is_empty());
        assert!(find_foreign_filters("_foreign(a b = 1").is_empty());
        assert!(find_foreign_filters("_foreign(a, b = 1").is_empty());
        assert_eq!(find_foreign_filters("_foreign (a,b=1)")[0].inner, "b=1");
    }

    proptest! {
        /// Any foreign filter built from a field and an inner filter (quotes and parentheses
        /// included) is found with exactly those parts, and the rewrite leaves none behind.
        #[test]
        fn foreign_filters_round_trip(
            field in "[a-z][a-z_]{0,6}",
            inner in prop_oneof![
                "[a-z]{1,5} = [a-z0-9]{1,5}",
                "[a-z]{1,5} = \"[a-z ()_,]{0,8}\"",
                "\\([a-z]{1,5} > [0-9]{1,3} OR [a-z]{1,5} = '[a-z )(]{0,6}'\\)",
            ],
            before in prop_oneof![Just(""), Just("genre = \"_foreign(x, y = 1)\" AND ")],
            ids in proptest::collection::vec("[a-z0-9]{1,4}", 0..4),
        ) {
            let filter = format!("{before}_foreign({field}, {inner}) OR z = 1");
            let found = find_foreign_filters(&filter);
            prop_assert_eq!(found.len(), 1);
            prop_assert_eq!(&found[0].field, &field);
            prop_assert_eq!(&found[0].inner, &inner);
            let out = rewrite_foreign_filters(&filter, &found, std::slice::from_ref(&ids));
            prop_assert!(find_foreign_filters(&out).is_empty(), "{}", out);
            prop_assert!(out.ends_with(" OR z = 1"));
            prop_assert!(out.starts_with(before), "{}", out);
        }

        /// Hydrating with a lookup that knows every id replaces exactly the collected leaves:
        /// the number of objects created equals the number of ids collected.
        #[test]
        fn hydration_replaces_what_collection_finds(
            ids in proptest::collection::vec(prop_oneof![
                "[a-z0-9_-]{1,6}".prop_map(Value::from),
                (0u64..1000).prop_map(Value::from),
                Just(json!("not an id")),
                Just(json!(0.5)),
            ], 0..8),
            nested in any::<bool>(),
        ) {
            let value = Value::Array(ids);
            let mut d = if nested {
                obj(json!({"x": {"f": value}, "f": 1.5}))
            } else {
                obj(json!({"f": value, "g": "kept"}))
            };
            let field = if nested { "x.f" } else { "f" };
            let mut found = Vec::new();
            collect_ids(&d, field, &mut found);
            let doc = obj(json!({"hydrated": true}));
            hydrate(&mut d, &[field], |_| Some(&doc));
            let count = Value::Object(d).to_string().matches("\"hydrated\":true").count();
            prop_assert_eq!(count, found.len());
        }
    }
}
