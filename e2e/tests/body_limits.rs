//! Request bodies cannot exhaust a data plane: a request is authenticated from its head,
//! before its body is read, so clients without credentials get their 401/403 at once and
//! their bodies are never buffered; authenticated bodies share a per-core budget
//! (`server.max_body_bytes_in_flight_per_core`, 256 MiB by default), beyond which requests
//! are answered `503 unavailable`; and other clients keep being served throughout.
//!
//! Memory bound stated and checked here: the data plane's resident set stays under
//! 2 × workers × the in-flight budget (the budget itself, plus its allocator slack), far under
//! what the clients declare (64 × 100 MiB without credentials, 24 × 60 MiB with).

use miroir_e2e::{Cluster, ClusterSpec};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const MIB: u64 = 1024 * 1024;

/// The data plane spawned by the `miroir` launcher.
fn dataplane_pid(launcher: u32) -> u32 {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may contain spaces, so split after the last ')'.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let ppid: u32 = after.split(' ').nth(1).unwrap().parse().unwrap();
        if ppid == launcher && stat.contains("(miroir-dataplan") {
            return pid;
        }
    }
    panic!("no data plane under {launcher}");
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// Opens a connection and sends a document-write head declaring `length` body bytes, then
/// `sent` of them.
fn start_upload(addr: SocketAddr, key: Option<&str>, length: u64, sent: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST /indexes/movies/documents HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer and close before taking it all: a failed write is expected then.
    let chunk = vec![b' '; 64 * 1024];
    let mut left = sent;
    while left > 0 {
        let n = left.min(chunk.len());
        if s.write_all(&chunk[..n]).is_err() {
            break;
        }
        left -= n;
    }
    s
}

/// The status of the answer waiting on `s`, if one arrives within the read timeout.
fn status(s: &mut TcpStream) -> Option<u16> {
    let mut line = String::new();
    BufReader::new(s.try_clone().ok()?)
        .read_line(&mut line)
        .ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn served(cluster: &Cluster) -> bool {
    cluster.http().get("/health").is_ok_and(|r| r.status == 200)
        && cluster
            .http()
            .post_json("/indexes/movies/search", &serde_json::json!({"q": "x"}))
            .is_ok_and(|r| r.status == 200)
}

/// Creates the `movies` index; returns the data plane's pid.
fn with_index(cluster: &Cluster) -> u32 {
    let r = cluster
        .http()
        .post_json(
            "/indexes",
            &serde_json::json!({"uid": "movies", "primaryKey": "id"}),
        )
        .unwrap();
    cluster.wait_task(r.json()["taskUid"].as_u64().unwrap());
    dataplane_pid(cluster.admin.as_ref().expect("the miroir launcher").id())
}

#[test]
fn bodies_without_credentials_are_never_read() {
    let cluster = Cluster::start(ClusterSpec::default());
    let dp = with_index(&cluster);
    let before = rss_bytes(dp);

    // 64 clients without credentials (or with a wrong key) each declare 100 MiB and push
    // 2 MiB: each is refused from its head.
    let mut conns = Vec::new();
    for i in 0..64 {
        let key = (i % 2 == 1).then_some("not-a-key");
        conns.push(start_upload(cluster.addr, key, 100 * MIB, 2 * MIB as usize));
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let expected = if i % 2 == 1 { 403 } else { 401 };
        assert_eq!(status(c), Some(expected), "connection {i}");
        // And the connection is closed: nothing more is read from it.
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
    }
    assert!(served(&cluster), "other clients are served");
    let after = rss_bytes(dp);
    eprintln!(
        "data plane RSS before {} MiB, after 64 unauthenticated uploads {} MiB",
        before / MIB,
        after / MIB
    );
    assert!(
        after < before + 64 * MIB,
        "refused bodies were buffered: RSS {before} -> {after}"
    );
}

#[test]
fn authenticated_bodies_share_a_bounded_budget() {
    let cluster = Cluster::start(ClusterSpec::default());
    let key = cluster.spec.master_key.clone();
    let dp = with_index(&cluster);

    // 24 uploads of 60 MiB declared, each trickling: two cores of 256 MiB hold at most
    // 8 of them; the others are answered 503 at once.
    let conns: Vec<TcpStream> = (0..24)
        .map(|_| start_upload(cluster.addr, Some(&key), 60 * MIB, 1024))
        .collect();
    // Every connection's answer is awaited at once (3 s, well under the 10 s between two body
    // reads after which a held upload would be cut off): a held upload has none.
    let waits: Vec<_> = conns
        .iter()
        .map(|c| {
            let mut c = c.try_clone().unwrap();
            std::thread::spawn(move || {
                c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                status(&mut c)
            })
        })
        .collect();
    let mut busy = 0;
    for w in waits {
        if let Some(s) = w.join().unwrap() {
            assert_eq!(
                s, 503,
                "only the budget refuses an authenticated upload here"
            );
            busy += 1;
        }
    }
    assert!(
        busy >= 24 - 8,
        "{busy} of 24 refused; the budget holds at most 8"
    );
    assert!(
        served(&cluster),
        "other clients are served while bodies are held"
    );
    let rss = rss_bytes(dp);
    eprintln!(
        "data plane RSS with {} uploads held: {} MiB",
        24 - busy,
        rss / MIB
    );
    assert!(rss < 2 * 2 * 256 * MIB, "RSS {rss}");
    // Closing the held uploads gives the budget back: a normal write goes through.
    drop(conns);
    let r = cluster
        .http()
        .post_json(
            "/indexes/movies/documents",
            &serde_json::json!([{"id": 1, "title": "back"}]),
        )
        .unwrap();
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
}
