//! The pure half of settings: what the nodes get for a client's settings patch
//! ([`translate_settings`]), what a `settingsUpdate` task echoes ([`settings_details`]),
//! whether a node's read-back carries what was sent ([`readback_matches`]), and how a
//! settings sub-route maps to its key and relocates a node's error. No I/O: everything here
//! is unit-tested on its own.

use crate::http_types::ApiError;
use miroir_core::documents::{RESERVED_PREFIX, SHARD_FIELD};
use miroir_core::error::ErrorCode;
use miroir_core::foreign_keys::ForeignKey;
use miroir_core::snapshot::{FacetOrder, IndexMeta};
use serde_json::{json, Map, Value};

pub use miroir_core::snapshot::DEFAULT_RANKING_RULES;

/// The explicit `displayedAttributes` nodes hold for a client's `*`: the index's fields, except
/// `_vectors`. Meilisearch 1.50 returns `_vectors` under `retrieveVectors: true` when displayed
/// is `*` or a list without it, but never when a list names it (checked on a real node).
pub(super) fn node_displayed(meta: &IndexMeta) -> Value {
    json!(meta
        .fields
        .iter()
        .filter(|f| *f != "_vectors")
        .collect::<Vec<_>>())
}

/// The node-side settings every Miroir index starts with.
pub(super) fn initial_node_settings(meta: &IndexMeta) -> Value {
    json!({
        "filterableAttributes": [SHARD_FIELD],
        "displayedAttributes": node_displayed(meta),
        "faceting": {"maxValuesPerFacet": node_max_values_per_facet(u64::from(meta.max_values_per_facet))},
    })
}

pub use miroir_core::snapshot::{node_max_values_per_facet, NODE_MAX_VALUES_PER_FACET};

/// Rewrites the `faceting` object of a node patch so nodes over-fetch facet values. Values
/// that are not an object, number or null are left as sent for the nodes to refuse.
fn overfetch_facets(node: &mut Map<String, Value>) {
    let Some(f) = node.get_mut("faceting") else {
        return;
    };
    let default = || json!(node_max_values_per_facet(100));
    match f {
        // A reset: the client reads Meilisearch's defaults back, nodes keep over-fetching.
        Value::Null => {
            *f = json!({"maxValuesPerFacet": default(), "sortFacetValuesBy": null});
        }
        Value::Object(o) => match o.get("maxValuesPerFacet") {
            Some(Value::Null) => {
                o.insert("maxValuesPerFacet".into(), default());
            }
            Some(Value::Number(n)) => {
                if let Some(v) = n.as_u64() {
                    o.insert(
                        "maxValuesPerFacet".into(),
                        json!(node_max_values_per_facet(v)),
                    );
                }
            }
            _ => {}
        },
        _ => {}
    }
}

/// kebab-case settings sub-route → camelCase settings key.
pub fn setting_key(sub: &str) -> Option<&'static str> {
    Some(match sub {
        "displayed-attributes" => "displayedAttributes",
        "searchable-attributes" => "searchableAttributes",
        "filterable-attributes" => "filterableAttributes",
        "sortable-attributes" => "sortableAttributes",
        "ranking-rules" => "rankingRules",
        "stop-words" => "stopWords",
        "synonyms" => "synonyms",
        "distinct-attribute" => "distinctAttribute",
        "typo-tolerance" => "typoTolerance",
        "faceting" => "faceting",
        "pagination" => "pagination",
        "proximity-precision" => "proximityPrecision",
        "separator-tokens" => "separatorTokens",
        "non-separator-tokens" => "nonSeparatorTokens",
        "dictionary" => "dictionary",
        "search-cutoff-ms" => "searchCutoffMs",
        "localized-attributes" => "localizedAttributes",
        "facet-search" => "facetSearch",
        "prefix-search" => "prefixSearch",
        "embedders" => "embedders",
        "chat" => "chat",
        "foreign-keys" => "foreignKeys",
        _ => return None,
    })
}

fn is_wildcard(v: &Value) -> bool {
    v.is_null() || v.as_array().is_some_and(|a| a.iter().any(|x| x == "*"))
}

fn mentions_reserved(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if s.starts_with(RESERVED_PREFIX) => Some(s.clone()),
        Value::Array(a) => a.iter().find_map(mentions_reserved),
        Value::Object(o) => o.get("attributePatterns").and_then(mentions_reserved),
        _ => None,
    }
}

