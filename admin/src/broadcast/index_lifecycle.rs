//! Index lifecycle broadcasts: create (`POST /indexes`), update and rename
//! (`PATCH /indexes/{uid}`), delete, compact, and the implicit creation a first write or a
//! settings update makes (`create_everywhere`), each with its rollback.

use super::engine::{
    dispatch, failed_task, index_not_found, index_task, refused_by_a_node, run_step, settle,
    spawn_task, spawn_task_tracked,
};
use super::intents::{
    complete, delete_on, deleted_documents, ids, op_id, task_watermarks, Intent, MetaCommit,
    Recorded,
};
use super::settings::settings_path;
use super::settings_translation::initial_node_settings;
use crate::http_types::{encode_segment, ApiError, Req, Resp};
use crate::node_health::NodeHealth;
use crate::state::Admin;
use crate::store::TaskType;
use hyper::Method;
use miroir_core::error::ErrorCode;
use miroir_core::snapshot::IndexMeta;
use serde_json::{json, Value};
use std::sync::Arc;

fn new_meta(admin: &Admin, uid: &str, primary_key: Option<String>) -> IndexMeta {
    IndexMeta::new(
        uid,
        primary_key,
        admin.config.shards,
        &crate::timefmt::now_rfc3339(),
    )
}

/// `POST /indexes`.
pub async fn create_index(admin: &Arc<Admin>, req: &Req) -> Result<Resp, ApiError> {
    let body = req.json()?;
    let Some(uid) = body.get("uid").and_then(Value::as_str).map(String::from) else {
        // No string uid (missing, `12`, or not an object at all): Meilisearch refuses the
        // body before enqueuing, so one node gives the exact error and nothing can change.
        return Err(refused_by_a_node(admin, Method::POST, "/indexes", &body).await);
    };
    let pk = body
        .get("primaryKey")
        .and_then(Value::as_str)
        .map(String::from);
    let guard = admin.lock_scopes(vec![uid.clone()]).await;
    let details = json!({"primaryKey": pk});
    if admin.index(&uid).is_some() {
        let e = ApiError::core(
            ErrorCode::IndexAlreadyExists,
            format!("Index `{uid}` already exists."),
        );
        return failed_task(admin, Some(&uid), TaskType::IndexCreation, details, e).await;
    }
    let nodes = admin.broadcast_nodes();
    let intent = Recorded::record(
        admin,
        &uid,
        &Intent::Create {
            uid: uid.clone(),
            nodes: ids(&nodes),
        },
    )
    .await?;
    let created = match dispatch(admin, &nodes, Method::POST, "/indexes", Some(&body)).await {
        Ok(d) => d,
        Err((_, e)) => {
            rollback_create(admin, &uid, &nodes, &intent).await;
            return Err(e);
        }
    };
    spawn_task(
        admin,
        guard,
        Some(&uid.clone()),
        TaskType::IndexCreation,
        details.clone(),
        move |admin| async move {
            if let Err(e) = settle(&admin, &created).await {
                rollback_create(&admin, &uid, &nodes, &intent).await;
                return Err(e);
            }
            let meta = new_meta(&admin, &uid, pk);
            if let Err(e) = run_step(
                &admin,
                &nodes,
                Method::PATCH,
                &settings_path(&uid),
                Some(&initial_node_settings(&meta)),
            )
            .await
            {
                rollback_create(&admin, &uid, &nodes, &intent).await;
                return Err(e);
            }
            admin.put_index(meta).await?;
            intent.clear(&admin).await;
            admin.publish().await?;
            Ok(details)
        },
    )
    .await
}

/// Deletes the index on `nodes`, where a node that never created it counts as done. Its
/// record is cleared once every node is rid of it; otherwise it stays, and the next takeover
/// finishes the job ([`super::intents::recover`]).
async fn rollback_create(admin: &Admin, uid: &str, nodes: &[NodeHealth], intent: &Recorded) {
    admin
        .metrics
        .rollbacks
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match delete_on(admin, nodes, uid).await {
        Ok(_) => intent.clear(admin).await,
        Err(e) => {
            tracing::error!(index = uid, error = %e, "undoing a failed index creation did not reach every node; retried at the next takeover")
        }
    }
}

