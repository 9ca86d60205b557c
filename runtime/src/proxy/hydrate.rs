//! Foreign-key hydration across shards (Meilisearch 1.50's `foreignKeys`, decision 044).
//!
//! One Meilisearch replaces each foreign id a returned hit holds (in the document and in
//! `_formatted`) by the foreign document with the foreign index's displayed fields. Nodes
//! never get the setting (they would only see their own shard of the foreign index), so the
//! merged page is hydrated here: the page's foreign ids are collected per foreign index,
//! routed to their shards, and fetched with one `POST /indexes/{F}/documents/fetch` per node
//! (that node's ids only; a node answers with the index's displayed fields, as the hydration
//! of one node does). Then every id is replaced, `{}` for an id no document has (as milli's
//! document maker answers), invalid ids left as they are ([`miroir_core::foreign_keys`]).
//!
//! As on one node: a foreign index that does not exist fails a search that has hits with
//! `index_not_found`; nothing happens unless the `foreignKeys` experimental feature is on and
//! the index has foreign keys, and in that case the body is left untouched (zero cost).

use crate::http::types::{Method, Response};
use crate::proxy::json::RESERVED_PREFIX;
use crate::proxy::search::Merged;
use crate::proxy::upstream::{json_request, Upstreams};
use crate::proxy::{error, index_not_found, Proxy};
use miroir_core::foreign_keys::{
    collect_ids, document_id, find_foreign_filters, hydrate, rewrite_foreign_filters, ForeignKey,
};
use miroir_core::routing::shard_for_key;
use miroir_core::snapshot::{IndexMeta, Snapshot};
use miroir_core::{ErrorCode, MeiliError};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Foreign index uid → foreign id → the document (displayed fields).
type Fetched = HashMap<String, HashMap<String, Map<String, Value>>>;

/// Whether hits of `meta` are hydrated under `snap`.
pub fn hydrates(snap: &Snapshot, meta: &IndexMeta) -> bool {
    snap.foreign_keys_feature && !meta.foreign_keys.is_empty()
}

fn unreadable() -> Response {
    error(&MeiliError::new(
        ErrorCode::Internal,
        "A merged search response could not be hydrated.",
    ))
}

/// The fields of `keys` grouped by foreign index (each index once, in the setting's order).
fn by_foreign_index(keys: &[ForeignKey]) -> Vec<(&str, Vec<&str>)> {
    let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
    for k in keys {
        match out.iter_mut().find(|(f, _)| *f == k.foreign_index_uid) {
            Some((_, fields)) => fields.push(&k.field_name),
            None => out.push((&k.foreign_index_uid, vec![&k.field_name])),
        }
    }
    out
}

/// Replaces the foreign ids of one hit (document and `_formatted`) from `fetched`.
fn hydrate_hit(hit: &mut Map<String, Value>, keys: &[ForeignKey], fetched: &Fetched) {
    for (foreign, fields) in by_foreign_index(keys) {
        let docs = fetched.get(foreign);
        let lookup = |id: &str| docs.and_then(|d| d.get(id));
        hydrate(hit, &fields, lookup);
        if let Some(Value::Object(formatted)) = hit.get_mut("_formatted") {
            hydrate(formatted, &fields, lookup);
        }
    }
}

/// The foreign ids `hits` hold, per foreign index (`keys_of` gives each hit's foreign keys).
fn wanted<'k>(
    hits: &[Value],
    keys_of: impl Fn(&Map<String, Value>) -> Option<&'k [ForeignKey]>,
) -> BTreeMap<&'k str, BTreeSet<String>> {
    let mut out: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for hit in hits {
        let Some(hit) = hit.as_object() else { continue };
        let Some(keys) = keys_of(hit) else { continue };
        for k in keys {
            let mut ids = Vec::new();
            collect_ids(hit, &k.field_name, &mut ids);
            out.entry(k.foreign_index_uid.as_str())
                .or_default()
                .extend(ids);
        }
    }
    out
}

