//! Pure scatter planning for reads: which node answers for which shards, with fallback.
//!
//! A read (search, facet-search, document listing) must see every shard of the index exactly
//! once. The planner works on a [`ReadTable`]: for each replica group and each shard, the
//! shard's owners (placement, docs/contract.md#routing) and which nodes may serve reads right now.
//!
//! [`ReadTable::assign`] gives each requested shard one node:
//! 1. the preferred group first (round-robin per core, chosen by the caller), rotating among
//!    the shard's RF owners with the caller's rotation counter so replicas share the load
//!    (same rule as `miroir_core::routing::ShardMap::covering`);
//! 2. if no owner of that shard in the preferred group can serve (unavailable, or excluded
//!    because it already failed during this request), the same shard in the other groups;
//! 3. otherwise the shard is reported *uncovered* and the caller applies
//!    `unavailable_shard_policy`.
//!
//! Assignments are deduplicated per node: a node is asked once for all its shards. When a
//! node also holds shards that were assigned elsewhere (RF > 1, migrations), its request
//! must carry a `_miroir_shard IN [..]` filter — [`NodeAssignment::needs_shard_filter`].
//!
//! A *lagging* copy (a node with pending hints for a shard, decision 021) is not readable
//! for that shard: another owner answers for it, or the shard is uncovered.
//!
//! The same function replans after a runtime failure: call it again with the failed nodes
//! excluded and only the failed shards requested.
//!
//! The common call — every shard, nothing excluded — depends only on the table, the
//! preferred group and the rotation modulo the owner lists' lengths, so its plans are
//! memoised in the table (built once per snapshot generation and index; decision 040).

use miroir_core::{GroupId, NodeId, ShardId};
use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// One group's placement for an index's shard count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTable {
    pub group: GroupId,
    /// `owners[shard]` = the shard's owners in this group, best rendezvous score first.
    pub owners: Vec<Vec<NodeId>>,
}

/// Placement and availability for reads, for one shard count S.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadTable {
    pub shards: u32,
    pub groups: Vec<GroupTable>,
    /// Nodes that may serve reads now (statuses `active`, `degraded`, `draining`).
    pub readable: HashSet<NodeId>,
    /// Per node: every shard it physically holds (owned in its group, plus migration
    /// sources/targets). Used to decide whether a shard filter is needed.
    pub held: BTreeMap<NodeId, BTreeSet<ShardId>>,
    /// `(node, shard)` copies that are behind (pending hints): never read for that shard.
    pub lagging: HashSet<(NodeId, ShardId)>,
    /// Memoised plans and group completeness. They assume the fields above are not changed
    /// after the first call to [`ReadTable::assign`] or [`ReadTable::pick_group`] (tables
    /// are rebuilt, not edited, when the snapshot changes).
    memo: PlanMemo,
}

/// Memoised results of a [`ReadTable`]: a cache, not part of the table's value.
#[derive(Debug, Clone, Default)]
struct PlanMemo {
    /// Rotations repeat their plan with this period: the least common multiple of the owner
    /// lists' lengths (the shard's RF), or 0 when that is too large to be worth memoising.
    period: usize,
    /// `plans[preferred_group * period + rotation % period]` for the all-shards call with
    /// nothing excluded.
    plans: Vec<OnceCell<ScatterPlan>>,
    /// Per group: whether some owner in it is readable (it takes round-robin turns) and
    /// whether every shard has a readable owner in it ([`ReadTable::pick_group`]).
    complete: OnceCell<Vec<(bool, bool)>>,
}

impl PartialEq for PlanMemo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for PlanMemo {}

/// Plans for more rotations than this are not memoised (RF is at most a handful).
const MAX_MEMO_PERIOD: usize = 64;

