//! Webhooks for Miroir's own tasks (decision 028).
//!
//! Clients only ever see Miroir's task uids, so a webhook set on the nodes would be called with
//! node uids, once per node. Miroir keeps the webhooks itself and calls them as one
//! Meilisearch does: a `POST` of the finished tasks as gzip-compressed NDJSON
//! (`Content-Type: application/x-ndjson`, `Content-Encoding: gzip`) with the webhook's own
//! headers.
//!
//! - **CRUD** (`/webhooks[/{uuid}]`) answers as Meilisearch 1.50 (checked against a real
//!   build): 201 with the webhook on creation, `isEditable`, the `Authorization` header
//!   redacted on every answer, at most 20 webhooks, headers merged on `PATCH` (`null` removes
//!   one, `headers: null` removes all).
//! - **Persistence**: each webhook is a store meta record under `webhooks/hook/`; each has a
//!   delivery cursor under `webhooks/cursor/` (the last Miroir task uid delivered to it).
//! - **Delivery** ([`deliver`]): every finished task is sent once per webhook, in uid order:
//!   the tasks after the cursor up to the first one still running, then the cursor moves past
//!   them. A refused or failed call is retried with exponential backoff (1 s to 60 s) and the
//!   cursor stays, so a restart of the admin resumes where delivery stopped. A call that
//!   succeeded but whose cursor write was lost (a crash between the two) is sent again:
//!   delivery is at least once, and exactly once otherwise.
//! - A webhook starts with the tasks enqueued after its creation (its cursor starts at the
//!   newest task uid then).
//! - Only one admin delivers: the loop asks its `is_leader` hook before each round.

use crate::http_types::{ApiError, Req, Resp};
use crate::state::Admin;
use crate::store::{TaskQuery, TaskRecord};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Method;
use miroir_core::error::ErrorCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

const HOOK_PREFIX: &str = "webhooks/hook/";
const CURSOR_PREFIX: &str = "webhooks/cursor/";
/// Meilisearch's limits.
const MAX_WEBHOOKS: usize = 20;
const MAX_HEADERS: usize = 200;
/// Tasks per call: a backlog goes out in several calls.
const TASKS_PER_CALL: u32 = 100;
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The admin lock taken by webhook changes (not a valid index uid, so no index shares it).
const LOCK_SCOPE: &str = "/webhooks";

/// A webhook as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub url: String,
    pub headers: BTreeMap<String, String>,
}

/// Meilisearch's `hide_secret` from `offset` on: a short secret is hidden entirely, a longer
/// one keeps its first 2, 3 or 5 characters.
fn hide_secret(secret: &str, offset: usize) -> String {
    let Some(len) = secret.len().checked_sub(offset) else {
        return secret.to_string();
    };
    let (keep, tail) = match len {
        0..=9 => (0, "XXX..."),
        10..=19 => (2, "XXXX..."),
        20..=29 => (3, "XXXXX..."),
        _ => (5, "XXXXXX..."),
    };
    let mut cut = offset + keep;
    while !secret.is_char_boundary(cut) {
        cut += 1;
    }
    format!("{}{tail}", &secret[..cut])
}

/// The uuid of the webhook set in the configuration (Meilisearch's command-line webhook).
pub const CONFIGURED: &str = "00000000-0000-0000-0000-000000000000";

/// The webhook of the configuration's `task_webhook`, if set.
fn configured(admin: &Admin) -> Option<Webhook> {
    let c = &admin.config.task_webhook;
    let url = c.url.clone()?;
    let headers = c
        .authorization_header
        .iter()
        .map(|h| ("Authorization".to_string(), h.clone()))
        .collect();
    Some(Webhook { url, headers })
}

fn immutable(uuid: &str) -> ApiError {
    bad(ErrorCode::ImmutableWebhook, format!("Webhook `{uuid}` is immutable. The webhook defined from the command line cannot be modified using the API."))
}

/// The client's view: `uuid`, `isEditable`, `url`, headers with `Authorization` redacted.
fn view(uuid: &str, w: &Webhook) -> Value {
    let headers: Map<String, Value> = w
        .headers
        .iter()
        .map(|(k, v)| {
            let shown = if !k.eq_ignore_ascii_case("authorization") {
                v.clone()
            } else if v.starts_with("Bearer ") {
                hide_secret(v, "Bearer ".len())
            } else {
                hide_secret(v, 0)
            };
            (k.clone(), Value::String(shown))
        })
        .collect();
    json!({"uuid": uuid, "isEditable": uuid != CONFIGURED, "url": w.url, "headers": headers})
}

