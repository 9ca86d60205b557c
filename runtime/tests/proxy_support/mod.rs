//! Shared helpers of the `proxy_*` integration tests: start the REAL binaries — several
//! `miroir-testnode`s, `miroir-admin` and `miroir-dataplane` — on free loopback ports with a
//! generated config in a temp dir, and talk HTTP/1.1 to them with a tiny blocking client.
//!
//! `miroir-dataplane` is this package's binary (`CARGO_BIN_EXE_…`). The test node and the
//! admin live in other packages: they are looked up next to it in the same target directory
//! and built there with `cargo build -p miroir-testnode -p miroir-admin` when missing.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

pub const NODE_KEY: &str = "node-master-key";

fn target_debug() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_miroir-dataplane"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Path of a sibling binary, building the other packages once if needed.
pub fn bin(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    let path = target_debug().join(name);
    BUILD.call_once(|| {
        if target_debug().join("miroir-testnode").exists()
            && target_debug().join("miroir-admin").exists()
        {
            return;
        }
        let target_dir = target_debug().parent().unwrap().to_path_buf();
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "-p",
                "miroir-testnode",
                "-p",
                "miroir-admin",
                "--bins",
            ])
            .env("CARGO_TARGET_DIR", &target_dir)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .expect("running cargo build for the test binaries");
        assert!(
            status.success(),
            "building miroir-testnode and miroir-admin failed"
        );
    });
    assert!(path.exists(), "{} not found", path.display());
    path
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (and reaped) on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `miroir-testnode`.
pub struct TestNode {
    pub addr: String,
    pub proc: Option<Proc>,
    db: PathBuf,
}

impl TestNode {
    pub fn start(dir: &Path, name: &str) -> TestNode {
        let db = dir.join(name);
        Self::start_on(&db, "127.0.0.1:0")
    }

    fn start_on(db: &Path, http_addr: &str) -> TestNode {
        let mut child = Command::new(bin("miroir-testnode"))
            .args([
                "--http-addr",
                http_addr,
                "--master-key",
                NODE_KEY,
                "--faults",
                "--db-path",
            ])
            .arg(db)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting miroir-testnode");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("testnode said {line:?}"))
            .to_string();
        TestNode {
            addr,
            proc: Some(Proc(child)),
            db: db.to_path_buf(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the node (connections are refused afterwards).
    pub fn kill(&mut self) {
        self.proc = None;
    }

    /// Restarts a killed node on the same address and database.
    pub fn restart(&mut self) {
        let again = Self::start_on(&self.db, &self.addr);
        *self = again;
    }

    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        http(
            &self.addr,
            method,
            path,
            &[("authorization", &format!("Bearer {NODE_KEY}"))],
            body.map(|b| ("application/json", b.to_string().into_bytes())),
        )
    }
}

/// Topology of a test cluster.
pub struct Layout {
    pub groups: u32,
    pub per_group: u32,
    pub rf: u32,
    pub shards: u32,
    pub node_timeout_ms: u64,
    pub policy: &'static str,
    /// `server.io`: `auto` (io_uring when the kernel allows it) or `epoll`.
    pub io: &'static str,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            groups: 1,
            per_group: 3,
            rf: 1,
            shards: 16,
            node_timeout_ms: 2000,
            policy: "partial",
            io: "auto",
        }
    }
}

/// Test nodes + admin + data plane, all real processes.
pub struct Cluster {
    pub dir: PathBuf,
    pub nodes: Vec<TestNode>,
    /// Node ids in `nodes` order (`g{group}n{i}`).
    pub ids: Vec<String>,
    pub groups: Vec<u32>,
    pub proxy: String,
    pub admin_addr: String,
    config_path: PathBuf,
    admin: Option<Proc>,
    dataplane: Proc,
}

