//! Settings writes: every `PATCH /settings`, `PUT|PATCH|DELETE /settings/{sub}` and
//! `DELETE /settings` becomes one settings patch applied to every reachable node with a
//! snapshot of the old settings, verified by read-back, and rolled back on any failure
//! (module docs of [`crate::broadcast`], "Unreachable nodes").

use super::engine::{dispatch_reachable, require_coverage, run_step, settle, spawn_task};
use super::index_lifecycle::create_everywhere;
use super::settings_translation::{
    parse_foreign_keys, readback_matches, setting_key, settings_details, translate_settings,
    RESET_ALL_DETAILS_EXTRA, SETTINGS_ORDER,
};
use crate::http_types::{encode_segment, ApiError, Req, Resp};
use crate::node_health::NodeHealth;
use crate::state::Admin;
use crate::store::TaskType;
use hyper::Method;
use miroir_core::error::ErrorCode;
use miroir_core::topology::NodeStatus;
use serde_json::{Map, Value};
use std::sync::Arc;

pub(super) fn settings_path(uid: &str) -> String {
    format!("/indexes/{}/settings", encode_segment(uid))
}

/// Every settings write: `PATCH /settings`, `PUT|PATCH|DELETE /settings/{sub}`, `DELETE /settings`
/// (`reset_all`). `client` is the equivalent `PATCH /settings` body.
pub async fn update_settings(
    admin: &Arc<Admin>,
    uid: &str,
    client: Map<String, Value>,
    reset_all: bool,
) -> Result<Resp, ApiError> {
    // `foreignKeys` is Miroir's own (decision 044): checked as one Meilisearch checks it,
    // before anything changes — shape first, then the experimental feature (not for a reset).
    if let Some(v) = client.get("foreignKeys") {
        parse_foreign_keys(v)?;
        if !v.is_null() && !admin.lock().foreign_keys_feature {
            return Err(ApiError::core(
                ErrorCode::FeatureNotEnabled,
                "setting `foreignKeys` in the index settings requires enabling the `foreign_keys` experimental feature. See https://github.com/orgs/meilisearch/discussions/873",
            ));
        }
    }
    let guard = admin.lock_scopes(vec![uid.to_string()]).await;
    let mut echoed = client.clone();
    if reset_all {
        for k in RESET_ALL_DETAILS_EXTRA {
            echoed.insert((*k).to_string(), Value::Null);
        }
    }
    let details = settings_details(&echoed);
    let meta = match admin.index(uid) {
        Some(m) => m,
        // Meilisearch creates a missing index on a settings update; so do we, first (and
        // wait for it, so the rollback snapshot below already has `_miroir_shard`).
        None => {
            let nodes = admin.broadcast_nodes();
            create_everywhere(admin, &nodes, uid, None, true).await?
        }
    };
    let (node_patch, mut new_meta) = translate_settings(&client, &meta)?;
    if reset_all {
        new_meta.foreign_keys.clear();
    }
    let path = settings_path(uid);
    // 1. Snapshot what every reachable node has now: the rollback target. Nodes marked
    //    failed or unreachable are set apart (module docs, "Unreachable nodes").
    let mut nodes = Vec::new();
    let mut before = Vec::new();
    let mut unreachable = Vec::new();
    for n in admin.broadcast_nodes() {
        if n.status == NodeStatus::Failed {
            unreachable.push(n);
            continue;
        }
        match admin
            .client
            .send(&n.address, Method::GET, &path, None)
            .await
        {
            Ok(r) if r.is_success() => {
                before.push(r.json());
                nodes.push(n);
            }
            Ok(r) => {
                return Err(ApiError::Node {
                    status: r.status,
                    body: r.json(),
                })
            }
            Err(_) => unreachable.push(n),
        }
    }
    require_coverage(admin, uid, meta.shards, &unreachable)?;
    let node_patch = Value::Object(node_patch);
    // Durable before any node changes: if this admin dies from here until the change is
    // finished or rolled back, the next leader rolls it back ([`roll_back_interrupted`]).
    let inflight = Inflight::record(admin, uid, &path, &nodes, &before, &meta).await?;
    // 2. Apply.
    let applied = match dispatch_reachable(admin, &nodes, Method::PATCH, &path, Some(&node_patch))
        .await
        .and_then(|r| {
            // Unreachable between the snapshot and now: set apart too, if coverage allows.
            unreachable.extend(r.unreachable);
            match require_coverage(admin, uid, meta.shards, &unreachable) {
                Ok(()) => Ok(r.ok),
                Err(e) => Err((r.ok, e)),
            }
        }) {
        Ok(d) => d,
        Err((accepted, e)) => {
            let accepted = accepted.iter().map(|d| d.node.id.clone()).collect();
            restore(admin, &nodes, &before, &path, accepted).await;
            inflight.clear(admin).await;
            return Err(e);
        }
    };
    // Only the nodes that accepted take part from here (their snapshots stay aligned).
    let (nodes, before): (Vec<NodeHealth>, Vec<Value>) = nodes
        .into_iter()
        .zip(before)
        .filter(|(n, _)| applied.iter().any(|d| d.node.id == n.id))
        .unzip();
    // Durable before the task is acknowledged: a crash cannot forget a node to repair.
    if let Err(e) = crate::repair::mark(admin, uid, &unreachable).await {
        let all = nodes.iter().map(|n| n.id.clone()).collect();
        restore(admin, &nodes, &before, &path, all).await;
        inflight.clear(admin).await;
        return Err(e.into());
    }
    let uid = uid.to_string();
    let cleared = inflight.clone();
    let answer = spawn_task(admin, guard, Some(&uid.clone()), TaskType::SettingsUpdate, details.clone(), move |admin| async move {
        let outcome = async {
            let all: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
            if let Err(e) = settle(&admin, &applied).await {
                restore(&admin, &nodes, &before, &path, all).await;
                return Err(e);
            }
            // 3. Verify the read-back on every node that took it.
            for n in &nodes {
                let got = match admin.client.send(&n.address, Method::GET, &path, None).await {
                    Ok(r) if r.is_success() => r.json(),
                    Ok(r) => Value::from(r.status),
                    Err(e) => Value::from(e.to_string()),
                };
                let bad = node_patch.as_object().into_iter().flatten().find(|(k, v)| !readback_matches(k, v, &got[k.as_str()]));
                if let Some((k, _)) = bad {
                    restore(&admin, &nodes, &before, &path, all).await;
                    return Err(ApiError::internal(format!("settings verification failed: node `{}` does not report the new `{k}`; every node was rolled back", n.id)));
                }
            }
            admin.put_index(new_meta).await?;
            admin.publish().await?;
            Ok(details)
        }
        .await;
        // Finished or rolled back: nothing left for a successor to undo.
        inflight.clear(&admin).await;
        outcome
    })
    .await;
    if answer.is_err() {
        // No task was created; the nodes keep the change as before this record existed.
        cleared.clear(admin).await;
    }
    answer
}

