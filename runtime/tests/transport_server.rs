//! The HTTP/1.1 server end to end: real reactors on loopback, raw bytes in, raw bytes out.
//! Every test runs on each available I/O backend (epoll, and io_uring when allowed).

mod transport_support;

use transport_support::{backends, Client, TestServer};

#[test]
fn keep_alive_and_request_ids() {
    for io in backends() {
        let srv = TestServer::start(io, |_| {});
        let mut c = srv.connect();
        c.send(b"GET /a?x=1 HTTP/1.1\r\nHost: t\r\nX-Request-Id: client-id-1\r\n\r\n");
        let r = c.reply().unwrap();
        assert_eq!(r.status, 200);
        assert!(!r.close);
        assert_eq!(r.header("x-request-id").as_deref(), Some("client-id-1"));
        let j = r.json();
        assert_eq!(
            (
                j["method"].as_str(),
                j["path"].as_str(),
                j["query"].as_str()
            ),
            (Some("GET"), Some("/a"), Some("x=1"))
        );
        assert_eq!(j["requestId"], "client-id-1");

        // Same connection, no id: one is generated and echoed.
        c.send(b"GET /b HTTP/1.1\r\nHost: t\r\nX-Request-Id: has space\r\n\r\n");
        let r = c.reply().unwrap();
        let id = r.header("x-request-id").unwrap();
        assert_ne!(id, "has space");
        assert_eq!(r.json()["requestId"], id.as_str());
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    for io in backends() {
        let srv = TestServer::start(io, |_| {});
        let mut c = srv.connect();
        // One write: a slow request first, then two fast ones; order must hold.
        c.send(
            b"GET /slow?ms=50 HTTP/1.1\r\nHost: t\r\n\r\n\
              POST /p2 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc\
              PUT /p3 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n\
              GET /p4 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        );
        let r1 = c.reply().unwrap();
        assert_eq!(r1.json()["slow"], true);
        let r2 = c.reply().unwrap().json();
        assert_eq!(
            (r2["path"].as_str(), r2["body"].as_str()),
            (Some("/p2"), Some("abc"))
        );
        let r3 = c.reply().unwrap().json();
        assert_eq!(
            (r3["path"].as_str(), r3["body"].as_str()),
            (Some("/p3"), Some("xy"))
        );
        let r4 = c.reply().unwrap();
        assert!(r4.close);
        assert_eq!(r4.json()["path"], "/p4");
        assert!(c.closed());
    }
}

#[test]
fn chunked_bodies_and_byte_by_byte_delivery() {
    for io in backends() {
        let srv = TestServer::start(io, |_| {});
        let mut c = srv.connect();
        let req = b"POST /docs HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
                    5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-T: 1\r\n\r\n";
        for b in req.iter() {
            c.send(&[*b]);
        }
        let j = c.reply().unwrap().json();
        assert_eq!(j["body"], "hello world");
        // Transfer-Encoding is consumed by the transport; the handler sees the body.
        assert_eq!(j["bodyLen"], 11);
    }
}

#[test]
fn expect_100_continue() {
    for io in backends() {
        let srv = TestServer::start(io, |_| {});
        let mut c = srv.connect();
        c.send(b"POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
        let interim = c.reply().unwrap();
        assert_eq!(interim.status, 100);
        c.send(b"body");
        let r = c.reply().unwrap();
        assert_eq!(r.json()["body"], "body");

        // Too large: refused before the client sends the body, no 100.
        let mut c = srv.connect();
        c.send(b"POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 999999999\r\n\r\n");
        c.reply().unwrap().assert_error(413, "payload_too_large");
        assert!(c.closed());
    }
}

#[test]
fn head_http10_and_connection_close() {
    for io in backends() {
        let srv = TestServer::start(io, |_| {});
        let mut c = srv.connect();
        c.send(b"HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n");
        let r = c.reply_opts(true).unwrap();
        assert_eq!(r.status, 200);
        assert!(
            r.header("content-length").is_none(),
            "framing headers are stripped by the parser"
        );
        assert!(r.body.is_empty());
        // The connection is still usable, so no body bytes were sent after the head.
        c.send(b"GET /after-head HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(c.reply().unwrap().json()["path"], "/after-head");

        let mut c = srv.connect();
        c.send(b"GET /old HTTP/1.0\r\n\r\n");
        let r = c.reply().unwrap();
        assert!(r.close);
        assert!(c.closed());

        let mut c = srv.connect();
        c.send(b"GET /old-ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(!c.reply().unwrap().close);
        c.send(b"GET /again HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(c.reply().unwrap().json()["path"], "/again");

        let mut c = srv.connect();
        c.send(b"GET /c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        assert!(c.reply().unwrap().close);
        assert!(c.closed());
    }
}

/// Each bad input gets its status and a Meilisearch-shaped body, the connection is closed,
/// and the server keeps serving.
#[test]
fn bad_input_suite() {
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "b".repeat(20_000)
    );
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "u".repeat(10_000));
    let mut many_headers = String::from("GET / HTTP/1.1\r\n");
    for i in 0..150 {
        many_headers.push_str(&format!("X-{i}: v\r\n"));
    }
    many_headers.push_str("\r\n");
    let mut big_chunked =
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..20 {
        big_chunked.extend_from_slice(b"1000\r\n");
        big_chunked.extend_from_slice(&[b'x'; 4096]);
        big_chunked.extend_from_slice(b"\r\n");
    }
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("garbage request line", b"HELLO\r\n\r\n".to_vec(), 400, "bad_request"),
        ("binary junk", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(), 400, "bad_request"),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(), 400, "bad_request"),
        ("relative target", b"GET foo HTTP/1.1\r\n\r\n".to_vec(), 400, "bad_request"),
        ("unknown method", b"TRACE / HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(), 405, "method_not_allowed"),
        ("long uri", long_uri.into_bytes(), 414, "uri_too_long"),
        ("oversized header", big_header.into_bytes(), 431, "request_header_fields_too_large"),
        ("too many headers", many_headers.into_bytes(), 431, "request_header_fields_too_large"),
        ("body over max_body_bytes", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 70000\r\n\r\n".to_vec(), 413, "payload_too_large"),
        ("chunked body over max_body_bytes", big_chunked, 413, "payload_too_large"),
        ("CL + TE", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), 400, "bad_request"),
        ("duplicate CL", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx".to_vec(), 400, "bad_request"),
        ("conflicting CL", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy".to_vec(), 400, "bad_request"),
        ("CL list", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1, 1\r\n\r\nx".to_vec(), 400, "bad_request"),
        ("TE not chunked", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(), 400, "bad_request"),
        ("TE chunked twice", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, chunked\r\n\r\n".to_vec(), 400, "bad_request"),
        ("invalid chunk size", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(), 400, "bad_request"),
        ("chunk size overflow", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n".to_vec(), 400, "bad_request"),
        ("chunk longer than size", b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxx\r\n0\r\n\r\n".to_vec(), 400, "bad_request"),
        ("bare LF", b"GET / HTTP/1.1\nHost: t\n\n".to_vec(), 400, "bad_request"),
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n  b\r\n\r\n".to_vec(), 400, "bad_request"),
        ("space before colon", b"GET / HTTP/1.1\r\nHost : t\r\n\r\n".to_vec(), 400, "bad_request"),
    ];
    for io in backends() {
        let srv = TestServer::start(io, |_| {});
        for (what, raw, status, code) in &cases {
            let mut c = srv.connect();
            c.send(raw);
            let r = c.reply().unwrap_or_else(|| panic!("{what}: no response"));
            assert_eq!(r.status, *status, "{what} ({io:?})");
            r.assert_error(*status, code);
            assert!(r.close, "{what}: must announce close");
            assert!(
                r.header("x-request-id").is_some(),
                "{what}: x-request-id on rejections too"
            );
            assert!(c.closed(), "{what}: connection must be closed");
            srv.assert_alive();
        }
    }
}

#[test]
fn non_json_bodies_reach_the_handler_untouched() {
    for io in backends() {
        let srv = TestServer::start(io, |_| {});
        let r = srv.exchange(b"POST /indexes/x/documents HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{not json");
        assert_eq!(r.json()["body"], "{not json");
    }
}

#[test]
fn slowloris_gets_408_and_idle_connections_close() {
    for io in backends() {
        let srv = TestServer::start(io, |c| {
            c.server.header_read_timeout_ms = 150;
            c.server.idle_timeout_ms = 150;
        });
        // Head never completes.
        let mut c = srv.connect();
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ");
        c.reply().unwrap().assert_error(408, "request_timeout");
        assert!(c.closed());

        // Body never completes.
        let mut c = srv.connect();
        c.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
        c.reply().unwrap().assert_error(408, "request_timeout");

        // A connection that never sends anything is dropped too.
        let mut c = srv.connect();
        assert_eq!(c.reply().map(|r| r.status), Some(408));

        // Idle keep-alive connection: closed quietly after one request.
        let mut c = srv.connect();
        c.send(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(c.reply().unwrap().status, 200);
        assert!(c.closed());
        srv.assert_alive();
    }
}

#[test]
fn connection_cap_per_core() {
    for io in backends() {
        let srv = TestServer::start(io, |c| c.server.max_connections_per_core = 1);
        let mut first = srv.connect();
        first.send(b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(first.reply().unwrap().status, 200);
        // `first` is open and idle: a second connection is over the cap.
        let mut second = srv.connect();
        second.reply().unwrap().assert_error(503, "unavailable");
        assert!(second.closed());
        // The first one still works; once it closes a new one is accepted.
        first.send(b"GET /2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        assert_eq!(first.reply().unwrap().status, 200);
        assert!(first.closed());
        let mut tries = 0;
        loop {
            // The server notices the close asynchronously; retry until the slot is free.
            let mut c = srv.connect();
            c.send(b"GET /3 HTTP/1.1\r\nHost: t\r\n\r\n");
            let r = c.reply().unwrap();
            if r.status == 200 {
                break;
            }
            tries += 1;
            assert!(tries < 1000, "connection slot never freed");
            std::thread::yield_now();
        }
    }
}

#[test]
fn handler_panic_is_a_500_not_a_dead_reactor() {
    for io in backends() {
        let srv = TestServer::start(io, |_| {});
        let r = srv.exchange(b"GET /panic HTTP/1.1\r\nHost: t\r\n\r\n");
        r.assert_error(500, "internal");
        assert!(r.close);
        srv.assert_alive();
    }
}

#[test]
fn graceful_shutdown_finishes_in_flight_requests() {
    for io in backends() {
        let srv = TestServer::start(io, |_| {});
        let mut slow = srv.connect();
        slow.send(b"GET /slow?ms=300 HTTP/1.1\r\nHost: t\r\n\r\n");
        let mut idle = srv.connect();
        idle.send(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(idle.reply().unwrap().status, 200);
        // Make sure the slow request is in the handler before shutting down: a request on a
        // third connection is answered only after the reactor picked up everything before it.
        let _ = srv.exchange(b"GET /y HTTP/1.1\r\nHost: t\r\n\r\n");
        let addr = srv.addr;
        let stopper = std::thread::spawn(move || srv.stop());
        let r = slow.reply().expect("in-flight request answered");
        assert_eq!(r.status, 200);
        assert!(r.close, "responses during shutdown announce close");
        assert!(idle.closed(), "idle keep-alive connections are closed");
        stopper.join().unwrap().expect("clean exit");
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "listener closed after shutdown"
        );
    }
}

#[test]
fn metrics_are_recorded_and_served_on_the_metrics_port() {
    for io in backends() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let srv = TestServer::start(io, |c| c.server.metrics_port = Some(port));
        srv.exchange(b"GET /slow?ms=1 HTTP/1.1\r\nHost: t\r\n\r\n");
        srv.exchange(b"GET / HTTP/1.1\nHost: t\n\n");
        let mut m = Client::connect(srv.metrics_addr.unwrap());
        m.send(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
        let r = m.reply().unwrap();
        assert_eq!(r.status, 200);
        let text = String::from_utf8(r.body).unwrap();
        assert!(
            text.contains(
                "miroir_request_duration_seconds_count{route=\"/slow\",status=\"200\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("miroir_requests_rejected_total{status=\"400\"} 1"),
            "{text}"
        );
        let backend = if io == miroir_core::config::IoBackend::IoUring {
            "io_uring"
        } else {
            "epoll"
        };
        assert!(
            text.contains(&format!("miroir_io_backend{{backend=\"{backend}\"}} 1")),
            "{text}"
        );
    }
}

#[test]
fn several_workers_share_one_port() {
    for io in backends() {
        let srv = TestServer::start(io, |c| c.server.workers = Some(2));
        for _ in 0..20 {
            srv.assert_alive();
        }
        let text = {
            let r = srv.exchange(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
            String::from_utf8(r.body).unwrap()
        };
        assert!(text.contains("miroir_reactor_cores 2"));
    }
}

#[test]
fn large_bodies_arrive_whole() {
    for io in backends() {
        let srv = TestServer::start(io, |c| c.server.max_body_bytes = 8 << 20);
        let body: Vec<u8> = (0..3 * 1024 * 1024 + 17)
            .map(|i| b'a' + (i % 26) as u8)
            .collect();
        let mut c = srv.connect();
        let mut req = format!(
            "POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(&body);
        // Written from another thread: the server only answers once it read everything.
        let mut w = c.s.try_clone().unwrap();
        let writer = std::thread::spawn(move || std::io::Write::write_all(&mut w, &req).unwrap());
        let j = c.reply().unwrap().json();
        writer.join().unwrap();
        assert_eq!(j["bodyLen"], body.len());
        assert_eq!(j["body"].as_str().unwrap().as_bytes(), &body[..]);
    }
}

#[test]
fn slowloris_on_a_keep_alive_connection_gets_408_too() {
    for io in backends() {
        let srv = TestServer::start(io, |c| c.server.header_read_timeout_ms = 150);
        let mut c = srv.connect();
        c.send(b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(c.reply().unwrap().status, 200);
        // Second request on the same connection starts and stalls.
        c.send(b"GET /2 HTTP/1.1\r\nHo");
        c.reply().unwrap().assert_error(408, "request_timeout");
        assert!(c.closed());
    }
}

#[test]
fn handlers_reach_upstreams_through_the_core_client() {
    for io in backends() {
        // An upstream that answers every request on one keep-alive connection.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let up = l.local_addr().unwrap();
        let upstream = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut s, _) = l.accept().unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            for _ in 0..3 {
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut chunk).unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                }
                let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                buf.drain(..end);
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nX-Node: n1\r\n\r\nfrom-up")
                    .unwrap();
            }
        });
        let srv = TestServer::start(io, |_| {});
        let mut c = srv.connect();
        for _ in 0..3 {
            c.send(
                format!("GET /forward HTTP/1.1\r\nHost: t\r\nX-Upstream: {up}\r\n\r\n").as_bytes(),
            );
            let r = c.reply().unwrap();
            assert_eq!((r.status, r.body.as_slice()), (200, &b"from-up"[..]));
            assert_eq!(r.header("x-node").as_deref(), Some("n1"));
        }
        // All three went over one pooled upstream connection (the fake accepts only one).
        upstream.join().unwrap();
    }
}

#[test]
fn a_body_with_head_room_is_sent_with_its_head_in_place() {
    for io in backends() {
        let srv = TestServer::start(io, |_| {});
        let mut c = srv.connect();
        // Room enough: head written into it, one send. Too little: the head is written the
        // usual way. HEAD: no body either way. The connection stays usable after each.
        for room in [512, 3, 0] {
            c.send(format!("GET /roomy?room={room} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
            let r = c.reply().unwrap();
            assert_eq!(r.status, 200, "room {room}");
            assert_eq!(r.body, b"{\"roomy\":true}", "room {room}");
            assert_eq!(
                r.header("content-type").as_deref(),
                Some("application/json")
            );
            c.send(format!("HEAD /roomy?room={room} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
            let r = c.reply_opts(true).unwrap();
            assert_eq!((r.status, r.body.len()), (200, 0), "HEAD, room {room}");
        }
        // Pipelined: two answers from head-room bodies arrive whole and in order.
        c.send(b"GET /roomy HTTP/1.1\r\nHost: t\r\n\r\nGET /a HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(c.reply().unwrap().body, b"{\"roomy\":true}");
        assert_eq!(c.reply().unwrap().json()["path"], "/a");
    }
}
