//! The upstream client against scripted loopback upstreams (std threads speaking raw HTTP),
//! on each available I/O backend.

mod transport_support;

use miroir_runtime::http::client::ClientSettings;
use miroir_runtime::http::client::{join_all, SendOptions, Upstream, UpstreamClient};
use miroir_runtime::http::types::{Method, Request, UpstreamError};
use miroir_runtime::metrics::{CoreMetrics, MetricsRegistry};
use miroir_runtime::reactor::block_on;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;
use transport_support::{backends, kind};

/// What a scripted upstream connection does, in order.
#[derive(Clone)]
enum Step {
    /// Read one request (head + Content-Length body) and record it.
    Read,
    Write(&'static [u8]),
    /// Close the connection and report it on the channel.
    Close,
    /// Keep the connection open without answering until the client goes away.
    Hang,
}

struct Fake {
    addr: SocketAddr,
    thread: JoinHandle<Vec<String>>,
    closed: mpsc::Receiver<()>,
}

/// Serves `scripts.len()` connections, the i-th running `scripts[i]`; returns the requests
/// it read.
fn fake_upstream(scripts: Vec<Vec<Step>>) -> Fake {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, closed) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for script in scripts {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = Vec::new();
            for step in script {
                match step {
                    Step::Read => seen.push(read_request(&mut s, &mut buf)),
                    Step::Write(b) => s.write_all(b).unwrap(),
                    Step::Close => {
                        drop(s);
                        let _ = tx.send(());
                        break;
                    }
                    Step::Hang => {
                        let mut sink = [0u8; 64];
                        while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
                        break;
                    }
                }
            }
        }
        seen
    });
    Fake {
        addr,
        thread,
        closed,
    }
}

fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> String {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            let cl = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length: ")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + cl {
                let req = String::from_utf8_lossy(&buf[..end + 4 + cl]).into_owned();
                buf.drain(..end + 4 + cl);
                return req;
            }
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "client closed mid-request");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn client() -> (UpstreamClient, Rc<CoreMetrics>) {
    let metrics = CoreMetrics::new(0, MetricsRegistry::new(1, "test"));
    (
        UpstreamClient::new(ClientSettings::default(), metrics.clone()),
        metrics,
    )
}

fn get(path: &str) -> Request {
    Request {
        method: Method::Get,
        path: path.into(),
        query: String::new(),
        headers: vec![],
        body: vec![],
    }
}

fn post(path: &str, body: &[u8]) -> Request {
    Request {
        method: Method::Post,
        path: path.into(),
        query: String::new(),
        headers: vec![("content-type".into(), b"application/json".to_vec())],
        body: body.to_vec(),
    }
}

const T: Duration = Duration::from_secs(10);
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

#[test]
fn framings_on_one_pooled_connection() {
    for io in backends() {
        let fake = fake_upstream(vec![vec![
            Step::Read,
            Step::Write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Node: a\r\n\r\nhello"),
            Step::Read,
            Step::Write(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n"),
            Step::Read,
            Step::Write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}"),
            Step::Read,
            Step::Write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close"),
            Step::Close,
        ]]);
        let up = Upstream::tcp(&fake.addr.to_string());
        block_on(kind(io), async {
            let (c, _) = client();
            let r = c.send(&up, get("/a"), T).await.unwrap();
            assert_eq!(
                (r.status, r.body.as_slice(), r.header("x-node")),
                (200, &b"hello"[..], Some(&b"a"[..]))
            );
            assert!(
                r.header("content-length").is_none(),
                "framing headers are not relayed"
            );
            assert_eq!(c.pool().idle_count(&up), 1);
            let r = c.send(&up, post("/b", b"{\"q\":1}"), T).await.unwrap();
            assert_eq!((r.status, r.body.as_slice()), (201, &b"Wikipedia"[..]));
            assert!(r.header("transfer-encoding").is_none());
            let r = c.send(&up, get("/c"), T).await.unwrap();
            assert_eq!((r.status, r.body.as_slice()), (202, &b"{}"[..]));
            let r = c.send(&up, get("/d"), T).await.unwrap();
            assert_eq!(r.body, b"until close");
            assert_eq!(
                c.pool().idle_count(&up),
                0,
                "a close-delimited connection is not pooled"
            );
        })
        .unwrap();
        let seen = fake.thread.join().unwrap();
        assert_eq!(seen.len(), 4, "all four requests used the one connection");
        assert!(seen[1].starts_with("POST /b HTTP/1.1\r\nhost: "));
        assert!(seen[1].ends_with("content-length: 7\r\n\r\n{\"q\":1}"));
    }
}

