//! Search, facet-search and multi-search: scatter-gather over one replica group and merge.
//!
//! Plan ([`crate::proxy::query`], [`crate::proxy::scatter`]) → dispatch
//! (`Proxy::gather`) → combine (`miroir_merge`). See the module docs of `proxy` for the
//! failure rules.
//!
//! Multi-search: each query is planned and merged independently (queries run concurrently);
//! results keep the query order, each with `indexUid` first like Meilisearch. An error in one
//! query fails the request with that error, its message prefixed ``Inside `.queries[i]`: ``.
//! ASSUMPTION (Meilisearch v1.x): that prefix is how Meilisearch words per-query errors.
//! Federated multi-search (`federation`): see [`crate::proxy::federated`].

use crate::http::body::Body;
use crate::http::recycle;
use crate::http::types::{Method, Request, Response};
use crate::proxy::auth::{self, Principal};
use crate::proxy::json::{prefix_error_message, RESERVED_PREFIX};
use crate::proxy::query::{self, QueryError, SearchQuery};
use crate::proxy::upstream::{json_request, Upstreams};
use crate::proxy::{error, federated, index_meta, remote, IndexRouting, Proxy};
use miroir_core::snapshot::{IndexMeta, Snapshot};
use miroir_core::{ErrorCode, MeiliError};
use miroir_merge::{
    merge_facet_search, merge_search, Bump, FacetOrder, SearchMergeRequest, ShardInput,
};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::rc::Rc;

/// A merged body plus its `X-Miroir-Degraded` value, or the response to send instead.
pub(crate) type Merged = Result<(Body, Option<String>), Response>;

thread_local! {
    /// The search merge's scratch arena, one per core and reset after each merge: a fresh
    /// `Bump` per search allocated its chunks again every time (about three `malloc`s per
    /// search, growing ones, in the session-7 allocation profile).
    static MERGE_ARENA: RefCell<Bump> = RefCell::new(Bump::new());
}

/// An arena that grew beyond this (a merge of very large pages) is dropped instead of kept,
/// so one outsized search does not pin its memory on the core.
const MERGE_ARENA_KEEP: usize = 1 << 20;

/// Runs a (synchronous) merge with this core's arena, then resets the arena.
fn with_merge_arena<R>(f: impl FnOnce(&Bump) -> R) -> R {
    MERGE_ARENA.with(|cell| {
        let mut arena = cell.borrow_mut();
        let r = f(&arena);
        if arena.allocated_bytes() > MERGE_ARENA_KEEP {
            *arena = Bump::new();
        } else {
            arena.reset();
        }
        r
    })
}

/// Whether the request declares a JSON body (anything else is delegated so the node answers
/// Meilisearch's exact `invalid_content_type`/`missing_content_type`).
fn is_json(req: &Request) -> bool {
    req.header("content-type").is_some_and(|v| {
        v.split(|&b| b == b';')
            .next()
            .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"application/json"))
    })
}

/// The JSON body of a read request, decompressed; `None` → delegate.
pub(crate) fn json_body<'r, U>(
    p: &Proxy<U>,
    req: &'r Request,
) -> Option<std::borrow::Cow<'r, [u8]>> {
    if !is_json(req) {
        return None;
    }
    req.decoded_body(p.config.server.max_body_bytes as usize)
        .ok()
}

/// ANDs a tenant token's rule filter into a query (no-op for other principals).
pub(crate) fn apply_tenant_filter(
    principal: &Principal,
    index: &str,
    body: &mut Map<String, Value>,
) {
    if let Some(rule) = principal.search_filter(index) {
        if let Some(f) = crate::proxy::tenant::and_filters(Some(rule), body.get("filter")) {
            body.insert("filter".into(), f);
        }
    }
}

pub(crate) fn with_degraded(mut resp: Response, degraded: Option<String>) -> Response {
    if let Some(d) = degraded {
        resp.headers
            .push(("x-miroir-degraded".into(), d.into_bytes()));
    }
    resp
}

