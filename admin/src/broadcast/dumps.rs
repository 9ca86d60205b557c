//! `POST /dumps` and `POST /snapshots`: deployment-wide operations every node runs on its own
//! data.

use super::engine::{dispatch, settle, spawn_task, GLOBAL};
use crate::http_types::{ApiError, Resp};
use crate::state::Admin;
use crate::store::TaskType;
use hyper::Method;
use serde_json::{json, Value};
use std::sync::Arc;

/// `POST /dumps` and `POST /snapshots`: one Miroir task over one node task per node. A dump
/// or snapshot is **per node** (each node writes its own part into its own dump directory);
/// `details.dumpUid` is the first node's.
pub async fn node_local_task(
    admin: &Arc<Admin>,
    path: &str,
    kind: TaskType,
) -> Result<Resp, ApiError> {
    let guard = admin.lock_scopes(vec![GLOBAL.to_string()]).await;
    let nodes = admin.broadcast_nodes();
    let d = dispatch(admin, &nodes, Method::POST, path, None)
        .await
        .map_err(|(_, e)| e)?;
    let details = if kind == TaskType::DumpCreation {
        json!({"dumpUid": null})
    } else {
        json!({})
    };
    spawn_task(
        admin,
        guard,
        None,
        kind,
        details.clone(),
        move |admin| async move {
            let done = settle(&admin, &d).await?;
            let mut details = details;
            if kind == TaskType::DumpCreation {
                details["dumpUid"] = done
                    .first()
                    .map(|t| t["details"]["dumpUid"].clone())
                    .unwrap_or(Value::Null);
            }
            Ok(details)
        },
    )
    .await
}
