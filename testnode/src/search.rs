//! Search: query parsing, candidate generation from the inverted index, Meilisearch-style
//! bucket sort by the ranking rules in order, `_rankingScore`/`_rankingScoreDetails`,
//! facets, highlighting and both pagination modes.
//!
//! Ranking model (see docs/testing.md): every ranking rule yields one or two *ranks*
//! `(rank, max_rank)` computed from the document's own tokens and the query only; the global
//! score combines them exactly like Meilisearch's `Rank::global_score` (a mixed-radix number
//! read left to right), so the score is a deterministic value in [0, 1] that does not depend
//! on the other documents of the node. Documents are ordered rule by rule (rank rules by their
//! rule score descending, sort rules by value), ties broken by internal document id.

use crate::error::{unknown_field, unknown_value, ApiError, Result};
use crate::filter::{self, Filter};
use crate::index::{tokenize, Index};
use crate::json::{values_at_path, Obj, Out};
use crate::settings::View;
use serde_json::{json, Map, Value};
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    Last,
    All,
    Frequency,
}

#[derive(Debug, Clone)]
pub struct Query {
    pub q: Option<String>,
    pub offset: usize,
    pub limit: usize,
    pub page: Option<usize>,
    pub hits_per_page: Option<usize>,
    pub filter: Value,
    pub sort: Vec<String>,
    pub facets: Option<Vec<String>>,
    pub attributes_to_retrieve: Option<Vec<String>>,
    pub attributes_to_highlight: Vec<String>,
    pub highlight_pre: String,
    pub highlight_post: String,
    pub attributes_to_crop: Vec<String>,
    pub crop_length: usize,
    pub crop_marker: String,
    pub show_ranking_score: bool,
    pub show_ranking_score_details: bool,
    pub show_matches_position: bool,
    pub matching_strategy: Strategy,
    pub distinct: Option<String>,
    pub ranking_score_threshold: Option<f64>,
    pub attributes_to_search_on: Option<Vec<String>>,
    /// Adds `_vectors` (always `{}`: the test node has no embedders) to each hit, when the
    /// displayed attributes are `*`.
    pub retrieve_vectors: bool,
    /// Adds `performanceDetails` to the response.
    pub show_performance_details: bool,
}

/// `POST …/search` body fields in Meilisearch 1.50's order (the "expected one of" list).
pub const FIELDS: &[&str] = &[
    "q",
    "offset",
    "limit",
    "page",
    "hitsPerPage",
    "attributesToRetrieve",
    "attributesToCrop",
    "cropLength",
    "cropMarker",
    "attributesToHighlight",
    "highlightPreTag",
    "highlightPostTag",
    "showMatchesPosition",
    "filter",
    "sort",
    "distinct",
    "facets",
    "matchingStrategy",
    "attributesToSearchOn",
    "rankingScoreThreshold",
    "locales",
    "hybrid",
    "vector",
    "retrieveVectors",
    "media",
    "personalize",
    "useNetwork",
    "showRankingScore",
    "showRankingScoreDetails",
    "showPerformanceDetails",
];

/// `GET …/search` query parameters in Meilisearch 1.50's order.
const GET_PARAMS: &[&str] = &[
    "q",
    "offset",
    "limit",
    "page",
    "hitsPerPage",
    "attributesToRetrieve",
    "attributesToCrop",
    "cropLength",
    "cropMarker",
    "attributesToHighlight",
    "highlightPreTag",
    "highlightPostTag",
    "showMatchesPosition",
    "filter",
    "sort",
    "distinct",
    "facets",
    "matchingStrategy",
    "attributesToSearchOn",
    "rankingScoreThreshold",
    "locales",
    "hybridEmbedder",
    "hybridSemanticRatio",
    "vector",
    "retrieveVectors",
    "personalizeUserContext",
    "useNetwork",
    "showRankingScore",
    "showRankingScoreDetails",
    "showPerformanceDetails",
];

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

fn type_err(key: &str, v: &Value, want: &str) -> ApiError {
    ApiError::bad(
        &format!("invalid_search_{}", snake(key)),
        format!(
            "Invalid value type at `.{key}`: expected {want}, but found {}: `{v}`",
            crate::settings::kind_name(v)
        ),
    )
}

fn get_usize(m: &Map<String, Value>, k: &str) -> Result<Option<usize>> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(|n| Some(n as usize))
            .ok_or_else(|| type_err(k, v, "a positive integer")),
    }
}

fn get_bool(m: &Map<String, Value>, k: &str) -> Result<bool> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(type_err(k, v, "a boolean")),
    }
}

fn get_str(m: &Map<String, Value>, k: &str) -> Result<Option<String>> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(type_err(k, v, "a string")),
    }
}

fn get_list(m: &Map<String, Value>, k: &str) -> Result<Option<Vec<String>>> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|e| {
                e.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| type_err(k, e, "a string"))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(v) => Err(type_err(k, v, "an array")),
    }
}

impl Query {
    /// Parses a `POST …/search` body (also used for each multi-search query).
    /// `extra_allowed`: fields the caller strips before calling (e.g. a multi-search
    /// query's `indexUid`); the first one is listed before the search fields in the
    /// "Unknown field" message, the others after, as Meilisearch lists them.
    pub fn from_json(v: &Value, extra_allowed: &[&str]) -> Result<Query> {
        let Value::Object(m) = v else {
            return Err(ApiError::bad(
                "bad_request",
                format!(
                    "Invalid value type: expected an object, but found {}: `{v}`",
                    crate::settings::kind_name(v)
                ),
            ));
        };
        for k in m.keys() {
            if !FIELDS.contains(&k.as_str()) && !extra_allowed.contains(&k.as_str()) {
                let mut accepted: Vec<&str> = extra_allowed.iter().take(1).copied().collect();
                accepted.extend_from_slice(FIELDS);
                accepted.extend(extra_allowed.iter().skip(1));
                return Err(ApiError::bad(
                    "bad_request",
                    unknown_field(k, "", &accepted),
                ));
            }
        }
        if m.get("hybrid").is_none_or(Value::is_null)
            && ["vector", "media"]
                .iter()
                .any(|k| m.get(*k).is_some_and(|v| !v.is_null()))
        {
            return Err(ApiError::bad(
                "missing_search_hybrid",
                "Invalid request: missing `hybrid` parameter when `vector` or `media` are present.",
            ));
        }
        for k in ["vector", "hybrid", "media", "personalize"] {
            if m.get(k).is_some_and(|v| !v.is_null()) {
                // Refuse rather than silently run a keyword search in place of a vector one.
                return Err(ApiError::bad(
                    "bad_request",
                    format!(
                        "`{k}` (vector and hybrid search) is not implemented by miroir-testnode."
                    ),
                ));
            }
        }
        let q = match m.get("q") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => return Err(type_err("q", v, "a string")),
        };
        let matching_strategy = match get_str(m, "matchingStrategy")?.as_deref() {
            None | Some("last") => Strategy::Last,
            Some("all") => Strategy::All,
            Some("frequency") => Strategy::Frequency,
            Some(o) => {
                return Err(ApiError::bad(
                    "invalid_search_matching_strategy",
                    unknown_value(o, " at `.matchingStrategy`", &["last", "all", "frequency"]),
                ))
            }
        };
        let ranking_score_threshold = match m.get("rankingScoreThreshold") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_f64() {
                Some(x) if (0.0..=1.0).contains(&x) => Some(x),
                _ => return Err(ApiError::bad("invalid_search_ranking_score_threshold", "Invalid value at `.rankingScoreThreshold`: the value of `rankingScoreThreshold` is invalid, expected a float between `0.0` and `1.0`.")),
            },
        };
        Ok(Query {
            q,
            offset: get_usize(m, "offset")?.unwrap_or(0),
            limit: get_usize(m, "limit")?.unwrap_or(20),
            page: get_usize(m, "page")?,
            hits_per_page: get_usize(m, "hitsPerPage")?,
            filter: m.get("filter").cloned().unwrap_or(Value::Null),
            sort: get_list(m, "sort")?.unwrap_or_default(),
            facets: get_list(m, "facets")?,
            attributes_to_retrieve: get_list(m, "attributesToRetrieve")?,
            attributes_to_highlight: get_list(m, "attributesToHighlight")?.unwrap_or_default(),
            highlight_pre: get_str(m, "highlightPreTag")?.unwrap_or_else(|| "<em>".into()),
            highlight_post: get_str(m, "highlightPostTag")?.unwrap_or_else(|| "</em>".into()),
            attributes_to_crop: get_list(m, "attributesToCrop")?.unwrap_or_default(),
            crop_length: get_usize(m, "cropLength")?.unwrap_or(10),
            crop_marker: get_str(m, "cropMarker")?.unwrap_or_else(|| "…".into()),
            show_ranking_score: get_bool(m, "showRankingScore")?,
            show_ranking_score_details: get_bool(m, "showRankingScoreDetails")?,
            show_matches_position: get_bool(m, "showMatchesPosition")?,
            matching_strategy,
            distinct: get_str(m, "distinct")?,
            ranking_score_threshold,
            attributes_to_search_on: get_list(m, "attributesToSearchOn")?,
            retrieve_vectors: get_bool(m, "retrieveVectors")?,
            show_performance_details: get_bool(m, "showPerformanceDetails")?,
        })
    }

    /// `GET …/search?…`: lists are comma-separated, numbers and booleans are strings.
    pub fn from_params(params: &[(String, String)]) -> Result<Query> {
        let mut m = Map::new();
        for (k, _) in params {
            if !GET_PARAMS.contains(&k.as_str()) {
                return Err(ApiError::bad(
                    "bad_request",
                    unknown_field(k, "", GET_PARAMS).replacen(
                        "Unknown field",
                        "Unknown parameter",
                        1,
                    ),
                ));
            }
        }
        for (k, v) in params {
            if matches!(
                k.as_str(),
                "hybridEmbedder" | "hybridSemanticRatio" | "personalizeUserContext"
            ) {
                return Err(ApiError::bad(
                    "bad_request",
                    format!("`{k}` is not implemented by miroir-testnode."),
                ));
            }
            let val = match k.as_str() {
                "offset" | "limit" | "page" | "hitsPerPage" | "cropLength" => match v.parse::<u64>() {
                    Ok(n) => json!(n),
                    Err(_) => return Err(ApiError::bad(&format!("invalid_search_{}", snake(k)), format!("Invalid value in parameter `{k}`: could not parse `{v}` as a positive integer"))),
                },
                "rankingScoreThreshold" => v.parse::<f64>().map(|x| json!(x)).unwrap_or(json!(v)),
                "showRankingScore" | "showRankingScoreDetails" | "showMatchesPosition" | "showPerformanceDetails" | "retrieveVectors" => match v.as_str() {
                    "true" => json!(true),
                    "false" => json!(false),
                    _ => return Err(ApiError::bad(&format!("invalid_search_{}", snake(k)), format!("Invalid value in parameter `{k}`: could not parse `{v}` as a boolean, expected either `true` or `false`"))),
                },
                "sort" | "facets" | "attributesToRetrieve" | "attributesToHighlight" | "attributesToCrop" | "attributesToSearchOn" | "locales" => {
                    json!(v.split(',').map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>())
                }
                _ => json!(v),
            };
            m.insert(k.clone(), val);
        }
        Query::from_json(&Value::Object(m), &[])
    }
}

