//! HTTP front: hyper connections, routing by path segments, auth, fault injection and the
//! handlers that translate Meilisearch's REST API onto [`Node`].
//!
//! Hyper is used directly (no framework) so the node can do what faults need: hang a request
//! forever, or drop the connection without an answer (the service returns an error and hyper
//! closes the socket). Unknown paths answer an empty 404 and known paths with the wrong method
//! an empty 405 — what Meilisearch's actix-web router does (assumption, see docs/testing.md).

use crate::documents;
use crate::error::{unknown_field, ApiError, Result};
use crate::faults::{Action, FaultSet, Faults};
use crate::filter;
use crate::index::Index;
use crate::json::{Obj, Out};
use crate::keys::{self, Key};
use crate::node::{check_uid, Node, Payload};
use crate::search::{self, Query};
use crate::settings;
use crate::tasks::{self, Task};
use crate::tenant::{self, merge_filter, Tenant};
use crate::timefmt;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The Meilisearch version the test node's behaviour was compared against.
pub const PKG_VERSION: &str = "1.50.0";

/// `POST …/documents/fetch` body fields (and `GET …/documents` parameters), Meilisearch 1.50.
const FETCH_FIELDS: &[&str] = &[
    "offset",
    "limit",
    "fields",
    "retrieveVectors",
    "ids",
    "filter",
    "sort",
    "useNetwork",
];

pub struct App {
    pub node: Arc<Node>,
    pub faults: Option<Mutex<Faults>>,
    pub canned: Option<Bytes>,
}

/// Returned to hyper to close the connection without answering (the `drop` fault).
#[derive(Debug)]
pub struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DropConnection {}

type Resp = Response<Full<Bytes>>;

fn resp(status: u16, body: Vec<u8>) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn empty(status: u16) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

fn ok(v: Out) -> Result<Resp> {
    Ok(resp(200, v.to_bytes()))
}

fn err_resp(e: &ApiError) -> Resp {
    resp(e.status, e.body())
}

/// One parsed request.
pub struct Req {
    pub method: String,
    pub segs: Vec<String>,
    pub raw_query: String,
    pub params: Vec<(String, String)>,
    pub content_type: Option<String>,
    pub auth: Option<String>,
    pub body: Bytes,
}

/// Decodes `%XX` escapes (invalid ones stay literal, invalid UTF-8 is replaced), as
/// Meilisearch's actix-web does; `+` is a space in a query component, a plus in a path.
fn pct_decode(s: &str, plus_is_space: bool) -> String {
    let spaced;
    let s = if plus_is_space {
        spaced = s.replace('+', " ");
        &spaced
    } else {
        s
    };
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// A query string's decoded `(key, value)` pairs, as actix-web's `Query` (`form_urlencoded`).
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

fn param<'a>(r: &'a Req, k: &str) -> Option<&'a str> {
    r.params
        .iter()
        .rev()
        .find(|(a, _)| a == k)
        .map(|(_, v)| v.as_str())
}

fn bool_param(r: &Req, k: &str, code: &str) -> Result<bool> {
    match param(r, k) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(v) => Err(ApiError::bad(code, format!("Invalid value in parameter `{k}`: could not parse `{v}` as a boolean, expected either `true` or `false`"))),
    }
}

fn usize_param(r: &Req, k: &str, code: &str, default: usize) -> Result<usize> {
    match param(r, k) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            ApiError::bad(
                code,
                format!(
                    "Invalid value in parameter `{k}`: could not parse `{v}` as a positive integer"
                ),
            )
        }),
    }
}

/// Decodes `Content-Encoding` (gzip, deflate) bodies.
fn decode_body(encoding: Option<&str>, body: Bytes) -> Result<Bytes> {
    let mut out = Vec::new();
    let res = match encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
        None | Some("identity") | Some("") => return Ok(body),
        Some("gzip") => flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out),
        Some("deflate") => flate2::read::ZlibDecoder::new(&body[..]).read_to_end(&mut out),
        Some(other) => {
            return Err(ApiError::new(
                415,
                "unsupported_media_type",
                format!("Unsupported Content-Encoding `{other}`"),
            ))
        }
    };
    res.map_err(|e| {
        ApiError::bad(
            "malformed_payload",
            format!("The payload could not be decoded: `{e}`."),
        )
    })?;
    Ok(Bytes::from(out))
}

/// Entry point per request.
pub async fn serve(
    app: Arc<App>,
    req: Request<Incoming>,
) -> std::result::Result<Resp, DropConnection> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type");
    let auth = header("authorization");
    let encoding = header("content-encoding");
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(DropConnection),
    };
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| pct_decode(s, false))
        .collect();

    if let Some(f) = &app.faults {
        if segs.first().map(String::as_str) == Some("_testnode") {
            return Ok(control(&app, f, &method, &segs, &body));
        }
    }
    let template = template(&segs);
    let mut latency = 0;
    let mut action = Action::Pass;
    if let Some(f) = &app.faults {
        let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
        f.count(&format!("{method} {template}"));
        (latency, action) = f.decide(&method, &path);
    }
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    match action {
        Action::Pass => {}
        Action::Hang => std::future::pending::<()>().await,
        Action::Drop => return Err(DropConnection),
        Action::Error(status, body) => {
            return Ok(resp(status, serde_json::to_vec(&body).unwrap_or_default()))
        }
    }
    let body = match decode_body(encoding.as_deref(), body) {
        Ok(b) => b,
        Err(e) => return Ok(err_resp(&e)),
    };
    let r = Req {
        method,
        segs,
        params: parse_query(&raw_query),
        raw_query,
        content_type,
        auth,
        body,
    };
    // Handlers are CPU-bound and short; running them inline keeps the node simple.
    match route(&app, &r) {
        Ok(resp) => Ok(resp),
        Err(e) => Ok(err_resp(&e)),
    }
}

/// Route template used by `/_testnode/counters` (ids replaced by placeholders).
pub fn template(segs: &[String]) -> String {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let t: Vec<&str> = match s.as_slice() {
        ["indexes", _, "documents", x] if !["fetch", "delete-batch", "delete"].contains(x) => {
            vec!["indexes", "{uid}", "documents", "{id}"]
        }
        ["indexes", _, rest @ ..] => [&["indexes", "{uid}"][..], rest].concat(),
        ["tasks", x] if *x != "cancel" => vec!["tasks", "{uid}"],
        ["batches", _] => vec!["batches", "{uid}"],
        ["keys", _] => vec!["keys", "{key}"],
        other => other.to_vec(),
    };
    format!("/{}", t.join("/"))
}

fn control(app: &App, f: &Mutex<Faults>, method: &str, segs: &[String], body: &[u8]) -> Resp {
    let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
    match (method, segs.get(1).map(String::as_str)) {
        ("GET", Some("faults")) => resp(200, serde_json::to_vec(&f.set).unwrap_or_default()),
        ("POST", Some("faults")) => match serde_json::from_slice::<FaultSet>(body) {
            Ok(set) => {
                app.node.set_stalled(set.stall_tasks);
                f.replace(set);
                resp(200, serde_json::to_vec(&f.set).unwrap_or_default())
            }
            Err(e) => err_resp(&ApiError::bad(
                "bad_request",
                format!("invalid fault set: {e}"),
            )),
        },
        ("DELETE", Some("faults")) => {
            f.clear();
            app.node.set_stalled(false);
            resp(200, serde_json::to_vec(&f.set).unwrap_or_default())
        }
        ("GET", Some("counters")) => resp(200, serde_json::to_vec(&f.counters).unwrap_or_default()),
        ("DELETE", Some("counters")) => {
            f.counters.clear();
            empty(204)
        }
        _ => empty(404),
    }
}

/// Who is calling: no key = master key or no auth configured (everything allowed); a
/// tenant token also carries its search rules.
struct Caller {
    key: Option<Key>,
    tenant: Option<Tenant>,
}

