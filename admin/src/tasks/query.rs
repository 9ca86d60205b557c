//! Parsing of Meilisearch's task query parameters (`GET /tasks`, `POST /tasks/cancel`,
//! `DELETE /tasks`, `GET /batches`) into the store's [`TaskQuery`], with Meilisearch 1.50's
//! exact validation rules and error messages (`crates/meilisearch/src/routes/tasks.rs`,
//! `meilisearch-types/src/star_or.rs`, checked against a real 1.50 node):
//!
//! - Lists are comma-separated; empty elements are skipped (`statuses=` is an empty list,
//!   which matches nothing). Every element is validated, and the first invalid one is
//!   reported at `param[i]` (index among the non-empty elements) when the list has more than
//!   one element, at `param` otherwise. A `*` element makes the whole list "no constraint",
//!   but the other elements are still validated first.
//! - Statuses and types are matched case-insensitively; elements are not trimmed.
//! - Dates are RFC 3339 or `YYYY-MM-DD`; `*` means no constraint. A plain date is that day's
//!   midnight UTC for `before*` and the next day's midnight for `after*` (Meilisearch's
//!   `deserialize_date`: "after 2026-11-23" means after that whole day).

use crate::http_types::{query_pairs, ApiError};
use crate::store::{TaskFilter, TaskQuery, TaskStatus, TaskType};
use miroir_core::error::ErrorCode;
use miroir_core::ids::TaskUid;
use time::OffsetDateTime;

/// Which route the parameters belong to (pagination is only accepted on listings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    List,
    CancelOrDelete,
}

/// A parsed query and whether any filter was present (cancel/delete require one).
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub query: TaskQuery,
    pub has_filter: bool,
}

/// Meilisearch 1.50's task statuses, in the order its error messages list them.
pub const MEILI_TASK_STATUSES: [&str; 5] =
    ["enqueued", "processing", "succeeded", "failed", "canceled"];

/// Meilisearch 1.50's task types (`Kind` in meilisearch-types), in declaration order — the
/// order its "not a valid task type" message lists them. Miroir never creates some of them
/// (e.g. `networkTopologyChange`); filtering on those is valid and matches nothing.
pub const MEILI_TASK_TYPES: [&str; 18] = [
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

/// The parameters each route accepts, in the order Meilisearch's "Unknown parameter"
/// message lists them (its query structs' field order).
const LIST_PARAMS: &str = "`limit`, `from`, `reverse`, `batchUids`, `uids`, `canceledBy`, `types`, `statuses`, `indexUids`, `afterEnqueuedAt`, `beforeEnqueuedAt`, `afterStartedAt`, `beforeStartedAt`, `afterFinishedAt`, `beforeFinishedAt`";
const CANCEL_DELETE_PARAMS: &str = "`uids`, `batchUids`, `canceledBy`, `types`, `statuses`, `indexUids`, `afterEnqueuedAt`, `beforeEnqueuedAt`, `afterStartedAt`, `beforeStartedAt`, `afterFinishedAt`, `beforeFinishedAt`";

fn backquoted(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_status(v: &str) -> Result<TaskStatus, String> {
    MEILI_TASK_STATUSES
        .iter()
        .find(|s| s.eq_ignore_ascii_case(v))
        .and_then(|s| TaskStatus::parse(s))
        .ok_or_else(|| {
            format!(
                "`{v}` is not a valid task status. Available statuses are {}.",
                backquoted(&MEILI_TASK_STATUSES)
            )
        })
}

/// `Ok(None)`: a valid Meilisearch type Miroir's store has no tasks of.
fn parse_type(v: &str) -> Result<Option<TaskType>, String> {
    match MEILI_TASK_TYPES.iter().find(|t| t.eq_ignore_ascii_case(v)) {
        Some(t) => Ok(TaskType::parse(t)),
        None => Err(format!(
            "`{v}` is not a valid task type. Available types are {}.",
            backquoted(&MEILI_TASK_TYPES)
        )),
    }
}

fn parse_uid(v: &str) -> Result<TaskUid, String> {
    v.parse::<u32>()
        .map(TaskUid)
        .map_err(|_| format!("could not parse `{v}` as a positive integer"))
}

/// Meilisearch's `IndexUid` rule (`[A-Za-z0-9_-]`, 1 to 400 bytes; the message says 512).
pub(crate) fn parse_index_uid(v: &str) -> Result<String, String> {
    let ok = !v.is_empty()
        && v.len() <= 400
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(v.to_string())
    } else {
        Err(format!("`{v}` is not a valid index uid. Index uid can be an integer or a string containing only alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 512 bytes."))
    }
}

fn invalid(code: ErrorCode, location: &str, msg: &str) -> ApiError {
    ApiError::core(
        code,
        format!("Invalid value in parameter `{location}`: {msg}"),
    )
}

/// A comma-separated list (module docs); `None` = no constraint (`*`).
fn list<T>(
    value: &str,
    param: &str,
    code: ErrorCode,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<Vec<T>>, ApiError> {
    let elements: Vec<&str> = value.split(',').filter(|v| !v.is_empty()).collect();
    let mut star = false;
    let mut out = Vec::with_capacity(elements.len());
    for (i, v) in elements.iter().enumerate() {
        if *v == "*" {
            star = true;
            continue;
        }
        match parse(v) {
            Ok(x) => out.push(x),
            Err(msg) => {
                let location = if elements.len() > 1 {
                    format!("{param}[{i}]")
                } else {
                    param.to_string()
                };
                return Err(invalid(code, &location, &msg));
            }
        }
    }
    Ok((!star).then_some(out))
}

/// A date bound; `None` = no constraint (`*`). `after`: a plain date means the next day.
fn date(
    value: &str,
    param: &str,
    code: ErrorCode,
    after: bool,
) -> Result<Option<OffsetDateTime>, ApiError> {
    if value == "*" {
        return Ok(None);
    }
    if let Some(t) = crate::timefmt::parse_rfc3339(value) {
        return Ok(Some(t));
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    match time::Date::parse(value, &fmt) {
        Ok(d) => {
            let midnight = d.midnight().assume_utc();
            Ok(Some(if after {
                midnight
                    .checked_add(time::Duration::days(1))
                    .unwrap_or(midnight)
            } else {
                midnight
            }))
        }
        Err(_) => Err(invalid(
            code,
            param,
            &format!("`{value}` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format."),
        )),
    }
}

/// Intersects two optional uid constraints (`uids` and `batchUids` both select task uids:
/// one Miroir batch per Miroir task).
fn intersect(a: Option<Vec<TaskUid>>, b: Option<Vec<TaskUid>>) -> Option<Vec<TaskUid>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.into_iter().filter(|u| b.contains(u)).collect()),
        (a, b) => a.or(b),
    }
}