fn bad(code: ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError::core(code, message)
}

fn not_found(uuid: &str) -> ApiError {
    bad(
        ErrorCode::WebhookNotFound,
        format!("Webhook `{uuid}` not found."),
    )
}

/// Parses a uuid from the path as Meilisearch does (`Invalid UUID: …`).
fn parse_uuid(s: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(s)
        .map(|u| u.to_string())
        .map_err(|e| bad(ErrorCode::InvalidWebhookUuid, format!("Invalid UUID: {e}")))
}

/// Headers of a `POST`/`PATCH` body (a `None` value removes the header).
type HeaderPatch = Vec<(String, Option<String>)>;

/// A `POST`/`PATCH` body: `url` and `headers` (`Some(None)` = sent as `null`).
struct Settings {
    url: Option<Option<String>>,
    headers: Option<Option<HeaderPatch>>,
}

fn parse_settings(req: &Req) -> Result<Settings, ApiError> {
    let body = req.json()?;
    let Value::Object(m) = body else {
        return Err(bad(
            ErrorCode::BadRequest,
            format!(
                "Invalid value type: expected an object, but found {}: `{body}`",
                crate::http_types::json_kind(&body)
            ),
        ));
    };
    let mut s = Settings {
        url: None,
        headers: None,
    };
    for (k, v) in m {
        match (k.as_str(), v) {
            ("url", Value::Null) => s.url = Some(None),
            ("url", Value::String(u)) => s.url = Some(Some(u)),
            ("headers", Value::Null) => s.headers = Some(None),
            ("headers", Value::Object(h)) => {
                let mut list = Vec::new();
                for (name, value) in h {
                    match value {
                        Value::Null => list.push((name, None)),
                        Value::String(v) => list.push((name, Some(v))),
                        other => {
                            return Err(bad(
                                ErrorCode::InvalidWebhookHeaders,
                                format!("Invalid value type at `.headers.{name}`: expected a string, but found {}: `{other}`", crate::http_types::json_kind(&other)),
                            ))
                        }
                    }
                }
                s.headers = Some(Some(list));
            }
            ("url", other) => {
                return Err(bad(
                    ErrorCode::InvalidWebhookUrl,
                    format!(
                        "Invalid value type at `.url`: expected a string, but found {}: `{other}`",
                        crate::http_types::json_kind(&other)
                    ),
                ))
            }
            ("headers", other) => {
                return Err(bad(
                    ErrorCode::InvalidWebhookHeaders,
                    format!(
                    "Invalid value type at `.headers`: expected an object, but found {}: `{other}`",
                    crate::http_types::json_kind(&other)
                ),
                ))
            }
            (other, _) => {
                return Err(bad(
                    ErrorCode::BadRequest,
                    format!("Unknown field `{other}`: expected one of `url`, `headers`"),
                ))
            }
        }
    }
    Ok(s)
}

/// Meilisearch's `check_changed`: a URL, at most 200 headers, valid header names and values,
/// an absolute URL.
fn check(uuid: &str, w: &Webhook) -> Result<(), ApiError> {
    if w.url.is_empty() {
        return Err(missing_url(uuid));
    }
    if w.headers.len() > MAX_HEADERS {
        return Err(too_many_headers(uuid));
    }
    for (name, value) in &w.headers {
        if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(bad(
                ErrorCode::InvalidWebhookHeaders,
                format!("Invalid header name `{name}`: invalid HTTP header name"),
            ));
        }
        if hyper::header::HeaderValue::from_str(value).is_err() {
            return Err(bad(
                ErrorCode::InvalidWebhookHeaders,
                format!("Invalid header value `{name}`: failed to parse header value"),
            ));
        }
    }
    let absolute = w.url.split_once(':').is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    if !absolute {
        return Err(bad(
            ErrorCode::InvalidWebhookUrl,
            format!("Invalid URL `{}`: relative URL without a base", w.url),
        ));
    }
    Ok(())
}

fn missing_url(uuid: &str) -> ApiError {
    bad(
        ErrorCode::InvalidWebhookUrl,
        format!("The URL for the webhook `{uuid}` is missing."),
    )
}