/// Answers of several KiB take the connection's read buffer as their body (no copy) and the
/// connection continues with another buffer: each answer arrives whole, in order.
#[test]
fn large_answers_take_the_read_buffer_and_the_connection_goes_on() {
    let answer = |fill: u8, len: usize| -> &'static [u8] {
        let mut a = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n").into_bytes();
        a.resize(a.len() + len, fill);
        Box::leak(a.into_boxed_slice())
    };
    for io in backends() {
        let fake = fake_upstream(vec![vec![
            Step::Read,
            Step::Write(answer(b'a', 8 * 1024)),
            Step::Read,
            Step::Write(answer(b'b', 20 * 1024)),
            Step::Read,
            Step::Write(OK),
        ]]);
        let up = Upstream::tcp(&fake.addr.to_string());
        block_on(kind(io), async {
            let (c, _) = client();
            let r = c.send(&up, get("/a"), T).await.unwrap();
            assert_eq!(r.body.len(), 8 * 1024);
            assert!(r.body.iter().all(|&b| b == b'a'));
            let r = c.send(&up, get("/b"), T).await.unwrap();
            assert_eq!(r.body.len(), 20 * 1024);
            assert!(r.body.iter().all(|&b| b == b'b'));
            assert_eq!(r.body.clone().into_vec().len(), 20 * 1024);
            let r = c.send(&up, get("/c"), T).await.unwrap();
            assert_eq!(r.body, b"ok");
            assert_eq!(c.pool().idle_count(&up), 1);
        })
        .unwrap();
        assert_eq!(
            fake.thread.join().unwrap().len(),
            3,
            "one connection throughout"
        );
    }
}

#[test]
fn stale_pooled_connection_retries_only_when_safe() {
    for io in backends() {
        // Connection 0 answers once, then reads the next request and closes without answering
        // (as a node restarting would). Connection 1 answers normally.
        let script = || {
            vec![
                vec![Step::Read, Step::Write(OK), Step::Read, Step::Close],
                vec![
                    Step::Read,
                    Step::Write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok2"),
                ],
            ]
        };
        let fake = fake_upstream(script());
        let up = Upstream::tcp(&fake.addr.to_string());
        block_on(kind(io), async {
            let (c, m) = client();
            assert_eq!(c.send(&up, get("/1"), T).await.unwrap().body, b"ok");
            // Replayable GET: retried once on a fresh connection.
            assert_eq!(c.send(&up, get("/2"), T).await.unwrap().body, b"ok2");
            assert!(m
                .render_prometheus()
                .contains("miroir_upstream_retries_total 1"));
        })
        .unwrap();
        fake.thread.join().unwrap();

        let fake = fake_upstream(script());
        let up = Upstream::tcp(&fake.addr.to_string());
        block_on(kind(io), async {
            let (c, m) = client();
            assert_eq!(c.send(&up, get("/1"), T).await.unwrap().body, b"ok");
            // A write may have been received: not replayed.
            let err = c
                .send(&up, post("/indexes/a/documents", b"[]"), T)
                .await
                .unwrap_err();
            assert!(matches!(err, UpstreamError::Io(_)), "{err:?}");
            assert!(m
                .render_prometheus()
                .contains("miroir_upstream_retries_total 0"));
            // The same POST marked replayable (a search) is retried.
            let ok = c
                .send_with(
                    &up,
                    post("/indexes/a/search", b"{}"),
                    SendOptions::new(T).replayable(true),
                )
                .await;
            // Connection 1 of the script answers it.
            assert_eq!(ok.unwrap().body, b"ok2");
        })
        .unwrap();
        fake.thread.join().unwrap();
    }
}

