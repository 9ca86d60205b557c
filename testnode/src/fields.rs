//! `POST /indexes/{uid}/fields` (Meilisearch 1.50): every field of the index with what its
//! settings make of it, filtered, in name order, paginated.

use crate::error::{unknown_field, ApiError};
use crate::index::Index;
use crate::json::attr_matches;
use crate::settings::{glob_match, kind_name};
use serde_json::{json, Map, Value};

type Result<T> = std::result::Result<T, ApiError>;

const BODY_KEYS: &[&str] = &["offset", "limit", "filter"];
const FILTER_KEYS: &[&str] = &[
    "attributePatterns",
    "displayed",
    "searchable",
    "sortable",
    "distinct",
    "rankingRule",
    "filterable",
];

/// The response to `body` for index `ix`.
pub fn list(ix: &Index, body: &Value) -> Result<Value> {
    let Some(body) = body.as_object() else {
        return Err(ApiError::bad(
            "bad_request",
            format!(
                "Invalid value type: expected an object, but found {}: `{body}`",
                kind_name(body)
            ),
        ));
    };
    if let Some(k) = body.keys().find(|k| !BODY_KEYS.contains(&k.as_str())) {
        return Err(ApiError::bad(
            "bad_request",
            unknown_field(k, "", BODY_KEYS),
        ));
    }
    let offset = uint(body, "offset", "invalid_index_offset", 0)?;
    let limit = uint(body, "limit", "invalid_index_limit", 20)?;
    let filter = match body.get("filter") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(f)) => check_filter(f)?,
        Some(v) => {
            return Err(ApiError::bad(
                "invalid_index_fields_filter",
                format!(
                    "Invalid value type at `.filter`: expected an object, but found {}: `{v}`",
                    kind_name(v)
                ),
            ))
        }
    };
    let mut names: Vec<&String> = ix.fields.iter().collect();
    names.sort_unstable();
    names.dedup();
    let all: Vec<Value> = names
        .into_iter()
        .map(|n| field(ix, n))
        .filter(|f| keep(f, &filter))
        .collect();
    let total = all.len();
    let results: Vec<Value> = all.into_iter().skip(offset).take(limit).collect();
    Ok(json!({"results": results, "offset": offset, "limit": limit, "total": total}))
}

fn uint(body: &Map<String, Value>, key: &str, code: &str, default: usize) -> Result<usize> {
    match body.get(key) {
        None => Ok(default),
        Some(Value::Number(n)) if n.is_u64() => Ok(n.as_u64().unwrap_or(0) as usize),
        Some(v) => Err(ApiError::bad(
            code,
            format!(
                "Invalid value type at `.{key}`: expected a positive integer, but found {}: `{v}`",
                kind_name(v)
            ),
        )),
    }
}

fn check_filter(f: &Map<String, Value>) -> Result<Map<String, Value>> {
    for (k, v) in f {
        let code = match k.as_str() {
            "attributePatterns" => "invalid_index_fields_filter_attribute_patterns",
            "displayed" => "invalid_index_fields_filter_displayed",
            "searchable" => "invalid_index_fields_filter_searchable",
            "sortable" => "invalid_index_fields_filter_sortable",
            "distinct" => "invalid_index_fields_filter_distinct",
            "rankingRule" => "invalid_index_fields_filter_ranking_rule",
            "filterable" => "invalid_index_fields_filter_filterable",
            _ => {
                return Err(ApiError::bad(
                    "invalid_index_fields_filter",
                    unknown_field(k, " inside `.filter`", FILTER_KEYS),
                ))
            }
        };
        let expected = if k == "attributePatterns" {
            match v {
                Value::Array(a) => a.iter().all(Value::is_string).then_some(()),
                _ => None,
            }
            .map(|_| "")
            .ok_or("an array")
        } else {
            v.as_bool().map(|_| "").ok_or("a boolean")
        };
        if let Err(what) = expected {
            return Err(ApiError::bad(
                code,
                format!(
                    "Invalid value type at `.filter.{k}`: expected {what}, but found {}: `{v}`",
                    kind_name(v)
                ),
            ));
        }
    }
    Ok(f.clone())
}

