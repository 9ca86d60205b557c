//! Document writes (docs/contract.md#writes): routed (add/update, delete by id, delete-batch)
//! and broadcast (delete by filter, delete all).
//!
//! 1. **Plan (pure).** The body is decoded and validated completely by the core
//!    (`miroir_core::documents::check_batch`: primary key, ids, reserved fields, the
//!    `_miroir_shard` injection) — a payload Meilisearch refuses (syntax) or a reserved field
//!    is a 4xx and no node is touched; a batch whose task fails on Meilisearch (no resolvable
//!    primary key, a missing or invalid id) is a **failed task** and no node is touched either
//!    (see below). If the index
//!    is unknown to the snapshot, has no primary key yet, or the batch brings fields the index
//!    has never seen, the admin is asked first (`prepare-write` over the control socket): it
//!    creates the index / sets the primary key / enqueues the nodes' extended searchable list
//!    *before* these documents, and returns the `IndexMeta` to use.
//! 2. **Dispatch.** Shards are grouped per target node (owners in every group, plus migration
//!    targets) and each node gets one request with all its shards' documents, all in
//!    parallel. Nodes whose status is `failed` are not contacted (they count as misses).
//!    Before that, the write is refused with `503 miroir_no_quorum` (nothing written) when
//!    the nodes that can be contacted could not reach `write_consistency` even if all
//!    accepted. A copy with pending hints (lagging, decision 021) is not sent the shard's
//!    documents: the write becomes one more hint for it, replayed in order.
//! 3. **Combine (pure).** [`crate::proxy::quorum::evaluate_quorum`]: `write_consistency`
//!    owners per group (decision 020), at least one group per shard. Missed groups →
//!    `X-Miroir-Degraded: groups=…;shards=…`. A shard with no group after *some* copy
//!    accepted → registered anyway with `X-Miroir-Write-Consistency: degraded` (decision
//!    022); only when no node accepted anything → `503 miroir_no_quorum` (or, when nodes
//!    rejected the request as a client error, the first such error verbatim).
//!    Every copy the write missed is sent to the admin with the registration (`missed`),
//!    which keeps it as a durable hint and replays it when the node is back.
//! 4. **Register.** The node task uids are registered with the admin (`POST
//!    /_internal/v1/tasks`), which allocates the Miroir task uid and answers the summarized
//!    task that is relayed to the client (202).
//!
//! # The admin gate: `503 miroir_admin_unavailable` means nothing was written
//!
//! Step 4 needs the admin, and a write the nodes applied but that has no Miroir task is worse
//! than a refused one (the client sees an error, the data changed anyway). So between plan
//! and dispatch every write proves the admin is alive *now*: `GET /_internal/v1/ping` over
//! the control socket ([`PING_TIMEOUT`]), unless the plan already talked to the admin
//! (`prepare-write` is that proof). A dead admin is a connect error on the socket, answered
//! at once as `503 miroir_admin_unavailable` before any node is touched; the first write
//! after the admin is back goes through (no back-off state: every write asks afresh, and a
//! stale pooled control connection is replaced transparently since the ping is a `GET`).
//! Cost: one local Unix-socket round trip per write, none on searches.
//!
//! Remaining window (documented in docs/internals/control-protocol.md §3): the admin can
//! die after answering the ping and before the registration — i.e. during the node dispatch
//! of this one write (one parallel node round trip, at most `scatter.write_timeout_ms`). The
//! nodes then have the write and no Miroir task exists; the client gets `500 internal` with
//! a message saying exactly that ([`unregistered`]), never `miroir_admin_unavailable`. The
//! same answer covers a registration the admin refuses after the dispatch.
//!
//! # Failed tasks (docs/contract.md#primary-key)
//!
//! Meilisearch answers a batch without a resolvable primary key, or with a document lacking
//! its id or carrying an invalid one, `202`, and the task then fails with its own error;
//! SDK suites assert that sequence. Miroir must key every document to route it, so it finds
//! these errors while planning: nothing is sent to any node, and the admin registers a
//! Miroir task that is already `failed` with the exact error (`POST
//! /_internal/v1/tasks/failed`), details `{receivedDocuments: N, indexedDocuments: 0}`. The
//! client gets the summarized task (`202`, `enqueued`, as Meilisearch answers). As in
//! Meilisearch 1.50, whose scheduler creates a missing index before the addition fails, an
//! index unknown to Miroir is created first (`prepare-write` without a primary key), and
//! stays without one.
//!
//! Divergence (documented): deletes on an index unknown to Miroir answer `404
//! index_not_found` synchronously (Meilisearch enqueues a task that fails).