impl<U: Upstreams> Proxy<U> {
    /// `POST`/`GET /indexes/{uid}/search`.
    pub(crate) async fn search(
        &self,
        snap: &Snapshot,
        index: &str,
        principal: &Principal,
        req: Request,
        rid: &str,
    ) -> Response {
        let (meta, routing) = match self.index_and_routing(snap, index) {
            Ok(x) => x,
            Err(resp) => return resp,
        };
        let parsed = match req.method {
            Method::Get | Method::Head => query::parse_get(&req.query),
            _ => match json_body(self, &req) {
                Some(body) => query::parse_post(&body),
                None => Err(QueryError::Delegate),
            },
        };
        let mut q = match parsed {
            Ok(q) => q,
            Err(QueryError::Delegate) => {
                return self.delegate(&routing.read, req, principal, rid).await
            }
        };
        apply_tenant_filter(principal, &meta.uid, &mut q.body);
        if let Err(resp) = self
            .resolve_foreign_filters(snap, meta, &mut q.body, rid)
            .await
        {
            return resp;
        }
        // Dynamic search rules (decision 042): one branch when there are none.
        let pinned = match snap.search_rules.is_empty() {
            true => None,
            false => {
                self.search_with_rules(snap, meta, &routing, &q, false, rid)
                    .await
            }
        };
        let merged = if let Some(pinned) = pinned {
            pinned
        } else if self.config.scatter.coalesce {
            self.search_coalesced(snap, meta, &routing, &q, rid).await
        } else {
            self.search_one(meta, &routing, &q, rid).await
        };
        let merged = self.hydrate_merged(snap, meta, merged, rid).await;
        match merged {
            Ok((body, degraded)) => with_degraded(Response::json(200, body), degraded),
            Err(resp) => resp,
        }
    }

    /// [`Proxy::search_one`], shared with identical searches in flight on this core
    /// (`scatter.coalesce`, [`crate::proxy::coalesce`]). The key is everything the answer
    /// depends on: the snapshot generation (topology, index settings), the index and the
    /// node query (the tenant filter already in it).
    async fn search_coalesced(
        &self,
        snap: &Snapshot,
        meta: &IndexMeta,
        routing: &IndexRouting,
        q: &SearchQuery,
        rid: &str,
    ) -> Merged {
        use crate::proxy::coalesce::Role;
        let mut key = Vec::with_capacity(128);
        key.extend_from_slice(&snap.generation.to_le_bytes());
        key.extend_from_slice(meta.uid.as_bytes());
        key.push(0);
        serde_json::to_writer(&mut key, &q.body).expect("a JSON map serialises");
        match self.inflight.join(key) {
            Role::Leader(leader) => {
                let merged = self.search_one(meta, routing, q, rid).await;
                leader.finish(&merged);
                merged
            }
            Role::Follower(wait) => match wait.await {
                Some(merged) => {
                    self.up.record_coalesced();
                    merged
                }
                // The leader gave up without an answer: search on our own.
                None => self.search_one(meta, routing, q, rid).await,
            },
        }
    }

