//! Aggregated reads: index listings and objects from one live node, settings from one live
//! node with Miroir's reserved fields and explicit field lists hidden, stats aggregated over
//! every node with replica copies divided out (`miroir-merge`'s stats merge), and an index's
//! fields united over every node.

use crate::broadcast::setting_key;
use crate::http_types::{encode_segment, ApiError, Req, Resp};
use crate::state::Admin;
use hyper::Method;
use miroir_core::error::ErrorCode;
use miroir_core::snapshot::IndexMeta;
use miroir_merge::{merge_index_stats, Bump, ShardInput};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

use miroir_core::documents::RESERVED_PREFIX;

/// Sends a GET to the first live node that answers; its answer (any status) is relayed.
async fn from_one_node(admin: &Admin, path_and_query: &str) -> Result<(u16, Value), ApiError> {
    let mut last = None;
    for node in admin.live_nodes() {
        match admin
            .client
            .send(&node.address, Method::GET, path_and_query, None)
            .await
        {
            Ok(r) => return Ok((r.status, r.json())),
            Err(e) => last = Some(format!("node `{}`: {e}", node.id)),
        }
    }
    Err(ApiError::core(
        ErrorCode::MiroirNodeUnreachable,
        last.unwrap_or_else(|| "no node is available".into()),
    ))
}

fn relay(status: u16, body: Value) -> Result<Resp, ApiError> {
    if (200..300).contains(&status) {
        Ok(Resp::json(status, &body))
    } else {
        Err(ApiError::Node { status, body })
    }
}

/// `GET /indexes`, `GET /indexes/{uid}`, `GET /experimental-features` and `GET /chats…`:
/// relayed from one live node (index objects carry no document fields, so nothing needs
/// hiding; chat workspaces are the same on every node).
pub async fn index_read(admin: &Admin, req: &Req) -> Result<Resp, ApiError> {
    let pq = if req.query.is_empty() {
        req.path.clone()
    } else {
        format!("{}?{}", req.path, req.query)
    };
    let (status, body) = from_one_node(admin, &pq).await?;
    relay(status, body)
}

/// `GET /indexes` for a key restricted to some indexes: Meilisearch filters before it
/// paginates, so the whole list is read from a node, filtered by the key's patterns, then
/// cut to the client's `offset`/`limit` (`total` counts the indexes the key may see). The
/// client's own query goes to the node first so that an invalid parameter gets the node's
/// error.
pub async fn list_indexes(admin: &Admin, req: &Req) -> Result<Resp, ApiError> {
    let Some(patterns) = crate::tasks::key_patterns(admin, Some(req)) else {
        return index_read(admin, req).await;
    };
    let (status, body) = from_one_node(admin, &with_query("/indexes".into(), &req.query)).await?;
    if !(200..300).contains(&status) {
        return relay(status, body);
    }
    let number = |name: &str, default: usize| {
        crate::http_types::query_pairs(&req.query)
            .into_iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(default)
    };
    let (offset, limit) = (number("offset", 0), number("limit", 20));
    let (status, all) = from_one_node(admin, "/indexes?offset=0&limit=4294967295").await?;
    if !(200..300).contains(&status) {
        return relay(status, all);
    }
    let visible: Vec<Value> = all["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| {
            i["uid"]
                .as_str()
                .is_some_and(|uid| miroir_core::access::patterns_allow(&patterns, uid))
        })
        .cloned()
        .collect();
    let total = visible.len();
    let results: Vec<Value> = visible.into_iter().skip(offset).take(limit).collect();
    Ok(Resp::json(
        200,
        &json!({"results": results, "offset": offset, "limit": limit, "total": total}),
    ))
}

/// Removes reserved names from a list setting (string entries and attribute patterns).
fn strip_reserved(list: &mut Value) {
    if let Some(a) = list.as_array_mut() {
        a.retain(|x| !x.as_str().is_some_and(|s| s.starts_with(RESERVED_PREFIX)));
        for x in a.iter_mut() {
            if let Some(p) = x.get_mut("attributePatterns") {
                strip_reserved(p);
            }
        }
        // An attribute-pattern object left with no pattern (it only named `_miroir_shard`).
        a.retain(|x| {
            !x.get("attributePatterns")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
        });
    }
}

