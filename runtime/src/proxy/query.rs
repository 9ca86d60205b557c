//! Pure search-query handling: read the client's query (POST body or GET query string) and
//! write each node's query (docs/contract.md#search).
//!
//! The client's query is kept as a JSON object and forwarded unchanged except for the keys
//! the scatter must control ([`node_body`]): pagination (every node returns its first
//! `offset + limit` hits, or page 1 of `page × hitsPerPage`, per `miroir-merge`'s contract),
//! `showRankingScore: true` (heads are compared by score), `showRankingScoreDetails: true`
//! when the client sorts (heads are compared rule by rule), and a `_miroir_shard` filter when
//! the node holds shards assigned to another node.
//!
//! **Validation by delegation.** Miroir does not re-implement Meilisearch's query validation.
//! When the client's query cannot be understood here (not JSON, not an object, a pagination
//! value of the wrong type, an unknown GET parameter, …) [`parse_post`]/[`parse_get`] return
//! [`QueryError::Delegate`]: the caller sends the client's request *verbatim* to one node and
//! relays its answer, which is then exactly the error a single Meilisearch gives.

use crate::proxy::filter::restrict_to_shards;
use miroir_core::ShardId;
use miroir_merge::{NodePagination, Pagination};
use serde_json::{Map, Value};

/// Meilisearch's default page size.
pub const DEFAULT_LIMIT: usize = 20;

/// A client search query, understood.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    /// The client's query object (GET parameters converted to their POST form).
    pub body: Map<String, Value>,
    pub pagination: Pagination,
    /// A non-empty `sort` was sent.
    pub sort_requested: bool,
    pub want_ranking_score: bool,
    pub want_ranking_score_details: bool,
}

/// Why a query is not planned here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// Let one node validate the original request and relay its answer (module docs).
    Delegate,
}

impl SearchQuery {
    /// The client's `q`, if it is a string.
    pub fn q(&self) -> Option<&str> {
        self.body.get("q").and_then(Value::as_str)
    }

    /// The client's `filter` value.
    pub fn filter(&self) -> Option<&Value> {
        self.body.get("filter")
    }
}

/// Reads a POST search body.
pub fn parse_post(body: &[u8]) -> Result<SearchQuery, QueryError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => from_map(map),
        _ => Err(QueryError::Delegate),
    }
}

/// Understands an already-parsed query object (POST body, or one multi-search query with
/// `indexUid` and `federationOptions` removed by the caller).
pub fn from_map(body: Map<String, Value>) -> Result<SearchQuery, QueryError> {
    let uint = |k: &str| -> Result<Option<usize>, QueryError> {
        match body.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(|v| Some(v as usize))
                .ok_or(QueryError::Delegate),
            Some(_) => Err(QueryError::Delegate),
        }
    };
    let boolean = |k: &str| -> Result<bool, QueryError> {
        match body.get(k) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(QueryError::Delegate),
        }
    };
    let (offset, limit, page, hpp) = (
        uint("offset")?,
        uint("limit")?,
        uint("page")?,
        uint("hitsPerPage")?,
    );
    // Meilisearch switches to exhaustive page mode as soon as `page` or `hitsPerPage` is sent.
    let pagination = if page.is_some() || hpp.is_some() {
        Pagination::Page {
            page: page.unwrap_or(1),
            hits_per_page: hpp.unwrap_or(DEFAULT_LIMIT),
        }
    } else {
        Pagination::OffsetLimit {
            offset: offset.unwrap_or(0),
            limit: limit.unwrap_or(DEFAULT_LIMIT),
        }
    };
    let sort_requested = match body.get("sort") {
        None | Some(Value::Null) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => return Err(QueryError::Delegate),
    };
    let want_ranking_score = boolean("showRankingScore")?;
    let want_ranking_score_details = boolean("showRankingScoreDetails")?;
    Ok(SearchQuery {
        body,
        pagination,
        sort_requested,
        want_ranking_score,
        want_ranking_score_details,
    })
}

