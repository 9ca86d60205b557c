//! End-to-end tests of the admin process with real binaries: three `miroir-testnode`s and
//! `miroir-admin`, driven over the control socket exactly as the data plane drives it (the
//! data plane's part — splitting documents per node — is done by the test itself).

mod admin_common;

use admin_common::*;
use miroir_testkit::Redis;
use serde_json::{json, Value};

const TASK_KEYS: [&str; 12] = [
    "uid",
    "batchUid",
    "indexUid",
    "status",
    "type",
    "canceledBy",
    "details",
    "error",
    "duration",
    "enqueuedAt",
    "startedAt",
    "finishedAt",
];

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

fn sorted(list: &[&str]) -> Vec<String> {
    let mut k: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    k.sort();
    k
}

fn is_rfc3339_with_fraction(s: &str) -> bool {
    s.ends_with('Z') && s.contains('.') && s.len() >= 24
}

struct Cluster {
    _redis: Option<Redis>,
    _dir: tempfile::TempDir,
    nodes: Vec<TestNode>,
    config: std::path::PathBuf,
    admin: AdminProc,
}

#[derive(Clone, Copy, PartialEq)]
enum Backend {
    Lmdb,
    Redis,
}

fn cluster(n: usize) -> Cluster {
    cluster_on(n, Backend::Lmdb)
}

fn cluster_on(n: usize, backend: Backend) -> Cluster {
    let dir = tempdir();
    let nodes: Vec<TestNode> = (0..n)
        .map(|i| start_testnode(&dir.path().join(format!("node-{i}"))))
        .collect();
    let redis = (backend == Backend::Redis).then(Redis::start);
    let extra = match &redis {
        Some(r) => format!("task_store:\n  backend: redis\n  url: {}\n", r.url()),
        None => String::new(),
    };
    let config = write_config(dir.path(), &nodes.iter().collect::<Vec<_>>(), 8, &extra);
    let admin = start_admin(&config);
    Cluster {
        _redis: redis,
        _dir: dir,
        nodes,
        config,
        admin,
    }
}

/// Creates `movies` (pk `id`) through Miroir and waits for the Miroir task.
fn create_movies(c: &Cluster) -> Value {
    let r = control(
        &c.admin.socket,
        "POST",
        "/indexes",
        Some(&json!({"uid": "movies", "primaryKey": "id"})),
    );
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let summary = r.json();
    assert_eq!(
        keys(&summary),
        sorted(&["taskUid", "indexUid", "status", "type", "enqueuedAt"])
    );
    assert_eq!(summary["type"], "indexCreation");
    wait_miroir_task(&c.admin.socket, summary["taskUid"].as_u64().unwrap())
}

/// Writes `docs` to the nodes as the data plane would (each node gets some, with
/// `_miroir_shard` injected) and registers the write; returns the Miroir task uid.
fn write_docs(c: &Cluster, docs: &[Value]) -> u64 {
    let prep = control(
        &c.admin.socket,
        "POST",
        "/_internal/v1/indexes/movies/prepare-write",
        Some(
            &json!({"primaryKey": "id", "primaryKeySource": "index", "newFields": ["id", "title", "year"]}),
        ),
    );
    assert_eq!(prep.status, 200, "{}", String::from_utf8_lossy(&prep.body));
    assert_eq!(
        prep.json()["index"]["fields"],
        json!(["id", "title", "year"])
    );
    let mut node_tasks = Vec::new();
    for (i, n) in c.nodes.iter().enumerate() {
        let part: Vec<Value> = docs
            .iter()
            .enumerate()
            .filter(|(j, _)| j % c.nodes.len() == i)
            .map(|(j, d)| {
                let mut d = d.clone();
                d["_miroir_shard"] = json!(j % 8);
                d
            })
            .collect();
        let r = node(
            &n.url(),
            "POST",
            "/indexes/movies/documents",
            Some(&Value::Array(part)),
        );
        assert_eq!(r.status, 202);
        node_tasks.push(json!({"node": format!("meili-{i}"), "taskUid": r.json()["taskUid"]}));
    }
    let r = control(
        &c.admin.socket,
        "POST",
        "/_internal/v1/tasks",
        Some(
            &json!({"indexUid": "movies", "type": "documentAdditionOrUpdate", "details": {"receivedDocuments": docs.len()},
            "nodeTasks": node_tasks, "failedNodes": []}),
        ),
    );
    assert_eq!(r.status, 202);
    let s = r.json();
    assert_eq!(
        keys(&s),
        sorted(&["taskUid", "indexUid", "status", "type", "enqueuedAt"])
    );
    assert_eq!(s["status"], "enqueued");
    assert!(is_rfc3339_with_fraction(s["enqueuedAt"].as_str().unwrap()));
    s["taskUid"].as_u64().unwrap()
}

