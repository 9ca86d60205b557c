//! Running an export: for each index an export pattern matches, the target gets the index
//! (created with its primary key when missing), its settings (when created, or when
//! `overrideSettings`) and its documents — gathered shard by shard from one readable copy
//! each, without Miroir's reserved fields, `_vectors` included — as gzip-compressed NDJSON
//! payloads of at most `payloadSize` bytes, the way Meilisearch 1.50 sends them.

use super::request::{ExportRequest, IndexExport};
use crate::http_types::{encode_segment, ApiError};
use crate::node_client::{NodeClient, NodeResponse, Payload};
use crate::node_health::NodeHealth;
use crate::shard_scan::ShardSource;
use crate::state::Admin;
use bytes::Bytes;
use hyper::Method;
use miroir_core::documents::{shard_clause, RESERVED_PREFIX};
use miroir_core::error::ErrorCode;
use miroir_core::node_message::scrub_reserved;
use miroir_core::ShardId;
use serde_json::{json, Value};
use std::io::Write;
use std::time::Duration;

/// Meilisearch's default payload: its HTTP payload limit (100 MB) minus 1 MiB.
const DEFAULT_PAYLOAD_SIZE: u64 = 100_000_000 - 1_048_576;
/// Documents read from a node per page.
const PAGE: u32 = 500;
/// Each call to the target; Meilisearch's export uses 5 s.
const TARGET_TIMEOUT: Duration = Duration::from_secs(5);
/// Retries of transient failures stop after this long (Meilisearch: backoff's default 15 min).
const RETRY_FOR: Duration = Duration::from_secs(15 * 60);

/// Exports every matching index; the finished task's details.
pub async fn run(admin: &Admin, req: ExportRequest) -> Result<Value, ApiError> {
    let target = Target {
        client: admin.client.with_bearer(req.api_key.as_deref()),
        base: req.url.trim_end_matches('/').to_string(),
    };
    let limit = req.payload_size.unwrap_or(DEFAULT_PAYLOAD_SIZE).max(1) as usize;
    let mut uids: Vec<String> = admin.lock().indexes.keys().cloned().collect();
    uids.sort();
    let mut exported = Vec::new();
    for uid in uids {
        let Some(settings) = req.settings_for(&uid).cloned() else {
            continue;
        };
        let n = export_index(admin, &target, &uid, &settings, limit).await?;
        exported.push((uid, n));
    }
    Ok(req.finished_details(&exported))
}

struct Target {
    client: NodeClient,
    base: String,
}

impl Target {
    /// One call, retried while the failure is transient (no answer, 408, 429, 5xx) with
    /// exponential backoff, as Meilisearch's export does.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Payload>,
    ) -> Result<NodeResponse, ApiError> {
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(500);
        loop {
            let r = self
                .client
                .send_payload(
                    &self.base,
                    method.clone(),
                    path,
                    body.clone(),
                    TARGET_TIMEOUT,
                )
                .await;
            let transient = match &r {
                Ok(r) => matches!(r.status, 408 | 429 | 500 | 502 | 503 | 504),
                Err(_) => true,
            };
            if !transient || started.elapsed() + pause > RETRY_FOR {
                return match r {
                    Ok(r) => Ok(r),
                    Err(e) => Err(ApiError::internal(format!(
                        "Failed to export documents to remote server: {e}"
                    ))),
                };
            }
            tokio::time::sleep(pause).await;
            pause = (pause.mul_f32(1.5)).min(Duration::from_secs(60));
        }
    }

    async fn json(&self, method: Method, path: &str, body: &Value) -> Result<(), ApiError> {
        let payload = Payload {
            bytes: Bytes::from(serde_json::to_vec(body).expect("JSON serialises")),
            content_type: "application/json".into(),
            content_encoding: None,
        };
        let r = self.call(method, path, Some(payload)).await?;
        remote_result(&r)
    }
}