impl<U: Upstreams> Proxy<U> {
    /// A merged search (or one query of a multi-search) of `meta`, hydrated.
    pub(crate) async fn hydrate_merged(
        &self,
        snap: &Snapshot,
        meta: &IndexMeta,
        merged: Merged,
        rid: &str,
    ) -> Merged {
        let (body, degraded) = merged?;
        if !hydrates(snap, meta) {
            return Ok((body, degraded));
        }
        let mut v: Value = serde_json::from_slice(&body).map_err(|_| unreadable())?;
        let Some(Value::Array(hits)) = v.get_mut("hits") else {
            return Err(unreadable());
        };
        if hits.is_empty() {
            return Ok((body, degraded));
        }
        let keys = meta.foreign_keys.as_slice();
        let mut want = wanted(hits, |_| Some(keys));
        // One node opens every foreign index of the setting once a page has hits.
        for (foreign, _) in by_foreign_index(keys) {
            want.entry(foreign).or_default();
        }
        let fetched = self.fetch_foreign(snap, want, rid).await?;
        for hit in hits.iter_mut().filter_map(Value::as_object_mut) {
            hydrate_hit(hit, keys, &fetched);
        }
        Ok((
            serde_json::to_vec(&v).expect("JSON serialises").into(),
            degraded,
        ))
    }

    /// A federated answer (hits carry `_federation.indexUid`), hydrated.
    pub(crate) async fn hydrate_federated(
        &self,
        snap: &Snapshot,
        body: Vec<u8>,
        rid: &str,
    ) -> Result<Vec<u8>, Response> {
        if !snap.foreign_keys_feature || snap.indexes.values().all(|m| m.foreign_keys.is_empty()) {
            return Ok(body);
        }
        let mut v: Value = serde_json::from_slice(&body).map_err(|_| unreadable())?;
        let Some(Value::Array(hits)) = v.get_mut("hits") else {
            return Err(unreadable());
        };
        let keys_of = |hit: &Map<String, Value>| -> Option<&[ForeignKey]> {
            let uid = hit.get("_federation")?.get("indexUid")?.as_str()?;
            let meta = snap.indexes.get(uid)?;
            (!meta.foreign_keys.is_empty()).then_some(meta.foreign_keys.as_slice())
        };
        // Federated hydration opens only the foreign indexes some hit names an id of.
        let mut want = wanted(hits, keys_of);
        want.retain(|_, ids| !ids.is_empty());
        if want.is_empty() {
            return Ok(body);
        }
        let fetched = self.fetch_foreign(snap, want, rid).await?;
        for hit in hits.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(keys) = keys_of(hit) {
                hydrate_hit(hit, keys, &fetched);
            }
        }
        Ok(serde_json::to_vec(&v).expect("JSON serialises"))
    }

    /// The foreign index's explicit `displayedAttributes`, as its nodes hold them (the
    /// client's list: only a `*` is rewritten for nodes), asked of a holder of `id`.
    async fn displayed_fields(
        &self,
        table: &crate::proxy::scatter::ReadTable,
        meta: &IndexMeta,
        id: &str,
        rid: &str,
    ) -> Result<Value, Response> {
        let path = format!(
            "/indexes/{}/settings/displayed-attributes",
            miroir_core::uri::encode_segment(&meta.uid)
        );
        for node in self.holders_of(table, id) {
            let req = crate::http::types::Request {
                method: Method::Get,
                path: path.clone(),
                query: String::new(),
                headers: vec![],
                body: vec![],
            };
            match self.call_node(&node, req, rid, self.node_timeout()).await {
                Ok(r) if (200..300).contains(&r.status) => {
                    self.mark(&node, false);
                    return serde_json::from_slice(&r.body).map_err(|_| unreadable());
                }
                Ok(r) if !crate::proxy::upstream::is_node_failure(r.status) => {
                    return Err(crate::proxy::upstream::relay(r))
                }
                _ => self.mark(&node, true),
            }
        }
        Err(error(&MeiliError::new(
            ErrorCode::MiroirShardUnavailable,
            format!(
                "Index `{}` is unavailable: no node answered its displayed attributes.",
                meta.uid
            ),
        )))
    }

    /// The documents `want` names, fetched from their owners: per foreign index, one
    /// `documents/fetch` per node with the ids of that node's shards.
    async fn fetch_foreign(
        &self,
        snap: &Snapshot,
        want: BTreeMap<&str, BTreeSet<String>>,
        rid: &str,
    ) -> Result<Fetched, Response> {
        let mut fetched = Fetched::new();
        for (foreign, ids) in want {
            let meta = snap
                .indexes
                .get(foreign)
                .ok_or_else(|| error(&index_not_found(foreign)))?;
            let docs = fetched.entry(foreign.to_string()).or_default();
            if ids.is_empty() {
                continue;
            }
            let routing = self.routing(snap, meta).map_err(|e| error(&e))?;
            let shards = meta.shards.max(1);
            let by_shard: Vec<(miroir_core::ShardId, &String)> = ids
                .iter()
                .map(|id| (shard_for_key(id, shards), id))
                .collect();
            let planned: BTreeSet<_> = by_shard.iter().map(|(s, _)| *s).collect();
            // `documents/fetch` ignores `displayedAttributes`; hydration shows only those.
            let fields = if meta.displayed_wildcard {
                None
            } else {
                let first = ids.iter().next().expect("not empty");
                Some(
                    self.displayed_fields(&routing.read, meta, first, rid)
                        .await?,
                )
            };
            let path = format!("/indexes/{}/documents/fetch", meta.uid);
            let gathered = self
                .gather(&routing.read, planned.into_iter().collect(), rid, |a| {
                    let mine: Vec<&String> = by_shard
                        .iter()
                        .filter(|(s, _)| a.shards.contains(s))
                        .map(|(_, id)| *id)
                        .collect();
                    let mut body = json!({"ids": mine, "limit": mine.len(), "offset": 0});
                    if let Some(fields) = &fields {
                        body["fields"] = fields.clone();
                    }
                    if a.needs_shard_filter {
                        body["filter"] = crate::proxy::filter::restrict_to_shards(None, &a.shards);
                    }
                    let body = serde_json::to_vec(&body).expect("JSON serialises");
                    json_request(Method::Post, path.clone(), String::new(), body)
                })
                .await;
            if let Some(resp) = gathered.relay {
                return Err(resp);
            }
            self.shard_policy(&meta.uid, &gathered)?;
            let pk = meta.primary_key.as_deref().unwrap_or("id");
            for b in &gathered.bodies {
                let v: Value = serde_json::from_slice(b).map_err(|_| unreadable())?;
                let Some(Value::Array(results)) = v.get("results") else {
                    return Err(unreadable());
                };
                for d in results {
                    let Some(d) = d.as_object() else { continue };
                    let Some(id) = d.get(pk).and_then(document_id) else {
                        continue;
                    };
                    let doc: Map<String, Value> = d
                        .iter()
                        .filter(|(k, _)| !k.starts_with(RESERVED_PREFIX))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    docs.insert(id, doc);
                }
            }
        }
        Ok(fetched)
    }
}

