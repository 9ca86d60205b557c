//! The proxy's dispatch logic against an in-memory [`Upstreams`] fake: every node and the
//! admin are closures, every call is recorded. These tests cover what the pure unit tests
//! cannot: that planning, dispatch, retries, quorum and relaying compose correctly.

use super::*;
use crate::http::types::UpstreamError;
use miroir_core::snapshot::ApiKey;
use miroir_core::topology::{Node, NodeStatus};
use serde_json::{json, Value};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};

type NodeFn = Box<dyn Fn(&str, &Request) -> Result<Response, UpstreamError>>;
type AdminFn = Box<dyn Fn(&Request) -> Result<Response, UpstreamError>>;

struct Fake {
    calls: RefCell<Vec<(String, Request)>>,
    node: NodeFn,
    admin: AdminFn,
}

impl Upstreams for Fake {
    fn node(
        &self,
        address: &str,
        req: Request,
        _t: Duration,
    ) -> impl Future<Output = Result<Response, UpstreamError>> {
        let r = (self.node)(address, &req);
        self.calls.borrow_mut().push((address.to_owned(), req));
        std::future::ready(r)
    }

    fn admin(
        &self,
        req: Request,
        _t: Duration,
    ) -> impl Future<Output = Result<Response, UpstreamError>> {
        let r = (self.admin)(&req);
        self.calls.borrow_mut().push(("admin".to_owned(), req));
        std::future::ready(r)
    }

    /// No timer outside a monoio runtime: waits end at once.
    fn sleep(&self, _d: Duration) -> impl Future<Output = ()> {
        std::future::ready(())
    }
}

/// The fakes answer synchronously, so a few polls always finish the future.
fn block_on<F: Future>(f: F) -> F::Output {
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    for _ in 0..1000 {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("future did not complete against synchronous fakes");
}

fn meta(uid: &str, shards: u32) -> IndexMeta {
    IndexMeta {
        uid: uid.into(),
        primary_key: Some("id".into()),
        shards,
        fields: vec!["id".into(), "title".into()],
        searchable_wildcard: true,
        displayed_wildcard: true,
        ranking_rules: vec![],
        max_values_per_facet: 100,
        sort_facet_values_by: Default::default(),
        max_total_hits: 1000,
        created_at: String::new(),
        updated_at: String::new(),
        distinct_attribute: None,
        foreign_keys: Vec::new(),
        deleting: false,
    }
}

/// `groups` groups of `per_group` nodes `g{group}n{i}` at address `a-g{group}n{i}`.
fn snapshot(groups: u32, per_group: u32, rf: u32, shards: u32) -> Snapshot {
    let mut nodes = Vec::new();
    for g in 0..groups {
        for i in 0..per_group {
            nodes.push(Node {
                id: NodeId::new(format!("g{g}n{i}")),
                address: format!("a-g{g}n{i}"),
                replica_group: GroupId(g),
                status: NodeStatus::Active,
            });
        }
    }
    let mut snap = Snapshot {
        generation: 1,
        epoch: 1,
        replication_factor: rf,
        replica_groups: groups,
        nodes,
        ..Default::default()
    };
    snap.indexes.insert("m".into(), meta("m", shards));
    snap
}

fn ok(status: u16, body: Value) -> Result<Response, UpstreamError> {
    Ok(Response::json(status, serde_json::to_vec(&body).unwrap()))
}

/// A node that answers searches with two hits named after itself and writes with a task.
fn healthy_node(address: &str, req: &Request) -> Result<Response, UpstreamError> {
    if req.path.ends_with("/search") {
        let name = address.trim_start_matches("a-");
        return ok(
            200,
            json!({"hits":[{"id":format!("{name}-1"),"_miroir_shard":1,"_rankingScore":0.9},
                            {"id":format!("{name}-2"),"_rankingScore":0.5}],
                   "query":"q","processingTimeMs":1,"limit":20,"offset":0,"estimatedTotalHits":2}),
        );
    }
    if req.path.ends_with("/documents") || req.path.contains("/documents/") {
        return ok(
            202,
            json!({"taskUid":7,"indexUid":"m","status":"enqueued","type":"x","enqueuedAt":"t"}),
        );
    }
    ok(
        404,
        json!({"message":"nope","code":"not_found","type":"invalid_request","link":""}),
    )
}

fn admin_registers(req: &Request) -> Result<Response, UpstreamError> {
    if req.path == "/_internal/v1/ping" {
        return Ok(Response {
            status: 204,
            headers: vec![],
            body: Default::default(),
        });
    }
    if req.path == "/_internal/v1/tasks" {
        return ok(
            202,
            json!({"taskUid":1,"indexUid":"m","status":"enqueued","type":"documentAdditionOrUpdate","enqueuedAt":"2026-01-01T00:00:00.0Z"}),
        );
    }
    ok(200, json!({"forwarded": req.path}))
}

fn proxy(snap: Snapshot, config: Config, node: NodeFn, admin: AdminFn) -> Proxy<Fake> {
    let snap = Rc::new(snap);
    let fake = Fake {
        calls: RefCell::new(Vec::new()),
        node,
        admin,
    };
    Proxy::new(
        fake,
        Rc::new(config),
        Box::new(move || Some(snap.clone())),
        None,
    )
}

fn req(method: Method, path: &str, body: &str) -> Request {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    Request {
        method,
        path: path.into(),
        query: query.into(),
        headers: vec![("content-type".into(), b"application/json".to_vec())],
        body: body.as_bytes().to_vec(),
    }
}

fn body(resp: &Response) -> Value {
    serde_json::from_slice(&resp.body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&resp.body)))
}

fn calls_to(p: &Proxy<Fake>, needle: &str) -> Vec<(String, Request)> {
    p.up.calls
        .borrow()
        .iter()
        .filter(|(a, r)| a.contains(needle) || r.path.contains(needle))
        .cloned()
        .collect()
}