/// A target's refusal as Meilisearch reports it: `internal`, the remote error inside.
fn remote_result(r: &NodeResponse) -> Result<(), ApiError> {
    if r.is_success() {
        return Ok(());
    }
    let v = r.json();
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Err(ApiError::internal(format!(
        "Failed to export documents to remote server {} ({}): {} <{}>",
        s("code"),
        s("type"),
        s("message"),
        s("link")
    )))
}

async fn export_index(
    admin: &Admin,
    target: &Target,
    uid: &str,
    settings: &IndexExport,
    limit: usize,
) -> Result<u64, ApiError> {
    let Some(meta) = admin.index(uid) else {
        return Ok(0);
    };
    let index_path = format!("/indexes/{}", encode_segment(uid));
    let probe = target.call(Method::GET, &index_path, None).await?;
    let exists = match probe.status {
        200 => true,
        _ if probe.json()["code"] == "index_not_found" => false,
        _ => {
            remote_result(&probe)?;
            true
        }
    };
    if !exists {
        target
            .json(
                Method::POST,
                "/indexes",
                &json!({"uid": uid, "primaryKey": meta.primary_key}),
            )
            .await?;
    } else if settings.override_settings {
        target
            .json(
                Method::PATCH,
                &index_path,
                &json!({"primaryKey": meta.primary_key}),
            )
            .await?;
    }
    if !exists || settings.override_settings {
        let resp = crate::reads::settings_read(admin, uid, None).await?;
        let client_settings: Value = serde_json::from_slice(&resp.body)
            .map_err(|e| ApiError::internal(format!("reading the settings of `{uid}`: {e}")))?;
        target
            .json(
                Method::PATCH,
                &format!("{index_path}/settings"),
                &client_settings,
            )
            .await?;
    }

    let documents_path = format!("{index_path}/documents");
    let mut batch = Batch::new(limit);
    let mut total = 0u64;
    for shard in 0..meta.shards {
        let shard = ShardId(shard);
        let node = readable_copy(admin, shard).ok_or_else(|| {
            ApiError::core(
                ErrorCode::MiroirShardUnavailable,
                format!(
                    "Index `{uid}`: shard {} has no reachable copy, nothing more was exported.",
                    shard.0
                ),
            )
        })?;
        let source = ShardSource {
            client: &admin.client,
            node_url: &node.address,
            index: uid,
            shard,
        };
        let filter = restrict(&settings.filter, shard);
        let mut offset = 0u64;
        loop {
            let page = source
                .filtered_page(&filter, offset, PAGE)
                .await
                .map_err(|e| filter_error(uid, e))?;
            let n = page.len() as u64;
            for mut doc in page {
                // Reserved fields are Miroir's; an empty `_vectors` is how a node answers
                // `retrieveVectors` for a document without embeddings, and Meilisearch's
                // export leaves it out then.
                doc.retain(|k, v| {
                    let no_vectors = k == "_vectors" && v.as_object().is_some_and(|m| m.is_empty());
                    !(k.starts_with(RESERVED_PREFIX) || no_vectors)
                });
                let line = serde_json::to_vec(&doc).expect("a document serialises");
                if let Some(full) = batch.push(&line) {
                    send(target, &documents_path, full).await?;
                }
                total += 1;
            }
            offset += n;
            if n < u64::from(PAGE) {
                break;
            }
        }
    }
    if let Some(rest) = batch.finish() {
        send(target, &documents_path, rest).await?;
    }
    Ok(total)
}

/// The shard restriction ANDed with the export's filter (array form keeps the client's
/// filter intact, as the search path does).
fn restrict(filter: &Value, shard: ShardId) -> Value {
    let ours = Value::String(shard_clause(&[shard]));
    match filter {
        Value::Null => ours,
        Value::String(s) if s.trim().is_empty() => ours,
        Value::Array(items) => {
            let mut v = vec![ours];
            v.extend(items.iter().cloned());
            Value::Array(v)
        }
        other => Value::Array(vec![ours, other.clone()]),
    }
}

