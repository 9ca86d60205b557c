//! The upstream HTTP/1.1 client: Meilisearch nodes over TCP and the admin process over its
//! Unix control socket (docs/internals/control-protocol.md), one [`UpstreamClient`] per core.
//!
//! - Keep-alive pools per upstream ([`crate::http::pool`]).
//! - Every call is reported through [`ClientMetrics`] (the client is generic over it).
//! - One deadline per call covers connect, write and read: a slow node costs exactly one
//!   timeout, and a timed-out connection is closed, never pooled.
//! - One retry, only on a *reused* connection that produced no response byte, and only when
//!   that is safe: the write itself failed (the upstream had closed the idle connection, so it
//!   never got the request), or the request is replayable (GET/HEAD/OPTIONS by default, or
//!   [`SendOptions::replayable`] for reads sent as POST such as searches).
//! - Response framing by Content-Length, chunked, or connection close; a size cap.
//! - Hop-by-hop and framing headers are removed from responses, so the proxy can relay them.
//!
//! Concurrency: every call is a `!Send` future on the current core. To fan out, build the
//! futures and await them together with `futures_util::future::join_all` (re-exported as
//! [`join_all`]) — they borrow the client, need no `'static`, and interleave on the core.

use crate::http::body::Body;
use crate::http::conn::Conn;
pub use crate::http::conn::Upstream;
pub use crate::http::observe::ClientMetrics;
use crate::http::parse::{ChunkedDecoder, ParseError};
use crate::http::pool::{Pool, PooledConn};
use crate::http::recycle;
use crate::http::server::{grow_towards, push_decimal, BODY_STEP};
use crate::http::types::{Method, Request, Response, UpstreamError};
use monoio::buf::IoBufMut;
use monoio::net::{TcpStream, UnixStream};
use std::cell::RefCell;
use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use futures_util::future::join_all;

/// Client knobs.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub max_idle_per_upstream: usize,
    /// Idle connections older than this are not reused. Below actix-web's (Meilisearch's)
    /// default keep-alive of 5 s, so Miroir gives a connection up before the node does.
    pub pool_idle_timeout: Duration,
    /// Largest response body accepted by default.
    pub max_response_bytes: usize,
    /// Largest response head.
    pub max_response_head: usize,
    /// How long a resolved host name is reused.
    pub dns_ttl: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            max_idle_per_upstream: 64,
            pool_idle_timeout: Duration::from_secs(4),
            max_response_bytes: 256 * 1024 * 1024,
            max_response_head: 64 * 1024,
            dns_ttl: Duration::from_secs(10),
        }
    }
}

impl ClientSettings {
    /// The config has no client section yet; responses may be as large as the largest body
    /// a client may send (document fetches relay what writes stored), with a floor.
    pub fn from_config(c: &miroir_core::config::Config) -> Self {
        ClientSettings {
            max_response_bytes: (c.server.max_body_bytes as usize).max(256 * 1024 * 1024),
            ..Default::default()
        }
    }
}

/// Per-call options.
#[derive(Debug, Clone, Copy)]
pub struct SendOptions {
    /// Total budget: connect + write + read.
    pub deadline: Duration,
    /// Whether the request may be sent twice (safe to retry after it may have been received).
    /// Defaults to `true` for GET/HEAD/OPTIONS. Set it for read-only POSTs (searches).
    pub replayable: Option<bool>,
    /// Overrides [`ClientSettings::max_response_bytes`].
    pub max_response_bytes: Option<usize>,
}

impl SendOptions {
    pub fn new(deadline: Duration) -> Self {
        SendOptions {
            deadline,
            replayable: None,
            max_response_bytes: None,
        }
    }

    pub fn replayable(mut self, yes: bool) -> Self {
        self.replayable = Some(yes);
        self
    }
}

/// One core's client. Not `Send`; share it on its core with `Rc`.
///
/// Generic over what records its calls, so the data plane's client reports with static
/// dispatch; the default (`dyn`) leaves one plain type name for code that does not care which
/// implementation it records into (tests, tools).
pub struct UpstreamClient<M: ?Sized + ClientMetrics = dyn ClientMetrics> {
    settings: ClientSettings,
    pool: Pool,
    dns: RefCell<HashMap<Arc<str>, (SocketAddr, Instant)>>,
    metrics: Rc<M>,
}

