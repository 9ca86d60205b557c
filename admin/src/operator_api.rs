//! The admin REST API `/_miroir/*` (docs/contract.md#admin-api): topology, shards, readiness, metrics.
//! Topology operations (node add/drain/remove, rebalance status) are handled by
//! [`crate::rebalance::api`].

use crate::coverage;
use crate::http_types::{ApiError, Req, Resp};
use crate::state::Admin;
use hyper::Method;
use miroir_core::error::ErrorCode;
use miroir_core::topology::NodeStatus;
use serde_json::{json, Value};
use std::sync::Arc;

pub async fn route(
    admin: &Arc<Admin>,
    m: &Method,
    s: &[&str],
    req: &Req,
) -> Result<Resp, ApiError> {
    match (m, s) {
        (&Method::GET, ["topology"]) => Ok(Resp::json(200, &topology(admin))),
        (&Method::GET, ["shards"]) => Ok(Resp::json(200, &shards(admin))),
        (&Method::GET, ["ready"]) => Ok(ready(admin)),
        (&Method::GET, ["tasks", uid]) => crate::tasks::get(admin, uid, None).await,
        (&Method::POST, ["verify"]) => crate::antientropy::post(admin, req).await,
        (&Method::GET, ["verify"]) => crate::antientropy::list(admin).await,
        (&Method::GET, ["verify", uid]) => crate::antientropy::get(admin, uid).await,
        (&Method::GET, ["metrics"]) => Ok(Resp::text(200, "text/plain; version=0.0.4", crate::metrics::render(admin).await)),
        (&Method::POST, ["nodes"]) => crate::rebalance::api::add_node(admin, req).await,
        (&Method::POST, ["nodes", id, "drain"]) => {
            crate::rebalance::api::drain_node(admin, id, crate::rebalance::api::force(&req.query)).await
        }
        (&Method::DELETE, ["nodes", id]) => {
            crate::rebalance::api::remove_node(admin, id, crate::rebalance::api::force(&req.query)).await
        }
        (&Method::POST, ["rebalance"]) => crate::rebalance::api::rebalance(admin).await,
        (&Method::GET, ["rebalance", "status"]) => crate::rebalance::api::status(admin).await,
        (&Method::POST, ["groups"]) => crate::rebalance::api::add_group(admin, req).await,
        (&Method::DELETE, ["groups", id]) => {
            crate::rebalance::api::remove_group(admin, id, crate::rebalance::api::force(&req.query)).await
        }
        (_, ["nodes", ..]) | (_, ["rebalance", ..]) | (_, ["groups", ..]) => Err(ApiError::core(
            ErrorCode::MiroirNotImplemented,
            "This topology operation is not implemented (node add/drain/remove, replica-group add/remove and rebalance status are).",
        )),
        _ => Err(ApiError::core(ErrorCode::NotFound, "Not Found")),
    }
}

/// `GET /_miroir/topology`, shape of docs/contract.md#admin-api. `shard_count` is per node for an index of
/// the configured S (every index has the same S until resharding exists). `config_drift` (only
/// when there is any) lists how the configuration file differs from the stored topology the
/// deployment runs on.
pub fn topology(admin: &Admin) -> Value {
    let counts = admin.shard_counts(admin.config.shards);
    let nodes = admin.nodes();
    let degraded = nodes
        .iter()
        .filter(|n| !matches!(n.status, NodeStatus::Active | NodeStatus::Removed))
        .count();
    let nodes: Vec<Value> = nodes
        .iter()
        .map(|n| {
            let mut v = json!({
                "id": n.id, "address": n.address, "replica_group": n.group, "status": n.status.as_str(),
                "shard_count": counts.get(&n.id).copied().unwrap_or(0), "last_seen_ms": n.last_seen_ms,
            });
            if let Some(e) = &n.error {
                v["error"] = json!(e);
            }
            v
        })
        .collect();
    let mut out = json!({
        "shards": admin.config.shards,
        "replication_factor": admin.config.replication_factor,
        "replica_groups": admin.replica_groups(),
        "nodes": nodes,
        "degraded_node_count": degraded,
        "rebalance_in_progress": crate::rebalance::in_progress(admin),
        "fully_covered": admin.uncovered().is_empty() && default_covered(admin),
    });
    // Present only when there is something to say, like a node's `error`: a group slot that
    // does not serve (removed, or still joining).
    let groups = groups(admin);
    if groups.iter().any(|g| g["state"] != "active") {
        out["groups"] = json!(groups);
    }
    // Present only when there is something to say, like a node's `error`.
    if !admin.config_drift.is_empty() {
        out["config_drift"] = json!(config_drift(admin));
    }
    out
}

