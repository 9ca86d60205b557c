//! Index settings: Meilisearch v1.x defaults, validation of updates, and typed views used by
//! search.
//!
//! Settings are stored as one ordered object holding every setting's current value (so `GET
//! /settings` is a plain serialization in Meilisearch's key order). An update is validated
//! synchronously when it is enqueued (Meilisearch rejects malformed settings with a 400 before
//! creating a task) and applied when its task is processed. `null` resets a setting; the
//! object-valued settings `typoTolerance`, `faceting` and `pagination` merge field by field.

use crate::error::{unknown_field, unknown_value, ApiError, Result};
use crate::json::Obj;
use serde_json::{json, Value};

/// Settings keys in the order Meilisearch serializes them, with their kebab-case sub-route.
pub const KEYS: &[(&str, &str)] = &[
    ("displayedAttributes", "displayed-attributes"),
    ("searchableAttributes", "searchable-attributes"),
    ("filterableAttributes", "filterable-attributes"),
    ("sortableAttributes", "sortable-attributes"),
    ("foreignKeys", "foreign-keys"),
    ("rankingRules", "ranking-rules"),
    ("stopWords", "stop-words"),
    ("nonSeparatorTokens", "non-separator-tokens"),
    ("separatorTokens", "separator-tokens"),
    ("dictionary", "dictionary"),
    ("synonyms", "synonyms"),
    ("distinctAttribute", "distinct-attribute"),
    ("proximityPrecision", "proximity-precision"),
    ("typoTolerance", "typo-tolerance"),
    ("faceting", "faceting"),
    ("pagination", "pagination"),
    ("embedders", "embedders"),
    ("searchCutoffMs", "search-cutoff-ms"),
    ("localizedAttributes", "localized-attributes"),
    ("facetSearch", "facet-search"),
    ("prefixSearch", "prefix-search"),
];

/// Sub-routes Meilisearch updates with PATCH (all others use PUT).
pub fn uses_patch(key: &str) -> bool {
    matches!(
        key,
        "typoTolerance" | "faceting" | "pagination" | "embedders"
    )
}

pub fn key_for_route(route: &str) -> Option<&'static str> {
    KEYS.iter().find(|(_, r)| *r == route).map(|(k, _)| *k)
}

/// Meilisearch 1.50's defaults: `attribute` was split into `attributeRank` (which field
/// matched) and `wordPosition` (where in it), with `sort` between them.
pub const DEFAULT_RANKING_RULES: [&str; 7] = [
    "words",
    "typo",
    "proximity",
    "attributeRank",
    "sort",
    "wordPosition",
    "exactness",
];

pub fn default_value(key: &str) -> Value {
    match key {
        "displayedAttributes" | "searchableAttributes" => json!(["*"]),
        "filterableAttributes"
        | "sortableAttributes"
        | "stopWords"
        | "nonSeparatorTokens"
        | "separatorTokens"
        | "dictionary"
        | "foreignKeys" => json!([]),
        "rankingRules" => json!(DEFAULT_RANKING_RULES),
        "synonyms" | "embedders" => json!({}),
        "proximityPrecision" => json!("byWord"),
        // Assumption: v1.15+ shape (with `disableOnNumbers`).
        "typoTolerance" => json!({
            "enabled": true,
            "minWordSizeForTypos": {"oneTypo": 5, "twoTypos": 9},
            "disableOnWords": [],
            "disableOnAttributes": [],
            "disableOnNumbers": false
        }),
        "faceting" => json!({"maxValuesPerFacet": 100, "sortFacetValuesBy": {"*": "alpha"}}),
        "pagination" => json!({"maxTotalHits": 1000}),
        "facetSearch" => json!(true),
        "prefixSearch" => json!("indexingTime"),
        _ => Value::Null, // distinctAttribute, searchCutoffMs, localizedAttributes
    }
}

pub fn defaults() -> Obj {
    let mut o = Obj::new();
    for (k, _) in KEYS {
        o.insert(*k, default_value(k));
    }
    o
}

