//! Availability with dead nodes (PRODUCT.md §1 routing, §2 quorum and unavailable shards),
//! through the real binaries. `runtime/tests/proxy_cluster.rs` already covers a whole group
//! down, every node down and RF=2 searches/reads with one node down; these tests cover the
//! per-shard cases in between, with the expected shard sets computed from the spec's routing
//! formulas (re-implemented here from PRODUCT.md §1, not taken from `miroir-core`):
//! - RG=2: one node of one group dead → writes degraded for exactly its shards, searches
//!   complete and undegraded (the dead node's shards served by the other group), every
//!   document readable;
//! - RG=2: one node dead in each group → the shards both of them own have no quorum (503
//!   `miroir_no_quorum`, nothing written), the others still accept writes, and searches answer
//!   the covered shards with `X-Miroir-Degraded: shards=…` naming exactly the lost ones;
//! - RF=2 in one group of 3: writes to a shard with a dead owner cannot reach quorum
//!   (`floor(2/2)+1 = 2`), writes elsewhere are undegraded;
//! - RF=3 in one group of 3: one node dead loses nothing — writes succeed undegraded
//!   (2 of 3 owners is a quorum) and searches are complete.

use miroir_e2e::{wait_until, within, ClusterSpec, Deployment, DeploymentOptions, Response};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use xxhash_rust::xxh64::xxh64;

const INDEX: &str = "books";

/// `shard_for_key`: xxh64(seed 0, canonical pk) mod S (integer pks in decimal).
fn shard_of(id: u64, shards: u32) -> u32 {
    (xxh64(id.to_string().as_bytes(), 0) % shards as u64) as u32
}