/// A `foreignKeys` value checked as Meilisearch 1.50's deserializer does (`null` = reset),
/// with its messages located in a `PATCH /settings` body (sub-routes relocate them,
/// [`as_sub_route_error`]). Neither index uids nor field names are checked further: one
/// Meilisearch accepts any string there too (checked on a real node).
pub fn parse_foreign_keys(v: &Value) -> Result<Vec<ForeignKey>, ApiError> {
    use crate::http_types::{describe_json_value, did_you_mean};
    let err = |m: String| ApiError::core(ErrorCode::InvalidSettingsForeignKeys, m);
    let type_err = |at: &str, expected: &str, v: &Value| {
        err(format!(
            "Invalid value type at `.foreignKeys{at}`: expected {expected}, but found {}",
            describe_json_value(v)
        ))
    };
    let list = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(a) => a,
        other => return Err(type_err("", "an array", other)),
    };
    const FIELDS: [&str; 2] = ["foreignIndexUid", "fieldName"];
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let Value::Object(o) = item else {
            return Err(type_err(&format!("[{i}]"), "an object", item));
        };
        let mut got: [Option<String>; 2] = [None, None];
        for (k, x) in o {
            let Some(slot) = FIELDS.iter().position(|f| f == k) else {
                return Err(err(format!(
                    "Unknown field `{k}` inside `.foreignKeys[{i}]`: {}expected one of `foreignIndexUid`, `fieldName`",
                    did_you_mean(k, &FIELDS)
                )));
            };
            match x {
                Value::String(s) => got[slot] = Some(s.clone()),
                other => return Err(type_err(&format!("[{i}].{k}"), "a string", other)),
            }
        }
        match got {
            [Some(foreign_index_uid), Some(field_name)] => out.push(ForeignKey {
                foreign_index_uid,
                field_name,
            }),
            [None, _] | [_, None] => {
                let missing = if got[0].is_none() {
                    FIELDS[0]
                } else {
                    FIELDS[1]
                };
                return Err(err(format!(
                    "Missing field `{missing}` inside `.foreignKeys[{i}]`"
                )));
            }
        }
    }
    Ok(out)
}