impl Caller {
    const OPEN: Caller = Caller {
        key: None,
        tenant: None,
    };

    /// Meilisearch's `allow_index_creation`: a write that would create the index needs
    /// `indexes.create` on it too (checked when the task runs, against the enqueue-time key).
    fn may_create_index(&self, index: &str) -> bool {
        self.key
            .as_ref()
            .is_none_or(|k| k.allows_action("indexes.create") && k.allows_index(index))
    }

    fn index_ok(&self, index: &str) -> bool {
        self.key.as_ref().is_none_or(|k| k.allows_index(index))
    }

    /// The search filter after the tenant token's rule for `index` (if any) is applied.
    fn search_filter(&self, index: &str, client: &Value) -> Value {
        match &self.tenant {
            Some(t) => merge_filter(t.rule_for(index).flatten(), client),
            None => client.clone(),
        }
    }
}

fn authorize(app: &App, r: &Req, action: &str, index: Option<&str>) -> Result<Caller> {
    let Some(master) = &app.node.master_key else {
        return Ok(Caller::OPEN);
    };
    let Some(h) = &r.auth else {
        return Err(ApiError::missing_auth());
    };
    // A header without the bearer scheme counts as missing (Meilisearch 1.50).
    let token = match h.strip_prefix("Bearer") {
        Some(rest) if rest.is_empty() || rest.starts_with(' ') => rest.trim(),
        _ => return Err(ApiError::missing_auth()),
    };
    if constant_eq(token.as_bytes(), master.as_bytes()) {
        return Ok(Caller::OPEN);
    }
    let now = timefmt::now();
    let inner = app.node.inner.lock().unwrap_or_else(|e| e.into_inner());
    let Some(key) = inner
        .keys
        .iter()
        .find(|k| constant_eq(k.key.as_bytes(), token.as_bytes()))
        .cloned()
    else {
        // Not a key: maybe a tenant token signed with one. Tokens only ever grant search.
        let tenant = tenant::verify(token, &inner.keys, (now / 1_000_000_000) as i64)
            .ok_or_else(ApiError::invalid_key)?;
        // Multi-search names no index here: each query's index is checked by the handler.
        let allowed = action == "search"
            && !tenant.key.expired(now)
            && index.is_none_or(|i| tenant.rule_for(i).is_some());
        return if allowed {
            Ok(Caller {
                key: Some(tenant.key.clone()),
                tenant: Some(tenant),
            })
        } else {
            Err(ApiError::invalid_key())
        };
    };
    let index_ok = match index {
        Some(i) => key.allows_index(i),
        None => key.allows_index_less(action),
    };
    if key.expired(now) || !key.allows_action(action) || !index_ok {
        return Err(ApiError::invalid_key());
    }
    Ok(Caller {
        key: Some(key),
        tenant: None,
    })
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn json_body(r: &Req) -> Result<Value> {
    match r.content_type.as_deref() {
        None => return Err(ApiError::new(415, "missing_content_type", "A Content-Type header is missing. Accepted values for the Content-Type header are: `application/json`")),
        Some(ct) if ct.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json") => {}
        Some(ct) => return Err(ApiError::new(415, "invalid_content_type", format!("The Content-Type `{ct}` is invalid. Accepted values for the Content-Type header are: `application/json`"))),
    }
    if r.body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad(
            "missing_payload",
            "A json payload is missing.",
        ));
    }
    serde_json::from_slice(&r.body).map_err(|e| {
        ApiError::bad(
            "malformed_payload",
            format!("The json payload provided is malformed. `{e}`."),
        )
    })
}

/// `performanceDetails`: Meilisearch times each search step; the test node reports the
/// one step it has, formatted like Meilisearch (`{:.2?}` of a duration).
fn performance_details(started: Instant) -> Out {
    Out::obj().with("search", json!(format!("{:.2?}", started.elapsed())))
}

/// `requestUid`: Meilisearch 1.50 tags every search response with a fresh UUID v7.
fn new_request_uid() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

fn accepted(t: Task) -> Result<Resp> {
    Ok(resp(202, t.summary().to_bytes()))
}

fn index_view(ix: &Index) -> Out {
    Out::obj()
        .with("uid", json!(ix.uid))
        .with("createdAt", json!(timefmt::rfc3339(ix.created_at)))
        .with("updatedAt", json!(timefmt::rfc3339(ix.updated_at)))
        .with("primaryKey", json!(ix.primary_key))
}

/// The stats routes' `showInternalDatabaseSizes` and `sizeFormat` (`raw`/`human`), checked as
/// Meilisearch 1.50 checks them.
#[derive(Clone, Copy)]
struct StatsParams {
    internal_sizes: bool,
    human: bool,
}

fn stats_params(r: &Req) -> Result<StatsParams> {
    let internal_sizes = bool_param(
        r,
        "showInternalDatabaseSizes",
        "invalid_stats_show_internal_database_sizes",
    )?;
    let human = match param(r, "sizeFormat") {
        None | Some("raw") => false,
        Some("human") => true,
        Some(v) => {
            return Err(ApiError::bad(
                "invalid_stats_size_format",
                format!(
                "Unknown value `{v}` for parameter `sizeFormat`: expected one of `human`, `raw`"
            ),
            ))
        }
    };
    Ok(StatsParams {
        internal_sizes,
        human,
    })
}

/// A size as the stats routes write it: bytes, or with `sizeFormat=human` Meilisearch's
/// binary-unit string (`4 KiB`, `1.99 KiB`, `512 B`).
fn size(bytes: usize, p: StatsParams) -> Value {
    if p.human {
        json!(crate::size::human(bytes as u64))
    } else {
        json!(bytes)
    }
}

fn index_stats(node: &Node, ix: &Index, p: StatsParams) -> Out {
    let n = ix.len();
    let mut out = Out::obj()
        .with("numberOfDocuments", json!(n))
        .with("rawDocumentDbSize", size(ix.doc_bytes, p))
        .with(
            "avgDocumentSize",
            size(ix.doc_bytes.checked_div(n).unwrap_or(0), p),
        )
        .with("isIndexing", json!(node.is_indexing(&ix.uid)));
    if p.internal_sizes {
        // Plausible, not measured: the test node has no LMDB. Meilisearch lists its index
        // databases by name, each a whole number of 4 KiB pages.
        let page = crate::size::pages;
        let mut dbs = Out::obj();
        for (name, bytes) in [
            ("main", 4096),
            ("externalDocumentsIds", page(n * 16)),
            ("wordDocids", page(ix.doc_bytes / 4)),
            ("documents", page(ix.doc_bytes)),
        ] {
            dbs.push(name.to_string(), size(bytes, p));
        }
        out = out.with("internalDatabaseSizes", dbs);
    }
    out.with("numberOfEmbeddings", json!(0))
        .with("numberOfEmbeddedDocuments", json!(0))
        .with("fieldDistribution", ix.field_distribution())
}

/// Whether the `foreignKeys` experimental feature is on.
fn foreign_keys_enabled(app: &App) -> bool {
    let inner = app.node.inner.lock().unwrap_or_else(|e| e.into_inner());
    inner.experimental.get("foreignKeys") == Some(&json!(true))
}

/// Meilisearch refuses to set `foreignKeys` (a reset is fine) while its feature is off.
fn check_foreign_keys_feature(app: &App, update: &Obj) -> Result<()> {
    match update.get("foreignKeys") {
        Some(v) if !v.is_null() && !foreign_keys_enabled(app) => Err(ApiError::bad(
            "feature_not_enabled",
            "setting `foreignKeys` in the index settings requires enabling the `foreign_keys` experimental feature. See https://github.com/orgs/meilisearch/discussions/873",
        )),
        _ => Ok(()),
    }
}

