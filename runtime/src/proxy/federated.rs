//! Federated multi-search (`POST /multi-search` with `federation`): every query's hits merged
//! into one list by weighted ranking score, in Meilisearch's federated output shape.
//!
//! Each query is first scatter-gathered and merged across shards like a plain search (first
//! `offset + limit` hits, scores kept); then [`combine`] (pure) does a k-way merge across the
//! queries that keeps each query's own order, comparing heads by
//! `_rankingScore × federationOptions.weight` (ties: lower query position first, like
//! Meilisearch), lists a document several queries on one index match once (its best weighted
//! score, by the index's primary key), applies the federation's window, and adds to every hit
//! `_federation: {indexUid, queriesPosition, weightedRankingScore}`. The total of an index
//! several queries search counts each document once too: every node counts the union on its
//! shards ([`Proxy::union_totals`], one extra federated request per node, as for facets).
//!
//! Output: `{hits, processingTimeMs, limit, offset, estimatedTotalHits}` (or `hitsPerPage,
//! page, totalPages, totalHits` when the federation paginates by page); totals summed.
//! KNOWN LIMITS (documented): queries that sort are compared by weighted score only, not rule
//! by rule.
//!
//! Facets (`federation.facetsByIndex`, `mergeFacets`; [`Proxy::federated_facets`]): one node
//! counts an index's facets over the *union* of the documents its queries match, which the
//! per-query merges cannot give (a document two queries match would count twice). So every
//! node holding the index is asked one federated search of its own with all the queries on
//! that index, each restricted to the node's shards, `limit: 0` and the index's facets: the
//! node computes the union on its shards, shards are disjoint, so the counts add up. The sums
//! go through the ordinary search merge (the index's `maxValuesPerFacet` and
//! `sortFacetValuesBy`, as for one search's `facetDistribution`); `mergeFacets` then merges
//! the indexes as Meilisearch does (counts summed, stats widened, each facet in the order of
//! the indexes, cut to `mergeFacets.maxValuesPerFacet`).

use crate::http::body::Body;
use crate::http::types::{Method, Response};
use crate::proxy::json::{OrderedObject, RESERVED_PREFIX};
use crate::proxy::pins::PIN_MARK;
use crate::proxy::query::SearchQuery;
use crate::proxy::upstream::{json_request, Upstreams};
use crate::proxy::{IndexRouting, Proxy};
use miroir_core::search_rules::place_pins;
use miroir_core::snapshot::IndexMeta;
use miroir_merge::{merge_search, Bump, FacetOrder, Pagination, SearchMergeRequest, ShardInput};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::rc::Rc;

mod distinct;

/// The federation's own options.
#[derive(Debug, Clone, PartialEq)]
pub struct Federation {
    pub pagination: Pagination,
    /// `facetsByIndex`: index → facet patterns (`None` for a `null` list: no facets).
    pub facets_by_index: Vec<(String, Option<Value>)>,
    /// `mergeFacets` (not `null`): its `maxValuesPerFacet`, if any.
    pub merge_facets: Option<Option<usize>>,
    /// `showPerformanceDetails`: the answer gets Miroir's own timings ([`performance_member`]).
    pub show_performance_details: bool,
    /// `distinct`: the attribute the merged hits are deduplicated by ([`distinct`]).
    pub distinct: Option<String>,
}

/// Reads `federation` (`offset`/`limit` or `page`/`hitsPerPage`, `facetsByIndex`,
/// `mergeFacets`). `None` when it is not understood: then the request is delegated so a node
/// answers the exact error.
pub fn parse_federation(v: &Value) -> Option<Federation> {
    let Value::Object(m) = v else {
        return None;
    };
    let get = |k: &str| -> Option<Option<usize>> {
        match m.get(k) {
            None | Some(Value::Null) => Some(None),
            Some(x) => x.as_u64().map(|n| Some(n as usize)),
        }
    };
    let mut facets_by_index = Vec::new();
    let mut merge_facets = None;
    let mut show_performance_details = false;
    let mut distinct = None;
    for (k, v) in m {
        match (k.as_str(), v) {
            ("offset" | "limit" | "page" | "hitsPerPage", _) => {}
            ("showPerformanceDetails", Value::Bool(b)) => show_performance_details = *b,
            ("showPerformanceDetails" | "distinct", Value::Null) => {}
            ("distinct", Value::String(d)) => distinct = Some(d.clone()),
            ("facetsByIndex" | "mergeFacets", Value::Null) => {}
            ("facetsByIndex", Value::Object(by_index)) => {
                for (index, facets) in by_index {
                    let facets = match facets {
                        Value::Null => None,
                        Value::Array(a) if a.iter().all(Value::is_string) => Some(facets.clone()),
                        _ => return None,
                    };
                    facets_by_index.push((index.clone(), facets));
                }
            }
            ("mergeFacets", Value::Object(o)) => {
                let max = match o.get("maxValuesPerFacet") {
                    None | Some(Value::Null) => None,
                    Some(x) => Some(x.as_u64()? as usize),
                };
                if o.keys().any(|k| k != "maxValuesPerFacet") {
                    return None;
                }
                merge_facets = Some(max);
            }
            _ => return None,
        }
    }
    let (page, hpp) = (get("page")?, get("hitsPerPage")?);
    let pagination = if page.is_some() || hpp.is_some() {
        Pagination::Page {
            page: page.unwrap_or(1),
            hits_per_page: hpp.unwrap_or(20),
        }
    } else {
        Pagination::OffsetLimit {
            offset: get("offset")?.unwrap_or(0),
            limit: get("limit")?.unwrap_or(20),
        }
    };
    Some(Federation {
        pagination,
        facets_by_index,
        merge_facets,
        show_performance_details,
        distinct,
    })
}

