//! `PATCH /experimental-features`, applied on every node or on none.

use super::engine::{unavailable, GLOBAL};
use crate::http_types::{ApiError, Req, Resp};
use crate::state::Admin;
use hyper::Method;
use serde_json::json;
use std::sync::Arc;

/// `PATCH /experimental-features`: synchronous on Meilisearch, so synchronous here too —
/// applied on every node, restored on the ones that accepted if one refuses.
pub async fn experimental_features(admin: &Arc<Admin>, req: &Req) -> Result<Resp, ApiError> {
    let body = req.json()?;
    let _guard = admin.lock_scopes(vec![GLOBAL.to_string()]).await;
    let nodes = admin.broadcast_nodes();
    let mut before = Vec::new();
    for n in &nodes {
        match admin
            .client
            .send(&n.address, Method::GET, "/experimental-features", None)
            .await
        {
            Ok(r) if r.is_success() => before.push(r.json()),
            Ok(r) => {
                return Err(ApiError::Node {
                    status: r.status,
                    body: r.json(),
                })
            }
            Err(e) => return Err(unavailable(n, e)),
        }
    }
    let mut first = None;
    for (i, n) in nodes.iter().enumerate() {
        let r = admin
            .client
            .send(
                &n.address,
                Method::PATCH,
                "/experimental-features",
                Some(&body),
            )
            .await;
        let err = match r {
            Ok(r) if r.is_success() => {
                first.get_or_insert(r.json());
                continue;
            }
            Ok(r) => ApiError::Node {
                status: r.status,
                body: r.json(),
            },
            Err(e) => unavailable(n, e),
        };
        admin
            .metrics
            .rollbacks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for (m, old) in nodes.iter().zip(&before).take(i) {
            let _ = admin
                .client
                .send(
                    &m.address,
                    Method::PATCH,
                    "/experimental-features",
                    Some(old),
                )
                .await;
        }
        admin.metrics.broadcast(false);
        return Err(err);
    }
    admin.metrics.broadcast(true);
    let answer = first.unwrap_or_else(|| json!({}));
    // Hydration happens in the data planes, which learn the flag from the snapshot.
    if let Some(on) = answer
        .get("foreignKeys")
        .and_then(serde_json::Value::as_bool)
    {
        if on != admin.lock().foreign_keys_feature {
            admin.set_foreign_keys_feature(on).await?;
            admin.publish().await?;
        }
    }
    // Remote federated search is refused in the data planes while `network` is off.
    if let Some(on) = answer.get("network").and_then(serde_json::Value::as_bool) {
        crate::network::note_feature(admin, on).await?;
    }
    Ok(Resp::json(200, &answer))
}