/// `PATCH /indexes/{uid}`: primary key and, as in Meilisearch 1.50, a new `uid` (rename).
pub async fn update_index(admin: &Arc<Admin>, uid: &str, req: &Req) -> Result<Resp, ApiError> {
    let body = req.json()?;
    let path = format!("/indexes/{}", encode_segment(uid));
    let well_formed = body.as_object().is_some_and(|o| {
        o.keys().all(|k| k == "uid" || k == "primaryKey")
            && o.get("uid").is_none_or(|u| {
                u.as_str()
                    .is_some_and(|u| crate::tasks::query::parse_index_uid(u).is_ok())
            })
            && o.get("primaryKey")
                .is_none_or(|p| p.is_string() || p.is_null())
    });
    if !well_formed {
        // Refused by Meilisearch before enqueuing: its own message, nothing changes.
        return Err(refused_by_a_node(admin, Method::PATCH, &path, &body).await);
    }
    let pk = body.get("primaryKey").cloned().unwrap_or(Value::Null);
    let new_uid = body.get("uid").and_then(Value::as_str).map(String::from);
    let mut scopes = vec![uid.to_string()];
    scopes.extend(new_uid.clone());
    let guard = admin.lock_scopes(scopes).await;
    let mut details = json!({"primaryKey": pk});
    if let Some(new) = &new_uid {
        details["oldIndexUid"] = json!(uid);
        details["newIndexUid"] = json!(new);
    }
    let refusal = if admin.index(uid).is_none() {
        Some(index_not_found(uid))
    } else {
        new_uid
            .as_deref()
            .filter(|n| admin.index(n).is_some())
            .map(|n| {
                ApiError::core(
                    ErrorCode::IndexAlreadyExists,
                    format!("Index `{n}` already exists."),
                )
            })
    };
    if let Some(e) = refusal {
        return failed_task(admin, Some(uid), TaskType::IndexUpdate, details, e).await;
    }
    let nodes = admin.broadcast_nodes();
    // A rename is recorded before any node is asked, with each node's last task uid, so that
    // it is undone exactly where it ran — here on a failure, or by the next takeover if this
    // admin dies (super::intents).
    let mut rename = match &new_uid {
        Some(new) => {
            let intent = Intent::Rename {
                old: uid.to_string(),
                new: new.clone(),
                watermarks: task_watermarks(admin, &nodes).await?,
                commit: None,
            };
            Some((
                Recorded::record(admin, &op_id("rename"), &intent).await?,
                intent,
            ))
        }
        None => None,
    };
    let d = match dispatch(admin, &nodes, Method::PATCH, &path, Some(&body)).await {
        Ok(d) => d,
        Err((_, e)) => {
            if let Some((record, intent)) = &rename {
                undo_rename(admin, record, intent).await;
            }
            return Err(e);
        }
    };
    let uid = uid.to_string();
    spawn_task_tracked(
        admin,
        guard,
        Some(&uid.clone()),
        TaskType::IndexUpdate,
        details.clone(),
        move |admin, task| async move {
            if let Err(e) = settle(&admin, &d).await {
                // A primary key cannot be unset again, so that part of a partial failure is
                // reported, not undone; a rename is undone where it happened, so the index
                // keeps one name on every node.
                if let Some((record, intent)) = &rename {
                    undo_rename(&admin, record, intent).await;
                }
                return Err(e);
            }
            if let Some(mut meta) = admin.index(&uid) {
                if let Some(pk) = pk.as_str() {
                    meta.primary_key = Some(pk.to_string());
                }
                meta.updated_at = crate::timefmt::now_rfc3339();
                match (&new_uid, &mut rename) {
                    (Some(new), Some((record, intent))) => {
                        // Every node renamed: from here on the rename goes forward.
                        meta.uid = new.clone();
                        let commit = MetaCommit {
                            metas: vec![meta],
                            removed: vec![uid.clone()],
                            task: task.0,
                        };
                        if let Intent::Rename { commit: c, .. } = intent {
                            *c = Some(commit.clone());
                        }
                        record.update(&admin, intent).await?;
                        commit.apply(&admin).await?;
                        record.clear(&admin).await;
                    }
                    _ => {
                        admin.put_index(meta).await?;
                        admin.publish().await?;
                    }
                }
            }
            Ok(details)
        },
    )
    .await
}

/// Renames the index back on every node that renamed it, then clears the record (kept for
/// the next takeover if a node could not be reached).
async fn undo_rename(admin: &Admin, record: &Recorded, intent: &Intent) {
    match complete(admin, intent).await {
        Ok(()) => record.clear(admin).await,
        Err(e) => {
            tracing::error!(error = %e, "undoing a partial rename did not reach every node; retried at the next takeover")
        }
    }
}

/// `DELETE /indexes/{uid}`. A deletion cannot be undone on the nodes that took it, so it goes
/// forward: recorded first, then every node deletes its copy (one that no longer has the index
/// counts as done) and the metadata goes. If a node cannot be reached the task fails and the
/// index stays listed; a retry, or the next takeover ([`super::intents::recover`]), finishes it.
///
/// Before the task is answered, the index is published as `deleting`, so that a document
/// write sent right after (which on Meilisearch re-creates the index once the deletion has
/// run) asks the admin, whose `prepare-write` waits for this task's scope and then creates
/// the index afresh — instead of reaching the nodes directly, where it would re-create the
/// index behind Miroir's back (docs/contract.md#index-deletion).
pub async fn delete_index(admin: &Arc<Admin>, uid: &str) -> Result<Resp, ApiError> {
    let guard = admin.lock_scopes(vec![uid.to_string()]).await;
    let details = json!({"deletedDocuments": 0});
    let Some(meta) = admin.index(uid) else {
        return failed_task(
            admin,
            Some(uid),
            TaskType::IndexDeletion,
            details,
            index_not_found(uid),
        )
        .await;
    };
    set_deleting(admin, meta, true).await?;
    let nodes = admin.broadcast_nodes();
    let owned = uid.to_string();
    spawn_task_tracked(
        admin,
        guard,
        Some(uid),
        TaskType::IndexDeletion,
        details,
        move |admin, task| async move {
            let intent = Recorded::record(
                &admin,
                &owned,
                &Intent::Delete {
                    uid: owned.clone(),
                    nodes: ids(&nodes),
                    task: task.0,
                },
            )
            .await?;
            let done = match delete_on(&admin, &nodes, &owned).await {
                Ok(done) => done,
                Err(e) => {
                    // The index stays: writes go straight to the nodes again.
                    if let Some(meta) = admin.index(&owned) {
                        if let Err(e) = set_deleting(&admin, meta, false).await {
                            tracing::error!(index = owned, error = %e, "could not clear the deleting mark after a failed deletion; the next prepare-write clears it");
                        }
                    }
                    return Err(e);
                }
            };
            admin.remove_index(&owned).await?;
            intent.clear(&admin).await;
            admin.publish().await?;
            Ok(json!({"deletedDocuments": deleted_documents(&admin, &done)}))
        },
    )
    .await
}

