//! Broadcasts with rollback: index create/update/delete/swap and settings, each answered with
//! ONE Miroir task, plus the data plane's `prepare-write`.
//!
//! Pattern: **dispatch synchronously, settle asynchronously.** The handler takes the index's
//! lock, sends the request to every node and collects the node task uids; a node that refuses
//! synchronously (Meilisearch validates shapes before enqueuing) makes the handler undo what
//! the others accepted and answer that node's error verbatim, as a single Meilisearch would.
//! Otherwise a self-tracked Miroir task is created and answered (202) and a worker — still
//! holding the index's lock, so broadcasts on one index never interleave — waits for the node tasks, verifies, rolls
//! back on any failure and finishes the Miroir task.
//!
//! Settings (PRODUCT.md §2 Writes 3): nodes always keep `_miroir_shard` filterable, and when
//! the client's `displayedAttributes` is `*` the nodes get the explicit field list
//! (`IndexMeta.fields`) instead, so no hit shows a reserved field; clients read back `*`
//! ([`crate::reads`]). `searchableAttributes` goes to the nodes as sent, `*` included: the
//! shard field's value is punctuation that yields no word
//! ([`miroir_core::documents::shard_token`]), so no query matches through it, and nodes
//! rank attributes under `*` exactly as one Meilisearch does (decision 006).
//!
//! **Meilisearch's answers.** A body Meilisearch refuses before enqueuing (a non-string index
//! `uid`, a malformed swap list) is sent to one node only, whose refusal is relayed verbatim
//! (`refused_by_a_node`): no state can change, and the message is exactly Meilisearch's.
//! Task `details` echo what Meilisearch would (settings in its key order with sets sorted,
//! [`settings_details`]; swaps with `rename`; renames with `oldIndexUid`/`newIndexUid`), and
//! a settings sub-route's errors are located relative to its own body
//! ([`relocate_to_sub_route`]).
//!
//! **Unreachable nodes.** Most broadcasts need every node (an index that exists on only some
//! nodes is not an index) and answer `503 miroir_node_unreachable` when one cannot be reached.
//! Node-side *settings* changes are different: `prepare-write`'s searchable/displayed list
//! extension (a write bringing a new field) and client settings updates skip nodes the
//! health checker marked `failed` and nodes that do not answer at all (connect error,
//! timeout), as long as every shard of the index keeps a reachable owner in some replica
//! group — else `503 miroir_no_quorum`, and nothing changes. The skipped nodes are recorded
//! durably and get the index's current settings re-applied when they recover, before they are
//! counted healthy again ([`crate::repair`]). This does not weaken the rollback guarantee of
//! settings updates ("a node failing mid-way leaves every node with the old settings"): that
//! guarantee is about nodes that *answer* — a node that refuses the change, fails its task or
//! reports something else on read-back makes every node that took it roll back, exactly as
//! before. An unreachable node neither took the new settings nor can refuse them; waiting for
//! it would make one dead node block every settings change (and, through `prepare-write`,
//! every write bringing a new field) of the deployment, which PRODUCT.md §2 Writes 4 does not
//! ask of document writes either. If the change then fails on the reachable nodes and is
//! rolled back, the repair copies the (old) settings of a peer — still correct.

use crate::api::{encode_segment, ApiError, Req, Resp};
use crate::coverage::CoverNode;
use crate::health::NodeHealth;
use crate::state::Admin;
use crate::store::{TaskRecord, TaskType};
use crate::tasks;
use hyper::Method;
use miroir_core::control::{ControlMessage, PrepareWrite, Prepared};
use miroir_core::documents::PkSource;
use miroir_core::error::ErrorCode;
use miroir_core::snapshot::{FacetOrder, IndexMeta};
use miroir_core::topology::NodeStatus;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

use miroir_core::documents::RESERVED_PREFIX;
pub use miroir_core::documents::SHARD_FIELD;
/// How long a broadcast waits for one node task to finish before giving up on it.
const NODE_TASK_DEADLINE: Duration = Duration::from_secs(300);
pub const DEFAULT_RANKING_RULES: [&str; 6] = [
    "words",
    "typo",
    "proximity",
    "attribute",
    "sort",
    "exactness",
];

type Guard = Vec<tokio::sync::OwnedMutexGuard<()>>;

/// The scope of deployment-wide operations (dumps, snapshots, experimental features).
const GLOBAL: &str = "";

/// A node task a broadcast step enqueued.
#[derive(Debug, Clone)]
struct Dispatched {
    node: NodeHealth,
    task_uid: u64,
}

fn unavailable(node: &NodeHealth, e: impl std::fmt::Display) -> ApiError {
    ApiError::core(
        ErrorCode::MiroirNodeUnreachable,
        format!("node `{}` could not be reached: {e}", node.id),
    )
}

/// One node's answer to a dispatched step.
enum Answer {
    Task(Dispatched),
    /// It answered, with an error (or without a task uid).
    Refused(ApiError),
    /// No answer: connect error or timeout.
    Unreachable(NodeHealth, crate::node_client::NodeError),
}

