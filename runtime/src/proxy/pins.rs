//! Dynamic search rules in the data plane (decision 042): a search whose query activates
//! pin rules ([`miroir_core::search_rules`]) is answered with the pinned documents at their
//! positions in the *merged* page, as one Meilisearch places them over its whole index.
//!
//! 1. The active rules' pins are listed from the snapshot (no rule → the caller's normal
//!    path; the only cost of the feature is `snap.search_rules.is_empty()`).
//! 2. The pinned documents are fetched from their owners with the search's filter
//!    (`POST /indexes/{uid}/documents/fetch` with `ids`, `filter` and `fields`, one request
//!    per node): a document that does not exist or does not match the filter pins nothing,
//!    as in milli, where pins must be in the filtered universe.
//! 3. The merged search is run for the window `[0, offset + limit + pins)`, so that the
//!    organic prefix is long enough once the pinned documents are taken out of it.
//! 4. [`place_pins`] injects them (milli's algorithm), the page is cut, and the totals count
//!    each pinned document once: `organic − pinned that match the query + pins` (all of them
//!    for a placeholder search, else those seen in the window).
//!
//! Multi-search queries are pinned the same way; in a federated one the pinned hits are
//! marked ([`PIN_MARK`]) and placed across queries by [`crate::proxy::federated::combine`].
//!
//! A pinned hit carries the document (its `attributesToRetrieve` fields), `_formatted` with
//! the values as strings but no highlight or crop marks, `_rankingScore` 1.0 and
//! `_rankingScoreDetails` `{"pin": {"order": 0, "position": p}}` when asked — the
//! approximations are listed in docs/compatibility.md.

use crate::proxy::json::RESERVED_PREFIX;
use crate::proxy::query::{self, SearchQuery};
use crate::proxy::search::Merged;
use crate::proxy::upstream::Upstreams;
use crate::proxy::{IndexRouting, Proxy};
use miroir_core::search_rules::{candidate_pins, id_string, place_pins, resolve_pins};
use miroir_core::snapshot::{IndexMeta, Snapshot};
use miroir_merge::Pagination;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// Marks a pinned hit (with its position) in a query's answer for the federated merge, which
/// places pins across queries ([`crate::proxy::federated::combine`]); never sent to a client.
pub const PIN_MARK: &str = "_miroir_pin";

/// Nanoseconds since the Unix epoch, the clock the rules' time windows are read against.
fn now_ns() -> i128 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// The client's page as `(skip, take)` over the combined list.
fn window(p: Pagination) -> (usize, usize) {
    match p {
        Pagination::OffsetLimit { offset, limit } => (offset, limit),
        Pagination::Page { page: 0, .. } => (0, 0),
        Pagination::Page {
            page,
            hits_per_page,
        } => ((page - 1).saturating_mul(hits_per_page), hits_per_page),
    }
}

/// `_formatted` of a pinned hit: the values as Meilisearch's formatter writes them
/// (numbers and booleans as strings), without match marks.
fn formatted(v: &Value) -> Value {
    match v {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Array(a) => Value::Array(a.iter().map(formatted).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), formatted(v))).collect())
        }
        other => other.clone(),
    }
}

/// A field list parameter of the query.
#[derive(Debug, Clone, PartialEq)]
enum Fields {
    /// Absent, `null` or empty.
    None,
    /// Contains `*`.
    All,
    List(Vec<String>),
}

impl Fields {
    fn of(body: &Map<String, Value>, key: &str) -> Fields {
        let Some(Value::Array(a)) = body.get(key) else {
            return Fields::None;
        };
        let list: Vec<String> = a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        if list.iter().any(|f| f == "*") {
            Fields::All
        } else if list.is_empty() {
            Fields::None
        } else {
            Fields::List(list)
        }
    }

    /// Whether top-level field `key` is named (a dotted name covers its top-level key).
    fn covers(&self, key: &str) -> bool {
        match self {
            Fields::None => false,
            Fields::All => true,
            Fields::List(l) => l.iter().any(|f| f.split('.').next() == Some(key)),
        }
    }
}

/// The query's field lists: retrieved (absent = all), highlighted, cropped.
struct HitFields {
    retrieve: Fields,
    highlight: Fields,
    crop: Fields,
}