fn with_index<T>(app: &App, uid: &str, f: impl FnOnce(&Index) -> Result<T>) -> Result<T> {
    let indexes = app.node.indexes.read().unwrap_or_else(|e| e.into_inner());
    let ix = indexes
        .get(uid)
        .ok_or_else(|| ApiError::index_not_found(uid))?;
    f(ix)
}

fn route(app: &App, r: &Req) -> Result<Resp> {
    let s: Vec<&str> = r.segs.iter().map(String::as_str).collect();
    let m = r.method.as_str();
    match (s.as_slice(), m) {
        (["health"], "GET") => ok(Out::obj().with("status", json!("available"))),
        (["version"], "GET") => {
            authorize(app, r, "version", None)?;
            ok(Out::obj()
                .with("commitSha", json!("miroir-testnode"))
                .with("commitDate", json!("unknown"))
                .with("pkgVersion", json!(PKG_VERSION)))
        }
        (["stats"], "GET") => {
            let caller = authorize(app, r, "stats.get", None)?;
            let p = stats_params(r)?;
            let indexes = app.node.indexes.read().unwrap_or_else(|e| e.into_inner());
            let mut per = Out::obj();
            let mut total = 0;
            let mut last = None;
            for ix in indexes.values().filter(|ix| caller.index_ok(&ix.uid)) {
                total += ix.doc_bytes;
                last = last.max(Some(ix.updated_at));
                per.push(ix.uid.clone(), index_stats(&app.node, ix, p));
            }
            ok(Out::obj()
                .with("databaseSize", self::size(total, p))
                .with("usedDatabaseSize", self::size(total, p))
                .with("lastUpdate", json!(last.map(timefmt::rfc3339)))
                .with("indexes", per))
        }
        (["indexes"], "GET") => {
            let caller = authorize(app, r, "indexes.get", None)?;
            let offset = usize_param(r, "offset", "invalid_index_offset", 0)?;
            let limit = usize_param(r, "limit", "invalid_index_limit", 20)?;
            let indexes = app.node.indexes.read().unwrap_or_else(|e| e.into_inner());
            let all: Vec<&Index> = indexes
                .values()
                .filter(|ix| caller.index_ok(&ix.uid))
                .collect();
            let results: Vec<Out> = all
                .iter()
                .skip(offset)
                .take(limit)
                .map(|ix| index_view(ix))
                .collect();
            ok(Out::obj()
                .with("results", Out::Arr(results))
                .with("offset", json!(offset))
                .with("limit", json!(limit))
                .with("total", json!(all.len())))
        }
        (["indexes"], "POST") => {
            let body = json_body(r)?;
            let uid = match body.get("uid") {
                Some(Value::String(u)) => u.clone(),
                None => return Err(ApiError::bad("missing_index_uid", "Missing field `uid`")),
                Some(v) => return Err(uid_type_error(v)),
            };
            check_uid(&uid).map_err(|e| ApiError {
                message: format!("Invalid value at `.uid`: {}", e.message),
                ..e
            })?;
            authorize(app, r, "indexes.create", Some(&uid))?;
            let pk = primary_key_field(&body)?;
            for k in body.as_object().into_iter().flatten().map(|(k, _)| k) {
                if k != "uid" && k != "primaryKey" {
                    return Err(ApiError::bad(
                        "bad_request",
                        unknown_field(k, "", &["uid", "primaryKey"]),
                    ));
                }
            }
            accepted(app.node.enqueue(
                Some(&uid),
                "indexCreation",
                Some(Obj::new().with("primaryKey", json!(pk))),
                Payload::CreateIndex { primary_key: pk },
            )?)
        }
        (["indexes", uid], _) => {
            check_uid(uid)?;
            match m {
                "GET" => {
                    authorize(app, r, "indexes.get", Some(uid))?;
                    with_index(app, uid, |ix| ok(index_view(ix)))
                }
                "PATCH" => {
                    authorize(app, r, "indexes.update", Some(uid))?;
                    let body = json_body(r)?;
                    for k in body.as_object().into_iter().flatten().map(|(k, _)| k) {
                        if k != "primaryKey" && k != "uid" {
                            return Err(ApiError::bad(
                                "bad_request",
                                unknown_field(k, "", &["primaryKey", "uid"]),
                            ));
                        }
                    }
                    // Meilisearch 1.50 renames with `uid` (checked when processed).
                    let new_uid = match body.get("uid") {
                        None | Some(Value::Null) => None,
                        Some(Value::String(u)) => {
                            check_uid(u)?;
                            Some(u.clone())
                        }
                        Some(v) => return Err(uid_type_error(v)),
                    };
                    let pk = primary_key_field(&body)?;
                    let mut details = Obj::new().with("primaryKey", json!(pk));
                    if let Some(new) = &new_uid {
                        details = details
                            .with("oldIndexUid", json!(uid))
                            .with("newIndexUid", json!(new));
                    }
                    accepted(app.node.enqueue(
                        Some(uid),
                        "indexUpdate",
                        Some(details),
                        Payload::UpdateIndex {
                            primary_key: pk,
                            new_uid,
                        },
                    )?)
                }
                "DELETE" => {
                    authorize(app, r, "indexes.delete", Some(uid))?;
                    accepted(app.node.enqueue(
                        Some(uid),
                        "indexDeletion",
                        Some(Obj::new().with("deletedDocuments", Value::Null)),
                        Payload::DeleteIndex,
                    )?)
                }
                _ => Ok(empty(405)),
            }
        }
        (["indexes", uid, "compact"], "POST") => {
            check_uid(uid)?;
            authorize(app, r, "indexes.compact", Some(uid))?;
            accepted(app.node.enqueue(
                Some(uid),
                "indexCompaction",
                Some(Obj::new()),
                Payload::Compact,
            )?)
        }
        (["indexes", uid, "fields"], "POST") => {
            authorize(app, r, "fields.post", Some(uid))?;
            let body = json_body(r)?;
            with_index(app, uid, |ix| {
                let v = crate::fields::list(ix, &body)?;
                Ok(resp(200, serde_json::to_vec(&v).expect("JSON serialises")))
            })
        }
        (["indexes", uid, "stats"], "GET") => {
            check_uid(uid)?;
            authorize(app, r, "stats.get", Some(uid))?;
            let p = stats_params(r)?;
            with_index(app, uid, |ix| ok(index_stats(&app.node, ix, p)))
        }
        (["indexes", uid, "documents"], _) => {
            check_uid(uid)?;
            match m {
                "POST" | "PUT" => add_documents(app, r, uid, m == "PUT"),
                "GET" => {
                    authorize(app, r, "documents.get", Some(uid))?;
                    if let Some((k, _)) = r
                        .params
                        .iter()
                        .find(|(k, _)| !FETCH_FIELDS.contains(&k.as_str()))
                    {
                        return Err(ApiError::bad(
                            "bad_request",
                            unknown_field(k, "", FETCH_FIELDS).replacen(
                                "Unknown field",
                                "Unknown parameter",
                                1,
                            ),
                        ));
                    }
                    let fields = param(r, "fields").map(split_list);
                    let ids = param(r, "ids").map(split_list);
                    let filter = param(r, "filter")
                        .map(|f| Value::String(f.to_string()))
                        .unwrap_or(Value::Null);
                    let offset = usize_param(r, "offset", "invalid_document_offset", 0)?;
                    let limit = usize_param(r, "limit", "invalid_document_limit", 20)?;
                    let q = DocList {
                        offset,
                        limit,
                        fields,
                        filter,
                        ids,
                        sort: param(r, "sort").map(split_list).unwrap_or_default(),
                        retrieve_vectors: bool_param(
                            r,
                            "retrieveVectors",
                            "invalid_document_retrieve_vectors",
                        )?,
                    };
                    list_documents(app, uid, q)
                }
                "DELETE" => {
                    authorize(app, r, "documents.delete", Some(uid))?;
                    accepted(app.node.enqueue(
                        Some(uid),
                        "documentDeletion",
                        Some(Obj::new().with("deletedDocuments", Value::Null)),
                        Payload::ClearDocuments,
                    )?)
                }
                _ => Ok(empty(405)),
            }
        }
        (["indexes", uid, "documents", "fetch"], "POST") => {
            check_uid(uid)?;
            authorize(app, r, "documents.get", Some(uid))?;
            let body = json_body(r)?;
            let Value::Object(b) = &body else {
                return Err(ApiError::bad(
                    "bad_request",
                    "Invalid value type: expected an object",
                ));
            };
            for k in b.keys() {
                if !FETCH_FIELDS.contains(&k.as_str()) {
                    return Err(ApiError::bad(
                        "bad_request",
                        unknown_field(k, "", FETCH_FIELDS),
                    ));
                }
            }
            let num = |k: &str, d: usize| -> Result<usize> {
                match b.get(k) {
                    None | Some(Value::Null) => Ok(d),
                    Some(v) => v.as_u64().map(|n| n as usize).ok_or_else(|| ApiError::bad(&format!("invalid_document_{k}"), format!("Invalid value type at `.{k}`: expected a positive integer, but found {}: `{v}`", settings::kind_name(v)))),
                }
            };
            let strs = |k: &str| -> Option<Vec<String>> {
                b.get(k)
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(documents::id_from_value).collect())
            };
            let sort = match b.get("sort") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| v.as_str().map(str::to_string).ok_or_else(|| ApiError::bad("invalid_document_sort", format!("Invalid value type at `.sort[..]`: expected a string, but found {}: `{v}`", settings::kind_name(v)))))
                    .collect::<Result<Vec<_>>>()?,
                Some(v) => return Err(ApiError::bad("invalid_document_sort", format!("Invalid value type at `.sort`: expected an array, but found {}: `{v}`", settings::kind_name(v)))),
            };
            let retrieve_vectors = match b.get("retrieveVectors") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(v)) => *v,
                Some(v) => return Err(ApiError::bad("invalid_document_retrieve_vectors", format!("Invalid value type at `.retrieveVectors`: expected a boolean, but found {}: `{v}`", settings::kind_name(v)))),
            };
            let q = DocList {
                offset: num("offset", 0)?,
                limit: num("limit", 20)?,
                fields: strs("fields"),
                filter: b.get("filter").cloned().unwrap_or(Value::Null),
                ids: strs("ids"),
                sort,
                retrieve_vectors,
            };
            list_documents(app, uid, q)
        }
        (["indexes", uid, "documents", "delete-batch"], "POST") => {
            check_uid(uid)?;
            authorize(app, r, "documents.delete", Some(uid))?;
            let body = json_body(r)?;
            let Value::Array(items) = &body else {
                // This route reads its body with serde, not deserr (as Meilisearch 1.50).
                let e = serde_json::from_value::<Vec<Value>>(body.clone())
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                return Err(ApiError::bad(
                    "bad_request",
                    format!("Json deserialize error: {e} at line 1 column 0"),
                ));
            };
            let ids: Vec<String> = items.iter().filter_map(documents::id_from_value).collect();
            accepted(
                app.node.enqueue(
                    Some(uid),
                    "documentDeletion",
                    Some(
                        Obj::new()
                            .with("providedIds", ids.len())
                            .with("deletedDocuments", Value::Null)
                            .with("originalFilter", Value::Null),
                    ),
                    Payload::DeleteIds(ids),
                )?,
            )
        }
        (["indexes", uid, "documents", "delete"], "POST") => {
            check_uid(uid)?;
            authorize(app, r, "documents.delete", Some(uid))?;
            let body = json_body(r)?;
            if let Some(k) = body
                .as_object()
                .and_then(|o| o.keys().find(|k| *k != "filter"))
            {
                return Err(ApiError::bad(
                    "bad_request",
                    unknown_field(k, "", &["filter"]),
                ));
            }
            let f = match body.get("filter") {
                None | Some(Value::Null) => {
                    return Err(ApiError::bad(
                        "missing_document_filter",
                        "Missing field `filter`",
                    ))
                }
                Some(f) => f.clone(),
            };
            filter::parse(&f, "invalid_document_filter")?;
            let details = Obj::new()
                .with("providedIds", 0)
                .with("deletedDocuments", Value::Null)
                .with("originalFilter", json!(f.to_string()));
            accepted(app.node.enqueue(
                Some(uid),
                "documentDeletion",
                Some(details),
                Payload::DeleteFilter(f),
            )?)
        }
        (["indexes", uid, "documents", id], _) => {
            check_uid(uid)?;
            match m {
                "GET" => {
                    authorize(app, r, "documents.get", Some(uid))?;
                    let fields = param(r, "fields").map(split_list);
                    let vectors =
                        bool_param(r, "retrieveVectors", "invalid_document_retrieve_vectors")?;
                    with_index(app, uid, |ix| {
                        let doc = ix.doc(id).ok_or_else(|| ApiError::document_not_found(id))?;
                        let mut d = Out::from(ix.select(doc, fields.as_deref()));
                        if vectors {
                            d.push("_vectors", Out::obj());
                        }
                        ok(d)
                    })
                }
                "DELETE" => {
                    authorize(app, r, "documents.delete", Some(uid))?;
                    accepted(
                        app.node.enqueue(
                            Some(uid),
                            "documentDeletion",
                            Some(
                                Obj::new()
                                    .with("providedIds", 1)
                                    .with("deletedDocuments", Value::Null)
                                    .with("originalFilter", Value::Null),
                            ),
                            Payload::DeleteIds(vec![id.to_string()]),
                        )?,
                    )
                }
                _ => Ok(empty(405)),
            }
        }
        (["indexes", uid, "search"], "POST" | "GET") => {
            check_uid(uid)?;
            let caller = authorize(app, r, "search", Some(uid))?;
            if let Some(c) = &app.canned {
                return Ok(resp(200, c.to_vec()));
            }
            let started = Instant::now();
            let mut q = if m == "POST" {
                Query::from_json(&json_body(r)?, &[])?
            } else {
                Query::from_params(&r.params)?
            };
            q.filter = caller.search_filter(uid, &q.filter);
            let request_uid = new_request_uid();
            with_index(app, uid, |ix| {
                let mut out = search::search(ix, &q, started)?;
                out.push("requestUid", json!(request_uid));
                if q.show_performance_details {
                    out.push("performanceDetails", performance_details(started));
                }
                ok(out)
            })
        }
        (["indexes", uid, "similar"], "POST" | "GET") => {
            // The test node never has a working embedder, so every similar query meets
            // Meilisearch's "unknown embedder" error (after the index and `id` checks).
            check_uid(uid)?;
            authorize(app, r, "search", Some(uid))?;
            let body = if m == "POST" {
                json_body(r)?
            } else {
                Value::Object(
                    r.params
                        .iter()
                        .map(|(k, v)| (k.clone(), json!(v)))
                        .collect(),
                )
            };
            with_index(app, uid, |_| Ok(()))?;
            if body.get("id").is_none_or(Value::is_null) {
                return Err(ApiError::bad("missing_similar_id", "Missing field `id`"));
            }
            let Some(embedder) = body.get("embedder").and_then(Value::as_str) else {
                return Err(ApiError::bad("bad_request", "Missing field `embedder`"));
            };
            Err(ApiError::bad(
                "invalid_similar_embedder",
                format!("Cannot find embedder with name `{embedder}`."),
            ))
        }
        (["indexes", uid, "facet-search"], "POST") => {
            check_uid(uid)?;
            let caller = authorize(app, r, "search", Some(uid))?;
            let started = Instant::now();
            let mut body = json_body(r)?;
            if let Some(o) = body.as_object_mut() {
                let f = caller.search_filter(uid, o.get("filter").unwrap_or(&Value::Null));
                o.insert("filter".into(), f);
            }
            with_index(app, uid, |ix| ok(search::facet_search(ix, &body, started)?))
        }
        (["indexes", uid, "settings"], _) => {
            check_uid(uid)?;
            match m {
                "GET" => {
                    authorize(app, r, "settings.get", Some(uid))?;
                    let fk = foreign_keys_enabled(app);
                    with_index(app, uid, |ix| {
                        // Meilisearch shows `foreignKeys` only while its feature is on.
                        let mut s = ix.settings.clone();
                        if !fk {
                            s.0.retain(|(k, _)| k != "foreignKeys");
                        }
                        ok(Out::from(&s))
                    })
                }
                "PATCH" => {
                    let caller = authorize(app, r, "settings.update", Some(uid))?;
                    let update = settings::validate_patch(&json_body(r)?)?;
                    check_foreign_keys_feature(app, &update)?;
                    accepted(app.node.enqueue(
                        Some(uid),
                        "settingsUpdate",
                        Some(update.clone()),
                        Payload::Settings {
                            update,
                            allow_index_creation: caller.may_create_index(uid),
                        },
                    )?)
                }
                "DELETE" => {
                    let caller = authorize(app, r, "settings.update", Some(uid))?;
                    let (update, details) = settings::reset_all();
                    accepted(app.node.enqueue(
                        Some(uid),
                        "settingsUpdate",
                        Some(details),
                        Payload::Settings {
                            update,
                            allow_index_creation: caller.may_create_index(uid),
                        },
                    )?)
                }
                _ => Ok(empty(405)),
            }
        }
        (["indexes", uid, "settings", name], _) => {
            check_uid(uid)?;
            let Some(key) = settings::key_for_route(name) else {
                return Ok(empty(404));
            };
            match m {
                "GET" => {
                    authorize(app, r, "settings.get", Some(uid))?;
                    with_index(app, uid, |ix| {
                        ok(Out::Val(
                            ix.settings.get(key).cloned().unwrap_or(Value::Null),
                        ))
                    })
                }
                "PUT" | "PATCH" if (m == "PATCH") == settings::uses_patch(key) => {
                    let caller = authorize(app, r, "settings.update", Some(uid))?;
                    let body = json_body(r)?;
                    let mut wrapped = serde_json::Map::new();
                    wrapped.insert(key.to_string(), body);
                    let update =
                        settings::validate_patch(&Value::Object(wrapped)).map_err(|e| {
                            ApiError {
                                message: settings::relocate_to_root(&e.message, key),
                                ..e
                            }
                        })?;
                    check_foreign_keys_feature(app, &update)?;
                    accepted(app.node.enqueue(
                        Some(uid),
                        "settingsUpdate",
                        Some(update.clone()),
                        Payload::Settings {
                            update,
                            allow_index_creation: caller.may_create_index(uid),
                        },
                    )?)
                }
                "DELETE" => {
                    let caller = authorize(app, r, "settings.update", Some(uid))?;
                    let update = Obj::new().with(key, settings::reset_value(key));
                    accepted(app.node.enqueue(
                        Some(uid),
                        "settingsUpdate",
                        Some(update.clone()),
                        Payload::Settings {
                            update,
                            allow_index_creation: caller.may_create_index(uid),
                        },
                    )?)
                }
                _ => Ok(empty(405)),
            }
        }
        (["multi-search"], "POST") => multi_search(app, r),
        (["swap-indexes"], "POST") => {
            let body = json_body(r)?;
            let Value::Array(items) = &body else {
                return Err(ApiError::bad(
                    "bad_request",
                    "Invalid value type: expected an array",
                ));
            };
            let mut pairs = Vec::new();
            for (i, it) in items.iter().enumerate() {
                if let Some(k) = it
                    .as_object()
                    .and_then(|o| o.keys().find(|k| *k != "indexes" && *k != "rename"))
                {
                    return Err(ApiError::bad(
                        "bad_request",
                        unknown_field(k, &format!(" inside `[{i}]`"), &["indexes", "rename"]),
                    ));
                }
                let rename = match it.get("rename") {
                    None | Some(Value::Null) | Some(Value::Bool(false)) => false,
                    Some(Value::Bool(true)) => true,
                    Some(v) => {
                        return Err(ApiError::bad(
                            "invalid_swap_rename",
                            format!("Invalid value type at `[{i}].rename`: expected a boolean, but found {}: `{v}`", settings::kind_name(v)),
                        ))
                    }
                };
                let Some(Value::Array(ix)) = it.get("indexes") else {
                    return Err(ApiError::bad(
                        "missing_swap_indexes",
                        format!("Missing field `indexes` inside `[{i}]`"),
                    ));
                };
                let names: Vec<&str> = ix.iter().filter_map(Value::as_str).collect();
                if names.len() != 2 {
                    return Err(ApiError::bad("invalid_swap_indexes", format!("Two indexes must be given for each swap. The list `{}` contains {} indexes.", Value::from(names.clone()), names.len())));
                }
                for n in &names {
                    check_uid(n)?;
                    authorize(app, r, "indexes.swap", Some(n))?;
                    let seen = pairs
                        .iter()
                        .any(|(a, b, _): &(String, String, bool)| a == n || b == n);
                    if seen || (names[0] == names[1]) {
                        return Err(ApiError::bad("invalid_swap_duplicate_index_found", format!("Indexes must be declared only once during a swap. `{n}` was specified several times.")));
                    }
                }
                pairs.push((names[0].to_string(), names[1].to_string(), rename));
            }
            authorize(app, r, "indexes.swap", None)?;
            let swaps: Vec<Value> = pairs
                .iter()
                .map(|(a, b, rename)| json!({"indexes": [a, b], "rename": rename}))
                .collect();
            accepted(app.node.enqueue(
                None,
                "indexSwap",
                Some(Obj::new().with("swaps", swaps)),
                Payload::Swap(pairs),
            )?)
        }
        (["tasks"], "GET") => {
            let caller = authorize(app, r, "tasks.get", None)?;
            let f = tasks::parse_filter(&r.params, &["limit", "from", "reverse"])?;
            let limit = usize_param(r, "limit", "invalid_task_limit", 20)?;
            let from = param(r, "from").map(|v| v.parse::<u32>().map_err(|_| ApiError::bad("invalid_task_from", format!("Invalid value in parameter `from`: could not parse `{v}` as a positive integer")))).transpose()?;
            let reverse = bool_param(r, "reverse", "invalid_task_reverse")?;
            let inner = app.node.inner.lock().unwrap_or_else(|e| e.into_inner());
            let visible = inner
                .tasks
                .iter()
                .flatten()
                .filter(|t| t.index_uid.as_ref().is_none_or(|i| caller.index_ok(i)));
            let visible: Vec<&Task> = visible.collect();
            let (page, total, next) = tasks::page(visible.into_iter(), &f, from, limit, reverse);
            let first = page.first().map(|t| t.uid);
            let results: Vec<Out> = page.into_iter().map(Task::view).collect();
            ok(Out::obj()
                .with("results", Out::Arr(results))
                .with("total", json!(total))
                .with("limit", json!(limit))
                .with("from", json!(first))
                .with("next", json!(next)))
        }
        (["tasks"], "DELETE") => task_mutation(app, r, "taskDeletion", "tasks.delete"),
        (["tasks", "cancel"], "POST") => task_mutation(app, r, "taskCancelation", "tasks.cancel"),
        (["tasks", uid], "GET") => {
            let caller = authorize(app, r, "tasks.get", None)?;
            let n: u32 = uid.parse().map_err(|_| {
                ApiError::bad(
                    "invalid_task_uids",
                    format!(
                        "Task uid `{uid}` is invalid. It should only contain numeric characters."
                    ),
                )
            })?;
            let inner = app.node.inner.lock().unwrap_or_else(|e| e.into_inner());
            let t = inner
                .tasks
                .get(n as usize)
                .and_then(Option::as_ref)
                .filter(|t| t.index_uid.as_ref().is_none_or(|i| caller.index_ok(i)))
                .ok_or_else(|| ApiError::task_not_found(uid))?;
            ok(t.view())
        }
        // Meilisearch's experimental `getTaskDocumentsRoute`: the payload of a document
        // addition still enqueued or processing, as concatenated JSON objects.
        (["tasks", uid, "documents"], "GET") => {
            let caller = authorize(app, r, "tasks.get", None)?;
            let inner = app.node.inner.lock().unwrap_or_else(|e| e.into_inner());
            if inner.experimental.get("getTaskDocumentsRoute") != Some(&json!(true)) {
                return Err(ApiError::bad("feature_not_enabled", "Getting the documents of an enqueued task requires enabling the `get task documents route` experimental feature. See https://github.com/orgs/meilisearch/discussions/808"));
            }
            let n: u32 = uid.parse().map_err(|_| {
                ApiError::bad(
                    "invalid_task_uids",
                    format!(
                        "Task uid `{uid}` is invalid. It should only contain numeric characters."
                    ),
                )
            })?;
            let t = inner
                .tasks
                .get(n as usize)
                .and_then(Option::as_ref)
                .filter(|t| t.index_uid.as_ref().is_none_or(|i| caller.index_ok(i)))
                .ok_or_else(|| ApiError::task_not_found(uid))?;
            let docs = match inner.payloads.get(&n) {
                Some(Payload::AddDocuments { docs, .. })
                    if t.kind == "documentAdditionOrUpdate"
                        && matches!(t.status.as_str(), "enqueued" | "processing") =>
                {
                    docs
                }
                _ => {
                    return Err(ApiError::new(404, "task_file_not_found", format!("Task `{n}` does not contain any documents. Only `documentAdditionOrUpdate` tasks with the statuses `enqueued` or `processing` contain documents")))
                }
            };
            let mut body = Vec::new();
            for d in docs {
                body.extend_from_slice(&serde_json::to_vec(d).unwrap_or_default());
            }
            let mut resp = resp(200, body);
            resp.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/x-ndjson"),
            );
            Ok(resp)
        }
        (["batches"], "GET") => {
            let caller = authorize(app, r, "tasks.get", None)?;
            // Same parameters (and error codes) as `/tasks`; `uids` are batch uids here.
            let mut f = tasks::parse_filter(&r.params, &["limit", "from", "reverse"])?;
            if let Some(u) = f.uids.take() {
                f.batch_uids = Some(u);
            }
            let limit = usize_param(r, "limit", "invalid_task_limit", 20)?;
            let from = param(r, "from").and_then(|v| v.parse::<u32>().ok());
            let reverse = bool_param(r, "reverse", "invalid_task_reverse")?;
            let inner = app.node.inner.lock().unwrap_or_else(|e| e.into_inner());
            let mut batches: Vec<&Task> = inner
                .tasks
                .iter()
                .flatten()
                .filter(|t| {
                    t.batch_uid.is_some()
                        && t.index_uid.as_ref().is_none_or(|i| caller.index_ok(i))
                        && f.matches(t)
                })
                .collect();
            batches.sort_by_key(|t| t.batch_uid);
            if !reverse {
                batches.reverse();
            }
            let total = batches.len();
            let start = batches
                .iter()
                .position(|t| {
                    from.is_none_or(|f| {
                        let b = t.batch_uid.unwrap_or(0);
                        if reverse {
                            b >= f
                        } else {
                            b <= f
                        }
                    })
                })
                .unwrap_or(total);
            let page: Vec<Out> = batches[start..]
                .iter()
                .take(limit)
                .map(|t| t.batch_view())
                .collect();
            let first = batches.get(start).and_then(|t| t.batch_uid);
            let next = batches.get(start + limit).and_then(|t| t.batch_uid);
            ok(Out::obj()
                .with("results", Out::Arr(page))
                .with("total", json!(total))
                .with("limit", json!(limit))
                .with("from", json!(first))
                .with("next", json!(next)))
        }
        (["batches", uid], "GET") => {
            authorize(app, r, "tasks.get", None)?;
            let n: u32 = uid.parse().map_err(|_| {
                ApiError::bad(
                    "invalid_batch_uids",
                    format!(
                        "Batch uid `{uid}` is invalid. It should only contain numeric characters."
                    ),
                )
            })?;
            let inner = app.node.inner.lock().unwrap_or_else(|e| e.into_inner());
            let t = inner
                .tasks
                .iter()
                .flatten()
                .find(|t| t.batch_uid == Some(n))
                .ok_or_else(|| ApiError::batch_not_found(uid))?;
            ok(t.batch_view())
        }
        (["experimental-features"], "GET") => {
            authorize(app, r, "experimental.get", None)?;
            let flags = app
                .node
                .inner
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .experimental
                .clone();
            ok(Out::from(flags))
        }
        (["experimental-features"], "PATCH") => {
            authorize(app, r, "experimental.update", None)?;
            let body = json_body(r)?;
            let Value::Object(m) = &body else {
                return Err(ApiError::bad(
                    "bad_request",
                    "Invalid value type: expected an object",
                ));
            };
            let mut update = Obj::new();
            for (k, v) in m {
                if !crate::node::EXPERIMENTAL.contains(&k.as_str()) {
                    return Err(ApiError::bad(
                        "bad_request",
                        unknown_field(k, "", crate::node::EXPERIMENTAL),
                    ));
                }
                match v {
                    Value::Bool(_) => update.insert(k.clone(), v.clone()),
                    Value::Null => {}
                    _ => {
                        return Err(ApiError::bad(
                            "bad_request",
                            format!(
                            "Invalid value type at `.{k}`: expected a boolean, but found {}: `{v}`",
                            settings::kind_name(v)
                        ),
                        ))
                    }
                }
            }
            ok(Out::from(app.node.set_experimental(&update)?))
        }
        (["chats"] | ["chats", _] | ["chats", _, "settings"], _) => {
            let action = match (s.as_slice(), m) {
                (["chats"] | ["chats", _], "GET") => "chats.get",
                (["chats", _], "DELETE") => "chats.delete",
                ([_, _, _], "GET") => "chatsSettings.get",
                ([_, _, _], "PATCH" | "DELETE") => "chatsSettings.update",
                _ => return Ok(empty(405)),
            };
            authorize(app, r, action, None)?;
            let offset = usize_param(r, "offset", "invalid_chats_offset", 0)?;
            let limit = usize_param(r, "limit", "invalid_chats_limit", 20)?;
            let mut inner = app.node.inner.lock().unwrap_or_else(|e| e.into_inner());
            let enabled = inner.experimental.get("chatCompletions") == Some(&json!(true));
            match crate::chats::route(&mut inner.chats, enabled, m, &s, (offset, limit), || {
                json_body(r)
            })? {
                (status, Some(v)) => Ok(resp(status, serde_json::to_vec(&v).unwrap_or_default())),
                (status, None) => Ok(empty(status)),
            }
        }
        (["dumps"], "POST") => {
            authorize(app, r, "dumps.create", None)?;
            accepted(app.node.enqueue(
                None,
                "dumpCreation",
                Some(Obj::new().with("dumpUid", Value::Null)),
                Payload::Export { snapshot: false },
            )?)
        }
        (["snapshots"], "POST") => {
            authorize(app, r, "snapshots.create", None)?;
            accepted(app.node.enqueue(
                None,
                "snapshotCreation",
                None,
                Payload::Export { snapshot: true },
            )?)
        }
        (["keys"], "GET" | "POST") | (["keys", _], "GET" | "PATCH" | "DELETE") => {
            keys_route(app, r, &s)
        }
        (
            ["health"
            | "version"
            | "stats"
            | "indexes"
            | "multi-search"
            | "swap-indexes"
            | "tasks"
            | "batches"
            | "keys"
            | "experimental-features"
            | "dumps"
            | "snapshots"],
            _,
        )
        | (["indexes", _, "stats" | "search" | "facet-search" | "similar"], _)
        | (["tasks", _] | ["batches", _], _) => Ok(empty(405)),
        _ => Ok(empty(404)),
    }
}

