//! Pure HTTP/1.1 request parsing: the request head (on `httparse`) and chunked bodies.
//!
//! No I/O here. The server feeds bytes as they arrive; these functions either need more bytes,
//! produce a result, or reject with a [`ParseError`] that maps to one Meilisearch-shaped error
//! response (after which the server closes the connection). Keeping this pure is what lets it
//! be unit-tested case by case, property-tested on random bytes and fuzzed.
//!
//! Anti-smuggling: a request whose body length two parties could read differently is refused
//! instead of "repaired". That means Content-Length together with Transfer-Encoding, several
//! Content-Length fields (even equal ones), a Transfer-Encoding other than exactly `chunked`,
//! a bare LF anywhere in the head, obs-fold continuation lines and malformed chunk sizes are
//! all 400 + close (docs/architecture.md#bad-input-and-limits).

use crate::http::types::Method;
use miroir_core::{ErrorCode, MeiliError};
use std::mem::MaybeUninit;

/// Size limits applied while parsing. The defaults follow common servers (nginx, actix):
/// an 8 KiB request line, 100 header fields and 16 KiB for the whole head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line (`GET /path?query HTTP/1.1`) in bytes → 414 beyond.
    pub max_request_line: usize,
    /// Longest head (request line + header fields + final CRLF) in bytes → 431 beyond.
    pub max_head_bytes: usize,
    /// Most header fields → 431 beyond.
    pub max_headers: usize,
    /// Largest body after de-chunking → 413 beyond.
    pub max_body_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8 * 1024,
            max_head_bytes: 16 * 1024,
            max_headers: 100,
            max_body_bytes: 100 * 1024 * 1024,
        }
    }
}

/// Why a request was refused before reaching the handler. Every variant closes the
/// connection: after a framing error the byte stream cannot be trusted any more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Malformed or ambiguous request (400 `bad_request`); the text says what.
    BadRequest(&'static str),
    /// Request line longer than [`Limits::max_request_line`] (414).
    UriTooLong,
    /// Head larger than [`Limits::max_head_bytes`] or more than [`Limits::max_headers`] (431).
    HeaderTooLarge,
    /// Declared or de-chunked body larger than [`Limits::max_body_bytes`] (413).
    PayloadTooLarge { limit: u64 },
    /// A method token the data plane does not serve (405).
    MethodNotAllowed,
}

impl ParseError {
    /// The Meilisearch-shaped error this rejection is answered with.
    pub fn to_meili(&self) -> MeiliError {
        match self {
            ParseError::BadRequest(why) => {
                MeiliError::new(ErrorCode::BadRequest, format!("Malformed HTTP request: {why}."))
            }
            ParseError::UriTooLong => {
                MeiliError::new(ErrorCode::UriTooLong, "The request line is too long.")
            }
            ParseError::HeaderTooLarge => MeiliError::new(
                ErrorCode::RequestHeaderFieldsTooLarge,
                "The request header fields are too large.",
            ),
            // Same wording as Meilisearch's own `payload_too_large` message.
            ParseError::PayloadTooLarge { limit } => MeiliError::new(
                ErrorCode::PayloadTooLarge,
                format!("The provided payload reached the size limit. The maximum accepted payload size is {}.", human_bytes(*limit)),
            ),
            ParseError::MethodNotAllowed => {
                MeiliError::new(ErrorCode::MethodNotAllowed, "This HTTP method is not supported.")
            }
        }
    }
}

/// `104857600` → `100 MiB` (Meilisearch prints the limit with binary units).
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 && (v / 1024.0).fract() == 0.0 {
        v /= 1024.0;
        u += 1;
    }
    format!("{} {}", v, UNITS[u])
}

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (no Content-Length, no Transfer-Encoding).
    Empty,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Method,
    pub path: String,
    pub query: String,
    /// Names lower-cased, values raw, order and duplicates preserved.
    pub headers: Vec<(String, Vec<u8>)>,
    /// `0` for HTTP/1.0, `1` for HTTP/1.1.
    pub version_minor: u8,
    /// Whether the client allows the connection to stay open after this request
    /// (HTTP/1.1: unless `Connection: close`; HTTP/1.0: only with `Connection: keep-alive`).
    pub keep_alive: bool,
    pub framing: Framing,
    /// `Expect: 100-continue` was sent (HTTP/1.1 only).
    pub expect_continue: bool,
}

