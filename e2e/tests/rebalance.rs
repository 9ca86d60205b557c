//! Elastic topology under load (issue 12 items 2–4; docs/operations.md#topology-operations):
//! a writer sends batches continuously (new documents and updates of earlier ones) and a
//! searcher counts the index throughout, while the admin API adds a node, drains one and
//! removes it — with the admin killed at every phase of an operation in turn, and with
//! latency on a node during the copy.
//!
//! After each operation: every acknowledged document is readable by id with its last
//! acknowledged content and counted by search; every document is on exactly RF nodes of its
//! group, all of them owners of its shard by rendezvous (asked of the nodes directly); no
//! search during the operation failed, was degraded, counted fewer documents than were
//! acknowledged before it started, or more than were ever sent (no shard counted twice).
//!
//! Size: `MIROIR_E2E_DOCS` documents before the operation (2 000 by default; the big run is
//! `MIROIR_E2E_DOCS=100000`, docs/testing.md). `MIROIR_E2E_REBALANCE_YAML` replaces the
//! `rebalance:` block of the config (e.g. `"rebalance: { page_size: 1000 }\n"`).

use miroir_e2e::{
    start_node, wait_until, within, Client, ClusterSpec, Deployment, DeploymentOptions, TestNode,
    ADMIN_KEY,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use xxhash_rust::xxh64::xxh64;

const INDEX: &str = "items";
const MASTER_KEY: &str = "test-master-key";
const SHARDS: u32 = 16;
const BATCH: u64 = 50;

fn corpus_size() -> u64 {
    std::env::var("MIROIR_E2E_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

fn doc(id: u64, version: u64) -> Value {
    json!({"id": id, "text": format!("item {id} version {version}"), "version": version})
}

fn start(nodes: u32) -> Deployment {
    start_with(nodes, 1, "")
}

fn start_with(nodes: u32, rf: u32, rebalance: &str) -> Deployment {
    start_groups(1, nodes, rf, rebalance)
}

fn start_groups(groups: u32, nodes: u32, rf: u32, rebalance: &str) -> Deployment {
    let d = Deployment::start(
        &ClusterSpec {
            shards: SHARDS,
            replica_groups: groups,
            nodes_per_group: nodes,
            replication_factor: rf,
            ..ClusterSpec::default()
        },
        &DeploymentOptions {
            extra_yaml: std::env::var("MIROIR_E2E_REBALANCE_YAML")
                .unwrap_or(format!("rebalance: {{ page_size: 200{rebalance} }}\n")),
            ..DeploymentOptions::default()
        },
    );
    d.write_ok(
        "POST",
        "/indexes",
        &json!({"uid": INDEX, "primaryKey": "id"}),
    );
    // Exact counts from search: `totalHits` is capped by maxTotalHits.
    d.write_ok(
        "PATCH",
        &format!("/indexes/{INDEX}/settings"),
        &json!({"pagination": {"maxTotalHits": 1_000_000}, "filterableAttributes": ["version"]}),
    );
    d
}

/// Every acknowledged document's last content, and the ids whose last write was not
/// acknowledged (their content is unknown, so they are only checked for presence).
#[derive(Default)]
struct Acked {
    content: BTreeMap<u64, u64>,
    uncertain: BTreeSet<u64>,
}

/// Sends batches until stopped: `BATCH` new ids, plus updates of a few earlier ones.
struct Writer {
    acked: Arc<Mutex<Acked>>,
    /// Ids sent so far (acknowledged or not): `0..next_id`.
    next_id: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Writer {
    fn start(d: &Deployment, first_id: u64, acked: Arc<Mutex<Acked>>) -> Writer {
        let client = d.http().timeout(Duration::from_secs(30));
        let wait_client = d.http();
        let next_id = Arc::new(AtomicU64::new(first_id));
        let stop = Arc::new(AtomicBool::new(false));
        let (n, s, a) = (next_id.clone(), stop.clone(), acked.clone());
        let handle = std::thread::spawn(move || {
            let mut version = 1_000_000u64;
            while !s.load(Ordering::Relaxed) {
                version += 1;
                let first = n.load(Ordering::Relaxed);
                let mut ids: Vec<u64> = (first..first + BATCH).collect();
                ids.extend((0..5).map(|k| (version * 7919 + k * 104_729) % first.max(1)));
                ids.sort_unstable();
                ids.dedup();
                n.store(first + BATCH, Ordering::Relaxed);
                let body = json!(ids.iter().map(|&i| doc(i, version)).collect::<Vec<_>>());
                let ok = client
                    .post_json(&format!("/indexes/{INDEX}/documents"), &body)
                    .ok()
                    .filter(|r| r.status == 202)
                    .and_then(|r| r.json()["taskUid"].as_u64())
                    .map(|uid| miroir_e2e_wait(&wait_client, uid))
                    .unwrap_or(false);
                let mut a = a.lock().unwrap();
                for i in ids {
                    if ok {
                        a.content.insert(i, version);
                        a.uncertain.remove(&i);
                    } else {
                        a.uncertain.insert(i);
                    }
                }
                drop(a);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Writer {
            acked,
            next_id,
            stop,
            handle: Some(handle),
        }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().expect("writer thread");
        }
        let _ = &self.acked;
        self.next_id.load(Ordering::Relaxed)
    }
}

/// Whether a Miroir task succeeded (false when it failed or the admin was unavailable).
fn miroir_e2e_wait(client: &Client, uid: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(&format!("/tasks/{uid}")) {
            if r.status == 200 {
                match r.json()["status"].as_str() {
                    Some("succeeded") => return true,
                    Some("failed" | "canceled") => return false,
                    _ => {}
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Searches continuously; each answer must be 200, complete, and count between `floor` (the
/// documents acknowledged before the operation started) and the ids ever sent.
struct Searcher {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<(u64, Vec<String>)>>,
}

impl Searcher {
    fn start(d: &Deployment, floor: u64, sent: Arc<AtomicU64>) -> Searcher {
        Searcher::start_with(d, floor, sent, false)
    }

    /// `retry_unreachable`: a search that gets no answer at all (the data plane is being
    /// restarted) is sent again, as a client would; every answer is still judged.
    fn start_with(
        d: &Deployment,
        floor: u64,
        sent: Arc<AtomicU64>,
        retry_unreachable: bool,
    ) -> Searcher {
        let client = d.http().timeout(Duration::from_secs(30));
        let ops = admin(d);
        let phase = move || {
            ops.get("/_miroir/rebalance/status")
                .map(|r| r.json()["phase"].to_string())
                .unwrap_or_default()
        };
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let (mut count, mut problems) = (0u64, Vec::new());
            while !s.load(Ordering::Relaxed) {
                let ceiling = sent.load(Ordering::Relaxed);
                let r = client.post_json(
                    &format!("/indexes/{INDEX}/search"),
                    &json!({"q": "", "hitsPerPage": 1, "page": 1}),
                );
                count += 1;
                match r {
                    Ok(r) if r.status == 200 && r.header("x-miroir-degraded").is_none() => {
                        let total = r.json()["totalHits"].as_u64().unwrap_or(0);
                        if total < floor || total > ceiling + BATCH {
                            problems.push(format!(
                                "search counted {total}, expected {floor}..={ceiling} (phase {})",
                                phase()
                            ));
                        }
                    }
                    Ok(r) => problems.push(format!("search answered {}: {}", r.status, r.text())),
                    Err(_) if retry_unreachable => count -= 1,
                    Err(e) => problems.push(format!("search failed: {e}")),
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (count, problems)
        });
        Searcher {
            stop,
            handle: Some(handle),
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let (count, problems) = self.handle.take().unwrap().join().expect("searcher");
        assert!(count > 0, "the searcher never ran");
        assert!(
            problems.is_empty(),
            "{} of {count} searches during the operation went wrong, e.g. {:?}",
            problems.len(),
            &problems[..problems.len().min(5)]
        );
    }
}

fn admin(d: &Deployment) -> Client {
    Client::tcp(d.admin_addr)
        .bearer(ADMIN_KEY)
        .timeout(Duration::from_secs(30))
}

fn topology(d: &Deployment) -> Value {
    let r = admin(d).call("GET", "/_miroir/topology", None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Polls the status until no operation runs; returns the last (finished) one. The deadline
/// grows with the corpus (a group add copies all of it: about 1 000 documents/s over debug
/// builds on a shared machine).
fn wait_operation_done(d: &Deployment) -> Value {
    let mut last = Value::Null;
    let deadline = Duration::from_secs(120 + corpus_size() / 250);
    let done = miroir_e2e::try_wait_until(within(deadline), || {
        let Ok(r) = admin(d).get("/_miroir/rebalance/status") else {
            return false;
        };
        last = r.json();
        r.status == 200 && last["in_progress"] == false && last["phase"] == "done"
    });
    assert!(
        done.is_some(),
        "the topology operation did not finish: {last}"
    );
    last
}

/// Fills the index with `n` documents (version 0) before any operation.
fn fill(d: &Deployment, n: u64, acked: &Arc<Mutex<Acked>>) {
    let mut a = acked.lock().unwrap();
    for start in (0..n).step_by(1000) {
        let ids = start..(start + 1000).min(n);
        let body = json!(ids.clone().map(|i| doc(i, 0)).collect::<Vec<_>>());
        d.write_ok("POST", &format!("/indexes/{INDEX}/documents"), &body);
        for i in ids {
            a.content.insert(i, 0);
        }
    }
}

/// Rendezvous owners (docs/contract.md#routing): the `rf` highest `xxh64(u32_le(shard) ‖ id)`.
fn owners(shard: u32, nodes: &[String], rf: usize) -> Vec<String> {
    let mut scored: Vec<(u64, &String)> = nodes
        .iter()
        .map(|n| {
            let mut b = shard.to_le_bytes().to_vec();
            b.extend_from_slice(n.as_bytes());
            (xxh64(&b, 0), n)
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    scored
        .into_iter()
        .take(rf)
        .map(|(_, n)| n.clone())
        .collect()
}

/// Checks the end state: documents through Miroir, and placement on the nodes themselves.
fn check(d: &Deployment, acked: &Arc<Mutex<Acked>>, extra_nodes: &[&TestNode]) {
    let a = acked.lock().unwrap();
    // Every document through Miroir (listing), with its last acknowledged content.
    let r = d.call(
        "GET",
        &format!("/indexes/{INDEX}/documents?limit=1000000&fields=id,version"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let listed: BTreeMap<u64, u64> = r.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["id"].as_u64().unwrap(), d["version"].as_u64().unwrap()))
        .collect();
    let mut wrong = Vec::new();
    for (id, version) in &a.content {
        if a.uncertain.contains(id) {
            continue;
        }
        if listed.get(id) != Some(version) {
            wrong.push((*id, *version, listed.get(id).copied()));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} acknowledged documents missing or stale (id, acked version, listed): {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    // Counted by search, once each.
    let r = d.call(
        "POST",
        &format!("/indexes/{INDEX}/search"),
        Some(&json!({"q": "", "hitsPerPage": 1, "page": 1})),
    );
    assert_eq!(r.json()["totalHits"].as_u64(), Some(listed.len() as u64));
    // Differential searches against the corpus itself (what one node holding it answers):
    // for a few versions, the ids a filtered search finds are exactly the listed ones.
    let mut versions: Vec<u64> = listed.values().copied().collect();
    versions.sort_unstable();
    versions.dedup();
    let step = (versions.len() / 4).max(1);
    for v in versions.iter().step_by(step).take(5) {
        let want: BTreeSet<u64> = listed
            .iter()
            .filter(|(_, lv)| *lv == v)
            .map(|(id, _)| *id)
            .collect();
        let r = d.call(
            "POST",
            &format!("/indexes/{INDEX}/search"),
            Some(&json!({"q": "item", "filter": format!("version = {v}"),
                         "hitsPerPage": want.len().max(1), "page": 1,
                         "attributesToRetrieve": ["id"]})),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let got: BTreeSet<u64> = r.json()["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_u64().unwrap())
            .collect();
        assert_eq!(
            r.json()["totalHits"].as_u64(),
            Some(want.len() as u64),
            "version {v}"
        );
        assert_eq!(got, want, "search for version {v}");
    }
    // By id, a sample.
    for id in a.content.keys().step_by(97) {
        if a.uncertain.contains(id) {
            continue;
        }
        let r = d.call("GET", &format!("/indexes/{INDEX}/documents/{id}"), None);
        assert_eq!(r.status, 200, "document {id}: {}", r.text());
        assert_eq!(r.json()["version"].as_u64(), a.content.get(id).copied());
    }
    // Placement, asked of every node directly.
    let t = topology(d);
    assert_eq!(t["rebalance_in_progress"], false, "{t}");
    let rf = t["replication_factor"].as_u64().unwrap() as usize;
    let members: Vec<(String, String, u64)> = t["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["id"].as_str().unwrap().to_string(),
                n["address"].as_str().unwrap().to_string(),
                n["replica_group"].as_u64().unwrap(),
            )
        })
        .collect();
    // Placement is per replica group: the owners of a shard in a node's own group.
    let owning = |group: u64| -> Vec<String> {
        t["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["status"] != "joining" && n["replica_group"] == group)
            .map(|n| n["id"].as_str().unwrap().to_string())
            .collect()
    };
    let groups_holding = members
        .iter()
        .map(|(_, _, g)| *g)
        .collect::<BTreeSet<u64>>()
        .into_iter()
        .filter(|g| !owning(*g).is_empty())
        .count();
    let mut addresses: Vec<(String, String, u64)> = members.clone();
    for n in extra_nodes {
        if !addresses.iter().any(|(_, a, _)| *a == n.url()) {
            addresses.push(("(left)".into(), n.url(), u64::MAX));
        }
    }
    let mut holders: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (id, addr, group) in &addresses {
        let node = Client::tcp(addr.trim_start_matches("http://"))
            .bearer(MASTER_KEY)
            .timeout(Duration::from_secs(30));
        let r = node.call(
            "POST",
            &format!("/indexes/{INDEX}/documents/fetch"),
            Some(&json!({"limit": 1_000_000, "fields": ["id"]})),
        );
        if r.status == 404 {
            continue;
        }
        assert_eq!(r.status, 200, "{id}: {}", r.text());
        for doc in r.json()["results"].as_array().unwrap() {
            let doc_id = doc["id"].as_u64().unwrap();
            // docs/contract.md#routing: xxh64 of the canonical id (decimal for integers) mod S.
            let shard = (xxh64(doc_id.to_string().as_bytes(), 0) % u64::from(SHARDS)) as u32;
            let mine = owners(shard, &owning(*group), rf);
            assert!(
                mine.contains(id),
                "document {doc_id} (shard {shard}) is on {id} ({addr}), which does not own it (owners {mine:?})"
            );
            holders.entry(doc_id).or_default().push(id.clone());
        }
    }
    for (doc_id, on) in &holders {
        assert_eq!(
            on.len(),
            rf * groups_holding,
            "document {doc_id} is on {on:?}"
        );
    }
    assert_eq!(holders.len(), listed.len());
}

fn add_node(d: &Deployment, node: &TestNode, id: &str) -> Value {
    let r = admin(d).call(
        "POST",
        "/_miroir/nodes",
        Some(&json!({"id": id, "address": node.url(), "replica_group": 0})),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()
}

fn node_status(d: &Deployment, id: &str) -> Option<String> {
    topology(d)["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
        .map(|n| n["status"].as_str().unwrap().to_string())
}

#[test]
fn a_node_is_added_then_one_drained_and_removed_under_load() {
    let d = start(3);
    let acked = Arc::new(Mutex::new(Acked::default()));
    let n = corpus_size();
    fill(&d, n, &acked);

    // (a) A fourth node.
    let fourth = start_node(d.dir(), "meili-3", MASTER_KEY);
    let writer = Writer::start(&d, n, acked.clone());
    let searcher = Searcher::start(&d, n, writer.next_id.clone());
    let started = Instant::now();
    let op = add_node(&d, &fourth, "meili-3");
    assert_eq!(op["kind"], "add_node", "{op}");
    assert_eq!(topology(&d)["rebalance_in_progress"], true);
    let done = wait_operation_done(&d);
    let took = started.elapsed();
    eprintln!(
        "add node: {} documents copied in {:.1} s ({} moves); ms per phase {}",
        done["documents_copied"],
        took.as_secs_f64(),
        done["moves"].as_array().map_or(0, Vec::len),
        done["phase_ms"]
    );
    assert!(
        done["moves"].as_array().is_some_and(|m| !m.is_empty()),
        "{done}"
    );
    // Rendezvous: the new node's share, about 1/4 of the shards, never everything.
    assert!(
        done["moves"].as_array().unwrap().len() < SHARDS as usize / 2,
        "{done}"
    );
    assert_eq!(node_status(&d, "meili-3").as_deref(), Some("active"));
    searcher.stop();
    let sent = writer.stop();
    check(&d, &acked, &[&fourth]);

    // The same operation again is refused: ids are never reused.
    let again = admin(&d).call(
        "POST",
        "/_miroir/nodes",
        Some(&json!({"id": "meili-3", "address": fourth.url()})),
    );
    assert_eq!(again.status, 400, "{}", again.text());
    assert_eq!(again.json()["code"], "miroir_invalid_topology");

    // (b) Drain meili-1, then remove it.
    let before = acked.lock().unwrap().content.len() as u64;
    let writer = Writer::start(&d, sent, acked.clone());
    let searcher = Searcher::start(&d, before, writer.next_id.clone());
    // Removing an active node is refused: it must be drained first.
    let r = admin(&d).call("DELETE", "/_miroir/nodes/meili-1", None);
    assert_eq!(r.status, 400, "{}", r.text());
    let r = admin(&d).call("POST", "/_miroir/nodes/meili-1/drain", None);
    assert_eq!(r.status, 202, "{}", r.text());
    // One operation at a time.
    let busy = admin(&d).call("POST", "/_miroir/nodes/meili-2/drain", None);
    assert_eq!(busy.status, 409, "{}", busy.text());
    assert_eq!(busy.json()["code"], "miroir_rebalance_in_progress");
    let done = wait_operation_done(&d);
    eprintln!(
        "drain: {} documents copied; ms per phase {}",
        done["documents_copied"], done["phase_ms"]
    );
    assert_eq!(done["kind"], "drain_node", "{done}");
    assert_eq!(
        node_status(&d, "meili-1"),
        None,
        "a drained node leaves the topology"
    );
    let r = admin(&d).call("DELETE", "/_miroir/nodes/meili-1", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "removed");
    searcher.stop();
    writer.stop();
    let drained = &d.nodes[1];
    check(&d, &acked, &[&fourth, drained]);
    // The drained node kept nothing.
    let left = drained.call(
        "POST",
        &format!("/indexes/{INDEX}/documents/fetch"),
        Some(&json!({"limit": 1})),
    );
    assert_eq!(left.json()["total"], 0, "{}", left.text());
}

/// `kill -9`-equivalent exits of the admin at every phase of an add-node operation, each
/// followed by a restart that resumes it; the operation completes and nothing is lost.
#[test]
fn the_admin_dies_at_every_phase_and_the_operation_completes() {
    let mut d = start(3);
    let acked = Arc::new(Mutex::new(Acked::default()));
    let n = corpus_size();
    fill(&d, n, &acked);
    let fourth = start_node(d.dir(), "meili-3", MASTER_KEY);
    let writer = Writer::start(&d, n, acked.clone());
    let searcher = Searcher::start(&d, n, writer.next_id.clone());

    let restart_with = |d: &mut Deployment, exit_at: Option<&str>| {
        d.spec.env.retain(|(k, _)| k != "MIROIR_REBALANCE_EXIT_AT");
        if let Some(p) = exit_at {
            d.spec
                .env
                .push(("MIROIR_REBALANCE_EXIT_AT".into(), p.into()));
        }
        d.start_admin();
    };
    let wait_exit = |d: &mut Deployment, phase: &str| {
        let mut p = d.admin.take().expect("admin running");
        wait_until(
            within(Duration::from_secs(120)),
            &format!("the admin to exit at phase {phase}"),
            || p.try_wait().is_some(),
        );
        assert!(
            p.log().contains(phase),
            "the admin exited without reaching {phase}: {}",
            p.log()
        );
    };

    d.kill_admin();
    restart_with(&mut d, Some("prepare"));
    add_node(&d, &fourth, "meili-3");
    wait_exit(&mut d, "prepare");
    for phase in ["dual_write", "copy", "verify", "switch", "cleanup", "done"] {
        restart_with(&mut d, Some(phase));
        wait_exit(&mut d, phase);
    }
    restart_with(&mut d, None);
    // The admin was down between the restarts: searches are served by the data plane alone,
    // and must still have been complete and correct.
    fourth_node_joined(&d, searcher, writer, &acked, &fourth);
}

/// 500 ms of latency on one of the old owners' document reads during the copy: the
/// operation completes, slower, and nothing is lost.
#[test]
fn a_slow_node_during_the_copy() {
    if miroir_e2e::real_meilisearch().is_some() {
        eprintln!("skipped: fault injection needs the test node");
        return;
    }
    let d = start(3);
    let acked = Arc::new(Mutex::new(Acked::default()));
    fill(&d, corpus_size().min(2_000), &acked);
    let r = d.nodes[0].call(
        "POST",
        "/_testnode/faults",
        Some(&json!({"rules": [{"route": format!("/indexes/{INDEX}/documents/fetch"), "latencyMs": 500}]})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let fourth = start_node(d.dir(), "meili-3", MASTER_KEY);
    let writer = Writer::start(&d, corpus_size().min(2_000), acked.clone());
    add_node(&d, &fourth, "meili-3");
    let done = wait_operation_done(&d);
    assert_eq!(done["phase"], "done");
    writer.stop();
    d.nodes[0].call("DELETE", "/_testnode/faults", None);
    check(&d, &acked, &[&fourth]);
}

/// Issue 12 (d): `kill -9` of the data plane in the middle of the copy. Clients retry what got
/// no answer; the data plane restarts, applies the current epoch (dual-writes included) before
/// it serves, and the operation completes with nothing lost.
#[test]
fn the_data_plane_dies_mid_copy_and_the_operation_completes() {
    // A slow copy (a few seconds) so that the kill lands inside it.
    let mut d = start_with(3, 1, ", max_docs_per_sec: 200");
    let acked = Arc::new(Mutex::new(Acked::default()));
    let n = corpus_size().min(4_000);
    fill(&d, n, &acked);
    let fourth = start_node(d.dir(), "meili-3", MASTER_KEY);
    let writer = Writer::start(&d, n, acked.clone());
    let searcher = Searcher::start_with(&d, n, writer.next_id.clone(), true);
    add_node(&d, &fourth, "meili-3");
    let mut last = Value::Null;
    let copying = miroir_e2e::try_wait_until(within(Duration::from_secs(60)), || {
        let Ok(r) = admin(&d).get("/_miroir/rebalance/status") else {
            return false;
        };
        last = r.json();
        last["phase"] == "copy" && last["documents_copied"].as_u64().unwrap_or(0) > 0
    });
    assert!(copying.is_some(), "the copy never started: {last}");
    d.kill_dataplane();
    std::thread::sleep(Duration::from_millis(300));
    d.start_dataplane();
    d.wait_ready();
    let status = admin(&d).get("/_miroir/rebalance/status").unwrap().json();
    assert!(
        status["in_progress"] == true,
        "the kill landed after the copy: {status}"
    );
    fourth_node_joined(&d, searcher, writer, &acked, &fourth);
}

/// The end of a `meili-3` add under load: the operation finished, the node is active, no
/// search went wrong, and the end state checks out.
fn fourth_node_joined(
    d: &Deployment,
    searcher: Searcher,
    writer: Writer,
    acked: &Arc<Mutex<Acked>>,
    fourth: &TestNode,
) {
    let done = wait_operation_done(d);
    assert_eq!(done["kind"], "add_node", "{done}");
    assert_eq!(node_status(d, "meili-3").as_deref(), Some("active"));
    searcher.stop();
    writer.stop();
    check(d, acked, &[fourth]);
}

/// `POST /_miroir/rebalance` (`miroir-ctl rebalance start`): copies that differ from the
/// topology are repaired. RF=2 over three nodes: one owner loses every document of a shard
/// (a wiped or restored node), and the node that does not own another shard gets a copy of it
/// (written to it directly). The reconcile copies the first back, deletes the second, and
/// nothing a writer acknowledged meanwhile is lost; a second run finds nothing to do.
#[test]
fn rebalance_repairs_missing_and_stray_copies() {
    let d = start_with(3, 2, "");
    let acked = Arc::new(Mutex::new(Acked::default()));
    let n = corpus_size();
    fill(&d, n, &acked);
    let ids: Vec<String> = d.ids.clone();
    let shard_of = |id: u64| (xxh64(id.to_string().as_bytes(), 0) % u64::from(SHARDS)) as u32;
    let all_on = |node: &TestNode| -> Vec<Value> {
        let r = node.call(
            "POST",
            &format!("/indexes/{INDEX}/documents/fetch"),
            Some(&json!({"limit": 1_000_000})),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["results"].as_array().unwrap().clone()
    };
    // Shard 0 vanishes from one of its owners.
    let owners0 = owners(0, &ids, 2);
    let wiped = ids.iter().position(|i| *i == owners0[0]).unwrap();
    let gone: Vec<u64> = all_on(&d.nodes[wiped])
        .iter()
        .map(|doc| doc["id"].as_u64().unwrap())
        .filter(|id| shard_of(*id) == 0)
        .collect();
    assert!(!gone.is_empty());
    let r = d.nodes[wiped].call(
        "POST",
        &format!("/indexes/{INDEX}/documents/delete-batch"),
        Some(&json!(gone)),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    d.nodes[wiped].wait_task(r.json()["taskUid"].as_u64().unwrap());
    // Shard 1 appears on the node that does not own it (reserved fields and all).
    let owners1 = owners(1, &ids, 2);
    let stray = ids.iter().position(|i| !owners1.contains(i)).unwrap();
    let holder = ids.iter().position(|i| *i == owners1[0]).unwrap();
    let copied: Vec<Value> = all_on(&d.nodes[holder])
        .into_iter()
        .filter(|doc| shard_of(doc["id"].as_u64().unwrap()) == 1)
        .collect();
    assert!(!copied.is_empty());
    let r = d.nodes[stray].call(
        "POST",
        &format!("/indexes/{INDEX}/documents"),
        Some(&json!(copied)),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    d.nodes[stray].wait_task(r.json()["taskUid"].as_u64().unwrap());

    let writer = Writer::start(&d, n, acked.clone());
    let out = miroir_ctl(&d, &["rebalance", "start"]);
    assert!(out.contains("accepted"), "{out}");
    let done = wait_operation_done(&d);
    assert_eq!(done["kind"], "reconcile", "{done}");
    let moves = done["moves"].as_array().unwrap();
    eprintln!(
        "reconcile: {} moves; ms per phase {}",
        moves.len(),
        done["phase_ms"]
    );
    // Copies differing only by the writer's batches in flight are not copied over (a
    // shortfall must be seen again in several re-counts): far from every shard moves.
    assert!(moves.len() < SHARDS as usize, "{done}");
    assert!(
        moves
            .iter()
            .any(|m| m["shard"] == 0 && m["to"] == owners0[0].as_str()),
        "no copy back to {}: {done}",
        owners0[0]
    );
    assert!(
        moves
            .iter()
            .any(|m| m["shard"] == 1 && m["from"] == ids[stray].as_str()),
        "no deletion of the stray copy on {}: {done}",
        ids[stray]
    );
    writer.stop();
    check(&d, &acked, &[]);

    // Placement is exact now: nothing to move.
    let r = admin(&d).call("POST", "/_miroir/rebalance", None);
    assert_eq!(r.status, 202, "{}", r.text());
    let again = wait_operation_done(&d);
    assert_eq!(again["kind"], "reconcile", "{again}");
    assert!(
        again["moves"].as_array().is_some_and(Vec::is_empty),
        "{again}"
    );
}

fn miroir_ctl(d: &Deployment, args: &[&str]) -> String {
    let out = std::process::Command::new(miroir_e2e::bin("miroir-ctl"))
        .args(["--url", &format!("http://{}", d.admin_addr)])
        .args(["--admin-key", ADMIN_KEY])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "miroir-ctl {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A node added to the config file is only reported (decision 015); the command the report
/// names, run as given, performs the change.
#[test]
fn the_command_the_config_drift_names_adds_the_node() {
    let mut d = start(3);
    let acked = Arc::new(Mutex::new(Acked::default()));
    fill(&d, corpus_size().min(2_000), &acked);
    let fourth = start_node(d.dir(), "meili-3", MASTER_KEY);
    let yaml = std::fs::read_to_string(&d.config_path).unwrap();
    let edited = yaml.replace(
        "nodes:\n",
        &format!(
            "nodes:\n  - {{ id: \"meili-3\", address: \"{}\", replica_group: 0 }}\n",
            fourth.url()
        ),
    );
    std::fs::write(&d.config_path, edited).unwrap();
    d.kill_admin();
    d.start_admin();
    let t = topology(&d);
    let command = t["config_drift"][0]["command"]
        .as_str()
        .unwrap_or_else(|| panic!("no drift command: {t}"))
        .to_string();
    assert_eq!(node_status(&d, "meili-3"), None, "{t}");
    let args: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(args[0], "miroir-ctl", "{command}");
    let out = miroir_ctl(&d, &args[1..]);
    assert!(out.contains("accepted"), "{out}");
    let out = miroir_ctl(&d, &["rebalance", "status", "--watch"]);
    assert!(out.contains("phase done (finished)"), "{out}");
    assert_eq!(node_status(&d, "meili-3").as_deref(), Some("active"));
    check(&d, &acked, &[&fourth]);
    // A second add is refused with a readable error.
    let out = std::process::Command::new(miroir_e2e::bin("miroir-ctl"))
        .args(["--url", &format!("http://{}", d.admin_addr)])
        .args(["--admin-key", ADMIN_KEY])
        .args(&args[1..])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("miroir_invalid_topology") && err.contains("never reused"),
        "{err}"
    );
}

/// Issue 14 item 2: RF=2, a node lost for good; after `rebalance.failed_node_grace_secs` its
/// copies are re-created from the surviving ones on the other nodes, and every shard has two
/// copies again (the dead node leaves the topology: it is never served again).
#[test]
fn a_dead_nodes_copies_are_restored_after_the_grace_period() {
    let mut d = start_with(4, 2, ", failed_node_grace_secs: 1");
    let acked = Arc::new(Mutex::new(Acked::default()));
    let n = corpus_size();
    fill(&d, n, &acked);
    let searcher = Searcher::start(&d, n, Arc::new(AtomicU64::new(n)));
    d.nodes[3].kill();
    let mut last = Value::Null;
    let restored = miroir_e2e::try_wait_until(within(Duration::from_secs(120)), || {
        let Ok(r) = admin(&d).get("/_miroir/rebalance/status") else {
            return false;
        };
        last = r.json();
        last["kind"] == "remove_node" && last["in_progress"] == false
    });
    assert!(restored.is_some(), "no restoration finished: {last}");
    assert_eq!(last["node"], "meili-3", "{last}");
    assert!(last["lost"].as_array().is_some_and(Vec::is_empty), "{last}");
    searcher.stop();
    assert_eq!(node_status(&d, "meili-3"), None);
    check(&d, &acked, &[]);
    // Writes work again (every shard has its two live owners).
    d.write_ok(
        "POST",
        &format!("/indexes/{INDEX}/documents"),
        &json!([doc(n, 1)]),
    );
}

/// RF=1: a dead node's shards have no other copy; removing it is refused, naming them.
#[test]
fn removing_a_dead_node_that_holds_the_last_copy_is_refused() {
    let mut d = start(3);
    let acked = Arc::new(Mutex::new(Acked::default()));
    fill(&d, 200, &acked);
    d.nodes[2].kill();
    wait_until(
        within(Duration::from_secs(30)),
        "meili-2 to be failed",
        || node_status(&d, "meili-2").as_deref() == Some("failed"),
    );
    let r = admin(&d).call("DELETE", "/_miroir/nodes/meili-2", None);
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["code"], "miroir_last_copy");
    assert!(
        r.json()["message"].as_str().unwrap().contains("items/"),
        "{}",
        r.text()
    );
    let r = admin(&d).call("POST", "/_miroir/nodes/meili-2/drain", None);
    assert_eq!(r.status, 400, "{}", r.text());
    let r = admin(&d).call("DELETE", "/_miroir/nodes/nope", None);
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["code"], "miroir_node_not_found");
}

/// Issue 12 acceptance (f), RG=2 under load: replica group 1 is removed (at once), then a new
/// group of two fresh nodes is added — with the admin killed during its copy and restarted.
/// After each: the end state of [`check`] (RF copies in every group that holds data, none
/// elsewhere), and no search during the operation failed or missed an acknowledged document.
#[test]
fn a_replica_group_is_removed_then_a_new_one_added_under_load() {
    let mut d = start_groups(2, 2, 1, "");
    assert_eq!(d.groups, [0, 0, 1, 1]);
    let acked = Arc::new(Mutex::new(Acked::default()));
    let n = corpus_size();
    fill(&d, n, &acked);

    // (f1) Remove group 1.
    let writer = Writer::start(&d, n, acked.clone());
    let searcher = Searcher::start(&d, n, writer.next_id.clone());
    std::thread::sleep(Duration::from_millis(300));
    let r = admin(&d).call("DELETE", "/_miroir/groups/1", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["kind"], "remove_group", "{}", r.text());
    assert_eq!(r.json()["phase"], "done", "{}", r.text());
    std::thread::sleep(Duration::from_millis(300));
    let t = topology(&d);
    assert_eq!(t["replica_groups"], 2, "{t}");
    assert_eq!(t["groups"][0]["state"], "active", "{t}");
    assert_eq!(t["groups"][1]["state"], "removed", "{t}");
    assert!(
        t["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["replica_group"] == 0),
        "{t}"
    );
    // Again: the group has no node any more.
    let r = admin(&d).call("DELETE", "/_miroir/groups/1", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "removed");
    // The last group serving reads cannot go, even forced; an unknown group is refused.
    let r = admin(&d).call("DELETE", "/_miroir/groups/0?force=true", None);
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["code"], "miroir_last_copy");
    let r = admin(&d).call("DELETE", "/_miroir/groups/7", None);
    assert_eq!(r.status, 400, "{}", r.text());
    searcher.stop();
    let sent = writer.stop();
    check(&d, &acked, &[]);

    // (f2) A new group (id 2: ids are never reused) of two fresh nodes, through miroir-ctl,
    // with the admin exiting during the copy.
    let fresh = [
        start_node(d.dir(), "meili-g2a", MASTER_KEY),
        start_node(d.dir(), "meili-g2b", MASTER_KEY),
    ];
    let before = acked.lock().unwrap().content.len() as u64;
    let writer = Writer::start(&d, sent, acked.clone());
    let searcher = Searcher::start(&d, before, writer.next_id.clone());
    d.kill_admin();
    d.spec
        .env
        .push(("MIROIR_REBALANCE_EXIT_AT".into(), "copy".into()));
    d.start_admin();
    let out = miroir_ctl(
        &d,
        &[
            "group",
            "add",
            "--node",
            &format!("meili-g2a={}", fresh[0].url()),
            "--node",
            &format!("meili-g2b={}", fresh[1].url()),
        ],
    );
    assert!(
        out.contains("accepted") && out.contains("replica group 2"),
        "{out}"
    );
    let mut p = d.admin.take().expect("admin running");
    wait_until(
        within(Duration::from_secs(120)),
        "the admin to exit during the copy",
        || p.try_wait().is_some(),
    );
    assert!(p.log().contains("at this phase (test hook)"), "{}", p.log());
    d.spec.env.retain(|(k, _)| k != "MIROIR_REBALANCE_EXIT_AT");
    d.start_admin();
    let done = wait_operation_done(&d);
    eprintln!(
        "add group: {} documents copied; ms per phase {}",
        done["documents_copied"], done["phase_ms"]
    );
    assert_eq!(done["kind"], "add_group", "{done}");
    assert_eq!(done["replica_group"], 2, "{done}");
    // Every shard of the index copied once (RF 1) to the new group.
    assert_eq!(
        done["moves"].as_array().map(Vec::len),
        Some(SHARDS as usize),
        "{done}"
    );
    let t = topology(&d);
    assert_eq!(t["replica_groups"], 3, "{t}");
    assert_eq!(t["groups"][2]["state"], "active", "{t}");
    assert_eq!(node_status(&d, "meili-g2a").as_deref(), Some("active"));
    assert_eq!(node_status(&d, "meili-g2b").as_deref(), Some("active"));
    searcher.stop();
    writer.stop();
    check(&d, &acked, &[]);
    // The new group answers searches on its own once the old one is gone: remove group 0.
    let out = miroir_ctl(&d, &["group", "remove", "0"]);
    assert!(out.contains("done"), "{out}");
    let r = d.call(
        "POST",
        &format!("/indexes/{INDEX}/search"),
        Some(&json!({"q": "", "hitsPerPage": 1, "page": 1})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    check(&d, &acked, &[]);
    // A readable refusal: the last serving group.
    let out = std::process::Command::new(miroir_e2e::bin("miroir-ctl"))
        .args(["--url", &format!("http://{}", d.admin_addr)])
        .args(["--admin-key", ADMIN_KEY])
        .args(["group", "remove", "2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("miroir_last_copy") && err.contains("last one serving reads"),
        "{err}"
    );
}