impl PlanMemo {
    fn new(groups: &[GroupTable]) -> PlanMemo {
        fn gcd(a: usize, b: usize) -> usize {
            if b == 0 {
                a
            } else {
                gcd(b, a % b)
            }
        }
        let mut period = 1usize;
        for len in groups.iter().flat_map(|g| g.owners.iter().map(Vec::len)) {
            if len > 0 {
                period = period / gcd(period, len) * len;
                if period > MAX_MEMO_PERIOD {
                    period = 0;
                    break;
                }
            }
        }
        let slots = if groups.is_empty() {
            0
        } else {
            groups.len() * period
        };
        PlanMemo {
            period,
            plans: (0..slots).map(|_| OnceCell::new()).collect(),
            complete: OnceCell::new(),
        }
    }
}

/// One node's part of a scatter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAssignment {
    pub node: NodeId,
    pub group: GroupId,
    /// Shards this node answers for, ascending.
    pub shards: Vec<ShardId>,
    /// Whether the node holds shards beyond `shards` (then its request is filtered).
    pub needs_shard_filter: bool,
}

/// The result of planning.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScatterPlan {
    /// Ordered by each assignment's smallest shard, so the merge's tie order ("equal heads
    /// are taken in a fixed node order") does not depend on which replica answered.
    pub assignments: Vec<NodeAssignment>,
    /// Shards nobody can serve.
    pub uncovered: Vec<ShardId>,
}

impl ReadTable {
    /// Builds the table from an `owners(shard, group)` function (the core's rendezvous), the
    /// readable nodes, and extra holdings (migrations) per node.
    pub fn build(
        shards: u32,
        groups: &[GroupId],
        owners: impl Fn(ShardId, GroupId) -> Vec<NodeId>,
        readable: HashSet<NodeId>,
        extra_held: &[(NodeId, ShardId)],
    ) -> ReadTable {
        let mut held: BTreeMap<NodeId, BTreeSet<ShardId>> = BTreeMap::new();
        let groups: Vec<GroupTable> = groups
            .iter()
            .map(|&g| {
                let owners: Vec<Vec<NodeId>> = (0..shards).map(|s| owners(ShardId(s), g)).collect();
                for (s, os) in owners.iter().enumerate() {
                    for n in os {
                        held.entry(n.clone()).or_default().insert(ShardId(s as u32));
                    }
                }
                GroupTable { group: g, owners }
            })
            .collect();
        for (n, s) in extra_held {
            held.entry(n.clone()).or_default().insert(*s);
        }
        let memo = PlanMemo::new(&groups);
        ReadTable {
            shards,
            groups,
            readable,
            held,
            lagging: HashSet::new(),
            memo,
        }
    }

    /// The same table with `lagging` copies not readable for their shard.
    pub fn with_lagging(mut self, lagging: impl IntoIterator<Item = (NodeId, ShardId)>) -> Self {
        self.lagging.extend(lagging);
        self.memo = PlanMemo::new(&self.groups);
        self
    }

    /// Whether `node` may answer reads for `shard` now (readable, and its copy not lagging).
    pub fn serves(&self, node: &NodeId, shard: ShardId) -> bool {
        self.readable.contains(node)
            && (self.lagging.is_empty() || !self.lagging.contains(&(node.clone(), shard)))
    }

    /// Index of the group to prefer for a round-robin counter: the groups that can serve take
    /// turns, skipping groups that cannot serve every shard when another one can (a group
    /// with a node down is used only if no complete group exists;
    /// `miroir_core::routing::preferred_group`).
    pub fn pick_group(&self, counter: usize) -> usize {
        // Lagging copies do not make a group incomplete: `assign` moves just their shards to
        // another group at no cost, while a down node would cost a failed request.
        // Per group: (serving, complete), computed once per table. A group with no readable
        // owner at all (a removed group's empty slot, a group still joining) never takes a
        // turn.
        let groups = self.memo.complete.get_or_init(|| {
            self.groups
                .iter()
                .map(|g| {
                    let serving = g.owners.iter().flatten().any(|o| self.readable.contains(o));
                    let complete = g
                        .owners
                        .iter()
                        .all(|os| os.iter().any(|o| self.readable.contains(o)));
                    (serving, complete)
                })
                .collect()
        });
        miroir_core::routing::preferred_group(
            counter,
            self.groups.len(),
            |i| groups.get(i).is_some_and(|g| g.0),
            |i| groups.get(i).is_some_and(|g| g.1),
        )
    }