/// Incremental search for the end of a request head (`\r\n\r\n`), enforcing the size limits
/// and the bare-LF rule as bytes arrive, so a slow client never makes the server rescan what
/// it already checked.
#[derive(Debug, Clone, Default)]
pub struct HeadScanner {
    /// Bytes of the buffer already checked.
    scanned: usize,
    /// End of the request line, once seen.
    line_end: Option<usize>,
}

impl HeadScanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Scans `buf` (which starts at the request's first byte and only ever grows between
    /// calls) and returns the head length including the final CRLF CRLF once complete.
    pub fn find_end(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<usize>, ParseError> {
        // Leading CRLFs before a request line are tolerated (RFC 9112 §2.2); they still count
        // towards the head size.
        let mut i = self.scanned;
        while i < buf.len() {
            if buf[i] == b'\n' {
                if i == 0 || buf[i - 1] != b'\r' {
                    return Err(ParseError::BadRequest("bare LF in the request head"));
                }
                if self.line_end.is_none()
                    && !buf[..i - 1].iter().all(|&b| b == b'\r' || b == b'\n')
                {
                    if i + 1 > limits.max_request_line {
                        return Err(ParseError::UriTooLong);
                    }
                    self.line_end = Some(i + 1);
                }
                if i >= 3 && &buf[i - 3..=i] == b"\r\n\r\n" && self.line_end.is_some_and(|e| e < i)
                {
                    let end = i + 1;
                    if end > limits.max_head_bytes {
                        return Err(ParseError::HeaderTooLarge);
                    }
                    self.scanned = end;
                    return Ok(Some(end));
                }
            }
            i += 1;
            if self.line_end.is_none() && i > limits.max_request_line {
                return Err(ParseError::UriTooLong);
            }
            if i > limits.max_head_bytes {
                return Err(ParseError::HeaderTooLarge);
            }
        }
        self.scanned = buf.len();
        Ok(None)
    }
}

fn method_from(token: &str) -> Result<Method, ParseError> {
    Ok(match token {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        "HEAD" => Method::Head,
        "OPTIONS" => Method::Options,
        _ => return Err(ParseError::MethodNotAllowed),
    })
}

/// Splits a request target into (path, query). Accepts origin-form (`/p?q`), absolute-form
/// (`http://host/p?q`, which RFC 9112 §3.2.2 says servers must accept) and `*` for OPTIONS.
fn split_target(target: &str) -> Result<(&str, &str), ParseError> {
    let rest = if target.starts_with('/') || target == "*" {
        target
    } else if let Some(after) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        match after.find(['/', '?']) {
            Some(i) if after.as_bytes()[i] == b'/' => &after[i..],
            Some(i) => return Ok(("/", &after[i + 1..])),
            None => "/",
        }
    } else {
        return Err(ParseError::BadRequest("invalid request target"));
    };
    if rest.contains('#') {
        return Err(ParseError::BadRequest("fragment in request target"));
    }
    Ok(match rest.split_once('?') {
        Some((p, q)) => (p, q),
        None => (rest, ""),
    })
}

fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |e| e + 1);
    &v[start..end]
}

/// Parses a Content-Length value: 1–19 ASCII digits, nothing else (no sign, no list).
fn parse_content_length(v: &[u8]) -> Result<u64, ParseError> {
    let v = trim_ows(v);
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::BadRequest("invalid Content-Length"));
    }
    // 19 digits always fit in u64.
    Ok(v.iter().fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0')))
}

/// Header slots [`parse_head`] keeps on the stack (the default [`Limits::max_headers`]).
const STACK_HEADERS: usize = 100;

