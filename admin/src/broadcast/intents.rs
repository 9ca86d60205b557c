//! Index creations, deletions, swaps and renames under way on the nodes, recorded in the store before
//! the first node is asked (`lifecycle-inflight:{id}`), so that an admin killed in the middle
//! of one leaves nothing half done: the next leader (or the same admin restarted on its data)
//! finishes or undoes it in [`recover`], before it serves writes (decision 051 —
//! docs/decisions/051-interrupted-index-lifecycle.md).
//!
//! Each kind goes the one way that can always be completed:
//! - a **creation** Miroir's metadata does not have yet is undone: the index is deleted on
//!   every node (a node that never got it answers `index_not_found`, which is fine), so a
//!   retried `POST /indexes` starts clean instead of failing on the nodes that had it;
//! - a **deletion** is finished (it cannot be undone: the nodes that took it lost the data):
//!   every node deletes the index, then the metadata goes;
//! - a **swap** that had not committed is undone on each node whose swap task succeeded (found
//!   by the node's own task list, above the task uid recorded before the swap was sent); one
//!   that had committed (every node swapped) gets the swapped metadata written again;
//! - a **rename** (`PATCH /indexes/{uid}` with `uid`) likewise.

use super::engine::{dispatch, settle, wait_task};
use crate::http_types::{encode_segment, ApiError};
use crate::node_health::NodeHealth;
use crate::state::{Admin, AdminError};
use hyper::Method;
use miroir_core::snapshot::IndexMeta;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

const PREFIX: &str = "lifecycle-inflight:";

/// What a record says was under way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub(super) enum Intent {
    Create {
        uid: String,
        nodes: Vec<String>,
    },
    Delete {
        uid: String,
        nodes: Vec<String>,
        /// The Miroir task answering it: finished `succeeded` by whoever completes the
        /// deletion.
        task: u32,
    },
    Swap {
        /// The `POST /swap-indexes` body sent to the nodes, and the one that undoes it.
        body: Value,
        undo: Value,
        /// Per node: the highest task uid it had before the swap was sent (`None`: no task).
        watermarks: Vec<(String, Option<u64>)>,
        /// Set once every node swapped: the index metadata to write (renamed-away uids in
        /// `removed`), and the task to finish `succeeded`.
        commit: Option<MetaCommit>,
    },
    /// `PATCH /indexes/{old}` with `uid: new` (Meilisearch 1.50's rename): like a swap.
    Rename {
        old: String,
        new: String,
        watermarks: Vec<(String, Option<u64>)>,
        commit: Option<MetaCommit>,
    },
}

/// What an operation writes to Miroir's metadata once every node applied it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct MetaCommit {
    pub(super) metas: Vec<IndexMeta>,
    pub(super) removed: Vec<String>,
    pub(super) task: u32,
}

impl MetaCommit {
    /// Writes the metadata (idempotent) and publishes it.
    pub(super) async fn apply(&self, admin: &Admin) -> Result<(), ApiError> {
        for m in &self.metas {
            admin.put_index(m.clone()).await?;
        }
        for uid in &self.removed {
            admin.remove_index(uid).await?;
        }
        admin.publish().await?;
        Ok(())
    }
}

/// A recorded intent; [`Recorded::clear`] once the operation finished or was undone.
#[derive(Debug, Clone)]
pub(super) struct Recorded {
    key: String,
}

impl Recorded {
    /// Records `intent` under `id` (an index uid, or a fresh id for swaps).
    pub(super) async fn record(admin: &Admin, id: &str, intent: &Intent) -> Result<Self, ApiError> {
        let key = format!("{PREFIX}{id}");
        let rec = Recorded { key };
        rec.update(admin, intent).await?;
        Ok(rec)
    }

    pub(super) async fn update(&self, admin: &Admin, intent: &Intent) -> Result<(), ApiError> {
        let bytes = serde_json::to_vec(intent).expect("JSON serialises");
        admin
            .store
            .put_meta(&self.key, &bytes)
            .await
            .map_err(AdminError::from)?;
        Ok(())
    }

    pub(super) async fn clear(&self, admin: &Admin) {
        if let Err(e) = admin.store.delete_meta(&self.key).await {
            tracing::error!(key = %self.key, error = %e, "clearing an index operation record failed; the next leader will finish or undo it again (harmless)");
        }
    }
}

/// The ids of `nodes`, as records keep them.
pub(super) fn ids(nodes: &[NodeHealth]) -> Vec<String> {
    nodes.iter().map(|n| n.id.clone()).collect()
}

/// The known nodes among `ids` (a node removed since is skipped: it holds nothing Miroir
/// reads).
fn known(admin: &Admin, ids: &[String]) -> Vec<NodeHealth> {
    admin
        .nodes()
        .into_iter()
        .filter(|n| ids.contains(&n.id))
        .collect()
}

