//! Differential test (issue 5 acceptance): a 10 000-document corpus behind Miroir over three
//! test nodes answers 240 searches — keywords, filters, sorts, facets, pagination — like one
//! test node holding the whole corpus.
//!
//! "Ties excepted": documents with equal ranking scores may come in another order (each node
//! breaks ties by its own insertion order), so for unsorted queries the comparison is
//! on the score sequence and, per group of equal scores fully inside the page, on the set
//! of ids. Sorted queries use a total order (`year`, then the unique `rank`) and must match
//! id for id. Totals and facet distributions must match exactly.

mod proxy_support;

use proxy_support::{start_node, Cluster, Layout};
use serde_json::{json, Value};
use std::collections::BTreeSet;

const WORDS: [&str; 24] = [
    "river", "stone", "light", "forest", "dream", "winter", "shadow", "garden", "silver", "ocean",
    "thunder", "velvet", "mirror", "echo", "harbor", "crystal", "ember", "falcon", "meadow",
    "quartz", "lantern", "orbit", "prairie", "canyon",
];
const GENRES: [&str; 5] = ["drama", "comedy", "horror", "action", "documentary"];

/// A tiny deterministic generator (no dependency, same corpus every run).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

fn corpus(n: usize) -> Vec<Value> {
    let mut g = Lcg(42);
    (0..n)
        .map(|i| {
            let words = 2 + (g.next() % 4) as usize;
            let title: Vec<&str> = (0..words).map(|_| g.pick(&WORDS)).collect();
            let overview: Vec<&str> = (0..6).map(|_| g.pick(&WORDS)).collect();
            json!({
                "id": i,
                "title": title.join(" "),
                "overview": overview.join(" "),
                "genre": g.pick(&GENRES),
                "year": 1990 + (g.next() % 31),
                // 10007 is prime: unique ranks give sorted queries a total order.
                "rank": (i * 37) % 10007,
            })
        })
        .collect()
}

fn queries() -> Vec<Value> {
    let mut g = Lcg(7);
    let mut out = Vec::new();
    for i in 0..240 {
        let q = match i % 3 {
            0 => g.pick(&WORDS).to_string(),
            1 => format!("{} {}", g.pick(&WORDS), g.pick(&WORDS)),
            // A prefix of a word (Meilisearch matches the last word as a prefix).
            _ => g.pick(&WORDS)[..3].to_string(),
        };
        let mut body = json!({"q": q, "showRankingScore": true});
        match i % 8 {
            0 => {}
            1 => body["filter"] = json!(format!("genre = {}", g.pick(&GENRES))),
            2 => {
                body["filter"] = json!([
                    format!("year > {}", 1990 + g.next() % 30),
                    [
                        format!("genre = {}", g.pick(&GENRES)),
                        format!("genre = {}", g.pick(&GENRES))
                    ]
                ])
            }
            3 => body["sort"] = json!(["year:desc", "rank:asc"]),
            4 => {
                body["sort"] = json!(["rank:asc"]);
                body["filter"] = json!(format!("year >= {}", 1990 + g.next() % 30));
            }
            5 => body["facets"] = json!(["genre", "year"]),
            6 => {
                body["offset"] = json!(g.next() % 60);
                body["limit"] = json!(5 + g.next() % 20);
            }
            _ => {
                body["hitsPerPage"] = json!(7);
                body["page"] = json!(1 + g.next() % 4);
                body["sort"] = json!(["year:asc", "rank:desc"]);
            }
        }
        out.push(body);
    }
    out
}