/// A node's refusal of the filter, as Meilisearch words it (`Index `x`: …`), without
/// Miroir's reserved attribute in the message.
fn filter_error(uid: &str, e: crate::shard_scan::ScanError) -> ApiError {
    match e {
        crate::shard_scan::ScanError::Refused { status, body, .. }
            if (400..500).contains(&status) =>
        {
            let mut v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if let Some(m) = v.get("message").and_then(Value::as_str) {
                let m = scrub_reserved(m).unwrap_or_else(|| m.to_string());
                v["message"] = Value::String(format!("Index `{uid}`: {m}"));
                return ApiError::Node { status, body: v };
            }
            ApiError::internal(format!("Index `{uid}`: {body}"))
        }
        other => ApiError::core(
            ErrorCode::MiroirNodeUnreachable,
            format!("Index `{uid}`: reading documents failed: {other}"),
        ),
    }
}

/// One readable owner of `shard` (the first group that has one).
fn readable_copy(admin: &Admin, shard: ShardId) -> Option<NodeHealth> {
    let nodes = admin.nodes();
    (0..admin.replica_groups()).find_map(|g| {
        let members: Vec<&str> = nodes
            .iter()
            .filter(|n| n.group == g && n.status.owns_shards())
            .map(|n| n.id.as_str())
            .collect();
        crate::coverage::owners(shard.0, &members, admin.config.replication_factor)
            .into_iter()
            .find_map(|id| nodes.iter().find(|n| n.id == id && n.is_live()).cloned())
    })
}

async fn send(target: &Target, path: &str, ndjson: Vec<u8>) -> Result<(), ApiError> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let bytes = gz
        .write_all(&ndjson)
        .and_then(|_| gz.finish())
        .map_err(|e| ApiError::internal(format!("compressing an export payload: {e}")))?;
    let payload = Payload {
        bytes: Bytes::from(bytes),
        content_type: "application/x-ndjson".into(),
        content_encoding: Some("gzip"),
    };
    let r = target.call(Method::POST, path, Some(payload)).await?;
    remote_result(&r)
}

/// NDJSON lines collected up to a byte limit (a line larger than the limit goes alone).
pub struct Batch {
    buf: Vec<u8>,
    limit: usize,
}

impl Batch {
    pub fn new(limit: usize) -> Batch {
        Batch {
            buf: Vec::new(),
            limit,
        }
    }

    /// Adds one line; returns the previous payload when this line would overflow it.
    pub fn push(&mut self, line: &[u8]) -> Option<Vec<u8>> {
        let full = (!self.buf.is_empty() && self.buf.len() + line.len() + 1 > self.limit)
            .then(|| std::mem::take(&mut self.buf));
        self.buf.extend_from_slice(line);
        self.buf.push(b'\n');
        full
    }

    pub fn finish(self) -> Option<Vec<u8>> {
        (!self.buf.is_empty()).then_some(self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn filters_keep_the_clients_form() {
        let s = ShardId(3);
        assert_eq!(restrict(&Value::Null, s), json!(shard_clause(&[s])));
        assert_eq!(
            restrict(&json!("g = x"), s),
            json!([shard_clause(&[s]), "g = x"])
        );
        assert_eq!(
            restrict(&json!(["a = 1", ["b = 2", "c = 3"]]), s),
            json!([shard_clause(&[s]), "a = 1", ["b = 2", "c = 3"]])
        );
    }

    proptest! {
        #[test]
        fn batches_keep_every_line_in_order_within_the_limit(
            lines in proptest::collection::vec("[a-z]{0,30}", 0..50),
            limit in 1usize..100,
        ) {
            let mut b = Batch::new(limit);
            let mut out: Vec<Vec<u8>> = Vec::new();
            for l in &lines {
                if let Some(full) = b.push(l.as_bytes()) {
                    out.push(full);
                }
            }
            out.extend(b.finish());
            let joined: Vec<u8> = out.concat();
            let expected: Vec<u8> = lines.iter().flat_map(|l| l.bytes().chain([b'\n'])).collect();
            prop_assert_eq!(joined, expected);
            for p in &out {
                // A payload exceeds the limit only when it is a single line.
                prop_assert!(p.len() <= limit || p.iter().filter(|&&c| c == b'\n').count() == 1);
            }
        }
    }
}
