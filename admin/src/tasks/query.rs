//! Parsing of Meilisearch's task query parameters (`GET /tasks`, `POST /tasks/cancel`,
//! `DELETE /tasks`, `GET /batches`) into the store's [`TaskQuery`].
//!
//! Lists are comma-separated; `*` means "no constraint". Dates are RFC 3339 or a plain
//! `YYYY-MM-DD` (taken as that day's midnight UTC — an assumption: Meilisearch also accepts
//! dates, and we did not verify its exact rounding for `before`/`after`). Errors use
//! Meilisearch's `invalid_task_*` codes.

use crate::api::{query_pairs, ApiError};
use crate::store::{TaskFilter, TaskQuery, TaskStatus, TaskType};
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

fn list<T>(
    value: &str,
    param: &str,
    code: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<Vec<T>>, ApiError> {
    if value.split(',').any(|v| v.trim() == "*") {
        return Ok(None);
    }
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            parse(v).ok_or_else(|| {
                ApiError::invalid(
                    code,
                    format!("Invalid value in parameter `{param}`: `{v}` is not a valid value."),
                )
            })
        })
        .collect::<Result<Vec<T>, _>>()
        .map(Some)
}

fn date(value: &str, param: &str, code: &str) -> Result<OffsetDateTime, ApiError> {
    if let Some(t) = crate::timefmt::parse_rfc3339(value) {
        return Ok(t);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(value, &fmt).map(|d| d.midnight().assume_utc()).map_err(|_| {
        ApiError::invalid(
            code,
            format!("Invalid value in parameter `{param}`: `{value}` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 date-time format."),
        )
    })
}

fn uid(v: &str) -> Option<TaskUid> {
    v.parse::<u32>().ok().map(TaskUid)
}

/// Parses a raw query string.
pub fn parse(raw: &str, purpose: Purpose) -> Result<Parsed, ApiError> {
    let mut f = TaskFilter::default();
    let mut q = TaskQuery::default();
    let mut has_filter = false;
    for (k, v) in query_pairs(raw) {
        let code = format!("invalid_task_{}", snake(&k));
        let is_filter = !matches!(k.as_str(), "from" | "limit" | "reverse");
        match k.as_str() {
            "uids" | "batchUids" => {
                // One Miroir batch per Miroir task: batch uid = task uid.
                let l = list(&v, &k, &code, uid)?;
                f.uids = match (f.uids.take(), l) {
                    (Some(a), Some(b)) => Some(a.into_iter().filter(|u| b.contains(u)).collect()),
                    (a, b) => a.or(b),
                };
            }
            "statuses" => f.statuses = list(&v, &k, &code, TaskStatus::parse)?,
            "types" => f.types = list(&v, &k, &code, TaskType::parse)?,
            "indexUids" => f.index_uids = list(&v, &k, &code, |s| Some(s.to_string()))?,
            "canceledBy" => f.canceled_by = list(&v, &k, &code, uid)?,
            "beforeEnqueuedAt" => f.before_enqueued_at = Some(date(&v, &k, &code)?),
            "afterEnqueuedAt" => f.after_enqueued_at = Some(date(&v, &k, &code)?),
            "beforeStartedAt" => f.before_started_at = Some(date(&v, &k, &code)?),
            "afterStartedAt" => f.after_started_at = Some(date(&v, &k, &code)?),
            "beforeFinishedAt" => f.before_finished_at = Some(date(&v, &k, &code)?),
            "afterFinishedAt" => f.after_finished_at = Some(date(&v, &k, &code)?),
            "from" if purpose == Purpose::List => {
                q.from = Some(uid(&v).ok_or_else(|| ApiError::invalid("invalid_task_from", format!("Invalid value in parameter `from`: could not parse `{v}` as a positive integer")))?)
            }
            "limit" if purpose == Purpose::List => {
                q.limit = v.parse().map_err(|_| ApiError::invalid("invalid_task_limit", format!("Invalid value in parameter `limit`: could not parse `{v}` as a positive integer")))?
            }
            "reverse" if purpose == Purpose::List => {
                q.reverse = v.parse().map_err(|_| ApiError::invalid("invalid_task_reverse", format!("Invalid value in parameter `reverse`: could not parse `{v}` as a boolean")))?
            }
            other => {
                return Err(ApiError::invalid(
                    "bad_request",
                    format!("Unknown parameter `{other}`: expected one of `uids`, `batchUids`, `canceledBy`, `types`, `statuses`, `indexUids`, `afterEnqueuedAt`, `beforeEnqueuedAt`, `afterStartedAt`, `beforeStartedAt`, `afterFinishedAt`, `beforeFinishedAt`{}", if purpose == Purpose::List { ", `limit`, `from`, `reverse`" } else { "" }),
                ))
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

fn snake(camel: &str) -> String {
    let mut out = String::new();
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
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
        let d = parse("afterEnqueuedAt=2026-11-23", Purpose::List).unwrap();
        assert_eq!(
            d.query.filter.after_enqueued_at.unwrap().unix_timestamp(),
            1795392000
        );
    }
}
