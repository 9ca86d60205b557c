//! The primary-key query planner through the real binaries: a search whose filter pins the
//! primary key, and a document fetch by `ids`, reach only the nodes owning those keys (counted
//! by the test nodes' per-route request counters), and answer exactly what asking every node
//! answers.

use miroir_e2e::{Cluster, ClusterSpec};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Requests per node for `route` since the counters were reset.
fn per_node(cluster: &Cluster, route: &str) -> Vec<u64> {
    cluster
        .nodes
        .iter()
        .map(|n| {
            let c = n.call("GET", "/_testnode/counters", None).json();
            c[route].as_u64().unwrap_or(0)
        })
        .collect()
}

fn reset(cluster: &Cluster) {
    for n in &cluster.nodes {
        assert_eq!(n.call("DELETE", "/_testnode/counters", None).status, 204);
    }
}

fn ids_of(hits: &Value) -> BTreeSet<u64> {
    hits.as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect()
}

#[test]
fn pinned_keys_reach_only_their_owners() {
    if miroir_e2e::real_meilisearch().is_some() {
        // The request counters are the test node's; real Meilisearch has none.
        eprintln!("not run over real Meilisearch: it counts requests with the test node");
        return;
    }
    let cluster = Cluster::start(ClusterSpec::default());
    let http = cluster.http();
    let r = http
        .post_json("/indexes", &json!({"uid": "items", "primaryKey": "id"}))
        .unwrap();
    cluster.wait_task(r.json()["taskUid"].as_u64().unwrap());
    let r = http
        .send_json(
            "PATCH",
            "/indexes/items/settings",
            &json!({"filterableAttributes": ["id", "color"]}),
        )
        .unwrap();
    cluster.wait_task(r.json()["taskUid"].as_u64().unwrap());
    let docs: Vec<Value> = (1..=300)
        .map(|i| json!({"id": i, "color": if i % 2 == 0 { "red" } else { "blue" }}))
        .collect();
    let r = http
        .post_json("/indexes/items/documents", &json!(docs))
        .unwrap();
    cluster.wait_task(r.json()["taskUid"].as_u64().unwrap());

    // One key: one node asked, the document found.
    reset(&cluster);
    let s = http
        .post_json("/indexes/items/search", &json!({"filter": "id = 7"}))
        .unwrap()
        .json();
    assert_eq!(ids_of(&s["hits"]), BTreeSet::from([7]), "{s}");
    let asked = per_node(&cluster, "POST /indexes/{uid}/search");
    assert_eq!(asked.iter().sum::<u64>(), 1, "{asked:?}");

    // Several keys ANDed with another condition: at most one request per node, every match.
    reset(&cluster);
    let s = http
        .post_json(
            "/indexes/items/search",
            &json!({"filter": "color = red AND id IN [2, 4, 5, 8]", "limit": 50}),
        )
        .unwrap()
        .json();
    assert_eq!(ids_of(&s["hits"]), BTreeSet::from([2, 4, 8]), "{s}");
    let asked = per_node(&cluster, "POST /indexes/{uid}/search");
    assert!(asked.iter().all(|&n| n <= 1), "{asked:?}");

    // A fetch by ids: only owners, every document.
    reset(&cluster);
    let f = http
        .post_json(
            "/indexes/items/documents/fetch",
            &json!({"ids": [10, "11"]}),
        )
        .unwrap()
        .json();
    assert_eq!(ids_of(&f["results"]), BTreeSet::from([10, 11]), "{f}");
    let asked = per_node(&cluster, "POST /indexes/{uid}/documents/fetch");
    assert!(asked.iter().sum::<u64>() <= 2, "{asked:?}");

    // A filter that does not pin the key asks every node.
    reset(&cluster);
    let s = http
        .post_json("/indexes/items/search", &json!({"filter": "color = red"}))
        .unwrap()
        .json();
    assert_eq!(s["estimatedTotalHits"], 150, "{s}");
    let asked = per_node(&cluster, "POST /indexes/{uid}/search");
    assert_eq!(asked, vec![1, 1, 1]);
}