/// Makes a query's hits carry `attribute` (the federation deduplicates on it) when its
/// `attributesToRetrieve` leaves it out; returns the member to drop from its hits then.
/// Meilisearch reads the attribute from the document whatever the query retrieves.
pub fn retrieve_for_distinct(
    query: &mut serde_json::Map<String, Value>,
    attribute: &str,
) -> Option<String> {
    let Some(Value::Array(list)) = query.get_mut("attributesToRetrieve") else {
        return None;
    };
    let top = attribute.split('.').next().unwrap_or(attribute);
    let covered = |a: &str| a == "*" || a == attribute || attribute.starts_with(&format!("{a}."));
    if list.iter().filter_map(Value::as_str).any(covered) {
        return None;
    }
    // The client asked for another part of the same object: keep it whole rather than
    // remove what was asked for.
    let shares_top = list
        .iter()
        .filter_map(Value::as_str)
        .any(|a| a.split('.').next() == Some(top));
    list.push(Value::String(attribute.to_owned()));
    (!shares_top).then(|| top.to_owned())
}

/// `,"performanceDetails":{…}` for `federation.showPerformanceDetails`: Miroir's own steps
/// (asking the nodes, then merging their answers), written as Meilisearch writes a step's
/// duration (`8.90ms`). The nodes' own steps stay theirs: a federated query runs as several
/// node searches whose timings do not add up to one.
pub fn performance_member(nodes: std::time::Duration, merge: std::time::Duration) -> Vec<u8> {
    let details = serde_json::json!({
        "miroir > search the nodes": format!("{nodes:.2?}"),
        "miroir > merge the answers": format!("{merge:.2?}"),
    });
    format!(",\"performanceDetails\":{details}").into_bytes()
}

/// A query's weight (`federationOptions.weight`, default 1.0); `None` when malformed.
pub fn weight(query: &Map<String, Value>) -> Option<f64> {
    match query.get("federationOptions") {
        None | Some(Value::Null) => Some(1.0),
        Some(Value::Object(o)) => match o.get("weight") {
            None | Some(Value::Null) => Some(1.0),
            Some(w) => w.as_f64().filter(|w| *w >= 0.0),
        },
        Some(_) => None,
    }
}

/// One query's merged search response, ready to be federated.
pub struct QueryResult<'a> {
    pub index_uid: &'a str,
    /// The index's primary key: a document several queries on the index match is listed
    /// once (its best weighted score), as Meilisearch does.
    pub primary_key: Option<&'a str>,
    /// How many documents the queries on this index match together, each counted once, when
    /// known ([`Proxy::union_total`]); otherwise the queries' totals are added up.
    pub index_total: Option<u64>,
    pub weight: f64,
    /// The client asked this query for `showRankingScore`.
    pub want_score: bool,
    /// The client asked this query for `retrieveVectors`.
    pub retrieve_vectors: bool,
    /// The query's merged body (hits carry `_rankingScore`).
    pub body: &'a [u8],
    /// A member the hits carry only for `federation.distinct` (the client's
    /// `attributesToRetrieve` left it out): removed from the answer.
    pub drop_member: Option<&'a str>,
}

struct Parsed<'a> {
    /// `(hit, score, its JSON)`.
    hits: Vec<(OrderedObject<'a>, f64, &'a str)>,
    /// Pinned hits (dynamic search rules, decision 042): `(position, hit, score)`.
    pins: Vec<(u32, OrderedObject<'a>, f64)>,
    total: u64,
    time: u64,
    /// The query's embedding (`queryVector`, raw JSON) when the search used one.
    query_vector: Option<&'a RawValue>,
}

fn parse_result(body: &[u8]) -> Option<Parsed<'_>> {
    let top = OrderedObject::parse(body)?;
    let raw_hits: Vec<&RawValue> = serde_json::from_str(top.get("hits")?.get()).ok()?;
    let mut hits = Vec::with_capacity(raw_hits.len());
    let mut pins = Vec::new();
    for h in raw_hits {
        let obj = OrderedObject::parse(h.get().as_bytes())?;
        let score = obj
            .get("_rankingScore")
            .and_then(|s| s.get().parse::<f64>().ok())
            .unwrap_or(0.0);
        match obj.get(PIN_MARK).and_then(|p| p.get().parse::<u32>().ok()) {
            Some(position) => pins.push((position, obj, score)),
            None => hits.push((obj, score, h.get())),
        }
    }
    let num = |k: &str| top.get(k).and_then(|v| v.get().parse::<u64>().ok());
    let total = num("estimatedTotalHits")
        .or_else(|| num("totalHits"))
        .unwrap_or(0);
    Some(Parsed {
        hits,
        pins,
        total,
        time: num("processingTimeMs").unwrap_or(0),
        query_vector: top.get("queryVector"),
    })
}

