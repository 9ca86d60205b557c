//! `federation.distinct` (Meilisearch 1.50): every query searches with `distinct` set to the
//! attribute, and the merged list keeps a hit only when none of its values of the attribute
//! was seen in a hit ranked before it. Meilisearch first merges the queries of each index
//! (a duplicate there is dropped, and the index's total already counts each value once),
//! then the indexes (a hit whose value another index's hit already had is dropped *and*
//! lowers the total by one): [`Seen::admit`] tells the two apart.
//!
//! A hit's values are its facet values of the attribute, as the single-index merge compares
//! them for `distinct` ([`miroir_merge::distinct_keys`]).

use miroir_merge::{distinct_keys, DistinctKey};
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
    per_index: HashMap<String, HashSet<DistinctKey>>,
    all: HashSet<DistinctKey>,
}

impl Seen {
    /// Decides on `hit` (its JSON) of `index`, hits coming in merged order. A hit without a
    /// value (or one the scanner cannot read, which a node never sends) is always kept.
    pub fn admit(&mut self, index: &str, hit: &str, attribute: &str) -> Admission {
        let values = distinct_keys(hit.as_bytes(), attribute).unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use Admission::*;

    #[test]
    fn a_hit_sharing_any_value_with_an_earlier_one_is_left_out() {
        let mut seen = Seen::default();
        let (a, b, c, none) = (
            r#"{"g":["x","y"]}"#,
            r#"{"g":" Y"}"#,
            r#"{"g":"z"}"#,
            r#"{"t":1}"#,
        );
        assert_eq!(seen.admit("i", a, "g"), Kept);
        assert_eq!(seen.admit("i", b, "g"), DuplicateInIndex);
        assert_eq!(seen.admit("j", b, "g"), Rejected);
        // Rejected by index `i`'s value, it still counts as seen in `j`.
        assert_eq!(seen.admit("j", b, "g"), DuplicateInIndex);
        assert_eq!(seen.admit("j", c, "g"), Kept);
        assert_eq!(seen.admit("i", none, "g"), Kept);
        assert_eq!(seen.admit("i", none, "g"), Kept);
    }

    proptest! {
        /// Within one index, kept hits never share a value, and every hit left out shares one
        /// with a kept hit ranked before it.
        #[test]
        fn kept_hits_are_pairwise_distinct(genres in proptest::collection::vec(
            proptest::collection::vec("[a-cA-C]", 0..3), 0..20)) {
            let mut seen = Seen::default();
            let mut kept: Vec<Vec<DistinctKey>> = Vec::new();
            for g in &genres {
                let hit = serde_json::json!({"g": g}).to_string();
                let v = distinct_keys(hit.as_bytes(), "g").unwrap();
                if seen.admit("i", &hit, "g") == Admission::Kept {
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
