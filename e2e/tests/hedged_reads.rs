//! Hedged reads through the real binaries (`scatter.hedging`): with RF = 2, when one replica
//! turns slow, searches it was asked for are also asked of the other replica, and the
//! answers stay complete. The assertion counts requests (test-node counters), never time.

use miroir_e2e::{Cluster, ClusterSpec};
use serde_json::json;

fn searches(cluster: &Cluster, node: usize) -> u64 {
    let c = cluster.nodes[node]
        .call("GET", "/_testnode/counters", None)
        .json();
    c["POST /indexes/{uid}/search"].as_u64().unwrap_or(0)
}

#[test]
fn a_slow_replica_is_hedged_and_answers_stay_complete() {
    if miroir_e2e::real_meilisearch().is_some() {
        eprintln!("not run over real Meilisearch: it needs the test node's fault injection");
        return;
    }
    let cluster = Cluster::start(ClusterSpec {
        nodes_per_group: 2,
        replication_factor: 2,
        shards: 8,
        scatter_extra: "hedging: true, hedge_min_ms: 5".into(),
        ..ClusterSpec::default()
    });
    let http = cluster.http();
    let r = http
        .post_json("/indexes", &json!({"uid": "h", "primaryKey": "id"}))
        .unwrap();
    cluster.wait_task(r.json()["taskUid"].as_u64().unwrap());
    let docs: Vec<_> = (0..40).map(|i| json!({"id": i, "t": "doc"})).collect();
    let r = http
        .post_json("/indexes/h/documents", &json!(docs))
        .unwrap();
    cluster.wait_task(r.json()["taskUid"].as_u64().unwrap());
    // Warm up both replicas' latency estimates on every core.
    for _ in 0..60 {
        let s = http
            .post_json("/indexes/h/search", &json!({"q": "doc"}))
            .unwrap();
        assert_eq!(s.status, 200);
    }
    let before = (searches(&cluster, 0), searches(&cluster, 1));
    // Node 0 answers searches after 1.5 s from now on.
    let r = cluster.nodes[0].call(
        "POST",
        "/_testnode/faults",
        Some(&json!({"rules": [{"route": "/indexes/h/search", "latencyMs": 1500}]})),
    );
    assert!(r.status < 300, "{}", r.text());
    let rounds = 10;
    for _ in 0..rounds {
        let s = http
            .post_json("/indexes/h/search", &json!({"q": "doc", "limit": 100}))
            .unwrap()
            .json();
        assert_eq!(s["estimatedTotalHits"], 40, "{s}");
        assert_eq!(s["hits"].as_array().unwrap().len(), 40, "{s}");
    }
    let to_slow = searches(&cluster, 0) - before.0;
    let to_fast = searches(&cluster, 1) - before.1;
    // Every search asks one replica first; each extra request is a hedge (node 1 is fast and
    // never hedged itself). Node 0 was asked first at least once, and was hedged.
    let hedges = (to_slow + to_fast).saturating_sub(rounds);
    assert!(
        to_slow >= 1,
        "the slow replica was never asked ({to_slow}, {to_fast})"
    );
    assert!(
        hedges >= 1,
        "no hedge: {to_slow} to the slow replica, {to_fast} to the fast one"
    );
}
