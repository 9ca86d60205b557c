//! The seam between the HTTP transport (server, client, pools — `http/`) and the proxy logic
//! (routes, scatter-gather, writes — `proxy/`). Both sides code against these types only.
//!
//! Bodies are owned buffers: monoio's I/O takes owned buffers, and a body is parsed once
//! (writes, merges) or relayed untouched (pass-through routes). A response's body is a
//! [`Body`]: its bytes may start part-way into the buffer (see [`super::body`]).

use super::body::Body;

/// An HTTP method. Anything else is answered 405/400 by the server before reaching a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
        }
    }
}

/// A fully received request (headers parsed, body de-chunked and, for routes that parse it,
/// decompressed by the transport when asked via [`Request::decoded_body`] helpers).
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// Percent-encoded path, without the query (e.g. `/indexes/movies/search`).
    pub path: String,
    /// Raw query string without `?`, empty when absent.
    pub query: String,
    /// Header names lower-cased; values raw. Order preserved; duplicates kept.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Request {
    /// First value of a header (name must be lower-case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// A response to write back (server side) or one received from an upstream (client side).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased. `content-length`, `connection`, `date` and
    /// `transfer-encoding` are managed by the transport and must not be set here.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Body,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Body::default(),
        }
    }

    pub fn json(status: u16, body: impl Into<Body>) -> Self {
        Response {
            status,
            headers: vec![("content-type".into(), b"application/json".to_vec())],
            body: body.into(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    pub fn with_header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// Why an upstream call produced no response. Each variant is a distinct operational signal
/// (metrics label `error_type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    Connect(String),
    Timeout,
    /// The peer closed or sent something that is not valid HTTP/1.1.
    Protocol(String),
    Io(String),
    /// Response exceeded the configured size limit.
    TooLarge,
}
