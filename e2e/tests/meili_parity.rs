//! Meilisearch 1.50 behaviours SDKs notice, compared with one node: the same requests go to
//! a lone node and to Miroir over three nodes, and the answers (status and body) must be the
//! same.

use miroir_e2e::{start_node, temp_dir, Client, Cluster, ClusterSpec, TestNode};
use serde_json::{json, Value};

const KEY: &str = "parity-master-key";

/// Fields drop in order: the processes stop before their directory goes.
struct Pair {
    one: TestNode,
    cluster: Cluster,
    _dir: miroir_testkit::TempDir,
}

fn pair() -> Pair {
    let dir = temp_dir("parity");
    let one = start_node(dir.path(), "one", KEY);
    let cluster = Cluster::start(ClusterSpec {
        master_key: KEY.into(),
        ..ClusterSpec::default()
    });
    Pair {
        one,
        cluster,
        _dir: dir,
    }
}

/// Status and JSON body (`Null` when empty).
fn answer(c: &Client, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let r = c.call(method, path, body);
    let v = if r.body.is_empty() {
        Value::Null
    } else {
        r.json()
    };
    (r.status, v)
}

/// Adds `docs` to `index` through `c` and waits for the task to succeed.
fn add_documents(c: &Client, index: &str, docs: &Value) {
    let r = c.call("POST", &format!("/indexes/{index}/documents"), Some(docs));
    let uid = r.json()["taskUid"].as_u64().expect("a task");
    let t = miroir_testkit::wait_task(c, uid);
    assert_eq!(t["status"], "succeeded", "{t}");
}

impl Pair {
    /// Sends the request to both sides and asserts the same answer; returns it.
    fn same(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let a = answer(&self.one.http(), method, path, body);
        let b = answer(&self.cluster.http(), method, path, body);
        assert_eq!(b, a, "{method} {path}: Miroir (left) and one node (right)");
        a
    }
}

#[test]
fn chat_workspaces_as_one_node() {
    let p = pair();
    // Behind the experimental feature, as on Meilisearch.
    assert_eq!(p.same("GET", "/chats", None).0, 400);
    let on = json!({"chatCompletions": true});
    p.same("PATCH", "/experimental-features", Some(&on));
    assert_eq!(p.same("GET", "/chats/w/settings", None).0, 404);
    let settings = json!({"apiKey": "sk-0123456789", "prompts": {"system": "Be brief."}});
    let (status, got) = p.same("PATCH", "/chats/w/settings", Some(&settings));
    assert_eq!((status, &got["apiKey"]), (200, &json!("skXXXX...")));
    // Every node holds the workspace (a completion may be served by any of them).
    for n in &p.cluster.nodes {
        assert_eq!(n.call("GET", "/chats/w/settings", None).status, 200);
    }
    p.same("GET", "/chats", None);
    p.same("GET", "/chats?offset=1&limit=1", None);
    p.same("GET", "/chats/w", None);
    p.same("GET", "/chats/w/settings", None);
    assert_eq!(
        p.same("PATCH", "/chats/w/settings", Some(&json!({"nope": 1})))
            .0,
        400
    );
    p.same(
        "PATCH",
        "/chats/w/settings",
        Some(&json!({"source": "mistral"})),
    );
    p.same("DELETE", "/chats/w/settings", None);
    assert_eq!(p.same("DELETE", "/chats/w", None).0, 204);
    assert_eq!(p.same("DELETE", "/chats/w", None).0, 404);
    assert_eq!(p.same("PUT", "/chats/w/settings", Some(&json!({}))).0, 405);
    p.same("GET", "/chats", None);
    for n in &p.cluster.nodes {
        assert_eq!(n.call("GET", "/chats/w", None).status, 404);
    }
}

