//! Pure aggregation of per-node Meilisearch tasks into one Miroir task (docs/contract.md#tasks).
//!
//! A Miroir task that the data plane registered (a document write) fans out to several node
//! tasks. Its view is computed from theirs:
//!
//! - **status**: once every node task is terminal — `failed` if any failed, else `canceled`
//!   if any was canceled, else `succeeded`. Before that — `processing` as soon as any node
//!   started (or finished), else `enqueued`. A node that cannot be asked right now keeps the
//!   task non-terminal: we never guess a terminal state we could not observe.
//! - **nodes that never got the write** (`failedNodes` of the registration: unreachable,
//!   marked failed, or refused at dispatch) do **not** fail the task. The data plane only
//!   registers a write some copy accepted (docs/contract.md#write-consistency), so the write
//!   *is* accepted, and the missing copies are completed from hints (crate::hints); they are
//!   reported to operators through the log and `miroir_task_missing_copies_total`, and only a
//!   write that missed `write_consistency` lists them in the task
//!   (`details.miroirHintedCopies`, decision 022) — ordinary task JSON keeps the keys SDK
//!   tests count.
//! - **a node task the node lost** ([`NodeTask::Lost`]: 404, or unreachable for
//!   `tasks.node_task_timeout_ms`) fails the task with `miroir_node_task_lost` (decision 023). Only when *no* node task exists at all (an admin broadcast that no node
//!   accepted) does the first such error fail the task: nothing was done.
//! - **details**: the details registered with the task (the client's `receivedDocuments` /
//!   `providedIds`, as the data plane counted them) plus the logical document counters
//!   ([`SUMMED_DETAILS`]) derived from the nodes' counts by the **copy rule** below.
//! - **error**: the first failing node task's error, verbatim (registration order).
//! - **startedAt** the earliest node start, **finishedAt** the latest node finish (only when
//!   terminal), **duration** their difference, **enqueuedAt** Miroir's own.
//! - **batchUid**: one Miroir batch per Miroir task, so it equals the uid once started.
//!
//! ## Copy rule (logical document counts)
//!
//! Within one replica group every document of the write went to the reachable owners of its
//! shard, so a node's count holds each of its documents once per *copy written in its group*.
//! Each node carries a [`Share`]: its group and `weight` = the mean, over the shards it owns,
//! of `1 / (owners of that shard in its group that received the write)`. A group's estimate is
//! `Σ count × weight` over its nodes (rounded), and the logical count is the **maximum over
//! groups** — a group that missed a shard entirely (RF=1, its owner dead) undercounts, and a
//! group that got everything gives the exact count. The estimate is exact whenever every
//! shard a node owns got the same number of copies in its group: all nodes up (`weight =
//! 1/RF`), RF=1 (`weight = 1`), or RF = group size (every node owns every shard). Without
//! placement information a node falls back to `1/RF` in its own group.
use crate::timefmt::{format_iso8601_duration, format_rfc3339, parse_rfc3339};
use serde::Serialize;
use serde_json::{Map, Value};

/// Node-detail counters turned into logical counts by the copy rule (module docs).
pub const SUMMED_DETAILS: &[&str] = &["indexedDocuments", "deletedDocuments"];

/// A Miroir task status, as Meilisearch spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Enqueued,
    Processing,
    Succeeded,
    Failed,
    Canceled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Enqueued => "enqueued",
            Status::Processing => "processing",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "enqueued" => Status::Enqueued,
            "processing" => Status::Processing,
            "succeeded" => Status::Succeeded,
            "failed" => Status::Failed,
            "canceled" => Status::Canceled,
            _ => return None,
        })
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Canceled)
    }
}

/// What we learned about one node task.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeTask {
    /// The node's `GET /tasks/{uid}` body.
    Found(Value),
    /// The node is no longer in the topology (its copy went with it). Counts as terminal
    /// without contributing a status, details or error. (A node that answers 404 for its
    /// task lost it: that is [`NodeTask::Lost`].)
    Gone,
    /// The node could not be asked (down, timeout, 5xx).
    Unreachable,
    /// The node task can no longer be observed (the node answered 404 for it, or could not
    /// be asked for `tasks.node_task_timeout_ms`): terminal and failed with this error
    /// (`miroir_node_task_lost`), so the task settles instead of waiting forever.
    Lost(Value),
}

