//! Document reads: one document by id (routed to an owner), and listings (scatter).
//!
//! - `GET /indexes/{uid}/documents/{id}`: the id's shard is computed with the normative
//!   routing; its owners are asked one after the other — preferred group first, rotating
//!   among replicas — until one answers. A node's 4xx (e.g. `document_not_found`) is the
//!   answer; a node failure moves on to the next owner, then to the other groups.
//! - `GET /indexes/{uid}/documents` and `POST …/documents/fetch`: every node of a covering
//!   set is asked (as `POST …/documents/fetch`, so the GET and POST forms share one path and
//!   the shard filter composes with the client's filter) for `offset: 0, limit:
//!   offset + limit`; `miroir-merge` produces the global window. Document order is node order
//!   (by smallest shard), then each node's own order.
//!   KNOWN LIMIT: with `sort`, the concatenation is not globally sorted.
//!
//! Reserved fields never reach the client: they are stripped from every returned document,
//! whatever `fields` asked for.

use crate::http::types::{Method, Request, Response};
use crate::proxy::auth::Principal;
use crate::proxy::json::{strip_reserved_document, RESERVED_PREFIX};
use crate::proxy::query::{query_pairs, split_sort};
use crate::proxy::scatter::ReadTable;
use crate::proxy::upstream::{is_node_failure, json_request, relay, Upstreams};
use crate::proxy::{error, Proxy};
use miroir_core::routing::shard_for_key;
use miroir_core::snapshot::Snapshot;
use miroir_core::{ErrorCode, MeiliError, NodeId};
use miroir_merge::{merge_document_lists, Bump, DocSort, ShardInput};
use serde_json::{Map, Value};

/// Meilisearch's default page size for document listings.
const DEFAULT_DOCUMENTS_LIMIT: u64 = 20;

/// A document listing request, in `documents/fetch` form.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub offset: u64,
    pub limit: u64,
    /// The rest of the client's parameters (`fields`, `filter`, `ids`, `sort`, …).
    pub body: Map<String, Value>,
}

/// `GET …/documents` parameters; `None` → delegate to a node for its exact error.
pub fn parse_list_get(qs: &str) -> Option<ListQuery> {
    let mut body = Map::new();
    for (k, v) in query_pairs(qs)? {
        let value = match k.as_str() {
            "offset" | "limit" => Value::from(v.parse::<u64>().ok()?),
            "fields" | "ids" => Value::Array(
                v.split(',')
                    .map(|s| Value::String(s.trim().to_owned()))
                    .collect(),
            ),
            "sort" => Value::Array(split_sort(&v).into_iter().map(Value::String).collect()),
            "filter" => Value::String(v),
            "retrieveVectors" => Value::Bool(v.parse::<bool>().ok()?),
            _ => return None,
        };
        body.insert(k, value);
    }
    list_from_map(body)
}

/// `POST …/documents/fetch` body; `None` → delegate.
pub fn parse_list_post(bytes: &[u8]) -> Option<ListQuery> {
    match serde_json::from_slice::<Value>(bytes).ok()? {
        Value::Object(m) => list_from_map(m),
        _ => None,
    }
}

fn list_from_map(mut body: Map<String, Value>) -> Option<ListQuery> {
    let mut take = |k: &str, default: u64| -> Option<u64> {
        match body.remove(k) {
            None | Some(Value::Null) => Some(default),
            Some(v) => v.as_u64(),
        }
    };
    let offset = take("offset", 0)?;
    let limit = take("limit", DEFAULT_DOCUMENTS_LIMIT)?;
    Some(ListQuery {
        offset,
        limit,
        body,
    })
}

/// The node's `documents/fetch` body.
pub fn list_node_body(q: &ListQuery, shard_filter: Option<&[miroir_core::ShardId]>) -> Vec<u8> {
    let mut b = q.body.clone();
    b.insert("offset".into(), 0.into());
    b.insert("limit".into(), q.offset.saturating_add(q.limit).into());
    if let Some(shards) = shard_filter {
        b.insert(
            "filter".into(),
            crate::proxy::filter::restrict_to_shards(q.body.get("filter"), shards),
        );
    }
    serde_json::to_vec(&Value::Object(b)).expect("a JSON map serialises")
}

/// The listing's `sort` criteria, when every one is a plain `field:asc|desc` (the merge can
/// then order documents as one node would). Empty otherwise, including geo sorts: nodes still
/// sort their own lists (and judge the syntax), and the merge concatenates them.
pub fn list_sort(q: &ListQuery) -> Vec<DocSort> {
    let Some(Value::Array(items)) = q.body.get("sort") else {
        return Vec::new();
    };
    items
        .iter()
        .map(|v| v.as_str().and_then(DocSort::parse))
        .collect::<Option<Vec<_>>>()
        .unwrap_or_default()
}