/// The client's view of one setting the nodes hold.
pub fn hide_setting(key: &str, value: &mut Value, meta: Option<&IndexMeta>) {
    match key {
        "filterableAttributes" | "sortableAttributes" => strip_reserved(value),
        "searchableAttributes" if meta.is_some_and(|m| m.searchable_wildcard) => {
            *value = json!(["*"])
        }
        "displayedAttributes" if meta.is_some_and(|m| m.displayed_wildcard) => {
            *value = json!(["*"])
        }
        "searchableAttributes" | "displayedAttributes" => strip_reserved(value),
        // Nodes over-fetch facet values; the client's own limit is in the index metadata.
        "faceting" => {
            if let (Some(m), Some(o)) = (meta, value.as_object_mut()) {
                if o.contains_key("maxValuesPerFacet") {
                    o.insert("maxValuesPerFacet".into(), json!(m.max_values_per_facet));
                }
            }
        }
        _ => {}
    }
}

/// The client's view of a full settings object.
pub fn hide_settings(settings: &mut Value, meta: Option<&IndexMeta>) {
    if let Some(o) = settings.as_object_mut() {
        for (k, v) in o.iter_mut() {
            hide_setting(k, v, meta);
        }
    }
}

/// `foreignKeys` in a full settings object as one Meilisearch shows it: after
/// `sortableAttributes` while the experimental feature is on, absent while it is off, whatever
/// the node holds (Miroir keeps the setting, decision 044).
pub fn show_foreign_keys(settings: &mut Value, meta: Option<&IndexMeta>, feature: bool) {
    let Some(o) = settings.as_object_mut() else {
        return;
    };
    o.remove("foreignKeys");
    if !feature {
        return;
    }
    let keys = json!(meta.map(|m| m.foreign_keys.as_slice()).unwrap_or_default());
    let mut out = Map::new();
    for (k, v) in std::mem::take(o) {
        let after = k == "sortableAttributes";
        out.insert(k, v);
        if after {
            out.insert("foreignKeys".into(), keys.clone());
        }
    }
    if !out.contains_key("foreignKeys") {
        out.insert("foreignKeys".into(), keys);
    }
    *o = out;
}

/// `GET /indexes/{uid}/settings[/{sub}]`.
pub async fn settings_read(admin: &Admin, uid: &str, sub: Option<&str>) -> Result<Resp, ApiError> {
    let key = match sub {
        Some(s) => {
            Some(setting_key(s).ok_or_else(|| ApiError::core(ErrorCode::NotFound, "Not Found"))?)
        }
        None => None,
    };
    // Miroir's own setting (decision 044): answered from the index metadata.
    if key == Some("foreignKeys") {
        let meta = admin.index(uid).ok_or_else(|| {
            ApiError::core(
                ErrorCode::IndexNotFound,
                format!("Index `{uid}` not found."),
            )
        })?;
        return Ok(Resp::json(200, &json!(meta.foreign_keys)));
    }
    let path = format!(
        "/indexes/{}/settings{}",
        encode_segment(uid),
        sub.map(|s| format!("/{s}")).unwrap_or_default()
    );
    let (status, mut body) = from_one_node(admin, &path).await?;
    if (200..300).contains(&status) {
        let meta = admin.index(uid);
        match key {
            Some(k) => hide_setting(k, &mut body, meta.as_ref()),
            None => {
                hide_settings(&mut body, meta.as_ref());
                let feature = admin.lock().foreign_keys_feature;
                show_foreign_keys(&mut body, meta.as_ref(), feature);
            }
        }
    }
    relay(status, body)
}

/// Asks every node that holds data for `path`; raw bodies (None = no usable answer).
async fn from_all_nodes(admin: &Admin, path: &str) -> Vec<(u16, Option<bytes::Bytes>)> {
    send_all_nodes(admin, Method::GET, path, None).await
}

/// [`from_all_nodes`] with any method and JSON body.
async fn send_all_nodes(
    admin: &Admin,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Vec<(u16, Option<bytes::Bytes>)> {
    let calls = admin.broadcast_nodes().into_iter().map(|n| {
        let (client, path, method) = (admin.client.clone(), path.to_string(), method.clone());
        let body = body.cloned();
        async move {
            match client.send(&n.address, method, &path, body.as_ref()).await {
                Ok(r) => (r.status, Some(r.body)),
                Err(_) => (0, None),
            }
        }
    });
    crate::health::futures_join_all(calls).await
}

/// The first node 4xx among `answers` (what one Meilisearch would answer), as an error.
fn node_refusal(answers: &[(u16, Option<bytes::Bytes>)]) -> Option<ApiError> {
    answers
        .iter()
        .find(|(s, _)| (400..500).contains(s))
        .map(|(status, b)| ApiError::Node {
            status: *status,
            body: b
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null),
        })
}