/// One query word after tokenization.
struct QWord {
    text: String,
    prefix: bool,
    max_typos: u32,
}

/// Meilisearch counts a typo on the first letter as two typos.
fn typo_distance(word: &[char], term: &[char], max: u32, prefix: bool) -> Option<u32> {
    let (n, m) = (word.len(), term.len());
    if !prefix && n.abs_diff(m) > max as usize {
        return None;
    }
    if prefix && m + (max as usize) < n {
        return None;
    }
    // Optimal-string-alignment distance; for prefix matching take the best over term prefixes.
    let w = m + 1;
    let mut d = vec![0u32; (n + 1) * w];
    for i in 0..=n {
        d[i * w] = i as u32;
    }
    for (j, cell) in d.iter_mut().take(m + 1).enumerate() {
        *cell = j as u32;
    }
    for i in 1..=n {
        let mut row_min = u32::MAX;
        for j in 1..=m {
            let cost = u32::from(word[i - 1] != term[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && word[i - 1] == term[j - 2] && word[i - 2] == term[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
            row_min = row_min.min(v);
        }
        if row_min.min(d[i * w]) > max {
            return None;
        }
    }
    let dist = if prefix {
        (0..=m).map(|j| d[n * w + j]).min().unwrap_or(u32::MAX)
    } else {
        d[n * w + m]
    };
    let penalty = u32::from(!word.is_empty() && !term.is_empty() && word[0] != term[0]);
    let total = dist + penalty;
    (dist > 0 && total <= max).then_some(total)
}

/// Matches of one dictionary term: (query word index, typos, matched as a prefix).
type TermMatches = HashMap<u32, Vec<(usize, u32, bool)>>;

fn derive_terms(ix: &Index, words: &[QWord], view: &View) -> TermMatches {
    let mut out: TermMatches = HashMap::new();
    let mut add = |term: u32, qi: usize, typos: u32, prefix: bool| {
        let e = out.entry(term).or_default();
        match e.iter_mut().find(|(q, ..)| *q == qi) {
            Some(x) if (typos, prefix as u8) < (x.1, x.2 as u8) => *x = (qi, typos, prefix),
            Some(_) => {}
            None => e.push((qi, typos, prefix)),
        }
    };
    for (qi, w) in words.iter().enumerate() {
        if let Some(t) = ix.terms.get(w.text.as_str()) {
            add(*t, qi, 0, false);
        }
        if w.prefix {
            for (k, t) in ix.terms.range::<str, _>((
                std::ops::Bound::Included(w.text.as_str()),
                std::ops::Bound::Unbounded,
            )) {
                if !k.starts_with(w.text.as_str()) {
                    break;
                }
                if **k != *w.text {
                    add(*t, qi, 0, true);
                }
            }
        }
        for (from, syns) in &view.synonyms {
            if *from == w.text {
                for s in syns {
                    if let Some(t) = ix.terms.get(s.as_str()) {
                        add(*t, qi, 0, false);
                    }
                }
            }
        }
        if w.max_typos > 0 {
            let wc: Vec<char> = w.text.chars().collect();
            // A first-letter typo counts double, so with one allowed typo only terms sharing
            // the first letter can match: scan that dictionary range only. With two, a
            // different first letter must line up within the first two characters.
            let first: String = wc[0].to_string();
            let terms: Box<dyn Iterator<Item = (&Box<str>, &u32)>> = if w.max_typos == 1 {
                Box::new(
                    ix.terms
                        .range::<str, _>((
                            std::ops::Bound::Included(first.as_str()),
                            std::ops::Bound::Unbounded,
                        ))
                        .take_while(|(k, _)| k.starts_with(first.as_str())),
                )
            } else {
                Box::new(ix.terms.iter())
            };
            let second = wc.get(1).copied();
            for (k, t) in terms {
                if !w.prefix && k.len().abs_diff(w.text.len()) > 2 * w.max_typos as usize + 2 {
                    continue;
                }
                if w.max_typos >= 2 {
                    let mut cs = k.chars();
                    let (c0, c1) = (cs.next(), cs.next());
                    if c0 != Some(wc[0]) && c0 != second && c1 != Some(wc[0]) && c1 != second {
                        continue;
                    }
                }
                // A prefix match only ever looks at the term's first `len + max` characters.
                let take = if w.prefix {
                    wc.len() + w.max_typos as usize
                } else {
                    usize::MAX
                };
                let kc: Vec<char> = k.chars().take(take).collect();
                if let Some(typos) = typo_distance(&wc, &kc, w.max_typos, w.prefix) {
                    add(*t, qi, typos, w.prefix && k.chars().count() > wc.len());
                }
            }
        }
    }
    out
}

/// Bitset over internal document ids.
#[derive(Clone)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: u32) {
        self.0[(i / 64) as usize] |= 1 << (i % 64);
    }
    fn and(&mut self, o: &Bits) {
        self.0.iter_mut().zip(&o.0).for_each(|(a, b)| *a &= b);
    }
    fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().enumerate().flat_map(|(wi, w)| {
            let w = *w;
            (0..64)
                .filter(move |b| w & (1 << b) != 0)
                .map(move |b| (wi * 64 + b) as u32)
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Rule {
    Words,
    Typo,
    Proximity,
    /// The legacy `attribute` rule: attribute rank then word position as one rule (used
    /// when neither `attributeRank` nor `wordPosition` is in the ranking rules).
    Attribute,
    AttributeRank,
    WordPosition,
    Exactness,
    Sort {
        field: String,
        asc: bool,
        key: String,
    },
}

/// `(rank, max_rank)` as in Meilisearch's `score_details::Rank`.
type Rank = (u64, u64);

fn local(r: Rank) -> f64 {
    if r.1 == 0 {
        1.0
    } else {
        r.0 as f64 / r.1 as f64
    }
}

/// Meilisearch's `Rank::global_score`: ranks read as one mixed-radix number.
fn global(ranks: &[Rank]) -> f64 {
    global_iter(ranks.iter().copied())
}

/// `_rankingScore`: all rank rules' ranks in ranking-rule order (sort rules carry none).
fn global_of(outs: &[RuleOut]) -> f64 {
    global_iter(outs.iter().flat_map(|o| match o {
        RuleOut::Rank { ranks, len, .. } => ranks[..*len as usize].iter().copied(),
        RuleOut::Sort(_) => [].iter().copied(),
    }))
}

fn global_iter(ranks: impl Iterator<Item = Rank>) -> f64 {
    let (mut rank, mut max) = (1f64, 1f64);
    for (r, m) in ranks {
        rank = (rank - 1.0) * m as f64 + r as f64;
        max *= m as f64;
    }
    if max == 0.0 {
        1.0
    } else {
        rank / max
    }
}

#[derive(Debug, Clone)]
enum SortVal {
    Num(f64),
    Str(String, String), // (normalized, original)
    Missing,
}

fn cmp_sort(a: &SortVal, b: &SortVal, asc: bool) -> Ordering {
    // Numbers before strings in both directions; documents without the field last.
    match (a, b) {
        (SortVal::Missing, SortVal::Missing) => Ordering::Equal,
        (SortVal::Missing, _) => Ordering::Greater,
        (_, SortVal::Missing) => Ordering::Less,
        (SortVal::Num(_), SortVal::Str(..)) => Ordering::Less,
        (SortVal::Str(..), SortVal::Num(_)) => Ordering::Greater,
        (SortVal::Num(x), SortVal::Num(y)) => {
            let o = x.partial_cmp(y).unwrap_or(Ordering::Equal);
            if asc {
                o
            } else {
                o.reverse()
            }
        }
        (SortVal::Str(x, _), SortVal::Str(y, _)) => {
            let o = x.cmp(y);
            if asc {
                o
            } else {
                o.reverse()
            }
        }
    }
}

fn sort_value(obj: &Obj, field: &str, asc: bool) -> SortVal {
    let mut vals = Vec::new();
    values_at_path(obj, field, &mut vals);
    let mut best = SortVal::Missing;
    for v in vals {
        let cand = match v {
            Value::Number(n) => SortVal::Num(n.as_f64().unwrap_or(0.0)),
            Value::String(s) => SortVal::Str(s.to_lowercase(), s.clone()),
            Value::Bool(b) => SortVal::Str(b.to_string(), b.to_string()),
            _ => continue,
        };
        // Arrays sort by their first value in the sort direction (min asc, max desc).
        if cmp_sort(&cand, &best, asc) == Ordering::Less {
            best = cand;
        }
    }
    best
}

/// The numbers behind one rule's `_rankingScoreDetails` entry; rendered to JSON only for
/// the hits actually returned.
#[derive(Debug, Clone, Copy)]
enum Det {
    None,
    Words(u64, u64),
    Typo(u64, u64),
    Attr(f64, f64),
    Exact(&'static str, Option<(u64, u64)>),
}

enum RuleOut {
    /// Up to two ranks (attribute and exactness have two), their combined score.
    Rank {
        ranks: [Rank; 2],
        len: u8,
        score: f64,
        det: Det,
    },
    Sort(SortVal),
}

fn rank_out(ranks: &[Rank], det: Det) -> RuleOut {
    let mut a = [(0, 0); 2];
    a[..ranks.len()].copy_from_slice(ranks);
    RuleOut::Rank {
        ranks: a,
        len: ranks.len() as u8,
        score: global(ranks),
        det,
    }
}

struct Scored {
    docid: u32,
    outs: Vec<RuleOut>,
    score: f64,
}

fn rule_score(o: &RuleOut) -> f64 {
    match o {
        RuleOut::Rank { score, .. } => *score,
        RuleOut::Sort(_) => 0.0,
    }
}

fn cmp_scored(a: &Scored, b: &Scored, rules: &[Rule]) -> Ordering {
    for (i, r) in rules.iter().enumerate() {
        let o = match (r, &a.outs[i], &b.outs[i]) {
            (Rule::Sort { asc, .. }, RuleOut::Sort(x), RuleOut::Sort(y)) => cmp_sort(x, y, *asc),
            _ => rule_score(&b.outs[i])
                .partial_cmp(&rule_score(&a.outs[i]))
                .unwrap_or(Ordering::Equal),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.docid.cmp(&b.docid)
}

fn parse_sort(s: &str) -> Result<(String, bool)> {
    match s.rsplit_once(':') {
        Some((f, "asc")) if !f.is_empty() => Ok((f.to_string(), true)),
        Some((f, "desc")) if !f.is_empty() => Ok((f.to_string(), false)),
        _ => Err(ApiError::bad("invalid_search_sort", format!("Invalid syntax for the sort parameter: expected expression ending by `:asc` or `:desc`, found `{s}`."))),
    }
}

/// `sort` of the document routes: `(field, ascending)` keys, checked like Meilisearch 1.50
/// checks them there (`invalid_document_sort`, no index prefix).
pub fn document_sort(view: &View, sort: &[String]) -> Result<Vec<(String, bool)>> {
    let mut keys = Vec::new();
    for s in sort {
        let (field, asc) = parse_sort(s).map_err(|e| ApiError {
            code: "invalid_document_sort".into(),
            link: "https://docs.meilisearch.com/errors#invalid_document_sort".into(),
            ..e
        })?;
        if !view.is_sortable(&field) {
            let tail = if view.sortable.is_empty() {
                "This index does not have configured sortable attributes.".to_string()
            } else {
                let mut list = view.sortable.clone();
                list.sort_unstable();
                format!("Available sortable attributes are: `{}`.", list.join(", "))
            };
            return Err(ApiError::bad(
                "invalid_document_sort",
                format!("Attribute `{field}` is not sortable. {tail}"),
            ));
        }
        keys.push((field, asc));
    }
    Ok(keys)
}

/// Orders two documents by [`document_sort`] keys (search's sort semantics).
pub fn cmp_documents(a: &Obj, b: &Obj, keys: &[(String, bool)]) -> Ordering {
    keys.iter()
        .map(|(f, asc)| cmp_sort(&sort_value(a, f, *asc), &sort_value(b, f, *asc), *asc))
        .find(|o| *o != Ordering::Equal)
        .unwrap_or(Ordering::Equal)
}

fn resolve_rules(index: &str, view: &View, q: &Query, placeholder: bool) -> Result<Vec<Rule>> {
    let mut sorts = Vec::new();
    for s in &q.sort {
        let (field, asc) = parse_sort(s)?;
        if !view.is_sortable(&field) {
            let tail = if view.sortable.is_empty() {
                "This index does not have configured sortable attributes.".to_string()
            } else {
                let mut list = view.sortable.clone();
                list.sort_unstable();
                format!("Available sortable attributes are: `{}`.", list.join(", "))
            };
            return Err(ApiError::bad(
                "invalid_search_sort",
                format!(
                    "Index `{index}`: Attribute `{}` is not sortable. {tail}",
                    // Geo sorts are reported under the `_geo` field.
                    if field.starts_with("_geoPoint(") {
                        "_geo"
                    } else {
                        field.as_str()
                    }
                ),
            ));
        }
        sorts.push(Rule::Sort {
            key: s.clone(),
            field,
            asc,
        });
    }
    if !sorts.is_empty() && !view.ranking_rules.iter().any(|r| r == "sort") {
        return Err(ApiError::bad("invalid_search_sort", "You must specify where `sort` is listed in the rankingRules setting to use the sort parameter at search time."));
    }
    let mut rules = Vec::new();
    // As Meilisearch 1.50 does: `attribute` is split into `attributeRank` + `wordPosition`
    // (and reported under those names) as soon as either of them is listed; each part is
    // applied at most once.
    let separated = view
        .ranking_rules
        .iter()
        .any(|r| r == "attributeRank" || r == "wordPosition");
    let (mut attr_rank, mut word_pos) = (false, false);
    for r in &view.ranking_rules {
        match r.as_str() {
            "words" | "typo" | "proximity" | "attribute" | "attributeRank" | "wordPosition"
            | "exactness"
                if placeholder => {}
            "words" => rules.push(Rule::Words),
            "typo" => rules.push(Rule::Typo),
            "proximity" => rules.push(Rule::Proximity),
            "attribute" if !attr_rank && !word_pos => {
                attr_rank = true;
                word_pos = true;
                if separated {
                    rules.push(Rule::AttributeRank);
                    rules.push(Rule::WordPosition);
                } else {
                    rules.push(Rule::Attribute);
                }
            }
            "attributeRank" if !attr_rank => {
                attr_rank = true;
                rules.push(Rule::AttributeRank);
            }
            "wordPosition" if !word_pos => {
                word_pos = true;
                rules.push(Rule::WordPosition);
            }
            "attribute" | "attributeRank" | "wordPosition" => {}
            "exactness" => rules.push(Rule::Exactness),
            "sort" => rules.append(&mut sorts),
            custom => {
                if let Ok((field, asc)) = parse_sort(custom) {
                    rules.push(Rule::Sort {
                        key: custom.to_string(),
                        field,
                        asc,
                    });
                }
            }
        }
    }
    Ok(rules)
}

/// Everything search needs to know about the query words for one index.
struct Prepared {
    words: Vec<QWord>,
    terms: TermMatches,
    /// Exact dictionary term of each query word, for the exactness rule.
    exact_terms: Vec<Option<u32>>,
    /// Query word order in which words are kept by the matching strategy.
    keep_order: Vec<usize>,
    allowed_fields: Option<HashSet<u16>>,
    n_fields: u64,
    /// `searchableAttributes` is `["*"]`: no field is ranked above another.
    all_fields_equal: bool,
    scratch: std::cell::RefCell<DocMatch>,
}

fn prepare(ix: &Index, q: &Query) -> Result<Option<Prepared>> {
    let view = &ix.view;
    let text = q.q.clone().unwrap_or_default();
    let mut raw: Vec<String> = tokenize(&text).collect();
    if raw.iter().any(|w| !view.stop_words.contains(w)) {
        raw.retain(|w| !view.stop_words.contains(w));
    }
    raw.truncate(10); // Meilisearch only considers the first 10 query words.
    if raw.is_empty() {
        return Ok(None);
    }
    let ends_with_sep = text.chars().last().is_some_and(|c| !c.is_alphanumeric());
    let prefix_enabled =
        ix.settings.get("prefixSearch").and_then(Value::as_str) != Some("disabled");
    let n = raw.len();
    let words: Vec<QWord> = raw
        .into_iter()
        .enumerate()
        .map(|(i, w)| {
            let len = w.chars().count();
            let max_typos = if !view.typo_enabled || view.typo_disabled_words.contains(&w) {
                0
            } else if len >= view.two_typos {
                2
            } else if len >= view.one_typo {
                1
            } else {
                0
            };
            QWord {
                prefix: i == n - 1 && !ends_with_sep && prefix_enabled,
                max_typos,
                text: w,
            }
        })
        .collect();
    let terms = derive_terms(ix, &words, view);
    let exact_terms = words
        .iter()
        .map(|w| ix.terms.get(w.text.as_str()).copied())
        .collect();
    let searchable = ix.searchable_fields();
    let allowed_fields = match &q.attributes_to_search_on {
        Some(list) if !list.iter().any(|a| a == "*") => {
            for a in list {
                if !searchable
                    .iter()
                    .any(|s| crate::json::attr_matches(s, a) || crate::json::attr_matches(a, s))
                {
                    // With `searchableAttributes: ["*"]` Meilisearch 1.50 accepts any name (an
                    // unknown one matches nothing); with an explicit list it lists the
                    // searchable fields that exist in the index.
                    if ix.view.searchable.is_some() {
                        let existing: Vec<&str> = searchable
                            .iter()
                            .filter(|f| ix.fields.contains(f))
                            .map(String::as_str)
                            .collect();
                        return Err(ApiError::bad("invalid_search_attributes_to_search_on", format!("Index `{}`: Attribute `{a}` is not searchable. Available searchable attributes are: `{}`.", ix.uid, existing.join(", "))));
                    }
                }
            }
            Some(
                searchable
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| {
                        list.iter().any(|a| {
                            crate::json::attr_matches(s, a) || crate::json::attr_matches(a, s)
                        })
                    })
                    .map(|(i, _)| i as u16)
                    .collect(),
            )
        }
        _ => None,
    };
    let keep_order = match q.matching_strategy {
        Strategy::Frequency => {
            let mut freq = vec![0usize; words.len()];
            for (t, ms) in &terms {
                for (qi, ..) in ms {
                    freq[*qi] += ix.postings[*t as usize].len();
                }
            }
            let mut order: Vec<usize> = (0..words.len()).collect();
            order.sort_by_key(|i| (freq[*i], *i));
            order
        }
        _ => (0..words.len()).collect(),
    };
    Ok(Some(Prepared {
        n_fields: searchable.len().max(1) as u64,
        all_fields_equal: ix
            .settings
            .get("searchableAttributes")
            .and_then(Value::as_array)
            .is_none_or(|a| a.iter().any(|v| v == "*")),
        words,
        terms,
        exact_terms,
        keep_order,
        allowed_fields,
        scratch: Default::default(),
    }))
}

const MAX_PROX: u64 = 7;
const MAX_POS: u64 = 9;

/// Per-document word matches: for each query word, its best typo count, positions and
/// whether it matched exactly (no typo, not as a prefix).
#[derive(Default)]
struct DocMatch {
    typos: Vec<Option<u32>>,
    exact: Vec<bool>,
    positions: Vec<Vec<(u16, u32)>>,
}

/// Fills `m` (a per-search scratch buffer, reused to avoid allocating per candidate).
fn match_doc(p: &Prepared, toks: &[crate::index::Tok], m: &mut DocMatch) {
    let n = p.words.len();
    m.typos.clear();
    m.typos.resize(n, None);
    m.exact.clear();
    m.exact.resize(n, false);
    m.positions.resize_with(n, Vec::new);
    m.positions.iter_mut().for_each(Vec::clear);
    for t in toks {
        if let Some(allowed) = &p.allowed_fields {
            if !allowed.contains(&t.field) {
                continue;
            }
        }
        if let Some(ms) = p.terms.get(&t.term) {
            for &(qi, typos, prefix) in ms {
                m.typos[qi] = Some(m.typos[qi].map_or(typos, |x| x.min(typos)));
                if typos == 0 && !prefix {
                    m.exact[qi] = true;
                }
                m.positions[qi].push((t.field, t.pos));
            }
        }
    }
}

/// Ranking outputs of one document, `None` when it does not match the query.
fn rank_doc(
    p: &Prepared,
    q: &Query,
    rules: &[Rule],
    obj: &Obj,
    toks: &[crate::index::Tok],
) -> Option<Vec<RuleOut>> {
    let n = p.words.len();
    let mut scratch = p.scratch.borrow_mut();
    match_doc(p, toks, &mut scratch);
    let dm = &*scratch;
    let k = p
        .keep_order
        .iter()
        .take_while(|qi| dm.typos[**qi].is_some())
        .count();
    if k == 0 || (q.matching_strategy == Strategy::All && k < n) {
        return None;
    }
    let mut active: Vec<usize> = p.keep_order[..k].to_vec();
    active.sort_unstable();
    let mut outs = Vec::with_capacity(rules.len());
    for r in rules {
        outs.push(match r {
            Rule::Words => rank_out(&[(k as u64, n as u64)], Det::Words(k as u64, n as u64)),
            Rule::Typo => {
                let typos: u64 = active
                    .iter()
                    .map(|qi| dm.typos[*qi].unwrap_or(0) as u64)
                    .sum();
                let max: u64 = active.iter().map(|qi| p.words[*qi].max_typos as u64).sum();
                rank_out(
                    &[(max + 1 - typos.min(max), max + 1)],
                    Det::Typo(typos, max),
                )
            }
            Rule::Proximity => {
                let max = 1 + MAX_PROX * (k as u64 - 1);
                let mut cost = 0;
                for pair in active.windows(2) {
                    let mut best = MAX_PROX;
                    for &(fa, pa) in &dm.positions[pair[0]] {
                        for &(fb, pb) in &dm.positions[pair[1]] {
                            if fa == fb {
                                let c = if pb > pa {
                                    (pb - pa - 1) as u64
                                } else {
                                    (pa - pb + 1) as u64
                                };
                                best = best.min(c);
                            }
                        }
                    }
                    cost += best;
                }
                rank_out(&[(max - cost, max)], Det::None)
            }
            Rule::Attribute => {
                let (fid, pos) = attribute_ranks(p, dm, &active);
                rank_out(&[fid, pos], Det::Attr(local(fid), local(pos)))
            }
            Rule::AttributeRank => rank_out(&[attribute_ranks(p, dm, &active).0], Det::None),
            Rule::WordPosition => rank_out(&[attribute_ranks(p, dm, &active).1], Det::None),
            Rule::Exactness => {
                let kind = exact_kind(p, toks);
                let (rank, label) = match kind {
                    2 => (3, "exactMatch"),
                    1 => (2, "matchesStart"),
                    _ => (1, "noExactMatch"),
                };
                if kind == 0 {
                    let ew = dm.exact.iter().filter(|e| **e).count() as u64;
                    rank_out(
                        &[(1, 3), (ew + 1, n as u64 + 1)],
                        Det::Exact(label, Some((ew, n as u64))),
                    )
                } else {
                    rank_out(&[(rank, 3)], Det::Exact(label, None))
                }
            }
            Rule::Sort { field, asc, .. } => RuleOut::Sort(sort_value(obj, field, *asc)),
        });
    }
    Some(outs)
}

/// `(attribute rank, word position)` ranks: the best (lowest-weight) searchable field holding
/// a matched word, then how far the matched words sit from the start of that field.
/// With `searchableAttributes: ["*"]` every field weighs the same in Meilisearch (no field
/// order), so the attribute rank is then always the maximum.
fn attribute_ranks(p: &Prepared, dm: &DocMatch, active: &[usize]) -> (Rank, Rank) {
    let best_field = active
        .iter()
        .flat_map(|qi| dm.positions[*qi].iter().map(|(f, _)| *f))
        .min()
        .unwrap_or(0) as u64;
    let fid = if p.all_fields_equal {
        (1, 1)
    } else {
        (p.n_fields - best_field.min(p.n_fields - 1), p.n_fields)
    };
    let pmax = 1 + MAX_POS * active.len() as u64;
    let pcost: u64 = active
        .iter()
        .enumerate()
        .map(|(j, qi)| {
            dm.positions[*qi]
                .iter()
                .filter(|(f, _)| *f as u64 == best_field)
                .map(|(_, pos)| (*pos as u64).abs_diff(j as u64).min(MAX_POS))
                .min()
                .unwrap_or(MAX_POS)
        })
        .sum();
    (fid, (pmax - pcost, pmax))
}

/// 2: some searchable attribute equals the query exactly; 1: one starts with it; 0: neither.
fn exact_kind(p: &Prepared, toks: &[crate::index::Tok]) -> u8 {
    let Some(q): Option<Vec<u32>> = p.exact_terms.iter().copied().collect() else {
        return 0;
    };
    let mut best = 0;
    let mut i = 0;
    while i < toks.len() {
        let f = toks[i].field;
        let mut j = i;
        while j < toks.len() && toks[j].field == f {
            j += 1;
        }
        if p.allowed_fields.as_ref().is_none_or(|a| a.contains(&f)) {
            // One attribute value: tokens until the first value gap.
            let field_toks = &toks[i..j];
            let mut end = 1;
            while end < field_toks.len() && field_toks[end].pos == field_toks[end - 1].pos + 1 {
                end += 1;
            }
            let first: Vec<u32> = field_toks[..end].iter().map(|t| t.term).collect();
            if first == q {
                return 2;
            }
            if first.len() > q.len() && first[..q.len()] == q[..] {
                best = 1;
            }
        }
        i = j;
    }
    best
}

fn details_json(rules: &[Rule], outs: &[RuleOut]) -> Out {
    let mut o = Out::obj();
    for (order, (r, out)) in rules.iter().zip(outs).enumerate() {
        let mut m = Out::obj().with("order", json!(order));
        match (r, out) {
            (Rule::Sort { key, .. }, RuleOut::Sort(sv)) => {
                match sv {
                    SortVal::Num(x) => m.push("value", json!(x)),
                    SortVal::Str(_, orig) => m.push("value", json!(orig)),
                    SortVal::Missing => {}
                }
                o.push(key.clone(), m);
            }
            (r, RuleOut::Rank { score, det, .. }) => {
                let name = match r {
                    Rule::Words => "words",
                    Rule::Typo => "typo",
                    Rule::Proximity => "proximity",
                    Rule::Attribute => "attribute",
                    Rule::AttributeRank => "attributeRank",
                    Rule::WordPosition => "wordPosition",
                    _ => "exactness",
                };
                // Meilisearch's key order: order, the rule's own fields, score; exactness adds
                // its word counts after the score when there is no exact match.
                match *det {
                    Det::Words(k, n) => {
                        m.push("matchingWords", json!(k));
                        m.push("maxMatchingWords", json!(n));
                    }
                    Det::Typo(t, max) => {
                        m.push("typoCount", json!(t));
                        m.push("maxTypoCount", json!(max));
                    }
                    Det::Attr(fid, pos) => {
                        m.push("attributeRankingOrderScore", json!(fid));
                        m.push("queryWordDistanceScore", json!(pos));
                    }
                    Det::Exact(label, _) => m.push("matchType", json!(label)),
                    Det::None => {}
                }
                m.push("score", json!(score));
                if let Det::Exact(_, Some((ew, n))) = *det {
                    m.push("matchingWords", json!(ew));
                    m.push("maxMatchingWords", json!(n));
                }
                o.push(name, m);
            }
            _ => {}
        }
    }
    o
}

/// `filterableAttributes` patterns sorted, joined the way Meilisearch's messages list them.
pub fn sorted_patterns(view: &View, sep: &str, quote_each: bool) -> String {
    let mut v: Vec<&str> = view.filterable.iter().map(String::as_str).collect();
    v.sort_unstable();
    v.dedup();
    if quote_each {
        v.iter()
            .map(|p| format!("`{p}`"))
            .collect::<Vec<_>>()
            .join(sep)
    } else {
        v.join(sep)
    }
}

fn check_facets(view: &View, facets: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for f in facets {
        // `*` is an ordinary pattern in 1.50: accepted only when `*` itself is filterable.
        if f == "*" && view.is_filterable(f) {
            out.extend(view.filterable.iter().filter(|a| !a.contains('*')).cloned());
        } else if f != "*" && view.is_filterable(f) {
            out.push(f.clone());
        } else {
            let tail = if view.filterable.is_empty() {
                "This index does not have configured filterable attributes.".to_string()
            } else {
                format!(
                    "Available filterable attributes patterns are: `{}`.",
                    sorted_patterns(view, ", ", false)
                )
            };
            return Err(ApiError::bad(
                "invalid_search_facets",
                format!("Invalid facet distribution: Pattern `{f}` is not filterable. {tail}"),
            ));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Facet value normalization: strings lowercased; numbers and booleans as text.
fn facet_key(v: &Value) -> Option<(String, String, Option<f64>)> {
    match v {
        Value::String(s) => Some((s.to_lowercase(), s.clone(), None)),
        Value::Number(n) => {
            // Meilisearch stores number facets as f64 and writes them with its `Display`
            // (`1950.0` → "1950").
            let x = n.as_f64()?;
            Some((format!("{x}"), format!("{x}"), Some(x)))
        }
        Value::Bool(b) => Some((b.to_string(), b.to_string(), None)),
        _ => None,
    }
}

struct FacetCount {
    original: String,
    num: Option<f64>,
    count: u64,
}

fn count_facet<'a>(
    docs: impl Iterator<Item = &'a Obj>,
    facet: &str,
) -> (Vec<FacetCount>, Option<(f64, f64)>) {
    let mut counts: HashMap<String, FacetCount> = HashMap::new();
    let mut stats: Option<(f64, f64)> = None;
    for obj in docs {
        let mut vals = Vec::new();
        values_at_path(obj, facet, &mut vals);
        let mut seen = HashSet::new();
        for v in vals {
            if let Some((key, orig, num)) = facet_key(v) {
                if let Some(x) = num {
                    stats = Some(stats.map_or((x, x), |(a, b)| (a.min(x), b.max(x))));
                }
                if seen.insert(key.clone()) {
                    counts
                        .entry(key)
                        .or_insert(FacetCount {
                            original: orig,
                            num,
                            count: 0,
                        })
                        .count += 1;
                }
            }
        }
    }
    (counts.into_values().collect(), stats)
}

/// Above this many matching documents Meilisearch reads facet values from its facet
/// database (numbers in numeric order) instead of from the documents (numbers in text order).
const FACET_CANDIDATES_THRESHOLD: usize = 3000;

/// Meilisearch 1.50's facet value order (milli `facet_distribution.rs`): number values
/// always before string values, the cut applying to both; alpha: numbers in text order when
/// at most [`FACET_CANDIDATES_THRESHOLD`] documents matched, else numerically, strings by
/// normalized text; count: count descending, equal counts greatest value first (its facet
/// heap pops by `(count, key bytes)`).
fn order_facet(
    view: &View,
    facet: &str,
    mut vals: Vec<FacetCount>,
    candidates: usize,
) -> Vec<FacetCount> {
    let class = |a: &FacetCount, b: &FacetCount| a.num.is_none().cmp(&b.num.is_none());
    let text = |a: &FacetCount, b: &FacetCount| {
        a.original
            .to_lowercase()
            .cmp(&b.original.to_lowercase())
            .then_with(|| a.original.cmp(&b.original))
    };
    let value = |a: &FacetCount, b: &FacetCount| match (a.num, b.num) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        _ => text(a, b),
    };
    if view.facet_order(facet) == "count" {
        vals.sort_by(|a, b| {
            class(a, b)
                .then_with(|| b.count.cmp(&a.count))
                .then_with(|| value(b, a))
        });
    } else if candidates > FACET_CANDIDATES_THRESHOLD {
        vals.sort_by(|a, b| class(a, b).then_with(|| value(a, b)));
    } else {
        vals.sort_by(|a, b| class(a, b).then_with(|| text(a, b)));
    }
    vals.truncate(view.max_values_per_facet);
    vals
}

/// Matched terms for highlighting: term text → characters to highlight (`None` = whole word).
fn highlight_terms(ix: &Index, p: &Prepared) -> HashMap<String, Option<usize>> {
    let mut out = HashMap::new();
    for (t, ms) in &p.terms {
        let term = ix.term_strs[*t as usize].to_string();
        let part = ms
            .iter()
            .filter(|(_, _, prefix)| *prefix)
            .map(|(qi, ..)| p.words[*qi].text.chars().count())
            .max();
        let whole = ms.iter().any(|(_, _, prefix)| !prefix);
        out.insert(term, if whole { None } else { part });
    }
    out
}

fn highlight(s: &str, terms: &HashMap<String, Option<usize>>, pre: &str, post: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.is_empty() {
            return;
        }
        match terms.get(&word.to_lowercase()) {
            Some(None) => {
                out.push_str(pre);
                out.push_str(word);
                out.push_str(post)
            }
            Some(Some(n)) => {
                let split = word
                    .char_indices()
                    .nth(*n)
                    .map(|(b, _)| b)
                    .unwrap_or(word.len());
                out.push_str(pre);
                out.push_str(&word[..split]);
                out.push_str(post);
                out.push_str(&word[split..]);
            }
            None => out.push_str(word),
        }
        word.clear();
    };
    for c in s.chars() {
        if c.is_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Keeps `len` words around the first highlighted word, with `marker` where text was cut.
fn crop(s: &str, terms: &HashMap<String, Option<usize>>, len: usize, marker: &str) -> String {
    let words: Vec<(usize, usize)> = {
        let mut v = Vec::new();
        let mut start = None;
        for (i, c) in s.char_indices() {
            match (c.is_alphanumeric(), start) {
                (true, None) => start = Some(i),
                (false, Some(st)) => {
                    v.push((st, i));
                    start = None
                }
                _ => {}
            }
        }
        if let Some(st) = start {
            v.push((st, s.len()));
        }
        v
    };
    if words.len() <= len {
        return s.to_string();
    }
    let first = words
        .iter()
        .position(|(a, b)| terms.contains_key(&s[*a..*b].to_lowercase()))
        .unwrap_or(0);
    let start = first.saturating_sub(len / 2).min(words.len() - len);
    let end = start + len;
    let mut out = String::new();
    if start > 0 {
        out.push_str(marker);
    }
    out.push_str(&s[words[start].0..words[end - 1].1]);
    if end < words.len() {
        out.push_str(marker);
    }
    out
}

fn format_value(
    v: &Value,
    terms: &HashMap<String, Option<usize>>,
    q: &Query,
    hl: bool,
    cr: Option<usize>,
) -> Value {
    match v {
        Value::String(s) => {
            let mut t = s.clone();
            if let Some(len) = cr {
                t = crop(&t, terms, len, &q.crop_marker);
            }
            if hl {
                t = highlight(&t, terms, &q.highlight_pre, &q.highlight_post);
            }
            Value::String(t)
        }
        Value::Number(n) => Value::String(n.to_string()),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|e| format_value(e, terms, q, hl, cr))
                .collect(),
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, e)| (k.clone(), format_value(e, terms, q, hl, cr)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Byte offsets of matched words in one string (`length` covers a prefix match's prefix).
fn match_spans(s: &str, terms: &HashMap<String, Option<usize>>, out: &mut Vec<(usize, usize)>) {
    let mut start = None;
    for (i, c) in s.char_indices().chain(std::iter::once((s.len(), ' '))) {
        match (c.is_alphanumeric() && i < s.len(), start) {
            (true, None) => start = Some(i),
            (false, Some(st)) => {
                let word = &s[st..i];
                match terms.get(&word.to_lowercase()) {
                    Some(None) => out.push((st, i - st)),
                    Some(Some(n)) => {
                        let len = word
                            .char_indices()
                            .nth(*n)
                            .map(|(b, _)| b)
                            .unwrap_or(word.len());
                        out.push((st, len));
                    }
                    None => {}
                }
                start = None;
            }
            _ => {}
        }
    }
}

/// `_matchesPosition`: for each retrieved field with matches, `[{start, length}]` in bytes
/// (string arrays add `indices`, the element's position). Nested objects are not described.
fn matches_position(doc: &Obj, terms: &HashMap<String, Option<usize>>) -> Out {
    let mut out = Out::obj();
    for (k, v) in &doc.0 {
        let mut entries = Vec::new();
        let mut spans = Vec::new();
        match v {
            Value::String(s) => {
                match_spans(s, terms, &mut spans);
                entries.extend(spans.iter().map(|(st, len)| {
                    Out::obj()
                        .with("start", json!(st))
                        .with("length", json!(len))
                }));
            }
            Value::Number(n) => {
                match_spans(&n.to_string(), terms, &mut spans);
                entries.extend(spans.iter().map(|(st, len)| {
                    Out::obj()
                        .with("start", json!(st))
                        .with("length", json!(len))
                }));
            }
            Value::Array(a) => {
                for (i, e) in a.iter().enumerate() {
                    if let Some(s) = e.as_str() {
                        spans.clear();
                        match_spans(s, terms, &mut spans);
                        entries.extend(spans.iter().map(|(st, len)| {
                            Out::obj()
                                .with("start", json!(st))
                                .with("length", json!(len))
                                .with("indices", json!([i]))
                        }));
                    }
                }
            }
            _ => {}
        }
        if !entries.is_empty() {
            out.push(k.clone(), Out::Arr(entries));
        }
    }
    out
}

/// The crop length for `field`: `attr:n` entries carry their own, others use the query's.
fn crop_length_for(list: &[String], field: &str, default: usize) -> Option<usize> {
    list.iter().find_map(|a| {
        let (name, len) = match a.rsplit_once(':') {
            Some((n, l)) if l.parse::<usize>().is_ok() => (n, l.parse().ok()),
            _ => (a.as_str(), None),
        };
        selected(&[name.to_string()], field).then(|| len.unwrap_or(default))
    })
}

fn selected(list: &[String], field: &str) -> bool {
    list.iter().any(|a| {
        a == "*" || crate::json::attr_matches(a, field) || crate::json::attr_matches(field, a)
    })
}

/// Runs one search against one index and builds Meilisearch's response object.
/// Every document `q` matches (filter, words, ranking-score threshold), scored; with the
/// prepared query and ranking rules the rest of a search needs.
fn score_all(
    ix: &Index,
    q: &Query,
    filter: Option<&Filter>,
) -> Result<(Option<Prepared>, Vec<Rule>, Vec<Scored>)> {
    let view = &ix.view;
    let prepared = prepare(ix, q)?;
    let rules = resolve_rules(&ix.uid, view, q, prepared.is_none())?;

    // Candidates from the inverted index (or every document for a placeholder search).
    let n_docs = ix.docs.len();
    let candidates: Box<dyn Iterator<Item = u32>> = match &prepared {
        None => Box::new((0..n_docs as u32).filter(|d| ix.docs[*d as usize].is_some())),
        Some(p) => {
            let mut per_word: Vec<Bits> = (0..p.words.len()).map(|_| Bits::new(n_docs)).collect();
            for (t, ms) in &p.terms {
                for (qi, ..) in ms {
                    for d in &ix.postings[*t as usize] {
                        per_word[*qi].set(*d);
                    }
                }
            }
            let mut c = per_word[p.keep_order[0]].clone();
            if q.matching_strategy == Strategy::All {
                for b in &per_word {
                    c.and(b);
                }
            }
            Box::new(c.iter().collect::<Vec<_>>().into_iter())
        }
    };

    let mut scored: Vec<Scored> = Vec::new();
    for docid in candidates {
        let Some(doc) = ix.docs[docid as usize].as_ref() else {
            continue;
        };
        if let Some(f) = &filter {
            if !f.matches(&doc.obj) {
                continue;
            }
        }
        let outs = match &prepared {
            None => rules
                .iter()
                .map(|r| match r {
                    Rule::Sort { field, asc, .. } => {
                        RuleOut::Sort(sort_value(&doc.obj, field, *asc))
                    }
                    _ => rank_out(&[], Det::None),
                })
                .collect(),
            Some(p) => match rank_doc(p, q, &rules, &doc.obj, &doc.toks) {
                Some(o) => o,
                None => continue,
            },
        };
        let score = global_of(&outs);
        if q.ranking_score_threshold.is_some_and(|t| score < t) {
            continue;
        }
        scored.push(Scored { docid, outs, score });
    }
    Ok((prepared, rules, scored))
}

pub fn search(ix: &Index, q: &Query, started: std::time::Instant) -> Result<Out> {
    let view = &ix.view;
    let filter: Option<Filter> = filter::parse(&q.filter, "invalid_search_filter")?;
    if let Some(f) = &filter {
        f.check_filterable(view, "invalid_search_filter", Some(&ix.uid), None)?;
    }
    // `facets: []` asks for nothing: no `facetDistribution` at all (as Meilisearch).
    let facets = match &q.facets {
        Some(f) if !f.is_empty() => Some(check_facets(view, f)?),
        _ => None,
    };
    let distinct = q.distinct.clone().or_else(|| view.distinct.clone());
    if let Some(d) = &q.distinct {
        if !view.is_filterable(d) {
            let tail = if view.filterable.is_empty() {
                "This index does not have configured filterable attributes.".to_string()
            } else {
                format!(
                    "Available filterable attributes patterns are: `{}`.",
                    sorted_patterns(view, ", ", false)
                )
            };
            return Err(ApiError::bad("invalid_search_distinct", format!("Index `{}`: Attribute `{d}` is not filterable and thus, cannot be used as distinct attribute. {tail}", ix.uid)));
        }
    }
    let (prepared, rules, mut scored) = score_all(ix, q, filter.as_ref())?;
    let paged = q.page.is_some() || q.hits_per_page.is_some();
    let (from, count) = if paged {
        let page = q.page.unwrap_or(1);
        let hpp = q.hits_per_page.unwrap_or(20);
        if page == 0 {
            (0, 0)
        } else {
            ((page - 1).saturating_mul(hpp), hpp)
        }
    } else {
        (q.offset, q.limit)
    };
    let need = from.saturating_add(count).min(view.max_total_hits);
    if distinct.is_none() && need < scored.len() {
        // Only the first `need` hits are returned: select them, then sort just those.
        if need > 0 {
            scored.select_nth_unstable_by(need - 1, |a, b| cmp_scored(a, b, &rules));
            scored[..need].sort_by(|a, b| cmp_scored(a, b, &rules));
        }
    } else {
        scored.sort_by(|a, b| cmp_scored(a, b, &rules));
    }

    if let Some(d) = &distinct {
        let mut seen = HashSet::new();
        scored.retain(|s| {
            let obj = &ix.docs[s.docid as usize].as_ref().expect("live").obj;
            let mut vals = Vec::new();
            values_at_path(obj, d, &mut vals);
            match vals.first().and_then(|v| facet_key(v)) {
                Some((k, ..)) => seen.insert(k),
                None => true,
            }
        });
    }

    // Meilisearch 1.50: `maxTotalHits` bounds the hits window only; the reported totals
    // (`estimatedTotalHits`, `totalHits`, `totalPages`) count every match.
    let total = scored.len();
    let capped = total.min(view.max_total_hits);
    let end = from.saturating_add(count).min(capped);
    let window = if from < end {
        &scored[from..end]
    } else {
        &[][..]
    };

    let hl_terms = prepared
        .as_ref()
        .map(|p| highlight_terms(ix, p))
        .unwrap_or_default();
    let formatting = !q.attributes_to_highlight.is_empty() || !q.attributes_to_crop.is_empty();
    let mut hits = Vec::with_capacity(window.len());
    for s in window {
        let obj = &ix.docs[s.docid as usize].as_ref().expect("live").obj;
        let shown = ix.project(obj, q.attributes_to_retrieve.as_deref());
        let mut hit = Out::from(&shown);
        // With an explicit `displayedAttributes` list, Meilisearch 1.50 shows `_vectors` in
        // search hits only when the index has embedders (the test node has none); checked
        // against a real node.
        if q.retrieve_vectors
            && ix
                .view
                .displayed
                .as_ref()
                .is_none_or(|d| d.iter().any(|p| p == "_vectors"))
        {
            hit.push("_vectors", Out::obj());
        }
        if formatting {
            let mut f = Out::obj();
            for (k, v) in &shown.0 {
                let hl = selected(&q.attributes_to_highlight, k);
                let cr = crop_length_for(&q.attributes_to_crop, k, q.crop_length);
                // Every field is rendered (numbers become strings), as Meilisearch does.
                f.push(k.clone(), format_value(v, &hl_terms, q, hl, cr));
            }
            hit.push("_formatted", f);
        }
        if q.show_matches_position {
            hit.push("_matchesPosition", matches_position(&shown, &hl_terms));
        }
        if q.show_ranking_score {
            hit.push("_rankingScore", json!(s.score));
        }
        if q.show_ranking_score_details {
            hit.push("_rankingScoreDetails", details_json(&rules, &s.outs));
        }
        hits.push(hit);
    }

    let mut body = Out::obj();
    body.push("hits", Out::Arr(hits));
    body.push("query", json!(q.q.clone().unwrap_or_default()));
    body.push(
        "processingTimeMs",
        json!(started.elapsed().as_millis() as u64),
    );
    if paged {
        let hpp = q.hits_per_page.unwrap_or(20);
        let page = q.page.unwrap_or(1);
        body.push("hitsPerPage", json!(hpp));
        body.push("page", json!(page));
        body.push(
            "totalPages",
            json!(if hpp == 0 { 0 } else { total.div_ceil(hpp) }),
        );
        body.push("totalHits", json!(total));
    } else {
        body.push("limit", json!(q.limit));
        body.push("offset", json!(q.offset));
        body.push("estimatedTotalHits", json!(total));
    }
    if let Some(facets) = facets {
        let (dist, stats) = facets_of(ix, &facets, scored.iter().map(|s| s.docid).collect());
        body.push("facetDistribution", dist);
        body.push("facetStats", stats);
    }
    Ok(body)
}

/// `facetDistribution` and `facetStats` of `facets` over the documents `ids`.
fn facets_of(ix: &Index, facets: &[String], mut ids: Vec<u32>) -> (Out, Out) {
    // Docid order, so the original spelling kept for a facet value never depends on ranking.
    ids.sort_unstable();
    ids.dedup();
    let docs: Vec<&Obj> = ids
        .iter()
        .map(|d| &ix.docs[*d as usize].as_ref().expect("live").obj)
        .collect();
    let mut dist = Out::obj();
    let mut stats = Out::obj();
    for f in facets {
        let (vals, st) = count_facet(docs.iter().copied(), f);
        let mut m = Out::obj();
        for fc in order_facet(&ix.view, f, vals, docs.len()) {
            m.push(fc.original, json!(fc.count));
        }
        dist.push(f.clone(), m);
        if let Some((min, max)) = st {
            stats.push(
                f.clone(),
                Out::obj().with("min", json!(min)).with("max", json!(max)),
            );
        }
    }
    (dist, stats)
}

/// A federated search's facets for one index (`federation.facetsByIndex`): counted over the
/// union of the documents its queries match, as Meilisearch does; also how many documents
/// that union holds.
pub fn federated_facets(
    ix: &Index,
    queries: &[Query],
    facets: &[String],
) -> Result<(Out, Out, usize)> {
    let facets = if facets.is_empty() {
        Vec::new()
    } else {
        check_facets(&ix.view, facets).map_err(|e| ApiError {
            message: format!(
                "Inside `.federation.facetsByIndex.{}`: {}",
                ix.uid, e.message
            ),
            ..e
        })?
    };
    let mut ids = Vec::new();
    for q in queries {
        let filter: Option<Filter> = filter::parse(&q.filter, "invalid_search_filter")?;
        if let Some(f) = &filter {
            f.check_filterable(&ix.view, "invalid_search_filter", Some(&ix.uid), None)?;
        }
        let (_, _, scored) = score_all(ix, q, filter.as_ref())?;
        ids.extend(scored.iter().map(|s| s.docid));
    }
    ids.sort_unstable();
    ids.dedup();
    let n = ids.len();
    let (dist, stats) = facets_of(ix, &facets, ids);
    Ok((dist, stats, n))
}

/// `POST /indexes/{uid}/facet-search`.
pub fn facet_search(ix: &Index, body: &Value, started: std::time::Instant) -> Result<Out> {
    let Value::Object(m) = body else {
        return Err(ApiError::bad(
            "bad_request",
            "Invalid value type: expected an object",
        ));
    };
    let facet_name = match m.get("facetName") {
        Some(Value::String(s)) => s.clone(),
        None => {
            return Err(ApiError::bad(
                "missing_facet_search_facet_name",
                "Missing field `facetName`",
            ))
        }
        Some(v) => {
            return Err(ApiError::bad(
                "invalid_facet_search_facet_name",
                format!(
                    "Invalid value type at `.facetName`: expected a string, but found {}: `{v}`",
                    crate::settings::kind_name(v)
                ),
            ))
        }
    };
    let view = &ix.view;
    if !view.is_filterable(&facet_name) {
        let msg = if view.filterable.is_empty() {
            format!("Attribute `{facet_name}` is not facet-searchable. This index does not have configured facet-searchable attributes. To make it facet-searchable add it to the `filterableAttributes` index settings.")
        } else {
            format!("Attribute `{facet_name}` is not facet-searchable. Available facet-searchable attributes patterns are: `{}`. To make it facet-searchable add it to the `filterableAttributes` index settings.", sorted_patterns(view, ", ", false))
        };
        return Err(ApiError::bad("invalid_facet_search_facet_name", msg));
    }
    let facet_query = get_str(m, "facetQuery")?;
    let mut rest = m.clone();
    rest.remove("facetName");
    rest.remove("facetQuery");
    // Meilisearch 1.50's facet search ignores fields it does not know (observed: an
    // unknown field still answers 200).
    rest.retain(|k, _| FIELDS.contains(&k.as_str()));
    let q = Query::from_json(&Value::Object(rest), &[])?;
    // The documents `q` and `filter` select (every match, no pagination), then their values.
    let filter = filter::parse(&q.filter, "invalid_search_filter")?;
    if let Some(f) = &filter {
        f.check_filterable(view, "invalid_search_filter", None, None)?;
    }
    let prepared = prepare(ix, &q)?;
    let rules = resolve_rules(&ix.uid, view, &q, prepared.is_none())?;
    let docs: Vec<&Obj> = ix
        .live()
        .filter(|(_, d)| filter.as_ref().is_none_or(|f| f.matches(&d.obj)))
        .filter(|(_, d)| {
            prepared
                .as_ref()
                .is_none_or(|p| rank_doc(p, &q, &rules, &d.obj, &d.toks).is_some())
        })
        .map(|(_, d)| &d.obj)
        .collect();
    let (vals, _) = count_facet(docs.into_iter(), &facet_name);
    let needle = facet_query.as_deref().map(str::to_lowercase);
    // Meilisearch's facet search only knows string facet values (numbers never match).
    let vals: Vec<FacetCount> = vals
        .into_iter()
        .filter(|fc| fc.num.is_none())
        .filter(|fc| {
            needle.as_ref().is_none_or(|n| {
                fc.original
                    .to_lowercase()
                    .split(|c: char| !c.is_alphanumeric())
                    .any(|w| w.starts_with(n.as_str()))
                    || fc.original.to_lowercase().starts_with(n.as_str())
            })
        })
        .collect();
    // Facet search only ever matches string values, so the number order does not matter.
    let hits: Vec<Out> = order_facet(view, &facet_name, vals, 0)
        .into_iter()
        .map(|fc| {
            Out::obj()
                .with("value", json!(fc.original))
                .with("count", json!(fc.count))
        })
        .collect();
    Ok(Out::obj()
        .with("facetHits", Out::Arr(hits))
        .with(
            "facetQuery",
            facet_query.map(Value::String).unwrap_or(Value::Null),
        )
        .with(
            "processingTimeMs",
            json!(started.elapsed().as_millis() as u64),
        ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings;

    fn index(docs: Value, patch: Value) -> Index {
        let mut ix = Index::new("t", Some("id".into()), 0);
        let mut s = ix.settings.clone();
        settings::apply(&mut s, &settings::validate_patch(&patch).unwrap());
        ix.set_settings(s);
        for d in docs.as_array().unwrap() {
            let o: Obj = serde_json::from_value(d.clone()).unwrap();
            ix.upsert(d["id"].to_string(), o, false);
        }
        ix
    }

    fn run_out(ix: &Index, q: Value) -> Out {
        let q = Query::from_json(&q, &[]).unwrap();
        search(ix, &q, std::time::Instant::now()).unwrap()
    }

    fn run(ix: &Index, q: Value) -> Value {
        run_out(ix, q).to_value()
    }

    fn ids(v: &Value) -> Vec<i64> {
        v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_i64().unwrap())
            .collect()
    }

    #[test]
    fn typo_distance_rules() {
        let c = |s: &str| s.chars().collect::<Vec<_>>();
        assert_eq!(typo_distance(&c("hello"), &c("helo"), 1, false), Some(1));
        assert_eq!(typo_distance(&c("hello"), &c("hlelo"), 1, false), Some(1)); // transposition
        assert_eq!(typo_distance(&c("hello"), &c("jello"), 1, false), None); // first letter = 2
        assert_eq!(typo_distance(&c("hello"), &c("jello"), 2, false), Some(2));
        assert_eq!(typo_distance(&c("hello"), &c("hello"), 1, false), None); // exact is not a typo
        assert_eq!(typo_distance(&c("helo"), &c("hellooo"), 1, true), Some(1));
    }

    #[test]
    fn global_score_is_mixed_radix() {
        assert_eq!(global(&[]), 1.0);
        assert_eq!(global(&[(1, 2)]), 0.5);
        // (1,2),(3,3): rank = 0*3+3 = 3 of 6.
        assert_eq!(global(&[(1, 2), (3, 3)]), 0.5);
        assert_eq!(global(&[(2, 2), (1, 3)]), 4.0 / 6.0);
    }

    #[test]
    fn ranking_prefers_more_words_then_fewer_typos() {
        let ix = index(
            json!([
                {"id": 1, "t": "the quick brown fox"},
                {"id": 2, "t": "quick"},
                {"id": 3, "t": "quikc brown"},
                {"id": 4, "t": "nothing here"}
            ]),
            json!({}),
        );
        let r = run(&ix, json!({"q": "quick brown", "showRankingScore": true}));
        assert_eq!(ids(&r), [1, 3, 2]);
        let s: Vec<f64> = r["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["_rankingScore"].as_f64().unwrap())
            .collect();
        assert!(s.windows(2).all(|w| w[0] >= w[1]) && s.iter().all(|x| (0.0..=1.0).contains(x)));
        let all = run(&ix, json!({"q": "quick brown", "matchingStrategy": "all"}));
        assert_eq!(ids(&all), [1, 3]);
    }

    #[test]
    fn score_depends_only_on_doc_and_query() {
        let docs = json!([{"id": 1, "t": "alpha beta"}, {"id": 2, "t": "alpha gamma beta"}, {"id": 3, "t": "betta alpha"}]);
        let full = index(docs.clone(), json!({"searchableAttributes": ["t"]}));
        let part = index(
            json!([docs[1].clone()]),
            json!({"searchableAttributes": ["t"]}),
        );
        let q =
            json!({"q": "alpha bet", "showRankingScore": true, "showRankingScoreDetails": true});
        let a = run(&full, q.clone());
        let b = run(&part, q);
        let pick = |v: &Value| {
            v["hits"]
                .as_array()
                .unwrap()
                .iter()
                .find(|h| h["id"] == 2)
                .cloned()
                .unwrap()
        };
        assert_eq!(pick(&a)["_rankingScore"], pick(&b)["_rankingScore"]);
        assert_eq!(
            pick(&a)["_rankingScoreDetails"],
            pick(&b)["_rankingScoreDetails"]
        );
    }

    #[test]
    fn details_shape_and_sort_position() {
        let ix = index(
            json!([{"id": 1, "t": "red car", "p": 5}, {"id": 2, "t": "red", "p": 1}, {"id": 3, "t": "red"}]),
            json!({"sortableAttributes": ["p"]}),
        );
        let out = run_out(
            &ix,
            json!({"q": "red", "sort": ["p:asc"], "showRankingScoreDetails": true}),
        );
        let Some(Out::Arr(hits)) = out.get("hits") else {
            panic!()
        };
        let dout = hits[0].get("_rankingScoreDetails").unwrap();
        assert_eq!(
            dout.keys(),
            [
                "words",
                "typo",
                "proximity",
                "attributeRank",
                "p:asc",
                "wordPosition",
                "exactness"
            ]
        );
        assert_eq!(
            dout.get("attributeRank").unwrap().keys(),
            ["order", "score"]
        );
        assert_eq!(dout.get("wordPosition").unwrap().keys(), ["order", "score"]);
        assert_eq!(
            dout.get("exactness").unwrap().keys(),
            ["order", "matchType", "score"]
        );
        let r = out.to_value();
        let d = &r["hits"][0]["_rankingScoreDetails"];
        assert_eq!(
            d["words"],
            json!({"order": 0, "matchingWords": 1, "maxMatchingWords": 1, "score": 1.0})
        );
        assert_eq!(d["p:asc"]["order"], 4);
        // Exact match ("red" == whole attribute) beats sort? No: sort comes before exactness.
        assert_eq!(ids(&r), [2, 1, 3]);
        assert!(r["hits"][2]["_rankingScoreDetails"]["p:asc"]
            .get("value")
            .is_none());
    }

    #[test]
    fn placeholder_pagination_facets() {
        let docs: Vec<Value> = (0..30)
            .map(|i| json!({"id": i, "g": if i % 3 == 0 { "A" } else { "b" }, "n": i}))
            .collect();
        let ix = index(
            Value::Array(docs),
            json!({"filterableAttributes": ["g", "n"], "pagination": {"maxTotalHits": 25}}),
        );
        let out = run_out(
            &ix,
            json!({"page": 2, "hitsPerPage": 10, "facets": ["g", "n"], "filter": "n >= 3"}),
        );
        let r = out.to_value();
        assert_eq!(
            out.keys(),
            [
                "hits",
                "query",
                "processingTimeMs",
                "hitsPerPage",
                "page",
                "totalPages",
                "totalHits",
                "facetDistribution",
                "facetStats"
            ]
        );
        // Totals count every match (27); maxTotalHits (25) only bounds the hits window.
        assert_eq!(r["totalHits"], 27);
        assert_eq!(r["totalPages"], 3);
        assert_eq!(ids(&r)[0], 13);
        assert_eq!(r["facetDistribution"]["g"], json!({"A": 9, "b": 18}));
        assert_eq!(r["facetStats"]["n"], json!({"min": 3.0, "max": 29.0}));
        let r = run(&ix, json!({"offset": 20, "limit": 10}));
        assert_eq!(ids(&r).len(), 5);
        assert_eq!(r["estimatedTotalHits"], 30);
    }

    #[test]
    fn errors() {
        let ix = index(json!([{"id": 1}]), json!({"filterableAttributes": ["a"]}));
        let q = Query::from_json(&json!({"filter": "b = 1"}), &[]).unwrap();
        assert_eq!(
            search(&ix, &q, std::time::Instant::now()).unwrap_err().code,
            "invalid_search_filter"
        );
        let q = Query::from_json(&json!({"sort": ["b:asc"]}), &[]).unwrap();
        assert_eq!(
            search(&ix, &q, std::time::Instant::now()).unwrap_err().code,
            "invalid_search_sort"
        );
        assert_eq!(
            Query::from_json(&json!({"limit": "x"}), &[])
                .unwrap_err()
                .code,
            "invalid_search_limit"
        );
        assert_eq!(
            Query::from_json(&json!({"nope": 1}), &[]).unwrap_err().code,
            "bad_request"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// The merge contract: a document's score and details are the same whether it sits
        /// alone on a node or with any other documents, and scores stay in [0, 1] and are
        /// non-increasing down the hit list.
        #[test]
        fn score_is_a_function_of_document_and_query(
            titles in proptest::collection::vec(proptest::collection::vec(0usize..8, 1..6), 1..12),
            query in proptest::collection::vec(0usize..8, 1..4),
            typo in proptest::bool::ANY,
        ) {
            const V: [&str; 8] = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa"];
            let docs: Vec<Value> = titles.iter().enumerate().map(|(i, t)| json!({
                "id": i, "t": t.iter().map(|w| V[*w]).collect::<Vec<_>>().join(" "), "n": i % 3
            })).collect();
            let mut q: Vec<String> = query.iter().map(|w| V[*w].to_string()).collect();
            if typo {
                q[0].remove(1); // one deletion: still within the typo budget of 5+ letter words
            }
            let settings = json!({"searchableAttributes": ["t"], "sortableAttributes": ["n"]});
            let body = json!({"q": q.join(" "), "limit": 100, "sort": ["n:desc"], "showRankingScore": true, "showRankingScoreDetails": true});
            let full = run(&index(Value::Array(docs.clone()), settings.clone()), body.clone());
            let hits = full["hits"].as_array().unwrap();
            let scores: Vec<f64> = hits.iter().map(|h| h["_rankingScore"].as_f64().unwrap()).collect();
            proptest::prop_assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
            for h in hits {
                let id = h["id"].as_u64().unwrap() as usize;
                let alone = run(&index(json!([docs[id].clone()]), settings.clone()), body.clone());
                proptest::prop_assert_eq!(&alone["hits"][0]["_rankingScore"], &h["_rankingScore"]);
                proptest::prop_assert_eq!(&alone["hits"][0]["_rankingScoreDetails"], &h["_rankingScoreDetails"]);
            }
        }
    }

    #[test]
    fn matches_positions_are_byte_spans() {
        let mut t = HashMap::new();
        t.insert("héllo".to_string(), None);
        t.insert("world".to_string(), Some(3));
        t.insert("worlds".to_string(), Some(3));
        let d: Obj =
            serde_json::from_value(json!({"a": "say Héllo world", "b": ["x", "worlds"], "c": 1}))
                .unwrap();
        assert_eq!(
            matches_position(&d, &t).to_value(),
            json!({"a": [{"start": 4, "length": 6}, {"start": 11, "length": 3}], "b": [{"start": 0, "length": 3, "indices": [1]}]})
        );
    }

    #[test]
    fn highlight_and_crop() {
        let mut t = HashMap::new();
        t.insert("hello".to_string(), None);
        t.insert("world".to_string(), Some(3));
        assert_eq!(
            highlight("Hello, World!", &t, "<em>", "</em>"),
            "<em>Hello</em>, <em>Wor</em>ld!"
        );
        assert_eq!(crop("a b c d hello e f g", &t, 3, "…"), "…d hello e…");
    }
}
