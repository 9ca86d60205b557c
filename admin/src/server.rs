//! HTTP/1.1 serving with hyper on both listeners: the admin REST API (TCP) and the control
//! socket (Unix, mode 0600). Each request gets a request id (the received `X-Request-Id` or
//! a fresh one), echoed on the response and logged with method, path, status and duration —
//! never headers or bodies (they carry keys and documents).

use crate::http_types::{Req, Resp};
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

/// A client has this long to send a request's head (slowloris), and this long for its body.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Connections served at once per listener; the accept loop waits for a free slot beyond it,
/// so a flood of idle connections cannot exhaust the admin's memory or file descriptors.
const MAX_CONNECTIONS: usize = 1024;

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

/// A whole answer, or a chat completion's events as they are produced.
type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

async fn serve_one(
    admin: Arc<Admin>,
    listener: Listener,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Body>, Infallible> {
    let started = std::time::Instant::now();
    let (parts, body) = req.into_parts();
    let rid = request_id(&parts.headers);
    let read = http_body_util::Limited::new(body, MAX_BODY).collect();
    let body = match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("not received within {BODY_READ_TIMEOUT:?}")),
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
            let chat = match listener {
                Listener::Control => crate::chat::streamed_workspace(&req),
                Listener::AdminApi => None,
            };
            if let Some(ws) = chat {
                match crate::chat::stream(admin.clone(), ws, req).await {
                    Ok(events) => {
                        tracing::info!(request_id = %rid, listener = ?listener, method = %parts.method,
                            path = %parts.uri.path(), status = 200, "request (event stream)");
                        return Ok(event_stream(events, &rid));
                    }
                    Err(resp) => resp,
                }
            } else {
                // Run the handler as its own task: a broadcast that has started touching nodes
                // must finish (or roll back) even if the client hangs up mid-way.
                let admin = admin.clone();
                match tokio::spawn(async move { handle(&admin, listener, req).await }).await {
                    Ok(resp) => resp,
                    Err(e) => crate::http_types::ApiError::internal(format!(
                        "request handler failed: {e}"
                    ))
                    .into_resp(),
                }
            }
        }
        Err(e) => crate::http_types::ApiError::core(
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

fn to_hyper(resp: Resp, rid: &str) -> hyper::Response<Body> {
    let mut b = hyper::Response::builder()
        .status(resp.status)
        .header("x-request-id", rid);
    if !resp.body.is_empty() {
        b = b.header(hyper::header::CONTENT_TYPE, resp.content_type);
    }
    b.body(Full::new(resp.body).boxed_unsync())
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new()).boxed_unsync()))
}

/// A chat completion's events, each sent as it is produced (chunked framing).
fn event_stream(
    events: tokio::sync::mpsc::UnboundedReceiver<Bytes>,
    rid: &str,
) -> hyper::Response<Body> {
    let frames = futures_util::stream::unfold(events, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(hyper::body::Frame::data(b)), rx))
    });
    hyper::Response::builder()
        .status(200)
        .header("x-request-id", rid)
        .header(hyper::header::CONTENT_TYPE, "text/event-stream")
        .body(http_body_util::StreamBody::new(frames).boxed_unsync())
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new()).boxed_unsync()))
}

fn spawn_conn<S>(
    admin: Arc<Admin>,
    listener: Listener,
    stream: S,
    slot: tokio::sync::OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let _slot = slot;
        let svc = service_fn(move |req| serve_one(admin.clone(), listener, req));
        if let Err(e) = http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(stream), svc)
            .await
        {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    });
}

/// A slot for one more connection (waits while [`MAX_CONNECTIONS`] are served).
async fn connection_slot(slots: &Arc<tokio::sync::Semaphore>) -> tokio::sync::OwnedSemaphorePermit {
    slots
        .clone()
        .acquire_owned()
        .await
        .expect("the semaphore is never closed")
}

/// Serves the admin REST API on a bound TCP listener until the process exits.
pub async fn serve_tcp(admin: Arc<Admin>, listener: tokio::net::TcpListener) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let slot = connection_slot(&slots).await;
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                spawn_conn(admin.clone(), Listener::AdminApi, stream, slot);
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin API accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Binds the control socket at `path` (replacing a stale one) with mode 0600 from the first
/// moment it is reachable: it is bound inside a fresh directory only its owner can enter,
/// made 0600 there, then renamed into place (a rename keeps the bound socket). Binding at
/// `path` and then changing the mode would leave a window in which any local user could
/// connect with the process umask's permissions.
pub fn bind_control(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let private = dir.join(format!(".miroir-bind-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&private);
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let staged = private.join("control.sock");
    let bound = (|| {
        let listener = tokio::net::UnixListener::bind(&staged)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&staged, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&private);
    bound
}

/// Serves the control socket until the process exits.
pub async fn serve_unix(admin: Arc<Admin>, listener: tokio::net::UnixListener) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let slot = connection_slot(&slots).await;
        match listener.accept().await {
            Ok((stream, _)) => spawn_conn(admin.clone(), Listener::Control, stream, slot),
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

    #[tokio::test]
    async fn the_control_socket_is_private_and_replaces_a_stale_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("miroir-bind-test-{}", std::process::id()));
        let path = dir.join("sub").join("admin.sock");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"stale").unwrap();
        let _l = bind_control(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Nothing left behind next to it.
        let entries: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(entries.len(), 1);
        assert!(tokio::net::UnixStream::connect(&path).await.is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn key_values_in_paths_are_not_logged() {
        assert_eq!(log_path("/keys/0123abcd"), "/keys/{redacted}");
        assert_eq!(log_path("/keys"), "/keys");
        assert_eq!(log_path("/tasks/3"), "/tasks/3");
    }
}
