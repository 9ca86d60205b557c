//! The primary-key query planner: a search whose filter pins the primary key (`pk = x`,
//! `pk IN [x, y]`, alone or ANDed with anything), or a document fetch by `ids`, can only
//! match documents of the shards those keys route to — so only those shards are asked,
//! instead of every node (docs/contract.md#advanced, `scatter.pk_planner`).
//!
//! Exactness comes first; a filter the planner does not fully understand narrows nothing:
//! - only conjuncts at the top level narrow (elements of the array form; `AND` in a string);
//!   an `OR` or `NOT` at the top level, or parentheses around the conjunct, and the planner
//!   steps aside;
//! - Meilisearch compares filter strings case-insensitively and numbers numerically, so only
//!   values that are spelled one way can be hashed: digits (no leading zero), `-` and `_`.
//!   `id = 042` or `id = "AbC"` may match documents whose ids are spelled otherwise and are
//!   not narrowed;
//! - `ids` of a document fetch are exact external ids (case-sensitive): every valid id
//!   narrows.

use miroir_core::routing::shard_for_key;
use miroir_core::ShardId;
use serde_json::Value;
use std::collections::BTreeSet;

/// The shards a search filter confines the results to, or `None` when it may match any.
pub fn filter_shards(filter: Option<&Value>, pk: &str, shards: u32) -> Option<Vec<ShardId>> {
    let values = filter_keys(filter?, pk)?;
    (!values.is_empty()).then(|| shards_of(values.iter().map(String::as_str), shards))
}

/// The shards holding the given document `ids` (strings or integers), or `None` when an id
/// is not one (the nodes then answer the request's error).
pub fn ids_shards(ids: &Value, shards: u32) -> Option<Vec<ShardId>> {
    let list = ids.as_array()?;
    let mut keys = Vec::with_capacity(list.len());
    for id in list {
        let id = miroir_core::routing::DocumentIdRef::from_json(id)?;
        keys.push(id.canonical().into_owned());
    }
    (!keys.is_empty()).then(|| shards_of(keys.iter().map(String::as_str), shards))
}

fn shards_of<'a>(keys: impl Iterator<Item = &'a str>, shards: u32) -> Vec<ShardId> {
    let set: BTreeSet<ShardId> = keys.map(|k| shard_for_key(k, shards)).collect();
    set.into_iter().collect()
}

/// The primary-key values every match must have (the intersection over the conjuncts that
/// pin it), or `None` when no conjunct pins it.
fn filter_keys(filter: &Value, pk: &str) -> Option<BTreeSet<String>> {
    let conjuncts: Vec<&str> = match filter {
        Value::String(s) => vec![s.as_str()],
        // Elements are ANDed; an inner array is an OR group, which narrows only when it holds
        // a single expression.
        Value::Array(items) => items
            .iter()
            .filter_map(|item| match item {
                Value::String(s) => Some(s.as_str()),
                Value::Array(group) if group.len() == 1 => group[0].as_str(),
                _ => None,
            })
            .collect(),
        _ => return None,
    };
    let mut pinned: Option<BTreeSet<String>> = None;
    for expression in conjuncts {
        for values in top_level_conjuncts(expression)?
            .iter()
            .filter_map(|c| pinned_values(c, pk))
        {
            pinned = Some(match pinned {
                None => values,
                Some(p) => p.intersection(&values).cloned().collect(),
            });
        }
    }
    pinned
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Op(&'static str),
    Open(char),
    Close(char),
    Comma,
}

fn tokenize(s: &str) -> Option<Vec<Token>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '"' | '\'' => {
                chars.next();
                let mut v = String::new();
                loop {
                    match chars.next()? {
                        '\\' => v.push(chars.next()?),
                        q if q == c => break,
                        other => v.push(other),
                    }
                }
                out.push(Token::Quoted(v));
            }
            '(' | '[' => {
                chars.next();
                out.push(Token::Open(c));
            }
            ')' | ']' => {
                chars.next();
                out.push(Token::Close(c));
            }
            ',' => {
                chars.next();
                out.push(Token::Comma);
            }
            '=' => {
                chars.next();
                out.push(Token::Op("="));
            }
            '!' | '<' | '>' => {
                chars.next();
                if chars.peek() == Some(&'=') {
                    chars.next();
                }
                out.push(Token::Op("cmp"));
            }
            _ => {
                let mut w = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || "\"'()[],=!<>".contains(c) {
                        break;
                    }
                    w.push(c);
                    chars.next();
                }
                out.push(Token::Word(w));
            }
        }
    }
    Some(out)
}

fn keyword(t: &Token, k: &str) -> bool {
    matches!(t, Token::Word(w) if w.eq_ignore_ascii_case(k))
}

