//! `GET`/`POST /indexes/{uid}/similar`: the documents most similar to one document, across
//! every shard.
//!
//! Only the nodes holding the target document's shard know its embedding, and a node's own
//! `/similar` only ranks its own shards. So:
//! 1. the request goes to a node holding the target, which checks it exactly as Meilisearch
//!    does (unknown embedder, filter errors, missing document: its error is the answer);
//! 2. the target's embedding is read from that node (`retrieveVectors`);
//! 3. a vector search with that embedding (`semanticRatio: 1`, the client's filter and
//!    display options) runs on every shard and is merged by score like any search — its
//!    scores and `vectorSort` details are the ones `/similar` gives;
//! 4. the target itself and documents without an embedding (score details `similarity:
//!    null`) are removed, as `/similar` never returns them, and the answer takes its shape
//!    (`id` instead of `query`, no `semanticHitCount`).

use crate::http::types::{Method, Request, Response};
use crate::proxy::auth::Principal;
use crate::proxy::query::{from_map, query_pairs};
use crate::proxy::reads::encode_path_segment;
use crate::proxy::search::{apply_tenant_filter, json_body, with_degraded};
use crate::proxy::upstream::{is_node_failure, json_request, relay, Upstreams};
use crate::proxy::{error, Proxy};
use miroir_core::snapshot::Snapshot;
use miroir_core::{ErrorCode, MeiliError};
use serde_json::{json, Map, Value};

/// The client's similar query as a JSON object; `None` when it cannot be read here (the nodes
/// answer it then). GET parameters take their POST form.
pub fn parse(req: &Request, body: Option<&[u8]>) -> Option<Map<String, Value>> {
    if req.method == Method::Post {
        return match serde_json::from_slice(body?).ok()? {
            Value::Object(m) => Some(m),
            _ => None,
        };
    }
    let mut m = Map::new();
    for (k, v) in query_pairs(&req.query)? {
        let value = match k.as_str() {
            "offset" | "limit" => Value::from(v.parse::<u64>().ok()?),
            "rankingScoreThreshold" => Value::from(v.parse::<f64>().ok()?),
            "showRankingScore" | "showRankingScoreDetails" | "retrieveVectors" => {
                Value::Bool(v.parse().ok()?)
            }
            "attributesToRetrieve" => {
                Value::Array(v.split(',').map(|s| Value::from(s.trim())).collect())
            }
            _ => Value::String(v),
        };
        m.insert(k, value);
    }
    Some(m)
}