/// Marks or unmarks `meta`'s index as being deleted and publishes it.
pub(super) async fn set_deleting(
    admin: &Admin,
    mut meta: IndexMeta,
    deleting: bool,
) -> Result<(), ApiError> {
    if meta.deleting == deleting {
        return Ok(());
    }
    meta.deleting = deleting;
    admin.put_index(meta).await?;
    admin.publish().await?;
    Ok(())
}

/// `POST /indexes/{uid}/compact` (Meilisearch 1.50): every node compacts its copy of the
/// index; one `indexCompaction` task, succeeded when every node's is, whose
/// `preCompactionSize`/`postCompactionSize` are the nodes' sums per copy of the data (as the
/// stats are), human-formatted as Meilisearch writes them. An index Miroir does not know gets
/// a failed task, as Meilisearch enqueues one that fails with `index_not_found`.
pub async fn compact_index(admin: &Arc<Admin>, uid: &str) -> Result<Resp, ApiError> {
    let path = format!("/indexes/{}/compact", encode_segment(uid));
    index_task(
        admin,
        uid,
        TaskType::IndexCompaction,
        json!({}),
        Method::POST,
        path,
        None,
        |admin, done| async move {
            let copies = u64::from(admin.copies()).max(1);
            let mut details = serde_json::Map::new();
            for k in ["preCompactionSize", "postCompactionSize"] {
                let sizes: Option<Vec<u64>> = done
                    .iter()
                    .map(|t| {
                        t["details"][k]
                            .as_str()
                            .and_then(crate::size_format::parse_human)
                    })
                    .collect();
                if let Some(sizes) = sizes.filter(|s| !s.is_empty()) {
                    let total = sizes.iter().fold(0u64, |a, &b| a.saturating_add(b)) / copies;
                    details.insert(k.into(), json!(crate::size_format::human(total)));
                }
            }
            Ok(Value::Object(details))
        },
    )
    .await
}

/// Creates an index Miroir does not know on every node (waiting for the creation, so a
/// refused uid fails here) with the initial node settings (enqueued, or awaited with
/// `wait_settings`), and records its metadata. Rolls the creation back on failure.
pub(super) async fn create_everywhere(
    admin: &Admin,
    nodes: &[NodeHealth],
    uid: &str,
    primary_key: Option<String>,
    wait_settings: bool,
) -> Result<IndexMeta, ApiError> {
    let meta = new_meta(admin, uid, primary_key.clone());
    let create = json!({"uid": uid, "primaryKey": primary_key});
    let intent = Recorded::record(
        admin,
        uid,
        &Intent::Create {
            uid: uid.to_string(),
            nodes: ids(nodes),
        },
    )
    .await?;
    let settings = initial_node_settings(&meta);
    let created = if wait_settings {
        match run_step(admin, nodes, Method::POST, "/indexes", Some(&create)).await {
            Ok(_) => run_step(
                admin,
                nodes,
                Method::PATCH,
                &settings_path(uid),
                Some(&settings),
            )
            .await
            .map(|_| ()),
            Err(e) => Err(e),
        }
    } else {
        // Enqueue only (a write's first batch): each node processes the creation, the
        // settings and then the write's documents in order, so waiting for the creation
        // would only delay the client's first write (≈ 0.5 s on a real node). A node that
        // refuses synchronously (an invalid uid) still fails it here.
        match dispatch(admin, nodes, Method::POST, "/indexes", Some(&create)).await {
            Ok(_) => dispatch(
                admin,
                nodes,
                Method::PATCH,
                &settings_path(uid),
                Some(&settings),
            )
            .await
            .map(|_| ())
            .map_err(|(_, e)| e),
            Err((_, e)) => Err(e),
        }
    };
    if let Err(e) = created {
        rollback_create(admin, uid, nodes, &intent).await;
        return Err(e);
    }
    admin.put_index(meta.clone()).await?;
    intent.clear(admin).await;
    Ok(meta)
}