fn snake(key: &str) -> String {
    let mut s = String::new();
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            s.push('_');
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

fn invalid(key: &str, msg: String) -> ApiError {
    ApiError::bad(&format!("invalid_settings_{}", snake(key)), msg)
}

fn type_err(key: &str, v: &Value, want: &str) -> ApiError {
    invalid(
        key,
        format!(
            "Invalid value type at `.{key}`: expected {want}, but found {}: `{v}`",
            kind_name(v)
        ),
    )
}

pub fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        // deserr's value kinds.
        Value::Number(n) if n.is_u64() => "a positive integer",
        Value::Number(n) if n.is_i64() => "a negative integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn string_array(key: &str, v: &Value) -> Result<Value> {
    match v {
        Value::Array(a) => {
            if let Some((i, e)) = a.iter().enumerate().find(|(_, e)| !e.is_string()) {
                return Err(invalid(
                    key,
                    format!(
                        "Invalid value type at `.{key}[{i}]`: expected a string, but found {}: `{e}`",
                        kind_name(e)
                    ),
                ));
            }
            Ok(v.clone())
        }
        _ => Err(type_err(key, v, "an array")),
    }
}

/// Deduplicated, first occurrence kept (Meilisearch's ordered attribute lists).
fn dedup_keep_order(v: Value) -> Value {
    let mut seen = std::collections::HashSet::new();
    Value::Array(
        v.as_array()
            .into_iter()
            .flatten()
            .filter(|e| seen.insert(e.as_str().unwrap_or_default().to_string()))
            .cloned()
            .collect(),
    )
}

fn valid_ranking_rule(r: &str) -> bool {
    // `attribute` (the pre-1.50 combined rule) is still accepted.
    DEFAULT_RANKING_RULES.contains(&r)
        || r == "attribute"
        || r.rsplit_once(':')
            .is_some_and(|(f, d)| !f.is_empty() && (d == "asc" || d == "desc"))
}

