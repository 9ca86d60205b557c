//! Request dispatch, shared by the admin REST listener (TCP) and the control socket (Unix).
//!
//! - On the **control socket** every request must carry `Miroir-Control-Version: 1`; client
//!   routes arrive already authenticated by the data plane (`Miroir-Principal`), and
//!   `/_internal/v1/*` is served.
//! - On the **admin listener** only `/_miroir/*` is served — and, with several hosts on one
//!   Redis, the client control requests a follower forwards to the leader
//!   (`Miroir-Forwarded-By` + admin key; [`crate::leader::forward`]).
//! - On a host that does not lead, control requests that need the leader ([`needs_leader`])
//!   and `/_miroir/*` writes are forwarded to it.
//! - `/_miroir/*` always needs the admin key (`Authorization: Bearer` or `X-Admin-Key`),
//!   compared in constant time, on both listeners.

use crate::http_types::{percent_decode, ApiError, Req, Resp};
use crate::leader::forward;
use crate::state::{Admin, Heartbeat};
use crate::store::TaskType;
use crate::{broadcast, keys, reads, tasks};
use hyper::Method;
use miroir_core::control::{self, ControlMessage, Endpoint, CONTROL_VERSION, VERSION_HEADER};
use miroir_core::error::ErrorCode;
use std::sync::Arc;

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    AdminApi,
    Control,
}

/// Constant-time equality (`subtle`; length is not secret: keys have fixed derivations).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

fn check_admin_key(admin: &Admin, req: &Req) -> Result<(), ApiError> {
    let Some(expected) = admin.admin_key() else {
        return Ok(());
    };
    let presented = req
        .header("x-admin-key")
        .or_else(|| {
            req.header("authorization")
                .and_then(|a| a.strip_prefix("Bearer "))
        })
        .map(str::trim);
    match presented {
        Some(p) if ct_eq(p.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::core(ErrorCode::MiroirInvalidAuth, "The provided admin key is invalid.")),
        None => Err(ApiError::core(
            ErrorCode::MiroirInvalidAuth,
            "The admin API requires the admin key in an `Authorization: Bearer` or `X-Admin-Key` header.",
        )),
    }
}

fn not_found() -> ApiError {
    ApiError::core(ErrorCode::NotFound, "Not Found")
}

/// Handles one request; never fails (errors become Meilisearch error responses).
pub async fn handle(admin: &Arc<Admin>, listener: Listener, req: Req) -> Resp {
    // Every task this request creates carries the client's `?customMetadata=`.
    let custom = crate::http_types::query_pairs(&req.query)
        .into_iter()
        .find(|(k, _)| k == "customMetadata")
        .map(|(_, v)| v);
    let answer = crate::tasks::CUSTOM_METADATA.scope(custom, route(admin, listener, &req));
    match answer.await {
        Ok(r) => r,
        Err(e) => e.into_resp(),
    }
}

