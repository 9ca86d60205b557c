//! Dynamic search rules (`/dynamic-search-rules*`, decision 042).
//!
//! The rules live here, not on the nodes: a node would pin only documents of its own shard.
//! Each rule is a store meta record under [`PREFIX`] (LMDB or Redis through the store
//! trait; loaded by `state::load_search_rules`); the admin keeps them in its state and publishes them in the snapshot, where the
//! data plane evaluates them around the merge (`runtime/src/proxy/pins.rs`).
//!
//! CRUD answers as Meilisearch 1.50 (checked against a real build): `POST` lists (offset,
//! limit, filter), `GET/PATCH/DELETE /{uid}`, `DELETE` clears; writes are Miroir tasks
//! (`dsrUpdate`, `dsrClear`, index uid `.meili_dsr`). Every route needs the
//! `dynamicSearchRules` experimental feature, read from a node (Miroir relays
//! `/experimental-features` to every node, so any live node knows it).

use crate::broadcast::spawn_task;
use crate::http_types::{
    describe_json_value, invalid_value_type, unknown_field, ApiError, Req, Resp,
};
use crate::state::Admin;
use crate::store::TaskType;
use hyper::Method;
use miroir_core::error::ErrorCode;
use miroir_core::search_rules::{
    active_rules_known, precedence_order, tokenize, PinAction, SearchRule,
};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use miroir_core::search_rules::STORE_PREFIX as PREFIX;
/// The admin lock taken by rule changes (not a valid index uid, so no index shares it).
const LOCK_SCOPE: &str = "/dynamic-search-rules";
/// The index uid Meilisearch gives the rules' tasks.
const TASK_INDEX: &str = ".meili_dsr";
const RULE_FIELDS: &[&str] = &[
    "description",
    "precedence",
    "active",
    "conditions",
    "actions",
];

/// `/dynamic-search-rules` (`uid == None`) and `/dynamic-search-rules/{uid}`.
pub async fn route(admin: &Arc<Admin>, req: &Req, uid: Option<&str>) -> Result<Resp, ApiError> {
    const USING: &str = "Using the `/dynamic-search-rules` routes";
    match (&req.method, uid) {
        (&Method::POST, None) => {
            let list = parse_list(&req.json()?)?;
            check_feature(admin, "Calling the `POST /dynamic-search-rules` route").await?;
            Ok(Resp::json(200, &list_rules(admin, &list)))
        }
        (&Method::DELETE, None) => {
            check_feature(admin, USING).await?;
            clear(admin).await
        }
        (&Method::GET, Some(uid)) => {
            let uid = path_uid(uid)?;
            check_feature(
                admin,
                "Calling the `GET /dynamic-search-rules/{:ruleUid}` route",
            )
            .await?;
            let rules = admin.lock().search_rules.clone();
            match rules.iter().find(|r| r.uid == uid) {
                Some(r) => Ok(Resp::json(200, &r.to_json())),
                None => Err(ApiError::core(
                    ErrorCode::DynamicSearchRuleNotFound,
                    format!("Dynamic search rule `{uid}` not found."),
                )),
            }
        }
        (&Method::PATCH, Some(uid)) => {
            let uid = path_uid(uid)?.to_string();
            let update = parse_update(&req.json()?)?;
            check_feature(admin, USING).await?;
            upsert(admin, uid, update).await
        }
        (&Method::DELETE, Some(uid)) => {
            let uid = path_uid(uid)?.to_string();
            check_feature(admin, USING).await?;
            delete(admin, uid).await
        }
        _ => Err(ApiError::core(ErrorCode::NotFound, "Not Found")),
    }
}

/// A rule uid is an index uid (Meilisearch's `RuleUid`): its path extractor refuses others
/// with a plain-text 400.
fn path_uid(uid: &str) -> Result<&str, ApiError> {
    if valid_uid(uid) {
        Ok(uid)
    } else {
        Err(ApiError::core(ErrorCode::InvalidIndexUid, format!(
            "`{uid}` is not a valid index uid. Index uid can be an integer or a string containing only alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 512 bytes."
        )))
    }
}

fn valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 512
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Meilisearch's `feature_not_enabled` unless a node has `dynamicSearchRules` on.
async fn check_feature(admin: &Admin, action: &str) -> Result<(), ApiError> {
    if crate::features::node_flag(admin, "dynamicSearchRules").await? {
        return Ok(());
    }
    Err(ApiError::core(
        ErrorCode::FeatureNotEnabled,
        format!("{action} requires enabling the `dynamic search rules` experimental feature. See https://github.com/orgs/meilisearch/discussions/884"),
    ))
}