/// Deletes `uid` on `nodes` and waits. A node without the index (`index_not_found`) counts as
/// done. `Err` when a node could not be reached or failed otherwise.
pub(super) async fn delete_on(
    admin: &Admin,
    nodes: &[NodeHealth],
    uid: &str,
) -> Result<Vec<Value>, ApiError> {
    let path = format!("/indexes/{}", encode_segment(uid));
    let d = dispatch(admin, nodes, Method::DELETE, &path, None)
        .await
        .map_err(|(_, e)| e)?;
    let mut done = Vec::new();
    for x in &d {
        let t = wait_task(admin, &x.node, x.task_uid).await?;
        let gone = t["status"] == "succeeded" || t["error"]["code"] == "index_not_found";
        if !gone {
            return Err(match t.get("error").filter(|e| !e.is_null()) {
                Some(e) => ApiError::Node {
                    status: 400,
                    body: e.clone(),
                },
                None => ApiError::internal("node task canceled"),
            });
        }
        done.push(t);
    }
    Ok(done)
}

/// `GET path` on `node`: its JSON answer, or the node's error.
async fn node_get(admin: &Admin, node: &NodeHealth, path: &str) -> Result<Value, ApiError> {
    let r = admin
        .client
        .send(&node.address, Method::GET, path, None)
        .await
        .map_err(|e| super::engine::unavailable(node, e))?;
    if !r.is_success() {
        return Err(ApiError::Node {
            status: r.status,
            body: r.json(),
        });
    }
    Ok(r.json())
}

/// The highest task uid each node has (`None`: none yet), read before a swap is sent.
pub(super) async fn task_watermarks(
    admin: &Admin,
    nodes: &[NodeHealth],
) -> Result<Vec<(String, Option<u64>)>, ApiError> {
    let mut out = Vec::with_capacity(nodes.len());
    for n in nodes {
        let tasks = node_get(admin, n, "/tasks?limit=1").await?;
        out.push((n.id.clone(), tasks["results"][0]["uid"].as_u64()));
    }
    Ok(out)
}

