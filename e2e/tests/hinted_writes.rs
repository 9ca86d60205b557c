//! Copies that converge (docs/operations.md#hinted-writes, decisions 020–022), through the
//! real binaries:
//! - RF=2: a node `kill -9`ed during ingest misses writes that are all acknowledged anyway
//!   (`write_consistency: one`); restarted on the same data, it gets every missed write
//!   replayed, ends with exactly the documents of its shards in their last content, and no
//!   search in between returns a stale or incomplete answer (it is not read until caught up);
//! - `write_consistency: all`: a write that only some copies accepted is registered, answered
//!   `X-Miroir-Write-Consistency: degraded` with the pending copies in the task, its hints
//!   survive `kill -9` of the admin, and the copies are equal once the node is back;
//! - RG=2: a whole replica group `kill -9`ed during ingest, restarted later: both groups end
//!   equal, every copy with its last content, and no search in between was stale;
//! - a node restarted on an empty data directory lost its node task: the Miroir task settles
//!   as failed with `miroir_node_task_lost` (test node only: it needs a task that stays
//!   enqueued on the node).
//!
//! Expected placement is computed with the spec's formulas (re-implemented here, as in
//! `availability.rs`), and each node is asked directly for what it holds.

use miroir_e2e::{wait_until, within, ClusterSpec, Deployment, DeploymentOptions, Response};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use xxhash_rust::xxh64::xxh64;

const INDEX: &str = "books";
const S: u32 = 8;

/// `shard_for_key`: xxh64(seed 0, canonical pk) mod S (integer pks in decimal).
fn shard_of(id: u64) -> u32 {
    (xxh64(id.to_string().as_bytes(), 0) % S as u64) as u32
}

/// `owners(shard, group)`: the `rf` nodes of the group with the highest
/// xxh64(u32_le(shard) ‖ node id), ties by id ascending. Returns node indexes.
fn owners(d: &Deployment, shard: u32, rf: usize) -> Vec<usize> {
    owners_in(d, shard, rf, None)
}