fn missing_field(code: ErrorCode, key: &str, inside: &str) -> ApiError {
    ApiError::core(code, format!("Missing field `{key}` inside `{inside}`"))
}

fn top_level_object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    body.as_object().ok_or_else(|| {
        ApiError::core(
            ErrorCode::BadRequest,
            format!(
                "Invalid value type: expected an object, but found {}",
                describe_json_value(body)
            ),
        )
    })
}

/// The `POST /dynamic-search-rules` body.
#[derive(Debug, Default, PartialEq)]
struct ListRules {
    offset: usize,
    limit: usize,
    query: Option<String>,
    active: Option<bool>,
}

fn parse_list(body: &Value) -> Result<ListRules, ApiError> {
    let m = top_level_object(body)?;
    let mut out = ListRules {
        limit: 20,
        ..ListRules::default()
    };
    let uint = |k: &str, code: ErrorCode, v: &Value| -> Result<usize, ApiError> {
        v.as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| invalid_value_type(code, &format!(".{k}"), "a positive integer", v))
    };
    for (k, v) in m {
        match k.as_str() {
            "offset" => out.offset = uint(k, ErrorCode::InvalidDynamicSearchRuleOffset, v)?,
            "limit" => out.limit = uint(k, ErrorCode::InvalidDynamicSearchRuleLimit, v)?,
            "filter" => match v {
                Value::Null => {}
                Value::Object(f) => {
                    for (fk, fv) in f {
                        match (fk.as_str(), fv) {
                            (_, Value::Null) if fk == "query" || fk == "active" => {}
                            ("query", Value::String(s)) => out.query = Some(s.clone()),
                            ("query", other) => {
                                return Err(invalid_value_type(
                                    ErrorCode::InvalidDynamicSearchRuleFilterQuery,
                                    ".filter.query",
                                    "a string",
                                    other,
                                ))
                            }
                            ("active", Value::Bool(b)) => out.active = Some(*b),
                            ("active", other) => {
                                return Err(invalid_value_type(
                                    ErrorCode::InvalidDynamicSearchRuleFilterActive,
                                    ".filter.active",
                                    "a boolean",
                                    other,
                                ))
                            }
                            (other, _) => {
                                return Err(unknown_field(
                                    ErrorCode::InvalidDynamicSearchRuleFilter,
                                    other,
                                    Some(".filter"),
                                    &["query", "active"],
                                ))
                            }
                        }
                    }
                }
                other => {
                    return Err(invalid_value_type(
                        ErrorCode::InvalidDynamicSearchRuleFilter,
                        ".filter",
                        "an object",
                        other,
                    ))
                }
            },
            other => {
                return Err(unknown_field(
                    ErrorCode::BadRequest,
                    other,
                    None,
                    &["offset", "limit", "filter"],
                ))
            }
        }
    }
    Ok(out)
}

/// The page of rules: in milli's document order (internal id), filtered by `active` (as milli
/// reads its facet: see [`SearchRule::is_active`]) and by
/// the words of `query` (each must prefix a word of the rule's description or query words —
/// an approximation of Meilisearch's full-text search over those two fields).
fn list_rules(admin: &Admin, q: &ListRules) -> Value {
    let mut rules = admin.lock().search_rules.clone();
    rules.sort_by_key(|r| r.order);
    let known = active_rules_known(&rules);
    let words = q.query.as_deref().map(tokenize).unwrap_or_default();
    let matching: Vec<&SearchRule> = rules
        .iter()
        .filter(|r| {
            q.active.is_none_or(|a| match a {
                true => r.is_active(known),
                // milli's `false` facet: only rules stored with `active: false`.
                false => r.active_explicit && !r.active,
            })
        })
        .filter(|r| {
            let mut text = r.description.as_deref().map(tokenize).unwrap_or_default();
            text.extend(r.query_words.as_deref().map(tokenize).unwrap_or_default());
            words
                .iter()
                .all(|w| text.iter().any(|t| t.starts_with(w.as_str())))
        })
        .collect();
    let results: Vec<Value> = matching
        .iter()
        .skip(q.offset)
        .take(q.limit)
        .map(|r| r.to_json())
        .collect();
    json!({"results": results, "offset": q.offset, "limit": q.limit, "total": matching.len()})
}