#[test]
fn closed_idle_connection_is_discarded_before_use() {
    for io in backends() {
        let fake = fake_upstream(vec![
            vec![Step::Read, Step::Write(OK), Step::Close],
            vec![Step::Read, Step::Write(OK)],
        ]);
        let up = Upstream::tcp(&fake.addr.to_string());
        block_on(kind(io), async {
            let (c, m) = client();
            c.send(&up, get("/1"), T).await.unwrap();
            fake.closed.recv().unwrap();
            // Wait until the FIN is visible to the pool's liveness check.
            while c.pool().idle_count(&up) > 0 {
                if let Some(p) = c.pool().take(&up) {
                    c.pool().put(&up, p);
                    monoio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            // A non-replayable write goes out on a fresh connection, no retry involved.
            let r = c
                .send(&up, post("/indexes/a/documents", b"[]"), T)
                .await
                .unwrap();
            assert_eq!(r.body, b"ok");
            assert!(m
                .render_prometheus()
                .contains("miroir_upstream_retries_total 0"));
        })
        .unwrap();
        fake.thread.join().unwrap();
    }
}

#[test]
fn deadline_size_cap_and_connect_errors() {
    for io in backends() {
        let fake = fake_upstream(vec![
            vec![Step::Read, Step::Hang],
            vec![
                Step::Read,
                Step::Write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
            ],
            vec![
                Step::Read,
                Step::Write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n80\r\n"),
                Step::Hang,
            ],
            vec![
                Step::Read,
                Step::Write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            ],
        ]);
        let up = Upstream::tcp(&fake.addr.to_string());
        let refused = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            Upstream::tcp(&l.local_addr().unwrap().to_string())
        };
        block_on(kind(io), async {
            let (c, m) = client();
            let e = c
                .send(&up, get("/hang"), Duration::from_millis(100))
                .await
                .unwrap_err();
            assert_eq!(e, UpstreamError::Timeout);
            let small = SendOptions {
                max_response_bytes: Some(100),
                ..SendOptions::new(T)
            };
            assert_eq!(
                c.send_with(&up, get("/big"), small).await.unwrap_err(),
                UpstreamError::TooLarge
            );
            assert_eq!(
                c.send_with(&up, get("/big-chunked"), small)
                    .await
                    .unwrap_err(),
                UpstreamError::TooLarge
            );
            assert!(matches!(
                c.send(&up, get("/bad"), T).await.unwrap_err(),
                UpstreamError::Protocol(_)
            ));
            assert!(matches!(
                c.send(&refused, get("/"), T).await.unwrap_err(),
                UpstreamError::Connect(_)
            ));
            let text = m.render_prometheus();
            assert!(text.contains("error_type=\"timeout\"} 1"), "{text}");
            assert!(text.contains("error_type=\"too_large\"} 2"), "{text}");
            assert!(text.contains("error_type=\"connect\"} 1"), "{text}");
        })
        .unwrap();
        fake.thread.join().unwrap();
    }
}

#[test]
fn unix_socket_upstream_and_host_names() {
    for io in backends() {
        let path =
            std::env::temp_dir().join(format!("miroir-client-{}-{io:?}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
            String::from_utf8(got).unwrap()
        });
        let fake = fake_upstream(vec![vec![Step::Read, Step::Write(OK)]]);
        let by_name = Upstream::tcp(&format!("localhost:{}", fake.addr.port()));
        block_on(kind(io), async {
            let (c, _) = client();
            let r = c
                .send(&Upstream::unix(&path), get("/_internal/v1/heartbeat"), T)
                .await
                .unwrap();
            assert_eq!(r.status, 204);
            // Resolved through the blocking pool, not on the reactor.
            let r = c.send(&by_name, get("/n"), T).await.unwrap();
            assert_eq!(r.body, b"ok");
        })
        .unwrap();
        assert!(server
            .join()
            .unwrap()
            .starts_with("GET /_internal/v1/heartbeat HTTP/1.1\r\nhost: localhost\r\n"));
        fake.thread.join().unwrap();
        let _ = std::fs::remove_file(&path);
    }
}

#[test]
fn concurrent_fan_out_with_join_all() {
    for io in backends() {
        // Each upstream waits until all three requests arrived before answering: only a
        // concurrent fan-out can complete.
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(3));
        let mut fakes = Vec::new();
        for i in 0..3u8 {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let b = barrier.clone();
            let t = std::thread::spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = Vec::new();
                read_request(&mut s, &mut buf);
                b.wait();
                let body = format!("n{i}");
                s.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .unwrap();
            });
            fakes.push((Upstream::tcp(&addr.to_string()), t));
        }
        block_on(kind(io), async {
            let (c, m) = client();
            let calls = fakes
                .iter()
                .map(|(up, _)| c.send(up, post("/indexes/a/search", b"{}"), T));
            let results = join_all(calls).await;
            let bodies: Vec<_> = results.into_iter().map(|r| r.unwrap().body).collect();
            assert_eq!(bodies, vec![b"n0".to_vec(), b"n1".to_vec(), b"n2".to_vec()]);
            m.record_fan_out(3);
        })
        .unwrap();
        for (_, t) in fakes {
            t.join().unwrap();
        }
    }
}
