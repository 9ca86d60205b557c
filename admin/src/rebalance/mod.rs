//! The rebalancer: topology operations (add a node, drain a node, remove a node — restoring
//! its copies from the others when it is dead) as a persisted state machine.
//!
//! One operation runs at a time. It is one record in the store (`rebalance:operation`, JSON
//! [`Operation`]) created by the admin API ([`api`]) and driven by one background loop
//! ([`run`]). Every step is idempotent and the record is saved after each one (after every
//! copied page too), so an admin killed at any point resumes where it was on restart:
//!
//! ```text
//! prepare     new node: joining, every index with its settings, the keys;
//!             drain: node draining; plan the shard moves (rendezvous, persisted)
//! dual_write  snapshot migrations (writes of a moving shard also go to its new owner),
//!             epoch+1, barrier: every live data plane applied it
//! copy        page by page from a current owner (`_miroir_shard` filter, vectors kept)
//! verify      both copies settled (node tasks ended), per-document digests compared, the
//!             differing ids re-sent or deleted, until a round finds nothing
//! switch      ownership flips (node active / removed), epoch+1, barrier
//! cleanup     moved shards deleted from their old owners (filter `_miroir_shard IN [..]`),
//!             migrations dropped, epoch+1, barrier
//! done
//! ```
//!
//! Why the migrations stay until `cleanup`: a node that physically holds a shard it does not
//! own is asked with a shard filter only while the snapshot lists it as a migration end, so
//! dropping them before the old copies are gone would let searches count those documents
//! twice. After `switch` the new owner is a regular write target, so keeping the record does
//! not write to the old owner any more. Design: docs/decisions/016-rebalancer.md.
//!
//! Leader gating: the loop acts only when [`may_lead`] says so (one place to gate it on the
//! admin leader lease).

pub mod api;
mod exec;
pub mod plan;

pub use exec::run;

use crate::state::{Admin, AdminError};
use serde::{Deserialize, Serialize};

/// The store key of the running operation.
pub const META_OPERATION: &str = "rebalance:operation";
/// The store key of the last finished operation (for `GET /_miroir/rebalance/status`).
pub const META_LAST: &str = "rebalance:last";

/// Whether this admin process may drive topology operations: only the leader
/// (admin/src/leader/, always true on one host), so that two admins sharing a store never
/// drive the same operation at once.
pub fn may_lead(admin: &Admin) -> bool {
    admin.leadership().is_leader()
}

/// What an operation does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OpKind {
    /// Adds a node to a replica group and moves its share of every index to it.
    AddNode {
        node: String,
        address: String,
        replica_group: u32,
    },
    /// Moves every shard of a node to the next-ranked nodes of its group, then marks it
    /// removed.
    DrainNode { node: String },
    /// Removes a dead (`failed`) node: its shards are re-created on the next-ranked nodes of
    /// its group from the surviving copies. `force` accepts losing shards that have none.
    RemoveNode { node: String, force: bool },
    /// Adds replica group `replica_group` (the next id) made of `nodes`: every shard is
    /// copied to its owners there from the other groups, which keep theirs; the group takes
    /// searches from `switch` on.
    AddGroup {
        replica_group: u32,
        nodes: Vec<NewNode>,
    },
    /// Removes every node of a replica group at once (no copies: the other groups hold every
    /// shard). The group's id stays as an empty slot.
    RemoveGroup { replica_group: u32, force: bool },
    /// Makes the copies match the topology without changing it (`POST /_miroir/rebalance`):
    /// an owner holding none of a shard that another node holds gets a copy (read from that
    /// node, which keeps its own), and documents on a node that does not own their shard are
    /// deleted once every owner has them. Nothing to do when placement is already exact.
    Reconcile,
}

/// A node of a group being added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewNode {
    pub id: String,
    pub address: String,
}