/// A body's `uid` that is not a string (index creation and rename).
fn uid_type_error(v: &Value) -> ApiError {
    ApiError::bad(
        "invalid_index_uid",
        format!(
            "Invalid value type at `.uid`: expected a string, but found {}: `{v}`",
            settings::kind_name(v)
        ),
    )
}

fn primary_key_field(body: &Value) -> Result<Option<String>> {
    match body.get("primaryKey") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(ApiError::bad(
            "invalid_index_primary_key",
            format!(
                "Invalid value type at `.primaryKey`: expected a string, but found {}: `{v}`",
                settings::kind_name(v)
            ),
        )),
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect()
}

fn add_documents(app: &App, r: &Req, uid: &str, merge: bool) -> Result<Resp> {
    let caller = authorize(app, r, "documents.add", Some(uid))?;
    let format = documents::format_of(r.content_type.as_deref())?;
    let delimiter = match param(r, "csvDelimiter") {
        None => b',',
        Some(d) if d.len() == 1 && d.is_ascii() => d.as_bytes()[0],
        Some(d) => return Err(ApiError::bad("invalid_document_csv_delimiter", format!("Invalid value in parameter `csvDelimiter`: expected a string of one character, but found the following string of {} characters: `{d}`", d.chars().count()))),
    };
    if param(r, "csvDelimiter").is_some() && format != documents::Format::Csv {
        return Err(ApiError::bad("invalid_document_csv_delimiter", "The Content-Type `application/json` does not support the use of a csv delimiter. The csv delimiter can only be used with the Content-Type `text/csv`."));
    }
    let docs = documents::parse(format, &r.body, delimiter)?;
    let pk = param(r, "primaryKey").map(str::to_string);
    let details = Obj::new()
        .with("receivedDocuments", docs.len())
        .with("indexedDocuments", Value::Null);
    accepted(app.node.enqueue(
        Some(uid),
        "documentAdditionOrUpdate",
        Some(details),
        Payload::AddDocuments {
            docs,
            primary_key: pk,
            merge,
            allow_index_creation: caller.may_create_index(uid),
        },
    )?)
}

