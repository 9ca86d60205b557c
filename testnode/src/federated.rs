//! Federated multi-search (`federation`), as Meilisearch 1.50 answers it on one node (checked
//! against a real build): every query's hits merged by weighted ranking score (ties: the
//! earlier query first), a document that several queries on one index match listed once,
//! `_federation` on each hit, `estimatedTotalHits` the documents matched per index added up;
//! `facetsByIndex` counted over the union of the documents an index's queries match, and
//! `mergeFacets` merging the indexes' facets.

use crate::error::{ApiError, Result};
use crate::index::Index;
use crate::json::Out;
use crate::search::{self, Query};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The `federation` object.
pub struct Federation {
    pub offset: usize,
    pub limit: usize,
    pub facets_by_index: Vec<(String, Option<Vec<String>>)>,
    pub merge_facets: Option<Option<usize>>,
}

fn bad(msg: String) -> ApiError {
    ApiError::bad("bad_request", msg)
}

impl Federation {
    pub fn parse(v: &Value) -> Result<Federation> {
        let Value::Object(m) = v else {
            return Err(bad(format!(
                "Invalid value type at `.federation`: expected an object, but found {}: `{v}`",
                crate::settings::kind_name(v)
            )));
        };
        let mut f = Federation {
            offset: 0,
            limit: 20,
            facets_by_index: Vec::new(),
            merge_facets: None,
        };
        for (k, v) in m {
            match (k.as_str(), v) {
                ("offset" | "limit", Value::Number(n)) if n.as_u64().is_some() => {
                    let n = n.as_u64().unwrap_or(0) as usize;
                    if k == "offset" {
                        f.offset = n;
                    } else {
                        f.limit = n;
                    }
                }
                ("facetsByIndex" | "mergeFacets", Value::Null) => {}
                ("facetsByIndex", Value::Object(by)) => {
                    for (ix, list) in by {
                        let list = match list {
                            Value::Null => None,
                            Value::Array(a) => Some(
                                a.iter()
                                    .map(|x| x.as_str().map(str::to_string))
                                    .collect::<Option<Vec<_>>>()
                                    .ok_or_else(|| bad(format!("Invalid value type at `.federation.facetsByIndex.{ix}`: expected an array of strings")))?,
                            ),
                            _ => return Err(bad(format!("Invalid value type at `.federation.facetsByIndex.{ix}`: expected an array"))),
                        };
                        f.facets_by_index.push((ix.clone(), list));
                    }
                }
                ("mergeFacets", Value::Object(o)) => {
                    let max = match o.get("maxValuesPerFacet") {
                        None | Some(Value::Null) => None,
                        Some(x) => Some(x.as_u64().ok_or_else(|| {
                            bad("Invalid value type at `.federation.mergeFacets.maxValuesPerFacet`: expected a positive integer".into())
                        })? as usize),
                    };
                    f.merge_facets = Some(max);
                }
                _ => {
                    return Err(bad(format!(
                        "Unknown field `{k}` inside `.federation`: expected one of `limit`, `offset`, `page`, `hitsPerPage`, `facetsByIndex`, `mergeFacets`"
                    )))
                }
            }
        }
        Ok(f)
    }
}

/// One planned query: its index, parsed query, weight and position.
pub struct Planned {
    pub index: String,
    pub query: Query,
    pub weight: f64,
    /// `federationOptions.queryPosition`: the position a remote search reports in
    /// `queriesPosition` (Meilisearch sets it on the queries it sends to a remote).
    pub position: Option<usize>,
}

/// A query's `federationOptions.queryPosition`, if any.
pub fn query_position(q: &Value) -> Option<usize> {
    q.get("federationOptions")
        .and_then(|o| o.get("queryPosition"))
        .and_then(Value::as_u64)
        .map(|p| p as usize)
}

/// A query's `federationOptions.weight` (default 1).
pub fn weight(q: &Value) -> f64 {
    q.get("federationOptions")
        .and_then(|o| o.get("weight"))
        .and_then(Value::as_f64)
        .unwrap_or(1.0)
}

/// Meilisearch refuses pagination inside a federated query.
pub fn check_query(i: usize, q: &Value) -> Result<()> {
    for k in ["offset", "limit", "page", "hitsPerPage"] {
        if q.get(k).is_some() {
            return Err(ApiError::bad(
                "invalid_multi_search_query_pagination",
                format!("Inside `.queries[{i}]`: Using pagination options is not allowed in federated queries.\n - Hint: remove `{k}` from the query or remove `federation` from the request\n - Hint: pass `federation.limit` and `federation.offset` for pagination in federated search"),
            ));
        }
    }
    Ok(())
}

/// Calls the closure with the index of that uid (or fails as a missing index does).
pub type WithIndex<'a> = &'a dyn Fn(&str, &mut dyn FnMut(&Index) -> Result<()>) -> Result<()>;

/// A hit being merged: weighted score, query position, index, document key, hit.
type Candidate = (f64, usize, String, String, Map<String, Value>);