#[test]
fn health_needs_nothing_and_other_routes_need_a_snapshot() {
    let fake = Fake {
        calls: RefCell::new(vec![]),
        node: Box::new(healthy_node),
        admin: Box::new(admin_registers),
    };
    let p = Proxy::new(fake, Rc::new(Config::default()), Box::new(|| None), None);
    let r = block_on(p.handle(req(Method::Get, "/health", ""), "r"));
    assert_eq!((r.status, body(&r)), (200, json!({"status":"available"})));
    let r = block_on(p.handle(req(Method::Post, "/indexes/m/search", "{}"), "r"));
    assert_eq!(
        (r.status, body(&r)["code"].clone()),
        (503, json!("miroir_admin_unavailable"))
    );
}

#[test]
fn search_fans_out_once_per_node_and_merges() {
    // S = 64 so that every one of the 3 nodes owns shards.
    let p = proxy(
        snapshot(1, 3, 1, 64),
        Config::default(),
        Box::new(healthy_node),
        Box::new(admin_registers),
    );
    let r = block_on(p.handle(
        req(
            Method::Post,
            "/indexes/m/search",
            r#"{"q":"q","offset":1,"limit":2}"#,
        ),
        "r",
    ));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let b = body(&r);
    assert_eq!(b["hits"].as_array().unwrap().len(), 2);
    assert_eq!(b["estimatedTotalHits"], json!(6));
    assert_eq!(
        (b["offset"].clone(), b["limit"].clone()),
        (json!(1), json!(2))
    );
    // Reserved fields and unrequested scores are gone.
    for h in b["hits"].as_array().unwrap() {
        assert!(
            h.get("_miroir_shard").is_none() && h.get("_rankingScore").is_none(),
            "{h}"
        );
    }
    let calls = calls_to(&p, "/search");
    assert_eq!(calls.len(), 3, "one request per node");
    for (_, c) in &calls {
        let nb: Value = serde_json::from_slice(&c.body).unwrap();
        assert_eq!(
            (nb["offset"].clone(), nb["limit"].clone()),
            (json!(0), json!(3))
        );
        assert_eq!(nb["showRankingScore"], json!(true));
        assert!(nb.get("filter").is_none(), "RF=1 needs no shard filter");
        assert!(
            c.header("authorization").is_none(),
            "no node key configured"
        );
    }
    assert!(r.header("x-miroir-degraded").is_none());
}

#[test]
fn rf2_requests_carry_shard_filters_and_cover_each_shard_once() {
    let p = proxy(
        snapshot(1, 3, 2, 8),
        Config::default(),
        Box::new(healthy_node),
        Box::new(admin_registers),
    );
    let r = block_on(p.handle(
        req(Method::Post, "/indexes/m/search", r#"{"filter":"a = 1"}"#),
        "r",
    ));
    assert_eq!(r.status, 200);
    let mut seen = Vec::new();
    for (_, c) in calls_to(&p, "/search") {
        let nb: Value = serde_json::from_slice(&c.body).unwrap();
        let f = nb["filter"].as_array().expect("array filter").clone();
        assert_eq!(f[1], json!("a = 1"));
        let clause = f[0].as_str().unwrap();
        let list = clause
            .trim_start_matches("_miroir_shard IN [")
            .trim_end_matches(']');
        seen.extend(list.split(", ").map(|s| {
            miroir_core::documents::parse_shard_token(s.trim_matches('"'))
                .unwrap()
                .0
        }));
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..8).collect::<Vec<_>>());
}

#[test]
fn failed_group_falls_back_to_the_other_group_without_degrading() {
    let node: NodeFn = Box::new(|a: &str, r: &Request| {
        if a.starts_with("a-g0") {
            Err(UpstreamError::Connect("down".into()))
        } else {
            healthy_node(a, r)
        }
    });
    let p = proxy(
        snapshot(2, 2, 1, 8),
        Config::default(),
        node,
        Box::new(admin_registers),
    );
    for _ in 0..2 {
        let r = block_on(p.handle(req(Method::Post, "/indexes/m/search", "{}"), "r"));
        assert_eq!(r.status, 200);
        assert!(r.header("x-miroir-degraded").is_none());
        assert_eq!(body(&r)["estimatedTotalHits"], json!(4));
    }
}

#[test]
fn unavailable_shards_follow_the_policy() {
    let node: NodeFn = Box::new(|a: &str, r: &Request| {
        if a == "a-g0n0" {
            Err(UpstreamError::Timeout)
        } else {
            healthy_node(a, r)
        }
    });
    let p = proxy(
        snapshot(1, 2, 1, 8),
        Config::default(),
        node,
        Box::new(admin_registers),
    );
    let r = block_on(p.handle(req(Method::Post, "/indexes/m/search", "{}"), "r"));
    assert_eq!(r.status, 200);
    let d = String::from_utf8(r.header("x-miroir-degraded").unwrap().to_vec()).unwrap();
    assert!(d.starts_with("shards="), "{d}");
    assert_eq!(body(&r)["estimatedTotalHits"], json!(2));

    let mut config = Config::default();
    config.scatter.unavailable_shard_policy = UnavailableShardPolicy::Error;
    let node: NodeFn = Box::new(|a: &str, r: &Request| {
        if a == "a-g0n0" {
            Err(UpstreamError::Timeout)
        } else {
            healthy_node(a, r)
        }
    });
    let p = proxy(
        snapshot(1, 2, 1, 8),
        config,
        node,
        Box::new(admin_registers),
    );
    let r = block_on(p.handle(req(Method::Post, "/indexes/m/search", "{}"), "r"));
    assert_eq!(
        (r.status, body(&r)["code"].clone()),
        (503, json!("miroir_shard_unavailable"))
    );
}