/// What `GET …/documents` and `POST …/documents/fetch` ask for.
struct DocList {
    offset: usize,
    limit: usize,
    fields: Option<Vec<String>>,
    filter: Value,
    ids: Option<Vec<String>>,
    sort: Vec<String>,
    /// Adds `_vectors: {}` (the test node has no embedders) to each document.
    retrieve_vectors: bool,
}

fn list_documents(app: &App, uid: &str, q: DocList) -> Result<Resp> {
    with_index(app, uid, |ix| {
        let parsed = filter::parse(&q.filter, "invalid_document_filter")?;
        if let Some(f) = &parsed {
            f.check_filterable(&ix.view, "invalid_document_filter", None, None)?;
        }
        let sort = search::document_sort(&ix.view, &q.sort)?;
        let ids: Option<std::collections::HashSet<String>> = q.ids.map(|v| v.into_iter().collect());
        let pk = ix.primary_key.as_deref().unwrap_or("id");
        let mut matched: Vec<&crate::json::Obj> = ix
            .live()
            .map(|(_, d)| &d.obj)
            .filter(|o| parsed.as_ref().is_none_or(|f| f.matches(o)))
            .filter(|o| {
                ids.as_ref().is_none_or(|ids| {
                    documents::document_id(o, pk).is_ok_and(|id| ids.contains(&id))
                })
            })
            .collect();
        if !sort.is_empty() {
            // Stable: equal documents keep their internal order.
            matched.sort_by(|a, b| search::cmp_documents(a, b, &sort));
        }
        let results: Vec<Out> = matched
            .iter()
            .skip(q.offset)
            .take(q.limit)
            .map(|o| {
                let mut d = Out::from(ix.select(o, q.fields.as_deref()));
                if q.retrieve_vectors {
                    d.push("_vectors", Out::obj());
                }
                d
            })
            .collect();
        ok(Out::obj()
            .with("results", Out::Arr(results))
            .with("offset", json!(q.offset))
            .with("limit", json!(q.limit))
            .with("total", json!(matched.len())))
    })
}