    /// One scatter-gather search and its merge (also each query of a multi-search).
    pub(crate) async fn search_one(
        &self,
        meta: &IndexMeta,
        routing: &IndexRouting,
        q: &SearchQuery,
        rid: &str,
    ) -> Merged {
        // Under `distinct`, the merge reads each hit's value: nodes must return the field.
        let distinct = query::distinct_field(q, meta.distinct_attribute.as_deref());
        let mut node_q = std::borrow::Cow::Borrowed(q);
        let mut drop = Vec::new();
        if let Some(d) = distinct {
            let mut with = q.clone();
            drop = query::add_needed_fields(with.body.get_mut("attributesToRetrieve"), &[d]);
            node_q = std::borrow::Cow::Owned(with);
        }
        let drop: Vec<&str> = drop.iter().map(String::as_str).collect();
        let merge_req = SearchMergeRequest {
            pagination: q.pagination,
            sort_requested: q.sort_requested,
            want_ranking_score: q.want_ranking_score,
            want_ranking_score_details: q.want_ranking_score_details,
            max_values_per_facet: meta.max_values_per_facet as usize,
            sort_facet_values_by: &meta.sort_facet_values_by,
            max_total_hits: meta.max_total_hits as usize,
            reserved_prefix: RESERVED_PREFIX,
            query: q.q(),
            distinct,
            drop: &drop,
        };
        let node_req = merge_req.node_request();
        let path = format!("/indexes/{}/search", meta.uid);
        let shards = self.planned_shards(meta, &routing.read, q.filter(), None);
        let body_for = |filter: Option<&[miroir_core::ids::ShardId]>| {
            query::node_body(
                &node_q,
                node_req.pagination,
                node_req.show_ranking_score_details,
                filter,
            )
        };
        // Nodes asked for all their shards get the same body: serialised once per scatter.
        let unfiltered = std::cell::OnceCell::new();
        let gathered = self
            .gather(&routing.read, shards, rid, |a| {
                let body = match a.needs_shard_filter {
                    true => body_for(Some(a.shards.as_slice())),
                    false => unfiltered.get_or_init(|| body_for(None)).clone(),
                };
                json_request(Method::Post, path.clone(), String::new(), body)
            })
            .await;
        if let Some(resp) = gathered.relay {
            return Err(resp);
        }
        let degraded = self.shard_policy(&meta.uid, &gathered)?;
        let inputs: Vec<ShardInput> = gathered.bodies.iter().map(|b| ShardInput::Ok(b)).collect();
        // Room for the response head before the merged answer: the server sends both with
        // one write and no copy (`http::body`).
        let size = gathered.bodies.iter().map(|b| b.len()).sum::<usize>() / 2 + 256;
        let mut out = Body::for_response(size);
        let merged =
            with_merge_arena(|arena| merge_search(&merge_req, &inputs, arena, out.append()));
        std::mem::drop(inputs);
        // The node answers are read: their buffers serve the next calls on this core.
        for b in gathered.bodies {
            recycle::give(b.into_buffer());
        }
        match merged {
            Ok(_)
                if meta.displayed_wildcard
                    && q.body.get("retrieveVectors") == Some(&Value::Bool(true)) =>
            {
                let out =
                    miroir_core::retrieve_vectors::fill_empty_vectors(&out).map_or(out, Body::from);
                Ok((out, degraded))
            }
            Ok(_) => Ok((out, degraded)),
            Err(e) => Err(error(&MeiliError::new(
                ErrorCode::Internal,
                format!("A node returned a search response Miroir cannot read: {e}"),
            ))),
        }
    }

