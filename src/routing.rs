//! Routing, normative and byte-exact (docs/contract.md#routing). Anyone holding the topology can
//! reproduce every decision made here; `docs/routing.md` has the same rules with fixture
//! vectors and a Python reproduction.
//!
//! - A primary key's *canonical form* is its UTF-8 bytes for a string id and its decimal ASCII
//!   for an integer id, so `42` and `"42"` are the same document (as in Meilisearch).
//! - `shard_for_key(pk, S) = xxh64(seed 0, canonical(pk)) mod S`.
//! - `score(shard, node) = xxh64(seed 0, u32_le(shard) ‖ utf8(node_id))`.
//! - `owners(shard, group)` = the RF highest-scoring nodes of the group's *placement set*
//!   (see [`crate::topology`] for which statuses own shards), ties by node id ascending.
//!   Rendezvous hashing is scoped per group, so a group's copies never collapse into
//!   another group and adding a node to one group never moves data in another.
//! - `write_targets(shard)` = the owners in every group (RG × RF), plus the `to` node of any
//!   in-flight migration of that shard (dual-write).
//! - A search picks one group and, per shard, one of the shard's owners that can serve reads,
//!   rotating with a caller-supplied counter; nodes are deduplicated so each is asked once for
//!   all of its shards.
//!
//! Everything here is pure. [`ShardMap`] precomputes owners per `(group, shard)` so the hot
//! path does one table lookup per document instead of hashing every node.

use crate::ids::{GroupId, NodeId, ShardId};
use crate::snapshot::ShardMigration;
use crate::topology::Topology;
use std::borrow::Cow;
use std::collections::BTreeMap;
use xxhash_rust::xxh64::{xxh64 as xxh64_seeded, Xxh64};

/// `xxh64` with seed 0, the only hash routing uses.
#[inline]
pub fn xxh64(bytes: &[u8]) -> u64 {
    xxh64_seeded(bytes, 0)
}

/// A document id as it appears in a payload, before canonicalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentIdRef<'a> {
    Str(&'a str),
    Int(i64),
    UInt(u64),
}

impl<'a> DocumentIdRef<'a> {
    /// A JSON value as a document id: strings and integers only (floats, booleans, null,
    /// arrays and objects are not ids). Character-set validation is [`crate::documents`]'s job.
    pub fn from_json(value: &'a serde_json::Value) -> Option<DocumentIdRef<'a>> {
        match value {
            serde_json::Value::String(s) => Some(DocumentIdRef::Str(s)),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Some(DocumentIdRef::Int(i))
                } else {
                    n.as_u64().map(DocumentIdRef::UInt)
                }
            }
            _ => None,
        }
    }

    /// The canonical form: the string itself, or the integer in decimal ASCII.
    pub fn canonical(self) -> Cow<'a, str> {
        match self {
            DocumentIdRef::Str(s) => Cow::Borrowed(s),
            DocumentIdRef::Int(i) => Cow::Owned(i.to_string()),
            DocumentIdRef::UInt(u) => Cow::Owned(u.to_string()),
        }
    }

    pub fn shard(self, shards: u32) -> ShardId {
        match self {
            DocumentIdRef::Str(s) => shard_for_key(s, shards),
            DocumentIdRef::Int(i) => {
                let mut buf = DecimalBuf::new();
                shard_for_bytes(buf.format_i64(i), shards)
            }
            DocumentIdRef::UInt(u) => {
                let mut buf = DecimalBuf::new();
                shard_for_bytes(buf.format_u64(u), shards)
            }
        }
    }
}

/// Formats integers into a stack buffer (no allocation on the per-document path).
pub(crate) struct DecimalBuf([u8; 20]);