/// Splits an expression on its top-level `AND`s; `None` when a top-level `OR` (or an
/// unbalanced bracket) makes the whole expression unusable.
fn top_level_conjuncts(expression: &str) -> Option<Vec<Vec<Token>>> {
    let tokens = tokenize(expression)?;
    let mut out = vec![Vec::new()];
    let mut depth = 0usize;
    for t in tokens {
        match &t {
            Token::Open(_) => depth += 1,
            Token::Close(_) => depth = depth.checked_sub(1)?,
            _ => {}
        }
        if depth == 0 && keyword(&t, "OR") {
            return None;
        }
        if depth == 0 && keyword(&t, "AND") {
            out.push(Vec::new());
        } else {
            out.last_mut().expect("never empty").push(t);
        }
    }
    (depth == 0).then_some(out)
}

/// `pk = v` or `pk IN [v, …]`, exactly: the values; anything else pins nothing.
fn pinned_values(conjunct: &[Token], pk: &str) -> Option<BTreeSet<String>> {
    let (attr, rest) = conjunct.split_first()?;
    let attr = match attr {
        Token::Word(w) | Token::Quoted(w) => w,
        _ => return None,
    };
    if attr != pk {
        return None;
    }
    let value = |t: &Token| match t {
        Token::Word(w) | Token::Quoted(w) => hashable(w).then(|| w.clone()),
        _ => None,
    };
    match rest {
        [Token::Op("="), v] => Some(BTreeSet::from([value(v)?])),
        [Token::Word(kw), Token::Open('['), inner @ .., Token::Close(']')]
            if kw.eq_ignore_ascii_case("IN") =>
        {
            let mut set = BTreeSet::new();
            for (i, t) in inner.iter().enumerate() {
                if i % 2 == 1 {
                    if *t != Token::Comma {
                        return None;
                    }
                } else {
                    set.insert(value(t)?);
                }
            }
            (!set.is_empty()).then_some(set)
        }
        _ => None,
    }
}

/// Whether a filter value can only match the document id spelled exactly like it.
fn hashable(v: &str) -> bool {
    let digits = v.trim_start_matches('-');
    let canonical_number = !(digits.len() > 1 && digits.starts_with('0'));
    !v.is_empty()
        && canonical_number
        && v.bytes()
            .all(|b| b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn shards(keys: &[&str], s: u32) -> Vec<ShardId> {
        shards_of(keys.iter().copied(), s)
    }

    #[test]
    fn equality_and_in_narrow() {
        let f = json!("id = 42");
        assert_eq!(filter_shards(Some(&f), "id", 64), Some(shards(&["42"], 64)));
        let f = json!("genre = horror AND id IN [1, 2, 3]");
        assert_eq!(
            filter_shards(Some(&f), "id", 64),
            Some(shards(&["1", "2", "3"], 64))
        );
        let f = json!(["genre = horror", "id IN ['7', \"8\"]"]);
        assert_eq!(
            filter_shards(Some(&f), "id", 64),
            Some(shards(&["7", "8"], 64))
        );
        // Two pins intersect.
        let f = json!("id IN [1, 2] AND id = 2");
        assert_eq!(filter_shards(Some(&f), "id", 64), Some(shards(&["2"], 64)));
    }

    #[test]
    fn anything_unclear_narrows_nothing() {
        for f in [
            // A keyword where an attribute stands: not a filter the planner can read.
            json!("or = x AND id IN [0]"),
            json!("id = 1 OR id = 2"),
            json!("NOT id = 1"),
            json!("(id = 1)"),
            json!("id != 1"),
            json!("id > 1"),
            json!("id = 042"),
            json!("id = AbC"),
            json!("id = 1.0"),
            json!("other = 1"),
            json!([["id = 1", "id = 2"]]),
            json!("id IN [1, 2"),
            json!("id = 'unterminated"),
            json!(42),
            json!("id IN []"),
            json!("id = 1 AND id = 2"),
        ] {
            assert_eq!(filter_shards(Some(&f), "id", 64), None, "{f}");
        }
        assert_eq!(filter_shards(None, "id", 64), None);
    }

    #[test]
    fn fetch_ids_narrow_exactly() {
        assert_eq!(
            ids_shards(&json!(["a-1", 7, "B_2"]), 16),
            Some(shards(&["a-1", "7", "B_2"], 16))
        );
        assert_eq!(ids_shards(&json!([1.5]), 16), None);
        assert_eq!(ids_shards(&json!([]), 16), None);
        assert_eq!(ids_shards(&json!("1"), 16), None);
    }

    proptest! {
        /// The planner's shards always hold the pinned documents.
        #[test]
        fn pinned_documents_live_in_the_planned_shards(
            ids in prop::collection::btree_set(0u64..1_000_000, 1..8),
            // Not a filter keyword (`or`, `and`, `not`, `in`, … would make it another filter).
            other in "f_[a-z]{1,6}",
            s in 1u32..256,
        ) {
            let list: Vec<String> = ids.iter().map(u64::to_string).collect();
            let f = json!(format!("{other} = x AND id IN [{}]", list.join(", ")));
            let planned = filter_shards(Some(&f), "id", s).unwrap();
            for id in &ids {
                prop_assert!(planned.contains(&shard_for_key(&id.to_string(), s)));
            }
            prop_assert!(planned.len() <= ids.len());
        }
    }
}
