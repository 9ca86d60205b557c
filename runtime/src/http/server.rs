//! The HTTP/1.1 server side: one accept loop per core and one task per connection.
//!
//! A connection task reads requests one at a time: head (with [`HeadScanner`] enforcing limits
//! as bytes arrive), then the body by Content-Length or chunked, then calls the [`Handler`] and
//! writes the response. Pipelined requests are therefore answered in order by construction:
//! bytes after the current request stay in the buffer and are parsed only after its response
//! was written.
//!
//! Timeouts (slowloris): a request must arrive completely (head) within
//! `header_read_timeout` of its first byte (or of the accept, for a connection's first
//! request), each body read must make progress within the same bound, and a keep-alive
//! connection waiting for its next request is closed after `idle_timeout`.
//!
//! Every rejection is answered with a Meilisearch-shaped body and closes the connection; none
//! reaches the handler. A panicking handler costs its connection a 500, not the reactor.

use crate::http::compress;
use crate::http::date::DateCache;
pub use crate::http::observe::ServerMetrics;
use crate::http::parse::{ChunkedDecoder, Framing, HeadScanner, Limits, ParseError, RequestHead};
use crate::http::recycle;
use crate::http::shutdown::Shutdown;
use crate::http::types::{Method, Request, Response};
use futures_util::FutureExt;
use miroir_core::config::ServerConfig;
use miroir_core::{ErrorCode, MeiliError};
use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};
use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// What the proxy implements. One value per core (the reactor builds one per core from a
/// factory), so it may hold `Rc`/`RefCell` state freely.
pub trait Handler {
    /// The route template used as the metrics label (`/indexes/{uid}/search`), so label
    /// cardinality never depends on client input. Called before [`Handler::handle`].
    fn route_template(&self, _req: &Request) -> &'static str {
        "other"
    }

    /// Admission, after the head and before the body is read: `Err(response)` answers the
    /// request without reading its body, then closes the connection. The proxy refuses
    /// unauthenticated requests here, so no client without credentials can make a core
    /// buffer a body. Called only when the body is not already in the read buffer (small
    /// requests arrive whole, and `handle` checks them anyway).
    fn admit(&self, _head: &Request) -> Result<(), Response> {
        Ok(())
    }

    /// Answers one request. `HEAD` requests arrive as such; the server drops the body of the
    /// response (keeping its length). The transport adds `content-length`, `date`,
    /// `connection` and `x-request-id`.
    fn handle(&self, req: Request, meta: RequestMeta) -> impl Future<Output = Response>;
}

/// Per-request facts the transport knows and the handler needs.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// The client's `X-Request-Id` when it is sane (1–200 visible ASCII bytes), otherwise one
    /// generated here (`<process>-<core>-<counter>`). Echoed on the response.
    pub request_id: String,
    pub peer: SocketAddr,
    /// When the request head was complete.
    pub start: Instant,
    pub core_id: usize,
}

/// The server's knobs, from `server.*` of the config.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub limits: Limits,
    pub header_read_timeout: Duration,
    /// Deadline for a whole body, from the end of its head.
    pub body_read_timeout: Duration,
    /// Body bytes one core holds at once (see [`BodyBudget`]).
    pub max_body_in_flight: u64,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// Compress responses for clients that accept it ([`crate::http::compress`]).
    pub compression: bool,
    /// Deadline for writing one response to a client that does not read.
    pub write_timeout: Duration,
}

impl ServerSettings {
    pub fn from_config(c: &ServerConfig) -> Self {
        ServerSettings {
            limits: Limits {
                max_body_bytes: c.max_body_bytes,
                ..Limits::default()
            },
            header_read_timeout: Duration::from_millis(c.header_read_timeout_ms),
            body_read_timeout: Duration::from_millis(c.body_read_timeout_ms),
            max_body_in_flight: c.max_body_bytes_in_flight_per_core,
            idle_timeout: Duration::from_millis(c.idle_timeout_ms),
            max_connections: c.max_connections_per_core,
            compression: c.compression,
            write_timeout: Duration::from_millis(c.idle_timeout_ms),
        }
    }
}