impl HitFields {
    fn of(q: &SearchQuery) -> HitFields {
        let retrieve = match Fields::of(&q.body, "attributesToRetrieve") {
            Fields::None
                if !matches!(q.body.get("attributesToRetrieve"), Some(Value::Array(_))) =>
            {
                Fields::All
            }
            f => f,
        };
        HitFields {
            retrieve,
            highlight: Fields::of(&q.body, "attributesToHighlight"),
            crop: Fields::of(&q.body, "attributesToCrop"),
        }
    }

    fn formats(&self) -> bool {
        self.highlight != Fields::None || self.crop != Fields::None
    }

    /// Whether `_formatted` has field `key`: retrieved, highlighted or cropped.
    fn formatted(&self, key: &str) -> bool {
        self.retrieve.covers(key) || self.highlight.covers(key) || self.crop.covers(key)
    }

    /// The `fields` to fetch pinned documents with (`None` = all), the primary key included.
    fn fetch(&self, pk: &str) -> Option<Vec<String>> {
        let mut out = vec![pk.to_string()];
        for f in [&self.retrieve, &self.highlight, &self.crop] {
            match f {
                Fields::All => return None,
                Fields::List(l) => out.extend(l.iter().cloned()),
                Fields::None => {}
            }
        }
        out.dedup();
        Some(out)
    }
}

