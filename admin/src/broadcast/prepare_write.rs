//! What writes need from the admin: the data plane's `prepare-write` (the index exists, has
//! its primary key, and the nodes' displayed list covers the batch's new fields) and
//! Meilisearch's update by function (`documents/edit`), whose new fields join the index the
//! same way.

use super::engine::{dispatch, dispatch_reachable, index_task, require_coverage};
use super::index_lifecycle::create_everywhere;
use super::settings::settings_path;
use super::settings_translation::node_displayed;
use crate::http_types::{encode_segment, ApiError, Req, Resp};
use crate::node_health::NodeHealth;
use crate::state::Admin;
use crate::store::TaskType;
use hyper::Method;
use miroir_core::control::{ControlMessage, PrepareWrite, Prepared};
use miroir_core::documents::{PkSource, RESERVED_PREFIX};
use miroir_core::error::ErrorCode;
use miroir_core::snapshot::IndexMeta;
use miroir_core::topology::NodeStatus;
use serde_json::{json, Value};
use std::sync::Arc;

/// Adds the names in `names` that `meta` lacks to its fields — in the given order,
/// deduplicated, reserved ones never — and, when the client's displayed list is `*`, gives the
/// nodes the longer explicit list (enqueued: each node applies it before what follows).
async fn add_fields(
    admin: &Arc<Admin>,
    uid: &str,
    nodes: &[NodeHealth],
    meta: &mut IndexMeta,
    names: &[String],
) -> Result<(), ApiError> {
    let mut fresh: Vec<String> = Vec::new();
    for f in names {
        if !f.starts_with(RESERVED_PREFIX) && !meta.fields.contains(f) && !fresh.contains(f) {
            fresh.push(f.clone());
        }
    }
    if fresh.is_empty() {
        return Ok(());
    }
    meta.fields.extend(fresh);
    if !meta.displayed_wildcard {
        return Ok(());
    }
    let patch = json!({"displayedAttributes": node_displayed(meta)});
    // Nodes that cannot be reached get it on recovery (crate::repair). Refuse before touching
    // any node when the failed ones alone already lose a shard.
    let down: Vec<NodeHealth> = nodes
        .iter()
        .filter(|n| n.status == NodeStatus::Failed)
        .cloned()
        .collect();
    require_coverage(admin, uid, meta.shards, &down)?;
    let reached = dispatch_reachable(
        admin,
        nodes,
        Method::PATCH,
        &settings_path(uid),
        Some(&patch),
    )
    .await
    .map_err(|(_, e)| e)?;
    // On refusal the reachable nodes keep a longer explicit list than the metadata (harmless:
    // the fields are re-added by the next write that brings them).
    require_coverage(admin, uid, meta.shards, &reached.unreachable)?;
    crate::repair::mark(admin, uid, &reached.unreachable).await?;
    Ok(())
}

/// `POST /indexes/{uid}/documents/edit` (Meilisearch's experimental update by function):
/// every node runs the function over its own documents (every copy of a shard runs it: the
/// function sees the same document everywhere); one `documentEdition` task whose counts are
/// the nodes' sums per copy of the data. Fields the function adds join the index's fields
/// (and the nodes' displayed list) when the task settles. An index Miroir does not know gets a
/// failed task, as Meilisearch's fails with `index_not_found`.
pub async fn edit_documents(admin: &Arc<Admin>, uid: &str, req: &Req) -> Result<Resp, ApiError> {
    let body = req.json()?;
    let original_filter = match body.get("filter") {
        None | Some(Value::Null) => Value::Null,
        Some(f) => Value::String(f.to_string()),
    };
    let details = json!({
        "editedDocuments": null,
        "deletedDocuments": null,
        "originalFilter": original_filter,
        "context": body.get("context").cloned().unwrap_or(Value::Null),
        "function": body.get("function").cloned().unwrap_or(Value::Null),
    });
    let path = format!("/indexes/{}/documents/edit", encode_segment(uid));
    let owned = uid.to_string();
    let mut out = details.clone();
    index_task(
        admin,
        uid,
        TaskType::DocumentEdition,
        details,
        Method::POST,
        path,
        Some(&body),
        move |admin, done| async move {
            let copies = u64::from(admin.copies()).max(1);
            let sum = |k: &str| -> u64 {
                done.iter()
                    .filter_map(|t| t["details"][k].as_u64())
                    .fold(0u64, u64::saturating_add)
                    / copies
            };
            out["editedDocuments"] = json!(sum("editedDocuments"));
            out["deletedDocuments"] = json!(sum("deletedDocuments"));
            if let Some(first) = done.first() {
                for k in ["originalFilter", "context", "function"] {
                    if let Some(v) = first["details"].get(k) {
                        out[k] = v.clone();
                    }
                }
            }
            // Fields the function added: every node's field distribution.
            let nodes = admin.broadcast_nodes();
            let mut names = Vec::new();
            let stats = format!("/indexes/{}/stats", encode_segment(&owned));
            for n in &nodes {
                if let Ok(r) = admin
                    .client
                    .send(&n.address, Method::GET, &stats, None)
                    .await
                {
                    if let Some(fd) = r.json()["fieldDistribution"].as_object() {
                        names.extend(fd.keys().cloned());
                    }
                }
            }
            if let Some(mut meta) = admin.index(&owned) {
                let before = meta.fields.len();
                add_fields(&admin, &owned, &nodes, &mut meta, &names).await?;
                if meta.fields.len() != before {
                    meta.updated_at = crate::timefmt::now_rfc3339();
                    admin.put_index(meta).await?;
                    admin.publish().await?;
                }
            }
            Ok(out)
        },
    )
    .await
}

/// `prepare-write` (docs/internals/control-protocol.md §2.2).
pub async fn prepare_write(admin: &Arc<Admin>, uid: &str, req: &Req) -> Result<Resp, ApiError> {
    let body = PrepareWrite::decode(&req.body).map_err(|e| {
        ApiError::core(
            ErrorCode::BadRequest,
            format!("invalid prepare-write body: {e}"),
        )
    })?;
    let _guard = admin.lock_scopes(vec![uid.to_string()]).await;
    let nodes = admin.broadcast_nodes();
    let mut meta = match admin.index(uid) {
        // Holding the index's scope, no deletion of it is running: a `deleting` mark left
        // here is from one that failed before clearing it (or an admin that died), and the
        // index is still there.
        Some(m) => IndexMeta {
            deleting: false,
            ..m
        },
        None => create_everywhere(admin, &nodes, uid, body.primary_key.clone(), false).await?,
    };
    match (&meta.primary_key, &body.primary_key) {
        (None, Some(pk)) => {
            let path = format!("/indexes/{}", encode_segment(uid));
            dispatch(
                admin,
                &nodes,
                Method::PATCH,
                &path,
                Some(&json!({"primaryKey": pk})),
            )
            .await
            .map_err(|(_, e)| e)?;
            meta.primary_key = Some(pk.clone());
        }
        (Some(have), Some(pk))
            if have != pk && body.primary_key_source == Some(PkSource::Query) =>
        {
            return Err(ApiError::core(
                ErrorCode::IndexPrimaryKeyAlreadyExists,
                format!("Index `{uid}`: Index already has a primary key: `{have}`."),
            ));
        }
        _ => {}
    }
    add_fields(admin, uid, &nodes, &mut meta, &body.new_fields).await?;
    meta.updated_at = crate::timefmt::now_rfc3339();
    admin.put_index(meta.clone()).await?;
    let generation = admin.publish().await?;
    Ok(Resp::json(
        200,
        &Prepared {
            generation,
            index: meta,
        },
    ))
}