/// The SDKs' `DELETE /tasks?uids=N` right after enqueuing N: the task is gone once the
/// deletion task is done, although N was still running when it was asked for. (Only Miroir
/// is checked: one node deletes N only if it had started N before the deletion, which
/// depends on timing.)
#[test]
fn deleting_a_task_just_enqueued_deletes_it() {
    let p = pair();
    let docs: Vec<Value> = (0..200)
        .map(|i| json!({"id": i, "title": format!("movie {i}")}))
        .collect();
    let (name, c) = ("Miroir", p.cluster.http());
    let r = c.call("POST", "/indexes/movies/documents", Some(&json!(docs)));
    assert_eq!(r.status, 202, "{name}: {}", r.text());
    let added = r.json()["taskUid"].as_u64().unwrap();
    let r = c.call("DELETE", &format!("/tasks?uids={added}"), None);
    assert_eq!(r.status, 200, "{name}: {}", r.text());
    let deletion = miroir_testkit::wait_task(&c, r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(deletion["status"], "succeeded", "{name}: {deletion}");
    assert_eq!(
        deletion["details"],
        json!({"matchedTasks": 1, "deletedTasks": 1, "originalFilter": format!("?uids={added}")}),
        "{name}"
    );
    let r = c.call("GET", &format!("/tasks/{added}"), None);
    assert_eq!(r.status, 404, "{name}: {}", r.text());
    assert_eq!(r.json()["code"], "task_not_found", "{name}");
    // The documents were written all the same.
    let r = c.call("GET", "/indexes/movies/documents?limit=1", None);
    assert_eq!(r.json()["total"], 200, "{name}: {}", r.text());
}

/// Creates the facet indexes on both sides: `fa` (40 documents) and `fb` (20), `g` and `p`
/// filterable.
fn facet_indexes(p: &Pair) {
    for (uid, n, g) in [
        ("fa", 40u64, ["red", "blue", "green", "Black"]),
        ("fb", 20, ["blue", "white", "red", "pink"]),
    ] {
        let docs: Vec<Value> = (0..n)
            .map(|i| json!({"id": i, "title": format!("item {i}"), "g": g[(i % 4) as usize], "p": i * 3 % 50}))
            .collect();
        let settings = json!({"filterableAttributes": ["g", "p"]});
        let one = p.one.http();
        let t = one.call(
            "PATCH",
            &format!("/indexes/{uid}/settings"),
            Some(&settings),
        );
        p.one.wait_task(t.json()["taskUid"].as_u64().unwrap());
        let t = one.call(
            "POST",
            &format!("/indexes/{uid}/documents"),
            Some(&json!(docs)),
        );
        assert_eq!(
            p.one.wait_task(t.json()["taskUid"].as_u64().unwrap())["status"],
            "succeeded"
        );
        let c = p.cluster.http();
        let t = c.call(
            "PATCH",
            &format!("/indexes/{uid}/settings"),
            Some(&settings),
        );
        p.cluster.wait_task(t.json()["taskUid"].as_u64().unwrap());
        let t = c.call(
            "POST",
            &format!("/indexes/{uid}/documents"),
            Some(&json!(docs)),
        );
        assert_eq!(
            p.cluster.wait_task(t.json()["taskUid"].as_u64().unwrap())["status"],
            "succeeded"
        );
    }
}

/// The facet members of a federated answer (and the total when `with_total`).
fn facet_part(v: &Value, with_total: bool) -> Value {
    let mut out = serde_json::Map::new();
    for k in [
        "facetsByIndex",
        "facetDistribution",
        "facetStats",
        "code",
        "type",
    ] {
        if let Some(x) = v.get(k) {
            out.insert(k.into(), x.clone());
        }
    }
    if with_total {
        out.insert("estimatedTotalHits".into(), v["estimatedTotalHits"].clone());
        let mut ids: Vec<String> = v["hits"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| format!("{}/{}", h["_federation"]["indexUid"], h["id"]))
            .collect();
        ids.sort();
        out.insert("hits".into(), json!(ids));
    }
    Value::Object(out)
}

#[test]
fn federated_facets_as_one_node() {
    let p = pair();
    facet_indexes(&p);
    let disjoint = json!([
        {"indexUid": "fa", "q": "", "filter": "p < 10"},
        {"indexUid": "fa", "q": "", "filter": "p >= 30"},
        {"indexUid": "fb", "q": "item"}
    ]);
    let overlapping = json!([
        {"indexUid": "fa", "q": "", "filter": "p < 30"},
        {"indexUid": "fa", "q": "", "filter": "p >= 10"},
        {"indexUid": "fb", "q": ""}
    ]);
    let cases = [
        (
            json!({"limit": 100, "facetsByIndex": {"fa": ["g", "p"], "fb": ["g"]}}),
            &disjoint,
            true,
        ),
        // A document two queries match: listed and counted once.
        (
            json!({"limit": 100, "facetsByIndex": {"fa": ["g", "p"], "fb": ["g", "p"]}}),
            &overlapping,
            true,
        ),
        (json!({"limit": 100}), &overlapping, true),
        (
            json!({"facetsByIndex": {"fa": ["g", "p"], "fb": ["g", "p"]}, "mergeFacets": {}}),
            &overlapping,
            false,
        ),
        (
            json!({"facetsByIndex": {"fa": ["g"], "fb": ["g"]}, "mergeFacets": {"maxValuesPerFacet": 2}}),
            &overlapping,
            false,
        ),
        (
            json!({"limit": 100, "facetsByIndex": {"fa": null, "fb": []}}),
            &disjoint,
            true,
        ),
        (
            json!({"facetsByIndex": {"fa": ["g"], "fb": ["g"]}}),
            &json!([{"indexUid": "fa", "q": ""}]),
            false,
        ),
        (json!({"facetsByIndex": {"nope": ["g"]}}), &disjoint, false),
        (
            json!({"facetsByIndex": {"fa": ["title"]}}),
            &disjoint,
            false,
        ),
    ];
    for (federation, queries, with_total) in cases {
        let body = json!({"federation": federation, "queries": queries});
        let a = answer(&p.one.http(), "POST", "/multi-search", Some(&body));
        let b = answer(&p.cluster.http(), "POST", "/multi-search", Some(&body));
        assert_eq!(b.0, a.0, "{body}: {} / {}", b.1, a.1);
        assert_eq!(
            facet_part(&b.1, with_total),
            facet_part(&a.1, with_total),
            "{body}: Miroir (left) and one node (right)"
        );
    }
}

/// `GET /tasks/{uid}/documents`: behind its experimental feature, and only for a document
/// addition still enqueued or processing.
#[test]
fn task_documents_as_one_node() {
    let p = pair();
    let (status, v) = p.same("GET", "/tasks/0/documents", None);
    assert_eq!((status, &v["code"]), (400, &json!("feature_not_enabled")));
    p.same(
        "PATCH",
        "/experimental-features",
        Some(&json!({"getTaskDocumentsRoute": true})),
    );
    let (status, v) = p.same("GET", "/tasks/0/documents", None);
    assert_eq!((status, &v["code"]), (404, &json!("task_not_found")));
    assert_eq!(p.same("GET", "/tasks/x/documents", None).0, 400);
    for (name, c) in [("one node", p.one.http()), ("Miroir", p.cluster.http())] {
        let r = c.call(
            "POST",
            "/indexes/movies/documents",
            Some(&json!([{"id": 1, "t": "a"}, {"id": 2, "t": "b"}])),
        );
        let uid = r.json()["taskUid"].as_u64().unwrap();
        assert_eq!(miroir_testkit::wait_task(&c, uid)["status"], "succeeded");
        let r = c.call("GET", &format!("/tasks/{uid}/documents"), None);
        assert_eq!(r.status, 404, "{name}: {}", r.text());
        assert_eq!(r.json()["code"], "task_file_not_found", "{name}");
        assert_eq!(
            r.json()["message"],
            format!("Task `{uid}` does not contain any documents. Only `documentAdditionOrUpdate` tasks with the statuses `enqueued` or `processing` contain documents"),
            "{name}"
        );
    }
}

/// `retrieveVectors: true` on an index without embedders: with `displayedAttributes: *`
/// every hit carries `_vectors: {}` after the document's fields (Miroir's nodes hold an
/// explicit displayed list and leave it out: Miroir adds it); with an explicit list, none.
#[test]
fn retrieve_vectors_without_embedders_as_one_node() {
    let p = pair();
    let docs = json!((0..12)
        .map(|i| json!({"id": i, "t": format!("shoe {i}")}))
        .collect::<Vec<_>>());
    for c in [p.one.http(), p.cluster.http()] {
        let r = c.call("POST", "/indexes/v/documents", Some(&docs));
        let uid = r.json()["taskUid"].as_u64().unwrap();
        assert_eq!(miroir_testkit::wait_task(&c, uid)["status"], "succeeded");
    }
    let hits = |body: Value| {
        let sorted = |c: &Client| {
            let mut v = answer(c, "POST", "/indexes/v/search", Some(&body)).1;
            let mut hits = v["hits"].as_array().cloned().unwrap_or_default();
            // Equal scores come in any order across shards: compare as sets.
            hits.sort_by_key(|h| h.to_string());
            v["hits"] = json!(hits);
            (v["hits"].clone(), v["estimatedTotalHits"].clone())
        };
        let (one, miroir) = (sorted(&p.one.http()), sorted(&p.cluster.http()));
        assert_eq!(miroir, one, "{body}: Miroir (left) and one node (right)");
        one.0
    };
    let all = hits(
        json!({"q": "shoe", "retrieveVectors": true, "attributesToHighlight": ["t"], "showRankingScore": true, "limit": 50}),
    );
    let keys: Vec<&String> = all[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["id", "t", "_vectors", "_formatted", "_rankingScore"]);
    hits(json!({"q": "shoe", "retrieveVectors": true, "attributesToRetrieve": ["t"], "limit": 50}));
    // Federated: the hits of a query that asked for vectors carry them.
    let fed = json!({"federation": {"limit": 50}, "queries": [
        {"indexUid": "v", "q": "shoe", "retrieveVectors": true},
        {"indexUid": "v", "q": "red"}]});
    let fed_hits = |c: &Client| {
        let v = answer(c, "POST", "/multi-search", Some(&fed)).1;
        let mut hits = v["hits"].as_array().cloned().unwrap_or_default();
        hits.sort_by_key(|h| h.to_string());
        (hits, v.get("queryVectors").cloned())
    };
    // 1.50 also answers `queryVectors: {}` then (no query was embedded).
    let (one, miroir) = (fed_hits(&p.one.http()), fed_hits(&p.cluster.http()));
    assert_eq!(
        miroir, one,
        "federated hits and queryVectors: Miroir (left) and one node (right)"
    );
    assert_eq!(one.1, Some(json!({})));
    hits(json!({"q": "shoe", "limit": 50}));
    for c in [p.one.http(), p.cluster.http()] {
        let r = c.call(
            "PATCH",
            "/indexes/v/settings",
            Some(&json!({"displayedAttributes": ["id", "t"]})),
        );
        let uid = r.json()["taskUid"].as_u64().unwrap();
        assert_eq!(miroir_testkit::wait_task(&c, uid)["status"], "succeeded");
    }
    let listed = hits(json!({"q": "shoe", "retrieveVectors": true, "limit": 50}));
    assert!(listed[0].get("_vectors").is_none(), "{listed}");
}

/// `showPerformanceDetails` in a GET search and in `federation` (found missing by the JS SDK
/// suite): both answer with a `performanceDetails` object, as one Meilisearch does.
#[test]
fn performance_details_in_get_and_federated_searches() {
    let p = pair();
    for (name, c) in [("one node", p.one.http()), ("Miroir", p.cluster.http())] {
        add_documents(
            &c,
            "perf",
            &json!([{"id": 1, "t": "a"}, {"id": 2, "t": "b"}]),
        );
        let r = c.call(
            "GET",
            "/indexes/perf/search?q=&showPerformanceDetails=true",
            None,
        );
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        assert!(
            r.json()["performanceDetails"].is_object(),
            "{name}: {}",
            r.text()
        );
    }
    let body = json!({"federation": {"showPerformanceDetails": true},
        "queries": [{"indexUid": "perf", "q": "a"}, {"indexUid": "perf", "q": "b"}]});
    let r = p.cluster.http().call("POST", "/multi-search", Some(&body));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["hits"].as_array().unwrap().len(), 2, "{v}");
    let details = v["performanceDetails"]
        .as_object()
        .expect("performanceDetails");
    assert!(
        !details.is_empty() && details.values().all(Value::is_string),
        "{v}"
    );
}

