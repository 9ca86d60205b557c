//! `retrieveVectors: true` over nodes that hold an explicit `displayedAttributes` list.
//!
//! Miroir gives the nodes an explicit list of displayed fields when the client's is `*`
//! (docs/decisions/006-searchable-wildcard.md), and with an explicit list a node shows
//! `_vectors` in search hits only when the index has embedders. One Meilisearch whose
//! displayed attributes are `*` shows it in every hit, `{}` without embedders, right after the
//! document's fields (before `_formatted`, `_matchesPosition`, `_rankingScore`, …). So a hit
//! that comes back without `_vectors` is a hit of an index without embedders, and gets `{}`
//! where one node would put it. Only requests with `retrieveVectors: true` pay for the parse.

use serde_json::{Map, Value};

/// Adds `"_vectors": {}` to every hit of a search answer that has no `_vectors`, before the
/// first member Meilisearch writes after the document (`_formatted` and the other `_` metadata
/// members). `None` when `body` is not a search answer with hits, or no hit lacked it.
pub fn fill_empty_vectors(body: &[u8]) -> Option<Vec<u8>> {
    let mut answer: Map<String, Value> = serde_json::from_slice(body).ok()?;
    let hits = answer.get_mut("hits")?.as_array_mut()?;
    let mut changed = false;
    for hit in hits.iter_mut().filter_map(Value::as_object_mut) {
        if hit.contains_key("_vectors") {
            continue;
        }
        let at = hit
            .keys()
            .position(|k| METADATA_AFTER_VECTORS.contains(&k.as_str()))
            .unwrap_or(hit.len());
        hit.shift_insert(at, "_vectors".into(), Value::Object(Map::new()));
        changed = true;
    }
    changed.then(|| serde_json::to_vec(&answer).expect("a JSON value serialises"))
}

/// The members one Meilisearch writes after `_vectors` in a hit.
const METADATA_AFTER_VECTORS: &[&str] = &[
    "_formatted",
    "_matchesPosition",
    "_rankingScore",
    "_rankingScoreDetails",
    "_federation",
    "_geoDistance",
    "_semanticScore",
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_empty_vectors_member_goes_after_the_document_fields() {
        let body = json!({"hits": [
            {"id": 1, "t": "a", "_formatted": {"t": "a"}, "_rankingScore": 0.5},
            {"id": 2, "_vectors": {"e": {"embeddings": [[1.0]], "regenerate": false}}},
            {"t": "c"}
        ], "query": "a", "limit": 20});
        let out: Value =
            serde_json::from_slice(&fill_empty_vectors(body.to_string().as_bytes()).unwrap())
                .unwrap();
        let keys = |i: usize| -> Vec<String> {
            out["hits"][i]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect()
        };
        assert_eq!(
            keys(0),
            ["id", "t", "_vectors", "_formatted", "_rankingScore"]
        );
        assert_eq!(out["hits"][0]["_vectors"], json!({}));
        assert_eq!(
            out["hits"][1], body["hits"][1],
            "a hit with vectors is kept as it is"
        );
        assert_eq!(keys(2), ["t", "_vectors"]);
        // The rest of the answer, in its order.
        let top: Vec<&String> = out.as_object().unwrap().keys().collect();
        assert_eq!(top, ["hits", "query", "limit"]);
    }

    #[test]
    fn nothing_to_do_is_none() {
        assert_eq!(fill_empty_vectors(br#"{"hits":[]}"#), None);
        assert_eq!(fill_empty_vectors(br#"{"hits":[{"_vectors":{}}]}"#), None);
        assert_eq!(fill_empty_vectors(b"not json"), None);
        assert_eq!(fill_empty_vectors(br#"{"results":[{"id":1}]}"#), None);
    }
}
