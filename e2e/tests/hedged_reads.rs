//! A slow replica through the real binaries, RF = 2 over two test nodes, with one node's
//! searches delayed by fault injection:
//! - hedged reads (`scatter.hedging`): searches asked of the slow replica are also asked of
//!   the other one, and the answers stay complete;
//! - adaptive replica selection (`scatter.adaptive_replicas`, hedging off so that every
//!   request a node receives is one the planner chose): searches go to the fast replica.
//!
//! The assertions count requests (test-node counters), never time.

use miroir_e2e::{Cluster, ClusterSpec};
use serde_json::json;

fn searches(cluster: &Cluster, node: usize) -> u64 {
    let c = cluster.nodes[node]
        .call("GET", "/_testnode/counters", None)
        .json();
    c["POST /indexes/{uid}/search"].as_u64().unwrap_or(0)
}

/// RF = 2 over two nodes with `scatter_extra`, index `uid` holding 40 documents, `warmup`
/// searches sent; `None` over real Meilisearch (fault injection needs the test node).
fn two_replicas(scatter_extra: &str, uid: &str, warmup: usize) -> Option<Cluster> {
    if miroir_e2e::real_meilisearch().is_some() {
        eprintln!("not run over real Meilisearch: it needs the test node's fault injection");
        return None;
    }
    let cluster = Cluster::start(ClusterSpec {
        nodes_per_group: 2,
        replication_factor: 2,
        shards: 8,
        scatter_extra: scatter_extra.into(),
        ..ClusterSpec::default()
    });
    let http = cluster.http();
    let r = http
        .post_json("/indexes", &json!({"uid": uid, "primaryKey": "id"}))
        .unwrap();
    cluster.wait_task(r.json()["taskUid"].as_u64().unwrap());
    let docs: Vec<_> = (0..40).map(|i| json!({"id": i, "t": "doc"})).collect();
    let r = http
        .post_json(&format!("/indexes/{uid}/documents"), &json!(docs))
        .unwrap();
    cluster.wait_task(r.json()["taskUid"].as_u64().unwrap());
    // Warm up both replicas' latency estimates on every core.
    for _ in 0..warmup {
        let s = http
            .post_json(&format!("/indexes/{uid}/search"), &json!({"q": "doc"}))
            .unwrap();
        assert_eq!(s.status, 200);
    }
    Some(cluster)
}

/// Makes node 0 answer `uid`'s searches `ms` late, sends `rounds` complete searches, and
/// returns how many searches each node received meanwhile.
fn slow_node_0(cluster: &Cluster, uid: &str, ms: u64, rounds: u64) -> (u64, u64) {
    let before = (searches(cluster, 0), searches(cluster, 1));
    let r = cluster.nodes[0].call(
        "POST",
        "/_testnode/faults",
        Some(&json!({"rules": [{"route": format!("/indexes/{uid}/search"), "latencyMs": ms}]})),
    );
    assert!(r.status < 300, "{}", r.text());
    let http = cluster.http();
    for _ in 0..rounds {
        let s = http
            .post_json(
                &format!("/indexes/{uid}/search"),
                &json!({"q": "doc", "limit": 100}),
            )
            .unwrap()
            .json();
        assert_eq!(s["estimatedTotalHits"], 40, "{s}");
        assert_eq!(s["hits"].as_array().unwrap().len(), 40, "{s}");
    }
    (
        searches(cluster, 0) - before.0,
        searches(cluster, 1) - before.1,
    )
}

#[test]
fn a_slow_replica_is_hedged_and_answers_stay_complete() {
    let Some(cluster) = two_replicas("hedging: true, hedge_min_ms: 5", "h", 60) else {
        return;
    };
    let rounds = 10;
    let (to_slow, to_fast) = slow_node_0(&cluster, "h", 1500, rounds);
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

#[test]
fn a_slow_replica_gets_fewer_searches_with_adaptive_selection() {
    let Some(cluster) = two_replicas("hedging: false, adaptive_replicas: true", "a", 20) else {
        return;
    };
    let rounds = 30;
    let (to_slow, to_fast) = slow_node_0(&cluster, "a", 300, rounds);
    // Plain rotation would ask both nodes for every search (each holds half the shards'
    // turns). Each core learns the slow node from its answers, then passes it over. (A core
    // whose warm-up happened to measure the fast node slower may ask the slow one alone
    // once, so the fast one is not asserted to get every search.)
    assert!(
        to_slow < rounds / 2 && to_fast > to_slow,
        "the slow replica was asked {to_slow} times, the fast one {to_fast}, of {rounds}"
    );
}