/// The distinct attribute in force for `q`: its `distinct` when it is a string, else the
/// index's `distinctAttribute` (a value of another type is the nodes' to refuse).
pub fn distinct_field<'a>(q: &'a SearchQuery, index_distinct: Option<&'a str>) -> Option<&'a str> {
    match q.body.get("distinct") {
        Some(Value::String(s)) => Some(s),
        _ => index_distinct,
    }
}

/// Makes a client's field list (`attributesToRetrieve` of a search, `fields` of a document
/// listing) include the `needed` fields the merge reads (distinct attribute, sort fields), so
/// that nodes return them; returns the top-level keys to remove from the output again (a
/// needed field's first path segment, unless a requested field lives under it). A missing
/// list, a non-list (the nodes' to refuse) or one with `*` already returns everything.
pub fn add_needed_fields(list: Option<&mut Value>, needed: &[&str]) -> Vec<String> {
    let Some(Value::Array(fields)) = list else {
        return Vec::new();
    };
    let requested: Vec<String> = fields
        .iter()
        .filter_map(|f| f.as_str().map(str::to_owned))
        .collect();
    if requested.iter().any(|f| f == "*") {
        return Vec::new();
    }
    let top = |f: &str| f.split('.').next().unwrap_or(f).to_owned();
    let mut drop = Vec::new();
    for &field in needed {
        if requested.iter().any(|f| f == field) {
            continue;
        }
        fields.push(Value::String(field.to_owned()));
        let key = top(field);
        if !requested.iter().any(|f| top(f) == key) && !drop.contains(&key) {
            drop.push(key);
        }
    }
    drop
}

/// The body sent to one node. `shard_filter`: the shards this node answers for when it must
/// be restricted (it holds others too), else `None`.
pub fn node_body(
    q: &SearchQuery,
    node: NodePagination,
    show_details: bool,
    shard_filter: Option<&[ShardId]>,
) -> Vec<u8> {
    let mut body = q.body.clone();
    for k in ["offset", "limit", "page", "hitsPerPage"] {
        body.remove(k);
    }
    match node {
        NodePagination::OffsetLimit { offset, limit } => {
            body.insert("offset".into(), offset.into());
            body.insert("limit".into(), limit.into());
        }
        NodePagination::Page {
            page,
            hits_per_page,
        } => {
            body.insert("page".into(), page.into());
            body.insert("hitsPerPage".into(), hits_per_page.into());
        }
    }
    body.insert("showRankingScore".into(), Value::Bool(true));
    if show_details {
        body.insert("showRankingScoreDetails".into(), Value::Bool(true));
    }
    if let Some(shards) = shard_filter {
        let f = restrict_to_shards(q.body.get("filter"), shards);
        body.insert("filter".into(), f);
    }
    serde_json::to_vec(&Value::Object(body)).expect("a JSON map always serialises")
}

/// Splits a query string into decoded `(key, value)` pairs (`+` is a space); `None` when an
/// escape is malformed or the result is not UTF-8: such requests are delegated to a node so
/// that it, not a guess here, decides what they mean.
pub use miroir_core::uri::query_pairs_exact as query_pairs;

