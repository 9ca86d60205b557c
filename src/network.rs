//! Meilisearch's `network` experimental feature as one Miroir deployment offers it
//! (decision 045): the `/network` record the admin keeps (never sent to the nodes), the part
//! of it the data plane needs ([`NetworkView`], in the snapshot), and the pure parts of a
//! federated multi-search with `federationOptions.remote`: which queries go where, the body a
//! remote is sent, how a remote's answer is read and merged with the local hits.
//!
//! Everything is modelled on Meilisearch 1.50 Community Edition
//! (`routes/network`, `search/federated/{perform,proxy}.rs`) and checked against a real build.

use crate::error::{ErrorCode, MeiliError};
use crate::snapshot::FacetOrder;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The store meta key of the network record (LMDB or Redis, through the store trait).
pub const STORE_KEY: &str = "network/record";
/// The store meta key of the `network` experimental feature, as last set.
pub const FEATURE_KEY: &str = "network/feature";
/// Meilisearch's remote search deadline (`MEILI_EXPERIMENTAL_REMOTE_SEARCH_TIMEOUT_SECONDS`
/// defaults to 25 s), for the whole exchange with one remote, retries included.
pub const REMOTE_SEARCH_TIMEOUT_SECS: u64 = 25;
/// Meilisearch sends a remote search up to four times (three retries) when it could not be
/// sent, the remote failed (5xx) or its answer did not parse.
pub const REMOTE_SEARCH_TRIES: u32 = 4;
/// The header Meilisearch marks its remote searches with (the remote then answers the
/// `_federation` details a merge needs).
pub const PROXY_SEARCH_HEADER: &str = "meili-proxy-search";
/// The version Meilisearch shows before the first `PATCH /network`.
pub const NIL_VERSION: &str = "00000000-0000-0000-0000-000000000000";

/// The network as stored (Meilisearch's `Network`, without `leader`: setting one needs the
/// Enterprise Edition, so it is always `null` here).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// `self`: this deployment's name in the network.
    pub local: Option<String>,
    pub remotes: BTreeMap<String, RemoteRecord>,
    /// Shard name → the remotes that own it (kept and answered; CE does nothing else with it).
    pub shards: BTreeMap<String, BTreeSet<String>>,
    /// Changes at every `PATCH` (`None`: never patched).
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteRecord {
    pub url: String,
    pub search_api_key: Option<String>,
    pub write_api_key: Option<String>,
}

/// What the admin keeps and publishes: the record and the `network` feature as last seen.
#[derive(Debug, Clone, Default)]
pub struct NetworkState {
    pub record: NetworkRecord,
    pub feature: bool,
}

impl NetworkState {
    pub fn view(&self) -> NetworkView {
        self.record.view(self.feature)
    }
}

impl NetworkRecord {
    /// The `GET`/`PATCH /network` answer, in Meilisearch's shape and key order.
    pub fn to_api(&self) -> Value {
        let mut remotes = Map::new();
        for (name, r) in &self.remotes {
            remotes.insert(
                name.clone(),
                serde_json::json!({
                    "url": r.url,
                    "searchApiKey": r.search_api_key,
                    "writeApiKey": r.write_api_key,
                    "status": "available",
                }),
            );
        }
        let mut shards = Map::new();
        for (name, owners) in &self.shards {
            shards.insert(name.clone(), serde_json::json!({ "remotes": owners }));
        }
        serde_json::json!({
            "self": self.local,
            "remotes": remotes,
            "shards": shards,
            "leader": null,
            "version": self.version.as_deref().unwrap_or(NIL_VERSION),
        })
    }

    /// What the data planes get in the snapshot.
    pub fn view(&self, feature: bool) -> NetworkView {
        NetworkView {
            feature,
            local: self.local.clone(),
            remotes: self
                .remotes
                .iter()
                .map(|(name, r)| RemoteView {
                    name: name.clone(),
                    url: r.url.clone(),
                    search_api_key: r.search_api_key.clone(),
                })
                .collect(),
        }
    }
}

/// The network as the data plane sees it (snapshot).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NetworkView {
    /// The `network` experimental feature (remote queries are refused without it).
    pub feature: bool,
    pub local: Option<String>,
    /// In name order (Meilisearch keeps them in a sorted map).
    pub remotes: Vec<RemoteView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteView {
    pub name: String,
    pub url: String,
    pub search_api_key: Option<String>,
}

/// Where one query of a federated search runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// On this deployment's shards.
    Local,
    Remote(&'a RemoteView),
}