    /// `POST /indexes/{uid}/facet-search`: scatter, counts summed per value.
    pub(crate) async fn facet_search(
        &self,
        snap: &Snapshot,
        index: &str,
        principal: &Principal,
        req: Request,
        rid: &str,
    ) -> Response {
        let (meta, routing) = match self.index_and_routing(snap, index) {
            Ok(x) => x,
            Err(resp) => return resp,
        };
        let parsed =
            json_body(self, &req).and_then(|b| match serde_json::from_slice::<Value>(&b) {
                Ok(Value::Object(m)) => Some(m),
                _ => None,
            });
        let Some(mut body) = parsed else {
            return self.delegate(&routing.read, req, principal, rid).await;
        };
        apply_tenant_filter(principal, &meta.uid, &mut body);
        if let Err(resp) = self
            .resolve_foreign_filters(snap, meta, &mut body, rid)
            .await
        {
            return resp;
        }
        let path = format!("/indexes/{}/facet-search", meta.uid);
        let shards = self.planned_shards(meta, &routing.read, body.get("filter"), None);
        let gathered = self
            .gather_post(&routing.read, shards, rid, &path, &body)
            .await;
        if let Some(resp) = gathered.relay {
            return resp;
        }
        let degraded = match self.shard_policy(&meta.uid, &gathered) {
            Ok(d) => d,
            Err(resp) => return resp,
        };
        let inputs: Vec<ShardInput> = gathered.bodies.iter().map(|b| ShardInput::Ok(b)).collect();
        let facet = body
            .get("facetName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let order = meta
            .sort_facet_values_by
            .get(facet)
            .or_else(|| meta.sort_facet_values_by.get("*"))
            .copied()
            .unwrap_or(FacetOrder::Alpha);
        let arena = Bump::new();
        let mut out = Vec::new();
        match merge_facet_search(
            &inputs,
            meta.max_values_per_facet as usize,
            order,
            &arena,
            &mut out,
        ) {
            Ok(_) => with_degraded(Response::json(200, out), degraded),
            Err(e) => error(&MeiliError::new(
                ErrorCode::Internal,
                format!("A node returned a facet-search response Miroir cannot read: {e}"),
            )),
        }
    }

    /// `POST /multi-search` (non-federated).
    pub(crate) async fn multi_search(
        &self,
        snap: &Snapshot,
        principal: &Principal,
        req: Request,
        rid: &str,
    ) -> Response {
        let started = std::time::Instant::now();
        // Queries for another Miroir or Meilisearch of the network (decision 045).
        let mut remote_plan = None;
        let parsed = json_body(self, &req).and_then(|b| {
            remote_plan = Some(remote::plan(&snap.network, &b));
            parse_multi(&b)
        });
        let Some(multi) = parsed else {
            return self.delegate_any(snap, req, principal, rid).await;
        };
        let federation = match multi.federation.as_ref().map(federated::parse_federation) {
            None => None,
            Some(Some(f)) => Some(f),
            Some(None) => return self.delegate_any(snap, req, principal, rid).await,
        };
        // Facets of an unknown index: a node words the error.
        let unknown_facet_index = federation.as_ref().is_some_and(|f| {
            f.facets_by_index
                .iter()
                .any(|(i, facets)| facets.is_some() && index_meta(snap, i).is_err())
        });
        if unknown_facet_index {
            return self.delegate_any(snap, req, principal, rid).await;
        }
        // Meilisearch checks every query's index (key patterns and token rules) before it
        // looks at any index, federated or not.
        for (i, (index, _, _)) in multi.queries.iter().enumerate() {
            if let Err(e) = auth::authorize_index(principal, index) {
                let prefixed = format!("Inside `.queries[{i}]`: {}", e.message);
                return error(&MeiliError::new(e.code, prefixed));
            }
        }
        let mut remote_plan = match remote_plan.transpose() {
            Ok(p) => p.flatten(),
            Err((i, e)) => {
                let mut r = error(&MeiliError::new(
                    e.code,
                    format!("Inside `.queries[{i}]`: {}", e.message),
                ));
                inside_multi_search(&mut r);
                return r;
            }
        };
        if let Some(p) = &mut remote_plan {
            p.apply_tenant_filters(principal);
        }
        let mut plans: Vec<(&IndexMeta, Rc<IndexRouting>, SearchQuery)> =
            Vec::with_capacity(multi.queries.len());
        let mut weights = Vec::with_capacity(multi.queries.len());
        let mut want_scores = Vec::with_capacity(multi.queries.len());
        // Per local query: a member its hits carry only for `federation.distinct`.
        let mut drop_members: Vec<Option<String>> = Vec::with_capacity(multi.queries.len());
        // The client's position of each local query (remote ones are left out of `plans`).
        let mut local_positions = Vec::with_capacity(multi.queries.len());
        for (i, (index, mut body, weight)) in multi.queries.into_iter().enumerate() {
            if let Some(p) = &remote_plan {
                if p.is_remote(i) {
                    continue;
                }
                // `useNetwork` was resolved into remote copies: the local copy is plain.
                body.remove("useNetwork");
            }
            let prefix = format!("Inside `.queries[{i}]`: ");

            let meta = match index_meta(snap, &index) {
                Ok(m) => m,
                Err(e) => {
                    let mut r = error(&MeiliError::new(e.code, format!("{prefix}{}", e.message)));
                    inside_multi_search(&mut r);
                    return r;
                }
            };
            let routing = match self.routing(snap, meta) {
                Ok(r) => r,
                Err(e) => return error(&e),
            };
            if let Some(fed) = &federation {
                // Queries of a federated search may not paginate (Meilisearch rejects it):
                // let a node say so exactly. Each query is asked for the federation's window.
                if ["offset", "limit", "page", "hitsPerPage"]
                    .iter()
                    .any(|k| body.contains_key(*k))
                {
                    return self.delegate_any(snap, req, principal, rid).await;
                }
                let (start, len) = fed.pagination.window(usize::MAX);
                body.insert("offset".into(), 0.into());
                body.insert("limit".into(), start.saturating_add(len).into());
            }
            let mut drop_member = None;
            if let Some(d) = federation.as_ref().and_then(|f| f.distinct.as_ref()) {
                // A query's own `distinct` is refused next to the federation's, and remotes
                // would deduplicate on their own: a node words the error, or Miroir says it
                // cannot answer.
                if body.contains_key("distinct") || remote_plan.is_some() {
                    return self.delegate_any(snap, req, principal, rid).await;
                }
                body.insert("distinct".into(), Value::String(d.clone()));
                drop_member = federated::retrieve_for_distinct(&mut body, d);
            }
            apply_tenant_filter(principal, &index, &mut body);
            if let Err(mut resp) = self
                .resolve_foreign_filters(snap, meta, &mut body, rid)
                .await
            {
                resp.body = prefix_error_message(&resp.body, &prefix).into();
                inside_multi_search(&mut resp);
                return resp;
            }
            match query::from_map(body) {
                Ok(mut q) => {
                    want_scores.push(q.want_ranking_score);
                    if federation.is_some() {
                        // Scores are what the federation merges on.
                        q.want_ranking_score = true;
                    }
                    weights.push(weight);
                    drop_members.push(drop_member);
                    local_positions.push(i);
                    plans.push((meta, routing, q))
                }
                Err(QueryError::Delegate) => {
                    return self.delegate_any(snap, req, principal, rid).await
                }
            }
        }
        let federated = federation.is_some();
        let runs = plans.iter().map(|(meta, routing, q)| {
            self.search_one_pinned(snap, meta, routing, q, federated, rid)
        });
        let remotes = async {
            match &remote_plan {
                Some(p) => Some(self.search_remotes(p, rid).await),
                None => None,
            }
        };
        let (results, remote_answers) =
            futures_util::future::join(futures_util::future::join_all(runs), remotes).await;
        let gathered = std::time::Instant::now();
        if let Some(fed) = federation {
            let mut bodies = Vec::with_capacity(results.len());
            let mut degraded = Vec::new();
            for (i, result) in results.into_iter().enumerate() {
                match result {
                    Ok((body, d)) => {
                        if let Some(d) = d {
                            degraded.push(format!("queries[{i}]:{d}"));
                        }
                        bodies.push(body);
                    }
                    Err(mut resp) => {
                        resp.body =
                            prefix_error_message(&resp.body, &format!("Inside `.queries[{i}]`: "))
                                .into();
                        inside_multi_search(&mut resp);
                        return resp;
                    }
                }
            }
            let unions = self
                .union_totals(&plans, fed.distinct.as_deref(), rid)
                .await;
            let inputs: Vec<federated::QueryResult> = plans
                .iter()
                .zip(&bodies)
                .enumerate()
                .map(|(i, ((meta, _, _), body))| federated::QueryResult {
                    index_uid: &meta.uid,
                    primary_key: meta.primary_key.as_deref(),
                    index_total: unions.get(meta.uid.as_str()).copied(),
                    weight: weights[i],
                    want_score: want_scores[i],
                    retrieve_vectors: plans[i].2.body.get("retrieveVectors")
                        == Some(&Value::Bool(true)),
                    body,
                    drop_member: drop_members[i].as_deref(),
                })
                .collect();
            let mut out = Vec::new();
            // With remotes, the local answer is the whole prefix: the window comes after the
            // merge with the remotes' hits.
            let local_fed = match &remote_plan {
                Some(_) => remote::local_federation(&fed),
                None => fed.clone(),
            };
            if federated::combine(&local_fed, &inputs, &mut out).is_none() {
                return error(&MeiliError::new(
                    ErrorCode::Internal,
                    "A merged search response could not be federated.",
                ));
            }
            let mut out = match self.hydrate_federated(snap, out, rid).await {
                Ok(out) => out,
                Err(resp) => return resp,
            };
            let mut remote_failures = None;
            let mut remote_facets = Vec::new();
            if let (Some(plan), Some((mut answers, failed))) = (&remote_plan, remote_answers) {
                remote_facets = remote::take_facets(&fed, &mut answers);
                match remote::merge(&fed, plan, &out, answers, &local_positions) {
                    Some(merged) => out = merged,
                    None => {
                        return error(&MeiliError::new(
                            ErrorCode::Internal,
                            "A federated answer could not be merged with the remotes' answers.",
                        ))
                    }
                }
                remote_failures = Some(failed);
            }
            if !fed.facets_by_index.is_empty() {
                // With remotes, the local facets stay per index until the remotes' join them.
                let facets_fed = match &remote_plan {
                    Some(_) => remote::local_facets_federation(&fed),
                    None => fed.clone(),
                };
                match self.federated_facets(&facets_fed, &plans, rid).await {
                    // `combine` closes the object last: the facets go before that `}`.
                    Ok(members) => {
                        out.pop();
                        out.extend_from_slice(&members);
                        out.push(b'}');
                    }
                    Err(federated::FacetsFailure::Delegate) => {
                        return self.delegate_any(snap, req, principal, rid).await
                    }
                    Err(federated::FacetsFailure::Respond(resp)) => return resp,
                }
            }
            if remote_plan.is_some() && !fed.facets_by_index.is_empty() {
                match remote::join_facets(snap, &fed, &out, remote_facets) {
                    Some(with) => out = with,
                    None => {
                        return error(&MeiliError::new(
                            ErrorCode::Internal,
                            "A federated answer could not take the remotes' facets.",
                        ))
                    }
                }
            }
            if fed.show_performance_details {
                out.pop();
                out.extend_from_slice(&federated::performance_member(
                    gathered - started,
                    gathered.elapsed(),
                ));
                out.push(b'}');
            }
            if let Some(failed) = remote_failures {
                // `remoteErrors` is the answer's last member, as in Meilisearch.
                out.pop();
                out.extend_from_slice(&miroir_core::network::remote_errors_member(&failed));
                out.push(b'}');
            }
            let d = (!degraded.is_empty()).then(|| degraded.join(";"));
            return with_degraded(Response::json(200, out), d);
        }
        let mut out = b"{\"results\":[".to_vec();
        let mut degraded = Vec::new();
        for (i, (result, (meta, _, _))) in results.into_iter().zip(&plans).enumerate() {
            let (body, d) = match self.hydrate_merged(snap, meta, result, rid).await {
                Ok(x) => x,
                Err(mut resp) => {
                    resp.body =
                        prefix_error_message(&resp.body, &format!("Inside `.queries[{i}]`: "))
                            .into();
                    inside_multi_search(&mut resp);
                    return resp;
                }
            };
            if let Some(d) = d {
                degraded.push(format!("queries[{i}]:{d}"));
            }
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"indexUid\":");
            serde_json::to_writer(&mut out, &meta.uid).expect("str to Vec");
            // The merged body is a non-empty object (`{"hits":…`): splice its members in.
            if body.len() > 2 {
                out.push(b',');
                out.extend_from_slice(&body[1..]);
            } else {
                out.push(b'}');
            }
        }
        out.extend_from_slice(b"]}");
        let d = (!degraded.is_empty()).then(|| degraded.join(";"));
        with_degraded(Response::json(200, out), d)
    }