/// The hit of pinned document `doc` at `position`, shaped like the query's other hits.
fn pinned_hit(doc: Map<String, Value>, position: u32, q: &SearchQuery, mark: bool) -> Value {
    let fields = HitFields::of(q);
    let mut hit: Map<String, Value> = doc
        .iter()
        .filter(|(k, _)| fields.retrieve.covers(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if fields.formats() {
        let f: Map<String, Value> = doc
            .iter()
            .filter(|(k, _)| fields.formatted(k))
            .map(|(k, v)| (k.clone(), formatted(v)))
            .collect();
        hit.insert("_formatted".into(), Value::Object(f));
    }
    let mut doc = hit;
    if q.body.get("showMatchesPosition") == Some(&Value::Bool(true)) {
        doc.insert("_matchesPosition".into(), json!({}));
    }
    if q.want_ranking_score {
        doc.insert("_rankingScore".into(), json!(1.0));
    }
    if q.want_ranking_score_details {
        doc.insert(
            "_rankingScoreDetails".into(),
            json!({"pin": {"order": 0, "position": position}}),
        );
    }
    if mark {
        doc.insert(PIN_MARK.into(), position.into());
    }
    Value::Object(doc)
}

/// Rewrites a merged answer for the window `[0, skip + take + pins)` into the client's page
/// with the pins placed. `drop` are fields added for the primary key, removed afterwards.
fn apply(
    merged: &mut Map<String, Value>,
    pk: &str,
    pins: Vec<(String, u32)>,
    docs: &mut HashMap<String, Map<String, Value>>,
    q: &SearchQuery,
    drop: &[String],
    mark: bool,
) {
    let (skip, take) = window(q.pagination);
    let pinned: Vec<&str> = pins.iter().map(|(id, _)| id.as_str()).collect();
    let hits = match merged.remove("hits") {
        Some(Value::Array(h)) => h,
        _ => Vec::new(),
    };
    let mut found = 0u64;
    let organic: Vec<Value> = hits
        .into_iter()
        .filter(|h| {
            let is_pinned = h
                .get(pk)
                .and_then(id_string)
                .is_some_and(|id| pinned.contains(&id.as_str()));
            found += u64::from(is_pinned);
            !is_pinned
        })
        .collect();
    let npins = pins.len() as u64;
    // A placeholder search matches every document of the filter: the nodes counted each
    // pinned one (the fetch checked the filter), wherever it ranks. Otherwise only those seen
    // in the window are known to match the query (docs/compatibility.md).
    let placeholder = !q.q().is_some_and(|s| s.chars().any(char::is_alphanumeric));
    if placeholder {
        found = npins;
    }
    let mut page = place_pins(pins, skip, take, organic, |id, pos| {
        pinned_hit(docs.remove(&id).unwrap_or_default(), pos, q, mark)
    });
    let fields = HitFields::of(q);
    for hit in &mut page {
        if let Value::Object(h) = hit {
            for k in drop {
                h.remove(k);
                if let Some(Value::Object(f)) = h.get_mut("_formatted") {
                    if !fields.formatted(k) {
                        f.remove(k);
                    }
                }
            }
        }
    }
    merged.insert("hits".into(), Value::Array(page));
    let total = |v: &Value| v.as_u64().map(|t| t.saturating_sub(found) + npins);
    match q.pagination {
        Pagination::OffsetLimit { offset, limit } => {
            merged.insert("offset".into(), offset.into());
            merged.insert("limit".into(), limit.into());
            if let Some(t) = merged.get("estimatedTotalHits").and_then(total) {
                merged.insert("estimatedTotalHits".into(), t.into());
            }
        }
        Pagination::Page {
            page,
            hits_per_page,
        } => {
            merged.insert("hitsPerPage".into(), hits_per_page.into());
            merged.insert("page".into(), page.into());
            if let Some(t) = merged.get("totalHits").and_then(total) {
                merged.insert("totalHits".into(), t.into());
                if hits_per_page > 0 {
                    let pages = t.div_ceil(hits_per_page as u64);
                    merged.insert("totalPages".into(), pages.into());
                }
            }
        }
    }
}

impl<U: Upstreams> Proxy<U> {
    /// [`Proxy::search_one`] with the rules applied (a query of a multi-search); `federated`
    /// marks the pinned hits with [`PIN_MARK`] for the federated merge.
    pub(crate) async fn search_one_pinned(
        &self,
        snap: &Snapshot,
        meta: &IndexMeta,
        routing: &IndexRouting,
        q: &SearchQuery,
        federated: bool,
        rid: &str,
    ) -> Merged {
        if !snap.search_rules.is_empty() {
            if let Some(m) = self
                .search_with_rules(snap, meta, routing, q, federated, rid)
                .await
            {
                return m;
            }
        }
        self.search_one(meta, routing, q, rid).await
    }

    /// The search with its pins placed, or `None` when no rule pins a document of this index
    /// for this query (the caller then searches as usual). A failed fetch of the pinned
    /// documents also gives `None`: the search itself then reports a bad filter exactly.
    pub(crate) async fn search_with_rules(
        &self,
        snap: &Snapshot,
        meta: &IndexMeta,
        routing: &IndexRouting,
        q: &SearchQuery,
        mark: bool,
        rid: &str,
    ) -> Option<Merged> {
        let candidates = candidate_pins(&snap.search_rules, &meta.uid, q.q(), now_ns());
        if candidates.is_empty() {
            return None;
        }
        let pk = meta.primary_key.as_deref()?;
        let mut docs = self
            .fetch_pinned(meta, routing, q, pk, &candidates, rid)
            .await?;
        let pins = resolve_pins(candidates, |id| docs.contains_key(id));
        if pins.is_empty() {
            return None;
        }
        let (skip, take) = window(q.pagination);
        let wide = skip.saturating_add(take).saturating_add(pins.len());
        let mut wq = q.clone();
        wq.pagination = match q.pagination {
            Pagination::OffsetLimit { .. } => Pagination::OffsetLimit {
                offset: 0,
                limit: wide,
            },
            Pagination::Page { .. } => Pagination::Page {
                page: 1,
                hits_per_page: wide,
            },
        };
        let drop = query::add_needed_fields(wq.body.get_mut("attributesToRetrieve"), &[pk]);
        let (body, degraded) = match self.search_one(meta, routing, &wq, rid).await {
            Ok(x) => x,
            Err(resp) => return Some(Err(resp)),
        };
        let Ok(Value::Object(mut merged)) = serde_json::from_slice::<Value>(&body) else {
            return Some(Ok((body, degraded)));
        };
        apply(&mut merged, pk, pins, &mut docs, q, &drop, mark);
        let out = serde_json::to_vec(&Value::Object(merged)).expect("a JSON map serialises");
        Some(Ok((out.into(), degraded)))
    }

    /// The candidate documents that exist and match the search's filter, by id, with the
    /// query's `attributesToRetrieve` (plus the primary key) and no reserved field.
    async fn fetch_pinned(
        &self,
        meta: &IndexMeta,
        routing: &IndexRouting,
        q: &SearchQuery,
        pk: &str,
        candidates: &[(String, u32)],
        rid: &str,
    ) -> Option<HashMap<String, Map<String, Value>>> {
        let mut ids: Vec<&str> = candidates.iter().map(|(id, _)| id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let ids_value = json!(ids);
        let mut body = Map::new();
        body.insert("ids".into(), ids_value.clone());
        body.insert("limit".into(), ids.len().into());
        if let Some(f) = q.filter() {
            body.insert("filter".into(), f.clone());
        }
        if let Some(fields) = HitFields::of(q).fetch(pk) {
            body.insert("fields".into(), json!(fields));
        }
        if let Some(v) = q.body.get("retrieveVectors") {
            body.insert("retrieveVectors".into(), v.clone());
        }
        let path = format!("/indexes/{}/documents/fetch", meta.uid);
        let shards = self.planned_shards(meta, &routing.read, q.filter(), Some(&ids_value));
        let gathered = self
            .gather_post(&routing.read, shards, rid, &path, &body)
            .await;
        if gathered.relay.is_some() || !gathered.unavailable.is_empty() {
            return None;
        }
        let mut docs = HashMap::new();
        for b in &gathered.bodies {
            let Ok(Value::Object(mut page)) = serde_json::from_slice::<Value>(b) else {
                return None;
            };
            let Some(Value::Array(results)) = page.remove("results") else {
                return None;
            };
            for d in results {
                if let Value::Object(mut d) = d {
                    d.retain(|k, _| !k.starts_with(RESERVED_PREFIX));
                    if let Some(id) = d.get(pk).and_then(id_string) {
                        docs.insert(id, d);
                    }
                }
            }
        }
        Some(docs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(body: Value) -> SearchQuery {
        let Value::Object(m) = body else {
            unreachable!()
        };
        query::from_map(m).unwrap()
    }

    fn ids(merged: &Map<String, Value>) -> Vec<i64> {
        merged["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_i64().unwrap())
            .collect()
    }

    fn docs(list: &[i64]) -> HashMap<String, Map<String, Value>> {
        list.iter()
            .map(|&i| {
                let Value::Object(m) = json!({"id": i, "t": "x"}) else {
                    unreachable!()
                };
                (i.to_string(), m)
            })
            .collect()
    }

    #[test]
    fn pins_land_and_totals_count_once() {
        // Organic window (0..6) holds pinned 3; pinned 9 did not match the query.
        let hits: Vec<Value> = [1, 2, 3, 4, 5, 6]
            .iter()
            .map(|i| json!({"id": i, "_rankingScore": 0.5}))
            .collect();
        let mk = || {
            let Value::Object(m) =
                json!({"hits": hits, "offset": 0, "limit": 7, "estimatedTotalHits": 6})
            else {
                unreachable!()
            };
            m
        };
        let query = q(json!({"q": "a", "offset": 1, "limit": 3, "showRankingScoreDetails": true}));
        let mut merged = mk();
        let pins = vec![("9".to_string(), 0), ("3".to_string(), 2)];
        apply(
            &mut merged,
            "id",
            pins,
            &mut docs(&[3, 9]),
            &query,
            &[],
            false,
        );
        // Combined: 9, 1, 3, 2, 4, … → page [1, 3, 2].
        assert_eq!(ids(&merged), vec![1, 3, 2]);
        assert_eq!(merged["estimatedTotalHits"], 7);
        assert_eq!(
            (merged["offset"].clone(), merged["limit"].clone()),
            (json!(1), json!(3))
        );
        assert_eq!(
            merged["hits"][1]["_rankingScoreDetails"],
            json!({"pin": {"order": 0, "position": 2}})
        );
        let page =
            q(json!({"q": "a", "page": 1, "hitsPerPage": 2, "attributesToHighlight": ["*"]}));
        let mut merged = mk();
        merged.insert("totalHits".into(), 6.into());
        merged.insert("totalPages".into(), 1.into());
        apply(
            &mut merged,
            "id",
            vec![("9".into(), 0)],
            &mut docs(&[9]),
            &page,
            &[],
            false,
        );
        assert_eq!(ids(&merged), vec![9, 1]);
        assert_eq!(
            (merged["totalHits"].clone(), merged["totalPages"].clone()),
            (json!(7), json!(4))
        );
        assert_eq!(
            merged["hits"][0]["_formatted"],
            json!({"id": "9", "t": "x"})
        );
    }
}