/// Validates one setting's new value (not null) and returns its normalized form.
fn validate_one(key: &str, v: &Value) -> Result<Value> {
    match key {
        // Meilisearch stores these as sets: they come back (and show in task details)
        // sorted and deduplicated.
        "sortableAttributes" | "stopWords" | "nonSeparatorTokens" | "separatorTokens"
        | "dictionary" => {
            let mut list: Vec<String> = string_array(key, v)?
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect();
            list.sort_unstable();
            list.dedup();
            Ok(json!(list))
        }
        // Deduplicated when applied; the task details keep the list as sent.
        "displayedAttributes" | "searchableAttributes" => string_array(key, v),
        "foreignKeys" => foreign_keys(v),
        "filterableAttributes" => match v {
            // v1.14+ also accepts `{attributePatterns, features}` objects.
            Value::Array(a) if a.iter().all(|e| e.is_string() || e.is_object()) => Ok(v.clone()),
            _ => Err(type_err(key, v, "an array")),
        },
        "rankingRules" => {
            let arr = string_array(key, v)?;
            for (i, r) in arr.as_array().into_iter().flatten().enumerate() {
                let r = r.as_str().unwrap_or_default();
                if !valid_ranking_rule(r) {
                    return Err(invalid(key, format!(
                        "Invalid value at `.rankingRules[{i}]`: `{r}` ranking rule is invalid. Valid ranking rules are words, typo, sort, proximity, attribute, exactness and custom ranking rules."
                    )));
                }
            }
            Ok(arr)
        }
        "synonyms" => match v {
            Value::Object(m) => {
                for (k, l) in m {
                    match l {
                        Value::Array(a) => {
                            if let Some((i, e)) = a.iter().enumerate().find(|(_, e)| !e.is_string()) {
                                return Err(invalid(key, format!("Invalid value type at `.synonyms.{k}[{i}]`: expected a string, but found {}: `{e}`", kind_name(e))));
                            }
                        }
                        _ => return Err(invalid(key, format!("Invalid value type at `.synonyms.{k}`: expected an array, but found {}: `{l}`", kind_name(l)))),
                    }
                }
                Ok(v.clone())
            }
            _ => Err(type_err(key, v, "an object")),
        },
        "distinctAttribute" => match v {
            Value::String(_) => Ok(v.clone()),
            _ => Err(type_err(key, v, "a string")),
        },
        "proximityPrecision" => match v.as_str() {
            Some("byWord" | "byAttribute") => Ok(v.clone()),
            _ => Err(invalid(
                key,
                unknown_value(
                    v.as_str().unwrap_or("?"),
                    " at `.proximityPrecision`",
                    &["byWord", "byAttribute"],
                ),
            )),
        },
        "prefixSearch" => match v.as_str() {
            Some("indexingTime" | "disabled") => Ok(v.clone()),
            _ => Err(invalid(
                key,
                unknown_value(
                    v.as_str().unwrap_or("?"),
                    " at `.prefixSearch`",
                    &["indexingTime", "disabled"],
                ),
            )),
        },
        "facetSearch" => match v {
            Value::Bool(_) => Ok(v.clone()),
            _ => Err(type_err(key, v, "a boolean")),
        },
        "searchCutoffMs" => match v.as_u64() {
            Some(_) => Ok(v.clone()),
            None => Err(type_err(key, v, "a positive integer")),
        },
        "localizedAttributes" => match v {
            Value::Array(_) => Ok(v.clone()),
            _ => Err(type_err(key, v, "an array")),
        },
        "embedders" => match v {
            Value::Object(_) => Ok(v.clone()),
            _ => Err(type_err(key, v, "an object")),
        },
        "typoTolerance" => {
            let o = validate_object(
                key,
                v,
                &[
                    "enabled",
                    "minWordSizeForTypos",
                    "disableOnWords",
                    "disableOnAttributes",
                    "disableOnNumbers",
                ],
            )?;
            if let Some(Value::Bool(_) | Value::Null) | None = o.get("enabled") {
            } else {
                let e = &o["enabled"];
                return Err(invalid(key, format!("Invalid value type at `.typoTolerance.enabled`: expected a boolean, but found {}: `{e}`", kind_name(e))));
            }
            if let Some(m) = o.get("minWordSizeForTypos").filter(|m| !m.is_null()) {
                let sizes = validate_object_at(
                    key,
                    "typoTolerance.minWordSizeForTypos",
                    m,
                    &["oneTypo", "twoTypos"],
                )?;
                // Synchronous only when both are given (Meilisearch's deserializer check);
                // a partial update is checked against the current value when applied.
                if let (Some(one), Some(two)) = (
                    sizes.get("oneTypo").and_then(Value::as_u64),
                    sizes.get("twoTypos").and_then(Value::as_u64),
                ) {
                    if one > two {
                        return Err(invalid(
                            key,
                            format!(
                                "Invalid value at `.typoTolerance.minWordSizeForTypos`: {}",
                                min_word_size_message(one, two)
                            ),
                        ));
                    }
                }
            }
            Ok(o)
        }
        "faceting" => {
            let o = validate_object(key, v, &["maxValuesPerFacet", "sortFacetValuesBy"])?;
            if let Some(m) = o.get("maxValuesPerFacet").filter(|m| !m.is_null()) {
                if m.as_u64().is_none() {
                    return Err(invalid(key, format!("Invalid value type at `.faceting.maxValuesPerFacet`: expected a positive integer, but found {}: `{m}`", kind_name(m))));
                }
            }
            match o.get("sortFacetValuesBy") {
                None | Some(Value::Null) => {}
                Some(Value::Object(by)) => {
                    for (f, order) in by {
                        if !matches!(order.as_str(), Some("alpha" | "count")) {
                            return Err(invalid(key, unknown_value(order.as_str().unwrap_or("?"), &format!(" at `.faceting.sortFacetValuesBy.{f}`"), &["alpha", "count"])));
                        }
                    }
                }
                Some(other) => return Err(invalid(key, format!("Invalid value type at `.faceting.sortFacetValuesBy`: expected an object, but found {}: `{other}`", kind_name(other)))),
            }
            Ok(o)
        }
        "pagination" => {
            let o = validate_object(key, v, &["maxTotalHits"])?;
            if let Some(m) = o.get("maxTotalHits") {
                if !m.is_null() && m.as_u64().is_none() {
                    return Err(invalid(key, format!("Invalid value type at `.pagination.maxTotalHits`: expected a positive integer, but found {}: `{m}`", kind_name(m))));
                }
                if m.as_u64() == Some(0) {
                    return Err(invalid(key, "Invalid value at `.pagination.maxTotalHits`: a non-zero integer value lower than `18446744073709551615` was expected, but found a zero".to_string()));
                }
            }
            Ok(o)
        }
        _ => Err(ApiError::bad(
            "bad_request",
            format!("Unknown field `{key}`"),
        )),
    }
}

