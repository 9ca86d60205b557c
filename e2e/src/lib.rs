//! End-to-end test support: start the real binaries (`miroir-testnode`, `miroir`) on free
//! loopback ports, talk HTTP/1.1 to them with a tiny blocking client, and kill everything on
//! drop. No mocks: these tests see Miroir exactly as an SDK does.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `target/<profile>/` — where cargo put the binaries, found from this test executable
/// (`target/<profile>/deps/<test>-<hash>`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// Path of a workspace binary; panics with the command to build it when missing.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} not built: run `cargo build --workspace --bins` first",
        p.display()
    );
    p
}

/// A free loopback port (bound then released; good enough for tests on one machine).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh temporary directory removed on drop.
pub struct TempDir(pub PathBuf);
impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "miroir-e2e-{tag}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos() ^ (free_port() as u128)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (SIGKILL) on drop.
pub struct Proc {
    pub child: Child,
    pub name: String,
}
impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        Proc {
            child,
            name: name.to_string(),
        }
    }
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until `addr` answers `GET /health` with 200.
pub fn wait_healthy(addr: SocketAddr, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(r) = Http::new(addr).get("/health") {
            if r.status == 200 {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{addr} not healthy within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}
impl HttpResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal blocking HTTP/1.1 client (one connection per request, `Connection: close`).
#[derive(Clone)]
pub struct Http {
    pub addr: SocketAddr,
    pub key: Option<String>,
}
impl Http {
    pub fn new(addr: SocketAddr) -> Http {
        Http { addr, key: None }
    }
    pub fn with_key(mut self, key: &str) -> Http {
        self.key = Some(key.to_string());
        self
    }
    pub fn get(&self, path: &str) -> std::io::Result<HttpResponse> {
        self.request("GET", path, None, "application/json")
    }
    pub fn delete(&self, path: &str) -> std::io::Result<HttpResponse> {
        self.request("DELETE", path, None, "application/json")
    }
    pub fn post_json(&self, path: &str, body: &Value) -> std::io::Result<HttpResponse> {
        self.request(
            "POST",
            path,
            Some(body.to_string().as_bytes()),
            "application/json",
        )
    }
    pub fn send_json(
        &self,
        method: &str,
        path: &str,
        body: &Value,
    ) -> std::io::Result<HttpResponse> {
        self.request(
            method,
            path,
            Some(body.to_string().as_bytes()),
            "application/json",
        )
    }
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        content_type: &str,
    ) -> std::io::Result<HttpResponse> {
        let mut s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        if let Some(k) = &self.key {
            req.push_str(&format!("Authorization: Bearer {k}\r\n"));
        }
        if let Some(b) = body {
            req.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes())?;
        if let Some(b) = body {
            s.write_all(b)?;
        }
        read_response(&mut BufReader::new(s))
    }
}

fn read_response(r: &mut impl BufRead) -> std::io::Result<HttpResponse> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(&line))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':').ok_or_else(|| bad(l))?;
        headers.push((n.trim().to_string(), v.trim().to_string()));
    }
    let h = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if h("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let n = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad("chunk size"))?;
            if n == 0 {
                break;
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(cl) = h("content-length") {
        body.resize(cl.parse().map_err(|_| bad("content-length"))?, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// The real Meilisearch binary to use as nodes instead of `miroir-testnode`
/// (`MIROIR_E2E_MEILI_BIN`), for checking Miroir against the real thing locally. Tests that
/// need the test node's fault injection or uid assumptions say so and are run only without it.
pub fn real_meilisearch() -> Option<PathBuf> {
    std::env::var_os("MIROIR_E2E_MEILI_BIN").map(PathBuf::from)
}

/// One node process (`miroir-testnode`, or real Meilisearch, see [`real_meilisearch`]) on a
/// free port.
pub struct TestNode {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub db: PathBuf,
    pub master_key: String,
}
impl TestNode {
    pub fn start(dir: &Path, name: &str, master_key: &str) -> TestNode {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let db = dir.join(name);
        let mut cmd = match real_meilisearch() {
            Some(meili) => {
                let mut c = Command::new(meili);
                c.args(["--no-analytics", "--log-level", "WARN"])
                    // Dumps and snapshots inside the node's directory, not the test's cwd.
                    .arg("--dump-dir")
                    .arg(db.join("dumps"))
                    .arg("--snapshot-dir")
                    .arg(db.join("snapshots"));
                c
            }
            None => {
                let mut c = Command::new(bin("miroir-testnode"));
                c.arg("--faults");
                c
            }
        };
        cmd.arg("--http-addr")
            .arg(addr.to_string())
            .arg("--master-key")
            .arg(master_key)
            .arg("--db-path")
            .arg(&db)
            .env_remove("MEILI_MASTER_KEY")
            .env_remove("MEILI_DB_PATH")
            .env_remove("MEILI_HTTP_ADDR");
        let proc = Proc::spawn(name, &mut cmd);
        wait_healthy(addr, Duration::from_secs(30));
        TestNode {
            proc,
            addr,
            db,
            master_key: master_key.to_string(),
        }
    }
    pub fn http(&self) -> Http {
        Http::new(self.addr).with_key(&self.master_key)
    }
}

/// Shape of a local deployment: `groups × nodes_per_group` test nodes behind one Miroir.
pub struct ClusterSpec {
    pub replica_groups: u32,
    pub nodes_per_group: u32,
    pub replication_factor: u32,
    pub shards: u32,
    pub master_key: String,
    /// Extra YAML appended to the generated config.
    pub extra_yaml: String,
}
impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            replica_groups: 1,
            nodes_per_group: 3,
            replication_factor: 1,
            shards: 64,
            master_key: "e2e-master-key".into(),
            extra_yaml: String::new(),
        }
    }
}

/// Test nodes + the `miroir` launcher (admin + data plane) with an embedded LMDB store.
pub struct Cluster {
    pub nodes: Vec<TestNode>,
    pub miroir: Proc,
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub config_path: PathBuf,
    pub spec: ClusterSpec,
    pub dir: TempDir,
}
impl Cluster {
    pub fn start(spec: ClusterSpec) -> Cluster {
        let dir = TempDir::new("cluster");
        let mut nodes = Vec::new();
        let mut node_yaml = String::new();
        for g in 0..spec.replica_groups {
            for i in 0..spec.nodes_per_group {
                let id = format!("meili-{}", g * spec.nodes_per_group + i);
                let n = TestNode::start(dir.path(), &id, &spec.master_key);
                node_yaml.push_str(&format!(
                    "  - {{ id: \"{id}\", address: \"http://{}\", replica_group: {g} }}\n",
                    n.addr
                ));
                nodes.push(n);
            }
        }
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let admin_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config = format!(
            "master_key: \"{mk}\"\nshards: {s}\nreplication_factor: {rf}\nreplica_groups: {rg}\n\
             data_dir: \"{data}\"\nnodes:\n{node_yaml}\
             server: {{ bind: \"127.0.0.1\", port: {port}, workers: 2 }}\n\
             admin: {{ bind: \"127.0.0.1\", port: {aport} }}\n\
             health: {{ interval_ms: 200, timeout_ms: 1000, unhealthy_threshold: 2, recovery_threshold: 1 }}\n\
             scatter: {{ node_timeout_ms: 2000 }}\n{extra}",
            mk = spec.master_key,
            s = spec.shards,
            rf = spec.replication_factor,
            rg = spec.replica_groups,
            data = dir.path().join("miroir-data").display(),
            port = addr.port(),
            aport = admin_addr.port(),
            extra = spec.extra_yaml,
        );
        let config_path = dir.path().join("miroir.yaml");
        std::fs::write(&config_path, config).unwrap();
        let miroir = Proc::spawn(
            "miroir",
            Command::new(bin("miroir"))
                .arg("--config")
                .arg(&config_path),
        );
        wait_healthy(addr, Duration::from_secs(20));
        Cluster {
            nodes,
            miroir,
            addr,
            admin_addr,
            config_path,
            spec,
            dir,
        }
    }

    /// A client of the data plane holding the master key.
    pub fn http(&self) -> Http {
        Http::new(self.addr).with_key(&self.spec.master_key)
    }

    /// Polls `GET /tasks/{uid}` until the task is terminal; returns the task.
    pub fn wait_task(&self, uid: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = self.http().get(&format!("/tasks/{uid}")).expect("GET task");
            assert_eq!(
                r.status,
                200,
                "GET /tasks/{uid}: {}",
                String::from_utf8_lossy(&r.body)
            );
            let t = r.json();
            if let Some("succeeded" | "failed" | "canceled") = t["status"].as_str() {
                return t;
            }
            assert!(Instant::now() < deadline, "task {uid} not finished: {t}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Deployments with separate processes and tunable timeouts (differential, availability, admin
// restart and Redis task-store tests). `Cluster` above stays the one-command (`miroir`) path.
// ---------------------------------------------------------------------------------------------

/// Polls `f` every 25 ms until it returns `Some`; panics with `what` after `within`. The bound
/// is a hang detector, not a timing assertion: pick it generously (a loaded 2-core machine).
pub fn eventually<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// How a [`Deployment`] is configured beyond its [`ClusterSpec`].
#[derive(Debug, Clone)]
pub struct DeploymentOptions {
    /// `scatter.node_timeout_ms`.
    pub node_timeout_ms: u64,
    /// `health.interval_ms` / `timeout_ms` / `unhealthy_threshold`.
    pub health_interval_ms: u64,
    pub health_timeout_ms: u64,
    pub unhealthy_threshold: u32,
    /// Extra YAML (top-level keys not generated here, e.g. a `task_store:` block).
    pub extra_yaml: String,
}
impl Default for DeploymentOptions {
    fn default() -> Self {
        DeploymentOptions {
            node_timeout_ms: 10_000,
            health_interval_ms: 200,
            health_timeout_ms: 2_000,
            unhealthy_threshold: 2,
            extra_yaml: String::new(),
        }
    }
}

/// Test nodes + `miroir-admin` + `miroir-dataplane` as two separate processes sharing one
/// config, so each can be killed and restarted on its own (the Kubernetes-sidecar shape).
pub struct Deployment {
    pub nodes: Vec<TestNode>,
    pub admin: Option<Proc>,
    pub dataplane: Proc,
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub config_path: PathBuf,
    pub master_key: String,
    pub node_ids: Vec<String>,
    /// Replica group of each node (same index as `nodes`).
    pub node_groups: Vec<u32>,
    pub dir: TempDir,
}
impl Deployment {
    pub fn start(spec: &ClusterSpec, opts: &DeploymentOptions) -> Deployment {
        let dir = TempDir::new("deploy");
        let mut nodes = Vec::new();
        let mut node_ids = Vec::new();
        let mut node_groups = Vec::new();
        let mut node_yaml = String::new();
        for g in 0..spec.replica_groups {
            for i in 0..spec.nodes_per_group {
                let id = format!("meili-{}", g * spec.nodes_per_group + i);
                let n = TestNode::start(dir.path(), &id, &spec.master_key);
                node_yaml.push_str(&format!(
                    "  - {{ id: \"{id}\", address: \"http://{}\", replica_group: {g} }}\n",
                    n.addr
                ));
                nodes.push(n);
                node_ids.push(id);
                node_groups.push(g);
            }
        }
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let admin_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config = format!(
            "master_key: \"{mk}\"\nshards: {s}\nreplication_factor: {rf}\nreplica_groups: {rg}\n\
             data_dir: \"{data}\"\nnodes:\n{node_yaml}\
             server: {{ bind: \"127.0.0.1\", port: {port}, workers: 2 }}\n\
             admin: {{ bind: \"127.0.0.1\", port: {aport}, api_key: \"e2e-admin-key\" }}\n\
             health: {{ interval_ms: {hi}, timeout_ms: {ht}, unhealthy_threshold: {hu}, recovery_threshold: 1 }}\n\
             scatter: {{ node_timeout_ms: {nt} }}\n{extra}{spec_extra}",
            mk = spec.master_key,
            s = spec.shards,
            rf = spec.replication_factor,
            rg = spec.replica_groups,
            data = dir.path().join("miroir-data").display(),
            port = addr.port(),
            aport = admin_addr.port(),
            hi = opts.health_interval_ms,
            ht = opts.health_timeout_ms,
            hu = opts.unhealthy_threshold,
            nt = opts.node_timeout_ms,
            extra = opts.extra_yaml,
            spec_extra = spec.extra_yaml,
        );
        let config_path = dir.path().join("miroir.yaml");
        std::fs::write(&config_path, config).unwrap();
        let mut d = Deployment {
            nodes,
            admin: None,
            dataplane: Proc::spawn(
                "miroir-dataplane",
                Command::new(bin("miroir-dataplane"))
                    .arg("--config")
                    .arg(&config_path)
                    .env("MIROIR_LOG", "warn"),
            ),
            addr,
            admin_addr,
            config_path,
            master_key: spec.master_key.clone(),
            node_ids,
            node_groups,
            dir,
        };
        d.start_admin();
        d.wait_ready();
        d
    }

    /// Starts (or restarts) `miroir-admin` on the deployment's config and data directory.
    pub fn start_admin(&mut self) {
        assert!(self.admin.is_none(), "the admin is already running");
        self.admin = Some(Proc::spawn(
            "miroir-admin",
            Command::new(bin("miroir-admin"))
                .arg("--config")
                .arg(&self.config_path)
                .env("RUST_LOG", "warn"),
        ));
    }

    /// kill -9 of the admin process (and reaping it).
    pub fn kill_admin(&mut self) {
        let mut p = self.admin.take().expect("the admin is not running");
        p.kill();
    }

    /// Waits until the data plane serves with a snapshot and reaches the admin: `GET /indexes`
    /// is forwarded to the admin and needs a snapshot first (503 before).
    pub fn wait_ready(&self) {
        eventually(
            "the data plane to serve GET /indexes",
            Duration::from_secs(60),
            || self.http().get("/indexes").ok().filter(|r| r.status == 200),
        );
    }

    /// A client of the data plane holding the master key.
    pub fn http(&self) -> Http {
        Http::new(self.addr).with_key(&self.master_key)
    }

    /// Polls `GET /tasks/{uid}` through the data plane until the task is terminal.
    pub fn wait_task(&self, uid: u64) -> Value {
        eventually(
            &format!("Miroir task {uid}"),
            Duration::from_secs(120),
            || {
                let r = self.http().get(&format!("/tasks/{uid}")).ok()?;
                assert_eq!(
                    r.status,
                    200,
                    "GET /tasks/{uid}: {}",
                    String::from_utf8_lossy(&r.body)
                );
                let t = r.json();
                matches!(
                    t["status"].as_str(),
                    Some("succeeded" | "failed" | "canceled")
                )
                .then_some(t)
            },
        )
    }

    /// Sends a write, asserts 202 and returns the summarized task's uid.
    pub fn write(&self, method: &str, path: &str, body: &Value) -> u64 {
        let r = self.http().send_json(method, path, body).expect("write");
        assert_eq!(
            r.status,
            202,
            "{method} {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()["taskUid"].as_u64().expect("taskUid")
    }

    /// Sends a write and waits until its Miroir task succeeded; returns the task uid.
    pub fn write_ok(&self, method: &str, path: &str, body: &Value) -> u64 {
        let uid = self.write(method, path, body);
        let t = self.wait_task(uid);
        assert_eq!(t["status"], "succeeded", "{method} {path}: {t}");
        uid
    }
}

/// Waits until a test node's task is terminal; returns it.
pub fn wait_node_task(node: &TestNode, uid: u64) -> Value {
    eventually(
        &format!("node task {uid}"),
        Duration::from_secs(120),
        || {
            let t = node.http().get(&format!("/tasks/{uid}")).ok()?.json();
            matches!(
                t["status"].as_str(),
                Some("succeeded" | "failed" | "canceled")
            )
            .then_some(t)
        },
    )
}
