//! Streamed answers: an upstream answer relayed to the client as its body arrives, for the
//! one route whose answer is a long event stream (chat completions' server-sent events,
//! decision 047). Everything else stays a whole [`Response`].
//!
//! The proxy opens its own connection to the upstream ([`request`]), gets the head, and hands
//! the body over with [`attach`]: the response it returns carries a marker header naming the
//! body, parked in this core's table. The server takes it back with [`detach`] and writes the
//! head with `Transfer-Encoding: chunked`, then one chunk per part as it arrives
//! ([`write_streamed`]). A body that fails midway ends the connection without the last chunk,
//! so the client sees the answer as cut.

use crate::http::client::{encode_request, parse_response_head, ResponseFraming, Upstream};
use crate::http::parse::ChunkedDecoder;
use crate::http::server::write_response;
use crate::http::types::{Request, Response, UpstreamError};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpStream, UnixStream};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// The header naming a parked body; never written out.
const MARKER: &str = "x-miroir-streamed-body";
/// The largest answer head read from the upstream.
const MAX_HEAD: usize = 64 * 1024;

thread_local! {
    static PARKED: RefCell<HashMap<u64, StreamedBody>> = RefCell::new(HashMap::new());
    static NEXT: Cell<u64> = const { Cell::new(0) };
}

/// The body of an upstream answer, read as it arrives.
pub struct StreamedBody {
    conn: UnixStream,
    /// Bytes read and not yet decoded.
    buf: Vec<u8>,
    framing: ResponseFraming,
    decoder: ChunkedDecoder,
    /// Bytes left of a `Content-Length` body.
    remaining: u64,
    done: bool,
    /// How long the upstream may stay silent.
    idle: Duration,
}

fn io(e: std::io::Error) -> UpstreamError {
    UpstreamError::Io(e.to_string())
}

impl StreamedBody {
    /// The next part of the body; `None` at its end.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>, UpstreamError> {
        loop {
            let mut out = Vec::new();
            match self.framing {
                ResponseFraming::Empty => self.done = true,
                ResponseFraming::Chunked => {
                    let (used, done) = self
                        .decoder
                        .feed(&self.buf, &mut out, u64::MAX)
                        .map_err(|e| UpstreamError::Protocol(format!("{e:?}")))?;
                    self.buf.drain(..used);
                    self.done = done;
                }
                ResponseFraming::Length(_) => {
                    let n = (self.remaining as usize).min(self.buf.len());
                    out.extend(self.buf.drain(..n));
                    self.remaining -= n as u64;
                    self.done = self.remaining == 0;
                }
                ResponseFraming::UntilClose => out = std::mem::take(&mut self.buf),
            }
            if !out.is_empty() {
                return Ok(Some(out));
            }
            if self.done {
                return Ok(None);
            }
            let read = Vec::with_capacity(16 * 1024);
            let (r, read) = monoio::time::timeout(self.idle, self.conn.read(read))
                .await
                .map_err(|_| UpstreamError::Timeout)?;
            match r.map_err(io)? {
                0 if self.framing == ResponseFraming::UntilClose => {
                    self.done = true;
                    return Ok(None);
                }
                0 => return Err(UpstreamError::Protocol("upstream closed mid-body".into())),
                _ => self.buf.extend_from_slice(&read),
            }
        }
    }

    /// The rest of the body at once (an error answer, or an HTTP/1.0 client).
    pub async fn collect(mut self) -> Result<Vec<u8>, UpstreamError> {
        let mut all = Vec::new();
        while let Some(part) = self.next().await? {
            all.extend_from_slice(&part);
        }
        Ok(all)
    }
}