fn validate_object(key: &str, v: &Value, fields: &[&str]) -> Result<Value> {
    validate_object_at(key, key, v, fields)
}

/// Checks an object's field names; `path` is its location (`typoTolerance.x`), `key` the
/// setting (for the error code).
fn validate_object_at(key: &str, path: &str, v: &Value, fields: &[&str]) -> Result<Value> {
    let Value::Object(m) = v else {
        return Err(invalid(
            key,
            format!(
                "Invalid value type at `.{path}`: expected an object, but found {}: `{v}`",
                kind_name(v)
            ),
        ));
    };
    for k in m.keys() {
        if !fields.contains(&k.as_str()) {
            return Err(invalid(
                key,
                unknown_field(k, &format!(" inside `.{path}`"), fields),
            ));
        }
    }
    Ok(v.clone())
}

/// Meilisearch's `minWordSizeForTypos` consistency message (its odd backticks included).
pub fn min_word_size_message(one: u64, two: u64) -> String {
    format!("`minWordSizeForTypos` setting is invalid. `oneTypo` and `twoTypos` fields should be between `0` and `255`, and `twoTypos` should be greater or equals to `oneTypo` but found `oneTypo: {one}` and twoTypos: {two}`.")
}

/// Checks merged settings before they are applied (what Meilisearch verifies when the
/// task runs): `oneTypo <= twoTypos`.
pub fn check_applied(s: &Obj) -> std::result::Result<(), (String, String)> {
    let sizes = s
        .get("typoTolerance")
        .and_then(|t| t.get("minWordSizeForTypos"));
    let get = |k: &str| sizes.and_then(|m| m.get(k)).and_then(Value::as_u64);
    if let (Some(one), Some(two)) = (get("oneTypo"), get("twoTypos")) {
        if one > two {
            return Err((
                "invalid_settings_typo_tolerance".into(),
                min_word_size_message(one, two),
            ));
        }
    }
    Ok(())
}

/// Meilisearch 1.50's `foreignKeys` (behind the `foreignKeys` experimental feature, checked
/// by the caller): `[{foreignIndexUid, fieldName}]`, both strings, echoed in that field order.
/// The test node stores it but never hydrates (Miroir keeps the setting itself).
fn foreign_keys(v: &Value) -> Result<Value> {
    const FIELDS: &[&str] = &["foreignIndexUid", "fieldName"];
    let err = |m: String| ApiError::bad("invalid_settings_foreign_keys", m);
    let found = |v: &Value| match v {
        Value::Null => "null".to_string(),
        v => format!("{}: `{v}`", kind_name(v)),
    };
    let Value::Array(list) = v else {
        return Err(err(format!(
            "Invalid value type at `.foreignKeys`: expected an array, but found {}",
            found(v)
        )));
    };
    let mut out = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let Value::Object(o) = item else {
            return Err(err(format!(
                "Invalid value type at `.foreignKeys[{i}]`: expected an object, but found {}",
                found(item)
            )));
        };
        for (k, x) in o {
            if !FIELDS.contains(&k.as_str()) {
                return Err(err(unknown_field(
                    k,
                    &format!(" inside `.foreignKeys[{i}]`"),
                    FIELDS,
                )));
            }
            if !x.is_string() {
                return Err(err(format!(
                    "Invalid value type at `.foreignKeys[{i}].{k}`: expected a string, but found {}",
                    found(x)
                )));
            }
        }
        let mut entry = serde_json::Map::new();
        for f in FIELDS {
            let Some(x) = o.get(*f) else {
                return Err(err(format!(
                    "Missing field `{f}` inside `.foreignKeys[{i}]`"
                )));
            };
            entry.insert((*f).to_string(), x.clone());
        }
        out.push(Value::Object(entry));
    }
    Ok(Value::Array(out))
}

