//! The Miroir task registry (docs/contract.md#tasks) on top of the [`TaskStore`](crate::store::TaskStore).
//!
//! Two kinds of Miroir tasks exist:
//!
//! - **Node-tracked** tasks: a document write the data plane dispatched and registered over
//!   the control socket (`POST /_internal/v1/tasks`) with the node task uids it got back, and
//!   the admin's task cancel/delete broadcasts. Their status is *derived* from the node tasks
//!   ([`aggregate`]) whenever asked, and by a background refresher.
//! - **Self-tracked** tasks: broadcasts the admin runs itself (index lifecycle, settings), whose
//!   outcome depends on more than node task statuses (verification, rollback). The worker
//!   running the broadcast sets their status ([`start_own`], [`finish_own`]).
//!
//! Either way, once a task is terminal its full view is cached in the store
//! (`terminal_view`), so polling a finished task touches no node, and the store refuses any
//! later update to it.

pub mod aggregate;
pub mod documents;
pub mod query;

use crate::http_types::{ApiError, Req, Resp};
use crate::state::Admin;
use crate::store::{
    FailedNode, NewTask, NodeTask as StoreNodeTask, TaskRecord, TaskState, TaskStatus, TaskType,
};
use crate::timefmt::{format_iso8601_duration, format_rfc3339};
use aggregate::{Head, NodeTask, Share, TaskView};
use hyper::Method;
use miroir_core::control::{
    ControlMessage, FailedTaskRegistration, Principal, TaskRegistration, PRINCIPAL_HEADER,
};
use miroir_core::error::ErrorCode;
use miroir_core::ids::{NodeId, TaskUid};
use serde_json::{json, Value};
use time::OffsetDateTime;

fn to_status(s: &str) -> TaskStatus {
    TaskStatus::parse(s).unwrap_or(TaskStatus::Enqueued)
}

/// The summarized task `{taskUid, indexUid, status, type, enqueuedAt[, customMetadata]}` a
/// write answers with.
pub fn summarized(rec: &TaskRecord) -> Value {
    let mut v = json!({
        "taskUid": rec.uid.0,
        "indexUid": rec.index_uid,
        "status": rec.state.status.as_str(),
        "type": rec.task_type.as_str(),
        "enqueuedAt": format_rfc3339(rec.enqueued_at),
    });
    if let Some(m) = &rec.state.custom_metadata {
        v["customMetadata"] = json!(m);
    }
    v
}

/// Meilisearch's message for an unknown task uid.
pub fn task_not_found(uid: impl std::fmt::Display) -> ApiError {
    ApiError::core(ErrorCode::TaskNotFound, format!("Task `{uid}` not found."))
}

tokio::task_local! {
    /// The `?customMetadata=` of the client request being handled (set by `routes::handle`
    /// around each request), so that the tasks it creates carry it without every handler
    /// passing it down.
    pub static CUSTOM_METADATA: Option<String>;
}

fn current_custom_metadata() -> Option<String> {
    CUSTOM_METADATA.try_with(Clone::clone).ok().flatten()
}

/// A registration body from the data plane (`what` names it in the error).
fn decode_registration<M: ControlMessage>(req: &Req, what: &str) -> Result<M, ApiError> {
    M::decode(&req.body)
        .map_err(|e| ApiError::core(ErrorCode::BadRequest, format!("invalid {what}: {e}")))
}

/// The task type a registration names.
fn registered_type(name: &str) -> Result<TaskType, ApiError> {
    TaskType::parse(name)
        .ok_or_else(|| ApiError::core(ErrorCode::BadRequest, format!("unknown task type `{name}`")))
}

/// A registration's details: `null` is no details.
fn object_or_empty(details: Value) -> Value {
    if details.is_null() {
        json!({})
    } else {
        details
    }
}

/// Registers a write the data plane dispatched (`POST /_internal/v1/tasks`,
/// docs/internals/control-protocol.md §2.2); answers the summarized task (202).
pub async fn register(admin: &Admin, req: &Req) -> Result<Resp, ApiError> {
    let reg: TaskRegistration = decode_registration(req, "task registration")?;
    let kind = registered_type(&reg.task_type)?;
    let mut details = object_or_empty(reg.details);
    if reg.degraded {
        // The write missed `write_consistency` (decision 022): the task says which copies
        // are completed from hints.
        if let Some(d) = details.as_object_mut() {
            let copies: Vec<Value> = reg
                .missed
                .iter()
                .map(|m| json!({"node": m.node, "shards": m.shards}))
                .collect();
            d.insert("miroirHintedCopies".into(), Value::Array(copies));
        }
    }
    let missed = reg.missed;
    let nothing_dispatched = reg.node_tasks.is_empty() && reg.failed_nodes.is_empty();
    // The store keeps its own record types: its format must not move with the wire's.
    let node_tasks = (reg.node_tasks.into_iter())
        .map(|t| StoreNodeTask {
            node: t.node,
            task_uid: t.task_uid,
        })
        .collect();
    let failed_nodes = (reg.failed_nodes.into_iter())
        .map(|f| FailedNode {
            node: f.node,
            error: f.error,
        })
        .collect();
    let mut rec = create(
        admin,
        reg.index_uid,
        kind,
        TaskState::enqueued(node_tasks, failed_nodes, details)
            .with_custom_metadata(reg.custom_metadata),
    )
    .await?;
    let summary = summarized(&rec);
    if let Some(index) = rec.index_uid.as_deref() {
        crate::hints::record(admin, rec.uid.0, index, missed).await?;
    }
    if nothing_dispatched {
        // An empty batch (`[]`, a CSV header alone) reaches no node, so no node task will
        // ever settle it: it succeeds at once with zero counts, as Meilisearch's does.
        let details = zero_counts(&rec.state.details);
        finish_own(admin, &mut rec, Ok(details)).await;
    }
    Ok(Resp::json(202, &summary))
}