/// Merges the queries' results (see module docs). `None` when a body is unreadable.
pub fn combine(fed: &Federation, results: &[QueryResult], out: &mut Vec<u8>) -> Option<()> {
    let parsed: Vec<Parsed> = results
        .iter()
        .map(|r| parse_result(r.body))
        .collect::<Option<_>>()?;
    // Node numbers are untrusted input: a sum that would overflow saturates. An index whose
    // union is known counts once.
    let mut counted: Vec<&str> = Vec::new();
    let mut total = 0u64;
    for (r, p) in results.iter().zip(&parsed) {
        match r.index_total {
            Some(t) if !counted.contains(&r.index_uid) => {
                counted.push(r.index_uid);
                total = total.saturating_add(t);
            }
            Some(_) => {}
            None => total = total.saturating_add(p.total),
        }
    }
    let time = parsed.iter().map(|p| p.time).max().unwrap_or(0);
    let (start, len) = fed.pagination.window(usize::MAX);
    // k-way merge preserving each query's order.
    let mut heads = vec![0usize; parsed.len()];
    let mut picked: Vec<(usize, usize, f64)> = Vec::new();
    let mut seen: std::collections::HashSet<(&str, &str)> = std::collections::HashSet::new();
    let mut distinct_seen = distinct::Seen::default();
    let mut rejected = 0u64;
    let window = start.saturating_add(len);
    // With `distinct`, every fetched hit is looked at, so that the total drops by each one
    // left out, as Meilisearch counts them.
    while picked.len() < window || fed.distinct.is_some() {
        let mut best: Option<(usize, f64)> = None;
        for (q, p) in parsed.iter().enumerate() {
            if let Some((_, score, _)) = p.hits.get(heads[q]) {
                let w = score * results[q].weight;
                if best.is_none_or(|(_, b)| w > b) {
                    best = Some((q, w));
                }
            }
        }
        let Some((q, w)) = best else { break };
        let id = results[q]
            .primary_key
            .and_then(|pk| parsed[q].hits[heads[q]].0.get(pk))
            .map(|v| v.get());
        let first = id.is_none_or(|id| seen.insert((results[q].index_uid, id)));
        let kept = first
            && fed.distinct.as_deref().is_none_or(|d| {
                let hit = parsed[q].hits[heads[q]].2;
                match distinct_seen.admit(results[q].index_uid, hit, d) {
                    distinct::Admission::Kept => true,
                    distinct::Admission::DuplicateInIndex => false,
                    distinct::Admission::Rejected => {
                        rejected += 1;
                        false
                    }
                }
            });
        if kept && picked.len() < window {
            picked.push((q, heads[q], w));
        }
        heads[q] += 1;
    }
    let total = total.saturating_sub(rejected);
    // Pinned hits are placed over the organic prefix as Meilisearch does: every query's pins
    // ordered by position, then by index uid (it groups queries by index in a sorted map),
    // then query order (a stable sort), then milli's placement.
    let mut pins: Vec<((usize, usize), u32)> = Vec::new();
    for (q, p) in parsed.iter().enumerate() {
        pins.extend((0..p.pins.len()).map(|i| ((q, i), p.pins[i].0)));
    }
    pins.sort_by_key(|&((q, _), pos)| (pos, results[q].index_uid));
    let organic: Vec<(usize, usize, f64, bool)> = picked
        .into_iter()
        .map(|(q, i, w)| (q, i, w, false))
        .collect();
    let page = place_pins(pins, start, len, organic, |(q, i), _| {
        (q, i, parsed[q].pins[i].2 * results[q].weight, true)
    });
    out.extend_from_slice(b"{\"hits\":[");
    for (n, &(q, i, w, pinned)) in page.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        let want = results[q].want_score;
        let mut hit = Vec::new();
        let obj = if pinned {
            &parsed[q].pins[i].1
        } else {
            &parsed[q].hits[i].0
        };
        let extra = results[q].drop_member;
        obj.write_without(&mut hit, |k| {
            (k == "_rankingScore" && !want) || k == PIN_MARK || Some(k) == extra
        });
        hit.pop(); // the closing `}`: `_federation` goes last
        out.extend_from_slice(&hit);
        if hit.len() > 1 {
            out.push(b',');
        }
        out.extend_from_slice(b"\"_federation\":{\"indexUid\":");
        serde_json::to_writer(&mut *out, results[q].index_uid).ok()?;
        out.extend_from_slice(
            format!(",\"queriesPosition\":{q},\"weightedRankingScore\":").as_bytes(),
        );
        serde_json::to_writer(&mut *out, &w).ok()?;
        out.extend_from_slice(b"}}");
    }
    out.push(b']');
    write_query_vectors(results, &parsed, out);
    out.extend_from_slice(format!(",\"processingTimeMs\":{time},").as_bytes());
    match fed.pagination {
        Pagination::OffsetLimit { offset, limit } => out.extend_from_slice(
            format!("\"limit\":{limit},\"offset\":{offset},\"estimatedTotalHits\":{total}}}")
                .as_bytes(),
        ),
        Pagination::Page {
            page,
            hits_per_page,
        } => {
            let pages = if hits_per_page == 0 {
                0
            } else {
                (total as usize).div_ceil(hits_per_page)
            };
            out.extend_from_slice(
                format!("\"hitsPerPage\":{hits_per_page},\"page\":{page},\"totalPages\":{pages},\"totalHits\":{total}}}")
                    .as_bytes(),
            )
        }
    }
    Some(())
}