/// [`owners`] among the nodes of one replica group (`None`: every node, one group).
fn owners_in(d: &Deployment, shard: u32, rf: usize, group: Option<u32>) -> Vec<usize> {
    let mut scored: Vec<(u64, &str, usize)> = (0..d.nodes.len())
        .filter(|&i| group.is_none_or(|g| d.groups[i] == g))
        .map(|i| {
            let mut buf = shard.to_le_bytes().to_vec();
            buf.extend_from_slice(d.ids[i].as_bytes());
            (xxh64(&buf, 0), d.ids[i].as_str(), i)
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    scored.into_iter().take(rf).map(|(_, _, i)| i).collect()
}

fn start(opts: DeploymentOptions) -> Deployment {
    start_with(1, 3, 2, opts)
}

fn start_with(groups: u32, per_group: u32, rf: u32, opts: DeploymentOptions) -> Deployment {
    let d = Deployment::start(
        &ClusterSpec {
            replica_groups: groups,
            nodes_per_group: per_group,
            replication_factor: rf,
            shards: S,
            ..ClusterSpec::default()
        },
        &opts,
    );
    d.write_ok(
        "POST",
        "/indexes",
        &json!({"uid": INDEX, "primaryKey": "id"}),
    );
    // Searches below check every document at once.
    d.write_ok(
        "PATCH",
        &format!("/indexes/{INDEX}/settings"),
        &json!({"pagination": {"maxTotalHits": 100000}}),
    );
    d
}

fn doc(id: u64, version: u32) -> Value {
    json!({"id": id, "title": format!("common book {id} version {version}")})
}

fn add(d: &Deployment, docs: &[Value]) -> Response {
    d.http()
        .post_json(&format!("/indexes/{INDEX}/documents"), &json!(docs))
        .expect("POST documents")
}

/// `id → title` of every document a node holds, asked of the node itself.
fn node_docs(d: &Deployment, node: usize) -> Option<BTreeMap<u64, String>> {
    let r = d.nodes[node]
        .http()
        .get(&format!(
            "/indexes/{INDEX}/documents?limit=100000&fields=id,title"
        ))
        .ok()?;
    if r.status != 200 {
        return None;
    }
    Some(
        r.json()["results"]
            .as_array()?
            .iter()
            .map(|h| {
                (
                    h["id"].as_u64().unwrap(),
                    h["title"].as_str().unwrap().to_string(),
                )
            })
            .collect(),
    )
}

/// What each node must hold: the acknowledged documents of the shards it owns.
fn expected_on(
    d: &Deployment,
    node: usize,
    acked: &BTreeMap<u64, String>,
) -> BTreeMap<u64, String> {
    acked
        .iter()
        .filter(|(id, _)| owners(d, shard_of(**id), 2).contains(&node))
        .map(|(id, t)| (*id, t.clone()))
        .collect()
}

/// A search over everything must return exactly the acknowledged documents, each in its
/// last acknowledged content (a stale or incomplete copy answering would break this).
fn assert_search_is_current(d: &Deployment, acked: &BTreeMap<u64, String>, when: &str) {
    let r = d
        .http()
        .post_json(
            &format!("/indexes/{INDEX}/search"),
            &json!({"q": "common", "limit": 100000, "attributesToRetrieve": ["id", "title"]}),
        )
        .expect("search");
    assert_eq!(r.status, 200, "{when}: {}", r.text());
    let got: BTreeMap<u64, String> = r.json()["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["id"].as_u64().unwrap(),
                h["title"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    if &got != acked {
        let missing: Vec<_> = acked.keys().filter(|k| !got.contains_key(k)).collect();
        let stale: Vec<_> = acked
            .iter()
            .filter(|(k, v)| got.get(k).is_some_and(|g| g != *v))
            .map(|(k, _)| k)
            .collect();
        panic!(
            "{when}: search is not current: {} hits for {} acknowledged, missing {missing:?}, stale {stale:?}",
            got.len(),
            acked.len()
        );
    }
}

fn metric(d: &Deployment, name: &str) -> u64 {
    let r = miroir_e2e::Client::tcp(d.admin_addr)
        .bearer(miroir_e2e::ADMIN_KEY)
        .get("/_miroir/metrics")
        .expect("admin metrics");
    r.text()
        .lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Sends `batches` batches (200 new documents each, plus a rewrite of the first 50 so "last
/// content" is tested), `kill -9`ing the `dead` nodes before batch `batches / 3`; every batch
/// must be acknowledged and succeed, and searches stay current. Returns what was acknowledged.
fn ingest_while_nodes_die(
    d: &mut Deployment,
    dead: &[usize],
    batches: u32,
) -> BTreeMap<u64, String> {
    let mut acked: BTreeMap<u64, String> = BTreeMap::new();
    let check_every = (batches / 20).max(1);
    for b in 0..batches {
        if b == batches / 3 {
            for &n in dead {
                d.nodes[n].kill();
            }
        }
        let fresh = (u64::from(b) * 200..u64::from(b + 1) * 200).map(|id| doc(id, b));
        let rewritten = (0..50).map(|id| doc(id, b)).filter(|_| b > 0);
        let docs: Vec<Value> = fresh.chain(rewritten).collect();
        let r = add(d, &docs);
        assert_eq!(r.status, 202, "batch {b} not acknowledged: {}", r.text());
        let t = d.wait_task(r.json()["taskUid"].as_u64().unwrap());
        assert_eq!(t["status"], "succeeded", "batch {b}: {t}");
        for v in &docs {
            acked.insert(
                v["id"].as_u64().unwrap(),
                v["title"].as_str().unwrap().to_string(),
            );
        }
        if b % check_every == 0 || b + 1 == batches {
            assert_search_is_current(d, &acked, &format!("after batch {b}"));
        }
    }
    assert!(metric(d, "miroir_hints_pending") > 0, "writes were hinted");
    acked
}

#[test]
fn rf2_node_killed_during_ingest_catches_up_and_is_never_read_stale() {
    let mut d = start(DeploymentOptions::default());
    let dead = 1;
    // `MIROIR_E2E_HINTS_BATCHES=500` is the 100 000-document run (docs/testing.md).
    let batches: u32 = std::env::var("MIROIR_E2E_HINTS_BATCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
        .max(4);
    let acked = ingest_while_nodes_die(&mut d, &[dead], batches);

    d.nodes[dead].restart();
    // Until the node has caught up, every search is still current (it is not read for the
    // shards it is behind on); afterwards every copy holds exactly its documents.
    wait_until(
        within(Duration::from_secs(120)),
        "the restarted copy to catch up",
        || {
            assert_search_is_current(&d, &acked, "while the node catches up");
            metric(&d, "miroir_hints_pending") == 0
        },
    );
    for node in 0..d.nodes.len() {
        let want = expected_on(&d, node, &acked);
        let got = wait_until(within(Duration::from_secs(60)), "node documents", || {
            node_docs(&d, node).filter(|g| g == &want)
        });
        assert_eq!(got.len(), want.len());
    }
    assert_search_is_current(&d, &acked, "after catching up");
}

#[test]
fn a_write_missing_consistency_after_partial_acceptance_is_registered_and_converges() {
    // Health probes far apart: the killed node stays `active` for Miroir, so the write is
    // dispatched to it and fails there (a partial acceptance, not a refusal up front).
    let mut d = start(DeploymentOptions {
        health_interval_ms: 600_000,
        extra_yaml: "write_consistency: all\n".into(),
        ..DeploymentOptions::default()
    });
    let first: Vec<Value> = (0..100).map(|id| doc(id, 0)).collect();
    let r = add(&d, &first);
    assert_eq!(r.status, 202, "{}", r.text());
    d.wait_task(r.json()["taskUid"].as_u64().unwrap());
    let dead = 2;
    d.nodes[dead].kill();
    let second: Vec<Value> = (0..200).map(|id| doc(id, 1)).collect();
    let r = add(&d, &second);
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.header("x-miroir-write-consistency"), Some("degraded"));
    let t = d.wait_task(r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(t["status"], "succeeded", "{t}");
    let copies = t["details"]["miroirHintedCopies"]
        .as_array()
        .expect("pending copies listed");
    let dead_id = d.ids[dead].clone();
    assert!(copies.iter().any(|c| c["node"] == dead_id.as_str()), "{t}");
    let acked: BTreeMap<u64, String> = second
        .iter()
        .map(|v| {
            (
                v["id"].as_u64().unwrap(),
                v["title"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // The live copies answer searches, current.
    assert_search_is_current(&d, &acked, "with the node down");
    // The hints are durable: `kill -9` of the admin loses none, and the restarted admin
    // publishes the lagging copies again before the data plane serves with its snapshot.
    d.kill_admin();
    d.start_admin();
    d.wait_ready();
    assert!(
        metric(&d, "miroir_hints_pending") > 0,
        "hints survived the admin"
    );
    d.nodes[dead].restart();
    assert_search_is_current(&d, &acked, "right after the node restarted");
    for node in 0..d.nodes.len() {
        let want = expected_on(&d, node, &acked);
        wait_until(within(Duration::from_secs(120)), "every copy equal", || {
            node_docs(&d, node).is_some_and(|g| g == want)
        });
    }
    wait_until(within(Duration::from_secs(60)), "no pending hint", || {
        metric(&d, "miroir_hints_pending") == 0
    });
    assert_search_is_current(&d, &acked, "after the replay");
}

#[test]
fn a_node_task_lost_by_its_node_settles_the_task_as_failed() {
    if miroir_e2e::real_meilisearch().is_some() {
        eprintln!("skipped: needs the test node's stalled task queue");
        return;
    }
    let mut d = start(DeploymentOptions {
        health_interval_ms: 600_000,
        ..DeploymentOptions::default()
    });
    let r = add(&d, &(0..20).map(|id| doc(id, 0)).collect::<Vec<_>>());
    d.wait_task(r.json()["taskUid"].as_u64().unwrap());
    let lost = 0;
    // The node accepts the next write but does not process it…
    let r = d.nodes[lost]
        .http()
        .post_json("/_testnode/faults", &json!({"stallTasks": true}))
        .unwrap();
    assert!(r.status < 300, "{}", r.text());
    let r = add(&d, &(0..20).map(|id| doc(id, 1)).collect::<Vec<_>>());
    assert_eq!(r.status, 202, "{}", r.text());
    let uid = r.json()["taskUid"].as_u64().unwrap();
    // …and comes back on an empty data directory: its task is gone.
    d.nodes[lost].kill();
    if let Some(db) = d.nodes[lost].spec.db.clone() {
        std::fs::remove_dir_all(&db).ok();
    }
    d.nodes[lost].restart();
    let t = d.wait_task(uid);
    assert_eq!(t["status"], "failed", "{t}");
    assert_eq!(t["error"]["code"], "miroir_node_task_lost", "{t}");
    let ids: BTreeSet<String> = [d.ids[lost].clone()].into();
    assert!(
        ids.iter()
            .any(|n| t["error"]["message"].as_str().unwrap().contains(n.as_str())),
        "{t}"
    );
}

#[test]
fn rg2_group_down_during_writes_comes_back_equal() {
    let mut d = start_with(2, 2, 1, DeploymentOptions::default());
    let down: Vec<usize> = (0..d.nodes.len()).filter(|&i| d.groups[i] == 1).collect();
    assert_eq!(down.len(), 2);
    let acked = ingest_while_nodes_die(&mut d, &down, 8);
    for &i in &down {
        d.nodes[i].restart();
    }
    wait_until(
        within(Duration::from_secs(120)),
        "the group to catch up",
        || {
            assert_search_is_current(&d, &acked, "while the group catches up");
            metric(&d, "miroir_hints_pending") == 0
        },
    );
    // Each group holds every acknowledged document once, on the node that owns its shard
    // in that group, in its last content.
    for node in 0..d.nodes.len() {
        let group = d.groups[node];
        let want: BTreeMap<u64, String> = acked
            .iter()
            .filter(|(id, _)| owners_in(&d, shard_of(**id), 1, Some(group)).contains(&node))
            .map(|(id, t)| (*id, t.clone()))
            .collect();
        wait_until(within(Duration::from_secs(60)), "node documents", || {
            node_docs(&d, node).filter(|g| g == &want)
        });
    }
    assert_search_is_current(&d, &acked, "after catching up");
}