/// `POST /render-template` (Meilisearch 1.50, experimental `renderRoute`): a template and an
/// input rendered by a node. Inline inputs render the same on any node, so one answers; an
/// `indexDocument` input is asked of every node, because only those holding the document's
/// shard can render it: the first success wins, else the first node's error (e.g.
/// `render_document_not_found` when no node has it).
pub async fn render_template(admin: &Admin, req: &Req) -> Result<Resp, ApiError> {
    let body = req.json()?;
    if body["input"]["kind"] != "indexDocument" {
        let mut last = None;
        for node in admin.live_nodes() {
            match admin
                .client
                .send(&node.address, Method::POST, "/render-template", Some(&body))
                .await
            {
                Ok(r) => return relay(r.status, r.json()),
                Err(e) => last = Some(format!("node `{}`: {e}", node.id)),
            }
        }
        return Err(ApiError::core(
            ErrorCode::MiroirNodeUnreachable,
            last.unwrap_or_else(|| "no node is available".into()),
        ));
    }
    let answers = send_all_nodes(admin, Method::POST, "/render-template", Some(&body)).await;
    let parsed = |b: &Option<bytes::Bytes>| {
        b.as_deref()
            .and_then(|b| serde_json::from_slice::<Value>(b).ok())
            .unwrap_or(Value::Null)
    };
    if let Some((s, b)) = answers.iter().find(|(s, _)| (200..300).contains(s)) {
        return relay(*s, parsed(b));
    }
    match answers.iter().find(|(s, _)| *s != 0) {
        Some((s, b)) => relay(*s, parsed(b)),
        None => Err(ApiError::core(
            ErrorCode::MiroirNodeUnreachable,
            "no node answered the render request",
        )),
    }
}

/// Nodes are asked for every field at once (their own pagination would cut each node's list
/// separately).
const ALL_FIELDS: u64 = 1_000_000;

/// `POST /indexes/{uid}/fields` (Meilisearch 1.50): every node's fields and their settings
/// (the client's `filter` applied by the nodes), united by name — a field exists in the index
/// when some node has a document with it — without reserved fields, in name order, then the
/// client's `offset`/`limit` (defaults 0 and 20). A body that is not an object with integer
/// `offset`/`limit` goes verbatim to the nodes, which answer Meilisearch's error.
pub async fn index_fields(admin: &Admin, uid: &str, req: &Req) -> Result<Resp, ApiError> {
    let body = req.json()?;
    let path = format!("/indexes/{}/fields", encode_segment(uid));
    let page = body.as_object().and_then(|m| {
        let get = |k: &str, default: u64| match m.get(k) {
            None => Some(default),
            Some(v) => v.as_u64(),
        };
        Some((get("offset", 0)?, get("limit", 20)?))
    });
    let Some((offset, limit)) = page else {
        let answers = send_all_nodes(admin, Method::POST, &path, Some(&body)).await;
        return Err(node_refusal(&answers).unwrap_or_else(|| {
            ApiError::internal("nodes accepted a fields request Miroir could not read")
        }));
    };
    let mut node_body = body.clone();
    node_body["offset"] = json!(0);
    node_body["limit"] = json!(ALL_FIELDS);
    let answers = send_all_nodes(admin, Method::POST, &path, Some(&node_body)).await;
    if let Some(e) = node_refusal(&answers) {
        return Err(e);
    }
    let mut fields: BTreeMap<String, Value> = BTreeMap::new();
    let mut answered = false;
    for (status, b) in &answers {
        let Some(v) = b
            .as_deref()
            .filter(|_| (200..300).contains(status))
            .and_then(|b| serde_json::from_slice::<Value>(b).ok())
        else {
            continue;
        };
        answered = true;
        for f in v["results"].as_array().into_iter().flatten() {
            if let Some(name) = f["name"].as_str() {
                if !name.starts_with(RESERVED_PREFIX) && !fields.contains_key(name) {
                    fields.insert(name.to_string(), f.clone());
                }
            }
        }
    }
    if !answered {
        return Err(ApiError::core(
            ErrorCode::MiroirNodeUnreachable,
            "no node answered the fields request",
        ));
    }
    let total = fields.len();
    let results: Vec<Value> = fields
        .into_values()
        .skip(offset as usize)
        .take(limit as usize)
        .collect();
    Ok(Resp::json(
        200,
        &json!({"results": results, "offset": offset, "limit": limit, "total": total}),
    ))
}