/// `,"queryVectors":{…}` as Meilisearch 1.50 answers it once any query asks for vectors: each
/// such query's embedding under its position, when its search used one (else the map is
/// empty).
fn write_query_vectors(results: &[QueryResult], parsed: &[Parsed], out: &mut Vec<u8>) {
    if !results.iter().any(|r| r.retrieve_vectors) {
        return;
    }
    out.extend_from_slice(b",\"queryVectors\":{");
    let mut first = true;
    for (q, (r, p)) in results.iter().zip(parsed).enumerate() {
        let Some(v) = p.query_vector.filter(|_| r.retrieve_vectors) else {
            continue;
        };
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(format!("\"{q}\":").as_bytes());
        out.extend_from_slice(v.get().as_bytes());
    }
    out.push(b'}');
}

/// One index's facets as one node answers them: `distribution` (facet → ordered values) and
/// `stats` (facet → `{min, max}`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexFacets {
    pub distribution: Map<String, Value>,
    pub stats: Map<String, Value>,
}

/// Why the federated facets could not be computed here.
pub enum FacetsFailure {
    /// A node refused its part (an invalid facet, a facet order the indexes disagree on):
    /// delegate the request so that a node answers the exact error.
    Delegate,
    /// The answer to send (shards unavailable under the `error` policy).
    Respond(Response),
}

/// The body one node gets for the facets of `index`: a federated search over its shards of
/// every query on that index, no hits.
fn node_facets_body(
    index: &str,
    facets: &Value,
    queries: &[&SearchQuery],
    shards: Option<&[miroir_core::ShardId]>,
) -> Vec<u8> {
    let queries: Vec<Value> = queries
        .iter()
        .map(|q| {
            let mut b = q.body.clone();
            for k in ["offset", "limit", "page", "hitsPerPage", "facets"] {
                b.remove(k);
            }
            if let Some(shards) = shards {
                let f = crate::proxy::filter::restrict_to_shards(b.get("filter"), shards);
                b.insert("filter".into(), f);
            }
            b.insert("indexUid".into(), Value::String(index.to_string()));
            Value::Object(b)
        })
        .collect();
    let mut by_index = Map::new();
    by_index.insert(index.to_string(), facets.clone());
    let body = serde_json::json!({
        "federation": {"limit": 0, "offset": 0, "facetsByIndex": by_index},
        "queries": queries,
    });
    serde_json::to_vec(&body).expect("a JSON value serialises")
}