/// Meilisearch's refusal of a remote query while the feature is off.
pub fn feature_error() -> MeiliError {
    MeiliError::new(
        ErrorCode::FeatureNotEnabled,
        "Performing a remote federated search requires enabling the `network` experimental feature. See https://github.com/orgs/meilisearch/discussions/805",
    )
}

/// Meilisearch's refusal of `useNetwork` while the feature is off.
pub fn use_network_feature_error() -> MeiliError {
    MeiliError::new(
        ErrorCode::FeatureNotEnabled,
        "passing `useNetwork` in a search query requires enabling the `network` experimental feature. See https://github.com/orgs/meilisearch/discussions/805",
    )
}

/// Meilisearch's refusal of a query with both `useNetwork: true` and a `remote`.
pub fn remote_and_use_network_error() -> MeiliError {
    MeiliError::new(
        ErrorCode::InvalidMultiSearchFederationOptions,
        "Using `.useNetwork` is not allowed as the same time as `.federationOptions.remote`.\n  - Hint: to perform an explicit query against a remote, remove `.useNetwork`.\n  - Hint: to automatically perform queries against the entire network, remove `.federationOptions.remote`.",
    )
}

impl NetworkView {
    /// Where a query with `federationOptions.remote = remote` runs: no remote or `self` →
    /// here; a registered remote → there; otherwise Meilisearch's error (without the
    /// `Inside .queries[i]` prefix, which the caller adds).
    pub fn target(&self, remote: Option<&str>) -> Result<Target<'_>, MeiliError> {
        let Some(name) = remote else {
            return Ok(Target::Local);
        };
        if !self.feature {
            return Err(feature_error());
        }
        if self.local.as_deref() == Some(name) {
            return Ok(Target::Local);
        }
        match self.remotes.iter().find(|r| r.name == name) {
            Some(r) => Ok(Target::Remote(r)),
            None => Err(MeiliError::new(
                ErrorCode::InvalidMultiSearchRemote,
                format!("Invalid `.federation_options.remote`: remote `{name}` is not registered"),
            )),
        }
    }
}

/// A query's `federationOptions.remote`: `Some(None)` when absent or `null`, `None` when it
/// is not a string (the caller lets a node word that error).
pub fn query_remote(query: &Map<String, Value>) -> Option<Option<String>> {
    match query.get("federationOptions") {
        Some(Value::Object(o)) => match o.get("remote") {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(s)) => Some(Some(s.clone())),
            Some(_) => None,
        },
        _ => Some(None),
    }
}

/// The body sent to one remote, as Meilisearch builds it: the remote's queries with their
/// weight and their position in the client's request (`queryPosition`), without `remote`;
/// the federation asks for the first `offset + limit` hits (page mode: page 1 of `page ×
/// hitsPerPage`), so that the window is applied once, after the merge; facets are never
/// merged remotely (`mergeFacets` dropped).
pub fn remote_body(
    queries: &[(usize, Map<String, Value>)],
    federation: &Map<String, Value>,
) -> Vec<u8> {
    let queries: Vec<Value> = queries
        .iter()
        .map(|(position, q)| {
            let mut q = q.clone();
            let weight = q
                .get("federationOptions")
                .and_then(|o| o.get("weight"))
                .cloned()
                .filter(|w| !w.is_null())
                .unwrap_or_else(|| Value::from(1.0));
            q.insert(
                "federationOptions".into(),
                serde_json::json!({"weight": weight, "queryPosition": position}),
            );
            Value::Object(q)
        })
        .collect();
    let mut fed = federation.clone();
    let num = |k: &str| fed.get(k).and_then(Value::as_u64);
    let (page, hpp) = (num("page"), num("hitsPerPage"));
    if page.is_none() && hpp.is_none() {
        let limit = num("limit").unwrap_or(20) + num("offset").unwrap_or(0);
        fed.insert("limit".into(), limit.into());
        fed.insert("offset".into(), 0.into());
        fed.remove("page");
        fed.remove("hitsPerPage");
    } else if page != Some(0) {
        let hpp = page.unwrap_or(1) * hpp.unwrap_or(20);
        fed.insert("page".into(), 1.into());
        fed.insert("hitsPerPage".into(), hpp.into());
    }
    fed.remove("mergeFacets");
    let body = serde_json::json!({"queries": queries, "federation": fed});
    serde_json::to_vec(&body).expect("a JSON value serialises")
}