fn merged_stats(bodies: &[Option<bytes::Bytes>], copies: u32) -> Result<Value, ApiError> {
    let inputs: Vec<ShardInput> = bodies
        .iter()
        .map(|b| b.as_deref().map_or(ShardInput::Failed, ShardInput::Ok))
        .collect();
    let arena = Bump::new();
    let mut out = Vec::new();
    merge_index_stats(
        &inputs,
        u64::from(copies),
        RESERVED_PREFIX,
        &arena,
        &mut out,
    )
    .map_err(|e| ApiError::internal(format!("merging node stats failed: {e}")))?;
    serde_json::from_slice(&out)
        .map_err(|e| ApiError::internal(format!("merged stats are not JSON: {e}")))
}

/// `GET /indexes/{uid}/stats` (with `showInternalDatabaseSizes`/`sizeFormat`: nodes give raw
/// sizes, summed here, formatted last — [`crate::size_format`]).
pub async fn index_stats(admin: &Admin, uid: &str, query: &str) -> Result<Resp, ApiError> {
    let (node_query, human) = crate::size_format::node_query(query);
    let answers = from_all_nodes(
        admin,
        &with_query(
            format!("/indexes/{}/stats", encode_segment(uid)),
            &node_query,
        ),
    )
    .await;
    // Any node's 4xx (e.g. index_not_found) is the answer a single Meilisearch would give.
    if let Some((status, Some(b))) = answers.iter().find(|(s, _)| (400..500).contains(s)) {
        return Err(ApiError::Node {
            status: *status,
            body: serde_json::from_slice(b).unwrap_or(Value::Null),
        });
    }
    let ok: Vec<Option<bytes::Bytes>> = answers
        .into_iter()
        .map(|(s, b)| b.filter(|_| (200..300).contains(&s)))
        .collect();
    if ok.iter().all(Option::is_none) {
        return Err(ApiError::core(
            ErrorCode::MiroirNodeUnreachable,
            "no node answered the stats request",
        ));
    }
    let mut stats = merged_stats(&ok, admin.copies())?;
    if human {
        crate::size_format::humanize_index_stats(&mut stats);
    }
    Ok(Resp::json(200, &stats))
}