    /// Delegation target for requests not tied to one index (multi-search).
    async fn delegate_any(
        &self,
        snap: &Snapshot,
        req: Request,
        principal: &Principal,
        rid: &str,
    ) -> Response {
        let Some(meta) = snap.indexes.values().next() else {
            if let Principal::Tenant(_) = principal {
                return self.delegate_unplanned(req, principal);
            }
            // No index at all: any query names an unknown index; a node says so exactly.
            let Some(node) = snap.nodes.iter().find(|n| n.status.serves_reads()) else {
                return error(&MeiliError::new(
                    ErrorCode::MiroirShardUnavailable,
                    "No node can serve reads.",
                ));
            };
            if let Err(e) = self.refresh(snap) {
                return error(&e);
            }
            let node = node.id.clone();
            return self.delegate_to(&node, req, rid).await;
        };
        match self.routing(snap, meta) {
            Ok(r) => self.delegate(&r.read, req, principal, rid).await,
            Err(e) => error(&e),
        }
    }

    /// A tenant's request that cannot be delegated and names no index.
    fn delegate_unplanned(&self, req: Request, principal: &Principal) -> Response {
        debug_assert!(matches!(principal, Principal::Tenant(_)));
        let body = req.decoded_body(self.config.server.max_body_bytes as usize);
        let body = body.as_deref().unwrap_or(&req.body);
        error(&crate::proxy::tenant_request_error(&req, body))
    }
}