/// Sends one request to each of `nodes` concurrently; their answers in `nodes` order.
async fn send_all(
    admin: &Admin,
    nodes: Vec<NodeHealth>,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Vec<Answer> {
    let calls = nodes.into_iter().map(|n| {
        let (client, method, path, body) = (
            admin.client.clone(),
            method.clone(),
            path.to_string(),
            body.cloned(),
        );
        async move {
            let r = client.send(&n.address, method, &path, body.as_ref()).await;
            (n, r)
        }
    });
    crate::health::futures_join_all(calls)
        .await
        .into_iter()
        .map(|(node, r)| match r {
            Ok(r) if r.is_success() => match r.json()["taskUid"].as_u64() {
                Some(task_uid) => Answer::Task(Dispatched { node, task_uid }),
                None => Answer::Refused(ApiError::internal(format!(
                    "node `{}` answered without a taskUid",
                    node.id
                ))),
            },
            Ok(r) => Answer::Refused(ApiError::Node {
                status: r.status,
                body: r.json(),
            }),
            Err(e) => Answer::Unreachable(node, e),
        })
        .collect()
}

/// Sends one request to every node. All accepted → their tasks; else the accepted ones and the
/// first refusal (an unreachable node is one: `miroir_node_unreachable`).
async fn dispatch(
    admin: &Admin,
    nodes: &[NodeHealth],
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Vec<Dispatched>, (Vec<Dispatched>, ApiError)> {
    let mut ok = Vec::new();
    let mut err = None;
    for a in send_all(admin, nodes.to_vec(), method, path, body).await {
        match a {
            Answer::Task(d) => ok.push(d),
            Answer::Refused(e) => err = err.or(Some(e)),
            Answer::Unreachable(n, e) => err = err.or(Some(unavailable(&n, e))),
        }
    }
    match err {
        None => Ok(ok),
        Some(e) => Err((ok, e)),
    }
}

/// What [`dispatch_reachable`] did.
#[derive(Debug, Default)]
struct Reached {
    ok: Vec<Dispatched>,
    /// Marked `failed` (not contacted) or unreachable (connect error, timeout).
    unreachable: Vec<NodeHealth>,
}

/// Like [`dispatch`], but a node that cannot be reached is set apart instead of failing the
/// step (see "Unreachable nodes" in the module docs). A node that *answers* with an error
/// still fails it.
async fn dispatch_reachable(
    admin: &Admin,
    nodes: &[NodeHealth],
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Reached, (Vec<Dispatched>, ApiError)> {
    let (down, up): (Vec<NodeHealth>, Vec<NodeHealth>) = nodes
        .iter()
        .cloned()
        .partition(|n| n.status == NodeStatus::Failed);
    let mut reached = Reached {
        ok: Vec::new(),
        unreachable: down,
    };
    let mut err = None;
    for a in send_all(admin, up, method, path, body).await {
        match a {
            Answer::Task(d) => reached.ok.push(d),
            Answer::Refused(e) => err = err.or(Some(e)),
            Answer::Unreachable(n, _) => reached.unreachable.push(n),
        }
    }
    match err {
        None => Ok(reached),
        Some(e) => Err((reached.ok, e)),
    }
}

/// `miroir_no_quorum` when skipping `unreachable` leaves a shard of `index` (with `shards`
/// shards) without a reachable owner in any group.
fn require_coverage(
    admin: &Admin,
    index: &str,
    shards: u32,
    unreachable: &[NodeHealth],
) -> Result<(), ApiError> {
    if unreachable.is_empty() {
        return Ok(());
    }
    let nodes = admin.nodes();
    let cover: Vec<CoverNode<'_>> = nodes
        .iter()
        .map(|n| CoverNode {
            id: &n.id,
            group: n.group,
            places: n.status.owns_shards(),
            live: !unreachable.iter().any(|u| u.id == n.id),
        })
        .collect();
    let lost = crate::coverage::uncovered_shards(
        &cover,
        admin.config.replica_groups,
        admin.config.replication_factor,
        shards,
    );
    if lost.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = unreachable.iter().map(|n| n.id.as_str()).collect();
    let list: Vec<String> = lost.iter().map(u32::to_string).collect();
    Err(ApiError::core(
        ErrorCode::MiroirNoQuorum,
        format!(
            "Index `{index}`: node(s) {} could not be reached for a settings change, and shard(s) {} would then have no up-to-date owner in any replica group.",
            names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "),
            list.join(", ")
        ),
    ))
}

/// Polls one node task until it is terminal; returns the task object.
async fn wait_task(admin: &Admin, node: &NodeHealth, uid: u64) -> Result<Value, ApiError> {
    let start = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        if let Ok(r) = admin
            .client
            .send(&node.address, Method::GET, &format!("/tasks/{uid}"), None)
            .await
        {
            if r.status == 200 {
                let t = r.json();
                if matches!(
                    t["status"].as_str(),
                    Some("succeeded" | "failed" | "canceled")
                ) {
                    return Ok(t);
                }
            }
        }
        if start.elapsed() > NODE_TASK_DEADLINE {
            return Err(ApiError::core(
                ErrorCode::MiroirNodeUnreachable,
                format!(
                    "node `{}` did not finish task {uid} within {NODE_TASK_DEADLINE:?}",
                    node.id
                ),
            ));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Waits for every dispatched task; the first failure's error (node error verbatim).
async fn settle(admin: &Admin, tasks: &[Dispatched]) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    let mut first_err = None;
    for d in tasks {
        match wait_task(admin, &d.node, d.task_uid).await {
            Ok(t) if t["status"] == "succeeded" => out.push(t),
            Ok(t) => {
                let e = t.get("error").filter(|e| !e.is_null()).cloned().unwrap_or_else(|| json!({"message": "node task canceled", "code": "internal", "type": "internal", "link": ""}));
                first_err = first_err.or(Some(ApiError::Node {
                    status: 400,
                    body: e,
                }));
            }
            Err(e) => first_err = first_err.or(Some(e)),
        }
    }
    first_err.map_or(Ok(out), Err)
}

/// Dispatch + settle; best effort (used for rollbacks).
async fn run_step(
    admin: &Admin,
    nodes: &[NodeHealth],
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Vec<Value>, ApiError> {
    let d = dispatch(admin, nodes, method, path, body)
        .await
        .map_err(|(_, e)| e)?;
    settle(admin, &d).await
}

/// The error one live node answers to a request that no Meilisearch can accept (its body
/// fails deserialization, so the node refuses it synchronously without any state change):
/// Meilisearch's own message, relayed verbatim. Callers only send bodies that cannot be
/// accepted; a node that accepts anyway is reported as an internal error.
async fn refused_by_a_node(admin: &Admin, method: Method, path: &str, body: &Value) -> ApiError {
    let mut last = None;
    for node in admin.live_nodes() {
        match admin
            .client
            .send(&node.address, method.clone(), path, Some(body))
            .await
        {
            Ok(r) if r.is_success() => {
                return ApiError::internal(format!(
                    "node `{}` accepted `{method} {path}` with a body Meilisearch refuses",
                    node.id
                ))
            }
            Ok(r) => {
                return ApiError::Node {
                    status: r.status,
                    body: r.json(),
                }
            }
            Err(e) => last = Some(unavailable(&node, e)),
        }
    }
    last.unwrap_or_else(|| ApiError::core(ErrorCode::MiroirNodeUnreachable, "no node is available"))
}

fn index_not_found(uid: &str) -> ApiError {
    ApiError::core(
        ErrorCode::IndexNotFound,
        format!("Index `{uid}` not found."),
    )
}

/// Creates the Miroir task, spawns `work` with the lock held, answers 202.
async fn spawn_task<F, Fut>(
    admin: &Arc<Admin>,
    guard: Guard,
    index: Option<&str>,
    kind: TaskType,
    details: Value,
    work: F,
) -> Result<Resp, ApiError>
where
    F: FnOnce(Arc<Admin>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Value, ApiError>> + Send + 'static,
{
    let mut rec: TaskRecord = tasks::create_own(admin, index, kind, details).await?;
    let summary = tasks::summarized(&rec);
    let admin = admin.clone();
    tokio::spawn(async move {
        let _guard = guard;
        tasks::start_own(&admin, &mut rec).await;
        let outcome = work(admin.clone()).await.map_err(|e| e.body());
        if let Err(e) = &outcome {
            tracing::warn!(task = rec.uid.0, error = %e, "broadcast failed");
        }
        tasks::finish_own(&admin, &mut rec, outcome).await;
    });
    Ok(Resp::json(202, &summary))
}

/// An index operation every node runs as a task of its own, answered with ONE Miroir task of
/// type `kind`. If Miroir does not know the index, the task fails at once with
/// `index_not_found`, as the node's would. Otherwise `method path body` goes to every node
/// (a synchronous refusal is the answer) and, once every node task has succeeded, `finish`
/// turns their views into the task's details.
#[allow(clippy::too_many_arguments)]
async fn index_task<F, Fut>(
    admin: &Arc<Admin>,
    uid: &str,
    kind: TaskType,
    details: Value,
    method: Method,
    path: String,
    body: Option<&Value>,
    finish: F,
) -> Result<Resp, ApiError>
where
    F: FnOnce(Arc<Admin>, Vec<Value>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Value, ApiError>> + Send + 'static,
{
    let guard = admin.lock_scopes(vec![uid.to_string()]).await;
    if admin.index(uid).is_none() {
        return failed_task(admin, Some(uid), kind, details, index_not_found(uid)).await;
    }
    let nodes = admin.broadcast_nodes();
    let d = dispatch(admin, &nodes, method, &path, body)
        .await
        .map_err(|(_, e)| e)?;
    spawn_task(
        admin,
        guard,
        Some(uid),
        kind,
        details,
        move |admin| async move {
            let done = settle(&admin, &d).await?;
            finish(admin, done).await
        },
    )
    .await
}

/// A task that fails at once with `error` (Meilisearch enqueues, then fails).
async fn failed_task(
    admin: &Admin,
    index: Option<&str>,
    kind: TaskType,
    details: Value,
    error: ApiError,
) -> Result<Resp, ApiError> {
    let mut rec = tasks::create_own(admin, index, kind, details).await?;
    let summary = tasks::summarized(&rec);
    tasks::finish_own(admin, &mut rec, Err(error.body())).await;
    Ok(Resp::json(202, &summary))
}

fn new_meta(admin: &Admin, uid: &str, primary_key: Option<String>) -> IndexMeta {
    let now = crate::timefmt::now_rfc3339();
    IndexMeta {
        uid: uid.to_string(),
        primary_key,
        shards: admin.config.shards,
        fields: Vec::new(),
        searchable_wildcard: true,
        displayed_wildcard: true,
        ranking_rules: DEFAULT_RANKING_RULES
            .iter()
            .map(|s| s.to_string())
            .collect(),
        max_values_per_facet: 100,
        sort_facet_values_by: [("*".to_string(), FacetOrder::Alpha)].into_iter().collect(),
        max_total_hits: 1000,
        created_at: now.clone(),
        updated_at: now,
        distinct_attribute: None,
    }
}

/// The explicit `displayedAttributes` nodes hold for a client's `*`: the index's fields, except
/// `_vectors`. Meilisearch 1.50 returns `_vectors` under `retrieveVectors: true` when displayed
/// is `*` or a list without it, but never when a list names it (checked on a real node).
fn node_displayed(meta: &IndexMeta) -> Value {
    json!(meta
        .fields
        .iter()
        .filter(|f| *f != "_vectors")
        .collect::<Vec<_>>())
}

/// The node-side settings every Miroir index starts with.
fn initial_node_settings(meta: &IndexMeta) -> Value {
    json!({
        "filterableAttributes": [SHARD_FIELD],
        "displayedAttributes": node_displayed(meta),
        "faceting": {"maxValuesPerFacet": node_max_values_per_facet(u64::from(meta.max_values_per_facet))},
    })
}

/// Nodes return at least this many values per facet, whatever the client's
/// `faceting.maxValuesPerFacet` (which the merge applies and clients read back).
///
/// A node cuts its facet values to `maxValuesPerFacet` in *its* order, and that order is not
/// always the global one: milli lists number values in text order up to 3 000 matching
/// documents and numerically above, so a shard under the threshold and a global result over
/// it cut differently; `count` order cut per shard misses values whose count only adds up
/// across shards. A larger node cut makes the merge exact for every facet with at most this
/// many distinct values per shard (docs/decisions/005-facet-overfetch.md).
pub const NODE_MAX_VALUES_PER_FACET: u64 = 1000;

/// The node's `maxValuesPerFacet` for a client value.
pub fn node_max_values_per_facet(client: u64) -> u64 {
    client.max(NODE_MAX_VALUES_PER_FACET)
}

/// Rewrites the `faceting` object of a node patch so nodes over-fetch facet values. Values
/// that are not an object, number or null are left as sent for the nodes to refuse.
fn overfetch_facets(node: &mut Map<String, Value>) {
    let Some(f) = node.get_mut("faceting") else {
        return;
    };
    let default = || json!(node_max_values_per_facet(100));
    match f {
        // A reset: the client reads Meilisearch's defaults back, nodes keep over-fetching.
        Value::Null => {
            *f = json!({"maxValuesPerFacet": default(), "sortFacetValuesBy": null});
        }
        Value::Object(o) => match o.get("maxValuesPerFacet") {
            Some(Value::Null) => {
                o.insert("maxValuesPerFacet".into(), default());
            }
            Some(Value::Number(n)) => {
                if let Some(v) = n.as_u64() {
                    o.insert(
                        "maxValuesPerFacet".into(),
                        json!(node_max_values_per_facet(v)),
                    );
                }
            }
            _ => {}
        },
        _ => {}
    }
}

fn settings_path(uid: &str) -> String {
    format!("/indexes/{}/settings", encode_segment(uid))
}

/// `POST /indexes`.
pub async fn create_index(admin: &Arc<Admin>, req: &Req) -> Result<Resp, ApiError> {
    let body = req.json()?;
    let Some(uid) = body.get("uid").and_then(Value::as_str).map(String::from) else {
        // No string uid (missing, `12`, or not an object at all): Meilisearch refuses the
        // body before enqueuing, so one node gives the exact error and nothing can change.
        return Err(refused_by_a_node(admin, Method::POST, "/indexes", &body).await);
    };
    let pk = body
        .get("primaryKey")
        .and_then(Value::as_str)
        .map(String::from);
    let guard = admin.lock_scopes(vec![uid.clone()]).await;
    let details = json!({"primaryKey": pk});
    if admin.index(&uid).is_some() {
        let e = ApiError::invalid(
            "index_already_exists",
            format!("Index `{uid}` already exists."),
        );
        return failed_task(admin, Some(&uid), TaskType::IndexCreation, details, e).await;
    }
    let nodes = admin.broadcast_nodes();
    let created = match dispatch(admin, &nodes, Method::POST, "/indexes", Some(&body)).await {
        Ok(d) => d,
        Err((accepted, e)) => {
            rollback_create(admin, &uid, accepted.into_iter().map(|d| d.node).collect()).await;
            return Err(e);
        }
    };
    spawn_task(
        admin,
        guard,
        Some(&uid.clone()),
        TaskType::IndexCreation,
        details.clone(),
        move |admin| async move {
            if let Err(e) = settle(&admin, &created).await {
                rollback_create(&admin, &uid, nodes).await;
                return Err(e);
            }
            let meta = new_meta(&admin, &uid, pk);
            if let Err(e) = run_step(
                &admin,
                &nodes,
                Method::PATCH,
                &settings_path(&uid),
                Some(&initial_node_settings(&meta)),
            )
            .await
            {
                rollback_create(&admin, &uid, nodes).await;
                return Err(e);
            }
            admin.put_index(meta).await?;
            admin.publish().await?;
            Ok(details)
        },
    )
    .await
}

/// Deletes the index on `nodes` (best effort: a node that never created it answers a failed
/// task, which is fine).
async fn rollback_create(admin: &Admin, uid: &str, nodes: Vec<NodeHealth>) {
    admin
        .metrics
        .rollbacks
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = format!("/indexes/{}", encode_segment(uid));
    if let Ok(d) = dispatch(admin, &nodes, Method::DELETE, &path, None)
        .await
        .or_else(|(d, _)| Ok::<_, ()>(d))
    {
        let _ = settle(admin, &d).await;
    }
}

/// `PATCH /indexes/{uid}`: primary key and, as in Meilisearch 1.50, a new `uid` (rename).
pub async fn update_index(admin: &Arc<Admin>, uid: &str, req: &Req) -> Result<Resp, ApiError> {
    let body = req.json()?;
    let path = format!("/indexes/{}", encode_segment(uid));
    let well_formed = body.as_object().is_some_and(|o| {
        o.keys().all(|k| k == "uid" || k == "primaryKey")
            && o.get("uid").is_none_or(|u| {
                u.as_str()
                    .is_some_and(|u| crate::tasks::query::parse_index_uid(u).is_ok())
            })
            && o.get("primaryKey")
                .is_none_or(|p| p.is_string() || p.is_null())
    });
    if !well_formed {
        // Refused by Meilisearch before enqueuing: its own message, nothing changes.
        return Err(refused_by_a_node(admin, Method::PATCH, &path, &body).await);
    }
    let pk = body.get("primaryKey").cloned().unwrap_or(Value::Null);
    let new_uid = body.get("uid").and_then(Value::as_str).map(String::from);
    let mut scopes = vec![uid.to_string()];
    scopes.extend(new_uid.clone());
    let guard = admin.lock_scopes(scopes).await;
    let mut details = json!({"primaryKey": pk});
    if let Some(new) = &new_uid {
        details["oldIndexUid"] = json!(uid);
        details["newIndexUid"] = json!(new);
    }
    let refusal = if admin.index(uid).is_none() {
        Some(index_not_found(uid))
    } else {
        new_uid
            .as_deref()
            .filter(|n| admin.index(n).is_some())
            .map(|n| {
                ApiError::invalid(
                    "index_already_exists",
                    format!("Index `{n}` already exists."),
                )
            })
    };
    if let Some(e) = refusal {
        return failed_task(admin, Some(uid), TaskType::IndexUpdate, details, e).await;
    }
    let nodes = admin.broadcast_nodes();
    let d = dispatch(admin, &nodes, Method::PATCH, &path, Some(&body))
        .await
        .map_err(|(_, e)| e)?;
    let uid = uid.to_string();
    spawn_task(
        admin,
        guard,
        Some(&uid.clone()),
        TaskType::IndexUpdate,
        details.clone(),
        move |admin| async move {
            if let Err(e) = settle(&admin, &d).await {
                // A primary key cannot be unset again, so that part of a partial failure is
                // reported, not undone; a rename is undone where it happened, so the index
                // keeps one name on every node.
                if let Some(new) = &new_uid {
                    undo_rename(&admin, &d, new, &uid).await;
                }
                return Err(e);
            }
            if let Some(mut meta) = admin.index(&uid) {
                if let Some(pk) = pk.as_str() {
                    meta.primary_key = Some(pk.to_string());
                }
                meta.updated_at = crate::timefmt::now_rfc3339();
                if let Some(new) = &new_uid {
                    meta.uid = new.clone();
                    admin.put_index(meta).await?;
                    admin.remove_index(&uid).await?;
                } else {
                    admin.put_index(meta).await?;
                }
                admin.publish().await?;
            }
            Ok(details)
        },
    )
    .await
}

/// Renames `new` back to `old` on every node whose rename task succeeded (best effort).
async fn undo_rename(admin: &Admin, tasks: &[Dispatched], new: &str, old: &str) {
    admin
        .metrics
        .rollbacks
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut renamed = Vec::new();
    for x in tasks {
        if let Ok(t) = wait_task(admin, &x.node, x.task_uid).await {
            if t["status"] == "succeeded" {
                renamed.push(x.node.clone());
            }
        }
    }
    let path = format!("/indexes/{}", encode_segment(new));
    if let Err(e) = run_step(
        admin,
        &renamed,
        Method::PATCH,
        &path,
        Some(&json!({"uid": old})),
    )
    .await
    {
        tracing::error!(index = old, error = %e, "undoing a partial rename failed; node index names may differ");
    }
}

/// `DELETE /indexes/{uid}`.
pub async fn delete_index(admin: &Arc<Admin>, uid: &str) -> Result<Resp, ApiError> {
    let path = format!("/indexes/{}", encode_segment(uid));
    let owned = uid.to_string();
    index_task(
        admin,
        uid,
        TaskType::IndexDeletion,
        json!({"deletedDocuments": 0}),
        Method::DELETE,
        path,
        None,
        move |admin, done| async move {
            let deleted: u64 = done
                .iter()
                .filter_map(|t| t["details"]["deletedDocuments"].as_u64())
                .sum();
            admin.remove_index(&owned).await?;
            admin.publish().await?;
            Ok(json!({"deletedDocuments": deleted / u64::from(admin.copies())}))
        },
    )
    .await
}

/// `POST /indexes/{uid}/compact` (Meilisearch 1.50): every node compacts its copy of the
/// index; one `indexCompaction` task, succeeded when every node's is, whose
/// `preCompactionSize`/`postCompactionSize` are the nodes' sums per copy of the data (as the
/// stats are), human-formatted as Meilisearch writes them. An index Miroir does not know gets
/// a failed task, as Meilisearch enqueues one that fails with `index_not_found`.
pub async fn compact_index(admin: &Arc<Admin>, uid: &str) -> Result<Resp, ApiError> {
    let path = format!("/indexes/{}/compact", encode_segment(uid));
    index_task(
        admin,
        uid,
        TaskType::IndexCompaction,
        json!({}),
        Method::POST,
        path,
        None,
        |admin, done| async move {
            let copies = u64::from(admin.copies()).max(1);
            let mut details = serde_json::Map::new();
            for k in ["preCompactionSize", "postCompactionSize"] {
                let sizes: Option<Vec<u64>> = done
                    .iter()
                    .map(|t| {
                        t["details"][k]
                            .as_str()
                            .and_then(crate::size_format::parse_human)
                    })
                    .collect();
                if let Some(sizes) = sizes.filter(|s| !s.is_empty()) {
                    let total = sizes.iter().sum::<u64>() / copies;
                    details.insert(k.into(), json!(crate::size_format::human(total)));
                }
            }
            Ok(Value::Object(details))
        },
    )
    .await
}

/// One entry of a `POST /swap-indexes` body.
#[derive(Debug, Clone, PartialEq)]
pub struct Swap {
    pub lhs: String,
    pub rhs: String,
    /// Meilisearch 1.50's `rename`: `lhs` is renamed to `rhs`, which must not exist.
    pub rename: bool,
}

/// The swaps of a well-formed body (an array of `{indexes: [a, b], rename?: bool}`); `None`
/// for anything else, which Meilisearch refuses before enqueuing (its message comes from a
/// node, see `refused_by_a_node`).
pub fn parse_swaps(body: &Value) -> Option<Vec<Swap>> {
    body.as_array()?
        .iter()
        .map(|p| {
            let o = p.as_object()?;
            if o.keys().any(|k| k != "indexes" && k != "rename") {
                return None;
            }
            let i = o.get("indexes")?.as_array()?;
            let [lhs, rhs] = i.as_slice() else {
                return None;
            };
            let rename = match o.get("rename") {
                None => false,
                Some(v) => v.as_bool()?,
            };
            let uid = |v: &Value| {
                v.as_str()
                    .and_then(|s| crate::tasks::query::parse_index_uid(s).ok())
            };
            Some(Swap {
                lhs: uid(lhs)?,
                rhs: uid(rhs)?,
                rename,
            })
        })
        .collect()
}

/// The task's `details.swaps`, as Meilisearch shows them (`rename` always present).
pub fn swap_details(swaps: &[Swap]) -> Value {
    json!({"swaps": swaps.iter().map(|s| json!({"indexes": [s.lhs, s.rhs], "rename": s.rename})).collect::<Vec<_>>()})
}

/// The body that undoes `swaps` on a node: a swap is its own inverse, a rename is undone by
/// renaming back; applied in reverse order.
fn inverse_swaps(swaps: &[Swap]) -> Value {
    Value::Array(
        swaps
            .iter()
            .rev()
            .map(|s| {
                if s.rename {
                    json!({"indexes": [s.rhs, s.lhs], "rename": true})
                } else {
                    json!({"indexes": [s.lhs, s.rhs], "rename": false})
                }
            })
            .collect(),
    )
}

/// Meilisearch's check before swapping (index-scheduler `process_batch`, `IndexSwap`): every
/// `lhs` and every non-renamed `rhs` must exist, a renamed-to `rhs` must not. Its errors.
pub fn check_swaps(swaps: &[Swap], exists: impl Fn(&str) -> bool) -> Result<(), ApiError> {
    let mut missing = std::collections::BTreeSet::new();
    let mut taken = std::collections::BTreeSet::new();
    for s in swaps {
        if !exists(&s.lhs) {
            missing.insert(s.lhs.as_str());
        }
        match (exists(&s.rhs), s.rename) {
            (true, true) => {
                taken.insert((s.lhs.as_str(), s.rhs.as_str()));
            }
            (false, false) => {
                missing.insert(s.rhs.as_str());
            }
            _ => {}
        }
    }
    let quoted = |v: Vec<&str>| {
        v.iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match missing.len() {
        0 => {}
        1 => return Err(index_not_found(missing.first().expect("one element"))),
        _ => {
            return Err(ApiError::core(
                ErrorCode::IndexNotFound,
                format!(
                    "Indexes {} not found.",
                    quoted(missing.into_iter().collect())
                ),
            ))
        }
    }
    match taken.len() {
        0 => Ok(()),
        1 => {
            let (lhs, rhs) = taken.first().expect("one element");
            Err(ApiError::invalid("index_already_exists", format!("Cannot rename `{lhs}` to `{rhs}` as the index already exists. Hint: You can remove `{rhs}` first and then do your remove.")))
        }
        _ => Err(ApiError::invalid(
            "index_already_exists",
            format!("The following indexes are being renamed but cannot because their new name conflicts with an already existing index: {}. Renaming doesn't overwrite the other index name.", quoted(taken.into_iter().map(|(_, r)| r).collect())),
        )),
    }
}

/// `POST /swap-indexes` (with Meilisearch 1.50's `rename`).
pub async fn swap_indexes(admin: &Arc<Admin>, req: &Req) -> Result<Resp, ApiError> {
    let body = req.json()?;
    let Some(swaps) = parse_swaps(&body) else {
        return Err(refused_by_a_node(admin, Method::POST, "/swap-indexes", &body).await);
    };
    let guard = admin
        .lock_scopes(
            swaps
                .iter()
                .flat_map(|s| [s.lhs.clone(), s.rhs.clone()])
                .collect(),
        )
        .await;
    let details = swap_details(&swaps);
    if let Err(e) = check_swaps(&swaps, |u| admin.index(u).is_some()) {
        return failed_task(admin, None, TaskType::IndexSwap, details, e).await;
    }
    let nodes = admin.broadcast_nodes();
    let undo_body = inverse_swaps(&swaps);
    let d = match dispatch(admin, &nodes, Method::POST, "/swap-indexes", Some(&body)).await {
        Ok(d) => d,
        Err((accepted, e)) => {
            let undo: Vec<NodeHealth> = accepted.into_iter().map(|d| d.node).collect();
            let _ = run_step(
                admin,
                &undo,
                Method::POST,
                "/swap-indexes",
                Some(&undo_body),
            )
            .await;
            return Err(e);
        }
    };
    spawn_task(
        admin,
        guard,
        None,
        TaskType::IndexSwap,
        details.clone(),
        move |admin| async move {
            if let Err(e) = settle(&admin, &d).await {
                // Undo on every node whose task succeeded.
                admin
                    .metrics
                    .rollbacks
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut undo = Vec::new();
                for x in &d {
                    if let Ok(t) = wait_task(&admin, &x.node, x.task_uid).await {
                        if t["status"] == "succeeded" {
                            undo.push(x.node.clone());
                        }
                    }
                }
                let _ = run_step(
                    &admin,
                    &undo,
                    Method::POST,
                    "/swap-indexes",
                    Some(&undo_body),
                )
                .await;
                return Err(e);
            }
            for s in &swaps {
                match (admin.index(&s.lhs), admin.index(&s.rhs), s.rename) {
                    (Some(mut ma), None, true) => {
                        ma.uid = s.rhs.clone();
                        admin.put_index(ma).await?;
                        admin.remove_index(&s.lhs).await?;
                    }
                    (Some(mut ma), Some(mut mb), false) => {
                        std::mem::swap(&mut ma, &mut mb);
                        ma.uid = s.lhs.clone();
                        mb.uid = s.rhs.clone();
                        admin.put_index(ma).await?;
                        admin.put_index(mb).await?;
                    }
                    _ => {}
                }
            }
            admin.publish().await?;
            Ok(details)
        },
    )
    .await
}

/// kebab-case settings sub-route → camelCase settings key.
pub fn setting_key(sub: &str) -> Option<&'static str> {
    Some(match sub {
        "displayed-attributes" => "displayedAttributes",
        "searchable-attributes" => "searchableAttributes",
        "filterable-attributes" => "filterableAttributes",
        "sortable-attributes" => "sortableAttributes",
        "ranking-rules" => "rankingRules",
        "stop-words" => "stopWords",
        "synonyms" => "synonyms",
        "distinct-attribute" => "distinctAttribute",
        "typo-tolerance" => "typoTolerance",
        "faceting" => "faceting",
        "pagination" => "pagination",
        "proximity-precision" => "proximityPrecision",
        "separator-tokens" => "separatorTokens",
        "non-separator-tokens" => "nonSeparatorTokens",
        "dictionary" => "dictionary",
        "search-cutoff-ms" => "searchCutoffMs",
        "localized-attributes" => "localizedAttributes",
        "facet-search" => "facetSearch",
        "prefix-search" => "prefixSearch",
        "embedders" => "embedders",
        _ => return None,
    })
}

fn is_wildcard(v: &Value) -> bool {
    v.is_null() || v.as_array().is_some_and(|a| a.iter().any(|x| x == "*"))
}

fn mentions_reserved(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if s.starts_with(RESERVED_PREFIX) => Some(s.clone()),
        Value::Array(a) => a.iter().find_map(mentions_reserved),
        Value::Object(o) => o.get("attributePatterns").and_then(mentions_reserved),
        _ => None,
    }
}

/// Translates a client settings patch into the nodes' patch and the index's new metadata.
pub fn translate_settings(
    client: &Map<String, Value>,
    meta: &IndexMeta,
) -> Result<(Map<String, Value>, IndexMeta), ApiError> {
    let mut node = client.clone();
    let mut meta = meta.clone();
    for key in [
        "filterableAttributes",
        "sortableAttributes",
        "searchableAttributes",
        "displayedAttributes",
        "distinctAttribute",
    ] {
        if let Some(name) = client.get(key).and_then(mentions_reserved) {
            return Err(ApiError::core(
                ErrorCode::MiroirReservedField,
                format!(
                    "`{name}` is a field name reserved by Miroir and cannot be used in `{key}`."
                ),
            ));
        }
    }
    // Only a list or a reset is rewritten; any other value goes to the nodes as sent, so
    // that they refuse it with Meilisearch's own error (never "fixed" into a valid list).
    match client.get("filterableAttributes") {
        Some(Value::Array(list)) => {
            let mut list = list.clone();
            if !list.iter().any(|x| x == SHARD_FIELD) {
                list.push(json!(SHARD_FIELD));
            }
            node.insert("filterableAttributes".into(), Value::Array(list));
        }
        Some(Value::Null) => {
            node.insert("filterableAttributes".into(), json!([SHARD_FIELD]));
        }
        _ => {}
    }
    if let Some(s) = client.get("searchableAttributes") {
        meta.searchable_wildcard = is_wildcard(s);
    }
    if let Some(d) = client.get("displayedAttributes") {
        meta.displayed_wildcard = is_wildcard(d);
        if meta.displayed_wildcard {
            node.insert("displayedAttributes".into(), node_displayed(&meta));
        }
    }
    if let Some(r) = client.get("rankingRules") {
        meta.ranking_rules = match r.as_array() {
            Some(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            None => DEFAULT_RANKING_RULES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        };
    }
    if let Some(f) = client.get("faceting") {
        match f.get("maxValuesPerFacet") {
            Some(Value::Null) => meta.max_values_per_facet = 100,
            Some(v) => meta.max_values_per_facet = v.as_u64().unwrap_or(100) as u32,
            None if f.is_null() => meta.max_values_per_facet = 100,
            None => {}
        }
        if f.is_null() || f.get("sortFacetValuesBy").is_some_and(Value::is_null) {
            meta.sort_facet_values_by =
                [("*".to_string(), FacetOrder::Alpha)].into_iter().collect();
        } else if let Some(o) = f.get("sortFacetValuesBy").and_then(Value::as_object) {
            for (k, v) in o {
                let order = if v == "count" {
                    FacetOrder::Count
                } else {
                    FacetOrder::Alpha
                };
                meta.sort_facet_values_by.insert(k.clone(), order);
            }
        }
    }
    overfetch_facets(&mut node);
    // A string or a reset; any other value is left to the nodes to refuse.
    match client.get("distinctAttribute") {
        Some(Value::String(d)) => meta.distinct_attribute = Some(d.clone()),
        Some(Value::Null) => meta.distinct_attribute = None,
        _ => {}
    }
    if let Some(p) = client.get("pagination") {
        meta.max_total_hits = p
            .get("maxTotalHits")
            .and_then(Value::as_u64)
            .map_or(1000, |v| v as u32);
    }
    meta.updated_at = crate::timefmt::now_rfc3339();
    Ok((node, meta))
}

/// Meilisearch 1.50's settings keys in the order its `Settings` struct serialises them —
/// the order of a `settingsUpdate` task's `details`, whatever the request's order.
const SETTINGS_ORDER: &[&str] = &[
    "displayedAttributes",
    "searchableAttributes",
    "filterableAttributes",
    "sortableAttributes",
    "foreignKeys",
    "rankingRules",
    "stopWords",
    "nonSeparatorTokens",
    "separatorTokens",
    "dictionary",
    "synonyms",
    "distinctAttribute",
    "proximityPrecision",
    "typoTolerance",
    "faceting",
    "pagination",
    "embedders",
    "searchCutoffMs",
    "localizedAttributes",
    "facetSearch",
    "prefixSearch",
    "chat",
];

/// Settings Meilisearch holds as sets (`BTreeSet<String>`): echoed sorted and deduplicated.
const SET_SETTINGS: &[&str] = &[
    "sortableAttributes",
    "stopWords",
    "nonSeparatorTokens",
    "separatorTokens",
    "dictionary",
];

/// A string list echoed as Meilisearch's `BTreeSet<String>` would be; anything else as sent
/// (an invalid value never reaches a task: the nodes refuse it first).
fn as_set(v: &Value) -> Value {
    match v.as_array() {
        Some(a) if a.iter().all(Value::is_string) => {
            let mut items: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
            items.sort_unstable();
            items.dedup();
            json!(items)
        }
        _ => v.clone(),
    }
}

/// An object echoed as a `BTreeMap<String, _>` (keys sorted) would be.
fn as_sorted_map(v: &Value) -> Value {
    match v.as_object() {
        Some(o) => {
            let mut entries: Vec<(&String, &Value)> = o.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )
        }
        None => v.clone(),
    }
}

/// The object's keys in `order` first (those present), then any others as they came.
fn ordered(v: &Value, order: &[&str], each: impl Fn(&str, &Value) -> Value) -> Value {
    let Some(o) = v.as_object() else {
        return v.clone();
    };
    let mut out = Map::new();
    for k in order {
        if let Some(x) = o.get(*k) {
            out.insert((*k).to_string(), each(k, x));
        }
    }
    for (k, x) in o {
        if !out.contains_key(k) {
            out.insert(k.clone(), each(k, x));
        }
    }
    Value::Object(out)
}

/// A `filterableAttributes` rule object as Meilisearch echoes it: `attributePatterns`, then
/// `features` with every default filled in (`facetSearch: false`, `filter: {equality: true,
/// comparison: false}`). Plain attribute names, and shapes the nodes refuse, as sent.
fn filterable_rule(v: &Value) -> Value {
    let Some(o) = v.as_object() else {
        return v.clone();
    };
    let features = o.get("features").cloned().unwrap_or_else(|| json!({}));
    let filter = features.get("filter").cloned().unwrap_or_else(|| json!({}));
    let flag =
        |from: &Value, k: &str, default: bool| from.get(k).cloned().unwrap_or(json!(default));
    if !features.is_object() || !filter.is_object() {
        return v.clone();
    }
    let mut out = Map::new();
    if let Some(p) = o.get("attributePatterns") {
        out.insert("attributePatterns".into(), p.clone());
    }
    out.insert(
        "features".into(),
        json!({
            "facetSearch": flag(&features, "facetSearch", false),
            "filter": {"equality": flag(&filter, "equality", true), "comparison": flag(&filter, "comparison", false)},
        }),
    );
    for (k, x) in o {
        if !out.contains_key(k) {
            out.insert(k.clone(), x.clone());
        }
    }
    Value::Object(out)
}

/// Meilisearch's redaction of an embedder `apiKey` in task details (`hide_secret`).
fn hide_secret(secret: &str) -> String {
    let keep = match secret.len() {
        0..=9 => 0,
        10..=19 => 2,
        20..=29 => 3,
        _ => 5,
    };
    let mut cut = keep.min(secret.len());
    while !secret.is_char_boundary(cut) {
        cut += 1;
    }
    let stars = match keep {
        0 => "XXX...",
        2 => "XXXX...",
        3 => "XXXXX...",
        _ => "XXXXXX...",
    };
    format!("{}{stars}", &secret[..cut])
}

/// The `details` of a `settingsUpdate` task for the client's settings patch, as Meilisearch
/// 1.50 echoes it (checked against a real node): keys in `Settings` order, sets sorted and
/// deduplicated, maps sorted by key, a reset of `displayedAttributes`/`searchableAttributes`
/// shown as `["*"]`, and embedder API keys redacted.
pub fn settings_details(client: &Map<String, Value>) -> Value {
    ordered(
        &Value::Object(client.clone()),
        SETTINGS_ORDER,
        |k, v| match k {
            "displayedAttributes" | "searchableAttributes" if v.is_null() => json!(["*"]),
            k if SET_SETTINGS.contains(&k) => as_set(v),
            "filterableAttributes" => match v.as_array() {
                Some(a) => Value::Array(a.iter().map(filterable_rule).collect()),
                None => v.clone(),
            },
            "localizedAttributes" => match v.as_array() {
                Some(a) => Value::Array(
                    a.iter()
                        .map(|r| ordered(r, &["attributePatterns", "locales"], |_, x| x.clone()))
                        .collect(),
                ),
                None => v.clone(),
            },
            "synonyms" => as_sorted_map(v),
            "typoTolerance" => ordered(
                v,
                &[
                    "enabled",
                    "minWordSizeForTypos",
                    "disableOnWords",
                    "disableOnAttributes",
                    "disableOnNumbers",
                ],
                |k, v| match k {
                    "disableOnWords" | "disableOnAttributes" => as_set(v),
                    "minWordSizeForTypos" => ordered(v, &["oneTypo", "twoTypos"], |_, x| x.clone()),
                    _ => v.clone(),
                },
            ),
            "faceting" => ordered(
                v,
                &["maxValuesPerFacet", "sortFacetValuesBy"],
                |k, v| match k {
                    "sortFacetValuesBy" => as_sorted_map(v),
                    _ => v.clone(),
                },
            ),
            "embedders" => {
                let mut m = as_sorted_map(v);
                if let Some(o) = m.as_object_mut() {
                    for e in o.values_mut() {
                        if let Some(Value::String(key)) = e.get_mut("apiKey") {
                            *key = hide_secret(key);
                        }
                    }
                }
                m
            }
            _ => v.clone(),
        },
    )
}

/// Whether a node's read-back `got` carries what we `sent` (nulls = resets, not checked;
/// objects compared key by key; sets compared ignoring order, ordered lists exactly).
pub fn readback_matches(key: &str, sent: &Value, got: &Value) -> bool {
    match (key, sent, got) {
        (_, Value::Null, _) => true,
        // Meilisearch redacts embedder API keys on read: nothing to compare.
        ("apiKey", _, _) => true,
        // Rule objects are read back with every feature default filled in.
        ("filterableAttributes", Value::Array(s), Value::Array(g)) => same_set(
            &s.iter().map(filterable_rule).collect::<Vec<_>>(),
            &g.iter().map(filterable_rule).collect::<Vec<_>>(),
        ),
        // Locales are read back canonicalised (`fr` → `fra`): compare the rules' patterns
        // and how many locales each has.
        ("localizedAttributes", Value::Array(s), Value::Array(g)) => {
            let shape = |v: &Value| {
                (
                    v.get("attributePatterns").cloned(),
                    v.get("locales").and_then(Value::as_array).map(Vec::len),
                )
            };
            s.len() == g.len() && s.iter().zip(g).all(|(a, b)| shape(a) == shape(b))
        }
        // A `null` inside an object means "the default": nodes read it back filled in, or
        // leave the key out (embedder fields such as `distribution`, `url`).
        (_, Value::Object(s), Value::Object(g)) => s
            .iter()
            .all(|(k, v)| v.is_null() || g.get(k).is_some_and(|gv| readback_matches(k, v, gv))),
        ("searchableAttributes" | "displayedAttributes" | "rankingRules", _, _) => sent == got,
        (_, Value::Array(s), Value::Array(g)) => same_set(s, g),
        (_, s, g) => s == g,
    }
}

/// Equal as sets (order and repetitions ignored; objects compared by content, whatever
/// their key order).
fn same_set(a: &[Value], b: &[Value]) -> bool {
    a.iter().all(|x| b.contains(x)) && b.iter().all(|x| a.contains(x))
}

/// Settings of [`SETTINGS_ORDER`] Miroir does not send to the nodes (experimental): a
/// `DELETE /settings` task still lists them (as `null`).
const RESET_ALL_DETAILS_EXTRA: &[&str] = &["foreignKeys", "chat"];

/// Every settings write: `PATCH /settings`, `PUT|PATCH|DELETE /settings/{sub}`, `DELETE /settings`
/// (`reset_all`). `client` is the equivalent `PATCH /settings` body.
pub async fn update_settings(
    admin: &Arc<Admin>,
    uid: &str,
    client: Map<String, Value>,
    reset_all: bool,
) -> Result<Resp, ApiError> {
    let guard = admin.lock_scopes(vec![uid.to_string()]).await;
    let mut echoed = client.clone();
    if reset_all {
        for k in RESET_ALL_DETAILS_EXTRA {
            echoed.insert((*k).to_string(), Value::Null);
        }
    }
    let details = settings_details(&echoed);
    let meta = match admin.index(uid) {
        Some(m) => m,
        // Meilisearch creates a missing index on a settings update; so do we, first (and
        // wait for it, so the rollback snapshot below already has `_miroir_shard`).
        None => {
            let nodes = admin.broadcast_nodes();
            create_everywhere(admin, &nodes, uid, None, true).await?
        }
    };
    let (node_patch, new_meta) = translate_settings(&client, &meta)?;
    let path = settings_path(uid);
    // 1. Snapshot what every reachable node has now: the rollback target. Nodes marked
    //    failed or unreachable are set apart (module docs, "Unreachable nodes").
    let mut nodes = Vec::new();
    let mut before = Vec::new();
    let mut unreachable = Vec::new();
    for n in admin.broadcast_nodes() {
        if n.status == NodeStatus::Failed {
            unreachable.push(n);
            continue;
        }
        match admin
            .client
            .send(&n.address, Method::GET, &path, None)
            .await
        {
            Ok(r) if r.is_success() => {
                before.push(r.json());
                nodes.push(n);
            }
            Ok(r) => {
                return Err(ApiError::Node {
                    status: r.status,
                    body: r.json(),
                })
            }
            Err(_) => unreachable.push(n),
        }
    }
    require_coverage(admin, uid, meta.shards, &unreachable)?;
    let node_patch = Value::Object(node_patch);
    // 2. Apply.
    let applied = match dispatch_reachable(admin, &nodes, Method::PATCH, &path, Some(&node_patch))
        .await
        .and_then(|r| {
            // Unreachable between the snapshot and now: set apart too, if coverage allows.
            unreachable.extend(r.unreachable);
            match require_coverage(admin, uid, meta.shards, &unreachable) {
                Ok(()) => Ok(r.ok),
                Err(e) => Err((r.ok, e)),
            }
        }) {
        Ok(d) => d,
        Err((accepted, e)) => {
            let accepted = accepted.iter().map(|d| d.node.id.clone()).collect();
            restore(admin, &nodes, &before, &path, accepted).await;
            return Err(e);
        }
    };
    // Only the nodes that accepted take part from here (their snapshots stay aligned).
    let (nodes, before): (Vec<NodeHealth>, Vec<Value>) = nodes
        .into_iter()
        .zip(before)
        .filter(|(n, _)| applied.iter().any(|d| d.node.id == n.id))
        .unzip();
    // Durable before the task is acknowledged: a crash cannot forget a node to repair.
    if let Err(e) = crate::repair::mark(admin, uid, &unreachable).await {
        let all = nodes.iter().map(|n| n.id.clone()).collect();
        restore(admin, &nodes, &before, &path, all).await;
        return Err(e.into());
    }
    let uid = uid.to_string();
    spawn_task(admin, guard, Some(&uid.clone()), TaskType::SettingsUpdate, details.clone(), move |admin| async move {
        let all: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
        if let Err(e) = settle(&admin, &applied).await {
            restore(&admin, &nodes, &before, &path, all).await;
            return Err(e);
        }
        // 3. Verify the read-back on every node that took it.
        for n in &nodes {
            let got = match admin.client.send(&n.address, Method::GET, &path, None).await {
                Ok(r) if r.is_success() => r.json(),
                Ok(r) => Value::from(r.status),
                Err(e) => Value::from(e.to_string()),
            };
            let bad = node_patch.as_object().into_iter().flatten().find(|(k, v)| !readback_matches(k, v, &got[k.as_str()]));
            if let Some((k, _)) = bad {
                restore(&admin, &nodes, &before, &path, all).await;
                return Err(ApiError::internal(format!("settings verification failed: node `{}` does not report the new `{k}`; every node was rolled back", n.id)));
            }
        }
        admin.put_index(new_meta).await?;
        admin.publish().await?;
        Ok(details)
    })
    .await
}

/// Puts the snapshotted settings back on the listed nodes and waits for them.
async fn restore(
    admin: &Admin,
    nodes: &[NodeHealth],
    before: &[Value],
    path: &str,
    which: Vec<String>,
) {
    admin
        .metrics
        .rollbacks
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    for (n, old) in nodes.iter().zip(before) {
        if !which.contains(&n.id) {
            continue;
        }
        match run_step(
            admin,
            std::slice::from_ref(n),
            Method::PATCH,
            path,
            Some(old),
        )
        .await
        {
            Ok(_) => {}
            Err(e) => {
                tracing::error!(node = %n.id, error = %e, "settings rollback failed; node settings may have drifted")
            }
        }
    }
}

/// Rewrites a location in a node's error message from the `PATCH /settings` body Miroir
/// sent (`.distinctAttribute`, `.typoTolerance.enabled`, `.filterableAttributes[0]`) to the
/// sub-route body the client sent, which Meilisearch validates as the root value: the
/// whole value has no location (`Invalid value type: expected …`), a part of it keeps the
/// rest of the path (`at `.enabled``, `at `[0]``). Checked against a real 1.50 node.
pub fn relocate_to_sub_route(message: &str, key: &str) -> String {
    for prefix in [" at ", " inside "] {
        let whole = format!("{prefix}`.{key}`");
        if let Some(i) = message.find(&whole) {
            return format!("{}{}", &message[..i], &message[i + whole.len()..]);
        }
    }
    for (from, to) in [(format!("`.{key}."), "`."), (format!("`.{key}["), "`[")] {
        if let Some(i) = message.find(&from) {
            return format!("{}{to}{}", &message[..i], &message[i + from.len()..]);
        }
    }
    message.to_string()
}

/// A settings sub-route's error as Meilisearch gives it: a node's refusal of the
/// equivalent settings patch is relocated ([`relocate_to_sub_route`]); other errors as is.
pub fn as_sub_route_error(e: ApiError, sub: &str) -> ApiError {
    match (e, setting_key(sub)) {
        (ApiError::Node { status, mut body }, Some(key)) => {
            if let Some(m) = body.get("message").and_then(Value::as_str) {
                body["message"] = Value::from(relocate_to_sub_route(m, key));
            }
            ApiError::Node { status, body }
        }
        (e, _) => e,
    }
}

/// The `PATCH /settings` body equivalent to a settings request.
pub fn settings_request_body(
    method: &Method,
    sub: Option<&str>,
    req: &Req,
) -> Result<Map<String, Value>, ApiError> {
    let unknown = || ApiError::core(ErrorCode::NotFound, "Not Found");
    match (sub, method) {
        (None, &Method::PATCH) => match req.json()? {
            Value::Object(m) => Ok(m),
            _ => Err(ApiError::invalid(
                "bad_request",
                "Invalid value type: expected an object",
            )),
        },
        // Reset all: every setting the nodes hold (the experimental ones Miroir does not send
        // are echoed in the task details only).
        (None, &Method::DELETE) => Ok(SETTINGS_ORDER
            .iter()
            .filter(|k| !RESET_ALL_DETAILS_EXTRA.contains(k))
            .map(|k| (k.to_string(), Value::Null))
            .collect()),
        (Some(s), &Method::DELETE) => Ok([(
            setting_key(s).ok_or_else(unknown)?.to_string(),
            Value::Null,
        )]
        .into_iter()
        .collect()),
        (Some(s), &Method::PUT | &Method::PATCH) => Ok([(
            setting_key(s).ok_or_else(unknown)?.to_string(),
            req.json()?,
        )]
        .into_iter()
        .collect()),
        _ => Err(unknown()),
    }
}

/// Creates an index Miroir does not know on every node (waiting for the creation, so a
/// refused uid fails here) with the initial node settings (enqueued, or awaited with
/// `wait_settings`), and records its metadata. Rolls the creation back on failure.
async fn create_everywhere(
    admin: &Admin,
    nodes: &[NodeHealth],
    uid: &str,
    primary_key: Option<String>,
    wait_settings: bool,
) -> Result<IndexMeta, ApiError> {
    let meta = new_meta(admin, uid, primary_key.clone());
    let create = json!({"uid": uid, "primaryKey": primary_key});
    let settings = initial_node_settings(&meta);
    let created = if wait_settings {
        match run_step(admin, nodes, Method::POST, "/indexes", Some(&create)).await {
            Ok(_) => run_step(
                admin,
                nodes,
                Method::PATCH,
                &settings_path(uid),
                Some(&settings),
            )
            .await
            .map(|_| ()),
            Err(e) => Err(e),
        }
    } else {
        // Enqueue only (a write's first batch): each node processes the creation, the
        // settings and then the write's documents in order, so waiting for the creation
        // would only delay the client's first write (≈ 0.5 s on a real node). A node that
        // refuses synchronously (an invalid uid) still fails it here.
        match dispatch(admin, nodes, Method::POST, "/indexes", Some(&create)).await {
            Ok(_) => dispatch(
                admin,
                nodes,
                Method::PATCH,
                &settings_path(uid),
                Some(&settings),
            )
            .await
            .map(|_| ())
            .map_err(|(_, e)| e),
            Err((_, e)) => Err(e),
        }
    };
    if let Err(e) = created {
        rollback_create(admin, uid, nodes.to_vec()).await;
        return Err(e);
    }
    admin.put_index(meta.clone()).await?;
    Ok(meta)
}

/// Adds the names in `names` that `meta` lacks to its fields — in the given order,
/// deduplicated, reserved ones never — and, when the client's displayed list is `*`, gives the
/// nodes the longer explicit list (enqueued: each node applies it before what follows).
async fn add_fields(
    admin: &Arc<Admin>,
    uid: &str,
    nodes: &[NodeHealth],
    meta: &mut IndexMeta,
    names: &[String],
) -> Result<(), ApiError> {
    let mut fresh: Vec<String> = Vec::new();
    for f in names {
        if !f.starts_with(RESERVED_PREFIX) && !meta.fields.contains(f) && !fresh.contains(f) {
            fresh.push(f.clone());
        }
    }
    if fresh.is_empty() {
        return Ok(());
    }
    meta.fields.extend(fresh);
    if !meta.displayed_wildcard {
        return Ok(());
    }
    let patch = json!({"displayedAttributes": node_displayed(meta)});
    // Nodes that cannot be reached get it on recovery (crate::repair). Refuse before touching
    // any node when the failed ones alone already lose a shard.
    let down: Vec<NodeHealth> = nodes
        .iter()
        .filter(|n| n.status == NodeStatus::Failed)
        .cloned()
        .collect();
    require_coverage(admin, uid, meta.shards, &down)?;
    let reached = dispatch_reachable(
        admin,
        nodes,
        Method::PATCH,
        &settings_path(uid),
        Some(&patch),
    )
    .await
    .map_err(|(_, e)| e)?;
    // On refusal the reachable nodes keep a longer explicit list than the metadata (harmless:
    // the fields are re-added by the next write that brings them).
    require_coverage(admin, uid, meta.shards, &reached.unreachable)?;
    crate::repair::mark(admin, uid, &reached.unreachable).await?;
    Ok(())
}

/// `POST /indexes/{uid}/documents/edit` (Meilisearch's experimental update by function):
/// every node runs the function over its own documents (every copy of a shard runs it: the
/// function sees the same document everywhere); one `documentEdition` task whose counts are
/// the nodes' sums per copy of the data. Fields the function adds join the index's fields
/// (and the nodes' displayed list) when the task settles. An index Miroir does not know gets a
/// failed task, as Meilisearch's fails with `index_not_found`.
pub async fn edit_documents(admin: &Arc<Admin>, uid: &str, req: &Req) -> Result<Resp, ApiError> {
    let body = req.json()?;
    let original_filter = match body.get("filter") {
        None | Some(Value::Null) => Value::Null,
        Some(f) => Value::String(f.to_string()),
    };
    let details = json!({
        "editedDocuments": null,
        "deletedDocuments": null,
        "originalFilter": original_filter,
        "context": body.get("context").cloned().unwrap_or(Value::Null),
        "function": body.get("function").cloned().unwrap_or(Value::Null),
    });
    let path = format!("/indexes/{}/documents/edit", encode_segment(uid));
    let owned = uid.to_string();
    let mut out = details.clone();
    index_task(
        admin,
        uid,
        TaskType::DocumentEdition,
        details,
        Method::POST,
        path,
        Some(&body),
        move |admin, done| async move {
            let copies = u64::from(admin.copies()).max(1);
            let sum = |k: &str| -> u64 {
                done.iter()
                    .filter_map(|t| t["details"][k].as_u64())
                    .sum::<u64>()
                    / copies
            };
            out["editedDocuments"] = json!(sum("editedDocuments"));
            out["deletedDocuments"] = json!(sum("deletedDocuments"));
            if let Some(first) = done.first() {
                for k in ["originalFilter", "context", "function"] {
                    if let Some(v) = first["details"].get(k) {
                        out[k] = v.clone();
                    }
                }
            }
            // Fields the function added: every node's field distribution.
            let nodes = admin.broadcast_nodes();
            let mut names = Vec::new();
            let stats = format!("/indexes/{}/stats", encode_segment(&owned));
            for n in &nodes {
                if let Ok(r) = admin
                    .client
                    .send(&n.address, Method::GET, &stats, None)
                    .await
                {
                    if let Some(fd) = r.json()["fieldDistribution"].as_object() {
                        names.extend(fd.keys().cloned());
                    }
                }
            }
            if let Some(mut meta) = admin.index(&owned) {
                let before = meta.fields.len();
                add_fields(&admin, &owned, &nodes, &mut meta, &names).await?;
                if meta.fields.len() != before {
                    meta.updated_at = crate::timefmt::now_rfc3339();
                    admin.put_index(meta).await?;
                    admin.publish().await?;
                }
            }
            Ok(out)
        },
    )
    .await
}

/// `prepare-write` (docs/internals/control-protocol.md §2.2).
pub async fn prepare_write(admin: &Arc<Admin>, uid: &str, req: &Req) -> Result<Resp, ApiError> {
    let body = PrepareWrite::decode(&req.body).map_err(|e| {
        ApiError::core(
            ErrorCode::BadRequest,
            format!("invalid prepare-write body: {e}"),
        )
    })?;
    let _guard = admin.lock_scopes(vec![uid.to_string()]).await;
    let nodes = admin.broadcast_nodes();
    let mut meta = match admin.index(uid) {
        Some(m) => m,
        None => create_everywhere(admin, &nodes, uid, body.primary_key.clone(), false).await?,
    };
    match (&meta.primary_key, &body.primary_key) {
        (None, Some(pk)) => {
            let path = format!("/indexes/{}", encode_segment(uid));
            dispatch(
                admin,
                &nodes,
                Method::PATCH,
                &path,
                Some(&json!({"primaryKey": pk})),
            )
            .await
            .map_err(|(_, e)| e)?;
            meta.primary_key = Some(pk.clone());
        }
        (Some(have), Some(pk))
            if have != pk && body.primary_key_source == Some(PkSource::Query) =>
        {
            return Err(ApiError::core(
                ErrorCode::IndexPrimaryKeyAlreadyExists,
                format!("Index `{uid}`: Index already has a primary key: `{have}`."),
            ));
        }
        _ => {}
    }
    add_fields(admin, uid, &nodes, &mut meta, &body.new_fields).await?;
    meta.updated_at = crate::timefmt::now_rfc3339();
    admin.put_index(meta.clone()).await?;
    let generation = admin.publish().await?;
    Ok(Resp::json(
        200,
        &Prepared {
            generation,
            index: meta,
        },
    ))
}

/// `POST /dumps` and `POST /snapshots`: one Miroir task over one node task per node. A dump
/// or snapshot is **per node** (each node writes its own part into its own dump directory);
/// `details.dumpUid` is the first node's.
pub async fn node_local_task(
    admin: &Arc<Admin>,
    path: &str,
    kind: TaskType,
) -> Result<Resp, ApiError> {
    let guard = admin.lock_scopes(vec![GLOBAL.to_string()]).await;
    let nodes = admin.broadcast_nodes();
    let d = dispatch(admin, &nodes, Method::POST, path, None)
        .await
        .map_err(|(_, e)| e)?;
    let details = if kind == TaskType::DumpCreation {
        json!({"dumpUid": null})
    } else {
        json!({})
    };
    spawn_task(
        admin,
        guard,
        None,
        kind,
        details.clone(),
        move |admin| async move {
            let done = settle(&admin, &d).await?;
            let mut details = details;
            if kind == TaskType::DumpCreation {
                details["dumpUid"] = done
                    .first()
                    .map(|t| t["details"]["dumpUid"].clone())
                    .unwrap_or(Value::Null);
            }
            Ok(details)
        },
    )
    .await
}

/// `PATCH /experimental-features`: synchronous on Meilisearch, so synchronous here too —
/// applied on every node, restored on the ones that accepted if one refuses.
pub async fn experimental_features(admin: &Arc<Admin>, req: &Req) -> Result<Resp, ApiError> {
    let body = req.json()?;
    let _guard = admin.lock_scopes(vec![GLOBAL.to_string()]).await;
    let nodes = admin.broadcast_nodes();
    let mut before = Vec::new();
    for n in &nodes {
        match admin
            .client
            .send(&n.address, Method::GET, "/experimental-features", None)
            .await
        {
            Ok(r) if r.is_success() => before.push(r.json()),
            Ok(r) => {
                return Err(ApiError::Node {
                    status: r.status,
                    body: r.json(),
                })
            }
            Err(e) => return Err(unavailable(n, e)),
        }
    }
    let mut first = None;
    for (i, n) in nodes.iter().enumerate() {
        let r = admin
            .client
            .send(
                &n.address,
                Method::PATCH,
                "/experimental-features",
                Some(&body),
            )
            .await;
        let err = match r {
            Ok(r) if r.is_success() => {
                first.get_or_insert(r.json());
                continue;
            }
            Ok(r) => ApiError::Node {
                status: r.status,
                body: r.json(),
            },
            Err(e) => unavailable(n, e),
        };
        admin
            .metrics
            .rollbacks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for (m, old) in nodes.iter().zip(&before).take(i) {
            let _ = admin
                .client
                .send(
                    &m.address,
                    Method::PATCH,
                    "/experimental-features",
                    Some(old),
                )
                .await;
        }
        admin.metrics.broadcast(false);
        return Err(err);
    }
    admin.metrics.broadcast(true);
    Ok(Resp::json(200, &first.unwrap_or_else(|| json!({}))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> IndexMeta {
        IndexMeta {
            uid: "m".into(),
            primary_key: Some("id".into()),
            shards: 4,
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
        }
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn shard_field_is_always_filterable_on_nodes() {
        let (n, _) =
            translate_settings(&obj(json!({"filterableAttributes": ["genre"]})), &meta()).unwrap();
        assert_eq!(n["filterableAttributes"], json!(["genre", "_miroir_shard"]));
        let (n, _) =
            translate_settings(&obj(json!({"filterableAttributes": null})), &meta()).unwrap();
        assert_eq!(n["filterableAttributes"], json!(["_miroir_shard"]));
        // An invalid value is passed through for the nodes to refuse, not replaced.
        let (n, _) =
            translate_settings(&obj(json!({"filterableAttributes": "genre"})), &meta()).unwrap();
        assert_eq!(n["filterableAttributes"], json!("genre"));
    }

    #[test]
    fn nodes_over_fetch_facet_values_and_meta_keeps_the_clients_limit() {
        let (n, m) =
            translate_settings(&obj(json!({"faceting": {"maxValuesPerFacet": 7}})), &meta())
                .unwrap();
        assert_eq!(
            n["faceting"]["maxValuesPerFacet"],
            json!(NODE_MAX_VALUES_PER_FACET)
        );
        assert_eq!(m.max_values_per_facet, 7);
        let (n, _) = translate_settings(
            &obj(json!({"faceting": {"maxValuesPerFacet": 5000}})),
            &meta(),
        )
        .unwrap();
        assert_eq!(n["faceting"]["maxValuesPerFacet"], json!(5000));
        let (n, m) = translate_settings(&obj(json!({"faceting": null})), &meta()).unwrap();
        assert_eq!(
            n["faceting"],
            json!({"maxValuesPerFacet": NODE_MAX_VALUES_PER_FACET, "sortFacetValuesBy": null})
        );
        assert_eq!(m.max_values_per_facet, 100);
        // Only the limit is touched; invalid values go to the nodes as sent.
        let (n, _) = translate_settings(
            &obj(json!({"faceting": {"sortFacetValuesBy": {"*": "count"}}})),
            &meta(),
        )
        .unwrap();
        assert_eq!(n["faceting"], json!({"sortFacetValuesBy": {"*": "count"}}));
        let (n, _) = translate_settings(
            &obj(json!({"faceting": {"maxValuesPerFacet": "x"}})),
            &meta(),
        )
        .unwrap();
        assert_eq!(n["faceting"]["maxValuesPerFacet"], json!("x"));
    }

    #[test]
    fn displayed_wildcard_becomes_the_field_list_searchable_stays() {
        let (n, m) = translate_settings(
            &obj(json!({"searchableAttributes": ["*"], "displayedAttributes": ["title"]})),
            &meta(),
        )
        .unwrap();
        // Searchable `*` stays `*` on the nodes (decision 006): attributes rank as on one
        // Meilisearch, and the shard field yields no word.
        assert_eq!(n["searchableAttributes"], json!(["*"]));
        assert!(m.searchable_wildcard);
        assert_eq!(n["displayedAttributes"], json!(["title"]));
        assert!(!m.displayed_wildcard);
        let (n, m) = translate_settings(
            &obj(json!({"searchableAttributes": null, "displayedAttributes": ["*"]})),
            &meta(),
        )
        .unwrap();
        assert_eq!(n["searchableAttributes"], Value::Null);
        assert!(m.searchable_wildcard);
        assert_eq!(n["displayedAttributes"], json!(["id", "title"]));
        assert!(m.displayed_wildcard);
    }

    #[test]
    fn reserved_fields_are_refused_and_merge_settings_tracked() {
        let e = translate_settings(
            &obj(json!({"sortableAttributes": ["_miroir_shard"]})),
            &meta(),
        )
        .unwrap_err();
        assert_eq!(e.body()["code"], "miroir_reserved_field");
        let (_, m) = translate_settings(
            &obj(json!({"rankingRules": ["sort", "words"], "faceting": {"maxValuesPerFacet": 7, "sortFacetValuesBy": {"genre": "count"}}, "pagination": {"maxTotalHits": 50}})),
            &meta(),
        )
        .unwrap();
        assert_eq!(m.ranking_rules, vec!["sort", "words"]);
        assert_eq!(m.max_values_per_facet, 7);
        assert_eq!(
            m.sort_facet_values_by.get("genre"),
            Some(&FacetOrder::Count)
        );
        assert_eq!(m.max_total_hits, 50);
        assert_eq!(m.distinct_attribute, None);
        let (_, m) =
            translate_settings(&obj(json!({"distinctAttribute": "sku"})), &meta()).unwrap();
        assert_eq!(m.distinct_attribute.as_deref(), Some("sku"));
        let (_, m) = translate_settings(&obj(json!({"distinctAttribute": null})), &m).unwrap();
        assert_eq!(m.distinct_attribute, None);
        // Anything else is the nodes' to refuse; the tracked value does not change.
        let (_, m) = translate_settings(&obj(json!({"distinctAttribute": 3})), &meta()).unwrap();
        assert_eq!(m.distinct_attribute, None);
    }

    #[test]
    fn vectors_stay_out_of_the_nodes_displayed_list() {
        let mut m = meta();
        m.fields.push("_vectors".into());
        m.fields.push("year".into());
        let (n, _) = translate_settings(&obj(json!({"displayedAttributes": ["*"]})), &m).unwrap();
        assert_eq!(n["displayedAttributes"], json!(["id", "title", "year"]));
        assert_eq!(
            initial_node_settings(&m)["displayedAttributes"],
            json!(["id", "title", "year"])
        );
    }

    #[test]
    fn readback_accepts_defaults_for_nulls_inside_objects() {
        // Sent by the Python SDK; read back from Meilisearch 1.50 with defaults filled in and
        // the null fields left out.
        let sent = json!({"default": {"source": "userProvided", "dimensions": 1, "distribution": null},
            "open_ai": {"source": "openAi", "url": null, "apiKey": null, "model": null, "documentTemplate": null}});
        let got = json!({"default": {"source": "userProvided", "dimensions": 1},
            "open_ai": {"source": "openAi", "model": "text-embedding-3-small", "documentTemplate": "{{doc}}"}});
        assert!(readback_matches("embedders", &sent, &got));
        // A value that was sent must still be read back.
        let got_wrong = json!({"default": {"source": "userProvided", "dimensions": 2}, "open_ai": {"source": "openAi"}});
        assert!(!readback_matches("embedders", &sent, &got_wrong));
        let missing = json!({"default": {"source": "userProvided", "dimensions": 1}});
        assert!(!readback_matches("embedders", &sent, &missing));
    }

    #[test]
    fn readback_compares_sets_and_ordered_lists() {
        assert!(readback_matches(
            "filterableAttributes",
            &json!(["b", "a"]),
            &json!(["a", "b"])
        ));
        assert!(!readback_matches(
            "searchableAttributes",
            &json!(["b", "a"]),
            &json!(["a", "b"])
        ));
        assert!(readback_matches(
            "typoTolerance",
            &json!({"enabled": false}),
            &json!({"enabled": false, "disableOnWords": []})
        ));
        assert!(!readback_matches(
            "typoTolerance",
            &json!({"enabled": false}),
            &json!({"enabled": true})
        ));
        assert!(readback_matches("stopWords", &Value::Null, &json!(["x"])));
        // What a real Meilisearch 1.50 reads back for accepted patches.
        assert!(readback_matches(
            "filterableAttributes",
            &json!([{"attributePatterns": ["genre"]}, "title"]),
            &json!(["title", {"attributePatterns": ["genre"], "features": {"facetSearch": false, "filter": {"equality": true, "comparison": false}}}])
        ));
        assert!(!readback_matches(
            "filterableAttributes",
            &json!([{"attributePatterns": ["genre"], "features": {"facetSearch": true}}]),
            &json!([{"attributePatterns": ["genre"], "features": {"facetSearch": false, "filter": {"equality": true, "comparison": false}}}])
        ));
        assert!(readback_matches(
            "localizedAttributes",
            &json!([{"locales": ["fr", "en"], "attributePatterns": ["a*"]}]),
            &json!([{"attributePatterns": ["a*"], "locales": ["fra", "eng"]}])
        ));
        assert!(!readback_matches(
            "localizedAttributes",
            &json!([{"locales": ["fr"], "attributePatterns": ["a*"]}]),
            &json!([{"attributePatterns": ["b*"], "locales": ["fra"]}])
        ));
        assert!(readback_matches(
            "embedders",
            &json!({"e": {"source": "openAi", "apiKey": "sk-secret-value"}}),
            &json!({"e": {"source": "openAi", "apiKey": "sk-XXX...", "model": "m"}})
        ));
        assert!(readback_matches(
            "synonyms",
            &json!({"a": ["x", "y"]}),
            &json!({"a": ["y", "x"]})
        ));
    }

    /// Node messages for the settings patch, and what Meilisearch 1.50 answers on the
    /// sub-route (both captured from real nodes).
    #[test]
    fn sub_route_errors_are_relocated() {
        let cases = [
            ("Invalid value type at `.distinctAttribute`: expected a string, but found a positive integer: `12`", "distinctAttribute",
             "Invalid value type: expected a string, but found a positive integer: `12`"),
            ("Invalid value type at `.filterableAttributes[0]`: expected a string, but found a positive integer: `12`", "filterableAttributes",
             "Invalid value type at `[0]`: expected a string, but found a positive integer: `12`"),
            ("Invalid value type at `.typoTolerance.minWordSizeForTypos.oneTypo`: expected a positive integer, but found a string: `\"a\"`", "typoTolerance",
             "Invalid value type at `.minWordSizeForTypos.oneTypo`: expected a positive integer, but found a string: `\"a\"`"),
            ("Unknown field `foo` inside `.typoTolerance`: expected one of `enabled`", "typoTolerance",
             "Unknown field `foo`: expected one of `enabled`"),
            ("Unknown value `x` at `.proximityPrecision`: expected one of `byWord`, `byAttribute`", "proximityPrecision",
             "Unknown value `x`: expected one of `byWord`, `byAttribute`"),
            ("Index `m` not found.", "stopWords", "Index `m` not found."),
        ];
        for (node, key, meili) in cases {
            assert_eq!(relocate_to_sub_route(node, key), meili);
        }
        let e = ApiError::Node {
            status: 400,
            body: json!({"message": cases[0].0, "code": "invalid_settings_distinct_attribute"}),
        };
        let e = as_sub_route_error(e, "distinct-attribute");
        assert_eq!(e.body()["message"], cases[0].2);
        assert_eq!(e.body()["code"], "invalid_settings_distinct_attribute");
    }

    /// `details` as a real Meilisearch 1.50 echoes this patch (captured from one).
    #[test]
    fn settings_details_echo_meilisearch() {
        let patch = obj(json!({
            "synonyms": {"b": ["y", "x"], "a": ["z"]},
            "sortableAttributes": ["z", "a", "a"],
            "typoTolerance": {"disableOnWords": ["b", "a"], "enabled": true},
            "faceting": {"sortFacetValuesBy": {"z": "count", "a": "alpha"}},
            "filterableAttributes": ["z", "a"],
            "stopWords": ["the", "a"],
            "rankingRules": ["words", "price:asc"],
            "searchableAttributes": ["*"],
            "displayedAttributes": null
        }));
        let d = settings_details(&patch);
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"displayedAttributes":["*"],"searchableAttributes":["*"],"filterableAttributes":["z","a"],"sortableAttributes":["a","z"],"rankingRules":["words","price:asc"],"stopWords":["a","the"],"synonyms":{"a":["z"],"b":["y","x"]},"typoTolerance":{"enabled":true,"disableOnWords":["a","b"]},"faceting":{"sortFacetValuesBy":{"a":"alpha","z":"count"}}}"#
        );
        let patch = obj(json!({
            "filterableAttributes": [{"attributePatterns": ["a"]}, {"features": {"filter": {"comparison": true}}, "attributePatterns": ["b"]}, "c"],
            "typoTolerance": {"minWordSizeForTypos": {"twoTypos": 9, "oneTypo": 4}, "disableOnNumbers": true},
            "localizedAttributes": [{"locales": ["fra"], "attributePatterns": ["a*"]}],
            "nonSeparatorTokens": ["@", "#"],
            "dictionary": ["b", "a"]
        }));
        assert_eq!(
            serde_json::to_string(&settings_details(&patch)).unwrap(),
            r##"{"filterableAttributes":[{"attributePatterns":["a"],"features":{"facetSearch":false,"filter":{"equality":true,"comparison":false}}},{"attributePatterns":["b"],"features":{"facetSearch":false,"filter":{"equality":true,"comparison":true}}},"c"],"nonSeparatorTokens":["#","@"],"dictionary":["a","b"],"typoTolerance":{"minWordSizeForTypos":{"oneTypo":4,"twoTypos":9},"disableOnNumbers":true},"localizedAttributes":[{"attributePatterns":["a*"],"locales":["fra"]}]}"##
        );
        let d = settings_details(&obj(
            json!({"embedders": {"e": {"source": "openAi", "apiKey": "sk-0123456789abcdefghij"}}}),
        ));
        assert_eq!(d["embedders"]["e"]["apiKey"], "sk-XXXXX...");
        assert_eq!(hide_secret("short"), "XXX...");
        assert_eq!(hide_secret("0123456789abc"), "01XXXX...");
        assert_eq!(
            hide_secret("0123456789012345678901234567890123"),
            "01234XXXXXX..."
        );
    }

    #[test]
    fn swaps_parse_check_and_invert_like_meilisearch() {
        let body = json!([{"indexes": ["a", "b"]}, {"indexes": ["c", "d"], "rename": true}]);
        let swaps = parse_swaps(&body).unwrap();
        assert_eq!(
            swap_details(&swaps),
            json!({"swaps": [{"indexes": ["a", "b"], "rename": false}, {"indexes": ["c", "d"], "rename": true}]})
        );
        assert_eq!(
            inverse_swaps(&swaps),
            json!([{"indexes": ["d", "c"], "rename": true}, {"indexes": ["a", "b"], "rename": false}])
        );
        // Shapes Meilisearch refuses before enqueuing.
        for bad in [
            json!({"indexes": ["a", "b"]}),
            json!([{"indexes": ["a"]}]),
            json!([{"indexes": ["a", 1]}]),
            json!([{"indexes": ["a", "b"], "rename": "yes"}]),
            json!([{"indexes": ["a", "b"], "foo": 1}]),
            json!([{"indexes": ["a", "bad uid"]}]),
        ] {
            assert_eq!(parse_swaps(&bad), None, "{bad}");
        }
        let have = |u: &str| ["a", "b", "c"].contains(&u);
        assert!(check_swaps(&swaps, have).is_ok());
        let e = check_swaps(
            &parse_swaps(&json!([{"indexes": ["x", "a"]}])).unwrap(),
            have,
        )
        .unwrap_err();
        assert_eq!(e.body()["code"], "index_not_found");
        assert_eq!(e.body()["message"], "Index `x` not found.");
        let e = check_swaps(
            &parse_swaps(&json!([{"indexes": ["y", "x"]}])).unwrap(),
            have,
        )
        .unwrap_err();
        assert_eq!(e.body()["message"], "Indexes `x`, `y` not found.");
        let e = check_swaps(
            &parse_swaps(&json!([{"indexes": ["a", "b"], "rename": true}])).unwrap(),
            have,
        )
        .unwrap_err();
        assert_eq!(e.body()["code"], "index_already_exists");
        assert_eq!(e.body()["message"], "Cannot rename `a` to `b` as the index already exists. Hint: You can remove `b` first and then do your remove.");
    }

    #[test]
    fn sub_routes_map_to_settings_keys() {
        assert_eq!(
            setting_key("filterable-attributes"),
            Some("filterableAttributes")
        );
        assert_eq!(setting_key("nope"), None);
    }
}