/// Every field `PATCH /settings` knows in Meilisearch 1.50 (the "expected one of" list);
/// `chat` is experimental and not implemented by the test node.
const PATCH_FIELDS: &[&str] = &[
    "displayedAttributes",
    "searchableAttributes",
    "filterableAttributes",
    "sortableAttributes",
    "foreignKeys",
    "rankingRules",
    "stopWords",
    "nonSeparatorTokens",
    "separatorTokens",
    "dictionary",
    "synonyms",
    "distinctAttribute",
    "proximityPrecision",
    "typoTolerance",
    "faceting",
    "pagination",
    "embedders",
    "searchCutoffMs",
    "localizedAttributes",
    "facetSearch",
    "prefixSearch",
    "chat",
];

/// A sub-route (`PUT /settings/distinct-attribute`) validates its body as the root value,
/// so Meilisearch reports locations relative to it: `.distinctAttribute` disappears.
pub fn relocate_to_root(msg: &str, key: &str) -> String {
    let whole_at = format!(" at `.{key}`");
    let whole_inside = format!(" inside `.{key}`");
    if let Some(i) = msg.find(&whole_at) {
        let after = &msg[i + whole_at.len()..];
        return format!("{}{}", &msg[..i], after);
    }
    if let Some(i) = msg.find(&whole_inside) {
        let after = &msg[i + whole_inside.len()..];
        return format!("{}{}", &msg[..i], after);
    }
    for (from, to) in [(format!("`.{key}."), "`."), (format!("`.{key}["), "`[")] {
        if let Some(i) = msg.find(&from) {
            return format!("{}{to}{}", &msg[..i], &msg[i + from.len()..]);
        }
    }
    msg.to_string()
}

/// Validates a whole `PATCH /settings` body; returns the update in canonical key order
/// (`null` kept, meaning reset).
pub fn validate_patch(body: &Value) -> Result<Obj> {
    let Value::Object(m) = body else {
        return Err(ApiError::bad(
            "bad_request",
            format!(
                "Invalid value type: expected an object, but found {}: `{body}`",
                kind_name(body)
            ),
        ));
    };
    for k in m.keys() {
        if !PATCH_FIELDS.contains(&k.as_str()) {
            return Err(ApiError::bad(
                "bad_request",
                unknown_field(k, "", PATCH_FIELDS),
            ));
        }
        if !KEYS.iter().any(|(key, _)| key == k) {
            return Err(ApiError::bad(
                "bad_request",
                format!("The `{k}` setting is not implemented by miroir-testnode."),
            ));
        }
    }
    let mut out = Obj::new();
    for (k, _) in KEYS {
        if let Some(v) = m.get(*k) {
            let v = if v.is_null() {
                reset_value(k)
            } else {
                validate_one(k, v)?
            };
            out.insert(*k, v);
        }
    }
    Ok(out)
}

/// What a reset shows in task details: `null`, except the attribute lists whose reset
/// Meilisearch 1.50 reports as `["*"]` (applying either means the same).
pub fn reset_value(key: &str) -> Value {
    match key {
        "displayedAttributes" | "searchableAttributes" => json!(["*"]),
        _ => Value::Null,
    }
}

