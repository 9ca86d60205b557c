//! Planning shard moves (pure): which copies change owner between two topologies, and which
//! nodes a moving copy can be read from.

use super::{Move, MovePhase};
use miroir_core::ids::GroupId;
use miroir_core::routing::{group_owners, moved_shards};
use miroir_core::topology::Topology;
use miroir_core::ShardId;

/// The copies that change owner from `before` to `after`, for every `(index uid, S)`.
/// A copy that disappears without a new owner (`to: None`: its group has no node left) is
/// returned apart, as `index/shard`.
pub fn moves(
    before: &Topology,
    after: &Topology,
    indexes: &[(String, u32)],
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
                    phase: MovePhase::Pending,
                    copied: 0,
                    total: 0,
                    bytes: 0,
                }),
                (Some(_), None) => dropped.push(format!("{index}/{}", m.shard.0)),
                // A copy with no previous owner (a group or RF grew) is not produced by the
                // operations that exist.
                (None, _) => {}
            }
        }
    }
    (out, dropped)
}

/// The nodes a copy of `shard` can be read from, best first: `from` itself when it is usable,
/// then the shard's other owners in `from`'s group, then its owners in the other groups (every
/// group holds every document). `usable` is the caller's view of which nodes answer reads.
pub fn sources(topology: &Topology, mv: &Move, usable: impl Fn(&str) -> bool) -> Vec<String> {
    let shard = ShardId(mv.shard);
    let mut out: Vec<String> = Vec::new();
    let mut push = |id: &str| {
        if usable(id) && !out.iter().any(|o| o == id) && id != mv.to {
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

#[cfg(test)]
mod tests {
    use super::*;
    use miroir_core::ids::NodeId;
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
        let (mv, dropped) = moves(&before, &after, &[("i".into(), 64)]);
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
        let (mv, dropped) = moves(&before, &after, &[("i".into(), 16)]);
        assert!(!mv.is_empty() && mv.iter().all(|m| m.from == "b" && m.to == "a"));
        assert!(dropped.is_empty());

        let before = topo(1, &[("a", 0, Draining)]);
        let after = topo(1, &[("a", 0, Removed)]);
        let (mv, dropped) = moves(&before, &after, &[("i".into(), 2)]);
        assert!(mv.is_empty());
        assert_eq!(dropped, ["i/0", "i/1"]);
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