/// Generates request ids unique within the process run: a per-process random prefix, the
/// core, a per-core counter.
#[derive(Debug)]
pub struct RequestIds {
    prefix: String,
    next: Cell<u64>,
}

impl RequestIds {
    pub fn new(core_id: usize) -> Self {
        RequestIds {
            prefix: format!("{:08x}-{core_id}", process_nonce()),
            next: Cell::new(0),
        }
    }

    pub fn next(&self) -> String {
        let n = self.next.get();
        self.next.set(n + 1);
        format!("{}-{n:x}", self.prefix)
    }
}

/// 32 random-enough bits per process (std's hasher keys are seeded from the OS RNG).
fn process_nonce() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    static NONCE: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *NONCE.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish() as u32
    })
}

/// Whether a client-supplied request id is safe to echo and log.
pub fn sane_request_id(v: &[u8]) -> bool {
    !v.is_empty() && v.len() <= 200 && v.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// Per-core state shared by every connection task of that core. `M` records what the server
/// does ([`ServerMetrics`]).
pub struct ServerCore<H, M> {
    pub handler: Rc<H>,
    pub settings: ServerSettings,
    pub metrics: Rc<M>,
    pub shutdown: Shutdown,
    pub core_id: usize,
    ids: RequestIds,
    date: DateCache,
    live: Cell<usize>,
    bodies: BodyBudget,
}

/// The request-body bytes a core holds at once: each body reserves its declared length
/// (chunked bodies, what has arrived) until its request is answered. A request that would
/// exceed `server.max_body_bytes_in_flight_per_core` is answered `503` instead of being read,
/// so memory stays bounded whatever many clients send at once.
#[derive(Debug)]
pub struct BodyBudget {
    limit: u64,
    used: Cell<u64>,
}

impl BodyBudget {
    pub fn new(limit: u64) -> Self {
        BodyBudget {
            limit,
            used: Cell::new(0),
        }
    }

    pub fn in_use(&self) -> u64 {
        self.used.get()
    }

    fn reservation(&self) -> BodyReservation<'_> {
        BodyReservation {
            budget: self,
            held: 0,
        }
    }
}

/// Bytes of a [`BodyBudget`] held by one request; given back when dropped.
#[derive(Debug)]
struct BodyReservation<'a> {
    budget: &'a BodyBudget,
    held: u64,
}

impl BodyReservation<'_> {
    /// Holds at least `total` bytes, or refuses the request.
    fn grow_to(&mut self, total: u64) -> Result<(), Stop> {
        if total <= self.held {
            return Ok(());
        }
        let extra = total - self.held;
        let used = self.budget.used.get();
        if used.saturating_add(extra) > self.budget.limit {
            return Err(Stop::Respond(busy()));
        }
        self.budget.used.set(used + extra);
        self.held = total;
        Ok(())
    }
}

impl Drop for BodyReservation<'_> {
    fn drop(&mut self) {
        let used = self.budget.used.get();
        self.budget.used.set(used.saturating_sub(self.held));
    }
}

/// The answer when a core already holds its budget of request bodies.
fn busy() -> Response {
    let e = MeiliError::new(
        ErrorCode::Unavailable,
        "Too many request bodies are being received at once; retry shortly.",
    );
    let mut resp = Response::json(e.status(), e.to_body());
    resp.headers.push(("retry-after".into(), b"1".to_vec()));
    resp
}

impl<H: Handler + 'static, M: ServerMetrics + 'static> ServerCore<H, M> {
    pub fn new(
        handler: Rc<H>,
        settings: ServerSettings,
        metrics: Rc<M>,
        shutdown: Shutdown,
        core_id: usize,
    ) -> Rc<Self> {
        let settings_body_limit = settings.max_body_in_flight;
        Rc::new(ServerCore {
            handler,
            settings,
            metrics,
            shutdown,
            core_id,
            ids: RequestIds::new(core_id),
            date: DateCache::new(),
            live: Cell::new(0),
            bodies: BodyBudget::new(settings_body_limit),
        })
    }

