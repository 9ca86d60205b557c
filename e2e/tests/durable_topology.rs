//! The topology is durable and authoritative (issue 12, "Durable topology";
//! docs/contract.md#topology): the configuration's `nodes:` bootstraps a new deployment only.
//!
//! - Restarting Miroir with a configuration that adds a fourth node (and changes the
//!   replication factor) routes nothing differently: every document written before stays
//!   readable by id and found by search, the new node receives nothing, and the difference is
//!   reported — a WARN naming it and the `miroir-ctl` command that would perform it,
//!   `config_drift` in `GET /_miroir/topology`, and `miroir-ctl status`. With LMDB and Redis.
//! - A node restarted on a new address (same id, same database) is picked up from the
//!   configuration: that moves no data, so it is applied and persisted.

use miroir_e2e::{
    bin, start_node, Client, ClusterSpec, Deployment, DeploymentOptions, NodeSpec, Proc, Redis,
    TestNode, ADMIN_KEY,
};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::process::Command;

const INDEX: &str = "books";
const MASTER_KEY: &str = "test-master-key";

fn books(ids: std::ops::Range<u64>) -> Value {
    json!(ids
        .map(|id| json!({"id": id, "title": format!("durable book {id}")}))
        .collect::<Vec<_>>())
}

fn start(extra_yaml: String) -> Deployment {
    let d = Deployment::start(
        &ClusterSpec {
            shards: 16,
            ..ClusterSpec::default()
        },
        &DeploymentOptions {
            extra_yaml,
            ..DeploymentOptions::default()
        },
    );
    d.write_ok(
        "POST",
        "/indexes",
        &json!({"uid": INDEX, "primaryKey": "id"}),
    );
    d.write_ok(
        "POST",
        &format!("/indexes/{INDEX}/documents"),
        &books(0..200),
    );
    d
}