impl DecimalBuf {
    pub(crate) fn new() -> Self {
        DecimalBuf([0; 20])
    }
    pub(crate) fn format_u64(&mut self, mut v: u64) -> &[u8] {
        let mut i = self.0.len();
        loop {
            i -= 1;
            self.0[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        &self.0[i..]
    }
    pub(crate) fn format_i64(&mut self, v: i64) -> &[u8] {
        if v >= 0 {
            return self.format_u64(v as u64);
        }
        // u64 holds |i64::MIN|; 19 digits + '-' fit in 20 bytes.
        let digits = self.format_u64(v.unsigned_abs()).len();
        let start = self.0.len() - digits - 1;
        self.0[start] = b'-';
        &self.0[start..]
    }
}

/// The shard of a canonical primary key given as bytes.
///
/// # Panics
/// If `shards == 0` (a validated config and every index have `S ≥ 1`).
#[inline]
pub fn shard_for_bytes(canonical: &[u8], shards: u32) -> ShardId {
    assert!(shards > 0, "shard count must be at least 1");
    let (h, s) = (xxh64(canonical), u64::from(shards));
    // `h % s` is a 64-bit division (tens of cycles, comparable to hashing a short key);
    // for the usual power-of-two shard counts the mask gives the identical result.
    let shard = if s.is_power_of_two() {
        h & (s - 1)
    } else {
        h % s
    };
    ShardId(shard as u32)
}

/// The shard of a string primary key (an integer key's decimal form gives the same shard as
/// the integer).
#[inline]
pub fn shard_for_key(pk: &str, shards: u32) -> ShardId {
    shard_for_bytes(pk.as_bytes(), shards)
}

/// The shard of a JSON id value; `None` when the value cannot be a document id.
pub fn shard_for_json_id(value: &serde_json::Value, shards: u32) -> Option<ShardId> {
    DocumentIdRef::from_json(value).map(|id| id.shard(shards))
}

/// Rendezvous score of `node` for `shard`.
#[inline]
pub fn score(shard: ShardId, node: &NodeId) -> u64 {
    let mut h = Xxh64::new(0);
    h.update(&shard.0.to_le_bytes());
    h.update(node.as_str().as_bytes());
    h.digest()
}

/// The `rf` highest-scoring nodes among `nodes` for `shard` (ties by id ascending), best
/// first. Fewer than `rf` nodes → all of them. `nodes` is the placement set of ONE group.
pub fn owners(shard: ShardId, nodes: &[NodeId], rf: u32) -> Vec<NodeId> {
    let mut scored: Vec<(u64, &NodeId)> = nodes.iter().map(|n| (score(shard, n), n)).collect();
    scored.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored
        .into_iter()
        .take(rf as usize)
        .map(|(_, n)| n.clone())
        .collect()
}

/// Owners of `shard` in `group` of `topology` (over the group's placement set).
pub fn group_owners(shard: ShardId, topology: &Topology, group: GroupId) -> Vec<NodeId> {
    owners(
        shard,
        &topology.placement_nodes(group),
        topology.replication_factor(),
    )
}

/// Owners of `shard` in every group, group by group (RG × RF nodes when every group has at
/// least RF placement nodes).
pub fn write_targets(shard: ShardId, topology: &Topology) -> Vec<NodeId> {
    topology
        .group_ids()
        .flat_map(|g| group_owners(shard, topology, g))
        .collect()
}

/// [`write_targets`] plus the `to` node of every migration of `(index, shard)` that is not
/// already a target (dual-write during a move).
pub fn write_targets_with_migrations(
    index: &str,
    shard: ShardId,
    topology: &Topology,
    migrations: &[ShardMigration],
) -> Vec<NodeId> {
    let mut targets = write_targets(shard, topology);
    add_migration_targets(&mut targets, index, shard, migrations);
    targets
}

fn add_migration_targets(
    targets: &mut Vec<NodeId>,
    index: &str,
    shard: ShardId,
    migrations: &[ShardMigration],
) {
    for m in migrations {
        if m.index == index && m.shard == shard && !targets.contains(&m.to) {
            targets.push(m.to.clone());
        }
    }
}

/// The nodes a search asks and, per node, the shards it answers for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Coverage {
    /// Sorted by node id; each node's shards ascending. A node appears once.
    pub targets: Vec<(NodeId, Vec<ShardId>)>,
    /// Shards no live owner could serve (ascending).
    pub uncovered: Vec<ShardId>,
}

impl Coverage {
    pub fn is_complete(&self) -> bool {
        self.uncovered.is_empty()
    }

    /// Number of nodes asked (the fan-out).
    pub fn fan_out(&self) -> usize {
        self.targets.len()
    }
}

/// Picks, for each shard, `candidates[(rotation + shard) % len]` among the live candidates.
/// Offsetting by the shard spreads one query's shards over all replicas, and the per-call
/// rotation spreads successive queries.
fn pick(candidates: &[NodeId], shard: ShardId, rotation: u64) -> Option<&NodeId> {
    if candidates.is_empty() {
        return None;
    }
    let i = rotation.wrapping_add(u64::from(shard.0)) % candidates.len() as u64;
    Some(&candidates[i as usize])
}

fn collect_coverage(assigned: BTreeMap<NodeId, Vec<ShardId>>, uncovered: Vec<ShardId>) -> Coverage {
    Coverage {
        targets: assigned.into_iter().collect(),
        uncovered,
    }
}

/// Covering set of `group` by placement alone (statuses and health ignored): for planning,
/// `explain`, and as the reference the availability-aware variants reduce to.
pub fn covering_set(
    topology: &Topology,
    group: GroupId,
    shards: u32,
    rotation: u64,
) -> Vec<(NodeId, Vec<ShardId>)> {
    ShardMap::new(topology, shards)
        .covering(group, rotation, |_| true)
        .targets
}

/// Covering set of `group` over owners that serve reads (status) and that `is_up` accepts
/// (the caller's health view). Shards with no such owner are returned in `uncovered` so the
/// caller can try another group ([`ShardMap::search_plan`] does that).
pub fn covering_set_available(
    topology: &Topology,
    group: GroupId,
    shards: u32,
    rotation: u64,
    is_up: impl Fn(&NodeId) -> bool,
) -> Coverage {
    let map = ShardMap::new(topology, shards);
    map.covering(group, rotation, |n| {
        topology.status(n).is_some_and(|s| s.serves_reads()) && is_up(n)
    })
}

/// The group a search prefers at round-robin position `counter`, among `groups` groups.
/// Only groups that can serve (`serving(g)`: some owner answers reads) take turns, so an empty
/// slot (a removed group) or a group still joining never takes a turn nor doubles the share of
/// the group after it; from the turn's group on, the first `complete` one (every shard has a
/// serving owner) is preferred, else the turn's group. `counter % groups` when none serves.
pub fn preferred_group(
    counter: usize,
    groups: usize,
    serving: impl Fn(usize) -> bool,
    complete: impl Fn(usize) -> bool,
) -> usize {
    let n = groups.max(1);
    let turns = (0..n).filter(|&g| serving(g)).count();
    if turns == 0 {
        return counter % n;
    }
    let turn = (0..n)
        .filter(|&g| serving(g))
        .nth(counter % turns)
        .expect("`turns` groups serve");
    (0..n)
        .map(|i| (turn + i) % n)
        .find(|&g| serving(g) && complete(g))
        .unwrap_or(turn)
}

/// One owner slot that changes between two topologies: in `group`, `shard` is no longer held
/// by `from` and is now held by `to`. `from: None` = a new copy (e.g. a new group or RF grew);
/// `to: None` = a copy dropped (e.g. a group removed).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardMove {
    pub group: GroupId,
    pub shard: ShardId,
    pub from: Option<NodeId>,
    pub to: Option<NodeId>,
}