/// A field of the `PATCH` body: absent, `null` (reset) or a value.
#[derive(Debug, Clone, PartialEq)]
enum Setting<T> {
    NotSet,
    Reset,
    Set(T),
}

/// Parsed conditions (`None` members were absent or `null`).
#[derive(Debug, Clone, PartialEq, Default)]
struct Conditions {
    time: Option<(Option<OffsetDateTime>, Option<OffsetDateTime>)>,
    query: Option<(Option<bool>, Option<String>)>,
}

/// The `PATCH /dynamic-search-rules/{uid}` body.
#[derive(Debug, Clone, PartialEq)]
struct Update {
    description: Setting<String>,
    precedence: Setting<u64>,
    active: Setting<bool>,
    conditions: Setting<Conditions>,
    actions: Setting<Vec<PinAction>>,
    /// The body as Meilisearch echoes it in the task's `details.rule`.
    echo: Map<String, Value>,
}

fn rfc3339(t: &OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("a parsed RFC 3339 date formats")
}

fn parse_update(body: &Value) -> Result<Update, ApiError> {
    let m = top_level_object(body)?;
    let mut u = Update {
        description: Setting::NotSet,
        precedence: Setting::NotSet,
        active: Setting::NotSet,
        conditions: Setting::NotSet,
        actions: Setting::NotSet,
        echo: Map::new(),
    };
    for k in m.keys() {
        if !RULE_FIELDS.contains(&k.as_str()) {
            return Err(unknown_field(ErrorCode::BadRequest, k, None, RULE_FIELDS));
        }
    }
    u.description = scalar(
        m,
        &mut u.echo,
        Scalar {
            field: "description",
            code: ErrorCode::InvalidDynamicSearchRuleDescription,
            expected: "a string",
            read: |v| v.as_str().map(str::to_string),
        },
    )?;
    u.precedence = scalar(
        m,
        &mut u.echo,
        Scalar {
            field: "precedence",
            code: ErrorCode::InvalidDynamicSearchRulePriority,
            expected: "a positive integer",
            read: Value::as_u64,
        },
    )?;
    u.active = scalar(
        m,
        &mut u.echo,
        Scalar {
            field: "active",
            code: ErrorCode::InvalidDynamicSearchRuleActive,
            expected: "a boolean",
            read: Value::as_bool,
        },
    )?;
    if let Some(v) = m.get("conditions") {
        if v.is_null() {
            u.conditions = Setting::Reset;
            u.echo.insert("conditions".into(), Value::Null);
        } else {
            let c = parse_conditions(v)?;
            u.echo.insert("conditions".into(), conditions_echo(&c));
            u.conditions = Setting::Set(c);
        }
    }
    if let Some(v) = m.get("actions") {
        if v.is_null() {
            u.actions = Setting::Reset;
            u.echo.insert("actions".into(), Value::Null);
        } else {
            let a = parse_actions(v)?;
            let tmp = SearchRule {
                actions: a.clone(),
                ..SearchRule::new("", 0)
            };
            u.echo.insert("actions".into(), tmp.actions_json());
            u.actions = Setting::Set(a);
        }
    }
    Ok(u)
}

/// One scalar field of a rule update: `null` resets it, a value `read` accepts sets it,
/// anything else is Meilisearch's type error for the field; echoed as sent.
struct Scalar<T> {
    field: &'static str,
    code: ErrorCode,
    expected: &'static str,
    read: fn(&Value) -> Option<T>,
}

fn scalar<T>(
    m: &Map<String, Value>,
    echo: &mut Map<String, Value>,
    f: Scalar<T>,
) -> Result<Setting<T>, ApiError> {
    let Some(v) = m.get(f.field) else {
        return Ok(Setting::NotSet);
    };
    let setting = match v {
        Value::Null => Setting::Reset,
        other => match (f.read)(other) {
            Some(t) => Setting::Set(t),
            None => {
                return Err(invalid_value_type(
                    f.code,
                    &format!(".{}", f.field),
                    f.expected,
                    other,
                ))
            }
        },
    };
    echo.insert(f.field.into(), v.clone());
    Ok(setting)
}

fn conditions_echo(c: &Conditions) -> Value {
    let mut r = SearchRule::new("", 0);
    apply_conditions(&mut r, c);
    r.conditions_json()
}