fn multi_search(app: &App, r: &Req) -> Result<Resp> {
    // Meilisearch authenticates the route first (no index), validates the body, then checks
    // every query's index before running any.
    let caller = authorize(app, r, "search", None)?;
    let body = json_body(r)?;
    if let Some(o) = body.as_object() {
        for k in o.keys() {
            if k != "queries" && k != "federation" {
                return Err(ApiError::bad(
                    "bad_request",
                    unknown_field(k, "", &["queries", "federation"]),
                ));
            }
        }
    }
    let queries = match body.get("queries") {
        Some(Value::Array(q)) => q,
        None => {
            return Err(ApiError::bad(
                "missing_multi_search_queries",
                "Missing field `queries`",
            ))
        }
        Some(v) => {
            return Err(ApiError::bad(
                "bad_request",
                format!(
                    "Invalid value type at `.queries`: expected an array, but found {}: `{v}`",
                    settings::kind_name(v)
                ),
            ))
        }
    };
    for (i, q) in queries.iter().enumerate() {
        if let Some(uid) = q.get("indexUid").and_then(Value::as_str) {
            if !caller.index_ok(uid)
                || caller
                    .tenant
                    .as_ref()
                    .is_some_and(|t| t.rule_for(uid).is_none())
            {
                return Err(ApiError {
                    message: format!("Inside `.queries[{i}]`: The provided API key is invalid."),
                    ..ApiError::invalid_key()
                });
            }
        }
    }
    let federation = match body.get("federation") {
        None | Some(Value::Null) => None,
        Some(f) => Some(crate::federated::Federation::parse(f)?),
    };
    let mut planned = Vec::new();
    // One request, one `requestUid` shared by all its results (as Meilisearch 1.50).
    let request_uid = new_request_uid();
    let mut results = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        let at = format!(".queries[{i}]");
        // Body errors are located inside the query (`at `.queries[0].limit``); errors
        // found while running it are prefixed (`Inside `.queries[0]`: …`), as Meilisearch.
        let located = |e: ApiError| ApiError {
            message: relocate_into(&e.message, &at),
            ..e
        };
        let inside = |e: ApiError| ApiError {
            message: format!("Inside `{at}`: {}", e.message),
            // An unknown index inside a multi-search is a bad request, not a 404.
            status: 400,
            ..e
        };
        let uid = match q.get("indexUid") {
            Some(Value::String(u)) => u.clone(),
            _ => {
                return Err(located(ApiError::bad(
                    "missing_index_uid",
                    "Missing field `indexUid`",
                )))
            }
        };
        check_uid(&uid).map_err(|e| ApiError {
            message: format!("Invalid value at `{at}.indexUid`: {}", e.message),
            ..e
        })?;
        if federation.is_some() {
            crate::federated::check_query(i, q)?;
        }
        let mut rest = q.clone();
        if let Some(o) = rest.as_object_mut() {
            o.remove("indexUid");
            o.remove("federationOptions");
        }
        let started = Instant::now();
        let mut query =
            Query::from_json(&rest, &["indexUid", "federationOptions"]).map_err(located)?;
        query.filter = caller.search_filter(&uid, &query.filter);
        if federation.is_some() {
            planned.push(crate::federated::Planned {
                index: uid,
                query,
                weight: crate::federated::weight(q),
                position: crate::federated::query_position(q),
            });
            continue;
        }
        let out =
            with_index(app, &uid, |ix| search::search(ix, &query, started)).map_err(inside)?;
        let mut with_uid = Out::obj().with("indexUid", json!(uid));
        if let Out::Obj(fields) = out {
            for (k, v) in fields {
                with_uid.push(k, v);
            }
        }
        with_uid.push("requestUid", json!(request_uid));
        if query.show_performance_details {
            with_uid.push("performanceDetails", performance_details(started));
        }
        results.push(with_uid);
    }
    if let Some(fed) = federation {
        let index_of = |uid: &str, f: &mut dyn FnMut(&Index) -> Result<()>| with_index(app, uid, f);
        let mut out = crate::federated::run(&fed, planned, &index_of)?;
        out.push("requestUid", json!(request_uid));
        return ok(out);
    }
    ok(Out::obj().with("results", Out::Arr(results)))
}

