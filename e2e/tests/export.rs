//! `POST /export` through Miroir (docs/compatibility.md#export): the documents of every
//! matched index — gathered from all shards, without Miroir's reserved fields — and its
//! settings reach another Meilisearch; the task's details are Meilisearch's (patterns while
//! enqueued, one entry per exported index with `matched_documents` once done); a filter the
//! index cannot evaluate fails the task with Meilisearch's code and no reserved attribute in
//! the message. Runs over test nodes, or real Meilisearch with `MIROIR_E2E_MEILI_BIN`.

use miroir_e2e::{start_node, temp_dir, Cluster, ClusterSpec, TestNode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const TARGET_KEY: &str = "export-target-master-key";

fn movies() -> Vec<Value> {
    (0..240)
        .map(|i| {
            json!({
                "id": i,
                "title": format!("movie {i}"),
                "genre": if i % 3 == 0 { "drama" } else { "comedy" },
                "tags": ["a", {"nested": i}],
            })
        })
        .collect()
}

fn books() -> Vec<Value> {
    (0..25)
        .map(|i| json!({"isbn": format!("b-{i}"), "pages": i * 10}))
        .collect()
}

/// Waits until the node has no enqueued or processing task.
fn settle(node: &TestNode) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = node.call("GET", "/tasks?statuses=enqueued,processing&limit=1", None);
        if r.json()["total"] == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "target tasks never settled");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sorted_documents(node: &TestNode, index: &str, key: &str) -> Vec<Value> {
    let r = node.call(
        "GET",
        &format!("/indexes/{index}/documents?limit=10000"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let mut docs = r.json()["results"].as_array().unwrap().clone();
    docs.sort_by_key(|d| d[key].to_string());
    docs
}

#[test]
fn export_sends_every_shard_and_the_settings_with_meilisearch_details() {
    let dir = temp_dir("export-target");
    let target = start_node(dir.path(), "target", TARGET_KEY);
    let c = Cluster::start(ClusterSpec::default());
    let miroir = c.http();

    let r = miroir.call(
        "POST",
        "/indexes",
        Some(&json!({"uid": "movies", "primaryKey": "id"})),
    );
    c.wait_task(r.json()["taskUid"].as_u64().unwrap());
    let r = miroir.call(
        "PATCH",
        "/indexes/movies/settings",
        Some(&json!({"filterableAttributes": ["genre"], "sortableAttributes": ["title"]})),
    );
    assert_eq!(
        c.wait_task(r.json()["taskUid"].as_u64().unwrap())["status"],
        "succeeded"
    );
    let r = miroir.call("POST", "/indexes/movies/documents", Some(&json!(movies())));
    assert_eq!(
        c.wait_task(r.json()["taskUid"].as_u64().unwrap())["status"],
        "succeeded"
    );
    let r = miroir.call(
        "POST",
        "/indexes/books/documents?primaryKey=isbn",
        Some(&json!(books())),
    );
    assert_eq!(
        c.wait_task(r.json()["taskUid"].as_u64().unwrap())["status"],
        "succeeded"
    );
    let r = miroir.call(
        "POST",
        "/indexes/other/documents",
        Some(&json!([{"id": 1}])),
    );
    assert_eq!(
        c.wait_task(r.json()["taskUid"].as_u64().unwrap())["status"],
        "succeeded"
    );

    let body = json!({
        "url": target.url(),
        "apiKey": TARGET_KEY,
        "payloadSize": "2KiB",
        "indexes": {
            "movies": {"filter": "genre = drama", "overrideSettings": false},
            "boo*": {},
        },
    });
    let r = miroir.call("POST", "/export", Some(&body));
    assert_eq!(r.status, 202, "{}", r.text());
    let summary = r.json();
    assert_eq!(summary["type"], "export", "{summary}");
    assert_eq!(summary["indexUid"], Value::Null, "{summary}");
    let task = c.wait_task(summary["taskUid"].as_u64().unwrap());
    assert_eq!(task["status"], "succeeded", "{task}");
    assert_eq!(
        task["details"],
        json!({
            "url": target.url(),
            "apiKey": "expXXXXX...",
            "payloadSize": "2 KiB",
            "indexes": {
                "books": {"filter": null, "overrideSettings": false, "matched_documents": 25},
                "movies": {"filter": "genre = drama", "overrideSettings": false, "matched_documents": 80},
            },
        })
    );

    settle(&target);
    let mut expected: Vec<Value> = movies()
        .into_iter()
        .filter(|d| d["genre"] == "drama")
        .collect();
    expected.sort_by_key(|d| d["id"].to_string());
    assert_eq!(sorted_documents(&target, "movies", "id"), expected);
    let mut expected = books();
    expected.sort_by_key(|d| d["isbn"].to_string());
    assert_eq!(sorted_documents(&target, "books", "isbn"), expected);
    assert_eq!(target.call("GET", "/indexes/other", None).status, 404);
    let r = target.call("GET", "/indexes/movies", None).json();
    assert_eq!(r["primaryKey"], "id");
    let theirs = target.call("GET", "/indexes/movies/settings", None).json();
    let ours = miroir.call("GET", "/indexes/movies/settings", None).json();
    for k in [
        "filterableAttributes",
        "sortableAttributes",
        "displayedAttributes",
        "searchableAttributes",
        "rankingRules",
    ] {
        assert_eq!(theirs[k], ours[k], "{k}");
    }

    // A filter the index cannot evaluate fails the task, worded as Meilisearch words it.
    let r = miroir.call(
        "POST",
        "/export",
        Some(&json!({"url": target.url(), "apiKey": TARGET_KEY, "indexes": {"movies": {"filter": "title = x"}}})),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let task = c.wait_task(r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(task["status"], "failed", "{task}");
    assert_eq!(task["error"]["code"], "invalid_document_filter", "{task}");
    let message = task["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Index `movies`: Attribute `title` is not filterable."),
        "{message}"
    );
    assert!(!message.contains("_miroir"), "{message}");
    assert_eq!(
        task["details"]["indexes"],
        json!({"movies": {"filter": "title = x", "overrideSettings": false}})
    );

    // Refused before any task, as Meilisearch refuses it.
    let r = miroir.call("POST", "/export", Some(&json!({"payloadSize": true})));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "invalid_export_payload_size");
}