fn apply_conditions(r: &mut SearchRule, c: &Conditions) {
    r.has_time_condition = c.time.is_some();
    let (start, end) = c.time.unwrap_or_default();
    r.time_start = start.as_ref().map(rfc3339);
    r.time_end = end.as_ref().map(rfc3339);
    r.start_ns = start.map(OffsetDateTime::unix_timestamp_nanos);
    r.end_ns = end.map(OffsetDateTime::unix_timestamp_nanos);
    r.has_query_condition = c.query.is_some();
    let (is_empty, words) = c.query.clone().unwrap_or_default();
    r.query_is_empty = is_empty;
    r.query_words = words;
}

fn parse_conditions(v: &Value) -> Result<Conditions, ApiError> {
    const CODE: ErrorCode = ErrorCode::InvalidDynamicSearchRuleConditions;
    let Value::Object(m) = v else {
        return Err(invalid_value_type(CODE, ".conditions", "an object", v));
    };
    let mut c = Conditions::default();
    for (k, v) in m {
        match (k.as_str(), v) {
            (_, Value::Null) if k == "time" || k == "query" => {}
            ("time", Value::Object(t)) => {
                let date = |key: &str| -> Result<Option<OffsetDateTime>, ApiError> {
                    match t.get(key) {
                        None | Some(Value::Null) => Ok(None),
                        Some(Value::String(s)) => OffsetDateTime::parse(s, &Rfc3339)
                            .map(Some)
                            .map_err(|_| ApiError::core(CODE, format!(
                                "Invalid value at `.conditions.time.{key}`: `{s}` is not a valid date. It should follow the RFC 3339 format to represents a date or datetime in the future or specified as a null value. e.g. 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS'.\n"
                            ))),
                        Some(other) => Err(invalid_value_type(
                            CODE,
                            &format!(".conditions.time.{key}"),
                            "a string",
                            other,
                        )),
                    }
                };
                // Meilisearch ignores other members of `time`.
                c.time = Some((date("start")?, date("end")?));
            }
            ("time", other) => {
                return Err(invalid_value_type(
                    CODE,
                    ".conditions.time",
                    "an object",
                    other,
                ))
            }
            ("query", Value::Object(q)) => {
                let mut is_empty = None;
                let mut words = None;
                for (qk, qv) in q {
                    match (qk.as_str(), qv) {
                        (_, Value::Null) if qk == "isEmpty" || qk == "words" => {}
                        ("isEmpty", Value::Bool(b)) => is_empty = Some(*b),
                        ("isEmpty", other) => {
                            return Err(invalid_value_type(
                                CODE,
                                ".conditions.query.isEmpty",
                                "a boolean",
                                other,
                            ))
                        }
                        ("words", Value::String(s)) => words = Some(s.clone()),
                        ("words", other) => {
                            return Err(invalid_value_type(
                                CODE,
                                ".conditions.query.words",
                                "a string",
                                other,
                            ))
                        }
                        (other, _) => {
                            return Err(unknown_field(
                                CODE,
                                other,
                                Some(".conditions.query"),
                                &["isEmpty", "words"],
                            ))
                        }
                    }
                }
                c.query = Some((is_empty, words));
            }
            ("query", other) => {
                return Err(invalid_value_type(
                    CODE,
                    ".conditions.query",
                    "an object",
                    other,
                ))
            }
            (other, _) => {
                return Err(unknown_field(
                    CODE,
                    other,
                    Some(".conditions"),
                    &["time", "query"],
                ))
            }
        }
    }
    // Meilisearch's `validate_condition`: a `bad_request` after deserialisation.
    if let Some((Some(true), Some(_))) = &c.query {
        return Err(ApiError::core(
            ErrorCode::BadRequest,
            "Invalid value at `.conditions.query`: either `isEmpty` or `words` can be used, not both at once",
        ));
    }
    if let Some((Some(start), Some(end))) = &c.time {
        if start > end {
            return Err(ApiError::core(
                ErrorCode::BadRequest,
                format!(
                    "Invalid value at `.conditions.time`: `end` (`{end}`) should be later than `start` (`{start}`)"
                ),
            ));
        }
    }
    Ok(c)
}

