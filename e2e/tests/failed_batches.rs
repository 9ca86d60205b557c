//! Batches whose Meilisearch task fails (docs/contract.md#primary-key): each kind is sent to
//! one node and to Miroir over three nodes, and both must answer alike — `202` with an
//! enqueued summarized task, then a `failed` task with the same error object (`message`,
//! `code`, `type`, `link`), the same `details` and the same set of keys — and no node may
//! hold any document afterwards. A batch on a missing index creates it without a primary key
//! on both sides (Meilisearch 1.50's scheduler creates the index before the addition fails).
//!
//! Payloads Meilisearch refuses synchronously stay synchronous: one malformed payload is
//! compared as well.

use miroir_e2e::{start_node, temp_dir, Cluster, ClusterSpec, Response, TestNode};
use serde_json::{json, Value};

/// (index, query, content type, body, expected error code).
const CASES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "movies",
        "",
        "application/json",
        r#"[{"id": 1, "title": "a"}, {"title": "no id", "year": 1.50}]"#,
        "missing_document_id",
    ),
    (
        "movies",
        "",
        "application/json",
        r#"[{"id": "bad id!"}, {"id": 2}]"#,
        "invalid_document_id",
    ),
    (
        "movies",
        "",
        "application/json",
        r#"[{"id": null}]"#,
        "invalid_document_id",
    ),
    (
        "movies",
        "",
        "application/json",
        r#"[{"id": [1]}]"#,
        "invalid_document_id",
    ),
    (
        "movies",
        "?primaryKey=sku",
        "application/json",
        r#"[{"sku": 1}]"#,
        "index_primary_key_already_exists",
    ),
    (
        "movies",
        "",
        "application/x-ndjson",
        "{\"id\": 1}\n{\"title\": \"x\"}\n",
        "missing_document_id",
    ),
    (
        "movies",
        "",
        "text/csv",
        "id,title\n1,a\n,b\n",
        "invalid_document_id",
    ),
    (
        "fresh-none",
        "",
        "application/json",
        r#"[{"title": "x"}, {"title": "y"}]"#,
        "index_primary_key_no_candidate_found",
    ),
    (
        "fresh-many",
        "",
        "application/json",
        r#"[{"b_id": 1, "a_id": 2, "title": "x"}]"#,
        "index_primary_key_multiple_candidates_found",
    ),
    (
        "fresh-query",
        "?primaryKey=sku",
        "application/json",
        r#"[{"sku": "a"}, {"title": "no sku"}]"#,
        "missing_document_id",
    ),
];

fn send(client: &miroir_e2e::Client, path: &str, ct: &str, body: &str) -> Response {
    client.call_raw("POST", path, Some((ct, body.as_bytes())))
}

/// The task as a client compares it: uids and times differ between the two sides.
fn comparable(task: &Value) -> Value {
    let mut t = task.clone();
    let o = t.as_object_mut().unwrap();
    for k in [
        "uid",
        "batchUid",
        "duration",
        "enqueuedAt",
        "startedAt",
        "finishedAt",
    ] {
        assert!(o.contains_key(k), "{k} missing: {task}");
        o.insert(k.into(), Value::Null);
    }
    t
}

fn documents(r: Response) -> Vec<Value> {
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["results"].as_array().unwrap().clone()
}

fn node_documents(node: &TestNode, index: &str) -> Vec<Value> {
    documents(node.call(
        "GET",
        &format!("/indexes/{index}/documents?limit=1000"),
        None,
    ))
}

#[test]
fn failed_batches_fail_as_on_one_meilisearch_and_write_nothing() {
    let spec = ClusterSpec::default();
    let dir = temp_dir("failed-batches-ref");
    let reference = start_node(dir.path(), "reference", &spec.master_key);
    let c = Cluster::start(spec);
    let miroir = c.http();
    let one = reference.http();

    for client in [&miroir, &one] {
        let r = client.call(
            "POST",
            "/indexes",
            Some(&json!({"uid": "movies", "primaryKey": "id"})),
        );
        assert_eq!(r.status, 202, "{}", r.text());
    }
    let wait = |is_miroir: bool, uid: u64| {
        if is_miroir {
            c.wait_task(uid)
        } else {
            reference.wait_task(uid)
        }
    };
    // Index creation finished on both sides before the batches.
    let r = reference.call("GET", "/tasks?limit=1", None).json();
    reference.wait_task(r["results"][0]["uid"].as_u64().unwrap());

    for (index, query, ct, body, code) in CASES {
        let path = format!("/indexes/{index}/documents{query}");
        let mut tasks = Vec::new();
        for (is_miroir, client) in [(true, &miroir), (false, &one)] {
            let r = send(client, &path, ct, body);
            assert_eq!(
                r.status,
                202,
                "{path} {body} (miroir: {is_miroir}): {}",
                r.text()
            );
            let summary = r.json();
            assert_eq!(summary["status"], "enqueued", "{summary}");
            assert_eq!(summary["type"], "documentAdditionOrUpdate", "{summary}");
            assert_eq!(summary["indexUid"], json!(index), "{summary}");
            let task = wait(is_miroir, summary["taskUid"].as_u64().unwrap());
            assert_eq!(task["status"], "failed", "{path} {body}: {task}");
            assert_eq!(task["error"]["code"], json!(code), "{path} {body}: {task}");
            tasks.push(task);
        }
        assert_eq!(
            comparable(&tasks[0]),
            comparable(&tasks[1]),
            "Miroir's task (left) and one node's (right) for {path} {body}"
        );
    }

    // Nothing written: through Miroir, and on every node.
    for index in ["movies", "fresh-none", "fresh-many", "fresh-query"] {
        assert_eq!(
            documents(miroir.call("GET", &format!("/indexes/{index}/documents"), None)),
            Vec::<Value>::new(),
            "{index}"
        );
        for node in &c.nodes {
            assert_eq!(node_documents(node, index), Vec::<Value>::new(), "{index}");
        }
    }
    // No document write ever reached a node (the test node counts requests by route).
    if miroir_e2e::real_meilisearch().is_none() {
        let writes = c.node_writes();
        assert!(
            writes.keys().all(|route| !route.contains("/documents")),
            "{writes:?}"
        );
    }
    // Indexes that did not exist were created without a primary key, as on one node.
    for index in ["fresh-none", "fresh-many", "fresh-query"] {
        for client in [&miroir, &one] {
            let r = client.call("GET", &format!("/indexes/{index}"), None);
            assert_eq!(r.status, 200, "{index}: {}", r.text());
            assert_eq!(r.json()["primaryKey"], Value::Null, "{index}");
        }
    }
    // …and the index with a key keeps it.
    assert_eq!(
        miroir.call("GET", "/indexes/movies", None).json()["primaryKey"],
        "id"
    );

    // A payload Meilisearch refuses synchronously is refused synchronously by Miroir too.
    let bad = r#"[{"id": 1},"#;
    let mine = send(
        &miroir,
        "/indexes/movies/documents",
        "application/json",
        bad,
    );
    let theirs = send(&one, "/indexes/movies/documents", "application/json", bad);
    assert_eq!((mine.status, mine.json()), (theirs.status, theirs.json()));
    assert_eq!(mine.status, 400);
}
