//! Property tests: the fast merge against the naive reference, the ordering invariants, and
//! robustness on arbitrary bytes.

use crate::{
    merge_document_lists, merge_facet_search, merge_index_stats, merge_search, reference, Bump,
    DocSort, FacetOrder, MergeError, Pagination, SearchMergeRequest, ShardInput,
};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

// ---------------------------------------------------------------------------------------
// An order-preserving JSON tree, to check what `serde_json::Value` equality cannot see:
// key order of the top level and of hits, and facet value order.

#[derive(Debug, Clone, PartialEq)]
enum O {
    Scalar(Value),
    Arr(Vec<O>),
    Obj(Vec<(String, O)>),
}

impl<'de> serde::Deserialize<'de> for O {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = O;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, v: bool) -> Result<O, E> {
                Ok(O::Scalar(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<O, E> {
                Ok(O::Scalar(v.into()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<O, E> {
                Ok(O::Scalar(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<O, E> {
                Ok(O::Scalar(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<O, E> {
                Ok(O::Scalar(v.into()))
            }
            fn visit_unit<E>(self) -> Result<O, E> {
                Ok(O::Scalar(Value::Null))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<O, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(O::Arr(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<O, A::Error> {
                let mut v = Vec::new();
                while let Some(kv) = a.next_entry()? {
                    v.push(kv);
                }
                Ok(O::Obj(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl O {
    fn keys(&self) -> Vec<&str> {
        match self {
            O::Obj(m) => m.iter().map(|(k, _)| k.as_str()).collect(),
            _ => vec![],
        }
    }
    fn get(&self, key: &str) -> Option<&O> {
        match self {
            O::Obj(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

fn ordered(bytes: &[u8]) -> O {
    serde_json::from_slice(bytes).expect("merge output is valid JSON")
}

fn norm(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("valid JSON")
}

// ---------------------------------------------------------------------------------------
// Generators. Bodies are rendered by hand so that member order and whitespace vary (serde_json
// would sort keys).

/// The shape every generated shard shares (as nodes of one index do).
#[derive(Debug, Clone)]
struct Layout {
    /// Rules in ranking order: 0 = rank rule, 1 = sort asc, 2 = sort desc, 3 = geo asc.
    rules: Vec<u8>,
}

const RULE_NAMES: [&str; 4] = ["words", "typo", "proximity", "exactness"];

fn layout() -> impl Strategy<Value = Layout> {
    prop::collection::vec(
        prop_oneof![3 => Just(0u8), 1 => Just(1), 1 => Just(2), 1 => Just(3)],
        1..5,
    )
    .prop_map(|rules| Layout { rules })
}

#[derive(Debug, Clone)]
struct GenHit {
    score: Option<f64>,
    /// One value per rule of the layout.
    rule_values: Vec<Value>,
    title: String,
    formatted: bool,
    reserved_pos: usize,
    pretty: bool,
}

fn sort_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => (0i64..4).prop_map(Value::from),
        1 => (0u32..4).prop_map(|x| Value::from(x as f64 / 2.0)),
        3 => prop::sample::select(vec!["a", "b", "B", "é", "a\"q"]).prop_map(Value::from),
        1 => Just(Value::Null),
        1 => Just(Value::Bool(true)),
    ]
}

fn gen_hit(rules: usize) -> impl Strategy<Value = GenHit> {
    (
        prop::option::weighted(
            0.95,
            prop::sample::select(vec![1.0, 0.75, 0.5, 0.3333333333333333]),
        ),
        prop::collection::vec(
            prop_oneof![
                2 => prop::sample::select(vec![1.0, 0.5, 0.0]).prop_map(Value::from),
                2 => sort_value(),
            ],
            rules,
        ),
        "[a-z \\\\\"é😀\\n]{0,12}",
        any::<bool>(),
        0usize..6,
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(score, rule_values, title, formatted, reserved_pos, pretty)| GenHit {
                score,
                rule_values,
                title,
                formatted,
                reserved_pos,
                pretty,
            },
        )
}

fn render_hit(h: &GenHit, id: u64, layout: &Layout, with_details: bool) -> String {
    let mut members: Vec<(String, String)> = vec![
        ("id".into(), id.to_string()),
        ("title".into(), Value::from(h.title.as_str()).to_string()),
        (
            "nested".into(),
            json!({"a": [1, {"b": null}], "_miroir_x": 1}).to_string(),
        ),
    ];
    if h.formatted {
        members.push((
            "_formatted".into(),
            format!(
                r#"{{ "id": "{id}", "_miroir_shard": "3", "title": {}, "_miroir_updated_at": "1" }}"#,
                Value::from(h.title.as_str())
            ),
        ));
    }
    if let Some(s) = h.score {
        members.push(("_rankingScore".into(), Value::from(s).to_string()));
    }
    if with_details {
        let mut d = serde_json::Map::new();
        let mut entries = Vec::new();
        for (order, (kind, v)) in layout.rules.iter().zip(&h.rule_values).enumerate() {
            let (name, body) = match kind {
                0 => (
                    RULE_NAMES[order % 4].to_string(),
                    json!({"order": order, "score": v.as_f64().unwrap_or(0.25)}),
                ),
                1 | 2 => (
                    format!("f{order}:{}", if *kind == 1 { "asc" } else { "desc" }),
                    json!({"order": order, "value": v}),
                ),
                _ => {
                    let dist = v.as_f64();
                    let mut e = json!({"order": order, "value": {"lat": 1.0, "lng": 2.0}});
                    if let Some(x) = dist {
                        e["distance"] = x.into();
                    }
                    (format!("_geoPoint({order}.0, 2.0):asc"), e)
                }
            };
            entries.push((name.clone(), body.to_string()));
            d.insert(name, body);
        }
        // Rendered in reverse so the parser must sort by `order`.
        let body: Vec<String> = entries
            .iter()
            .rev()
            .map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), v))
            .collect();
        members.push((
            "_rankingScoreDetails".into(),
            format!("{{{}}}", body.join(",")),
        ));
    }
    let pos = h.reserved_pos.min(members.len());
    members.insert(pos, ("_miroir_shard".into(), (id % 64).to_string()));
    let sep = if h.pretty { ",\n    " } else { "," };
    let colon = if h.pretty { " : " } else { ":" };
    let body: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("{}{colon}{v}", Value::from(k.as_str())))
        .collect();
    format!("{{{}}}", body.join(sep))
}

type FacetGen = (u8, Vec<(u8, u64)>);

#[derive(Debug, Clone)]
struct GenShard {
    hits: Vec<GenHit>,
    total_extra: u64,
    ms: u64,
    /// `(facet index, [(value index, count)])`.
    facets: Option<Vec<FacetGen>>,
    stats: Option<Vec<(u8, (i32, i32))>>,
    semantic: Option<u64>,
    failed: bool,
}

fn gen_shard(rules: usize) -> impl Strategy<Value = GenShard> {
    (
        prop::collection::vec(gen_hit(rules), 0..12),
        0u64..20,
        0u64..50,
        prop::option::of(prop::collection::vec(
            (0u8..4, prop::collection::vec((0u8..8, 0u64..9), 0..6)),
            0..3,
        )),
        prop::option::of(prop::collection::vec((0u8..4, (-5i32..5, 0i32..9)), 0..3)),
        prop::option::weighted(0.2, 0u64..10),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(hits, total_extra, ms, facets, stats, semantic, failed)| GenShard {
                hits,
                total_extra,
                ms,
                facets,
                stats,
                semantic,
                failed,
            },
        )
}

const FACETS: [&str; 4] = ["genre", "color", "_miroir_shard", "size"];
const FACET_VALUES: [&str; 8] = ["a", "b", "c", "Zed", "été", "10", "9", "x\"y"];

fn render_shard(
    s: &GenShard,
    first_id: u64,
    layout: &Layout,
    details: bool,
    page_mode: bool,
    other_first: bool,
) -> String {
    let hits: Vec<String> = s
        .hits
        .iter()
        .enumerate()
        .map(|(i, h)| render_hit(h, first_id + i as u64, layout, details))
        .collect();
    let mut top: Vec<(String, String)> = vec![
        ("hits".into(), format!("[{}]", hits.join(",\n"))),
        ("query".into(), r#""qu\"ery""#.into()),
        ("processingTimeMs".into(), s.ms.to_string()),
    ];
    let total = s.hits.len() as u64 + s.total_extra;
    if page_mode {
        top.push(("hitsPerPage".into(), "7".into()));
        top.push(("page".into(), "1".into()));
        top.push(("totalPages".into(), "3".into()));
        top.push(("totalHits".into(), total.to_string()));
    } else {
        top.push(("limit".into(), "7".into()));
        top.push(("offset".into(), "0".into()));
        top.push(("estimatedTotalHits".into(), total.to_string()));
    }
    if let Some(f) = &s.facets {
        let mut o = serde_json::Map::new();
        for (name, values) in f {
            let mut m = serde_json::Map::new();
            for (v, c) in values {
                m.insert(FACET_VALUES[*v as usize].into(), (*c).into());
            }
            o.insert(FACETS[*name as usize].into(), Value::Object(m));
        }
        top.push(("facetDistribution".into(), Value::Object(o).to_string()));
    }
    if let Some(st) = &s.stats {
        let mut o = serde_json::Map::new();
        for (name, (min, span)) in st {
            let max = min + span;
            o.insert(
                FACETS[*name as usize].into(),
                json!({"min": *min as f64 / 2.0, "max": max}),
            );
        }
        top.push(("facetStats".into(), Value::Object(o).to_string()));
    }
    let other = ("requestUid".to_string(), format!(r#""uid-{first_id}""#));
    if other_first {
        top.insert(1, other);
    } else {
        top.push(other);
    }
    if let Some(n) = s.semantic {
        top.push(("semanticHitCount".into(), n.to_string()));
    }
    let body: Vec<String> = top.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", body.join(","))
}

#[derive(Debug, Clone)]
struct Case {
    layout: Layout,
    shards: Vec<GenShard>,
    sort: bool,
    want_score: bool,
    want_details: bool,
    page_mode: bool,
    a: usize,
    b: usize,
    max_values: usize,
    max_total_hits: usize,
    count_order: bool,
    query: Option<String>,
}

fn case() -> impl Strategy<Value = Case> {
    layout().prop_flat_map(|layout| {
        let n = layout.rules.len();
        (
            Just(layout),
            prop::collection::vec(gen_shard(n), 1..5),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            0usize..12,
            0usize..12,
            prop::sample::select(vec![0usize, 1, 2, 100]),
            prop::sample::select(vec![5usize, 15, 1000]),
            any::<bool>(),
            prop::option::of("[a-z\"\\\\]{0,5}"),
        )
            .prop_map(
                |(
                    layout,
                    shards,
                    sort,
                    want_score,
                    want_details,
                    page_mode,
                    a,
                    b,
                    max_values,
                    mth,
                    count_order,
                    query,
                )| Case {
                    layout,
                    shards,
                    sort,
                    want_score,
                    want_details,
                    page_mode,
                    a,
                    b,
                    max_values,
                    max_total_hits: mth,
                    count_order,
                    query,
                },
            )
    })
}

struct Rendered {
    bodies: Vec<Option<Vec<u8>>>,
    /// Every input hit by id: its member keys in body order.
    keys_by_id: BTreeMap<u64, Vec<String>>,
}

fn render(c: &Case) -> Rendered {
    let mut first_id = 0;
    let mut keys_by_id = BTreeMap::new();
    let bodies = c
        .shards
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let body = render_shard(
                s,
                first_id,
                &c.layout,
                c.sort || c.want_details,
                c.page_mode,
                i % 2 == 0,
            );
            for h in ordered(body.as_bytes()).get("hits").into_iter() {
                if let O::Arr(hits) = h {
                    for hit in hits {
                        let Some(O::Scalar(id)) = hit.get("id") else {
                            panic!()
                        };
                        keys_by_id.insert(
                            id.as_u64().unwrap(),
                            hit.keys().iter().map(|k| k.to_string()).collect(),
                        );
                    }
                }
            }
            first_id += 1000;
            (!s.failed).then(|| body.into_bytes())
        })
        .collect();
    Rendered { bodies, keys_by_id }
}

fn request<'a>(c: &'a Case, by: &'a BTreeMap<String, FacetOrder>) -> SearchMergeRequest<'a> {
    SearchMergeRequest {
        pagination: if c.page_mode {
            Pagination::Page {
                page: c.a % 4,
                hits_per_page: c.b,
            }
        } else {
            Pagination::OffsetLimit {
                offset: c.a,
                limit: c.b,
            }
        },
        sort_requested: c.sort,
        want_ranking_score: c.want_score,
        want_ranking_score_details: c.want_details,
        max_values_per_facet: c.max_values,
        sort_facet_values_by: by,
        max_total_hits: c.max_total_hits,
        reserved_prefix: "_miroir_",
        query: c.query.as_deref(),
        distinct: None,
        drop: &[],
    }
}

fn inputs(bodies: &[Option<Vec<u8>>]) -> Vec<ShardInput<'_>> {
    bodies
        .iter()
        .map(|b| match b {
            Some(b) => ShardInput::Ok(b),
            None => ShardInput::Failed,
        })
        .collect()
}

fn fast(req: &SearchMergeRequest, shards: &[ShardInput]) -> Result<Vec<u8>, MergeError> {
    let arena = Bump::new();
    let mut out = Vec::new();
    merge_search(req, shards, &arena, &mut out)?;
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// The fast merge equals the reference (JSON-normalised), keeps Meilisearch's key order,
    /// keeps each hit's member order minus the removed members, and orders facet values.
    #[test]
    fn fast_merge_equals_reference(c in case()) {
        let r = render(&c);
        let mut by = BTreeMap::new();
        by.insert("*".to_string(), if c.count_order { FacetOrder::Count } else { FacetOrder::Alpha });
        by.insert("genre".to_string(), FacetOrder::Count);
        let req = request(&c, &by);
        let shards = inputs(&r.bodies);
        let ours = fast(&req, &shards).expect("generated bodies are valid");
        fast(&req, &[ShardInput::Ok(&ours)]).expect("merge output re-merges");
        let theirs = reference::merge_search(&req, &shards).expect("reference accepts");
        prop_assert_eq!(norm(&ours), norm(&theirs));

        let o = ordered(&ours);
        let keys = o.keys();
        let tail: &[&str] = if c.page_mode {
            &["hitsPerPage", "page", "totalPages", "totalHits"]
        } else {
            &["limit", "offset", "estimatedTotalHits"]
        };
        prop_assert_eq!(&keys[..3], &["hits", "query", "processingTimeMs"]);
        prop_assert_eq!(&keys[3..3 + tail.len()], tail);
        if let Some(O::Arr(hits)) = o.get("hits") {
            for hit in hits {
                let Some(O::Scalar(id)) = hit.get("id") else { panic!("hit without id") };
                let want: Vec<String> = r.keys_by_id[&id.as_u64().unwrap()]
                    .iter()
                    .filter(|k| !k.starts_with("_miroir_"))
                    .filter(|k| c.want_score || *k != "_rankingScore")
                    .filter(|k| c.want_details || *k != "_rankingScoreDetails")
                    .cloned()
                    .collect();
                prop_assert_eq!(hit.keys(), want);
                if let Some(f) = hit.get("_formatted") {
                    prop_assert_eq!(f.keys(), vec!["id", "title"]);
                }
            }
        }
        if let Some(O::Obj(facets)) = o.get("facetDistribution") {
            let names: Vec<&str> = facets.iter().map(|(k, _)| k.as_str()).collect();
            let mut sorted = names.clone();
            sorted.sort();
            prop_assert_eq!(names, sorted);
            for (name, values) in facets {
                let O::Obj(values) = values else { panic!() };
                let pairs: Vec<(&str, u64)> = values
                    .iter()
                    .map(|(k, v)| match v {
                        O::Scalar(n) => (k.as_str(), n.as_u64().unwrap()),
                        _ => panic!(),
                    })
                    .collect();
                let mut want = pairs.clone();
                let total = norm(&ours)
                    .get(if c.page_mode { "totalHits" } else { "estimatedTotalHits" })
                    .and_then(serde_json::Value::as_u64)
                    .unwrap();
                crate::facets::order_distribution(&mut want, req.facet_order(name), total);
                prop_assert_eq!(pairs, want);
            }
        }
    }

    /// Arbitrary bytes as shard bodies: an error or a valid JSON body, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..4),
        sort in any::<bool>(),
    ) {
        let by = BTreeMap::new();
        let req = SearchMergeRequest {
            pagination: Pagination::OffsetLimit { offset: 0, limit: 20 },
            sort_requested: sort,
            want_ranking_score: false,
            want_ranking_score_details: false,
            max_values_per_facet: 100,
            sort_facet_values_by: &by,
            max_total_hits: 1000,
            reserved_prefix: "_miroir_",
            query: None,
            distinct: None,
            drop: &[],
        };
        let shards: Vec<ShardInput> = bodies.iter().map(|b| ShardInput::Ok(b)).collect();
        if let Ok(out) = fast(&req, &shards) {
            // Every accepted merge is a valid response that merges again on its own.
            norm(&out);
            fast(&req, &[ShardInput::Ok(&out)]).expect("merge output re-merges");
        }
        let arena = Bump::new();
        let mut out = Vec::new();
        let _ = merge_facet_search(&shards, 3, FacetOrder::Count, &arena, &mut out);
        let _ = merge_document_lists(&shards, 1, 2, &[], &[], "_miroir_", &arena, &mut out);
        let _ = merge_index_stats(&shards, 2, "_miroir_", &arena, &mut out);
    }

    /// Valid bodies with one byte changed or cut short: an error or valid JSON, never a panic;
    /// and whenever serde_json rejects the body, so does the merge.
    #[test]
    fn corrupted_bodies_are_rejected_not_spliced(c in case(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<bool>()) {
        let r = render(&c);
        let Some(Some(body)) = r.bodies.iter().find(|b| b.is_some()) else { return Ok(()) };
        let mut body = body.clone();
        let i = at.index(body.len());
        if cut { body.truncate(i) } else { body[i] = byte }
        let by = BTreeMap::new();
        let mut req = request(&c, &by);
        let res = fast(&req, &[ShardInput::Ok(&body)]);
        if let (Ok(out), true) = (&res, std::str::from_utf8(&body).is_ok()) {
            let parsed = serde_json::from_slice::<Value>(out);
            prop_assert!(parsed.is_ok() || parsed.is_err_and(|e| e.to_string().contains("out of range")) || body.windows(3).any(|w| w == b"\\ud" || w == b"\\uD") || body.iter().any(|b| *b < 0x20));
        }
        // Hits past the merge window are not scanned in Meilisearch's layout (by design), so
        // to require every corruption to be caught, ask for a window covering all hits.
        req.pagination = Pagination::OffsetLimit { offset: 0, limit: 1000 };
        req.max_total_hits = 1000;
        let res = fast(&req, &[ShardInput::Ok(&body)]);
        if cut {
            // A truncated object is never valid JSON.
            prop_assert!(res.is_err(), "accepted a truncated body");
            return Ok(());
        }
        // Control characters, invalid UTF-8 and lone surrogates inside strings are relayed
        // (documented), and out-of-range numbers read as infinities: only structural
        // corruption is required to be caught.
        let relayed = !(0x20..0x7f).contains(&byte)
            || std::str::from_utf8(&body).is_err()
            || body.windows(3).any(|w| w == b"\\ud" || w == b"\\uD");
        if let (Ok(out), false) = (&res, relayed) {
            // Valid JSON, except that a number made out of range (e.g. `0.33E33333`) is
            // relayed as received, like every number the merge does not interpret.
            if let Err(e) = serde_json::from_slice::<Value>(out) {
                prop_assert!(e.to_string().contains("out of range"), "invalid output: {}", e);
            }
        }
        if let Err(e) = serde_json::from_slice::<Value>(&body) {
            if !relayed && !e.to_string().contains("out of range") {
                prop_assert!(res.is_err(), "accepted corrupted body: {}", e);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Invariants on consistent corpora (what a real cluster produces).

/// A hit of a corpus: `(id, score, sort value)`; the rule layout is words → sort asc →
/// exactness, with `words` = score.
fn corpus_hit(id: u64, score: f64, value: &Value, exact: f64, sort: bool) -> String {
    if sort {
        format!(
            r#"{{"id":{id},"_rankingScore":{score},"_rankingScoreDetails":{{"words":{{"order":0,"score":{score}}},"v:asc":{{"order":1,"value":{value}}},"exactness":{{"order":2,"score":{exact}}}}}}}"#
        )
    } else {
        format!(r#"{{"id":{id},"_rankingScore":{score}}}"#)
    }
}

/// Sorts a corpus the way one node holding all of it would (stably: ties keep corpus order,
/// standing in for the node's internal document id order).
fn node_order(corpus: &mut [CorpusHit], sort: bool) {
    use std::cmp::Ordering;
    corpus.sort_by(|a, b| {
        let o = b.1.partial_cmp(&a.1).unwrap();
        if !sort || o != Ordering::Equal {
            return o;
        }
        // asc with milli's order: numbers (ascending) before strings (ascending).
        let key = |v: &Value| match v {
            Value::Number(n) => (0, n.as_f64().unwrap(), String::new()),
            Value::String(s) => (1, 0.0, s.clone()),
            _ => (2, 0.0, String::new()),
        };
        let (ka, kb) = (key(&a.2), key(&b.2));
        ka.0.cmp(&kb.0)
            .then(ka.1.partial_cmp(&kb.1).unwrap())
            .then(ka.2.cmp(&kb.2))
            .then(b.3.partial_cmp(&a.3).unwrap())
    });
}

fn split(corpus: &[CorpusHit], assign: &[usize], k: usize, sort: bool) -> Vec<Vec<u8>> {
    (0..k)
        .map(|s| {
            let hits: Vec<String> = corpus
                .iter()
                .zip(assign)
                .filter(|(_, a)| **a % k == s)
                .map(|((id, sc, v, ex), _)| corpus_hit(*id, *sc, v, *ex, sort))
                .collect();
            let n = hits.len();
            format!(
                r#"{{"hits":[{}],"query":"","processingTimeMs":1,"limit":1,"offset":0,"estimatedTotalHits":{n}}}"#,
                hits.join(",")
            )
            .into_bytes()
        })
        .collect()
}

fn ids_and_keys(out: &[u8]) -> Vec<(u64, Value)> {
    let v = norm(out);
    v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let key = json!([h["_rankingScore"], h["_rankingScoreDetails"]]);
            (h["id"].as_u64().unwrap(), key)
        })
        .collect()
}

/// A corpus hit: `(id, score, sort value, exactness score)`.
type CorpusHit = (u64, f64, Value, f64);

/// `(corpus, shard assignment, K, sort mode)`.
fn corpus_strategy() -> impl Strategy<Value = (Vec<CorpusHit>, Vec<usize>, usize, bool)> {
    (
        prop::collection::vec(
            (
                // Mostly tied scores, as real Meilisearch scores are.
                prop::sample::select(vec![1.0, 1.0, 1.0, 0.5]),
                prop_oneof![
                    (0i64..3).prop_map(Value::from),
                    prop::sample::select(vec!["a", "b"]).prop_map(Value::from),
                    Just(Value::Null)
                ],
                prop::sample::select(vec![1.0, 0.5]),
            ),
            0..60,
        ),
        prop::collection::vec(0usize..8, 60),
        1usize..6,
        any::<bool>(),
    )
        .prop_map(|(hits, assign, k, sort)| {
            let corpus = hits
                .into_iter()
                .enumerate()
                .map(|(i, (s, v, e))| (i as u64, s, v, e))
                .collect();
            (corpus, assign, k, sort)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Splitting a node-ordered corpus over K shards (each keeping the corpus' relative order)
    /// and merging gives, on every page, the same ranking sequence as the unsplit corpus; and
    /// consecutive pages neither overlap nor skip a hit.
    #[test]
    fn split_corpus_merges_back((mut corpus, assign, k, sort) in corpus_strategy(), page in 1usize..8) {
        node_order(&mut corpus, sort);
        let bodies = split(&corpus, &assign, k, sort);
        let shards: Vec<ShardInput> = bodies.iter().map(|b| ShardInput::Ok(b)).collect();
        let by = BTreeMap::new();
        let req = |offset, limit| SearchMergeRequest {
            pagination: Pagination::OffsetLimit { offset, limit },
            sort_requested: sort,
            want_ranking_score: true,
            want_ranking_score_details: true,
            max_values_per_facet: 100,
            sort_facet_values_by: &by,
            max_total_hits: 1000,
            reserved_prefix: "_miroir_",
            query: None,
            distinct: None,
            drop: &[],
        };
        let whole = split(&corpus, &vec![0; corpus.len()], 1, sort);
        let want = ids_and_keys(&fast(&req(0, 1000), &[ShardInput::Ok(&whole[0])]).unwrap());
        let mut seen = Vec::new();
        let mut offset = 0;
        while offset <= corpus.len() {
            let got = ids_and_keys(&fast(&req(offset, page), &shards).unwrap());
            let expect = &want[offset.min(want.len())..(offset + page).min(want.len())];
            let got_keys: Vec<&Value> = got.iter().map(|x| &x.1).collect();
            let want_keys: Vec<&Value> = expect.iter().map(|x| &x.1).collect();
            prop_assert_eq!(got_keys, want_keys, "page at offset {}", offset);
            seen.extend(got.iter().map(|x| x.0));
            offset += page;
        }
        let mut ids = seen.clone();
        ids.sort_unstable();
        ids.dedup();
        prop_assert_eq!(ids.len(), seen.len(), "pages overlap");
        prop_assert_eq!(seen.len(), corpus.len(), "pages skip hits");
    }

    /// Facet search against the reference.
    #[test]
    fn facet_search_equals_reference(
        shards in prop::collection::vec(prop::option::weighted(0.9, prop::collection::vec((0u8..8, 0u64..20), 0..8)), 1..5),
        max_values in 0usize..6,
        count in any::<bool>(),
    ) {
        let bodies: Vec<Option<Vec<u8>>> = shards.iter().map(|s| s.as_ref().map(|hits| {
            let hits: Vec<Value> = hits.iter().map(|(v, c)| json!({"value": FACET_VALUES[*v as usize], "count": c})).collect();
            serde_json::to_vec(&json!({"facetHits": hits, "facetQuery": "q", "processingTimeMs": hits.len()})).unwrap()
        })).collect();
        let inputs = inputs(&bodies);
        let order = if count { FacetOrder::Count } else { FacetOrder::Alpha };
        let arena = Bump::new();
        let mut out = Vec::new();
        merge_facet_search(&inputs, max_values, order, &arena, &mut out).unwrap();
        let theirs = reference::merge_facet_search(&inputs, max_values, order).unwrap();
        prop_assert_eq!(norm(&out), norm(&theirs));
        // Value order is semantic in an array; serde_json equality already checks it.
    }

    /// Document listings against the reference (including nodes that return fewer
    /// documents than their total).
    #[test]
    fn document_lists_equal_reference(
        shards in prop::collection::vec((0usize..6, 0u64..3), 1..5),
        offset in 0usize..20,
        limit in 0usize..10,
    ) {
        let mut id = 0;
        let bodies: Vec<Option<Vec<u8>>> = shards.iter().map(|(n, extra)| {
            let docs: Vec<Value> = (0..*n).map(|_| { id += 1; json!({"id": id, "_miroir_shard": 1, "t": "x"}) }).collect();
            let total = *n as u64 + extra;
            // A node returns at most offset+limit documents.
            let docs: Vec<Value> = docs.into_iter().take(offset + limit).collect();
            Some(serde_json::to_vec(&json!({"results": docs, "offset": 0, "limit": offset + limit, "total": total})).unwrap())
        }).collect();
        let inputs = inputs(&bodies);
        let arena = Bump::new();
        let mut out = Vec::new();
        merge_document_lists(&inputs, offset, limit, &[], &[], "_miroir_", &arena, &mut out).unwrap();
        let theirs = reference::merge_document_lists(&inputs, offset, limit, "_miroir_").unwrap();
        prop_assert_eq!(norm(&out), norm(&theirs));
    }

    /// `distinct` across shards: each node's hits are already distinct (as a node returns
    /// them); the merge keeps the first hit of each value in merged order, whatever its shard,
    /// keeps every hit without a value, and still fills the window — against the reference,
    /// with values of every kind (case and space variants of one string, numbers, `0`/`-0.0`,
    /// booleans, arrays, `null`, missing), tied scores, both paginations and a dropped field.
    #[test]
    fn distinct_across_shards_equals_reference(
        shards in prop::collection::vec(prop::collection::vec((0u8..12, 0u8..3), 0..10), 1..5),
        a in 0usize..8,
        b in 0usize..8,
        page_mode in any::<bool>(),
        drop_g in any::<bool>(),
    ) {
        let g = |k: u8| -> Option<Value> {
            match k {
                0 => Some(json!("Red")),
                1 => Some(json!(" red ")),
                2 => Some(json!("blue")),
                3 => Some(json!(1)),
                4 => Some(json!(1.0)),
                5 => Some(json!(0)),
                6 => Some(json!(-0.0)),
                7 => Some(json!(true)),
                8 => Some(json!(["blue", 7])),
                9 => Some(json!(["green", "RED"])),
                10 => Some(Value::Null),
                _ => None,
            }
        };
        let mut id = 0;
        let bodies: Vec<Option<Vec<u8>>> = shards.iter().map(|hits| {
            // A node's own hits: by score (ties in generation order), already distinct.
            let mut hits: Vec<(u8, u8, u64)> = hits.iter().map(|&(k, s)| { id += 1; (k, s, id) }).collect();
            hits.sort_by_key(|h| std::cmp::Reverse(h.1));
            let mut docs: Vec<Value> = hits.iter().map(|&(k, s, id)| {
                let mut h = json!({"id": id, "_miroir_shard": "#", "_rankingScore": 0.25 * f64::from(s)});
                if let Some(v) = g(k) {
                    h["g"] = v;
                }
                h
            }).collect();
            docs = reference::distinct_within(&docs, "g");
            Some(serde_json::to_vec(&json!({"hits": docs, "query": "", "processingTimeMs": 1, "limit": 20, "offset": 0, "estimatedTotalHits": docs.len()})).unwrap())
        }).collect();
        let inputs = inputs(&bodies);
        let by = BTreeMap::new();
        let drop: &[&str] = if drop_g { &["g"] } else { &[] };
        let req = SearchMergeRequest {
            pagination: if page_mode {
                Pagination::Page { page: a % 4, hits_per_page: b }
            } else {
                Pagination::OffsetLimit { offset: a, limit: b }
            },
            sort_requested: false,
            want_ranking_score: true,
            want_ranking_score_details: false,
            max_values_per_facet: 100,
            sort_facet_values_by: &by,
            max_total_hits: 1000,
            reserved_prefix: "_miroir_",
            query: None,
            distinct: Some("g"),
            drop,
        };
        let arena = Bump::new();
        let mut out = Vec::new();
        merge_search(&req, &inputs, &arena, &mut out).unwrap();
        let theirs = reference::merge_search(&req, &inputs).unwrap();
        prop_assert_eq!(norm(&out), norm(&theirs));
    }

    /// Sorted document listings: each node's list sorted as milli would, the merge equals a
    /// stable sort of all documents (same window, same order, ties in node order), with
    /// values of every kind (numbers, strings differing in case and spaces, booleans, null,
    /// missing) and a dropped sort field.
    #[test]
    fn sorted_document_lists_equal_reference(
        shards in prop::collection::vec(prop::collection::vec((0u8..9, 0u8..4), 0..8), 1..5),
        offset in 0usize..12,
        limit in 0usize..10,
        asc in any::<bool>(),
        asc2 in any::<bool>(),
        drop_r in any::<bool>(),
    ) {
        let r = |k: u8| -> Option<Value> {
            match k {
                0 => Some(json!(1.5)),
                1 => Some(json!(-2)),
                2 => Some(json!(10)),
                3 => Some(json!("b")),
                4 => Some(json!(" A")),
                5 => Some(json!("a")),
                6 => Some(json!(true)),
                7 => Some(Value::Null),
                _ => None,
            }
        };
        let sort = vec![("r".to_string(), asc), ("d".to_string(), asc2)];
        let mut id = 0;
        let bodies: Vec<Option<Vec<u8>>> = shards.iter().map(|docs| {
            let mut docs: Vec<Value> = docs.iter().map(|(k, d)| {
                id += 1;
                let mut doc = json!({"id": id, "_miroir_shard": 1, "d": format!("d{d}")});
                if let Some(v) = r(*k) {
                    doc["r"] = v;
                }
                doc
            }).collect();
            docs.sort_by(|a, b| reference::cmp_sorted_docs(a, b, &sort));
            docs.truncate(offset + limit);
            Some(serde_json::to_vec(&json!({"results": docs, "offset": 0, "limit": offset + limit, "total": docs.len() + 3})).unwrap())
        }).collect();
        let inputs = inputs(&bodies);
        let criteria: Vec<DocSort> = sort.iter().map(|(f, a)| DocSort { field: f.clone(), asc: *a }).collect();
        let drop: &[&str] = if drop_r { &["r"] } else { &[] };
        let arena = Bump::new();
        let mut out = Vec::new();
        merge_document_lists(&inputs, offset, limit, &criteria, drop, "_miroir_", &arena, &mut out).unwrap();
        let theirs = reference::merge_sorted_document_lists(&inputs, offset, limit, &sort, drop, "_miroir_").unwrap();
        prop_assert_eq!(norm(&out), norm(&theirs));
    }
}

// ---------------------------------------------------------------------------------------
// Examples.

fn simple_req(by: &BTreeMap<String, FacetOrder>) -> SearchMergeRequest<'_> {
    SearchMergeRequest {
        pagination: Pagination::OffsetLimit {
            offset: 0,
            limit: 20,
        },
        sort_requested: false,
        want_ranking_score: false,
        want_ranking_score_details: false,
        max_values_per_facet: 100,
        sort_facet_values_by: by,
        max_total_hits: 1000,
        reserved_prefix: "_miroir_",
        query: None,
        distinct: None,
        drop: &[],
    }
}

#[test]
fn splices_hits_and_strips_reserved_and_scores() {
    let by = BTreeMap::new();
    let a = br#"{"hits":[{"id":1,"t":"a\"b","_formatted":{"t":"<em>a</em>","_miroir_shard":"2"},"_miroir_shard":2,"_rankingScore":0.9}],"query":"x","processingTimeMs":3,"limit":20,"offset":0,"estimatedTotalHits":1,"requestUid":"r1"}"#;
    let b = br#"{"hits":[{"_miroir_shard":5,"id":2,"_rankingScore":0.95}],"query":"x","processingTimeMs":7,"limit":20,"offset":0,"estimatedTotalHits":4,"requestUid":"r2"}"#;
    let out = fast(&simple_req(&by), &[ShardInput::Ok(a), ShardInput::Ok(b)]).unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"hits":[{"id":2},{"id":1,"t":"a\"b","_formatted":{"t":"<em>a</em>"}}],"query":"x","processingTimeMs":7,"limit":20,"offset":0,"estimatedTotalHits":5,"requestUid":"r1"}"#
    );
}

#[test]
fn page_mode_totals_and_failed_shards() {
    let by = BTreeMap::new();
    let mut req = simple_req(&by);
    req.pagination = Pagination::Page {
        page: 2,
        hits_per_page: 1,
    };
    req.want_ranking_score = true;
    req.query = Some("q\"");
    let a = br#"{"hits":[{"id":1,"_rankingScore":0.5},{"id":3,"_rankingScore":0.1}],"query":"q","processingTimeMs":1,"hitsPerPage":2,"page":1,"totalPages":1,"totalHits":2}"#;
    let b = br#"{"hits":[{"id":2,"_rankingScore":0.5}],"query":"q","processingTimeMs":1,"hitsPerPage":2,"page":1,"totalPages":1,"totalHits":1}"#;
    let arena = Bump::new();
    let mut out = Vec::new();
    let stats = merge_search(
        &req,
        &[ShardInput::Ok(a), ShardInput::Failed, ShardInput::Ok(b)],
        &arena,
        &mut out,
    )
    .unwrap();
    assert_eq!(stats.failed, vec![1]);
    assert_eq!((stats.answered, stats.returned, stats.total), (2, 1, 3));
    // Tie 0.5/0.5: shard 0's hit first, so page 2 is shard 2's hit.
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"hits":[{"id":2,"_rankingScore":0.5}],"query":"q\"","processingTimeMs":1,"hitsPerPage":1,"page":2,"totalPages":3,"totalHits":3}"#
    );
}

#[test]
fn totals_count_every_match_and_window_is_clamped_like_meilisearch() {
    let by = BTreeMap::new();
    let mut req = simple_req(&by);
    req.max_total_hits = 2;
    req.pagination = Pagination::OffsetLimit {
        offset: 1,
        limit: 5,
    };
    let a = br#"{"hits":[{"id":1,"_rankingScore":0.5},{"id":2,"_rankingScore":0.4},{"id":3,"_rankingScore":0.3}],"query":"","processingTimeMs":1,"limit":6,"offset":0,"estimatedTotalHits":30}"#;
    let out = fast(&req, &[ShardInput::Ok(a)]).unwrap();
    let v = norm(&out);
    assert_eq!(v["hits"], json!([{"id": 2}]));
    // Meilisearch 1.50: maxTotalHits bounds the window, not the count.
    assert_eq!(v["estimatedTotalHits"], 30);
    assert_eq!(v["offset"], 1);
    assert_eq!(v["limit"], 5);
    // An offset past maxTotalHits: no hits, the offset echoed as sent (checked on 1.50).
    req.pagination = Pagination::OffsetLimit {
        offset: 10,
        limit: 3,
    };
    let v = norm(&fast(&req, &[ShardInput::Ok(a)]).unwrap());
    assert_eq!(v["hits"], json!([]));
    assert_eq!(v["offset"], 10);
    assert_eq!(v["estimatedTotalHits"], 30);
}

#[test]
fn malformed_and_misshapen_bodies_are_errors() {
    let by = BTreeMap::new();
    let req = simple_req(&by);
    for (body, shard_err) in [
        (&b"{\"hits\":[{\"id\":1,}]}"[..], true),
        (b"[]", false),
        (b"{\"hits\":{}}", false),
        (b"{\"query\":\"\"}", false),
        (b"{\"hits\":[1]}", true),
        (b"{\"hits\":[],\"estimatedTotalHits\":-1}", false),
        (b"{\"hits\":[]} x", true),
    ] {
        let good = br#"{"hits":[],"query":"","processingTimeMs":1,"estimatedTotalHits":0}"#;
        let err = fast(&req, &[ShardInput::Ok(good), ShardInput::Ok(body)]).unwrap_err();
        assert_eq!(err.shard(), 1);
        assert_eq!(
            matches!(err, MergeError::Malformed { .. }),
            shard_err,
            "{err}"
        );
    }
}

#[test]
fn no_shard_answered_gives_an_empty_well_formed_page() {
    let by = BTreeMap::new();
    let arena = Bump::new();
    let mut out = Vec::new();
    let stats = merge_search(
        &simple_req(&by),
        &[ShardInput::Failed, ShardInput::Failed],
        &arena,
        &mut out,
    )
    .unwrap();
    assert_eq!(stats.failed, vec![0, 1]);
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"hits":[],"query":"","processingTimeMs":0,"limit":20,"offset":0,"estimatedTotalHits":0}"#
    );
}

#[test]
fn node_pagination_covers_the_window() {
    use crate::NodePagination;
    let p = Pagination::OffsetLimit {
        offset: 40,
        limit: 20,
    };
    assert_eq!(
        p.node_pagination(),
        NodePagination::OffsetLimit {
            offset: 0,
            limit: 60
        }
    );
    let p = Pagination::Page {
        page: 3,
        hits_per_page: 10,
    };
    assert_eq!(
        p.node_pagination(),
        NodePagination::Page {
            page: 1,
            hits_per_page: 30
        }
    );
    assert_eq!(p.window(1000), (20, 10));
    assert_eq!(p.window(25), (20, 5));
    let p0 = Pagination::Page {
        page: 0,
        hits_per_page: 10,
    };
    assert_eq!(p0.window(1000), (0, 0));
    assert_eq!(
        p0.node_pagination(),
        NodePagination::Page {
            page: 1,
            hits_per_page: 0
        }
    );
}

#[test]
fn index_stats_are_summed_and_divided() {
    let a = br#"{"numberOfDocuments":10,"rawDocumentDbSize":1000,"avgDocumentSize":100,"isIndexing":false,"numberOfEmbeddings":0,"numberOfEmbeddedDocuments":0,"fieldDistribution":{"id":10,"_miroir_shard":10,"t":4}}"#;
    let b = br#"{"numberOfDocuments":6,"rawDocumentDbSize":600,"avgDocumentSize":100,"isIndexing":true,"numberOfEmbeddings":0,"numberOfEmbeddedDocuments":0,"fieldDistribution":{"id":6,"_miroir_shard":6,"t":2}}"#;
    let arena = Bump::new();
    let mut out = Vec::new();
    let stats = merge_index_stats(
        &[ShardInput::Ok(a), ShardInput::Ok(b), ShardInput::Failed],
        2,
        "_miroir_",
        &arena,
        &mut out,
    )
    .unwrap();
    assert_eq!(stats.total, 8);
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"numberOfDocuments":8,"rawDocumentDbSize":800,"avgDocumentSize":100,"isIndexing":true,"numberOfEmbeddings":0,"numberOfEmbeddedDocuments":0,"fieldDistribution":{"id":8,"t":3}}"#
    );
}

#[test]
fn internal_database_sizes_are_summed_in_node_order() {
    let a = br#"{"numberOfDocuments":2,"rawDocumentDbSize":4096,"avgDocumentSize":2040,"isIndexing":false,"internalDatabaseSizes":{"main":4096,"wordDocids":8192,"documents":4096},"fieldDistribution":{"id":2}}"#;
    let b = br#"{"numberOfDocuments":2,"rawDocumentDbSize":4096,"avgDocumentSize":2040,"isIndexing":false,"internalDatabaseSizes":{"main":4096,"documents":12288,"facetIdF64Docids":4096},"fieldDistribution":{"id":2}}"#;
    let arena = Bump::new();
    let mut out = Vec::new();
    merge_index_stats(
        &[ShardInput::Ok(a), ShardInput::Ok(b)],
        1,
        "_miroir_",
        &arena,
        &mut out,
    )
    .unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"numberOfDocuments":4,"rawDocumentDbSize":8192,"avgDocumentSize":2048,"isIndexing":false,"internalDatabaseSizes":{"main":8192,"wordDocids":8192,"documents":16384,"facetIdF64Docids":4096},"fieldDistribution":{"id":4}}"#
    );
}

#[test]
fn facet_search_sums_and_orders() {
    let a = br#"{"facetHits":[{"value":"b","count":2},{"value":"a","count":1}],"facetQuery":"","processingTimeMs":2}"#;
    let b = br#"{"facetHits":[{"value":"a","count":2},{"value":"c","count":3}],"facetQuery":"","processingTimeMs":5}"#;
    let arena = Bump::new();
    let mut out = Vec::new();
    merge_facet_search(
        &[ShardInput::Ok(a), ShardInput::Ok(b)],
        2,
        FacetOrder::Count,
        &arena,
        &mut out,
    )
    .unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"facetHits":[{"value":"a","count":3},{"value":"c","count":3}],"facetQuery":"","processingTimeMs":5}"#
    );
}