/// Meilisearch's GET search parameters, in their POST form. Unknown parameters and values
/// that do not parse are delegated (the node answers Meilisearch's exact error).
pub fn parse_get(qs: &str) -> Result<SearchQuery, QueryError> {
    let pairs = query_pairs(qs).ok_or(QueryError::Delegate)?;
    let mut body = Map::new();
    let mut hybrid = Map::new();
    for (k, v) in pairs {
        let value = match k.as_str() {
            "q" | "highlightPreTag" | "highlightPostTag" | "cropMarker" | "matchingStrategy"
            | "distinct" => Value::String(v),
            "offset" | "limit" | "page" | "hitsPerPage" | "cropLength" => {
                Value::from(v.parse::<u64>().map_err(|_| QueryError::Delegate)?)
            }
            "showRankingScore"
            | "showRankingScoreDetails"
            | "showMatchesPosition"
            | "showPerformanceDetails"
            | "retrieveVectors" => {
                Value::Bool(v.parse::<bool>().map_err(|_| QueryError::Delegate)?)
            }
            "rankingScoreThreshold" => {
                let f = v.parse::<f64>().map_err(|_| QueryError::Delegate)?;
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or(QueryError::Delegate)?
            }
            "attributesToRetrieve"
            | "attributesToCrop"
            | "attributesToHighlight"
            | "facets"
            | "attributesToSearchOn"
            | "locales" => comma_list(&v),
            "sort" => Value::Array(split_sort(&v).into_iter().map(Value::String).collect()),
            // Meilisearch accepts a JSON array (array filter form) or a plain string.
            "filter" => match serde_json::from_str::<Value>(&v) {
                Ok(a @ Value::Array(_)) => a,
                _ => Value::String(v),
            },
            "vector" => {
                let nums: Result<Vec<Value>, _> = v
                    .split(',')
                    .map(|x| {
                        x.trim()
                            .parse::<f64>()
                            .ok()
                            .and_then(serde_json::Number::from_f64)
                            .map(Value::Number)
                            .ok_or(())
                    })
                    .collect();
                Value::Array(nums.map_err(|_| QueryError::Delegate)?)
            }
            "personalizeUserContext" => {
                body.insert("personalize".into(), serde_json::json!({"userContext": v}));
                continue;
            }
            "hybridEmbedder" => {
                hybrid.insert("embedder".into(), Value::String(v));
                continue;
            }
            "hybridSemanticRatio" => {
                let f = v.parse::<f64>().map_err(|_| QueryError::Delegate)?;
                let n = serde_json::Number::from_f64(f).ok_or(QueryError::Delegate)?;
                hybrid.insert("semanticRatio".into(), Value::Number(n));
                continue;
            }
            _ => return Err(QueryError::Delegate),
        };
        body.insert(k, value);
    }
    if !hybrid.is_empty() {
        body.insert("hybrid".into(), Value::Object(hybrid));
    }
    from_map(body)
}

fn comma_list(v: &str) -> Value {
    Value::Array(
        v.split(',')
            .map(|s| Value::String(s.trim().to_owned()))
            .collect(),
    )
}