/// A failed round trip, with what is known about how far it got (for the retry decision).
struct Failure {
    err: UpstreamError,
    /// The whole request was handed to the kernel.
    written: bool,
    /// At least one response byte arrived.
    got_response: bool,
}

impl<M: ?Sized + ClientMetrics> UpstreamClient<M> {
    pub fn new(settings: ClientSettings, metrics: Rc<M>) -> Self {
        let pool = Pool::new(settings.max_idle_per_upstream, settings.pool_idle_timeout);
        UpstreamClient {
            settings,
            pool,
            dns: RefCell::new(HashMap::new()),
            metrics,
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Sends `req` and reads the whole response within `deadline`.
    pub async fn send(
        &self,
        upstream: &Upstream,
        req: Request,
        deadline: Duration,
    ) -> Result<Response, UpstreamError> {
        self.send_with(upstream, req, SendOptions::new(deadline))
            .await
    }

    pub async fn send_with(
        &self,
        upstream: &Upstream,
        req: Request,
        opts: SendOptions,
    ) -> Result<Response, UpstreamError> {
        let started = Instant::now();
        let replayable = opts.replayable.unwrap_or(matches!(
            req.method,
            Method::Get | Method::Head | Method::Options
        ));
        let head_request = req.method == Method::Head;
        let max_body = opts
            .max_response_bytes
            .unwrap_or(self.settings.max_response_bytes);
        let wire = encode_request(&req, upstream);
        drop(req);
        let result = match monoio::time::timeout(
            opts.deadline,
            self.exchange(upstream, wire, head_request, replayable, max_body),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(UpstreamError::Timeout),
        };
        let elapsed = started.elapsed();
        let error = result.as_ref().err().map(error_type);
        match upstream {
            // The common case borrows the address: no allocation per call.
            Upstream::Tcp(hp) => self.metrics.upstream_result(hp, elapsed, error),
            Upstream::Unix(_) => self
                .metrics
                .upstream_result(&upstream.label(), elapsed, error),
        }
        result
    }

    /// Opens up to `n` connections to `upstream` ahead of traffic and pools them.
    pub async fn prewarm(&self, upstream: &Upstream, n: usize, deadline: Duration) -> usize {
        let mut opened = 0;
        for _ in 0..n {
            match monoio::time::timeout(deadline, self.connect(upstream)).await {
                Ok(Ok(conn)) => {
                    let buf = Vec::with_capacity(READ_BUF);
                    self.pool.put(
                        upstream,
                        PooledConn {
                            conn,
                            buf,
                            idle_since: Instant::now(),
                        },
                    );
                    opened += 1;
                }
                _ => break,
            }
        }
        opened
    }

    async fn exchange(
        &self,
        upstream: &Upstream,
        wire: Vec<u8>,
        head_request: bool,
        replayable: bool,
        max_body: usize,
    ) -> Result<Response, UpstreamError> {
        let trust_for = if replayable {
            TRUST_IDLE_FOR
        } else {
            Duration::ZERO
        };
        let (pooled, reused) = match self.pool.take_trusting(upstream, trust_for) {
            Some(p) => (p, true),
            None => (self.fresh(upstream).await?, false),
        };
        match self
            .round_trip(upstream, pooled, wire, head_request, max_body)
            .await
        {
            Ok(resp) => Ok(resp),
            Err((f, wire)) => {
                let stale = reused && !f.got_response;
                if stale && (!f.written || replayable) {
                    self.metrics.upstream_retry();
                    let pooled = self.fresh(upstream).await?;
                    return self
                        .round_trip(upstream, pooled, wire, head_request, max_body)
                        .await
                        .map_err(|(f, _)| f.err);
                }
                Err(f.err)
            }
        }
    }

    async fn fresh(&self, upstream: &Upstream) -> Result<PooledConn, UpstreamError> {
        let conn = self.connect(upstream).await?;
        Ok(PooledConn {
            conn,
            buf: Vec::with_capacity(READ_BUF),
            idle_since: Instant::now(),
        })
    }

    async fn connect(&self, upstream: &Upstream) -> Result<Conn, UpstreamError> {
        match upstream {
            Upstream::Tcp(hp) => {
                let addr = self.resolve(hp).await?;
                let s = TcpStream::connect_addr(addr)
                    .await
                    .map_err(|e| UpstreamError::Connect(format!("{hp}: {e}")))?;
                let _ = s.set_nodelay(true);
                Ok(Conn::Tcp(s))
            }
            Upstream::Unix(p) => UnixStream::connect(&**p)
                .await
                .map(Conn::Unix)
                .map_err(|e| UpstreamError::Connect(format!("{}: {e}", p.display()))),
        }
    }

    async fn resolve(&self, host_port: &Arc<str>) -> Result<SocketAddr, UpstreamError> {
        if let Ok(a) = host_port.parse::<SocketAddr>() {
            return Ok(a);
        }
        if let Some((a, at)) = self.dns.borrow().get(host_port) {
            if at.elapsed() < self.settings.dns_ttl {
                return Ok(*a);
            }
        }
        // getaddrinfo blocks: run it on the blocking pool, never on the reactor.
        let name = host_port.to_string();
        let resolved =
            monoio::spawn_blocking(move || name.to_socket_addrs().map(|mut it| it.next())).await;
        let addr = match resolved {
            Ok(Ok(Some(a))) => a,
            Ok(Ok(None)) => return Err(UpstreamError::Connect(format!("{host_port}: no address"))),
            Ok(Err(e)) => return Err(UpstreamError::Connect(format!("{host_port}: {e}"))),
            Err(_) => {
                return Err(UpstreamError::Connect(format!(
                    "{host_port}: resolver unavailable"
                )))
            }
        };
        self.dns
            .borrow_mut()
            .insert(host_port.clone(), (addr, Instant::now()));
        Ok(addr)
    }

    /// Writes the request and reads the response on `pc`. On success the connection goes
    /// back to the pool when the response allows it.
    async fn round_trip(
        &self,
        upstream: &Upstream,
        mut pc: PooledConn,
        wire: Vec<u8>,
        head_request: bool,
        max_body: usize,
    ) -> Result<Response, (Failure, Vec<u8>)> {
        let (res, wire) = pc.conn.write_all(wire).await;
        if let Err(e) = res {
            let f = Failure {
                err: UpstreamError::Io(e.to_string()),
                written: false,
                got_response: false,
            };
            return Err((f, wire));
        }
        pc.buf.clear();
        match read_response(
            &mut pc,
            head_request,
            max_body,
            self.settings.max_response_head,
        )
        .await
        {
            Ok((resp, keep_alive)) => {
                if keep_alive {
                    self.pool.put(upstream, pc);
                }
                Ok(resp)
            }
            Err((err, got_response)) => Err((
                Failure {
                    err,
                    written: true,
                    got_response,
                },
                wire,
            )),
        }
    }
}

fn error_type(e: &UpstreamError) -> &'static str {
    match e {
        UpstreamError::Connect(_) => "connect",
        UpstreamError::Timeout => "timeout",
        UpstreamError::Protocol(_) => "protocol",
        UpstreamError::Io(_) => "io",
        UpstreamError::TooLarge => "too_large",
    }
}

/// Request headers the client sets itself or that must not cross a proxy hop.
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "content-length"
            | "host"
            | "expect"
    )
}