/// The Meilisearch task object, keys in Meilisearch's order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskView {
    pub uid: u32,
    pub batch_uid: Option<u32>,
    pub index_uid: Option<String>,
    pub status: &'static str,
    #[serde(rename = "type")]
    pub kind: String,
    pub canceled_by: Option<u32>,
    pub details: Value,
    pub error: Option<Value>,
    pub duration: Option<String>,
    pub enqueued_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Last, and only when the client sent one (Meilisearch 1.50).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_metadata: Option<String>,
}

/// Inputs that come from Miroir's own record of the task.
#[derive(Debug, Clone)]
pub struct Head<'a> {
    pub uid: u32,
    pub index_uid: Option<&'a str>,
    pub kind: &'a str,
    pub enqueued_at: &'a str,
    pub details: &'a Value,
    /// Errors of nodes that never got the write (`failedNodes`): they fail the task only
    /// when no node task exists at all.
    pub dispatch_errors: &'a [Value],
    /// Each node's place in the copy rule; nodes not listed use `fallback`.
    pub shares: &'a std::collections::HashMap<String, Share>,
    pub fallback: Share,
}

/// A node's place in the copy rule (module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share {
    pub group: u32,
    /// Mean over the node's shards of `1 / copies written in its group`.
    pub weight: f64,
}

/// Each placing node's [`Share`] for a write to an index of `shards` shards. `placing` lists
/// `(node, group)` of the nodes that take part in placement, `missing` the nodes that did not
/// get the write (`failedNodes`). Every owner of a shard the write touched is either a node
/// task or missing, so a shard's written copies in a group are `rf − missing owners` (≥ 1).
pub fn shares(
    placing: &[(&str, u32)],
    rf: u32,
    shards: u32,
    missing: &std::collections::HashSet<&str>,
) -> std::collections::HashMap<String, Share> {
    let mut acc: std::collections::HashMap<&str, (u32, f64, u32)> = Default::default();
    let mut groups: Vec<u32> = placing.iter().map(|(_, g)| *g).collect();
    groups.sort_unstable();
    groups.dedup();
    for g in groups {
        let members: Vec<&str> = placing
            .iter()
            .filter(|(_, pg)| *pg == g)
            .map(|(n, _)| *n)
            .collect();
        for s in 0..shards {
            let owners = crate::coverage::owners(s, &members, rf);
            let lost = owners.iter().filter(|o| missing.contains(**o)).count() as u32;
            let written = (owners.len() as u32).saturating_sub(lost).max(1);
            for o in owners {
                let e = acc.entry(o).or_insert((g, 0.0, 0));
                e.1 += 1.0 / f64::from(written);
                e.2 += 1;
            }
        }
    }
    acc.into_iter()
        .map(|(n, (group, sum, count))| {
            let weight = sum / f64::from(count.max(1));
            (n.to_string(), Share { group, weight })
        })
        .collect()
}

