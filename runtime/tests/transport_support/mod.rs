//! Shared helpers of the `transport_*` integration tests: start the real reactors with a small
//! handler on a free loopback port, talk raw bytes to them, parse what comes back.
#![allow(dead_code)]

use miroir_core::config::{Config, IoBackend};
use miroir_runtime::http::body::Body;
use miroir_runtime::http::client::Upstream;
use miroir_runtime::http::client::{parse_response_head, ResponseFraming};
use miroir_runtime::http::server::{Handler, RequestMeta};
use miroir_runtime::http::types::{Method, Request, Response};
use miroir_runtime::reactor::{self, CoreContext, IoBackendKind, ServerHandle, ShutdownTrigger};
use miroir_runtime::snapshot_watch::SnapshotShared;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// Every backend this machine can run: epoll always, io_uring when the kernel allows it.
pub fn backends() -> Vec<IoBackend> {
    let mut v = vec![IoBackend::Epoll];
    if monoio::utils::detect_uring() {
        v.push(IoBackend::IoUring);
    } else {
        eprintln!("note: io_uring unavailable here; testing the epoll backend only");
    }
    v
}

pub fn kind(io: IoBackend) -> IoBackendKind {
    match io {
        IoBackend::IoUring => IoBackendKind::IoUring,
        _ => IoBackendKind::Epoll,
    }
}

/// A test handler: echoes the request as JSON, plus a few special paths.
pub struct Echo {
    ctx: CoreContext,
}

impl Handler for Echo {
    fn route_template(&self, req: &Request) -> &'static str {
        if req.path.starts_with("/slow") {
            "/slow"
        } else {
            "/echo"
        }
    }

    async fn handle(&self, req: Request, meta: RequestMeta) -> Response {
        match req.path.as_str() {
            "/panic" => panic!("handler panic requested by the test"),
            "/roomy" => {
                // `/roomy?room=N`: a body built with N bytes of room before it, the way the
                // search merge builds its answers (the server writes its head there).
                let room = query_number(&req, "room=", 512);
                let mut body = Body::with_head_room(Vec::new(), room);
                body.append().extend_from_slice(b"{\"roomy\":true}");
                Response::json(200, body)
            }
            "/slow" => {
                // `/slow?ms=N`: answers after N ms (lets tests have a request in flight).
                let ms = query_number(&req, "ms=", 100);
                monoio::time::sleep(Duration::from_millis(ms)).await;
                Response::json(200, b"{\"slow\":true}".to_vec())
            }
            "/forward" => {
                // Relays `GET /x` to the upstream named in `x-upstream`, through this core's
                // pooled client: the server and the client sharing one reactor.
                let target = String::from_utf8_lossy(req.header("x-upstream").unwrap_or_default())
                    .into_owned();
                let up = Upstream::from_url(&format!("http://{target}")).unwrap();
                let fwd = Request {
                    method: Method::Get,
                    path: "/x".into(),
                    query: String::new(),
                    headers: vec![],
                    body: vec![],
                };
                match self
                    .ctx
                    .client
                    .send(&up, fwd, Duration::from_secs(10))
                    .await
                {
                    Ok(r) => Response {
                        status: r.status,
                        headers: r.headers,
                        body: r.body,
                    },
                    Err(e) => Response::json(502, format!("{{\"error\":\"{e:?}\"}}").into_bytes()),
                }
            }
            "/metrics" => Response::new(200)
                .with_header("content-type", "text/plain")
                .with_body(self.ctx.metrics.render_prometheus()),
            _ => {
                let body = serde_json::json!({
                    "method": req.method.as_str(),
                    "path": req.path,
                    "query": req.query,
                    "body": String::from_utf8_lossy(&req.body),
                    "bodyLen": req.body.len(),
                    "headers": req.headers.iter().map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v))).collect::<Vec<_>>(),
                    "requestId": meta.request_id,
                });
                Response::json(200, serde_json::to_vec(&body).unwrap())
            }
        }
    }
}