/// Why a remote search failed, worded and coded as Meilisearch's `ProxySearchError`.
#[derive(Debug, Clone, PartialEq)]
pub enum RemoteFailure {
    /// Not sent (connection refused, unsupported URL, …).
    CouldNotSend(String),
    Timeout,
    /// `401`/`403`.
    Authentication,
    /// Another `4xx`: the remote's body.
    BadRequest {
        status: u16,
        body: String,
    },
    /// A `5xx`: the remote's body.
    RemoteError {
        status: u16,
        body: String,
    },
    /// Not a federated search answer.
    CouldNotParse(String),
    /// A hit without `_federation.weightedRankingScore` (or with a `_federation` that is
    /// not an object).
    MissingPath(&'static str),
}

impl RemoteFailure {
    /// Whether Meilisearch tries again (its `Retry::retry_later`).
    pub fn retry(&self) -> bool {
        matches!(
            self,
            RemoteFailure::CouldNotSend(_)
                | RemoteFailure::RemoteError { .. }
                | RemoteFailure::CouldNotParse(_)
        )
    }

    pub fn to_error(&self) -> MeiliError {
        let from_remote = |body: &str| format!(":\n  - response from remote: {body}");
        match self {
            RemoteFailure::CouldNotSend(e) => {
                MeiliError::new(ErrorCode::RemoteCouldNotSendRequest, e.clone())
            }
            RemoteFailure::Timeout => MeiliError::new(
                ErrorCode::RemoteTimeout,
                "remote host did not answer before the deadline",
            ),
            RemoteFailure::Authentication => MeiliError::new(
                ErrorCode::RemoteInvalidApiKey,
                "could not authenticate against the remote host\n  - hint: check that the remote instance was registered with a valid API key having the `search` action",
            ),
            RemoteFailure::BadRequest { status, body } => MeiliError::new(
                ErrorCode::RemoteBadRequest,
                format!(
                    "remote host responded with code {status}{}\n  - hint: check that the remote instance has the correct index configuration for that request\n  - hint: check that the `network` experimental feature is enabled on the remote instance",
                    from_remote(body)
                ),
            ),
            RemoteFailure::RemoteError { status, body } => MeiliError::new(
                ErrorCode::RemoteRemoteError,
                format!("remote host responded with code {status}{}", from_remote(body)),
            ),
            RemoteFailure::CouldNotParse(body) => MeiliError::new(
                ErrorCode::RemoteBadResponse,
                format!(
                    "could not parse response from the remote host as a federated search response{}\n  - hint: check that the remote instance is a Meilisearch instance running the same version",
                    from_remote(body)
                ),
            ),
            RemoteFailure::MissingPath(path) => MeiliError::new(
                ErrorCode::RemoteBadResponse,
                format!("remote hit does not contain `{path}`\n  - hint: check that the remote instance is a Meilisearch instance running the same version"),
            ),
        }
    }

    /// The error as `remoteErrors` lists it (Meilisearch's error object).
    pub fn to_json(&self) -> Value {
        serde_json::from_slice(&self.to_error().to_body()).expect("an error body is JSON")
    }
}

/// One remote's hits, ready to merge: each hit with `_federation.remote` set and its
/// weighted ranking score; the remote's total and processing time.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteResult {
    pub hits: Vec<(Map<String, Value>, f64)>,
    pub total: u64,
    pub time: u64,
    /// The remote's `facetsByIndex` (index → `{distribution, stats}`), when it sent some.
    pub facets_by_index: Option<Map<String, Value>>,
}