/// `DELETE /settings`: the update to apply, and the task details Meilisearch shows (every
/// setting it knows, including the experimental ones the test node does not implement).
pub fn reset_all() -> (Obj, Obj) {
    let mut update = Obj::new();
    for (k, _) in KEYS {
        update.insert(*k, reset_value(k));
    }
    let mut details = Obj::new();
    for k in PATCH_FIELDS {
        details.insert(*k, reset_value(k));
    }
    (update, details)
}

/// Applies a validated update to the current settings.
pub fn apply(current: &mut Obj, update: &Obj) {
    for (k, v) in &update.0 {
        let new = if v.is_null() {
            default_value(k)
        } else if matches!(k.as_str(), "typoTolerance" | "faceting" | "pagination") {
            let mut base = current.get(k).cloned().unwrap_or_else(|| default_value(k));
            merge_object(&mut base, v, k == "typoTolerance");
            if k == "faceting" {
                // `*` always stays in sortFacetValuesBy.
                if let Some(s) = base
                    .get_mut("sortFacetValuesBy")
                    .and_then(Value::as_object_mut)
                {
                    s.entry("*").or_insert(json!("alpha"));
                }
            }
            base
        } else if matches!(k.as_str(), "displayedAttributes" | "searchableAttributes") {
            dedup_keep_order(v.clone())
        } else {
            v.clone()
        };
        current.insert(k.as_str(), new);
    }
}

fn merge_object(base: &mut Value, patch: &Value, deep: bool) {
    let (Some(b), Some(p)) = (base.as_object_mut(), patch.as_object()) else {
        return;
    };
    for (k, v) in p {
        if v.is_null() {
            if let Some(d) = default_value("typoTolerance")
                .get(k)
                .or(default_value("faceting").get(k))
                .or(default_value("pagination").get(k))
            {
                b.insert(k.clone(), d.clone());
            }
        } else if deep && v.is_object() && b.get(k).is_some_and(Value::is_object) {
            merge_object(b.get_mut(k).expect("checked"), v, false);
        } else {
            b.insert(k.clone(), v.clone());
        }
    }
}

