//! The admin API of topology operations (docs/contract.md#admin-api): validation, then one
//! stored [`Operation`] the loop drives. Answers 202 with the operation.

use super::{load, load_last, plan, NewNode, OpKind, Operation, META_OPERATION};
use crate::http_types::{ApiError, Req, Resp};
use crate::node_health::unix_ms;
use crate::state::Admin;
use miroir_core::error::ErrorCode;
use miroir_core::ids::NodeId;
use miroir_core::topology::{NodeStatus, Topology};
use serde_json::{json, Value};

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::core(ErrorCode::MiroirInvalidTopology, message)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

/// Stores `kind` as the running operation unless one is running already.
async fn start(admin: &Admin, kind: OpKind) -> Result<Operation, ApiError> {
    if let Some(op) = load(admin).await.map_err(internal)? {
        return Err(busy(&op));
    }
    let op = Operation::new(kind, unix_ms());
    let bytes = serde_json::to_vec(&op).expect("an operation serialises");
    if !admin
        .store
        .cas_meta(META_OPERATION, None, Some(&bytes))
        .await
        .map_err(internal)?
    {
        let running = load(admin).await.map_err(internal)?;
        return Err(running.map_or_else(
            || invalid("a topology operation raced this one; retry"),
            |op| busy(&op),
        ));
    }
    admin.lock().rebalance = Some((op.phase.as_str(), 0));
    tracing::info!(operation = %op.id, kind = ?op.kind, "topology operation accepted");
    Ok(op)
}

fn busy(op: &Operation) -> ApiError {
    ApiError::core(
        ErrorCode::MiroirRebalanceInProgress,
        format!(
            "Topology operation `{}` ({} of {}) is in progress (phase `{}`); one runs at a time. See GET /_miroir/rebalance/status.",
            op.id,
            kind_name(&op.kind),
            op.kind.subject(),
            op.phase.as_str()
        ),
    )
}

fn kind_name(kind: &OpKind) -> &'static str {
    match kind {
        OpKind::AddNode { .. } => "add_node",
        OpKind::DrainNode { .. } => "drain_node",
        OpKind::RemoveNode { .. } => "remove_node",
        OpKind::AddGroup { .. } => "add_group",
        OpKind::RemoveGroup { .. } => "remove_group",
        OpKind::Reconcile => "reconcile",
    }
}

fn accepted(op: &Operation) -> Resp {
    Resp::json(202, &op.status_json(unix_ms()))
}

/// A new node's `id` and `address` from a request body.
fn node_fields(body: &Value) -> Result<(String, String), ApiError> {
    let field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let id = field("id")
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            ApiError::core(
                ErrorCode::BadRequest,
                "`id` (a non-empty string) is required",
            )
        })?;
    let address = field("address")
        .filter(|a| a.starts_with("http://") || a.starts_with("https://"))
        .ok_or_else(|| {
            ApiError::core(
                ErrorCode::BadRequest,
                "`address` (an http:// or https:// URL) is required",
            )
        })?;
    Ok((id, address))
}

/// A node about to be added: its id was never used, it answers `GET /health`.
async fn check_new_node(
    admin: &Admin,
    record: &miroir_core::topology::drift::TopologyRecord,
    id: &str,
    address: &str,
) -> Result<(), ApiError> {
    if let Some(n) = record.nodes.iter().find(|n| n.id.as_str() == id) {
        return Err(invalid(format!(
            "node `{id}` already exists (status `{}`); node ids are never reused",
            n.status
        )));
    }
    if let Err(e) = crate::health::probe(&admin.client, address, admin.client.timeout).await {
        return Err(invalid(format!(
            "node `{id}` at {address} does not answer GET /health: {e}"
        )));
    }
    Ok(())
}