fn parse_actions(v: &Value) -> Result<Vec<PinAction>, ApiError> {
    const CODE: ErrorCode = ErrorCode::InvalidDynamicSearchRuleActions;
    let Value::Array(items) = v else {
        return Err(invalid_value_type(CODE, ".actions", "an array", v));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!(".actions[{i}]");
        let Value::Object(m) = item else {
            return Err(invalid_value_type(CODE, &at, "an object", item));
        };
        for k in m.keys() {
            if k != "selector" && k != "action" {
                return Err(unknown_field(CODE, k, Some(&at), &["selector", "action"]));
            }
        }
        let selector = m
            .get("selector")
            .ok_or_else(|| missing_field(CODE, "selector", &at))?;
        let sat = format!("{at}.selector");
        let Value::Object(sel) = selector else {
            return Err(invalid_value_type(CODE, &sat, "an object", selector));
        };
        let mut index_uid = None;
        let mut id = None;
        for (k, v) in sel {
            match (k.as_str(), v) {
                ("indexUid", Value::Null) => {}
                ("indexUid", Value::String(s)) => {
                    if !valid_uid(s) {
                        return Err(ApiError::core(CODE, format!(
                            "Invalid value at `{sat}.indexUid`: `{s}` is not a valid index uid. Index uid can be an integer or a string containing only alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 512 bytes."
                        )));
                    }
                    index_uid = Some(s.clone());
                }
                ("indexUid", other) => {
                    return Err(invalid_value_type(
                        CODE,
                        &format!("{sat}.indexUid"),
                        "a string",
                        other,
                    ))
                }
                ("id", Value::String(s)) => id = Some(s.clone()),
                ("id", other) => {
                    return Err(invalid_value_type(
                        CODE,
                        &format!("{sat}.id"),
                        "a string",
                        other,
                    ))
                }
                (other, _) => {
                    return Err(unknown_field(CODE, other, Some(&sat), &["indexUid", "id"]))
                }
            }
        }
        let id = id.ok_or_else(|| missing_field(CODE, "id", &sat))?;
        let action = m
            .get("action")
            .ok_or_else(|| missing_field(CODE, "action", &at))?;
        let aat = format!("{at}.action");
        let Value::Object(act) = action else {
            return Err(invalid_value_type(CODE, &aat, "an object", action));
        };
        match act.get("type") {
            Some(Value::String(t)) if t == "pin" => {}
            Some(_) => {
                return Err(ApiError::core(
                    CODE,
                    format!("Invalid value at `{aat}`: Incorrect tag value"),
                ))
            }
            None => return Err(missing_field(CODE, "type", &aat)),
        }
        for k in act.keys() {
            if k != "type" && k != "position" {
                return Err(unknown_field(CODE, k, Some(&aat), &["position"]));
            }
        }
        let position = match act.get("position") {
            None => return Err(missing_field(CODE, "position", &aat)),
            Some(Value::Number(n)) if n.as_u64().is_some_and(|p| p <= u64::from(u32::MAX)) => {
                n.as_u64().unwrap_or_default() as u32
            }
            Some(other) => {
                return Err(invalid_value_type(
                    CODE,
                    &format!("{aat}.position"),
                    "a positive integer",
                    other,
                ))
            }
        };
        out.push(PinAction {
            index_uid,
            id,
            position,
        });
    }
    Ok(out)
}

/// The rule `update` makes of `existing` (or of a new rule with internal id `order`).
fn updated(existing: Option<&SearchRule>, uid: &str, order: u32, u: &Update) -> SearchRule {
    let mut r = existing
        .cloned()
        .unwrap_or_else(|| SearchRule::new(uid, order));
    match &u.description {
        Setting::NotSet => {}
        Setting::Reset => r.description = None,
        Setting::Set(d) => r.description = Some(d.clone()),
    }
    match &u.precedence {
        Setting::NotSet => {}
        Setting::Reset => r.precedence = None,
        Setting::Set(p) => r.precedence = Some(*p),
    }
    match &u.active {
        Setting::NotSet => {}
        Setting::Reset => {
            r.active = true;
            r.active_explicit = false;
        }
        Setting::Set(a) => {
            r.active = *a;
            r.active_explicit = true;
        }
    }
    match &u.conditions {
        Setting::NotSet => {}
        Setting::Reset => apply_conditions(&mut r, &Conditions::default()),
        Setting::Set(c) => apply_conditions(&mut r, c),
    }
    match &u.actions {
        Setting::NotSet => {}
        Setting::Reset => r.actions.clear(),
        Setting::Set(a) => r.actions = a.clone(),
    }
    r
}

