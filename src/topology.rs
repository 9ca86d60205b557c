//! Nodes grouped by replica group, and the node status state machine
//! (`joining → active → draining → removed`, plus `failed` and `degraded`).
//!
//! # Which statuses count for what
//!
//! Routing distinguishes *placement* (which nodes own a shard) from *availability* (which of
//! those owners may be asked right now). Keeping them apart is what stops a flapping node from
//! reshuffling data: a node that fails keeps its shards; reads simply skip it.
//!
//! | status     | owns shards (placement) | receives writes            | serves reads |
//! |------------|-------------------------|----------------------------|--------------|
//! | `joining`  | no                      | only as a migration target | no           |
//! | `active`   | yes                     | yes                        | yes          |
//! | `degraded` | yes                     | yes                        | yes          |
//! | `draining` | yes (until `removed`)   | yes                        | yes          |
//! | `failed`   | yes (kept, not moved)   | listed; counts as a miss   | no           |
//! | `removed`  | no                      | no                         | no           |
//!
//! A joining node gets data through the snapshot's `migrations` (dual-write + copy) and starts
//! owning shards when the admin marks it `active`; a draining node stops owning them when the
//! admin marks it `removed`. Either switch is one snapshot publish, so every data plane flips
//! at once (per routing epoch). See `docs/routing.md`.

pub mod drift;

use crate::config::Config;
use crate::ids::{GroupId, NodeId};
use serde::{Deserialize, Serialize};
use std::fmt;

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

impl NodeStatus {
    /// Every status, for exhaustive tests and documentation.
    pub const ALL: [NodeStatus; 6] = [
        NodeStatus::Joining,
        NodeStatus::Active,
        NodeStatus::Draining,
        NodeStatus::Removed,
        NodeStatus::Failed,
        NodeStatus::Degraded,
    ];

    /// The wire/display name (`joining`, `active`, …), as in the topology JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Joining => "joining",
            NodeStatus::Active => "active",
            NodeStatus::Draining => "draining",
            NodeStatus::Removed => "removed",
            NodeStatus::Failed => "failed",
            NodeStatus::Degraded => "degraded",
        }
    }

    /// Whether the node takes part in rendezvous placement (owns shards).
    pub fn owns_shards(self) -> bool {
        matches!(
            self,
            NodeStatus::Active | NodeStatus::Degraded | NodeStatus::Draining | NodeStatus::Failed
        )
    }

    /// Whether the node may be asked to serve reads (search, document fetch).
    pub fn serves_reads(self) -> bool {
        matches!(
            self,
            NodeStatus::Active | NodeStatus::Degraded | NodeStatus::Draining
        )
    }

    /// Whether a write routed to this node is worth sending (a failed node is still a write
    /// target — it counts against quorum — but callers may skip the request itself).
    pub fn accepts_writes(self) -> bool {
        matches!(
            self,
            NodeStatus::Joining | NodeStatus::Active | NodeStatus::Degraded | NodeStatus::Draining
        )
    }

    /// Whether `self → next` is a legal transition. Setting the same status again is always
    /// legal (health checks re-assert the current state); `removed` is terminal.
    ///
    /// ```text
    /// joining  → active | removed            (join completes / is aborted)
    /// active   → degraded | failed | draining
    /// degraded → active | failed | draining
    /// failed   → active | degraded | removed (recovery / operator removes a dead node)
    /// draining → removed | active | failed   (drain completes / is cancelled / node dies)
    /// removed  → (nothing: ids are never reused)
    /// ```
    pub fn can_transition_to(self, next: NodeStatus) -> bool {
        use NodeStatus::*;
        if self == next {
            return true;
        }
        matches!(
            (self, next),
            (Joining, Active | Removed)
                | (Active, Degraded | Failed | Draining)
                | (Degraded, Active | Failed | Draining)
                | (Failed, Active | Degraded | Removed)
                | (Draining, Removed | Active | Failed)
        )
    }

    /// `next` if the transition is legal, else a typed error naming both ends.
    pub fn transition(self, next: NodeStatus) -> Result<NodeStatus, TopologyError> {
        if self.can_transition_to(next) {
            Ok(next)
        } else {
            Err(TopologyError::IllegalTransition {
                from: self,
                to: next,
            })
        }
    }
}

