//! Settings repair for nodes that missed a settings change while unreachable.
//!
//! Node-side settings changes (a client's settings update, and the searchable/displayed list
//! extension `prepare-write` makes when a write brings new fields — docs/contract.md#shard-field)
//! do not need every node: a node marked `failed` by the health checker, or that cannot be
//! reached (connect error, timeout), is skipped as long as every shard of the index keeps a
//! reachable owner in some group (else `miroir_no_quorum`, see [`crate::broadcast`]). Such a
//! node would otherwise come back with stale settings, so the skip is remembered **durably**
//! next to the index metadata (store key `settings-repair:{uid}` = the node ids, JSON array),
//! written before the change is acknowledged.
//!
//! The health loop ([`crate::health::run`]) calls [`repair_node`] for every node with a
//! pending repair whose probe succeeded, *before* recording that success: the node's current
//! settings are replaced by those of a node that has them (a peer not pending for that index;
//! every node of an index carries the same node-side settings), enqueued on the node — which
//! processes its tasks in order, so any document write sent afterwards sees them — and only
//! then is the marker cleared and the probe counted. A node recovering from `failed` therefore
//! never becomes `active` (write target) again with stale settings; if the repair fails the
//! success is not counted and the next probe retries. A node the health checker never saw
//! down (a blip between two probes) stays active and is repaired at its next probe; if it was
//! reachable again for the documents that followed the change, it indexes them under its old
//! settings until then, and the repair's settings task re-indexes them (it converges).
//!
//! Repairs take the index's lock, so they never interleave with a broadcast on that index
//! (which could otherwise be overwritten by an older copy). `embedders` are not copied: a
//! node's `GET /settings` redacts embedder API keys, and writing them back would break the
//! embedder (assumption about Meilisearch ≥ 1.6 behaviour; logged when a peer has embedders).

use crate::http_types::encode_segment;
use crate::node_health::NodeHealth;
use crate::state::{Admin, AdminError};
use hyper::Method;
use serde_json::Value;
use std::collections::BTreeSet;

const PREFIX: &str = "settings-repair:";

fn key(index: &str) -> String {
    format!("{PREFIX}{index}")
}

fn decode(bytes: &[u8]) -> BTreeSet<String> {
    serde_json::from_slice(bytes).unwrap_or_default()
}

/// Nodes that still need `index`'s settings.
pub async fn pending(admin: &Admin, index: &str) -> Result<BTreeSet<String>, AdminError> {
    Ok(admin
        .store
        .get_meta(&key(index))
        .await?
        .map_or_else(BTreeSet::new, |b| decode(&b)))
}

/// Remembers that `nodes` missed a settings change of `index` (caller holds the index lock).
pub async fn mark(admin: &Admin, index: &str, nodes: &[NodeHealth]) -> Result<(), AdminError> {
    if nodes.is_empty() {
        return Ok(());
    }
    let mut set = pending(admin, index).await?;
    set.extend(nodes.iter().map(|n| n.id.clone()));
    for n in nodes {
        tracing::warn!(node = %n.id, index, "node unreachable during a settings change; repair on recovery");
    }
    let bytes = serde_json::to_vec(&set).expect("JSON serialises");
    admin.store.put_meta(&key(index), &bytes).await?;
    Ok(())
}

async fn clear(admin: &Admin, index: &str, node: &str) -> Result<(), AdminError> {
    let mut set = pending(admin, index).await?;
    if set.remove(node) {
        if set.is_empty() {
            admin.store.delete_meta(&key(index)).await?;
        } else {
            let bytes = serde_json::to_vec(&set).expect("JSON serialises");
            admin.store.put_meta(&key(index), &bytes).await?;
        }
    }
    Ok(())
}

/// Index uid → nodes pending, for every index with a pending repair.
pub async fn all_pending(admin: &Admin) -> Result<Vec<(String, BTreeSet<String>)>, AdminError> {
    Ok(admin
        .store
        .list_meta(PREFIX)
        .await?
        .into_iter()
        .map(|(k, v)| (k[PREFIX.len()..].to_string(), decode(&v)))
        .collect())
}

/// The body that brings a node to `peer`'s settings: everything but `embedders` (module docs).
pub fn repair_body(peer: &Value) -> Value {
    let mut body = peer.clone();
    if let Some(o) = body.as_object_mut() {
        o.remove("embedders");
    }
    body
}

/// Re-applies the current settings of every index `node` missed; `Ok` once all are enqueued
/// on it (markers cleared), else why not (markers kept, retried at the next probe).
pub async fn repair_node(
    admin: &Admin,
    node: &NodeHealth,
    indexes: &[(String, BTreeSet<String>)],
) -> Result<(), String> {
    for (index, nodes) in indexes.iter().filter(|(_, n)| n.contains(&node.id)) {
        let _guard = admin.lock_scopes(vec![index.clone()]).await;
        // Re-read under the lock: another repair or a deletion may have changed it.
        let still = pending(admin, index).await.map_err(|e| e.to_string())?;
        if !still.contains(&node.id) {
            continue;
        }
        if admin.index(index).is_none() {
            clear(admin, index, &node.id)
                .await
                .map_err(|e| e.to_string())?;
            continue;
        }
        let path = format!("/indexes/{}/settings", encode_segment(index));
        let mut source = None;
        for peer in admin
            .nodes()
            .into_iter()
            .filter(|p| p.id != node.id && !nodes.contains(&p.id) && p.is_live())
        {
            if let Ok(r) = admin
                .client
                .send(&peer.address, Method::GET, &path, None)
                .await
            {
                if r.is_success() {
                    source = Some(r.json());
                    break;
                }
            }
        }
        let settings = source
            .ok_or_else(|| format!("no up-to-date node could give index `{index}`'s settings"))?;
        if settings["embedders"]
            .as_object()
            .is_some_and(|e| !e.is_empty())
        {
            tracing::warn!(node = %node.id, index, "embedders are not repaired (their keys are redacted); re-apply them");
        }
        let r = admin
            .client
            .send(
                &node.address,
                Method::PATCH,
                &path,
                Some(&repair_body(&settings)),
            )
            .await
            .map_err(|e| format!("re-applying index `{index}`'s settings: {e}"))?;
        if !r.is_success() {
            return Err(format!(
                "node refused index `{index}`'s settings (HTTP {}): {}",
                r.status,
                r.json()
            ));
        }
        clear(admin, index, &node.id)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(node = %node.id, index, task = %r.json()["taskUid"], "settings re-applied on a recovered node");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn repair_body_drops_only_embedders() {
        let peer = json!({"searchableAttributes": ["a"], "embedders": {"e": {"apiKey": "XXX"}}, "filterableAttributes": ["_miroir_shard"]});
        assert_eq!(
            repair_body(&peer),
            json!({"searchableAttributes": ["a"], "filterableAttributes": ["_miroir_shard"]})
        );
    }

    #[test]
    fn markers_decode_leniently() {
        assert_eq!(
            decode(br#"["meili-2","meili-3"]"#),
            ["meili-2", "meili-3"]
                .iter()
                .map(|s| s.to_string())
                .collect()
        );
        assert!(decode(b"garbage").is_empty());
    }
}
