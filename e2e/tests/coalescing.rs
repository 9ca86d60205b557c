//! Search coalescing through the real binaries (`scatter.coalesce`): a search arriving while
//! an identical one is in flight on the same core waits for that one's scatter instead of
//! asking the nodes again. Counted with the test nodes' request counters, never timed: node
//! searches are made slow so the first search is provably still in flight (its node requests
//! were counted, its answer cannot be back yet) when the second is sent.

use miroir_e2e::{Cluster, ClusterSpec};
use miroir_testkit::{wait_until, within};
use serde_json::json;
use std::time::Duration;

const SEARCH: &str = "POST /indexes/{uid}/search";

fn searches(cluster: &Cluster) -> Vec<u64> {
    cluster
        .nodes
        .iter()
        .map(|n| {
            let c = n.call("GET", "/_testnode/counters", None).json();
            c[SEARCH].as_u64().unwrap_or(0)
        })
        .collect()
}

#[test]
fn identical_concurrent_searches_share_one_scatter() {
    if miroir_e2e::real_meilisearch().is_some() {
        eprintln!("not run over real Meilisearch: it needs the test node's counters and faults");
        return;
    }
    let cluster = Cluster::start(ClusterSpec {
        shards: 8,
        // One core: coalescing is per core.
        workers: 1,
        node_timeout_ms: 30_000,
        scatter_extra: "coalesce: true".into(),
        ..ClusterSpec::default()
    });
    let http = cluster.http();
    let r = http
        .post_json("/indexes", &json!({"uid": "c", "primaryKey": "id"}))
        .unwrap();
    cluster.wait_task(r.json()["taskUid"].as_u64().unwrap());
    let docs: Vec<_> = (0..30).map(|i| json!({"id": i, "t": "doc"})).collect();
    let r = http
        .post_json("/indexes/c/documents", &json!(docs))
        .unwrap();
    cluster.wait_task(r.json()["taskUid"].as_u64().unwrap());
    for n in &cluster.nodes {
        assert_eq!(n.call("DELETE", "/_testnode/counters", None).status, 204);
        let r = n.call(
            "POST",
            "/_testnode/faults",
            Some(&json!({"rules": [{"route": "/indexes/c/search", "latencyMs": 4000}]})),
        );
        assert!(r.status < 300, "{}", r.text());
    }
    let nodes = cluster.nodes.len();
    let query = json!({"q": "doc", "limit": 50});
    let send = || {
        let (http, query) = (cluster.http(), query.clone());
        std::thread::spawn(move || http.post_json("/indexes/c/search", &query).unwrap())
    };
    let first = send();
    // The first search reached every node (counted on arrival, answered 4 s later).
    wait_until(
        within(Duration::from_secs(30)),
        "the first search to reach every node",
        || searches(&cluster).iter().all(|&n| n == 1),
    );
    let second = send();
    let (a, b) = (first.join().unwrap(), second.join().unwrap());
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(b.status, 200, "{}", b.text());
    assert_eq!(a.json()["hits"], b.json()["hits"]);
    assert_eq!(a.json()["estimatedTotalHits"], 30, "{}", a.text());
    assert_eq!(
        searches(&cluster),
        vec![1; nodes],
        "the second search was answered by the first one's scatter"
    );

    // A different query is not coalesced with anything: it asks every node itself.
    for n in &cluster.nodes {
        assert_eq!(
            n.call("POST", "/_testnode/faults", Some(&json!({"rules": []})))
                .status
                / 100,
            2
        );
    }
    let other = http
        .post_json("/indexes/c/search", &json!({"q": "doc", "limit": 5}))
        .unwrap();
    assert_eq!(other.status, 200, "{}", other.text());
    assert_eq!(searches(&cluster), vec![2; nodes]);
}
