//! Tasks: the asynchronous write model of Meilisearch.
//!
//! Every write is registered as an `enqueued` task (uids dense from 0 per node) and answered
//! with a summarized task; one worker processes tasks in order (`enqueued → processing →
//! succeeded | failed`), cancelation and deletion tasks first, like Meilisearch's scheduler
//! priorities. This module holds the pure parts: task records, their JSON views, and the
//! `GET /tasks` / cancel / delete query filters.

use crate::error::{ApiError, Result};
use crate::json::{Obj, Out};
use crate::timefmt::{self, Ts};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub const STATUSES: &[&str] = &["enqueued", "processing", "succeeded", "failed", "canceled"];
pub const TYPES: &[&str] = &[
    "documentAdditionOrUpdate",
    "documentEdition",
    "documentDeletion",
    "settingsUpdate",
    "indexCreation",
    "indexDeletion",
    "indexUpdate",
    "indexSwap",
    "taskCancelation",
    "taskDeletion",
    "dumpCreation",
    "snapshotCreation",
    "export",
    "upgradeDatabase",
    "indexCompaction",
    "networkTopologyChange",
    "dsrUpdate",
    "dsrClear",
];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Task {
    pub uid: u32,
    pub batch_uid: Option<u32>,
    pub index_uid: Option<String>,
    pub status: String,
    pub kind: String,
    pub canceled_by: Option<u32>,
    pub details: Option<Obj>,
    pub error: Option<ApiError>,
    pub enqueued_at: Ts,
    pub started_at: Option<Ts>,
    pub finished_at: Option<Ts>,
}

impl Task {
    pub fn finished(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed" | "canceled")
    }

    /// `202` body: exactly `{taskUid, indexUid, status, type, enqueuedAt}`.
    pub fn summary(&self) -> Out {
        Out::obj()
            .with("taskUid", json!(self.uid))
            .with("indexUid", json!(self.index_uid))
            .with("status", json!(self.status))
            .with("type", json!(self.kind))
            .with("enqueuedAt", json!(timefmt::rfc3339(self.enqueued_at)))
    }

    /// Full task view in Meilisearch's key order.
    pub fn view(&self) -> Out {
        let duration = match (self.started_at, self.finished_at) {
            (Some(s), Some(f)) => json!(timefmt::iso_duration(f - s)),
            _ => Value::Null,
        };
        let ts = |t: Option<Ts>| t.map(|t| json!(timefmt::rfc3339(t))).unwrap_or(Value::Null);
        Out::obj()
            .with("uid", json!(self.uid))
            .with("batchUid", json!(self.batch_uid))
            .with("indexUid", json!(self.index_uid))
            .with("status", json!(self.status))
            .with("type", json!(self.kind))
            .with("canceledBy", json!(self.canceled_by))
            .with(
                "details",
                self.details
                    .as_ref()
                    .map(Out::from)
                    .unwrap_or(Out::Val(Value::Null)),
            )
            .with(
                "error",
                self.error
                    .as_ref()
                    .map(|e| serde_json::to_value(e).unwrap_or_default())
                    .unwrap_or(Value::Null),
            )
            .with("duration", duration)
            .with("enqueuedAt", json!(timefmt::rfc3339(self.enqueued_at)))
            .with("startedAt", ts(self.started_at))
            .with("finishedAt", ts(self.finished_at))
    }

    /// `GET /batches/{uid}`: the test node runs one task per batch.
    pub fn batch_view(&self) -> Out {
        let duration = match (self.started_at, self.finished_at) {
            (Some(s), Some(f)) => json!(timefmt::iso_duration(f - s)),
            _ => Value::Null,
        };
        let one = |k: &str| Out::obj().with(k, json!(1));
        let mut stats = Out::obj()
            .with("totalNbTasks", json!(1))
            .with("status", one(&self.status))
            .with("types", one(&self.kind));
        stats.push(
            "indexUids",
            match &self.index_uid {
                Some(i) => one(i),
                None => Out::obj(),
            },
        );
        if let (Some(s), Some(f)) = (self.started_at, self.finished_at) {
            // Meilisearch traces every indexing step; the test node has one step to report.
            // (`writeChannelCongestion`, only on document indexing batches, is left out.)
            let took = std::time::Duration::from_nanos((f - s).max(0) as u64);
            stats.push(
                "progressTrace",
                Out::obj().with("processing tasks", json!(format!("{took:.2?}"))),
            );
        }
        Out::obj()
            .with("uid", json!(self.batch_uid))
            .with("progress", Value::Null)
            .with(
                "details",
                self.details.as_ref().map(Out::from).unwrap_or(Out::obj()),
            )
            .with("stats", stats)
            .with("duration", duration)
            .with("startedAt", json!(self.started_at.map(timefmt::rfc3339)))
            .with("finishedAt", json!(self.finished_at.map(timefmt::rfc3339)))
            .with("batchStrategy", json!(self.batch_strategy()))
    }