impl fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("illegal node status transition {from} → {to}")]
    IllegalTransition { from: NodeStatus, to: NodeStatus },
    #[error("unknown node `{0}`")]
    UnknownNode(NodeId),
    #[error("duplicate node id `{0}`")]
    DuplicateNode(NodeId),
    #[error("node `{node}` is in replica group {group}, but replica_groups is {groups}")]
    GroupOutOfRange {
        node: NodeId,
        group: GroupId,
        groups: u32,
    },
    #[error("replica_groups must be at least 1")]
    NoGroups,
    #[error("replication_factor must be at least 1")]
    ZeroReplicationFactor,
}

/// Nodes by replica group, plus RF and RG. Groups are `0..replica_groups`; inside a group the
/// nodes are kept sorted by id, so every function built on a `Topology` is independent of the
/// order nodes were listed in.
///
/// Building one allocates; the data plane builds it once per snapshot, not per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    replication_factor: u32,
    groups: Vec<Vec<Node>>,
}

impl Topology {
    /// Builds a topology from explicit nodes. Removed nodes are kept (so status lookups and
    /// id-reuse checks see them) but never own shards.
    pub fn new(
        replication_factor: u32,
        replica_groups: u32,
        nodes: impl IntoIterator<Item = Node>,
    ) -> Result<Topology, TopologyError> {
        if replica_groups == 0 {
            return Err(TopologyError::NoGroups);
        }
        if replication_factor == 0 {
            return Err(TopologyError::ZeroReplicationFactor);
        }
        let mut groups: Vec<Vec<Node>> = vec![Vec::new(); replica_groups as usize];
        let mut seen = std::collections::HashSet::new();
        for node in nodes {
            if !seen.insert(node.id.clone()) {
                return Err(TopologyError::DuplicateNode(node.id));
            }
            let g = node.replica_group.0;
            if g >= replica_groups {
                return Err(TopologyError::GroupOutOfRange {
                    node: node.id,
                    group: node.replica_group,
                    groups: replica_groups,
                });
            }
            groups[g as usize].push(node);
        }
        for group in &mut groups {
            group.sort_by(|a, b| a.id.cmp(&b.id));
        }
        Ok(Topology {
            replication_factor,
            groups,
        })
    }

    /// The initial topology of a configuration: every configured node `active`. (Durable
    /// statuses live in the admin's state and reach the data plane through the snapshot.)
    pub fn from_config(config: &Config) -> Result<Topology, TopologyError> {
        Topology::new(
            config.replication_factor,
            config.replica_groups,
            config.nodes.iter().map(|n| Node {
                id: NodeId::new(&n.id),
                address: n.address.clone(),
                replica_group: GroupId(n.replica_group),
                status: NodeStatus::Active,
            }),
        )
    }

    pub fn replication_factor(&self) -> u32 {
        self.replication_factor
    }

    pub fn replica_groups(&self) -> u32 {
        self.groups.len() as u32
    }

    pub fn group_ids(&self) -> impl Iterator<Item = GroupId> {
        (0..self.groups.len() as u32).map(GroupId)
    }