/// The owner assignments that differ between `before` and `after` for an index with `shards`
/// shards, ordered by (group, shard). Within one shard, removed and added owners are paired in
/// id order.
pub fn moved_shards(before: &Topology, after: &Topology, shards: u32) -> Vec<ShardMove> {
    let groups = before.replica_groups().max(after.replica_groups());
    let mut moves = Vec::new();
    for g in (0..groups).map(GroupId) {
        let old_nodes = before.placement_nodes(g);
        let new_nodes = after.placement_nodes(g);
        if old_nodes == new_nodes && before.replication_factor() == after.replication_factor() {
            continue;
        }
        for s in (0..shards).map(ShardId) {
            let mut old = owners(s, &old_nodes, before.replication_factor());
            let mut new = owners(s, &new_nodes, after.replication_factor());
            old.sort();
            new.sort();
            let gone: Vec<_> = old.iter().filter(|n| !new.contains(n)).cloned().collect();
            let came: Vec<_> = new.iter().filter(|n| !old.contains(n)).cloned().collect();
            let pairs = gone.len().max(came.len());
            for i in 0..pairs {
                moves.push(ShardMove {
                    group: g,
                    shard: s,
                    from: gone.get(i).cloned(),
                    to: came.get(i).cloned(),
                });
            }
        }
    }
    moves
}

/// Owners of every `(group, shard)` computed once (S × RG rendezvous rankings). Build it when
/// a snapshot arrives or once per batch; lookups are then O(1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    shards: u32,
    /// `owners[group][shard]`, best first.
    owners: Vec<Vec<Vec<NodeId>>>,
}

impl ShardMap {
    /// # Panics
    /// If `shards == 0`.
    pub fn new(topology: &Topology, shards: u32) -> ShardMap {
        assert!(shards > 0, "shard count must be at least 1");
        let rf = topology.replication_factor();
        let owners = topology
            .group_ids()
            .map(|g| {
                let nodes = topology.placement_nodes(g);
                (0..shards)
                    .map(|s| owners(ShardId(s), &nodes, rf))
                    .collect()
            })
            .collect();
        ShardMap { shards, owners }
    }

    pub fn shards(&self) -> u32 {
        self.shards
    }

    pub fn replica_groups(&self) -> u32 {
        self.owners.len() as u32
    }