    /// Assigns each of `shards` to one readable, non-excluded node (see module docs).
    pub fn assign(
        &self,
        shards: &[ShardId],
        preferred_group: usize,
        rotation: usize,
        excluded: &HashSet<NodeId>,
    ) -> ScatterPlan {
        let ng = self.groups.len();
        let period = self.memo.period;
        let every_shard = || {
            shards.len() == self.shards as usize
                && shards.iter().enumerate().all(|(i, s)| s.0 as usize == i)
        };
        if period > 0 && ng > 0 && excluded.is_empty() && every_shard() {
            // Only the rotation modulo every owner list's length and the preferred group
            // modulo the group count reach the plan below.
            let slot = (preferred_group % ng) * period + rotation % period;
            return self.memo.plans[slot]
                .get_or_init(|| self.plan(shards, preferred_group, rotation, excluded))
                .clone();
        }
        self.plan(shards, preferred_group, rotation, excluded)
    }

    /// Whether some shard has more than one owner in a group (RF > 1): only then can
    /// [`ReadTable::assign_scored`] choose differently from [`ReadTable::assign`].
    pub fn has_replicas(&self) -> bool {
        self.memo.period != 1
    }

    /// [`ReadTable::assign`], except that within a group each shard goes to the usable owner
    /// with the lowest `score` (adaptive replica selection, [`crate::proxy::replica`]):
    /// owners within [`crate::proxy::replica::BAND`] of the best keep the rotation's order.
    /// Groups and fallbacks are chosen as by `assign`.
    pub fn assign_scored(
        &self,
        shards: &[ShardId],
        preferred_group: usize,
        rotation: usize,
        excluded: &HashSet<NodeId>,
        score: &dyn Fn(&NodeId) -> f64,
    ) -> ScatterPlan {
        self.plan_with(shards, preferred_group, rotation, excluded, Some(score))
    }

    /// [`ReadTable::assign`] without the memo.
    fn plan(
        &self,
        shards: &[ShardId],
        preferred_group: usize,
        rotation: usize,
        excluded: &HashSet<NodeId>,
    ) -> ScatterPlan {
        self.plan_with(shards, preferred_group, rotation, excluded, None)
    }

    fn plan_with(
        &self,
        shards: &[ShardId],
        preferred_group: usize,
        rotation: usize,
        excluded: &HashSet<NodeId>,
        score: Option<&dyn Fn(&NodeId) -> f64>,
    ) -> ScatterPlan {
        let mut per_node: BTreeMap<NodeId, (GroupId, BTreeSet<ShardId>)> = BTreeMap::new();
        let mut uncovered = Vec::new();
        let ng = self.groups.len();
        for &shard in shards {
            let mut chosen = None;
            for gi in (0..ng).map(|i| (preferred_group + i) % ng) {
                let g = &self.groups[gi];
                let Some(owners) = g.owners.get(shard.0 as usize) else {
                    continue;
                };
                let len = owners.len();
                // Start at `(rotation + shard) % RF` like the core's covering set: the shard
                // offset spreads one query's shards over all replicas, the rotation spreads
                // successive queries; then the next owners in order as fallback.
                let start = rotation.wrapping_add(shard.0 as usize);
                let usable = (0..len)
                    .map(|k| &owners[start.wrapping_add(k) % len])
                    .filter(|n| self.serves(n, shard) && !excluded.contains(*n));
                let pick = match score {
                    Some(score) if len > 1 => {
                        let best = usable.clone().map(score).fold(f64::INFINITY, f64::min);
                        let band = best * crate::proxy::replica::BAND;
                        usable.clone().find(|n| score(n) <= band)
                    }
                    _ => usable.clone().next(),
                };
                if let Some(n) = pick {
                    chosen = Some((n.clone(), g.group));
                    break;
                }
            }
            match chosen {
                Some((n, g)) => {
                    per_node
                        .entry(n)
                        .or_insert_with(|| (g, BTreeSet::new()))
                        .1
                        .insert(shard);
                }
                None => uncovered.push(shard),
            }
        }
        let mut assignments: Vec<NodeAssignment> = per_node
            .into_iter()
            .map(|(node, (group, set))| {
                let needs_shard_filter = self
                    .held
                    .get(&node)
                    .is_some_and(|h| h.iter().any(|s| !set.contains(s)));
                NodeAssignment {
                    node,
                    group,
                    shards: set.into_iter().collect(),
                    needs_shard_filter,
                }
            })
            .collect();
        assignments.sort_by_key(|a| a.shards.first().copied());
        ScatterPlan {
            assignments,
            uncovered,
        }
    }