    /// Every node of a group (any status), sorted by id; empty for an unknown group.
    pub fn group(&self, group: GroupId) -> &[Node] {
        self.groups
            .get(group.0 as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Every node of every group, group by group.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.groups.iter().flatten()
    }

    pub fn node(&self, id: &NodeId) -> Option<&Node> {
        self.nodes().find(|n| &n.id == id)
    }

    pub fn status(&self, id: &NodeId) -> Option<NodeStatus> {
        self.node(id).map(|n| n.status)
    }

    /// The ids of a group's nodes that own shards (placement set), sorted by id.
    pub fn placement_nodes(&self, group: GroupId) -> Vec<NodeId> {
        self.group(group)
            .iter()
            .filter(|n| n.status.owns_shards())
            .map(|n| n.id.clone())
            .collect()
    }

    /// Moves a node to `status`, rejecting illegal transitions.
    pub fn set_status(&mut self, id: &NodeId, status: NodeStatus) -> Result<(), TopologyError> {
        let node = self
            .groups
            .iter_mut()
            .flatten()
            .find(|n| &n.id == id)
            .ok_or_else(|| TopologyError::UnknownNode(id.clone()))?;
        node.status = node.status.transition(status)?;
        Ok(())
    }

    /// Adds a node as `joining`. Ids are never reused, so a removed node's id is refused too.
    pub fn add_joining(
        &mut self,
        id: NodeId,
        address: String,
        group: GroupId,
    ) -> Result<(), TopologyError> {
        if self.node(&id).is_some() {
            return Err(TopologyError::DuplicateNode(id));
        }
        let groups = self.replica_groups();
        let Some(members) = self.groups.get_mut(group.0 as usize) else {
            return Err(TopologyError::GroupOutOfRange {
                node: id,
                group,
                groups,
            });
        };
        let at = members.partition_point(|n| n.id < id);
        members.insert(
            at,
            Node {
                id,
                address,
                replica_group: group,
                status: NodeStatus::Joining,
            },
        );
        Ok(())
    }

    /// All nodes as a flat list (the snapshot's `nodes` field).
    pub fn to_nodes(&self) -> Vec<Node> {
        self.nodes().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeConfig;

    fn node(id: &str, group: u32, status: NodeStatus) -> Node {
        Node {
            id: NodeId::new(id),
            address: format!("http://{id}:7700"),
            replica_group: GroupId(group),
            status,
        }
    }

    #[test]
    fn lifecycle_path_is_legal() {
        use NodeStatus::*;
        let mut s = Joining;
        for next in [Active, Degraded, Active, Failed, Active, Draining, Removed] {
            s = s.transition(next).unwrap();
        }
        assert_eq!(s, Removed);
    }

    #[test]
    fn transition_table_is_exact() {
        use NodeStatus::*;
        let legal: &[(NodeStatus, NodeStatus)] = &[
            (Joining, Active),
            (Joining, Removed),
            (Active, Degraded),
            (Active, Failed),
            (Active, Draining),
            (Degraded, Active),
            (Degraded, Failed),
            (Degraded, Draining),
            (Failed, Active),
            (Failed, Degraded),
            (Failed, Removed),
            (Draining, Removed),
            (Draining, Active),
            (Draining, Failed),
        ];
        for from in NodeStatus::ALL {
            for to in NodeStatus::ALL {
                let expected = from == to || legal.contains(&(from, to));
                assert_eq!(from.can_transition_to(to), expected, "{from} → {to}");
                match from.transition(to) {
                    Ok(s) => assert!(expected && s == to),
                    Err(e) => {
                        assert!(!expected);
                        assert_eq!(e, TopologyError::IllegalTransition { from, to });
                        assert_eq!(
                            e.to_string(),
                            format!("illegal node status transition {from} → {to}")
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn removed_is_terminal() {
        for to in NodeStatus::ALL {
            assert_eq!(
                NodeStatus::Removed.can_transition_to(to),
                to == NodeStatus::Removed
            );
        }
    }

    #[test]
    fn status_roles_match_the_module_table() {
        use NodeStatus::*;
        let owns: Vec<_> = NodeStatus::ALL
            .into_iter()
            .filter(|s| s.owns_shards())
            .collect();
        assert_eq!(owns, [Active, Draining, Failed, Degraded]);
        let reads: Vec<_> = NodeStatus::ALL
            .into_iter()
            .filter(|s| s.serves_reads())
            .collect();
        assert_eq!(reads, [Active, Draining, Degraded]);
        let writes: Vec<_> = NodeStatus::ALL
            .into_iter()
            .filter(|s| s.accepts_writes())
            .collect();
        assert_eq!(writes, [Joining, Active, Draining, Degraded]);
        for s in NodeStatus::ALL {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
    }

    #[test]
    fn new_groups_and_sorts_nodes() {
        let t = Topology::new(
            1,
            2,
            vec![
                node("b", 0, NodeStatus::Active),
                node("z", 1, NodeStatus::Active),
                node("a", 0, NodeStatus::Removed),
                node("c", 0, NodeStatus::Joining),
                node("y", 1, NodeStatus::Failed),
            ],
        )
        .unwrap();
        let ids: Vec<_> = t.group(GroupId(0)).iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(t.placement_nodes(GroupId(0)), vec![NodeId::new("b")]);
        assert_eq!(
            t.placement_nodes(GroupId(1)),
            vec![NodeId::new("y"), NodeId::new("z")]
        );
        assert!(t.group(GroupId(7)).is_empty());
        assert_eq!(t.status(&NodeId::new("y")), Some(NodeStatus::Failed));
        assert_eq!(t.to_nodes().len(), 5);
    }

    #[test]
    fn new_rejects_bad_input() {
        let dup = Topology::new(
            1,
            1,
            vec![
                node("a", 0, NodeStatus::Active),
                node("a", 0, NodeStatus::Active),
            ],
        );
        assert_eq!(
            dup.unwrap_err(),
            TopologyError::DuplicateNode(NodeId::new("a"))
        );
        let out = Topology::new(1, 1, vec![node("a", 1, NodeStatus::Active)]);
        assert!(matches!(
            out.unwrap_err(),
            TopologyError::GroupOutOfRange {
                group: GroupId(1),
                groups: 1,
                ..
            }
        ));
        assert_eq!(
            Topology::new(1, 0, vec![]).unwrap_err(),
            TopologyError::NoGroups
        );
        assert_eq!(
            Topology::new(0, 1, vec![]).unwrap_err(),
            TopologyError::ZeroReplicationFactor
        );
    }

    #[test]
    fn set_status_enforces_the_state_machine() {
        let mut t = Topology::new(1, 1, vec![node("a", 0, NodeStatus::Active)]).unwrap();
        let a = NodeId::new("a");
        t.set_status(&a, NodeStatus::Draining).unwrap();
        assert_eq!(
            t.set_status(&a, NodeStatus::Joining).unwrap_err(),
            TopologyError::IllegalTransition {
                from: NodeStatus::Draining,
                to: NodeStatus::Joining
            }
        );
        assert_eq!(t.status(&a), Some(NodeStatus::Draining));
        assert_eq!(
            t.set_status(&NodeId::new("nope"), NodeStatus::Active)
                .unwrap_err(),
            TopologyError::UnknownNode(NodeId::new("nope"))
        );
    }

    #[test]
    fn add_joining_keeps_order_and_never_reuses_ids() {
        let mut t = Topology::new(
            1,
            1,
            vec![
                node("a", 0, NodeStatus::Active),
                node("c", 0, NodeStatus::Removed),
            ],
        )
        .unwrap();
        t.add_joining(NodeId::new("b"), "http://b".into(), GroupId(0))
            .unwrap();
        let ids: Vec<_> = t.group(GroupId(0)).iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(t.status(&NodeId::new("b")), Some(NodeStatus::Joining));
        assert_eq!(
            t.add_joining(NodeId::new("c"), "http://c".into(), GroupId(0))
                .unwrap_err(),
            TopologyError::DuplicateNode(NodeId::new("c"))
        );
        assert!(matches!(
            t.add_joining(NodeId::new("d"), "http://d".into(), GroupId(3))
                .unwrap_err(),
            TopologyError::GroupOutOfRange { .. }
        ));
    }

    #[test]
    fn from_config_marks_all_active() {
        let config = Config {
            replica_groups: 2,
            nodes: vec![
                NodeConfig {
                    id: "m1".into(),
                    address: "http://h:1".into(),
                    replica_group: 1,
                },
                NodeConfig {
                    id: "m0".into(),
                    address: "http://h:0".into(),
                    replica_group: 0,
                },
            ],
            ..Config::default()
        };
        let t = Topology::from_config(&config).unwrap();
        assert_eq!(t.replica_groups(), 2);
        assert_eq!(t.replication_factor(), 1);
        assert!(t.nodes().all(|n| n.status == NodeStatus::Active));
        assert_eq!(t.group(GroupId(1))[0].address, "http://h:1");
    }
}