/// Every replica group slot with its state: `active` (some node owns shards), `joining`
/// (nodes still receiving their copies: a group being added) or `removed` (an empty slot;
/// group ids are never reused).
fn groups(admin: &Admin) -> Vec<Value> {
    let nodes = admin.nodes();
    (0..admin.replica_groups())
        .map(|g| {
            let members: Vec<_> = nodes.iter().filter(|n| n.group == g).collect();
            let state = if members.iter().any(|n| n.status.owns_shards()) {
                "active"
            } else if members.is_empty() {
                "removed"
            } else {
                "joining"
            };
            json!({"id": g, "nodes": members.len(), "state": state})
        })
        .collect()
}

/// Each difference as its typed fields (`kind`, ids, stored/configured values) plus whether
/// this start applied it, the operator's sentence and the command that would perform it.
fn config_drift(admin: &Admin) -> Vec<Value> {
    admin
        .config_drift
        .iter()
        .map(|d| {
            let mut v = serde_json::to_value(d).unwrap_or_else(|_| json!({}));
            v["applied"] = json!(d.applied());
            v["message"] = json!(if d.applied() {
                format!("{d} (applied: an address change moves no data)")
            } else {
                crate::state::drift_warning(d)
            });
            v["command"] = json!(if d.applied() { None } else { d.command() });
            v
        })
        .collect()
}

/// Whether an index of the configured S would be covered (meaningful before any index exists).
fn default_covered(admin: &Admin) -> bool {
    let nodes = admin.nodes();
    let cover: Vec<coverage::CoverNode> = nodes
        .iter()
        .map(|n| coverage::CoverNode {
            id: &n.id,
            group: n.group,
            places: n.status.owns_shards(),
            live: n.is_live(),
        })
        .collect();
    coverage::uncovered_shards(
        &cover,
        admin.replica_groups(),
        admin.config.replication_factor,
        admin.config.shards,
    )
    .is_empty()
}

/// `GET /_miroir/shards`: owners of every shard per group, and uncovered shards per index.
pub fn shards(admin: &Admin) -> Value {
    let nodes = admin.nodes();
    let rf = admin.config.replication_factor;
    let groups: Vec<Vec<&str>> = (0..admin.replica_groups())
        .map(|g| {
            nodes
                .iter()
                .filter(|n| n.group == g && n.status.owns_shards())
                .map(|n| n.id.as_str())
                .collect()
        })
        .collect();
    let assignments: Vec<Value> = (0..admin.config.shards)
        .map(|s| json!({"shard": s, "owners": groups.iter().map(|members| coverage::owners(s, members, rf)).collect::<Vec<_>>()}))
        .collect();
    let uncovered = admin.uncovered();
    let indexes: Vec<Value> = admin
        .lock()
        .indexes
        .values()
        .map(|m| json!({"uid": m.uid, "shards": m.shards, "uncovered_shards": uncovered.get(&m.uid).cloned().unwrap_or_default()}))
        .collect();
    json!({"shards": admin.config.shards, "assignments": assignments, "indexes": indexes})
}

/// `GET /_miroir/ready`: 200 only when every shard of every index has a live owner in at
/// least one group.
pub fn ready(admin: &Admin) -> Resp {
    let uncovered = admin.uncovered();
    if uncovered.is_empty() {
        Resp::json(200, &json!({"status": "ready"}))
    } else {
        Resp::json(
            503,
            &json!({"status": "unavailable", "uncovered_shards": uncovered}),
        )
    }
}