/// Every id in `expected` is found by search and fetched by id, with nothing missing or extra.
fn assert_all_readable(d: &Deployment, expected: &BTreeSet<u64>) {
    let r = d.call(
        "POST",
        &format!("/indexes/{INDEX}/search"),
        Some(&json!({"q": "durable", "limit": 1000})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("x-miroir-degraded").is_none(), "{}", r.text());
    let found: BTreeSet<u64> = r.json()["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect();
    assert_eq!(&found, expected, "search after the restart");
    for id in expected {
        let r = d.call("GET", &format!("/indexes/{INDEX}/documents/{id}"), None);
        assert_eq!(r.status, 200, "document {id}: {}", r.text());
        assert_eq!(r.json()["title"], format!("durable book {id}"));
    }
}

fn admin(d: &Deployment) -> Client {
    Client::tcp(d.admin_addr).bearer(ADMIN_KEY)
}

fn topology(d: &Deployment) -> Value {
    let r = admin(d).call("GET", "/_miroir/topology", None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// SIGTERM to the data plane and the admin (a clean stop of the whole of Miroir).
fn stop_miroir(d: &mut Deployment) {
    if let Some(mut p) = d.dataplane.take() {
        p.terminate();
    }
    if let Some(mut p) = d.admin.take() {
        p.terminate();
    }
}

/// Starts the admin and the data plane again on the (possibly edited) config file.
fn start_miroir(d: &mut Deployment) {
    d.start_admin();
    let mut cmd = Command::new(bin("miroir-dataplane"));
    cmd.arg("--config")
        .arg(&d.config_path)
        .env("RUST_LOG", "warn")
        .env("MIROIR_LOG", "warn");
    let log = d.dir().join("dataplane.log");
    d.dataplane = Some(Proc::spawn("miroir-dataplane", &mut cmd, log));
    d.wait_ready();
}

fn edit_config(d: &Deployment, edit: impl FnOnce(String) -> String) {
    let yaml = std::fs::read_to_string(&d.config_path).unwrap();
    let edited = edit(yaml.clone());
    assert_ne!(edited, yaml, "the edit changed nothing");
    std::fs::write(&d.config_path, edited).unwrap();
}

fn a_node_added_to_the_config_moves_nothing(extra_yaml: String) {
    let mut d = start(extra_yaml);
    let before = topology(&d);
    assert!(before.get("config_drift").is_none(), "{before}");

    stop_miroir(&mut d);
    let fourth: TestNode = start_node(d.dir(), "meili-3", MASTER_KEY);
    let fourth_url = fourth.url();
    edit_config(&d, |y| {
        y.replace(
            "nodes:\n",
            &format!(
                "nodes:\n  - {{ id: \"meili-3\", address: \"{fourth_url}\", replica_group: 0 }}\n"
            ),
        )
        .replace("replication_factor: 1\n", "replication_factor: 2\n")
    });
    let log_from = d.log("admin").len();
    start_miroir(&mut d);

    let mut expected: BTreeSet<u64> = (0..200).collect();
    assert_all_readable(&d, &expected);

    // The stored topology: the same three nodes, RF 1, the same shard counts.
    let t = topology(&d);
    let ids = |t: &Value| -> Vec<String> {
        t["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&t), ["meili-0", "meili-1", "meili-2"]);
    assert_eq!(t["replication_factor"], 1);
    assert_eq!(placement(&t), placement(&before));
    let drift = t["config_drift"].as_array().unwrap();
    assert_eq!(drift.len(), 2, "{t}");
    assert_eq!(drift[0]["kind"], "replication_factor_changed");
    assert_eq!(drift[0]["stored"], 1);
    assert_eq!(drift[0]["configured"], 2);
    assert_eq!(drift[1]["kind"], "node_added");
    assert_eq!(drift[1]["id"], "meili-3");
    assert_eq!(drift[1]["address"], fourth_url.as_str());
    assert_eq!(drift[1]["applied"], false);
    let add = format!("miroir-ctl node add meili-3 {fourth_url} --group 0");
    assert_eq!(drift[1]["command"], add.as_str());

    // The log names each difference and its command.
    let log = &d.log("admin")[log_from..];
    let warns: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("differs from the stored topology"))
        .collect();
    assert_eq!(warns.len(), 2, "{log}");
    assert!(
        warns
            .iter()
            .any(|l| l.contains(&add) && l.contains("meili-3")),
        "{log}"
    );
    assert!(
        warns
            .iter()
            .any(|l| l.contains("miroir-ctl rebalance --replication-factor 2")),
        "{log}"
    );

    // `miroir-ctl status` shows it too.
    let out = Command::new(bin("miroir-ctl"))
        .args(["--url", &format!("http://{}", d.admin_addr)])
        .args(["--admin-key", ADMIN_KEY, "status"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("configuration drift"), "{stdout}");
    assert!(stdout.contains(&add), "{stdout}");

    // New writes go to the stored owners too: the fourth node never hears of the index.
    d.write_ok(
        "POST",
        &format!("/indexes/{INDEX}/documents"),
        &books(200..260),
    );
    expected.extend(200..260);
    assert_all_readable(&d, &expected);
    let r = fourth.call("GET", &format!("/indexes/{INDEX}"), None);
    assert_eq!(r.status, 404, "the new node got the index: {}", r.text());
}

/// Each node's id, address, group, status and shard count (what placement depends on).
fn placement(t: &Value) -> Vec<Value> {
    t["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            json!([
                n["id"],
                n["address"],
                n["replica_group"],
                n["status"],
                n["shard_count"]
            ])
        })
        .collect()
}

#[test]
fn a_node_added_to_the_config_moves_nothing_lmdb() {
    a_node_added_to_the_config_moves_nothing(String::new());
}

#[test]
fn a_node_added_to_the_config_moves_nothing_redis() {
    let redis = Redis::start();
    a_node_added_to_the_config_moves_nothing(format!(
        "task_store: {{ backend: redis, url: \"{}\" }}\n",
        redis.url()
    ));
}

#[test]
fn a_node_address_change_is_applied_and_persisted() {
    let mut d = start(String::new());
    stop_miroir(&mut d);

    // meili-1 comes back on another port with the same database.
    let old_url = d.nodes[1].url();
    d.nodes[1].kill();
    let spec = NodeSpec {
        addr: Some(miroir_testkit::free_addr()),
        ..d.nodes[1].spec.clone()
    };
    d.nodes[1] = TestNode::start(spec);
    let new_url = d.nodes[1].url();
    assert_ne!(old_url, new_url);
    edit_config(&d, |y| y.replace(&old_url, &new_url));
    let log_from = d.log("admin").len();
    start_miroir(&mut d);

    // meili-1's shards are only on meili-1 (RF 1): every document readable means the new
    // address is used.
    assert_all_readable(&d, &(0..200).collect());
    let t = topology(&d);
    let node = t["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "meili-1")
        .unwrap()
        .clone();
    assert_eq!(node["address"], new_url.as_str());
    assert_eq!(
        t["config_drift"],
        json!([{
            "kind": "address_changed", "id": "meili-1", "stored": old_url, "configured": new_url,
            "applied": true, "command": null,
            "message": format!("node `meili-1` moved from {old_url} to {new_url} (applied: an address change moves no data)"),
        }])
    );
    let log = &d.log("admin")[log_from..];
    assert!(
        !log.contains("differs from the stored topology: the"),
        "an address change is not a warning: {log}"
    );

    // Persisted: the next start sees no drift.
    stop_miroir(&mut d);
    start_miroir(&mut d);
    let t = topology(&d);
    assert!(t.get("config_drift").is_none(), "{t}");
    assert_all_readable(&d, &(0..200).collect());
}