use crate::http::types::{Method, Request, Response};
use crate::proxy::control::{admin_error, internal_request};
use crate::proxy::offload;
use crate::proxy::query::query_pairs;
use crate::proxy::quorum::{evaluate_quorum, ShardTargets};
use crate::proxy::reads::encode_path_segment;
use crate::proxy::router::{Route, WriteMode};
use crate::proxy::upstream::{is_node_failure, relay, Upstreams};
use crate::proxy::{error, index_not_found, Proxy, CONTROL_TIMEOUT};
use miroir_core::config::WriteConsistency;
use miroir_core::control::{
    ControlMessage, Endpoint, FailedNode, FailedTaskRegistration, MissedCopy, NodeTask,
    PrepareWrite, Prepared, ReplayRequest, TaskError, TaskRegistration,
};
use miroir_core::documents::{
    check_batch, prepare_delete_batch, BatchOptions, FailedBatch, PayloadFormat, PreparedBatch,
};
use miroir_core::routing::ShardMap;
use miroir_core::snapshot::{IndexMeta, Snapshot};
use miroir_core::topology::NodeStatus;
use miroir_core::{ErrorCode, MeiliError, NodeId, ShardId};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

/// Deadline of the admin liveness check before a write. The admin answers the ping without
/// touching its store, so only a hung (not dead) admin can reach it; a dead one is refused
/// by the socket at once. Same order as the admin's own heartbeat timeout for data planes.
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);

const ACCEPTED_TYPES: &str = "`application/json`, `application/x-ndjson`, `text/csv`";

/// Query parameters of a document write.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WriteParams {
    pub primary_key: Option<String>,
    pub csv_delimiter: Option<u8>,
    /// Parameters forwarded to nodes unchanged (e.g. `customMetadata`).
    pub passthrough: Vec<(String, String)>,
}

/// Reads `?primaryKey=&csvDelimiter=&…`.
pub fn parse_write_params(qs: &str) -> Result<WriteParams, MeiliError> {
    let pairs = query_pairs(qs).ok_or_else(|| {
        MeiliError::new(
            ErrorCode::BadRequest,
            "The query string is not valid percent-encoding.",
        )
    })?;
    let mut p = WriteParams::default();
    for (k, v) in pairs {
        match k.as_str() {
            "primaryKey" => p.primary_key = Some(v),
            "csvDelimiter" => {
                // ASSUMPTION: Meilisearch's wording for a delimiter that is not one ASCII char.
                if v.len() != 1 || !v.is_ascii() {
                    return Err(MeiliError::new(
                        ErrorCode::InvalidDocumentCsvDelimiter,
                        format!("Invalid value in parameter `csvDelimiter`: expected a string of one character, but found the following string of {} characters: `{v}`", v.chars().count()),
                    ));
                }
                p.csv_delimiter = Some(v.as_bytes()[0]);
            }
            _ => p.passthrough.push((k, v)),
        }
    }
    Ok(p)
}

/// The payload format from `Content-Type`, with Meilisearch's 415 errors.
/// Messages as Meilisearch 1.50 words them (checked against a real node).
pub fn payload_format(
    content_type: Option<&[u8]>,
    csv_delimiter: u8,
) -> Result<PayloadFormat, MeiliError> {
    let Some(ct) = content_type else {
        return Err(MeiliError::new(
            ErrorCode::MissingContentType,
            format!("A Content-Type header is missing. Accepted values for the Content-Type header are: {ACCEPTED_TYPES}"),
        ));
    };
    let ct = String::from_utf8_lossy(ct);
    PayloadFormat::from_content_type(&ct, csv_delimiter).ok_or_else(|| {
        MeiliError::new(
            ErrorCode::InvalidContentType,
            format!("The Content-Type `{ct}` is invalid. Accepted values for the Content-Type header are: {ACCEPTED_TYPES}"),
        )
    })
}

