//! The naive reference merge: every body parsed into a `serde_json::Value` tree, hits
//! compared by plain code written straight from the rules, the result serialised again.
//!
//! It is the oracle of the property tests (the fast merge must produce the same JSON, up to
//! key order — `serde_json::Map` here sorts keys) and the comparison of the `merge`
//! benchmark. Written for obviousness, not speed; do not use it to serve requests.
//! Errors are plain strings: only *whether* a body is rejected is compared.

use crate::{FacetOrder, Pagination, SearchMergeRequest, ShardInput};
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::BTreeMap;

type R<T> = Result<T, String>;
/// A facet's `(min, max)` as found in the shard bodies.
type MinMax = (Option<Value>, Option<Value>);

fn parse(body: &[u8]) -> R<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("not an object".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn uint(v: &Value, what: &str) -> R<u64> {
    v.as_u64()
        .ok_or_else(|| format!("{what} is not an integer"))
}

fn strip(hit: &mut Map<String, Value>, prefix: &str) {
    hit.retain(|k, _| !k.starts_with(prefix));
}

/// One rule of `_rankingScoreDetails`, plainly.
#[derive(Debug)]
enum Rule {
    Score(f64),
    Sort(bool, Value),
    Geo(bool, Option<f64>),
}

fn rules(details: &Value) -> Option<Vec<Rule>> {
    let obj = details.as_object()?;
    let mut v: Vec<(u64, Rule)> = Vec::new();
    for (name, d) in obj {
        let Some(d) = d.as_object() else { continue };
        let order = d.get("order").and_then(Value::as_u64).unwrap_or(u64::MAX);
        let dir = if name.ends_with(":asc") && name.len() > 4 {
            Some(true)
        } else if name.ends_with(":desc") && name.len() > 5 {
            Some(false)
        } else {
            None
        };
        let rule = match dir {
            Some(asc) if name.starts_with("_geoPoint(") => {
                Rule::Geo(asc, d.get("distance").and_then(Value::as_f64))
            }
            Some(asc) => Rule::Sort(asc, d.get("value").cloned().unwrap_or(Value::Null)),
            None => match d
                .get("score")
                .and_then(Value::as_f64)
                .or_else(|| d.get("similarity").and_then(Value::as_f64))
            {
                Some(s) => Rule::Score(s),
                None => continue,
            },
        };
        v.push((order, rule));
    }
    // serde_json's map iterates keys sorted, not in body order; `order` decides, and for
    // equal orders (never produced by Meilisearch) body order is what the fast merge keeps —
    // the generators never produce equal orders.
    v.sort_by_key(|e| e.0);
    Some(v.into_iter().map(|e| e.1).collect())
}

/// Facet values' alpha order, plainly: numbers (numerically), then text lower-cased, then
/// the raw text.
/// One node's facet distribution order, plainly: numbers (values whose text is exactly the
/// formatted `f64`) before strings; alpha: numbers by text up to 3000 candidates, by value
/// above, strings case-insensitively; count: count descending, ties by value descending.
fn distribution_order(
    values: BTreeMap<String, u64>,
    order: FacetOrder,
    candidates: u64,
) -> Vec<(String, u64)> {
    let as_number = |s: &str| {
        s.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && format!("{x}") == s)
    };
    type Values = Vec<(String, u64)>;
    let (mut nums, mut strs): (Values, Values) = values
        .into_iter()
        .partition(|(v, _)| as_number(v).is_some());
    let num = |s: &String| as_number(s).unwrap();
    let text = |s: &String| (s.to_lowercase(), s.clone());
    match order {
        FacetOrder::Alpha => {
            if candidates > 3000 {
                nums.sort_by(|a, b| num(&a.0).total_cmp(&num(&b.0)).then(a.0.cmp(&b.0)));
            } else {
                nums.sort_by(|a, b| a.0.cmp(&b.0));
            }
            strs.sort_by_key(|a| text(&a.0));
        }
        FacetOrder::Count => {
            nums.sort_by(|a, b| {
                b.1.cmp(&a.1)
                    .then(num(&b.0).total_cmp(&num(&a.0)))
                    .then(b.0.cmp(&a.0))
            });
            strs.sort_by(|a, b| b.1.cmp(&a.1).then(text(&b.0).cmp(&text(&a.0))));
        }
    }
    nums.extend(strs);
    nums
}