/// Serialises a request for `upstream` (always with a Content-Length body framing).
pub fn encode_request(req: &Request, upstream: &Upstream) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + req.body.len());
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(if req.path.is_empty() {
        b"/"
    } else {
        req.path.as_bytes()
    });
    if !req.query.is_empty() {
        out.push(b'?');
        out.extend_from_slice(req.query.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    match upstream {
        Upstream::Tcp(hp) => out.extend_from_slice(hp.as_bytes()),
        Upstream::Unix(_) => out.extend_from_slice(b"localhost"),
    }
    out.extend_from_slice(b"\r\n");
    for (name, value) in &req.headers {
        if hop_by_hop(name) || value.iter().any(|&b| b == b'\r' || b == b'\n') {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if !req.body.is_empty() || matches!(req.method, Method::Post | Method::Put | Method::Patch) {
        out.extend_from_slice(b"content-length: ");
        push_decimal(&mut out, req.body.len());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&req.body);
    out
}

/// A parsed response head.
#[derive(Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub version_minor: u8,
    pub headers: Vec<(String, Vec<u8>)>,
    pub framing: ResponseFraming,
    pub keep_alive: bool,
    pub head_len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    Empty,
    Length(u64),
    Chunked,
    /// Body runs until the upstream closes.
    UntilClose,
}

fn proto(msg: &str) -> UpstreamError {
    UpstreamError::Protocol(msg.to_string())
}

/// Parses a response head from `buf`: `Ok(None)` when incomplete.
pub fn parse_response_head(
    buf: &[u8],
    head_request: bool,
    max_head: usize,
) -> Result<Option<ResponseHead>, UpstreamError> {
    // Uninitialised slots: httparse writes those it uses (no 4 KiB memset per answer).
    let mut storage = [const { MaybeUninit::<httparse::Header>::uninit() }; 128];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut storage,
    );
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > max_head {
                return Err(proto("response head too large"));
            }
            return Ok(None);
        }
        Err(e) => {
            return Err(UpstreamError::Protocol(format!(
                "invalid response head: {e}"
            )))
        }
    };
    let status = resp.code.unwrap_or(0);
    let version_minor = resp.version.unwrap_or(1);
    let mut headers = Vec::with_capacity(resp.headers.len());
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut close = version_minor == 0;
    for h in resp.headers.iter() {
        // Compared without lower-casing first: only relayed headers get an owned name (the
        // framing headers, `date` and the like are dropped and cost no allocation).
        let is = |n: &str| h.name.eq_ignore_ascii_case(n);
        match () {
            _ if is("content-length") => {
                let v = std::str::from_utf8(h.value)
                    .ok()
                    .map(str::trim)
                    .and_then(|v| v.parse::<u64>().ok());
                match (v, content_length) {
                    (Some(v), None) => content_length = Some(v),
                    (Some(v), Some(prev)) if v == prev => {}
                    _ => return Err(proto("invalid or conflicting Content-Length")),
                }
            }
            _ if is("transfer-encoding") => {
                // The last coding decides; anything but chunked there means close-delimited.
                let last = h.value.rsplit(|&b| b == b',').next().unwrap_or(b"");
                chunked = String::from_utf8_lossy(last)
                    .trim()
                    .eq_ignore_ascii_case("chunked");
            }
            _ if is("connection") => {
                for t in h.value.split(|&b| b == b',') {
                    let t = String::from_utf8_lossy(t);
                    let t = t.trim();
                    if t.eq_ignore_ascii_case("close") {
                        close = true;
                    } else if t.eq_ignore_ascii_case("keep-alive") && version_minor == 0 {
                        close = false;
                    }
                }
            }
            _ => {}
        }
        const DROPPED: [&str; 8] = [
            "content-length",
            "transfer-encoding",
            "connection",
            "keep-alive",
            "date",
            "trailer",
            "upgrade",
            "proxy-connection",
        ];
        if !DROPPED.iter().any(|d| is(d)) {
            headers.push((h.name.to_ascii_lowercase(), h.value.to_vec()));
        }
    }
    let framing = if head_request || (100..200).contains(&status) || status == 204 || status == 304
    {
        ResponseFraming::Empty
    } else if chunked {
        ResponseFraming::Chunked
    } else if let Some(n) = content_length {
        ResponseFraming::Length(n)
    } else {
        ResponseFraming::UntilClose
    };
    let keep_alive = !close && framing != ResponseFraming::UntilClose;
    Ok(Some(ResponseHead {
        status,
        version_minor,
        headers,
        framing,
        keep_alive,
        head_len,
    }))
}