#[test]
fn node_client_errors_are_relayed_verbatim() {
    let err = json!({"message":"Attribute `x` is not filterable.","code":"invalid_search_filter","type":"invalid_request","link":"l"});
    let e2 = err.clone();
    let node: NodeFn = Box::new(move |_: &str, _: &Request| ok(400, e2.clone()));
    let p = proxy(
        snapshot(1, 3, 1, 8),
        Config::default(),
        node,
        Box::new(admin_registers),
    );
    let r = block_on(p.handle(
        req(Method::Post, "/indexes/m/search", r#"{"filter":"x = 1"}"#),
        "r",
    ));
    assert_eq!((r.status, body(&r)), (400, err));
}

#[test]
fn unreadable_queries_are_delegated_to_one_node() {
    let p = proxy(
        snapshot(1, 3, 1, 8),
        Config::default(),
        Box::new(|_: &str, _: &Request| ok(400, json!({"code":"bad_request"}))),
        Box::new(admin_registers),
    );
    let r = block_on(p.handle(
        req(Method::Post, "/indexes/m/search", r#"{"limit":"x"}"#),
        "r",
    ));
    assert_eq!(r.status, 400);
    let calls = calls_to(&p, "/search");
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].1.body,
        br#"{"limit":"x"}"#.to_vec(),
        "sent verbatim"
    );
}

#[test]
fn unknown_index_is_meilisearch_404() {
    let p = proxy(
        snapshot(1, 1, 1, 4),
        Config::default(),
        Box::new(healthy_node),
        Box::new(admin_registers),
    );
    let r = block_on(p.handle(req(Method::Post, "/indexes/nope/search", "{}"), "r"));
    let b = body(&r);
    assert_eq!(
        (r.status, b["code"].clone(), b["message"].clone()),
        (
            404,
            json!("index_not_found"),
            json!("Index `nope` not found.")
        )
    );
    assert!(p.up.calls.borrow().is_empty());
}

#[test]
fn write_reaches_every_group_and_registers_the_task() {
    let p = proxy(
        snapshot(2, 2, 1, 8),
        Config::default(),
        Box::new(healthy_node),
        Box::new(admin_registers),
    );
    let docs: Vec<Value> = (0..20)
        .map(|i| json!({"id": i, "title": format!("t{i}")}))
        .collect();
    let r = block_on(p.handle(
        req(
            Method::Post,
            "/indexes/m/documents",
            &serde_json::to_string(&docs).unwrap(),
        ),
        "r",
    ));
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(body(&r)["taskUid"], json!(1));
    assert!(r.header("x-miroir-degraded").is_none());
    let writes = calls_to(&p, "/indexes/m/documents");
    // Every document lands once per group.
    let mut per_group = [0usize; 2];
    for (addr, c) in &writes {
        assert_eq!(c.query, "primaryKey=id");
        let n = serde_json::from_slice::<Vec<Value>>(&c.body).unwrap().len();
        per_group[if addr.starts_with("a-g0") { 0 } else { 1 }] += n;
    }
    assert_eq!(per_group, [20, 20]);
    let reg = calls_to(&p, "/_internal/v1/tasks");
    assert_eq!(reg.len(), 1);
    let rb: Value = serde_json::from_slice(&reg[0].1.body).unwrap();
    assert_eq!(rb["type"], json!("documentAdditionOrUpdate"));
    assert_eq!(rb["details"]["receivedDocuments"], json!(20));
    assert_eq!(rb["nodeTasks"].as_array().unwrap().len(), writes.len());
    assert_eq!(reg[0].1.header("miroir-control-version"), Some(&b"1"[..]));
}