const INFLIGHT: &str = "settings-inflight:";

/// A settings change under way on the nodes, recorded in the store (`settings-inflight:{uid}`)
/// with what a rollback needs: the nodes, their settings before, the index metadata before.
#[derive(Clone)]
struct Inflight {
    key: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct InflightRecord {
    path: String,
    nodes: Vec<String>,
    before: Vec<Value>,
    meta: miroir_core::snapshot::IndexMeta,
}

impl Inflight {
    async fn record(
        admin: &Admin,
        uid: &str,
        path: &str,
        nodes: &[NodeHealth],
        before: &[Value],
        meta: &miroir_core::snapshot::IndexMeta,
    ) -> Result<Inflight, ApiError> {
        let key = format!("{INFLIGHT}{uid}");
        let rec = InflightRecord {
            path: path.to_string(),
            nodes: nodes.iter().map(|n| n.id.clone()).collect(),
            before: before.to_vec(),
            meta: meta.clone(),
        };
        let bytes = serde_json::to_vec(&rec).expect("JSON serialises");
        admin
            .store
            .put_meta(&key, &bytes)
            .await
            .map_err(crate::state::AdminError::from)?;
        Ok(Inflight { key })
    }

    async fn clear(&self, admin: &Admin) {
        if let Err(e) = admin.store.delete_meta(&self.key).await {
            tracing::error!(key = %self.key, error = %e, "clearing a settings change record failed; the next leader will roll that change back");
        }
    }
}

/// Run by a host that becomes leader (and by an admin at start): settings changes its
/// predecessor left half done — dispatched to some nodes, never finished nor rolled back,
/// their task failed by [`crate::tasks::fail_interrupted`] — are rolled back on every node
/// that had been reached, and the index metadata from before is restored, so every node
/// carries the same settings again.
pub async fn roll_back_interrupted(admin: &Arc<Admin>) -> Result<(), ApiError> {
    let records = admin
        .store
        .list_meta(INFLIGHT)
        .await
        .map_err(crate::state::AdminError::from)?;
    for (key, bytes) in records {
        let uid = key[INFLIGHT.len()..].to_string();
        let _guard = admin.lock_scopes(vec![uid.clone()]).await;
        let Ok(rec) = serde_json::from_slice::<InflightRecord>(&bytes) else {
            tracing::error!(%key, "unreadable settings change record; dropped");
            Inflight { key }.clear(admin).await;
            continue;
        };
        let known = admin.nodes();
        let (nodes, before): (Vec<NodeHealth>, Vec<Value>) = rec
            .nodes
            .iter()
            .zip(rec.before)
            .filter_map(|(id, b)| Some((known.iter().find(|n| &n.id == id)?.clone(), b)))
            .unzip();
        tracing::warn!(index = %uid, nodes = nodes.len(), "rolling back a settings change its admin did not finish");
        let all = nodes.iter().map(|n| n.id.clone()).collect();
        restore(admin, &nodes, &before, &rec.path, all).await;
        if admin.index(&uid).is_some() {
            admin.put_index(rec.meta).await?;
            admin.publish().await?;
        }
        Inflight { key }.clear(admin).await;
    }
    Ok(())
}

/// Puts the snapshotted settings back on the listed nodes and waits for them.
async fn restore(
    admin: &Admin,
    nodes: &[NodeHealth],
    before: &[Value],
    path: &str,
    which: Vec<String>,
) {
    admin
        .metrics
        .rollbacks
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    for (n, old) in nodes.iter().zip(before) {
        if !which.contains(&n.id) {
            continue;
        }
        match run_step(
            admin,
            std::slice::from_ref(n),
            Method::PATCH,
            path,
            Some(old),
        )
        .await
        {
            Ok(_) => {}
            Err(e) => {
                tracing::error!(node = %n.id, error = %e, "settings rollback failed; node settings may have drifted")
            }
        }
    }
}

/// The `PATCH /settings` body equivalent to a settings request.
pub fn settings_request_body(
    method: &Method,
    sub: Option<&str>,
    req: &Req,
) -> Result<Map<String, Value>, ApiError> {
    let unknown = || ApiError::core(ErrorCode::NotFound, "Not Found");
    match (sub, method) {
        (None, &Method::PATCH) => match req.json()? {
            Value::Object(m) => Ok(m),
            _ => Err(ApiError::core(
                ErrorCode::BadRequest,
                "Invalid value type: expected an object",
            )),
        },
        // Reset all: every setting the nodes hold (the experimental ones Miroir does not send
        // are echoed in the task details only).
        (None, &Method::DELETE) => Ok(SETTINGS_ORDER
            .iter()
            .filter(|k| !RESET_ALL_DETAILS_EXTRA.contains(k))
            .map(|k| (k.to_string(), Value::Null))
            .collect()),
        (Some(s), &Method::DELETE) => Ok([(
            setting_key(s).ok_or_else(unknown)?.to_string(),
            Value::Null,
        )]
        .into_iter()
        .collect()),
        (Some(s), &Method::PUT | &Method::PATCH) => Ok([(
            setting_key(s).ok_or_else(unknown)?.to_string(),
            req.json()?,
        )]
        .into_iter()
        .collect()),
        _ => Err(unknown()),
    }
}
