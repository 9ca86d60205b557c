//! Test support: real `miroir-testnode` and `miroir-admin` processes on free loopback ports,
//! and a tiny blocking HTTP/1.1 client (TCP or Unix socket) so tests need no HTTP crate.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const MASTER_KEY: &str = "test-master-key-0123456789";
pub const ADMIN_KEY: &str = "test-admin-key";

/// Kills the child on drop (kill -9: tests never leave processes behind).
pub struct Proc {
    pub child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Directory of the binaries of this build (`…/debug`).
fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_miroir-admin"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Spawns `cmd`, returns it with the first stdout line starting with `prefix` (rest of line).
fn spawn_and_wait_line(mut cmd: Command, prefixes: &[&str]) -> (Proc, Vec<String>) {
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let stdout = child.stdout.take().unwrap();
    let proc = Proc { child };
    let mut lines = BufReader::new(stdout).lines();
    let mut found = Vec::new();
    for p in prefixes {
        loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("process exited before printing `{p}`"))
                .unwrap();
            if let Some(rest) = line.strip_prefix(p) {
                found.push(rest.trim().to_string());
                break;
            }
        }
    }
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (proc, found)
}

pub struct TestNode {
    pub proc: Proc,
    pub url: String,
}

pub fn start_testnode(db: &Path) -> TestNode {
    let testnode = bin_dir().join("miroir-testnode");
    assert!(
        testnode.exists(),
        "{} is missing: build it first with `cargo build -p miroir-testnode` (same CARGO_TARGET_DIR)",
        testnode.display()
    );
    let mut cmd = Command::new(testnode);
    cmd.args([
        "--http-addr",
        "127.0.0.1:0",
        "--master-key",
        MASTER_KEY,
        "--faults",
        "--db-path",
    ])
    .arg(db);
    let (proc, found) = spawn_and_wait_line(cmd, &["listening on "]);
    TestNode {
        proc,
        url: found[0].clone(),
    }
}

pub struct AdminProc {
    pub proc: Proc,
    pub url: String,
    pub socket: PathBuf,
}

pub fn start_admin(config: &Path) -> AdminProc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_miroir-admin"));
    cmd.arg("--config").arg(config).env("RUST_LOG", "warn");
    let (proc, found) = spawn_and_wait_line(cmd, &["admin listening on ", "control socket at "]);
    AdminProc {
        proc,
        url: found[0].clone(),
        socket: PathBuf::from(&found[1]),
    }
}

/// Writes a config for `nodes` under `dir`.
pub fn write_config(dir: &Path, nodes: &[&TestNode], shards: u32, extra_yaml: &str) -> PathBuf {
    let mut yaml = format!(
        "master_key: {MASTER_KEY}\nshards: {shards}\nreplication_factor: 1\nreplica_groups: 1\ndata_dir: {}\nadmin:\n  api_key: {ADMIN_KEY}\n  bind: 127.0.0.1\n  port: 0\nhealth:\n  interval_ms: 100\n  timeout_ms: 1000\n  unhealthy_threshold: 2\n  recovery_threshold: 1\nnodes:\n",
        dir.join("data").display()
    );
    for (i, n) in nodes.iter().enumerate() {
        yaml.push_str(&format!("  - id: meili-{i}\n    address: {}\n", n.url));
    }
    yaml.push_str(extra_yaml);
    let path = dir.join("miroir.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }
}

fn exchange<S: Read + Write>(
    mut s: S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Resp {
    let body = body
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header end");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Resp { status, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let end = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[end + 2..end + 2 + size]);
        b = &b[end + 2 + size + 2..];
    }
}

/// A request over TCP to `base` (`http://host:port`).
pub fn http(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Resp {
    let addr = base.trim_start_matches("http://");
    let s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    exchange(s, method, path, headers, body)
}

/// A request to a test node with the master key.
pub fn node(base: &str, method: &str, path: &str, body: Option<&Value>) -> Resp {
    let auth = format!("Bearer {MASTER_KEY}");
    http(base, method, path, &[("Authorization", &auth)], body)
}

/// A request over the control socket, as the data plane sends it.
pub fn control(socket: &Path, method: &str, path: &str, body: Option<&Value>) -> Resp {
    control_as(socket, "master", method, path, body)
}

/// A control request on behalf of a principal (`master` or `key:<uid>`).
pub fn control_as(
    socket: &Path,
    principal: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Resp {
    let s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let headers = [
        ("Miroir-Control-Version", "1"),
        ("Miroir-Principal", principal),
    ];
    exchange(s, method, path, &headers, body)
}

/// Polls `f` until it returns `Some` (or panics after 60 s: a hang, not a timing assertion).
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Polls a Miroir task until it is terminal; returns it.
pub fn wait_miroir_task(socket: &Path, uid: u64) -> Value {
    eventually(&format!("miroir task {uid}"), || {
        let t = control(socket, "GET", &format!("/tasks/{uid}"), None).json();
        matches!(
            t["status"].as_str(),
            Some("succeeded" | "failed" | "canceled")
        )
        .then_some(t)
    })
}

/// Polls a node task until it is terminal.
pub fn wait_node_task(base: &str, uid: u64) -> Value {
    eventually(&format!("node task {uid}"), || {
        let t = node(base, "GET", &format!("/tasks/{uid}"), None).json();
        matches!(
            t["status"].as_str(),
            Some("succeeded" | "failed" | "canceled")
        )
        .then_some(t)
    })
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// A real `redis-server` on a free loopback port, without persistence.
pub struct Redis {
    pub proc: Proc,
    pub url: String,
}

pub fn start_redis(dir: &Path) -> Redis {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is required for the Redis task-store tests (apt-get install redis-server)");
    let proc = Proc { child };
    eventually("redis-server accepting connections", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    Redis {
        proc,
        url: format!("redis://127.0.0.1:{port}"),
    }
}
