//! The pure part of anti-entropy: given what every readable copy of a shard holds for the ids
//! whose buckets differ, which state of each id is right, and what to write or delete on
//! which copy (docs/decisions/036-antientropy-right-copy.md).
//!
//! "Right", in order:
//! 1. **Majority**: a state (a content, or absence) held by more than half of the shard's
//!    copies (all placement owners, readable or not) wins.
//! 2. Otherwise, among the readable copies, by class: a document carrying Miroir's reserved
//!    `_miroir_shard` field (every write through Miroir stamps it) beats absence, and absence
//!    beats a document without it (written behind Miroir's back: Miroir never wrote it).
//!    A stamped document beating absence is "presence wins": a missed write is repaired, at
//!    the risk of resurrecting a document whose delete missed this copy.
//! 3. Two or more different stamped contents with no majority are a **conflict**: nothing
//!    tells which write came last (documents carry no write order), so the id is reported and
//!    left alone; writing the document again through Miroir settles it.

use std::collections::BTreeMap;

/// What one copy holds for one id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CopyDoc {
    Absent,
    Present {
        /// [`miroir_core::fingerprint::document_digest`] (reserved fields left out).
        digest: u64,
        /// Carries `_miroir_shard` (written through Miroir).
        stamped: bool,
    },
}

impl CopyDoc {
    /// The class of rule 2: higher wins.
    fn class(self) -> u8 {
        match self {
            CopyDoc::Present { stamped: true, .. } => 2,
            CopyDoc::Absent => 1,
            CopyDoc::Present { stamped: false, .. } => 0,
        }
    }
}

/// Which rule chose the right state of an id.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum DecidedBy {
    Majority,
    /// A stamped document over absence.
    Presence,
    /// Stamped or absent over a document Miroir did not write.
    MiroirFields,
}

/// The right state of one id, or `None` for a conflict (rule 3).
pub fn decide(states: &[CopyDoc], total_copies: usize) -> Option<(CopyDoc, DecidedBy)> {
    let mut counts: BTreeMap<CopyDoc, usize> = BTreeMap::new();
    for s in states {
        *counts.entry(*s).or_default() += 1;
    }
    let total = total_copies.max(states.len());
    if let Some((s, _)) = counts.iter().find(|(_, &n)| n * 2 > total) {
        return Some((*s, DecidedBy::Majority));
    }
    let best = counts.keys().map(|s| s.class()).max()?;
    let top: Vec<CopyDoc> = counts
        .keys()
        .filter(|s| s.class() == best)
        .copied()
        .collect();
    match top.as_slice() {
        [only] => {
            let by = if best == 2 && counts.contains_key(&CopyDoc::Absent) {
                DecidedBy::Presence
            } else {
                DecidedBy::MiroirFields
            };
            Some((*only, by))
        }
        // Several stamped contents, or several contents Miroir did not write and no copy
        // without the document: nothing to choose from without deleting data on a guess.
        _ => None,
    }
}

/// What to do on one copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyPlan {
    /// Ids to write, each with the copy (index into the copies) holding the right document.
    pub write: Vec<(String, usize)>,
    pub delete: Vec<String>,
    /// Right is a document, this copy has none.
    pub missing: u64,
    /// Right is absence, this copy has a document.
    pub extra: u64,
    /// Both are documents with different contents (or only one carries Miroir's fields).
    pub different: u64,
}

/// The repair plan of one shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// One per copy, in the order of the states.
    pub copies: Vec<CopyPlan>,
    /// Ids left alone (rule 3).
    pub conflicts: Vec<String>,
    /// How many ids each rule decided.
    pub decided_by: BTreeMap<DecidedBy, u64>,
}

impl Plan {
    pub fn differences(&self) -> u64 {
        self.copies
            .iter()
            .map(|c| c.missing + c.extra + c.different)
            .sum()
    }
}