/// The merge needs each document's sort values: when the client's `fields` leaves a sort
/// field out, it is asked of the nodes too, and its top-level key is returned to be dropped
/// from the output ([`crate::proxy::query::add_needed_fields`]).
pub fn add_sort_fields(q: &mut ListQuery, sort: &[DocSort]) -> Vec<String> {
    let needed: Vec<&str> = sort.iter().map(|c| c.field.as_str()).collect();
    crate::proxy::query::add_needed_fields(q.body.get_mut("fields"), &needed)
}

/// Percent-encodes a document id for a node's path (ids are normally `[A-Za-z0-9_-]`).
pub use miroir_core::uri::encode_segment as encode_path_segment;

impl<U: Upstreams> Proxy<U> {
    /// The readable nodes holding document `id`'s shard, in preference order: this turn's
    /// group first, rotating within each group, recently failed nodes last.
    pub(crate) fn holders_of(&self, table: &ReadTable, id: &str) -> Vec<NodeId> {
        let shard = shard_for_key(id, table.shards);
        let (group, rotation) = self.next_turn(table);
        let ng = table.groups.len();
        let mut candidates = Vec::new();
        for g in (0..ng).map(|i| (group + i) % ng) {
            let owners = &table.groups[g].owners[shard.0 as usize];
            let n = owners.len();
            for k in 0..n {
                let node = &owners[(rotation + k) % n];
                if table.serves(node, shard) {
                    candidates.push(node.clone());
                }
            }
        }
        // Recently failed nodes go last (stable: preference order is kept otherwise).
        let suspects = self.suspects();
        candidates.sort_by_key(|n| suspects.contains(n));
        candidates
    }

    /// `GET /indexes/{uid}/documents/{id}`.
    pub(crate) async fn document_get(
        &self,
        snap: &Snapshot,
        index: &str,
        id: &str,
        req: &Request,
        rid: &str,
    ) -> Response {
        let (meta, routing) = match self.index_and_routing(snap, index) {
            Ok(x) => x,
            Err(resp) => return resp,
        };
        let table = &routing.read;
        let shard = shard_for_key(id, table.shards);
        let candidates = self.holders_of(table, id);
        let path = format!(
            "/indexes/{}/documents/{}",
            meta.uid,
            encode_path_segment(id)
        );
        for node in &candidates {
            let r = Request {
                method: Method::Get,
                path: path.clone(),
                query: req.query.clone(),
                headers: vec![],
                body: vec![],
            };
            let answer = self.call_node(node, r, rid, self.node_timeout()).await;
            self.mark(
                node,
                !matches!(&answer, Ok(r) if !is_node_failure(r.status)),
            );
            match answer {
                Ok(resp) if (200..300).contains(&resp.status) => {
                    return match strip_reserved_document(&resp.body) {
                        Some(body) => Response::json(resp.status, body),
                        None => error(&MeiliError::new(
                            ErrorCode::Internal,
                            "A node returned a document Miroir cannot read.",
                        )),
                    };
                }
                Ok(resp) if !is_node_failure(resp.status) => return relay(resp),
                _ => continue,
            }
        }
        error(&MeiliError::new(
            ErrorCode::MiroirShardUnavailable,
            format!(
                "Shard {} of index `{}` is unavailable: no replica in any group answered.",
                shard.0, meta.uid
            ),
        ))
    }

