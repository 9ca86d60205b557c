//! The admin API of topology operations (docs/contract.md#admin-api): validation, then one
//! stored [`Operation`] the loop drives. Answers 202 with the operation.

use super::{load, load_last, plan, OpKind, Operation, META_OPERATION};
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
            "Topology operation `{}` ({:?} of node `{}`) is in progress (phase `{}`); one runs at a time. See GET /_miroir/rebalance/status.",
            op.id,
            op.kind,
            op.kind.node(),
            op.phase.as_str()
        ),
    )
}

fn accepted(op: &Operation) -> Resp {
    Resp::json(202, &op.status_json(unix_ms()))
}

/// `POST /_miroir/nodes` `{"id", "address", "replica_group"}`.
pub async fn add_node(admin: &Admin, req: &Req) -> Result<Resp, ApiError> {
    let body = req.json()?;
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
    if let Some(n) = record.nodes.iter().find(|n| n.id.as_str() == id) {
        return Err(invalid(format!(
            "node `{id}` already exists (status `{}`); node ids are never reused",
            n.status
        )));
    }
    if let Err(e) = crate::health::probe(&admin.client, &address, admin.client.timeout).await {
        return Err(invalid(format!(
            "node `{id}` at {address} does not answer GET /health: {e}"
        )));
    }
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

fn indexes(admin: &Admin) -> Vec<(String, u32)> {
    admin
        .lock()
        .indexes
        .values()
        .map(|m| (m.uid.clone(), m.shards))
        .collect()
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
    let (_, dropped) = plan::moves(&before, &after, &indexes(admin));
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
    let (moves, mut lost) = plan::moves(&before, &after, &indexes(admin));
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

/// `POST /_miroir/rebalance`: placement is a function of the node set, so the shards are
/// where the topology says once no operation runs. Answers the running operation (202), or
/// that there is nothing to move (200).
pub async fn rebalance(admin: &Admin) -> Result<Resp, ApiError> {
    match load(admin).await.map_err(internal)? {
        Some(op) => Ok(accepted(&op)),
        None => Ok(Resp::json(
            200,
            &json!({"in_progress": false, "message": "every shard is on its owners; nothing to move"}),
        )),
    }
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