/// The query string for the node requests: the resolved primary key is always sent so that
/// no node ever infers a different one from its subset of documents.
pub fn node_write_query(primary_key: Option<&str>, params: &WriteParams) -> String {
    let mut parts = Vec::new();
    if let Some(pk) = primary_key {
        parts.push(format!("primaryKey={}", encode_path_segment(pk)));
    }
    if let Some(d) = params.csv_delimiter {
        parts.push(format!(
            "csvDelimiter={}",
            encode_path_segment(&(d as char).to_string())
        ));
    }
    for (k, v) in &params.passthrough {
        parts.push(format!(
            "{}={}",
            encode_path_segment(k),
            encode_path_segment(v)
        ));
    }
    parts.join("&")
}

/// Where each shard's writes go, per group, plus migration targets.
pub fn shard_targets(
    map: &ShardMap,
    snap: &Snapshot,
    index: &str,
    shards: &[ShardId],
) -> Vec<ShardTargets> {
    shards
        .iter()
        .map(|&shard| {
            // A group without owners (a removed group's empty slot, a group still joining)
            // takes no write and counts for no quorum.
            let groups = (0..map.replica_groups())
                .map(|g| {
                    let g = miroir_core::GroupId(g);
                    (g, map.owners(g, shard).to_vec())
                })
                .filter(|(_, owners)| !owners.is_empty())
                .collect();
            let extra = snap
                .migrations
                .iter()
                .filter(|m| m.index == index && m.shard == shard)
                .map(|m| m.to.clone())
                .collect();
            ShardTargets {
                shard,
                groups,
                extra,
            }
        })
        .collect()
}

/// The `taskUid` of a node's summarized task (Meilisearch task uids are `u32`).
pub fn task_uid(body: &[u8]) -> Option<u32> {
    serde_json::from_slice::<Value>(body)
        .ok()?
        .get("taskUid")?
        .as_u64()
        .and_then(|u| u32::try_from(u).ok())
}

/// What was prepared for the nodes.
enum Payload {
    /// Documents or ids grouped by shard; renders one body per node.
    Docs {
        batch: miroir_core::documents::PreparedBatch,
    },
    Ids {
        batch: miroir_core::documents::DeleteBatch,
    },
    /// The same body for every node (delete by filter), or none (delete all, delete by id).
    Same(Vec<u8>),
}

impl Payload {
    fn render(&self, shards: &[ShardId]) -> Vec<u8> {
        match self {
            Payload::Docs { batch } => batch.render(shards),
            Payload::Ids { batch } => batch.render(shards),
            Payload::Same(b) => b.clone(),
        }
    }
}

/// One planned write, ready to dispatch.
struct WritePlan {
    meta: IndexMeta,
    method: Method,
    path: String,
    query: String,
    content_type: Option<&'static str>,
    payload: Payload,
    shards: Vec<ShardId>,
    task_type: &'static str,
    details: Value,
    /// The admin answered during planning (`prepare-write`): that is the liveness proof.
    admin_answered: bool,
    /// The write's task fails without reaching any node (module docs, "Failed tasks").
    failure: Option<TaskError>,
}

impl<U: Upstreams> Proxy<U> {
    pub(crate) async fn write(
        &self,
        snap: &Snapshot,
        route: Route,
        req: Request,
        rid: &str,
    ) -> Response {
        // Meilisearch 1.50 echoes `?customMetadata=` in the task; Miroir's task carries it.
        let custom_metadata = crate::proxy::query::query_pairs(&req.query)
            .unwrap_or_default()
            .into_iter()
            .find(|(k, _)| k == "customMetadata")
            .map(|(_, v)| v);
        let mut plan = match self.plan_write(snap, route, req, rid).await {
            Ok(p) => p,
            Err(resp) => return resp,
        };
        if let Some(error) = plan.failure.take() {
            // No node is touched: the admin's answer is all there is to wait for.
            return self
                .register_failed(plan, error, custom_metadata, rid)
                .await;
        }
        // Last step before any node is touched (see the module docs).
        if !plan.admin_answered {
            if let Err(resp) = self.admin_alive(rid).await {
                return resp;
            }
        }
        self.dispatch_write(snap, plan, custom_metadata, rid).await
    }

