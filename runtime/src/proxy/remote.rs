//! Remote queries of a federated multi-search (`federationOptions.remote`, decision 045).
//!
//! The network (`/network`, kept by the admin) is in the snapshot. A query whose `remote` is
//! absent or names this deployment (`self`) runs on Miroir's shards as any federated query;
//! the others are grouped per remote and sent, as Meilisearch sends them, to that remote's
//! `/multi-search` (one federated request per remote, `Authorization: Bearer
//! <searchApiKey>`, `Meili-Proxy-Search: true`, 25 s for the whole exchange, up to four
//! tries), over the data plane's own upstream client (plain `http://` only: it has no TLS).
//! The remotes' hits are merged with the local answer by weighted ranking score
//! ([`miroir_core::network::merge_remote_results`]); a remote that failed is listed in
//! `remoteErrors` and the answer carries the other hits. Pure parts are in
//! `miroir_core::network`.

use crate::http::types::{Method, Request, UpstreamError};
use crate::proxy::auth::Principal;
use crate::proxy::federated::Federation;
use crate::proxy::upstream::Upstreams;
use crate::proxy::Proxy;
use miroir_core::network::{
    join_remote_facets, read_remote_answer, remote_body, FacetJoin, NetworkView, RemoteFailure,
    RemoteResult, RemoteView, Target, PROXY_SEARCH_HEADER, REMOTE_SEARCH_TIMEOUT_SECS,
    REMOTE_SEARCH_TRIES,
};
use miroir_core::snapshot::Snapshot;
use miroir_core::MeiliError;
use miroir_merge::Pagination;
use serde_json::{Map, Value};
use std::time::{Duration, Instant};

/// Queries with their position in the client's request.
pub type PositionedQueries = Vec<(usize, Map<String, Value>)>;

/// The remote part of one federated request.
#[derive(Debug, Clone, PartialEq)]
pub struct RemotePlan {
    /// Positions (in the client's request) of the queries not searched here (sent to
    /// remotes only, or to no one: `useNetwork` over a network that does not list `self`).
    pub remote_queries: Vec<usize>,
    /// Per remote (name order): the remote and its queries with their positions.
    pub groups: Vec<(RemoteView, PositionedQueries)>,
    /// The client's `federation` object.
    pub federation: Map<String, Value>,
    /// This deployment's name in the network (`self`).
    pub local: Option<String>,
}

impl RemotePlan {
    pub fn is_remote(&self, position: usize) -> bool {
        self.remote_queries.contains(&position)
    }

    /// A tenant token's rules go with the queries sent to remotes too: Meilisearch adds them
    /// to every query's filter before it partitions the queries.
    pub fn apply_tenant_filters(&mut self, principal: &Principal) {
        for (_, queries) in &mut self.groups {
            for (_, q) in queries {
                if let Some(index) = q.get("indexUid").and_then(Value::as_str) {
                    let index = index.to_owned();
                    crate::proxy::search::apply_tenant_filter(principal, &index, q);
                }
            }
        }
    }
}

