//! `federation.distinct` (Meilisearch 1.50): every query searches with `distinct` set to the
//! attribute, and the merged list keeps a hit only when none of its values of the attribute
//! was seen in a hit ranked before it. Meilisearch first merges the queries of each index
//! (a duplicate there is dropped, and the index's total already counts each value once),
//! then the indexes (a hit whose value another index's hit already had is dropped *and*
//! lowers the total by one): [`Seen::admit`] tells the two apart.
//!
//! A hit's values are Meilisearch's facet values of the attribute (`FacetValue`): every leaf
//! the dotted path reaches (through nested objects and arrays, and flat keys containing
//! dots), strings trimmed and lowercased (as `normalize_facet`, without its compatibility
//! decomposition, docs/compatibility.md), booleans as the strings `true`/`false`, numbers as
//! written; `null` and objects have none.

use crate::proxy::json::OrderedObject;
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// What becomes of a hit of the merged list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Kept,
    /// An earlier hit of the same index had one of its values: not counted anyway.
    DuplicateInIndex,
    /// Only another index's earlier hit had one of its values: the total drops by one.
    Rejected,
}

/// The values seen so far in the merged list, per index and overall.
#[derive(Debug, Default)]
pub struct Seen {
    per_index: HashMap<String, HashSet<String>>,
    all: HashSet<String>,
}

impl Seen {
    /// Decides on `hit` of `index`, hits coming in merged order. A hit without a value is
    /// always kept.
    pub fn admit(&mut self, index: &str, hit: &OrderedObject, attribute: &str) -> Admission {
        let values = hit_values(hit, attribute);
        let local = self.per_index.entry(index.to_owned()).or_default();
        if values.iter().any(|v| local.contains(v)) {
            return Admission::DuplicateInIndex;
        }
        local.extend(values.iter().cloned());
        if values.iter().any(|v| self.all.contains(v)) {
            return Admission::Rejected;
        }
        self.all.extend(values);
        Admission::Kept
    }
}

/// The key a facet value of a distribution (a node's `facetDistribution` key) has here.
pub fn distribution_key(value: &str) -> String {
    format!("s{}", value.trim().to_lowercase())
}

/// The facet values of `attribute` in `hit`, as comparable keys.
pub fn hit_values(hit: &OrderedObject, attribute: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (key, raw) in &hit.0 {
        if let Some(rest) = path_rest(attribute, key) {
            if let Ok(v) = serde_json::from_str::<Value>(raw.get()) {
                visit(&v, rest, &mut out);
            }
        }
    }
    out
}

/// `Some(rest of the path)` when `key` is `path` or a dotted prefix of it.
fn path_rest<'p>(path: &'p str, key: &str) -> Option<&'p str> {
    let rest = path.strip_prefix(key)?;
    if rest.is_empty() {
        Some("")
    } else {
        rest.strip_prefix('.')
    }
}

fn visit(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Array(items) => {
            for item in items {
                if path.is_empty() {
                    leaf(item, out);
                } else {
                    visit(item, path, out);
                }
            }
        }
        Value::Object(members) if !path.is_empty() => {
            for (key, inner) in members {
                if let Some(rest) = path_rest(path, key) {
                    visit(inner, rest, out);
                }
            }
        }
        _ if path.is_empty() => leaf(v, out),
        _ => {}
    }
}

fn leaf(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(format!("s{}", s.trim().to_lowercase())),
        Value::Bool(b) => out.push(format!("s{b}")),
        Value::Number(n) => out.push(format!("n{n}")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn values(hit: &str, attribute: &str) -> Vec<String> {
        let obj: OrderedObject = serde_json::from_str(hit).unwrap();
        hit_values(&obj, attribute)
    }

    #[test]
    fn values_follow_meilisearch_facet_values() {
        assert_eq!(values(r#"{"g":" Drama "}"#, "g"), ["sdrama"]);
        assert_eq!(
            values(r#"{"g":["a","B",["c"],null,{"x":1}]}"#, "g"),
            ["sa", "sb"]
        );
        assert_eq!(values(r#"{"g":true,"h":1.5}"#, "g"), ["strue"]);
        assert_eq!(values(r#"{"g":1.5}"#, "g"), ["n1.5"]);
        assert_eq!(values(r#"{"a":{"b":"x"},"a.b":"y"}"#, "a.b"), ["sx", "sy"]);
        assert_eq!(
            values(r#"{"a":[{"b":"x"},{"b":["y"]}]}"#, "a.b"),
            ["sx", "sy"]
        );
        assert!(values(r#"{"ab":"x","g":null}"#, "a").is_empty());
        assert!(values(r#"{"g":null}"#, "g").is_empty());
        assert!(values(r#"{"a":"x"}"#, "a.b").is_empty());
    }

    #[test]
    fn a_hit_sharing_any_value_with_an_earlier_one_is_left_out() {
        let mut seen = Seen::default();
        use Admission::*;
        fn hit(s: &str) -> OrderedObject<'_> {
            serde_json::from_str(s).unwrap()
        }
        let (a, b, c, none) = (
            r#"{"g":["x","y"]}"#,
            r#"{"g":"Y"}"#,
            r#"{"g":"z"}"#,
            r#"{"t":1}"#,
        );
        assert_eq!(seen.admit("i", &hit(a), "g"), Kept);
        assert_eq!(seen.admit("i", &hit(b), "g"), DuplicateInIndex);
        assert_eq!(seen.admit("j", &hit(b), "g"), Rejected);
        // Rejected by index `i`'s value, it still counts as seen in `j`.
        assert_eq!(seen.admit("j", &hit(b), "g"), DuplicateInIndex);
        assert_eq!(seen.admit("j", &hit(c), "g"), Kept);
        assert_eq!(seen.admit("i", &hit(none), "g"), Kept);
        assert_eq!(seen.admit("i", &hit(none), "g"), Kept);
    }

    proptest! {
        /// Within one index, kept hits never share a value, and every hit left out shares one
        /// with a kept hit ranked before it.
        #[test]
        fn kept_hits_are_pairwise_distinct(genres in proptest::collection::vec(
            proptest::collection::vec("[a-cA-C]", 0..3), 0..20)) {
            let hits: Vec<String> = genres.iter().map(|g| serde_json::json!({"g": g}).to_string()).collect();
            let mut seen = Seen::default();
            let mut kept: Vec<Vec<String>> = Vec::new();
            for h in &hits {
                let obj: OrderedObject = serde_json::from_str(h).unwrap();
                let v = hit_values(&obj, "g");
                if seen.admit("i", &obj, "g") == Admission::Kept {
                    for k in &kept {
                        prop_assert!(!v.iter().any(|x| k.contains(x)));
                    }
                    kept.push(v);
                } else {
                    prop_assert!(kept.iter().any(|k| v.iter().any(|x| k.contains(x))));
                }
            }
        }
    }
}