    /// Owners of `shard` in `group`, best first; empty for an unknown group or shard.
    pub fn owners(&self, group: GroupId, shard: ShardId) -> &[NodeId] {
        self.owners
            .get(group.0 as usize)
            .and_then(|g| g.get(shard.0 as usize))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Owners of `shard` in every group, group by group.
    pub fn write_targets(&self, shard: ShardId) -> Vec<NodeId> {
        (0..self.replica_groups())
            .flat_map(|g| self.owners(GroupId(g), shard).iter().cloned())
            .collect()
    }

    /// [`ShardMap::write_targets`] plus in-flight migration targets of `(index, shard)`.
    pub fn write_targets_with_migrations(
        &self,
        index: &str,
        shard: ShardId,
        migrations: &[ShardMigration],
    ) -> Vec<NodeId> {
        let mut targets = self.write_targets(shard);
        add_migration_targets(&mut targets, index, shard, migrations);
        targets
    }

    /// Groups shards by write target: node → shards it must receive (ascending), nodes sorted
    /// by id. This is how a document batch becomes one request per node.
    pub fn writes_by_node(
        &self,
        index: &str,
        shards: impl IntoIterator<Item = ShardId>,
        migrations: &[ShardMigration],
    ) -> Vec<(NodeId, Vec<ShardId>)> {
        // Borrow owners straight from the table: no per-shard target Vec, one clone per node.
        let mut by_node: BTreeMap<&NodeId, Vec<ShardId>> = BTreeMap::new();
        for shard in shards {
            let owners = self
                .owners
                .iter()
                .filter_map(|g| g.get(shard.0 as usize))
                .flatten();
            let moving = migrations
                .iter()
                .filter(|m| m.index == index && m.shard == shard)
                .map(|m| &m.to);
            for node in owners.chain(moving) {
                let list = by_node.entry(node).or_default();
                if !list.contains(&shard) {
                    list.push(shard);
                }
            }
        }
        by_node
            .into_iter()
            .map(|(node, mut list)| {
                list.sort_unstable();
                (node.clone(), list)
            })
            .collect()
    }

    /// Covering set of `group` among owners accepted by `usable`.
    pub fn covering(
        &self,
        group: GroupId,
        rotation: u64,
        usable: impl Fn(&NodeId) -> bool,
    ) -> Coverage {
        let mut assigned: BTreeMap<NodeId, Vec<ShardId>> = BTreeMap::new();
        let mut uncovered = Vec::new();
        let mut live: Vec<NodeId> = Vec::new();
        for s in (0..self.shards).map(ShardId) {
            live.clear();
            live.extend(self.owners(group, s).iter().filter(|n| usable(n)).cloned());
            match pick(&live, s, rotation) {
                Some(node) => assigned.entry(node.clone()).or_default().push(s),
                None => uncovered.push(s),
            }
        }
        collect_coverage(assigned, uncovered)
    }

    /// The full search plan: cover every shard from `preferred` first, then fill the gaps from
    /// the other groups in ascending order after it (wrapping). `usable` is the caller's view
    /// of which nodes can serve reads now (status and health). What no group can serve ends
    /// in `uncovered` (→ `X-Miroir-Degraded` or `miroir_shard_unavailable`).
    pub fn search_plan(
        &self,
        preferred: GroupId,
        rotation: u64,
        usable: impl Fn(&NodeId) -> bool,
    ) -> Coverage {
        let groups = self.replica_groups().max(1);
        let mut assigned: BTreeMap<NodeId, Vec<ShardId>> = BTreeMap::new();
        let mut pending: Vec<ShardId> = (0..self.shards).map(ShardId).collect();
        let mut live: Vec<NodeId> = Vec::new();
        for step in 0..groups {
            if pending.is_empty() {
                break;
            }
            let g = GroupId((preferred.0 % groups + step) % groups);
            pending.retain(|&s| {
                live.clear();
                live.extend(self.owners(g, s).iter().filter(|n| usable(n)).cloned());
                match pick(&live, s, rotation) {
                    Some(node) => {
                        assigned.entry(node.clone()).or_default().push(s);
                        false
                    }
                    None => true,
                }
            });
        }
        collect_coverage(assigned, pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{Node, NodeStatus};
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn ids(names: &[&str]) -> Vec<NodeId> {
        names.iter().map(NodeId::new).collect()
    }

    fn topo(rf: u32, groups: &[&[&str]]) -> Topology {
        let nodes = groups.iter().enumerate().flat_map(|(g, names)| {
            names.iter().map(move |n| Node {
                id: NodeId::new(n),
                address: format!("http://{n}"),
                replica_group: GroupId(g as u32),
                status: NodeStatus::Active,
            })
        });
        Topology::new(rf, groups.len() as u32, nodes).unwrap()
    }

    #[test]
    fn the_preferred_group_is_never_an_empty_one() {
        let all = |_| true;
        // Every group serving and complete: plain round robin.
        let got: Vec<usize> = (0..6).map(|c| preferred_group(c, 3, all, all)).collect();
        assert_eq!(got, [0, 1, 2, 0, 1, 2]);
        // Group 1 is an empty slot: turns alternate between 0 and 2 (not 0, 2, 2).
        let serving = |g| g != 1;
        let got: Vec<usize> = (0..6)
            .map(|c| preferred_group(c, 3, serving, serving))
            .collect();
        assert_eq!(got, [0, 2, 0, 2, 0, 2]);
        // Group 0 serves but is incomplete (a node down): the complete group 2 is preferred,
        // and the empty group 1 never, even with nothing complete.
        let got: Vec<usize> = (0..4)
            .map(|c| preferred_group(c, 3, serving, |g| g == 2))
            .collect();
        assert_eq!(got, [2, 2, 2, 2]);
        let got: Vec<usize> = (0..4)
            .map(|c| preferred_group(c, 3, serving, |_| false))
            .collect();
        assert_eq!(got, [0, 2, 0, 2]);
        // Nothing serves: the plain position (the plan reports every shard uncovered).
        assert_eq!(preferred_group(4, 3, |_| false, |_| false), 1);
        assert_eq!(preferred_group(4, 0, |_| false, |_| false), 0);
    }

    proptest! {
        #[test]
        fn preferred_groups_serve_whenever_one_does(
            counter in 0usize..1000,
            serving in proptest::collection::vec(any::<bool>(), 1..6),
            complete in proptest::collection::vec(any::<bool>(), 1..6),
        ) {
            let n = serving.len();
            let s = |g: usize| serving[g];
            let c = |g: usize| serving[g] && complete.get(g).copied().unwrap_or(false);
            let g = preferred_group(counter, n, s, c);
            prop_assert!(g < n);
            if serving.iter().any(|x| *x) {
                prop_assert!(serving[g]);
            }
            if (0..n).any(c) {
                prop_assert!(c(g));
            }
        }
    }

    // ---- fixture vectors (independently computed, xxh64 seed 0) ----

    #[test]
    fn fixture_hash_and_shards() {
        assert_eq!(xxh64(b"42"), 0x6de6f5d076d742b9);
        assert_eq!(shard_for_key("42", 64), ShardId(57));
        assert_eq!(DocumentIdRef::Int(42).shard(64), ShardId(57));
        assert_eq!(DocumentIdRef::UInt(42).shard(64), ShardId(57));
        assert_eq!(
            shard_for_json_id(&serde_json::json!(42), 64),
            Some(ShardId(57))
        );
        assert_eq!(
            shard_for_json_id(&serde_json::json!("42"), 64),
            Some(ShardId(57))
        );
        assert_eq!(shard_for_key("abc", 64), ShardId(25));
        assert_eq!(shard_for_key("doc-00001", 64), ShardId(54));
        assert_eq!(shard_for_key("Ünïcødé-ключ", 64), ShardId(37));
        assert_eq!(shard_for_key("doc-00001", 16), ShardId(6));
    }

    #[test]
    fn fixture_scores() {
        assert_eq!(
            score(ShardId(0), &NodeId::new("meili-0")),
            17638547183331157368
        );
        assert_eq!(
            score(ShardId(7), &NodeId::new("meili-1")),
            1423867368525975566
        );
        assert_eq!(
            score(ShardId(63), &NodeId::new("meili-2")),
            8626681857670049068
        );
    }

    #[test]
    fn fixture_owners_rf1_s16() {
        let nodes = ids(&["meili-0", "meili-1", "meili-2"]);
        let expected = [0, 2, 1, 1, 2, 0, 2, 0, 2, 0, 1, 2, 0, 0, 0, 0];
        for (s, &want) in expected.iter().enumerate() {
            assert_eq!(
                owners(ShardId(s as u32), &nodes, 1),
                vec![nodes[want].clone()],
                "shard {s}"
            );
        }
    }

    #[test]
    fn fixture_owners_rf2() {
        let nodes = ids(&["meili-0", "meili-1", "meili-2"]);
        assert_eq!(owners(ShardId(0), &nodes, 2), ids(&["meili-0", "meili-2"]));
        assert_eq!(owners(ShardId(2), &nodes, 2), ids(&["meili-1", "meili-2"]));
    }

    #[test]
    fn fixture_distribution_s64() {
        let nodes = ids(&["meili-0", "meili-1", "meili-2"]);
        let mut counts = [0; 3];
        for s in 0..64 {
            let o = owners(ShardId(s), &nodes, 1);
            counts[nodes.iter().position(|n| *n == o[0]).unwrap()] += 1;
        }
        assert_eq!(counts, [19, 19, 26]);
    }

    #[test]
    fn fixture_covering_set_rf2_s16() {
        // Same vectors as docs/routing.md (reproduced there in Python).
        let t = topo(2, &[&["meili-0", "meili-1", "meili-2"]]);
        let plan = |rotation, up: &dyn Fn(&NodeId) -> bool| {
            covering_set_available(&t, GroupId(0), 16, rotation, up)
                .targets
                .into_iter()
                .map(|(n, s)| (n.as_str().to_string(), s.into_iter().map(|s| s.0).collect()))
                .collect::<Vec<(String, Vec<u32>)>>()
        };
        let v = |n: &str, s: &[u32]| (n.to_string(), s.to_vec());
        assert_eq!(
            plan(0, &|_| true),
            [
                v("meili-0", &[0, 1, 11, 12, 14]),
                v("meili-1", &[2, 5, 9, 10]),
                v("meili-2", &[3, 4, 6, 7, 8, 13, 15])
            ]
        );
        assert_eq!(
            plan(1, &|_| true),
            [
                v("meili-0", &[5, 6, 7, 8, 9, 10, 13, 15]),
                v("meili-1", &[3, 4, 12, 14]),
                v("meili-2", &[0, 1, 2, 11])
            ]
        );
        assert_eq!(
            plan(0, &|n| n.as_str() != "meili-2"),
            [
                v("meili-0", &[0, 1, 6, 7, 8, 11, 12, 13, 14, 15]),
                v("meili-1", &[2, 3, 4, 5, 9, 10])
            ]
        );
    }

    // ---- unit behaviour ----

    #[test]
    fn integer_canonical_form_is_decimal() {
        assert_eq!(DocumentIdRef::Int(-17).canonical(), "-17");
        assert_eq!(
            DocumentIdRef::Int(i64::MIN).canonical(),
            i64::MIN.to_string()
        );
        assert_eq!(
            DocumentIdRef::UInt(u64::MAX).canonical(),
            u64::MAX.to_string()
        );
        for v in [0i64, 7, -1, i64::MIN, i64::MAX, 1234567890] {
            assert_eq!(
                DocumentIdRef::Int(v).shard(64),
                shard_for_key(&v.to_string(), 64)
            );
        }
        assert_eq!(
            DocumentIdRef::UInt(u64::MAX).shard(97),
            shard_for_key(&u64::MAX.to_string(), 97)
        );
        assert_eq!(DocumentIdRef::from_json(&serde_json::json!(1.5)), None);
        assert_eq!(DocumentIdRef::from_json(&serde_json::json!(null)), None);
        assert_eq!(
            DocumentIdRef::from_json(&serde_json::json!(u64::MAX)),
            Some(DocumentIdRef::UInt(u64::MAX))
        );
    }

    #[test]
    fn owners_ties_break_by_id_and_rf_caps() {
        let nodes = ids(&["b", "a"]);
        assert_eq!(owners(ShardId(3), &nodes, 5).len(), 2);
        assert!(owners(ShardId(3), &[], 2).is_empty());
        // Equal ids can't tie in practice; the ordering is total, so owners is order-free.
        let mut rev = nodes.clone();
        rev.reverse();
        assert_eq!(owners(ShardId(3), &nodes, 2), owners(ShardId(3), &rev, 2));
    }

    #[test]
    fn placement_ignores_joining_and_removed_but_keeps_failed() {
        let mut t = topo(1, &[&["meili-0", "meili-1", "meili-2"]]);
        let before = ShardMap::new(&t, 16);
        t.set_status(&NodeId::new("meili-1"), NodeStatus::Failed)
            .unwrap();
        assert_eq!(
            ShardMap::new(&t, 16),
            before,
            "a failed node keeps its shards"
        );
        t.add_joining(NodeId::new("meili-3"), "http://x".into(), GroupId(0))
            .unwrap();
        assert_eq!(
            ShardMap::new(&t, 16),
            before,
            "a joining node owns nothing yet"
        );
        t.set_status(&NodeId::new("meili-1"), NodeStatus::Removed)
            .unwrap();
        assert_ne!(ShardMap::new(&t, 16), before);
    }

    #[test]
    fn write_targets_include_migrations_once() {
        let t = topo(1, &[&["meili-0", "meili-1", "meili-2"], &["r-0", "r-1"]]);
        let base = write_targets(ShardId(0), &t);
        assert_eq!(base.len(), 2);
        assert_eq!(base[0], NodeId::new("meili-0"));
        let migrations = vec![
            ShardMigration {
                index: "movies".into(),
                shard: ShardId(0),
                group: GroupId(0),
                from: NodeId::new("meili-0"),
                to: NodeId::new("meili-9"),
            },
            ShardMigration {
                index: "other".into(),
                shard: ShardId(0),
                group: GroupId(0),
                from: NodeId::new("meili-0"),
                to: NodeId::new("meili-8"),
            },
        ];
        let with = write_targets_with_migrations("movies", ShardId(0), &t, &migrations);
        assert_eq!(with.len(), 3);
        assert_eq!(with[2], NodeId::new("meili-9"));
        assert_eq!(
            write_targets_with_migrations("movies", ShardId(1), &t, &migrations).len(),
            2
        );
        let map = ShardMap::new(&t, 16);
        assert_eq!(
            map.write_targets_with_migrations("movies", ShardId(0), &migrations),
            with
        );
    }

    #[test]
    fn writes_by_node_groups_shards() {
        let t = topo(1, &[&["meili-0", "meili-1", "meili-2"]]);
        let map = ShardMap::new(&t, 16);
        let plan = map.writes_by_node("i", [ShardId(2), ShardId(0), ShardId(1), ShardId(0)], &[]);
        // Owners at S=16: shard0 → meili-0, shard1 → meili-2, shard2 → meili-1.
        assert_eq!(
            plan,
            vec![
                (NodeId::new("meili-0"), vec![ShardId(0)]),
                (NodeId::new("meili-1"), vec![ShardId(2)]),
                (NodeId::new("meili-2"), vec![ShardId(1)]),
            ]
        );
    }

    #[test]
    fn covering_rotates_among_owners() {
        let t = topo(2, &[&["meili-0", "meili-1", "meili-2"]]);
        // Shard 0 owners (RF=2): [meili-0, meili-2].
        let pick0 = |rotation| {
            covering_set(&t, GroupId(0), 16, rotation)
                .into_iter()
                .find(|(_, shards)| shards.contains(&ShardId(0)))
                .unwrap()
                .0
        };
        assert_eq!(pick0(0), NodeId::new("meili-0"));
        assert_eq!(pick0(1), NodeId::new("meili-2"));
        assert_eq!(pick0(2), NodeId::new("meili-0"));
    }

    #[test]
    fn covering_available_skips_down_and_non_reading_nodes() {
        let mut t = topo(1, &[&["meili-0", "meili-1", "meili-2"]]);
        let all = covering_set_available(&t, GroupId(0), 16, 0, |_| true);
        assert!(all.is_complete());
        assert_eq!(all.fan_out(), 3);
        // RF=1: meili-0 down → its shards are uncovered in this group.
        let down = covering_set_available(&t, GroupId(0), 16, 0, |n| n.as_str() != "meili-0");
        assert_eq!(down.uncovered, [0, 5, 7, 9, 12, 13, 14, 15].map(ShardId));
        t.set_status(&NodeId::new("meili-0"), NodeStatus::Failed)
            .unwrap();
        assert_eq!(
            covering_set_available(&t, GroupId(0), 16, 0, |_| true),
            down
        );
    }

    #[test]
    fn search_plan_falls_back_to_other_groups() {
        let t = topo(1, &[&["a-0", "a-1"], &["b-0", "b-1"]]);
        let map = ShardMap::new(&t, 8);
        let full = map.search_plan(GroupId(1), 0, |_| true);
        assert!(full
            .targets
            .iter()
            .all(|(n, _)| n.as_str().starts_with("b-")));
        let a0 = map.search_plan(GroupId(0), 0, |n| n.as_str() != "a-0");
        assert!(a0.is_complete());
        let a0_shards: Vec<ShardId> = (0..8)
            .map(ShardId)
            .filter(|&s| map.owners(GroupId(0), s)[0].as_str() == "a-0")
            .collect();
        let from_b: Vec<ShardId> = a0
            .targets
            .iter()
            .filter(|(n, _)| n.as_str().starts_with("b-"))
            .flat_map(|(_, s)| s.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(from_b, a0_shards);
        let none = map.search_plan(GroupId(0), 0, |_| false);
        assert_eq!(none.uncovered.len(), 8);
        assert!(none.targets.is_empty());
    }

    #[test]
    fn moved_shards_on_add_and_group_growth() {
        let before = topo(1, &[&["meili-0", "meili-1", "meili-2"]]);
        let after = topo(1, &[&["meili-0", "meili-1", "meili-2", "meili-3"]]);
        let moves = moved_shards(&before, &after, 64);
        assert!(!moves.is_empty());
        assert!(moves
            .iter()
            .all(|m| m.to == Some(NodeId::new("meili-3")) && m.from.is_some()));
        assert!(moved_shards(&before, &before, 64).is_empty());
        let two = topo(1, &[&["meili-0", "meili-1", "meili-2"], &["r-0"]]);
        let added_group = moved_shards(&before, &two, 8);
        assert_eq!(added_group.len(), 8);
        assert!(added_group
            .iter()
            .all(|m| m.group == GroupId(1) && m.from.is_none()));
    }

    #[test]
    fn join_and_drain_flows_through_the_state_machine() {
        // The admin's add-node flow: joining (owns nothing) → moves computed as if active →
        // active switches ownership to exactly those moves.
        let before = topo(1, &[&["meili-0", "meili-1", "meili-2"]]);
        let mut joining = before.clone();
        let new = NodeId::new("meili-3");
        joining
            .add_joining(new.clone(), "http://x".into(), GroupId(0))
            .unwrap();
        assert!(moved_shards(&before, &joining, 64).is_empty());
        let mut active = joining.clone();
        active.set_status(&new, NodeStatus::Active).unwrap();
        let adds = moved_shards(&joining, &active, 64);
        assert!(!adds.is_empty());
        let map = ShardMap::new(&active, 64);
        for m in &adds {
            assert_eq!(map.owners(GroupId(0), m.shard), std::slice::from_ref(&new));
        }
        // Draining keeps ownership; removal moves exactly the drained node's shards back.
        let mut draining = active.clone();
        draining.set_status(&new, NodeStatus::Draining).unwrap();
        assert!(moved_shards(&active, &draining, 64).is_empty());
        let mut removed = draining.clone();
        removed.set_status(&new, NodeStatus::Removed).unwrap();
        let back = moved_shards(&draining, &removed, 64);
        assert_eq!(back.len(), adds.len());
        assert!(back.iter().all(|m| m.from.as_ref() == Some(&new)));
        assert_eq!(ShardMap::new(&removed, 64), ShardMap::new(&before, 64));
    }

    // ---- properties ----

    fn node_names(max: usize) -> impl Strategy<Value = Vec<String>> {
        proptest::collection::hash_set("[a-z0-9-]{1,12}", 1..=max)
            .prop_map(|s| s.into_iter().collect::<Vec<_>>())
    }

    fn to_ids(names: &[String]) -> Vec<NodeId> {
        names.iter().map(NodeId::new).collect()
    }

    fn group_topology(rf: u32, groups: &[Vec<NodeId>]) -> Topology {
        let nodes = groups.iter().enumerate().flat_map(|(g, ns)| {
            ns.iter().map(move |n| Node {
                id: n.clone(),
                address: String::new(),
                replica_group: GroupId(g as u32),
                status: NodeStatus::Active,
            })
        });
        Topology::new(rf, groups.len() as u32, nodes).unwrap()
    }

    fn config(cases: u32) -> ProptestConfig {
        ProptestConfig {
            cases,
            ..ProptestConfig::default()
        }
    }

    proptest! {
        #![proptest_config(config(1024))]

        #[test]
        fn prop_routing_is_deterministic_and_order_free(
            key in "\\PC{0,40}", shards in 1u32..512, names in node_names(8), rf in 1u32..4,
        ) {
            let s = shard_for_key(&key, shards);
            prop_assert!(s.0 < shards);
            prop_assert_eq!(s, shard_for_key(&key.clone(), shards));
            let nodes = to_ids(&names);
            let mut rev = nodes.clone();
            rev.reverse();
            let o = owners(s, &nodes, rf);
            prop_assert_eq!(&o, &owners(s, &rev, rf));
            prop_assert_eq!(o.len(), (rf as usize).min(nodes.len()));
            let uniq: HashSet<_> = o.iter().collect();
            prop_assert_eq!(uniq.len(), o.len());
            // best first: scores are non-increasing
            for w in o.windows(2) {
                prop_assert!(score(s, &w[0]) >= score(s, &w[1]));
            }
        }

        #[test]
        fn prop_shard_is_the_hash_modulo_the_shard_count(
            key in "\\PC{0,40}", shards in prop_oneof![1u32..300, (0u32..32).prop_map(|b| 1 << b)],
        ) {
            // The power-of-two mask in `shard_for_bytes` is only a faster `%`.
            let want = xxh64(key.as_bytes()) % u64::from(shards);
            prop_assert_eq!(u64::from(shard_for_key(&key, shards).0), want);
        }

        #[test]
        fn prop_integer_ids_match_their_decimal_string(v in any::<i64>(), shards in 1u32..1024) {
            prop_assert_eq!(DocumentIdRef::Int(v).shard(shards), shard_for_key(&v.to_string(), shards));
        }

        #[test]
        fn prop_every_group_covers_all_shards(
            groups in proptest::collection::vec(node_names(6), 1..4),
            rf in 1u32..4, shards in 1u32..200, rotation in any::<u64>(),
        ) {
            let groups: Vec<Vec<NodeId>> = groups.iter().enumerate()
                .map(|(g, ns)| ns.iter().map(|n| NodeId::new(format!("g{g}-{n}"))).collect())
                .collect();
            let t = group_topology(rf, &groups);
            let map = ShardMap::new(&t, shards);
            for g in t.group_ids() {
                let cover = map.covering(g, rotation, |_| true);
                prop_assert!(cover.is_complete());
                let mut seen: Vec<ShardId> = cover.targets.iter().flat_map(|(_, s)| s.clone()).collect();
                seen.sort();
                prop_assert_eq!(seen, (0..shards).map(ShardId).collect::<Vec<_>>());
                for (node, shard_list) in &cover.targets {
                    prop_assert_eq!(t.node(node).unwrap().replica_group, g);
                    for s in shard_list {
                        prop_assert!(map.owners(g, *s).contains(node));
                    }
                }
                prop_assert_eq!(&cover.targets, &covering_set(&t, g, shards, rotation));
            }
        }

        #[test]
        fn prop_write_targets_are_rf_per_group(
            groups in proptest::collection::vec(node_names(6), 1..4),
            rf in 1u32..4, shards in 1u32..200, key in "[a-z0-9]{1,10}",
        ) {
            let groups: Vec<Vec<NodeId>> = groups.iter().enumerate()
                .map(|(g, ns)| ns.iter().map(|n| NodeId::new(format!("g{g}-{n}"))).collect())
                .collect();
            // RF may not exceed the smallest group (config validation enforces it).
            let rf = rf.min(groups.iter().map(Vec::len).min().unwrap() as u32);
            let t = group_topology(rf, &groups);
            let shard = shard_for_key(&key, shards);
            let targets = write_targets(shard, &t);
            prop_assert_eq!(targets.len(), groups.len() * rf as usize);
            for g in t.group_ids() {
                let in_group = targets.iter().filter(|n| t.node(n).unwrap().replica_group == g).count();
                prop_assert_eq!(in_group, rf as usize);
            }
            prop_assert_eq!(&targets, &ShardMap::new(&t, shards).write_targets(shard));
        }

        #[test]
        fn prop_removing_a_node_moves_only_its_shards(
            names in node_names(8), victim in any::<prop::sample::Index>(), rf in 1u32..3,
            shards in 1u32..256,
        ) {
            prop_assume!(names.len() >= 2);
            let nodes = to_ids(&names);
            let gone = nodes[victim.index(nodes.len())].clone();
            let rest: Vec<NodeId> = nodes.iter().filter(|n| **n != gone).cloned().collect();
            let rf = rf.min(rest.len() as u32);
            let before = group_topology(rf, std::slice::from_ref(&nodes));
            let after = group_topology(rf, &[rest]);
            let moves = moved_shards(&before, &after, shards);
            for m in &moves {
                prop_assert_eq!(m.from.as_ref(), Some(&gone));
                prop_assert!(m.to.is_some());
            }
            let held = (0..shards).filter(|&s| owners(ShardId(s), &nodes, rf).contains(&gone)).count();
            prop_assert_eq!(moves.len(), held);
        }
    }

    // Adding a node is a statistical bound: each shard moves to the new node with probability
    // 1/(Ng+1), so the move count is Binomial(S, 1/(Ng+1)) with mean S/(Ng+1). The property
    // uses S = 16·(Ng+1)…256 (docs/contract.md#model sizes S at ≥ 8 × nodes per group): the 2×mean bound
    // is then ≥ 4 standard deviations out (P < 1e-4 per case), and the seed is fixed so that
    // CI cannot flake on a rare draw.
    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 1024,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x6d69_726f_6972),
            ..ProptestConfig::default()
        })]

        #[test]
        fn prop_adding_a_node_moves_at_most_twice_its_share(
            names in node_names(8), other in node_names(4), extra in 0u32..=200,
            newcomer in "[a-z0-9]{1,12}",
        ) {
            let group: Vec<NodeId> = names.iter().map(|n| NodeId::new(format!("a-{n}"))).collect();
            let other: Vec<NodeId> = other.iter().map(|n| NodeId::new(format!("b-{n}"))).collect();
            let ng = group.len() as u32;
            let shards = (16 * (ng + 1) + extra).min(256.max(16 * (ng + 1)));
            let mut grown = group.clone();
            grown.push(NodeId::new(format!("new-{newcomer}")));
            let before = group_topology(1, &[group.clone(), other.clone()]);
            let after = group_topology(1, &[grown, other]);
            let moves = moved_shards(&before, &after, shards);
            let bound = 2 * shards.div_ceil(ng + 1);
            prop_assert!(moves.len() as u32 <= bound, "{} moves > bound {}", moves.len(), bound);
            prop_assert!(moves.iter().all(|m| m.group == GroupId(0)), "other group touched");
            prop_assert!(moves.iter().all(|m| m.to.as_ref().is_some_and(|t| t.as_str().starts_with("new-"))));
        }
    }
}