/// Reads the queries' `federationOptions.remote` of a federated multi-search body. `Ok(None)`
/// when no query names a remote (the request is an ordinary federated search); `Err((i,
/// error))` for Meilisearch's refusal of query `i` (feature off, unknown remote). A body that
/// does not read as expected is `Ok(None)`: the ordinary path delegates it.
pub fn plan(network: &NetworkView, body: &[u8]) -> Result<Option<RemotePlan>, (usize, MeiliError)> {
    // The common case pays one scan of the body.
    let named = |k: &[u8]| body.windows(k.len()).any(|w| w == k);
    if !named(b"\"remote\"") && !named(b"\"useNetwork\"") {
        return Ok(None);
    }
    let Ok(Value::Object(mut top)) = serde_json::from_slice::<Value>(body) else {
        return Ok(None);
    };
    let Some(Value::Object(federation)) = top.remove("federation") else {
        return Ok(None);
    };
    let Some(Value::Array(queries)) = top.remove("queries") else {
        return Ok(None);
    };
    let mut any = false;
    let mut plan = RemotePlan {
        remote_queries: Vec::new(),
        groups: Vec::new(),
        federation,
        local: network.local.clone(),
    };
    for (i, q) in queries.into_iter().enumerate() {
        let Value::Object(mut q) = q else {
            return Ok(None);
        };
        let Some(remote) = miroir_core::network::query_remote(&q) else {
            return Ok(None);
        };
        // `useNetwork: true` (CE, no sharding): one copy of the query per remote of the
        // network, `self` included when listed; the copies all report the query's position.
        let use_network = match q.shift_remove("useNetwork") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(b),
            Some(_) => return Ok(None),
        };
        if use_network.is_some() && !network.feature {
            return Err((i, miroir_core::network::use_network_feature_error()));
        }
        let targets: Vec<Option<String>> = match (use_network, remote) {
            (Some(true), Some(_)) => {
                return Err((i, miroir_core::network::remote_and_use_network_error()))
            }
            (Some(true), None) => network
                .remotes
                .iter()
                .map(|r| Some(r.name.clone()))
                .collect(),
            (_, remote) => vec![remote],
        };
        let mut local = false;
        for remote in targets {
            any |= remote.is_some();
            match network.target(remote.as_deref()).map_err(|e| (i, e))? {
                Target::Local => local = true,
                Target::Remote(r) => match plan.groups.iter_mut().find(|(g, _)| g.name == r.name) {
                    Some((_, qs)) => qs.push((i, q.clone())),
                    None => plan.groups.push((r.clone(), vec![(i, q.clone())])),
                },
            }
        }
        if !local {
            plan.remote_queries.push(i);
        }
    }
    plan.groups.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    Ok(any.then_some(plan))
}

/// The federation the local queries are merged with when remotes take part: the first
/// `offset + limit` hits (page mode: page 1 of `page × hitsPerPage`), so that the client's
/// window is applied once, after the merge with the remotes' hits.
pub fn local_federation(fed: &Federation) -> Federation {
    let (start, len) = fed.pagination.window(usize::MAX);
    let prefix = start.saturating_add(len);
    let pagination = match fed.pagination {
        Pagination::OffsetLimit { .. } => Pagination::OffsetLimit {
            offset: 0,
            limit: prefix,
        },
        Pagination::Page { .. } => Pagination::Page {
            page: 1,
            hits_per_page: prefix,
        },
    };
    Federation {
        pagination,
        ..fed.clone()
    }
}

/// The remotes' `facetsByIndex` (Meilisearch joins them with the local facets when the
/// federation asks for facets).
pub fn take_facets(fed: &Federation, answers: &mut [RemoteResult]) -> Vec<Map<String, Value>> {
    if fed.facets_by_index.is_empty() {
        return Vec::new();
    }
    answers
        .iter_mut()
        .filter_map(|a| a.facets_by_index.take())
        .collect()
}

/// The federation the local facets are computed with when remotes take part: per index
/// (no `mergeFacets`), so that the remotes' facets join them before any merge.
pub fn local_facets_federation(fed: &Federation) -> Federation {
    Federation {
        merge_facets: None,
        ..fed.clone()
    }
}

/// Joins the remotes' facets with the answer's (see [`join_remote_facets`]), the local
/// indexes' value orders and `maxValuesPerFacet` taken from the snapshot.
pub fn join_facets(
    snap: &Snapshot,
    fed: &Federation,
    answer: &[u8],
    remotes: Vec<Map<String, Value>>,
) -> Option<Vec<u8>> {
    let local = |index: &str| {
        snap.index(index).map(|m| {
            (
                m.sort_facet_values_by.clone(),
                m.max_values_per_facet as usize,
            )
        })
    };
    let join = FacetJoin {
        merge: fed.merge_facets,
        local: &local,
    };
    join_remote_facets(answer, remotes, &join)
}

/// The local federated answer (from [`local_federation`]) merged with the remotes' results,
/// with the client's window and pagination members (`None` when unreadable).
pub fn merge(
    fed: &Federation,
    plan: &RemotePlan,
    local: &[u8],
    remotes: Vec<RemoteResult>,
    local_positions: &[usize],
) -> Option<Vec<u8>> {
    let members: Vec<(&str, u64)> = match fed.pagination {
        Pagination::OffsetLimit { offset, limit } => {
            vec![("limit", limit as u64), ("offset", offset as u64)]
        }
        Pagination::Page {
            page,
            hits_per_page,
        } => vec![("hitsPerPage", hits_per_page as u64), ("page", page as u64)],
    };
    miroir_core::network::merge_remote_results(
        local,
        plan.local.as_deref(),
        remotes,
        local_positions,
        fed.pagination.window(usize::MAX),
        &members,
    )
}