    /// `GET /indexes/{uid}/documents` (`fetch == false`) and `POST …/documents/fetch`.
    pub(crate) async fn documents_list(
        &self,
        snap: &Snapshot,
        index: &str,
        req: Request,
        principal: &Principal,
        fetch: bool,
        rid: &str,
    ) -> Response {
        let (meta, routing) = match self.index_and_routing(snap, index) {
            Ok(x) => x,
            Err(resp) => return resp,
        };
        let parsed = if fetch {
            let ct_json = req.header("content-type").is_some_and(|v| {
                v.split(|&b| b == b';')
                    .next()
                    .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"application/json"))
            });
            let body = if ct_json {
                req.decoded_body(self.config.server.max_body_bytes as usize)
                    .ok()
            } else {
                None
            };
            body.and_then(|b| parse_list_post(&b))
        } else {
            parse_list_get(&req.query)
        };
        let Some(mut q) = parsed else {
            return self.delegate(&routing.read, req, principal, rid).await;
        };
        if let Err(resp) = self
            .resolve_foreign_filters(snap, meta, &mut q.body, rid)
            .await
        {
            return resp;
        }
        let sort = list_sort(&q);
        let drop = add_sort_fields(&mut q, &sort);
        let drop: Vec<&str> = drop.iter().map(String::as_str).collect();
        let path = format!("/indexes/{}/documents/fetch", meta.uid);
        let shards =
            self.planned_shards(meta, &routing.read, q.body.get("filter"), q.body.get("ids"));
        let gathered = self
            .gather(&routing.read, shards, rid, |a| {
                let filter = a.needs_shard_filter.then_some(a.shards.as_slice());
                json_request(
                    Method::Post,
                    path.clone(),
                    String::new(),
                    list_node_body(&q, filter),
                )
            })
            .await;
        if let Some(resp) = gathered.relay {
            return resp;
        }
        let degraded = match self.shard_policy(&meta.uid, &gathered) {
            Ok(d) => d,
            Err(resp) => return resp,
        };
        let inputs: Vec<ShardInput> = gathered.bodies.iter().map(|b| ShardInput::Ok(b)).collect();
        let arena = Bump::new();
        let mut body = Vec::new();
        // The merge removes reserved fields from every document, whatever `fields` asked.
        if let Err(e) = merge_document_lists(
            &inputs,
            q.offset as usize,
            q.limit as usize,
            &sort,
            &drop,
            RESERVED_PREFIX,
            &arena,
            &mut body,
        ) {
            return error(&MeiliError::new(
                ErrorCode::Internal,
                format!("A node returned a document list Miroir cannot read: {e}"),
            ));
        }
        let mut resp = Response::json(200, body);
        if let Some(d) = degraded {
            resp.headers
                .push(("x-miroir-degraded".into(), d.into_bytes()));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use miroir_core::ShardId;
    use serde_json::json;

    #[test]
    fn list_get_params() {
        let q = parse_list_get("offset=5&limit=2&fields=a,b&filter=x%20%3D%201&ids=1,2").unwrap();
        assert_eq!((q.offset, q.limit), (5, 2));
        assert_eq!(q.body["fields"], json!(["a", "b"]));
        assert_eq!(q.body["filter"], json!("x = 1"));
        assert_eq!(q.body["ids"], json!(["1", "2"]));
        assert!(parse_list_get("limit=x").is_none());
        assert!(parse_list_get("nope=1").is_none());
        let q = parse_list_get("").unwrap();
        assert_eq!((q.offset, q.limit), (0, 20));
    }

    #[test]
    fn sort_criteria_and_added_fields() {
        let mut q = parse_list_post(
            br#"{"sort":["rating:desc","a.b:asc"],"fields":["id","a.c","rating"]}"#,
        )
        .unwrap();
        let sort = list_sort(&q);
        assert_eq!(sort.len(), 2);
        assert!(!sort[0].asc && sort[1].asc);
        // `a.b` is added for the merge, but `a` stays (the client asked for `a.c`).
        assert!(add_sort_fields(&mut q, &sort).is_empty());
        assert_eq!(q.body["fields"], json!(["id", "a.c", "rating", "a.b"]));

        let mut q = parse_list_get("sort=rating:desc,title:asc&fields=id").unwrap();
        let sort = list_sort(&q);
        assert_eq!(add_sort_fields(&mut q, &sort), vec!["rating", "title"]);
        assert_eq!(q.body["fields"], json!(["id", "rating", "title"]));

        // No `fields`, or `*`: nothing to add.
        let mut q = parse_list_get("sort=rating:desc").unwrap();
        assert!(add_sort_fields(&mut q.clone(), &list_sort(&q)).is_empty());
        let mut star = parse_list_get("sort=rating:desc&fields=*").unwrap();
        assert!(add_sort_fields(&mut star, &list_sort(&q)).is_empty());
        q.body.insert("sort".into(), json!(["_geoPoint(1,2):asc"]));
        assert!(list_sort(&q).is_empty(), "geo sorts are left to the nodes");
        q.body.insert("sort".into(), json!(["rating:sideways"]));
        assert!(list_sort(&q).is_empty());
    }

    #[test]
    fn list_post_and_node_body() {
        let q = parse_list_post(br#"{"offset":10,"limit":5,"filter":"a = 1"}"#).unwrap();
        let b: Value = serde_json::from_slice(&list_node_body(&q, Some(&[ShardId(3)]))).unwrap();
        assert_eq!(
            b,
            json!({"offset":0,"limit":15,"filter":[r##"_miroir_shard IN [")"]"##,"a = 1"]})
        );
        assert!(parse_list_post(br#"{"limit":-1}"#).is_none());
        assert!(parse_list_post(b"[]").is_none());
    }

    #[test]
    fn path_encoding() {
        assert_eq!(encode_path_segment("abc-1_2"), "abc-1_2");
        assert_eq!(encode_path_segment("a b/c"), "a%20b%2Fc");
    }
}
