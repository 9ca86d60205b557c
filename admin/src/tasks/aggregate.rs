//! Pure aggregation of per-node Meilisearch tasks into one Miroir task (PRODUCT.md §3).
//!
//! A Miroir task that the data plane registered (a document write) fans out to several node
//! tasks. Its view is computed from theirs:
//!
//! - **status**: once every node task is terminal — `failed` if any failed, else `canceled`
//!   if any was canceled, else `succeeded`. Before that — `processing` as soon as any node
//!   started (or finished), else `enqueued`. Nodes that already refused the write at dispatch
//!   (`failedNodes`) count as terminal failures. A node that cannot be asked right now keeps
//!   the task non-terminal: we never guess a terminal state we could not observe.
//! - **details**: the details registered with the task (e.g. the logical `receivedDocuments`)
//!   plus document counters summed over the nodes and divided by the number of copies of a
//!   document (`replication_factor × replica_groups`), so they count logical documents.
//! - **error**: the first failing node's error, verbatim (dispatch failures first, then node
//!   tasks in registration order).
//! - **startedAt** the earliest node start, **finishedAt** the latest node finish (only when
//!   terminal), **duration** their difference, **enqueuedAt** Miroir's own.
//! - **batchUid**: one Miroir batch per Miroir task, so it equals the uid once started.

use crate::timefmt::{format_iso8601_duration, format_rfc3339, parse_rfc3339};
use serde::Serialize;
use serde_json::{Map, Value};

/// Node-detail counters that are summed across nodes (then divided by the copy count).
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
    /// The node answered 404: its task was deleted there (`DELETE /tasks`). Counts as
    /// terminal without contributing a status, details or error.
    Gone,
    /// The node could not be asked (down, timeout, 5xx).
    Unreachable,
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
}

/// Inputs that come from Miroir's own record of the task.
#[derive(Debug, Clone)]
pub struct Head<'a> {
    pub uid: u32,
    pub index_uid: Option<&'a str>,
    pub kind: &'a str,
    pub enqueued_at: &'a str,
    pub details: &'a Value,
    /// Errors of nodes that refused the write at dispatch time.
    pub dispatch_errors: &'a [Value],
    /// Copies of one document across the deployment (`rf × rg`), ≥ 1.
    pub copies: u32,
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
    let mut any_failed = !head.dispatch_errors.is_empty();
    let mut any_canceled = false;
    let mut error = head.dispatch_errors.first().cloned();
    let mut started = None;
    let mut finished = None;
    let mut canceler = None;
    let mut sums: Vec<Option<Option<u64>>> = vec![None; SUMMED_DETAILS.len()];

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
                        let n = n.as_u64().unwrap_or(0);
                        sums[i] = Some(match sums[i] {
                            None => Some(n),
                            Some(prev) => prev.map(|p| p + n),
                        });
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
    let copies = u64::from(head.copies.max(1));
    for (i, key) in SUMMED_DETAILS.iter().enumerate() {
        if let Some(sum) = sums[i] {
            details.insert(
                (*key).to_string(),
                sum.map_or(Value::Null, |s| Value::from(s / copies)),
            );
        }
    }

    let terminal = status.is_terminal();
    let started_at = if status == Status::Enqueued {
        None
    } else {
        started
    };
    let finished_at = if terminal { finished } else { None };
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
        details: Value::Object(details),
        error: if status == Status::Failed {
            error
        } else {
            None
        },
        duration,
        enqueued_at: head.enqueued_at.to_string(),
        started_at: started_at.map(format_rfc3339),
        finished_at: finished_at.map(format_rfc3339),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn head<'a>(details: &'a Value, dispatch: &'a [Value], copies: u32) -> Head<'a> {
        Head {
            uid: 7,
            index_uid: Some("movies"),
            kind: "documentAdditionOrUpdate",
            enqueued_at: "2026-11-23T19:50:01.000000Z",
            details,
            dispatch_errors: dispatch,
            copies,
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
    fn dispatch_errors_fail_the_task_and_come_first() {
        let d = json!({});
        let dispatch = [json!({"code": "index_not_found"})];
        let nodes = [("a", node("failed", json!(0), Some(T0), Some(T1)))];
        let v = aggregate(&head(&d, &dispatch, 1), &nodes, |_, _| None);
        assert_eq!(v.status, "failed");
        assert_eq!(v.error.unwrap()["code"], "index_not_found");
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
}