/// `POST /_miroir/nodes` `{"id", "address", "replica_group"}`.
pub async fn add_node(admin: &Admin, req: &Req) -> Result<Resp, ApiError> {
    let body = req.json()?;
    let (id, address) = node_fields(&body)?;
    let group = match body.get("replica_group") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_u64()
            .and_then(|g| u32::try_from(g).ok())
            .ok_or_else(|| {
                ApiError::core(
                    ErrorCode::BadRequest,
                    "`replica_group` must be a non-negative integer",
                )
            })?,
    };
    let record = admin.topology_record().await.map_err(internal)?;
    if group >= record.replica_groups {
        return Err(invalid(format!(
            "replica group {group} does not exist (replica_groups is {})",
            record.replica_groups
        )));
    }
    check_new_node(admin, &record, &id, &address).await?;
    let op = start(
        admin,
        OpKind::AddNode {
            node: id,
            address,
            replica_group: group,
        },
    )
    .await?;
    Ok(accepted(&op))
}

fn not_found(id: &str) -> ApiError {
    ApiError::core(
        ErrorCode::MiroirNodeNotFound,
        format!("node `{id}` is not in the topology"),
    )
}

fn last_copy(node: &str, what: &str, shards: &[String]) -> ApiError {
    ApiError::core(
        ErrorCode::MiroirLastCopy,
        format!(
            "{what} node `{node}` would lose the last copy of {} shard(s): {}. Add a node (or bring a copy back) first, or repeat with ?force=true to accept the loss.",
            shards.len(),
            shards.join(", ")
        ),
    )
}

/// The topology with `node` at `status`.
fn with_status(t: &Topology, node: &str, status: NodeStatus) -> Result<Topology, ApiError> {
    let id = NodeId::new(node);
    Topology::new(
        t.replication_factor(),
        t.replica_groups(),
        t.nodes().cloned().map(|mut n| {
            if n.id == id {
                n.status = status;
            }
            n
        }),
    )
    .map_err(internal)
}

/// `POST /_miroir/nodes/{id}/drain`.
pub async fn drain_node(admin: &Admin, id: &str, force: bool) -> Result<Resp, ApiError> {
    let Some(node) = admin.nodes().into_iter().find(|n| n.id == id) else {
        return Err(not_found(id));
    };
    if !matches!(node.status, NodeStatus::Active | NodeStatus::Degraded) {
        return Err(invalid(format!(
            "node `{id}` is `{}`: only an active node can be drained (a failed one is removed: DELETE /_miroir/nodes/{id})",
            node.status
        )));
    }
    let now = admin.build_snapshot().topology().map_err(internal)?;
    let before = with_status(&now, id, NodeStatus::Draining)?;
    let after = with_status(&now, id, NodeStatus::Removed)?;
    let (_, dropped) = plan::moves(&before, &after, &super::index_shards(admin), |_| true);
    if !dropped.is_empty() && !force {
        return Err(last_copy(id, "draining", &dropped));
    }
    let op = start(admin, OpKind::DrainNode { node: id.into() }).await?;
    Ok(accepted(&op))
}

/// `DELETE /_miroir/nodes/{id}[?force=true]`: a drained node is forgotten at once (200); a
/// dead one has its copies restored from the others first (202).
pub async fn remove_node(admin: &Admin, id: &str, force: bool) -> Result<Resp, ApiError> {
    let record = admin.topology_record().await.map_err(internal)?;
    let Some(stored) = record.nodes.iter().find(|n| n.id.as_str() == id) else {
        return Err(not_found(id));
    };
    if stored.status == NodeStatus::Removed {
        return Ok(Resp::json(
            200,
            &json!({"node": id, "status": "removed", "message": "the node holds no shard any more"}),
        ));
    }
    let op = start_remove(admin, id, force).await?;
    Ok(accepted(&op))
}

