//! The admin is killed (`kill -9`) in the middle of an index creation, deletion, swap or rename — after
//! some nodes took it, while another has not answered — and restarted on the same data
//! directory. The restarted admin undoes the creation, finishes the deletion (its task ends
//! `succeeded`) and undoes the swap and the rename, so every node agrees again with what Miroir lists
//! (admin/src/broadcast/intents.rs, docs/decisions/051-interrupted-index-lifecycle.md).
//!
//! One node holds the request unanswered (the test node's `hang` fault), which keeps the
//! operation open for as long as the test needs; the others have applied it when the kill
//! comes.

use miroir_e2e::{ClusterSpec, Deployment, DeploymentOptions};
use miroir_testkit::{wait_until, within};
use serde_json::{json, Value};
use std::time::Duration;

fn start() -> Option<Deployment> {
    if miroir_e2e::real_meilisearch().is_some() {
        eprintln!("skipped: fault injection needs the test node");
        return None;
    }
    Some(Deployment::start(
        &ClusterSpec {
            shards: 8,
            ..ClusterSpec::default()
        },
        &DeploymentOptions {
            // Far above the time the test holds a request: the kill comes first.
            node_timeout_ms: 60_000,
            ..DeploymentOptions::default()
        },
    ))
}

/// The last node holds `method route` unanswered until the faults are cleared.
fn hang_last(d: &Deployment, method: &str, route: &str) {
    let fault = json!({"rules": [{"route": route, "method": method, "hang": true}]});
    let r = d
        .nodes
        .last()
        .unwrap()
        .call("POST", "/_testnode/faults", Some(&fault));
    assert!(r.status < 300, "{}", r.text());
}

fn clear_faults(d: &Deployment) {
    let r = d
        .nodes
        .last()
        .unwrap()
        .call("DELETE", "/_testnode/faults", None);
    assert!(r.status < 300, "{}", r.text());
}

/// `GET path` status on every node.
fn on_nodes(d: &Deployment, path: &str) -> Vec<u16> {
    d.nodes
        .iter()
        .map(|n| n.call("GET", path, None).status)
        .collect()
}

fn wait_nodes(d: &Deployment, path: &str, want: &[u16], what: &str) {
    wait_until(within(Duration::from_secs(30)), what, || {
        on_nodes(d, path) == want
    });
}

/// Kills the admin, clears the fault, restarts the admin on its data and waits for Miroir.
fn kill_and_restart(d: &mut Deployment) {
    d.kill_admin();
    clear_faults(d);
    d.start_admin();
    d.wait_ready();
}

/// Sends `method path body` to Miroir from another thread (it may never be answered: the
/// admin dies under it).
fn send_in_background(d: &Deployment, method: &'static str, path: &'static str, body: Value) {
    let client = d.http().timeout(Duration::from_secs(90));
    std::thread::spawn(move || {
        let _ = client.send_json(method, path, &body);
    });
}

fn docs(tag: &str) -> Value {
    json!((0..20)
        .map(|i| json!({"id": i, "src": tag}))
        .collect::<Vec<_>>())
}

#[test]
fn an_interrupted_creation_is_undone_and_can_be_retried() {
    let Some(mut d) = start() else { return };
    hang_last(&d, "POST", "/indexes");
    send_in_background(
        &d,
        "POST",
        "/indexes",
        json!({"uid": "c", "primaryKey": "id"}),
    );
    wait_nodes(
        &d,
        "/indexes/c",
        &[200, 200, 404],
        "the first two nodes to create `c`",
    );
    kill_and_restart(&mut d);
    // Undone everywhere; Miroir never listed it.
    wait_nodes(
        &d,
        "/indexes/c",
        &[404, 404, 404],
        "`c` gone from every node",
    );
    assert_eq!(d.call("GET", "/indexes/c", None).status, 404);
    // A retry starts clean.
    d.write_ok("POST", "/indexes", &json!({"uid": "c", "primaryKey": "id"}));
    assert_eq!(on_nodes(&d, "/indexes/c"), [200, 200, 200]);
    d.write_ok("POST", "/indexes/c/documents", &docs("c"));
    let r = d.call("POST", "/indexes/c/search", Some(&json!({"limit": 100})));
    assert_eq!(r.json()["estimatedTotalHits"], 20, "{}", r.text());
}