/// The target's id as a string (Meilisearch accepts a string or an integer).
pub fn target_id(q: &Map<String, Value>) -> Option<String> {
    match q.get("id")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

/// The vector search run on every shard for a similar query whose target embedding is `v`:
/// the client's filter and display options, one more hit than the window (the target may be
/// in it), score details always (to recognise documents without an embedding).
pub fn vector_query(q: &Map<String, Value>, embedder: &str, v: Value) -> Map<String, Value> {
    let mut s = Map::new();
    for k in [
        "filter",
        "attributesToRetrieve",
        "retrieveVectors",
        "rankingScoreThreshold",
        "showRankingScore",
        "showPerformanceDetails",
    ] {
        if let Some(x) = q.get(k) {
            s.insert(k.into(), x.clone());
        }
    }
    let (offset, limit) = window(q);
    s.insert("vector".into(), v);
    s.insert(
        "hybrid".into(),
        json!({"embedder": embedder, "semanticRatio": 1.0}),
    );
    s.insert("showRankingScoreDetails".into(), Value::Bool(true));
    s.insert("offset".into(), 0.into());
    s.insert(
        "limit".into(),
        offset.saturating_add(limit).saturating_add(1).into(),
    );
    s
}

fn window(q: &Map<String, Value>) -> (u64, u64) {
    let get = |k: &str, d: u64| q.get(k).and_then(Value::as_u64).unwrap_or(d);
    (get("offset", 0), get("limit", 20))
}

/// Shapes the merged vector search `merged` into the similar answer for target `id` (primary
/// key `pk`).
pub fn answer(q: &Map<String, Value>, id: &str, pk: &str, merged: &Value) -> Value {
    let (offset, limit) = window(q);
    let keep_details = q.get("showRankingScoreDetails") == Some(&Value::Bool(true));
    let is_target = |h: &Value| match &h[pk] {
        Value::String(s) => s == id,
        Value::Number(n) => n.to_string() == id,
        _ => false,
    };
    let hits = merged["hits"].as_array().map_or(&[][..], Vec::as_slice);
    let target_seen = hits.iter().any(is_target);
    let kept: Vec<Value> = hits
        .iter()
        .filter(|h| !is_target(h))
        .filter(|h| !h["_rankingScoreDetails"]["vectorSort"]["similarity"].is_null())
        .skip(offset as usize)
        .take(limit as usize)
        .map(|h| {
            let mut h = h.clone();
            if !keep_details {
                if let Some(o) = h.as_object_mut() {
                    o.remove("_rankingScoreDetails");
                }
            }
            h
        })
        .collect();
    let total = merged["estimatedTotalHits"].as_u64().unwrap_or(0);
    // The target is one of the candidates unless the client's filter excludes it.
    let total = if target_seen || q.get("filter").is_none_or(Value::is_null) {
        total.saturating_sub(1)
    } else {
        total
    };
    let mut out = json!({
        "hits": kept,
        "id": id,
        "processingTimeMs": merged["processingTimeMs"],
        "limit": limit,
        "offset": offset,
        "estimatedTotalHits": total,
    });
    // `showPerformanceDetails`: the first node's timings of the search (its steps are the
    // vector search's, not `/similar`'s).
    if let Some(p) = merged.get("performanceDetails") {
        out["performanceDetails"] = p.clone();
    }
    out
}

impl<U: Upstreams> Proxy<U> {
    pub(crate) async fn similar(
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
        let body = if req.method == Method::Post {
            json_body(self, &req).map(|b| b.into_owned())
        } else {
            None
        };
        let parsed = parse(&req, body.as_deref());
        let (Some(mut q), Some(pk)) = (parsed, meta.primary_key.clone()) else {
            return self.delegate(&routing.read, req, principal, rid).await;
        };
        let (Some(id), Some(embedder)) = (
            target_id(&q),
            q.get("embedder").and_then(Value::as_str).map(str::to_owned),
        ) else {
            return self.delegate(&routing.read, req, principal, rid).await;
        };
        apply_tenant_filter(principal, &meta.uid, &mut q);
        if let Err(resp) = self.resolve_foreign_filters(snap, meta, &mut q, rid).await {
            return resp;
        }

        // 1–2. A holder of the target checks the request, then gives the embedding.
        let mut embedding = None;
        let mut answered = false;
        for node in self.holders_of(&routing.read, &id) {
            let mut check = q.clone();
            check.insert("limit".into(), 0.into());
            check.insert("offset".into(), 0.into());
            let r = json_request(
                Method::Post,
                format!("/indexes/{}/similar", meta.uid),
                String::new(),
                serde_json::to_vec(&check).expect("JSON serialises"),
            );
            let answer = self.call_node(&node, r, rid, self.node_timeout()).await;
            match answer {
                Ok(resp) if (200..300).contains(&resp.status) => {}
                Ok(resp) if !is_node_failure(resp.status) => return relay(resp),
                _ => continue,
            }
            let doc = Request {
                method: Method::Get,
                path: format!(
                    "/indexes/{}/documents/{}",
                    meta.uid,
                    encode_path_segment(&id)
                ),
                query: "retrieveVectors=true".into(),
                headers: vec![],
                body: vec![],
            };
            match self.call_node(&node, doc, rid, self.node_timeout()).await {
                Ok(resp) if (200..300).contains(&resp.status) => {
                    let d: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
                    embedding = d["_vectors"][&embedder]["embeddings"]
                        .get(0)
                        .filter(|v| v.is_array())
                        .cloned();
                    answered = true;
                    break;
                }
                Ok(resp) if !is_node_failure(resp.status) => return relay(resp),
                _ => continue,
            }
        }
        if !answered {
            return error(&MeiliError::new(
                ErrorCode::MiroirShardUnavailable,
                format!(
                    "The shard holding document `{id}` of index `{}` is unavailable: no replica in any group answered.",
                    meta.uid
                ),
            ));
        }

        // 3. Every shard, searched with the target's embedding. Without one (an opted-out
        //    document) nothing is similar: only the candidates are counted.
        let search = match &embedding {
            Some(v) => vector_query(&q, &embedder, v.clone()),
            None => {
                let mut s = Map::new();
                if let Some(f) = q.get("filter") {
                    s.insert("filter".into(), f.clone());
                }
                s.insert("limit".into(), 0.into());
                s
            }
        };
        let Ok(sq) = from_map(search) else {
            return self.delegate(&routing.read, req, principal, rid).await;
        };
        let (merged, degraded) = match self.search_one(meta, &routing, &sq, rid).await {
            Ok(m) => m,
            Err(resp) => return resp,
        };
        let merged: Value = serde_json::from_slice(&merged).unwrap_or(Value::Null);
        // 4. Similar's answer.
        let out = answer(&q, &id, &pk, &merged);
        with_degraded(
            Response::json(200, serde_json::to_vec(&out).expect("JSON serialises")),
            degraded,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn ids_and_vector_query() {
        assert_eq!(target_id(&map(json!({"id": 7}))).as_deref(), Some("7"));
        assert_eq!(
            target_id(&map(json!({"id": "a-1"}))).as_deref(),
            Some("a-1")
        );
        assert_eq!(target_id(&map(json!({"id": 1.5}))), None);
        let q = map(
            json!({"id": 1, "embedder": "e", "offset": 2, "limit": 3, "filter": "a = 1",
            "showRankingScore": true, "attributesToRetrieve": ["t"]}),
        );
        let s = vector_query(&q, "e", json!([0.5, 0.25]));
        assert_eq!(
            Value::Object(s),
            json!({"filter": "a = 1", "attributesToRetrieve": ["t"], "showRankingScore": true,
                "vector": [0.5, 0.25], "hybrid": {"embedder": "e", "semanticRatio": 1.0},
                "showRankingScoreDetails": true, "offset": 0, "limit": 6})
        );
    }

    #[test]
    fn answer_drops_the_target_and_unembedded_documents() {
        let d = |s: Option<f64>| json!({"vectorSort": {"order": 0, "similarity": s}});
        let merged = json!({"hits": [
            {"id": 1, "_rankingScore": 1.0, "_rankingScoreDetails": d(Some(1.0))},
            {"id": 3, "_rankingScore": 0.99, "_rankingScoreDetails": d(Some(0.99))},
            {"id": 2, "_rankingScore": 0.85, "_rankingScoreDetails": d(Some(0.85))},
            {"id": 4, "_rankingScore": 0.0, "_rankingScoreDetails": d(None)}],
            "query": "", "processingTimeMs": 3, "limit": 21, "offset": 0, "estimatedTotalHits": 4});
        let q = map(json!({"id": 1, "embedder": "e"}));
        assert_eq!(
            answer(&q, "1", "id", &merged),
            json!({"hits": [{"id": 3, "_rankingScore": 0.99}, {"id": 2, "_rankingScore": 0.85}],
                "id": "1", "processingTimeMs": 3, "limit": 20, "offset": 0, "estimatedTotalHits": 3})
        );
        let q = map(
            json!({"id": 1, "embedder": "e", "offset": 1, "limit": 1, "showRankingScoreDetails": true}),
        );
        let a = answer(&q, "1", "id", &merged);
        assert_eq!(
            a["hits"],
            json!([{"id": 2, "_rankingScore": 0.85, "_rankingScoreDetails": d(Some(0.85))}])
        );
        // A filter that excludes the target: it is not among the candidates.
        let q = map(json!({"id": 9, "embedder": "e", "filter": "x = 1"}));
        assert_eq!(answer(&q, "9", "id", &merged)["estimatedTotalHits"], 4);
    }
}