/// Whether `node` ran a task of type `kind` above `watermark` that `ours` recognises (by its
/// details) and that succeeded, waiting for it if it is still queued. Miroir is the only
/// writer of the nodes' index operations, so the few latest tasks of that type suffice.
async fn ran(
    admin: &Admin,
    node: &NodeHealth,
    watermark: Option<u64>,
    kind: &str,
    ours: &(dyn Fn(&Value) -> bool + Sync),
) -> Result<bool, ApiError> {
    let tasks = node_get(admin, node, &format!("/tasks?types={kind}&limit=20")).await?;
    for t in tasks["results"].as_array().into_iter().flatten() {
        let Some(uid) = t["uid"].as_u64() else {
            continue;
        };
        if watermark.is_some_and(|w| uid <= w) || !ours(&t["details"]) {
            continue;
        }
        if wait_task(admin, node, uid).await?["status"] == "succeeded" {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Sends `undo` (`method path body`) to every node of `watermarks` that ran the operation
/// ([`ran`]), and waits for it.
async fn undo_where_ran(
    admin: &Admin,
    watermarks: &[(String, Option<u64>)],
    kind: &str,
    ours: &(dyn Fn(&Value) -> bool + Sync),
    (method, path, body): (Method, &str, &Value),
) -> Result<(), ApiError> {
    admin
        .metrics
        .rollbacks
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nodes = admin.nodes();
    for (id, watermark) in watermarks {
        let Some(node) = nodes.iter().find(|n| &n.id == id) else {
            continue;
        };
        if ran(admin, node, *watermark, kind, ours).await? {
            let d = dispatch(
                admin,
                std::slice::from_ref(node),
                method.clone(),
                path,
                Some(body),
            )
            .await
            .map_err(|(_, e)| e)?;
            settle(admin, &d).await?;
        }
    }
    Ok(())
}

/// Finishes or undoes every recorded operation (see the module docs). A record whose nodes
/// cannot all be reached stays for the next takeover.
pub async fn recover(admin: &Admin) -> Result<(), ApiError> {
    let records = admin
        .store
        .list_meta(PREFIX)
        .await
        .map_err(AdminError::from)?;
    for (key, bytes) in records {
        let rec = Recorded { key: key.clone() };
        let Ok(intent) = serde_json::from_slice::<Intent>(&bytes) else {
            tracing::error!(%key, "unreadable index operation record; dropped");
            rec.clear(admin).await;
            continue;
        };
        match recover_one(admin, &intent).await {
            Ok(()) => rec.clear(admin).await,
            Err(e) => {
                tracing::error!(%key, error = %e, "an interrupted index operation could not be completed yet; retried at the next takeover")
            }
        }
    }
    Ok(())
}

/// [`complete`] with the locks of the indexes `intent` touches.
async fn recover_one(admin: &Admin, intent: &Intent) -> Result<(), ApiError> {
    let scopes = match intent {
        Intent::Create { uid, .. } | Intent::Delete { uid, .. } => vec![uid.clone()],
        Intent::Swap { body, .. } => super::swap::parse_swaps(body)
            .unwrap_or_default()
            .into_iter()
            .flat_map(|s| [s.lhs, s.rhs])
            .collect(),
        Intent::Rename { old, new, .. } => vec![old.clone(), new.clone()],
    };
    let _guard = admin.lock_scopes(scopes).await;
    complete(admin, intent).await
}

/// Undoes or finishes `intent` (see the module docs); the caller holds the indexes' locks.
pub(super) async fn complete(admin: &Admin, intent: &Intent) -> Result<(), ApiError> {
    match intent {
        Intent::Create { uid, nodes } => {
            if admin.index(uid).is_some() {
                // It was recorded in the metadata: the creation completed.
                return Ok(());
            }
            tracing::warn!(index = %uid, "undoing an index creation its admin did not finish");
            admin
                .metrics
                .rollbacks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            delete_on(admin, &known(admin, nodes), uid).await.map(drop)
        }
        Intent::Delete { uid, nodes, task } => {
            tracing::warn!(index = %uid, "finishing an index deletion its admin did not finish");
            let done = delete_on(admin, &known(admin, nodes), uid).await?;
            if admin.index(uid).is_some() {
                admin.remove_index(uid).await?;
                admin.publish().await?;
            }
            // Only the documents of the nodes that deleted now are known.
            let details = json!({"deletedDocuments": deleted_documents(admin, &done)});
            finish_task(admin, *task, details).await
        }
        Intent::Swap {
            body,
            undo,
            watermarks,
            commit,
        } => {
            let swaps = super::swap::parse_swaps(body).unwrap_or_default();
            if let Some(c) = commit {
                tracing::warn!("finishing an index swap its admin did not finish");
                c.apply(admin).await?;
                return finish_task(admin, c.task, Value::Null).await;
            }
            tracing::warn!("undoing an index swap its admin did not finish");
            let ours = super::swap::swap_details(&swaps);
            undo_where_ran(
                admin,
                watermarks,
                "indexSwap",
                &|d| d["swaps"] == ours["swaps"],
                (Method::POST, "/swap-indexes", undo),
            )
            .await
        }
        Intent::Rename {
            old,
            new,
            watermarks,
            commit,
        } => {
            if let Some(c) = commit {
                tracing::warn!(index = %old, "finishing an index rename its admin did not finish");
                c.apply(admin).await?;
                return finish_task(admin, c.task, Value::Null).await;
            }
            tracing::warn!(index = %old, "undoing an index rename its admin did not finish");
            let path = format!("/indexes/{}", encode_segment(new));
            undo_where_ran(
                admin,
                watermarks,
                "indexUpdate",
                &|d| d["oldIndexUid"] == old.as_str() && d["newIndexUid"] == new.as_str(),
                (Method::PATCH, &path, &json!({"uid": old})),
            )
            .await
        }
    }
}

/// An index deletion's `deletedDocuments`: the nodes' counts per copy of the data.
pub(super) fn deleted_documents(admin: &Admin, node_tasks: &[Value]) -> u64 {
    let deleted: u64 = node_tasks
        .iter()
        .filter_map(|t| t["details"]["deletedDocuments"].as_u64())
        .fold(0, u64::saturating_add);
    deleted / u64::from(admin.copies()).max(1)
}

/// Finishes the Miroir task `uid` as `succeeded` if it is still running (`details`: its final
/// details, `null` to keep the ones it has). Run before interrupted tasks are failed at a
/// takeover, so an operation completed here reports success.
async fn finish_task(admin: &Admin, uid: u32, details: Value) -> Result<(), ApiError> {
    let Some(mut rec) = admin
        .store
        .get_task(miroir_core::ids::TaskUid(uid))
        .await
        .map_err(AdminError::from)?
    else {
        return Ok(());
    };
    if rec.state.finished_at.is_some() {
        return Ok(());
    }
    let details = if details.is_null() {
        rec.state.details.clone()
    } else {
        details
    };
    crate::tasks::finish_own(admin, &mut rec, Ok(details)).await;
    Ok(())
}

/// A fresh record id for an operation on several uids (`kind`: `swap`, `rename`), so that it
/// never replaces the record of another operation on one of them.
pub(super) fn op_id(kind: &str) -> String {
    format!("{kind}:{}", uuid::Uuid::new_v4())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let intents = [
            Intent::Create {
                uid: "a".into(),
                nodes: vec!["n1".into()],
            },
            Intent::Delete {
                uid: "b".into(),
                nodes: vec!["n1".into(), "n2".into()],
                task: 4,
            },
            Intent::Swap {
                body: json!([{"indexes": ["a", "b"]}]),
                undo: json!([{"indexes": ["a", "b"], "rename": false}]),
                watermarks: vec![("n1".into(), Some(7)), ("n2".into(), None)],
                commit: None,
            },
        ];
        for i in intents {
            let bytes = serde_json::to_vec(&i).unwrap();
            assert_eq!(serde_json::from_slice::<Intent>(&bytes).unwrap(), i);
        }
    }
}