/// milli's next internal document id: the smallest not in use.
fn free_order(rules: &[SearchRule]) -> u32 {
    let mut used: Vec<u32> = rules.iter().map(|r| r.order).collect();
    used.sort_unstable();
    let mut next = 0;
    for o in used {
        if o == next {
            next += 1;
        } else if o > next {
            break;
        }
    }
    next
}

/// Replaces the admin's rules with `rules` and publishes them to the data planes.
async fn install(admin: &Admin, mut rules: Vec<SearchRule>) -> Result<(), ApiError> {
    precedence_order(&mut rules);
    admin.lock().search_rules = rules;
    admin
        .publish()
        .await
        .map_err(|e| ApiError::core(ErrorCode::Internal, e.to_string()))?;
    Ok(())
}

fn store_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::core(
        ErrorCode::Internal,
        format!("storing the rules failed: {e}"),
    )
}

async fn upsert(admin: &Arc<Admin>, uid: String, update: Update) -> Result<Resp, ApiError> {
    let details = json!({"rule": Value::Object(update.echo.clone()), "updatedRules": 1});
    let guard = admin.lock_scopes(vec![LOCK_SCOPE.into()]).await;
    spawn_task(
        admin,
        guard,
        Some(TASK_INDEX),
        TaskType::DsrUpdate,
        details.clone(),
        move |admin| async move {
            let mut rules = admin.lock().search_rules.clone();
            let existing = rules.iter().position(|r| r.uid == uid);
            let rule = updated(
                existing.map(|i| &rules[i]),
                &uid,
                free_order(&rules),
                &update,
            );
            let bytes = serde_json::to_vec(&rule).expect("a rule serialises");
            admin
                .store
                .put_meta(&format!("{PREFIX}{uid}"), &bytes)
                .await
                .map_err(store_error)?;
            match existing {
                Some(i) => rules[i] = rule,
                None => rules.push(rule),
            }
            install(&admin, rules).await?;
            Ok(details)
        },
    )
    .await
}

async fn delete(admin: &Arc<Admin>, uid: String) -> Result<Resp, ApiError> {
    let details = json!({"updatedRules": 1});
    let guard = admin.lock_scopes(vec![LOCK_SCOPE.into()]).await;
    spawn_task(
        admin,
        guard,
        Some(TASK_INDEX),
        TaskType::DsrUpdate,
        details.clone(),
        move |admin| async move {
            admin
                .store
                .delete_meta(&format!("{PREFIX}{uid}"))
                .await
                .map_err(store_error)?;
            let mut rules = admin.lock().search_rules.clone();
            rules.retain(|r| r.uid != uid);
            install(&admin, rules).await?;
            Ok(details)
        },
    )
    .await
}

