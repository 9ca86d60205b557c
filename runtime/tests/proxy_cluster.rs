//! Issue 5 acceptance, end to end: real `miroir-testnode`s, the real `miroir-admin` and the
//! real `miroir-dataplane`, talking HTTP on loopback.

mod proxy_support;

use miroir_core::routing::{shard_for_key, ShardMap};
use miroir_core::topology::{Node, NodeStatus, Topology};
use miroir_core::{GroupId, NodeId};
use miroir_testkit::tenant_token;
use proxy_support::{start_node, Cluster, Layout, TestNode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// A keyword no other word of the corpus starts with and too short for typos (< 5 chars):
/// `z` + three letters.
fn keyword(i: usize) -> String {
    let l = |n: usize| (b'a' + (n % 26) as u8) as char;
    format!("z{}{}{}", l(i / 676), l(i / 26), l(i))
}

const COLORS: [&str; 3] = ["red", "green", "blue"];

fn doc(i: usize) -> Value {
    // 3001 is prime: `rank` is unique for i < 3001, so sorted orders are total.
    json!({"id": i, "kw": keyword(i), "color": COLORS[i % 3], "rank": (i * 7) % 3001, "title": format!("doc {i}")})
}

/// The id as Miroir routes it (integer ids canonicalise to decimal).
fn id_key(d: &Value) -> String {
    match &d["id"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Which node (index into `cluster.nodes`) owns each id in group `g`, per PRODUCT.md §1.
fn expected_owner(c: &Cluster, shards: u32, rf: u32, id: &str, group: u32) -> Vec<usize> {
    let nodes = c.ids.iter().zip(&c.groups).map(|(id, g)| Node {
        id: NodeId::new(id),
        address: String::new(),
        replica_group: GroupId(*g),
        status: NodeStatus::Active,
    });
    let groups = c.groups.iter().max().unwrap() + 1;
    let topo = Topology::new(rf, groups, nodes).unwrap();
    let map = ShardMap::new(&topo, shards);
    map.owners(GroupId(group), shard_for_key(id, shards))
        .iter()
        .map(|n| c.ids.iter().position(|x| x == n.as_str()).unwrap())
        .collect()
}

fn add(c: &Cluster, index: &str, content_type: &str, body: Vec<u8>) -> Value {
    let r = c.call_raw(
        "POST",
        &format!("/indexes/{index}/documents"),
        content_type,
        body,
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let task = r.json();
    assert_eq!(
        task.as_object().unwrap().len(),
        5,
        "summarized task shape: {task}"
    );
    let done = c.wait_task(task["taskUid"].as_u64().unwrap());
    assert_eq!(done["status"], "succeeded", "{done}");
    done
}

fn node_ids(node: &TestNode, index: &str) -> BTreeSet<String> {
    let r = node.call(
        "GET",
        &format!("/indexes/{index}/documents?limit=100000&fields=id,_miroir_shard"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_key)
        .collect()
}

fn hit_ids(v: &Value) -> Vec<String> {
    v["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("no hits in {v}"))
        .iter()
        .map(id_key)
        .collect()
}

#[test]
fn writes_route_reads_merge_and_bad_batches_touch_nothing() {
    let shards = 16;
    let c = Cluster::start(
        "main",
        Layout {
            shards,
            ..Layout::default()
        },
    );
    let expect = if monoio::utils::detect_uring() {
        "io_uring"
    } else {
        "epoll"
    };
    assert_eq!(
        c.io_backend(),
        expect,
        "io: auto picks io_uring when the kernel allows it"
    );
    let settings = json!({"filterableAttributes": ["color"], "sortableAttributes": ["rank"]});
    c.create_index("docs", settings.clone());

    // 1 000 documents in each format: JSON (integer ids), NDJSON (string ids), CSV.
    let json_docs: Vec<Value> = (0..1000).map(doc).collect();
    add(
        &c,
        "docs",
        "application/json",
        serde_json::to_vec(&json_docs).unwrap(),
    );
    let mut nd = Vec::new();
    let mut all: Vec<Value> = json_docs.clone();
    for i in 1000..2000 {
        let mut d = doc(i);
        d["id"] = json!(format!("s{i}"));
        nd.extend_from_slice(d.to_string().as_bytes());
        nd.push(b'\n');
        all.push(d);
    }
    add(&c, "docs", "application/x-ndjson", nd);
    let mut csv = String::from("id,kw,color,rank:number,title\n");
    for i in 2000..3000 {
        let d = doc(i);
        csv.push_str(&format!(
            "{i},{},{},{},{}\n",
            d["kw"].as_str().unwrap(),
            d["color"].as_str().unwrap(),
            d["rank"],
            d["title"].as_str().unwrap()
        ));
        all.push(d);
    }
    add(&c, "docs", "text/csv", csv.into_bytes());

    // Every document is on exactly the node the routing names, and only there.
    let mut expected: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for d in &all {
        let id = id_key(d);
        for owner in expected_owner(&c, shards, 1, &id, 0) {
            expected.entry(owner).or_default().insert(id.clone());
        }
    }
    for (i, node) in c.nodes.iter().enumerate() {
        assert_eq!(
            node_ids(node, "docs"),
            expected.remove(&i).unwrap_or_default(),
            "node {}",
            c.ids[i]
        );
    }

    // Each document is retrievable through Miroir by id, without reserved fields.
    for d in &all {
        let id = id_key(d);
        let r = c.call("GET", &format!("/indexes/docs/documents/{id}"), None);
        assert_eq!(r.status, 200, "{id}: {}", r.text());
        let got = r.json();
        assert_eq!(id_key(&got), id);
        assert!(got.get("_miroir_shard").is_none(), "{got}");
    }

    // A unique keyword finds its document exactly once.
    for (i, d) in all.iter().enumerate() {
        let r = c.call(
            "POST",
            "/indexes/docs/search",
            Some(&json!({"q": keyword(i)})),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            hit_ids(&r.json()),
            vec![id_key(d)],
            "keyword {}",
            keyword(i)
        );
    }

    // Facet counts over the three colours add up to the corpus.
    let r = c.call(
        "POST",
        "/indexes/docs/search",
        Some(&json!({"q": "", "facets": ["color"], "limit": 0})),
    );
    let dist = r.json()["facetDistribution"]["color"].clone();
    let total: u64 = dist
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 3000, "{dist}");
    assert!(r.json()["facetDistribution"].get("_miroir_shard").is_none());

    // Five pages of ten equal one page of fifty (unsorted and sorted).
    for sort in [None, Some(json!(["rank:asc"]))] {
        let page = |offset: usize, limit: usize| {
            let mut q = json!({"q": "doc", "offset": offset, "limit": limit});
            if let Some(s) = &sort {
                q["sort"] = s.clone();
            }
            hit_ids(&c.call("POST", "/indexes/docs/search", Some(&q)).json())
        };
        let fifty = page(0, 50);
        let tens: Vec<String> = (0..5).flat_map(|p| page(p * 10, 10)).collect();
        assert_eq!(fifty.len(), 50);
        assert_eq!(tens, fifty, "sort {sort:?}");
    }

    // Sorted pages equal one node holding the whole corpus.
    let dir = std::env::temp_dir().join(format!("miroir-proxy-ref-{}", std::process::id()));
    let reference = start_node(&dir, "reference");
    let r = reference.call(
        "POST",
        "/indexes",
        Some(&json!({"uid": "docs", "primaryKey": "id"})),
    );
    assert_eq!(r.status, 202);
    reference.call("PATCH", "/indexes/docs/settings", Some(&settings));
    let r = reference.call(
        "POST",
        "/indexes/docs/documents",
        Some(&Value::Array(all.clone())),
    );
    let uid = r.json()["taskUid"].as_u64().unwrap();
    proxy_support::wait_until("reference indexing", || {
        reference.call("GET", &format!("/tasks/{uid}"), None).json()["status"] == "succeeded"
    });
    for (sort, offset) in [("rank:asc", 0), ("rank:desc", 40), ("rank:asc", 990)] {
        let q = json!({"q": "doc", "sort": [sort], "offset": offset, "limit": 20});
        let want = hit_ids(
            &reference
                .call("POST", "/indexes/docs/search", Some(&q))
                .json(),
        );
        let got = hit_ids(&c.call("POST", "/indexes/docs/search", Some(&q)).json());
        assert_eq!(got, want, "{q}");
    }
    drop(reference);
    let _ = std::fs::remove_dir_all(&dir);

    // Bad batches: a reserved field is 400, a missing id a failed task (as Meilisearch's,
    // docs/contract.md#primary-key); either way nothing is written anywhere.
    let before: Vec<usize> = c.nodes.iter().map(|n| node_ids(n, "docs").len()).collect();
    let r = c.call(
        "POST",
        "/indexes/docs/documents",
        Some(&json!([{"id": 5001, "_miroir_shard": 3}])),
    );
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (400, json!("miroir_reserved_field")),
        "{}",
        r.text()
    );
    let r = c.call(
        "POST",
        "/indexes/docs/documents",
        Some(&json!([{"id": 5000, "title": "ok"}, {"title": "no id"}])),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let task = c.wait_task(r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(
        (task["status"].clone(), task["error"]["code"].clone()),
        (json!("failed"), json!("missing_document_id")),
        "{task}"
    );
    let after: Vec<usize> = c.nodes.iter().map(|n| node_ids(n, "docs").len()).collect();
    assert_eq!(before, after);

    // Deletes: by id (routed), then by filter (broadcast).
    let r = c.call("DELETE", "/indexes/docs/documents/7", None);
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(
        c.wait_task(r.json()["taskUid"].as_u64().unwrap())["status"],
        "succeeded"
    );
    assert_eq!(c.call("GET", "/indexes/docs/documents/7", None).status, 404);
    let r = c.call(
        "POST",
        "/indexes/docs/documents/delete",
        Some(&json!({"filter": "color = red"})),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(
        c.wait_task(r.json()["taskUid"].as_u64().unwrap())["status"],
        "succeeded"
    );
    let r = c.call(
        "POST",
        "/indexes/docs/search",
        Some(&json!({"q": "", "facets": ["color"], "limit": 0})),
    );
    assert!(
        r.json()["facetDistribution"]["color"].get("red").is_none(),
        "{}",
        r.text()
    );

    // Document listing: global offset/limit over all nodes.
    let r = c.call("GET", "/indexes/docs/documents?offset=10&limit=25", None);
    let v = r.json();
    assert_eq!(v["results"].as_array().unwrap().len(), 25, "{v}");
    assert_eq!(v["total"], json!(1999));
    assert!(!r.text().contains("_miroir_"));

    // An empty batch reaches no node, yet its task settles (it once stayed enqueued) with
    // Meilisearch's zero counts, and carries the client's customMetadata.
    let r = c.call_raw(
        "POST",
        "/indexes/docs/documents?customMetadata=empty%20one",
        "application/json",
        b"[]".to_vec(),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["customMetadata"], "empty one");
    let done = c.wait_task(r.json()["taskUid"].as_u64().unwrap());
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["details"],
        json!({"receivedDocuments": 0, "indexedDocuments": 0})
    );
    assert_eq!(done["customMetadata"], "empty one");
}

#[test]
fn replica_groups_fail_over_and_quorum_is_enforced() {
    let mut c = Cluster::start(
        "rg2",
        Layout {
            groups: 2,
            per_group: 2,
            shards: 8,
            ..Layout::default()
        },
    );
    c.create_index("g", json!({}));
    let docs: Vec<Value> = (0..100).map(doc).collect();
    add(
        &c,
        "g",
        "application/json",
        serde_json::to_vec(&docs).unwrap(),
    );

    // Group 1 goes down.
    c.nodes[2].kill();
    c.nodes[3].kill();
    let r = c.call(
        "POST",
        "/indexes/g/documents",
        Some(&json!([{"id": 500, "title": "doc late"}])),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let degraded = r
        .header("x-miroir-degraded")
        .expect("degraded write")
        .to_string();
    assert!(degraded.starts_with("groups=1;shards="), "{degraded}");
    // Searches are served by group 0 alone, complete and not degraded (both round-robin turns).
    for _ in 0..4 {
        let r = c.call(
            "POST",
            "/indexes/g/search",
            Some(&json!({"q": "doc", "limit": 200})),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.header("x-miroir-degraded").is_none());
        let ids = hit_ids(&r.json());
        assert_eq!(ids.len(), 101);
        assert_eq!(
            ids.iter().collect::<BTreeSet<_>>().len(),
            101,
            "no duplicates"
        );
    }

    // Both groups down: no quorum.
    c.nodes[0].kill();
    c.nodes[1].kill();
    let r = c.call("POST", "/indexes/g/documents", Some(&json!([{"id": 501}])));
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (503, json!("miroir_no_quorum")),
        "{}",
        r.text()
    );
    let r = c.call("POST", "/indexes/g/search", Some(&json!({"q": "doc"})));
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (503, json!("miroir_shard_unavailable"))
    );
}

#[test]
fn rf2_loses_a_node_without_losing_results() {
    let mut c = Cluster::start(
        "rf2",
        Layout {
            per_group: 3,
            rf: 2,
            shards: 8,
            ..Layout::default()
        },
    );
    c.create_index("r", json!({}));
    let docs: Vec<Value> = (0..100).map(doc).collect();
    add(
        &c,
        "r",
        "application/json",
        serde_json::to_vec(&docs).unwrap(),
    );
    // With RF=2 every node holds some shards twice over: unfiltered fan-out would duplicate.
    let r = c.call(
        "POST",
        "/indexes/r/search",
        Some(&json!({"q": "doc", "limit": 200})),
    );
    assert_eq!(hit_ids(&r.json()).len(), 100);
    c.nodes[1].kill();
    for _ in 0..3 {
        let r = c.call(
            "POST",
            "/indexes/r/search",
            Some(&json!({"q": "doc", "limit": 200})),
        );
        assert_eq!(r.status, 200);
        assert!(r.header("x-miroir-degraded").is_none());
        let ids = hit_ids(&r.json());
        assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 100);
        assert_eq!(ids.len(), 100);
    }
    for d in &docs {
        let r = c.call("GET", &format!("/indexes/r/documents/{}", id_key(d)), None);
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

#[test]
fn a_slow_node_costs_one_timeout_not_a_stuck_core() {
    let c = Cluster::start(
        "slow",
        Layout {
            groups: 2,
            per_group: 1,
            shards: 4,
            node_timeout_ms: 300,
            ..Layout::default()
        },
    );
    c.create_index("s", json!({}));
    let docs: Vec<Value> = (0..20).map(doc).collect();
    add(
        &c,
        "s",
        "application/json",
        serde_json::to_vec(&docs).unwrap(),
    );
    // Group 0's only node answers searches after 3 s (10× the node timeout).
    let r = c.nodes[0].call(
        "POST",
        "/_testnode/faults",
        Some(&json!({"rules": [{"route": "/indexes/s/search", "latencyMs": 3000}]})),
    );
    assert!(r.status < 300, "{}", r.text());
    let proxy = c.proxy.clone();
    let slow = std::thread::spawn(move || {
        (0..2)
            .map(|_| {
                let r = proxy_support::http(
                    &proxy,
                    "POST",
                    "/indexes/s/search",
                    &[("authorization", "Bearer client-master-key")],
                    Some(("application/json", br#"{"q":"doc","limit":50}"#.to_vec())),
                );
                (
                    r.status,
                    r.json()["hits"].as_array().map_or(0, Vec::len),
                    r.header("x-miroir-degraded").map(str::to_owned),
                )
            })
            .collect::<Vec<_>>()
    });
    // Meanwhile the same cores keep answering.
    for _ in 0..20 {
        assert_eq!(c.call("GET", "/health", None).status, 200);
    }
    for (status, hits, degraded) in slow.join().unwrap() {
        // The slow node's shards were retried on group 1: complete, not degraded.
        assert_eq!((status, hits, degraded), (200, 20, None));
    }
}

#[test]
fn forced_epoll_serves_compressed_writes_facets_multi_search_and_auth() {
    let c = Cluster::start(
        "epoll",
        Layout {
            io: "epoll",
            shards: 8,
            ..Layout::default()
        },
    );
    assert_eq!(c.io_backend(), "epoll");
    c.create_index("e", json!({"filterableAttributes": ["color"]}));

    // A gzip-compressed NDJSON write is decoded, routed and indexed.
    let mut nd = Vec::new();
    for i in 0..200 {
        nd.extend_from_slice(doc(i).to_string().as_bytes());
        nd.push(b'\n');
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &nd).unwrap();
    let body = gz.finish().unwrap();
    let r = proxy_support::http(
        &c.proxy,
        "POST",
        "/indexes/e/documents",
        &[
            ("authorization", "Bearer client-master-key"),
            ("content-encoding", "gzip"),
        ],
        Some(("application/x-ndjson", body)),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(
        c.wait_task(r.json()["taskUid"].as_u64().unwrap())["status"],
        "succeeded"
    );
    let r = c.call(
        "POST",
        "/indexes/e/search",
        Some(&json!({"q": keyword(123)})),
    );
    assert_eq!(hit_ids(&r.json()), vec!["123".to_string()]);

    // Facet search: counts summed over nodes.
    let r = c.call(
        "POST",
        "/indexes/e/facet-search",
        Some(&json!({"facetName": "color", "facetQuery": ""})),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let hits = r.json()["facetHits"].as_array().unwrap().clone();
    let sum: u64 = hits.iter().map(|h| h["count"].as_u64().unwrap()).sum();
    assert_eq!(sum, 200, "{hits:?}");

    // Multi-search, plain and federated.
    let r = c.call("POST", "/multi-search", Some(&json!({"queries": [{"indexUid": "e", "q": keyword(5)}, {"indexUid": "e", "q": keyword(6)}]})));
    let v = r.json();
    assert_eq!(hit_ids(&v["results"][0]), vec!["5"]);
    assert_eq!(hit_ids(&v["results"][1]), vec!["6"]);
    assert_eq!(v["results"][1]["indexUid"], "e");
    let r = c.call("POST", "/multi-search", Some(&json!({"federation": {}, "queries": [{"indexUid": "e", "q": keyword(5)}, {"indexUid": "e", "q": keyword(6)}]})));
    let v = r.json();
    let mut ids = hit_ids(&v);
    ids.sort();
    assert_eq!(ids, vec!["5", "6"], "{v}");
    assert!(v["hits"][0]["_federation"]["indexUid"] == "e");

    // Auth as one Meilisearch: no header 401, unknown key 403; admin key for /_miroir/metrics.
    let r = proxy_support::http(
        &c.proxy,
        "POST",
        "/indexes/e/search",
        &[],
        Some(("application/json", b"{}".to_vec())),
    );
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (401, json!("missing_authorization_header"))
    );
    let r = proxy_support::http(
        &c.proxy,
        "GET",
        "/indexes/e/documents/1",
        &[("authorization", "Bearer nope")],
        None,
    );
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (403, json!("invalid_api_key"))
    );
    let r = proxy_support::http(
        &c.proxy,
        "GET",
        "/_miroir/metrics",
        &[("authorization", "Bearer admin-key")],
        None,
    );
    assert_eq!(r.status, 200);
    assert!(r.text().contains("miroir_"), "{}", r.text());
    let r = proxy_support::http(&c.proxy, "GET", "/_miroir/metrics", &[], None);
    assert_eq!(r.status, 401);
    let r = c.call("GET", "/version", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["pkgVersion"].is_string());
    // Health needs no key.
    let r = proxy_support::http(&c.proxy, "GET", "/health", &[], None);
    assert_eq!((r.status, r.json()), (200, json!({"status": "available"})));
}

#[test]
fn api_keys_and_tenant_tokens_work_end_to_end() {
    let c = Cluster::start(
        "keys",
        Layout {
            shards: 8,
            ..Layout::default()
        },
    );
    c.create_index("t", json!({"filterableAttributes": ["color"]}));
    let docs: Vec<Value> = (0..30).map(doc).collect();
    add(
        &c,
        "t",
        "application/json",
        serde_json::to_vec(&docs).unwrap(),
    );
    let r = c.call(
        "POST",
        "/keys",
        Some(&json!({"actions": ["search"], "indexes": ["t"], "expiresAt": null})),
    );
    assert!(r.status == 201 || r.status == 200, "{}", r.text());
    let created = r.json();
    let (key, uid) = (
        created["key"].as_str().unwrap().to_string(),
        created["uid"].as_str().unwrap().to_string(),
    );
    let search = |bearer: &str, body: &str| {
        proxy_support::http(
            &c.proxy,
            "POST",
            "/indexes/t/search",
            &[("authorization", &format!("Bearer {bearer}"))],
            Some(("application/json", body.as_bytes().to_vec())),
        )
    };
    // The key reaches the data plane through the next snapshot.
    proxy_support::wait_until("key in the snapshot", || search(&key, "{}").status == 200);
    let r = proxy_support::http(
        &c.proxy,
        "GET",
        "/indexes/t/documents/1",
        &[("authorization", &format!("Bearer {key}"))],
        None,
    );
    assert_eq!(r.status, 403, "a search key cannot read documents");

    // A tenant token signed with that key searches only what its rule's filter allows.
    let token = tenant_token(
        &key,
        &json!({"apiKeyUid": uid, "searchRules": {"t": {"filter": "color = red"}}}),
    );
    let r = search(&token, r#"{"q":"doc","limit":100}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let ids = hit_ids(&r.json());
    assert_eq!(ids.len(), 10, "{ids:?}");
    assert!(
        ids.iter().all(|id| id.parse::<usize>().unwrap() % 3 == 0),
        "only red documents: {ids:?}"
    );
    let bad = tenant_token(
        "not-the-key",
        &json!({"apiKeyUid": uid, "searchRules": ["*"]}),
    );
    assert_eq!(search(&bad, "{}").status, 403);
}
