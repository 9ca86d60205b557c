//! Adaptive replica selection through the real binaries (`scatter.adaptive_replicas`): with
//! RF = 2, once one replica turns slow, searches go to the other one. Hedging is off, so every
//! request a node receives is one the planner chose for it. The assertion compares node
//! request counters, never time.

use miroir_e2e::{Cluster, ClusterSpec};
use serde_json::json;

fn searches(cluster: &Cluster, node: usize) -> u64 {
    let c = cluster.nodes[node]
        .call("GET", "/_testnode/counters", None)
        .json();
    c["POST /indexes/{uid}/search"].as_u64().unwrap_or(0)
}

#[test]
fn a_slow_replica_gets_fewer_searches() {
    if miroir_e2e::real_meilisearch().is_some() {
        eprintln!("not run over real Meilisearch: it needs the test node's fault injection");
        return;
    }
    let cluster = Cluster::start(ClusterSpec {
        nodes_per_group: 2,
        replication_factor: 2,
        shards: 8,
        scatter_extra: "hedging: false, adaptive_replicas: true".into(),
        ..ClusterSpec::default()
    });
    let http = cluster.http();
    let r = http
        .post_json("/indexes", &json!({"uid": "a", "primaryKey": "id"}))
        .unwrap();
    cluster.wait_task(r.json()["taskUid"].as_u64().unwrap());
    let docs: Vec<_> = (0..40).map(|i| json!({"id": i, "t": "doc"})).collect();
    let r = http
        .post_json("/indexes/a/documents", &json!(docs))
        .unwrap();
    cluster.wait_task(r.json()["taskUid"].as_u64().unwrap());
    // Both replicas answer quickly: the rotation spreads every search over both.
    for _ in 0..20 {
        let s = http
            .post_json("/indexes/a/search", &json!({"q": "doc"}))
            .unwrap();
        assert_eq!(s.status, 200);
    }
    let before = (searches(&cluster, 0), searches(&cluster, 1));
    // Node 0 answers searches 300 ms late from now on.
    let r = cluster.nodes[0].call(
        "POST",
        "/_testnode/faults",
        Some(&json!({"rules": [{"route": "/indexes/a/search", "latencyMs": 300}]})),
    );
    assert!(r.status < 300, "{}", r.text());
    let rounds = 30;
    for _ in 0..rounds {
        let s = http
            .post_json("/indexes/a/search", &json!({"q": "doc", "limit": 100}))
            .unwrap()
            .json();
        assert_eq!(s["hits"].as_array().unwrap().len(), 40, "{s}");
    }
    let to_slow = searches(&cluster, 0) - before.0;
    let to_fast = searches(&cluster, 1) - before.1;
    // Plain rotation would ask both nodes for every search (each holds half the shards'
    // turns). Each core learns the slow node from its answers, then passes it over. (A core
    // whose warm-up happened to measure the fast node slower may ask the slow one alone
    // once, so the fast one is not asserted to get every search.)
    assert!(
        to_slow < rounds / 2 && to_fast > to_slow,
        "the slow replica was asked {to_slow} times, the fast one {to_fast}, of {rounds}"
    );
}
