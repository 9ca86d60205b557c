//! What a verify run reports (`GET /_miroir/verify/{uid}`) and its plain-text rendering
//! (`miroir-ctl verify`).

use super::plan::DecidedBy;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Differences of one copy, against the right state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCounts {
    /// Documents the copy lacks.
    pub missing: u64,
    /// Documents the copy has and should not.
    pub extra: u64,
    /// Documents whose content differs.
    pub different: u64,
    /// Of those, how many agree with the other copies after the repair.
    pub repaired: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardOutcome {
    Consistent,
    Differing,
    Repaired,
    Skipped,
}

/// One shard of one index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardReport {
    pub index: String,
    pub shard: u32,
    /// Nodes whose copies were compared.
    pub copies: Vec<String>,
    /// Owners that could not be read, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<String>,
    pub outcome: ShardOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Per node, only nodes with differences.
    #[serde(default)]
    pub nodes: BTreeMap<String, NodeCounts>,
    /// Ids whose copies hold different contents with no way to tell the right one.
    #[serde(default)]
    pub conflicts: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflict_ids: Vec<String>,
    /// How many ids each rule decided (decision 036).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub decided_by: BTreeMap<DecidedBy, u64>,
    /// Differences still there when the run ended (all of them without `repair`).
    #[serde(default)]
    pub unrepaired: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Enqueued,
    Running,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub shards_consistent: u64,
    pub shards_differing: u64,
    pub shards_repaired: u64,
    pub shards_skipped: u64,
    pub documents_missing: u64,
    pub documents_extra: u64,
    pub documents_different: u64,
    pub documents_repaired: u64,
    pub conflicts: u64,
    /// Differences (conflicts included) left when the run ended.
    pub differences_remaining: u64,
}

impl Summary {
    pub fn add(&mut self, r: &ShardReport) {
        match r.outcome {
            ShardOutcome::Consistent => self.shards_consistent += 1,
            ShardOutcome::Differing => self.shards_differing += 1,
            ShardOutcome::Repaired => self.shards_repaired += 1,
            ShardOutcome::Skipped => self.shards_skipped += 1,
        }
        for n in r.nodes.values() {
            self.documents_missing += n.missing;
            self.documents_extra += n.extra;
            self.documents_different += n.different;
            self.documents_repaired += n.repaired;
        }
        self.conflicts += r.conflicts;
        self.differences_remaining += r.unrepaired + r.conflicts;
    }

    pub fn differences_found(&self) -> u64 {
        self.documents_missing + self.documents_extra + self.documents_different + self.conflicts
    }
}

/// One verify run, as stored and answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyRun {
    pub uid: u64,
    /// `None` = every index.
    pub index: Option<String>,
    pub repair: bool,
    /// `api` or `schedule`.
    pub trigger: String,
    pub status: RunStatus,
    pub enqueued_at: String,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    pub shards_total: u64,
    pub shards_checked: u64,
    pub summary: Summary,
    /// Once the run succeeded: `differences` (some remain), `incomplete` (none found, but
    /// some shards were skipped), `repaired` or `consistent`.
    #[serde(default)]
    pub result: Option<String>,
    /// Every shard that is not simply consistent.
    #[serde(default)]
    pub shards: Vec<ShardReport>,
    #[serde(default)]
    pub error: Option<String>,
}

impl VerifyRun {
    /// The `result` of a finished run.
    pub fn conclude(&mut self) {
        self.result = Some(
            if self.summary.differences_remaining > 0 {
                "differences"
            } else if self.summary.shards_skipped > 0 {
                "incomplete"
            } else if self.summary.differences_found() > 0 {
                "repaired"
            } else {
                "consistent"
            }
            .to_string(),
        );
    }
}

