//! Experimental features as the nodes have them. `PATCH /experimental-features` reaches
//! every node (admin/src/broadcast/features.rs), so any live node's answer is the flag.

use crate::http_types::ApiError;
use crate::state::Admin;
use hyper::Method;
use miroir_core::error::ErrorCode;
use serde_json::Value;

/// Whether `flag` (`network`, `chatCompletions`, …) is on, from the first live node that
/// answers; `miroir_node_unreachable` naming the last failure when none does.
pub async fn node_flag(admin: &Admin, flag: &str) -> Result<bool, ApiError> {
    let mut last = None;
    for node in admin.live_nodes() {
        match admin
            .client
            .send(&node.address, Method::GET, "/experimental-features", None)
            .await
        {
            Ok(r) if r.is_success() => return Ok(r.json().get(flag) == Some(&Value::Bool(true))),
            Ok(r) => last = Some(format!("node `{}` answered {}", node.id, r.status)),
            Err(e) => last = Some(format!("node `{}`: {e}", node.id)),
        }
    }
    Err(ApiError::core(
        ErrorCode::MiroirNodeUnreachable,
        last.unwrap_or_else(|| "no node is available".into()),
    ))
}