/// Starts the removal of a `failed` node (also used by the automatic restoration after the
/// grace period); refuses when a shard would lose its last copy, unless `force`.
pub async fn start_remove(admin: &Admin, id: &str, force: bool) -> Result<Operation, ApiError> {
    let Some(node) = admin.nodes().into_iter().find(|n| n.id == id) else {
        return Err(not_found(id));
    };
    if node.status != NodeStatus::Failed {
        return Err(invalid(format!(
            "node `{id}` is `{}`: only a drained or dead (failed) node can be removed; drain it first (POST /_miroir/nodes/{id}/drain)",
            node.status
        )));
    }
    let before = admin.build_snapshot().topology().map_err(internal)?;
    let after = with_status(&before, id, NodeStatus::Removed)?;
    let (moves, mut lost) = plan::moves(&before, &after, &super::index_shards(admin), |_| true);
    let live: std::collections::HashSet<String> =
        admin.live_nodes().into_iter().map(|n| n.id).collect();
    lost.extend(
        moves
            .iter()
            .filter(|m| plan::sources(&before, m, |n| n != id && live.contains(n)).is_empty())
            .map(|m| format!("{}/{}", m.index, m.shard)),
    );
    if !lost.is_empty() && !force {
        return Err(last_copy(id, "removing", &lost));
    }
    start(
        admin,
        OpKind::RemoveNode {
            node: id.into(),
            force,
        },
    )
    .await
}

/// `POST /_miroir/groups` `{"nodes": [{"id", "address"}, ...]}`: a new replica group (the
/// next id) of these nodes; every shard is copied to it from the other groups.
pub async fn add_group(admin: &Admin, req: &Req) -> Result<Resp, ApiError> {
    let body = req.json()?;
    let list = body
        .get("nodes")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| {
            ApiError::core(
                ErrorCode::BadRequest,
                "`nodes` (a non-empty list of {\"id\", \"address\"}) is required",
            )
        })?;
    let mut nodes: Vec<NewNode> = Vec::new();
    for v in list {
        let (id, address) = node_fields(v)?;
        if nodes.iter().any(|n| n.id == id || n.address == address) {
            return Err(ApiError::core(
                ErrorCode::BadRequest,
                format!("node `{id}` ({address}) is listed twice"),
            ));
        }
        nodes.push(NewNode { id, address });
    }
    let record = admin.topology_record().await.map_err(internal)?;
    let rf = record.replication_factor as usize;
    if nodes.len() < rf {
        return Err(invalid(format!(
            "a replica group needs at least replication_factor ({rf}) nodes; {} given",
            nodes.len()
        )));
    }
    for n in &nodes {
        check_new_node(admin, &record, &n.id, &n.address).await?;
    }
    // Every shard is copied from a live copy: refuse up front when one has none.
    let uncovered: Vec<String> = admin
        .uncovered()
        .into_iter()
        .flat_map(|(index, shards)| shards.into_iter().map(move |s| format!("{index}/{s}")))
        .collect();
    if !uncovered.is_empty() {
        return Err(invalid(format!(
            "shard(s) {} have no live copy to give the new group; bring their nodes back first",
            uncovered.join(", ")
        )));
    }
    let op = start(
        admin,
        OpKind::AddGroup {
            replica_group: record.replica_groups,
            nodes,
        },
    )
    .await?;
    Ok(accepted(&op))
}

