//! The anti-entropy API of a real `miroir-admin` (docs/operations.md#anti-entropy): request
//! validation, a run polled to its end (shards with a single copy are consistent), the
//! schedule (`antientropy.interval_s`) starting runs by itself, and the metrics. Finding and
//! repairing differences is `e2e/tests/antientropy.rs`.

mod admin_common;

use admin_common::*;
use serde_json::{json, Value};

fn api(url: &str, method: &str, path: &str, body: Option<&Value>) -> Resp {
    http(url, method, path, &[("X-Admin-Key", ADMIN_KEY)], body)
}

#[test]
fn verify_runs_on_demand_and_on_schedule() {
    let dir = tempdir();
    let nodes = [
        start_testnode(&dir.path().join("n0")),
        start_testnode(&dir.path().join("n1")),
    ];
    let config = write_config(
        dir.path(),
        &[&nodes[0], &nodes[1]],
        8,
        "antientropy:\n  interval_s: 1\n",
    );
    let admin = start_admin(&config);
    let url = &admin.url;

    for (body, status, code) in [
        (json!([1]), 400, "bad_request"),
        (json!({"repair": "yes"}), 400, "bad_request"),
        (json!({"index": 3}), 400, "bad_request"),
        (json!({"indexes": "movies"}), 400, "bad_request"),
        (json!({"index": "nope"}), 404, "index_not_found"),
    ] {
        let r = api(url, "POST", "/_miroir/verify", Some(&body));
        assert_eq!(r.status, status, "{body}: {}", r.text());
        assert_eq!(r.json()["code"], code, "{body}: {}", r.text());
    }
    for path in ["/_miroir/verify/424242", "/_miroir/verify/abc"] {
        let r = api(url, "GET", path, None);
        assert_eq!(r.status, 404, "{}", r.text());
        assert_eq!(r.json()["code"], "not_found");
    }

    let r = control(
        &admin.socket,
        "POST",
        "/indexes",
        Some(&json!({"uid": "movies", "primaryKey": "id"})),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    wait_miroir_task(&admin.socket, r.json()["taskUid"].as_u64().unwrap());

    let r = api(
        url,
        "POST",
        "/_miroir/verify",
        Some(&json!({"index": "movies", "repair": true})),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let run = r.json();
    assert_eq!(run["trigger"], "api");
    assert_eq!(run["repair"], true);
    let uid = run["uid"].as_u64().unwrap();
    let done = eventually("the verify run to finish", || {
        let v = api(url, "GET", &format!("/_miroir/verify/{uid}"), None).json();
        (v["status"] == "succeeded").then_some(v)
    });
    // RF = 1: every shard has a single copy, equal to itself, and nothing is read.
    assert_eq!(done["shards_total"], 8, "{done}");
    assert_eq!(done["shards_checked"], 8, "{done}");
    assert_eq!(done["summary"]["shards_consistent"], 8, "{done}");
    assert_eq!(done["summary"]["shards_skipped"], 0, "{done}");
    assert_eq!(done["result"], "consistent", "{done}");
    assert_eq!(done["shards"], json!([]), "{done}");

    eventually("a scheduled run", || {
        let list = api(url, "GET", "/_miroir/verify", None).json();
        list["results"]
            .as_array()?
            .iter()
            .any(|r| r["trigger"] == "schedule" && r["status"] == "succeeded")
            .then_some(())
    });
    let m = api(url, "GET", "/_miroir/metrics", None);
    let text = String::from_utf8(m.body).unwrap();
    assert!(
        text.contains("# TYPE miroir_antientropy_runs_total counter"),
        "{text}"
    );
    assert!(
        !text.contains("miroir_antientropy_last_run_timestamp_seconds 0\n"),
        "{text}"
    );
}