/// Parses a complete head (`head` is exactly what [`HeadScanner::find_end`] delimited).
pub fn parse_head(head: &[u8], limits: &Limits) -> Result<RequestHead, ParseError> {
    // On the stack for the default limit, and left uninitialised (httparse writes the slots
    // it uses): a heap array of 100 headers (3.2 KiB) cost a slow-path malloc per request,
    // an initialised one a 3.2 KiB memset.
    let mut on_stack = [const { MaybeUninit::<httparse::Header>::uninit() }; STACK_HEADERS];
    let mut on_heap = Vec::new();
    let storage = if limits.max_headers <= STACK_HEADERS {
        &mut on_stack[..limits.max_headers]
    } else {
        on_heap.resize_with(limits.max_headers, MaybeUninit::uninit);
        &mut on_heap[..]
    };
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(head, storage) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Ok(_) => return Err(ParseError::BadRequest("incomplete request head")),
        Err(httparse::Error::TooManyHeaders) => return Err(ParseError::HeaderTooLarge),
        Err(httparse::Error::Version) => {
            return Err(ParseError::BadRequest("unsupported HTTP version"))
        }
        Err(httparse::Error::HeaderName) | Err(httparse::Error::HeaderValue) => {
            return Err(ParseError::BadRequest(
                "invalid header field (obs-fold or forbidden characters)",
            ))
        }
        Err(_) => return Err(ParseError::BadRequest("invalid request line or header")),
    }
    let method = method_from(req.method.unwrap_or(""))?;
    let version_minor = req.version.unwrap_or(1);
    let (path, query) = split_target(req.path.unwrap_or(""))?;

    let mut headers = Vec::with_capacity(req.headers.len());
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut te_seen = false;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut expect_continue = false;
    let mut host_seen = false;
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        match name.as_str() {
            // RFC 9112 §3.2: a request with more than one Host field is answered 400 (two
            // hosts are a classic way to make a proxy and its upstream disagree).
            "host" => {
                if host_seen {
                    return Err(ParseError::BadRequest("duplicate Host"));
                }
                host_seen = true;
            }
            "content-length" => {
                if content_length.is_some() {
                    return Err(ParseError::BadRequest("duplicate Content-Length"));
                }
                content_length = Some(parse_content_length(h.value)?);
            }
            "transfer-encoding" => {
                if te_seen {
                    return Err(ParseError::BadRequest("duplicate Transfer-Encoding"));
                }
                te_seen = true;
                if !trim_ows(h.value).eq_ignore_ascii_case(b"chunked") {
                    return Err(ParseError::BadRequest(
                        "Transfer-Encoding other than chunked",
                    ));
                }
                chunked = true;
            }
            "connection" => {
                for token in h.value.split(|&b| b == b',') {
                    let token = trim_ows(token);
                    if token.eq_ignore_ascii_case(b"close") {
                        conn_close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        conn_keep_alive = true;
                    }
                }
            }
            // Other expectations are ignored: RFC 9110 allows a server to, and refusing them
            // would break nothing but also help nobody.
            "expect" if trim_ows(h.value).eq_ignore_ascii_case(b"100-continue") => {
                expect_continue = version_minor == 1;
            }
            _ => {}
        }
        headers.push((name, h.value.to_vec()));
    }
    let framing = match (content_length, chunked) {
        (Some(_), true) => {
            return Err(ParseError::BadRequest(
                "both Content-Length and Transfer-Encoding",
            ))
        }
        (_, true) if version_minor == 0 => {
            return Err(ParseError::BadRequest(
                "Transfer-Encoding in an HTTP/1.0 request",
            ))
        }
        (_, true) => Framing::Chunked,
        (Some(n), false) if n > limits.max_body_bytes => {
            return Err(ParseError::PayloadTooLarge {
                limit: limits.max_body_bytes,
            })
        }
        (Some(0), false) | (None, false) => Framing::Empty,
        (Some(n), false) => Framing::Length(n),
    };
    let keep_alive = if version_minor == 0 {
        conn_keep_alive && !conn_close
    } else {
        !conn_close
    };
    Ok(RequestHead {
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        version_minor,
        keep_alive,
        framing,
        expect_continue: expect_continue && framing != Framing::Empty,
    })
}

/// Longest accepted chunk-size line extension (`;name=value`), to bound per-chunk work.
const MAX_CHUNK_EXT: usize = 1024;
/// Longest accepted trailer section.
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading hex digits of a chunk size.
    Size {
        digits: u8,
    },
    /// Inside a chunk extension (after `;` or whitespace), up to CR.
    Ext {
        len: usize,
    },
    /// Expecting the LF that ends a chunk-size line.
    SizeLf,
    /// Copying chunk data.
    Data,
    /// Expecting CR then LF after chunk data.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    TrailerLine,
    TrailerLf,
    FinalLf,
    Done,
}

