//! `GET /tasks/{uid}/documents` (Meilisearch's experimental `getTaskDocumentsRoute`): the
//! documents of a document addition still enqueued or processing, as concatenated JSON
//! objects (`application/x-ndjson`, as Meilisearch 1.50 sends them).
//!
//! A Miroir write is split by shard: each node task holds the documents of that node's
//! shards, so the answer is every node task's documents, the shard field removed and each
//! document once (with replicas, several node tasks hold the same document). They come node by
//! node, not in the order of the payload. A node whose task already finished has dropped its
//! payload: its documents are missing from the answer.

use super::{task_not_found, view};
use crate::http_types::{ApiError, Resp};
use crate::state::Admin;
use crate::store::{TaskStatus, TaskType};
use hyper::Method;
use miroir_core::documents::SHARD_FIELD;
use miroir_core::error::ErrorCode;
use miroir_core::ids::TaskUid;
use serde_json::{Map, Value};
use std::collections::HashSet;

fn no_documents(uid: u32) -> ApiError {
    ApiError::core(
        ErrorCode::TaskFileNotFound,
        format!("Task `{uid}` does not contain any documents. Only `documentAdditionOrUpdate` tasks with the statuses `enqueued` or `processing` contain documents"),
    )
}

/// `GET /tasks/{uid}/documents`.
pub async fn documents(admin: &Admin, uid: &str) -> Result<Resp, ApiError> {
    if !crate::features::node_flag(admin, "getTaskDocumentsRoute").await? {
        return Err(ApiError::core(
            ErrorCode::FeatureNotEnabled,
            "Getting the documents of an enqueued task requires enabling the `get task documents route` experimental feature. See https://github.com/orgs/meilisearch/discussions/808",
        ));
    }
    let n: u32 = uid
        .parse()
        .map_err(|_| super::invalid_uid_in_path("Task", ErrorCode::InvalidTaskUids, uid))?;
    let rec = admin
        .store
        .get_task(TaskUid(n))
        .await?
        .ok_or_else(|| task_not_found(n))?;
    // The current status (the stored one may lag behind the nodes).
    let status = view(admin, &rec).await?["status"].clone();
    let live = matches!(status.as_str(), Some("enqueued" | "processing"))
        || (status.is_null()
            && matches!(
                rec.state.status,
                TaskStatus::Enqueued | TaskStatus::Processing
            ));
    if rec.task_type != TaskType::DocumentAdditionOrUpdate || !live {
        return Err(no_documents(n));
    }
    let addresses: std::collections::HashMap<String, String> = admin
        .nodes()
        .into_iter()
        .map(|n| (n.id, n.address))
        .collect();
    let pk = rec
        .index_uid
        .as_deref()
        .and_then(|i| admin.index(i))
        .and_then(|m| m.primary_key);
    let mut seen: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    for nt in &rec.state.node_tasks {
        let Some(addr) = addresses.get(nt.node.as_str()) else {
            continue;
        };
        let path = format!("/tasks/{}/documents", nt.task_uid);
        let Ok(r) = admin.client.send(addr, Method::GET, &path, None).await else {
            continue;
        };
        if !r.is_success() {
            continue;
        }
        let docs = serde_json::Deserializer::from_slice(&r.body).into_iter::<Map<String, Value>>();
        for doc in docs {
            let Ok(mut doc) = doc else {
                break;
            };
            doc.remove(SHARD_FIELD);
            let key = match pk.as_deref().and_then(|k| doc.get(k)) {
                Some(id) => id.to_string(),
                None => Value::Object(doc.clone()).to_string(),
            };
            if seen.insert(key) {
                serde_json::to_writer(&mut out, &doc).expect("a JSON map serialises");
            }
        }
    }
    Ok(Resp::text(200, "application/x-ndjson", out))
}
