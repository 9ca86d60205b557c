//! Federated multi-search (`POST /multi-search` with `federation`): every query's hits merged
//! into one list by weighted ranking score, in Meilisearch's federated output shape.
//!
//! Each query is first scatter-gathered and merged across shards like a plain search (first
//! `offset + limit` hits, scores kept); then [`combine`] (pure) does a k-way merge across the
//! queries that keeps each query's own order, comparing heads by
//! `_rankingScore × federationOptions.weight` (ties: lower query position first, like
//! Meilisearch), applies the federation's window, and adds to every hit
//! `_federation: {indexUid, queriesPosition, weightedRankingScore}`.
//!
//! Output: `{hits, processingTimeMs, limit, offset, estimatedTotalHits}` (or `hitsPerPage,
//! page, totalPages, totalHits` when the federation paginates by page); totals summed.
//! KNOWN LIMITS (documented): `facetsByIndex`/`mergeFacets` are not supported (501); queries
//! that sort are compared by weighted score only, not rule by rule.

use crate::proxy::json::OrderedObject;
use miroir_merge::Pagination;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The federation's own options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Federation {
    pub pagination: Pagination,
}

/// Reads `federation` (`offset`/`limit` or `page`/`hitsPerPage`). `Err(true)` when it uses a
/// feature Miroir does not support (facets), `Err(false)` when it is not understood (then the
/// request is delegated so a node answers the exact error).
pub fn parse_federation(v: &Value) -> Result<Federation, bool> {
    let Value::Object(m) = v else {
        return Err(false);
    };
    let get = |k: &str| -> Result<Option<usize>, bool> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x.as_u64().map(|n| Some(n as usize)).ok_or(false),
        }
    };
    for k in m.keys() {
        match k.as_str() {
            "offset" | "limit" | "page" | "hitsPerPage" => {}
            "facetsByIndex" | "mergeFacets" => return Err(true),
            _ => return Err(false),
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
    Ok(Federation { pagination })
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
    pub weight: f64,
    /// The client asked this query for `showRankingScore`.
    pub want_score: bool,
    /// The query's merged body (hits carry `_rankingScore`).
    pub body: &'a [u8],
}

struct Parsed<'a> {
    hits: Vec<(OrderedObject<'a>, f64)>,
    total: u64,
    time: u64,
}

fn parse_result(body: &[u8]) -> Option<Parsed<'_>> {
    let top = OrderedObject::parse(body)?;
    let raw_hits: Vec<&RawValue> = serde_json::from_str(top.get("hits")?.get()).ok()?;
    let mut hits = Vec::with_capacity(raw_hits.len());
    for h in raw_hits {
        let obj = OrderedObject::parse(h.get().as_bytes())?;
        let score = obj
            .get("_rankingScore")
            .and_then(|s| s.get().parse::<f64>().ok())
            .unwrap_or(0.0);
        hits.push((obj, score));
    }
    let num = |k: &str| top.get(k).and_then(|v| v.get().parse::<u64>().ok());
    let total = num("estimatedTotalHits")
        .or_else(|| num("totalHits"))
        .unwrap_or(0);
    Some(Parsed {
        hits,
        total,
        time: num("processingTimeMs").unwrap_or(0),
    })
}

/// Merges the queries' results (see module docs). `None` when a body is unreadable.
pub fn combine(fed: &Federation, results: &[QueryResult], out: &mut Vec<u8>) -> Option<()> {
    let parsed: Vec<Parsed> = results
        .iter()
        .map(|r| parse_result(r.body))
        .collect::<Option<_>>()?;
    // Node numbers are untrusted input: a sum that would overflow saturates.
    let total: u64 = parsed.iter().fold(0u64, |t, p| t.saturating_add(p.total));
    let time = parsed.iter().map(|p| p.time).max().unwrap_or(0);
    let (start, len) = fed.pagination.window(usize::MAX);
    // k-way merge preserving each query's order.
    let mut heads = vec![0usize; parsed.len()];
    let mut picked: Vec<(usize, usize, f64)> = Vec::new();
    while picked.len() < start.saturating_add(len) {
        let mut best: Option<(usize, f64)> = None;
        for (q, p) in parsed.iter().enumerate() {
            if let Some((_, score)) = p.hits.get(heads[q]) {
                let w = score * results[q].weight;
                if best.is_none_or(|(_, b)| w > b) {
                    best = Some((q, w));
                }
            }
        }
        let Some((q, w)) = best else { break };
        picked.push((q, heads[q], w));
        heads[q] += 1;
    }
    out.extend_from_slice(b"{\"hits\":[");
    for (n, &(q, i, w)) in picked.iter().skip(start).enumerate() {
        if n > 0 {
            out.push(b',');
        }
        let want = results[q].want_score;
        let mut hit = Vec::new();
        parsed[q].hits[i]
            .0
            .write_without(&mut hit, |k| k == "_rankingScore" && !want);
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
    out.extend_from_slice(format!("],\"processingTimeMs\":{time},").as_bytes());
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        assert_eq!(parse_federation(&json!({"facetsByIndex": {}})), Err(true));
        assert_eq!(parse_federation(&json!({"limit": "x"})), Err(false));
        assert_eq!(parse_federation(&json!({"nope": 1})), Err(false));
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
                weight: 1.0,
                want_score: false,
                body: &a,
            },
            QueryResult {
                index_uid: "B",
                weight: 1.0,
                want_score: true,
                body: &b,
            },
        ];
        let fed = Federation {
            pagination: Pagination::OffsetLimit {
                offset: 1,
                limit: 2,
            },
        };
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
    fn weights_reorder_and_ties_prefer_earlier_queries() {
        let a = body(&[("a1", 0.5)], 1);
        let b = body(&[("b1", 0.5)], 1);
        let fed = Federation {
            pagination: Pagination::OffsetLimit {
                offset: 0,
                limit: 10,
            },
        };
        let run = |wa: f64, wb: f64| {
            let results = [
                QueryResult {
                    index_uid: "A",
                    weight: wa,
                    want_score: false,
                    body: &a,
                },
                QueryResult {
                    index_uid: "B",
                    weight: wb,
                    want_score: false,
                    body: &b,
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
            weight: 1.0,
            want_score: false,
            body: &a,
        }];
        let fed = Federation {
            pagination: Pagination::Page {
                page: 2,
                hits_per_page: 2,
            },
        };
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
                weight: 1.0,
                want_score: false,
                body: b"nope"
            }],
            &mut Vec::new()
        )
        .is_none());
    }
}
