//! Nodes grouped by replica group, and the node status state machine
//! (`joining → active → draining → removed`, plus `failed` and `degraded`).
//!
//! NOTE(skeleton): the transition rules and `Topology` helpers are completed by the core
//! library work (issue 2); the data types below are the agreed shape.

use crate::ids::{GroupId, NodeId};
use serde::{Deserialize, Serialize};

/// Lifecycle status of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Being added: receives dual-writes for the shards it will own, serves no reads.
    Joining,
    /// Serving reads and writes for the shards it owns.
    Active,
    /// Being emptied: still owns shards until they are copied away.
    Draining,
    /// Gone; its id is never reused.
    Removed,
    /// Health checks failed past the unhealthy threshold.
    Failed,
    /// Answers, but slowly or with errors below the failure threshold.
    Degraded,
}

/// One Meilisearch node as the routing sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub id: NodeId,
    /// Base URL, e.g. `http://127.0.0.1:7700`.
    pub address: String,
    pub replica_group: GroupId,
    pub status: NodeStatus,
}
