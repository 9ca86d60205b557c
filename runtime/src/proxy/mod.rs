//! The data plane's request handling: Miroir looks like one Meilisearch (docs/contract.md#api, #errors,
//! #auth) while the data lives striped over many nodes.
//!
//! # Phases
//!
//! Every request goes through the same named phases (like Pingora's proxy trait), and the
//! pure phases are plain functions with their own unit tests:
//!
//! | phase        | where                        | pure? |
//! |--------------|------------------------------|-------|
//! | route        | [`router::route`]            | yes   |
//! | authenticate | [`auth::authenticate`], [`tenant`] | yes |
//! | plan         | [`scatter`], [`query`], [`quorum`], [`filter`], `miroir_core::documents` | yes |
//! | dispatch     | [`Proxy`] methods over [`upstream::Upstreams`] | I/O |
//! | combine      | `miroir_merge`, [`quorum::evaluate_quorum`] | yes |
//! | respond      | [`Proxy::handle`]            | —     |
//!
//! # Route families
//!
//! - **Scatter-gather reads** (search, facet-search, document listing): one node per shard
//!   from one replica group ([`scatter`]), fan-out in parallel under
//!   `scatter.node_timeout_ms`, failed nodes' shards retried on another replica of the group,
//!   then on another group; merged by `miroir-merge`; `unavailable_shard_policy` decides
//!   between a partial answer (`X-Miroir-Degraded: shards=…`) and `503
//!   miroir_shard_unavailable`. A node's 4xx (e.g. `invalid_search_filter`) is the client's
//!   error: the first one is relayed verbatim. A node that failed is avoided by this core's
//!   next plans for [`SUSPECT_FOR`] (still used when it is a shard's only owner left), so a
//!   hung node costs one timeout per core and period, not one per request. Multi-search runs
//!   each query this way ([`search`]); `federation` merges them by weighted score
//!   ([`federated`]).
//! - **Routed reads** (document by id): the shard's owners, preferred group first.
//! - **Routed writes** (documents, delete by id/batch) and **broadcast writes** (delete by
//!   filter, delete all): see [`writes`].
//! - **Control path** (tasks, index lifecycle, settings, keys, stats, `/_miroir/*`):
//!   forwarded to the admin process over its Unix socket ([`control`]).
//!
//! Per-core state (routing tables per snapshot generation, round-robin counters, the
//! `/version` cache, suspect nodes) lives in `RefCell`/`Cell`s: a
//! [`Proxy`] is built once per reactor core ([`handler`]) and never crosses threads.
//!
//! Requests Miroir cannot interpret (malformed JSON, wrong types, unknown parameters) are
//! *delegated*: sent verbatim to one node so the client gets Meilisearch's exact error (see
//! [`query`]); a success from such a delegation is never relayed, since it would cover one
//! node's shards only.

pub mod auth;
pub mod coalesce;
pub mod control;
pub mod cors;
pub mod federated;
pub mod filter;
pub mod handler;
pub mod hedge;
pub mod hydrate;
pub mod json;
pub mod offload;
pub mod pins;
pub mod planner;
pub mod query;
pub mod quorum;
pub mod reads;
pub mod remote;
pub mod replica;
pub mod router;
pub mod scatter;
pub mod scope;
pub mod search;
pub mod similar;
pub mod tenant;
pub mod upstream;
pub mod writes;

use crate::http::body::Body;
use crate::http::types::{Method, Request, Response};
use auth::Principal;
use miroir_core::config::{Config, UnavailableShardPolicy};
use miroir_core::ids::{GroupId, NodeId, ShardId};
use miroir_core::routing::ShardMap;
use miroir_core::snapshot::{IndexMeta, Snapshot};
use miroir_core::topology::Topology;
use miroir_core::{ErrorCode, MeiliError};
use router::Route;
use scatter::{NodeAssignment, ReadTable};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::Duration;
use upstream::{is_node_failure, json_request, with_node_auth, Upstreams};

/// Deadline for control-path calls to the admin. Broadcasts with rollback (settings, index
/// creation) wait for every node, so this is much longer than a node search timeout.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a request waits for the first snapshot of a data plane that just started.
pub const FIRST_SNAPSHOT_WAIT: Duration = Duration::from_secs(2);

/// Where the proxy gets the current snapshot (the transport's per-core `SnapshotHandle`).
pub type SnapshotSource = Box<dyn Fn() -> Option<Rc<Snapshot>>>;

/// Renders this process's Prometheus text for `GET /_miroir/metrics`.
pub type MetricsRender = Box<dyn Fn() -> String>;

/// Everything a route needs to know about an index's placement for one snapshot generation.
pub struct IndexRouting {
    pub shard_map: ShardMap,
    pub read: ReadTable,
}