    /// Open connections on this core.
    pub fn live_connections(&self) -> usize {
        self.live.get()
    }

    /// Accepts until shutdown, spawning one task per connection. Returns once shutdown was
    /// signalled (dropping the listener stops the kernel from queueing more connections here);
    /// in-flight connections keep running (the reactor drains them).
    pub async fn accept_loop(self: Rc<Self>, listener: TcpListener) {
        loop {
            let accepted = monoio::select! {
                r = listener.accept() => r,
                _ = self.shutdown.wait() => break,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    if self.live.get() >= self.settings.max_connections {
                        self.metrics.connection_refused();
                        monoio::spawn(refuse_connection(stream, self.clone()));
                        continue;
                    }
                    let core = self.clone();
                    monoio::spawn(async move {
                        let _guard = LiveGuard::new(&core.live);
                        core.metrics.connection_opened();
                        serve_connection(stream, peer, core.clone()).await;
                        core.metrics.connection_closed();
                    });
                }
                Err(e) => {
                    // EMFILE/ENFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(core = self.core_id, error = %e, "accept failed");
                    monoio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
}

struct LiveGuard<'a>(&'a Cell<usize>);

impl<'a> LiveGuard<'a> {
    fn new(c: &'a Cell<usize>) -> Self {
        c.set(c.get() + 1);
        LiveGuard(c)
    }
}

impl Drop for LiveGuard<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// Over the connection cap: say so (503) and close, without reading anything.
async fn refuse_connection<H, M>(mut stream: TcpStream, core: Rc<ServerCore<H, M>>) {
    let err = MeiliError::new(
        ErrorCode::Unavailable,
        "Too many open connections on this server.",
    );
    let resp = Response::json(err.status(), err.to_body());
    let mut out = Vec::with_capacity(256);
    let id = core.ids.next();
    write_response(&mut out, &resp, &id, &core.date.now(), false, 1, false);
    let _ = monoio::time::timeout(core.settings.write_timeout, stream.write_all(out)).await;
}

/// Result of waiting for more bytes.
enum ReadOutcome {
    /// Appended this many bytes.
    Data,
    /// Peer closed its side.
    Eof,
    TimedOut,
    ShutdownRequested,
    Failed,
}

/// Reads more bytes, appending to `buf` (growing it if full), until `deadline`. When
/// `shutdown` is given, shutdown interrupts the wait (used between requests only).
async fn read_more(
    stream: &mut TcpStream,
    mut buf: Vec<u8>,
    deadline: Instant,
    shutdown: Option<&Shutdown>,
) -> (ReadOutcome, Vec<u8>) {
    if buf.capacity() - buf.len() < 2048 {
        buf.reserve(buf.capacity().max(8192));
    }
    let Some(remaining) = deadline.checked_duration_since(Instant::now()) else {
        return (ReadOutcome::TimedOut, buf);
    };
    let len = buf.len();
    let cap = buf.capacity();
    let read = monoio::time::timeout(remaining, stream.read(buf.slice_mut(len..cap)));
    let result = match shutdown {
        Some(s) => monoio::select! {
            r = read => Some(r),
            _ = s.wait() => None,
        },
        None => Some(read.await),
    };
    // When the read future is dropped (timeout/shutdown) its buffer goes with it; the
    // connection is closed in those cases, so an empty buffer is returned.
    match result {
        None => (ReadOutcome::ShutdownRequested, Vec::new()),
        Some(Err(_elapsed)) => (ReadOutcome::TimedOut, Vec::new()),
        Some(Ok((Ok(0), slice))) => (ReadOutcome::Eof, slice.into_inner()),
        Some(Ok((Ok(_), slice))) => (ReadOutcome::Data, slice.into_inner()),
        Some(Ok((Err(_), slice))) => (ReadOutcome::Failed, slice.into_inner()),
    }
}

/// Why a connection loop stops reading requests.
enum Stop {
    /// Close quietly (EOF, idle timeout, I/O error, shutdown between requests).
    Quiet,
    /// Answer this error, then close.
    Reject(MeiliError),
    /// Answer this response (admission refused, body budget spent), then close: the body
    /// was not read, so the connection cannot carry another request.
    Respond(Response),
}

impl From<ParseError> for Stop {
    fn from(e: ParseError) -> Self {
        Stop::Reject(e.to_meili())
    }
}

fn timeout_error() -> Stop {
    Stop::Reject(MeiliError::new(
        ErrorCode::RequestTimeout,
        "The request was not received completely in time.",
    ))
}

/// Serves one connection until it closes.
pub async fn serve_connection<H: Handler + 'static, M: ServerMetrics + 'static>(
    mut stream: TcpStream,
    peer: SocketAddr,
    core: Rc<ServerCore<H, M>>,
) {
    let settings = &core.settings;
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut out: Vec<u8> = Vec::with_capacity(8192);
    // The first request must start arriving within the header timeout of the accept.
    let mut first = true;
    loop {
        // `reservation` holds the body's share of the core's body budget until the request
        // is answered.
        let (head, body, rest, reservation) = match read_request(&mut stream, buf, &core, first)
            .await
        {
            Ok(r) => r,
            Err(Stop::Quiet) => return,
            Err(stop) => {
                let resp = match stop {
                    Stop::Reject(err) => Response::json(err.status(), err.to_body()),
                    Stop::Respond(resp) => resp,
                    Stop::Quiet => unreachable!("matched above"),
                };
                core.metrics.request_rejected(resp.status);
                out.clear();
                write_response(
                    &mut out,
                    &resp,
                    &core.ids.next(),
                    &core.date.now(),
                    false,
                    1,
                    false,
                );
                let _ = monoio::time::timeout(settings.write_timeout, stream.write_all(out)).await;
                return;
            }
        };
        first = false;
        buf = rest;

        let request_id = match head.headers.iter().find(|(n, _)| n == "x-request-id") {
            Some((_, v)) if sane_request_id(v) => String::from_utf8_lossy(v).into_owned(),
            _ => core.ids.next(),
        };
        let keep_alive = head.keep_alive && !core.shutdown.is_set();
        let version_minor = head.version_minor;
        let is_head = head.method == Method::Head;
        let coding = if settings.compression {
            head.headers
                .iter()
                .find(|(n, _)| n == "accept-encoding")
                .and_then(|(_, v)| compress::negotiate(v))
        } else {
            None
        };
        let req = Request {
            method: head.method,
            path: head.path,
            query: head.query,
            headers: head.headers,
            body,
        };
        let start = Instant::now();
        let route = core.handler.route_template(&req);
        let meta = RequestMeta {
            request_id: request_id.clone(),
            peer,
            start,
            core_id: core.core_id,
        };
        core.metrics.request_started();
        let (resp, panicked) = match AssertUnwindSafe(core.handler.handle(req, meta))
            .catch_unwind()
            .await
        {
            Ok(r) => (r, false),
            Err(_) => {
                tracing::error!(core = core.core_id, request_id = %request_id, route, "handler panicked");
                let e = MeiliError::new(
                    ErrorCode::Internal,
                    "Internal error while handling the request.",
                );
                (Response::json(e.status(), e.to_body()), true)
            }
        };
        let mut resp = match coding {
            Some(c) => compress::compress(c, resp).await,
            None => resp,
        };
        core.metrics
            .request_finished(route, resp.status, start.elapsed());
        drop(reservation);
        // Shutdown may have started while the handler ran: tell the client we close.
        let keep_alive = keep_alive && !panicked && !core.shutdown.is_set();
        if let Some(body) = super::stream::detach(&mut resp) {
            let date = core.date.now();
            let reusable = super::stream::write_streamed(
                &mut stream,
                resp,
                body,
                &request_id,
                &date,
                keep_alive,
                version_minor,
                settings.write_timeout,
            )
            .await;
            if !reusable {
                return;
            }
            continue;
        }
        out.clear();
        let with_body = write_head(
            &mut out,
            &resp,
            &request_id,
            &core.date.now(),
            keep_alive,
            version_minor,
        ) && !is_head;
        // A body built with room before it takes the head there: one send, no copy of the
        // body. Otherwise it is copied behind the head. Either way its buffer then serves the
        // next node answer on this core.
        let in_body = if with_body {
            match resp.body.prepend(&out) {
                Ok(whole) => Some(whole),
                Err(body) => {
                    out.extend_from_slice(&body);
                    recycle::give(body.into_buffer());
                    None
                }
            }
        } else {
            recycle::give(resp.body.into_buffer());
            None
        };
        // What is sent: the body's buffer from its head on, or `out` (kept for the next answer).
        let (send, at, is_out) = match in_body {
            Some((buf, at)) => (buf, at, false),
            None => (std::mem::take(&mut out), 0, true),
        };
        let write = stream.write_all(send.slice(at..));
        let Ok((res, sent)) = monoio::time::timeout(settings.write_timeout, write).await else {
            return;
        };
        match is_out {
            true => out = sent.into_inner(),
            false => recycle::give(sent.into_inner()),
        }
        if res.is_err() || !keep_alive {
            return;
        }
        // Don't let one large body pin memory for the rest of a keep-alive connection.
        if out.capacity() > 1 << 20 {
            out = Vec::with_capacity(8192);
        }
    }
}

type ReadResult<'c> = Result<(RequestHead, Vec<u8>, Vec<u8>, BodyReservation<'c>), Stop>;

/// Reads one complete request (head + body). Returns it with the buffer holding any bytes
/// that follow it (pipelined requests).
async fn read_request<'c, H: Handler, M>(
    stream: &mut TcpStream,
    mut buf: Vec<u8>,
    core: &'c ServerCore<H, M>,
    first: bool,
) -> ReadResult<'c> {
    let settings = &core.settings;
    let limits = &settings.limits;
    let mut scanner = HeadScanner::new();
    // Deadline for the head: header timeout from the first byte (or from accept).
    let mut head_deadline = if first || !buf.is_empty() {
        Some(Instant::now() + settings.header_read_timeout)
    } else {
        None
    };
    let head_len = loop {
        match scanner.find_end(&buf, limits) {
            Err(e) => return Err(e.into()),
            Ok(Some(n)) => break n,
            Ok(None) => {}
        }
        let waiting_idle = head_deadline.is_none();
        let deadline = head_deadline.unwrap_or_else(|| Instant::now() + settings.idle_timeout);
        let shutdown = if buf.is_empty() {
            Some(&core.shutdown)
        } else {
            None
        };
        // (A timed-out read loses its buffer: remember whether a request had started.)
        let started = !buf.is_empty();
        let (outcome, b) = read_more(stream, buf, deadline, shutdown).await;
        buf = b;
        match outcome {
            ReadOutcome::Data => {
                if head_deadline.is_none() {
                    head_deadline = Some(Instant::now() + settings.header_read_timeout);
                }
            }
            // Slowloris: a request started (or a new connection said nothing) and its head
            // did not complete in time. An idle keep-alive connection just closes.
            ReadOutcome::TimedOut if started || (first && !waiting_idle) => {
                return Err(timeout_error())
            }
            ReadOutcome::Eof if started => {
                return Err(ParseError::BadRequest("connection closed mid-request").into())
            }
            _ => return Err(Stop::Quiet),
        }
    };
    let head = crate::http::parse::parse_head(&buf[..head_len], limits)?;
    let mut consumed = head_len;

    // Admission before the body: a request refused here (no or wrong credentials) never
    // gets its body read, so trickling bodies costs its sender, not this core.
    let buffered = buf.len() - consumed;
    let must_wait = match head.framing {
        Framing::Empty => false,
        Framing::Length(n) => n > buffered as u64,
        Framing::Chunked => true,
    };
    if must_wait {
        let probe = Request {
            method: head.method,
            path: head.path.clone(),
            query: head.query.clone(),
            headers: head.headers.clone(),
            body: Vec::new(),
        };
        if let Err(resp) = core.handler.admit(&probe) {
            return Err(Stop::Respond(resp));
        }
    }
    let mut reservation = core.bodies.reservation();
    if let Framing::Length(n) = head.framing {
        reservation.grow_to(n)?;
    }
    // One deadline for the whole body, and the header timeout between two reads.
    let body_deadline = Instant::now() + settings.body_read_timeout;
    let read_deadline = || (Instant::now() + settings.header_read_timeout).min(body_deadline);

    let body = match head.framing {
        Framing::Empty => Vec::new(),
        Framing::Length(n) => {
            let n = n as usize;
            let have = (buf.len() - consumed).min(n);
            if have < n && head.expect_continue {
                send_continue(stream, settings.write_timeout)
                    .await
                    .map_err(|_| Stop::Quiet)?;
            }
            let mut body = Vec::with_capacity(have.min(BODY_STEP));
            body.extend_from_slice(&buf[consumed..consumed + have]);
            consumed += have;
            // Read the rest straight into the body: the slice stops at `n`, so bytes of a
            // pipelined next request are never read into it.
            while body.len() < n {
                let len = body.len();
                let end = grow_towards(&mut body, n);
                let wait = read_deadline().saturating_duration_since(Instant::now());
                let r = monoio::time::timeout(wait, stream.read(body.slice_mut(len..end))).await;
                match r {
                    Err(_) => return Err(timeout_error()),
                    Ok((Ok(0), _)) | Ok((Err(_), _)) => return Err(Stop::Quiet),
                    Ok((Ok(_), s)) => body = s.into_inner(),
                }
            }
            body
        }
        Framing::Chunked => {
            let mut decoder = ChunkedDecoder::new();
            let mut body = Vec::new();
            let mut continue_sent = false;
            loop {
                let (used, done) =
                    decoder.feed(&buf[consumed..], &mut body, limits.max_body_bytes)?;
                consumed += used;
                reservation.grow_to(body.len() as u64)?;
                if done {
                    break;
                }
                // Everything buffered was consumed: drop it so `buf` stays small.
                buf.clear();
                consumed = 0;
                if head.expect_continue && !continue_sent {
                    continue_sent = true;
                    send_continue(stream, settings.write_timeout)
                        .await
                        .map_err(|_| Stop::Quiet)?;
                }
                let (outcome, b) = read_more(stream, buf, read_deadline(), None).await;
                buf = b;
                match outcome {
                    ReadOutcome::Data => {}
                    ReadOutcome::TimedOut => return Err(timeout_error()),
                    _ => return Err(Stop::Quiet),
                }
            }
            body
        }
    };
    buf.drain(..consumed.min(buf.len()));
    // A long-lived connection keeps its buffer; shrink it after an unusually large request.
    if buf.capacity() > 64 * 1024 && buf.len() < 8192 {
        buf.shrink_to(8192);
    }
    Ok((head, body, buf, reservation))
}

