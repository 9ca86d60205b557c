//! The broadcast engine every lifecycle, settings and deployment-wide operation is built
//! from: send one request to every node (`dispatch`, or `dispatch_reachable` for settings
//! changes that may skip unreachable nodes), wait for the node tasks (`settle`), roll back
//! with best-effort steps (`run_step`), and answer with ONE Miroir task whose work runs with
//! the index's lock held (`spawn_task`, `index_task`, `failed_task`).

use crate::coverage::CoverNode;
use crate::http_types::{ApiError, Resp};
use crate::node_health::NodeHealth;
use crate::state::Admin;
use crate::store::{TaskRecord, TaskType};
use crate::tasks;
use hyper::Method;
use miroir_core::error::ErrorCode;
use miroir_core::ids::TaskUid;
use miroir_core::topology::NodeStatus;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// How long a broadcast waits for one node task to finish before giving up on it.
const NODE_TASK_DEADLINE: Duration = Duration::from_secs(300);

pub(crate) type Guard = Vec<tokio::sync::OwnedMutexGuard<()>>;

/// The scope of deployment-wide operations (dumps, snapshots, experimental features).
pub(super) const GLOBAL: &str = "";

/// A node task a broadcast step enqueued.
#[derive(Debug, Clone)]
pub(super) struct Dispatched {
    pub(super) node: NodeHealth,
    pub(super) task_uid: u64,
}

pub(super) fn unavailable(node: &NodeHealth, e: impl std::fmt::Display) -> ApiError {
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
pub(super) async fn dispatch(
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
pub(super) struct Reached {
    pub(super) ok: Vec<Dispatched>,
    /// Marked `failed` (not contacted) or unreachable (connect error, timeout).
    pub(super) unreachable: Vec<NodeHealth>,
}

/// Like [`dispatch`], but a node that cannot be reached is set apart instead of failing the
/// step (see "Unreachable nodes" in the module docs). A node that *answers* with an error
/// still fails it.
pub(super) async fn dispatch_reachable(
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
pub(super) fn require_coverage(
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
        admin.replica_groups(),
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
pub(super) async fn wait_task(
    admin: &Admin,
    node: &NodeHealth,
    uid: u64,
) -> Result<Value, ApiError> {
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
pub(super) async fn settle(admin: &Admin, tasks: &[Dispatched]) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    let mut first_err = None;
    for d in tasks {
        match wait_task(admin, &d.node, d.task_uid).await {
            Ok(t) if t["status"] == "succeeded" => out.push(t),
            Ok(t) => {
                // The node's own error, relayed; a canceled node task has none.
                let e = match t.get("error").filter(|e| !e.is_null()) {
                    Some(e) => ApiError::Node {
                        status: 400,
                        body: e.clone(),
                    },
                    None => ApiError::internal("node task canceled"),
                };
                first_err = first_err.or(Some(e));
            }
            Err(e) => first_err = first_err.or(Some(e)),
        }
    }
    first_err.map_or(Ok(out), Err)
}

/// Dispatch + settle; best effort (used for rollbacks).
pub(super) async fn run_step(
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
pub(super) async fn refused_by_a_node(
    admin: &Admin,
    method: Method,
    path: &str,
    body: &Value,
) -> ApiError {
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

pub(super) fn index_not_found(uid: &str) -> ApiError {
    ApiError::core(
        ErrorCode::IndexNotFound,
        format!("Index `{uid}` not found."),
    )
}

/// Creates the Miroir task, spawns `work` with the lock held, answers 202.
pub(crate) async fn spawn_task<F, Fut>(
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
    spawn_task_tracked(admin, guard, index, kind, details, |admin, _| work(admin)).await
}

/// [`spawn_task`] whose work knows its task's uid (to record it where a successor finishes
/// the task, [`super::intents`]).
pub(super) async fn spawn_task_tracked<F, Fut>(
    admin: &Arc<Admin>,
    guard: Guard,
    index: Option<&str>,
    kind: TaskType,
    details: Value,
    work: F,
) -> Result<Resp, ApiError>
where
    F: FnOnce(Arc<Admin>, TaskUid) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Value, ApiError>> + Send + 'static,
{
    let mut rec: TaskRecord = tasks::create_own(admin, index, kind, details).await?;
    let summary = tasks::summarized(&rec);
    let admin = admin.clone();
    tokio::spawn(async move {
        let _guard = guard;
        tasks::start_own(&admin, &mut rec).await;
        let outcome = work(admin.clone(), rec.uid).await.map_err(|e| e.body());
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
pub(super) async fn index_task<F, Fut>(
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
pub(super) async fn failed_task(
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