/// Sends `req` on a connection of its own to the Unix socket at `path`: the answer's head (as
/// a [`Response`] without body) and its body as it arrives. `idle` bounds every wait.
pub async fn request(
    path: &Path,
    req: &Request,
    idle: Duration,
) -> Result<(Response, StreamedBody), UpstreamError> {
    let mut conn = UnixStream::connect(path)
        .await
        .map_err(|e| UpstreamError::Connect(e.to_string()))?;
    let bytes = encode_request(req, &Upstream::unix(path));
    let (r, _) = monoio::time::timeout(idle, conn.write_all(bytes))
        .await
        .map_err(|_| UpstreamError::Timeout)?;
    r.map_err(io)?;
    let mut buf = Vec::new();
    let head = loop {
        if let Some(h) = parse_response_head(&buf, false, MAX_HEAD)? {
            break h;
        }
        let read = Vec::with_capacity(8192);
        let (r, read) = monoio::time::timeout(idle, conn.read(read))
            .await
            .map_err(|_| UpstreamError::Timeout)?;
        if r.map_err(io)? == 0 {
            return Err(UpstreamError::Protocol(
                "upstream closed before answering".into(),
            ));
        }
        buf.extend_from_slice(&read);
    };
    buf.drain(..head.head_len);
    let body = StreamedBody {
        conn,
        buf,
        framing: head.framing,
        decoder: ChunkedDecoder::new(),
        remaining: match head.framing {
            ResponseFraming::Length(n) => n,
            _ => 0,
        },
        done: head.framing == ResponseFraming::Empty,
        idle,
    };
    let resp = Response {
        status: head.status,
        headers: head.headers,
        body: Default::default(),
    };
    Ok((resp, body))
}

/// Parks `body` on this core and marks `resp` as its head.
pub fn attach(resp: &mut Response, body: StreamedBody) {
    let id = NEXT.with(|n| {
        let id = n.get();
        n.set(id.wrapping_add(1));
        id
    });
    PARKED.with(|p| p.borrow_mut().insert(id, body));
    resp.headers
        .push((MARKER.into(), id.to_string().into_bytes()));
}

/// The body parked for `resp`, its marker removed; `None` for a whole response.
pub fn detach(resp: &mut Response) -> Option<StreamedBody> {
    let i = resp.headers.iter().position(|(n, _)| n == MARKER)?;
    let (_, id) = resp.headers.remove(i);
    let id: u64 = std::str::from_utf8(&id).ok()?.parse().ok()?;
    PARKED.with(|p| p.borrow_mut().remove(&id))
}

/// Writes `resp`'s head with chunked framing, then each part of `body` as a chunk as it
/// arrives. An HTTP/1.0 client (no chunked framing) gets the whole body at its end. Returns
/// whether the connection can serve another request.
#[allow(clippy::too_many_arguments)]
pub async fn write_streamed(
    stream: &mut TcpStream,
    resp: Response,
    body: StreamedBody,
    request_id: &str,
    date: &[u8],
    keep_alive: bool,
    version_minor: u8,
    write_timeout: Duration,
) -> bool {
    let mut out = Vec::with_capacity(1024);
    if version_minor == 0 {
        let Ok(all) = body.collect().await else {
            return false;
        };
        let whole = Response {
            body: all.into(),
            ..resp
        };
        write_response(&mut out, &whole, request_id, date, keep_alive, 0, false);
        return send(stream, out, write_timeout).await && keep_alive;
    }
    write_response(&mut out, &resp, request_id, date, keep_alive, 1, false);
    // `write_response` frames by length (an empty body here): the one `content-length` it
    // wrote becomes the chunked framing (handler headers never carry framing fields).
    let Some(at) = out
        .windows(b"content-length: 0\r\n".len())
        .position(|w| w == b"content-length: 0\r\n")
    else {
        return false;
    };
    out.splice(
        at..at + b"content-length: 0\r\n".len(),
        b"transfer-encoding: chunked\r\n".iter().copied(),
    );
    if !send(stream, out, write_timeout).await {
        return false;
    }
    let mut body = body;
    loop {
        match body.next().await {
            Ok(Some(part)) => {
                let mut chunk = format!("{:x}\r\n", part.len()).into_bytes();
                chunk.extend_from_slice(&part);
                chunk.extend_from_slice(b"\r\n");
                if !send(stream, chunk, write_timeout).await {
                    return false;
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(request_id, error = ?e, "a streamed answer failed midway");
                return false;
            }
        }
    }
    send(stream, b"0\r\n\r\n".to_vec(), write_timeout).await && keep_alive
}

async fn send(stream: &mut TcpStream, bytes: Vec<u8>, timeout: Duration) -> bool {
    matches!(
        monoio::time::timeout(timeout, stream.write_all(bytes)).await,
        Ok((Ok(_), _))
    )
}