async fn route(admin: &Arc<Admin>, listener: Listener, req: &Req) -> Result<Resp, ApiError> {
    if listener == Listener::Control {
        match req.header(VERSION_HEADER) {
            Some(CONTROL_VERSION) => {}
            other => {
                return Err(ApiError::core(
                    ErrorCode::MiroirControlVersion,
                    format!("this admin speaks control protocol version {CONTROL_VERSION}, the request carried {other:?}"),
                ))
            }
        }
    }
    let segs: Vec<String> = req
        .path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = &req.method;
    if s.first() == Some(&"_miroir") {
        check_admin_key(admin, req)?;
        if *m == Method::GET && s[1..] == ["leader"] {
            return Ok(leader_status(admin));
        }
        if *m != Method::GET && *m != Method::HEAD {
            if let Some(r) = to_leader(admin, req).await? {
                return Ok(r);
            }
        }
        return crate::operator_api::route(admin, m, &s[1..], req).await;
    }
    if listener == Listener::AdminApi {
        // A follower's forward of a client control request (it authenticated the client;
        // the admin key vouches for the follower): served as if from this host's data plane.
        if !forward::accepts_forwarded(req) {
            return Err(not_found());
        }
        check_admin_key(admin, req)?;
    }
    if needs_leader(m, &s) {
        if let Some(r) = to_leader(admin, req).await? {
            return Ok(r);
        }
    }
    if let Some(endpoint) = Endpoint::parse(m.as_str(), &s) {
        return match endpoint {
            Endpoint::RegisterTask => tasks::register(admin, req).await,
            Endpoint::RegisterFailedTask => tasks::register_failed(admin, req).await,
            Endpoint::Heartbeat => heartbeat(admin, req),
            Endpoint::Ping => Ok(Resp::empty(204)),
            Endpoint::PrepareWrite { index } => broadcast::prepare_write(admin, index, req).await,
        };
    }
    match (m, s.as_slice()) {
        (&Method::GET, ["tasks"]) => tasks::list(admin, req).await,
        (&Method::DELETE, ["tasks"]) => tasks::delete(admin, req).await,
        (&Method::POST, ["tasks", "cancel"]) => tasks::cancel(admin, req).await,
        (&Method::GET, ["tasks", uid]) => tasks::get(admin, uid, Some(req)).await,
        (&Method::GET, ["tasks", uid, "documents"]) => {
            tasks::documents::documents(admin, uid).await
        }
        (&Method::GET, ["batches"]) => tasks::list_batches(admin, req).await,
        (&Method::GET, ["batches", uid]) => tasks::get_batch(admin, uid, req).await,
        (&Method::POST, ["indexes"]) => broadcast::create_index(admin, req).await,
        (&Method::GET, ["indexes"]) => reads::list_indexes(admin, req).await,
        (&Method::GET, ["indexes", _]) => reads::index_read(admin, req).await,
        (&Method::PATCH, ["indexes", uid]) => broadcast::update_index(admin, uid, req).await,
        (&Method::DELETE, ["indexes", uid]) => broadcast::delete_index(admin, uid).await,
        (&Method::POST, ["indexes", uid, "fields"]) => reads::index_fields(admin, uid, req).await,
        (&Method::POST, ["indexes", uid, "compact"]) => broadcast::compact_index(admin, uid).await,
        (&Method::POST, ["indexes", uid, "documents", "edit"]) => {
            broadcast::edit_documents(admin, uid, req).await
        }
        (&Method::GET, ["indexes", uid, "stats"]) => {
            reads::index_stats(admin, uid, &req.query).await
        }
        (&Method::GET, ["indexes", uid, "settings"]) => {
            reads::settings_read(admin, uid, None).await
        }
        (&Method::GET, ["indexes", uid, "settings", sub]) => {
            reads::settings_read(admin, uid, Some(sub)).await
        }
        (_, ["indexes", uid, "settings"]) => {
            let body = broadcast::settings_request_body(m, None, req)?;
            broadcast::update_settings(admin, uid, body, m == Method::DELETE).await
        }
        (_, ["indexes", uid, "settings", sub]) => {
            let body = broadcast::settings_request_body(m, Some(sub), req)?;
            broadcast::update_settings(admin, uid, body, false)
                .await
                .map_err(|e| broadcast::as_sub_route_error(e, sub))
        }
        (&Method::GET, ["stats"]) => reads::global_stats(admin, req).await,
        (&Method::POST, ["render-template"]) => reads::render_template(admin, req).await,
        (&Method::POST, ["swap-indexes"]) => broadcast::swap_indexes(admin, req).await,
        (&Method::GET, ["keys"]) => keys::list(admin, req),
        (&Method::POST, ["keys"]) => keys::create(admin, req).await,
        (&Method::GET, ["keys", k]) => keys::get(admin, k),
        (&Method::PATCH, ["keys", k]) => keys::update(admin, k, req).await,
        (&Method::DELETE, ["keys", k]) => keys::delete(admin, k).await,
        (&Method::GET, ["experimental-features"]) => reads::index_read(admin, req).await,
        (&Method::PATCH, ["experimental-features"]) => {
            broadcast::experimental_features(admin, req).await
        }
        (&Method::POST, ["export"]) => crate::export::export(admin, req).await,
        (_, ["webhooks"]) => crate::webhooks::route(admin, req, None).await,
        (_, ["webhooks", uuid]) => crate::webhooks::route(admin, req, Some(uuid)).await,
        (_, ["network"]) => crate::network::route(admin, req, false).await,
        (_, ["network", "control"]) => crate::network::route(admin, req, true).await,
        (_, ["dynamic-search-rules"]) => crate::search_rules::route(admin, req, None).await,
        (_, ["dynamic-search-rules", uid]) => {
            crate::search_rules::route(admin, req, Some(uid)).await
        }
        (&Method::GET, ["chats", ..]) => reads::index_read(admin, req).await,
        // Served streamed by the HTTP layer on the control socket (`chat::stream`); here
        // when it arrives another way, answered whole.
        (&Method::POST, ["chats", ws, "chat", "completions"]) => {
            crate::chat::completions(admin, ws, req).await
        }
        (&Method::DELETE, ["chats", ws]) | (_, ["chats", ws, "settings"]) => {
            let answer = broadcast::chat_workspace(admin, ws, req).await?;
            // The conversation needs the API key nodes only answer redacted.
            crate::chat::remember_workspace(admin, ws, req).await?;
            Ok(answer)
        }
        (&Method::POST, ["dumps"]) => {
            broadcast::node_local_task(admin, "/dumps", TaskType::DumpCreation).await
        }
        (&Method::POST, ["snapshots"]) => {
            broadcast::node_local_task(admin, "/snapshots", TaskType::SnapshotCreation).await
        }
        _ => Err(not_found()),
    }
}

