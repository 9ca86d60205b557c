//! Chat workspaces (`/chats/{workspace}[/settings]`): instance-wide settings every node must
//! hold alike, so a change goes to every node or, when one refuses, is undone on the ones
//! that took it. Reads come from one node (see `crate::reads::index_read`).
//!
//! Meilisearch redacts a workspace's `apiKey` on read, so an undo cannot restore the key a
//! node had before: it restores every other setting and leaves the key as sent (a workspace
//! that did not exist before is deleted instead, which is exact).

use super::engine::{unavailable, GLOBAL};
use crate::http_types::{ApiError, Req, Resp};
use crate::state::Admin;
use hyper::Method;
use serde_json::Value;
use std::sync::Arc;

/// `PATCH`/`DELETE /chats/{workspace}/settings` and `DELETE /chats/{workspace}`: applied on
/// every node in turn; the first node's answer is the client's. A node's refusal is answered
/// as it is, after the nodes before it were restored.
pub async fn chat_workspace(
    admin: &Arc<Admin>,
    workspace: &str,
    req: &Req,
) -> Result<Resp, ApiError> {
    let body = match req.method {
        Method::PATCH => Some(req.json()?),
        _ => None,
    };
    let settings_path = format!("/chats/{workspace}/settings");
    let _guard = admin.lock_scopes(vec![GLOBAL.to_string()]).await;
    let nodes = admin.broadcast_nodes();
    let mut before: Vec<Option<Value>> = Vec::with_capacity(nodes.len());
    for n in &nodes {
        match admin
            .client
            .send(&n.address, Method::GET, &settings_path, None)
            .await
        {
            Ok(r) if r.is_success() => before.push(Some(r.json())),
            // No such workspace (or the feature is off): nothing to restore, and the node
            // answers the change itself.
            Ok(_) => before.push(None),
            Err(e) => return Err(unavailable(n, e)),
        }
    }
    let mut first: Option<Resp> = None;
    for (i, n) in nodes.iter().enumerate() {
        let r = admin
            .client
            .send(&n.address, req.method.clone(), &req.path, body.as_ref())
            .await;
        let err = match r {
            Ok(r) if r.is_success() => {
                first.get_or_insert_with(|| {
                    if r.body.is_empty() {
                        Resp::empty(r.status)
                    } else {
                        Resp::raw_json(r.status, r.body.clone())
                    }
                });
                continue;
            }
            Ok(r) => ApiError::Node {
                status: r.status,
                body: r.json(),
            },
            Err(e) => unavailable(n, e),
        };
        for (m, old) in nodes.iter().zip(&before).take(i) {
            let undo = match old {
                None => {
                    admin
                        .client
                        .send(
                            &m.address,
                            Method::DELETE,
                            &format!("/chats/{workspace}"),
                            None,
                        )
                        .await
                }
                Some(old) => {
                    let mut old = old.clone();
                    if let Some(o) = old.as_object_mut() {
                        // Read back redacted: sending it would set the redaction as the key.
                        o.remove("apiKey");
                    }
                    admin
                        .client
                        .send(&m.address, Method::PATCH, &settings_path, Some(&old))
                        .await
                }
            };
            if !undo.as_ref().is_ok_and(|r| r.is_success()) {
                tracing::warn!(node = %m.id, workspace, "restoring a chat workspace failed");
            }
        }
        admin.metrics.broadcast(false);
        return Err(err);
    }
    admin.metrics.broadcast(true);
    Ok(first.unwrap_or_else(|| Resp::empty(204)))
}