/// How long `DELETE /_miroir/groups/{id}` waits for the removal to be applied (it normally
/// takes a barrier: well under a second) before answering 202 with the operation instead.
const REMOVE_GROUP_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// `DELETE /_miroir/groups/{id}[?force=true]`: every node of the group leaves at once (200
/// with the finished operation). Refused when no other group serves reads, or (unless
/// `force`) when a shard would have no live copy left.
pub async fn remove_group(admin: &Admin, id: &str, force: bool) -> Result<Resp, ApiError> {
    let group: u32 = id.parse().map_err(|_| {
        ApiError::core(
            ErrorCode::BadRequest,
            format!("`{id}` is not a replica group id (a non-negative integer)"),
        )
    })?;
    let record = admin.topology_record().await.map_err(internal)?;
    if group >= record.replica_groups {
        return Err(invalid(format!(
            "replica group {group} does not exist (replica_groups is {})",
            record.replica_groups
        )));
    }
    if !record
        .nodes
        .iter()
        .any(|n| n.replica_group.0 == group && n.status != NodeStatus::Removed)
    {
        return Ok(Resp::json(
            200,
            &json!({"replica_group": group, "status": "removed", "message": "the group has no node any more"}),
        ));
    }
    let topology = admin.build_snapshot().topology().map_err(internal)?;
    let live: std::collections::HashSet<String> =
        admin.live_nodes().into_iter().map(|n| n.id).collect();
    let up = |n: &str| live.contains(n);
    if !plan::serving_groups(&topology, up)
        .iter()
        .any(|g| *g != group)
    {
        return Err(ApiError::core(
            ErrorCode::MiroirLastCopy,
            format!("replica group {group} is the last one serving reads: removing it would lose every shard. Add a group first (POST /_miroir/groups)."),
        ));
    }
    let lost = plan::group_removal_losses(&topology, group, &super::index_shards(admin), up);
    if !lost.is_empty() && !force {
        return Err(ApiError::core(
            ErrorCode::MiroirLastCopy,
            format!(
                "removing replica group {group} would lose the last live copy of {} shard(s): {}. Bring their nodes in the other groups back first, or repeat with ?force=true to accept the loss.",
                lost.len(),
                lost.join(", ")
            ),
        ));
    }
    let op = start(
        admin,
        OpKind::RemoveGroup {
            replica_group: group,
            force,
        },
    )
    .await?;
    // Immediate, but applied by the rebalancer loop like every operation (one driver, the
    // leader; resumed after a crash): wait for it to finish.
    let deadline = std::time::Instant::now() + REMOVE_GROUP_WAIT;
    while std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let running = load(admin).await.map_err(internal)?;
        if running.as_ref().is_some_and(|r| r.id == op.id) {
            continue;
        }
        if let Some(last) = load_last(admin).await.map_err(internal)? {
            if last.id == op.id {
                return Ok(Resp::json(200, &last.status_json(unix_ms())));
            }
        }
        break;
    }
    Ok(accepted(&op))
}

/// `GET /_miroir/rebalance/status`: the running operation, else the last finished one.
pub async fn status(admin: &Admin) -> Result<Resp, ApiError> {
    let now = unix_ms();
    if let Some(op) = load(admin).await.map_err(internal)? {
        return Ok(Resp::json(200, &op.status_json(now)));
    }
    match load_last(admin).await.map_err(internal)? {
        Some(op) => Ok(Resp::json(200, &op.status_json(now))),
        None => Ok(Resp::json(200, &json!({"in_progress": false}))),
    }
}

/// `POST /_miroir/rebalance`: placement is a function of the node set, so after a finished
/// operation the copies are where the topology says. What can still differ — a node restored
/// from an old backup or wiped, a copy left behind by a forced removal, documents written to
/// a node directly — is found by a reconcile operation, which scans every live node and
/// repairs it (`OpKind::Reconcile`). Answers 202 with that operation, or with the one already
/// running.
pub async fn rebalance(admin: &Admin) -> Result<Resp, ApiError> {
    if let Some(op) = load(admin).await.map_err(internal)? {
        return Ok(accepted(&op));
    }
    Ok(accepted(&start(admin, OpKind::Reconcile).await?))
}

/// Whether `?force=true` is in a query string.
pub fn force(query: &str) -> bool {
    query
        .split('&')
        .any(|kv| kv == "force=true" || kv == "force=1" || kv == "force")
}

#[cfg(test)]
mod tests {
    #[test]
    fn force_is_read_from_the_query() {
        assert!(super::force("force=true"));
        assert!(super::force("a=1&force=1"));
        assert!(!super::force(""));
        assert!(!super::force("force=false"));
        assert!(!super::force("forced=true"));
    }
}
