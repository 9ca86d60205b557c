//! Shard coverage for `GET /_miroir/ready`, `/_miroir/shards` and the topology's
//! `shard_count`/`fully_covered`: which nodes own which shards (rendezvous per group,
//! docs/contract.md#routing, computed by `miroir_core::routing`) and whether every shard has a live owner
//! in at least one group.

use miroir_core::ids::{NodeId, ShardId};

/// The `rf` nodes of one group with the highest rendezvous score (ties by id), as `&str`s of
/// `group_nodes`.
pub fn owners<'a>(shard: u32, group_nodes: &[&'a str], rf: u32) -> Vec<&'a str> {
    let ids: Vec<NodeId> = group_nodes.iter().map(NodeId::new).collect();
    miroir_core::routing::owners(ShardId(shard), &ids, rf)
        .into_iter()
        .filter_map(|o| group_nodes.iter().find(|n| **n == o.as_str()).copied())
        .collect()
}

/// One node as coverage sees it.
#[derive(Debug, Clone)]
pub struct CoverNode<'a> {
    pub id: &'a str,
    pub group: u32,
    /// Takes part in placement (not removed/joining).
    pub places: bool,
    /// Can serve reads now.
    pub live: bool,
}

/// Shards (of `shards`) that have no live owner in any group.
pub fn uncovered_shards(nodes: &[CoverNode<'_>], groups: u32, rf: u32, shards: u32) -> Vec<u32> {
    let per_group: Vec<Vec<&str>> = (0..groups)
        .map(|g| {
            nodes
                .iter()
                .filter(|n| n.group == g && n.places)
                .map(|n| n.id)
                .collect()
        })
        .collect();
    let live = |id: &str| nodes.iter().any(|n| n.id == id && n.live);
    (0..shards)
        .filter(|&s| {
            !per_group
                .iter()
                .any(|members| owners(s, members, rf).into_iter().any(live))
        })
        .collect()
}

/// Shards owned per node (placement only, liveness ignored), by node id.
pub fn shard_counts(
    nodes: &[CoverNode<'_>],
    groups: u32,
    rf: u32,
    shards: u32,
) -> std::collections::BTreeMap<String, u32> {
    let mut counts: std::collections::BTreeMap<String, u32> =
        nodes.iter().map(|n| (n.id.to_string(), 0)).collect();
    for g in 0..groups {
        let members: Vec<&str> = nodes
            .iter()
            .filter(|n| n.group == g && n.places)
            .map(|n| n.id)
            .collect();
        for s in 0..shards {
            for o in owners(s, &members, rf) {
                *counts.entry(o.to_string()).or_default() += 1;
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_vectors_of_product_md() {
        let nodes = ["meili-0", "meili-1", "meili-2"];
        let got: Vec<usize> = (0..16)
            .map(|s| {
                nodes
                    .iter()
                    .position(|n| *n == owners(s, &nodes, 1)[0])
                    .unwrap()
            })
            .collect();
        assert_eq!(got, vec![0, 2, 1, 1, 2, 0, 2, 0, 2, 0, 1, 2, 0, 0, 0, 0]);
        assert_eq!(owners(0, &nodes, 2), vec!["meili-0", "meili-2"]);
        assert_eq!(owners(2, &nodes, 2), vec!["meili-1", "meili-2"]);
    }

    fn node(id: &str, group: u32, live: bool) -> CoverNode<'_> {
        CoverNode {
            id,
            group,
            places: true,
            live,
        }
    }

    #[test]
    fn a_dead_node_uncovers_exactly_its_shards_unless_another_group_has_them() {
        let one_group = [
            node("meili-0", 0, true),
            node("meili-1", 0, false),
            node("meili-2", 0, true),
        ];
        let counts = shard_counts(&one_group, 1, 1, 64);
        let missing = uncovered_shards(&one_group, 1, 1, 64);
        assert_eq!(missing.len() as u32, counts["meili-1"]);
        assert!(!missing.is_empty());
        // RF 2: every shard has a second owner, so one dead node uncovers nothing.
        assert!(uncovered_shards(&one_group, 1, 2, 64).is_empty());
        // A second, healthy group covers everything.
        let two_groups = [
            node("meili-0", 0, true),
            node("meili-1", 0, false),
            node("meili-3", 1, true),
        ];
        assert!(uncovered_shards(&two_groups, 2, 1, 64).is_empty());
        assert_eq!(counts.values().sum::<u32>(), 64);
    }
}