fn too_many_headers(uuid: &str) -> ApiError {
    bad(ErrorCode::InvalidWebhookHeaders, format!("Too many headers for the webhook `{uuid}`. Please limit the number of headers to 200. Hint: To remove an already defined header set its value to `null`"))
}

/// Every webhook (the configured one, then the stored ones), by uuid (Meilisearch lists them
/// in uuid order).
pub async fn all(admin: &Admin) -> Result<BTreeMap<String, Webhook>, ApiError> {
    let mut out = stored(admin).await?;
    if let Some(w) = configured(admin) {
        out.insert(CONFIGURED.to_string(), w);
    }
    Ok(out)
}

/// The webhooks created through the API.
async fn stored(admin: &Admin) -> Result<BTreeMap<String, Webhook>, ApiError> {
    let mut out = BTreeMap::new();
    for (key, bytes) in admin.store.list_meta(HOOK_PREFIX).await? {
        let uuid = key.trim_start_matches(HOOK_PREFIX).to_string();
        match serde_json::from_slice(&bytes) {
            Ok(w) => {
                out.insert(uuid, w);
            }
            Err(e) => tracing::error!(uuid, error = %e, "unreadable webhook record"),
        }
    }
    Ok(out)
}

async fn get_one(admin: &Admin, uuid: &str) -> Result<Webhook, ApiError> {
    if uuid == CONFIGURED {
        return configured(admin).ok_or_else(|| not_found(uuid));
    }
    let bytes = admin
        .store
        .get_meta(&format!("{HOOK_PREFIX}{uuid}"))
        .await?
        .ok_or_else(|| not_found(uuid))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::internal(format!("unreadable webhook `{uuid}`: {e}")))
}

async fn put(admin: &Admin, uuid: &str, w: &Webhook) -> Result<(), ApiError> {
    let bytes = serde_json::to_vec(w).expect("a webhook serialises");
    admin
        .store
        .put_meta(&format!("{HOOK_PREFIX}{uuid}"), &bytes)
        .await?;
    Ok(())
}

/// The newest task uid (0 when there is none): a new webhook's starting cursor.
async fn newest_task(admin: &Admin) -> Result<u64, ApiError> {
    let page = admin
        .store
        .list_tasks(&TaskQuery {
            limit: 1,
            ..Default::default()
        })
        .await?;
    Ok(page.tasks.first().map_or(0, |t| u64::from(t.uid.0) + 1))
}

/// `/webhooks[/{uuid}]` (already authenticated by the data plane).
pub async fn route(admin: &Admin, req: &Req, uuid: Option<&str>) -> Result<Resp, ApiError> {
    match (&req.method, uuid) {
        (&Method::GET, None) => {
            let results: Vec<Value> = all(admin).await?.iter().map(|(u, w)| view(u, w)).collect();
            Ok(Resp::json(200, &json!({"results": results})))
        }
        (&Method::POST, None) => {
            let uuid = uuid::Uuid::new_v4().to_string();
            let s = parse_settings(req)?;
            if matches!(&s.headers, Some(Some(h)) if h.len() > MAX_HEADERS) {
                return Err(too_many_headers(&uuid));
            }
            let _guard = admin.lock_scopes(vec![LOCK_SCOPE.to_string()]).await;
            if stored(admin).await?.len() >= MAX_WEBHOOKS {
                return Err(bad(ErrorCode::InvalidWebhooks, "Defining too many webhooks would crush the server. Please limit the number of webhooks to 20. You may use a third-party proxy server to dispatch events to more than 20 endpoints."));
            }
            let url = s.url.flatten().ok_or_else(|| missing_url(&uuid))?;
            let headers = s
                .headers
                .flatten()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect();
            let w = Webhook { url, headers };
            check(&uuid, &w)?;
            // The cursor first: a webhook never sees the tasks finished before it existed.
            let start = newest_task(admin).await?;
            admin
                .store
                .put_meta(
                    &format!("{CURSOR_PREFIX}{uuid}"),
                    start.to_string().as_bytes(),
                )
                .await?;
            put(admin, &uuid, &w).await?;
            Ok(Resp::json(201, &view(&uuid, &w)))
        }
        (&Method::GET, Some(raw)) => {
            let uuid = parse_uuid(raw)?;
            let w = get_one(admin, &uuid).await?;
            Ok(Resp::json(200, &view(&uuid, &w)))
        }
        (&Method::PATCH, Some(raw)) => {
            let uuid = parse_uuid(raw)?;
            let s = parse_settings(req)?;
            let _guard = admin.lock_scopes(vec![LOCK_SCOPE.to_string()]).await;
            let mut w = get_one(admin, &uuid).await?;
            if uuid == CONFIGURED {
                return Err(immutable(&uuid));
            }
            match s.url {
                Some(Some(u)) => w.url = u,
                Some(None) => return Err(missing_url(&uuid)),
                None => {}
            }
            match s.headers {
                Some(Some(h)) => {
                    for (k, v) in h {
                        match v {
                            Some(v) => {
                                w.headers.insert(k, v);
                            }
                            None => {
                                w.headers.remove(&k);
                            }
                        }
                    }
                }
                Some(None) => w.headers.clear(),
                None => {}
            }
            check(&uuid, &w)?;
            put(admin, &uuid, &w).await?;
            Ok(Resp::json(200, &view(&uuid, &w)))
        }
        (&Method::DELETE, Some(raw)) => {
            let uuid = parse_uuid(raw)?;
            if uuid == CONFIGURED && configured(admin).is_some() {
                return Err(immutable(&uuid));
            }
            let _guard = admin.lock_scopes(vec![LOCK_SCOPE.to_string()]).await;
            if !admin
                .store
                .delete_meta(&format!("{HOOK_PREFIX}{uuid}"))
                .await?
            {
                return Err(not_found(&uuid));
            }
            admin
                .store
                .delete_meta(&format!("{CURSOR_PREFIX}{uuid}"))
                .await?;
            Ok(Resp::empty(204))
        }
        _ => Err(ApiError::core(ErrorCode::NotFound, "Not Found")),
    }
}

