//! Pure planning and combining for writes: which node gets which shards, and whether the
//! nodes' answers add up to a successful write (docs/contract.md#write-consistency).
//!
//! A write touches a set of shards. For each shard, [`ShardTargets`] lists its owners in every
//! replica group (and migration targets receiving dual-writes). [`plan_node_batches`] inverts
//! that into one entry per node with all its shards, so each node receives exactly one
//! request. After dispatch, [`evaluate_quorum`] applies the two rules:
//! - a group succeeds for a shard when [`required_acks`] of its owners accepted — one owner,
//!   `floor(RF/2) + 1`, or all of them, per `write_consistency` (decision 020);
//! - the write succeeds when every shard has at least one successful group.
//!
//! Acceptance is per `(node, shard)`: a node that is still catching up on a shard (a
//! *lagging* copy, decision 021) is not sent that shard's documents, so it did not accept
//! them even if it accepted the rest of its request.
//!
//! Migration targets get the documents too (so the new owner misses nothing while the shard
//! is copied) but do not count towards quorum: they are not authoritative until the switch.

use miroir_core::config::WriteConsistency;
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

/// Majority of RF: the number of owners of a group that must accept under `majority`.
pub fn quorum_size(rf: u32) -> usize {
    (rf as usize) / 2 + 1
}