/// A node's answer for one index's facets, rewritten as a search answer so that the ordinary
/// search merge sums, orders and cuts it (`None` when unreadable).
fn as_search_body(index: &str, node_answer: &[u8]) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_slice(node_answer).ok()?;
    let f = v.get("facetsByIndex")?.get(index)?;
    let total = v
        .get("estimatedTotalHits")
        .or_else(|| v.get("totalHits"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let body = serde_json::json!({
        "hits": [],
        "query": "",
        "processingTimeMs": 0,
        "limit": 0,
        "offset": 0,
        "estimatedTotalHits": total,
        "facetDistribution": f.get("distribution").cloned().unwrap_or_else(|| Value::Object(Map::new())),
        "facetStats": f.get("stats").cloned().unwrap_or_else(|| Value::Object(Map::new())),
    });
    serde_json::to_vec(&body).ok()
}

/// Sums the nodes' facets of one index as one node would have counted them (the index's
/// `maxValuesPerFacet` and `sortFacetValuesBy`); `None` when a body is unreadable.
pub fn sum_index_facets(
    meta: &IndexMeta,
    index: &str,
    node_answers: &[Body],
) -> Option<IndexFacets> {
    let bodies: Vec<Vec<u8>> = node_answers
        .iter()
        .map(|b| as_search_body(index, b))
        .collect::<Option<_>>()?;
    let inputs: Vec<ShardInput> = bodies.iter().map(|b| ShardInput::Ok(b)).collect();
    let req = SearchMergeRequest {
        pagination: Pagination::OffsetLimit {
            offset: 0,
            limit: 0,
        },
        sort_requested: false,
        want_ranking_score: false,
        want_ranking_score_details: false,
        max_values_per_facet: meta.max_values_per_facet as usize,
        sort_facet_values_by: &meta.sort_facet_values_by,
        max_total_hits: meta.max_total_hits as usize,
        reserved_prefix: RESERVED_PREFIX,
        query: Some(""),
        distinct: None,
        drop: &[],
    };
    let arena = Bump::new();
    let mut out = Vec::new();
    merge_search(&req, &inputs, &arena, &mut out).ok()?;
    let v: Value = serde_json::from_slice(&out).ok()?;
    let obj = |k: &str| match v.get(k) {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    Some(IndexFacets {
        distribution: obj("facetDistribution"),
        stats: obj("facetStats"),
    })
}

/// A facet's order in an index (`sortFacetValuesBy`: the facet's own, else `*`, else alpha).
fn facet_order(meta: &IndexMeta, facet: &str) -> FacetOrder {
    meta.sort_facet_values_by
        .get(facet)
        .or_else(|| meta.sort_facet_values_by.get("*"))
        .copied()
        .unwrap_or(FacetOrder::Alpha)
}

/// `mergeFacets`: Meilisearch's merge of the indexes' facets (`FederatedFacets::merge`):
/// counts of a value summed over the indexes, stats widened, each facet's values in its order
/// (text order for alpha, most frequent first for count), cut to `max` when given. `None`
/// when two indexes order a facet differently (Meilisearch refuses that request).
pub fn merge_index_facets(
    per_index: &[(&IndexMeta, IndexFacets)],
    max: Option<usize>,
) -> Option<IndexFacets> {
    let mut order: BTreeMap<String, FacetOrder> = BTreeMap::new();
    let mut dist: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    let mut stats: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (meta, f) in per_index {
        for (facet, values) in &f.distribution {
            let o = facet_order(meta, facet);
            if *order.entry(facet.clone()).or_insert(o) != o {
                return None;
            }
            let merged = dist.entry(facet.clone()).or_default();
            for (value, count) in values.as_object().into_iter().flatten() {
                let count = count.as_u64().unwrap_or(0);
                match merged.iter_mut().find(|(v, _)| v == value) {
                    Some((_, c)) => *c = c.saturating_add(count),
                    None => merged.push((value.clone(), count)),
                }
            }
        }
        for (facet, s) in &f.stats {
            let (Some(min), Some(max)) = (
                s.get("min").and_then(Value::as_f64),
                s.get("max").and_then(Value::as_f64),
            ) else {
                continue;
            };
            let e = stats.entry(facet.clone()).or_insert((min, max));
            *e = (e.0.min(min), e.1.max(max));
        }
    }
    let mut out = IndexFacets::default();
    for (facet, mut values) in dist {
        match order.get(&facet).copied().unwrap_or(FacetOrder::Alpha) {
            FacetOrder::Alpha => values.sort_by(|a, b| a.0.cmp(&b.0)),
            FacetOrder::Count => values.sort_by_key(|v| std::cmp::Reverse(v.1)),
        }
        if let Some(max) = max {
            values.truncate(max);
        }
        let values: Map<String, Value> = values.into_iter().map(|(v, c)| (v, c.into())).collect();
        out.distribution.insert(facet, Value::Object(values));
    }
    for (facet, (min, max)) in stats {
        out.stats
            .insert(facet, serde_json::json!({"min": min, "max": max}));
    }
    Some(out)
}

/// The members the facets add to a federated answer: `,"facetsByIndex":{…}` or, with
/// `mergeFacets`, `,"facetDistribution":{…},"facetStats":{…}`; empty when there are none.
pub fn facets_members(
    per_index: &[(&IndexMeta, IndexFacets)],
    merge: Option<Option<usize>>,
) -> Option<Vec<u8>> {
    if per_index.is_empty() {
        return Some(Vec::new());
    }
    let mut out = Vec::new();
    match merge {
        Some(max) => {
            let m = merge_index_facets(per_index, max)?;
            out.extend_from_slice(b",\"facetDistribution\":");
            serde_json::to_writer(&mut out, &m.distribution).ok()?;
            out.extend_from_slice(b",\"facetStats\":");
            serde_json::to_writer(&mut out, &m.stats).ok()?;
        }
        None => {
            // Meilisearch lists the indexes in uid order.
            let mut sorted: Vec<&(&IndexMeta, IndexFacets)> = per_index.iter().collect();
            sorted.sort_by(|a, b| a.0.uid.cmp(&b.0.uid));
            let mut by_index = Map::new();
            for (meta, f) in sorted {
                by_index.insert(
                    meta.uid.clone(),
                    serde_json::json!({"distribution": f.distribution, "stats": f.stats}),
                );
            }
            out.extend_from_slice(b",\"facetsByIndex\":");
            serde_json::to_writer(&mut out, &by_index).ok()?;
        }
    }
    Some(out)
}

/// How many values of `attribute` the nodes' facet distributions of `meta`'s index hold
/// together, each counted once (`None` when an answer is unreadable or a distribution may be
/// cut at the nodes' `maxValuesPerFacet`).
fn distinct_values(bodies: &[Body], meta: &IndexMeta, attribute: &str) -> Option<u64> {
    let index = meta.uid.as_str();
    let node_cut =
        miroir_core::snapshot::node_max_values_per_facet(u64::from(meta.max_values_per_facet));
    let mut values = std::collections::HashSet::new();
    for b in bodies {
        let v: Value = serde_json::from_slice(b).ok()?;
        let distribution = v
            .get("facetsByIndex")?
            .get(index)?
            .get("distribution")?
            .get(attribute)
            .and_then(Value::as_object);
        let Some(distribution) = distribution else {
            continue; // no document of the shards has a value
        };
        if distribution.len() as u64 >= node_cut {
            return None;
        }
        // Distribution keys are facet values as written: compared as the hits' are.
        values.extend(distribution.keys().map(|k| k.trim().to_lowercase()));
    }
    Some(values.len() as u64)
}

impl<U: Upstreams> Proxy<U> {
    /// For each index that several queries search: how many documents they match together,
    /// each counted once (one node answer per node: its shards' union, shards disjoint).
    /// With `federation.distinct`, for every index: how many values of the attribute those
    /// documents have, each counted once (the union of the nodes' facet distributions of
    /// it). An index whose count is not available (a node refused, a shard unavailable, a
    /// distribution cut at the nodes' `maxValuesPerFacet`) is left out: its queries' totals
    /// are added up instead.
    pub(crate) async fn union_totals(
        &self,
        plans: &[(&IndexMeta, Rc<IndexRouting>, SearchQuery)],
        distinct: Option<&str>,
        rid: &str,
    ) -> std::collections::HashMap<String, u64> {
        let mut out = std::collections::HashMap::new();
        let facets = distinct.map_or(Value::Null, |d| serde_json::json!([d]));
        for (meta, routing, _) in plans {
            let queries: Vec<&SearchQuery> = plans
                .iter()
                .filter(|(m, _, _)| m.uid == meta.uid)
                .map(|(_, _, q)| q)
                .collect();
            if (queries.len() < 2 && distinct.is_none()) || out.contains_key(&meta.uid) {
                continue;
            }
            let path = "/multi-search".to_string();
            let shards = self.planned_shards(meta, &routing.read, None, None);
            let gathered = self
                .gather(&routing.read, shards, rid, |a| {
                    let filter = a.needs_shard_filter.then_some(a.shards.as_slice());
                    let body = node_facets_body(&meta.uid, &facets, &queries, filter);
                    json_request(Method::Post, path.clone(), String::new(), body)
                })
                .await;
            if gathered.relay.is_some() || !gathered.unavailable.is_empty() {
                continue;
            }
            if let Some(d) = distinct {
                if let Some(n) = distinct_values(&gathered.bodies, meta, d) {
                    out.insert(meta.uid.clone(), n);
                }
                continue;
            }
            let totals: Option<Vec<u64>> = gathered
                .bodies
                .iter()
                .map(|b| {
                    let v: Value = serde_json::from_slice(b).ok()?;
                    v.get("estimatedTotalHits")?.as_u64()
                })
                .collect();
            if let Some(t) = totals {
                let sum = t.iter().fold(0u64, |a, b| a.saturating_add(*b));
                out.insert(meta.uid.clone(), sum);
            }
        }
        out
    }

    /// The federation's facets (module docs): the members to add to the federated answer.
    pub(crate) async fn federated_facets(
        &self,
        fed: &Federation,
        plans: &[(&IndexMeta, Rc<IndexRouting>, SearchQuery)],
        rid: &str,
    ) -> Result<Vec<u8>, FacetsFailure> {
        let mut per_index: Vec<(&IndexMeta, IndexFacets)> = Vec::new();
        // In query order: with `mergeFacets`, the first index fixes a facet's order.
        let mut seen: Vec<&str> = Vec::new();
        for (meta, routing, _) in plans {
            if seen.contains(&meta.uid.as_str()) {
                continue;
            }
            seen.push(&meta.uid);
            // An index the federation gives facets for (a `null` list: none).
            let Some(facets) = fed
                .facets_by_index
                .iter()
                .find(|(i, _)| *i == meta.uid)
                .and_then(|(_, f)| f.as_ref())
            else {
                continue;
            };
            let queries: Vec<&SearchQuery> = plans
                .iter()
                .filter(|(m, _, _)| m.uid == meta.uid)
                .map(|(_, _, q)| q)
                .collect();
            let path = "/multi-search".to_string();
            let shards = self.planned_shards(meta, &routing.read, None, None);
            let gathered = self
                .gather(&routing.read, shards, rid, |a| {
                    let filter = a.needs_shard_filter.then_some(a.shards.as_slice());
                    let body = node_facets_body(&meta.uid, facets, &queries, filter);
                    json_request(Method::Post, path.clone(), String::new(), body)
                })
                .await;
            if gathered.relay.is_some() {
                return Err(FacetsFailure::Delegate);
            }
            self.shard_policy(&meta.uid, &gathered)
                .map_err(FacetsFailure::Respond)?;
            let f = sum_index_facets(meta, &meta.uid, &gathered.bodies)
                .ok_or(FacetsFailure::Delegate)?;
            per_index.push((meta, f));
        }
        facets_members(&per_index, fed.merge_facets).ok_or(FacetsFailure::Delegate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paginated(pagination: Pagination) -> Federation {
        Federation {
            pagination,
            facets_by_index: Vec::new(),
            merge_facets: None,
            show_performance_details: false,
            distinct: None,
        }
    }

    fn body(hits: &[(&str, f64)], total: u64) -> Vec<u8> {
        let hits: Vec<Value> = hits
            .iter()
            .map(|(id, s)| json!({"id": id, "_rankingScore": s}))
            .collect();
        serde_json::to_vec(&json!({"hits": hits, "query": "", "processingTimeMs": 3, "limit": 5, "offset": 0, "estimatedTotalHits": total})).unwrap()
    }

    #[test]
    fn federation_options() {
        assert_eq!(
            parse_federation(&json!({})).unwrap().pagination,
            Pagination::OffsetLimit {
                offset: 0,
                limit: 20
            }
        );
        assert_eq!(
            parse_federation(&json!({"page": 2})).unwrap().pagination,
            Pagination::Page {
                page: 2,
                hits_per_page: 20
            }
        );
        let f = parse_federation(
            &json!({"facetsByIndex": {"a": ["g"], "b": null}, "mergeFacets": {"maxValuesPerFacet": 3}}),
        )
        .unwrap();
        assert_eq!(
            f.facets_by_index,
            vec![("a".into(), Some(json!(["g"]))), ("b".into(), None)]
        );
        assert_eq!(f.merge_facets, Some(Some(3)));
        let f = parse_federation(&json!({"mergeFacets": null})).unwrap();
        assert_eq!(f.merge_facets, None);
        assert_eq!(
            parse_federation(&json!({"facetsByIndex": {"a": [1]}})),
            None
        );
        assert_eq!(parse_federation(&json!({"mergeFacets": {"x": 1}})), None);
        assert_eq!(parse_federation(&json!({"limit": "x"})), None);
        assert_eq!(parse_federation(&json!({"nope": 1})), None);
        assert!(
            parse_federation(&json!({"showPerformanceDetails": true}))
                .unwrap()
                .show_performance_details
        );
        assert!(
            !parse_federation(&json!({"showPerformanceDetails": null}))
                .unwrap()
                .show_performance_details
        );
        assert_eq!(
            parse_federation(&json!({"showPerformanceDetails": 1})),
            None
        );
        let member = performance_member(
            std::time::Duration::from_micros(8_901),
            std::time::Duration::from_nanos(42_610),
        );
        let v: Value =
            serde_json::from_slice(&[b"{\"a\":1".as_slice(), &member, b"}"].concat()).unwrap();
        assert_eq!(
            v["performanceDetails"],
            json!({"miroir > search the nodes": "8.90ms", "miroir > merge the answers": "42.61µs"})
        );
        assert_eq!(weight(&Map::new()), Some(1.0));
        let q = json!({"federationOptions": {"weight": 2.5}});
        assert_eq!(weight(q.as_object().unwrap()), Some(2.5));
        let q = json!({"federationOptions": {"weight": -1}});
        assert_eq!(weight(q.as_object().unwrap()), None);
    }

    #[test]
    fn weighted_merge_keeps_query_order_and_annotates() {
        let a = body(&[("a1", 0.9), ("a2", 0.5)], 2);
        let b = body(&[("b1", 0.6), ("b2", 0.4)], 7);
        let results = [
            QueryResult {
                index_uid: "A",
                primary_key: None,
                index_total: None,
                weight: 1.0,
                want_score: false,
                retrieve_vectors: false,
                body: &a,
                drop_member: None,
            },
            QueryResult {
                index_uid: "B",
                primary_key: None,
                index_total: None,
                weight: 1.0,
                want_score: true,
                retrieve_vectors: false,
                body: &b,
                drop_member: None,
            },
        ];
        let fed = paginated(Pagination::OffsetLimit {
            offset: 1,
            limit: 2,
        });
        let mut out = Vec::new();
        combine(&fed, &results, &mut out).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        let ids: Vec<&str> = v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["b1", "a2"]);
        assert_eq!(
            v["hits"][0]["_federation"],
            json!({"indexUid": "B", "queriesPosition": 1, "weightedRankingScore": 0.6})
        );
        assert_eq!(v["hits"][0]["_rankingScore"], json!(0.6));
        assert!(v["hits"][1].get("_rankingScore").is_none());
        assert_eq!(
            (
                v["estimatedTotalHits"].clone(),
                v["offset"].clone(),
                v["limit"].clone()
            ),
            (json!(9), json!(1), json!(2))
        );
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 5);
    }

    #[test]
    fn query_vectors_once_any_query_retrieves_vectors() {
        let plain = body(&[("a1", 0.9)], 1);
        let mut embedded: Value = serde_json::from_slice(&body(&[("b1", 0.6)], 1)).unwrap();
        embedded["queryVector"] = json!([0.5, -1.0]);
        let embedded = serde_json::to_vec(&embedded).unwrap();
        let query = |body, retrieve_vectors| QueryResult {
            index_uid: "A",
            primary_key: None,
            index_total: None,
            weight: 1.0,
            want_score: false,
            retrieve_vectors,
            body,
            drop_member: None,
        };
        let fed = paginated(Pagination::OffsetLimit {
            offset: 0,
            limit: 10,
        });
        let answer = |results: &[QueryResult]| {
            let mut out = Vec::new();
            combine(&fed, results, &mut out).unwrap();
            serde_json::from_slice::<Value>(&out).unwrap()
        };
        // Nobody asked: no member (a query vector alone does not add it).
        let v = answer(&[query(&plain, false), query(&embedded, false)]);
        assert!(v.get("queryVectors").is_none(), "{v}");
        // Asked, without an embedding: an empty map, right after the hits.
        let v = answer(&[query(&plain, true), query(&embedded, false)]);
        assert_eq!(v["queryVectors"], json!({}));
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys[..2], ["hits", "queryVectors"]);
        // Asked by the query that embedded: its vector under its position.
        let v = answer(&[query(&plain, true), query(&embedded, true)]);
        assert_eq!(v["queryVectors"], json!({"1": [0.5, -1.0]}));
    }

    #[test]
    fn a_document_two_queries_match_is_listed_once() {
        let a = body(&[("d1", 0.9), ("d2", 0.5)], 2);
        let b = body(&[("d2", 0.8), ("d3", 0.4)], 2);
        let one = |body| QueryResult {
            index_uid: "A",
            primary_key: Some("id"),
            index_total: Some(3),
            weight: 1.0,
            want_score: false,
            retrieve_vectors: false,
            body,
            drop_member: None,
        };
        let results = [one(&a), one(&b)];
        let fed = paginated(Pagination::OffsetLimit {
            offset: 0,
            limit: 10,
        });
        let mut out = Vec::new();
        combine(&fed, &results, &mut out).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        let ids: Vec<&str> = v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["d1", "d2", "d3"]);
        assert_eq!(v["hits"][1]["_federation"]["queriesPosition"], json!(1));
        assert_eq!(v["estimatedTotalHits"], json!(3));
    }

    #[test]
    fn weights_reorder_and_ties_prefer_earlier_queries() {
        let a = body(&[("a1", 0.5)], 1);
        let b = body(&[("b1", 0.5)], 1);
        let fed = paginated(Pagination::OffsetLimit {
            offset: 0,
            limit: 10,
        });
        let run = |wa: f64, wb: f64| {
            let results = [
                QueryResult {
                    index_uid: "A",
                    primary_key: None,
                    index_total: None,
                    weight: wa,
                    want_score: false,
                    retrieve_vectors: false,
                    body: &a,
                    drop_member: None,
                },
                QueryResult {
                    index_uid: "B",
                    primary_key: None,
                    index_total: None,
                    weight: wb,
                    want_score: false,
                    retrieve_vectors: false,
                    body: &b,
                    drop_member: None,
                },
            ];
            let mut out = Vec::new();
            combine(&fed, &results, &mut out).unwrap();
            let v: Value = serde_json::from_slice(&out).unwrap();
            v["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(1.0, 1.0), ["a1", "b1"]);
        assert_eq!(run(1.0, 2.0), ["b1", "a1"]);
    }

    #[test]
    fn page_mode_totals() {
        let a = body(&[("a1", 0.5), ("a2", 0.4), ("a3", 0.3)], 3);
        let results = [QueryResult {
            index_uid: "A",
            primary_key: None,
            index_total: None,
            weight: 1.0,
            want_score: false,
            retrieve_vectors: false,
            body: &a,
            drop_member: None,
        }];
        let fed = paginated(Pagination::Page {
            page: 2,
            hits_per_page: 2,
        });
        let mut out = Vec::new();
        combine(&fed, &results, &mut out).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["hits"].as_array().unwrap().len(), 1);
        assert_eq!(
            (v["totalPages"].clone(), v["totalHits"].clone()),
            (json!(2), json!(3))
        );
        assert!(combine(
            &fed,
            &[QueryResult {
                index_uid: "A",
                primary_key: None,
                index_total: None,
                weight: 1.0,
                want_score: false,
                retrieve_vectors: false,
                body: b"nope",
                drop_member: None,
            }],
            &mut Vec::new()
        )
        .is_none());
    }
}
