//! The admin process dies (kill -9) while the data plane keeps running as a separate process
//! (the Kubernetes-sidecar / systemd shape, issue 6 "Deliver"):
//! - searches and document reads keep working from the last snapshot;
//! - writes, which need a Miroir task uid, fail fast with `503 miroir_admin_unavailable`
//!   instead of hanging, and such a refused write changed nothing: no node received it (the
//!   test nodes' request counters) and every document is still there;
//! - the first write after the admin is back is accepted (no back-off);
//! - after a restart on the same data directory every earlier task answers with its final
//!   state, and the next write gets the next dense uid.
//!
//! `admin/tests/admin_flow.rs` covers the admin's own restart over the control socket; this
//! test adds the data plane in front of it.

use miroir_e2e::{ClusterSpec, Deployment, DeploymentOptions};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const INDEX: &str = "notes";

fn docs(ids: std::ops::Range<u64>) -> Value {
    json!(ids
        .map(|id| json!({"id": id, "text": format!("durable note {id}"), "n": id % 7}))
        .collect::<Vec<_>>())
}

fn all_ids(d: &Deployment) -> BTreeSet<u64> {
    let r = d
        .http()
        .post_json(
            &format!("/indexes/{INDEX}/search"),
            &json!({"q": "durable", "limit": 1000}),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.header("x-miroir-degraded").is_none());
    r.json()["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect()
}

#[test]
fn the_data_plane_serves_reads_without_the_admin_and_tasks_survive_its_restart() {
    // The node timeout is 10 s so that "fails fast" is distinguishable from "waited for a
    // node or a timeout": the refusal must come from the admin's socket being gone.
    let mut d = Deployment::start(
        &ClusterSpec {
            shards: 16,
            ..ClusterSpec::default()
        },
        &DeploymentOptions {
            node_timeout_ms: 10_000,
            ..DeploymentOptions::default()
        },
    );
    let mut uids = vec![d.write_ok(
        "POST",
        "/indexes",
        &json!({"uid": INDEX, "primaryKey": "id"}),
    )];
    uids.push(d.write_ok(
        "PATCH",
        &format!("/indexes/{INDEX}/settings"),
        &json!({"filterableAttributes": ["n"]}),
    ));
    for chunk in [0..100, 100..200, 200..300] {
        uids.push(d.write_ok("POST", &format!("/indexes/{INDEX}/documents"), &docs(chunk)));
    }
    // A task that finishes as `failed` must keep that state too (deleting an unknown index
    // fails on every node).
    let failing = d.write("DELETE", "/indexes/no-such-index", &json!(null));
    assert_eq!(d.wait_task(failing)["status"], "failed");
    uids.push(failing);
    // Dense from 0 in this fresh deployment.
    assert_eq!(uids, (0..uids.len() as u64).collect::<Vec<_>>());
    let finals: Vec<Value> = uids.iter().map(|&u| d.wait_task(u)).collect();
    let expected: BTreeSet<u64> = (0..300).collect();
    assert_eq!(all_ids(&d), expected);

    for n in &d.nodes {
        assert_eq!(n.http().delete("/_testnode/counters").unwrap().status, 204);
    }
    d.kill_admin();

    // Reads: search (both round-robin turns of both cores), filtered search, document GETs.
    for _ in 0..4 {
        assert_eq!(all_ids(&d), expected);
    }
    let r = d
        .http()
        .post_json(
            &format!("/indexes/{INDEX}/search"),
            &json!({"q": "", "filter": "n = 3", "limit": 1000}),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json()["estimatedTotalHits"],
        json!((0..300).filter(|i| i % 7 == 3).count())
    );
    for id in (0..300).step_by(7) {
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
        assert_eq!(r.json()["text"], format!("durable note {id}"));
    }

    // Writes and the control path: 503 miroir_admin_unavailable, well under the node
    // timeout (a generous 2 s bound against 10 s: a refusal that waited for any timeout
    // would take ≥ 10 s; the bound only has to separate the two on a loaded machine).
    let attempts: [(&str, String, Value); 4] = [
        (
            "POST",
            format!("/indexes/{INDEX}/documents"),
            docs(1000..1001),
        ),
        (
            "POST",
            format!("/indexes/{INDEX}/documents"),
            docs(1001..1003),
        ),
        // Existing ids: a refused delete must not delete them.
        (
            "POST",
            format!("/indexes/{INDEX}/documents/delete-batch"),
            json!([1, 2]),
        ),
        (
            "PATCH",
            format!("/indexes/{INDEX}/settings"),
            json!({"sortableAttributes": ["n"]}),
        ),
    ];
    for (method, path, body) in &attempts {
        let start = Instant::now();
        let r = d.http().send_json(method, path, body).unwrap();
        let took = start.elapsed();
        assert_eq!(
            (r.status, r.json()["code"].as_str().unwrap_or("")),
            (503, "miroir_admin_unavailable"),
            "{method} {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(
            took < Duration::from_secs(2),
            "{method} {path} took {took:?} to fail"
        );
    }
    let r = d.http().get("/tasks/2").unwrap();
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (503, json!("miroir_admin_unavailable"))
    );
    // "503 miroir_admin_unavailable" means nothing was written: no node got any of them.
    assert_eq!(
        d.node_writes(),
        BTreeMap::new(),
        "writes answered 503 reached the nodes"
    );
    assert_eq!(all_ids(&d), expected, "documents changed by refused writes");

    // Restart on the same config and data directory.
    d.start_admin();
    d.wait_ready();
    for (uid, before) in uids.iter().zip(&finals) {
        let r = d.http().get(&format!("/tasks/{uid}")).unwrap();
        assert_eq!(
            r.status,
            200,
            "task {uid}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(&r.json(), before, "task {uid} after the restart");
    }
    // The first write once the admin answers is accepted: no back-off is left over from the
    // outage (every write checks the admin afresh).
    let mut accepted = Vec::new();
    for chunk in [300..305, 305..310] {
        let r = d
            .http()
            .post_json(&format!("/indexes/{INDEX}/documents"), &docs(chunk))
            .unwrap();
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
        accepted.push(r.json()["taskUid"].as_u64().unwrap());
    }
    let next = *accepted.last().unwrap();
    assert_eq!(d.wait_task(accepted[0])["status"], "succeeded");
    assert_eq!(d.wait_task(next)["status"], "succeeded");
    let last = *uids.last().unwrap();
    assert_eq!(accepted, [last + 1, last + 2], "uids continue densely");
    let list = d.http().get("/tasks?limit=100").unwrap().json();
    assert_eq!(list["total"], json!(uids.len() + 2), "{list}");
    let listed: Vec<u64> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["uid"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, (0..=next).rev().collect::<Vec<_>>());
    let got = all_ids(&d);
    let missing: Vec<u64> = (0..310).filter(|id| !got.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "missing documents after the restart: {missing:?}"
    );
    let stray: Vec<u64> = got.iter().copied().filter(|&id| id >= 1000).collect();
    assert!(
        stray.is_empty(),
        "documents written by writes answered 503 while the admin was down: {stray:?}"
    );
}