/// Registers a write whose task fails before it reaches any node (`POST
/// /_internal/v1/tasks/failed`, docs/contract.md#primary-key): the Miroir task is allocated
/// like any other, answered `202` as enqueued (as Meilisearch answers), and is `failed` with
/// the given Meilisearch error before the answer leaves, so the first poll sees it.
pub async fn register_failed(admin: &Admin, req: &Req) -> Result<Resp, ApiError> {
    let reg: FailedTaskRegistration = decode_registration(req, "failed-task registration")?;
    let kind = registered_type(&reg.task_type)?;
    let details = zero_counts(&object_or_empty(reg.details));
    let mut rec = create(
        admin,
        reg.index_uid,
        kind,
        TaskState::enqueued(Vec::new(), Vec::new(), details)
            .with_custom_metadata(reg.custom_metadata),
    )
    .await?;
    let summary = summarized(&rec);
    let error = serde_json::to_value(&reg.error).expect("task errors serialise");
    finish(admin, &mut rec, Err(error)).await;
    Ok(Resp::json(202, &summary))
}

/// `details` with the node-summed counts that are still unknown (`null`) set to 0.
fn zero_counts(details: &Value) -> Value {
    let mut d = details.clone();
    if let Some(o) = d.as_object_mut() {
        for key in aggregate::SUMMED_DETAILS {
            if o.get(*key).is_some_and(Value::is_null) {
                o.insert((*key).to_string(), json!(0));
            }
        }
    }
    d
}

async fn create(
    admin: &Admin,
    index_uid: Option<String>,
    kind: TaskType,
    state: TaskState,
) -> Result<TaskRecord, ApiError> {
    let rec = admin
        .store
        .create_task(NewTask {
            index_uid,
            task_type: kind,
            enqueued_at: OffsetDateTime::now_utc(),
            state,
        })
        .await?;
    admin
        .metrics
        .tasks_registered
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(rec)
}

/// Creates a self-tracked task (enqueued, no node tasks).
pub async fn create_own(
    admin: &Admin,
    index_uid: Option<&str>,
    kind: TaskType,
    details: Value,
) -> Result<TaskRecord, ApiError> {
    create(
        admin,
        index_uid.map(String::from),
        kind,
        TaskState::enqueued(Vec::new(), Vec::new(), details)
            .with_custom_metadata(current_custom_metadata()),
    )
    .await
}

/// Marks a self-tracked task processing.
pub async fn start_own(admin: &Admin, rec: &mut TaskRecord) {
    rec.state.status = TaskStatus::Processing;
    rec.state.started_at = Some(OffsetDateTime::now_utc());
    if let Err(e) = admin.store.update_task(rec.uid, rec.state.clone()).await {
        tracing::error!(task = rec.uid.0, error = %e, "marking task processing failed");
    }
}

/// Finishes a self-tracked task: succeeded (with final details) or failed with an error body.
pub async fn finish_own(admin: &Admin, rec: &mut TaskRecord, outcome: Result<Value, Value>) {
    admin.metrics.broadcast(outcome.is_ok());
    finish(admin, rec, outcome).await;
}

/// [`finish_own`] without counting a broadcast (a task that reached no node).
async fn finish(admin: &Admin, rec: &mut TaskRecord, outcome: Result<Value, Value>) {
    let now = OffsetDateTime::now_utc();
    rec.state.started_at.get_or_insert(now);
    rec.state.finished_at = Some(now);
    let error = match outcome {
        Ok(details) => {
            rec.state.status = TaskStatus::Succeeded;
            rec.state.details = details;
            None
        }
        Err(error) => {
            rec.state.status = TaskStatus::Failed;
            Some(error)
        }
    };
    let view = own_view(rec, error);
    rec.state.terminal_view = Some(serde_json::to_vec(&view).expect("task views serialise"));
    if let Err(e) = admin.store.update_task(rec.uid, rec.state.clone()).await {
        tracing::error!(task = rec.uid.0, error = %e, "storing the finished task failed");
    }
}

/// The view of a self-tracked task from its record.
fn own_view(rec: &TaskRecord, error: Option<Value>) -> TaskView {
    let status = rec.state.status;
    TaskView {
        uid: rec.uid.0,
        batch_uid: (status != TaskStatus::Enqueued).then_some(rec.uid.0),
        index_uid: rec.index_uid.clone(),
        status: status.as_str(),
        kind: rec.task_type.as_str().to_string(),
        canceled_by: rec.state.canceled_by.map(|u| u.0),
        details: match &rec.state.details {
            Value::Object(m) => {
                Value::Object(aggregate::meili_details(rec.task_type.as_str(), m.clone()))
            }
            other => other.clone(),
        },
        error: error.map(aggregate::hide_reserved_in_error),
        duration: match (rec.state.started_at, rec.state.finished_at) {
            (Some(s), Some(f)) => format_iso8601_duration(f - s),
            _ => None,
        },
        enqueued_at: format_rfc3339(rec.enqueued_at),
        started_at: rec.state.started_at.map(format_rfc3339),
        finished_at: rec.state.finished_at.map(format_rfc3339),
        custom_metadata: rec.state.custom_metadata.clone(),
    }
}