/// Meilisearch's cap on the foreign documents the foreign filters of one query may match per
/// foreign index (`MAX_FOREIGN_FILTER_DOCIDS`).
pub const MAX_FOREIGN_FILTER_DOCUMENTS: usize = 100;

fn filter_error(index: &str, message: &str) -> Response {
    error(&MeiliError::new(
        ErrorCode::InvalidSearchFilter,
        format!("Index `{index}`: {message}"),
    ))
}

impl<U: Upstreams> Proxy<U> {
    /// Resolves the foreign filters of a search's `filter` (`_foreign(field, filter)`, as
    /// Meilisearch 1.50 does for an index with foreign keys): the foreign index is searched
    /// through Miroir's own scatter for the matching documents, and the expression becomes
    /// `field IN [their ids]` before any node sees it. Without the feature or foreign keys,
    /// the filter goes to the nodes unchanged (they answer Meilisearch's errors).
    pub(crate) async fn resolve_foreign_filters(
        &self,
        snap: &Snapshot,
        meta: &IndexMeta,
        body: &mut Map<String, Value>,
        rid: &str,
    ) -> Result<(), Response> {
        if !hydrates(snap, meta) {
            return Ok(());
        }
        let Some(filter) = body.get_mut("filter") else {
            return Ok(());
        };
        // Every string of the filter (a string, or an array of strings and arrays of strings).
        let mut strings: Vec<&mut String> = Vec::new();
        match filter {
            Value::String(s) => strings.push(s),
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::String(s) => strings.push(s),
                        Value::Array(inner) => {
                            strings.extend(inner.iter_mut().filter_map(|v| match v {
                                Value::String(s) => Some(s),
                                _ => None,
                            }))
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        let mut per_index: HashMap<String, BTreeSet<String>> = HashMap::new();
        for s in strings {
            if !s.contains("_foreign") {
                continue;
            }
            let found = find_foreign_filters(s);
            let mut ids = Vec::with_capacity(found.len());
            for f in &found {
                let Some(fk) = meta.foreign_keys.iter().find(|k| k.field_name == f.field) else {
                    return Err(filter_error(
                        &meta.uid,
                        &format!("Field `{}` is not a foreign key", f.field),
                    ));
                };
                if !find_foreign_filters(&f.inner).is_empty() {
                    return Err(filter_error(
                        &meta.uid,
                        "Nested foreign filters are not supported",
                    ));
                }
                let matched = self
                    .foreign_matches(snap, &fk.foreign_index_uid, &f.inner, rid)
                    .await?;
                let seen = per_index.entry(fk.foreign_index_uid.clone()).or_default();
                seen.extend(matched.iter().cloned());
                if seen.len() > MAX_FOREIGN_FILTER_DOCUMENTS {
                    return Err(filter_error(
                        &fk.foreign_index_uid,
                        &format!("Foreign filter is retrieving too many documents, foreign filters can't retrieve more than {MAX_FOREIGN_FILTER_DOCUMENTS} documents per index"),
                    ));
                }
                ids.push(matched);
            }
            *s = rewrite_foreign_filters(s, &found, &ids);
        }
        Ok(())
    }

    /// The ids of `foreign`'s documents matching `filter` (at most one more than the cap),
    /// through Miroir's own search of that index.
    async fn foreign_matches(
        &self,
        snap: &Snapshot,
        foreign: &str,
        filter: &str,
        rid: &str,
    ) -> Result<Vec<String>, Response> {
        let meta = snap
            .indexes
            .get(foreign)
            .ok_or_else(|| error(&index_not_found(foreign)))?;
        let routing = self.routing(snap, meta).map_err(|e| error(&e))?;
        let pk = meta.primary_key.clone().unwrap_or_else(|| "id".into());
        let body = json!({
            "filter": filter,
            "limit": MAX_FOREIGN_FILTER_DOCUMENTS + 1,
            "attributesToRetrieve": [pk],
        });
        let Value::Object(body) = body else {
            unreachable!("a JSON object")
        };
        let q = crate::proxy::query::from_map(body).map_err(|_| unreadable())?;
        let (merged, _) = self.search_one(meta, &routing, &q, rid).await?;
        let v: Value = serde_json::from_slice(&merged).map_err(|_| unreadable())?;
        Ok(v["hits"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h.get(&pk).and_then(document_id))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fk(f: &str, field: &str) -> ForeignKey {
        ForeignKey {
            foreign_index_uid: f.into(),
            field_name: field.into(),
        }
    }

    #[test]
    fn groups_fields_by_foreign_index_in_setting_order() {
        let keys = [fk("a", "x"), fk("b", "y"), fk("a", "z")];
        assert_eq!(
            by_foreign_index(&keys),
            vec![("a", vec!["x", "z"]), ("b", vec!["y"])]
        );
    }

    #[test]
    fn hydrates_document_and_formatted_with_empty_for_unknown_ids() {
        let keys = [fk("authors", "author")];
        let mut fetched = Fetched::new();
        fetched.entry("authors".into()).or_default().insert(
            "a1".into(),
            json!({"id": "a1", "name": "Alice"})
                .as_object()
                .unwrap()
                .clone(),
        );
        let hits = vec![
            json!({"id": "b1", "author": "a1", "_formatted": {"id": "b1", "author": "a1"}}),
            json!({"id": "b2", "author": "zz"}),
        ];
        let want = wanted(&hits, |_| Some(&keys[..]));
        assert_eq!(want["authors"].iter().collect::<Vec<_>>(), vec!["a1", "zz"]);
        let mut hits = hits;
        for h in hits.iter_mut().filter_map(Value::as_object_mut) {
            hydrate_hit(h, &keys, &fetched);
        }
        let alice = json!({"id": "a1", "name": "Alice"});
        assert_eq!(
            hits[0],
            json!({"id": "b1", "author": alice, "_formatted": {"id": "b1", "author": alice}})
        );
        assert_eq!(hits[1], json!({"id": "b2", "author": {}}));
    }
}