/// Splits a GET `sort` on commas, keeping `_geoPoint(lat, lng):asc` whole (its commas are
/// inside parentheses), as Meilisearch does.
pub fn split_sort(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in v.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth <= 0 => {
                out.push(cur.trim().to_owned());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() || !out.is_empty() {
        out.push(cur.trim().to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body_of(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn post_defaults_and_modes() {
        let q = parse_post(br#"{"q":"a"}"#).unwrap();
        assert_eq!(
            q.pagination,
            Pagination::OffsetLimit {
                offset: 0,
                limit: 20
            }
        );
        assert!(!q.sort_requested);
        let q = parse_post(br#"{"q":"a","hitsPerPage":5}"#).unwrap();
        assert_eq!(
            q.pagination,
            Pagination::Page {
                page: 1,
                hits_per_page: 5
            }
        );
        let q = parse_post(br#"{"sort":["year:asc"],"showRankingScore":true}"#).unwrap();
        assert!(q.sort_requested && q.want_ranking_score && !q.want_ranking_score_details);
        assert!(!parse_post(br#"{"sort":[]}"#).unwrap().sort_requested);
    }

    #[test]
    fn post_invalid_is_delegated() {
        for b in [
            &b"nope"[..],
            b"[1]",
            br#"{"limit":"3"}"#,
            br#"{"offset":-1}"#,
            br#"{"sort":"x"}"#,
            br#"{"showRankingScore":1}"#,
        ] {
            assert_eq!(
                parse_post(b),
                Err(QueryError::Delegate),
                "{}",
                String::from_utf8_lossy(b)
            );
        }
    }

    #[test]
    fn distinct_field_and_needed_fields() {
        let q = parse_post(br#"{"distinct":"sku","attributesToRetrieve":["title"]}"#).unwrap();
        assert_eq!(distinct_field(&q, Some("brand")), Some("sku"));
        let q = parse_post(br#"{"q":"x"}"#).unwrap();
        assert_eq!(distinct_field(&q, Some("brand")), Some("brand"));
        assert_eq!(distinct_field(&q, None), None);

        let mut list = serde_json::json!(["title", "a.c"]);
        let drop = add_needed_fields(Some(&mut list), &["sku", "a.b", "title"]);
        assert_eq!(list, serde_json::json!(["title", "a.c", "sku", "a.b"]));
        assert_eq!(drop, vec!["sku"], "`a` holds the requested `a.c`");
        let mut star = serde_json::json!(["*"]);
        assert!(add_needed_fields(Some(&mut star), &["sku"]).is_empty());
        assert_eq!(star, serde_json::json!(["*"]));
        assert!(add_needed_fields(None, &["sku"]).is_empty());
        let mut odd = serde_json::json!("title");
        assert!(add_needed_fields(Some(&mut odd), &["sku"]).is_empty());
    }

    #[test]
    fn node_body_rewrites_only_controlled_keys() {
        let q = parse_post(br#"{"q":"x","offset":10,"limit":5,"filter":"a = 1","facets":["g"]}"#)
            .unwrap();
        let np = q.pagination.node_pagination();
        let b = body_of(&node_body(&q, np, false, None));
        assert_eq!(
            b,
            json!({"q":"x","offset":0,"limit":15,"filter":"a = 1","facets":["g"],"showRankingScore":true})
        );
        let b = body_of(&node_body(&q, np, true, Some(&[ShardId(2), ShardId(4)])));
        assert_eq!(
            b["filter"],
            json!([r##"_miroir_shard IN ["(", "*"]"##, "a = 1"])
        );
        assert_eq!(b["showRankingScoreDetails"], json!(true));
    }

    #[test]
    fn node_body_page_mode() {
        let q = parse_post(br#"{"page":3,"hitsPerPage":10}"#).unwrap();
        let b = body_of(&node_body(&q, q.pagination.node_pagination(), false, None));
        assert_eq!(b["page"], json!(1));
        assert_eq!(b["hitsPerPage"], json!(30));
        assert!(b.get("offset").is_none());
    }

    #[test]
    fn get_parameters() {
        let q = parse_get("q=hello+world&limit=5&offset=2&sort=year:desc,_geoPoint(1.5,%202):asc&facets=a,b&filter=genre%20%3D%20x&showRankingScore=true").unwrap();
        assert_eq!(
            q.pagination,
            Pagination::OffsetLimit {
                offset: 2,
                limit: 5
            }
        );
        assert_eq!(q.q(), Some("hello world"));
        assert_eq!(
            q.body["sort"],
            json!(["year:desc", "_geoPoint(1.5, 2):asc"])
        );
        assert_eq!(q.body["facets"], json!(["a", "b"]));
        assert_eq!(q.body["filter"], json!("genre = x"));
        assert!(q.want_ranking_score && q.sort_requested);
        let q = parse_get("filter=%5B%22a%20%3D%201%22%5D").unwrap();
        assert_eq!(q.body["filter"], json!(["a = 1"]));
        let q = parse_get("hybridEmbedder=e&hybridSemanticRatio=0.5").unwrap();
        assert_eq!(
            q.body["hybrid"],
            json!({"embedder":"e","semanticRatio":0.5})
        );
        let q =
            parse_get("showPerformanceDetails=true&personalizeUserContext=likes%20cats").unwrap();
        assert_eq!(q.body["showPerformanceDetails"], json!(true));
        assert_eq!(q.body["personalize"], json!({"userContext": "likes cats"}));
    }

    #[test]
    fn get_invalid_is_delegated() {
        for qs in ["limit=abc", "unknown=1", "showRankingScore=yes", "q=%zz"] {
            assert_eq!(parse_get(qs), Err(QueryError::Delegate), "{qs}");
        }
        assert!(parse_get("").is_ok());
    }

    #[test]
    fn sort_splitting() {
        assert_eq!(split_sort("a:asc"), vec!["a:asc"]);
        assert_eq!(split_sort("a:asc, b:desc"), vec!["a:asc", "b:desc"]);
        assert!(split_sort("").is_empty());
    }
}
