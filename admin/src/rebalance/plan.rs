//! Planning shard moves (pure): which copies change owner between two topologies, and which
//! nodes a moving copy can be read from.

use super::{Move, MovePhase};
use miroir_core::ids::{GroupId, NodeId};
use miroir_core::routing::{group_owners, moved_shards};
use miroir_core::topology::Topology;
use miroir_core::ShardId;
use std::collections::{BTreeMap, BTreeSet};

/// The copies that change owner from `before` to `after`, for every `(index uid, S)`.
/// A copy that disappears without a new owner (`to: None`: its group has no node left) is
/// returned apart, as `index/shard`.
///
/// A copy with no previous owner (a group being added) becomes a move with `keep_source`,
/// read from the best [`sources`] among the nodes `usable` accepts (a current owner in
/// another group); one with no usable source is returned apart too.
pub fn moves(
    before: &Topology,
    after: &Topology,
    indexes: &[(String, u32)],
    usable: impl Fn(&str) -> bool,
) -> (Vec<Move>, Vec<String>) {
    let mut out = Vec::new();
    let mut dropped = Vec::new();
    for (index, shards) in indexes {
        for m in moved_shards(before, after, (*shards).max(1)) {
            match (m.from, m.to) {
                (Some(from), Some(to)) => out.push(Move {
                    index: index.clone(),
                    shard: m.shard.0,
                    group: m.group.0,
                    from_address: before
                        .node(&from)
                        .map(|n| n.address.clone())
                        .unwrap_or_default(),
                    from: from.as_str().to_string(),
                    to: to.as_str().to_string(),
                    keep_source: false,
                    phase: MovePhase::Pending,
                    copied: 0,
                    total: 0,
                    bytes: 0,
                }),
                (Some(_), None) => dropped.push(format!("{index}/{}", m.shard.0)),
                (None, Some(to)) => {
                    let mut mv = Move {
                        index: index.clone(),
                        shard: m.shard.0,
                        group: m.group.0,
                        from: String::new(),
                        from_address: String::new(),
                        to: to.as_str().to_string(),
                        keep_source: true,
                        phase: MovePhase::Pending,
                        copied: 0,
                        total: 0,
                        bytes: 0,
                    };
                    match sources(before, &mv, &usable).into_iter().next() {
                        Some(src) => {
                            mv.from_address = before
                                .node(&NodeId::new(&src))
                                .map(|n| n.address.clone())
                                .unwrap_or_default();
                            mv.from = src;
                            out.push(mv);
                        }
                        None => dropped.push(format!("{index}/{}", m.shard.0)),
                    }
                }
                (None, None) => {}
            }
        }
    }
    (out, dropped)
}

/// What a node holds: `(node, index, shard)` → documents.
pub type Holdings = BTreeMap<(String, String, u32), u64>;

