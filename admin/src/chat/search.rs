//! The searches of a conversation, through Miroir's own data plane (decision 047): the
//! admin calls the data plane's public address on loopback with the caller's own
//! `Authorization`, so a search covers every shard (the merged search) and is authorised
//! exactly as Meilisearch re-authenticates the caller's token for `search` (key actions,
//! index patterns, tenant-token rules and their filters).

use super::template::{Template, DEFAULT_TEMPLATE};
use crate::http_types::{encode_segment, ApiError};
use crate::node_client::NodeClient;
use crate::state::Admin;
use hyper::Method;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Facet values per facet in the tool description (Meilisearch's `format_facet_distributions`).
const FACET_VALUES: usize = 10;

/// An index the caller may search, with what the conversation needs of its settings.
#[derive(Debug, Clone)]
pub struct IndexChat {
    pub uid: String,
    pub description: String,
    pub template: String,
    pub search_parameters: Map<String, Value>,
    pub searchable: Vec<String>,
    pub filterable: Vec<String>,
}

/// The caller's view of the data plane.
pub struct Searcher {
    client: NodeClient,
    base: String,
}

impl Searcher {
    pub fn new(admin: &Admin, authorization: Option<&str>) -> Searcher {
        let token = authorization
            .and_then(|a| a.strip_prefix("Bearer "))
            .map(str::trim);
        Searcher {
            client: admin.client.with_bearer(token),
            base: data_plane_url(&admin.config.server.bind, admin.config.server.port),
        }
    }

    async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value), ApiError> {
        let r = self
            .client
            .send(&self.base, Method::POST, path, Some(body))
            .await
            .map_err(|e| {
                ApiError::core(
                    miroir_core::error::ErrorCode::Internal,
                    format!("the data plane did not answer a chat search: {e}"),
                )
            })?;
        Ok((r.status, r.json()))
    }

    /// The facet distributions of the tool description, over the documents the caller may
    /// see; `None` when the caller may not search the index (Meilisearch lists only the
    /// indexes the key authorises).
    pub async fn facets(&self, ix: &IndexChat) -> Result<Option<String>, ApiError> {
        let mut body = json!({"q": "", "limit": 0});
        if !ix.filterable.is_empty() {
            body["facets"] = json!(ix.filterable);
        }
        let path = format!("/indexes/{}/search", encode_segment(&ix.uid));
        let (status, answer) = self.post(&path, &body).await?;
        if status == 401 || status == 403 {
            return Ok(None);
        }
        Ok(Some(format_facets(answer.get("facetDistribution"))))
    }

    /// One `_meiliSearchInIndex` call: the hits (the `_meiliSearchSources`) and their renders
    /// joined by a newline (the tool message), or the error Meilisearch reports for it
    /// (`message`, `code`).
    pub async fn search(
        &self,
        ix: &IndexChat,
        q: Option<String>,
        filter: Option<String>,
    ) -> Result<(Vec<Value>, String), (String, String)> {
        let mut body: Map<String, Value> = ix
            .search_parameters
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(q) = q {
            body.insert("q".into(), Value::String(q));
        }
        if let Some(f) = filter {
            body.insert("filter".into(), Value::String(f));
        }
        let path = format!("/indexes/{}/search", encode_segment(&ix.uid));
        let (status, answer) = self.post(&path, &Value::Object(body)).await.map_err(|e| {
            (
                e.body()["message"].as_str().unwrap_or_default().to_string(),
                "internal".into(),
            )
        })?;
        if !(200..300).contains(&status) {
            let message = answer["message"].as_str().unwrap_or_default().to_string();
            let code = answer["code"].as_str().unwrap_or("internal").to_string();
            return Err((message, code));
        }
        let hits: Vec<Value> = answer["hits"].as_array().cloned().unwrap_or_default();
        let template = Template::new(&ix.template, ix.searchable.clone())
            .map_err(|e| (e, "invalid_chat_setting_document_template".to_string()))?;
        let mut renders = Vec::with_capacity(hits.len());
        for hit in &hits {
            let Some(doc) = hit.as_object() else { continue };
            renders.push(
                template
                    .render(doc, None)
                    .map_err(|e| (e, "invalid_chat_setting_document_template".to_string()))?,
            );
        }
        Ok((hits, renders.join("\n")))
    }
}