/// Growth step of a Content-Length body: memory follows the bytes that actually arrived, not
/// the length a client declared (up to `max_body_bytes` on every connection).
pub(crate) const BODY_STEP: usize = 1 << 20;

/// Makes room for the next read of a body that must reach `n` bytes; returns the end of the
/// writable range (never past `n`).
pub(crate) fn grow_towards(body: &mut Vec<u8>, n: usize) -> usize {
    if body.capacity() == body.len() {
        body.reserve((n - body.len()).min(BODY_STEP));
    }
    body.capacity().min(n)
}

async fn send_continue(stream: &mut TcpStream, timeout: Duration) -> io::Result<()> {
    match monoio::time::timeout(
        timeout,
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()),
    )
    .await
    {
        Ok((r, _)) => r.map(|_| ()),
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// Reason phrases for the statuses Meilisearch and Miroir produce.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Headers the transport owns; a handler's copies are dropped rather than duplicated.
fn managed_header(name: &str) -> bool {
    matches!(
        name,
        "content-length"
            | "transfer-encoding"
            | "connection"
            | "date"
            | "keep-alive"
            | "x-request-id"
    )
}

/// Appends `n` in decimal without allocating.
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Serialises a response (head, and body unless `head_only`) into `out`.
pub fn write_response(
    out: &mut Vec<u8>,
    resp: &Response,
    request_id: &str,
    date: &[u8],
    keep_alive: bool,
    version_minor: u8,
    head_only: bool,
) {
    if write_head(out, resp, request_id, date, keep_alive, version_minor) && !head_only {
        out.extend_from_slice(&resp.body);
    }
}

/// Serialises a response's head into `out`; returns whether its status lets a body follow.
pub fn write_head(
    out: &mut Vec<u8>,
    resp: &Response,
    request_id: &str,
    date: &[u8],
    keep_alive: bool,
    version_minor: u8,
) -> bool {
    let status = resp.status;
    out.extend_from_slice(if version_minor == 0 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    let mut num = [0u8; 3];
    num[0] = b'0' + (status / 100 % 10) as u8;
    num[1] = b'0' + (status / 10 % 10) as u8;
    num[2] = b'0' + (status % 10) as u8;
    out.extend_from_slice(&num);
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &resp.headers {
        // A value with CR/LF would let a handler (or a relayed upstream) split the response.
        if managed_header(name) || value.iter().any(|&b| b == b'\r' || b == b'\n') {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    let bodyless = status < 200 || status == 204 || status == 304;
    if !bodyless {
        out.extend_from_slice(b"content-length: ");
        push_decimal(out, resp.body.len());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"x-request-id: ");
    out.extend_from_slice(request_id.as_bytes());
    out.extend_from_slice(b"\r\ndate: ");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\n");
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if version_minor == 0 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    !bodyless
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(resp: &Response, keep_alive: bool, minor: u8, head_only: bool) -> String {
        let mut out = Vec::new();
        write_response(
            &mut out,
            resp,
            "rid",
            b"Mon, 23 Nov 2026 19:50:01 GMT",
            keep_alive,
            minor,
            head_only,
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn writes_status_headers_and_body() {
        let r = Response::json(200, b"{}".to_vec()).with_header("x-miroir-degraded", "shards=1");
        assert_eq!(
            render(&r, true, 1, false),
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-miroir-degraded: shards=1\r\n\
             content-length: 2\r\nx-request-id: rid\r\ndate: Mon, 23 Nov 2026 19:50:01 GMT\r\n\r\n{}"
        );
    }

    #[test]
    fn head_keeps_length_drops_body_and_close_is_announced() {
        let r = Response::json(200, b"{\"a\":1}".to_vec());
        let s = render(&r, false, 1, true);
        assert!(s.contains("content-length: 7\r\n"));
        assert!(s.contains("connection: close\r\n"));
        assert!(s.ends_with("\r\n\r\n"));
    }

    #[test]
    fn http10_keep_alive_is_explicit_and_204_has_no_length() {
        let s = render(&Response::new(204), true, 0, false);
        assert!(s.starts_with("HTTP/1.0 204 No Content\r\n"));
        assert!(s.contains("connection: keep-alive\r\n"));
        assert!(!s.contains("content-length"));
    }

    #[test]
    fn managed_and_unsafe_handler_headers_are_dropped() {
        let r = Response::new(200)
            .with_header("content-length", "999")
            .with_header("x-request-id", "spoof")
            .with_header("x-evil", b"a\r\nset-cookie: x".to_vec());
        let s = render(&r, true, 1, false);
        assert!(!s.contains("999"));
        assert!(!s.contains("spoof"));
        assert!(!s.contains("x-evil"));
        assert!(s.contains("content-length: 0\r\n"));
    }

    #[test]
    fn decimals() {
        for n in [0usize, 7, 10, 99, 100, 12345, usize::MAX] {
            let mut v = Vec::new();
            push_decimal(&mut v, n);
            assert_eq!(v, n.to_string().into_bytes());
        }
    }

    #[test]
    fn request_ids() {
        assert!(sane_request_id(b"abc-123"));
        assert!(!sane_request_id(b""));
        assert!(!sane_request_id(b"a b"));
        assert!(!sane_request_id(&[b'a'; 201]));
        let ids = RequestIds::new(3);
        let (a, b) = (ids.next(), ids.next());
        assert_ne!(a, b);
        assert!(a.contains("-3-"));
    }
}