    /// Every shard of the index, `0..S`.
    pub fn all_shards(&self) -> Vec<ShardId> {
        (0..self.shards).map(ShardId).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NodeId {
        NodeId::new(s)
    }

    /// 2 groups × 3 nodes, S = 6, RF = 2: shard s owned by nodes (s % 3) and ((s+1) % 3).
    fn table(readable: &[&str]) -> ReadTable {
        let owners = |s: ShardId, g: GroupId| {
            let prefix = if g.0 == 0 { "a" } else { "b" };
            vec![
                n(&format!("{prefix}{}", s.0 % 3)),
                n(&format!("{prefix}{}", (s.0 + 1) % 3)),
            ]
        };
        ReadTable::build(
            6,
            &[GroupId(0), GroupId(1)],
            owners,
            readable.iter().map(|s| n(s)).collect(),
            &[],
        )
    }

    const ALL: [&str; 6] = ["a0", "a1", "a2", "b0", "b1", "b2"];

    #[test]
    fn a_lagging_copy_is_not_read_for_its_shard_only() {
        // a1 owns shards 0 and 1 (with a0 and a2); it is behind on shard 1 only.
        let t = table(&ALL).with_lagging([(n("a1"), ShardId(1))]);
        assert!(t.serves(&n("a1"), ShardId(0)) && !t.serves(&n("a1"), ShardId(1)));
        for rotation in 0..4 {
            let plan = t.assign(&t.all_shards(), 0, rotation, &HashSet::new());
            covered_once(&plan, 6);
            for a in &plan.assignments {
                assert!(
                    !(a.node == n("a1") && a.shards.contains(&ShardId(1))),
                    "{plan:?}"
                );
            }
        }
        // Both owners of shard 1 in group 0 behind: group 1 serves that shard.
        let t = table(&ALL).with_lagging([(n("a1"), ShardId(1)), (n("a2"), ShardId(1))]);
        let plan = t.assign(&[ShardId(1)], 0, 0, &HashSet::new());
        assert_eq!(plan.assignments[0].group, GroupId(1));
        // Every owner behind: uncovered, never served stale.
        let t = table(&["a1", "a2"]).with_lagging([(n("a1"), ShardId(1)), (n("a2"), ShardId(1))]);
        assert_eq!(
            t.assign(&[ShardId(1)], 0, 0, &HashSet::new()).uncovered,
            vec![ShardId(1)]
        );
    }

    fn covered_once(plan: &ScatterPlan, shards: u32) {
        let mut seen = BTreeSet::new();
        for a in &plan.assignments {
            for s in &a.shards {
                assert!(seen.insert(*s), "shard {s} assigned twice");
            }
        }
        let all: BTreeSet<ShardId> = (0..shards).map(ShardId).collect();
        let uncovered: BTreeSet<ShardId> = plan.uncovered.iter().copied().collect();
        assert_eq!(
            seen.union(&uncovered).copied().collect::<BTreeSet<_>>(),
            all
        );
    }

    #[test]
    fn every_shard_once_in_preferred_group() {
        let t = table(&ALL);
        for rot in 0..4 {
            let plan = t.assign(&t.all_shards(), 1, rot, &HashSet::new());
            covered_once(&plan, 6);
            assert!(plan.uncovered.is_empty());
            assert!(plan.assignments.iter().all(|a| a.group == GroupId(1)));
            // RF=2: each node holds 4 shards but answers for fewer → filtered.
            assert!(plan.assignments.iter().all(|a| a.needs_shard_filter));
        }
    }

    #[test]
    fn rotation_moves_load_between_replicas() {
        let t = table(&ALL);
        let p0 = t.assign(&t.all_shards(), 0, 0, &HashSet::new());
        let p1 = t.assign(&t.all_shards(), 0, 1, &HashSet::new());
        assert_ne!(p0.assignments, p1.assignments);
    }

    #[test]
    fn replica_then_other_group_fallback() {
        // a0 down: its shards go to the other owner in group 0.
        let t = table(&["a1", "a2", "b0", "b1", "b2"]);
        let plan = t.assign(&t.all_shards(), 0, 0, &HashSet::new());
        covered_once(&plan, 6);
        assert!(plan.uncovered.is_empty());
        assert!(plan.assignments.iter().all(|a| a.group == GroupId(0)));
        // a0 and a1 down: shard 0 (owners a0, a1) must come from group 1.
        let t = table(&["a2", "b0", "b1", "b2"]);
        let plan = t.assign(&t.all_shards(), 0, 0, &HashSet::new());
        covered_once(&plan, 6);
        assert!(plan.uncovered.is_empty());
        assert!(plan
            .assignments
            .iter()
            .any(|a| a.group == GroupId(1) && a.shards.contains(&ShardId(0))));
    }

    #[test]
    fn exclusions_and_uncovered() {
        let t = table(&ALL);
        let excluded: HashSet<NodeId> = ["a0", "a1", "b0", "b1"].iter().map(|s| n(s)).collect();
        let plan = t.assign(&[ShardId(0), ShardId(1)], 0, 0, &excluded);
        // shard 0: owners x0, x1 (all excluded) → uncovered; shard 1: owners x1, x2 → a2.
        assert_eq!(plan.uncovered, vec![ShardId(0)]);
        assert_eq!(plan.assignments.len(), 1);
        assert_eq!(plan.assignments[0].node, n("a2"));
    }

    #[test]
    fn rf1_needs_no_filter() {
        let owners = |s: ShardId, _g: GroupId| vec![n(&format!("n{}", s.0 % 3))];
        let t = ReadTable::build(
            6,
            &[GroupId(0)],
            owners,
            ["n0", "n1", "n2"].iter().map(|s| n(s)).collect(),
            &[],
        );
        let plan = t.assign(&t.all_shards(), 0, 5, &HashSet::new());
        assert_eq!(plan.assignments.len(), 3);
        assert!(plan.assignments.iter().all(|a| !a.needs_shard_filter));
        // A migration target holding a foreign shard needs the filter.
        let t2 = ReadTable::build(
            6,
            &[GroupId(0)],
            owners,
            ["n0", "n1", "n2"].iter().map(|s| n(s)).collect(),
            &[(n("n0"), ShardId(1))],
        );
        let plan = t2.assign(&t2.all_shards(), 0, 0, &HashSet::new());
        let a0 = plan.assignments.iter().find(|a| a.node == n("n0")).unwrap();
        assert!(a0.needs_shard_filter);
    }

    #[test]
    fn group_choice_prefers_complete_groups() {
        let t = table(&["a2", "b0", "b1", "b2"]); // group 0 cannot serve shard 0
        assert_eq!(t.pick_group(0), 1);
        assert_eq!(t.pick_group(1), 1);
        let t = table(&ALL);
        assert_eq!(t.pick_group(0), 0);
        assert_eq!(t.pick_group(3), 1);
    }

    mod props {
        use super::*;
        use miroir_core::routing::owners;
        use proptest::prelude::*;

        /// A generated cluster: `groups` groups of `per_group` nodes named `g{g}-{i}`, RF
        /// `1 + rf_seed % per_group`.
        struct Fixture {
            all: Vec<NodeId>,
            gids: Vec<GroupId>,
            per_group: u32,
            rf: u32,
        }

        impl Fixture {
            fn new(groups: u32, per_group: u32, rf_seed: u32) -> Fixture {
                let mut f = Fixture {
                    all: Vec::new(),
                    gids: (0..groups).map(GroupId).collect(),
                    per_group,
                    rf: 1 + rf_seed % per_group,
                };
                f.all = (0..groups).flat_map(|g| f.members(g)).collect();
                f
            }

            fn members(&self, g: u32) -> Vec<NodeId> {
                (0..self.per_group)
                    .map(|i| NodeId::new(format!("g{g}-{i}")))
                    .collect()
            }

            /// The nodes whose bit is `when`.
            fn pick(&self, bits: &[bool], when: bool) -> HashSet<NodeId> {
                self.all
                    .iter()
                    .zip(bits)
                    .filter(|(_, b)| **b == when)
                    .map(|(n, _)| n.clone())
                    .collect()
            }

            fn table(&self, shards: u32, readable: HashSet<NodeId>) -> ReadTable {
                ReadTable::build(
                    shards,
                    &self.gids,
                    |s, g| owners(s, &self.members(g.0), self.rf),
                    readable,
                    &[],
                )
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1024))]

            /// For any topology, availability and exclusion set: every requested shard is
            /// either assigned to exactly one readable, non-excluded owner, or reported
            /// uncovered exactly when no group has such an owner; preferred-group owners are
            /// used whenever they can serve; the shard filter is set exactly when the node
            /// holds shards it was not assigned.
            #[test]
            fn plans_are_exact_covers(
                groups in 1u32..4,
                per_group in 1u32..6,
                rf_seed in 0u32..8,
                shards in 1u32..48,
                down in proptest::collection::vec(any::<bool>(), 18),
                excluded_bits in proptest::collection::vec(any::<bool>(), 18),
                preferred in 0usize..4,
                rotation in 0usize..16,
            ) {
                let f = Fixture::new(groups, per_group, rf_seed);
                let rf = f.rf;
                let members = |g: u32| f.members(g);
                let readable = f.pick(&down, false);
                let excluded = f.pick(&excluded_bits, true);
                let t = f.table(shards, readable.clone());
                let preferred = preferred % groups as usize;
                let plan = t.assign(&t.all_shards(), preferred, rotation, &excluded);
                let usable = |n: &NodeId| readable.contains(n) && !excluded.contains(n);
                let mut assigned: BTreeMap<ShardId, NodeId> = BTreeMap::new();
                for a in &plan.assignments {
                    prop_assert!(usable(&a.node));
                    for s in &a.shards {
                        prop_assert!(assigned.insert(*s, a.node.clone()).is_none(), "shard twice");
                        let os = owners(*s, &members(a.group.0), rf);
                        prop_assert!(os.contains(&a.node), "not an owner");
                    }
                    let held = &t.held[&a.node];
                    prop_assert_eq!(a.needs_shard_filter, held.iter().any(|h| !a.shards.contains(h)));
                }
                for s in t.all_shards() {
                    let any = (0..groups).any(|g| owners(s, &members(g), rf).iter().any(usable));
                    prop_assert_eq!(plan.uncovered.contains(&s), !any);
                    prop_assert_eq!(assigned.contains_key(&s), any);
                    let pref_ok = owners(s, &members(preferred as u32), rf).iter().any(usable);
                    if pref_ok {
                        let n = &assigned[&s];
                        prop_assert!(members(preferred as u32).contains(n), "preferred group skipped");
                    }
                }
            }

            /// The memoised all-shards plan is the one the planner computes, for every
            /// preferred group and rotation, first call and repeated, with lagging copies.
            #[test]
            fn memoised_plans_equal_fresh_ones(
                groups in 1u32..4,
                per_group in 1u32..6,
                rf_seed in 0u32..8,
                shards in 1u32..48,
                down in proptest::collection::vec(any::<bool>(), 18),
                lagging_bits in proptest::collection::vec(any::<bool>(), 18),
            ) {
                let f = Fixture::new(groups, per_group, rf_seed);
                let (all, rf) = (&f.all, f.rf);
                let readable = f.pick(&down, false);
                let lagging: Vec<(NodeId, ShardId)> = all.iter().enumerate().filter(|(i, _)| lagging_bits[*i]).map(|(i, n)| (n.clone(), ShardId(i as u32 % shards))).collect();
                let t = f.table(shards, readable).with_lagging(lagging);
                let none = HashSet::new();
                for _ in 0..2 {
                    for preferred in 0..groups as usize + 1 {
                        for rotation in 0..(2 * rf as usize + 3) {
                            let memo = t.assign(&t.all_shards(), preferred, rotation, &none);
                            prop_assert_eq!(memo, t.plan(&t.all_shards(), preferred, rotation, &none));
                        }
                    }
                }
                let fresh = f.table(shards, t.readable.clone());
                for c in 0..8 {
                    prop_assert_eq!(t.pick_group(c), fresh.pick_group(c));
                }
            }

            /// Scored plans cover exactly what plain plans cover, from the same groups; each
            /// shard's node scores within the band of its group's best usable owner; equal
            /// scores give the plain plan.
            #[test]
            fn scored_plans_cover_like_plain_ones(
                groups in 1u32..4,
                per_group in 1u32..6,
                rf_seed in 0u32..8,
                shards in 1u32..48,
                down in proptest::collection::vec(any::<bool>(), 18),
                excluded_bits in proptest::collection::vec(any::<bool>(), 18),
                scores in proptest::collection::vec(1.0f64..1000.0, 18),
                preferred in 0usize..4,
                rotation in 0usize..16,
            ) {
                let f = Fixture::new(groups, per_group, rf_seed);
                let (all, rf) = (&f.all, f.rf);
                let members = |g: u32| f.members(g);
                let readable = f.pick(&down, false);
                let excluded = f.pick(&excluded_bits, true);
                let t = f.table(shards, readable.clone());
                let preferred = preferred % groups as usize;
                let score_of = |n: &NodeId| scores[all.iter().position(|m| m == n).unwrap()];
                let plain = t.assign(&t.all_shards(), preferred, rotation, &excluded);
                let scored = t.assign_scored(&t.all_shards(), preferred, rotation, &excluded, &score_of);
                prop_assert_eq!(&plain.uncovered, &scored.uncovered);
                let usable = |n: &NodeId| readable.contains(n) && !excluded.contains(n);
                let mut covered = BTreeSet::new();
                for a in &scored.assignments {
                    let p = plain.assignments.iter().find(|p| p.shards.contains(&a.shards[0])).unwrap();
                    prop_assert_eq!(a.group, p.group);
                    for s in &a.shards {
                        prop_assert!(covered.insert(*s));
                        let os = owners(*s, &members(a.group.0), rf);
                        let best = os.iter().filter(|n| usable(n)).map(score_of).fold(f64::INFINITY, f64::min);
                        prop_assert!(score_of(&a.node) <= best * crate::proxy::replica::BAND);
                    }
                }
                let same = t.assign_scored(&t.all_shards(), preferred, rotation, &excluded, &|_| 1.0);
                prop_assert_eq!(same, plain);
            }
        }
    }
}
