//! A small blocking HTTP/1.1 client over TCP or a Unix socket.
//!
//! Hand-written rather than `ureq` & co.: the admin's control socket is a Unix socket, tests
//! need exact control of what goes on the wire (no `Content-Type` unless asked, any method,
//! bodies on any method) and the raw body of error answers, and the kit must stay light to
//! build (docs/decisions/011-test-kit.md). One request per connection (`Connection: close`)
//! by default; [`Client::connect`] gives a keep-alive [`Connection`].

use serde_json::Value;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where a [`Client`] connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `host:port`.
    Tcp(String),
    Unix(PathBuf),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(a) => write!(f, "http://{a}"),
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A blocking HTTP/1.1 client: an endpoint plus headers sent with every request.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Endpoint,
    headers: Vec<(String, String)>,
    timeout: Duration,
}

impl Client {
    /// A client of `addr`: `host:port`, or a URL `http://host:port[/]`.
    pub fn tcp(addr: impl fmt::Display) -> Client {
        let addr = addr.to_string();
        let addr = addr.trim_start_matches("http://").trim_end_matches('/');
        Client::new(Endpoint::Tcp(addr.to_string()))
    }

    /// A client of the Unix socket at `path`.
    pub fn unix(path: impl AsRef<Path>) -> Client {
        Client::new(Endpoint::Unix(path.as_ref().to_path_buf()))
    }

    pub fn new(endpoint: Endpoint) -> Client {
        Client {
            endpoint,
            headers: Vec::new(),
            // Generous: bounds a broken test, not a timing assertion.
            timeout: Duration::from_secs(60),
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Adds a header sent with every request.
    pub fn header(mut self, name: &str, value: &str) -> Client {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Adds `Authorization: Bearer <key>`.
    pub fn bearer(self, key: &str) -> Client {
        self.header("Authorization", &format!("Bearer {key}"))
    }

    /// The read timeout of every request (60 s unless set).
    pub fn timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// One request on a fresh connection. `body` = (content type, bytes): a body always
    /// carries its `Content-Type` (even empty) and `Content-Length`; without one, methods
    /// other than GET and HEAD say `Content-Length: 0`.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> io::Result<Response> {
        self.connect()?.exchange(method, path, body, true)
    }

    /// A request with a JSON body.
    pub fn send_json(&self, method: &str, path: &str, body: &Value) -> io::Result<Response> {
        let bytes = body.to_string();
        self.send(method, path, Some(("application/json", bytes.as_bytes())))
    }

    pub fn get(&self, path: &str) -> io::Result<Response> {
        self.send("GET", path, None)
    }

    pub fn delete(&self, path: &str) -> io::Result<Response> {
        self.send("DELETE", path, None)
    }

    pub fn post_json(&self, path: &str, body: &Value) -> io::Result<Response> {
        self.send_json("POST", path, body)
    }

    /// Like [`Client::send`] with an optional JSON body; panics naming the request and
    /// endpoint when there is no response (connection refused, reset, timeout).
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Response {
        let bytes = body.map(Value::to_string);
        self.call_raw(
            method,
            path,
            bytes.as_deref().map(|b| ("application/json", b.as_bytes())),
        )
    }

    /// Like [`Client::send`]; panics naming the request and endpoint when there is no response.
    pub fn call_raw(&self, method: &str, path: &str, body: Option<(&str, &[u8])>) -> Response {
        self.send(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path} to {}: {e}", self.endpoint))
    }

    /// A keep-alive connection carrying this client's headers and timeout.
    pub fn connect(&self) -> io::Result<Connection> {
        let stream = match &self.endpoint {
            Endpoint::Tcp(addr) => {
                let s = TcpStream::connect(addr.as_str())?;
                s.set_read_timeout(Some(self.timeout))?;
                Stream::Tcp(s)
            }
            Endpoint::Unix(path) => {
                let s = UnixStream::connect(path)?;
                s.set_read_timeout(Some(self.timeout))?;
                Stream::Unix(s)
            }
        };
        Ok(Connection {
            client: self.clone(),
            reader: BufReader::new(stream),
        })
    }
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

/// One connection; requests on it are answered in order (keep-alive).
pub struct Connection {
    client: Client,
    reader: BufReader<Stream>,
}

impl Connection {
    /// A request without `Connection: close`; the connection stays usable while the server
    /// keeps it open.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> io::Result<Response> {
        self.exchange(method, path, body, false)
    }

    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
        close: bool,
    ) -> io::Result<Response> {
        let host = match &self.client.endpoint {
            Endpoint::Tcp(a) => a.as_str(),
            Endpoint::Unix(_) => "localhost",
        };
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
        if close {
            head.push_str("Connection: close\r\n");
        }
        for (n, v) in &self.client.headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        match body {
            Some((ct, b)) => head.push_str(&format!(
                "Content-Type: {ct}\r\nContent-Length: {}\r\n",
                b.len()
            )),
            None if method != "GET" && method != "HEAD" => head.push_str("Content-Length: 0\r\n"),
            None => {}
        }
        head.push_str("\r\n");
        let mut wire = head.into_bytes();
        wire.extend_from_slice(body.map(|(_, b)| b).unwrap_or_default());
        let stream = self.reader.get_mut();
        if let Err(e) = stream.write_all(&wire).and_then(|()| stream.flush()) {
            // A server may answer (413, 400) and close before reading the whole request:
            // its answer is what the test wants to see, when there is one.
            return read_response(&mut self.reader, method == "HEAD").map_err(|_| e);
        }
        read_response(&mut self.reader, method == "HEAD")
    }
}

/// A response: status, headers (names lower-cased) and the body (de-chunked).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON; panics showing the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn bad(m: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m.into())
}