/// A reconcile's moves (pure), from what every scanned node holds:
/// - an owner holding fewer documents of a shard than the best source gets a copy
///   (`keep_source`; the copy's verification then makes it equal to the source, document by
///   document), read from the owner in any group holding the most, else from the non-owner
///   holding the most;
/// - documents of a shard on a node that does not own it in its group (a stray copy) become a
///   move already `Verified` from that node, so that only `cleanup` acts on it: it is deleted
///   there after the copies above were verified (a stray may be their only source).
///
/// `address` gives a node's address. Nodes absent from `held` were not scanned (dead) and are
/// neither sources nor targets.
pub fn reconcile(
    topology: &Topology,
    indexes: &[(String, u32)],
    held: &Holdings,
    address: impl Fn(&str) -> String,
) -> Vec<Move> {
    let count = |node: &str, index: &str, shard: u32| {
        held.get(&(node.to_string(), index.to_string(), shard))
            .copied()
    };
    let scanned: BTreeSet<&str> = held.keys().map(|(n, _, _)| n.as_str()).collect();
    let mut out = Vec::new();
    for (index, shards) in indexes {
        for shard in 0..(*shards).max(1) {
            let owners: Vec<(GroupId, NodeId)> = topology
                .group_ids()
                .flat_map(|g| {
                    group_owners(ShardId(shard), topology, g)
                        .into_iter()
                        .map(move |n| (g, n))
                })
                .collect();
            let is_owner = |n: &str| owners.iter().any(|(_, o)| o.as_str() == n);
            let best = |pool: &mut dyn Iterator<Item = &str>| {
                pool.filter_map(|n| count(n, index, shard).filter(|c| *c > 0).map(|c| (c, n)))
                    .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(a.1)))
                    .map(|(c, n)| (n.to_string(), c))
            };
            let source = best(&mut owners.iter().map(|(_, o)| o.as_str()))
                .or_else(|| best(&mut scanned.iter().copied().filter(|n| !is_owner(n))));
            let mv = |group: GroupId, from: &str, to: &str, total: u64, keep: bool| Move {
                index: index.clone(),
                shard,
                group: group.0,
                from: from.to_string(),
                from_address: address(from),
                to: to.to_string(),
                keep_source: keep,
                phase: if keep {
                    MovePhase::Pending
                } else {
                    MovePhase::Verified
                },
                copied: 0,
                // A stray copy is deleted, not copied: it adds nothing to copy.
                total: if keep { total } else { 0 },
                bytes: 0,
            };
            if let Some((from, total)) = &source {
                for (g, o) in &owners {
                    if count(o.as_str(), index, shard).is_some_and(|c| c < *total) {
                        out.push(mv(*g, from, o.as_str(), *total, true));
                    }
                }
            }
            for node in scanned.iter().copied().filter(|n| !is_owner(n)) {
                let Some(total) = count(node, index, shard).filter(|c| *c > 0) else {
                    continue;
                };
                let Some(group) = topology.node(&NodeId::new(node)).map(|n| n.replica_group) else {
                    continue;
                };
                // Shown as moving to an owner of its group (for the status); nothing is copied.
                let to = owners
                    .iter()
                    .find(|(g, _)| *g == group)
                    .or(owners.first())
                    .map(|(_, o)| o.as_str().to_string())
                    .unwrap_or_default();
                out.push(mv(group, node, &to, total, false));
            }
        }
    }
    out
}

/// The nodes a copy of `shard` can be read from, best first: `from` itself when it is usable,
/// then the shard's other owners in `from`'s group, then its owners in the other groups (every
/// group holds every document). `usable` is the caller's view of which nodes answer reads.
pub fn sources(topology: &Topology, mv: &Move, usable: impl Fn(&str) -> bool) -> Vec<String> {
    let shard = ShardId(mv.shard);
    let mut out: Vec<String> = Vec::new();
    let mut push = |id: &str| {
        if !id.is_empty() && usable(id) && !out.iter().any(|o| o == id) && id != mv.to {
            out.push(id.to_string());
        }
    };
    push(&mv.from);
    let groups =
        std::iter::once(GroupId(mv.group)).chain(topology.group_ids().filter(|g| g.0 != mv.group));
    for g in groups {
        for n in group_owners(shard, topology, g) {
            push(n.as_str());
        }
    }
    out
}

/// The shards (`index/shard`) that would have no usable copy left once replica group `group`
/// is gone: no owner in another group that `usable` accepts.
pub fn group_removal_losses(
    topology: &Topology,
    group: u32,
    indexes: &[(String, u32)],
    usable: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut lost = Vec::new();
    for (index, shards) in indexes {
        for s in (0..(*shards).max(1)).map(ShardId) {
            let kept = topology.group_ids().filter(|g| g.0 != group).any(|g| {
                group_owners(s, topology, g)
                    .iter()
                    .any(|n| usable(n.as_str()))
            });
            if !kept {
                lost.push(format!("{index}/{}", s.0));
            }
        }
    }
    lost
}