fn is_self_tracked(rec: &TaskRecord) -> bool {
    rec.state.node_tasks.is_empty() && rec.state.failed_nodes.is_empty()
}

/// Meta key mapping a node's cancelation task to the Miroir task that issued it.
fn cancel_key(node: &str, node_uid: u64) -> String {
    format!("cancel:{node}:{node_uid}")
}

/// The current view of a task as JSON: the cached terminal view, or a fresh aggregation
/// (persisted — and cached if it became terminal).
pub async fn view(admin: &Admin, rec: &TaskRecord) -> Result<Value, ApiError> {
    if let Some(bytes) = &rec.state.terminal_view {
        return serde_json::from_slice(bytes)
            .map_err(|e| ApiError::internal(format!("corrupt cached task {}: {e}", rec.uid)));
    }
    if is_self_tracked(rec) {
        return Ok(serde_json::to_value(own_view(rec, None)).expect("views serialise"));
    }
    let v = refresh(admin, rec).await?;
    Ok(serde_json::to_value(v).expect("views serialise"))
}

/// Asks the nodes about a node-tracked task and stores what changed.
///
/// Settling (docs/contract.md#tasks): a node that answers 404 for its node task lost it —
/// that copy fails the task with `miroir_node_task_lost` and is recorded as a lost copy
/// (crate::hints); a node that cannot be asked for `tasks.node_task_timeout_ms` after the
/// task was enqueued settles the same way. A node marked failed is not asked (it would only
/// cost a timeout per task).
async fn refresh(admin: &Admin, rec: &TaskRecord) -> Result<TaskView, ApiError> {
    let nodes = admin.nodes();
    let addresses: std::collections::HashMap<String, Option<String>> = nodes
        .into_iter()
        .map(|n| {
            let up = n.status != miroir_core::topology::NodeStatus::Failed;
            (n.id, up.then_some(n.address))
        })
        .collect();
    let timeout = std::time::Duration::from_millis(admin.config.tasks.node_task_timeout_ms);
    let age = OffsetDateTime::now_utc() - rec.enqueued_at;
    let timed_out = age > timeout;
    let calls = rec.state.node_tasks.iter().map(|nt| {
        let client = admin.client.clone();
        let addr = addresses.get(nt.node.as_str()).cloned();
        let (node, uid) = (nt.node.as_str().to_string(), nt.task_uid);
        async move {
            let t = match addr {
                None => NodeTask::Gone, // node no longer in the topology
                Some(None) => NodeTask::Unreachable,
                Some(Some(addr)) => match client
                    .send(&addr, Method::GET, &format!("/tasks/{uid}"), None)
                    .await
                {
                    Ok(r) if r.status == 200 => NodeTask::Found(r.json()),
                    Ok(r) if r.status == 404 => NodeTask::Lost(lost_error(
                        LOST_404,
                        &node,
                        uid,
                        "answered 404 for it: the node lost it (was it restarted on an empty data directory?)",
                    )),
                    _ => NodeTask::Unreachable,
                },
            };
            let t = match t {
                NodeTask::Unreachable if timed_out => NodeTask::Lost(lost_error(
                    "",
                    &node,
                    uid,
                    &format!(
                        "could not be asked about it for {} s (`tasks.node_task_timeout_ms`)",
                        timeout.as_secs()
                    ),
                )),
                t => t,
            };
            (node, t)
        }
    });
    let results = crate::health::futures_join_all(calls).await;
    if let Some(index) = rec.index_uid.as_deref() {
        for (node, t) in &results {
            if let NodeTask::Lost(e) = t {
                if e["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(LOST_404))
                {
                    crate::hints::record_lost(admin, rec.uid.0, node, index).await;
                }
            }
        }
    }
    let mut canceled_by = std::collections::HashMap::new();
    for (node, t) in &results {
        if let NodeTask::Found(v) = t {
            if let Some(c) = v.get("canceledBy").and_then(Value::as_u64) {
                if let Some(b) = admin.store.get_meta(&cancel_key(node, c)).await? {
                    if let Ok(u) = String::from_utf8_lossy(&b).parse::<u32>() {
                        canceled_by.insert((node.clone(), c), u);
                    }
                }
            }
        }
    }
    let dispatch_errors: Vec<Value> = rec
        .state
        .failed_nodes
        .iter()
        .map(|f| f.error.clone())
        .collect();
    let enqueued_at = format_rfc3339(rec.enqueued_at);
    let own_counts = matches!(
        rec.task_type,
        TaskType::TaskCancelation | TaskType::TaskDeletion
    );
    let shares = copy_shares(admin, rec);
    let head = Head {
        uid: rec.uid.0,
        index_uid: rec.index_uid.as_deref(),
        kind: rec.task_type.as_str(),
        enqueued_at: &enqueued_at,
        details: &rec.state.details,
        dispatch_errors: &dispatch_errors,
        shares: &shares,
        fallback: Share {
            group: u32::MAX,
            weight: 1.0 / f64::from(admin.config.replication_factor.max(1)),
        },
    };
    let nodes: Vec<(&str, NodeTask)> = results
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone()))
        .collect();
    let mut v = aggregate::aggregate(&head, &nodes, |n, u| {
        canceled_by.get(&(n.to_string(), u)).copied()
    });
    v.custom_metadata = rec.state.custom_metadata.clone();
    if own_counts {
        // Cancel/delete count Miroir tasks (fixed at creation), never node tasks.
        v.details = finish_task_admin_details(&rec.state.details, v.status);
    }
    let status = to_status(v.status);
    if status != rec.state.status || status.is_terminal() || v.details != rec.state.details {
        let mut state = rec.state.clone();
        state.status = status;
        state.details = v.details.clone();
        state.started_at = v
            .started_at
            .as_deref()
            .and_then(crate::timefmt::parse_rfc3339);
        state.finished_at = v
            .finished_at
            .as_deref()
            .and_then(crate::timefmt::parse_rfc3339);
        state.canceled_by = v.canceled_by.map(TaskUid);
        if status.is_terminal() {
            state.terminal_view = Some(serde_json::to_vec(&v).expect("views serialise"));
            report_missing_copies(admin, rec, v.status);
        }
        admin.store.update_task(rec.uid, state).await?;
    }
    Ok(v)
}