/// The data plane's public listener as seen from this host.
fn data_plane_url(bind: &str, port: u16) -> String {
    let host = match bind {
        "" | "0.0.0.0" => "127.0.0.1".to_string(),
        "::" | "[::]" => "[::1]".to_string(),
        h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
        h => h.to_string(),
    };
    format!("http://{host}:{port}")
}

/// Every index, in uid order (Meilisearch walks its indexes by name), with its chat settings.
pub async fn indexes(admin: &Admin) -> Result<Vec<IndexChat>, ApiError> {
    let uids: Vec<String> = admin.lock().indexes.keys().cloned().collect();
    let mut out = Vec::with_capacity(uids.len());
    for uid in uids {
        if let Some(ix) = index(admin, &uid).await? {
            out.push(ix);
        }
    }
    Ok(out)
}

/// One index's chat settings; `None` when it does not exist.
pub async fn index(admin: &Admin, uid: &str) -> Result<Option<IndexChat>, ApiError> {
    let settings = match crate::reads::settings_read(admin, uid, None).await {
        Ok(r) => r.value(),
        Err(ApiError::Node { status: 404, .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let chat = settings.get("chat").cloned().unwrap_or(Value::Null);
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()
    };
    // Filterable attributes as facet names: plain names, and the names of attribute-pattern
    // objects; wildcard patterns cannot be asked for as facets (docs/compatibility.md).
    let mut filterable = Vec::new();
    for f in settings["filterableAttributes"]
        .as_array()
        .into_iter()
        .flatten()
    {
        match f {
            Value::String(s) => filterable.push(s.clone()),
            Value::Object(o) => filterable.extend(strings(o.get("attributePatterns"))),
            _ => {}
        }
    }
    filterable.retain(|f| !f.contains('*'));
    filterable.sort();
    filterable.dedup();
    let mut searchable = strings(settings.get("searchableAttributes"));
    if settings.get("searchableAttributes").is_none() {
        searchable = vec!["*".into()];
    }
    Ok(Some(IndexChat {
        uid: uid.to_string(),
        description: chat["description"].as_str().unwrap_or_default().to_string(),
        template: chat["documentTemplate"]
            .as_str()
            .unwrap_or(DEFAULT_TEMPLATE)
            .to_string(),
        search_parameters: chat["searchParameters"]
            .as_object()
            .cloned()
            .unwrap_or_default(),
        searchable,
        filterable,
    }))
}

/// Meilisearch's `format_facet_distributions`: per facet (by name) its values by count, most
/// frequent first, at most ten, `name: a, b, c.` one line each.
pub fn format_facets(distribution: Option<&Value>) -> String {
    let mut out = String::new();
    let Some(facets) = distribution.and_then(Value::as_object) else {
        return out;
    };
    let sorted: BTreeMap<&String, &Value> = facets.iter().collect();
    for (name, values) in sorted {
        let mut entries: Vec<(&String, u64)> = values
            .as_object()
            .into_iter()
            .flatten()
            .map(|(v, c)| (v, c.as_u64().unwrap_or(0)))
            .collect();
        if entries.is_empty() {
            continue;
        }
        // Equal counts: greatest value first (milli's facet heap pops by `(count, value)`).
        entries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(a.0)));
        entries.truncate(FACET_VALUES);
        let _ = write!(out, "{name}: ");
        let last = entries.len() - 1;
        for (i, (value, _)) in entries.iter().enumerate() {
            let _ = if i == last {
                write!(out, "{value}.")
            } else {
                write!(out, "{value}, ")
            };
        }
        let _ = writeln!(out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facet_lines() {
        let d =
            json!({"genre": {"drama": 1, "scifi": 2}, "color": {"red": 3, "blue": 3}, "none": {}});
        assert_eq!(
            format_facets(Some(&d)),
            "color: red, blue.\ngenre: scifi, drama.\n"
        );
        assert_eq!(format_facets(None), "");
    }

    #[test]
    fn data_plane_addresses() {
        assert_eq!(data_plane_url("0.0.0.0", 7700), "http://127.0.0.1:7700");
        assert_eq!(data_plane_url("::", 7700), "http://[::1]:7700");
        assert_eq!(data_plane_url("127.0.0.2", 1), "http://127.0.0.2:1");
        assert_eq!(data_plane_url("::1", 1), "http://[::1]:1");
    }
}