impl<U: Upstreams> Proxy<U> {
    /// Sends every remote its queries, concurrently; the results in remote name order and
    /// the failures.
    pub(crate) async fn search_remotes(
        &self,
        plan: &RemotePlan,
        rid: &str,
    ) -> (Vec<RemoteResult>, Vec<(String, RemoteFailure)>) {
        let runs = plan.groups.iter().map(|(remote, queries)| {
            let body = remote_body(queries, &plan.federation);
            self.search_remote(remote, body, rid)
        });
        let answers = futures_util::future::join_all(runs).await;
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        for ((remote, _), answer) in plan.groups.iter().zip(answers) {
            match answer {
                Ok(r) => ok.push(r),
                Err(e) => failed.push((remote.name.clone(), e)),
            }
        }
        (ok, failed)
    }

    async fn search_remote(
        &self,
        remote: &RemoteView,
        body: Vec<u8>,
        rid: &str,
    ) -> Result<RemoteResult, RemoteFailure> {
        let deadline = Instant::now() + Duration::from_secs(REMOTE_SEARCH_TIMEOUT_SECS);
        let mut tries = 0;
        loop {
            tries += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RemoteFailure::Timeout);
            }
            let mut headers = vec![
                ("content-type".to_string(), b"application/json".to_vec()),
                (PROXY_SEARCH_HEADER.to_string(), b"true".to_vec()),
                ("x-request-id".to_string(), rid.as_bytes().to_vec()),
            ];
            if let Some(k) = &remote.search_api_key {
                headers.push(("authorization".into(), format!("Bearer {k}").into_bytes()));
            }
            let req = Request {
                method: Method::Post,
                path: "/multi-search".into(),
                query: String::new(),
                headers,
                body: body.clone(),
            };
            let outcome = match self
                .up
                .node(remote.url.trim_end_matches('/'), req, left)
                .await
            {
                Ok(resp) => read_remote_answer(&remote.name, resp.status, &resp.body),
                Err(UpstreamError::Timeout) => Err(RemoteFailure::Timeout),
                // reqwest's wording, which Meilisearch reports (without the URL).
                Err(_) => Err(RemoteFailure::CouldNotSend("error sending request".into())),
            };
            match outcome {
                // Meilisearch waits nanoseconds between tries: no wait here.
                Err(e) if e.retry() && tries < REMOTE_SEARCH_TRIES => continue,
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use miroir_core::network::{NetworkRecord, RemoteRecord};
    use miroir_core::ErrorCode;
    use std::collections::BTreeMap;

    fn network() -> NetworkView {
        NetworkRecord {
            local: Some("a".into()),
            remotes: BTreeMap::from([
                (
                    "c".into(),
                    RemoteRecord {
                        url: "http://c".into(),
                        search_api_key: None,
                        write_api_key: None,
                    },
                ),
                (
                    "b".into(),
                    RemoteRecord {
                        url: "http://b".into(),
                        search_api_key: Some("k".into()),
                        write_api_key: None,
                    },
                ),
            ]),
            ..NetworkRecord::default()
        }
        .view(true)
    }

    #[test]
    fn queries_are_grouped_per_remote() {
        let body = br#"{"federation":{},"queries":[
            {"indexUid":"m","federationOptions":{"remote":"c"}},
            {"indexUid":"m","federationOptions":{"remote":"a"}},
            {"indexUid":"m"},
            {"indexUid":"n","federationOptions":{"remote":"b","weight":2}},
            {"indexUid":"o","federationOptions":{"remote":"c"}}]}"#;
        let p = plan(&network(), body).unwrap().unwrap();
        assert_eq!(p.remote_queries, [0, 3, 4]);
        let groups: Vec<(&str, Vec<usize>)> = p
            .groups
            .iter()
            .map(|(r, qs)| (r.name.as_str(), qs.iter().map(|(i, _)| *i).collect()))
            .collect();
        assert_eq!(groups, [("b", vec![3]), ("c", vec![0, 4])]);
        assert_eq!(p.local.as_deref(), Some("a"));
        assert!(p.is_remote(4) && !p.is_remote(2));
    }

    #[test]
    fn use_network_sends_a_copy_to_every_remote() {
        let body = br#"{"federation":{},"queries":[{"indexUid":"m","useNetwork":true},{"indexUid":"n","useNetwork":false}]}"#;
        // A network without remotes: no copy anywhere else (the nodes, whose own network
        // is empty, answer the query with no hits, as Meilisearch does).
        let empty = NetworkView {
            remotes: Vec::new(),
            ..network()
        };
        assert_eq!(plan(&empty, body), Ok(None));
        let mut with_self = network();
        with_self.remotes.push(RemoteView {
            name: "a".into(),
            url: "http://a".into(),
            search_api_key: None,
        });
        with_self.remotes.sort_by(|x, y| x.name.cmp(&y.name));
        let body = br#"{"federation":{},"queries":[{"indexUid":"m","useNetwork":true}]}"#;
        let p = plan(&with_self, body).unwrap().unwrap();
        // `self` is listed: the query also runs here.
        assert!(p.remote_queries.is_empty());
        let names: Vec<&str> = p.groups.iter().map(|(r, _)| r.name.as_str()).collect();
        assert_eq!(names, ["b", "c"]);
        assert!(p.groups[0].1[0].1.get("useNetwork").is_none());
        // `self` not listed: the query runs on the remotes only.
        let p = plan(&network(), body).unwrap().unwrap();
        assert_eq!(p.remote_queries, [0]);
        let both = br#"{"federation":{},"queries":[{"indexUid":"m","useNetwork":true,"federationOptions":{"remote":"b"}}]}"#;
        let (i, e) = plan(&network(), both).unwrap_err();
        assert_eq!(
            (i, e.code),
            (0, ErrorCode::InvalidMultiSearchFederationOptions)
        );
        let off = NetworkView {
            feature: false,
            ..network()
        };
        let (_, e) = plan(&off, body).unwrap_err();
        assert_eq!(e.code, ErrorCode::FeatureNotEnabled);
    }

    #[test]
    fn tenant_rules_go_with_remote_queries() {
        let body = br#"{"federation":{},"queries":[{"indexUid":"m","filter":"a = 1","federationOptions":{"remote":"b"}}]}"#;
        let mut p = plan(&network(), body).unwrap().unwrap();
        let tenant = crate::proxy::tenant::Tenant {
            api_key_uid: "u".into(),
            key_indexes: vec!["*".into()],
            rules: crate::proxy::tenant::SearchRules::Map(vec![(
                "m".into(),
                Some(serde_json::json!({"filter": "t = 2"})),
            )]),
        };
        p.apply_tenant_filters(&Principal::Tenant(tenant));
        let filter = p.groups[0].1[0].1["filter"].clone();
        assert_ne!(filter, serde_json::json!("a = 1"));
        assert!(filter.to_string().contains("t = 2"), "{filter}");
        p.apply_tenant_filters(&Principal::Master);
        assert_eq!(p.groups[0].1[0].1["filter"], filter);
    }

    #[test]
    fn no_remote_is_an_ordinary_federated_search() {
        assert_eq!(
            plan(
                &network(),
                br#"{"federation":{},"queries":[{"indexUid":"m"}]}"#
            ),
            Ok(None)
        );
        // Not federated: Meilisearch refuses `federationOptions`; the ordinary path words it.
        assert_eq!(
            plan(
                &network(),
                br#"{"queries":[{"indexUid":"m","federationOptions":{"remote":"b"}}]}"#
            ),
            Ok(None)
        );
        let (i, e) = plan(
            &network(),
            br#"{"federation":{},"queries":[{"indexUid":"m"},{"indexUid":"m","federationOptions":{"remote":"zz"}}]}"#,
        )
        .unwrap_err();
        assert_eq!((i, e.code), (1, ErrorCode::InvalidMultiSearchRemote));
        // `self` alone still marks the answer as a network answer (`remote` on every hit).
        let p = plan(
            &network(),
            br#"{"federation":{},"queries":[{"indexUid":"m","federationOptions":{"remote":"a"}}]}"#,
        )
        .unwrap()
        .unwrap();
        assert!(p.groups.is_empty());
    }
}
