//! HTTP/1.1 serving with hyper on both listeners: the admin REST API (TCP) and the control
//! socket (Unix, mode 0600). Each request gets a request id (the received `X-Request-Id` or
//! a fresh one), echoed on the response and logged with method, path, status and duration —
//! never headers or bodies (they carry keys and documents).

use crate::api::{Req, Resp};
use crate::routes::{handle, Listener};
use crate::state::Admin;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use miroir_core::control::Endpoint;
use std::convert::Infallible;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

/// Requests larger than this are refused (control bodies are settings, keys, registrations).
const MAX_BODY: usize = 16 * 1024 * 1024;

static REQUEST_SEQ: AtomicU64 = AtomicU64::new(0);

fn request_id(headers: &hyper::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(String::from)
        .unwrap_or_else(|| {
            format!(
                "admin-{}-{}",
                std::process::id(),
                REQUEST_SEQ.fetch_add(1, Ordering::Relaxed)
            )
        })
}

async fn serve_one(
    admin: Arc<Admin>,
    listener: Listener,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let started = std::time::Instant::now();
    let (parts, body) = req.into_parts();
    let rid = request_id(&parts.headers);
    let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) => Err(e.to_string()),
    };
    let resp = match body {
        Ok(body) => {
            let req = Req {
                method: parts.method.clone(),
                path: parts.uri.path().to_string(),
                query: parts.uri.query().unwrap_or_default().to_string(),
                headers: parts.headers,
                body,
                request_id: rid.clone(),
            };
            // Run the handler as its own task: a broadcast that has started touching nodes
            // must finish (or roll back) even if the client hangs up mid-way.
            let admin = admin.clone();
            match tokio::spawn(async move { handle(&admin, listener, req).await }).await {
                Ok(resp) => resp,
                Err(e) => crate::api::ApiError::internal(format!("request handler failed: {e}"))
                    .into_resp(),
            }
        }
        Err(e) => crate::api::ApiError::core(
            miroir_core::error::ErrorCode::PayloadTooLarge,
            format!("request body unreadable or too large: {e}"),
        )
        .into_resp(),
    };
    // Heartbeats (twice a second per data plane) and write pings: logged only at debug level
    // so they do not drown the request log.
    let path = parts.uri.path();
    let quiet = [Endpoint::Heartbeat, Endpoint::Ping]
        .iter()
        .any(|e| path == e.path())
        && resp.status < 400;
    macro_rules! log_request {
        ($lvl:expr) => {
            tracing::event!(
                $lvl,
                request_id = %rid,
                listener = ?listener,
                method = %parts.method,
                path = %log_path(parts.uri.path()),
                status = resp.status,
                duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                "request"
            )
        };
    }
    if quiet {
        log_request!(tracing::Level::DEBUG);
    } else {
        log_request!(tracing::Level::INFO);
    }
    Ok(to_hyper(resp, &rid))
}

/// The path as logged: `/keys/{uid_or_key}` may carry a key value, which never reaches logs.
fn log_path(path: &str) -> &str {
    if path.starts_with("/keys/") {
        "/keys/{redacted}"
    } else {
        path
    }
}

fn to_hyper(resp: Resp, rid: &str) -> hyper::Response<Full<Bytes>> {
    let mut b = hyper::Response::builder()
        .status(resp.status)
        .header("x-request-id", rid);
    if !resp.body.is_empty() {
        b = b.header(hyper::header::CONTENT_TYPE, resp.content_type);
    }
    b.body(Full::new(resp.body))
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())))
}

fn spawn_conn<S>(admin: Arc<Admin>, listener: Listener, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let svc = service_fn(move |req| serve_one(admin.clone(), listener, req));
        if let Err(e) = http1::Builder::new()
            .serve_connection(TokioIo::new(stream), svc)
            .await
        {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    });
}

/// Serves the admin REST API on a bound TCP listener until the process exits.
pub async fn serve_tcp(admin: Arc<Admin>, listener: tokio::net::TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                spawn_conn(admin.clone(), Listener::AdminApi, stream);
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin API accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Binds the control socket at `path` (replacing a stale one, mode 0600).
pub fn bind_control(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves the control socket until the process exits.
pub async fn serve_unix(admin: Arc<Admin>, listener: tokio::net::UnixListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => spawn_conn(admin.clone(), Listener::Control, stream),
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_in_paths_are_not_logged() {
        assert_eq!(log_path("/keys/0123abcd"), "/keys/{redacted}");
        assert_eq!(log_path("/keys"), "/keys");
        assert_eq!(log_path("/tasks/3"), "/tasks/3");
    }
}
