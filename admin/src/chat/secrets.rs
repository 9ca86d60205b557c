//! The API key of each chat workspace, as clients set it (decision 047). Nodes answer a
//! workspace's settings with the key redacted, and the conversation needs the real one, so
//! the admin keeps the key it broadcast in its store (meta records, LMDB or Redis): a
//! `PATCH` that sets `apiKey` records it, one that resets it (`null`) removes it, and
//! resetting the settings or deleting the workspace removes it. Every other setting is read
//! back from a node, where the broadcast put it.

use crate::http_types::{ApiError, Req};
use crate::state::Admin;
use hyper::Method;
use serde_json::Value;

const PREFIX: &str = "chat-workspace-api-key/";

fn key(workspace: &str) -> String {
    format!("{PREFIX}{workspace}")
}

/// The workspace's API key, if one was set through Miroir.
pub async fn api_key(admin: &Admin, workspace: &str) -> Result<Option<String>, ApiError> {
    Ok(admin
        .store
        .get_meta(&key(workspace))
        .await?
        .map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// Records what a successful `PATCH`/`DELETE /chats/{workspace}[/settings]` did to the key.
pub async fn remember(admin: &Admin, workspace: &str, req: &Req) -> Result<(), ApiError> {
    if req.method == Method::DELETE {
        admin.store.delete_meta(&key(workspace)).await?;
        return Ok(());
    }
    match req.json()?.get("apiKey") {
        Some(Value::String(k)) => admin.store.put_meta(&key(workspace), k.as_bytes()).await?,
        Some(Value::Null) => {
            admin.store.delete_meta(&key(workspace)).await?;
        }
        _ => {}
    }
    Ok(())
}