/// Reads one response from `pc`. Errors carry whether any response byte arrived.
async fn read_response(
    pc: &mut PooledConn,
    head_request: bool,
    max_body: usize,
    max_head: usize,
) -> Result<(Response, bool), (UpstreamError, bool)> {
    let mut buf = std::mem::take(&mut pc.buf);
    // Head (skipping interim 1xx responses).
    let head = loop {
        match parse_response_head(&buf, head_request, max_head) {
            Err(e) => return Err((e, true)),
            Ok(Some(h)) if (100..200).contains(&h.status) && h.status != 101 => {
                buf.drain(..h.head_len);
                continue;
            }
            Ok(Some(h)) => break h,
            Ok(None) => {}
        }
        let got = !buf.is_empty();
        let (r, b) = read_more(&mut pc.conn, buf).await;
        buf = b;
        match r {
            Ok(0) if got => {
                return Err((proto("connection closed inside the response head"), true))
            }
            Ok(0) => {
                return Err((
                    UpstreamError::Io("connection closed before any response".into()),
                    false,
                ))
            }
            Ok(_) => {}
            Err(e) => return Err((UpstreamError::Io(e.to_string()), got)),
        }
    };
    let mut at = head.head_len;
    let body = match head.framing {
        ResponseFraming::Empty => Body::default(),
        ResponseFraming::Length(n) => {
            if n > max_body as u64 {
                return Err((UpstreamError::TooLarge, true));
            }
            let n = n as usize;
            if n >= HAND_OVER_MIN && buf.len() - at == n {
                // The whole answer arrived with its head (the common case): the read buffer
                // becomes the body, the connection goes on with a recycled (empty) one.
                let whole = std::mem::replace(&mut buf, recycle::take(READ_BUF));
                let body = Body::after(whole, at);
                at = 0;
                body
            } else {
                let have = (buf.len() - at).min(n);
                // A buffer a written response handed back: no large allocation per call.
                let mut body = recycle::take(have.max(n.min(BODY_STEP)));
                body.extend_from_slice(&buf[at..at + have]);
                at += have;
                while body.len() < n {
                    let len = body.len();
                    let end = grow_towards(&mut body, n);
                    let (r, s) = pc.conn.read(body.slice_mut(len..end)).await;
                    body = s.into_inner();
                    match r {
                        Ok(0) => {
                            return Err((proto("connection closed inside the response body"), true))
                        }
                        Ok(_) => {}
                        Err(e) => return Err((UpstreamError::Io(e.to_string()), true)),
                    }
                }
                body.into()
            }
        }
        ResponseFraming::Chunked => {
            let mut dec = ChunkedDecoder::new();
            let mut body = Vec::new();
            loop {
                let (used, done) =
                    dec.feed(&buf[at..], &mut body, max_body as u64)
                        .map_err(|e| {
                            (
                                match e {
                                    ParseError::PayloadTooLarge { .. } => UpstreamError::TooLarge,
                                    _ => proto("invalid chunked response body"),
                                },
                                true,
                            )
                        })?;
                at += used;
                if done {
                    break;
                }
                buf.clear();
                at = 0;
                let (r, b) = read_more(&mut pc.conn, buf).await;
                buf = b;
                match r {
                    Ok(0) => return Err((proto("connection closed inside a chunked body"), true)),
                    Ok(_) => {}
                    Err(e) => return Err((UpstreamError::Io(e.to_string()), true)),
                }
            }
            body.into()
        }
        ResponseFraming::UntilClose => {
            let mut body = buf[at..].to_vec();
            at = buf.len();
            loop {
                if body.len() > max_body {
                    return Err((UpstreamError::TooLarge, true));
                }
                let (r, b) = read_more(&mut pc.conn, body).await;
                body = b;
                match r {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => return Err((UpstreamError::Io(e.to_string()), true)),
                }
            }
            body.into()
        }
    };
    // Bytes beyond the response mean the upstream sent something unasked: don't reuse.
    let keep_alive = head.keep_alive && at == buf.len();
    buf.clear();
    if buf.capacity() > 256 * 1024 {
        buf = Vec::with_capacity(READ_BUF);
    }
    pc.buf = buf;
    Ok((
        Response {
            status: head.status,
            headers: head.headers,
            body,
        },
        keep_alive,
    ))
}