/// One field's entry.
fn field(ix: &Index, name: &str) -> Value {
    let v = &ix.view;
    let listed = |list: &Option<Vec<String>>| {
        list.as_ref()
            .is_none_or(|l| l.iter().any(|p| attr_matches(p, name)))
    };
    let ranking = v.ranking_rules.iter().find_map(|r| {
        let (f, order) = r.rsplit_once(':')?;
        (f == name && (order == "asc" || order == "desc")).then_some(order)
    });
    let mut rule = json!({"enabled": ranking.is_some()});
    if let Some(order) = ranking {
        rule["order"] = json!(order);
    }
    let (facet_search, equality, comparison) = filter_features(ix, name);
    json!({
        "name": name,
        "displayed": {"enabled": listed(&v.displayed)},
        "searchable": {"enabled": listed(&v.searchable)},
        "sortable": {"enabled": v.is_sortable(name)},
        "distinct": {"enabled": v.distinct.as_deref() == Some(name)},
        "rankingRule": rule,
        "filterable": {
            "enabled": facet_search.is_some(),
            "sortBy": v.facet_order(name),
            "facetSearch": facet_search.unwrap_or(false),
            "equality": equality,
            "comparison": comparison,
        },
        "localized": {"locales": locales(ix, name)},
    })
}

/// The first `filterableAttributes` rule naming `name`: `(Some(facetSearch), equality,
/// comparison)`; a plain string enables everything (Meilisearch's legacy rule); `None` when
/// no rule matches.
fn filter_features(ix: &Index, name: &str) -> (Option<bool>, bool, bool) {
    let rules = ix
        .settings
        .get("filterableAttributes")
        .and_then(Value::as_array);
    for r in rules.into_iter().flatten() {
        match r {
            Value::String(p) if attr_matches(p, name) || glob_match(p, name) => {
                return (Some(true), true, true)
            }
            Value::Object(o) => {
                let patterns = o.get("attributePatterns").and_then(Value::as_array);
                let hit = patterns
                    .into_iter()
                    .flatten()
                    .any(|p| p.as_str().is_some_and(|p| p == name || glob_match(p, name)));
                if hit {
                    let f = o.get("features").cloned().unwrap_or(Value::Null);
                    return (
                        Some(f["facetSearch"].as_bool().unwrap_or(false)),
                        f["filter"]["equality"].as_bool().unwrap_or(true),
                        f["filter"]["comparison"].as_bool().unwrap_or(false),
                    );
                }
            }
            _ => {}
        }
    }
    (None, false, false)
}

/// The locales of the first `localizedAttributes` rule naming `name`, as Meilisearch prints
/// them (`fra` → `Fra`).
fn locales(ix: &Index, name: &str) -> Vec<String> {
    let rules = ix
        .settings
        .get("localizedAttributes")
        .and_then(Value::as_array);
    for r in rules.into_iter().flatten() {
        let patterns = r["attributePatterns"].as_array();
        let hit = patterns
            .into_iter()
            .flatten()
            .any(|p| p.as_str().is_some_and(|p| p == name || glob_match(p, name)));
        if hit {
            return r["locales"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|l| {
                    let mut c = l.chars();
                    c.next()
                        .map(|f| f.to_uppercase().chain(c).collect())
                        .unwrap_or_default()
                })
                .collect();
        }
    }
    Vec::new()
}

/// Whether field `f` passes the client's filter (all criteria ANDed).
fn keep(f: &Value, filter: &Map<String, Value>) -> bool {
    filter.iter().all(|(k, want)| match k.as_str() {
        "attributePatterns" => want.as_array().is_some_and(|ps| {
            let name = f["name"].as_str().unwrap_or("");
            ps.iter()
                .filter_map(Value::as_str)
                .any(|p| p == name || glob_match(p, name))
        }),
        k => f[k]["enabled"] == *want,
    })
}