/// The replica groups that serve reads: some node owns shards there and `usable` accepts it.
pub fn serving_groups(topology: &Topology, usable: impl Fn(&str) -> bool) -> Vec<u32> {
    topology
        .group_ids()
        .filter(|g| {
            topology
                .placement_nodes(*g)
                .iter()
                .any(|n| usable(n.as_str()))
        })
        .map(|g| g.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use miroir_core::topology::{Node, NodeStatus};

    fn topo(rf: u32, nodes: &[(&str, u32, NodeStatus)]) -> Topology {
        let groups = nodes.iter().map(|n| n.1).max().unwrap_or(0) + 1;
        Topology::new(
            rf,
            groups,
            nodes.iter().map(|(id, g, s)| Node {
                id: NodeId::new(id),
                address: format!("http://{id}"),
                replica_group: GroupId(*g),
                status: *s,
            }),
        )
        .unwrap()
    }

    #[test]
    fn reconcile_copies_to_short_owners_and_deletes_strays_only() {
        use NodeStatus::*;
        let t = topo(2, &[("a", 0, Active), ("b", 0, Active), ("c", 0, Active)]);
        let idx = vec![("i".to_string(), 8u32)];
        let owners = |s: u32| group_owners(ShardId(s), &t, GroupId(0));
        let mut held = Holdings::new();
        for s in 0..8 {
            for o in owners(s) {
                held.insert((o.as_str().to_string(), "i".into(), s), 10);
            }
            let other = ["a", "b", "c"]
                .into_iter()
                .find(|n| !owners(s).iter().any(|o| o.as_str() == *n))
                .unwrap();
            held.insert((other.to_string(), "i".into(), s), 0);
        }
        // Exact placement: nothing to do.
        assert!(reconcile(&t, &idx, &held, |n| format!("http://{n}")).is_empty());

        // Shard 2: one owner lost 4 documents; shard 5: a stray copy on the non-owner.
        let short = owners(2)[1].as_str().to_string();
        held.insert((short.clone(), "i".into(), 2), 6);
        let stray = ["a", "b", "c"]
            .into_iter()
            .find(|n| !owners(5).iter().any(|o| o.as_str() == *n))
            .unwrap();
        held.insert((stray.to_string(), "i".into(), 5), 3);
        let moves = reconcile(&t, &idx, &held, |n| format!("http://{n}"));
        assert_eq!(moves.len(), 2, "{moves:?}");
        let copy = moves.iter().find(|m| m.shard == 2).unwrap();
        assert_eq!(copy.to, short);
        assert_eq!(copy.from, owners(2)[0].as_str());
        assert!(copy.keep_source && copy.phase == MovePhase::Pending && copy.total == 10);
        let del = moves.iter().find(|m| m.shard == 5).unwrap();
        assert_eq!(del.from, stray);
        assert_eq!(del.from_address, format!("http://{stray}"));
        assert!(!del.keep_source && del.phase == MovePhase::Verified);

        // Both owners empty and the only documents on a non-owner: they are copied from it
        // to both owners, and it is cleaned afterwards.
        for o in owners(7) {
            held.insert((o.as_str().to_string(), "i".into(), 7), 0);
        }
        let lone = ["a", "b", "c"]
            .into_iter()
            .find(|n| !owners(7).iter().any(|o| o.as_str() == *n))
            .unwrap();
        held.insert((lone.to_string(), "i".into(), 7), 4);
        let moves = reconcile(&t, &idx, &held, |n| format!("http://{n}"));
        let seven: Vec<&Move> = moves.iter().filter(|m| m.shard == 7).collect();
        assert_eq!(seven.len(), 3, "{seven:?}");
        assert_eq!(
            seven
                .iter()
                .filter(|m| m.keep_source && m.from == lone)
                .count(),
            2
        );
        assert!(seven.iter().any(|m| !m.keep_source && m.from == lone));
        // A node that was not scanned (dead) is neither a source nor a target.
        held.retain(|(n, _, _), _| n != lone);
        let moves = reconcile(&t, &idx, &held, |n| format!("http://{n}"));
        assert!(moves.iter().all(|m| m.shard != 7), "{moves:?}");
    }

    #[test]
    fn adding_a_node_moves_only_to_it_and_about_a_quarter() {
        use NodeStatus::*;
        let before = topo(
            1,
            &[
                ("a", 0, Active),
                ("b", 0, Active),
                ("c", 0, Active),
                ("d", 0, Joining),
            ],
        );
        let after = topo(
            1,
            &[
                ("a", 0, Active),
                ("b", 0, Active),
                ("c", 0, Active),
                ("d", 0, Active),
            ],
        );
        let (mv, dropped) = moves(&before, &after, &[("i".into(), 64)], |_| true);
        assert!(dropped.is_empty());
        assert!(mv.iter().all(|m| m.to == "d" && m.from != "d"));
        assert!(mv
            .iter()
            .all(|m| m.from_address == format!("http://{}", m.from)));
        // Rendezvous: about S/4 shards move, never more than 1.1 × S/(N+1) by much.
        assert!((8..=24).contains(&mv.len()), "{}", mv.len());
    }

    #[test]
    fn draining_moves_everything_off_the_node_and_reports_orphans() {
        use NodeStatus::*;
        let before = topo(1, &[("a", 0, Active), ("b", 0, Draining)]);
        let after = topo(1, &[("a", 0, Active), ("b", 0, Removed)]);
        let (mv, dropped) = moves(&before, &after, &[("i".into(), 16)], |_| true);
        assert!(!mv.is_empty() && mv.iter().all(|m| m.from == "b" && m.to == "a"));
        assert!(dropped.is_empty());

        let before = topo(1, &[("a", 0, Draining)]);
        let after = topo(1, &[("a", 0, Removed)]);
        let (mv, dropped) = moves(&before, &after, &[("i".into(), 2)], |_| true);
        assert!(mv.is_empty());
        assert_eq!(dropped, ["i/0", "i/1"]);
    }

    #[test]
    fn adding_a_group_copies_every_shard_from_the_others_and_keeps_them() {
        use NodeStatus::*;
        let existing = [
            ("a", 0, Active),
            ("b", 0, Active),
            ("x", 1, Active),
            ("y", 1, Failed),
        ];
        let with = |status| {
            let mut n = existing.to_vec();
            n.extend([("p", 2, status), ("q", 2, status), ("r", 2, status)]);
            topo(2, &n)
        };
        let (before, after) = (with(Joining), with(Active));
        let indexes = [("i".to_string(), 16), ("j".to_string(), 3)];
        let (mv, dropped) = moves(&before, &after, &indexes, |n| n != "y");
        assert!(dropped.is_empty());
        // RF copies of every shard of every index, each to one of its owners in group 2.
        assert_eq!(mv.len(), 2 * (16 + 3));
        for m in &mv {
            assert!(m.keep_source && m.group == 2, "{m:?}");
            let owners = group_owners(ShardId(m.shard), &after, GroupId(2));
            assert!(owners.iter().any(|o| o.as_str() == m.to), "{m:?}");
            // Read from a usable owner of the shard in another group.
            assert!(["a", "b", "x"].contains(&m.from.as_str()), "{m:?}");
            assert_eq!(m.from_address, format!("http://{}", m.from));
        }
        // Nothing usable to read from: every shard is reported.
        let (mv, dropped) = moves(&before, &after, &indexes[1..], |_| false);
        assert!(mv.is_empty());
        assert_eq!(dropped, ["j/0", "j/0", "j/1", "j/1", "j/2", "j/2"]);
    }

    #[test]
    fn removing_a_group_loses_only_what_no_other_group_serves() {
        use NodeStatus::*;
        let t = topo(1, &[("a", 0, Active), ("b", 0, Active), ("x", 1, Active)]);
        let idx = [("i".to_string(), 8)];
        assert!(group_removal_losses(&t, 1, &idx, |_| true).is_empty());
        assert!(group_removal_losses(&t, 0, &idx, |_| true).is_empty());
        // With `b` down, group 1 alone has b's shards.
        let lost = group_removal_losses(&t, 1, &idx, |n| n != "b");
        let b_shards: Vec<String> = (0..8)
            .filter(|s| group_owners(ShardId(*s), &t, GroupId(0))[0].as_str() == "b")
            .map(|s| format!("i/{s}"))
            .collect();
        assert!(!b_shards.is_empty());
        assert_eq!(lost, b_shards);
        assert_eq!(serving_groups(&t, |_| true), [0, 1]);
        assert_eq!(serving_groups(&t, |n| n != "x"), [0]);
        // An empty slot (a removed group) and a joining group serve nothing.
        let t = topo(1, &[("a", 0, Active), ("p", 2, Joining)]);
        assert_eq!(serving_groups(&t, |_| true), [0]);
    }

    proptest::proptest! {
        /// Any deployment, any new group: RF new copies of every shard, each to one of its
        /// owners in the new group (each owner once), read from a usable copy elsewhere,
        /// and nothing moves in the existing groups.
        #[test]
        fn a_new_group_gets_exactly_rf_copies_of_every_shard(
            rf in 1u32..3,
            existing in proptest::collection::vec(1usize..5, 1..4),
            added in 1usize..5,
            shards in 1u32..24,
            down in proptest::collection::vec(proptest::bool::ANY, 16),
        ) {
            use NodeStatus::*;
            let added = added.max(rf as usize);
            let mut nodes: Vec<(String, u32, NodeStatus)> = Vec::new();
            for (g, count) in existing.iter().enumerate() {
                for i in 0..(*count).max(rf as usize) {
                    nodes.push((format!("g{g}n{i}"), g as u32, Active));
                }
            }
            let new_group = existing.len() as u32;
            let with = |status| {
                let mut all = nodes.clone();
                all.extend((0..added).map(|i| (format!("new{i}"), new_group, status)));
                let refs: Vec<(&str, u32, NodeStatus)> =
                    all.iter().map(|(id, g, s)| (id.as_str(), *g, *s)).collect();
                topo(rf, &refs)
            };
            let (before, after) = (with(Joining), with(Active));
            let ids: Vec<String> = nodes.iter().map(|n| n.0.clone()).collect();
            let usable = |n: &str| {
                ids.iter()
                    .position(|id| id == n)
                    .is_some_and(|i| !down[i % down.len()])
            };
            let (mv, dropped) = moves(&before, &after, &[("i".into(), shards)], usable);
            proptest::prop_assert_eq!(mv.len() + dropped.len(), (rf * shards) as usize);
            for s in 0..shards {
                let owners = group_owners(ShardId(s), &after, GroupId(new_group));
                let mut to: Vec<&str> = mv
                    .iter()
                    .filter(|m| m.shard == s)
                    .map(|m| m.to.as_str())
                    .collect();
                to.sort();
                to.dedup();
                proptest::prop_assert_eq!(
                    to.len(),
                    mv.iter().filter(|m| m.shard == s).count()
                );
                proptest::prop_assert!(to.iter().all(|t| owners.iter().any(|o| o.as_str() == *t)));
            }
            for m in &mv {
                proptest::prop_assert!(m.keep_source && m.group == new_group);
                proptest::prop_assert!(usable(&m.from) && !m.from.starts_with("new"));
            }
            // A shard is given up only when no other group has a usable owner of it.
            for d in &dropped {
                let s: u32 = d.trim_start_matches("i/").parse().unwrap();
                proptest::prop_assert!(before
                    .group_ids()
                    .all(|g| group_owners(ShardId(s), &before, g).iter().all(|n| !usable(n.as_str()))));
            }
        }
    }

    #[test]
    fn sources_prefer_the_old_owner_then_other_copies() {
        use NodeStatus::*;
        let t = topo(1, &[("a", 0, Failed), ("b", 0, Active), ("x", 1, Active)]);
        let mv = Move {
            index: "i".into(),
            shard: 0,
            group: 0,
            from: "a".into(),
            from_address: String::new(),
            to: "b".into(),
            keep_source: false,
            phase: MovePhase::Pending,
            copied: 0,
            total: 0,
            bytes: 0,
        };
        assert_eq!(sources(&t, &mv, |_| true)[0], "a");
        // The dead owner is skipped; the target never reads from itself; group 1's copy remains.
        assert_eq!(sources(&t, &mv, |n| n != "a"), ["x"]);
        assert!(sources(&t, &mv, |n| n == "zz").is_empty());
    }
}