/// Client control requests only the leader performs (index lifecycle, settings, keys, swaps,
/// node-wide tasks, the data plane's prepare-write, which may create an index). Document
/// writes, task routes and reads run on any host.
fn needs_leader(m: &Method, s: &[&str]) -> bool {
    if *m == Method::GET || *m == Method::HEAD {
        return false;
    }
    if let Some(Endpoint::PrepareWrite { .. }) = Endpoint::parse(m.as_str(), s) {
        return true;
    }
    matches!(
        (m, s),
        (&Method::POST, ["indexes"])
            | (_, ["indexes", _])
            | (&Method::POST, ["indexes", _, "compact"])
            | (&Method::POST, ["indexes", _, "documents", "edit"])
            | (_, ["indexes", _, "settings", ..])
            | (&Method::POST, ["swap-indexes"])
            | (_, ["keys", ..])
            | (&Method::PATCH, ["experimental-features"])
            | (&Method::POST, ["dumps" | "snapshots"])
            | (
                &Method::PATCH | &Method::DELETE,
                ["dynamic-search-rules", ..]
            )
            | (&Method::PATCH, ["network"])
    )
}

/// On a host that does not lead, forwards `req` to the leader and returns its answer;
/// `None` when this host leads (handle it here). A request that was already forwarded is
/// never forwarded again (two hosts with stale views could bounce it).
async fn to_leader(admin: &Arc<Admin>, req: &Req) -> Result<Option<Resp>, ApiError> {
    let leadership = admin.leadership();
    if leadership.is_leader() {
        return Ok(None);
    }
    if forward::accepts_forwarded(req) {
        // The follower saw this host's lease before this host finished taking over: wait.
        let deadline = tokio::time::Instant::now() + forward::wait_budget(leadership);
        while leadership.fencing_token().is_some() && tokio::time::Instant::now() < deadline {
            if leadership.is_leader() {
                return Ok(None);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        return Err(ApiError::core(
            ErrorCode::MiroirNoLeader,
            "a forwarded request reached a host that no longer leads; retry",
        ));
    }
    forward::to_leader(leadership, admin.admin_key(), req).await
}

/// `GET /_miroir/leader`: whether this host leads and who does, as this host sees it.
fn leader_status(admin: &Admin) -> Resp {
    let l = admin.leadership();
    let (holder, address) = match l.leader() {
        crate::leader::Leader::Local => (
            Some(l.host_id().to_string()),
            Some(admin.config.admin_advertise_address()),
        ),
        crate::leader::Leader::Remote { holder, address } => (Some(holder), Some(address)),
        crate::leader::Leader::Unknown => (None, None),
    };
    Resp::json(
        200,
        &serde_json::json!({
            "isLeader": l.is_leader(),
            "shared": l.shared_store().is_some(),
            "host": l.host_id(),
            "fencingToken": l.fencing_token(),
            "leader": holder,
            "leaderAddress": address,
            "metadataGeneration": admin.lock().shared_generation,
        }),
    )
}

/// Records what one data-plane process has applied (its epoch acknowledgement).
fn heartbeat(admin: &Admin, req: &Req) -> Result<Resp, ApiError> {
    let beat = control::Heartbeat::decode(&req.body)
        .map_err(|e| ApiError::core(ErrorCode::BadRequest, format!("invalid heartbeat: {e}")))?;
    admin.heartbeat(
        &beat.dataplane,
        Heartbeat {
            generation: beat.applied.generation,
            epoch: beat.applied.epoch,
            pid: beat.pid,
            at: std::time::Instant::now(),
        },
    );
    Ok(Resp::empty(204))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