/// Incremental `Transfer-Encoding: chunked` decoder. Feed it bytes as they arrive; it appends
/// the de-chunked body to `out`, reports how many input bytes it consumed and whether the
/// body is complete. Bytes after the end belong to the next (pipelined) request and are left
/// unconsumed.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: ChunkState,
    size: u64,
    remaining: u64,
    trailer_bytes: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: ChunkState::Size { digits: 0 },
            size: 0,
            remaining: 0,
            trailer_bytes: 0,
        }
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes from `input`; returns `(consumed, done)`.
    pub fn feed(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max_body: u64,
    ) -> Result<(usize, bool), ParseError> {
        const BAD_SIZE: ParseError = ParseError::BadRequest("invalid chunk size");
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                ChunkState::Size { digits } => {
                    if let Some(d) = (b as char).to_digit(16) {
                        // 16 hex digits is the whole u64 range; more is an overflow attempt.
                        if digits >= 16 {
                            return Err(BAD_SIZE);
                        }
                        self.size = (self.size << 4) | u64::from(d);
                        self.state = ChunkState::Size { digits: digits + 1 };
                    } else if digits == 0 {
                        return Err(BAD_SIZE);
                    } else if b == b'\r' {
                        self.state = ChunkState::SizeLf;
                    } else if matches!(b, b';' | b' ' | b'\t') {
                        self.state = ChunkState::Ext { len: 1 };
                    } else {
                        return Err(BAD_SIZE);
                    }
                    i += 1;
                }
                ChunkState::Ext { len } => {
                    if b == b'\r' {
                        self.state = ChunkState::SizeLf;
                    } else if b == b'\n' || (b < 0x20 && b != b'\t') || b == 0x7f {
                        return Err(ParseError::BadRequest("invalid chunk extension"));
                    } else if len >= MAX_CHUNK_EXT {
                        return Err(ParseError::BadRequest("chunk extension too long"));
                    } else {
                        self.state = ChunkState::Ext { len: len + 1 };
                    }
                    i += 1;
                }
                ChunkState::SizeLf => {
                    if b != b'\n' {
                        return Err(BAD_SIZE);
                    }
                    i += 1;
                    if self.size == 0 {
                        self.state = ChunkState::TrailerStart;
                    } else {
                        if (out.len() as u64).saturating_add(self.size) > max_body {
                            return Err(ParseError::PayloadTooLarge { limit: max_body });
                        }
                        self.remaining = self.size;
                        self.size = 0;
                        self.state = ChunkState::Data;
                    }
                }
                ChunkState::Data => {
                    let take = (input.len() - i).min(self.remaining as usize);
                    out.extend_from_slice(&input[i..i + take]);
                    i += take;
                    self.remaining -= take as u64;
                    if self.remaining == 0 {
                        self.state = ChunkState::DataCr;
                    }
                }
                ChunkState::DataCr => {
                    if b != b'\r' {
                        return Err(ParseError::BadRequest("chunk data longer than its size"));
                    }
                    self.state = ChunkState::DataLf;
                    i += 1;
                }
                ChunkState::DataLf => {
                    if b != b'\n' {
                        return Err(ParseError::BadRequest("chunk data longer than its size"));
                    }
                    self.state = ChunkState::Size { digits: 0 };
                    i += 1;
                }
                ChunkState::TrailerStart | ChunkState::TrailerLine => {
                    self.trailer_bytes += 1;
                    if self.trailer_bytes > MAX_TRAILERS {
                        return Err(ParseError::HeaderTooLarge);
                    }
                    if b == b'\r' {
                        self.state = if self.state == ChunkState::TrailerStart {
                            ChunkState::FinalLf
                        } else {
                            ChunkState::TrailerLf
                        };
                    } else if b == b'\n' {
                        return Err(ParseError::BadRequest("bare LF in chunked trailer"));
                    } else if self.state == ChunkState::TrailerStart && matches!(b, b' ' | b'\t') {
                        return Err(ParseError::BadRequest("obs-fold in chunked trailer"));
                    } else {
                        self.state = ChunkState::TrailerLine;
                    }
                    i += 1;
                }
                ChunkState::TrailerLf => {
                    if b != b'\n' {
                        return Err(ParseError::BadRequest("bare CR in chunked trailer"));
                    }
                    self.state = ChunkState::TrailerStart;
                    i += 1;
                }
                ChunkState::FinalLf => {
                    if b != b'\n' {
                        return Err(ParseError::BadRequest(
                            "bare CR at the end of a chunked body",
                        ));
                    }
                    self.state = ChunkState::Done;
                    return Ok((i + 1, true));
                }
                ChunkState::Done => return Ok((i, true)),
            }
        }
        Ok((i, self.state == ChunkState::Done))
    }
}