/// The finished tasks to send after `cursor` (uids `>= cursor`), oldest first, up to the
/// first task still running.
async fn due_tasks(admin: &Admin, cursor: u64) -> Result<Vec<TaskRecord>, ApiError> {
    let page = admin
        .store
        .list_tasks(&TaskQuery {
            from: Some(miroir_core::TaskUid(cursor.min(u64::from(u32::MAX)) as u32)),
            limit: TASKS_PER_CALL,
            reverse: true,
            ..Default::default()
        })
        .await?;
    Ok(page
        .tasks
        .into_iter()
        .filter(|t| u64::from(t.uid.0) >= cursor)
        .take_while(|t| t.state.status.is_terminal())
        .collect())
}

/// The NDJSON payload, gzip-compressed.
fn payload(views: &[Value]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for v in views {
        serde_json::to_writer(&mut gz, v)?;
        gz.write_all(b"\n")?;
    }
    gz.finish()
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

/// One call; `Ok` when the webhook answered 2xx.
async fn call(client: &HttpClient, w: &Webhook, body: Vec<u8>) -> Result<(), String> {
    let mut b = hyper::Request::builder()
        .method(Method::POST)
        .uri(w.url.as_str())
        .header("content-type", "application/x-ndjson")
        .header("content-encoding", "gzip");
    for (k, v) in &w.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let req = b
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(CALL_TIMEOUT, client.request(req)).await {
        Ok(Ok(resp)) if resp.status().is_success() => Ok(()),
        Ok(Ok(resp)) => Err(format!("answered {}", resp.status())),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {CALL_TIMEOUT:?}")),
    }
}

/// Per-webhook retry state (in memory: after a restart, a failing webhook is retried at once).
#[derive(Default)]
struct Backoff {
    failures: u32,
    next: Option<tokio::time::Instant>,
}

impl Backoff {
    fn due(&self) -> bool {
        self.next.is_none_or(|t| tokio::time::Instant::now() >= t)
    }
    fn failed(&mut self) {
        self.failures = self.failures.saturating_add(1);
        let secs = 1u64 << self.failures.saturating_sub(1).min(6);
        self.next = Some(tokio::time::Instant::now() + Duration::from_secs(secs.min(60)));
    }
}

/// One delivery round for one webhook: sends what is due; returns whether it sent anything.
async fn deliver_one(
    admin: &Admin,
    client: &HttpClient,
    uuid: &str,
    w: &Webhook,
) -> Result<bool, String> {
    let key = format!("{CURSOR_PREFIX}{uuid}");
    let cursor = match admin
        .store
        .get_meta(&key)
        .await
        .map_err(|e| e.to_string())?
    {
        Some(b) => String::from_utf8_lossy(&b).parse::<u64>().unwrap_or(0),
        // Set at creation (API webhooks) or by `init` (the configured one); a record lost
        // meanwhile restarts from the tasks enqueued from now on.
        None => {
            let start = newest_task(admin).await.map_err(|e| e.body().to_string())?;
            admin
                .store
                .put_meta(&key, start.to_string().as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            return Ok(false);
        }
    };
    let due = due_tasks(admin, cursor)
        .await
        .map_err(|e| e.body().to_string())?;
    let Some(last) = due.last().map(|t| u64::from(t.uid.0)) else {
        return Ok(false);
    };
    let mut views = Vec::with_capacity(due.len());
    for t in &due {
        views.push(
            crate::tasks::view(admin, t)
                .await
                .map_err(|e| e.body().to_string())?,
        );
    }
    let body = payload(&views).map_err(|e| e.to_string())?;
    call(client, w, body).await?;
    admin
        .store
        .put_meta(&key, (last + 1).to_string().as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    Ok(true)
}

/// Before the admin serves: the configured webhook's cursor, on its first start, points past
/// the tasks that exist (it gets the tasks enqueued from now on).
pub async fn init(admin: &Admin) -> Result<(), ApiError> {
    if configured(admin).is_none() {
        return Ok(());
    }
    let key = format!("{CURSOR_PREFIX}{CONFIGURED}");
    if admin.store.get_meta(&key).await?.is_none() {
        let start = newest_task(admin).await?;
        admin
            .store
            .put_meta(&key, start.to_string().as_bytes())
            .await?;
    }
    Ok(())
}

/// The delivery loop (module docs). `is_leader` gates each round, so that only one admin of
/// several sharing a store delivers. Runs until the process exits.
pub async fn deliver(admin: Arc<Admin>, is_leader: impl Fn() -> bool) {
    let client: HttpClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let mut backoff: HashMap<String, Backoff> = HashMap::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(200));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if !is_leader() {
            continue;
        }
        let hooks = match all(&admin).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e.body(), "reading webhooks failed");
                continue;
            }
        };
        backoff.retain(|u, _| hooks.contains_key(u));
        for (uuid, w) in &hooks {
            let b = backoff.entry(uuid.clone()).or_default();
            if !b.due() {
                continue;
            }
            // A backlog is sent call after call within one round.
            loop {
                match deliver_one(&admin, &client, uuid, w).await {
                    Ok(true) => *b = Backoff::default(),
                    Ok(false) => break,
                    Err(e) => {
                        b.failed();
                        tracing::warn!(webhook = %uuid, url = %w.url, error = %e, failures = b.failures, "webhook call failed; retrying later");
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_is_redacted_as_meilisearch() {
        let w = Webhook {
            url: "http://x".into(),
            headers: [
                (
                    "authorization".to_string(),
                    "Bearer secretsecret123".to_string(),
                ),
                ("x-a".to_string(), "b".to_string()),
            ]
            .into_iter()
            .collect(),
        };
        let v = view("u", &w);
        assert_eq!(v["headers"]["authorization"], "Bearer seXXXX...");
        assert_eq!(v["headers"]["x-a"], "b");
        assert_eq!(hide_secret("abc", 0), "XXX...");
        assert_eq!(hide_secret("Bearer abc", 7), "Bearer XXX...");
    }

    #[test]
    fn urls_must_be_absolute() {
        let w = |url: &str| Webhook {
            url: url.into(),
            headers: BTreeMap::new(),
        };
        assert!(check("u", &w("http://127.0.0.1:9/hook")).is_ok());
        let e = check("u", &w("not a url")).unwrap_err();
        assert_eq!(
            e.body()["message"],
            "Invalid URL `not a url`: relative URL without a base"
        );
        assert_eq!(e.body()["code"], "invalid_webhook_url");
        assert_eq!(
            check("u", &w("")).unwrap_err().body()["message"],
            "The URL for the webhook `u` is missing."
        );
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let mut b = Backoff::default();
        assert!(b.due());
        for _ in 0..10 {
            b.failed();
        }
        assert!(!b.due());
        assert_eq!(b.failures, 10);
    }
}