async fn clear(admin: &Arc<Admin>) -> Result<Resp, ApiError> {
    let guard = admin.lock_scopes(vec![LOCK_SCOPE.into()]).await;
    spawn_task(
        admin,
        guard,
        Some(TASK_INDEX),
        TaskType::DsrClear,
        json!({"deletedDocuments": null}),
        move |admin| async move {
            let stored = admin.store.list_meta(PREFIX).await.map_err(store_error)?;
            for (key, _) in &stored {
                admin.store.delete_meta(key).await.map_err(store_error)?;
            }
            install(&admin, Vec::new()).await?;
            Ok(json!({"deletedDocuments": stored.len()}))
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(r: Result<impl std::fmt::Debug, ApiError>) -> (String, String) {
        match r.unwrap_err() {
            ApiError::Code { code, message } => (code.code().to_string(), message),
            other => panic!("{other:?}"),
        }
    }

    /// Answers of a real Meilisearch 1.50.0 to the same bodies.
    #[test]
    fn refusals_match_meilisearch() {
        let cases: &[(&str, &str, &str)] = &[
            ("[]", "bad_request", "Invalid value type: expected an object, but found an array: `[]`"),
            (r#"{"description":1}"#, "invalid_dynamic_search_rule_description", "Invalid value type at `.description`: expected a string, but found a positive integer: `1`"),
            (r#"{"precedence":-1}"#, "invalid_dynamic_search_rule_priority", "Invalid value type at `.precedence`: expected a positive integer, but found a negative integer: `-1`"),
            (r#"{"foo":1}"#, "bad_request", "Unknown field `foo`: expected one of `description`, `precedence`, `active`, `conditions`, `actions`"),
            (r#"{"conditions":{"foo":1}}"#, "invalid_dynamic_search_rule_conditions", "Unknown field `foo` inside `.conditions`: expected one of `time`, `query`"),
            (r#"{"conditions":{"query":{"isEmpty":true,"words":"a"}},"actions":[]}"#, "bad_request", "Invalid value at `.conditions.query`: either `isEmpty` or `words` can be used, not both at once"),
            (r#"{"conditions":{"time":{"start":"2021-01-01T00:00:00Z","end":"2020-01-01T00:00:00Z"}},"actions":[]}"#, "bad_request", "Invalid value at `.conditions.time`: `end` (`2020-01-01 0:00:00.0 +00:00:00`) should be later than `start` (`2021-01-01 0:00:00.0 +00:00:00`)"),
            (r#"{"conditions":{"time":{"start":"yesterday"}}}"#, "invalid_dynamic_search_rule_conditions", "Invalid value at `.conditions.time.start`: `yesterday` is not a valid date. It should follow the RFC 3339 format to represents a date or datetime in the future or specified as a null value. e.g. 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS'.\n"),
            (r#"{"actions":[{}]}"#, "invalid_dynamic_search_rule_actions", "Missing field `selector` inside `.actions[0]`"),
            (r#"{"actions":[{"selector":{"id":1},"action":{"type":"pin","position":1}}]}"#, "invalid_dynamic_search_rule_actions", "Invalid value type at `.actions[0].selector.id`: expected a string, but found a positive integer: `1`"),
            (r#"{"actions":[{"selector":{"id":"1"},"action":{"type":"boost","position":1}}]}"#, "invalid_dynamic_search_rule_actions", "Invalid value at `.actions[0].action`: Incorrect tag value"),
            (r#"{"actions":[{"selector":{"id":"1"},"action":{"type":"pin"}}]}"#, "invalid_dynamic_search_rule_actions", "Missing field `position` inside `.actions[0].action`"),
            (r#"{"actions":[{"selector":{"id":"1"},"action":{"type":"pin","position":1,"x":1}}]}"#, "invalid_dynamic_search_rule_actions", "Unknown field `x` inside `.actions[0].action`: expected one of `position`"),
        ];
        for (body, code, message) in cases {
            let v: Value = serde_json::from_str(body).unwrap();
            assert_eq!(
                err(parse_update(&v)),
                (code.to_string(), message.to_string()),
                "{body}"
            );
        }
        assert_eq!(
            err(parse_list(&json!({"limit": "a"}))),
            (
                "invalid_dynamic_search_rule_limit".into(),
                "Invalid value type at `.limit`: expected a positive integer, but found a string: `\"a\"`".into()
            )
        );
        assert_eq!(
            err(parse_list(&json!({"filter": {"active": 1}}))).0,
            "invalid_dynamic_search_rule_filter_active"
        );
    }

    #[test]
    fn echo_and_update() {
        let v = json!({"conditions": {"time": {"start": "2020-01-01T01:00:00.500+01:00"}}, "actions": []});
        let u = parse_update(&v).unwrap();
        assert_eq!(
            Value::Object(u.echo.clone()),
            json!({"conditions": {"time": {"start": "2020-01-01T01:00:00.5+01:00"}}, "actions": []})
        );
        let r = updated(None, "v", 3, &u);
        assert_eq!(r.order, 3);
        assert_eq!(
            r.to_json(),
            json!({"uid": "v", "active": true, "conditions": {"time": {"start": "2020-01-01T01:00:00.5+01:00"}}, "actions": []})
        );
        let off = parse_update(&json!({"active": false, "description": "d"})).unwrap();
        let r2 = updated(Some(&r), "v", 9, &off);
        assert_eq!((r2.active, r2.order), (false, 3));
        assert_eq!(r2.description.as_deref(), Some("d"));
        assert_eq!(r2.time_start, r.time_start);
    }

    #[test]
    fn free_order_is_the_smallest_unused() {
        let rules: Vec<SearchRule> = [0, 1, 3].iter().map(|&o| SearchRule::new("x", o)).collect();
        assert_eq!(free_order(&rules), 2);
        assert_eq!(free_order(&[]), 0);
    }
}