/// Parses a whole request from one buffer (head and body). The server does the same thing
/// incrementally over reads; this form is what the unit, property and fuzz tests drive, and it
/// must agree with the server's incremental path.
///
/// Returns the request head, its body and the bytes consumed, or `Ok(None)` when more bytes
/// are needed.
pub fn parse_request(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(RequestHead, Vec<u8>, usize)>, ParseError> {
    let mut scanner = HeadScanner::new();
    let Some(head_len) = scanner.find_end(buf, limits)? else {
        return Ok(None);
    };
    let head = parse_head(&buf[..head_len], limits)?;
    let rest = &buf[head_len..];
    match head.framing {
        Framing::Empty => Ok(Some((head, Vec::new(), head_len))),
        Framing::Length(n) => {
            let n = n as usize;
            if rest.len() < n {
                return Ok(None);
            }
            let body = rest[..n].to_vec();
            Ok(Some((head, body, head_len + n)))
        }
        Framing::Chunked => {
            let mut dec = ChunkedDecoder::new();
            let mut body = Vec::new();
            let (used, done) = dec.feed(rest, &mut body, limits.max_body_bytes)?;
            if !done {
                return Ok(None);
            }
            Ok(Some((head, body, head_len + used)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lim() -> Limits {
        Limits {
            max_body_bytes: 1024,
            ..Limits::default()
        }
    }

    fn parse(s: &[u8]) -> Result<Option<(RequestHead, Vec<u8>, usize)>, ParseError> {
        parse_request(s, &lim())
    }

    fn err(s: &[u8]) -> ParseError {
        parse(s).expect_err("must be rejected")
    }

    #[test]
    fn simple_get_with_query_and_headers() {
        let (h, body, n) = parse(
            b"GET /indexes/movies/search?q=a&b=c HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.method, Method::Get);
        assert_eq!(h.path, "/indexes/movies/search");
        assert_eq!(h.query, "q=a&b=c");
        assert_eq!(h.headers[1], ("x-request-id".to_string(), b"abc".to_vec()));
        assert!(h.keep_alive);
        assert_eq!(h.framing, Framing::Empty);
        assert!(body.is_empty());
        assert_eq!(n, 75);
    }

    #[test]
    fn incomplete_inputs_need_more() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap(), None);
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab").unwrap(),
            None
        );
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab").unwrap(),
            None
        );
    }

    #[test]
    fn content_length_body_and_pipelined_rest() {
        let input = b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\n\r\n";
        let (h, body, n) = parse(input).unwrap().unwrap();
        assert_eq!((h.method, body.as_slice()), (Method::Post, &b"abc"[..]));
        let (h2, _, n2) = parse(&input[n..]).unwrap().unwrap();
        assert_eq!(h2.path, "/b");
        assert_eq!(n + n2, input.len());
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers() {
        let input = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
                      3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
        let (h, body, n) = parse(input).unwrap().unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        assert_eq!(body, b"abc0123456789");
        assert_eq!(&input[n..], b"NEXT");
    }

    #[test]
    fn chunked_decoder_accepts_any_split() {
        let wire = b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n";
        for split in 0..wire.len() {
            let mut d = ChunkedDecoder::new();
            let mut out = Vec::new();
            let (a, done_a) = d.feed(&wire[..split], &mut out, 100).unwrap();
            assert_eq!(a, split);
            assert!(!done_a);
            let (b, done_b) = d.feed(&wire[split..], &mut out, 100).unwrap();
            assert!(done_b);
            assert_eq!(a + b, wire.len());
            assert_eq!(out, b"Wikipedia");
        }
    }

    #[test]
    fn http10_keep_alive_rules() {
        let (h, ..) = parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive);
        let (h, ..) = parse(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive);
        let (h, ..) = parse(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        let (h, ..) = parse(b"GET / HTTP/1.1\r\nConnection: foo, Close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
    }

    #[test]
    fn expect_continue_only_with_a_body_on_http11() {
        let (h, ..) =
            parse(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx")
                .unwrap()
                .unwrap();
        assert!(h.expect_continue);
        let (h, ..) = parse(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.expect_continue);
        let (h, ..) =
            parse(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx")
                .unwrap()
                .unwrap();
        assert!(!h.expect_continue);
    }

    #[test]
    fn absolute_form_and_asterisk_targets() {
        let (h, ..) = parse(b"GET http://miroir:7700/health?x=1 HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((h.path.as_str(), h.query.as_str()), ("/health", "x=1"));
        let (h, ..) = parse(b"GET http://miroir:7700 HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.path, "/");
        let (h, ..) = parse(b"OPTIONS * HTTP/1.1\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.path, "*");
    }

    #[test]
    fn leading_empty_lines_are_tolerated() {
        let (h, _, n) = parse(b"\r\nGET /x HTTP/1.1\r\n\r\n").unwrap().unwrap();
        assert_eq!((h.path.as_str(), n), ("/x", 21));
    }

    #[test]
    fn smuggling_shapes_are_rejected() {
        let bad = |s: &[u8]| matches!(err(s), ParseError::BadRequest(_));
        assert!(bad(
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        assert!(bad(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
        ));
        assert!(bad(
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"
        ));
        assert!(bad(
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
        ));
        assert!(bad(b"POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc"));
        assert!(bad(b"POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc"));
        assert!(bad(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"));
        assert!(bad(b"POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n"));
        assert!(bad(
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n"
        ));
        assert!(bad(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        ));
        assert!(bad(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n"
        ));
        assert!(bad(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        assert!(bad(
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ));
        // bare LF: in the request line, between headers, as the final empty line
        assert!(bad(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.1\nHost: x\r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.1\r\nHost: x\n\r\n"));
        assert!(bad(b"GET / HTTP/1.1\r\nHost: x\r\n\n"));
        // obs-fold
        assert!(bad(b"GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n"));
        assert!(bad(b"GET / HTTP/1.1\r\nX-A: a\r\n\tb\r\n\r\n"));
        // whitespace before the colon
        assert!(bad(b"GET / HTTP/1.1\r\nContent-Length : 3\r\n\r\nabc"));
        // malformed request lines
        assert!(bad(b"GET\r\n\r\n"));
        assert!(bad(b"GET / HTTP/2.0\r\n\r\n"));
        assert!(bad(b"GET / FOO/1.1\r\n\r\n"));
        assert!(bad(b"GET  / HTTP/1.1\r\n\r\n"));
        assert!(bad(b"GET relative HTTP/1.1\r\n\r\n"));
        assert!(bad(b"GET /a#frag HTTP/1.1\r\n\r\n"));
        assert!(bad(b"\x00\x01\x02 / HTTP/1.1\r\n\r\n"));
    }

    #[test]
    fn invalid_chunk_sizes_are_rejected() {
        let chunked = |body: &[u8]| {
            let mut s = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            s.extend_from_slice(body);
            parse(&s)
        };
        for body in [
            &b"x\r\n"[..],
            b"-1\r\n",
            b"+1\r\n",
            b"0x3\r\nabc\r\n0\r\n\r\n",
            b"\r\n",
            b"3\nabc\r\n0\r\n\r\n",
            b"3\r\nabcd\r\n0\r\n\r\n",
            b"3\r\nabc\n0\r\n\r\n",
            b"10000000000000000\r\n",
            b"3;a\nb\r\nabc\r\n0\r\n\r\n",
            b"0\r\n\n",
            b"0\r\nX: a\n\r\n",
            b"0\r\n b\r\n\r\n",
        ] {
            assert!(
                matches!(chunked(body), Err(ParseError::BadRequest(_))),
                "{:?} should be rejected, got {:?}",
                String::from_utf8_lossy(body),
                chunked(body)
            );
        }
    }

    #[test]
    fn limits_give_414_431_413() {
        let long_target = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000));
        assert_eq!(err(long_target.as_bytes()), ParseError::UriTooLong);
        // No line end yet but already past the request-line limit: refuse without waiting.
        assert_eq!(
            err(format!("GET /{}", "a".repeat(9000)).as_bytes()),
            ParseError::UriTooLong
        );

        let big_header = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "b".repeat(17000));
        assert_eq!(err(big_header.as_bytes()), ParseError::HeaderTooLarge);
        let partial_big = format!("GET / HTTP/1.1\r\nX-Big: {}", "b".repeat(17000));
        assert_eq!(err(partial_big.as_bytes()), ParseError::HeaderTooLarge);

        let mut many = String::from("GET / HTTP/1.1\r\n");
        for i in 0..101 {
            many.push_str(&format!("X-H{i}: v\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(err(many.as_bytes()), ParseError::HeaderTooLarge);

        assert_eq!(
            err(b"POST / HTTP/1.1\r\nContent-Length: 1025\r\n\r\n"),
            ParseError::PayloadTooLarge { limit: 1024 }
        );
        let mut chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        chunked.extend_from_slice(b"400\r\n");
        chunked.extend_from_slice(&[b'a'; 1024]);
        chunked.extend_from_slice(b"\r\n1\r\n");
        assert_eq!(
            parse(&chunked),
            Err(ParseError::PayloadTooLarge { limit: 1024 })
        );
    }

    #[test]
    fn unknown_methods_are_405() {
        assert_eq!(
            err(b"TRACE / HTTP/1.1\r\n\r\n"),
            ParseError::MethodNotAllowed
        );
        assert_eq!(err(b"get / HTTP/1.1\r\n\r\n"), ParseError::MethodNotAllowed);
    }

    #[test]
    fn errors_map_to_meilisearch_codes() {
        assert_eq!(ParseError::BadRequest("x").to_meili().status(), 400);
        assert_eq!(ParseError::UriTooLong.to_meili().status(), 414);
        assert_eq!(ParseError::HeaderTooLarge.to_meili().status(), 431);
        let e = ParseError::PayloadTooLarge {
            limit: 100 * 1024 * 1024,
        }
        .to_meili();
        assert_eq!(e.status(), 413);
        assert_eq!(e.code.code(), "payload_too_large");
        assert!(e.message.ends_with("is 100 MiB."), "{}", e.message);
        assert_eq!(ParseError::MethodNotAllowed.to_meili().status(), 405);
    }

    fn encode_chunked(body: &[u8], sizes: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = body;
        let mut k = 0;
        while !rest.is_empty() {
            let n = sizes[k % sizes.len()].clamp(1, rest.len());
            k += 1;
            out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
            out.extend_from_slice(&rest[..n]);
            out.extend_from_slice(b"\r\n");
            rest = &rest[n..];
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    }

    proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn never_panics_on_mutated_valid_requests(
            pos in 0usize..120, byte in any::<u8>(), cut in 0usize..130,
        ) {
            let mut s = b"POST /indexes/a/documents?x=1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec();
            let p = pos % s.len();
            s[p] = byte;
            s.truncate(cut.min(s.len()));
            let _ = parse(&s);
        }

        #[test]
        fn chunked_round_trips_under_any_split(
            body in proptest::collection::vec(any::<u8>(), 0..600),
            sizes in proptest::collection::vec(1usize..70, 1..5),
            split in 0usize..2000,
        ) {
            let wire = encode_chunked(&body, &sizes);
            let split = split % (wire.len() + 1);
            let mut d = ChunkedDecoder::new();
            let mut out = Vec::new();
            let (a, _) = d.feed(&wire[..split], &mut out, 1024).unwrap();
            prop_assert_eq!(a, split);
            let (b, done) = d.feed(&wire[split..], &mut out, 1024).unwrap();
            prop_assert!(done);
            prop_assert_eq!(a + b, wire.len());
            prop_assert_eq!(out, body);
        }

        #[test]
        fn pipelined_requests_parse_in_order(bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..50), 1..6)) {
            let mut wire = Vec::new();
            for (i, b) in bodies.iter().enumerate() {
                if i % 2 == 0 {
                    wire.extend_from_slice(format!("POST /r{i} HTTP/1.1\r\nContent-Length: {}\r\n\r\n", b.len()).as_bytes());
                    wire.extend_from_slice(b);
                } else {
                    wire.extend_from_slice(format!("PUT /r{i} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").as_bytes());
                    wire.extend_from_slice(&encode_chunked(b, &[7]));
                }
            }
            let mut at = 0;
            for (i, b) in bodies.iter().enumerate() {
                let (h, body, n) = parse(&wire[at..]).unwrap().unwrap();
                prop_assert_eq!(h.path, format!("/r{i}"));
                prop_assert_eq!(&body, b);
                at += n;
            }
            prop_assert_eq!(at, wire.len());
        }
    }
}