/// Parses a raw query string.
pub fn parse(raw: &str, purpose: Purpose) -> Result<Parsed, ApiError> {
    let mut f = TaskFilter::default();
    let mut q = TaskQuery::default();
    let mut has_filter = false;
    let positive = |k: &str, v: &str, code: ErrorCode| -> Result<u32, ApiError> {
        v.parse::<u32>().map_err(|_| {
            invalid(
                code,
                k,
                &format!("could not parse `{v}` as a positive integer"),
            )
        })
    };
    for (k, v) in query_pairs(raw) {
        let is_filter = !matches!(k.as_str(), "from" | "limit" | "reverse");
        match k.as_str() {
            "uids" => {
                f.uids = intersect(
                    f.uids.take(),
                    list(&v, &k, ErrorCode::InvalidTaskUids, parse_uid)?,
                )
            }
            "batchUids" => {
                f.uids = intersect(
                    f.uids.take(),
                    list(&v, &k, ErrorCode::InvalidBatchUids, parse_uid)?,
                )
            }
            "canceledBy" => {
                f.canceled_by = list(&v, &k, ErrorCode::InvalidTaskCanceledBy, parse_uid)?
            }
            "statuses" => f.statuses = list(&v, &k, ErrorCode::InvalidTaskStatuses, parse_status)?,
            "types" => {
                f.types = list(&v, &k, ErrorCode::InvalidTaskTypes, parse_type)?
                    .map(|l| l.into_iter().flatten().collect())
            }
            "indexUids" => {
                f.index_uids = list(&v, &k, ErrorCode::InvalidIndexUid, parse_index_uid)?
            }
            "beforeEnqueuedAt" => {
                f.before_enqueued_at = date(&v, &k, ErrorCode::InvalidTaskBeforeEnqueuedAt, false)?
            }
            "afterEnqueuedAt" => {
                f.after_enqueued_at = date(&v, &k, ErrorCode::InvalidTaskAfterEnqueuedAt, true)?
            }
            "beforeStartedAt" => {
                f.before_started_at = date(&v, &k, ErrorCode::InvalidTaskBeforeStartedAt, false)?
            }
            "afterStartedAt" => {
                f.after_started_at = date(&v, &k, ErrorCode::InvalidTaskAfterStartedAt, true)?
            }
            "beforeFinishedAt" => {
                f.before_finished_at = date(&v, &k, ErrorCode::InvalidTaskBeforeFinishedAt, false)?
            }
            "afterFinishedAt" => {
                f.after_finished_at = date(&v, &k, ErrorCode::InvalidTaskAfterFinishedAt, true)?
            }
            "from" if purpose == Purpose::List => {
                q.from = Some(TaskUid(positive(&k, &v, ErrorCode::InvalidTaskFrom)?))
            }
            "limit" if purpose == Purpose::List => {
                q.limit = positive(&k, &v, ErrorCode::InvalidTaskLimit)?
            }
            "reverse" if purpose == Purpose::List => {
                q.reverse = v.parse().map_err(|_| {
                    invalid(
                        ErrorCode::InvalidTaskReverse,
                        &k,
                        &format!(
                            "could not parse `{v}` as a boolean, expected either `true` or `false`"
                        ),
                    )
                })?
            }
            other => {
                let expected = match purpose {
                    Purpose::List => LIST_PARAMS,
                    Purpose::CancelOrDelete => CANCEL_DELETE_PARAMS,
                };
                return Err(ApiError::core(
                    ErrorCode::BadRequest,
                    format!("Unknown parameter `{other}`: expected one of {expected}"),
                ));
            }
        }
        has_filter |= is_filter;
    }
    q.filter = f;
    Ok(Parsed {
        query: q,
        has_filter,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_meilisearch_filters() {
        let p = parse("statuses=enqueued,failed&types=settingsUpdate&indexUids=movies&limit=5&from=9&reverse=true&uids=1,2,9", Purpose::List).unwrap();
        assert!(p.has_filter);
        assert_eq!(p.query.limit, 5);
        assert_eq!(p.query.from, Some(TaskUid(9)));
        assert!(p.query.reverse);
        assert_eq!(
            p.query.filter.statuses,
            Some(vec![TaskStatus::Enqueued, TaskStatus::Failed])
        );
        assert_eq!(p.query.filter.types, Some(vec![TaskType::SettingsUpdate]));
        assert_eq!(
            p.query.filter.uids,
            Some(vec![TaskUid(1), TaskUid(2), TaskUid(9)])
        );
        assert_eq!(p.query.filter.index_uids, Some(vec!["movies".to_string()]));
    }

    #[test]
    fn wildcard_means_no_constraint_and_pagination_is_not_a_filter() {
        let p = parse("statuses=*&limit=3", Purpose::List).unwrap();
        assert_eq!(p.query.filter.statuses, None);
        let p = parse("limit=3", Purpose::List).unwrap();
        assert!(!p.has_filter);
        assert_eq!(
            parse("", Purpose::List).unwrap().query,
            TaskQuery::default()
        );
    }

    #[test]
    fn rejects_bad_values_with_meilisearch_codes() {
        let e = parse("statuses=done", Purpose::List).unwrap_err();
        assert_eq!(e.body()["code"], "invalid_task_statuses");
        let e = parse("beforeEnqueuedAt=yesterday", Purpose::List).unwrap_err();
        assert_eq!(e.body()["code"], "invalid_task_before_enqueued_at");
        assert_eq!(
            parse("limit=x", Purpose::List).unwrap_err().body()["code"],
            "invalid_task_limit"
        );
        assert_eq!(
            parse("limit=3", Purpose::CancelOrDelete)
                .unwrap_err()
                .body()["code"],
            "bad_request"
        );
        // A plain date: midnight for `before*`, the next midnight for `after*`.
        let d = parse(
            "afterEnqueuedAt=2026-11-23&beforeStartedAt=2026-11-23",
            Purpose::List,
        )
        .unwrap();
        assert_eq!(
            d.query.filter.after_enqueued_at.unwrap().unix_timestamp(),
            1795392000 + 86400
        );
        assert_eq!(
            d.query.filter.before_started_at.unwrap().unix_timestamp(),
            1795392000
        );
        assert_eq!(
            parse("beforeEnqueuedAt=*", Purpose::List).unwrap().query,
            TaskQuery::default()
        );
    }

    fn message(raw: &str, purpose: Purpose) -> (String, String) {
        let b = parse(raw, purpose).unwrap_err().body();
        (
            b["code"].as_str().unwrap().to_string(),
            b["message"].as_str().unwrap().to_string(),
        )
    }

    /// Messages as a real Meilisearch 1.50 answers them (captured from one).
    #[test]
    fn error_messages_are_meilisearch_1_50s() {
        assert_eq!(
            message("statuses=nope", Purpose::List),
            ("invalid_task_statuses".into(), "Invalid value in parameter `statuses`: `nope` is not a valid task status. Available statuses are `enqueued`, `processing`, `succeeded`, `failed`, `canceled`.".into())
        );
        assert_eq!(
            message("types=nope", Purpose::CancelOrDelete),
            ("invalid_task_types".into(), "Invalid value in parameter `types`: `nope` is not a valid task type. Available types are `documentAdditionOrUpdate`, `documentEdition`, `documentDeletion`, `settingsUpdate`, `indexCreation`, `indexDeletion`, `indexUpdate`, `indexSwap`, `taskCancelation`, `taskDeletion`, `dumpCreation`, `snapshotCreation`, `export`, `upgradeDatabase`, `indexCompaction`, `networkTopologyChange`, `dsrUpdate`, `dsrClear`.".into())
        );
        // Index among the non-empty elements, only when there are several; `*` does not
        // spare the other elements.
        assert!(message("statuses=enqueued,,nope", Purpose::List)
            .1
            .starts_with("Invalid value in parameter `statuses[1]`: `nope` is not"));
        assert!(message("types=*,nope", Purpose::List)
            .1
            .starts_with("Invalid value in parameter `types[1]`:"));
        assert_eq!(
            message("uids=1,abc", Purpose::List),
            (
                "invalid_task_uids".into(),
                "Invalid value in parameter `uids[1]`: could not parse `abc` as a positive integer"
                    .into()
            )
        );
        assert_eq!(
            message("batchUids=x", Purpose::List),
            (
                "invalid_batch_uids".into(),
                "Invalid value in parameter `batchUids`: could not parse `x` as a positive integer"
                    .into()
            )
        );
        assert_eq!(
            message("canceledBy=-1", Purpose::List).0,
            "invalid_task_canceled_by"
        );
        assert_eq!(
            message("indexUids=a,b%20c", Purpose::List),
            ("invalid_index_uid".into(), "Invalid value in parameter `indexUids[1]`: `b c` is not a valid index uid. Index uid can be an integer or a string containing only alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 512 bytes.".into())
        );
        assert_eq!(
            message("statuses=%20enqueued", Purpose::List).0,
            "invalid_task_statuses",
            "elements are not trimmed"
        );
        assert_eq!(
            message("reverse=1", Purpose::List).1,
            "Invalid value in parameter `reverse`: could not parse `1` as a boolean, expected either `true` or `false`"
        );
        assert_eq!(
            message("limit=", Purpose::List).1,
            "Invalid value in parameter `limit`: could not parse `` as a positive integer"
        );
        assert_eq!(
            message("beforeEnqueuedAt=", Purpose::List).1,
            "Invalid value in parameter `beforeEnqueuedAt`: `` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format."
        );
        assert_eq!(
            message("foo=1", Purpose::List).1,
            "Unknown parameter `foo`: expected one of `limit`, `from`, `reverse`, `batchUids`, `uids`, `canceledBy`, `types`, `statuses`, `indexUids`, `afterEnqueuedAt`, `beforeEnqueuedAt`, `afterStartedAt`, `beforeStartedAt`, `afterFinishedAt`, `beforeFinishedAt`"
        );
        assert_eq!(
            message("limit=1", Purpose::CancelOrDelete).1,
            "Unknown parameter `limit`: expected one of `uids`, `batchUids`, `canceledBy`, `types`, `statuses`, `indexUids`, `afterEnqueuedAt`, `beforeEnqueuedAt`, `afterStartedAt`, `beforeStartedAt`, `afterFinishedAt`, `beforeFinishedAt`"
        );
    }

    #[test]
    fn lists_follow_meilisearch_semantics() {
        // Case-insensitive names; empty elements skipped; an empty list matches nothing.
        let p = parse(
            "statuses=ENQUEUED,,Failed&types=INDEXCREATION",
            Purpose::List,
        )
        .unwrap();
        assert_eq!(
            p.query.filter.statuses,
            Some(vec![TaskStatus::Enqueued, TaskStatus::Failed])
        );
        assert_eq!(p.query.filter.types, Some(vec![TaskType::IndexCreation]));
        assert_eq!(
            parse("statuses=", Purpose::List)
                .unwrap()
                .query
                .filter
                .statuses,
            Some(vec![])
        );
        // A valid type Miroir never creates: accepted, matches nothing.
        assert_eq!(
            parse("types=networkTopologyChange", Purpose::List)
                .unwrap()
                .query
                .filter
                .types,
            Some(vec![])
        );
        // `*` anywhere lifts the constraint.
        assert_eq!(
            parse("statuses=enqueued,*", Purpose::List)
                .unwrap()
                .query
                .filter
                .statuses,
            None
        );
        // A star or an empty list is still a filter for cancel/delete.
        assert!(
            parse("statuses=*", Purpose::CancelOrDelete)
                .unwrap()
                .has_filter
        );
        assert!(parse("uids=", Purpose::CancelOrDelete).unwrap().has_filter);
    }
}