/// `owners(shard, group)`: the `rf` nodes of the group with the highest
/// xxh64(u32_le(shard) ‖ node id), ties by id ascending. Returns node indexes.
fn owners(d: &Deployment, shard: u32, group: u32, rf: usize) -> Vec<usize> {
    let mut scored: Vec<(u64, &str, usize)> = (0..d.nodes.len())
        .filter(|&i| d.groups[i] == group)
        .map(|i| {
            let mut buf = shard.to_le_bytes().to_vec();
            buf.extend_from_slice(d.ids[i].as_bytes());
            (xxh64(&buf, 0), d.ids[i].as_str(), i)
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    scored.into_iter().take(rf).map(|(_, _, i)| i).collect()
}

fn doc(id: u64) -> Value {
    json!({"id": id, "title": format!("common book number {id}")})
}

fn start(groups: u32, per_group: u32, rf: u32, shards: u32) -> Deployment {
    start_with(groups, per_group, rf, shards, DeploymentOptions::default())
}

fn start_with(
    groups: u32,
    per_group: u32,
    rf: u32,
    shards: u32,
    opts: DeploymentOptions,
) -> Deployment {
    let d = Deployment::start(
        &ClusterSpec {
            replica_groups: groups,
            nodes_per_group: per_group,
            replication_factor: rf,
            shards,
            ..ClusterSpec::default()
        },
        &opts,
    );
    d.write_ok(
        "POST",
        "/indexes",
        &json!({"uid": INDEX, "primaryKey": "id"}),
    );
    d
}

fn add(d: &Deployment, ids: impl Iterator<Item = u64>) -> Response {
    let docs: Vec<Value> = ids.map(doc).collect();
    d.http()
        .post_json(&format!("/indexes/{INDEX}/documents"), &json!(docs))
        .expect("POST documents")
}

/// A write the dead nodes' shards make impossible, once the data plane routes with them marked
/// failed: refused before any node is touched. The admin reports `failed` a moment before the
/// data plane has applied the snapshot saying so; a write in between is dispatched and, if some
/// copy accepted it, registered and hinted (decision 022) — so retry until it is refused.
fn refused_once_known(d: &Deployment, ids: &[u64]) -> Response {
    wait_until(
        within(std::time::Duration::from_secs(30)),
        "the write refused up front",
        || {
            let r = add(d, ids.iter().copied());
            (r.status == 503).then_some(r)
        },
    )
}

fn search_all(d: &Deployment) -> Response {
    let r = d
        .http()
        .post_json(
            &format!("/indexes/{INDEX}/search"),
            &json!({"q": "common", "limit": 5000}),
        )
        .expect("search");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r
}

/// Hit ids, asserting there are no duplicates.
fn hit_ids(r: &Response) -> BTreeSet<u64> {
    let v = r.json();
    let ids: Vec<u64> = v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect();
    let set: BTreeSet<u64> = ids.iter().copied().collect();
    assert_eq!(set.len(), ids.len(), "duplicate hits: {ids:?}");
    set
}

fn join(shards: &BTreeSet<u32>) -> String {
    shards
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn node_search_count(d: &Deployment, node: usize) -> u64 {
    let c = d.nodes[node]
        .http()
        .get("/_testnode/counters")
        .unwrap()
        .json();
    c["POST /indexes/{uid}/search"].as_u64().unwrap_or(0)
}

fn assert_error(r: &Response, status: u16, code: &str) {
    assert_eq!(
        (r.status, r.json()["code"].as_str().unwrap_or("")),
        (status, code),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
}

#[test]
fn one_dead_node_in_one_group_degrades_only_its_shards_and_hides_from_readers() {
    const S: u32 = 8;
    let mut d = start(2, 2, 1, S);
    let r = add(&d, 0..200);
    assert_eq!(r.status, 202);
    assert!(r.header("x-miroir-degraded").is_none());
    d.wait_task(r.json()["taskUid"].as_u64().unwrap());

    // meili-2 (group 1) dies.
    let dead = 2;
    d.nodes[dead].kill();
    let new_ids = 200..400u64;
    let expected: BTreeSet<u32> = new_ids
        .clone()
        .map(|id| shard_of(id, S))
        .filter(|&s| owners(&d, s, 1, 1) == vec![dead])
        .collect();
    assert!(!expected.is_empty(), "meili-2 owns none of 8 shards");
    let r = add(&d, new_ids);
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.header("x-miroir-degraded"),
        Some(format!("groups=1;shards={}", join(&expected)).as_str()),
        "the degraded header names group 1 and exactly meili-2's shards"
    );
    let task = d.wait_task(r.json()["taskUid"].as_u64().unwrap());
    // The write was accepted under quorum: its task succeeds, counts every document once
    // (meili-2's missing copies do not undercount) and carries no Miroir-only key.
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(task["error"], Value::Null, "{task}");
    assert_eq!(task["details"]["receivedDocuments"], json!(200), "{task}");
    assert_eq!(task["details"]["indexedDocuments"], json!(200), "{task}");
    assert_eq!(task.as_object().unwrap().len(), 12, "{task}");

    // Every search is complete and undegraded, whichever group serves it; group 1's live node
    // takes part (its shards come from it, meili-2's from group 0).
    let everything: BTreeSet<u64> = (0..400).collect();
    let _ = d.nodes[3].http().delete("/_testnode/counters");
    for _ in 0..12 {
        let r = search_all(&d);
        assert!(
            r.header("x-miroir-degraded").is_none(),
            "{:?}",
            r.header("x-miroir-degraded")
        );
        assert_eq!(hit_ids(&r), everything);
    }
    assert!(
        node_search_count(&d, 3) > 0,
        "group 1 was never chosen in 12 searches (round-robin per core)"
    );
    for id in 0..400 {
        let r = d
            .http()
            .get(&format!("/indexes/{INDEX}/documents/{id}"))
            .unwrap();
        assert_eq!(
            r.status,
            200,
            "document {id}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json(), doc(id));
    }

    // A write bringing a new field and a settings update both succeed with meili-2 down:
    // every shard still has a live owner (group 0), so the node-side settings change skips
    // it and remembers it for repair.
    let r = d
        .http()
        .post_json(
            &format!("/indexes/{INDEX}/documents"),
            &json!([{"id": 400, "title": "common book number 400", "newfield": "zebra"}]),
        )
        .unwrap();
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let t = d.wait_task(r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(t["status"], "succeeded", "{t}");
    let r = d
        .http()
        .post_json(&format!("/indexes/{INDEX}/search"), &json!({"q": "zebra"}))
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        hit_ids(&r),
        BTreeSet::from([400]),
        "the new field is searchable"
    );
    // Once the health checker marked meili-2 failed it is not even contacted.
    wait_until(
        within(std::time::Duration::from_secs(30)),
        "meili-2 marked failed",
        || (node_status(&d, "meili-2") == "failed").then_some(()),
    );
    let r = d
        .http()
        .send_json(
            "PATCH",
            &format!("/indexes/{INDEX}/settings"),
            &json!({"filterableAttributes": ["title"]}),
        )
        .unwrap();
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let t = d.wait_task(r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(t["status"], "succeeded", "{t}");

    // meili-2 comes back with its old data and settings: the admin re-applies the index's
    // current settings to it before it serves again.
    d.nodes[dead].restart();
    let settings = wait_until(
        within(std::time::Duration::from_secs(30)),
        "meili-2 gets the settings it missed",
        || {
            let s = d.nodes[dead]
                .http()
                .get(&format!("/indexes/{INDEX}/settings"))
                .ok()
                .filter(|r| r.status == 200)?
                .json();
            let has = |k: &str, f: &str| s[k].as_array().is_some_and(|a| a.iter().any(|x| x == f));
            (has("displayedAttributes", "newfield") && has("filterableAttributes", "title"))
                .then_some(s)
        },
    );
    assert!(
        settings["filterableAttributes"]
            .as_array()
            .unwrap()
            .contains(&json!("_miroir_shard")),
        "{settings}"
    );
    wait_until(
        within(std::time::Duration::from_secs(30)),
        "meili-2 active again",
        || (node_status(&d, "meili-2") == "active").then_some(()),
    );
}

/// A node's status as `GET /_miroir/topology` reports it.
fn node_status(d: &Deployment, id: &str) -> String {
    let r = miroir_e2e::Client::tcp(d.addr)
        .bearer(miroir_e2e::ADMIN_KEY) // the deployment's `admin.api_key`
        .get("/_miroir/topology")
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
        .map(|n| n["status"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

#[test]
fn shards_whose_owners_are_dead_in_every_group_lose_quorum_and_only_they() {
    const S: u32 = 16;
    let mut d = start(2, 2, 1, S);
    let r = add(&d, 0..400);
    assert_eq!(r.status, 202);
    d.wait_task(r.json()["taskUid"].as_u64().unwrap());

    // Pick one node per group such that some shards are owned by both and some by neither.
    let owned = |d: &Deployment, node: usize| -> BTreeSet<u32> {
        (0..S)
            .filter(|&s| owners(d, s, d.groups[node], 1) == vec![node])
            .collect()
    };
    let (a, b) = [(0, 2), (0, 3), (1, 2), (1, 3)]
        .into_iter()
        .find(|&(a, b)| {
            let (oa, ob) = (owned(&d, a), owned(&d, b));
            oa.intersection(&ob).count() > 0 && oa.union(&ob).count() < S as usize
        })
        .expect("some pair of nodes shares shards");
    let (owned_a, owned_b) = (owned(&d, a), owned(&d, b));
    let lost: BTreeSet<u32> = owned_a.intersection(&owned_b).copied().collect();
    d.nodes[a].kill();
    d.nodes[b].kill();
    // Once both are known dead, a write that no live owner can take is refused before any
    // node is touched (a write some copy accepted would be registered and hinted instead:
    // `hinted_writes.rs`).
    for dead in [a, b] {
        let id = d.ids[dead].clone();
        wait_until(
            within(std::time::Duration::from_secs(30)),
            "marked failed",
            || node_status(&d, &id) == "failed",
        );
    }

    let id_in = |pred: &dyn Fn(u32) -> bool| (1000..).find(|&id| pred(shard_of(id, S))).unwrap();
    // A lost shard: no quorum, and no live node got the document.
    let lost_id = id_in(&|s| lost.contains(&s));
    let r = add(&d, std::iter::once(lost_id));
    assert_error(&r, 503, "miroir_no_quorum");
    for (i, n) in d.nodes.iter().enumerate() {
        if i != a && i != b {
            let r = n
                .http()
                .get(&format!("/indexes/{INDEX}/documents/{lost_id}"))
                .unwrap();
            assert_eq!(r.status, 404, "node {i} has the refused document");
        }
    }
    // A batch mixing a lost shard with healthy ones is refused as a whole answer.
    let healthy_id = id_in(&|s| !owned_a.contains(&s) && !owned_b.contains(&s));
    let r = refused_once_known(&d, &[healthy_id, lost_id]);
    assert_error(&r, 503, "miroir_no_quorum");
    // A settings change cannot skip both dead nodes: the lost shards would have no
    // up-to-date owner anywhere.
    let r = d
        .http()
        .send_json(
            "PATCH",
            &format!("/indexes/{INDEX}/settings"),
            &json!({"filterableAttributes": ["title"]}),
        )
        .unwrap();
    assert_error(&r, 503, "miroir_no_quorum");
    // A shard with both owners alive: a plain success.
    let r = add(&d, std::iter::once(healthy_id));
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.header("x-miroir-degraded").is_none());
    // A shard that lost only group 0's owner: degraded success naming group 0.
    let half_id = id_in(&|s| owned_a.contains(&s) && !owned_b.contains(&s));
    let r = add(&d, std::iter::once(half_id));
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.header("x-miroir-degraded"),
        Some(format!("groups={};shards={}", d.groups[a], shard_of(half_id, S)).as_str())
    );

    // Searches answer what is covered and name exactly the lost shards (policy `partial`).
    let covered: BTreeSet<u64> = (0..400)
        .filter(|&id| !lost.contains(&shard_of(id, S)))
        .collect();
    for _ in 0..6 {
        let r = search_all(&d);
        assert_eq!(
            r.header("x-miroir-degraded"),
            Some(format!("shards={}", join(&lost)).as_str()),
            "lost shards {lost:?}"
        );
        let ids: BTreeSet<u64> = hit_ids(&r).into_iter().filter(|&id| id < 400).collect();
        assert_eq!(ids, covered);
    }
}

#[test]
fn rf2_in_one_group_needs_both_owners_of_a_shard_to_write_it() {
    const S: u32 = 8;
    // `majority` (floor(RF/2)+1 = 2 of 2 owners); the default `one` writes with one owner
    // and hints the other (`hinted_writes.rs`).
    let mut d = start_with(
        1,
        3,
        2,
        S,
        DeploymentOptions {
            extra_yaml: "write_consistency: majority\n".into(),
            ..DeploymentOptions::default()
        },
    );
    // Fields first, while every node is up: a write bringing a new field needs the admin to
    // extend every node's searchable list, which is a different (all-node) operation.
    let r = add(&d, 0..50);
    assert_eq!(r.status, 202);
    d.wait_task(r.json()["taskUid"].as_u64().unwrap());
    let dead = 1;
    d.nodes[dead].kill();
    let id = d.ids[dead].clone();
    wait_until(
        within(std::time::Duration::from_secs(30)),
        "marked failed",
        || node_status(&d, &id) == "failed",
    );
    let with_dead = (100..)
        .find(|&id| owners(&d, shard_of(id, S), 0, 2).contains(&dead))
        .unwrap();
    let without_dead = (100..)
        .find(|&id| !owners(&d, shard_of(id, S), 0, 2).contains(&dead))
        .unwrap();
    // floor(RF/2)+1 = 2 of 2 owners: one dead owner means no quorum for its shards.
    let r = refused_once_known(&d, &[with_dead]);
    assert_error(&r, 503, "miroir_no_quorum");
    let r = add(&d, std::iter::once(without_dead));
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.header("x-miroir-degraded").is_none());
    let t = d.wait_task(r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(t["status"], "succeeded", "{t}");
}

#[test]
fn rf3_in_one_group_of_three_loses_nothing_with_one_node_dead() {
    const S: u32 = 8;
    let mut d = start(1, 3, 3, S);
    let r = add(&d, 0..100);
    assert_eq!(r.status, 202);
    d.wait_task(r.json()["taskUid"].as_u64().unwrap());
    d.nodes[0].kill();
    // Every shard has 2 of its 3 owners: a quorum, and the only group succeeded.
    let r = add(&d, 100..200);
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.header("x-miroir-degraded").is_none(),
        "{:?}",
        r.header("x-miroir-degraded")
    );
    let t = d.wait_task(r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(t["error"], Value::Null, "{t}");
    assert_eq!(t["details"]["indexedDocuments"], json!(100), "{t}");
    let everything: BTreeSet<u64> = (0..200).collect();
    for _ in 0..6 {
        let r = search_all(&d);
        assert!(r.header("x-miroir-degraded").is_none());
        assert_eq!(hit_ids(&r), everything);
    }
}