#[test]
fn an_interrupted_deletion_is_finished_and_its_task_succeeds() {
    let Some(mut d) = start() else { return };
    d.write_ok("POST", "/indexes/x/documents", &docs("x"));
    hang_last(&d, "DELETE", "/indexes/x");
    let task = d.write("DELETE", "/indexes/x", &json!(null));
    wait_nodes(
        &d,
        "/indexes/x",
        &[404, 404, 200],
        "the first two nodes to delete `x`",
    );
    kill_and_restart(&mut d);
    let t = d.wait_task(task);
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(t["type"], "indexDeletion", "{t}");
    assert_eq!(on_nodes(&d, "/indexes/x"), [404, 404, 404]);
    assert_eq!(d.call("GET", "/indexes/x", None).status, 404);
    // The uid is free again.
    d.write_ok("POST", "/indexes", &json!({"uid": "x", "primaryKey": "id"}));
    assert_eq!(on_nodes(&d, "/indexes/x"), [200, 200, 200]);
}

#[test]
fn an_interrupted_swap_is_undone_on_the_nodes_that_ran_it() {
    let Some(mut d) = start() else { return };
    d.write_ok("POST", "/indexes/a/documents", &docs("a"));
    d.write_ok("POST", "/indexes/b/documents", &docs("b"));
    // Which index's documents `index` holds on each node (every node holds some of both).
    let holds = |d: &Deployment, index: &str| -> Vec<String> {
        d.nodes
            .iter()
            .map(|n| {
                let r = n.call(
                    "POST",
                    &format!("/indexes/{index}/search"),
                    Some(&json!({"limit": 1})),
                );
                assert_eq!(r.status, 200, "{}", r.text());
                r.json()["hits"][0]["src"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    };
    assert_eq!(holds(&d, "a"), ["a", "a", "a"]);
    hang_last(&d, "POST", "/swap-indexes");
    send_in_background(
        &d,
        "POST",
        "/swap-indexes",
        json!([{"indexes": ["a", "b"]}]),
    );
    wait_until(
        within(Duration::from_secs(30)),
        "the first two nodes to swap",
        || holds(&d, "a") == ["b", "b", "a"],
    );
    kill_and_restart(&mut d);
    wait_until(
        within(Duration::from_secs(30)),
        "the swap undone on the nodes that ran it",
        || holds(&d, "a") == ["a", "a", "a"],
    );
    assert_eq!(holds(&d, "b"), ["b", "b", "b"]);
    // Through Miroir, each index has its own documents, all of them.
    for index in ["a", "b"] {
        let r = d.call(
            "POST",
            &format!("/indexes/{index}/search"),
            Some(&json!({"limit": 100})),
        );
        let v = r.json();
        assert_eq!(v["estimatedTotalHits"], 20, "{index}: {v}");
        assert!(
            v["hits"]
                .as_array()
                .unwrap()
                .iter()
                .all(|h| h["src"] == index),
            "{index}: {v}"
        );
    }
    // And a swap works again.
    d.write_ok("POST", "/swap-indexes", &json!([{"indexes": ["a", "b"]}]));
    assert_eq!(holds(&d, "a"), ["b", "b", "b"]);
}

#[test]
fn renames_move_the_index_and_an_interrupted_one_is_undone() {
    let Some(mut d) = start() else { return };
    let count = |d: &Deployment, index: &str| {
        let r = d.call(
            "POST",
            &format!("/indexes/{index}/search"),
            Some(&json!({"limit": 100})),
        );
        assert_eq!(r.status, 200, "{index}: {}", r.text());
        r.json()["estimatedTotalHits"].clone()
    };
    d.write_ok("POST", "/indexes/r/documents", &docs("r"));
    // Through `PATCH /indexes/{uid}` and through a swap with `rename`.
    d.write_ok("PATCH", "/indexes/r", &json!({"uid": "s"}));
    assert_eq!(on_nodes(&d, "/indexes/s"), [200, 200, 200]);
    assert_eq!(d.call("GET", "/indexes/r", None).status, 404);
    assert_eq!(count(&d, "s"), 20);
    d.write_ok(
        "POST",
        "/swap-indexes",
        &json!([{"indexes": ["s", "r"], "rename": true}]),
    );
    assert_eq!(on_nodes(&d, "/indexes/r"), [200, 200, 200]);
    assert_eq!(d.call("GET", "/indexes/s", None).status, 404);
    assert_eq!(count(&d, "r"), 20);

    hang_last(&d, "PATCH", "/indexes/r");
    send_in_background(&d, "PATCH", "/indexes/r", json!({"uid": "s"}));
    wait_nodes(
        &d,
        "/indexes/s",
        &[200, 200, 404],
        "the first two nodes to rename `r`",
    );
    kill_and_restart(&mut d);
    wait_nodes(
        &d,
        "/indexes/r",
        &[200, 200, 200],
        "the rename undone on the nodes that ran it",
    );
    assert_eq!(on_nodes(&d, "/indexes/s"), [404, 404, 404]);
    assert_eq!(count(&d, "r"), 20);
    // And renaming works again.
    d.write_ok("PATCH", "/indexes/r", &json!({"uid": "s"}));
    assert_eq!(count(&d, "s"), 20);
}