/// Moves a deserialization error located at the body root into the sub-object at `at`
/// (`.queries[0]`), the way deserr reports errors for nested values.
fn relocate_into(msg: &str, at: &str) -> String {
    if let Some(rest) = msg.strip_prefix("Invalid value type at `") {
        return format!("Invalid value type at `{at}{rest}");
    }
    if let Some(rest) = msg.strip_prefix("Invalid value at `") {
        return format!("Invalid value at `{at}{rest}");
    }
    if let Some(rest) = msg.strip_prefix("Invalid value type: ") {
        return format!("Invalid value type at `{at}`: {rest}");
    }
    if msg.starts_with("Unknown value `") {
        if let Some((head, rest)) = msg.split_once(" at `") {
            return format!("{head} at `{at}{rest}");
        }
    }
    for p in ["Unknown field `", "Missing field `"] {
        if let Some(rest) = msg.strip_prefix(p) {
            if let Some((name, tail)) = rest.split_once('`') {
                return format!("{p}{name}` inside `{at}`{tail}");
            }
        }
    }
    format!("Inside `{at}`: {msg}")
}

fn task_mutation(app: &App, r: &Req, kind: &str, action: &str) -> Result<Resp> {
    let caller = authorize(app, r, action, None)?;
    let f = tasks::parse_filter(&r.params, &[])?;
    if !f.any {
        return Err(tasks::missing_filters(if kind == "taskCancelation" {
            "cancel"
        } else {
            "delete"
        }));
    }
    let matched: Vec<u32> = {
        let inner = app.node.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .tasks
            .iter()
            .flatten()
            .filter(|t| f.matches(t) && t.index_uid.as_ref().is_none_or(|i| caller.index_ok(i)))
            .map(|t| t.uid)
            .collect()
    };
    let original = format!("?{}", r.raw_query);
    let (count_key, payload) = if kind == "taskCancelation" {
        ("canceledTasks", Payload::Cancel(matched.clone()))
    } else {
        ("deletedTasks", Payload::DeleteTasks(matched.clone()))
    };
    let details = Obj::new()
        .with("matchedTasks", matched.len())
        .with(count_key, Value::Null)
        .with("originalFilter", json!(original));
    // Meilisearch answers task cancelation/deletion with 200 (not 202), same summary body.
    let t = app.node.enqueue(None, kind, Some(details), payload)?;
    Ok(resp(200, t.summary().to_bytes()))
}