/// Typed, read-only view of the settings used by search and indexing.
#[derive(Debug, Clone)]
pub struct View {
    pub displayed: Option<Vec<String>>,  // None = `*`
    pub searchable: Option<Vec<String>>, // None = `*`
    pub filterable: Vec<String>,
    pub sortable: Vec<String>,
    pub ranking_rules: Vec<String>,
    pub stop_words: Vec<String>,
    pub synonyms: Vec<(String, Vec<String>)>,
    pub distinct: Option<String>,
    pub typo_enabled: bool,
    pub one_typo: usize,
    pub two_typos: usize,
    pub typo_disabled_words: Vec<String>,
    pub max_values_per_facet: usize,
    pub sort_facet_values_by: Vec<(String, String)>,
    pub max_total_hits: usize,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn star(v: Option<&Value>) -> Option<Vec<String>> {
    let s = strings(v);
    if s.iter().any(|a| a == "*") {
        None
    } else {
        Some(s)
    }
}

impl View {
    pub fn of(s: &Obj) -> View {
        let typo = s
            .get("typoTolerance")
            .cloned()
            .unwrap_or_else(|| default_value("typoTolerance"));
        let facet = s
            .get("faceting")
            .cloned()
            .unwrap_or_else(|| default_value("faceting"));
        let mut filterable = Vec::new();
        for f in s
            .get("filterableAttributes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match f {
                Value::String(a) => filterable.push(a.clone()),
                Value::Object(o) => filterable.extend(strings(o.get("attributePatterns"))),
                _ => {}
            }
        }
        View {
            displayed: star(s.get("displayedAttributes")),
            searchable: star(s.get("searchableAttributes")),
            filterable,
            sortable: strings(s.get("sortableAttributes")),
            ranking_rules: strings(s.get("rankingRules")),
            stop_words: strings(s.get("stopWords"))
                .into_iter()
                .map(|w| w.to_lowercase())
                .collect(),
            synonyms: s
                .get("synonyms")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            (
                                k.to_lowercase(),
                                strings(Some(v))
                                    .into_iter()
                                    .map(|w| w.to_lowercase())
                                    .collect(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            distinct: s
                .get("distinctAttribute")
                .and_then(Value::as_str)
                .map(str::to_string),
            typo_enabled: typo["enabled"].as_bool().unwrap_or(true),
            one_typo: typo["minWordSizeForTypos"]["oneTypo"].as_u64().unwrap_or(5) as usize,
            two_typos: typo["minWordSizeForTypos"]["twoTypos"]
                .as_u64()
                .unwrap_or(9) as usize,
            typo_disabled_words: strings(typo.get("disableOnWords"))
                .into_iter()
                .map(|w| w.to_lowercase())
                .collect(),
            max_values_per_facet: facet["maxValuesPerFacet"].as_u64().unwrap_or(100) as usize,
            sort_facet_values_by: facet["sortFacetValuesBy"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("alpha").to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            max_total_hits: s
                .get("pagination")
                .and_then(|p| p["maxTotalHits"].as_u64())
                .unwrap_or(1000) as usize,
        }
    }

    pub fn is_filterable(&self, attr: &str) -> bool {
        self.filterable
            .iter()
            .any(|p| crate::json::attr_matches(p, attr) || glob_match(p, attr))
    }

    pub fn is_sortable(&self, attr: &str) -> bool {
        self.sortable
            .iter()
            .any(|p| crate::json::attr_matches(p, attr))
    }

    /// `sortFacetValuesBy` for one facet: its own entry, else `*`.
    pub fn facet_order(&self, facet: &str) -> &str {
        self.sort_facet_values_by
            .iter()
            .find(|(k, _)| k == facet)
            .or_else(|| self.sort_facet_values_by.iter().find(|(k, _)| k == "*"))
            .map(|(_, v)| v.as_str())
            .unwrap_or("alpha")
    }
}

/// `attributePatterns` globs (`*` at the start and/or end).
pub fn glob_match(p: &str, attr: &str) -> bool {
    match (p.strip_prefix('*'), p.strip_suffix('*')) {
        (Some(rest), _) if rest.ends_with('*') => attr.contains(&rest[..rest.len() - 1]),
        (Some(rest), _) => attr.ends_with(rest),
        (None, Some(start)) => attr.starts_with(start),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_route_errors_are_located_at_the_body_root() {
        assert_eq!(
            relocate_to_root("Invalid value type at `.distinctAttribute`: expected a string, but found a positive integer: `12`", "distinctAttribute"),
            "Invalid value type: expected a string, but found a positive integer: `12`"
        );
        assert_eq!(
            relocate_to_root("Invalid value at `.rankingRules[0]`: x", "rankingRules"),
            "Invalid value at `[0]`: x"
        );
        assert_eq!(
            relocate_to_root(
                "Unknown field `foo` inside `.typoTolerance`: expected one of `enabled`",
                "typoTolerance"
            ),
            "Unknown field `foo`: expected one of `enabled`"
        );
        assert_eq!(
            relocate_to_root(
                "Invalid value at `.pagination.maxTotalHits`: x",
                "pagination"
            ),
            "Invalid value at `.maxTotalHits`: x"
        );
    }

    #[test]
    fn sets_sort_lists_dedup_and_resets_show_star() {
        let u = validate_patch(&json!({"sortableAttributes": ["b", "a", "b"], "displayedAttributes": ["b", "a", "b"], "searchableAttributes": null})).unwrap();
        assert_eq!(u.get("sortableAttributes").unwrap(), &json!(["a", "b"]));
        // Details keep the displayed list as sent; the stored one is deduplicated.
        assert_eq!(
            u.get("displayedAttributes").unwrap(),
            &json!(["b", "a", "b"])
        );
        assert_eq!(u.get("searchableAttributes").unwrap(), &json!(["*"]));
        let mut s = defaults();
        apply(&mut s, &u);
        assert_eq!(s.get("displayedAttributes").unwrap(), &json!(["b", "a"]));
        let (update, details) = reset_all();
        assert_eq!(update.keys().count(), KEYS.len());
        assert_eq!(details.keys().count(), PATCH_FIELDS.len());
        assert_eq!(details.get("foreignKeys").unwrap(), &Value::Null);
    }

    #[test]
    fn typo_sizes_checked_when_both_given_or_when_applied() {
        let e = validate_patch(
            &json!({"typoTolerance": {"minWordSizeForTypos": {"oneTypo": 9, "twoTypos": 4}}}),
        )
        .unwrap_err();
        assert_eq!(e.code, "invalid_settings_typo_tolerance");
        let u = validate_patch(&json!({"typoTolerance": {"minWordSizeForTypos": {"oneTypo": 10}}}))
            .unwrap();
        let mut s = defaults();
        apply(&mut s, &u);
        let (code, msg) = check_applied(&s).unwrap_err();
        assert_eq!(code, "invalid_settings_typo_tolerance");
        assert!(
            msg.ends_with("found `oneTypo: 10` and twoTypos: 9`."),
            "{msg}"
        );
        assert!(check_applied(&defaults()).is_ok());
    }

    #[test]
    fn defaults_are_meilisearch_defaults() {
        let d = defaults();
        assert_eq!(d.keys().count(), KEYS.len());
        assert_eq!(
            d.get("rankingRules").unwrap(),
            &json!([
                "words",
                "typo",
                "proximity",
                "attributeRank",
                "sort",
                "wordPosition",
                "exactness"
            ])
        );
        assert_eq!(d.get("pagination").unwrap(), &json!({"maxTotalHits": 1000}));
        assert_eq!(
            d.get("typoTolerance").unwrap()["minWordSizeForTypos"],
            json!({"oneTypo": 5, "twoTypos": 9})
        );
    }

    #[test]
    fn patch_merges_nested_and_null_resets() {
        let mut s = defaults();
        let u = validate_patch(&json!({"typoTolerance": {"minWordSizeForTypos": {"oneTypo": 4}}, "filterableAttributes": ["a"]})).unwrap();
        apply(&mut s, &u);
        assert_eq!(
            s.get("typoTolerance").unwrap()["minWordSizeForTypos"],
            json!({"oneTypo": 4, "twoTypos": 9})
        );
        let u = validate_patch(&json!({"filterableAttributes": null, "faceting": {"sortFacetValuesBy": {"g": "count"}}})).unwrap();
        apply(&mut s, &u);
        assert_eq!(s.get("filterableAttributes").unwrap(), &json!([]));
        assert_eq!(
            s.get("faceting").unwrap()["sortFacetValuesBy"],
            json!({"*": "alpha", "g": "count"})
        );
        let v = View::of(&s);
        assert_eq!(v.facet_order("g"), "count");
        assert_eq!(v.facet_order("h"), "alpha");
    }

    #[test]
    fn invalid_updates_are_rejected() {
        assert_eq!(
            validate_patch(&json!({"rankingRules": ["nope"]}))
                .unwrap_err()
                .code,
            "invalid_settings_ranking_rules"
        );
        assert!(validate_patch(&json!({"rankingRules": ["price:desc", "words"]})).is_ok());
        assert_eq!(
            validate_patch(&json!({"bogus": 1})).unwrap_err().code,
            "bad_request"
        );
        assert_eq!(
            validate_patch(&json!({"pagination": {"maxTotalHits": 0}}))
                .unwrap_err()
                .code,
            "invalid_settings_pagination"
        );
        assert_eq!(
            validate_patch(&json!({"stopWords": "a"})).unwrap_err().code,
            "invalid_settings_stop_words"
        );
    }

    #[test]
    fn filterable_patterns() {
        let mut s = defaults();
        apply(
            &mut s,
            &validate_patch(&json!({"filterableAttributes": ["a", {"attributePatterns": ["x*"]}]}))
                .unwrap(),
        );
        let v = View::of(&s);
        assert!(v.is_filterable("a") && v.is_filterable("a.b") && v.is_filterable("xy"));
        assert!(!v.is_filterable("b"));
    }
}