fn alpha(a: &str, b: &str) -> Ordering {
    let key = |s: &str| match s.parse::<f64>() {
        Ok(x) if x.is_finite() => (0, x, String::new(), s.to_string()),
        _ => {
            let lower: String = s.chars().flat_map(char::to_lowercase).collect();
            (1, 0.0, lower, s.to_string())
        }
    };
    let (x, y) = (key(a), key(b));
    x.0.cmp(&y.0)
        .then(x.1.total_cmp(&y.1))
        .then(x.2.cmp(&y.2))
        .then(x.3.cmp(&y.3))
}

fn score(hit: &Value) -> Option<f64> {
    hit.get("_rankingScore").and_then(Value::as_f64)
}

fn cmp_opt(a: Option<f64>, b: Option<f64>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => Ordering::Equal,
    }
}

fn cmp_value(asc: bool, a: &Value, b: &Value) -> Ordering {
    let o = match (a, b) {
        (Value::Null, Value::Null) => return Ordering::Equal,
        (Value::Null, _) => return Ordering::Less,
        (_, Value::Null) => return Ordering::Greater,
        (Value::Number(_), Value::String(_)) => return Ordering::Greater,
        (Value::String(_), Value::Number(_)) => return Ordering::Less,
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => return Ordering::Equal,
    };
    if asc {
        o.reverse()
    } else {
        o
    }
}