/// Per-core routing tables, rebuilt when the snapshot generation changes.
#[derive(Default)]
struct RoutingCache {
    generation: u64,
    topology: Option<Rc<Topology>>,
    per_index: HashMap<String, Rc<IndexRouting>>,
}

/// What a scatter produced: node bodies in the merge's fixed order, and what is missing.
#[derive(Debug, Default)]
pub struct Gathered {
    /// 2xx bodies, ordered by each node's smallest shard.
    pub bodies: Vec<Body>,
    /// Shards no node could answer for.
    pub unavailable: Vec<ShardId>,
    /// The first client error (node 4xx) to relay verbatim instead of merging.
    pub relay: Option<Response>,
    /// Nodes asked in total (fan-out including retries).
    pub asked: usize,
}

/// The data plane's handler: one per reactor core.
pub struct Proxy<U> {
    pub(crate) up: U,
    pub(crate) config: Rc<Config>,
    snapshot: SnapshotSource,
    metrics: Option<MetricsRender>,
    cache: RefCell<RoutingCache>,
    /// Round-robin counter for group selection and replica rotation (per core).
    counter: Cell<usize>,
    /// `GET /version` answer from a node, kept once obtained.
    version: RefCell<Option<Vec<u8>>>,
    /// This core's per-node state (address, latency estimate, suspicion), one slot per node.
    nodes: RefCell<NodeSlots>,
    /// The hedge budget of this core (see [`hedge`]).
    hedges: Cell<hedge::Budget>,
    /// Searches in flight on this core, for `scatter.coalesce` (see [`coalesce`]).
    pub(crate) inflight: coalesce::Inflight<search::Merged>,
}

/// How long a node that failed a call is avoided by this core's read plans.
pub const SUSPECT_FOR: Duration = Duration::from_secs(1);

/// Per-core state of every node this core knows, one slot per node: a read's call finds its
/// node once and reads the address, latency estimate and suspicion from the slot, instead of
/// one SipHash lookup per map and a `String` clone of the address (decision 040). Slots
/// outlive snapshot generations (latency and suspicion are the node's, not the topology's);
/// addresses are reset at each generation.
#[derive(Default)]
struct NodeSlots {
    index: HashMap<NodeId, usize>,
    slots: Vec<NodeSlot>,
}

#[derive(Default)]
struct NodeSlot {
    /// The node's base URL in the cached snapshot generation (`None`: not in it).
    address: Option<Rc<str>>,
    /// Latency estimate for hedged reads (successful calls only, with `scatter.hedging`).
    latency: Option<hedge::Latency>,
    /// When the node last failed a call on this core: it is avoided (not excluded) by the
    /// next plans for [`SUSPECT_FOR`], so a hung node costs one timeout per period instead
    /// of one per request until the admin's health checks mark it failed.
    failed_at: Option<std::time::Instant>,
    /// Latency, failures and calls in flight for adaptive replica selection ([`replica`]).
    health: replica::Health,
    /// When `health` last learnt from a finished call.
    sampled_at: Option<std::time::Instant>,
}

/// One call in flight to a node, counted in its slot until dropped.
struct InFlight<'a> {
    nodes: &'a RefCell<NodeSlots>,
    slot: usize,
}

impl<'a> InFlight<'a> {
    fn new(nodes: &'a RefCell<NodeSlots>, slot: usize) -> Self {
        nodes.borrow_mut().slots[slot].health.inflight += 1;
        InFlight { nodes, slot }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut nodes = self.nodes.borrow_mut();
        let h = &mut nodes.slots[self.slot].health;
        h.inflight = h.inflight.saturating_sub(1);
    }
}

impl NodeSlots {
    fn slot(&mut self, node: &NodeId) -> usize {
        if let Some(&i) = self.index.get(node) {
            return i;
        }
        self.slots.push(NodeSlot::default());
        self.index.insert(node.clone(), self.slots.len() - 1);
        self.slots.len() - 1
    }
}

impl<U: Upstreams> Proxy<U> {
    pub fn new(
        up: U,
        config: Rc<Config>,
        snapshot: SnapshotSource,
        metrics: Option<MetricsRender>,
    ) -> Self {
        Proxy {
            up,
            config,
            snapshot,
            metrics,
            cache: RefCell::new(RoutingCache::default()),
            counter: Cell::new(0),
            version: RefCell::new(None),
            nodes: RefCell::new(NodeSlots::default()),
            hedges: Cell::new(hedge::Budget::default()),
            inflight: coalesce::Inflight::default(),
        }
    }