/// Reads a remote's answer as Meilisearch does: the status first (`401/403` → an
/// authentication failure, other `4xx` → bad request, `5xx` → remote error), then the body
/// as a federated answer whose every hit carries `_federation.weightedRankingScore`.
/// `weightedScoreValues`, Meilisearch's rule-by-rule details, is dropped: Miroir merges on
/// the weighted score (decision 045); so is `extra_document`.
pub fn read_remote_answer(
    name: &str,
    status: u16,
    body: &[u8],
) -> Result<RemoteResult, RemoteFailure> {
    let text = || String::from_utf8_lossy(body).into_owned();
    match status {
        200..=299 => {}
        401 | 403 => return Err(RemoteFailure::Authentication),
        400..=499 => {
            return Err(RemoteFailure::BadRequest {
                status,
                body: text(),
            })
        }
        500..=599 => {
            return Err(RemoteFailure::RemoteError {
                status,
                body: text(),
            })
        }
        _ => {}
    }
    let Ok(Value::Object(mut top)) = serde_json::from_slice::<Value>(body) else {
        return Err(RemoteFailure::CouldNotParse(text()));
    };
    let Some(Value::Array(raw_hits)) = top.remove("hits") else {
        return Err(RemoteFailure::CouldNotParse(text()));
    };
    let mut hits = Vec::with_capacity(raw_hits.len());
    for hit in raw_hits {
        let Value::Object(mut hit) = hit else {
            return Err(RemoteFailure::CouldNotParse(text()));
        };
        let Some(fed) = hit.get_mut("_federation") else {
            return Err(RemoteFailure::MissingPath("._federation"));
        };
        let Value::Object(fed) = fed else {
            return Err(RemoteFailure::MissingPath("._federation"));
        };
        let Some(score) = fed.get("weightedRankingScore").and_then(Value::as_f64) else {
            return Err(RemoteFailure::MissingPath(
                "._federation.weightedRankingScore",
            ));
        };
        fed.shift_remove("weightedScoreValues");
        // Meilisearch's internal hand-over of the hit's foreign documents (it mounts them on
        // the hit for its own hydration); never part of an answer.
        fed.shift_remove("extra_document");
        // A remote's pinned hit (its dynamic search rules) is merged by its score here
        // (decision 045); the position is Meilisearch's internal hand-over too.
        fed.shift_remove("pinnedPosition");
        fed.insert("remote".into(), Value::String(name.to_string()));
        hits.push((hit, score));
    }
    let num = |k: &str| top.get(k).and_then(Value::as_u64);
    let facets_by_index = match top.get("facetsByIndex") {
        Some(Value::Object(f)) => Some(f.clone()),
        _ => None,
    };
    Ok(RemoteResult {
        hits,
        total: num("estimatedTotalHits")
            .or_else(|| num("totalHits"))
            .unwrap_or(0),
        time: num("processingTimeMs").unwrap_or(0),
        facets_by_index,
    })
}

/// Merges the local federated answer (its hits are the first `offset + limit`, or page 1 of
/// `page × hitsPerPage`, ordered by weighted score) with the remotes' results, as
/// Meilisearch's `merge_index_global_results` does: by weighted ranking score, ties to the
/// lower query position; the client's window applied after the merge;
/// totals added up (page mode recomputes `totalPages`); the longest processing time.
/// Every local hit's `_federation` gets `remote: self` (`null` when `self` is not set) and
/// its query's position in the client's request (`local_positions[q]` for the local answer's
/// `queriesPosition` q: the local answer only had the local queries).
/// `remoteErrors` is not added here: it goes last, after any facets. `window` is the
/// client's (start, length); `pagination` the client's pagination members, which replace
/// the local answer's (it was asked for the whole prefix).
/// `None` when the local answer is not a federated answer.
pub fn merge_remote_results(
    local: &[u8],
    local_name: Option<&str>,
    remotes: Vec<RemoteResult>,
    local_positions: &[usize],
    window: (usize, usize),
    pagination: &[(&str, u64)],
) -> Option<Vec<u8>> {
    let Value::Object(mut top) = serde_json::from_slice::<Value>(local).ok()? else {
        return None;
    };
    for (k, v) in pagination {
        top.insert((*k).to_string(), (*v).into());
    }
    let Value::Array(local_hits) = top.get_mut("hits")?.take() else {
        return None;
    };
    let mut lists: Vec<std::vec::IntoIter<(Map<String, Value>, f64)>> = Vec::new();
    let mut local = Vec::with_capacity(local_hits.len());
    for hit in local_hits {
        let Value::Object(mut hit) = hit else {
            return None;
        };
        let Some(Value::Object(fed)) = hit.get_mut("_federation") else {
            return None;
        };
        let score = fed.get("weightedRankingScore").and_then(Value::as_f64)?;
        let q = fed.get("queriesPosition").and_then(Value::as_u64);
        if let Some(&p) = q.and_then(|q| local_positions.get(q as usize)) {
            fed.insert("queriesPosition".into(), p.into());
        }
        fed.insert(
            "remote".into(),
            local_name.map(Value::from).unwrap_or(Value::Null),
        );
        local.push((hit, score));
    }
    lists.push(local.into_iter());
    let mut total_add = 0u64;
    let mut time = top
        .get("processingTimeMs")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    for r in remotes {
        total_add = total_add.saturating_add(r.total);
        time = time.max(r.time);
        lists.push(r.hits.into_iter());
    }
    let (start, len) = window;
    let mut heads: Vec<Option<(Map<String, Value>, f64)>> =
        lists.iter_mut().map(Iterator::next).collect();
    let mut merged = Vec::new();
    let mut taken = 0usize;
    while taken < start.saturating_add(len) {
        // Ties go to the lower query position (Meilisearch's `merge_index_global_results`),
        // then to the earlier list (local, then remotes in name order).
        let mut best: Option<(usize, f64, u64)> = None;
        for (i, h) in heads.iter().enumerate() {
            if let Some((hit, s)) = h {
                let position = hit
                    .get("_federation")
                    .and_then(|f| f.get("queriesPosition"))
                    .and_then(Value::as_u64)
                    .unwrap_or(u64::MAX);
                if best.is_none_or(|(_, b, p)| *s > b || (*s == b && position < p)) {
                    best = Some((i, *s, position));
                }
            }
        }
        let Some((i, _, _)) = best else { break };
        let (hit, _) = std::mem::replace(&mut heads[i], lists[i].next())?;
        if taken >= start {
            merged.push(Value::Object(hit));
        }
        taken += 1;
    }
    top.insert("hits".into(), Value::Array(merged));
    top.insert("processingTimeMs".into(), time.into());
    if let Some(t) = top.get("estimatedTotalHits").and_then(Value::as_u64) {
        top.insert(
            "estimatedTotalHits".into(),
            t.saturating_add(total_add).into(),
        );
    }
    if let Some(t) = top.get("totalHits").and_then(Value::as_u64) {
        let total = t.saturating_add(total_add);
        top.insert("totalHits".into(), total.into());
        let hpp = top.get("hitsPerPage").and_then(Value::as_u64).unwrap_or(0);
        let pages = if hpp == 0 { 0 } else { total.div_ceil(hpp) };
        top.insert("totalPages".into(), pages.into());
    }
    serde_json::to_vec(&Value::Object(top)).ok()
}