/// Starts the message of a node task the node answered 404 for (the copy needs a hint).
const LOST_404: &str = "The node no longer knows its task. ";

/// The `miroir_node_task_lost` error of one node task (`prefix` marks the 404 case).
fn lost_error(prefix: &str, node: &str, uid: u32, why: &str) -> Value {
    ApiError::core(
        ErrorCode::MiroirNodeTaskLost,
        format!("{prefix}Node `{node}` lost its copy of this task (node task {uid}): it {why}."),
    )
    .body()
}

/// The copy-rule shares ([`aggregate::shares`]) of a node-tracked task's nodes: placement of
/// its index now (an index since deleted, or a task without one: `1/RF` per node, each in
/// its own group).
fn copy_shares(admin: &Admin, rec: &TaskRecord) -> std::collections::HashMap<String, Share> {
    let nodes = admin.nodes();
    let rf = admin.config.replication_factor.max(1);
    let placing: Vec<(&str, u32)> = nodes
        .iter()
        .filter(|n| n.status.owns_shards())
        .map(|n| (n.id.as_str(), n.group))
        .collect();
    let missing: std::collections::HashSet<&str> = rec
        .state
        .failed_nodes
        .iter()
        .map(|f| f.node.as_str())
        .collect();
    let shards = rec
        .index_uid
        .as_deref()
        .and_then(|u| admin.index(u))
        .map_or(0, |m| m.shards);
    let mut shares = aggregate::shares(&placing, rf, shards, &missing);
    for n in &nodes {
        shares.entry(n.id.clone()).or_insert(Share {
            group: n.group,
            weight: 1.0 / f64::from(rf),
        });
    }
    shares
}

