//! `503 miroir_admin_unavailable` on a write means nothing was written: with the real
//! binaries, the admin is killed (`kill -9`) while the data plane runs on, every kind of write
//! is refused, and the test nodes' own request counters (`GET /_testnode/counters`, see
//! docs/testing.md) prove that no node received any of them. When the admin is back, the
//! very next write goes through and gets the next dense task uid.

mod proxy_support;

use proxy_support::{wait_until, Cluster, Layout};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

const INDEX: &str = "notes";

fn docs(ids: std::ops::Range<u64>) -> Value {
    json!(ids
        .map(|id| json!({"id": id, "text": format!("note {id}")}))
        .collect::<Vec<_>>())
}

/// Every node's document ids.
fn stored(c: &Cluster) -> Vec<BTreeSet<u64>> {
    c.nodes
        .iter()
        .map(|n| {
            let r = n.call(
                "GET",
                &format!("/indexes/{INDEX}/documents?limit=100000&fields=id"),
                None,
            );
            assert_eq!(r.status, 200, "{}", r.text());
            r.json()["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["id"].as_u64().unwrap())
                .collect()
        })
        .collect()
}

#[test]
fn writes_refused_while_the_admin_is_down_reach_no_node_and_recover_at_once() {
    let mut c = Cluster::start(
        "admin-outage",
        Layout {
            groups: 2,
            per_group: 2,
            shards: 8,
            ..Layout::default()
        },
    );
    c.create_index(INDEX, json!({"filterableAttributes": ["id"]}));
    let r = c.call(
        "POST",
        &format!("/indexes/{INDEX}/documents"),
        Some(&docs(0..20)),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let last_uid = r.json()["taskUid"].as_u64().unwrap();
    assert_eq!(c.wait_task(last_uid)["status"], "succeeded");
    let before = stored(&c);
    assert_eq!(
        before.iter().flatten().copied().collect::<BTreeSet<_>>(),
        (0..20).collect(),
    );
    for n in &c.nodes {
        assert_eq!(n.call("DELETE", "/_testnode/counters", None).status, 204);
    }

    c.kill_admin();

    let attempts: [(&str, String, Option<Value>); 7] = [
        (
            "POST",
            format!("/indexes/{INDEX}/documents"),
            Some(docs(1000..1003)),
        ),
        (
            "PUT",
            format!("/indexes/{INDEX}/documents"),
            Some(json!([{"id": 5, "text": "changed"}])),
        ),
        (
            "POST",
            format!("/indexes/{INDEX}/documents/delete-batch"),
            Some(json!([1, 2])),
        ),
        ("DELETE", format!("/indexes/{INDEX}/documents/3"), None),
        (
            "POST",
            format!("/indexes/{INDEX}/documents/delete"),
            Some(json!({"filter": "id = 4"})),
        ),
        ("DELETE", format!("/indexes/{INDEX}/documents"), None),
        // An unknown index needs `prepare-write` first, which fails the same way.
        (
            "POST",
            "/indexes/fresh/documents".to_string(),
            Some(docs(0..1)),
        ),
    ];
    for (method, path, body) in &attempts {
        let r = c.call(method, path, body.as_ref());
        assert_eq!(
            (r.status, r.json()["code"].clone()),
            (503, json!("miroir_admin_unavailable")),
            "{method} {path}: {}",
            r.text()
        );
    }
    assert_eq!(
        c.node_writes(),
        BTreeMap::new(),
        "writes answered 503 reached the nodes"
    );
    assert_eq!(stored(&c), before, "the nodes' documents changed");
    // Reads keep working from the snapshot meanwhile.
    let r = c.call("GET", &format!("/indexes/{INDEX}/documents/1"), None);
    assert_eq!(r.status, 200, "{}", r.text());

    c.start_admin();
    wait_until("the control path answering again", || {
        c.call("GET", "/indexes", None).status == 200
    });
    // The very next write goes through: no back-off after the outage.
    let r = c.call(
        "POST",
        &format!("/indexes/{INDEX}/documents/delete-batch"),
        Some(&json!([1, 2])),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let uid = r.json()["taskUid"].as_u64().unwrap();
    assert_eq!(uid, last_uid + 1, "task uids stay dense across the outage");
    assert_eq!(c.wait_task(uid)["status"], "succeeded");
    let after: BTreeSet<u64> = stored(&c).into_iter().flatten().collect();
    assert_eq!(after, (0..20).filter(|id| ![1, 2].contains(id)).collect());
    assert!(
        c.node_writes()
            .contains_key("POST /indexes/{uid}/documents/delete-batch"),
        "{:?}",
        c.node_writes()
    );
}