/// Acceptances a group needs for one shard whose owners in that group are `owners` nodes
/// (at most RF; fewer in a group smaller than RF). Always between 1 and `max(owners, 1)`.
pub fn required_acks(level: WriteConsistency, rf: u32, owners: usize) -> usize {
    let owners = owners.max(1);
    match level {
        WriteConsistency::One => 1,
        // A group with fewer owners than RF (small group) needs a majority of what it has.
        WriteConsistency::Majority => quorum_size(rf).min(owners),
        WriteConsistency::All => owners,
    }
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

/// Applies the two quorum rules given which nodes accepted which shards.
pub fn evaluate_quorum(
    targets: &[ShardTargets],
    rf: u32,
    level: WriteConsistency,
    accepted: impl Fn(&NodeId, ShardId) -> bool,
) -> QuorumReport {
    let mut no_quorum = Vec::new();
    let mut missed_groups = BTreeSet::new();
    let mut degraded_shards = BTreeSet::new();
    for t in targets {
        let mut any_group_ok = false;
        for (group, owners) in &t.groups {
            let need = required_acks(level, rf, owners.len());
            let acks = owners.iter().filter(|n| accepted(n, t.shard)).count();
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
        let r = evaluate_quorum(&targets, 1, MAJ, |_, _| true);
        assert!(r.succeeded());
        assert_eq!(r.degraded_header(), None);
    }

    #[test]
    fn one_group_down_is_degraded_success() {
        let targets = vec![
            t(0, &[(0, &["a"]), (1, &["x"])]),
            t(3, &[(0, &["b"]), (1, &["y"])]),
        ];
        let r = evaluate_quorum(&targets, 1, MAJ, |n, _| {
            n.as_str() != "x" && n.as_str() != "y"
        });
        assert!(r.succeeded());
        assert_eq!(r.degraded_header().as_deref(), Some("groups=1;shards=0,3"));
    }

    #[test]
    fn both_groups_down_is_no_quorum() {
        let targets = vec![
            t(0, &[(0, &["a"]), (1, &["x"])]),
            t(1, &[(0, &["b"]), (1, &["y"])]),
        ];
        let r = evaluate_quorum(&targets, 1, MAJ, |n, _| n.as_str() == "b");
        assert!(!r.succeeded());
        assert_eq!(r.no_quorum, vec![ShardId(0)]);
    }

    #[test]
    fn rf_majority_inside_a_group() {
        let targets = vec![t(0, &[(0, &["a", "b", "c"])])];
        assert!(evaluate_quorum(&targets, 3, MAJ, |n, _| n.as_str() != "c").succeeded());
        let r = evaluate_quorum(&targets, 3, MAJ, |n, _| n.as_str() == "a");
        assert!(!r.succeeded());
        // RF=2 needs both owners.
        let targets = vec![t(0, &[(0, &["a", "b"])])];
        assert!(!evaluate_quorum(&targets, 2, MAJ, |n, _| n.as_str() == "a").succeeded());
    }

    #[test]
    fn migration_targets_do_not_count() {
        let mut targets = vec![t(0, &[(0, &["a"])])];
        targets[0].extra.push(n("new"));
        assert!(!evaluate_quorum(&targets, 1, MAJ, |n, _| n.as_str() == "new").succeeded());
        assert!(evaluate_quorum(&targets, 1, MAJ, |n, _| n.as_str() == "a").succeeded());
    }

    #[test]
    fn levels_in_one_group_of_rf_two() {
        // RF=2, one owner down: `one` writes (the other copy gets a hint), the others refuse.
        let targets = vec![t(0, &[(0, &["a", "b"])])];
        let only_a = |n: &NodeId, _: ShardId| n.as_str() == "a";
        assert!(evaluate_quorum(&targets, 2, WriteConsistency::One, only_a).succeeded());
        assert!(!evaluate_quorum(&targets, 2, MAJ, only_a).succeeded());
        assert!(!evaluate_quorum(&targets, 2, WriteConsistency::All, only_a).succeeded());
        let r = evaluate_quorum(&targets, 3, WriteConsistency::All, |_, _| true);
        assert!(r.succeeded() && r.degraded_header().is_none());
    }

    #[test]
    fn acceptance_is_per_shard() {
        // `b` accepted shard 0 but not shard 1 (a lagging copy of shard 1 is not sent it).
        let targets = vec![t(0, &[(0, &["a", "b"])]), t(1, &[(0, &["a", "b"])])];
        let r = evaluate_quorum(&targets, 2, WriteConsistency::All, |n, s| {
            n.as_str() == "a" || s == ShardId(0)
        });
        assert_eq!(r.no_quorum, vec![ShardId(1)]);
    }

    const MAJ: WriteConsistency = WriteConsistency::Majority;

    fn level() -> impl proptest::strategy::Strategy<Value = WriteConsistency> {
        proptest::prop_oneof![
            proptest::strategy::Just(WriteConsistency::One),
            proptest::strategy::Just(WriteConsistency::Majority),
            proptest::strategy::Just(WriteConsistency::All),
        ]
    }

    proptest::proptest! {
        /// `one` ≤ `majority` ≤ `all`, all within `1..=owners`; `all` is every owner and
        /// `majority` is the old `floor(RF/2)+1` rule whenever the group has RF owners.
        #[test]
        fn prop_required_acks_are_ordered_and_bounded(rf in 1u32..8, owners in 0usize..8) {
            let one = required_acks(WriteConsistency::One, rf, owners);
            let maj = required_acks(MAJ, rf, owners);
            let all = required_acks(WriteConsistency::All, rf, owners);
            proptest::prop_assert!(1 <= one && one <= maj && maj <= all);
            proptest::prop_assert_eq!(all, owners.max(1));
            if owners == rf as usize {
                proptest::prop_assert_eq!(maj, quorum_size(rf));
            }
        }

        /// A write succeeds iff every shard has a group with enough acceptances; a stricter
        /// level never succeeds where a weaker one failed; every shard without quorum is a
        /// degraded shard.
        #[test]
        fn prop_quorum_rules(
            rf in 1u32..4,
            groups in 1u32..3,
            shards in 1u32..6,
            up in proptest::collection::vec(proptest::bool::ANY, 12),
            lvl in level(),
        ) {
            let node = |g: u32, i: u32| NodeId::new(format!("g{g}n{i}"));
            let targets: Vec<ShardTargets> = (0..shards)
                .map(|s| ShardTargets {
                    shard: ShardId(s),
                    groups: (0..groups)
                        .map(|g| (GroupId(g), (0..rf).map(|k| node(g, (s + k) % 4)).collect()))
                        .collect(),
                    extra: vec![],
                })
                .collect();
            let is_up = |n: &NodeId, s: ShardId| {
                let i: usize = n.as_str()[1..2].parse::<usize>().unwrap() * 4
                    + n.as_str()[3..].parse::<usize>().unwrap();
                up[(i + s.0 as usize) % up.len()]
            };
            let r = evaluate_quorum(&targets, rf, lvl, is_up);
            let expected_ok = targets.iter().all(|t| {
                t.groups.iter().any(|(_, os)| {
                    os.iter().filter(|n| is_up(n, t.shard)).count() >= required_acks(lvl, rf, os.len())
                })
            });
            proptest::prop_assert_eq!(r.succeeded(), expected_ok);
            for s in &r.no_quorum {
                proptest::prop_assert!(r.degraded_shards.contains(s));
            }
            if lvl == WriteConsistency::All && r.succeeded() {
                proptest::prop_assert!(evaluate_quorum(&targets, rf, MAJ, is_up).succeeded());
                proptest::prop_assert!(
                    evaluate_quorum(&targets, rf, WriteConsistency::One, is_up).succeeded()
                );
            }
            if lvl == MAJ && r.succeeded() {
                proptest::prop_assert!(
                    evaluate_quorum(&targets, rf, WriteConsistency::One, is_up).succeeded()
                );
            }
        }
    }
}