/// How the remotes' facets join a federated answer, as Meilisearch's `FacetOrder::merge`.
pub struct FacetJoin<'a> {
    /// `mergeFacets` (its `maxValuesPerFacet`), or `None` for `facetsByIndex`.
    pub merge: Option<Option<usize>>,
    /// For a local index with facets: its value order per facet (`facet → order`, `*` as the
    /// default) and its `maxValuesPerFacet`.
    pub local: &'a dyn Fn(&str) -> Option<LocalFacetSettings>,
}

/// A local index's facet value order per facet (`*` as the default) and `maxValuesPerFacet`.
pub type LocalFacetSettings = (BTreeMap<String, FacetOrder>, usize);

fn order_of(orders: &BTreeMap<String, FacetOrder>, facet: &str) -> FacetOrder {
    orders
        .get(facet)
        .or_else(|| orders.get("*"))
        .copied()
        .unwrap_or(FacetOrder::Alpha)
}

fn sort_values(values: &mut Map<String, Value>, order: FacetOrder, max: Option<usize>) {
    let mut v: Vec<(String, Value)> = std::mem::take(values).into_iter().collect();
    match order {
        FacetOrder::Alpha => v.sort_by(|a, b| a.0.cmp(&b.0)),
        FacetOrder::Count => v.sort_by_key(|x| std::cmp::Reverse(x.1.as_u64().unwrap_or(0))),
    }
    if let Some(max) = max {
        v.truncate(max);
    }
    *values = v.into_iter().collect();
}

/// Adds one index's facets into `into` (`{distribution, stats}`): counts summed, stats
/// widened (Meilisearch's `FederatedFacets::append`).
fn add_facets(into: &mut Map<String, Value>, other: &Value) {
    // Meilisearch's member order, whichever side brings them.
    for k in ["distribution", "stats"] {
        into.entry(k).or_insert_with(|| Value::Object(Map::new()));
    }
    if let Some(Value::Object(stats)) = other.get("stats") {
        let merged = into
            .entry("stats")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(merged) = merged {
            for (facet, s) in stats {
                match merged.get_mut(facet) {
                    None => {
                        merged.insert(facet.clone(), s.clone());
                    }
                    Some(m) => {
                        let f = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64);
                        if let (Some(a), Some(b), Some(c), Some(d)) =
                            (f(m, "min"), f(m, "max"), f(s, "min"), f(s, "max"))
                        {
                            *m = serde_json::json!({"min": a.min(c), "max": b.max(d)});
                        }
                    }
                }
            }
        }
    }
    if let Some(Value::Object(dist)) = other.get("distribution") {
        let merged = into
            .entry("distribution")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(merged) = merged {
            for (facet, values) in dist {
                let Value::Object(values) = values else {
                    continue;
                };
                let entry = merged
                    .entry(facet.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(entry) = entry {
                    for (value, count) in values {
                        let sum = entry.get(value).and_then(Value::as_u64).unwrap_or(0)
                            + count.as_u64().unwrap_or(0);
                        entry.insert(value.clone(), sum.into());
                    }
                }
            }
        }
    }
}