    /// The metrics label of a request (never contains client input).
    pub fn route_template(&self, req: &Request) -> &'static str {
        router::route(req.method, &req.path)
            .map(|r| r.template())
            .unwrap_or("unmatched")
    }

    /// Answers one client request: CORS preflight, then route → authenticate → per-route
    /// plan/dispatch/combine, with the CORS headers a request carrying `Origin` gets.
    pub async fn handle(&self, req: Request, request_id: &str) -> Response {
        if cors::is_preflight(&req) {
            return cors::preflight(&req);
        }
        let origin = req.header("origin").is_some();
        let mut resp = self.handle_routed(req, request_id).await;
        cors::decorate(origin, &mut resp);
        resp
    }

    /// Phase 0 — **admit**, from the request head alone (before the transport reads a body):
    /// the route's authentication, so a request Meilisearch would refuse with 401/403 is
    /// refused before its body costs anything. Unknown routes, preflights and a missing
    /// snapshot are left to [`Proxy::handle`], which answers them from the head too.
    pub fn admit(&self, head: &Request) -> Result<(), Response> {
        if cors::is_preflight(head) {
            return Ok(());
        }
        let Ok(route) = router::route(head.method, &head.path) else {
            return Ok(());
        };
        if route == Route::Health {
            return Ok(());
        }
        let Some(snap) = (self.snapshot)() else {
            return Ok(());
        };
        self.authenticate(&route, head, &snap)
            .map(drop)
            .map_err(|e| {
                let mut resp = error(&e);
                cors::decorate(head.header("origin").is_some(), &mut resp);
                resp
            })
    }

    /// The current snapshot. A data plane that has just started (or restarted) has none
    /// until the admin's first publication reaches it, a few milliseconds after it connects:
    /// a request arriving then waits for it (up to [`FIRST_SNAPSHOT_WAIT`]) rather than
    /// failing, so that a restart is invisible to clients that retry connection errors.
    /// Without an admin at all, it is `503 miroir_admin_unavailable` after that wait.
    async fn first_snapshot(&self) -> Option<Rc<Snapshot>> {
        if let Some(s) = (self.snapshot)() {
            return Some(s);
        }
        // Counted in steps of the transport's timer (a test fake's waits end at once).
        const STEP: Duration = Duration::from_millis(10);
        for _ in 0..FIRST_SNAPSHOT_WAIT.as_millis() / STEP.as_millis() {
            self.up.sleep(STEP).await;
            if let Some(s) = (self.snapshot)() {
                return Some(s);
            }
        }
        None
    }

    async fn handle_routed(&self, req: Request, request_id: &str) -> Response {
        let route = match router::route(req.method, &req.path) {
            Ok(r) => r,
            Err(e) => {
                return Response {
                    status: e.status(),
                    headers: Vec::new(),
                    body: Default::default(),
                }
            }
        };
        if route == Route::Health {
            return Response::json(200, br#"{"status":"available"}"#.to_vec());
        }
        let Some(snap) = self.first_snapshot().await else {
            return error(&admin_unavailable());
        };
        let principal = match self.authenticate(&route, &req, &snap) {
            Ok(p) => p,
            Err(e) => return error(&e),
        };
        match route {
            Route::Health => unreachable!("answered above"),
            Route::Metrics => match &self.metrics {
                Some(render) => Response {
                    status: 200,
                    headers: vec![(
                        "content-type".into(),
                        b"text/plain; version=0.0.4; charset=utf-8".to_vec(),
                    )],
                    body: render().into_bytes().into(),
                },
                None => error(&MeiliError::new(ErrorCode::NotFound, "Not Found")),
            },
            Route::Version => self.version(&snap, request_id).await,
            Route::Search { index } => {
                self.search(&snap, &index, &principal, req, request_id)
                    .await
            }
            Route::FacetSearch { index } => {
                self.facet_search(&snap, &index, &principal, req, request_id)
                    .await
            }
            Route::MultiSearch => self.multi_search(&snap, &principal, req, request_id).await,
            Route::Similar { index } => {
                self.similar(&snap, &index, &principal, req, request_id)
                    .await
            }
            Route::DocumentGet { index, id } => {
                self.document_get(&snap, &index, &id, &req, request_id)
                    .await
            }
            Route::DocumentsList { index } => {
                self.documents_list(&snap, &index, req, &principal, false, request_id)
                    .await
            }
            Route::DocumentsFetch { index } => {
                self.documents_list(&snap, &index, req, &principal, true, request_id)
                    .await
            }
            Route::Control(c) => self.forward_control(&c, req, &principal, request_id).await,
            Route::DocumentsWrite { .. }
            | Route::DocumentsDeleteBatch { .. }
            | Route::DocumentDelete { .. }
            | Route::DocumentsDeleteByFilter { .. }
            | Route::DocumentsDeleteAll { .. } => self.write(&snap, route, req, request_id).await,
        }
    }

    fn authenticate(
        &self,
        route: &Route,
        req: &Request,
        snap: &Snapshot,
    ) -> Result<Principal, MeiliError> {
        if route.is_admin_prefix() {
            if matches!(route, Route::Metrics) {
                auth::check_admin_key(
                    self.config.effective_admin_key(),
                    req.header("authorization"),
                    req.header("x-admin-key"),
                )?;
            }
            // Other `/_miroir/*` routes: the admin checks its key itself.
            return Ok(Principal::Master);
        }
        // Multi-search checks `search` per query index later; here only the key itself.
        let action = route.action().unwrap_or("search");
        let check = |action| {
            auth::authenticate(
                self.config.master_key.as_deref(),
                &snap.keys,
                req.header("authorization"),
                action,
                route.index(),
                now_unix(),
            )
        };
        // The one route needing two actions (Meilisearch's `DoubleActionPolicy`).
        if route.template() == "/render-template" {
            check("documents.get")?;
        }
        check(action)
    }

    /// Makes the per-core caches match `snap`'s generation (cheap when they already do).
    fn refresh(&self, snap: &Snapshot) -> Result<(), MeiliError> {
        let mut cache = self.cache.borrow_mut();
        if cache.generation == snap.generation && cache.topology.is_some() {
            return Ok(());
        }
        let topo = Topology::new(
            snap.replication_factor,
            snap.replica_groups,
            snap.nodes.iter().cloned(),
        )
        .map_err(|e| {
            MeiliError::new(
                ErrorCode::Internal,
                format!("invalid topology in snapshot: {e}"),
            )
        })?;
        *cache = RoutingCache {
            generation: snap.generation,
            topology: Some(Rc::new(topo)),
            per_index: HashMap::new(),
        };
        let mut nodes = self.nodes.borrow_mut();
        for slot in &mut nodes.slots {
            slot.address = None;
        }
        for n in &snap.nodes {
            let i = nodes.slot(&n.id);
            nodes.slots[i].address = Some(Rc::from(n.address.as_str()));
        }
        Ok(())
    }

    /// An index's metadata and routing tables under `snap`, or the answer to give instead
    /// (unknown index, unusable topology).
    pub(crate) fn index_and_routing<'s>(
        &self,
        snap: &'s Snapshot,
        index: &str,
    ) -> Result<(&'s IndexMeta, Rc<IndexRouting>), Response> {
        let meta = index_meta(snap, index).map_err(|e| error(&e))?;
        let routing = self.routing(snap, meta).map_err(|e| error(&e))?;
        Ok((meta, routing))
    }

    /// Routing tables for `index` under `snap`, built once per generation and index.
    pub(crate) fn routing(
        &self,
        snap: &Snapshot,
        meta: &IndexMeta,
    ) -> Result<Rc<IndexRouting>, MeiliError> {
        self.refresh(snap)?;
        let mut cache = self.cache.borrow_mut();
        if let Some(r) = cache.per_index.get(&meta.uid) {
            return Ok(r.clone());
        }
        let topo = cache.topology.clone().expect("set above");
        let shards = meta.shards.max(1);
        let shard_map = ShardMap::new(&topo, shards);
        let readable: HashSet<NodeId> = snap
            .nodes
            .iter()
            .filter(|n| n.status.serves_reads())
            .map(|n| n.id.clone())
            .collect();
        // Nodes physically holding a shard they do not own in this topology: migration sources
        // and targets. Their answers must be filtered to the shards assigned to them.
        let extra: Vec<(NodeId, ShardId)> = snap
            .migrations
            .iter()
            .filter(|m| m.index == meta.uid)
            .flat_map(|m| [(m.from.clone(), m.shard), (m.to.clone(), m.shard)])
            .collect();
        let groups: Vec<GroupId> = topo.group_ids().collect();
        let read = ReadTable::build(
            shards,
            &groups,
            |s, g| shard_map.owners(g, s).to_vec(),
            readable,
            &extra,
        )
        .with_lagging(snap.lagging_for(&meta.uid).map(|(n, s)| (n.clone(), s)));
        let r = Rc::new(IndexRouting { shard_map, read });
        cache.per_index.insert(meta.uid.clone(), r.clone());
        Ok(r)
    }

    /// The node's slot on this core (created on first use).
    fn slot(&self, node: &NodeId) -> usize {
        self.nodes.borrow_mut().slot(node)
    }

    /// Next round-robin position: `(preferred group index, replica rotation)`.
    pub(crate) fn next_turn(&self, table: &ReadTable) -> (usize, usize) {
        let c = self.counter.get();
        self.counter.set(c.wrapping_add(1));
        let groups = table.groups.len().max(1);
        (table.pick_group(c), c / groups)
    }

    pub(crate) fn node_key(&self) -> Option<&str> {
        self.config.effective_node_master_key()
    }

    pub(crate) fn node_timeout(&self) -> Duration {
        Duration::from_millis(self.config.scatter.node_timeout_ms)
    }

    /// A write's node round trip: `scatter.write_timeout_ms` (large batches), not the
    /// search timeout.
    pub(crate) fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.config.scatter.write_timeout_ms)
    }

    /// Sends `req` to `node` with the node master key and the request id.
    pub(crate) async fn call_node(
        &self,
        node: &NodeId,
        req: Request,
        request_id: &str,
        timeout: Duration,
    ) -> Result<Response, crate::http::types::UpstreamError> {
        self.call_slot(self.slot(node), node, req, request_id, timeout)
            .await
    }

    /// [`Proxy::call_node`] for a node whose slot is known.
    async fn call_slot(
        &self,
        slot: usize,
        node: &NodeId,
        req: Request,
        request_id: &str,
        timeout: Duration,
    ) -> Result<Response, crate::http::types::UpstreamError> {
        let address = self.nodes.borrow().slots[slot].address.clone();
        let Some(address) = address else {
            return Err(crate::http::types::UpstreamError::Connect(format!(
                "unknown node {node}"
            )));
        };
        let req = with_node_auth(req, self.node_key(), request_id);
        // Counted while in flight, also when the call is dropped (a hedge won).
        let _inflight = InFlight::new(&self.nodes, slot);
        self.up.node(&address, req, timeout).await
    }

    /// The shards a read must ask: those the primary-key planner confines it to (a filter
    /// pinning the key, or `ids`), else all of the index's.
    pub(crate) fn planned_shards(
        &self,
        meta: &IndexMeta,
        table: &ReadTable,
        filter: Option<&serde_json::Value>,
        ids: Option<&serde_json::Value>,
    ) -> Vec<ShardId> {
        if self.config.scatter.pk_planner {
            let shards = meta.shards.max(1);
            let by_ids = ids.and_then(|ids| planner::ids_shards(ids, shards));
            let by_filter = || {
                meta.primary_key
                    .as_deref()
                    .and_then(|pk| planner::filter_shards(filter, pk, shards))
            };
            if let Some(planned) = by_ids.or_else(by_filter) {
                return planned;
            }
        }
        table.all_shards()
    }

    /// [`Self::gather`] of `POST path` with a JSON `body`, its filter restricted to the
    /// assigned shards where a node holds others too.
    pub(crate) async fn gather_post(
        &self,
        table: &ReadTable,
        shards: Vec<ShardId>,
        request_id: &str,
        path: &str,
        body: &serde_json::Map<String, serde_json::Value>,
    ) -> Gathered {
        self.gather(table, shards, request_id, |a| {
            let shards = a.needs_shard_filter.then_some(a.shards.as_slice());
            let bytes = filter::node_body_for(body, shards);
            json_request(Method::Post, path.to_string(), String::new(), bytes)
        })
        .await
    }

    /// Scatter-gather over `shards` (see the module docs): plan, fan out, retry failed nodes'
    /// shards elsewhere, and collect bodies in the merge's fixed order.
    pub(crate) async fn gather(
        &self,
        table: &ReadTable,
        shards: Vec<ShardId>,
        request_id: &str,
        build: impl Fn(&NodeAssignment) -> Request,
    ) -> Gathered {
        let (group, rotation) = self.next_turn(table);
        let mut excluded: HashSet<NodeId> = HashSet::new();
        let mut pending = shards;
        let mut got: Vec<(ShardId, Body)> = Vec::new();
        let mut out = Gathered::default();
        let timeout = self.node_timeout();
        // Each round excludes at least one more node, so this terminates; the bound is a
        // belt-and-braces guard against a planner bug.
        let max_rounds = table.readable.len() + 1;
        let suspects = self.suspects();
        for _ in 0..max_rounds {
            if pending.is_empty() {
                break;
            }
            let avoid: HashSet<NodeId> = excluded.union(&suspects).cloned().collect();
            let mut plan = self.plan_read(table, &pending, (group, rotation), &avoid);
            if !plan.uncovered.is_empty() && !suspects.is_empty() {
                // Suspects are avoided, not excluded: shards only they can serve go to them.
                let rest = self.plan_read(table, &plan.uncovered, (group, rotation), &excluded);
                plan.assignments.extend(rest.assignments);
                plan.uncovered = rest.uncovered;
            }
            out.unavailable.extend(plan.uncovered.iter().copied());
            if plan.assignments.is_empty() {
                pending.clear();
                break;
            }
            out.asked += plan.assignments.len();
            let calls = plan.assignments.iter().map(|a| {
                let turn = (group, rotation);
                self.call_assignment(table, a, turn, &avoid, &build, request_id, timeout)
            });
            let answers = futures_util::future::join_all(calls).await;
            pending = Vec::new();
            for (a, (answered_by, answer)) in plan.assignments.iter().zip(answers) {
                let failed = !matches!(&answer, Ok(r) if !is_node_failure(r.status));
                self.mark(&answered_by, failed);
                if answered_by != a.node {
                    // A hedge beat this node: avoid it for a while, as a failed one.
                    self.mark(&a.node, true);
                }
                match answer {
                    Ok(resp) if (200..300).contains(&resp.status) => {
                        got.push((a.shards[0], resp.body));
                    }
                    Ok(resp) if !is_node_failure(resp.status) => {
                        if out.relay.is_none() {
                            out.relay = Some(upstream::relay(resp));
                        }
                    }
                    _ => {
                        excluded.insert(answered_by);
                        pending.extend(a.shards.iter().copied());
                    }
                }
            }
            if out.relay.is_some() {
                return out;
            }
        }
        out.unavailable.extend(pending);
        self.up.record_fan_out(out.asked);
        out.unavailable.sort_unstable();
        out.unavailable.dedup();
        got.sort_by_key(|(s, _)| *s);
        out.bodies = got.into_iter().map(|(_, b)| b).collect();
        out
    }

    /// A read's plan: the table's rotation, or with `scatter.adaptive_replicas` (and RF > 1)
    /// each shard's best-scoring usable owner ([`replica`]).
    fn plan_read(
        &self,
        table: &ReadTable,
        shards: &[ShardId],
        (group, rotation): (usize, usize),
        excluded: &HashSet<NodeId>,
    ) -> scatter::ScatterPlan {
        if !self.config.scatter.adaptive_replicas || !table.has_replicas() {
            return table.assign(shards, group, rotation, excluded);
        }
        let now = std::time::Instant::now();
        let nodes = self.nodes.borrow();
        let score = |n: &NodeId| match nodes.index.get(n) {
            Some(&i) => {
                let slot = &nodes.slots[i];
                let idle = slot
                    .sampled_at
                    .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
                replica::score(&slot.health, idle)
            }
            None => replica::score(&replica::Health::default(), Duration::ZERO),
        };
        table.assign_scored(shards, group, rotation, excluded, &score)
    }

    /// One assignment of a scatter: its node's answer, or — with `scatter.hedging`, when the
    /// node is slower than usual and another replica can answer for all its shards — the
    /// first usable answer of the two ([`hedge`]). Returns who answered.
    #[allow(clippy::too_many_arguments)]
    async fn call_assignment(
        &self,
        table: &ReadTable,
        a: &NodeAssignment,
        (group, rotation): (usize, usize),
        avoid: &HashSet<NodeId>,
        build: &impl Fn(&NodeAssignment) -> Request,
        request_id: &str,
        timeout: Duration,
    ) -> (NodeId, Result<Response, crate::http::types::UpstreamError>) {
        use futures_util::future::{select, Either};
        let started = std::time::Instant::now();
        let slot = self.slot(&a.node);
        let delay = self.hedge_delay(slot, timeout);
        let mut primary =
            std::pin::pin!(self.call_slot(slot, &a.node, build(a), request_id, timeout));
        let Some(delay) = delay else {
            let r = primary.await;
            self.observe(slot, started, &r);
            return (a.node.clone(), r);
        };
        let waited = std::pin::pin!(self.up.sleep(delay));
        match select(primary.as_mut(), waited).await {
            Either::Left((r, _)) => {
                self.observe(slot, started, &r);
                return (a.node.clone(), r);
            }
            Either::Right(((), _)) => {}
        }
        // Only a call that is already late pays for planning its hedge.
        let other = self.hedge_replica(table, a, group, rotation, avoid);
        let mut budget = self.hedges.get();
        let allowed = other.is_some() && budget.take();
        self.hedges.set(budget);
        let (Some(other), true) = (other, allowed) else {
            let r = primary.await;
            self.observe(slot, started, &r);
            return (a.node.clone(), r);
        };
        // Boxed: a hedge is rare, and inline it would double the size of every call's future
        // (a scatter allocates its calls' futures together, ~4 KiB each; decision 052).
        let mut hedged = Box::pin(self.call_node(&other.node, build(&other), request_id, timeout));
        let usable =
            |r: &Result<Response, _>| matches!(r, Ok(resp) if !is_node_failure(resp.status));
        match select(primary.as_mut(), hedged.as_mut()).await {
            Either::Left((r, _)) if usable(&r) => {
                self.observe(slot, started, &r);
                (a.node.clone(), r)
            }
            Either::Right((r, _)) if usable(&r) => (other.node.clone(), r),
            // The first to finish failed: the other one's answer, whatever it is.
            Either::Left((_, rest)) => (other.node.clone(), rest.await),
            Either::Right((_, rest)) => {
                let r = rest.await;
                self.observe(slot, started, &r);
                (a.node.clone(), r)
            }
        }
    }

    /// When a call to `a`'s node would be hedged, or `None` (hedging off, node not warmed
    /// up). Counts the call in the core's hedge budget.
    fn hedge_delay(&self, slot: usize, timeout: Duration) -> Option<Duration> {
        let mut budget = self.hedges.get();
        budget.call();
        self.hedges.set(budget);
        if !self.config.scatter.hedging {
            return None;
        }
        let min = Duration::from_millis(self.config.scatter.hedge_min_ms);
        self.nodes.borrow().slots[slot]
            .latency?
            .hedge_after(min, timeout / 2)
    }

    /// The replica a hedge of `a` asks: one node answering for all of `a`'s shards.
    fn hedge_replica(
        &self,
        table: &ReadTable,
        a: &NodeAssignment,
        group: usize,
        rotation: usize,
        avoid: &HashSet<NodeId>,
    ) -> Option<NodeAssignment> {
        let mut without = avoid.clone();
        without.insert(a.node.clone());
        let plan = table.assign(&a.shards, group, rotation.wrapping_add(1), &without);
        match (plan.assignments.as_slice(), plan.uncovered.is_empty()) {
            ([only], true) => Some(only.clone()),
            _ => None,
        }
    }

    /// Records a successful call's latency for the node's hedge estimate.
    fn observe(
        &self,
        slot: usize,
        started: std::time::Instant,
        r: &Result<Response, crate::http::types::UpstreamError>,
    ) {
        let (hedging, adaptive) = (
            self.config.scatter.hedging,
            self.config.scatter.adaptive_replicas,
        );
        if !(hedging || adaptive) || !matches!(r, Ok(resp) if (200..300).contains(&resp.status)) {
            return;
        }
        let took = started.elapsed();
        let mut nodes = self.nodes.borrow_mut();
        let slot = &mut nodes.slots[slot];
        if hedging {
            slot.latency
                .get_or_insert_with(hedge::Latency::default)
                .record(took);
        }
        if adaptive {
            slot.health.success(took);
            slot.sampled_at = Some(std::time::Instant::now());
        }
    }

    /// Nodes that failed on this core within [`SUSPECT_FOR`].
    pub(crate) fn suspects(&self) -> HashSet<NodeId> {
        let mut nodes = self.nodes.borrow_mut();
        let NodeSlots { index, slots } = &mut *nodes;
        let mut out = HashSet::new();
        if slots.iter().all(|s| s.failed_at.is_none()) {
            return out;
        }
        let now = std::time::Instant::now();
        for (node, &i) in index.iter() {
            let slot = &mut slots[i];
            match slot.failed_at {
                Some(at) if now.duration_since(at) < SUSPECT_FOR => {
                    out.insert(node.clone());
                }
                Some(_) => slot.failed_at = None,
                None => {}
            }
        }
        out
    }

    /// Records the outcome of a call to `node` (a success clears suspicion at once).
    pub(crate) fn mark(&self, node: &NodeId, failed: bool) {
        let mut nodes = self.nodes.borrow_mut();
        if failed {
            let i = nodes.slot(node);
            let now = std::time::Instant::now();
            let slot = &mut nodes.slots[i];
            slot.failed_at = Some(now);
            if self.config.scatter.adaptive_replicas {
                slot.health.failure();
                slot.sampled_at = Some(now);
            }
        } else if let Some(&i) = nodes.index.get(node) {
            nodes.slots[i].failed_at = None;
        }
    }

    /// Applies `unavailable_shard_policy` to a gather: `Err` is the response to send instead
    /// of a merge; `Ok(header)` carries the `X-Miroir-Degraded` value if any.
    pub(crate) fn shard_policy(
        &self,
        index: &str,
        g: &Gathered,
    ) -> Result<Option<String>, Response> {
        if g.unavailable.is_empty() {
            return Ok(None);
        }
        let list = join_shards(&g.unavailable);
        let fail = g.bodies.is_empty()
            || self.config.scatter.unavailable_shard_policy == UnavailableShardPolicy::Error;
        if fail {
            return Err(error(&MeiliError::new(
                ErrorCode::MiroirShardUnavailable,
                format!("Shards {list} of index `{index}` are unavailable: no replica in any group answered."),
            )));
        }
        self.up.record_partial();
        Ok(Some(format!("shards={}", list.replace(", ", ","))))
    }

    /// Sends the client's request verbatim to one readable node of the index so that
    /// Meilisearch's own validation words the error (see [`query`]). Only an error is relayed:
    /// a node that *accepts* a request Miroir could not read has answered for its own shards,
    /// so that success is replaced by `miroir_not_implemented`. A tenant token is never
    /// delegated (the node would search with the node master key, without the token's rules):
    /// its request gets [`tenant_request_error`] instead.
    pub(crate) async fn delegate(
        &self,
        table: &ReadTable,
        req: Request,
        principal: &Principal,
        request_id: &str,
    ) -> Response {
        if let Principal::Tenant(_) = principal {
            let body = req.decoded_body(self.config.server.max_body_bytes as usize);
            let body = body.as_deref().unwrap_or(&req.body);
            return error(&tenant_request_error(&req, body));
        }
        let (group, rotation) = self.next_turn(table);
        let plan = table.assign(&table.all_shards(), group, rotation, &HashSet::new());
        let Some(first) = plan.assignments.first() else {
            return error(&MeiliError::new(
                ErrorCode::MiroirShardUnavailable,
                "No node can serve this index.",
            ));
        };
        let node = first.node.clone();
        self.delegate_to(&node, req, request_id).await
    }

    /// The sending half of [`Proxy::delegate`], for a node already chosen.
    pub(crate) async fn delegate_to(
        &self,
        node: &NodeId,
        req: Request,
        request_id: &str,
    ) -> Response {
        let mut fwd = Request {
            method: req.method,
            path: req.path,
            query: req.query,
            headers: Vec::new(),
            body: req.body,
        };
        for name in ["content-type", "content-encoding"] {
            if let Some(v) = req.headers.iter().find(|(n, _)| n == name) {
                fwd.headers.push(v.clone());
            }
        }
        match self
            .call_node(node, fwd, request_id, self.node_timeout())
            .await
        {
            Ok(resp) if resp.status >= 400 => upstream::relay(resp),
            Ok(_) => error(&MeiliError::new(
                ErrorCode::MiroirNotImplemented,
                "Miroir cannot answer this request across shards: it uses a form of the \
                 parameters Miroir does not read yet (see docs/compatibility.md).",
            )),
            Err(e) => error(&MeiliError::new(
                ErrorCode::MiroirShardUnavailable,
                format!("node `{node}` did not answer: {e:?}"),
            )),
        }
    }

    /// `GET /version`: asked once from a readable node, then served from the cache.
    async fn version(&self, snap: &Snapshot, request_id: &str) -> Response {
        if let Some(body) = self.version.borrow().as_ref() {
            return Response::json(200, body.clone());
        }
        if let Err(e) = self.refresh(snap) {
            return error(&e);
        }
        for node in snap.nodes.iter().filter(|n| n.status.serves_reads()) {
            let req = Request {
                method: Method::Get,
                path: "/version".into(),
                query: String::new(),
                headers: vec![],
                body: vec![],
            };
            if let Ok(resp) = self
                .call_node(&node.id, req, request_id, self.node_timeout())
                .await
            {
                if resp.status == 200 {
                    *self.version.borrow_mut() = Some(resp.body.to_vec());
                    return Response::json(200, resp.body);
                }
            }
        }
        error(&MeiliError::new(
            ErrorCode::Unavailable,
            "No Meilisearch node answered `/version`.",
        ))
    }
}