impl Cluster {
    pub fn start(name: &str, layout: Layout) -> Cluster {
        let dir = std::env::temp_dir().join(format!("miroir-proxy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut nodes = Vec::new();
        let mut ids = Vec::new();
        let mut groups = Vec::new();
        let mut yaml_nodes = String::new();
        for g in 0..layout.groups {
            for i in 0..layout.per_group {
                let id = format!("g{g}n{i}");
                let node = TestNode::start(&dir, &id);
                yaml_nodes.push_str(&format!(
                    "  - id: {id}\n    address: {}\n    replica_group: {g}\n",
                    node.url()
                ));
                nodes.push(node);
                ids.push(id);
                groups.push(g);
            }
        }
        let (proxy_port, admin_port) = (free_port(), free_port());
        let config = format!(
            "master_key: client-master-key\nnode_master_key: {NODE_KEY}\nshards: {}\nreplication_factor: {}\nreplica_groups: {}\nnodes:\n{yaml_nodes}data_dir: {}\nserver:\n  bind: 127.0.0.1\n  port: {proxy_port}\n  workers: 2\n  io: {}\nadmin:\n  bind: 127.0.0.1\n  port: {admin_port}\n  api_key: admin-key\nhealth:\n  interval_ms: 60000\n  timeout_ms: 1000\n  unhealthy_threshold: 3\n  recovery_threshold: 2\nscatter:\n  node_timeout_ms: {}\n  unavailable_shard_policy: {}\n",
            layout.shards,
            layout.rf,
            layout.groups,
            dir.join("data").display(),
            layout.io,
            layout.node_timeout_ms,
            layout.policy,
        );
        let config_path = dir.join("miroir.yaml");
        std::fs::write(&config_path, config).unwrap();
        let admin_addr = format!("127.0.0.1:{admin_port}");
        let admin = spawn_admin(&dir, &config_path, &admin_addr);
        let dataplane = Proc(
            Command::new(env!("CARGO_BIN_EXE_miroir-dataplane"))
                .arg("--config")
                .arg(&config_path)
                .stdout(Stdio::from(
                    std::fs::File::create(dir.join("dataplane.out")).unwrap(),
                ))
                .stderr(Stdio::from(
                    std::fs::File::create(dir.join("dataplane.log")).unwrap(),
                ))
                .spawn()
                .expect("starting miroir-dataplane"),
        );
        let proxy = format!("127.0.0.1:{proxy_port}");
        let c = Cluster {
            dir,
            nodes,
            ids,
            groups,
            proxy,
            admin_addr,
            config_path,
            admin: Some(admin),
            dataplane,
        };
        // Ready when the data plane has a snapshot and reaches the admin.
        wait_until("data plane with a snapshot", || {
            TcpStream::connect(&c.proxy).is_ok() && c.call("GET", "/indexes", None).status == 200
        });
        c
    }

    /// `kill -9` of the admin process (the data plane keeps running).
    pub fn kill_admin(&mut self) {
        self.admin = None;
    }

    /// Starts the admin again on the same config and data directory; returns once its REST
    /// port accepts connections (its control socket may still be on its way).
    pub fn start_admin(&mut self) {
        assert!(self.admin.is_none(), "the admin is already running");
        self.admin = Some(spawn_admin(&self.dir, &self.config_path, &self.admin_addr));
    }

    /// A request to the data plane with the client master key.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        http(
            &self.proxy,
            method,
            path,
            &[("authorization", "Bearer client-master-key")],
            body.map(|b| ("application/json", b.to_string().into_bytes())),
        )
    }

    /// A request with a raw body and content type.
    pub fn call_raw(&self, method: &str, path: &str, content_type: &str, body: Vec<u8>) -> Resp {
        http(
            &self.proxy,
            method,
            path,
            &[("authorization", "Bearer client-master-key")],
            Some((content_type, body)),
        )
    }

    /// Waits until Miroir task `uid` is terminal; returns the task.
    pub fn wait_task(&self, uid: u64) -> Value {
        let mut last = Value::Null;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let r = self.call("GET", &format!("/tasks/{uid}"), None);
            last = r.json();
            if matches!(
                last["status"].as_str(),
                Some("succeeded" | "failed" | "canceled")
            ) {
                return last;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("task {uid} not terminal in time: {last}");
    }

    /// Creates an index with primary key `id` and the given settings; waits for both.
    pub fn create_index(&self, uid: &str, settings: Value) {
        let r = self.call(
            "POST",
            "/indexes",
            Some(&json!({"uid": uid, "primaryKey": "id"})),
        );
        assert_eq!(r.status, 202, "create index: {}", r.text());
        let t = self.wait_task(r.json()["taskUid"].as_u64().unwrap());
        assert_eq!(t["status"], "succeeded", "{t}");
        if settings.as_object().is_some_and(|m| !m.is_empty()) {
            let r = self.call(
                "PATCH",
                &format!("/indexes/{uid}/settings"),
                Some(&settings),
            );
            assert_eq!(r.status, 202, "settings: {}", r.text());
            let t = self.wait_task(r.json()["taskUid"].as_u64().unwrap());
            assert_eq!(t["status"], "succeeded", "{t}");
        }
    }

    /// The I/O backend the data plane reported at start (`io_uring` or `epoll`).
    pub fn io_backend(&self) -> String {
        let out = std::fs::read_to_string(self.dir.join("dataplane.out")).unwrap_or_default();
        let line: Value =
            serde_json::from_str(out.lines().next().unwrap_or("null")).unwrap_or(Value::Null);
        line["io_backend"].as_str().unwrap_or("unknown").to_string()
    }

    pub fn log(&self, which: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{which}.log"))).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.dataplane.0.kill();
        let _ = self.dataplane.0.wait();
        self.admin = None;
        // Stop the nodes before removing the directory their databases live in.
        self.nodes.clear();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("test cluster kept for inspection in {}", self.dir.display());
        }
    }
}

/// Starts `miroir-admin` (log appended to `admin.log`) and waits for its REST port.
fn spawn_admin(dir: &Path, config_path: &Path, admin_addr: &str) -> Proc {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("admin.log"))
        .unwrap();
    let admin = Proc(
        Command::new(bin("miroir-admin"))
            .arg("--config")
            .arg(config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("starting miroir-admin"),
    );
    wait_until("admin REST port", || TcpStream::connect(admin_addr).is_ok());
    admin
}

pub fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// A response from the blocking client.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    let body_bytes = match &body {
        Some((ct, b)) => {
            req.push_str(&format!(
                "Content-Type: {ct}\r\nContent-Length: {}\r\n",
                b.len()
            ));
            b.clone()
        }
        None => {
            if method != "GET" && method != "HEAD" {
                req.push_str("Content-Length: 0\r\n");
            }
            Vec::new()
        }
    };
    req.push_str("\r\n");
    let mut wire = req.into_bytes();
    wire.extend_from_slice(&body_bytes);
    s.write_all(&wire).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Resp {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"))
    {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(i) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(std::str::from_utf8(&b[..i]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + size]);
        b = &b[i + 2 + size + 2..];
    }
}