/// The readable report of a finished run (a run's JSON as the API answers it), and whether
/// the copies are consistent (nothing left to repair).
pub fn render(run: &Value) -> (String, bool) {
    let mut out = String::new();
    let s = &run["summary"];
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let status = run["status"].as_str().unwrap_or("?");
    let _ = writeln!(
        out,
        "verify run {}: {}{} — index {}, {}",
        run["uid"],
        status,
        run["result"]
            .as_str()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default(),
        run["index"].as_str().unwrap_or("(all)"),
        if run["repair"].as_bool() == Some(true) {
            "repair"
        } else {
            "report only"
        }
    );
    let _ = writeln!(
        out,
        "shards checked: {}/{}  consistent: {}  differing: {}  repaired: {}  skipped: {}",
        n(&run["shards_checked"]),
        n(&run["shards_total"]),
        n(&s["shards_consistent"]),
        n(&s["shards_differing"]),
        n(&s["shards_repaired"]),
        n(&s["shards_skipped"])
    );
    let _ = writeln!(
        out,
        "documents missing: {}  extra: {}  different: {}  conflicts: {}  repaired: {}  remaining: {}",
        n(&s["documents_missing"]),
        n(&s["documents_extra"]),
        n(&s["documents_different"]),
        n(&s["conflicts"]),
        n(&s["documents_repaired"]),
        n(&s["differences_remaining"])
    );
    if let Some(e) = run["error"].as_str() {
        let _ = writeln!(out, "error: {e}");
    }
    if n(&s["shards_skipped"]) > 0 {
        let _ = writeln!(
            out,
            "warning: {} shards were not compared (listed below with why); run again when their copies are readable",
            n(&s["shards_skipped"])
        );
    }
    let shards = run["shards"].as_array().map_or(&[][..], Vec::as_slice);
    if !shards.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<20} {:>5} {:<10} {:<16} {:>7} {:>5} {:>9} {:>8}  NOTE",
            "INDEX", "SHARD", "OUTCOME", "NODE", "MISSING", "EXTRA", "DIFFERENT", "REPAIRED"
        );
        for r in shards {
            let head = |node: &str, c: &Value| {
                format!(
                    "{:<20} {:>5} {:<10} {:<16} {:>7} {:>5} {:>9} {:>8}",
                    r["index"].as_str().unwrap_or("?"),
                    r["shard"],
                    r["outcome"].as_str().unwrap_or("?"),
                    node,
                    n(&c["missing"]),
                    n(&c["extra"]),
                    n(&c["different"]),
                    n(&c["repaired"])
                )
            };
            let mut note = Vec::new();
            if let Some(why) = r["reason"].as_str() {
                note.push(why.to_string());
            }
            if n(&r["conflicts"]) > 0 {
                note.push(format!(
                    "{} conflicting ids (no majority, contents differ): {}",
                    n(&r["conflicts"]),
                    r["conflict_ids"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            for u in r["unreadable"].as_array().into_iter().flatten() {
                note.push(format!("not compared: {}", u.as_str().unwrap_or("?")));
            }
            let nodes = r["nodes"].as_object();
            let mut first = true;
            for (node, c) in nodes.into_iter().flatten() {
                let _ = writeln!(
                    out,
                    "{}  {}",
                    head(node, c),
                    if first {
                        note.join("; ")
                    } else {
                        String::new()
                    }
                );
                first = false;
            }
            if first {
                let _ = writeln!(out, "{}  {}", head("-", &Value::Null), note.join("; "));
            }
        }
    }
    let ok = status == "succeeded" && n(&s["differences_remaining"]) == 0;
    (out, ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_run_with_differences_renders_one_line_per_node_and_is_not_ok() {
        let mut run = VerifyRun {
            uid: 3,
            index: Some("movies".into()),
            repair: false,
            trigger: "api".into(),
            status: RunStatus::Succeeded,
            enqueued_at: "t".into(),
            started_at: None,
            finished_at: None,
            shards_total: 4,
            shards_checked: 4,
            summary: Summary::default(),
            result: None,
            shards: Vec::new(),
            error: None,
        };
        let r = ShardReport {
            index: "movies".into(),
            shard: 2,
            copies: vec!["meili-0".into(), "meili-1".into()],
            unreadable: Vec::new(),
            outcome: ShardOutcome::Differing,
            reason: None,
            nodes: [(
                "meili-1".to_string(),
                NodeCounts {
                    missing: 1,
                    different: 1,
                    ..NodeCounts::default()
                },
            )]
            .into_iter()
            .collect(),
            conflicts: 0,
            conflict_ids: Vec::new(),
            decided_by: BTreeMap::new(),
            unrepaired: 2,
        };
        run.summary.add(&r);
        run.summary.shards_consistent += 3;
        run.shards.push(r);
        run.conclude();
        assert_eq!(run.result.as_deref(), Some("differences"));
        let (text, ok) = render(&serde_json::to_value(&run).unwrap());
        assert!(!ok);
        assert!(
            text.contains("documents missing: 1  extra: 0  different: 1"),
            "{text}"
        );
        assert!(text.contains("meili-1"), "{text}");
        let (_, ok) =
            render(&json!({"status": "succeeded", "summary": {"differences_remaining": 0}}));
        assert!(ok);
    }
}