/// The plan for `ids` (id → the state on each copy, every vector as long as `copies`).
/// Ids whose copies all agree need nothing and are skipped.
pub fn plan(ids: &BTreeMap<String, Vec<CopyDoc>>, copies: usize, total_copies: usize) -> Plan {
    let mut out = Plan {
        copies: vec![CopyPlan::default(); copies],
        ..Plan::default()
    };
    for (id, states) in ids {
        debug_assert_eq!(states.len(), copies);
        if states.windows(2).all(|w| w[0] == w[1]) {
            continue;
        }
        let Some((right, by)) = decide(states, total_copies) else {
            out.conflicts.push(id.clone());
            continue;
        };
        *out.decided_by.entry(by).or_default() += 1;
        let source = states.iter().position(|s| *s == right);
        for (copy, state) in states.iter().enumerate() {
            if *state == right {
                continue;
            }
            let p = &mut out.copies[copy];
            match (right, state) {
                (CopyDoc::Absent, _) => {
                    p.extra += 1;
                    p.delete.push(id.clone());
                }
                (CopyDoc::Present { .. }, CopyDoc::Absent) => {
                    p.missing += 1;
                    p.write
                        .push((id.clone(), source.expect("right is held by a copy")));
                }
                (CopyDoc::Present { .. }, CopyDoc::Present { .. }) => {
                    p.different += 1;
                    p.write
                        .push((id.clone(), source.expect("right is held by a copy")));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: CopyDoc = CopyDoc::Present {
        digest: 1,
        stamped: true,
    };
    const B: CopyDoc = CopyDoc::Present {
        digest: 2,
        stamped: true,
    };
    const FOREIGN: CopyDoc = CopyDoc::Present {
        digest: 3,
        stamped: false,
    };
    const NONE: CopyDoc = CopyDoc::Absent;

    #[test]
    fn two_copies() {
        assert_eq!(decide(&[A, NONE], 2), Some((A, DecidedBy::Presence)));
        assert_eq!(decide(&[NONE, A], 2), Some((A, DecidedBy::Presence)));
        assert_eq!(decide(&[A, FOREIGN], 2), Some((A, DecidedBy::MiroirFields)));
        assert_eq!(
            decide(&[NONE, FOREIGN], 2),
            Some((NONE, DecidedBy::MiroirFields))
        );
        assert_eq!(decide(&[A, B], 2), None);
    }

    #[test]
    fn majority_wins_even_over_presence() {
        assert_eq!(decide(&[A, A, B], 3), Some((A, DecidedBy::Majority)));
        assert_eq!(
            decide(&[NONE, NONE, A], 3),
            Some((NONE, DecidedBy::Majority))
        );
        assert_eq!(
            decide(&[FOREIGN, FOREIGN, A], 3),
            Some((FOREIGN, DecidedBy::Majority))
        );
        assert_eq!(decide(&[A, B, NONE], 3), None);
    }

    #[test]
    fn a_majority_counts_unreadable_copies() {
        // 2 of 4 placement copies readable and agreeing is not a majority.
        assert_eq!(decide(&[A, NONE, NONE], 4), Some((A, DecidedBy::Presence)));
    }

    #[test]
    fn the_plan_of_the_e2e_scenario() {
        let ids: BTreeMap<String, Vec<CopyDoc>> = [
            ("deleted".to_string(), vec![A, NONE]),
            ("changed".to_string(), vec![FOREIGN, A]),
            ("same".to_string(), vec![B, B]),
            ("conflict".to_string(), vec![A, B]),
        ]
        .into_iter()
        .collect();
        let p = plan(&ids, 2, 2);
        assert_eq!(p.conflicts, vec!["conflict".to_string()]);
        assert_eq!(p.copies[0].write, vec![("changed".to_string(), 1)]);
        assert_eq!(p.copies[0].different, 1);
        assert_eq!(p.copies[1].write, vec![("deleted".to_string(), 0)]);
        assert_eq!(p.copies[1].missing, 1);
        assert_eq!(p.differences(), 2);
        assert_eq!(p.decided_by[&DecidedBy::Presence], 1);
        assert_eq!(p.decided_by[&DecidedBy::MiroirFields], 1);
    }

    fn arb_state() -> impl Strategy<Value = CopyDoc> {
        prop_oneof![
            Just(CopyDoc::Absent),
            (0u64..3, any::<bool>())
                .prop_map(|(digest, stamped)| CopyDoc::Present { digest, stamped }),
        ]
    }

    proptest! {
        /// Applying a plan leaves every copy of every resolved id in the same state, changes
        /// no copy that already held the right one, and never touches a conflict.
        #[test]
        fn applying_the_plan_converges(
            ids in proptest::collection::btree_map("[a-z]{1,4}", proptest::collection::vec(arb_state(), 3), 0..30),
            unreadable in 0usize..2,
        ) {
            let copies = 3;
            let p = plan(&ids, copies, copies + unreadable);
            let mut after = ids.clone();
            for (c, cp) in p.copies.iter().enumerate() {
                for (id, src) in &cp.write {
                    let right = ids[id][*src];
                    let present = matches!(right, CopyDoc::Present { .. });
                    prop_assert!(present);
                    prop_assert_ne!(ids[id][c], right);
                    after.get_mut(id).unwrap()[c] = right;
                }
                for id in &cp.delete {
                    prop_assert_ne!(ids[id][c], CopyDoc::Absent);
                    after.get_mut(id).unwrap()[c] = CopyDoc::Absent;
                }
            }
            for (id, states) in &after {
                if p.conflicts.contains(id) {
                    prop_assert_eq!(states, &ids[id]);
                } else {
                    prop_assert!(states.windows(2).all(|w| w[0] == w[1]), "{id}: {states:?}");
                }
            }
        }

        /// A state held by a strict majority of all copies is always the one kept.
        #[test]
        fn a_majority_is_never_overruled(states in proptest::collection::vec(arb_state(), 1..6)) {
            let n = states.len();
            for s in &states {
                if states.iter().filter(|x| *x == s).count() * 2 > n {
                    prop_assert_eq!(decide(&states, n), Some((*s, DecidedBy::Majority)));
                }
            }
        }

        /// Without a majority, a stamped document is never deleted.
        #[test]
        fn no_stamped_document_is_deleted_without_a_majority(
            states in proptest::collection::vec(arb_state(), 2..5),
        ) {
            let n = states.len();
            if let Some((CopyDoc::Absent, by)) = decide(&states, n) {
                if by != DecidedBy::Majority {
                    let stamped = states.iter().any(|s| matches!(s, CopyDoc::Present { stamped: true, .. }));
                    prop_assert!(!stamped);
                }
            }
        }
    }
}