/// The remotes' `facetsByIndex` joined with a federated answer's facets, as Meilisearch
/// does: each index's facets summed with the remotes' for that index, then either
/// (`facetsByIndex`) each local index's values ordered and cut by its own settings, or
/// (`mergeFacets`) every index merged into one `facetDistribution`/`facetStats`, values in
/// the order of the local indexes' settings (alphabetical for a facet none has), cut to
/// `mergeFacets.maxValuesPerFacet`. The answer holds the local facets as `facetsByIndex`
/// (it was computed without `mergeFacets`). `None` when unreadable.
pub fn join_remote_facets(
    answer: &[u8],
    remotes: Vec<Map<String, Value>>,
    join: &FacetJoin,
) -> Option<Vec<u8>> {
    let Value::Object(mut top) = serde_json::from_slice::<Value>(answer).ok()? else {
        return None;
    };
    let local: BTreeMap<String, Value> = match top.get("facetsByIndex") {
        Some(Value::Object(m)) => m.clone().into_iter().collect(),
        _ => BTreeMap::new(),
    };
    let local_indexes: Vec<String> = local.keys().cloned().collect();
    let mut by_index: BTreeMap<String, Map<String, Value>> = local
        .into_iter()
        .map(|(k, v)| (k, v.as_object().cloned().unwrap_or_default()))
        .collect();
    for remote in remotes {
        for (index, facets) in remote {
            add_facets(by_index.entry(index).or_default(), &facets);
        }
    }
    match join.merge {
        None => {
            for (index, facets) in by_index.iter_mut() {
                if !local_indexes.contains(index) {
                    continue;
                }
                let Some((orders, max)) = (join.local)(index) else {
                    continue;
                };
                if let Some(Value::Object(dist)) = facets.get_mut("distribution") {
                    for (facet, values) in dist.iter_mut() {
                        if let Value::Object(values) = values {
                            sort_values(values, order_of(&orders, facet), Some(max));
                        }
                    }
                }
            }
            if !by_index.is_empty() {
                let v: Map<String, Value> = by_index
                    .into_iter()
                    .map(|(k, v)| (k, Value::Object(v)))
                    .collect();
                top.insert("facetsByIndex".into(), Value::Object(v));
            }
        }
        Some(max) => {
            top.shift_remove("facetsByIndex");
            if by_index.is_empty() {
                return serde_json::to_vec(&Value::Object(top)).ok();
            }
            // The first local index (uid order) that has the facet decides its order.
            let orders: Vec<BTreeMap<String, FacetOrder>> = local_indexes
                .iter()
                .filter_map(|i| (join.local)(i).map(|(o, _)| o))
                .collect();
            let mut merged = Map::new();
            for facets in by_index.values() {
                add_facets(&mut merged, &Value::Object(facets.clone()));
            }
            if let Some(Value::Object(dist)) = merged.get_mut("distribution") {
                for (facet, values) in dist.iter_mut() {
                    let order = orders
                        .iter()
                        .find(|o| o.contains_key(facet.as_str()) || o.contains_key("*"))
                        .map(|o| order_of(o, facet))
                        .unwrap_or(FacetOrder::Alpha);
                    if let Value::Object(values) = values {
                        sort_values(values, order, max);
                    }
                }
            }
            let empty = || Value::Object(Map::new());
            top.insert(
                "facetDistribution".into(),
                merged.get("distribution").cloned().unwrap_or_else(empty),
            );
            top.insert(
                "facetStats".into(),
                merged.get("stats").cloned().unwrap_or_else(empty),
            );
        }
    }
    serde_json::to_vec(&Value::Object(top)).ok()
}

