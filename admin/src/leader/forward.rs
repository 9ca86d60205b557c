//! Followers forward control requests to the leader's admin
//! (docs/decisions/025-followers-forward.md).
//!
//! The request goes as received (method, path, query, body, headers — the data plane's
//! `Miroir-Principal` and control version included) to the leader's advertised admin REST
//! address, marked with [`FORWARDED_HEADER`] and carrying the admin key: the leader's REST
//! listener serves client routes only to such requests ([`accepts_forwarded`]), so the admin
//! key stands for the data plane's authentication on the hop between hosts.
//!
//! A request is retried only when it could not be *delivered* (connection refused or failed
//! before sending: the leader is dead or moving) — never after it reached a leader, since a
//! broadcast is not idempotent. The wait for a leader is bounded by [`wait_budget`]; past it
//! the client gets `miroir_no_leader`.

use super::{Leader, Leadership};
use crate::http_types::{ApiError, Req, Resp};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use miroir_core::error::ErrorCode;
use std::sync::OnceLock;
use std::time::Duration;

/// Marks a request a follower forwarded (value: the follower's host id).
pub const FORWARDED_HEADER: &str = "miroir-forwarded-by";

/// How long a forwarded request may take at the leader (broadcasts wait for nodes).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(120);

/// Headers not copied onto the forwarded request (hop-by-hop, or recomputed).
const SKIPPED: [&str; 5] = [
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "x-admin-key",
];

/// The longest a follower waits for a reachable leader: two lease lifetimes, enough for a
/// dead leader's lease to run out and another host to take it — capped well below the data
/// plane's 60 s control timeout, so the client never gives up on a request that then runs.
pub fn wait_budget(leadership: &Leadership) -> Duration {
    (leadership.ttl() * 2 + Duration::from_secs(1)).min(Duration::from_secs(30))
}

fn client() -> &'static Client<HttpConnector, Full<Bytes>> {
    static CLIENT: OnceLock<Client<HttpConnector, Full<Bytes>>> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let mut c = HttpConnector::new();
        c.set_nodelay(true);
        c.set_connect_timeout(Some(Duration::from_secs(2)));
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(c)
    })
}

/// Whether a request on the admin REST listener is a follower's forward this admin serves:
/// marked, and (checked by the caller, as for `/_miroir/*`) carrying the admin key.
pub fn accepts_forwarded(req: &Req) -> bool {
    req.header(FORWARDED_HEADER).is_some()
}

/// What became of one delivery attempt.
enum Delivery {
    Answered(Resp),
    /// Not delivered (the leader's address refused or failed the connection): retry.
    Undelivered(String),
}

/// Forwards `req` to the leader. `Ok(None)` = this host is (now) the leader: handle it here.
pub async fn to_leader(
    leadership: &Leadership,
    admin_key: Option<&str>,
    req: &Req,
) -> Result<Option<Resp>, ApiError> {
    let deadline = tokio::time::Instant::now() + wait_budget(leadership);
    let mut last = String::from("no host holds the leader lease");
    loop {
        match leadership.leader() {
            Leader::Local => return Ok(None),
            Leader::Remote { address, holder } => {
                match deliver(leadership, &address, admin_key, req).await {
                    Delivery::Answered(r) => return Ok(Some(r)),
                    Delivery::Undelivered(e) => {
                        last = format!("the leader {holder} at {address} is unreachable: {e}");
                    }
                }
            }
            Leader::Unknown => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::core(
                ErrorCode::MiroirNoLeader,
                format!("this request needs the leader and none could be reached in time ({last}); retry"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn deliver(
    leadership: &Leadership,
    address: &str,
    admin_key: Option<&str>,
    req: &Req,
) -> Delivery {
    let pq = if req.query.is_empty() {
        req.path.clone()
    } else {
        format!("{}?{}", req.path, req.query)
    };
    let url = format!("{}{pq}", address.trim_end_matches('/'));
    let Ok(uri) = url.parse::<hyper::Uri>() else {
        return Delivery::Undelivered(format!("invalid leader address {url:?}"));
    };
    let mut b = hyper::Request::builder()
        .method(req.method.clone())
        .uri(uri);
    for (name, value) in &req.headers {
        if !SKIPPED.contains(&name.as_str()) {
            b = b.header(name, value);
        }
    }
    b = b
        .header(FORWARDED_HEADER, leadership.host_id())
        .header("x-request-id", &req.request_id);
    if let Some(k) = admin_key {
        b = b.header("x-admin-key", k);
    }
    let Ok(request) = b.body(Full::new(req.body.clone())) else {
        return Delivery::Undelivered("the request could not be rebuilt".into());
    };
    let call = async {
        let resp = match client().request(request).await {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Ok(Delivery::Undelivered(e.to_string())),
            Err(e) => return Err(e.to_string()),
        };
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(content_type)
            .unwrap_or("application/json");
        let body = http_body_util::Limited::new(resp.into_body(), 64 * 1024 * 1024)
            .collect()
            .await
            .map_err(|e| format!("reading the leader's answer: {e}"))?
            .to_bytes();
        Ok(Delivery::Answered(Resp {
            status,
            content_type: ct,
            body,
        }))
    };
    match tokio::time::timeout(FORWARD_TIMEOUT, call).await {
        Ok(Ok(d)) => d,
        // Delivered (or possibly delivered) but no answer: the outcome is unknown, so it is
        // not retried; the task, if one was created, is in the shared registry.
        Ok(Err(e)) => Delivery::Answered(
            ApiError::core(
                ErrorCode::MiroirNoLeader,
                format!("the leader at {address} did not answer a forwarded request: {e}; check the task list before retrying"),
            )
            .into_resp(),
        ),
        Err(_) => Delivery::Answered(
            ApiError::core(
                ErrorCode::MiroirNoLeader,
                format!("the leader at {address} did not answer a forwarded request within {FORWARD_TIMEOUT:?}"),
            )
            .into_resp(),
        ),
    }
}

/// `Resp` carries a static content type: the ones the admin produces.
fn content_type(v: &str) -> &'static str {
    let v = v.to_ascii_lowercase();
    if v.starts_with("application/json") {
        "application/json"
    } else if v.starts_with("application/x-ndjson") {
        "application/x-ndjson"
    } else if v.starts_with("text/csv") {
        "text/csv"
    } else if v.starts_with("text/plain; version=0.0.4") {
        "text/plain; version=0.0.4"
    } else {
        "text/plain"
    }
}