fn with_query(path: String, query: &str) -> String {
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

/// `GET /stats`: sizes summed, `lastUpdate` the latest, each index merged as above.
///
/// A key restricted to some indexes sees only those in `indexes`, and `lastUpdate` is the
/// latest update of those; the database sizes still count every index, as Meilisearch's do.
pub async fn global_stats(admin: &Admin, req: &Req) -> Result<Resp, ApiError> {
    let query = req.query.as_str();
    let patterns = crate::tasks::key_patterns(admin, Some(req));
    let (node_query, human) = crate::size_format::node_query(query);
    let answers = from_all_nodes(admin, &with_query("/stats".into(), &node_query)).await;
    // A node's 4xx (an invalid parameter) is the answer a single Meilisearch would give.
    if let Some((status, Some(b))) = answers.iter().find(|(s, _)| (400..500).contains(s)) {
        return Err(ApiError::Node {
            status: *status,
            body: serde_json::from_slice(b).unwrap_or(Value::Null),
        });
    }
    let bodies: Vec<Value> = answers
        .iter()
        .filter(|(s, _)| (200..300).contains(s))
        .filter_map(|(_, b)| b.as_ref().and_then(|b| serde_json::from_slice(b).ok()))
        .collect();
    if bodies.is_empty() {
        return Err(ApiError::core(
            ErrorCode::MiroirNodeUnreachable,
            "no node answered the stats request",
        ));
    }
    let sum = |k: &str| {
        bodies
            .iter()
            .filter_map(|b| b[k].as_u64())
            .fold(0u64, u64::saturating_add)
    };
    let last_update = bodies
        .iter()
        .filter_map(|b| b["lastUpdate"].as_str())
        .max()
        .map(String::from);
    let mut names: Vec<String> = bodies
        .iter()
        .flat_map(|b| {
            b["indexes"]
                .as_object()
                .into_iter()
                .flat_map(|o| o.keys().cloned())
        })
        .collect();
    names.sort();
    names.dedup();
    let mut indexes = serde_json::Map::new();
    let last_update = match &patterns {
        None => last_update,
        Some(p) => {
            names.retain(|n| miroir_core::access::patterns_allow(p, n));
            let state = admin.lock();
            names
                .iter()
                .filter_map(|n| state.indexes.get(n).map(|m| m.updated_at.clone()))
                .max()
        }
    };
    for name in names {
        let per_node: Vec<Option<bytes::Bytes>> = bodies
            .iter()
            .map(|b| {
                b["indexes"]
                    .get(&name)
                    .map(|s| bytes::Bytes::from(serde_json::to_vec(s).expect("JSON serialises")))
            })
            .collect();
        let mut stats = merged_stats(&per_node, admin.copies())?;
        if human {
            crate::size_format::humanize_index_stats(&mut stats);
        }
        indexes.insert(name, stats);
    }
    let mut out = json!({"databaseSize": sum("databaseSize"), "usedDatabaseSize": sum("usedDatabaseSize"), "lastUpdate": last_update, "indexes": indexes});
    if human {
        for k in ["databaseSize", "usedDatabaseSize"] {
            crate::size_format::humanize(out.get_mut(k));
        }
    }
    Ok(Resp::json(200, &out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_fields_are_hidden_and_wildcards_restored() {
        let mut meta_v: IndexMeta = serde_json::from_value(json!({
            "uid": "m", "primary_key": null, "shards": 4, "fields": ["a"], "searchable_wildcard": true,
            "displayed_wildcard": false, "ranking_rules": [], "max_values_per_facet": 100,
            "sort_facet_values_by": {}, "max_total_hits": 1000, "created_at": "", "updated_at": ""
        }))
        .unwrap();
        let mut s = json!({
            "filterableAttributes": ["_miroir_shard", "genre", {"attributePatterns": ["_miroir_shard"]}],
            "searchableAttributes": ["a"], "displayedAttributes": ["a"], "sortableAttributes": []
        });
        hide_settings(&mut s, Some(&meta_v));
        assert_eq!(s["filterableAttributes"], json!(["genre"]));
        assert_eq!(s["searchableAttributes"], json!(["*"]));
        assert_eq!(s["displayedAttributes"], json!(["a"]));
        meta_v.displayed_wildcard = true;
        let mut d = json!(["a"]);
        hide_setting("displayedAttributes", &mut d, Some(&meta_v));
        assert_eq!(d, json!(["*"]));
        assert_eq!(crate::broadcast::SHARD_FIELD, "_miroir_shard");
    }

    #[test]
    fn clients_read_their_own_facet_limit() {
        let meta_v: IndexMeta = serde_json::from_value(json!({
            "uid": "m", "primary_key": null, "shards": 4, "fields": ["a"], "searchable_wildcard": true,
            "displayed_wildcard": false, "ranking_rules": [], "max_values_per_facet": 100,
            "sort_facet_values_by": {}, "max_total_hits": 1000, "created_at": "", "updated_at": ""
        }))
        .unwrap();
        let mut f = json!({"maxValuesPerFacet": 1000, "sortFacetValuesBy": {"*": "alpha"}});
        hide_setting("faceting", &mut f, Some(&meta_v));
        assert_eq!(
            f,
            json!({"maxValuesPerFacet": 100, "sortFacetValuesBy": {"*": "alpha"}})
        );
    }

    #[test]
    fn stats_divide_copies_out_and_hide_reserved_fields() {
        let node = |n: u64| {
            Some(bytes::Bytes::from(
                json!({"numberOfDocuments": n, "rawDocumentDbSize": 100, "avgDocumentSize": 10, "isIndexing": false,
                    "numberOfEmbeddings": 0, "numberOfEmbeddedDocuments": 0,
                    "fieldDistribution": {"id": n, "_miroir_shard": n}})
                .to_string(),
            ))
        };
        let v = merged_stats(&[node(4), node(6), node(10)], 2).unwrap();
        assert_eq!(v["numberOfDocuments"], 10);
        assert_eq!(v["fieldDistribution"], json!({"id": 10}));
    }
}