/// `,"remoteErrors":{…}` for the end of a federated answer with a remote query.
pub fn remote_errors_member(errors: &[(String, RemoteFailure)]) -> Vec<u8> {
    let mut m = Map::new();
    for (name, e) in errors {
        m.insert(name.clone(), e.to_json());
    }
    let mut out = b",\"remoteErrors\":".to_vec();
    serde_json::to_writer(&mut out, &Value::Object(m)).expect("JSON serialises");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The hits' `id`s in order.
    fn hit_ids(v: &Value) -> Vec<i64> {
        v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_i64().unwrap())
            .collect()
    }

    fn view() -> NetworkView {
        NetworkRecord {
            local: Some("a".into()),
            remotes: BTreeMap::from([
                (
                    "a".into(),
                    RemoteRecord {
                        url: "http://127.0.0.1:1".into(),
                        search_api_key: None,
                        write_api_key: None,
                    },
                ),
                (
                    "b".into(),
                    RemoteRecord {
                        url: "http://127.0.0.1:2".into(),
                        search_api_key: Some("k".into()),
                        write_api_key: Some("w".into()),
                    },
                ),
            ]),
            shards: BTreeMap::new(),
            version: None,
        }
        .view(true)
    }

    #[test]
    fn api_shape_is_meilisearchs() {
        let r = NetworkRecord::default();
        assert_eq!(
            serde_json::to_string(&r.to_api()).unwrap(),
            r#"{"self":null,"remotes":{},"shards":{},"leader":null,"version":"00000000-0000-0000-0000-000000000000"}"#
        );
    }

    #[test]
    fn targets() {
        let v = view();
        assert_eq!(v.target(None).unwrap(), Target::Local);
        assert_eq!(v.target(Some("a")).unwrap(), Target::Local);
        let Target::Remote(b) = v.target(Some("b")).unwrap() else {
            panic!("b is a remote")
        };
        assert_eq!(b.search_api_key.as_deref(), Some("k"));
        let e = v.target(Some("zz")).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidMultiSearchRemote);
        assert_eq!(
            e.message,
            "Invalid `.federation_options.remote`: remote `zz` is not registered"
        );
        let off = NetworkView {
            feature: false,
            ..view()
        };
        assert_eq!(
            off.target(Some("a")).unwrap_err().code,
            ErrorCode::FeatureNotEnabled
        );
        assert_eq!(off.target(None).unwrap(), Target::Local);
    }

    #[test]
    fn remote_body_asks_for_the_window_once() {
        let q = json!({"q": "x", "federationOptions": {"remote": "b", "weight": 0.5}});
        let body = remote_body(
            &[(3, q.as_object().unwrap().clone())],
            json!({"offset": 2, "limit": 3, "mergeFacets": {}})
                .as_object()
                .unwrap(),
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({"queries": [{"q": "x", "federationOptions": {"weight": 0.5, "queryPosition": 3}}],
                   "federation": {"offset": 0, "limit": 5}})
        );
        let body = remote_body(
            &[],
            json!({"page": 2, "hitsPerPage": 3}).as_object().unwrap(),
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["federation"], json!({"page": 1, "hitsPerPage": 6}));
    }

    #[test]
    fn remote_answers_are_classified_as_meilisearch_does() {
        assert_eq!(
            read_remote_answer("b", 403, b"{}"),
            Err(RemoteFailure::Authentication)
        );
        let e = read_remote_answer("b", 400, b"{\"m\":1}").unwrap_err();
        assert!(!e.retry());
        assert_eq!(e.to_error().code, ErrorCode::RemoteBadRequest);
        assert!(read_remote_answer("b", 502, b"x").unwrap_err().retry());
        assert!(read_remote_answer("b", 200, b"x").unwrap_err().retry());
        assert_eq!(
            read_remote_answer("b", 200, br#"{"hits":[{"id":1}]}"#),
            Err(RemoteFailure::MissingPath("._federation"))
        );
        let ok = read_remote_answer(
            "b",
            200,
            br#"{"hits":[{"id":1,"_federation":{"indexUid":"m","queriesPosition":1,"weightedRankingScore":0.5,"weightedScoreValues":[],"extra_document":{}}}],"estimatedTotalHits":4,"processingTimeMs":7}"#,
        )
        .unwrap();
        assert_eq!((ok.total, ok.time), (4, 7));
        assert_eq!(
            Value::Object(ok.hits[0].0.clone()),
            json!({"id":1,"_federation":{"indexUid":"m","queriesPosition":1,"weightedRankingScore":0.5,"remote":"b"}})
        );
        let msg = RemoteFailure::CouldNotSend("error sending request".into()).to_json();
        assert_eq!(msg["code"], "remote_could_not_send_request");
        assert_eq!(msg["type"], "system");
    }

    #[test]
    fn ties_go_to_the_lower_query_position() {
        let local = serde_json::to_vec(&json!({
            "hits": [{"id": 1, "_federation": {"indexUid": "m", "queriesPosition": 0, "weightedRankingScore": 0.5}}],
            "processingTimeMs": 1, "limit": 20, "offset": 0, "estimatedTotalHits": 1
        }))
        .unwrap();
        let remote = RemoteResult {
            hits: vec![(
                json!({"id": 2, "_federation": {"queriesPosition": 0, "remote": "b"}})
                    .as_object()
                    .unwrap()
                    .clone(),
                0.5,
            )],
            total: 1,
            time: 1,
            facets_by_index: None,
        };
        // The local query is the client's second one, the remote's its first.
        let out =
            merge_remote_results(&local, Some("a"), vec![remote], &[1], (0, 20), &[]).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        let ids = hit_ids(&v);
        assert_eq!(ids, [2, 1]);
    }

    #[test]
    fn merge_orders_by_weighted_score_local_first_on_ties() {
        let local = serde_json::to_vec(&json!({
            "hits": [
                {"id": 1, "_federation": {"indexUid": "m", "queriesPosition": 0, "weightedRankingScore": 0.9}},
                {"id": 2, "_federation": {"indexUid": "m", "queriesPosition": 0, "weightedRankingScore": 0.5}},
            ],
            "processingTimeMs": 1, "limit": 2, "offset": 1, "estimatedTotalHits": 2
        }))
        .unwrap();
        let remote = RemoteResult {
            hits: vec![
                (
                    json!({"id": 11, "_federation": {"remote": "b"}})
                        .as_object()
                        .unwrap()
                        .clone(),
                    0.9,
                ),
                (
                    json!({"id": 12, "_federation": {"remote": "b"}})
                        .as_object()
                        .unwrap()
                        .clone(),
                    0.7,
                ),
            ],
            total: 5,
            time: 9,
            facets_by_index: None,
        };
        let out = merge_remote_results(
            &local,
            Some("a"),
            vec![remote],
            &[1],
            (1, 2),
            &[("limit", 2), ("offset", 1)],
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        let ids = hit_ids(&v);
        assert_eq!(ids, [11, 12]);
        assert_eq!(
            (
                v["estimatedTotalHits"].clone(),
                v["processingTimeMs"].clone()
            ),
            (json!(7), json!(9))
        );
        let out = merge_remote_results(&local, None, vec![], &[1], (0, 5), &[]).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["hits"][0]["_federation"]["remote"], Value::Null);
        assert_eq!(v["hits"][0]["_federation"]["queriesPosition"], json!(1));
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "hits",
                "processingTimeMs",
                "limit",
                "offset",
                "estimatedTotalHits"
            ]
        );
    }

    #[test]
    fn remote_facets_join_as_meilisearch() {
        let answer = br#"{"hits":[],"limit":20,"facetsByIndex":{"b":{"distribution":{"g":{"x":1,"z":5}},"stats":{"n":{"min":1.0,"max":2.0}}}}}"#;
        let remote = json!({
            "c": {"distribution": {"g": {"y": 2}}, "stats": {}},
            "b": {"distribution": {"g": {"x": 3, "a": 1}}, "stats": {"n": {"min": 0.0, "max": 1.5}}},
        });
        let local = |i: &str| {
            (i == "b").then(|| (BTreeMap::from([("*".to_string(), FacetOrder::Count)]), 2))
        };
        let by_index = FacetJoin {
            merge: None,
            local: &local,
        };
        let out = join_remote_facets(answer, vec![remote.as_object().unwrap().clone()], &by_index)
            .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["facetsByIndex"],
            json!({"b": {"distribution": {"g": {"z": 5, "x": 4}}, "stats": {"n": {"min": 0.0, "max": 2.0}}},
                   "c": {"distribution": {"g": {"y": 2}}, "stats": {}}})
        );
        let members: Vec<&String> = v["facetsByIndex"]["c"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(members, ["distribution", "stats"]);
        let merged = FacetJoin {
            merge: Some(None),
            local: &local,
        };
        let out =
            join_remote_facets(answer, vec![remote.as_object().unwrap().clone()], &merged).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert!(v.get("facetsByIndex").is_none());
        assert_eq!(
            serde_json::to_string(&v["facetDistribution"]).unwrap(),
            r#"{"g":{"z":5,"x":4,"y":2,"a":1}}"#
        );
        assert_eq!(v["facetStats"], json!({"n": {"min": 0.0, "max": 2.0}}));
    }

    #[test]
    fn remote_errors_member() {
        let m = super::remote_errors_member(&[]);
        assert_eq!(m, b",\"remoteErrors\":{}");
    }
}