/// The index's metadata, or Meilisearch's `index_not_found`.
pub fn index_meta<'s>(snap: &'s Snapshot, index: &str) -> Result<&'s IndexMeta, MeiliError> {
    snap.indexes
        .get(index)
        .ok_or_else(|| index_not_found(index))
}

pub fn index_not_found(index: &str) -> MeiliError {
    MeiliError::new(
        ErrorCode::IndexNotFound,
        format!("Index `{index}` not found."),
    )
}

/// The answer to a tenant-token request Miroir cannot read (it is never delegated): the
/// body errors Meilisearch gives before validating parameters, else a `bad_request`.
pub(crate) fn tenant_request_error(req: &Request, body: &[u8]) -> MeiliError {
    if matches!(req.method, Method::Post) {
        if let Err(e) = miroir_core::content_type::parse_json_body(req.header("content-type"), body)
        {
            return e;
        }
    }
    MeiliError::new(
        ErrorCode::BadRequest,
        "Invalid search parameters: Miroir could not read this query (see docs/compatibility.md).",
    )
}

pub fn admin_unavailable() -> MeiliError {
    MeiliError::new(
        ErrorCode::MiroirAdminUnavailable,
        "The Miroir admin process is unavailable; this operation needs it.",
    )
}

/// A Meilisearch-shaped error response.
pub fn error(e: &MeiliError) -> Response {
    Response::json(e.status(), e.to_body())
}

fn join_shards(shards: &[ShardId]) -> String {
    shards
        .iter()
        .map(|s| s.0.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