/// Translates a client settings patch into the nodes' patch and the index's new metadata.
pub fn translate_settings(
    client: &Map<String, Value>,
    meta: &IndexMeta,
) -> Result<(Map<String, Value>, IndexMeta), ApiError> {
    let mut node = client.clone();
    let mut meta = meta.clone();
    // Miroir's own setting: nodes would hydrate from their own shard only (decision 044).
    if let Some(v) = node.remove("foreignKeys") {
        meta.foreign_keys = parse_foreign_keys(&v)?;
    }
    for key in [
        "filterableAttributes",
        "sortableAttributes",
        "searchableAttributes",
        "displayedAttributes",
        "distinctAttribute",
    ] {
        if let Some(name) = client.get(key).and_then(mentions_reserved) {
            return Err(ApiError::core(
                ErrorCode::MiroirReservedField,
                format!(
                    "`{name}` is a field name reserved by Miroir and cannot be used in `{key}`."
                ),
            ));
        }
    }
    // Only a list or a reset is rewritten; any other value goes to the nodes as sent, so
    // that they refuse it with Meilisearch's own error (never "fixed" into a valid list).
    match client.get("filterableAttributes") {
        Some(Value::Array(list)) => {
            let mut list = list.clone();
            if !list.iter().any(|x| x == SHARD_FIELD) {
                list.push(json!(SHARD_FIELD));
            }
            node.insert("filterableAttributes".into(), Value::Array(list));
        }
        Some(Value::Null) => {
            node.insert("filterableAttributes".into(), json!([SHARD_FIELD]));
        }
        _ => {}
    }
    if let Some(s) = client.get("searchableAttributes") {
        meta.searchable_wildcard = is_wildcard(s);
    }
    if let Some(d) = client.get("displayedAttributes") {
        meta.displayed_wildcard = is_wildcard(d);
        if meta.displayed_wildcard {
            node.insert("displayedAttributes".into(), node_displayed(&meta));
        }
    }
    if let Some(r) = client.get("rankingRules") {
        meta.ranking_rules = match r.as_array() {
            Some(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            None => DEFAULT_RANKING_RULES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        };
    }
    if let Some(f) = client.get("faceting") {
        match f.get("maxValuesPerFacet") {
            Some(Value::Null) => meta.max_values_per_facet = 100,
            Some(v) => meta.max_values_per_facet = v.as_u64().unwrap_or(100) as u32,
            None if f.is_null() => meta.max_values_per_facet = 100,
            None => {}
        }
        if f.is_null() || f.get("sortFacetValuesBy").is_some_and(Value::is_null) {
            meta.sort_facet_values_by =
                [("*".to_string(), FacetOrder::Alpha)].into_iter().collect();
        } else if let Some(o) = f.get("sortFacetValuesBy").and_then(Value::as_object) {
            for (k, v) in o {
                let order = if v == "count" {
                    FacetOrder::Count
                } else {
                    FacetOrder::Alpha
                };
                meta.sort_facet_values_by.insert(k.clone(), order);
            }
        }
    }
    overfetch_facets(&mut node);
    // A string or a reset; any other value is left to the nodes to refuse.
    match client.get("distinctAttribute") {
        Some(Value::String(d)) => meta.distinct_attribute = Some(d.clone()),
        Some(Value::Null) => meta.distinct_attribute = None,
        _ => {}
    }
    if let Some(p) = client.get("pagination") {
        meta.max_total_hits = p
            .get("maxTotalHits")
            .and_then(Value::as_u64)
            .map_or(1000, |v| v as u32);
    }
    meta.updated_at = crate::timefmt::now_rfc3339();
    Ok((node, meta))
}

/// Meilisearch 1.50's settings keys in the order its `Settings` struct serialises them —
/// the order of a `settingsUpdate` task's `details`, whatever the request's order.
pub(super) const SETTINGS_ORDER: &[&str] = &[
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

/// Settings Meilisearch holds as sets (`BTreeSet<String>`): echoed sorted and deduplicated.
const SET_SETTINGS: &[&str] = &[
    "sortableAttributes",
    "stopWords",
    "nonSeparatorTokens",
    "separatorTokens",
    "dictionary",
];

/// A string list echoed as Meilisearch's `BTreeSet<String>` would be; anything else as sent
/// (an invalid value never reaches a task: the nodes refuse it first).
fn as_set(v: &Value) -> Value {
    match v.as_array() {
        Some(a) if a.iter().all(Value::is_string) => {
            let mut items: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
            items.sort_unstable();
            items.dedup();
            json!(items)
        }
        _ => v.clone(),
    }
}

/// An object echoed as a `BTreeMap<String, _>` (keys sorted) would be.
fn as_sorted_map(v: &Value) -> Value {
    match v.as_object() {
        Some(o) => {
            let mut entries: Vec<(&String, &Value)> = o.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )
        }
        None => v.clone(),
    }
}

/// The object's keys in `order` first (those present), then any others as they came.
fn ordered(v: &Value, order: &[&str], each: impl Fn(&str, &Value) -> Value) -> Value {
    let Some(o) = v.as_object() else {
        return v.clone();
    };
    let mut out = Map::new();
    for k in order {
        if let Some(x) = o.get(*k) {
            out.insert((*k).to_string(), each(k, x));
        }
    }
    for (k, x) in o {
        if !out.contains_key(k) {
            out.insert(k.clone(), each(k, x));
        }
    }
    Value::Object(out)
}

/// A `filterableAttributes` rule object as Meilisearch echoes it: `attributePatterns`, then
/// `features` with every default filled in (`facetSearch: false`, `filter: {equality: true,
/// comparison: false}`). Plain attribute names, and shapes the nodes refuse, as sent.
fn filterable_rule(v: &Value) -> Value {
    let Some(o) = v.as_object() else {
        return v.clone();
    };
    let features = o.get("features").cloned().unwrap_or_else(|| json!({}));
    let filter = features.get("filter").cloned().unwrap_or_else(|| json!({}));
    let flag =
        |from: &Value, k: &str, default: bool| from.get(k).cloned().unwrap_or(json!(default));
    if !features.is_object() || !filter.is_object() {
        return v.clone();
    }
    let mut out = Map::new();
    if let Some(p) = o.get("attributePatterns") {
        out.insert("attributePatterns".into(), p.clone());
    }
    out.insert(
        "features".into(),
        json!({
            "facetSearch": flag(&features, "facetSearch", false),
            "filter": {"equality": flag(&filter, "equality", true), "comparison": flag(&filter, "comparison", false)},
        }),
    );
    for (k, x) in o {
        if !out.contains_key(k) {
            out.insert(k.clone(), x.clone());
        }
    }
    Value::Object(out)
}

/// Meilisearch's redaction of an embedder `apiKey` in task details (`hide_secret`).
fn hide_secret(secret: &str) -> String {
    let keep = match secret.len() {
        0..=9 => 0,
        10..=19 => 2,
        20..=29 => 3,
        _ => 5,
    };
    let mut cut = keep.min(secret.len());
    while !secret.is_char_boundary(cut) {
        cut += 1;
    }
    let stars = match keep {
        0 => "XXX...",
        2 => "XXXX...",
        3 => "XXXXX...",
        _ => "XXXXXX...",
    };
    format!("{}{stars}", &secret[..cut])
}

/// The `details` of a `settingsUpdate` task for the client's settings patch, as Meilisearch
/// 1.50 echoes it (checked against a real node): keys in `Settings` order, sets sorted and
/// deduplicated, maps sorted by key, a reset of `displayedAttributes`/`searchableAttributes`
/// shown as `["*"]`, and embedder API keys redacted.
pub fn settings_details(client: &Map<String, Value>) -> Value {
    ordered(
        &Value::Object(client.clone()),
        SETTINGS_ORDER,
        |k, v| match k {
            "displayedAttributes" | "searchableAttributes" if v.is_null() => json!(["*"]),
            k if SET_SETTINGS.contains(&k) => as_set(v),
            "filterableAttributes" => match v.as_array() {
                Some(a) => Value::Array(a.iter().map(filterable_rule).collect()),
                None => v.clone(),
            },
            "localizedAttributes" => match v.as_array() {
                Some(a) => Value::Array(
                    a.iter()
                        .map(|r| ordered(r, &["attributePatterns", "locales"], |_, x| x.clone()))
                        .collect(),
                ),
                None => v.clone(),
            },
            "synonyms" => as_sorted_map(v),
            // Echoed in the setting's field order, whatever the request's.
            "foreignKeys" => match parse_foreign_keys(v) {
                Ok(keys) if !v.is_null() => json!(keys),
                _ => v.clone(),
            },
            "typoTolerance" => ordered(
                v,
                &[
                    "enabled",
                    "minWordSizeForTypos",
                    "disableOnWords",
                    "disableOnAttributes",
                    "disableOnNumbers",
                ],
                |k, v| match k {
                    "disableOnWords" | "disableOnAttributes" => as_set(v),
                    "minWordSizeForTypos" => ordered(v, &["oneTypo", "twoTypos"], |_, x| x.clone()),
                    _ => v.clone(),
                },
            ),
            "faceting" => ordered(
                v,
                &["maxValuesPerFacet", "sortFacetValuesBy"],
                |k, v| match k {
                    "sortFacetValuesBy" => as_sorted_map(v),
                    _ => v.clone(),
                },
            ),
            "embedders" => {
                let mut m = as_sorted_map(v);
                if let Some(o) = m.as_object_mut() {
                    for e in o.values_mut() {
                        if let Some(Value::String(key)) = e.get_mut("apiKey") {
                            *key = hide_secret(key);
                        }
                    }
                }
                m
            }
            _ => v.clone(),
        },
    )
}

/// Whether a node's read-back `got` carries what we `sent` (nulls = resets, not checked;
/// objects compared key by key; sets compared ignoring order, ordered lists exactly).
pub fn readback_matches(key: &str, sent: &Value, got: &Value) -> bool {
    match (key, sent, got) {
        (_, Value::Null, _) => true,
        // Meilisearch redacts embedder API keys on read: nothing to compare.
        ("apiKey", _, _) => true,
        // Rule objects are read back with every feature default filled in.
        ("filterableAttributes", Value::Array(s), Value::Array(g)) => same_set(
            &s.iter().map(filterable_rule).collect::<Vec<_>>(),
            &g.iter().map(filterable_rule).collect::<Vec<_>>(),
        ),
        // Locales are read back canonicalised (`fr` → `fra`): compare the rules' patterns
        // and how many locales each has.
        ("localizedAttributes", Value::Array(s), Value::Array(g)) => {
            let shape = |v: &Value| {
                (
                    v.get("attributePatterns").cloned(),
                    v.get("locales").and_then(Value::as_array).map(Vec::len),
                )
            };
            s.len() == g.len() && s.iter().zip(g).all(|(a, b)| shape(a) == shape(b))
        }
        // A `null` inside an object means "the default": nodes read it back filled in, or
        // leave the key out (embedder fields such as `distribution`, `url`).
        (_, Value::Object(s), Value::Object(g)) => s
            .iter()
            .all(|(k, v)| v.is_null() || g.get(k).is_some_and(|gv| readback_matches(k, v, gv))),
        ("searchableAttributes" | "displayedAttributes" | "rankingRules", _, _) => sent == got,
        (_, Value::Array(s), Value::Array(g)) => same_set(s, g),
        (_, s, g) => s == g,
    }
}

/// Equal as sets (order and repetitions ignored; objects compared by content, whatever
/// their key order).
fn same_set(a: &[Value], b: &[Value]) -> bool {
    a.iter().all(|x| b.contains(x)) && b.iter().all(|x| a.contains(x))
}

/// Settings of [`SETTINGS_ORDER`] Miroir does not send to the nodes (experimental): a
/// `DELETE /settings` task still lists them (as `null`).
pub(super) const RESET_ALL_DETAILS_EXTRA: &[&str] = &["foreignKeys", "chat"];

/// Rewrites a location in a node's error message from the `PATCH /settings` body Miroir
/// sent (`.distinctAttribute`, `.typoTolerance.enabled`, `.filterableAttributes[0]`) to the
/// sub-route body the client sent, which Meilisearch validates as the root value: the
/// whole value has no location (`Invalid value type: expected …`), a part of it keeps the
/// rest of the path (`at `.enabled``, `at `[0]``). Checked against a real 1.50 node.
pub fn relocate_to_sub_route(message: &str, key: &str) -> String {
    for prefix in [" at ", " inside "] {
        let whole = format!("{prefix}`.{key}`");
        if let Some(i) = message.find(&whole) {
            return format!("{}{}", &message[..i], &message[i + whole.len()..]);
        }
    }
    for (from, to) in [(format!("`.{key}."), "`."), (format!("`.{key}["), "`[")] {
        if let Some(i) = message.find(&from) {
            return format!("{}{to}{}", &message[..i], &message[i + from.len()..]);
        }
    }
    message.to_string()
}

/// A settings sub-route's error as Meilisearch gives it: a node's refusal of the
/// equivalent settings patch is relocated ([`relocate_to_sub_route`]); other errors as is.
pub fn as_sub_route_error(e: ApiError, sub: &str) -> ApiError {
    match (e, setting_key(sub)) {
        // Miroir's own validation (`foreignKeys`) is worded for `PATCH /settings` too.
        (
            ApiError::Code {
                code: ErrorCode::InvalidSettingsForeignKeys,
                message,
            },
            Some(key),
        ) => ApiError::core(
            ErrorCode::InvalidSettingsForeignKeys,
            relocate_to_sub_route(&message, key),
        ),
        (ApiError::Node { status, mut body }, Some(key)) => {
            if let Some(m) = body.get("message").and_then(Value::as_str) {
                body["message"] = Value::from(relocate_to_sub_route(m, key));
            }
            ApiError::Node { status, body }
        }
        (e, _) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> IndexMeta {
        IndexMeta {
            uid: "m".into(),
            primary_key: Some("id".into()),
            shards: 4,
            fields: vec!["id".into(), "title".into()],
            searchable_wildcard: true,
            displayed_wildcard: true,
            ranking_rules: vec![],
            max_values_per_facet: 100,
            sort_facet_values_by: Default::default(),
            max_total_hits: 1000,
            created_at: String::new(),
            updated_at: String::new(),
            distinct_attribute: None,
            foreign_keys: Vec::new(),
            deleting: false,
        }
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn shard_field_is_always_filterable_on_nodes() {
        let (n, _) =
            translate_settings(&obj(json!({"filterableAttributes": ["genre"]})), &meta()).unwrap();
        assert_eq!(n["filterableAttributes"], json!(["genre", "_miroir_shard"]));
        let (n, _) =
            translate_settings(&obj(json!({"filterableAttributes": null})), &meta()).unwrap();
        assert_eq!(n["filterableAttributes"], json!(["_miroir_shard"]));
        // An invalid value is passed through for the nodes to refuse, not replaced.
        let (n, _) =
            translate_settings(&obj(json!({"filterableAttributes": "genre"})), &meta()).unwrap();
        assert_eq!(n["filterableAttributes"], json!("genre"));
    }

    #[test]
    fn nodes_over_fetch_facet_values_and_meta_keeps_the_clients_limit() {
        let (n, m) =
            translate_settings(&obj(json!({"faceting": {"maxValuesPerFacet": 7}})), &meta())
                .unwrap();
        assert_eq!(
            n["faceting"]["maxValuesPerFacet"],
            json!(NODE_MAX_VALUES_PER_FACET)
        );
        assert_eq!(m.max_values_per_facet, 7);
        let (n, _) = translate_settings(
            &obj(json!({"faceting": {"maxValuesPerFacet": 5000}})),
            &meta(),
        )
        .unwrap();
        assert_eq!(n["faceting"]["maxValuesPerFacet"], json!(5000));
        let (n, m) = translate_settings(&obj(json!({"faceting": null})), &meta()).unwrap();
        assert_eq!(
            n["faceting"],
            json!({"maxValuesPerFacet": NODE_MAX_VALUES_PER_FACET, "sortFacetValuesBy": null})
        );
        assert_eq!(m.max_values_per_facet, 100);
        // Only the limit is touched; invalid values go to the nodes as sent.
        let (n, _) = translate_settings(
            &obj(json!({"faceting": {"sortFacetValuesBy": {"*": "count"}}})),
            &meta(),
        )
        .unwrap();
        assert_eq!(n["faceting"], json!({"sortFacetValuesBy": {"*": "count"}}));
        let (n, _) = translate_settings(
            &obj(json!({"faceting": {"maxValuesPerFacet": "x"}})),
            &meta(),
        )
        .unwrap();
        assert_eq!(n["faceting"]["maxValuesPerFacet"], json!("x"));
    }

    #[test]
    fn displayed_wildcard_becomes_the_field_list_searchable_stays() {
        let (n, m) = translate_settings(
            &obj(json!({"searchableAttributes": ["*"], "displayedAttributes": ["title"]})),
            &meta(),
        )
        .unwrap();
        // Searchable `*` stays `*` on the nodes (decision 006): attributes rank as on one
        // Meilisearch, and the shard field yields no word.
        assert_eq!(n["searchableAttributes"], json!(["*"]));
        assert!(m.searchable_wildcard);
        assert_eq!(n["displayedAttributes"], json!(["title"]));
        assert!(!m.displayed_wildcard);
        let (n, m) = translate_settings(
            &obj(json!({"searchableAttributes": null, "displayedAttributes": ["*"]})),
            &meta(),
        )
        .unwrap();
        assert_eq!(n["searchableAttributes"], Value::Null);
        assert!(m.searchable_wildcard);
        assert_eq!(n["displayedAttributes"], json!(["id", "title"]));
        assert!(m.displayed_wildcard);
    }

    #[test]
    fn reserved_fields_are_refused_and_merge_settings_tracked() {
        let e = translate_settings(
            &obj(json!({"sortableAttributes": ["_miroir_shard"]})),
            &meta(),
        )
        .unwrap_err();
        assert_eq!(e.body()["code"], "miroir_reserved_field");
        let (_, m) = translate_settings(
            &obj(json!({"rankingRules": ["sort", "words"], "faceting": {"maxValuesPerFacet": 7, "sortFacetValuesBy": {"genre": "count"}}, "pagination": {"maxTotalHits": 50}})),
            &meta(),
        )
        .unwrap();
        assert_eq!(m.ranking_rules, vec!["sort", "words"]);
        assert_eq!(m.max_values_per_facet, 7);
        assert_eq!(
            m.sort_facet_values_by.get("genre"),
            Some(&FacetOrder::Count)
        );
        assert_eq!(m.max_total_hits, 50);
        assert_eq!(m.distinct_attribute, None);
        let (_, m) =
            translate_settings(&obj(json!({"distinctAttribute": "sku"})), &meta()).unwrap();
        assert_eq!(m.distinct_attribute.as_deref(), Some("sku"));
        let (_, m) = translate_settings(&obj(json!({"distinctAttribute": null})), &m).unwrap();
        assert_eq!(m.distinct_attribute, None);
        // Anything else is the nodes' to refuse; the tracked value does not change.
        let (_, m) = translate_settings(&obj(json!({"distinctAttribute": 3})), &meta()).unwrap();
        assert_eq!(m.distinct_attribute, None);
    }

    #[test]
    fn vectors_stay_out_of_the_nodes_displayed_list() {
        let mut m = meta();
        m.fields.push("_vectors".into());
        m.fields.push("year".into());
        let (n, _) = translate_settings(&obj(json!({"displayedAttributes": ["*"]})), &m).unwrap();
        assert_eq!(n["displayedAttributes"], json!(["id", "title", "year"]));
        assert_eq!(
            initial_node_settings(&m)["displayedAttributes"],
            json!(["id", "title", "year"])
        );
    }

    #[test]
    fn readback_accepts_defaults_for_nulls_inside_objects() {
        // Sent by the Python SDK; read back from Meilisearch 1.50 with defaults filled in and
        // the null fields left out.
        let sent = json!({"default": {"source": "userProvided", "dimensions": 1, "distribution": null},
            "open_ai": {"source": "openAi", "url": null, "apiKey": null, "model": null, "documentTemplate": null}});
        let got = json!({"default": {"source": "userProvided", "dimensions": 1},
            "open_ai": {"source": "openAi", "model": "text-embedding-3-small", "documentTemplate": "{{doc}}"}});
        assert!(readback_matches("embedders", &sent, &got));
        // A value that was sent must still be read back.
        let got_wrong = json!({"default": {"source": "userProvided", "dimensions": 2}, "open_ai": {"source": "openAi"}});
        assert!(!readback_matches("embedders", &sent, &got_wrong));
        let missing = json!({"default": {"source": "userProvided", "dimensions": 1}});
        assert!(!readback_matches("embedders", &sent, &missing));
    }

    #[test]
    fn readback_compares_sets_and_ordered_lists() {
        assert!(readback_matches(
            "filterableAttributes",
            &json!(["b", "a"]),
            &json!(["a", "b"])
        ));
        assert!(!readback_matches(
            "searchableAttributes",
            &json!(["b", "a"]),
            &json!(["a", "b"])
        ));
        assert!(readback_matches(
            "typoTolerance",
            &json!({"enabled": false}),
            &json!({"enabled": false, "disableOnWords": []})
        ));
        assert!(!readback_matches(
            "typoTolerance",
            &json!({"enabled": false}),
            &json!({"enabled": true})
        ));
        assert!(readback_matches("stopWords", &Value::Null, &json!(["x"])));
        // What a real Meilisearch 1.50 reads back for accepted patches.
        assert!(readback_matches(
            "filterableAttributes",
            &json!([{"attributePatterns": ["genre"]}, "title"]),
            &json!(["title", {"attributePatterns": ["genre"], "features": {"facetSearch": false, "filter": {"equality": true, "comparison": false}}}])
        ));
        assert!(!readback_matches(
            "filterableAttributes",
            &json!([{"attributePatterns": ["genre"], "features": {"facetSearch": true}}]),
            &json!([{"attributePatterns": ["genre"], "features": {"facetSearch": false, "filter": {"equality": true, "comparison": false}}}])
        ));
        assert!(readback_matches(
            "localizedAttributes",
            &json!([{"locales": ["fr", "en"], "attributePatterns": ["a*"]}]),
            &json!([{"attributePatterns": ["a*"], "locales": ["fra", "eng"]}])
        ));
        assert!(!readback_matches(
            "localizedAttributes",
            &json!([{"locales": ["fr"], "attributePatterns": ["a*"]}]),
            &json!([{"attributePatterns": ["b*"], "locales": ["fra"]}])
        ));
        assert!(readback_matches(
            "embedders",
            &json!({"e": {"source": "openAi", "apiKey": "sk-secret-value"}}),
            &json!({"e": {"source": "openAi", "apiKey": "sk-XXX...", "model": "m"}})
        ));
        assert!(readback_matches(
            "synonyms",
            &json!({"a": ["x", "y"]}),
            &json!({"a": ["y", "x"]})
        ));
    }

    /// Node messages for the settings patch, and what Meilisearch 1.50 answers on the
    /// sub-route (both captured from real nodes).
    #[test]
    fn sub_route_errors_are_relocated() {
        let cases = [
            ("Invalid value type at `.distinctAttribute`: expected a string, but found a positive integer: `12`", "distinctAttribute",
             "Invalid value type: expected a string, but found a positive integer: `12`"),
            ("Invalid value type at `.filterableAttributes[0]`: expected a string, but found a positive integer: `12`", "filterableAttributes",
             "Invalid value type at `[0]`: expected a string, but found a positive integer: `12`"),
            ("Invalid value type at `.typoTolerance.minWordSizeForTypos.oneTypo`: expected a positive integer, but found a string: `\"a\"`", "typoTolerance",
             "Invalid value type at `.minWordSizeForTypos.oneTypo`: expected a positive integer, but found a string: `\"a\"`"),
            ("Unknown field `foo` inside `.typoTolerance`: expected one of `enabled`", "typoTolerance",
             "Unknown field `foo`: expected one of `enabled`"),
            ("Unknown value `x` at `.proximityPrecision`: expected one of `byWord`, `byAttribute`", "proximityPrecision",
             "Unknown value `x`: expected one of `byWord`, `byAttribute`"),
            ("Index `m` not found.", "stopWords", "Index `m` not found."),
        ];
        for (node, key, meili) in cases {
            assert_eq!(relocate_to_sub_route(node, key), meili);
        }
        let e = ApiError::Node {
            status: 400,
            body: json!({"message": cases[0].0, "code": "invalid_settings_distinct_attribute"}),
        };
        let e = as_sub_route_error(e, "distinct-attribute");
        assert_eq!(e.body()["message"], cases[0].2);
        assert_eq!(e.body()["code"], "invalid_settings_distinct_attribute");
    }

    /// `details` as a real Meilisearch 1.50 echoes this patch (captured from one).
    #[test]
    fn settings_details_echo_meilisearch() {
        let patch = obj(json!({
            "synonyms": {"b": ["y", "x"], "a": ["z"]},
            "sortableAttributes": ["z", "a", "a"],
            "typoTolerance": {"disableOnWords": ["b", "a"], "enabled": true},
            "faceting": {"sortFacetValuesBy": {"z": "count", "a": "alpha"}},
            "filterableAttributes": ["z", "a"],
            "stopWords": ["the", "a"],
            "rankingRules": ["words", "price:asc"],
            "searchableAttributes": ["*"],
            "displayedAttributes": null
        }));
        let d = settings_details(&patch);
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"displayedAttributes":["*"],"searchableAttributes":["*"],"filterableAttributes":["z","a"],"sortableAttributes":["a","z"],"rankingRules":["words","price:asc"],"stopWords":["a","the"],"synonyms":{"a":["z"],"b":["y","x"]},"typoTolerance":{"enabled":true,"disableOnWords":["a","b"]},"faceting":{"sortFacetValuesBy":{"a":"alpha","z":"count"}}}"#
        );
        let patch = obj(json!({
            "filterableAttributes": [{"attributePatterns": ["a"]}, {"features": {"filter": {"comparison": true}}, "attributePatterns": ["b"]}, "c"],
            "typoTolerance": {"minWordSizeForTypos": {"twoTypos": 9, "oneTypo": 4}, "disableOnNumbers": true},
            "localizedAttributes": [{"locales": ["fra"], "attributePatterns": ["a*"]}],
            "nonSeparatorTokens": ["@", "#"],
            "dictionary": ["b", "a"]
        }));
        assert_eq!(
            serde_json::to_string(&settings_details(&patch)).unwrap(),
            r##"{"filterableAttributes":[{"attributePatterns":["a"],"features":{"facetSearch":false,"filter":{"equality":true,"comparison":false}}},{"attributePatterns":["b"],"features":{"facetSearch":false,"filter":{"equality":true,"comparison":true}}},"c"],"nonSeparatorTokens":["#","@"],"dictionary":["a","b"],"typoTolerance":{"minWordSizeForTypos":{"oneTypo":4,"twoTypos":9},"disableOnNumbers":true},"localizedAttributes":[{"attributePatterns":["a*"],"locales":["fra"]}]}"##
        );
        let d = settings_details(&obj(
            json!({"embedders": {"e": {"source": "openAi", "apiKey": "sk-0123456789abcdefghij"}}}),
        ));
        assert_eq!(d["embedders"]["e"]["apiKey"], "sk-XXXXX...");
        assert_eq!(hide_secret("short"), "XXX...");
        assert_eq!(hide_secret("0123456789abc"), "01XXXX...");
        assert_eq!(
            hide_secret("0123456789012345678901234567890123"),
            "01234XXXXXX..."
        );
    }

    #[test]
    fn sub_routes_map_to_settings_keys() {
        assert_eq!(
            setting_key("filterable-attributes"),
            Some("filterableAttributes")
        );
        assert_eq!(setting_key("nope"), None);
    }

    /// `DELETE /settings` resets what the sub-routes set: every setting Miroir sends to the
    /// nodes has its kebab-case sub-route.
    #[test]
    fn every_node_setting_has_a_sub_route() {
        let kebab = |k: &str| {
            k.chars().fold(String::new(), |mut out, c| {
                if c.is_ascii_uppercase() {
                    out.push('-');
                }
                out.push(c.to_ascii_lowercase());
                out
            })
        };
        for k in SETTINGS_ORDER {
            if !RESET_ALL_DETAILS_EXTRA.contains(k) {
                assert_eq!(setting_key(&kebab(k)), Some(*k), "{k}");
            }
        }
    }

    #[test]
    fn foreign_keys_are_kept_by_miroir_and_checked_as_meilisearch_does() {
        let patch = json!({"foreignKeys": [{"fieldName": "author", "foreignIndexUid": "authors"}], "stopWords": ["a"]});
        let (node, m) = translate_settings(patch.as_object().unwrap(), &meta()).unwrap();
        assert!(
            !node.contains_key("foreignKeys"),
            "nodes never get the setting"
        );
        assert_eq!(m.foreign_keys.len(), 1);
        assert_eq!(
            settings_details(patch.as_object().unwrap())["foreignKeys"],
            json!([{"foreignIndexUid": "authors", "fieldName": "author"}])
        );
        let reset = json!({"foreignKeys": null});
        let (_, m) = translate_settings(reset.as_object().unwrap(), &m).unwrap();
        assert!(m.foreign_keys.is_empty());
        // Messages of a real 1.50 node.
        let cases = [
            (json!("x"), "Invalid value type at `.foreignKeys`: expected an array, but found a string: `\"x\"`"),
            (json!([1]), "Invalid value type at `.foreignKeys[0]`: expected an object, but found a positive integer: `1`"),
            (json!([null]), "Invalid value type at `.foreignKeys[0]`: expected an object, but found null"),
            (json!([{}]), "Missing field `foreignIndexUid` inside `.foreignKeys[0]`"),
            (json!([{"foreignIndexUid": "a"}]), "Missing field `fieldName` inside `.foreignKeys[0]`"),
            (json!([{"foreignIndexUid": "a", "fieldName": "b", "z": 1}]), "Unknown field `z` inside `.foreignKeys[0]`: expected one of `foreignIndexUid`, `fieldName`"),
            (json!([{"fieldNam": "a"}]), "Unknown field `fieldNam` inside `.foreignKeys[0]`: did you mean `fieldName`? expected one of `foreignIndexUid`, `fieldName`"),
            (json!([{"foreignIndexUid": 1, "fieldName": "a"}]), "Invalid value type at `.foreignKeys[0].foreignIndexUid`: expected a string, but found a positive integer: `1`"),
        ];
        for (v, want) in cases {
            let e = parse_foreign_keys(&v).unwrap_err();
            assert_eq!(e.body()["code"], "invalid_settings_foreign_keys");
            assert_eq!(e.body()["message"], want);
        }
        // The sub-route's own wording (`PUT /settings/foreign-keys`).
        let e = as_sub_route_error(
            parse_foreign_keys(&json!([{}])).unwrap_err(),
            "foreign-keys",
        );
        assert_eq!(
            e.body()["message"],
            "Missing field `foreignIndexUid` inside `[0]`"
        );
        let e = as_sub_route_error(parse_foreign_keys(&json!("x")).unwrap_err(), "foreign-keys");
        assert_eq!(
            e.body()["message"],
            "Invalid value type: expected an array, but found a string: `\"x\"`"
        );
    }
}