impl OpKind {
    /// The nodes the operation adds (joining until `switch`), with their addresses.
    pub fn added_nodes(&self) -> Vec<NewNode> {
        match self {
            OpKind::AddNode { node, address, .. } => vec![NewNode {
                id: node.clone(),
                address: address.clone(),
            }],
            OpKind::AddGroup { nodes, .. } => nodes.clone(),
            _ => Vec::new(),
        }
    }

    /// The node that leaves (drained, or removed while dead), if any.
    pub fn leaving_node(&self) -> Option<&str> {
        match self {
            OpKind::DrainNode { node } | OpKind::RemoveNode { node, .. } => Some(node),
            _ => None,
        }
    }

    /// What the operation acts on, for messages: `node `x``, `replica group 2`.
    pub fn subject(&self) -> String {
        match self {
            OpKind::AddNode { node, .. }
            | OpKind::DrainNode { node }
            | OpKind::RemoveNode { node, .. } => format!("node `{node}`"),
            OpKind::AddGroup { replica_group, .. } | OpKind::RemoveGroup { replica_group, .. } => {
                format!("replica group {replica_group}")
            }
            OpKind::Reconcile => "the placement of every shard".into(),
        }
    }
}

/// The phases, in order (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Prepare,
    DualWrite,
    Copy,
    Verify,
    Switch,
    Cleanup,
    Done,
}

impl Phase {
    pub const ALL: [Phase; 7] = [
        Phase::Prepare,
        Phase::DualWrite,
        Phase::Copy,
        Phase::Verify,
        Phase::Switch,
        Phase::Cleanup,
        Phase::Done,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Prepare => "prepare",
            Phase::DualWrite => "dual_write",
            Phase::Copy => "copy",
            Phase::Verify => "verify",
            Phase::Switch => "switch",
            Phase::Cleanup => "cleanup",
            Phase::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The phase after this one for `kind`: removing a group has nothing to copy, so it is
    /// done right after `prepare` (which removes the nodes behind the barrier).
    fn next_for(self, kind: &OpKind) -> Phase {
        match kind {
            OpKind::RemoveGroup { .. } => Phase::Done,
            _ => self.next(),
        }
    }

    fn next(self) -> Phase {
        let i = Phase::ALL.iter().position(|p| *p == self).unwrap_or(6);
        Phase::ALL[(i + 1).min(6)]
    }
}

/// Where one moving shard copy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MovePhase {
    Pending,
    Copying,
    Copied,
    Verified,
    Cleaned,
}

/// One shard copy moving from `from` to `to` in `group`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    pub index: String,
    pub shard: u32,
    pub group: u32,
    pub from: String,
    /// `from`'s address when planned (a removed node leaves the in-memory node list, and its
    /// copies are still deleted at `cleanup`).
    pub from_address: String,
    pub to: String,
    /// The copy is a new one (a group being added): `from` is only where it is read from and
    /// keeps its own copy, so `cleanup` deletes nothing there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_source: bool,
    pub phase: MovePhase,
    /// Copy cursor: documents read from the source so far (resumes there).
    pub copied: u64,
    /// Documents in the shard on the source when last read.
    pub total: u64,
    pub bytes: u64,
}

/// A topology operation and its progress (the stored record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub id: String,
    #[serde(flatten)]
    pub kind: OpKind,
    pub phase: Phase,
    /// Planned at the end of `prepare`.
    pub moves: Vec<Move>,
    /// The indexes the moves were planned for (one created later is planned at `switch`).
    #[serde(default)]
    pub indexes: Vec<String>,
    /// Shards that had no copy left to restore from and were given up (`force`).
    #[serde(default)]
    pub lost: Vec<String>,
    pub started_at_ms: u64,
    pub updated_at_ms: u64,
    #[serde(default)]
    pub finished_at_ms: Option<u64>,
    /// When `copy` started (for the rate and the ETA).
    #[serde(default)]
    pub copy_started_at_ms: Option<u64>,
    /// The last step error (the step is retried).
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub errors: u64,
    /// Milliseconds spent in each finished phase (by this and earlier admin processes).
    #[serde(default)]
    pub phase_ms: std::collections::BTreeMap<String, u64>,
}