/// Runs the federated search.
pub fn run(fed: &Federation, planned: Vec<Planned>, with_index: WithIndex) -> Result<Out> {
    let started = std::time::Instant::now();
    let window = fed.offset.saturating_add(fed.limit);
    // (weighted score, query position, index, document key, hit)
    let mut all: Vec<Candidate> = Vec::new();
    let mut total = 0usize;
    let mut by_index: BTreeMap<String, Vec<Query>> = BTreeMap::new();
    // Meilisearch 1.50 answers `queryVectors` (query position → its embedding) once any query
    // asks for vectors; this node embeds no query, so the map stays empty.
    let retrieve_vectors = planned.iter().any(|p| p.query.retrieve_vectors);
    for (qi, p) in planned.into_iter().enumerate() {
        let want_score = p.query.show_ranking_score;
        let mut q = p.query;
        q.offset = 0;
        q.limit = window;
        q.show_ranking_score = true;
        let mut out = None;
        with_index(&p.index, &mut |ix| {
            out = Some(search::search(ix, &q, started)?.to_value());
            Ok(())
        })
        .map_err(|e| ApiError {
            message: format!("Inside `.queries[{qi}]`: {}", e.message),
            status: 400,
            ..e
        })?;
        let out = out.unwrap_or(Value::Null);
        let mut pk = None;
        with_index(&p.index, &mut |ix| {
            pk = ix.primary_key.clone();
            Ok(())
        })?;
        let pk = pk.unwrap_or_default();
        for hit in out["hits"].as_array().into_iter().flatten() {
            let Value::Object(mut h) = hit.clone() else {
                continue;
            };
            let score = h
                .get("_rankingScore")
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            if !want_score {
                h.remove("_rankingScore");
            }
            let key = serde_json::to_string(&h.get(&pk)).unwrap_or_default();
            all.push((
                score * p.weight,
                p.position.unwrap_or(qi),
                p.index.clone(),
                key,
                h,
            ));
        }
        by_index.entry(p.index).or_default().push(q);
    }
    // Each index's matched documents, counted once.
    let mut facets: Vec<(String, Out, Out)> = Vec::new();
    for (index, queries) in &by_index {
        let list = fed
            .facets_by_index
            .iter()
            .find(|(i, _)| i == index)
            .and_then(|(_, l)| l.clone());
        with_index(index, &mut |ix| {
            let (dist, stats, n) =
                search::federated_facets(ix, queries, list.as_deref().unwrap_or(&[]))?;
            total += n;
            if list.is_some() {
                facets.push((index.clone(), dist, stats));
            }
            Ok(())
        })?;
    }
    for (index, list) in &fed.facets_by_index {
        if list.is_some() && !by_index.contains_key(index) {
            with_index(index, &mut |_| Ok(())).map_err(|e| ApiError {
                message: format!(
                    "Inside `.federation.facetsByIndex.{index}`: {}\n - Note: index `{index}` is not used in queries",
                    e.message
                ),
                ..e
            })?;
        }
    }
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut seen = std::collections::HashSet::new();
    let hits: Vec<Out> = all
        .into_iter()
        .filter(|(_, _, ix, key, _)| seen.insert((ix.clone(), key.clone())))
        .skip(fed.offset)
        .take(fed.limit)
        .map(|(w, qi, ix, _, mut h)| {
            h.insert(
                "_federation".into(),
                json!({"indexUid": ix, "queriesPosition": qi, "weightedRankingScore": w}),
            );
            Out::from(Value::Object(h))
        })
        .collect();
    let mut body = Out::obj().with("hits", Out::Arr(hits));
    if retrieve_vectors {
        body.push("queryVectors", Out::obj());
    }
    let mut body = body
        .with(
            "processingTimeMs",
            json!(started.elapsed().as_millis() as u64),
        )
        .with("limit", json!(fed.limit))
        .with("offset", json!(fed.offset))
        .with("estimatedTotalHits", json!(total));
    if !facets.is_empty() {
        match fed.merge_facets {
            None => {
                let mut by = Out::obj();
                for (ix, dist, stats) in facets {
                    by.push(
                        ix,
                        Out::obj().with("distribution", dist).with("stats", stats),
                    );
                }
                body.push("facetsByIndex", by);
            }
            Some(max) => {
                let (dist, stats) = merge(&facets, max);
                body.push("facetDistribution", dist);
                body.push("facetStats", stats);
            }
        }
    }
    Ok(body)
}

/// Meilisearch's `mergeFacets`: counts summed, stats widened, values in text order (the test
/// node's indexes all sort facet values alphabetically), cut to `max`.
fn merge(facets: &[(String, Out, Out)], max: Option<usize>) -> (Out, Out) {
    let mut dist: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut stats: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (_, d, s) in facets {
        for (facet, values) in d.to_value().as_object().into_iter().flatten() {
            let e = dist.entry(facet.clone()).or_default();
            for (v, c) in values.as_object().into_iter().flatten() {
                *e.entry(v.clone()).or_default() += c.as_u64().unwrap_or(0);
            }
        }
        for (facet, st) in s.to_value().as_object().into_iter().flatten() {
            let (Some(lo), Some(hi)) = (st["min"].as_f64(), st["max"].as_f64()) else {
                continue;
            };
            let e = stats.entry(facet.clone()).or_insert((lo, hi));
            *e = (e.0.min(lo), e.1.max(hi));
        }
    }
    let mut d = Out::obj();
    for (facet, values) in dist {
        let mut m = Out::obj();
        for (v, c) in values.into_iter().take(max.unwrap_or(usize::MAX)) {
            m.push(v, json!(c));
        }
        d.push(facet, m);
    }
    let mut s = Out::obj();
    for (facet, (lo, hi)) in stats {
        s.push(
            facet,
            Out::obj().with("min", json!(lo)).with("max", json!(hi)),
        );
    }
    (d, s)
}