/// `Greater` = `a` first.
fn cmp_hit(a: &Value, b: &Value, sort_mode: bool) -> Ordering {
    let by_score = || cmp_opt(score(a), score(b));
    if !sort_mode {
        return by_score();
    }
    let (Some(ra), Some(rb)) = (
        a.get("_rankingScoreDetails").and_then(rules),
        b.get("_rankingScoreDetails").and_then(rules),
    ) else {
        return by_score();
    };
    if ra.len() != rb.len() {
        return by_score();
    }
    for (x, y) in ra.iter().zip(&rb) {
        let o = match (x, y) {
            (Rule::Score(x), Rule::Score(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
            (Rule::Sort(ax, x), Rule::Sort(ay, y)) if ax == ay => cmp_value(*ax, x, y),
            (Rule::Geo(ax, x), Rule::Geo(ay, y)) if ax == ay => {
                let o = cmp_opt(*x, *y);
                // Smaller distance first for asc; a missing distance is last either way.
                match (x, y) {
                    (Some(_), Some(_)) if *ax => o.reverse(),
                    _ => o,
                }
            }
            _ => return by_score(),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// The reference [`crate::merge_search`]: returns the merged body.
pub fn merge_search(req: &SearchMergeRequest, shards: &[ShardInput]) -> R<Vec<u8>> {
    let mut bodies = Vec::new();
    for s in shards {
        if let ShardInput::Ok(b) = s {
            bodies.push(parse(b)?);
        }
    }
    let mut lists: Vec<Vec<Value>> = Vec::new();
    let (mut total, mut ms, mut semantic) = (0u64, 0u64, None::<u64>);
    let mut dist: Option<BTreeMap<String, BTreeMap<String, u64>>> = None;
    let mut stats: Option<BTreeMap<String, MinMax>> = None;
    for body in &bodies {
        let hits = body.get("hits").ok_or("no hits")?;
        let hits = hits.as_array().ok_or("hits not an array")?;
        if hits.iter().any(|h| !h.is_object()) {
            return Err("a hit is not an object".into());
        }
        lists.push(hits.clone());
        for k in ["estimatedTotalHits", "totalHits"] {
            if let Some(v) = body.get(k) {
                total = total.saturating_add(uint(v, k)?);
            }
        }
        if let Some(v) = body.get("processingTimeMs") {
            ms = ms.max(uint(v, "processingTimeMs")?);
        }
        if let Some(v) = body.get("semanticHitCount") {
            semantic = Some(
                semantic
                    .unwrap_or(0)
                    .saturating_add(uint(v, "semanticHitCount")?),
            );
        }
        if let Some(v) = body.get("facetDistribution") {
            let d = dist.get_or_insert_with(BTreeMap::new);
            for (facet, values) in v.as_object().ok_or("facetDistribution")? {
                let values = values.as_object().ok_or("facetDistribution facet")?;
                if facet.starts_with(req.reserved_prefix) {
                    continue;
                }
                let e = d.entry(facet.clone()).or_default();
                for (value, count) in values {
                    let c = e.entry(value.clone()).or_insert(0);
                    *c = c.saturating_add(uint(count, "facet count")?);
                }
            }
        }
        if let Some(v) = body.get("facetStats") {
            let st = stats.get_or_insert_with(BTreeMap::new);
            for (facet, mm) in v.as_object().ok_or("facetStats")? {
                let mm = mm.as_object().ok_or("facetStats facet")?;
                if facet.starts_with(req.reserved_prefix) {
                    continue;
                }
                let e = st.entry(facet.clone()).or_default();
                for (k, x) in mm {
                    let xf = x.as_f64().ok_or("facetStats value")?;
                    if k == "min" && e.0.as_ref().is_none_or(|m| xf < m.as_f64().unwrap()) {
                        e.0 = Some(x.clone());
                    }
                    if k == "max" && e.1.as_ref().is_none_or(|m| xf > m.as_f64().unwrap()) {
                        e.1 = Some(x.clone());
                    }
                }
            }
        }
    }
    // Meilisearch counts every match; `maxTotalHits` caps only the window.

    // k-way merge, plainly: repeatedly take the best head, the lowest shard on ties.
    let (start, len) = req.pagination.window(req.max_total_hits);
    let mut heads = vec![0usize; lists.len()];
    let mut merged = Vec::new();
    let mut seen: Vec<DocKey> = Vec::new();
    while merged.len() < start + len {
        let mut best: Option<usize> = None;
        for k in 0..lists.len() {
            if heads[k] >= lists[k].len() {
                continue;
            }
            if best.is_none_or(|b| {
                cmp_hit(&lists[k][heads[k]], &lists[b][heads[b]], req.sort_requested)
                    == Ordering::Greater
            }) {
                best = Some(k);
            }
        }
        let Some(b) = best else { break };
        let hit = &lists[b][heads[b]];
        heads[b] += 1;
        if let Some(field) = req.distinct {
            let values = distinct_values(hit, field);
            if values.iter().any(|v| seen.contains(v)) {
                continue;
            }
            seen.extend(values);
        }
        merged.push(hit.clone());
    }
    let hits: Vec<Value> = merged
        .into_iter()
        .skip(start)
        .map(|mut h| {
            let m = h.as_object_mut().unwrap();
            strip(m, req.reserved_prefix);
            if !req.want_ranking_score {
                m.remove("_rankingScore");
            }
            if !req.want_ranking_score_details {
                m.remove("_rankingScoreDetails");
            }
            if let Some(Value::Object(f)) = m.get_mut("_formatted") {
                strip(f, req.reserved_prefix);
                for k in req.drop {
                    f.remove(*k);
                }
            }
            for k in req.drop {
                m.remove(*k);
            }
            h
        })
        .collect();

    let mut out = Map::new();
    out.insert("hits".into(), Value::Array(hits));
    let query = match req.query {
        Some(q) => Value::String(q.into()),
        None => bodies
            .first()
            .and_then(|b| b.get("query").cloned())
            .unwrap_or(Value::String(String::new())),
    };
    out.insert("query".into(), query);
    out.insert("processingTimeMs".into(), ms.into());
    match req.pagination {
        Pagination::OffsetLimit { offset, limit } => {
            out.insert("limit".into(), limit.into());
            out.insert("offset".into(), offset.into());
            out.insert("estimatedTotalHits".into(), total.into());
        }
        Pagination::Page {
            page,
            hits_per_page,
        } => {
            let pages = if hits_per_page == 0 {
                0
            } else {
                total.div_ceil(hits_per_page as u64)
            };
            out.insert("hitsPerPage".into(), hits_per_page.into());
            out.insert("page".into(), page.into());
            out.insert("totalPages".into(), pages.into());
            out.insert("totalHits".into(), total.into());
        }
    }
    if let Some(d) = dist {
        let mut o = Map::new();
        for (facet, values) in d {
            let v = distribution_order(values, req.facet_order(&facet), total);
            let v: Vec<(String, u64)> = v.into_iter().take(req.max_values_per_facet).collect();
            let m: Map<String, Value> = v.into_iter().map(|(k, c)| (k, c.into())).collect();
            o.insert(facet, Value::Object(m));
        }
        out.insert("facetDistribution".into(), Value::Object(o));
    }
    if let Some(st) = stats {
        let mut o = Map::new();
        for (facet, (min, max)) in st {
            let mut m = Map::new();
            if let Some(x) = min {
                m.insert("min".into(), x);
            }
            if let Some(x) = max {
                m.insert("max".into(), x);
            }
            o.insert(facet, Value::Object(m));
        }
        out.insert("facetStats".into(), Value::Object(o));
    }
    if let Some(n) = semantic {
        // At most the hits returned.
        let returned = out["hits"].as_array().map_or(0, Vec::len) as u64;
        out.insert("semanticHitCount".into(), n.min(returned).into());
    }
    const KNOWN: &[&str] = &[
        "hits",
        "query",
        "processingTimeMs",
        "limit",
        "offset",
        "estimatedTotalHits",
        "hitsPerPage",
        "page",
        "totalPages",
        "totalHits",
        "facetDistribution",
        "facetStats",
        "semanticHitCount",
    ];
    if let Some(first) = bodies.first() {
        for (k, v) in first {
            if !KNOWN.contains(&k.as_str()) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    serde_json::to_vec(&Value::Object(out)).map_err(|e| e.to_string())
}

/// The reference [`crate::merge_facet_search`].
pub fn merge_facet_search(
    shards: &[ShardInput],
    max_values: usize,
    order: FacetOrder,
) -> R<Vec<u8>> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut ms = 0;
    let mut first: Option<Map<String, Value>> = None;
    for s in shards {
        let ShardInput::Ok(b) = s else { continue };
        let body = parse(b)?;
        for h in body["facetHits"].as_array().ok_or("facetHits")? {
            let v = h["value"].as_str().ok_or("value")?;
            let c = counts.entry(v.to_string()).or_insert(0);
            *c = c.saturating_add(uint(&h["count"], "count")?);
        }
        if let Some(v) = body.get("processingTimeMs") {
            ms = ms.max(uint(v, "processingTimeMs")?);
        }
        first.get_or_insert(body);
    }
    let mut v: Vec<(String, u64)> = counts.into_iter().collect();
    match order {
        FacetOrder::Alpha => v.sort_by(|a, b| alpha(&a.0, &b.0)),
        FacetOrder::Count => v.sort_by(|a, b| b.1.cmp(&a.1).then(alpha(&a.0, &b.0))),
    }
    v.truncate(max_values);
    let mut out = first.unwrap_or_default();
    out.insert(
        "facetHits".into(),
        v.into_iter()
            .map(|(value, count)| serde_json::json!({"value": value, "count": count}))
            .collect(),
    );
    out.entry("facetQuery").or_insert(Value::Null);
    out.insert("processingTimeMs".into(), ms.into());
    serde_json::to_vec(&Value::Object(out)).map_err(|e| e.to_string())
}

/// The reference [`crate::merge_document_lists`]: concatenate, then slice.
pub fn merge_document_lists(
    shards: &[ShardInput],
    offset: usize,
    limit: usize,
    reserved_prefix: &str,
) -> R<Vec<u8>> {
    let mut all = Vec::new();
    let mut total = 0u64;
    for s in shards {
        let ShardInput::Ok(b) = s else { continue };
        let body = parse(b)?;
        let n = uint(body.get("total").ok_or("total")?, "total")?;
        let results = body["results"].as_array().ok_or("results")?;
        // Stand-ins for documents the node promised but did not return keep positions right.
        for i in 0..n as usize {
            all.push(results.get(i).cloned());
        }
        total += n;
    }
    let results: Vec<Value> = all
        .into_iter()
        .skip(offset)
        .take(limit)
        .flatten()
        .map(|mut d| {
            if let Some(m) = d.as_object_mut() {
                strip(m, reserved_prefix);
            }
            d
        })
        .collect();
    let out =
        serde_json::json!({"results": results, "offset": offset, "limit": limit, "total": total});
    serde_json::to_vec(&out).map_err(|e| e.to_string())
}

/// A sort value as milli orders document listings, written plainly: numbers, then strings
/// (trimmed, lowercased), then missing (`null`, objects, no field). Top-level fields only.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum DocKey {
    Num(f64),
    Str(String),
    Missing,
}

fn doc_key(doc: &Value, field: &str) -> DocKey {
    doc.get(field).map_or(DocKey::Missing, value_key)
}

fn value_key(v: &Value) -> DocKey {
    match v {
        Value::Number(n) => DocKey::Num(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => DocKey::Str(s.trim().to_lowercase()),
        Value::Bool(b) => DocKey::Str(b.to_string()),
        _ => DocKey::Missing,
    }
}

/// A hit's values of the top-level `field` for `distinct`: the value, or each element of an
/// array; `null` and objects have none.
fn distinct_values(hit: &Value, field: &str) -> Vec<DocKey> {
    // `-0.0 == 0.0`, so `DocKey`'s equality already treats them as one value.
    let one = |v: &Value| match value_key(v) {
        DocKey::Missing => None,
        k => Some(k),
    };
    match hit.get(field) {
        Some(Value::Array(a)) => a.iter().filter_map(one).collect(),
        Some(v) => one(v).into_iter().collect(),
        None => Vec::new(),
    }
}

/// Document order under `sort` (`(field, ascending)`): `Less` means `a` comes first.
pub fn cmp_sorted_docs(a: &Value, b: &Value, sort: &[(String, bool)]) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    for (field, asc) in sort {
        let (x, y) = (doc_key(a, field), doc_key(b, field));
        let o = match (&x, &y) {
            (DocKey::Num(p), DocKey::Num(q)) => p.partial_cmp(q).unwrap_or(Equal),
            (DocKey::Str(p), DocKey::Str(q)) => p.cmp(q),
            _ => {
                let rank = |k: &DocKey| match k {
                    DocKey::Num(_) => 0,
                    DocKey::Str(_) => 1,
                    DocKey::Missing => 2,
                };
                // Kinds are ordered the same way in both directions.
                match rank(&x).cmp(&rank(&y)) {
                    Equal => Equal,
                    o => return o,
                }
            }
        };
        let o = if *asc { o } else { o.reverse() };
        if o != Equal {
            return o;
        }
    }
    Equal
}

/// Sorted document listings: every returned document of every node, stably sorted by
/// [`cmp_sorted_docs`] (so equal documents keep node order), the window taken, reserved and
/// `drop` fields removed; `total` summed.
pub fn merge_sorted_document_lists(
    shards: &[ShardInput],
    offset: usize,
    limit: usize,
    sort: &[(String, bool)],
    drop: &[&str],
    reserved_prefix: &str,
) -> R<Vec<u8>> {
    let mut all = Vec::new();
    let mut total = 0u64;
    for s in shards {
        let ShardInput::Ok(b) = s else { continue };
        let body = parse(b)?;
        total += uint(body.get("total").ok_or("total")?, "total")?;
        all.extend(body["results"].as_array().ok_or("results")?.iter().cloned());
    }
    all.sort_by(|a, b| cmp_sorted_docs(a, b, sort));
    let results: Vec<Value> = all
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|mut d| {
            if let Some(m) = d.as_object_mut() {
                strip(m, reserved_prefix);
                for k in drop {
                    m.remove(*k);
                }
            }
            d
        })
        .collect();
    let out =
        serde_json::json!({"results": results, "offset": offset, "limit": limit, "total": total});
    serde_json::to_vec(&out).map_err(|e| e.to_string())
}

/// What a node returns under `distinct`: the first hit of each value of the top-level
/// `field` (in the given order), every hit without a value.
pub fn distinct_within(hits: &[Value], field: &str) -> Vec<Value> {
    let mut seen: Vec<DocKey> = Vec::new();
    let mut out = Vec::new();
    for h in hits {
        let values = distinct_values(h, field);
        if values.iter().any(|v| seen.contains(v)) {
            continue;
        }
        seen.extend(values);
        out.push(h.clone());
    }
    out
}