fn ids_and_scores(v: &Value) -> Vec<(String, f64)> {
    v["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("no hits: {v}"))
        .iter()
        .map(|h| (h["id"].to_string(), h["_rankingScore"].as_f64().unwrap()))
        .collect()
}

fn assert_same_hits(q: &Value, got: &Value, want: &Value) {
    let (g, w) = (ids_and_scores(got), ids_and_scores(want));
    if q.get("sort").is_some() {
        assert_eq!(g, w, "sorted query {q}");
        return;
    }
    let gs: Vec<f64> = g.iter().map(|x| x.1).collect();
    let ws: Vec<f64> = w.iter().map(|x| x.1).collect();
    assert_eq!(gs, ws, "score sequence of {q}");
    // Equal-score groups that lie entirely inside the page hold the same documents (a group
    // cut by the page's start or end may legitimately differ).
    let mid_start = q.get("offset").and_then(Value::as_u64).unwrap_or(0) > 0
        || q.get("page").and_then(Value::as_u64).unwrap_or(1) > 1;
    let mut start = 0;
    while start < g.len() {
        let mut end = start;
        while end < g.len() && g[end].1 == g[start].1 {
            end += 1;
        }
        if end < g.len() && !(start == 0 && mid_start) {
            let a: BTreeSet<&String> = g[start..end].iter().map(|x| &x.0).collect();
            let b: BTreeSet<&String> = w[start..end].iter().map(|x| &x.0).collect();
            assert_eq!(a, b, "tie group at {start} of {q}");
        }
        start = end;
    }
}

#[test]
fn miroir_over_three_nodes_answers_like_one_node() {
    let docs = corpus(10_000);
    // Default `searchableAttributes` (`*`): Miroir's nodes keep `*` too, so attributes rank
    // as on one Meilisearch (decision 006).
    let settings = json!({
        "filterableAttributes": ["genre", "year"],
        "sortableAttributes": ["year", "rank", "genre"],
    });

    let c = Cluster::start(
        "diff",
        Layout {
            shards: 32,
            ..Layout::default()
        },
    );
    c.create_index("movies", settings.clone());
    let r = c.call(
        "POST",
        "/indexes/movies/documents",
        Some(&Value::Array(docs.clone())),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(
        c.wait_task(r.json()["taskUid"].as_u64().unwrap())["status"],
        "succeeded"
    );

    let dir = std::env::temp_dir().join(format!("miroir-proxy-diffref-{}", std::process::id()));
    let reference = start_node(&dir, "reference");
    reference.call(
        "POST",
        "/indexes",
        Some(&json!({"uid": "movies", "primaryKey": "id"})),
    );
    reference.call("PATCH", "/indexes/movies/settings", Some(&settings));
    let r = reference.call(
        "POST",
        "/indexes/movies/documents",
        Some(&Value::Array(docs)),
    );
    let uid = r.json()["taskUid"].as_u64().unwrap();
    proxy_support::wait_until("reference indexing", || {
        reference.call("GET", &format!("/tasks/{uid}"), None).json()["status"] == "succeeded"
    });

    let qs = queries();
    assert!(qs.len() >= 200);
    let mut nonempty = 0;
    for q in &qs {
        let got = c.call("POST", "/indexes/movies/search", Some(q));
        let want = reference.call("POST", "/indexes/movies/search", Some(q));
        assert_eq!(got.status, want.status, "{q}: {}", got.text());
        let (got, want) = (got.json(), want.json());
        assert_same_hits(q, &got, &want);
        for k in [
            "estimatedTotalHits",
            "totalHits",
            "totalPages",
            "facetDistribution",
            "facetStats",
            "limit",
            "offset",
            "page",
            "hitsPerPage",
            "query",
        ] {
            assert_eq!(got.get(k), want.get(k), "`{k}` of {q}");
        }
        if !got["hits"].as_array().unwrap().is_empty() {
            nonempty += 1;
        }
    }
    // The corpus and queries are built so that most queries match something.
    assert!(nonempty > qs.len() / 2, "only {nonempty} queries had hits");

    // Sorted document listings: the same window in the same order as one node (each sort
    // ends on the unique `rank`, so there are no ties to break by internal ids), including
    // sort fields the client's `fields` leaves out.
    let listings = [
        (
            "GET",
            "/indexes/movies/documents?sort=rank:desc&limit=25&offset=100&fields=id,title",
            None,
        ),
        (
            "GET",
            "/indexes/movies/documents?sort=year:asc,rank:asc&limit=7",
            None,
        ),
        (
            "POST",
            "/indexes/movies/documents/fetch",
            Some(
                json!({"sort": ["year:asc", "rank:asc"], "offset": 37, "limit": 40, "filter": "year > 2000"}),
            ),
        ),
        (
            "POST",
            "/indexes/movies/documents/fetch",
            Some(json!({"sort": ["genre:desc", "rank:desc"], "limit": 30, "fields": ["id"]})),
        ),
    ];
    for (method, path, body) in &listings {
        let got = c.call(method, path, body.as_ref());
        let want = reference.call(method, path, body.as_ref());
        assert_eq!(got.status, want.status, "{path} {body:?}: {}", got.text());
        let (got, want) = (got.json(), want.json());
        assert_eq!(got, want, "{method} {path} {body:?}");
        assert!(!got["results"].as_array().unwrap().is_empty(), "{path}");
    }
    // `distinct` across shards: one hit per value in the whole index, as one node returns it
    // (sorts end on the unique `rank`, so hits are totally ordered), also when the client's
    // `attributesToRetrieve` leaves the distinct field out, and with the index's
    // `distinctAttribute`. Totals are not compared: each node counts its own distinct hits.
    let distinct_queries = [
        json!({"q": "", "distinct": "genre", "sort": ["rank:asc"], "limit": 10}),
        json!({"q": "", "distinct": "year", "sort": ["rank:desc"], "offset": 3, "limit": 8}),
        json!({"q": "", "distinct": "year", "sort": ["rank:asc"], "page": 2, "hitsPerPage": 7}),
        json!({"q": WORDS[3], "distinct": "genre", "sort": ["rank:asc"], "attributesToRetrieve": ["id", "title"]}),
        json!({"q": WORDS[5], "distinct": "year", "sort": ["year:desc", "rank:asc"], "limit": 12}),
    ];
    let check_distinct = |q: &Value| {
        let got = c.call("POST", "/indexes/movies/search", Some(q));
        let want = reference.call("POST", "/indexes/movies/search", Some(q));
        assert_eq!(got.status, want.status, "{q}: {}", got.text());
        let (got, want) = (got.json(), want.json());
        assert!(!want["hits"].as_array().unwrap().is_empty(), "{q}");
        assert_eq!(got["hits"], want["hits"], "{q}");
    };
    for q in &distinct_queries {
        check_distinct(q);
    }
    let set = json!({"distinctAttribute": "genre"});
    let r = c.call("PATCH", "/indexes/movies/settings", Some(&set));
    assert_eq!(r.status, 202, "{}", r.text());
    let t = c.wait_task(r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(t["status"], "succeeded", "{t}");
    let r = reference.call("PATCH", "/indexes/movies/settings", Some(&set));
    let uid = r.json()["taskUid"].as_u64().unwrap();
    proxy_support::wait_until("reference settings", || {
        reference.call("GET", &format!("/tasks/{uid}"), None).json()["status"] == "succeeded"
    });
    check_distinct(&json!({"q": "", "sort": ["rank:asc"], "limit": 20}));
    check_distinct(
        &json!({"q": WORDS[1], "sort": ["rank:desc"], "attributesToRetrieve": ["title"]}),
    );
    drop(reference);
    let _ = std::fs::remove_dir_all(&dir);
}