/// Aggregates `nodes` (in registration order). `canceled_by` maps a node's `canceledBy`
/// (node name, node task uid) to the Miroir task that canceled it, when known.
pub fn aggregate(
    head: &Head<'_>,
    nodes: &[(&str, NodeTask)],
    canceled_by: impl Fn(&str, u64) -> Option<u32>,
) -> TaskView {
    let mut all_terminal = true;
    let mut any_started = false;
    // Nodes that never got the write fail it only if no node got it (module docs).
    let mut any_failed = nodes.is_empty() && !head.dispatch_errors.is_empty();
    let mut any_canceled = false;
    let mut error = if nodes.is_empty() {
        head.dispatch_errors.first().cloned()
    } else {
        None
    };
    let mut started = None;
    let mut finished = None;
    let mut canceler = None;
    // Per counter: None = no node reported it; Some(None) = some node has not counted yet;
    // Some(Some(per-group weighted sums)).
    type GroupSums = std::collections::BTreeMap<u32, f64>;
    let mut sums: Vec<Option<Option<GroupSums>>> = vec![None; SUMMED_DETAILS.len()];

    for (node, task) in nodes {
        let v = match task {
            NodeTask::Found(v) => v,
            NodeTask::Gone => {
                any_started = true;
                continue;
            }
            NodeTask::Unreachable => {
                all_terminal = false;
                continue;
            }
            NodeTask::Lost(e) => {
                any_started = true;
                any_failed = true;
                if error.is_none() {
                    error = Some(e.clone());
                }
                continue;
            }
        };
        let status = v
            .get("status")
            .and_then(Value::as_str)
            .and_then(Status::parse);
        match status {
            Some(s) if s.is_terminal() => any_started = true,
            Some(Status::Processing) => {
                any_started = true;
                all_terminal = false;
            }
            _ => all_terminal = false,
        }
        match status {
            Some(Status::Failed) => {
                any_failed = true;
                if error.is_none() {
                    error = v.get("error").filter(|e| !e.is_null()).cloned();
                }
            }
            Some(Status::Canceled) => {
                any_canceled = true;
                if canceler.is_none() {
                    canceler = v
                        .get("canceledBy")
                        .and_then(Value::as_u64)
                        .and_then(|u| canceled_by(node, u));
                }
            }
            _ => {}
        }
        if let Some(t) = v
            .get("startedAt")
            .and_then(Value::as_str)
            .and_then(parse_rfc3339)
        {
            started = Some(started.map_or(t, |s: time::OffsetDateTime| s.min(t)));
        }
        if let Some(t) = v
            .get("finishedAt")
            .and_then(Value::as_str)
            .and_then(parse_rfc3339)
        {
            finished = Some(finished.map_or(t, |f: time::OffsetDateTime| f.max(t)));
        }
        if let Some(details) = v.get("details").and_then(Value::as_object) {
            for (i, key) in SUMMED_DETAILS.iter().enumerate() {
                match details.get(*key) {
                    None => {}
                    // A node that has not counted yet makes the sum unknown (null).
                    Some(Value::Null) => sums[i] = Some(None),
                    Some(n) => {
                        let share = head.shares.get(*node).copied().unwrap_or(head.fallback);
                        let n = n.as_u64().unwrap_or(0) as f64 * share.weight;
                        let slot = sums[i].get_or_insert_with(|| Some(GroupSums::new()));
                        if let Some(groups) = slot {
                            *groups.entry(share.group).or_default() += n;
                        }
                    }
                }
            }
        }
    }

    let status = if all_terminal {
        if any_failed {
            Status::Failed
        } else if any_canceled {
            Status::Canceled
        } else {
            Status::Succeeded
        }
    } else if any_started {
        Status::Processing
    } else {
        Status::Enqueued
    };

    let mut details = match head.details {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    for (key, sum) in SUMMED_DETAILS.iter().zip(sums) {
        if let Some(sum) = sum {
            let logical =
                sum.map(|groups| groups.values().map(|g| g.round() as u64).max().unwrap_or(0));
            details.insert((*key).to_string(), logical.map_or(Value::Null, Value::from));
        }
    }

    let terminal = status.is_terminal();
    // Miroir enqueues its task when the data plane registers it, i.e. after the nodes
    // already accepted (and may have started) theirs; clamp so that, as on one Meilisearch,
    // enqueuedAt <= startedAt <= finishedAt always holds.
    let enqueued = parse_rfc3339(head.enqueued_at);
    let not_before = |t: time::OffsetDateTime| enqueued.map_or(t, |e| t.max(e));
    let started_at = if status == Status::Enqueued {
        None
    } else {
        started.map(not_before)
    };
    let finished_at = if terminal {
        finished.map(not_before)
    } else {
        None
    };
    let duration = match (started_at, finished_at) {
        (Some(s), Some(f)) => format_iso8601_duration(f - s),
        _ => None,
    };
    TaskView {
        uid: head.uid,
        batch_uid: (status != Status::Enqueued).then_some(head.uid),
        index_uid: head.index_uid.map(str::to_string),
        status: status.as_str(),
        kind: head.kind.to_string(),
        canceled_by: if status == Status::Canceled {
            canceler
        } else {
            None
        },
        details: Value::Object(meili_details(head.kind, details)),
        error: if status == Status::Failed {
            error.map(hide_reserved_in_error)
        } else {
            None
        },
        duration,
        enqueued_at: head.enqueued_at.to_string(),
        started_at: started_at.map(format_rfc3339),
        finished_at: finished_at.map(format_rfc3339),
        custom_metadata: None,
    }
}

/// Detail keys in the order Meilisearch 1.50's `DetailsView` serialises them (its field
/// order); a `settingsUpdate`'s keys are the settings' own (see `broadcast::settings_details`).
const DETAILS_ORDER: &[&str] = &[
    "receivedDocuments",
    "indexedDocuments",
    "editedDocuments",
    "primaryKey",
    "providedIds",
    "deletedDocuments",
    "matchedTasks",
    "canceledTasks",
    "deletedTasks",
    "originalFilter",
    "dumpUid",
    "context",
    "function",
    "swaps",
    "oldIndexUid",
    "newIndexUid",
];

/// A task's details as Meilisearch shows them: in `DetailsView` order, and a deletion by
/// ids (`providedIds` without a filter) carrying `"originalFilter": null` — Meilisearch
/// 1.50 converts `Details::DocumentDeletion` with `original_filter: Some(None)`.
pub fn meili_details(kind: &str, details: Map<String, Value>) -> Map<String, Value> {
    if kind == "settingsUpdate" {
        return details;
    }
    let mut details = details;
    if kind == "documentDeletion"
        && details.contains_key("providedIds")
        && !details.contains_key("originalFilter")
    {
        details.insert("originalFilter".into(), Value::Null);
    }
    let mut out = Map::new();
    for k in DETAILS_ORDER {
        if let Some(v) = details.remove(*k) {
            out.insert((*k).to_string(), v);
        }
    }
    out.extend(details);
    out
}

/// A node's error message as one Meilisearch would have written it: without Miroir's
/// reserved fields in its "Available … are" lists ([`miroir_core::node_message`], shared with
/// the data plane's relay).
pub fn hide_reserved_in_message(message: &str) -> String {
    miroir_core::node_message::scrub_reserved(message).unwrap_or_else(|| message.to_string())
}

pub fn hide_reserved_in_error(mut error: Value) -> Value {
    if let Some(m) = error.get("message").and_then(Value::as_str) {
        let hidden = hide_reserved_in_message(m);
        error["message"] = Value::from(hidden);
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::{HashMap, HashSet};

    fn no_shares() -> &'static HashMap<String, Share> {
        static EMPTY: std::sync::OnceLock<HashMap<String, Share>> = std::sync::OnceLock::new();
        EMPTY.get_or_init(HashMap::new)
    }

    /// `copies` copies of each document, all in group 0 (the pre-placement fallback).
    fn head<'a>(details: &'a Value, dispatch: &'a [Value], copies: u32) -> Head<'a> {
        Head {
            uid: 7,
            index_uid: Some("movies"),
            kind: "documentAdditionOrUpdate",
            enqueued_at: "2026-11-23T19:50:01.000000Z",
            details,
            dispatch_errors: dispatch,
            shares: no_shares(),
            fallback: Share {
                group: 0,
                weight: 1.0 / f64::from(copies),
            },
        }
    }

    fn node(
        status: &str,
        indexed: Value,
        started: Option<&str>,
        finished: Option<&str>,
    ) -> NodeTask {
        NodeTask::Found(json!({
            "uid": 3, "status": status, "details": {"receivedDocuments": 5, "indexedDocuments": indexed},
            "error": if status == "failed" { json!({"code": "invalid_document_id", "message": "bad"}) } else { Value::Null },
            "startedAt": started, "finishedAt": finished, "canceledBy": if status == "canceled" { json!(12) } else { Value::Null },
        }))
    }

    const T0: &str = "2026-11-23T19:50:02.000000Z";
    const T1: &str = "2026-11-23T19:50:02.500000Z";
    const T2: &str = "2026-11-23T19:50:03.250000Z";

    #[test]
    fn all_succeeded_sums_details_and_spans_times() {
        let d = json!({"receivedDocuments": 10});
        let nodes = [
            ("a", node("succeeded", json!(4), Some(T1), Some(T2))),
            ("b", node("succeeded", json!(6), Some(T0), Some(T1))),
        ];
        let v = aggregate(&head(&d, &[], 1), &nodes, |_, _| None);
        assert_eq!(v.status, "succeeded");
        assert_eq!(
            v.details,
            json!({"receivedDocuments": 10, "indexedDocuments": 10})
        );
        assert_eq!(v.started_at.as_deref(), Some(T0));
        assert_eq!(v.finished_at.as_deref(), Some(T2));
        assert_eq!(v.duration.as_deref(), Some("PT1.250S"));
        assert_eq!(v.batch_uid, Some(7));
        assert_eq!(v.error, None);
        let keys: Vec<String> = serde_json::to_value(&v)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys.len(), 12);
    }

    #[test]
    fn node_times_before_miroirs_enqueue_are_clamped() {
        // The nodes started (and finished) before Miroir registered its task: the view must
        // still read enqueuedAt <= startedAt <= finishedAt, as on one Meilisearch.
        let d = json!({"receivedDocuments": 5});
        let early = "2026-11-23T19:50:00.500000Z";
        let enq = "2026-11-23T19:50:01.000000Z";
        let nodes = [("a", node("succeeded", json!(5), Some(early), Some(early)))];
        let v = aggregate(&head(&d, &[], 1), &nodes, |_, _| None);
        assert_eq!(v.started_at.as_deref(), Some(enq));
        assert_eq!(v.finished_at.as_deref(), Some(enq));
        assert_eq!(v.duration.as_deref(), Some("PT0S"));
    }

    #[test]
    fn replica_copies_are_divided_out() {
        let d = json!({"receivedDocuments": 10});
        let nodes = [
            ("a", node("succeeded", json!(10), Some(T0), Some(T1))),
            ("b", node("succeeded", json!(10), Some(T0), Some(T1))),
        ];
        let v = aggregate(&head(&d, &[], 2), &nodes, |_, _| None);
        assert_eq!(v.details["indexedDocuments"], json!(10));
    }

    #[test]
    fn any_failure_fails_with_the_first_node_error_once_all_terminal() {
        let d = json!({});
        let nodes = [
            ("a", node("succeeded", json!(4), Some(T0), Some(T1))),
            ("b", node("failed", json!(0), Some(T0), Some(T1))),
        ];
        let v = aggregate(&head(&d, &[], 1), &nodes, |_, _| None);
        assert_eq!(v.status, "failed");
        assert_eq!(v.error.unwrap()["code"], "invalid_document_id");

        // Still running elsewhere: not terminal yet, no error exposed.
        let nodes = [
            ("a", node("processing", Value::Null, Some(T0), None)),
            ("b", node("failed", json!(0), Some(T0), Some(T1))),
        ];
        let v = aggregate(&head(&d, &[], 1), &nodes, |_, _| None);
        assert_eq!(v.status, "processing");
        assert_eq!(v.error, None);
        assert_eq!(v.finished_at, None);
        assert_eq!(v.details["indexedDocuments"], Value::Null);
    }

    #[test]
    fn nodes_that_never_got_the_write_do_not_fail_it() {
        let d = json!({"receivedDocuments": 4});
        let dispatch = [json!({"code": "unavailable", "message": "Node `b` Connect"})];
        let nodes = [("a", node("succeeded", json!(4), Some(T0), Some(T1)))];
        let v = aggregate(&head(&d, &dispatch, 1), &nodes, |_, _| None);
        assert_eq!(v.status, "succeeded");
        assert_eq!(v.error, None);
        // A node task that exists and fails still fails the task, with its own error.
        let nodes = [("a", node("failed", json!(0), Some(T0), Some(T1)))];
        let v = aggregate(&head(&d, &dispatch, 1), &nodes, |_, _| None);
        assert_eq!(v.status, "failed");
        assert_eq!(v.error.unwrap()["code"], "invalid_document_id");
    }

    #[test]
    fn with_no_node_task_at_all_the_dispatch_error_fails_the_task() {
        let d = json!({});
        let dispatch = [json!({"code": "index_not_found"})];
        let v = aggregate(&head(&d, &dispatch, 1), &[], |_, _| None);
        assert_eq!(v.status, "failed");
        assert_eq!(v.error.unwrap()["code"], "index_not_found");
    }

    /// Documents per shard of a write (8 shards, 25 documents each = 200).
    const PER_SHARD: u64 = 25;

    /// Each node's count: the documents of the shards it owns, if it got the write.
    fn counts(
        placing: &[(&str, u32)],
        rf: u32,
        shards: u32,
        missing: &HashSet<&str>,
    ) -> Vec<(String, NodeTask)> {
        let mut per: HashMap<&str, u64> = HashMap::new();
        for g in 0..2 {
            let members: Vec<&str> = placing
                .iter()
                .filter(|(_, pg)| *pg == g)
                .map(|(n, _)| *n)
                .collect();
            for s in 0..shards {
                for o in crate::coverage::owners(s, &members, rf) {
                    *per.entry(o).or_default() += PER_SHARD;
                }
            }
        }
        placing
            .iter()
            .filter(|(n, _)| !missing.contains(n))
            .map(|(n, _)| {
                let count = json!(per.get(n).copied().unwrap_or(0));
                (n.to_string(), node("succeeded", count, Some(T0), Some(T1)))
            })
            .collect()
    }

    fn logical(placing: &[(&str, u32)], rf: u32, missing: &[&str]) -> Value {
        let missing: HashSet<&str> = missing.iter().copied().collect();
        let shares = shares(placing, rf, 8, &missing);
        let d = json!({"receivedDocuments": 200});
        let dispatch: Vec<Value> = missing.iter().map(|_| json!({"code": "x"})).collect();
        let h = Head {
            shares: &shares,
            ..head(&d, &dispatch, rf)
        };
        let owned = counts(placing, rf, 8, &missing);
        let nodes: Vec<(&str, NodeTask)> =
            owned.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
        let v = aggregate(&h, &nodes, |_, _| None);
        assert_eq!(v.status, "succeeded");
        v.details["indexedDocuments"].clone()
    }

    #[test]
    fn copy_rule_counts_logical_documents_with_copies_missing() {
        let rg2 = [("m0", 0), ("m1", 0), ("m2", 1), ("m3", 1)];
        // RG=2 × 2 nodes, RF=1: all present, then one node of group 1 missing (its group
        // undercounts, group 0 is complete).
        assert_eq!(logical(&rg2, 1, &[]), json!(200));
        assert_eq!(logical(&rg2, 1, &["m2"]), json!(200));
        // RG=1 × 3 nodes, RF=3: every node owns every shard; one missing.
        let rf3 = [("a", 0), ("b", 0), ("c", 0)];
        assert_eq!(logical(&rf3, 3, &[]), json!(200));
        assert_eq!(logical(&rf3, 3, &["a"]), json!(200));
        // RG=2 × 3 nodes, RF=3, one missing in each group.
        let rg2rf3 = [("a", 0), ("b", 0), ("c", 0), ("d", 1), ("e", 1), ("f", 1)];
        assert_eq!(logical(&rg2rf3, 3, &["a", "e"]), json!(200));
        // RG=1 × 3 nodes, RF=2, all present.
        let rf2 = [("a", 0), ("b", 0), ("c", 0)];
        assert_eq!(logical(&rf2, 2, &[]), json!(200));
    }

    #[test]
    fn enqueued_until_a_node_starts_and_unreachable_blocks_terminal() {
        let d = json!({});
        let nodes = [
            ("a", node("enqueued", Value::Null, None, None)),
            ("b", NodeTask::Unreachable),
        ];
        let v = aggregate(&head(&d, &[], 1), &nodes, |_, _| None);
        assert_eq!(
            (v.status, v.batch_uid, v.started_at.clone()),
            ("enqueued", None, None)
        );
        let nodes = [
            ("a", node("succeeded", json!(1), Some(T0), Some(T1))),
            ("b", NodeTask::Unreachable),
        ];
        let v = aggregate(&head(&d, &[], 1), &nodes, |_, _| None);
        assert_eq!(v.status, "processing");
    }

    #[test]
    fn a_lost_node_task_settles_the_task_as_failed_with_its_error() {
        let d = json!({});
        let lost = json!({"message": "lost", "code": "miroir_node_task_lost", "type": "system", "link": "l"});
        let nodes = [
            ("a", node("succeeded", json!(1), Some(T0), Some(T1))),
            ("b", NodeTask::Lost(lost.clone())),
        ];
        let v = aggregate(&head(&d, &[], 1), &nodes, |_, _| None);
        assert_eq!((v.status, v.error), ("failed", Some(lost.clone())));
        // Alone it settles too (never stays enqueued).
        let v = aggregate(&head(&d, &[], 1), &[("b", NodeTask::Lost(lost))], |_, _| {
            None
        });
        assert_eq!(v.status, "failed");
    }

    #[test]
    fn canceled_maps_the_canceler_through_the_lookup() {
        let d = json!({});
        let nodes = [
            ("a", node("canceled", json!(0), Some(T0), Some(T1))),
            ("b", NodeTask::Gone),
        ];
        let v = aggregate(&head(&d, &[], 1), &nodes, |n, u| {
            (n == "a" && u == 12).then_some(99)
        });
        assert_eq!(v.status, "canceled");
        assert_eq!(v.canceled_by, Some(99));
    }

    #[test]
    fn details_follow_meilisearch_shapes() {
        let d = |v: Value| v.as_object().unwrap().clone();
        // Deletion by ids: `originalFilter: null` last, as Meilisearch 1.50 shows it.
        let m = meili_details(
            "documentDeletion",
            d(json!({"deletedDocuments": 2, "providedIds": 3})),
        );
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"providedIds":3,"deletedDocuments":2,"originalFilter":null}"#
        );
        // By filter keeps its filter; delete-all has no `providedIds`, so no filter either.
        let m = meili_details(
            "documentDeletion",
            d(json!({"providedIds": 0, "originalFilter": "\"a = 1\"", "deletedDocuments": 1})),
        );
        assert_eq!(m["originalFilter"], "\"a = 1\"");
        assert_eq!(
            m.keys().collect::<Vec<_>>(),
            ["providedIds", "deletedDocuments", "originalFilter"]
        );
        let m = meili_details("documentDeletion", d(json!({"deletedDocuments": 5})));
        assert!(!m.contains_key("originalFilter"));
        // Settings details are left in their own order.
        let s = d(json!({"sortableAttributes": ["a"], "displayedAttributes": ["*"]}));
        assert_eq!(meili_details("settingsUpdate", s.clone()), s);
    }

    #[test]
    fn reserved_fields_are_hidden_from_node_errors() {
        let node = "Index `m`: Attribute `title` is not filterable. Available filterable attribute patterns are: `_miroir_shard`, `genre`, `price`.\n1:6 title = x";
        assert_eq!(
            hide_reserved_in_message(node),
            "Index `m`: Attribute `title` is not filterable. Available filterable attribute patterns are: `genre`, `price`.\n1:6 title = x"
        );
        assert_eq!(
            hide_reserved_in_message("Attribute `t` is not filterable. Available filterable attribute patterns are: `genre`, `_miroir_shard`.\n1:2 t = a"),
            "Attribute `t` is not filterable. Available filterable attribute patterns are: `genre`.\n1:2 t = a"
        );
        assert_eq!(
            hide_reserved_in_message("Attribute `t` is not filterable. Available filterable attribute patterns are: `_miroir_shard`.\n1:2 t = a"),
            "Attribute `t` is not filterable. This index does not have configured filterable attributes.\n1:2 t = a"
        );
        assert_eq!(hide_reserved_in_message("no reserved"), "no reserved");
        let e = hide_reserved_in_error(
            json!({"message": "Available filterable attribute patterns are: `_miroir_shard`, `a`.", "code": "c"}),
        );
        assert_eq!(
            e,
            json!({"message": "Available filterable attribute patterns are: `a`.", "code": "c"})
        );
    }
}
