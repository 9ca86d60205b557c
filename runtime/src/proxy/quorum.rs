//! Pure planning and combining for writes: which node gets which shards, and whether the
//! nodes' answers add up to a successful write (docs/contract.md#write-consistency).
//!
//! A write touches a set of shards. For each shard, [`ShardTargets`] lists its owners in every
//! replica group (and migration targets receiving dual-writes). [`plan_node_batches`] inverts
//! that into one entry per node with all its shards, so each node receives exactly one
//! request. After dispatch, [`evaluate_quorum`] applies the two rules:
//! - a group succeeds for a shard when `floor(RF/2) + 1` of its owners accepted;
//! - the write succeeds when every shard has at least one successful group.
//!
//! Migration targets get the documents too (so the new owner misses nothing while the shard
//! is copied) but do not count towards quorum: they are not authoritative until the switch.

use miroir_core::{GroupId, NodeId, ShardId};
use std::collections::{BTreeMap, BTreeSet};

/// Where one shard's documents must go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardTargets {
    pub shard: ShardId,
    /// The shard's owners, per replica group (RF nodes each).
    pub groups: Vec<(GroupId, Vec<NodeId>)>,
    /// Extra dual-write targets (shard migrations in progress).
    pub extra: Vec<NodeId>,
}

/// One request per node: the node and the shards whose documents it receives (sorted).
pub fn plan_node_batches(targets: &[ShardTargets]) -> Vec<(NodeId, Vec<ShardId>)> {
    let mut per_node: BTreeMap<NodeId, BTreeSet<ShardId>> = BTreeMap::new();
    for t in targets {
        let nodes = t
            .groups
            .iter()
            .flat_map(|(_, owners)| owners.iter())
            .chain(t.extra.iter());
        for n in nodes {
            per_node.entry(n.clone()).or_default().insert(t.shard);
        }
    }
    per_node
        .into_iter()
        .map(|(n, s)| (n, s.into_iter().collect()))
        .collect()
}

/// Majority of RF: the number of owners of a group that must accept.
pub fn quorum_size(rf: u32) -> usize {
    (rf as usize) / 2 + 1
}

/// The combined outcome of a write.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuorumReport {
    /// Shards for which no group reached quorum: the write failed (`miroir_no_quorum`).
    pub no_quorum: Vec<ShardId>,
    /// Groups that missed quorum for at least one shard.
    pub missed_groups: Vec<GroupId>,
    /// Shards for which at least one group missed quorum.
    pub degraded_shards: Vec<ShardId>,
}

impl QuorumReport {
    pub fn succeeded(&self) -> bool {
        self.no_quorum.is_empty()
    }

    /// `X-Miroir-Degraded` value for a successful but degraded write:
    /// `groups=1;shards=3,7`. `None` when nothing missed.
    pub fn degraded_header(&self) -> Option<String> {
        if self.missed_groups.is_empty() {
            return None;
        }
        Some(format!(
            "groups={};shards={}",
            join(&self.missed_groups),
            join(&self.degraded_shards)
        ))
    }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Applies the two quorum rules given which nodes accepted their request.
pub fn evaluate_quorum(
    targets: &[ShardTargets],
    rf: u32,
    accepted: impl Fn(&NodeId) -> bool,
) -> QuorumReport {
    let need = quorum_size(rf);
    let mut no_quorum = Vec::new();
    let mut missed_groups = BTreeSet::new();
    let mut degraded_shards = BTreeSet::new();
    for t in targets {
        let mut any_group_ok = false;
        for (group, owners) in &t.groups {
            // A group with fewer owners than RF (small group) needs a majority of what it has.
            let need = need.min(owners.len().max(1));
            let acks = owners.iter().filter(|n| accepted(n)).count();
            if acks >= need {
                any_group_ok = true;
            } else {
                missed_groups.insert(*group);
                degraded_shards.insert(t.shard);
            }
        }
        if !any_group_ok {
            no_quorum.push(t.shard);
        }
    }
    QuorumReport {
        no_quorum,
        missed_groups: missed_groups.into_iter().collect(),
        degraded_shards: degraded_shards.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NodeId {
        NodeId::new(s)
    }

    fn t(shard: u32, groups: &[(u32, &[&str])]) -> ShardTargets {
        ShardTargets {
            shard: ShardId(shard),
            groups: groups
                .iter()
                .map(|(g, owners)| (GroupId(*g), owners.iter().map(|o| n(o)).collect()))
                .collect(),
            extra: vec![],
        }
    }

    #[test]
    fn quorum_sizes() {
        assert_eq!(quorum_size(1), 1);
        assert_eq!(quorum_size(2), 2);
        assert_eq!(quorum_size(3), 2);
        assert_eq!(quorum_size(4), 3);
    }

    #[test]
    fn batches_one_request_per_node() {
        let mut targets = vec![t(0, &[(0, &["a", "b"])]), t(1, &[(0, &["b", "c"])])];
        targets[1].extra.push(n("d"));
        let plan = plan_node_batches(&targets);
        assert_eq!(
            plan,
            vec![
                (n("a"), vec![ShardId(0)]),
                (n("b"), vec![ShardId(0), ShardId(1)]),
                (n("c"), vec![ShardId(1)]),
                (n("d"), vec![ShardId(1)]),
            ]
        );
    }

    #[test]
    fn all_accept_is_clean() {
        let targets = vec![
            t(0, &[(0, &["a"]), (1, &["x"])]),
            t(1, &[(0, &["b"]), (1, &["y"])]),
        ];
        let r = evaluate_quorum(&targets, 1, |_| true);
        assert!(r.succeeded());
        assert_eq!(r.degraded_header(), None);
    }

    #[test]
    fn one_group_down_is_degraded_success() {
        let targets = vec![
            t(0, &[(0, &["a"]), (1, &["x"])]),
            t(3, &[(0, &["b"]), (1, &["y"])]),
        ];
        let r = evaluate_quorum(&targets, 1, |n| n.as_str() != "x" && n.as_str() != "y");
        assert!(r.succeeded());
        assert_eq!(r.degraded_header().as_deref(), Some("groups=1;shards=0,3"));
    }

    #[test]
    fn both_groups_down_is_no_quorum() {
        let targets = vec![
            t(0, &[(0, &["a"]), (1, &["x"])]),
            t(1, &[(0, &["b"]), (1, &["y"])]),
        ];
        let r = evaluate_quorum(&targets, 1, |n| n.as_str() == "b");
        assert!(!r.succeeded());
        assert_eq!(r.no_quorum, vec![ShardId(0)]);
    }

    #[test]
    fn rf_majority_inside_a_group() {
        let targets = vec![t(0, &[(0, &["a", "b", "c"])])];
        assert!(evaluate_quorum(&targets, 3, |n| n.as_str() != "c").succeeded());
        let r = evaluate_quorum(&targets, 3, |n| n.as_str() == "a");
        assert!(!r.succeeded());
        // RF=2 needs both owners.
        let targets = vec![t(0, &[(0, &["a", "b"])])];
        assert!(!evaluate_quorum(&targets, 2, |n| n.as_str() == "a").succeeded());
    }

    #[test]
    fn migration_targets_do_not_count() {
        let mut targets = vec![t(0, &[(0, &["a"])])];
        targets[0].extra.push(n("new"));
        assert!(!evaluate_quorum(&targets, 1, |n| n.as_str() == "new").succeeded());
        assert!(evaluate_quorum(&targets, 1, |n| n.as_str() == "a").succeeded());
    }
}