    /// `GET /_internal/v1/ping` → `Ok` when the admin answers 2xx; otherwise the `503
    /// miroir_admin_unavailable` to send (nothing has been written yet).
    async fn admin_alive(&self, rid: &str) -> Result<(), Response> {
        let req = internal_request(Endpoint::Ping, None, rid);
        match self.up.admin(req, PING_TIMEOUT).await {
            Ok(r) if (200..300).contains(&r.status) => Ok(()),
            // An admin that answers but refuses the ping (e.g. another control protocol
            // version) would refuse the registration too.
            Ok(r) => Err(error(&MeiliError::new(
                ErrorCode::MiroirAdminUnavailable,
                format!(
                    "The Miroir admin process refused the data plane's liveness check (HTTP {}): {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ),
            ))),
            Err(e) => Err(error(&admin_error(&e))),
        }
    }

    async fn plan_write(
        &self,
        snap: &Snapshot,
        route: Route,
        req: Request,
        rid: &str,
    ) -> Result<WritePlan, Response> {
        match route {
            Route::DocumentsWrite { index, mode } => {
                self.plan_documents(snap, &index, mode, req, rid).await
            }
            Route::DocumentsDeleteBatch { index } => {
                let meta = snap
                    .indexes
                    .get(&index)
                    .ok_or_else(|| error(&index_not_found(&index)))?
                    .clone();
                let batch =
                    prepare_delete_batch(&req.body, meta.shards).map_err(|e| error(&e.into()))?;
                let shards: Vec<ShardId> = batch.shard_ids().collect();
                let details = json!({"providedIds": batch.id_count(), "deletedDocuments": null});
                Ok(WritePlan {
                    path: format!("/indexes/{index}/documents/delete-batch"),
                    meta,
                    method: Method::Post,
                    query: String::new(),
                    content_type: Some("application/json"),
                    payload: Payload::Ids { batch },
                    shards,
                    task_type: "documentDeletion",
                    details,
                    admin_answered: false,
                    failure: None,
                })
            }
            Route::DocumentDelete { index, id } => {
                let meta = snap
                    .indexes
                    .get(&index)
                    .ok_or_else(|| error(&index_not_found(&index)))?
                    .clone();
                let shard = miroir_core::routing::shard_for_key(&id, meta.shards.max(1));
                Ok(WritePlan {
                    path: format!("/indexes/{index}/documents/{}", encode_path_segment(&id)),
                    meta,
                    method: Method::Delete,
                    query: String::new(),
                    content_type: None,
                    payload: Payload::Same(Vec::new()),
                    shards: vec![shard],
                    task_type: "documentDeletion",
                    details: json!({"providedIds": 1, "deletedDocuments": null}),
                    admin_answered: false,
                    failure: None,
                })
            }
            Route::DocumentsDeleteByFilter { index } => {
                let meta = snap
                    .indexes
                    .get(&index)
                    .ok_or_else(|| error(&index_not_found(&index)))?
                    .clone();
                // The nodes validate the filter; every node gets the client's body as is.
                let original = serde_json::from_slice::<Value>(&req.body)
                    .ok()
                    .and_then(|v| v.get("filter").cloned())
                    .map(|f| Value::String(f.to_string()))
                    .unwrap_or(Value::Null);
                let shards = (0..meta.shards).map(ShardId).collect();
                Ok(WritePlan {
                    path: format!("/indexes/{index}/documents/delete"),
                    meta,
                    method: Method::Post,
                    query: String::new(),
                    content_type: Some("application/json"),
                    payload: Payload::Same(req.body),
                    shards,
                    task_type: "documentDeletion",
                    details: json!({"providedIds": 0, "deletedDocuments": null, "originalFilter": original}),
                    admin_answered: false,
                    failure: None,
                })
            }
            Route::DocumentsDeleteAll { index } => {
                let meta = snap
                    .indexes
                    .get(&index)
                    .ok_or_else(|| error(&index_not_found(&index)))?
                    .clone();
                let shards = (0..meta.shards).map(ShardId).collect();
                Ok(WritePlan {
                    path: format!("/indexes/{index}/documents"),
                    meta,
                    method: Method::Delete,
                    query: String::new(),
                    content_type: None,
                    payload: Payload::Same(Vec::new()),
                    shards,
                    task_type: "documentDeletion",
                    details: json!({"deletedDocuments": null}),
                    admin_answered: false,
                    failure: None,
                })
            }
            _ => Err(error(&MeiliError::new(
                ErrorCode::Internal,
                "not a write route",
            ))),
        }
    }

    async fn plan_documents(
        &self,
        snap: &Snapshot,
        index: &str,
        mode: WriteMode,
        req: Request,
        rid: &str,
    ) -> Result<WritePlan, Response> {
        let params = parse_write_params(&req.query).map_err(|e| error(&e))?;
        let format = payload_format(
            req.header("content-type"),
            params.csv_delimiter.unwrap_or(b','),
        )
        .map_err(|e| error(&e))?;
        // An index being deleted is unknown to a write: on Meilisearch the write runs after
        // the deletion and re-creates it, so the admin's prepare-write (which waits for the
        // deletion) creates it afresh (docs/contract.md#index-deletion).
        let known = snap.indexes.get(index).filter(|m| !m.deleting);
        let shards = known.map_or(self.config.shards, |m| m.shards).max(1);
        // Decompression and parsing of a large batch run off the reactor (`offload`).
        let max = self.config.server.max_body_bytes as usize;
        let query_pk = params.primary_key.clone();
        let index_pk = known.and_then(|m| m.primary_key.clone());
        let encoded = Request {
            method: req.method,
            path: String::new(),
            query: String::new(),
            headers: req
                .headers
                .iter()
                .filter(|(n, _)| n == "content-encoding")
                .cloned()
                .collect(),
            body: req.body,
        };
        let prepared = offload::run(encoded.body.len(), move || {
            let decoded = encoded.decoded_body(max)?;
            let owned = match decoded {
                std::borrow::Cow::Owned(v) => Some(v),
                std::borrow::Cow::Borrowed(_) => None,
            };
            let body = owned.unwrap_or(encoded.body);
            let batch = prepare_with(
                &body,
                format,
                shards,
                index_pk.as_deref(),
                query_pk.as_deref(),
            )
            .map_err(MeiliError::from)?;
            Ok::<_, MeiliError>((body, batch))
        })
        .await
        .and_then(|r| r)
        .map_err(|e| error(&e))?;
        let (body, checked) = prepared;
        let mut batch = match checked {
            Ok(batch) => batch,
            Err(failed) => return self.failed_plan(index, known, failed, rid).await,
        };
        let prepare = |shards: u32, index_pk: Option<&str>| {
            prepare_with(
                &body,
                format,
                shards,
                index_pk,
                params.primary_key.as_deref(),
            )
            .map_err(|e| error(&e.into()))
        };
        let new_fields = batch.new_fields(known.map_or(&[][..], |m| &m.fields));
        let needs_admin = known.is_none_or(|m| m.primary_key.is_none()) || !new_fields.is_empty();
        let meta = if needs_admin {
            let pk = batch.primary_key();
            let prep = PrepareWrite {
                primary_key: pk.map(|p| p.name.clone()),
                primary_key_source: pk.map(|p| p.source),
                new_fields,
            };
            let meta = self.prepare_write(index, &prep, rid).await?;
            // The admin fixes S at index creation; re-plan if it differs from our guess, and
            // re-check the documents against the primary key it settled on.
            if meta.shards != shards
                || meta.primary_key.as_deref() != batch.primary_key().map(|p| p.name.as_str())
            {
                batch = match prepare(meta.shards.max(1), meta.primary_key.as_deref())? {
                    Ok(batch) => batch,
                    Err(failed) => return Ok(failed_write(index, meta, &failed)),
                };
            }
            meta
        } else {
            known
                .cloned()
                .expect("known when no admin round-trip is needed")
        };
        let pk = batch
            .primary_key()
            .map(|p| p.name.clone())
            .or_else(|| meta.primary_key.clone());
        let query = node_write_query(pk.as_deref(), &params);
        let shards: Vec<ShardId> = batch.shard_ids().collect();
        let details =
            json!({"receivedDocuments": batch.document_count(), "indexedDocuments": null});
        Ok(WritePlan {
            path: format!("/indexes/{index}/documents"),
            meta,
            method: if mode == WriteMode::Replace {
                Method::Post
            } else {
                Method::Put
            },
            query,
            content_type: Some(batch.format().content_type()),
            payload: Payload::Docs { batch },
            shards,
            task_type: "documentAdditionOrUpdate",
            details,
            admin_answered: needs_admin,
            failure: None,
        })
    }

    /// The plan of a batch whose task fails (module docs): an index unknown to Miroir is
    /// created first, as Meilisearch's scheduler creates it before the addition fails.
    async fn failed_plan(
        &self,
        index: &str,
        known: Option<&IndexMeta>,
        failed: FailedBatch,
        rid: &str,
    ) -> Result<WritePlan, Response> {
        let meta = match known {
            Some(meta) => meta.clone(),
            None => {
                let create = PrepareWrite {
                    primary_key: None,
                    primary_key_source: None,
                    new_fields: Vec::new(),
                };
                self.prepare_write(index, &create, rid).await?
            }
        };
        Ok(failed_write(index, meta, &failed))
    }

    /// `POST /_internal/v1/tasks/failed` → the summarized task (nothing was written).
    async fn register_failed(
        &self,
        plan: WritePlan,
        task_error: TaskError,
        custom_metadata: Option<String>,
        rid: &str,
    ) -> Response {
        let registration = FailedTaskRegistration {
            index_uid: Some(plan.meta.uid),
            task_type: plan.task_type.to_owned(),
            details: plan.details,
            error: task_error,
            custom_metadata,
        };
        let req = internal_request(
            Endpoint::RegisterFailedTask,
            Some(registration.encode()),
            rid,
        );
        match self.up.admin(req, CONTROL_TIMEOUT).await {
            Ok(r) => relay(r),
            Err(e) => error(&admin_error(&e)),
        }
    }

    /// `POST /_internal/v1/indexes/{uid}/prepare-write` → the `IndexMeta` to write with.
    async fn prepare_write(
        &self,
        index: &str,
        body: &PrepareWrite,
        rid: &str,
    ) -> Result<IndexMeta, Response> {
        let req = internal_request(Endpoint::PrepareWrite { index }, Some(body.encode()), rid);
        let resp = match self.up.admin(req, CONTROL_TIMEOUT).await {
            Ok(r) => r,
            Err(e) => return Err(error(&admin_error(&e))),
        };
        if !(200..300).contains(&resp.status) {
            return Err(relay(resp));
        }
        Prepared::decode(&resp.body).map(|p| p.index).map_err(|e| {
            error(&MeiliError::new(
                ErrorCode::Internal,
                format!("The admin's prepare-write answer is unreadable: {e}"),
            ))
        })
    }

    async fn dispatch_write(
        &self,
        snap: &Snapshot,
        plan: WritePlan,
        custom_metadata: Option<String>,
        rid: &str,
    ) -> Response {
        let routing = match self.routing(snap, &plan.meta) {
            Ok(r) => r,
            Err(e) => return error(&e),
        };
        let targets = shard_targets(&routing.shard_map, snap, &plan.meta.uid, &plan.shards);
        let per_node = crate::proxy::quorum::plan_node_batches(&targets);
        let level = self.config.write_consistency;
        let rf = snap.replication_factor;
        let status_of = |n: &NodeId| snap.nodes.iter().find(|x| &x.id == n).map(|x| x.status);
        let contactable = |n: &NodeId| {
            status_of(n).is_some_and(|s| s != NodeStatus::Failed && s.accepts_writes())
        };
        // A copy with pending hints gets this write as one more hint instead of directly, so
        // it applies its writes in the order they were acknowledged (decision 021).
        let lagging: HashSet<(&NodeId, ShardId)> = snap.lagging_for(&plan.meta.uid).collect();
        let possible = evaluate_quorum(&targets, rf, level, |n, s| {
            contactable(n) && !lagging.contains(&(n, s))
        });
        if !possible.succeeded() {
            // Known before any node is touched (like Elasticsearch's wait_for_active_shards):
            // refusing now writes nothing anywhere.
            return error(&no_quorum(&possible.no_quorum, &plan.meta.uid, level));
        }
        let mut send: Vec<(NodeId, Vec<ShardId>)> = Vec::new();
        let mut missed: Vec<(NodeId, Vec<ShardId>)> = Vec::new();
        let mut skipped = Vec::new();
        for (node, shards) in per_node {
            if !contactable(&node) {
                skipped.push(failed_node(
                    &node,
                    synth_error(&node, "is marked failed; not contacted"),
                ));
                missed.push((node, shards));
                continue;
            }
            let (behind, now): (Vec<ShardId>, Vec<ShardId>) = shards
                .into_iter()
                .partition(|s| lagging.contains(&(&node, *s)));
            if !behind.is_empty() {
                missed.push((node.clone(), behind));
            }
            if !now.is_empty() {
                send.push((node, now));
            }
        }
        let timeout = self.write_timeout();
        let calls = send.iter().map(|(node, shards)| {
            let mut req = Request {
                method: plan.method,
                path: plan.path.clone(),
                query: plan.query.clone(),
                headers: Vec::new(),
                body: plan.payload.render(shards),
            };
            if let Some(ct) = plan.content_type {
                req.headers
                    .push(("content-type".into(), ct.as_bytes().to_vec()));
            }
            self.call_node(node, req, rid, timeout)
        });
        let answers = futures_util::future::join_all(calls).await;
        let mut node_tasks = Vec::new();
        let mut failed = Vec::new();
        let mut client_error: Option<Response> = None;
        let mut accepted: HashSet<(NodeId, ShardId)> = HashSet::new();
        for ((node, shards), answer) in send.iter().zip(answers) {
            let error = match answer {
                Ok(resp) if (200..300).contains(&resp.status) => match task_uid(&resp.body) {
                    Some(task_uid) => {
                        node_tasks.push(NodeTask {
                            node: node.clone(),
                            task_uid,
                        });
                        accepted.extend(shards.iter().map(|s| (node.clone(), *s)));
                        continue;
                    }
                    None => synth_error(node, "answered without a taskUid"),
                },
                Ok(resp) => {
                    let err = serde_json::from_slice::<Value>(&resp.body)
                        .ok()
                        .filter(Value::is_object)
                        .unwrap_or_else(|| {
                            synth_error(node, &format!("answered HTTP {}", resp.status))
                        });
                    if !is_node_failure(resp.status) && client_error.is_none() {
                        client_error = Some(relay(resp));
                    }
                    err
                }
                Err(e) => synth_error(node, &format!("{e:?}")),
            };
            failed.push(failed_node(node, error));
            missed.push((node.clone(), shards.clone()));
        }
        failed.extend(skipped);
        let report = evaluate_quorum(&targets, rf, level, |n, s| {
            accepted.contains(&(n.clone(), s))
        });
        if !report.succeeded() && node_tasks.is_empty() {
            // Nothing was written anywhere: the one case that stays an error (decision 022).
            if let Some(resp) = client_error {
                return resp;
            }
            return error(&no_quorum(&report.no_quorum, &plan.meta.uid, level));
        }
        let missed = missed
            .into_iter()
            .map(|(node, shards)| MissedCopy {
                replay: ReplayRequest {
                    method: plan.method.as_str().to_owned(),
                    path: plan.path.clone(),
                    query: plan.query.clone(),
                    content_type: plan.content_type.map(str::to_owned),
                    body: String::from_utf8_lossy(&plan.payload.render(&shards)).into_owned(),
                },
                node,
                shards,
            })
            .collect();
        let registration = TaskRegistration {
            index_uid: Some(plan.meta.uid.clone()),
            task_type: plan.task_type.to_owned(),
            details: plan.details,
            node_tasks,
            failed_nodes: failed,
            custom_metadata,
            missed,
            degraded: !report.succeeded(),
        };
        let req = internal_request(Endpoint::RegisterTask, Some(registration.encode()), rid);
        let node_tasks = registration.node_tasks;
        // The nodes have the write now: whatever goes wrong from here is not "nothing was
        // written", so it must not be `miroir_admin_unavailable`.
        let mut resp = match self.up.admin(req, CONTROL_TIMEOUT).await {
            Ok(r) if (200..300).contains(&r.status) => relay(r),
            Ok(r) => {
                let why = format!(
                    "the admin refused it (HTTP {}): {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                );
                return error(&unregistered(&plan.meta.uid, &node_tasks, &why));
            }
            Err(e) => {
                let why = format!("the admin became unreachable ({e:?})");
                return error(&unregistered(&plan.meta.uid, &node_tasks, &why));
            }
        };
        if let Some(d) = report.degraded_header() {
            resp.headers
                .push(("x-miroir-degraded".into(), d.into_bytes()));
        }
        if !report.succeeded() {
            resp.headers
                .push((WRITE_CONSISTENCY_HEADER.into(), b"degraded".to_vec()));
        }
        resp
    }
}

/// Set to `degraded` on a `202` whose write missed `write_consistency` for some shard after
/// some copies accepted it: the task exists and the missing copies are completed from hints
/// (docs/contract.md#write-consistency, decision 022).
pub const WRITE_CONSISTENCY_HEADER: &str = "x-miroir-write-consistency";

fn no_quorum(shards: &[ShardId], index: &str, level: WriteConsistency) -> MeiliError {
    let list = shards
        .iter()
        .map(|s| s.0.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    MeiliError::new(
        ErrorCode::MiroirNoQuorum,
        format!(
            "No replica group reached a write quorum for shard(s) {list} of index `{index}` (write_consistency `{}`).",
            level.as_str()
        ),
    )
}

/// `check_batch` with the options a document write has.
fn prepare_with(
    body: &[u8],
    format: PayloadFormat,
    shards: u32,
    index_pk: Option<&str>,
    query_pk: Option<&str>,
) -> Result<Result<PreparedBatch, FailedBatch>, miroir_core::documents::DocumentError> {
    let opts = BatchOptions {
        index_primary_key: index_pk,
        query_primary_key: query_pk,
        shards,
        extra_reserved: &[],
    };
    check_batch(body, format, &opts)
}

/// A document write that reaches no node: its task fails with Meilisearch's error, and
/// reports what Meilisearch's failed addition does (`indexedDocuments: 0`).
fn failed_write(index: &str, meta: IndexMeta, failed: &FailedBatch) -> WritePlan {
    let error = MeiliError::from(failed.error.clone());
    WritePlan {
        path: format!("/indexes/{index}/documents"),
        meta,
        method: Method::Post,
        query: String::new(),
        content_type: None,
        payload: Payload::Same(Vec::new()),
        shards: Vec::new(),
        task_type: "documentAdditionOrUpdate",
        details: json!({"receivedDocuments": failed.documents, "indexedDocuments": 0}),
        admin_answered: false,
        failure: Some(TaskError::from(&error)),
    }
}

/// The error of a write the nodes accepted but that has no Miroir task (the admin died or
/// refused between the liveness check and the registration; see the module docs).
fn unregistered(index: &str, node_tasks: &[NodeTask], why: &str) -> MeiliError {
    let tasks = node_tasks
        .iter()
        .map(|t| format!("{}#{}", t.node, t.task_uid))
        .collect::<Vec<_>>()
        .join(", ");
    MeiliError::new(
        ErrorCode::Internal,
        format!("The write to index `{index}` reached the nodes (node tasks: {tasks}) but its Miroir task could not be registered: {why}. The change may be applied without a Miroir task."),
    )
}

fn failed_node(node: &NodeId, error: Value) -> FailedNode {
    FailedNode {
        node: node.clone(),
        error,
    }
}

/// A Meilisearch-shaped error object for a node that gave no usable answer.
fn synth_error(node: &NodeId, what: &str) -> Value {
    let e = MeiliError::new(ErrorCode::Unavailable, format!("Node `{node}` {what}."));
    serde_json::from_slice(&e.to_body()).expect("MeiliError bodies are JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params() {
        let p = parse_write_params("primaryKey=sku&csvDelimiter=%3B&customMetadata=x").unwrap();
        assert_eq!(p.primary_key.as_deref(), Some("sku"));
        assert_eq!(p.csv_delimiter, Some(b';'));
        assert_eq!(
            p.passthrough,
            vec![("customMetadata".to_string(), "x".to_string())]
        );
        let e = parse_write_params("csvDelimiter=ab").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidDocumentCsvDelimiter);
        assert_eq!(
            node_write_query(Some("sku"), &p),
            "primaryKey=sku&csvDelimiter=%3B&customMetadata=x"
        );
        assert_eq!(node_write_query(None, &WriteParams::default()), "");
    }

    #[test]
    fn content_types() {
        assert_eq!(
            payload_format(Some(b"application/json"), b',').unwrap(),
            PayloadFormat::Json
        );
        assert_eq!(
            payload_format(Some(b"text/csv; charset=utf-8"), b';').unwrap(),
            PayloadFormat::Csv { delimiter: b';' }
        );
        let e = payload_format(None, b',').unwrap_err();
        assert_eq!((e.code, e.status()), (ErrorCode::MissingContentType, 415));
        let e = payload_format(Some(b"text/plain"), b',').unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidContentType);
        assert!(e.message.contains("`text/plain`"));
    }

    #[test]
    fn task_uids() {
        assert_eq!(
            task_uid(br#"{"taskUid":12,"indexUid":"m","status":"enqueued"}"#),
            Some(12)
        );
        assert_eq!(task_uid(br#"{"uid":12}"#), None);
        assert_eq!(task_uid(b"nope"), None);
    }

    #[test]
    fn synthesized_errors_are_meili_shaped() {
        let v = synth_error(&NodeId::new("n1"), "timed out");
        assert_eq!(v["code"], "unavailable");
        assert!(v["message"].as_str().unwrap().contains("n1"));
    }
}