/// A multi-search body, understood: per query `(indexUid, query without indexUid and
/// federationOptions, federation weight)`.
#[derive(Debug, PartialEq)]
pub struct MultiSearch {
    /// The `federation` object when present and not `null`.
    pub federation: Option<Value>,
    pub queries: Vec<(String, Map<String, Value>, f64)>,
}

/// Reads a multi-search body; `None` when it is not understood (then delegated).
pub fn parse_multi(body: &[u8]) -> Option<MultiSearch> {
    let Value::Object(mut top) = serde_json::from_slice::<Value>(body).ok()? else {
        return None;
    };
    let federation = top.remove("federation").filter(|f| !f.is_null());
    let Value::Array(queries) = top.remove("queries")? else {
        return None;
    };
    if !top.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(queries.len());
    for q in queries {
        let Value::Object(mut m) = q else { return None };
        let Value::String(index) = m.remove("indexUid")? else {
            return None;
        };
        let weight = federated::weight(&m)?;
        m.remove("federationOptions");
        out.push((index, m, weight));
    }
    Some(MultiSearch {
        federation,
        queries: out,
    })
}

/// A query's client error inside a multi-search is a `400` in Meilisearch 1.50, whatever
/// its code (`index_not_found` included); server-side failures keep their status.
fn inside_multi_search(resp: &mut Response) {
    if (400..500).contains(&resp.status) {
        resp.status = 400;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_parse() {
        let m =
            parse_multi(br#"{"queries":[{"indexUid":"a","q":"x"},{"indexUid":"b","limit":3}]}"#)
                .unwrap();
        assert!(m.federation.is_none());
        assert_eq!(m.queries.len(), 2);
        assert_eq!(m.queries[0].0, "a");
        assert!(!m.queries[0].1.contains_key("indexUid"));
        let m = parse_multi(
            br#"{"federation":{},"queries":[{"indexUid":"a","federationOptions":{"weight":2}}]}"#,
        )
        .unwrap();
        assert_eq!(m.federation, Some(serde_json::json!({})));
        assert!(m.queries[0].1.is_empty());
        assert_eq!(m.queries[0].2, 2.0);
        for bad in [
            &b"[]"[..],
            br#"{"queries":{}}"#,
            br#"{"queries":[{"q":"x"}]}"#,
            br#"{"queries":[],"x":1}"#,
            b"{",
        ] {
            assert!(
                parse_multi(bad).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn json_content_type_detection() {
        let mut r = json_request(Method::Post, "/".into(), String::new(), vec![]);
        assert!(is_json(&r));
        r.headers[0].1 = b"application/json; charset=utf-8".to_vec();
        assert!(is_json(&r));
        r.headers[0].1 = b"text/plain".to_vec();
        assert!(!is_json(&r));
        r.headers.clear();
        assert!(!is_json(&r));
    }
}