#[test]
fn index_create_settings_stats_and_task_aggregation() {
    let c = cluster(3);
    let created = create_movies(&c);
    assert_eq!(created["status"], "succeeded", "{created}");
    assert_eq!(keys(&created), sorted(&TASK_KEYS));
    assert_eq!(created["uid"], 0);
    assert_eq!(created["batchUid"], 0);
    for t in ["enqueuedAt", "startedAt", "finishedAt"] {
        assert!(
            is_rfc3339_with_fraction(created[t].as_str().unwrap()),
            "{t}: {}",
            created[t]
        );
    }
    assert!(created["duration"].as_str().unwrap().starts_with("PT"));

    // Every node has the index, `_miroir_shard` filterable, searchable `*` (decision 006)
    // and no wildcard displayed list.
    for n in &c.nodes {
        let s = node(&n.url(), "GET", "/indexes/movies/settings", None).json();
        assert_eq!(s["filterableAttributes"], json!(["_miroir_shard"]), "{s}");
        assert_eq!(s["searchableAttributes"], json!(["*"]));
        assert_eq!(s["displayedAttributes"], json!([]));
    }
    // Clients never see any of it.
    let s = control(&c.admin.socket, "GET", "/indexes/movies/settings", None).json();
    assert_eq!(s["filterableAttributes"], json!([]));
    assert_eq!(s["searchableAttributes"], json!(["*"]));
    assert_eq!(s["displayedAttributes"], json!(["*"]));

    // A write brings fields: the nodes get the explicit displayed list, still without
    // reserved fields; searchable stays `*`.
    let docs: Vec<Value> = (0..30)
        .map(|i| json!({"id": i, "title": format!("movie {i}"), "year": 1990 + i}))
        .collect();
    let uid = write_docs(&c, &docs);
    assert_eq!(uid, 1, "task uids are dense");
    for n in &c.nodes {
        let s = node(&n.url(), "GET", "/indexes/movies/settings", None).json();
        assert_eq!(s["displayedAttributes"], json!(["id", "title", "year"]));
        assert_eq!(s["searchableAttributes"], json!(["*"]));
    }
    let t = wait_miroir_task(&c.admin.socket, uid);
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(keys(&t), sorted(&TASK_KEYS));
    assert_eq!(
        t["details"],
        json!({"receivedDocuments": 30, "indexedDocuments": 30})
    );
    assert_eq!(t["type"], "documentAdditionOrUpdate");

    // Settings through Miroir: filterable gets `_miroir_shard` on nodes, hidden from clients.
    let r = control(
        &c.admin.socket,
        "PATCH",
        "/indexes/movies/settings",
        Some(
            &json!({"filterableAttributes": ["year"], "rankingRules": ["words", "sort", "typo", "proximity", "attribute", "exactness"]}),
        ),
    );
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let t = wait_miroir_task(&c.admin.socket, r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(t["type"], "settingsUpdate");
    for n in &c.nodes {
        let mut f: Vec<String> = serde_json::from_value(
            node(&n.url(), "GET", "/indexes/movies/settings", None).json()["filterableAttributes"]
                .clone(),
        )
        .unwrap();
        f.sort();
        assert_eq!(f, vec!["_miroir_shard", "year"]);
    }
    let f = control(
        &c.admin.socket,
        "GET",
        "/indexes/movies/settings/filterable-attributes",
        None,
    )
    .json();
    assert_eq!(f, json!(["year"]));

    // Stats: logical counts, no reserved field in the distribution.
    let st = control(&c.admin.socket, "GET", "/indexes/movies/stats", None);
    assert_eq!(st.status, 200);
    let st = st.json();
    assert_eq!(st["numberOfDocuments"], 30, "{st}");
    assert_eq!(
        st["fieldDistribution"],
        json!({"id": 30, "title": 30, "year": 30})
    );
    let g = control(&c.admin.socket, "GET", "/stats", None).json();
    assert_eq!(g["indexes"]["movies"]["numberOfDocuments"], 30, "{g}");

    // `showInternalDatabaseSizes`/`sizeFormat`: database sizes summed over the nodes (per
    // copy of the data), formatted only after summing.
    let q = "showInternalDatabaseSizes=true";
    let per_node: Vec<Value> = c
        .nodes
        .iter()
        .map(|n| node(&n.url(), "GET", &format!("/indexes/movies/stats?{q}"), None).json())
        .collect();
    let sum = |f: &dyn Fn(&Value) -> u64| per_node.iter().map(f).sum::<u64>();
    let copies = sum(&|v| v["numberOfDocuments"].as_u64().unwrap()) / 30;
    let st = control(
        &c.admin.socket,
        "GET",
        &format!("/indexes/movies/stats?{q}"),
        None,
    )
    .json();
    assert_eq!(
        st["internalDatabaseSizes"]["documents"],
        sum(&|v| v["internalDatabaseSizes"]["documents"].as_u64().unwrap()) / copies,
        "{st}"
    );
    let raw = st["rawDocumentDbSize"].as_u64().unwrap();
    let h = control(
        &c.admin.socket,
        "GET",
        &format!("/indexes/movies/stats?{q}&sizeFormat=human"),
        None,
    )
    .json();
    assert_eq!(
        h["rawDocumentDbSize"],
        miroir_admin::size_format::human(raw),
        "{h}"
    );
    assert!(h["internalDatabaseSizes"]["main"].is_string(), "{h}");
    let g = control(&c.admin.socket, "GET", "/stats?sizeFormat=human", None).json();
    assert!(g["databaseSize"].is_string(), "{g}");
    assert!(g["indexes"]["movies"]["avgDocumentSize"].is_string(), "{g}");
    // Fields: united over the nodes, without the shard field, in name order, paginated.
    let f = control(
        &c.admin.socket,
        "POST",
        "/indexes/movies/fields",
        Some(&json!({})),
    )
    .json();
    let names: Vec<&str> = f["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["id", "title", "year"], "{f}");
    assert_eq!(f["total"], 3);
    let f = control(
        &c.admin.socket,
        "POST",
        "/indexes/movies/fields",
        Some(&json!({"offset": 1, "limit": 1})),
    )
    .json();
    assert_eq!(f["results"][0]["name"], "title", "{f}");
    assert_eq!(
        (f["total"].as_u64(), f["offset"].as_u64()),
        (Some(3), Some(1))
    );
    let f = control(
        &c.admin.socket,
        "POST",
        "/indexes/movies/fields",
        Some(&json!({"filter": {"filterable": true}})),
    )
    .json();
    assert_eq!(f["results"][0]["name"], "year", "{f}");
    assert_eq!(f["total"], 1);
    let e = control(
        &c.admin.socket,
        "POST",
        "/indexes/movies/fields",
        Some(&json!({"filter": {"bogus": true}})),
    );
    assert_eq!(e.status, 400);
    assert_eq!(e.json()["code"], "invalid_index_fields_filter");
    let bad = control(&c.admin.socket, "GET", "/stats?sizeFormat=bogus", None);
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["code"], "invalid_stats_size_format");

    // Listing with Meilisearch's filters and pagination.
    let l = control(
        &c.admin.socket,
        "GET",
        "/tasks?statuses=succeeded&limit=2",
        None,
    )
    .json();
    assert_eq!(
        keys(&l),
        sorted(&["results", "total", "limit", "from", "next"])
    );
    assert_eq!(l["total"], 3);
    assert_eq!(l["limit"], 2);
    assert_eq!(l["from"], 2);
    assert_eq!(l["next"], 0);
    assert_eq!(l["results"].as_array().unwrap().len(), 2);
    let l = control(&c.admin.socket, "GET", "/tasks?types=indexCreation", None).json();
    assert_eq!(l["total"], 1);
    let nf = control(&c.admin.socket, "GET", "/tasks/999", None);
    assert_eq!(nf.status, 404);
    assert_eq!(nf.json()["code"], "task_not_found");
    let bad = control(&c.admin.socket, "GET", "/tasks?statuses=nope", None);
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["code"], "invalid_task_statuses");

    // One batch per task.
    let b = control(&c.admin.socket, "GET", "/batches/1", None);
    assert_eq!(b.status, 200);
    assert_eq!(b.json()["uid"], 1);

    // Index reads come from a node.
    let i = control(&c.admin.socket, "GET", "/indexes/movies", None).json();
    assert_eq!(i["primaryKey"], "id");
    let l = control(&c.admin.socket, "GET", "/indexes", None).json();
    assert_eq!(l["total"], 1);

    // Re-creating fails as a task, with Meilisearch's error.
    let r = control(
        &c.admin.socket,
        "POST",
        "/indexes",
        Some(&json!({"uid": "movies"})),
    );
    let t = wait_miroir_task(&c.admin.socket, r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(t["status"], "failed");
    assert_eq!(t["error"]["code"], "index_already_exists");

    // Delete: gone on every node.
    // Compaction: one task over every node, sizes summed per copy of the data.
    let r = control(&c.admin.socket, "POST", "/indexes/movies/compact", None);
    assert_eq!(r.status, 202, "{}", r.json());
    assert_eq!(r.json()["type"], "indexCompaction");
    let t = wait_miroir_task(&c.admin.socket, r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(t["status"], "succeeded", "{t}");
    for k in ["preCompactionSize", "postCompactionSize"] {
        let v = t["details"][k].as_str().unwrap_or_else(|| panic!("{t}"));
        assert!(miroir_admin::size_format::parse_human(v).is_some(), "{t}");
    }
    // Update by function on an index Miroir does not know: a failed task, as Meilisearch's.
    let r = control(
        &c.admin.socket,
        "POST",
        "/indexes/nothing-here/documents/edit",
        Some(&json!({"function": "doc.n = 1"})),
    );
    assert_eq!(r.json()["type"], "documentEdition");
    let t = wait_miroir_task(&c.admin.socket, r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(t["status"], "failed", "{t}");
    assert_eq!(t["error"]["code"], "index_not_found");
    assert_eq!(t["details"]["function"], "doc.n = 1");
    let r = control(
        &c.admin.socket,
        "POST",
        "/indexes/nothing-here/compact",
        None,
    );
    let t = wait_miroir_task(&c.admin.socket, r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(t["status"], "failed", "{t}");
    assert_eq!(t["error"]["code"], "index_not_found");

    let r = control(&c.admin.socket, "DELETE", "/indexes/movies", None);
    let t = wait_miroir_task(&c.admin.socket, r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(t["status"], "succeeded", "{t}");
    for n in &c.nodes {
        assert_eq!(node(&n.url(), "GET", "/indexes/movies", None).status, 404);
    }
}

#[test]
fn node_failure_fails_the_task_and_tasks_survive_kill_9() {
    failure_and_restart(Backend::Lmdb);
}

#[test]
fn node_failure_fails_the_task_and_tasks_survive_kill_9_with_redis() {
    failure_and_restart(Backend::Redis);
}

fn failure_and_restart(backend: Backend) {
    let mut c = cluster_on(2, backend);
    assert_eq!(create_movies(&c)["status"], "succeeded");
    // Node 1 rejects its part (an invalid document id fails the node task asynchronously).
    let ok = node(
        &c.nodes[0].url(),
        "POST",
        "/indexes/movies/documents",
        Some(&json!([{"id": 1, "title": "a"}])),
    );
    let bad = node(
        &c.nodes[1].url(),
        "POST",
        "/indexes/movies/documents",
        Some(&json!([{"id": "not valid!", "title": "b"}])),
    );
    let r = control(
        &c.admin.socket,
        "POST",
        "/_internal/v1/tasks",
        Some(
            &json!({"indexUid": "movies", "type": "documentAdditionOrUpdate", "details": {"receivedDocuments": 2},
            "nodeTasks": [{"node": "meili-0", "taskUid": ok.json()["taskUid"]}, {"node": "meili-1", "taskUid": bad.json()["taskUid"]}]}),
        ),
    );
    let uid = r.json()["taskUid"].as_u64().unwrap();
    let failed = wait_miroir_task(&c.admin.socket, uid);
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"]["code"], "invalid_document_id", "{failed}");
    let node_err =
        wait_node_task(&c.nodes[1].url(), bad.json()["taskUid"].as_u64().unwrap())["error"].clone();
    assert_eq!(
        failed["error"], node_err,
        "the node's error is forwarded verbatim"
    );

    // A write refused by a node at dispatch time fails the task too.
    let r = control(
        &c.admin.socket,
        "POST",
        "/_internal/v1/tasks",
        Some(
            &json!({"indexUid": "movies", "type": "documentAdditionOrUpdate", "details": {"receivedDocuments": 1},
            "nodeTasks": [], "failedNodes": [{"node": "meili-1", "error": {"message": "boom", "code": "internal", "type": "internal", "link": "x"}}]}),
        ),
    );
    let dispatch_failed = wait_miroir_task(&c.admin.socket, r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(dispatch_failed["error"]["message"], "boom");

    // A task still running when the admin dies: stall node 0's queue first.
    let stall = node(
        &c.nodes[0].url(),
        "POST",
        "/_testnode/faults",
        Some(&json!({"stallTasks": true})),
    );
    assert!(stall.status < 300);
    let pending = node(
        &c.nodes[0].url(),
        "POST",
        "/indexes/movies/documents",
        Some(&json!([{"id": 7, "title": "later"}])),
    );
    let r = control(
        &c.admin.socket,
        "POST",
        "/_internal/v1/tasks",
        Some(
            &json!({"indexUid": "movies", "type": "documentAdditionOrUpdate", "details": {"receivedDocuments": 1},
            "nodeTasks": [{"node": "meili-0", "taskUid": pending.json()["taskUid"]}]}),
        ),
    );
    let pending_uid = r.json()["taskUid"].as_u64().unwrap();
    assert_eq!(
        control(
            &c.admin.socket,
            "GET",
            &format!("/tasks/{pending_uid}"),
            None
        )
        .json()["status"],
        "enqueued"
    );

    // kill -9 and restart on the same data directory.
    c.admin.proc.kill();
    c.admin = start_admin(&c.config);
    let again = control(&c.admin.socket, "GET", &format!("/tasks/{uid}"), None).json();
    assert_eq!(
        again, failed,
        "a finished task is served identically after a restart"
    );
    let created = control(&c.admin.socket, "GET", "/tasks/0", None).json();
    assert_eq!(created["status"], "succeeded");
    // Index metadata survived too: clients still read `*`.
    let s = control(&c.admin.socket, "GET", "/indexes/movies/settings", None).json();
    assert_eq!(s["searchableAttributes"], json!(["*"]));
    // The interrupted-but-node-tracked task resumes once the node processes it.
    node(&c.nodes[0].url(), "DELETE", "/_testnode/faults", None);
    let done = wait_miroir_task(&c.admin.socket, pending_uid);
    assert_eq!(done["status"], "succeeded", "{done}");
    // Uids continue densely after the restart.
    let r = control(
        &c.admin.socket,
        "POST",
        "/indexes",
        Some(&json!({"uid": "books"})),
    );
    assert_eq!(r.json()["taskUid"].as_u64().unwrap(), pending_uid + 1);
}

fn node_settings(c: &Cluster) -> Vec<Value> {
    c.nodes
        .iter()
        .map(|n| node(&n.url(), "GET", "/indexes/movies/settings", None).json())
        .collect()
}

#[test]
fn a_settings_failure_on_one_node_leaves_every_node_with_the_old_settings() {
    let c = cluster(3);
    assert_eq!(create_movies(&c)["status"], "succeeded");
    let before = node_settings(&c);

    // 1. Node 2 refuses the update outright: the others are rolled back, the client gets the
    //    node's error.
    node(
        &c.nodes[2].url(),
        "POST",
        "/_testnode/faults",
        Some(
            &json!({"rules": [{"route": "/indexes/movies/settings", "method": "PATCH",
        "error": {"status": 500, "body": {"message": "injected", "code": "internal", "type": "internal", "link": "x"}}}]}),
        ),
    );
    let r = control(
        &c.admin.socket,
        "PATCH",
        "/indexes/movies/settings",
        Some(&json!({"stopWords": ["the"], "filterableAttributes": ["year"]})),
    );
    assert_eq!(r.status, 500, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["message"], "injected");
    node(&c.nodes[2].url(), "DELETE", "/_testnode/faults", None);
    assert_eq!(node_settings(&c), before);

    // 2. Node 2 accepts, but fails verification mid-way (its read-back breaks after applying):
    //    every node, including the two that succeeded, is rolled back.
    node(
        &c.nodes[2].url(),
        "POST",
        "/_testnode/faults",
        Some(&json!({"stallTasks": true})),
    );
    let r = control(
        &c.admin.socket,
        "PATCH",
        "/indexes/movies/settings",
        Some(&json!({"stopWords": ["the"], "filterableAttributes": ["year"]})),
    );
    assert_eq!(r.status, 202);
    let uid = r.json()["taskUid"].as_u64().unwrap();
    node(
        &c.nodes[2].url(),
        "POST",
        "/_testnode/faults",
        Some(
            &json!({"stallTasks": false, "rules": [{"route": "/indexes/movies/settings", "method": "GET",
        "error": {"status": 500, "body": {"message": "read-back broken", "code": "internal", "type": "internal", "link": "x"}}}]}),
        ),
    );
    let t = wait_miroir_task(&c.admin.socket, uid);
    assert_eq!(t["status"], "failed", "{t}");
    node(&c.nodes[2].url(), "DELETE", "/_testnode/faults", None);
    assert_eq!(node_settings(&c), before);
    let s = control(&c.admin.socket, "GET", "/indexes/movies/settings", None).json();
    assert_eq!(s["filterableAttributes"], json!([]));
    assert_eq!(s["stopWords"], json!([]));
}

#[test]
fn admin_api_auth_topology_ready_metrics_and_protocol_version() {
    let c = cluster(2);
    let url = &c.admin.url;
    assert_eq!(http(url, "GET", "/_miroir/topology", &[], None).status, 401);
    assert_eq!(
        http(
            url,
            "GET",
            "/_miroir/topology",
            &[("X-Admin-Key", "wrong")],
            None
        )
        .status,
        401
    );
    let auth = format!("Bearer {ADMIN_KEY}");
    let t = http(
        url,
        "GET",
        "/_miroir/topology",
        &[("Authorization", &auth)],
        None,
    )
    .json();
    assert_eq!(
        keys(&t),
        sorted(&[
            "shards",
            "replication_factor",
            "replica_groups",
            "nodes",
            "degraded_node_count",
            "rebalance_in_progress",
            "fully_covered"
        ])
    );
    assert_eq!(t["nodes"].as_array().unwrap().len(), 2);
    assert_eq!(
        t["nodes"][0]["shard_count"].as_u64().unwrap()
            + t["nodes"][1]["shard_count"].as_u64().unwrap(),
        8
    );
    assert_eq!(
        http(
            url,
            "GET",
            "/_miroir/ready",
            &[("X-Admin-Key", ADMIN_KEY)],
            None
        )
        .status,
        200
    );
    let m = http(
        url,
        "GET",
        "/_miroir/metrics",
        &[("X-Admin-Key", ADMIN_KEY)],
        None,
    );
    let text = String::from_utf8(m.body).unwrap();
    assert!(
        text.contains("miroir_node_healthy{node=\"meili-0\"} 1"),
        "{text}"
    );
    assert!(text.contains("miroir_task_registry_size"));
    // Node and replica-group operations exist (issue 12): a body is required.
    let bad = http(
        url,
        "POST",
        "/_miroir/nodes",
        &[("X-Admin-Key", ADMIN_KEY)],
        None,
    );
    assert!(matches!(bad.status, 400 | 415), "{}", bad.json());
    let ni = http(
        url,
        "POST",
        "/_miroir/groups",
        &[("X-Admin-Key", ADMIN_KEY)],
        None,
    );
    assert!(matches!(ni.status, 400 | 415), "{}", ni.json());
    // Client routes are not served on the admin listener.
    assert_eq!(
        http(url, "GET", "/tasks", &[("X-Admin-Key", ADMIN_KEY)], None).status,
        404
    );

    // Control socket: the version header is mandatory; heartbeats are accepted.
    let s = std::os::unix::net::UnixStream::connect(&c.admin.socket).unwrap();
    drop(s);
    let hb = control(
        &c.admin.socket,
        "POST",
        "/_internal/v1/heartbeat",
        Some(&json!({"dataplane": "h:1", "pid": 1, "generation": 1, "epoch": 1})),
    );
    assert_eq!(hb.status, 204);
    let m = String::from_utf8(
        http(
            url,
            "GET",
            "/_miroir/metrics",
            &[("X-Admin-Key", ADMIN_KEY)],
            None,
        )
        .body,
    )
    .unwrap();
    assert!(m.contains("miroir_dataplanes_live 1"), "{m}");

    // Default keys: one consistent set, present on every node with the same value.
    let k = control(&c.admin.socket, "GET", "/keys", None).json();
    let names: Vec<&str> = k["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    // Meilisearch 1.50's four default keys, in its listing order.
    assert_eq!(
        names,
        [
            "Default Search API Key",
            "Default Admin API Key",
            "Default Read-Only Admin API Key",
            "Default Chat API Key"
        ],
        "{k}"
    );
    let read_only = &k["results"][2];
    assert_eq!(read_only["actions"], json!(["*.get", "keys.get"]));
    assert_eq!(read_only["indexes"], json!(["*"]));
    assert_eq!(read_only["description"], "Use it to read information across the whole database. Caution! Do not expose this key on a public frontend");
    let search_key = k["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "Default Search API Key")
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    for n in &c.nodes {
        eventually("default keys on the node", || {
            let r = node(&n.url(), "GET", &format!("/keys/{search_key}"), None);
            (r.status == 200).then_some(())
        });
    }

    // A node going down makes it failed; ready then reports uncovered shards once an index exists.
    assert_eq!(create_movies(&c)["status"], "succeeded");
    let mut dead = c;
    dead.nodes[1].kill();
    let url = dead.admin.url.clone();
    eventually("node failed", || {
        let t = http(
            &url,
            "GET",
            "/_miroir/topology",
            &[("X-Admin-Key", ADMIN_KEY)],
            None,
        )
        .json();
        (t["nodes"][1]["status"] == "failed").then_some(())
    });
    let r = http(
        &url,
        "GET",
        "/_miroir/ready",
        &[("X-Admin-Key", ADMIN_KEY)],
        None,
    );
    assert_eq!(r.status, 503);
    assert!(r.json()["uncovered_shards"]["movies"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));
}

#[test]
fn control_requests_without_the_version_header_are_refused() {
    let c = cluster(1);
    let s = std::os::unix::net::UnixStream::connect(&c.admin.socket).unwrap();
    use std::io::{Read, Write};
    let mut s = s;
    s.write_all(b"GET /tasks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.contains("miroir_control_version"));
}

#[test]
fn cancel_and_delete_are_mapped_to_the_nodes() {
    let c = cluster(2);
    assert_eq!(create_movies(&c)["status"], "succeeded");
    for n in &c.nodes {
        node(
            &n.url(),
            "POST",
            "/_testnode/faults",
            Some(&json!({"stallTasks": true})),
        );
    }
    let node_tasks: Vec<Value> = c
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let r = node(
                &n.url(),
                "POST",
                "/indexes/movies/documents",
                Some(&json!([{"id": i, "title": "x"}])),
            );
            json!({"node": format!("meili-{i}"), "taskUid": r.json()["taskUid"]})
        })
        .collect();
    let r = control(
        &c.admin.socket,
        "POST",
        "/_internal/v1/tasks",
        Some(
            &json!({"indexUid": "movies", "type": "documentAdditionOrUpdate", "details": {"receivedDocuments": 2}, "nodeTasks": node_tasks}),
        ),
    );
    let write = r.json()["taskUid"].as_u64().unwrap();

    let missing = control(&c.admin.socket, "POST", "/tasks/cancel", None);
    assert_eq!(missing.status, 400);
    assert_eq!(missing.json()["code"], "missing_task_filters");

    let r = control(
        &c.admin.socket,
        "POST",
        &format!("/tasks/cancel?uids={write}"),
        None,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["type"], "taskCancelation");
    let cancel = r.json()["taskUid"].as_u64().unwrap();
    for n in &c.nodes {
        node(&n.url(), "DELETE", "/_testnode/faults", None);
    }
    let t = wait_miroir_task(&c.admin.socket, write);
    assert_eq!(t["status"], "canceled", "{t}");
    assert_eq!(t["canceledBy"], cancel);
    let ct = wait_miroir_task(&c.admin.socket, cancel);
    assert_eq!(ct["status"], "succeeded", "{ct}");
    assert_eq!(
        ct["details"],
        json!({"matchedTasks": 1, "canceledTasks": 1, "originalFilter": format!("?uids={write}")})
    );
    let l = control(
        &c.admin.socket,
        "GET",
        &format!("/tasks?canceledBy={cancel}"),
        None,
    )
    .json();
    assert_eq!(l["total"], 1);

    let r = control(
        &c.admin.socket,
        "DELETE",
        &format!("/tasks?uids={write}"),
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "enqueued");
    // Finished by the time the answer arrives, as Meilisearch's prioritised task deletions
    // are by the time a client looks (the nodes' records are deleted in the background).
    let uid = r.json()["taskUid"].as_u64().unwrap();
    let del = control(&c.admin.socket, "GET", &format!("/tasks/{uid}"), None).json();
    assert_eq!(del["status"], "succeeded", "{del}");
    assert_eq!(del["type"], "taskDeletion");
    assert_eq!(del["details"]["deletedTasks"], 1, "{del}");
    assert_eq!(
        control(&c.admin.socket, "GET", &format!("/tasks/{write}"), None).status,
        404
    );
}

#[test]
fn prepare_write_creates_an_unknown_index_everywhere_and_refuses_a_conflicting_key() {
    let c = cluster(2);
    let r = control(
        &c.admin.socket,
        "POST",
        "/_internal/v1/indexes/books/prepare-write",
        Some(
            &json!({"primaryKey": "isbn", "primaryKeySource": "inferred", "newFields": ["isbn", "title", "_miroir_shard", "title"]}),
        ),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert!(v["generation"].as_u64().unwrap() > 0);
    assert_eq!(v["index"]["primary_key"], "isbn");
    assert_eq!(v["index"]["fields"], json!(["isbn", "title"]));
    assert_eq!(v["index"]["shards"], 8);
    for n in &c.nodes {
        // Enqueued, not awaited: each node creates the index before anything that follows.
        eventually("index created on the node", || {
            let i = node(&n.url(), "GET", "/indexes/books", None).json();
            (i["primaryKey"] == "isbn").then_some(())
        });
        let s = eventually("node settings applied", || {
            let s = node(&n.url(), "GET", "/indexes/books/settings", None).json();
            (s["displayedAttributes"] == json!(["isbn", "title"])).then_some(s)
        });
        assert_eq!(s["filterableAttributes"], json!(["_miroir_shard"]));
    }
    let r = control(
        &c.admin.socket,
        "POST",
        "/_internal/v1/indexes/books/prepare-write",
        Some(&json!({"primaryKey": "id", "primaryKeySource": "query", "newFields": []})),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "index_primary_key_already_exists");
}

#[test]
fn miroir_ctl_prints_a_readable_status_and_tasks() {
    let c = cluster(2);
    assert_eq!(create_movies(&c)["status"], "succeeded");
    let ctl = std::path::Path::new(env!("CARGO_BIN_EXE_miroir-ctl"));
    let out = std::process::Command::new(ctl)
        .args(["--url", &c.admin.url, "--admin-key", ADMIN_KEY, "status"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("ready: yes"), "{text}");
    assert!(
        text.contains("meili-1") && text.contains("active"),
        "{text}"
    );
    let out = std::process::Command::new(ctl)
        .args(["--url", &c.admin.url, "task", "show", "0"])
        .env("MIROIR_ADMIN_KEY", ADMIN_KEY)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["type"], "indexCreation");
    let out = std::process::Command::new(ctl)
        .args(["--url", &c.admin.url, "--admin-key", "wrong", "topology"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 401"));
}

#[test]
fn the_snapshot_carries_index_metadata_keys_and_nodes() {
    let c = cluster(2);
    let r = control(
        &c.admin.socket,
        "POST",
        "/_internal/v1/indexes/films/prepare-write",
        Some(
            &json!({"primaryKey": "id", "primaryKeySource": "inferred", "newFields": ["id", "name"]}),
        ),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let generation = r.json()["generation"].as_u64().unwrap();
    // The data plane's view: the LMDB snapshot channel (read from this other process).
    let store =
        miroir_core::snapshot_store::SnapshotStore::open(&c._dir.path().join("data/snapshot"))
            .unwrap();
    let snap = store.load().unwrap().expect("a snapshot was published");
    assert!(snap.generation >= generation);
    let films = &snap.indexes["films"];
    assert_eq!(films.primary_key.as_deref(), Some("id"));
    assert_eq!(films.fields, vec!["id", "name"]);
    assert!(films.searchable_wildcard && films.displayed_wildcard);
    assert_eq!(films.shards, 8);
    assert_eq!(snap.nodes.len(), 2);
    let names: Vec<_> = snap.keys.iter().filter_map(|k| k.name.clone()).collect();
    assert!(
        names.contains(&"Default Admin API Key".to_string()),
        "{names:?}"
    );
}

#[test]
fn keys_are_created_with_one_uid_and_value_on_every_node() {
    let c = cluster(2);
    let r = control(
        &c.admin.socket,
        "POST",
        "/keys",
        Some(
            &json!({"name": "ci", "actions": ["search"], "indexes": ["movies"], "expiresAt": null}),
        ),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let key = r.json();
    let (uid, value) = (
        key["uid"].as_str().unwrap().to_string(),
        key["key"].as_str().unwrap().to_string(),
    );
    for n in &c.nodes {
        let k = node(&n.url(), "GET", &format!("/keys/{uid}"), None).json();
        assert_eq!(
            k["key"],
            value.as_str(),
            "same uid, same master key → same value: {k}"
        );
    }
    let got = control(&c.admin.socket, "GET", &format!("/keys/{value}"), None).json();
    assert_eq!(got["uid"], uid.as_str());
    let r = control(
        &c.admin.socket,
        "PATCH",
        &format!("/keys/{uid}"),
        Some(&json!({"name": "renamed"})),
    );
    assert_eq!(r.json()["name"], "renamed");
    for n in &c.nodes {
        assert_eq!(
            node(&n.url(), "GET", &format!("/keys/{uid}"), None).json()["name"],
            "renamed"
        );
    }
    assert_eq!(
        control(&c.admin.socket, "DELETE", &format!("/keys/{uid}"), None).status,
        204
    );
    for n in &c.nodes {
        assert_eq!(
            node(&n.url(), "GET", &format!("/keys/{uid}"), None).status,
            404
        );
    }
    let missing = control(&c.admin.socket, "GET", &format!("/keys/{uid}"), None);
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["code"], "api_key_not_found");
    // GET /keys lists only Miroir's consistent set: the four defaults now.
    assert_eq!(
        control(&c.admin.socket, "GET", "/keys", None).json()["total"],
        4
    );
}

#[test]
fn a_settings_update_creates_a_missing_index_like_meilisearch() {
    let c = cluster(2);
    let r = control(
        &c.admin.socket,
        "PATCH",
        "/indexes/fresh/settings",
        Some(&json!({"sortableAttributes": ["year"]})),
    );
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let t = wait_miroir_task(&c.admin.socket, r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(t["status"], "succeeded", "{t}");
    for n in &c.nodes {
        let s = node(&n.url(), "GET", "/indexes/fresh/settings", None).json();
        assert_eq!(s["filterableAttributes"], json!(["_miroir_shard"]));
        assert_eq!(s["sortableAttributes"], json!(["year"]));
    }
}

#[test]
fn a_key_restricted_to_some_indexes_only_sees_their_tasks() {
    let c = cluster(1);
    assert_eq!(create_movies(&c)["status"], "succeeded");
    let r = control(
        &c.admin.socket,
        "POST",
        "/indexes",
        Some(&json!({"uid": "secret"})),
    );
    let secret_task = r.json()["taskUid"].as_u64().unwrap();
    wait_miroir_task(&c.admin.socket, secret_task);
    let key = control(
        &c.admin.socket,
        "POST",
        "/keys",
        Some(&json!({"actions": ["tasks.get"], "indexes": ["mov*"], "expiresAt": null})),
    )
    .json();
    let principal = format!("key:{}", key["uid"].as_str().unwrap());
    let l = control_as(&c.admin.socket, &principal, "GET", "/tasks", None).json();
    assert_eq!(l["total"], 1, "{l}");
    assert_eq!(l["results"][0]["indexUid"], "movies");
    let hidden = control_as(
        &c.admin.socket,
        &principal,
        "GET",
        &format!("/tasks/{secret_task}"),
        None,
    );
    assert_eq!(hidden.status, 404);
    assert_eq!(
        control(
            &c.admin.socket,
            "GET",
            &format!("/tasks/{secret_task}"),
            None
        )
        .status,
        200
    );
}

#[test]
fn a_write_registered_without_an_unreachable_node_succeeds_and_is_counted_for_operators() {
    let c = cluster(3);
    assert_eq!(create_movies(&c)["status"], "succeeded");
    // The data plane reached its quorum on nodes 0 and 1; node 2 never got the write.
    let mut node_tasks = Vec::new();
    for i in 0..2 {
        let docs = json!([{"id": i, "title": "t", "_miroir_shard": 0}]);
        let r = node(
            &c.nodes[i].url(),
            "POST",
            "/indexes/movies/documents",
            Some(&docs),
        );
        assert_eq!(r.status, 202);
        node_tasks.push(json!({"node": format!("meili-{i}"), "taskUid": r.json()["taskUid"]}));
    }
    let unreachable = json!({"message": "Node `meili-2` Connect(\"refused\").", "code": "unavailable", "type": "system", "link": ""});
    let r = control(
        &c.admin.socket,
        "POST",
        "/_internal/v1/tasks",
        Some(
            &json!({"indexUid": "movies", "type": "documentAdditionOrUpdate", "details": {"receivedDocuments": 2},
            "nodeTasks": node_tasks, "failedNodes": [{"node": "meili-2", "error": unreachable}]}),
        ),
    );
    assert_eq!(r.status, 202);
    let t = wait_miroir_task(&c.admin.socket, r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(t["error"], Value::Null);
    assert_eq!(keys(&t), sorted(&TASK_KEYS));
    assert_eq!(t["details"]["indexedDocuments"], json!(2), "{t}");
    let m = http(
        &c.admin.url,
        "GET",
        "/_miroir/metrics",
        &[("X-Admin-Key", ADMIN_KEY)],
        None,
    );
    let text = String::from_utf8(m.body).unwrap();
    assert!(
        text.contains("miroir_task_missing_copies_total 1"),
        "{text}"
    );
}

#[test]
fn settings_changes_that_would_leave_a_shard_without_an_up_to_date_owner_are_refused() {
    let mut c = cluster(3);
    assert_eq!(create_movies(&c)["status"], "succeeded");
    let before: Vec<Value> = node_settings(&c)[..2].to_vec();
    // One group, RF=1: every node is the only owner of its shards; node 2 dies.
    c.nodes[2].kill();
    let r = control(
        &c.admin.socket,
        "PATCH",
        "/indexes/movies/settings",
        Some(&json!({"filterableAttributes": ["year"]})),
    );
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["code"], "miroir_no_quorum", "{}", r.json());
    let r = control(
        &c.admin.socket,
        "POST",
        "/_internal/v1/indexes/movies/prepare-write",
        Some(&json!({"primaryKey": "id", "primaryKeySource": "index", "newFields": ["fresh"]})),
    );
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["code"], "miroir_no_quorum", "{}", r.json());
    // The refused settings change touched no node.
    let live: Vec<Value> = c.nodes[..2]
        .iter()
        .map(|n| node(&n.url(), "GET", "/indexes/movies/settings", None).json())
        .collect();
    assert_eq!(
        live[0]["filterableAttributes"],
        before[0]["filterableAttributes"]
    );
    assert_eq!(
        live[1]["filterableAttributes"],
        before[1]["filterableAttributes"]
    );
}

/// Answers compared with a real Meilisearch 1.50 (same requests to both): error messages of
/// the task, index, settings and key routes, and task details.
#[test]
fn admin_answers_match_meilisearch_1_50() {
    let c = cluster(2);
    let sock = &c.admin.socket;
    assert_eq!(create_movies(&c)["status"], "succeeded");
    let error = |r: Resp, status: u16| {
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
        let e = r.json();
        (
            e["code"].as_str().unwrap().to_string(),
            e["message"].as_str().unwrap().to_string(),
        )
    };

    // Task and batch routes.
    assert_eq!(
        error(control(sock, "GET", "/tasks/abc", None), 400),
        (
            "invalid_task_uids".into(),
            "Task uid `abc` is invalid. It should only contain numeric characters.".into()
        )
    );
    assert_eq!(
        error(control(sock, "GET", "/batches/abc", None), 400),
        (
            "invalid_batch_uids".into(),
            "Batch uid `abc` is invalid. It should only contain numeric characters.".into()
        )
    );
    assert_eq!(
        error(control(sock, "GET", "/tasks?statuses=nope", None), 400).1,
        "Invalid value in parameter `statuses`: `nope` is not a valid task status. Available statuses are `enqueued`, `processing`, `succeeded`, `failed`, `canceled`."
    );
    let (code, msg) = error(
        control(sock, "GET", "/batches?types=indexCreation,nope", None),
        400,
    );
    assert_eq!(code, "invalid_task_types");
    assert!(msg.starts_with("Invalid value in parameter `types[1]`: `nope` is not a valid task type. Available types are `documentAdditionOrUpdate`, "), "{msg}");
    assert_eq!(
        error(
            control(sock, "POST", "/tasks/cancel?statuses=nope", None),
            400
        )
        .0,
        "invalid_task_statuses"
    );
    assert_eq!(
        error(control(sock, "DELETE", "/tasks?uids=x", None), 400).0,
        "invalid_task_uids"
    );

    // A non-string index uid: Meilisearch's own message, and no index anywhere.
    assert_eq!(
        error(
            control(sock, "POST", "/indexes", Some(&json!({"uid": 12}))),
            400
        ),
        (
            "invalid_index_uid".into(),
            "Invalid value type at `.uid`: expected a string, but found a positive integer: `12`"
                .into()
        )
    );
    for n in &c.nodes {
        assert_eq!(node(&n.url(), "GET", "/indexes", None).json()["total"], 1);
    }

    // A settings sub-route error is located relative to the sub-route's body.
    assert_eq!(
        error(
            control(
                sock,
                "PUT",
                "/indexes/movies/settings/distinct-attribute",
                Some(&json!(12))
            ),
            400
        ),
        (
            "invalid_settings_distinct_attribute".into(),
            "Invalid value type: expected a string, but found a positive integer: `12`".into()
        )
    );

    // Settings details: Meilisearch's key order, sets sorted.
    let r = control(
        sock,
        "PATCH",
        "/indexes/movies/settings",
        Some(
            &json!({"sortableAttributes": ["year", "price", "title"], "filterableAttributes": ["genre"]}),
        ),
    );
    assert_eq!(r.status, 202);
    let t = wait_miroir_task(sock, r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(
        serde_json::to_string(&t["details"]).unwrap(),
        r#"{"filterableAttributes":["genre"],"sortableAttributes":["price","title","year"]}"#
    );

    // Swaps carry `rename: false`; a rename onto an existing index fails like Meilisearch.
    let r = control(sock, "POST", "/indexes", Some(&json!({"uid": "films"})));
    assert_eq!(
        wait_miroir_task(sock, r.json()["taskUid"].as_u64().unwrap())["status"],
        "succeeded"
    );
    let r = control(
        sock,
        "POST",
        "/swap-indexes",
        Some(&json!([{"indexes": ["movies", "films"]}])),
    );
    assert_eq!(r.status, 202);
    let t = wait_miroir_task(sock, r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(
        t["details"],
        json!({"swaps": [{"indexes": ["movies", "films"], "rename": false}]})
    );
    let r = control(
        sock,
        "POST",
        "/swap-indexes",
        Some(&json!([{"indexes": ["movies", "films"], "rename": true}])),
    );
    let t = wait_miroir_task(sock, r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(t["status"], "failed");
    assert_eq!(t["error"]["code"], "index_already_exists");
    assert_eq!(t["details"]["swaps"][0]["rename"], true);
    // An index named twice is refused at once, before its existence is looked at.
    let r = control(
        sock,
        "POST",
        "/swap-indexes",
        Some(&json!([{"indexes": ["nosuch", "nosuch"]}])),
    );
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["code"], "invalid_swap_duplicate_index_found");

    // Renaming onto an existing index fails as Meilisearch's task does, touching no node.
    let r = control(
        sock,
        "PATCH",
        "/indexes/movies",
        Some(&json!({"uid": "films"})),
    );
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let t = wait_miroir_task(sock, r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(t["status"], "failed");
    assert_eq!(t["error"]["message"], "Index `films` already exists.");
    assert_eq!(
        serde_json::to_string(&t["details"]).unwrap(),
        r#"{"primaryKey":null,"oldIndexUid":"movies","newIndexUid":"films"}"#
    );
    for n in &c.nodes {
        assert_eq!(node(&n.url(), "GET", "/indexes/movies", None).status, 200);
    }

    // A deletion by ids carries `originalFilter: null`.
    let mut node_tasks = Vec::new();
    for (i, n) in c.nodes.iter().enumerate() {
        let r = node(
            &n.url(),
            "POST",
            "/indexes/movies/documents/delete-batch",
            Some(&json!([1, 2])),
        );
        assert_eq!(r.status, 202);
        node_tasks.push(json!({"node": format!("meili-{i}"), "taskUid": r.json()["taskUid"]}));
    }
    let r = control(
        sock,
        "POST",
        "/_internal/v1/tasks",
        Some(&json!({"indexUid": "movies", "type": "documentDeletion",
            "details": {"providedIds": 2, "deletedDocuments": null}, "nodeTasks": node_tasks})),
    );
    let t = wait_miroir_task(sock, r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(
        serde_json::to_string(&t["details"]).unwrap(),
        r#"{"providedIds":2,"deletedDocuments":0,"originalFilter":null}"#
    );

    // Immutable key fields are refused before any node is touched.
    let search = control(sock, "GET", "/keys", None).json()["results"][0].clone();
    let uid = search["uid"].as_str().unwrap();
    assert_eq!(
        error(
            control(
                sock,
                "PATCH",
                &format!("/keys/{uid}"),
                Some(&json!({"actions": ["*"]}))
            ),
            400
        ),
        (
            "immutable_api_key_actions".into(),
            "Immutable field `actions`: expected one of `description`, `name`".into()
        )
    );
    for n in &c.nodes {
        let k = eventually("the default key on the node", || {
            let r = node(&n.url(), "GET", &format!("/keys/{uid}"), None);
            (r.status == 200).then(|| r.json())
        });
        assert_eq!(k["actions"], json!(["search"]), "{k}");
    }
}

#[test]
fn a_failed_task_registration_is_failed_at_once_with_the_given_error() {
    let c = cluster(1);
    let error = json!({"message": "Document doesn't have a `id` attribute: `{\"title\":\"x\"}`.",
        "code": "missing_document_id", "type": "invalid_request",
        "link": "https://docs.meilisearch.com/errors#missing_document_id"});
    let r = control(
        &c.admin.socket,
        "POST",
        "/_internal/v1/tasks/failed",
        Some(
            &json!({"indexUid": "movies", "type": "documentAdditionOrUpdate",
            "details": {"receivedDocuments": 2, "indexedDocuments": 0}, "error": error,
            "customMetadata": "cm"}),
        ),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let s = r.json();
    // Meilisearch's 202: the summarized task, enqueued.
    assert_eq!(
        (
            s["indexUid"].clone(),
            s["status"].clone(),
            s["type"].clone()
        ),
        (
            json!("movies"),
            json!("enqueued"),
            json!("documentAdditionOrUpdate")
        )
    );
    let uid = s["taskUid"].as_u64().unwrap();
    // Failed by the time the answer left: the first poll sees it.
    let t = control(&c.admin.socket, "GET", &format!("/tasks/{uid}"), None).json();
    assert_eq!(t["status"], "failed", "{t}");
    assert_eq!(t["error"], error);
    assert_eq!(
        t["details"],
        json!({"receivedDocuments": 2, "indexedDocuments": 0})
    );
    assert_eq!(t["batchUid"], json!(uid));
    assert_eq!(t["customMetadata"], "cm");
    for k in ["enqueuedAt", "startedAt", "finishedAt"] {
        assert!(is_rfc3339_with_fraction(t[k].as_str().unwrap()), "{k}: {t}");
    }
    assert!(t["duration"].as_str().unwrap().starts_with("PT"), "{t}");
    // The next task uid follows densely.
    let r = control(
        &c.admin.socket,
        "POST",
        "/_internal/v1/tasks/failed",
        Some(&json!({"indexUid": "movies", "type": "documentAdditionOrUpdate", "error": error})),
    );
    assert_eq!(r.json()["taskUid"].as_u64(), Some(uid + 1));
    // A body without an error is not a failed task.
    let r = control(
        &c.admin.socket,
        "POST",
        "/_internal/v1/tasks/failed",
        Some(&json!({"indexUid": "movies", "type": "documentAdditionOrUpdate"})),
    );
    assert_eq!(r.status, 400, "{}", r.text());
}