/// Header lines up to the empty line: names lower-cased, values trimmed.
fn read_headers(r: &mut impl BufRead, what: &str) -> io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(bad(format!("connection closed before a complete {what}")));
        }
        let l = line.trim_end();
        if l.is_empty() {
            return Ok(headers);
        }
        let (n, v) = l
            .split_once(':')
            .ok_or_else(|| bad(format!("bad header {l:?}")))?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
}

/// One request a test's own server received (a fake provider, a webhook receiver).
#[derive(Debug, Clone)]
pub struct ServedRequest {
    pub path: String,
    /// Names lower-cased, values trimmed.
    pub headers: std::collections::BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// Reads one request framed by `Content-Length` (what Miroir's outgoing calls send); `None`
/// when the connection ends before a request line.
pub fn read_request(r: &mut impl BufRead) -> io::Result<Option<ServedRequest>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let path = line.split(' ').nth(1).unwrap_or("").to_string();
    let headers: std::collections::BTreeMap<_, _> =
        read_headers(r, "request")?.into_iter().collect();
    let len = match headers.get("content-length") {
        Some(v) => v
            .parse()
            .map_err(|_| bad(format!("bad content-length {v:?}")))?,
        None => 0,
    };
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(Some(ServedRequest {
        path,
        headers,
        body,
    }))
}

/// Reads one response framed by `Content-Length`, chunked encoding or the end of the
/// connection. A connection closed before a status line is `InvalidData`.
pub fn read_response(r: &mut impl BufRead, head_request: bool) -> io::Result<Response> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(bad("connection closed before a complete response"));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {line:?}")))?;
    let headers = read_headers(r, "response")?;
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    let mut body = Vec::new();
    if head_request || status / 100 == 1 || status == 204 || status == 304 {
        // No body, whatever the headers say.
    } else if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or("");
            let n = usize::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
            if n == 0 {
                // Trailers, up to the empty line (or the end of the connection).
                loop {
                    line.clear();
                    if r.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(cl) = get("content-length") {
        body.resize(cl.parse().map_err(|_| bad("bad content-length"))?, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::net::TcpListener;
    use std::os::unix::net::UnixListener;

    fn parse(raw: &[u8], head: bool) -> io::Result<Response> {
        read_response(&mut Cursor::new(raw.to_vec()), head)
    }

    #[test]
    fn framing_by_length_chunks_end_of_connection_and_none() {
        let r = parse(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\nhiEXTRA",
            false,
        )
        .unwrap();
        assert_eq!(
            (r.status, r.text(), r.header("x-a")),
            (200, "hi".into(), Some("b"))
        );
        let r = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(r.text(), "abcde");
        let r = parse(b"HTTP/1.1 500 Oops\r\n\r\n{\"a\":1}", false).unwrap();
        assert_eq!((r.status, r.json()), (500, serde_json::json!({"a": 1})));
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true).unwrap();
        assert!(r.body.is_empty());
        let r = parse(b"HTTP/1.1 204 No Content\r\n\r\n", false).unwrap();
        assert!(r.body.is_empty());
    }

    #[test]
    fn a_connection_closed_without_an_answer_is_invalid_data() {
        let e = parse(b"", false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let e = parse(b"HTTP/1.1 200 OK\r\nContent-", false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    /// Serves `n` requests on one accepted connection, answering each with its request head
    /// and body.
    fn echo_heads<S>(s: S, n: usize)
    where
        for<'a> &'a S: Read + Write,
    {
        let mut r = BufReader::new(&s);
        for _ in 0..n {
            let mut head = String::new();
            loop {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                if line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            head.push_str(&String::from_utf8(body).unwrap());
            write!(
                &s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{head}",
                head.len()
            )
            .unwrap();
        }
    }

    #[test]
    fn tcp_requests_carry_exactly_the_headers_asked_for() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for _ in 0..3 {
                echo_heads(l.accept().unwrap().0, 1);
            }
        });
        let c = Client::tcp(format!("http://{addr}/")).bearer("k");
        let get = c.get("/a").unwrap().text();
        assert_eq!(
            get,
            format!("GET /a HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer k\r\n")
        );
        let post = c.send("POST", "/b", None).unwrap().text();
        assert!(post.ends_with("Content-Length: 0\r\n"), "{post}");
        assert!(!post.contains("Content-Type"), "{post}");
        let json = c
            .post_json("/c", &serde_json::json!({"x": 1}))
            .unwrap()
            .text();
        assert!(
            json.ends_with("Content-Type: application/json\r\nContent-Length: 7\r\n{\"x\":1}"),
            "{json}"
        );
        server.join().unwrap();
    }

    #[test]
    fn unix_socket_and_keep_alive() {
        let dir = crate::temp_dir("http-test");
        let path = dir.path().join("s.sock");
        let l = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || echo_heads(l.accept().unwrap().0, 2));
        let mut conn = Client::unix(&path).header("X-P", "v").connect().unwrap();
        let first = conn.send("GET", "/one", None).unwrap().text();
        assert_eq!(first, "GET /one HTTP/1.1\r\nHost: localhost\r\nX-P: v\r\n");
        let second = conn.send("GET", "/two", None).unwrap().text();
        assert!(second.starts_with("GET /two "), "{second}");
        server.join().unwrap();
    }
}
