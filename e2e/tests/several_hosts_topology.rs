//! A topology operation outlives its leader (docs/architecture.md#several-hosts,
//! docs/operations.md#topology-operations): two Miroir hosts on one Redis, a node added
//! through the leader, the leader `kill -9`ed while the new node's shards are being copied;
//! the other host takes the lease, resumes the operation from the record in Redis and
//! completes it. Afterwards every document is found through the surviving host, once: the
//! new node holds its shards and the old owners no longer hold them (RF = 1: the nodes'
//! document counts add up to the corpus). Test nodes only: the copy is slowed by fault
//! injection so that the kill lands in the copy phase.

use miroir_e2e::{wait_until, within, Client, ClusterSpec, Redis};
use miroir_testkit::{Cluster, Launch, NodeSpec, TestNode};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

const INDEX: &str = "moving";
const DOCS: u64 = 1200;

fn admin(addr: SocketAddr, key: &str) -> Client {
    Client::tcp(addr)
        .bearer(key)
        .timeout(Duration::from_secs(10))
}

fn status(addr: SocketAddr, key: &str) -> Option<Value> {
    let r = admin(addr, key).get("/_miroir/rebalance/status").ok()?;
    (r.status == 200).then(|| r.json())
}

#[test]
fn a_node_add_started_before_the_leader_dies_completes_on_the_next_leader() {
    let redis = Redis::start();
    let cluster = Cluster::start(ClusterSpec {
        extra_yaml: format!(
            "task_store: {{ backend: redis, url: \"{}\" }}\nrebalance: {{ page_size: 40 }}\n",
            redis.url()
        ),
        shards: 16,
        launch: Launch::OneCommand,
        ..ClusterSpec::default()
    });
    let key = cluster.spec.master_key.clone();
    let node_key = cluster
        .spec
        .node_master_key
        .clone()
        .unwrap_or_else(|| key.clone());
    let follower = cluster.start_host();
    let mut cluster = cluster;
    let spare_dir = miroir_e2e::temp_dir("spare");
    let spare = TestNode::start(NodeSpec::in_dir(spare_dir.path(), "spare", &node_key));

    let leader_http = Client::tcp(cluster.addr)
        .bearer(&key)
        .timeout(Duration::from_secs(30));
    let r = leader_http
        .post_json("/indexes", &json!({"uid": INDEX, "primaryKey": "id"}))
        .unwrap();
    miroir_testkit::wait_task(&leader_http, r.json()["taskUid"].as_u64().unwrap());
    let docs: Vec<Value> = (0..DOCS)
        .map(|i| json!({"id": i, "title": format!("document {i}")}))
        .collect();
    let r = leader_http
        .post_json(&format!("/indexes/{INDEX}/documents"), &json!(docs))
        .unwrap();
    let t = miroir_testkit::wait_task(&leader_http, r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(t["status"], "succeeded", "{t}");

    // Every page written to the new node takes a while: the copy phase lasts seconds.
    let faults = spare
        .http()
        .post_json(
            "/_testnode/faults",
            &json!({"rules": [{"route": format!("/indexes/{INDEX}/documents"), "latencyMs": 400}]}),
        )
        .unwrap();
    assert!(faults.status < 300, "{}", faults.text());
    let r = admin(cluster.admin_addr, &key)
        .post_json(
            "/_miroir/nodes",
            &json!({"id": "spare", "address": spare.url(), "replica_group": 0}),
        )
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    wait_until(
        within(Duration::from_secs(60)),
        "the operation to reach its copy phase",
        || status(cluster.admin_addr, &key).is_some_and(|s| s["phase"] == "copy"),
    );
    cluster.kill_admin();
    spare
        .http()
        .post_json("/_testnode/faults", &json!({"rules": []}))
        .unwrap();

    // The follower takes the lease and finishes the operation.
    let finished = wait_until(
        within(Duration::from_secs(120)),
        "the operation to complete on the next leader",
        || {
            status(follower.admin_addr, &key)
                .filter(|s| s["in_progress"] == json!(false) && s["phase"] == "done")
        },
    );
    assert!(
        finished["documents_copied"].as_u64().unwrap_or(0) > 0,
        "{finished}"
    );
    let topology = admin(follower.admin_addr, &key)
        .get("/_miroir/topology")
        .unwrap()
        .json();
    let spare_status = topology["nodes"]
        .as_array()
        .and_then(|ns| ns.iter().find(|n| n["id"] == "spare"))
        .map(|n| n["status"].clone());
    assert_eq!(spare_status, Some(json!("active")), "{topology}");

    // Every document once through the surviving host; each node holds only what it owns.
    let http = Client::tcp(follower.addr)
        .bearer(&key)
        .timeout(Duration::from_secs(30));
    let r = http
        .post_json(
            &format!("/indexes/{INDEX}/search"),
            &json!({"q": "", "limit": 0}),
        )
        .unwrap();
    assert_eq!(r.json()["estimatedTotalHits"], json!(DOCS), "{}", r.text());
    let count = |c: &Client| -> u64 {
        c.get(&format!("/indexes/{INDEX}/documents?limit=0"))
            .unwrap()
            .json()["total"]
            .as_u64()
            .unwrap_or(0)
    };
    let on_spare = count(&spare.http());
    let on_old: u64 = cluster.nodes.iter().map(|n| count(&n.http())).sum();
    assert!(on_spare > 0, "the new node holds nothing");
    assert_eq!(on_spare + on_old, DOCS, "copies left behind or missing");
}