    /// Why the batch holding only this task stopped there, in Meilisearch 1.50's words
    /// (`BatchStopReason`). The test node never batches several tasks together.
    fn batch_strategy(&self) -> String {
        match self.kind.as_str() {
            "documentAdditionOrUpdate" | "documentEdition" | "documentDeletion"
            | "settingsUpdate" => "batched all enqueued tasks".to_string(),
            "indexDeletion" => format!(
                "stopped after task with id {} because it deletes the index",
                self.uid
            ),
            kind => format!(
                "created batch containing only task with id {} of type `{kind}` that cannot be batched with any other task.",
                self.uid
            ),
        }
    }
}

/// Parsed `/tasks` query filters (shared by list, cancel and delete).
#[derive(Debug, Default, Clone)]
pub struct TaskFilter {
    pub uids: Option<Vec<u32>>,
    pub batch_uids: Option<Vec<u32>>,
    pub statuses: Option<Vec<String>>,
    pub types: Option<Vec<String>>,
    pub index_uids: Option<Vec<String>>,
    pub canceled_by: Option<Vec<u32>>,
    pub before_enqueued: Option<Ts>,
    pub after_enqueued: Option<Ts>,
    pub before_started: Option<Ts>,
    pub after_started: Option<Ts>,
    pub before_finished: Option<Ts>,
    pub after_finished: Option<Ts>,
    /// Whether any filter parameter was given (cancel/delete require one).
    pub any: bool,
}

fn list(v: &str) -> Option<Vec<String>> {
    if v.split(',').any(|s| s.trim() == "*") {
        None
    } else {
        Some(
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        )
    }
}

fn uid_list(k: &str, v: &str) -> Result<Option<Vec<u32>>> {
    let code = match k {
        "uids" => "invalid_task_uids",
        "batchUids" => "invalid_task_batch_uids",
        _ => "invalid_task_canceled_by",
    };
    list(v)
        .map(|l| l.iter().map(|s| s.parse::<u32>().map_err(|_| ApiError::bad(code, format!("Invalid value in parameter `{k}`: could not parse `{s}` as a positive integer")))).collect::<Result<Vec<_>>>())
        .transpose()
}

fn date(k: &str, v: &str) -> Result<Option<Ts>> {
    let code = format!("invalid_task_{}", snake(k));
    timefmt::parse_filter_date(v)
        .map(Some)
        .ok_or_else(|| ApiError::bad(&code, format!("Invalid value in parameter `{k}`: `{v}` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format.")))
}