fn keys_route(app: &App, r: &Req, s: &[&str]) -> Result<Resp> {
    let Some(master) = app.node.master_key.clone() else {
        return Err(ApiError::new(401, "missing_master_key", "Meilisearch is running without a master key. To access this API endpoint, you must have set a master key at launch."));
    };
    let now = timefmt::now();
    match (s, r.method.as_str()) {
        (["keys"], "GET") => {
            authorize(app, r, "keys.get", None)?;
            let offset = usize_param(r, "offset", "invalid_api_key_offset", 0)?;
            let limit = usize_param(r, "limit", "invalid_api_key_limit", 20)?;
            let inner = app.node.inner.lock().unwrap_or_else(|e| e.into_inner());
            let mut all: Vec<&Key> = inner.keys.iter().collect();
            all.sort_by_key(|k| std::cmp::Reverse(k.created_at));
            let results: Vec<Out> = all
                .iter()
                .skip(offset)
                .take(limit)
                .map(|k| k.view())
                .collect();
            ok(Out::obj()
                .with("results", Out::Arr(results))
                .with("offset", json!(offset))
                .with("limit", json!(limit))
                .with("total", json!(all.len())))
        }
        (["keys"], "POST") => {
            authorize(app, r, "keys.create", None)?;
            let key = keys::create(&json_body(r)?, &master, now, || {
                uuid::Uuid::new_v4().hyphenated().to_string()
            })?;
            if app
                .node
                .inner
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .keys
                .iter()
                .any(|k| k.uid == key.uid)
            {
                return Err(ApiError::new(
                    409,
                    "api_key_already_exists",
                    format!(
                        "`uid` field value `{}` is already an existing API key.",
                        key.uid
                    ),
                ));
            }
            app.node.put_key(key.clone())?;
            Ok(resp(201, key.view().to_bytes()))
        }
        (["keys", id], m) => {
            let action = match m {
                "GET" => "keys.get",
                "PATCH" => "keys.update",
                _ => "keys.delete",
            };
            authorize(app, r, action, None)?;
            let found = app
                .node
                .inner
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .keys
                .iter()
                .find(|k| k.uid == *id || k.key == *id)
                .cloned();
            let mut key = found.ok_or_else(|| ApiError::key_not_found(id))?;
            match m {
                "GET" => ok(key.view()),
                "PATCH" => {
                    keys::update(&mut key, &json_body(r)?, now)?;
                    app.node.put_key(key.clone())?;
                    ok(key.view())
                }
                _ => {
                    app.node.delete_key(&key.uid)?;
                    Ok(empty(204))
                }
            }
        }
        _ => Ok(empty(405)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_search_errors_are_located_inside_the_query() {
        let at = ".queries[1]";
        assert_eq!(
            relocate_into(
                "Invalid value type at `.limit`: expected a positive integer",
                at
            ),
            "Invalid value type at `.queries[1].limit`: expected a positive integer"
        );
        assert_eq!(
            relocate_into("Unknown field `foo`: expected one of `q`", at),
            "Unknown field `foo` inside `.queries[1]`: expected one of `q`"
        );
        assert_eq!(
            relocate_into("Missing field `indexUid`", at),
            "Missing field `indexUid` inside `.queries[1]`"
        );
        assert_eq!(
            relocate_into(
                "Unknown value `x` at `.matchingStrategy`: expected one of `last`",
                at
            ),
            "Unknown value `x` at `.queries[1].matchingStrategy`: expected one of `last`"
        );
        assert_eq!(
            relocate_into("Invalid value type: expected an object", at),
            "Invalid value type at `.queries[1]`: expected an object"
        );
    }

    #[test]
    fn query_decoding() {
        assert_eq!(
            parse_query("a=1&b=x%20y+z&c"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y z".into()),
                ("c".into(), "".into())
            ]
        );
        assert_eq!(pct_decode("%2", false), "%2");
        assert_eq!(pct_decode("a%2Fb", false), "a/b");
    }

    #[test]
    fn templates() {
        let t = |p: &str| {
            template(
                &p.split('/')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(t("/indexes/movies/search"), "/indexes/{uid}/search");
        assert_eq!(
            t("/indexes/movies/documents/42"),
            "/indexes/{uid}/documents/{id}"
        );
        assert_eq!(
            t("/indexes/movies/documents/fetch"),
            "/indexes/{uid}/documents/fetch"
        );
        assert_eq!(t("/tasks/12"), "/tasks/{uid}");
        assert_eq!(t("/tasks/cancel"), "/tasks/cancel");
        assert_eq!(t("/health"), "/health");
    }
}