/// A write that ended without some of its copies is not a task failure (aggregate module
/// docs) but operators must see it: one log line per node and a counter.
fn report_missing_copies(admin: &Admin, rec: &TaskRecord, status: &str) {
    for f in &rec.state.failed_nodes {
        tracing::warn!(
            task = rec.uid.0,
            index = rec.index_uid.as_deref().unwrap_or(""),
            node = %f.node.as_str(),
            status,
            error = %f.error,
            "task finished without this node's copy"
        );
    }
    if !rec.state.failed_nodes.is_empty() {
        admin
            .metrics
            .tasks_missing_copies
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Details of a taskCancelation/taskDeletion: `canceledTasks`/`deletedTasks` become the
/// matched count once the node-side work finished (null before, as in Meilisearch).
fn finish_task_admin_details(details: &Value, status: &str) -> Value {
    let mut d = details.clone();
    let terminal = TaskStatus::parse(status).is_some_and(TaskStatus::is_terminal);
    let matched = d.get("matchedTasks").cloned().unwrap_or(Value::Null);
    for k in ["canceledTasks"] {
        if d.get(k).is_some() {
            d[k] = if terminal {
                matched.clone()
            } else {
                Value::Null
            };
        }
    }
    d
}

/// The index patterns (`movies`, `movies*`, `*`) of the API key the data plane
/// authenticated (`Miroir-Principal: key:<uid>`); `None` = unrestricted (master key, admin
/// API, or a key on `*`). Meilisearch only shows a key the tasks of indexes it may access.
pub(crate) fn key_patterns(admin: &Admin, req: Option<&Req>) -> Option<Vec<String>> {
    let Principal::Key(uid) = Principal::parse(req?.header(PRINCIPAL_HEADER)?)? else {
        return None;
    };
    let patterns: Vec<String> = admin
        .lock()
        .keys
        .get(uid)
        .and_then(|k| k["indexes"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.as_str().map(String::from))
        .collect();
    (!patterns.iter().any(|p| p == "*")).then_some(patterns)
}

/// Restricts a task query to what the calling key may see, as Meilisearch's
/// `get_task_ids_from_authorized_indexes` does: a key restricted to some indexes sees only
/// tasks of one index it reaches (those Miroir knows now); listing, cancelation and deletion
/// all go through this.
fn restrict_to_key(admin: &Admin, req: &Req, query: &mut crate::store::TaskQuery) {
    let Some(patterns) = key_patterns(admin, Some(req)) else {
        return;
    };
    let allowed: Vec<String> = admin
        .lock()
        .indexes
        .keys()
        .filter(|i| pattern_allows(&patterns, i))
        .cloned()
        .collect();
    let f = &mut query.filter;
    f.index_uids = Some(match f.index_uids.take() {
        Some(asked) => asked.into_iter().filter(|i| allowed.contains(i)).collect(),
        None => allowed,
    });
}

/// Whether an index uid matches one of a key's patterns (exact, or prefix with a final `*`).
pub fn pattern_allows(patterns: &[String], index: &str) -> bool {
    miroir_core::access::patterns_allow(patterns, index)
}

/// Meilisearch's error for a non-numeric `/tasks/{uid}` or `/batches/{uid}` (index-scheduler's
/// `InvalidTaskUid` / `InvalidBatchUid`).
pub fn invalid_uid_in_path(what: &str, code: ErrorCode, uid: &str) -> ApiError {
    ApiError::core(
        code,
        format!("{what} uid `{uid}` is invalid. It should only contain numeric characters."),
    )
}

/// `GET /tasks/{uid}` (`req` = the forwarded request, for the key's index restrictions).
pub async fn get(admin: &Admin, uid: &str, req: Option<&Req>) -> Result<Resp, ApiError> {
    let n: u32 = uid
        .parse()
        .map_err(|_| invalid_uid_in_path("Task", ErrorCode::InvalidTaskUids, uid))?;
    let rec = admin
        .store
        .get_task(TaskUid(n))
        .await?
        .ok_or_else(|| task_not_found(n))?;
    if let Some(patterns) = key_patterns(admin, req) {
        if !rec
            .index_uid
            .as_deref()
            .is_some_and(|i| pattern_allows(&patterns, i))
        {
            return Err(task_not_found(n));
        }
    }
    Ok(Resp::json(200, &view(admin, &rec).await?))
}

/// `GET /tasks` → `{results, total, limit, from, next}`.
pub async fn list(admin: &Admin, req: &Req) -> Result<Resp, ApiError> {
    let mut parsed = query::parse(&req.query, query::Purpose::List)?;
    restrict_to_key(admin, req, &mut parsed.query);
    let page = admin.store.list_tasks(&parsed.query).await?;
    let mut results = Vec::with_capacity(page.tasks.len());
    for rec in &page.tasks {
        results.push(view(admin, rec).await?);
    }
    let from = page.tasks.first().map(|t| t.uid.0);
    Ok(Resp::json(
        200,
        &json!({"results": results, "total": page.total, "limit": parsed.query.limit, "from": from, "next": page.next.map(|u| u.0)}),
    ))
}

/// `GET /batches` and `GET /batches/{uid}`: one Miroir batch per Miroir task.
///
/// - `batchStrategy` (Meilisearch 1.50's reason for closing a batch) uses Meilisearch's own
///   wording for a batch of one task that is not batched with others — true of every Miroir
///   batch.
/// - `stats.progressTrace` of a batch that ran holds one step, Miroir's own: the time from the
///   task's start to its end (`processing tasks > miroir task`), written as Meilisearch writes
///   a step (`8.90ms`). A Miroir batch spans several node batches (which may also hold other
///   tasks), so copying one node's steps would describe something else.
///   `stats.writeChannelCongestion` is left out, as Meilisearch leaves it out of batches that
///   have none.
pub fn batch_of(task: &Value) -> Value {
    let status = task["status"].as_str().unwrap_or("enqueued");
    let kind = task["type"].as_str().unwrap_or_default();
    let strategy = format!(
        "created batch containing only task with id {} of type `{kind}` that cannot be batched with any other task.",
        task["uid"]
    );
    let mut stats = json!({
        "totalNbTasks": 1,
        "status": {status: 1},
        "types": {task["type"].as_str().unwrap_or_default(): 1},
        "indexUids": match task["indexUid"].as_str() { Some(i) => json!({i: 1}), None => json!({}) },
    });
    let time = |k: &str| task[k].as_str().and_then(crate::timefmt::parse_rfc3339);
    if let (Some(started), Some(finished)) = (time("startedAt"), time("finishedAt")) {
        let took = std::time::Duration::try_from(finished - started).unwrap_or_default();
        stats["progressTrace"] = json!({"processing tasks > miroir task": format!("{took:.2?}")});
    }
    json!({
        "uid": task["uid"],
        "progress": null,
        "details": task["details"],
        "stats": stats,
        "duration": task["duration"],
        "startedAt": task["startedAt"],
        "finishedAt": task["finishedAt"],
        "batchStrategy": strategy,
    })
}

/// `GET /batches/{uid}` (`req` = the forwarded request, for the key's index restrictions:
/// a batch of an index the key may not see is not found, as in Meilisearch).
pub async fn get_batch(admin: &Admin, uid: &str, req: &Req) -> Result<Resp, ApiError> {
    let n: u32 = uid
        .parse()
        .map_err(|_| invalid_uid_in_path("Batch", ErrorCode::InvalidBatchUids, uid))?;
    let rec = admin.store.get_task(TaskUid(n)).await?;
    let not_found = || ApiError::core(ErrorCode::BatchNotFound, format!("Batch `{n}` not found."));
    let rec = rec.ok_or_else(not_found)?;
    if let Some(patterns) = key_patterns(admin, Some(req)) {
        if !rec
            .index_uid
            .as_deref()
            .is_some_and(|i| pattern_allows(&patterns, i))
        {
            return Err(not_found());
        }
    }
    let v = view(admin, &rec).await?;
    if v["status"] == "enqueued" {
        return Err(not_found()); // not batched yet
    }
    Ok(Resp::json(200, &batch_of(&v)))
}

pub async fn list_batches(admin: &Admin, req: &Req) -> Result<Resp, ApiError> {
    let resp = list(admin, req).await?;
    let mut v = resp.value();
    let batches: Vec<Value> = v["results"]
        .as_array()
        .map(|a| a.iter().map(batch_of).collect())
        .unwrap_or_default();
    v["results"] = Value::Array(batches);
    Ok(Resp::json(200, &v))
}

/// Every task matching a cancel/delete filter (all pages).
async fn matching(
    admin: &Admin,
    req: &Req,
    what: &str,
) -> Result<(Vec<TaskRecord>, String), ApiError> {
    let parsed = query::parse(&req.query, query::Purpose::CancelOrDelete)?;
    if !parsed.has_filter {
        return Err(ApiError::core(
            ErrorCode::MissingTaskFilters,
            format!("Query parameters to filter the tasks to {what} are missing. Available query parameters are: `uids`, `indexUids`, `statuses`, `types`, `canceledBy`, `beforeEnqueuedAt`, `afterEnqueuedAt`, `beforeStartedAt`, `afterStartedAt`, `beforeFinishedAt`, `afterFinishedAt`."),
        ));
    }
    let mut q = parsed.query;
    restrict_to_key(admin, req, &mut q);
    q.limit = 1000;
    let mut out = Vec::new();
    loop {
        let page = admin.store.list_tasks(&q).await?;
        out.extend(page.tasks);
        match page.next {
            Some(n) => q.from = Some(n),
            None => break,
        }
    }
    Ok((out, format!("?{}", req.query)))
}

/// Groups node task uids per node.
fn per_node(recs: &[TaskRecord]) -> std::collections::BTreeMap<String, Vec<u32>> {
    let mut m: std::collections::BTreeMap<String, Vec<u32>> = Default::default();
    for r in recs {
        for nt in &r.state.node_tasks {
            m.entry(nt.node.as_str().to_string())
                .or_default()
                .push(nt.task_uid);
        }
    }
    m
}

/// Sends `method /tasks[/cancel]?uids=…` to each node; returns the node tasks it created and
/// the nodes that refused.
async fn broadcast_task_op(
    admin: &Admin,
    method: Method,
    path: &str,
    per_node: &std::collections::BTreeMap<String, Vec<u32>>,
) -> (Vec<StoreNodeTask>, Vec<FailedNode>) {
    let addresses: std::collections::HashMap<String, String> = admin
        .nodes()
        .into_iter()
        .map(|n| (n.id, n.address))
        .collect();
    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    for (node, uids) in per_node {
        let Some(addr) = addresses.get(node) else {
            continue;
        };
        let list: Vec<String> = uids.iter().map(u32::to_string).collect();
        let pq = format!("{path}?uids={}", list.join(","));
        match admin.client.send(addr, method.clone(), &pq, None).await {
            Ok(r) if r.is_success() => {
                if let Some(u) = r.json()["taskUid"].as_u64() {
                    ok.push(StoreNodeTask {
                        node: NodeId::new(node),
                        task_uid: u as u32,
                    });
                }
            }
            Ok(r) => failed.push(FailedNode {
                node: NodeId::new(node),
                error: r.json(),
            }),
            Err(e) => failed.push(FailedNode {
                node: NodeId::new(node),
                error: ApiError::core(
                    ErrorCode::MiroirNodeUnreachable,
                    format!("node `{node}`: {e}"),
                )
                .body(),
            }),
        }
    }
    (ok, failed)
}

/// `POST /tasks/cancel?…`: cancels the matching enqueued/processing Miroir tasks on their
/// nodes; one Miroir `taskCancelation` task.
pub async fn cancel(admin: &Admin, req: &Req) -> Result<Resp, ApiError> {
    let (recs, original) = matching(admin, req, "cancel").await?;
    let live: Vec<TaskRecord> = recs
        .into_iter()
        .filter(|r| !r.state.status.is_terminal())
        .collect();
    let details =
        json!({"matchedTasks": live.len(), "canceledTasks": null, "originalFilter": original});
    let targets = per_node(&live);
    if targets.is_empty() {
        let mut rec = create_own(admin, None, TaskType::TaskCancelation, details.clone()).await?;
        let summary = summarized(&rec);
        finish_own(
            admin,
            &mut rec,
            Ok(json!({"matchedTasks": live.len(), "canceledTasks": 0, "originalFilter": original})),
        )
        .await;
        return Ok(Resp::json(200, &summary));
    }
    let (ok, failed) = broadcast_task_op(admin, Method::POST, "/tasks/cancel", &targets).await;
    let rec = create(
        admin,
        None,
        TaskType::TaskCancelation,
        TaskState::enqueued(ok.clone(), failed, details),
    )
    .await?;
    for nt in &ok {
        admin
            .store
            .put_meta(
                &cancel_key(nt.node.as_str(), u64::from(nt.task_uid)),
                rec.uid.0.to_string().as_bytes(),
            )
            .await?;
    }
    // Meilisearch answers task cancelation with 200 and the summarized task.
    Ok(Resp::json(200, &summarized(&rec)))
}

/// `DELETE /tasks?…`: deletes the matching finished Miroir tasks (and their node tasks);
/// one Miroir `taskDeletion` task.
///
/// Meilisearch processes a task deletion right after the batch in progress, ahead of any
/// other queued work: the tasks it matched that were still running are finished by then and
/// get deleted too. So here: when every matched task is finished, they leave Miroir's
/// registry at once and the `taskDeletion` task is finished at once (a client listing tasks
/// right after sees it done); otherwise the `taskDeletion` task stays processing until the
/// matched tasks finish (at most [`DELETION_WAIT`]), then deletes every one that finished.
/// The nodes' own records of those tasks are deleted in the background: clients never see
/// node tasks, so that housekeeping has no outcome to report (a failure is logged).
pub async fn delete(admin: &std::sync::Arc<Admin>, req: &Req) -> Result<Resp, ApiError> {
    let (recs, original) = matching(admin, req, "delete").await?;
    let matched = recs.len();
    let running: Vec<TaskUid> = recs
        .iter()
        .filter(|r| !r.state.status.is_terminal())
        .map(|r| r.uid)
        .collect();
    if running.is_empty() {
        let deleted = delete_finished(admin, recs).await?;
        let details =
            json!({"matchedTasks": matched, "deletedTasks": deleted, "originalFilter": original});
        let mut rec = create_own(admin, None, TaskType::TaskDeletion, details.clone()).await?;
        // The answer is the summary of the task as enqueued, as Meilisearch answers.
        let summary_rec = rec.clone();
        finish_own(admin, &mut rec, Ok(details)).await;
        return Ok(Resp::json(200, &summarized(&summary_rec)));
    }
    let details =
        json!({"matchedTasks": matched, "deletedTasks": null, "originalFilter": original});
    let mut rec = create_own(admin, None, TaskType::TaskDeletion, details).await?;
    let summary = summarized(&rec);
    start_own(admin, &mut rec).await;
    let admin = admin.clone();
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + DELETION_WAIT;
        let mut now_finished = Vec::new();
        for r in recs {
            let mut r = Some(r);
            while let Some(cur) = r.take() {
                if cur.state.status.is_terminal() {
                    now_finished.push(cur);
                } else if tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    // A task deleted meanwhile (another deletion) is simply gone.
                    r = admin.store.get_task(cur.uid).await.unwrap_or(Some(cur));
                }
            }
        }
        let outcome = match delete_finished(&admin, now_finished).await {
            Ok(deleted) => Ok(
                json!({"matchedTasks": matched, "deletedTasks": deleted, "originalFilter": original}),
            ),
            Err(e) => Err(e.body()),
        };
        finish_own(&admin, &mut rec, outcome).await;
    });
    Ok(Resp::json(200, &summary))
}