#[test]
fn write_with_one_group_down_is_degraded_and_both_down_is_no_quorum() {
    let node: NodeFn = Box::new(|a: &str, r: &Request| {
        if a.starts_with("a-g1") {
            Err(UpstreamError::Connect("down".into()))
        } else {
            healthy_node(a, r)
        }
    });
    let p = proxy(
        snapshot(2, 2, 1, 8),
        Config::default(),
        node,
        Box::new(admin_registers),
    );
    let r = block_on(p.handle(
        req(
            Method::Post,
            "/indexes/m/documents",
            r#"[{"id":1},{"id":2},{"id":3}]"#,
        ),
        "r",
    ));
    assert_eq!(r.status, 202);
    let d = String::from_utf8(r.header("x-miroir-degraded").unwrap().to_vec()).unwrap();
    assert!(d.starts_with("groups=1;shards="), "{d}");
    let reg: Value =
        serde_json::from_slice(&calls_to(&p, "/_internal/v1/tasks")[0].1.body).unwrap();
    assert!(!reg["failedNodes"].as_array().unwrap().is_empty());

    let down: NodeFn = Box::new(|_: &str, _: &Request| Err(UpstreamError::Connect("down".into())));
    let p = proxy(
        snapshot(2, 2, 1, 8),
        Config::default(),
        down,
        Box::new(admin_registers),
    );
    let r = block_on(p.handle(
        req(Method::Post, "/indexes/m/documents", r#"[{"id":1}]"#),
        "r",
    ));
    assert_eq!(
        (r.status, body(&r)["code"].clone()),
        (503, json!("miroir_no_quorum"))
    );
    assert!(
        calls_to(&p, "/_internal/v1/tasks").is_empty(),
        "nothing registered"
    );
}

#[test]
fn bad_batches_touch_no_node() {
    let p = proxy(
        snapshot(1, 3, 1, 8),
        Config::default(),
        Box::new(healthy_node),
        Box::new(admin_registers),
    );
    // What Meilisearch refuses synchronously, and Miroir's reserved fields; key errors are
    // failed tasks (`key_errors_are_failed_tasks_and_touch_no_node`).
    for (b, code) in [
        (r#"[{"id":1,"_miroir_shard":3}]"#, "miroir_reserved_field"),
        ("[", "malformed_payload"),
    ] {
        let r = block_on(p.handle(req(Method::Post, "/indexes/m/documents", b), "r"));
        assert_eq!(
            (r.status, body(&r)["code"].clone()),
            (400, json!(code)),
            "{b}"
        );
    }
    let mut r = req(Method::Post, "/indexes/m/documents", "[]");
    r.headers.clear();
    let resp = block_on(p.handle(r, "r"));
    assert_eq!(
        (resp.status, body(&resp)["code"].clone()),
        (415, json!("missing_content_type"))
    );
    assert!(p.up.calls.borrow().is_empty());
}

#[test]
fn key_errors_are_failed_tasks_and_touch_no_node() {
    let admin: AdminFn = Box::new(|r: &Request| {
        if r.path == "/_internal/v1/tasks/failed" {
            return ok(
                202,
                json!({"taskUid":7,"indexUid":"m","status":"enqueued","type":"documentAdditionOrUpdate","enqueuedAt":"2026-01-01T00:00:00.0Z"}),
            );
        }
        admin_registers(r)
    });
    let p = proxy(
        snapshot(1, 3, 1, 8),
        Config::default(),
        Box::new(healthy_node),
        admin,
    );
    for (b, query, code, message) in [
        (
            r#"[{"id":1},{"title":"no id"}]"#,
            "",
            "missing_document_id",
            "Document doesn't have a `id` attribute: `{\"title\":\"no id\"}`.",
        ),
        (
            r#"[{"id":"bad id!"},{"id":2}]"#,
            "",
            "invalid_document_id",
            "Document identifier `\"bad id!\"` is invalid. A document identifier can be of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) and underscores (_), and can not be more than 511 bytes.",
        ),
        (
            r#"[{"sku":1},{"sku":2}]"#,
            "primaryKey=sku",
            "index_primary_key_already_exists",
            "Index already has a primary key: `id`.",
        ),
    ] {
        p.up.calls.borrow_mut().clear();
        let mut r = req(Method::Post, "/indexes/m/documents", b);
        r.query = format!("{query}&customMetadata=cm");
        let resp = block_on(p.handle(r, "r"));
        assert_eq!(resp.status, 202, "{b}: {}", String::from_utf8_lossy(&resp.body));
        assert_eq!(body(&resp)["taskUid"], 7);
        let calls = p.up.calls.borrow();
        // One admin call, no ping, no node.
        assert_eq!(calls.len(), 1, "{b}: {calls:?}");
        assert_eq!(calls[0].0, "admin");
        assert_eq!(calls[0].1.path, "/_internal/v1/tasks/failed");
        let reg =
            <miroir_core::control::FailedTaskRegistration as miroir_core::control::ControlMessage>::decode(&calls[0].1.body).unwrap();
        assert_eq!(reg.index_uid.as_deref(), Some("m"));
        assert_eq!(reg.task_type, "documentAdditionOrUpdate");
        assert_eq!(
            reg.details,
            json!({"receivedDocuments": 2, "indexedDocuments": 0})
        );
        assert_eq!((reg.error.code.as_str(), reg.error.message.as_str()), (code, message));
        assert_eq!(reg.error.error_type, "invalid_request");
        assert_eq!(
            reg.error.link,
            format!("https://docs.meilisearch.com/errors#{code}")
        );
        assert_eq!(reg.custom_metadata.as_deref(), Some("cm"));
    }
}

#[test]
fn a_failed_batch_on_an_unknown_index_creates_it_first_as_meilisearch_does() {
    let admin: AdminFn = Box::new(|r: &Request| {
        if r.path == "/_internal/v1/indexes/fresh/prepare-write" {
            let b: Value = serde_json::from_slice(&r.body).unwrap();
            // Created without a primary key: the failed addition sets none.
            assert_eq!(b["primaryKey"], Value::Null);
            assert_eq!(b["newFields"], json!([]));
            let mut m = meta("fresh", 4);
            m.primary_key = None;
            return ok(200, json!({"generation": 2, "index": m}));
        }
        if r.path == "/_internal/v1/tasks/failed" {
            return ok(202, json!({"taskUid": 3}));
        }
        admin_registers(r)
    });
    let p = proxy(
        snapshot(1, 2, 1, 8),
        Config::default(),
        Box::new(healthy_node),
        admin,
    );
    let r = block_on(p.handle(
        req(
            Method::Post,
            "/indexes/fresh/documents",
            r#"[{"title":"x"}]"#,
        ),
        "r",
    ));
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let calls = p.up.calls.borrow();
    let paths: Vec<&str> = calls.iter().map(|(_, c)| c.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/_internal/v1/indexes/fresh/prepare-write",
            "/_internal/v1/tasks/failed"
        ]
    );
    let reg = <miroir_core::control::FailedTaskRegistration as miroir_core::control::ControlMessage>::decode(&calls[1].1.body).unwrap();
    assert_eq!(reg.error.code, "index_primary_key_no_candidate_found");
    assert_eq!(reg.index_uid.as_deref(), Some("fresh"));
}

#[test]
fn a_failed_task_needs_the_admin_and_writes_nothing_without_it() {
    let admin: AdminFn = Box::new(|_: &Request| Err(UpstreamError::Connect("down".into())));
    let p = proxy(
        snapshot(1, 2, 1, 8),
        Config::default(),
        Box::new(healthy_node),
        admin,
    );
    let r = block_on(p.handle(
        req(Method::Post, "/indexes/m/documents", r#"[{"title":"x"}]"#),
        "r",
    ));
    assert_eq!(
        (r.status, body(&r)["code"].clone()),
        (503, json!("miroir_admin_unavailable"))
    );
    assert!(p.up.calls.borrow().iter().all(|(a, _)| a == "admin"));
}

#[test]
fn new_index_and_new_fields_go_through_prepare_write_first() {
    let admin: AdminFn = Box::new(|r: &Request| {
        if r.path == "/_internal/v1/indexes/fresh/prepare-write" {
            let b: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(b["primaryKey"], json!("sku_id"));
            assert_eq!(b["primaryKeySource"], json!("inferred"));
            assert_eq!(b["newFields"], json!(["sku_id", "name"]));
            let mut m = meta("fresh", 4);
            m.primary_key = Some("sku_id".into());
            m.fields = vec!["sku_id".into(), "name".into()];
            return ok(200, json!({"generation": 2, "index": m}));
        }
        admin_registers(r)
    });
    let p = proxy(
        snapshot(1, 2, 1, 8),
        Config::default(),
        Box::new(healthy_node),
        admin,
    );
    let r = block_on(p.handle(
        req(
            Method::Post,
            "/indexes/fresh/documents",
            r#"[{"sku_id":"a","name":"x"}]"#,
        ),
        "r",
    ));
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let calls = p.up.calls.borrow();
    assert!(
        calls[0].1.path.ends_with("/prepare-write"),
        "prepare-write comes first"
    );
    assert!(
        calls.iter().all(|(_, c)| c.path != "/_internal/v1/ping"),
        "prepare-write already proved the admin alive"
    );
    let write = calls
        .iter()
        .find(|(_, c)| c.path == "/indexes/fresh/documents")
        .unwrap();
    assert_eq!(write.1.query, "primaryKey=sku_id");
    let doc: Vec<Value> = serde_json::from_slice(&write.1.body).unwrap();
    // S = 4 from the admin's IndexMeta, not the 64 the data plane would have guessed.
    let token = doc[0]["_miroir_shard"].as_str().unwrap();
    assert!(miroir_core::documents::parse_shard_token(token).unwrap().0 < 4);
}

/// Every kind of write, on the known index `m`, plus one on an unknown index (which goes
/// through `prepare-write` instead of the ping).
fn every_write() -> Vec<Request> {
    vec![
        req(Method::Post, "/indexes/m/documents", r#"[{"id":1}]"#),
        req(Method::Put, "/indexes/m/documents", r#"[{"id":2}]"#),
        req(Method::Post, "/indexes/m/documents/delete-batch", "[1,2]"),
        req(Method::Delete, "/indexes/m/documents/1", ""),
        req(
            Method::Post,
            "/indexes/m/documents/delete",
            r#"{"filter":"id = 1"}"#,
        ),
        req(Method::Delete, "/indexes/m/documents", ""),
        req(Method::Post, "/indexes/fresh/documents", r#"[{"id":1}]"#),
    ]
}

#[test]
fn admin_down_refuses_writes_before_any_node_is_touched_and_recovers_at_once() {
    let up = Rc::new(Cell::new(false));
    let admin_up = up.clone();
    let admin: AdminFn = Box::new(move |r: &Request| {
        if !admin_up.get() {
            return Err(UpstreamError::Connect("no socket".into()));
        }
        if r.path == "/_internal/v1/indexes/fresh/prepare-write" {
            return ok(200, json!({"generation": 2, "index": meta("fresh", 8)}));
        }
        admin_registers(r)
    });
    let p = proxy(
        snapshot(2, 2, 1, 8),
        Config::default(),
        Box::new(healthy_node),
        admin,
    );
    let nodes_called = || {
        p.up.calls
            .borrow()
            .iter()
            .filter(|(a, _)| a != "admin")
            .count()
    };
    for w in every_write() {
        let what = format!("{:?} {}", w.method, w.path);
        let r = block_on(p.handle(w, "r"));
        assert_eq!(
            (r.status, body(&r)["code"].clone()),
            (503, json!("miroir_admin_unavailable")),
            "{what}"
        );
        assert_eq!(nodes_called(), 0, "{what} touched a node");
    }
    assert!(calls_to(&p, "/_internal/v1/tasks").is_empty());
    // Validation needs no admin: a refused batch is still the client's 400. (A batch whose
    // task fails needs the admin for that task: `a_failed_task_needs_the_admin…`.)
    let r = block_on(p.handle(
        req(
            Method::Post,
            "/indexes/m/documents",
            "[{\"id\":1,\"_miroir_shard\":1}]",
        ),
        "r",
    ));
    assert_eq!(r.status, 400);
    // Searches keep working from the snapshot.
    let r = block_on(p.handle(req(Method::Post, "/indexes/m/search", "{}"), "r"));
    assert_eq!(r.status, 200);

    // The admin is back: the very next write of every kind goes through (no back-off).
    up.set(true);
    for w in every_write() {
        let what = format!("{:?} {}", w.method, w.path);
        p.up.calls.borrow_mut().clear();
        let r = block_on(p.handle(w, "r"));
        assert_eq!(
            r.status,
            202,
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let calls = p.up.calls.borrow();
        // The admin answered before the first node call (ping, or prepare-write for the
        // unknown index), and the registration came last.
        let first_node = calls.iter().position(|(a, _)| a != "admin").unwrap();
        assert!(first_node > 0, "{what}: a node was called first");
        assert!(calls[..first_node].iter().any(|(_, c)| {
            c.path == "/_internal/v1/ping" || c.path.ends_with("/prepare-write")
        }));
        assert_eq!(
            calls.last().unwrap().1.path,
            "/_internal/v1/tasks",
            "{what}"
        );
        // One admin round trip before the dispatch, never two.
        assert_eq!(first_node, 1, "{what}");
    }
}

#[test]
fn an_admin_lost_after_the_ping_is_not_reported_as_unavailable() {
    // The ping succeeds, then the registration fails: the nodes have the write, so the
    // client must not be told "admin unavailable" (which promises nothing was written).
    for registration in [
        Err(UpstreamError::Connect("gone".into())),
        ok(
            500,
            json!({"message":"task store: disk full","code":"internal","type":"internal","link":""}),
        ),
    ] {
        let registration = RefCell::new(Some(registration));
        let admin: AdminFn = Box::new(move |r: &Request| {
            if r.path == "/_internal/v1/tasks" {
                return registration.borrow_mut().take().unwrap();
            }
            admin_registers(r)
        });
        let p = proxy(
            snapshot(1, 2, 1, 8),
            Config::default(),
            Box::new(healthy_node),
            admin,
        );
        let r = block_on(p.handle(
            req(Method::Post, "/indexes/m/documents", r#"[{"id":1}]"#),
            "r",
        ));
        let b = body(&r);
        assert_eq!(
            (r.status, b["code"].clone()),
            (500, json!("internal")),
            "{b}"
        );
        let msg = b["message"].as_str().unwrap();
        assert!(msg.contains("reached the nodes"), "{msg}");
        assert!(msg.contains("#7"), "names the node tasks: {msg}");
        assert!(!calls_to(&p, "/indexes/m/documents").is_empty());
    }
}

#[test]
fn deletes_route_by_id_and_broadcast_by_filter() {
    let p = proxy(
        snapshot(1, 3, 1, 64),
        Config::default(),
        Box::new(healthy_node),
        Box::new(admin_registers),
    );
    let r = block_on(p.handle(req(Method::Delete, "/indexes/m/documents/42", ""), "r"));
    assert_eq!(r.status, 202);
    let owner = miroir_core::routing::shard_for_key("42", 64);
    let dels = calls_to(&p, "/indexes/m/documents/42");
    assert_eq!(dels.len(), 1, "one owner (RF=1, RG=1) for shard {owner}");
    let r = block_on(p.handle(
        req(
            Method::Post,
            "/indexes/m/documents/delete",
            r#"{"filter":"a = 1"}"#,
        ),
        "r",
    ));
    assert_eq!(r.status, 202);
    let bc = calls_to(&p, "/indexes/m/documents/delete");
    assert_eq!(bc.len(), 3, "broadcast to every node");
    let reg: Value =
        serde_json::from_slice(&calls_to(&p, "/_internal/v1/tasks").last().unwrap().1.body)
            .unwrap();
    assert_eq!(reg["details"]["originalFilter"], json!("\"a = 1\""));
}

#[test]
fn auth_is_enforced_before_any_io() {
    let config = Config {
        master_key: Some("master".into()),
        ..Default::default()
    };
    let mut snap = snapshot(1, 1, 1, 4);
    snap.keys.push(ApiKey {
        uid: "u1".into(),
        key: "searchkey".into(),
        name: None,
        actions: vec!["search".into()],
        indexes: vec!["m".into()],
        expires_at: None,
    });
    let p = proxy(
        snap,
        config,
        Box::new(healthy_node),
        Box::new(admin_registers),
    );
    let r = block_on(p.handle(req(Method::Post, "/indexes/m/search", "{}"), "r"));
    assert_eq!(
        (r.status, body(&r)["code"].clone()),
        (401, json!("missing_authorization_header"))
    );
    let mut q = req(Method::Post, "/indexes/m/documents", "[]");
    q.headers
        .push(("authorization".into(), b"Bearer searchkey".to_vec()));
    let r = block_on(p.handle(q, "r"));
    assert_eq!(
        (r.status, body(&r)["code"].clone()),
        (403, json!("invalid_api_key"))
    );
    assert!(p.up.calls.borrow().is_empty());
    let mut q = req(Method::Post, "/indexes/m/search", "{}");
    q.headers
        .push(("authorization".into(), b"Bearer searchkey".to_vec()));
    let r = block_on(p.handle(q, "r"));
    assert_eq!(r.status, 200);
    // The client's key never reaches a node; the control path gets the principal instead.
    let mut q = req(Method::Get, "/tasks", "");
    q.headers
        .push(("authorization".into(), b"Bearer master".to_vec()));
    let r = block_on(p.handle(q, "r"));
    assert_eq!(r.status, 200);
    let fwd = calls_to(&p, "/tasks");
    assert_eq!(fwd[0].1.header("miroir-principal"), Some(&b"master"[..]));
    assert!(fwd[0].1.header("authorization").is_none());
}

#[test]
fn document_get_strips_reserved_fields_and_falls_back_to_replicas() {
    let node: NodeFn = Box::new(|a: &str, r: &Request| {
        if a.starts_with("a-g0") {
            return Err(UpstreamError::Connect("down".into()));
        }
        assert!(r.path.starts_with("/indexes/m/documents/"));
        ok(200, json!({"id": 5, "title": "x", "_miroir_shard": 2}))
    });
    let p = proxy(
        snapshot(2, 2, 1, 8),
        Config::default(),
        node,
        Box::new(admin_registers),
    );
    let r = block_on(p.handle(req(Method::Get, "/indexes/m/documents/5", ""), "r"));
    assert_eq!((r.status, body(&r)), (200, json!({"id": 5, "title": "x"})));
}

#[test]
fn multi_search_merges_each_query_and_prefixes_errors() {
    let p = proxy(
        snapshot(1, 2, 1, 8),
        Config::default(),
        Box::new(healthy_node),
        Box::new(admin_registers),
    );
    let r = block_on(p.handle(
        req(
            Method::Post,
            "/multi-search",
            r#"{"queries":[{"indexUid":"m","q":"a"},{"indexUid":"m","limit":1}]}"#,
        ),
        "r",
    ));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let b = body(&r);
    let results = b["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["indexUid"], json!("m"));
    assert_eq!(results[0]["hits"].as_array().unwrap().len(), 4);
    assert_eq!(results[1]["hits"].as_array().unwrap().len(), 1);
    assert!(String::from_utf8_lossy(&r.body).starts_with(r#"{"results":[{"indexUid":"m","hits""#));
    let r = block_on(p.handle(
        req(
            Method::Post,
            "/multi-search",
            r#"{"queries":[{"indexUid":"m"},{"indexUid":"zz"}]}"#,
        ),
        "r",
    ));
    // Meilisearch 1.50 answers 400 (code index_not_found) inside a multi-search.
    assert_eq!(r.status, 400);
    assert_eq!(
        body(&r)["message"],
        json!("Inside `.queries[1]`: Index `zz` not found.")
    );
}

#[test]
fn federated_multi_search_merges_by_weighted_score() {
    let p = proxy(
        snapshot(1, 2, 1, 8),
        Config::default(),
        Box::new(healthy_node),
        Box::new(admin_registers),
    );
    let q = r#"{"federation":{"limit":3},"queries":[{"indexUid":"m","q":"a"},{"indexUid":"m","q":"b","federationOptions":{"weight":2}}]}"#;
    let r = block_on(p.handle(req(Method::Post, "/multi-search", q), "r"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let b = body(&r);
    let hits = b["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 3);
    assert_eq!(
        hits[0]["_federation"]["queriesPosition"],
        json!(1),
        "weight 2 wins"
    );
    assert_eq!(hits[0]["_federation"]["weightedRankingScore"], json!(1.8));
    assert!(hits
        .iter()
        .all(|h| h.get("_rankingScore").is_none() && h.get("_miroir_shard").is_none()));
    assert_eq!(b["estimatedTotalHits"], json!(8));
    // Each node was asked for the federation's window.
    for (_, c) in calls_to(&p, "/search") {
        let nb: Value = serde_json::from_slice(&c.body).unwrap();
        assert_eq!(
            (nb["offset"].clone(), nb["limit"].clone()),
            (json!(0), json!(3))
        );
    }
    // Federated facets: every node is asked for the union of its shards' documents, no hits
    // (this fake node does not answer `/multi-search`, so its refusal is what the client gets).
    let q = r#"{"federation":{"facetsByIndex":{"m":["a"]}},"queries":[{"indexUid":"m"}]}"#;
    let r = block_on(p.handle(req(Method::Post, "/multi-search", q), "r"));
    assert_ne!(r.status, 501);
    let facet_calls: Vec<Value> = calls_to(&p, "/multi-search")
        .into_iter()
        .map(|(_, c)| serde_json::from_slice::<Value>(&c.body).unwrap())
        .filter(|b| b["federation"]["limit"] == json!(0))
        // (not the count of the queries' union, which asks for no facets)
        .filter(|b| !b["federation"]["facetsByIndex"]["m"].is_null())
        .collect();
    assert!(!facet_calls.is_empty());
    for nb in facet_calls {
        assert_eq!(nb["federation"]["facetsByIndex"], json!({"m": ["a"]}));
        assert_eq!(nb["queries"][0]["indexUid"], json!("m"));
    }
}

#[test]
fn tenant_tokens_search_with_their_filter_and_nothing_else() {
    let config = Config {
        master_key: Some("master".into()),
        ..Default::default()
    };
    let mut snap = snapshot(1, 2, 1, 8);
    snap.keys.push(ApiKey {
        uid: "u1".into(),
        key: "parent".into(),
        name: None,
        actions: vec!["search".into()],
        indexes: vec!["*".into()],
        expires_at: None,
    });
    let p = proxy(
        snap,
        config,
        Box::new(healthy_node),
        Box::new(admin_registers),
    );
    let token = crate::proxy::tenant::test_support::sign(
        "parent",
        &json!({"apiKeyUid": "u1", "searchRules": {"m": {"filter": "tenant = 7"}}}),
    );
    let bearer = format!("Bearer {token}").into_bytes();
    let mut q = req(Method::Post, "/indexes/m/search", r#"{"filter":"a = 1"}"#);
    q.headers.push(("authorization".into(), bearer.clone()));
    let r = block_on(p.handle(q, "r"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    for (_, c) in calls_to(&p, "/search") {
        let nb: Value = serde_json::from_slice(&c.body).unwrap();
        assert_eq!(nb["filter"], json!(["tenant = 7", "a = 1"]));
    }
    // Writes and other indexes are refused.
    for (m, path, b) in [
        (Method::Post, "/indexes/m/documents", "[]"),
        (Method::Post, "/indexes/other/search", "{}"),
    ] {
        let mut q = req(m, path, b);
        q.headers.push(("authorization".into(), bearer.clone()));
        let r = block_on(p.handle(q, "r"));
        assert_eq!(
            (r.status, body(&r)["code"].clone()),
            (403, json!("invalid_api_key")),
            "{path}"
        );
    }
}

#[test]
fn a_failed_node_is_avoided_for_a_while_on_this_core() {
    let node: NodeFn = Box::new(|a: &str, r: &Request| {
        if a == "a-g0n0" {
            Err(UpstreamError::Timeout)
        } else {
            healthy_node(a, r)
        }
    });
    let p = proxy(
        snapshot(2, 1, 1, 4),
        Config::default(),
        node,
        Box::new(admin_registers),
    );
    for _ in 0..4 {
        let r = block_on(p.handle(req(Method::Post, "/indexes/m/search", "{}"), "r"));
        assert_eq!(r.status, 200);
        assert!(r.header("x-miroir-degraded").is_none());
    }
    // Turns 0 and 2 prefer group 0: only the first pays the timeout.
    assert_eq!(calls_to(&p, "a-g0n0").len(), 1);
    // A suspect is still used when it is the only owner left.
    let p = proxy(
        snapshot(1, 1, 1, 4),
        Config::default(),
        Box::new(healthy_node),
        Box::new(admin_registers),
    );
    p.mark(&NodeId::new("g0n0"), true);
    let r = block_on(p.handle(req(Method::Post, "/indexes/m/search", "{}"), "r"));
    assert_eq!(r.status, 200);
    assert_eq!(calls_to(&p, "a-g0n0").len(), 1);
}

/// The bodies the data plane sends to the admin decode with the admin's own parsing
/// (`miroir_core::control`'s `ControlMessage::decode`, which `admin/` calls).
#[test]
fn the_admin_decodes_what_writes_send() {
    use miroir_core::control::{ControlMessage, PrepareWrite, TaskRegistration};
    use miroir_core::documents::PkSource;
    let admin: AdminFn = Box::new(|r: &Request| {
        if r.path == "/_internal/v1/indexes/fresh/prepare-write" {
            let mut m = meta("fresh", 4);
            m.primary_key = Some("sku".into());
            return ok(200, json!({"generation": 2, "index": m}));
        }
        admin_registers(r)
    });
    let p = proxy(
        snapshot(1, 2, 1, 8),
        Config::default(),
        Box::new(healthy_node),
        admin,
    );
    let r = block_on(p.handle(
        req(
            Method::Post,
            "/indexes/fresh/documents?primaryKey=sku&customMetadata=batch%201",
            r#"[{"sku":"a","name":"x"}]"#,
        ),
        "r",
    ));
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let prep = calls_to(&p, "/prepare-write");
    let prep = PrepareWrite::decode(&prep[0].1.body).unwrap();
    assert_eq!(prep.primary_key.as_deref(), Some("sku"));
    assert_eq!(prep.primary_key_source, Some(PkSource::Query));
    assert_eq!(prep.new_fields, ["sku", "name"]);
    let reg = calls_to(&p, "/_internal/v1/tasks");
    let reg = TaskRegistration::decode(&reg[0].1.body).unwrap();
    assert_eq!(reg.index_uid.as_deref(), Some("fresh"));
    assert_eq!(reg.task_type, "documentAdditionOrUpdate");
    assert_eq!(reg.custom_metadata.as_deref(), Some("batch 1"));
    assert_eq!(reg.details["receivedDocuments"], json!(1));
    assert!(!reg.node_tasks.is_empty() && reg.failed_nodes.is_empty());
}

fn registration(p: &Proxy<Fake>) -> Value {
    let reg = calls_to(p, "/_internal/v1/tasks");
    assert_eq!(reg.len(), 1, "one registration");
    serde_json::from_slice(&reg[0].1.body).unwrap()
}

fn twenty_docs() -> String {
    let docs: Vec<Value> = (1..=20).map(|i| json!({"id": i})).collect();
    serde_json::to_string(&docs).unwrap()
}

#[test]
fn missed_copies_are_sent_with_the_registration_as_hints() {
    // RF=2 in one group of 3: g0n1 is down.
    let down: fn(&str, &Request) -> Result<Response, UpstreamError> = |a, r| {
        if a == "a-g0n1" {
            Err(UpstreamError::Connect("down".into()))
        } else {
            healthy_node(a, r)
        }
    };
    // Default `one`: acknowledged without any consistency header, the missed copy hinted.
    let p = proxy(
        snapshot(1, 3, 2, 8),
        Config::default(),
        Box::new(down),
        Box::new(admin_registers),
    );
    let r = block_on(p.handle(
        req(Method::Post, "/indexes/m/documents", &twenty_docs()),
        "r",
    ));
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.header("x-miroir-write-consistency").is_none());
    let reg = registration(&p);
    assert!(reg.get("degraded").is_none(), "{reg}");
    let missed = reg["missed"].as_array().unwrap();
    assert_eq!(missed.len(), 1, "{reg}");
    assert_eq!(missed[0]["node"], "g0n1");
    assert_eq!(missed[0]["replay"]["method"], "POST");
    assert_eq!(missed[0]["replay"]["path"], "/indexes/m/documents");
    let replayed: Vec<Value> =
        serde_json::from_str(missed[0]["replay"]["body"].as_str().unwrap()).unwrap();
    let shards: Vec<u64> = missed[0]["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_u64().unwrap())
        .collect();
    assert!(!replayed.is_empty());
    for d in &replayed {
        // Exactly the documents of the node's shards, with their shard field.
        let token = d["_miroir_shard"].as_str().unwrap();
        let shard = miroir_core::documents::parse_shard_token(token).unwrap();
        assert!(shards.contains(&u64::from(shard.0)), "{d}");
    }

    // `majority` (2 of 2): some copies accepted, so the write is registered as degraded.
    let config = Config {
        write_consistency: miroir_core::config::WriteConsistency::Majority,
        ..Config::default()
    };
    let p = proxy(
        snapshot(1, 3, 2, 8),
        config.clone(),
        Box::new(down),
        Box::new(admin_registers),
    );
    let r = block_on(p.handle(
        req(Method::Post, "/indexes/m/documents", &twenty_docs()),
        "r",
    ));
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.header("x-miroir-write-consistency"),
        Some(&b"degraded"[..])
    );
    assert_eq!(registration(&p)["degraded"], true);

    // Known down before the write: refused up front, nothing written anywhere.
    let mut snap = snapshot(1, 3, 2, 8);
    snap.nodes[1].status = NodeStatus::Failed;
    let p = proxy(snap, config, Box::new(down), Box::new(admin_registers));
    let r = block_on(p.handle(
        req(Method::Post, "/indexes/m/documents", &twenty_docs()),
        "r",
    ));
    assert_eq!(
        (r.status, body(&r)["code"].clone()),
        (503, json!("miroir_no_quorum"))
    );
    assert!(
        calls_to(&p, "/indexes/m/documents").is_empty(),
        "no node touched"
    );
    assert!(calls_to(&p, "/_internal/v1/tasks").is_empty());
}

#[test]
fn a_lagging_copy_gets_writes_as_hints_and_serves_no_reads_for_its_shards() {
    let mut snap = snapshot(1, 3, 2, 8);
    snap.lagging = (0..8)
        .map(|s| miroir_core::snapshot::LaggingCopy {
            node: NodeId::new("g0n1"),
            index: "m".into(),
            shard: ShardId(s),
        })
        .collect();
    let p = proxy(
        snap,
        Config::default(),
        Box::new(healthy_node),
        Box::new(admin_registers),
    );
    let r = block_on(p.handle(
        req(Method::Post, "/indexes/m/documents", &twenty_docs()),
        "r",
    ));
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        calls_to(&p, "a-g0n1").is_empty(),
        "the lagging copy is not written"
    );
    let reg = registration(&p);
    let missed = reg["missed"].as_array().unwrap();
    assert_eq!(missed.len(), 1);
    assert_eq!(missed[0]["node"], "g0n1");
    // Not a node failure: the copy is queued, not reported missing.
    assert!(
        reg["failedNodes"].as_array().is_none_or(|f| f.is_empty()),
        "{reg}"
    );
    for _ in 0..6 {
        let r = block_on(p.handle(req(Method::Post, "/indexes/m/search", r#"{"q":"x"}"#), "r"));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert!(r.header("x-miroir-degraded").is_none());
    }
    assert!(
        calls_to(&p, "a-g0n1").is_empty(),
        "the lagging copy is not read"
    );
}