/// `federation.distinct`: the merged hits keep one per value of the attribute (across queries
/// and shards), the total drops by each hit left out, and an attribute the query does not
/// retrieve is read anyway and not shown. Compared with one node when it is a real
/// Meilisearch (the test node has no federated `distinct`).
#[test]
fn federated_distinct() {
    let p = pair();
    // 0..24 in `fd`, 24..30 in `fd2` (whose genres overlap `fd`'s only in `drama`).
    let docs: Vec<Value> = (0..30)
        .map(|i| {
            let genre = if i < 24 {
                ["Drama", "comedy ", "Horror"][i % 3]
            } else {
                ["drama", "Western"][i % 2]
            };
            json!({"id": i, "t": format!("word{} common", i % 3), "genre": genre, "n": i % 4})
        })
        .collect();
    for c in [p.one.http(), p.cluster.http()] {
        for (index, part) in [("fd", &docs[..24]), ("fd2", &docs[24..])] {
            let r = c.call(
                "PATCH",
                &format!("/indexes/{index}/settings"),
                Some(&json!({"filterableAttributes": ["genre", "n"]})),
            );
            miroir_testkit::wait_task(&c, r.json()["taskUid"].as_u64().unwrap());
            add_documents(&c, index, &json!(part));
        }
    }
    let cases = [
        json!({"federation": {"distinct": "genre"},
            "queries": [{"indexUid": "fd", "q": "word0"}, {"indexUid": "fd", "q": "common"}]}),
        json!({"federation": {"distinct": "genre"},
            "queries": [{"indexUid": "fd", "q": "common"}, {"indexUid": "fd2", "q": ""}]}),
        json!({"federation": {"distinct": "n", "limit": 3},
            "queries": [{"indexUid": "fd", "q": "common", "attributesToRetrieve": ["id"]}]}),
    ];
    for body in &cases {
        let (status, v) = answer(&p.cluster.http(), "POST", "/multi-search", Some(body));
        assert_eq!(status, 200, "{body}: {v}");
        let hits = v["hits"].as_array().unwrap();
        let attribute = body["federation"]["distinct"].as_str().unwrap();
        let mut values: Vec<String> = hits
            .iter()
            .map(|h| {
                let id = h["id"].as_u64().unwrap() as usize;
                docs[id][attribute]
                    .to_string()
                    .trim_matches('"')
                    .trim()
                    .to_lowercase()
            })
            .collect();
        let n = values.len();
        values.sort();
        values.dedup();
        assert_eq!(values.len(), n, "{body}: one hit per value: {v}");
        if body["queries"][0].get("attributesToRetrieve").is_some() {
            assert!(hits.iter().all(|h| h.get(attribute).is_none()), "{v}");
        }
        if miroir_e2e::real_meilisearch().is_some() {
            // Equal scores come in another order than one node's (docs/compatibility.md),
            // so the hit kept for a value can differ: compare the values and the total.
            let (_, one) = answer(&p.one.http(), "POST", "/multi-search", Some(body));
            let kept = |v: &Value| -> Vec<String> {
                let mut k: Vec<String> = v["hits"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| {
                        let value = &docs[h["id"].as_u64().unwrap() as usize][attribute];
                        value.to_string().trim_matches('"').trim().to_lowercase()
                    })
                    .collect();
                k.sort();
                k
            };
            // A page that holds every value must hold the same ones; a shorter one depends on
            // the order of equal scores.
            if one["hits"].as_array().unwrap().len() as u64 == one["estimatedTotalHits"] {
                assert_eq!(kept(&v), kept(&one), "{body}: Miroir {v} / one node {one}");
            }
            assert_eq!(
                v["estimatedTotalHits"], one["estimatedTotalHits"],
                "{body}: Miroir {v} / one node {one}"
            );
        }
    }
    // A query's own `distinct` next to the federation's is refused as one node refuses it.
    let body = json!({"federation": {"distinct": "genre"},
        "queries": [{"indexUid": "fd", "q": "", "distinct": "n"}]});
    let (status, v) = answer(&p.cluster.http(), "POST", "/multi-search", Some(&body));
    assert_eq!(status, 400, "{v}");
    if miroir_e2e::real_meilisearch().is_some() {
        assert_eq!(
            answer(&p.one.http(), "POST", "/multi-search", Some(&body)),
            (status, v)
        );
    }
}