/// A pooled connection's read buffer: a typical search answer (20 hits, ~20 KiB) and its
/// head arrive in one read instead of two (each read is one more io_uring operation and, for
/// the part beyond the buffer, one more copy). Pages are touched only as far as answers reach.
const READ_BUF: usize = 64 * 1024;

/// Smaller answers are copied out of the read buffer (cheap), so a small body never pins a
/// whole read buffer; larger ones take the buffer itself.
const HAND_OVER_MIN: usize = 4 * 1024;

/// Idle pooled connections younger than this are reused without the `MSG_PEEK` check when
/// the request may be replayed: a connection the node closed meanwhile yields no response
/// byte, and such a request is retried once on a fresh connection anyway (module docs). That
/// saves one syscall per upstream call on the hot path; non-replayable requests still check.
const TRUST_IDLE_FOR: Duration = Duration::from_secs(1);

async fn read_more(conn: &mut Conn, mut buf: Vec<u8>) -> (std::io::Result<usize>, Vec<u8>) {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(buf.capacity().max(READ_BUF));
    }
    let (len, cap) = (buf.len(), buf.capacity());
    let (r, s) = conn.read(buf.slice_mut(len..cap)).await;
    (r, s.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_from_url() {
        assert_eq!(
            Upstream::from_url("http://127.0.0.1:7700").unwrap(),
            Upstream::tcp("127.0.0.1:7700")
        );
        assert_eq!(
            Upstream::from_url("http://meili-0.meili:7700/").unwrap(),
            Upstream::tcp("meili-0.meili:7700")
        );
        assert_eq!(
            Upstream::from_url("http://node").unwrap(),
            Upstream::tcp("node:80")
        );
        assert_eq!(
            Upstream::from_url("http://[::1]:7700").unwrap(),
            Upstream::tcp("[::1]:7700")
        );
        assert_eq!(
            Upstream::from_url("http://[::1]").unwrap(),
            Upstream::tcp("[::1]:80")
        );
        assert_eq!(
            Upstream::from_url("unix:/run/c.sock").unwrap(),
            Upstream::unix("/run/c.sock")
        );
        assert_eq!(
            Upstream::from_url("unix:///run/c.sock").unwrap(),
            Upstream::unix("/run/c.sock")
        );
        assert!(Upstream::from_url("https://x:1").is_err());
        assert!(Upstream::from_url("http://x:notaport").is_err());
        assert!(Upstream::from_url("http://u@x:1").is_err());
        assert!(Upstream::from_url("unix:rel.sock").is_err());
    }

    #[test]
    fn encodes_requests_without_hop_by_hop_headers() {
        let req = Request {
            method: Method::Post,
            path: "/indexes/m/search".into(),
            query: "a=1".into(),
            headers: vec![
                ("content-type".into(), b"application/json".to_vec()),
                ("connection".into(), b"close".to_vec()),
                ("transfer-encoding".into(), b"chunked".to_vec()),
                ("host".into(), b"client-facing".to_vec()),
                ("x-bad".into(), b"a\r\nb".to_vec()),
            ],
            body: b"{}".to_vec(),
        };
        let wire =
            String::from_utf8(encode_request(&req, &Upstream::tcp("10.0.0.1:7700"))).unwrap();
        assert_eq!(
            wire,
            "POST /indexes/m/search?a=1 HTTP/1.1\r\nhost: 10.0.0.1:7700\r\ncontent-type: application/json\r\n\
             content-length: 2\r\n\r\n{}"
        );
        let get = Request {
            method: Method::Get,
            path: "/health".into(),
            query: String::new(),
            headers: vec![],
            body: vec![],
        };
        let wire = String::from_utf8(encode_request(&get, &Upstream::unix("/s"))).unwrap();
        assert_eq!(wire, "GET /health HTTP/1.1\r\nhost: localhost\r\n\r\n");
    }

    #[test]
    fn response_framing_rules() {
        let p = |s: &str, head: bool| {
            parse_response_head(s.as_bytes(), head, 1024)
                .unwrap()
                .unwrap()
        };
        let h = p(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nDate: x\r\nX-A: b\r\n\r\nhello",
            false,
        );
        assert_eq!(h.framing, ResponseFraming::Length(5));
        assert!(h.keep_alive);
        assert_eq!(h.headers, vec![("x-a".to_string(), b"b".to_vec())]);
        assert_eq!(
            p(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false
            )
            .framing,
            ResponseFraming::Chunked
        );
        let h = p("HTTP/1.1 200 OK\r\n\r\n", false);
        assert_eq!(
            (h.framing, h.keep_alive),
            (ResponseFraming::UntilClose, false)
        );
        assert_eq!(
            p("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true).framing,
            ResponseFraming::Empty
        );
        assert_eq!(
            p("HTTP/1.1 204 No Content\r\n\r\n", false).framing,
            ResponseFraming::Empty
        );
        assert!(
            !p(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                false
            )
            .keep_alive
        );
        assert!(!p("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false).keep_alive);
        assert!(
            p(
                "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
                false
            )
            .keep_alive
        );
        assert_eq!(
            parse_response_head(b"HTTP/1.1 200 OK\r\nX: y", false, 1024).unwrap(),
            None
        );
        assert!(parse_response_head(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            false,
            1024
        )
        .is_err());
        assert!(parse_response_head(b"garbage\r\n\r\n", false, 1024).is_err());
        assert!(parse_response_head(&[b'a'; 2000], false, 1024).is_err());
    }
}