impl Operation {
    pub fn new(kind: OpKind, now_ms: u64) -> Operation {
        Operation {
            id: format!("op-{now_ms}"),
            kind,
            phase: Phase::Prepare,
            moves: Vec::new(),
            indexes: Vec::new(),
            lost: Vec::new(),
            started_at_ms: now_ms,
            updated_at_ms: now_ms,
            finished_at_ms: None,
            copy_started_at_ms: None,
            last_error: None,
            errors: 0,
            phase_ms: std::collections::BTreeMap::new(),
        }
    }

    /// Documents copied and to copy over every move.
    pub fn documents(&self) -> (u64, u64) {
        self.moves.iter().fold((0, 0), |(c, t), m| {
            (
                c + m.copied.min(m.total.max(m.copied)),
                t + m.total.max(m.copied),
            )
        })
    }

    /// Moves not yet through `cleanup`.
    pub fn moving(&self) -> u64 {
        self.moves
            .iter()
            .filter(|m| m.phase < MovePhase::Cleaned)
            .count() as u64
    }

    /// The status JSON (`GET /_miroir/rebalance/status`).
    pub fn status_json(&self, now_ms: u64) -> serde_json::Value {
        let (copied, total) = self.documents();
        let bytes: u64 = self.moves.iter().map(|m| m.bytes).sum();
        let elapsed_s = self
            .copy_started_at_ms
            .map(|t| (now_ms.saturating_sub(t)) as f64 / 1000.0)
            .unwrap_or(0.0);
        let rate = if elapsed_s > 0.0 {
            copied as f64 / elapsed_s
        } else {
            0.0
        };
        let eta = (rate > 0.0 && self.phase <= Phase::Copy)
            .then(|| (total.saturating_sub(copied)) as f64 / rate);
        let moves: Vec<serde_json::Value> = self
            .moves
            .iter()
            .map(|m| {
                serde_json::json!({
                    "index": m.index, "shard": m.shard, "replica_group": m.group,
                    "from": m.from, "to": m.to, "phase": m.phase,
                    "documents_copied": m.copied, "documents_total": m.total.max(m.copied),
                    "bytes_copied": m.bytes,
                })
            })
            .collect();
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["moves"] = serde_json::json!(moves);
        // `done` is a phase too (its step stores the record as the last one): finished only
        // once that happened.
        v["in_progress"] = serde_json::json!(self.finished_at_ms.is_none());
        v["documents_copied"] = serde_json::json!(copied);
        v["documents_total"] = serde_json::json!(total);
        v["bytes_copied"] = serde_json::json!(bytes);
        v["documents_per_second"] = serde_json::json!((rate * 10.0).round() / 10.0);
        v["eta_seconds"] = serde_json::json!(eta.map(|e| e.round()));
        v
    }
}

/// The running operation, if any.
pub async fn load(admin: &Admin) -> Result<Option<Operation>, AdminError> {
    decode(admin.store.get_meta(META_OPERATION).await?)
}

/// The last finished operation, if any.
pub async fn load_last(admin: &Admin) -> Result<Option<Operation>, AdminError> {
    decode(admin.store.get_meta(META_LAST).await?)
}

fn decode(bytes: Option<Vec<u8>>) -> Result<Option<Operation>, AdminError> {
    bytes
        .map(|b| {
            serde_json::from_slice(&b).map_err(|e| AdminError::CorruptMeta {
                key: META_OPERATION.into(),
                reason: e.to_string(),
            })
        })
        .transpose()
}