fn snake(key: &str) -> String {
    let mut s = String::new();
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            s.push('_');
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

/// Parses filter parameters; `extra` lists the other parameters this route accepts.
pub fn parse_filter(params: &[(String, String)], extra: &[&str]) -> Result<TaskFilter> {
    let mut f = TaskFilter::default();
    for (k, v) in params {
        match k.as_str() {
            "uids" => f.uids = uid_list(k, v)?,
            "batchUids" => f.batch_uids = uid_list(k, v)?,
            "canceledBy" => f.canceled_by = uid_list(k, v)?,
            "statuses" => {
                f.statuses = list(v);
                for s in f.statuses.iter().flatten() {
                    if !STATUSES.contains(&s.as_str()) {
                        return Err(ApiError::bad("invalid_task_statuses", format!("Invalid value in parameter `statuses`: `{s}` is not a valid task status. Available statuses are `enqueued`, `processing`, `succeeded`, `failed`, `canceled`.")));
                    }
                }
            }
            "types" => {
                f.types = list(v);
                for t in f.types.iter().flatten() {
                    if !TYPES.contains(&t.as_str()) {
                        let all = TYPES
                            .iter()
                            .map(|t| format!("`{t}`"))
                            .collect::<Vec<_>>()
                            .join(", ");
                        return Err(ApiError::bad("invalid_task_types", format!("Invalid value in parameter `types`: `{t}` is not a valid task type. Available types are {all}.")));
                    }
                }
            }
            "indexUids" => {
                f.index_uids = list(v);
                for i in f.index_uids.iter().flatten() {
                    crate::error::validate_index_uid(i).map_err(|e| {
                        ApiError::bad(
                            "invalid_index_uid",
                            format!("Invalid value in parameter `indexUids`: {}", e.message),
                        )
                    })?;
                }
            }
            "beforeEnqueuedAt" => f.before_enqueued = date(k, v)?,
            "afterEnqueuedAt" => f.after_enqueued = date(k, v)?,
            "beforeStartedAt" => f.before_started = date(k, v)?,
            "afterStartedAt" => f.after_started = date(k, v)?,
            "beforeFinishedAt" => f.before_finished = date(k, v)?,
            "afterFinishedAt" => f.after_finished = date(k, v)?,
            other if extra.contains(&other) => continue,
            other => {
                // `GET /tasks` lists its paging parameters first and `batchUids` before
                // `uids`; cancel/delete list `uids` first (both as Meilisearch 1.50).
                let mut all: Vec<&str> = extra.to_vec();
                if extra.is_empty() {
                    all.extend(["uids", "batchUids"]);
                } else {
                    all.extend(["batchUids", "uids"]);
                }
                all.extend([
                    "canceledBy",
                    "types",
                    "statuses",
                    "indexUids",
                    "afterEnqueuedAt",
                    "beforeEnqueuedAt",
                    "afterStartedAt",
                    "beforeStartedAt",
                    "afterFinishedAt",
                    "beforeFinishedAt",
                ]);
                return Err(ApiError::bad(
                    "bad_request",
                    crate::error::unknown_field(other, "", &all).replacen(
                        "Unknown field",
                        "Unknown parameter",
                        1,
                    ),
                ));
            }
        }
        f.any = true;
    }
    Ok(f)
}

fn after(t: Option<Ts>, bound: Option<Ts>) -> bool {
    bound.is_none_or(|b| t.is_some_and(|t| t > b))
}

fn before(t: Option<Ts>, bound: Option<Ts>) -> bool {
    bound.is_none_or(|b| t.is_some_and(|t| t < b))
}

impl TaskFilter {
    pub fn matches(&self, t: &Task) -> bool {
        self.uids.as_ref().is_none_or(|u| u.contains(&t.uid))
            && self
                .batch_uids
                .as_ref()
                .is_none_or(|u| t.batch_uid.is_some_and(|b| u.contains(&b)))
            && self.statuses.as_ref().is_none_or(|s| s.contains(&t.status))
            && self.types.as_ref().is_none_or(|s| s.contains(&t.kind))
            && self
                .index_uids
                .as_ref()
                .is_none_or(|s| t.index_uid.as_ref().is_some_and(|i| s.contains(i)))
            && self
                .canceled_by
                .as_ref()
                .is_none_or(|c| t.canceled_by.is_some_and(|b| c.contains(&b)))
            && after(Some(t.enqueued_at), self.after_enqueued)
            && before(Some(t.enqueued_at), self.before_enqueued)
            && after(t.started_at, self.after_started)
            && before(t.started_at, self.before_started)
            && after(t.finished_at, self.after_finished)
            && before(t.finished_at, self.before_finished)
    }
}

pub fn missing_filters(what: &str) -> ApiError {
    ApiError::bad("missing_task_filters", format!("Query parameters to filter the tasks to {what} are missing. Available query parameters are: `uids`, `indexUids`, `statuses`, `types`, `canceledBy`, `beforeEnqueuedAt`, `afterEnqueuedAt`, `beforeStartedAt`, `afterStartedAt`, `beforeFinishedAt`, `afterFinishedAt`."))
}

/// One page of `GET /tasks`: newest first unless `reverse`; `from` is an inclusive uid bound.
pub fn page<'a>(
    tasks: impl DoubleEndedIterator<Item = &'a Task>,
    filter: &TaskFilter,
    from: Option<u32>,
    limit: usize,
    reverse: bool,
) -> (Vec<&'a Task>, usize, Option<u32>) {
    let matching: Vec<&Task> = if reverse {
        tasks.filter(|t| filter.matches(t)).collect()
    } else {
        tasks.rev().filter(|t| filter.matches(t)).collect()
    };
    let total = matching.len();
    let start = matching
        .iter()
        .position(|t| from.is_none_or(|f| if reverse { t.uid >= f } else { t.uid <= f }))
        .unwrap_or(matching.len());
    let window: Vec<&Task> = matching[start..].iter().take(limit).copied().collect();
    let next = matching.get(start + limit).map(|t| t.uid);
    (window, total, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(uid: u32, status: &str, index: &str) -> Task {
        Task {
            uid,
            batch_uid: None,
            index_uid: Some(index.into()),
            status: status.into(),
            kind: "indexCreation".into(),
            canceled_by: None,
            details: None,
            error: None,
            enqueued_at: 1_000 + uid as i128,
            started_at: None,
            finished_at: None,
        }
    }

    #[test]
    fn views_have_exact_keys() {
        let t = task(3, "enqueued", "m");
        assert_eq!(
            t.summary().keys(),
            ["taskUid", "indexUid", "status", "type", "enqueuedAt"]
        );
        assert_eq!(
            t.view().keys(),
            [
                "uid",
                "batchUid",
                "indexUid",
                "status",
                "type",
                "canceledBy",
                "details",
                "error",
                "duration",
                "enqueuedAt",
                "startedAt",
                "finishedAt"
            ]
        );
    }

    #[test]
    fn batch_view_explains_its_strategy() {
        let mut t = task(7, "succeeded", "m");
        t.kind = "settingsUpdate".into();
        t.started_at = Some(1_000);
        t.finished_at = Some(1_500_000);
        let b = t.batch_view();
        assert_eq!(
            b.keys(),
            [
                "uid",
                "progress",
                "details",
                "stats",
                "duration",
                "startedAt",
                "finishedAt",
                "batchStrategy"
            ]
        );
        let v = b.to_value();
        assert_eq!(v["batchStrategy"], "batched all enqueued tasks");
        assert_eq!(v["stats"]["progressTrace"]["processing tasks"], "1.50ms");
        t.kind = "indexDeletion".into();
        assert_eq!(
            t.batch_view().to_value()["batchStrategy"],
            "stopped after task with id 7 because it deletes the index"
        );
        t.kind = "taskCancelation".into();
        assert_eq!(
            t.batch_view().to_value()["batchStrategy"],
            "created batch containing only task with id 7 of type `taskCancelation` that cannot be batched with any other task."
        );
    }

    #[test]
    fn filters_and_paging() {
        let tasks: Vec<Task> = (0..10)
            .map(|i| {
                task(
                    i,
                    if i % 2 == 0 { "succeeded" } else { "failed" },
                    if i < 5 { "a" } else { "b" },
                )
            })
            .collect();
        let p = |q: &[(&str, &str)]| {
            parse_filter(
                &q.iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect::<Vec<_>>(),
                &["from", "limit", "reverse"],
            )
            .unwrap()
        };
        let f = p(&[("statuses", "failed"), ("indexUids", "b")]);
        let (w, total, next) = page(tasks.iter(), &f, None, 2, false);
        assert_eq!(w.iter().map(|t| t.uid).collect::<Vec<_>>(), [9, 7]);
        assert_eq!((total, next), (3, Some(5)));
        let (w, _, next) = page(tasks.iter(), &TaskFilter::default(), Some(5), 3, true);
        assert_eq!(w.iter().map(|t| t.uid).collect::<Vec<_>>(), [5, 6, 7]);
        assert_eq!(next, Some(8));
        let f = p(&[("uids", "1,2"), ("afterEnqueuedAt", "1970-01-01T00:00:00Z")]);
        assert!(f.any && f.matches(&tasks[1]) && !f.matches(&tasks[3]));
        assert!(parse_filter(&[("statuses".into(), "bogus".into())], &[]).is_err());
        assert!(parse_filter(&[("types".into(), "*".into())], &[])
            .unwrap()
            .types
            .is_none());
    }
}