/// How long a task deletion waits for the running tasks it matched to finish; those still
/// running then are left in place, as Meilisearch leaves tasks it did not get to.
const DELETION_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// Deletes the finished tasks among `recs` from the registry (their node tasks in the
/// background); returns how many were deleted.
async fn delete_finished(
    admin: &std::sync::Arc<Admin>,
    recs: Vec<TaskRecord>,
) -> Result<u64, ApiError> {
    let done: Vec<TaskRecord> = recs
        .into_iter()
        .filter(|r| r.state.status.is_terminal())
        .collect();
    let uids: Vec<TaskUid> = done.iter().map(|r| r.uid).collect();
    let deleted = admin.store.delete_tasks(&uids).await?;
    let targets = per_node(&done);
    if !targets.is_empty() {
        let admin = admin.clone();
        tokio::spawn(async move {
            let (_, failed) = broadcast_task_op(&admin, Method::DELETE, "/tasks", &targets).await;
            for f in failed {
                tracing::warn!(node = %f.node, error = %f.error, "deleting node tasks failed");
            }
        });
    }
    Ok(deleted)
}

/// Background refresher: keeps non-terminal node-tracked tasks' stored status current (so
/// status filters are right and terminal views get cached without a client poll) and
/// prunes to `task_store.max_tasks`. Runs until the process exits.
///
/// Bounded work per round (`tasks.refresh_per_round`): half of it goes to the oldest
/// unfinished tasks, the other half to a window that moves on through the rest every round
/// and wraps around ([`RefreshCursor`]), so neither old tasks stuck on an unreachable node
/// nor a stream of new ones starves the other.
pub async fn refresher(admin: std::sync::Arc<Admin>) {
    let mut ticker = tokio::time::interval(std::time::Duration::from_millis(250));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rounds: u64 = 0;
    let mut cursor = RefreshCursor::default();
    loop {
        ticker.tick().await;
        // One host refreshes and prunes the shared registry: the leader.
        if !admin.leadership().is_leader() {
            continue;
        }
        rounds += 1;
        let per_round = admin.config.tasks.refresh_per_round.max(2);
        let oldest = per_round / 2;
        let page = |from: Option<TaskUid>, limit: u32| {
            let mut q = crate::store::TaskQuery {
                limit,
                reverse: true,
                from,
                ..Default::default()
            };
            q.filter.statuses = Some(vec![TaskStatus::Enqueued, TaskStatus::Processing]);
            q
        };
        let mut batch: Vec<TaskRecord> = Vec::new();
        match admin.store.list_tasks(&page(None, oldest)).await {
            Ok(p) => batch.extend(p.tasks),
            Err(e) => tracing::warn!(error = %e, "listing unfinished tasks failed"),
        }
        let from = cursor.from(batch.last().map(|r| r.uid));
        match admin
            .store
            .list_tasks(&page(from, per_round - oldest))
            .await
        {
            Ok(p) => {
                cursor.advance(p.next);
                for r in p.tasks {
                    if !batch.iter().any(|b| b.uid == r.uid) {
                        batch.push(r);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing unfinished tasks failed"),
        }
        for rec in batch.iter().filter(|r| !is_self_tracked(r)) {
            if let Err(e) = refresh(&admin, rec).await {
                tracing::warn!(task = rec.uid.0, error = %e, "task refresh failed");
            }
        }
        if rounds.is_multiple_of(40) {
            if let Err(e) = admin.store.prune(admin.config.task_store.max_tasks).await {
                tracing::warn!(error = %e, "task pruning failed");
            }
        }
    }
}

/// Where the refresher's moving window (see [`refresher`]) starts next round.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct RefreshCursor {
    next: Option<TaskUid>,
}

impl RefreshCursor {
    /// The window's first uid: where the last window stopped, but never inside the oldest
    /// tasks refreshed anyway (`after_oldest` = the newest of those).
    fn from(&self, after_oldest: Option<TaskUid>) -> Option<TaskUid> {
        let floor = after_oldest.map(|u| TaskUid(u.0 + 1));
        match (self.next, floor) {
            (Some(n), Some(f)) => Some(n.max(f)),
            (n, f) => n.or(f),
        }
    }

    /// After a window: continue after it, or wrap to the start when it reached the end.
    fn advance(&mut self, next: Option<TaskUid>) {
        self.next = next;
    }
}

/// At start: self-tracked tasks left unfinished by a previous admin process cannot resume
/// (their broadcast state was in memory), so they are failed with a clear error.
pub async fn fail_interrupted(admin: &Admin) -> Result<(), ApiError> {
    let mut q = crate::store::TaskQuery {
        limit: 1000,
        reverse: true,
        ..Default::default()
    };
    q.filter.statuses = Some(vec![TaskStatus::Enqueued, TaskStatus::Processing]);
    loop {
        let page = admin.store.list_tasks(&q).await?;
        for mut rec in page.tasks.into_iter().filter(is_self_tracked) {
            let err = ApiError::internal("the admin process restarted while this task was running; its outcome is unknown, check the index and retry").body();
            finish_own(admin, &mut rec, Err(err)).await;
        }
        match page.next {
            Some(n) => q.from = Some(n),
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refresh_window_moves_on_and_wraps() {
        let mut c = RefreshCursor::default();
        assert_eq!(c.from(None), None);
        assert_eq!(c.from(Some(TaskUid(9))), Some(TaskUid(10)));
        c.advance(Some(TaskUid(50)));
        assert_eq!(c.from(Some(TaskUid(9))), Some(TaskUid(50)));
        // The oldest tasks moved past the window: start after them.
        assert_eq!(c.from(Some(TaskUid(70))), Some(TaskUid(71)));
        c.advance(None);
        assert_eq!(c.from(Some(TaskUid(9))), Some(TaskUid(10)));
    }

    #[test]
    fn an_empty_batch_finishes_with_zero_counts() {
        assert_eq!(
            zero_counts(&json!({"receivedDocuments": 0, "indexedDocuments": null})),
            json!({"receivedDocuments": 0, "indexedDocuments": 0})
        );
        assert_eq!(
            zero_counts(
                &json!({"providedIds": 0, "deletedDocuments": null, "originalFilter": null})
            ),
            json!({"providedIds": 0, "deletedDocuments": 0, "originalFilter": null})
        );
    }

    #[test]
    fn custom_metadata_is_echoed_last_and_only_when_sent() {
        let mut rec = TaskRecord {
            uid: TaskUid(7),
            index_uid: Some("m".into()),
            task_type: TaskType::SettingsUpdate,
            enqueued_at: OffsetDateTime::UNIX_EPOCH,
            state: TaskState::enqueued(vec![], vec![], json!({}))
                .with_custom_metadata(Some("Test metadata".into())),
        };
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        let s = summarized(&rec);
        assert_eq!(keys(&s).last().map(String::as_str), Some("customMetadata"));
        assert_eq!(s["customMetadata"], "Test metadata");
        let v = serde_json::to_value(own_view(&rec, None)).unwrap();
        assert_eq!(keys(&v).last().map(String::as_str), Some("customMetadata"));
        rec.state.custom_metadata = None;
        assert!(summarized(&rec).get("customMetadata").is_none());
        let v = serde_json::to_value(own_view(&rec, None)).unwrap();
        assert!(v.get("customMetadata").is_none());
    }

    #[test]
    fn cancel_details_fill_in_when_terminal() {
        let d = json!({"matchedTasks": 3, "canceledTasks": null, "originalFilter": "?uids=1"});
        assert_eq!(
            finish_task_admin_details(&d, "processing")["canceledTasks"],
            Value::Null
        );
        assert_eq!(
            finish_task_admin_details(&d, "succeeded")["canceledTasks"],
            json!(3)
        );
    }

    #[test]
    fn key_patterns_match_exact_and_prefix() {
        let p = vec!["movies".to_string(), "books_*".to_string()];
        assert!(pattern_allows(&p, "movies"));
        assert!(pattern_allows(&p, "books_2024"));
        assert!(!pattern_allows(&p, "movies2"));
        assert!(!pattern_allows(&p, "books"));
    }

    #[test]
    fn batches_mirror_their_task() {
        let t = json!({"uid": 4, "status": "succeeded", "type": "indexCreation", "indexUid": "m", "details": {}, "duration": "PT0.1S", "startedAt": "a", "finishedAt": "b"});
        let b = batch_of(&t);
        assert_eq!(b["uid"], 4);
        assert_eq!(b["stats"]["status"]["succeeded"], 1);
        assert_eq!(b["stats"]["indexUids"]["m"], 1);
        // "a"/"b" are no times: no trace.
        assert!(b["stats"].get("progressTrace").is_none());
        let mut ran = t.clone();
        ran["startedAt"] = json!("2026-12-08T02:25:55.991295Z");
        ran["finishedAt"] = json!("2026-12-08T02:25:56.009298Z");
        assert_eq!(
            batch_of(&ran)["stats"]["progressTrace"],
            json!({"processing tasks > miroir task": "18.00ms"})
        );
        assert_eq!(
            b["batchStrategy"],
            "created batch containing only task with id 4 of type `indexCreation` that cannot be batched with any other task."
        );
        let keys: Vec<&String> = b.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "uid",
                "progress",
                "details",
                "stats",
                "duration",
                "startedAt",
                "finishedAt",
                "batchStrategy"
            ]
        );
    }
}