/// Saves the running operation (after every step) and mirrors its phase in memory (topology
/// JSON, metrics).
pub async fn save(admin: &Admin, op: &mut Operation) -> Result<(), AdminError> {
    op.updated_at_ms = crate::node_health::unix_ms();
    let bytes = serde_json::to_vec(op).expect("an operation serialises");
    admin.store.put_meta(META_OPERATION, &bytes).await?;
    admin.lock().rebalance = Some((op.phase.as_str(), op.moving()));
    Ok(())
}

/// Every index with its shard count (what operations plan over).
pub(crate) fn index_shards(admin: &Admin) -> Vec<(String, u32)> {
    admin
        .lock()
        .indexes
        .values()
        .map(|m| (m.uid.clone(), m.shards))
        .collect()
}

/// Whether a topology operation is running (for `GET /_miroir/topology`).
pub fn in_progress(admin: &Admin) -> bool {
    admin.lock().rebalance.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_ordered_and_named() {
        for w in Phase::ALL.windows(2) {
            assert!(w[0] < w[1]);
            assert_eq!(w[0].next(), w[1]);
            assert_eq!(Phase::parse(w[0].as_str()), Some(w[0]));
        }
        assert_eq!(Phase::Done.next(), Phase::Done);
        assert_eq!(Phase::parse("nope"), None);
    }

    #[test]
    fn group_operations_have_their_own_course_and_record() {
        let remove = OpKind::RemoveGroup {
            replica_group: 1,
            force: false,
        };
        // Nothing to copy: done right after prepare.
        assert_eq!(Phase::Prepare.next_for(&remove), Phase::Done);
        assert_eq!(remove.leaving_node(), None);
        assert!(remove.added_nodes().is_empty());
        let add = OpKind::AddGroup {
            replica_group: 2,
            nodes: vec![NewNode {
                id: "p".into(),
                address: "http://p".into(),
            }],
        };
        assert_eq!(Phase::Prepare.next_for(&add), Phase::DualWrite);
        assert_eq!(add.added_nodes()[0].id, "p");
        assert_eq!(add.subject(), "replica group 2");
        let op = Operation::new(add, 1000);
        let v = op.status_json(1000);
        assert_eq!(v["kind"], "add_group");
        assert_eq!(v["replica_group"], 2);
        assert_eq!(v["nodes"][0]["address"], "http://p");
        let back: Operation = serde_json::from_slice(&serde_json::to_vec(&op).unwrap()).unwrap();
        assert_eq!(back, op);
        // A move without `keep_source` (every record written before it existed) reads back.
        let mv: Move = serde_json::from_value(serde_json::json!({
            "index": "i", "shard": 0, "group": 0, "from": "a", "from_address": "http://a",
            "to": "b", "phase": "pending", "copied": 0, "total": 0, "bytes": 0
        }))
        .unwrap();
        assert!(!mv.keep_source);
    }

    #[test]
    fn the_record_round_trips_and_reports_progress() {
        let mut op = Operation::new(
            OpKind::AddNode {
                node: "n3".into(),
                address: "http://x".into(),
                replica_group: 0,
            },
            1000,
        );
        op.phase = Phase::Copy;
        op.copy_started_at_ms = Some(1000);
        op.moves.push(Move {
            index: "i".into(),
            shard: 3,
            group: 0,
            from: "a".into(),
            from_address: "http://a".into(),
            to: "n3".into(),
            keep_source: false,
            phase: MovePhase::Copying,
            copied: 50,
            total: 150,
            bytes: 500,
        });
        let bytes = serde_json::to_vec(&op).unwrap();
        let back: Operation = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, op);
        let v = op.status_json(3000);
        assert_eq!(v["kind"], "add_node");
        assert_eq!(v["documents_copied"], 50);
        assert_eq!(v["documents_total"], 150);
        assert_eq!(v["documents_per_second"], 25.0);
        assert_eq!(v["eta_seconds"], 4.0);
        assert_eq!(v["moves"][0]["phase"], "copying");
        assert_eq!(op.moving(), 1);
    }
}