/// The number in a one-parameter query `name=N`, or `default`.
fn query_number<T: std::str::FromStr>(req: &Request, name: &str, default: T) -> T {
    req.query
        .strip_prefix(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

trait WithBody {
    fn with_body(self, b: String) -> Self;
}

impl WithBody for Response {
    fn with_body(mut self, b: String) -> Self {
        self.body = b.into_bytes().into();
        self
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub snapshots: Arc<SnapshotShared>,
    handle: Option<ServerHandle>,
}

impl TestServer {
    /// Starts the reactors on 127.0.0.1:0 with `io`, one worker, after `tweak`.
    pub fn start(io: IoBackend, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config::default();
        config.server.bind = "127.0.0.1".into();
        config.server.port = 0;
        config.server.workers = Some(1);
        config.server.io = io;
        config.server.max_body_bytes = 64 * 1024;
        config.server.shutdown_grace_ms = 5_000;
        tweak(&mut config);
        let snapshots = SnapshotShared::new();
        let handle = reactor::start(
            Arc::new(config),
            snapshots.clone(),
            ShutdownTrigger::new(),
            |ctx| Echo { ctx },
        )
        .expect("server starts");
        assert_eq!(handle.io_backend, kind(io));
        TestServer {
            addr: handle.addr,
            metrics_addr: handle.metrics_addr,
            snapshots,
            handle: Some(handle),
        }
    }

    /// Triggers the graceful shutdown and waits for the reactors.
    pub fn stop(mut self) -> Result<(), reactor::ReactorError> {
        let h = self.handle.take().unwrap();
        h.shutdown();
        h.join()
    }

    pub fn handle(&self) -> &ServerHandle {
        self.handle.as_ref().unwrap()
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Sends `raw` on a fresh connection and reads one response.
    pub fn exchange(&self, raw: &[u8]) -> Reply {
        let mut c = self.connect();
        c.send(raw);
        c.reply().expect("a response")
    }

    /// A plain GET on a fresh connection must still work (the reactor survived).
    pub fn assert_alive(&self) {
        let r = self.exchange(b"GET /alive HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(r.status, 200, "server stopped serving");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
            let _ = h.join();
        }
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// The server announced `connection: close`.
    pub close: bool,
}

impl Reply {
    pub fn header(&self, n: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts a Meilisearch-shaped error body with this status and code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        let j = self.json();
        assert_eq!(j["code"], code);
        assert!(
            j["message"].is_string() && j["type"].is_string() && j["link"].is_string(),
            "{j}"
        );
        assert_eq!(j.as_object().unwrap().len(), 4, "{j}");
    }
}

/// A raw client connection with its own read buffer (so pipelined responses are split
/// exactly, never lost).
pub struct Client {
    pub s: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        // Generous: bounds a broken test; not a timing assertion.
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Client { s, buf: Vec::new() }
    }

    pub fn send(&mut self, raw: &[u8]) {
        self.s.write_all(raw).unwrap();
    }

    /// Reads more bytes; `false` at EOF or reset.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match self.s.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => false,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => true,
            Err(e) => panic!("read failed: {e}"),
        }
    }

    /// One response (Content-Length framed or bodyless; 1xx returned as such); `None` on EOF
    /// before any byte of it.
    pub fn reply(&mut self) -> Option<Reply> {
        self.reply_opts(false)
    }

    pub fn reply_opts(&mut self, head_request: bool) -> Option<Reply> {
        loop {
            if let Some(h) =
                parse_response_head(&self.buf, head_request, 1 << 20).expect("valid response head")
            {
                let want = match h.framing {
                    ResponseFraming::Length(n) => n as usize,
                    ResponseFraming::Empty => 0,
                    other => panic!("server used framing {other:?}"),
                };
                while self.buf.len() < h.head_len + want {
                    assert!(self.fill(), "EOF inside a response body");
                }
                let body = self.buf[h.head_len..h.head_len + want].to_vec();
                self.buf.drain(..h.head_len + want);
                return Some(Reply {
                    status: h.status,
                    headers: h.headers,
                    body,
                    close: !h.keep_alive,
                });
            }
            if !self.fill() {
                assert!(
                    self.buf.is_empty(),
                    "EOF inside a response head: {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
                return None;
            }
        }
    }

    /// Whether the server closed the connection with nothing more to say.
    pub fn closed(&mut self) -> bool {
        while self.fill() {}
        self.buf.is_empty()
    }
}
