//! A Miroir cluster: test nodes, a generated config, and the admin and data plane binaries
//! (two processes, or the one-command `miroir` launcher).

use crate::http::Client;
use crate::node::{NodeSpec, TestNode};
use crate::poll::{wait_until, within};
use crate::process::{log_len, Proc};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How the admin and the data plane run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launch {
    /// `miroir-admin` and `miroir-dataplane` as two processes, each killable on its own (the
    /// Kubernetes-sidecar shape).
    Separate,
    /// The one-command `miroir` launcher (admin in-process, supervising the data plane).
    OneCommand,
}

/// The `health:` section.
#[derive(Debug, Clone, Copy)]
pub struct Health {
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub unhealthy_threshold: u32,
    pub recovery_threshold: u32,
}

/// Shape and settings of a cluster: `replica_groups × nodes_per_group` test nodes behind one
/// Miroir.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub replica_groups: u32,
    pub nodes_per_group: u32,
    pub replication_factor: u32,
    pub shards: u32,
    /// The clients' master key (`master_key`).
    pub master_key: String,
    /// The nodes' master key (`node_master_key`); the nodes use `master_key` when `None`.
    pub node_master_key: Option<String>,
    /// Node id from (group, index in the group, index in the cluster).
    pub node_id: fn(u32, u32, u32) -> String,
    /// `admin.api_key`.
    pub admin_api_key: Option<String>,
    /// `server.workers`.
    pub workers: u32,
    /// `server.io` (`auto`, `epoll`, …); the default when `None`.
    pub io: Option<String>,
    pub health: Health,
    /// `scatter.node_timeout_ms`.
    pub node_timeout_ms: u64,
    /// `scatter.unavailable_shard_policy`; the default when `None`.
    pub unavailable_shard_policy: Option<String>,
    /// More `scatter:` keys, as flow-mapping entries (`"hedging: true, hedge_min_ms: 5"`).
    pub scatter_extra: String,
    /// YAML appended to the generated config (top-level keys it does not write).
    pub extra_yaml: String,
    pub launch: Launch,
    /// Environment of the admin, data plane and launcher processes.
    pub env: Vec<(String, String)>,
    /// The real Meilisearch binary as nodes instead of `miroir-testnode` (see [`NodeSpec`]).
    pub meilisearch: Option<PathBuf>,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            replica_groups: 1,
            nodes_per_group: 3,
            replication_factor: 1,
            shards: 64,
            master_key: "test-master-key".into(),
            node_master_key: None,
            node_id: |_, _, i| format!("meili-{i}"),
            admin_api_key: None,
            workers: 2,
            io: None,
            health: Health {
                interval_ms: 200,
                timeout_ms: 1000,
                unhealthy_threshold: 2,
                recovery_threshold: 1,
            },
            node_timeout_ms: 2000,
            unavailable_shard_policy: None,
            scatter_extra: String::new(),
            extra_yaml: String::new(),
            launch: Launch::Separate,
            env: Vec::new(),
            meilisearch: None,
        }
    }
}

/// Test nodes + admin + data plane, all real processes, in a temporary directory (kept when
/// the test fails) holding the config, the data and every process's log.
pub struct Cluster {
    pub nodes: Vec<TestNode>,
    /// Node ids in `nodes` order.
    pub ids: Vec<String>,
    /// Replica group of each node, in `nodes` order.
    pub groups: Vec<u32>,
    /// The data plane's address.
    pub addr: SocketAddr,
    /// The admin REST address.
    pub admin_addr: SocketAddr,
    pub config_path: PathBuf,
    pub spec: ClusterSpec,
    /// `miroir-admin` ([`Launch::Separate`]) or the `miroir` launcher ([`Launch::OneCommand`]).
    pub admin: Option<Proc>,
    /// `miroir-dataplane` ([`Launch::Separate`] only).
    pub dataplane: Option<Proc>,
    dir: Option<tempfile::TempDir>,
}

impl Cluster {
    /// Starts the nodes, writes the config, starts Miroir and waits until it is ready
    /// ([`Cluster::wait_ready`]).
    pub fn start(spec: ClusterSpec) -> Cluster {
        let dir = crate::temp_dir("cluster");
        let node_key = spec
            .node_master_key
            .clone()
            .unwrap_or_else(|| spec.master_key.clone());
        let (mut nodes, mut ids, mut groups) = (Vec::new(), Vec::new(), Vec::new());
        let mut node_yaml = String::new();
        for g in 0..spec.replica_groups {
            for i in 0..spec.nodes_per_group {
                let id = (spec.node_id)(g, i, g * spec.nodes_per_group + i);
                let node = TestNode::start(NodeSpec {
                    meilisearch: spec.meilisearch.clone(),
                    ..NodeSpec::in_dir(dir.path(), &id, &node_key)
                });
                node_yaml.push_str(&format!(
                    "  - {{ id: \"{id}\", address: \"{}\", replica_group: {g} }}\n",
                    node.url()
                ));
                nodes.push(node);
                ids.push(id);
                groups.push(g);
            }
        }
        let addr = crate::net::free_addr();
        let admin_addr = crate::net::free_addr();
        let config_path = dir.path().join("miroir.yaml");
        std::fs::write(
            &config_path,
            config_yaml(
                &spec,
                &node_yaml,
                &dir.path().join("data"),
                addr,
                admin_addr,
            ),
        )
        .expect("writing the cluster config");
        let mut c = Cluster {
            nodes,
            ids,
            groups,
            addr,
            admin_addr,
            config_path,
            spec,
            admin: None,
            dataplane: None,
            dir: Some(dir),
        };
        match c.spec.launch {
            Launch::Separate => {
                c.start_admin();
                c.start_dataplane();
            }
            Launch::OneCommand => {
                let p = c.spawn("miroir", "miroir");
                c.admin = Some(p);
            }
        }
        c.wait_ready();
        c
    }

    /// The directory holding the config, data and logs.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("cluster directory").path()
    }

    fn spawn(&self, binary: &str, log: &str) -> Proc {
        let mut cmd = Command::new(crate::bin(binary));
        cmd.arg("--config").arg(&self.config_path);
        for (k, v) in &self.spec.env {
            cmd.env(k, v);
        }
        Proc::spawn(binary, &mut cmd, self.dir().join(format!("{log}.log")))
    }

    /// Starts (or restarts) `miroir-admin` on the same config and data directory; returns
    /// once its REST port listens (its control socket may still be on its way).
    pub fn start_admin(&mut self) {
        assert_eq!(
            self.spec.launch,
            Launch::Separate,
            "the launcher runs the admin"
        );
        assert!(self.admin.is_none(), "the admin is already running");
        let log = self.dir().join("admin.log");
        let offset = log_len(&log);
        let mut p = self.spawn("miroir-admin", "admin");
        p.wait_for_line_after(
            offset,
            "admin listening on ",
            within(Duration::from_secs(60)),
        );
        self.admin = Some(p);
    }

    /// `kill -9` of the admin (the data plane keeps running).
    pub fn kill_admin(&mut self) {
        let mut p = self.admin.take().expect("the admin is not running");
        p.kill();
    }

    /// Starts (or restarts) `miroir-dataplane` on the same config; does not wait for it to
    /// serve ([`Cluster::wait_ready`] does).
    pub fn start_dataplane(&mut self) {
        assert_eq!(
            self.spec.launch,
            Launch::Separate,
            "the launcher runs the data plane"
        );
        assert!(
            self.dataplane.is_none(),
            "the data plane is already running"
        );
        let p = self.spawn("miroir-dataplane", "dataplane");
        self.dataplane = Some(p);
    }

    /// `kill -9` of the data plane (the admin keeps running).
    pub fn kill_dataplane(&mut self) {
        let mut p = self
            .dataplane
            .take()
            .expect("the data plane is not running");
        p.kill();
    }

    /// Waits until Miroir serves: with [`Launch::Separate`] until the data plane answers
    /// `GET /indexes` with 200 (it needs a snapshot and the admin for that), with the launcher
    /// until `GET /health` is 200. Panics naming the process when one died meanwhile (nodes a
    /// test killed on purpose excepted).
    pub fn wait_ready(&mut self) {
        let path = match self.spec.launch {
            Launch::Separate => "/indexes",
            Launch::OneCommand => "/health",
        };
        let client = self.http().timeout(Duration::from_secs(10));
        let (admin, dataplane, nodes) = (&mut self.admin, &mut self.dataplane, &mut self.nodes);
        wait_until(
            within(Duration::from_secs(60)),
            &format!("the data plane to answer GET {path} with 200"),
            || {
                let nodes = nodes.iter_mut().filter_map(|n| n.proc.as_mut());
                for p in admin.iter_mut().chain(dataplane.iter_mut()).chain(nodes) {
                    p.assert_running();
                }
                client.get(path).is_ok_and(|r| r.status == 200)
            },
        );
    }

    /// A client of the data plane holding the master key.
    pub fn http(&self) -> Client {
        Client::tcp(self.addr).bearer(&self.spec.master_key)
    }

    /// A request to the data plane with the master key and an optional JSON body; panics
    /// without a response.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> crate::Response {
        self.http().call(method, path, body)
    }

    /// Polls `GET /tasks/{uid}` on the data plane until the task is terminal; returns it.
    pub fn wait_task(&self, uid: u64) -> Value {
        crate::wait_task(&self.http(), uid)
    }

    /// Sends a change, asserts it was accepted and, when it has a task, that the task
    /// succeeded; returns the answer.
    pub fn change(&self, method: &str, path: &str, body: &Value) -> Value {
        let r = self.http().send_json(method, path, body).unwrap();
        assert!(r.status < 300, "{method} {path}: {}", r.text());
        let answer = r.json();
        if let Some(uid) = answer["taskUid"].as_u64() {
            let t = self.wait_task(uid);
            assert_eq!(t["status"], "succeeded", "{t}");
        }
        answer
    }

    /// Requests that change data, summed over every node since their counters were last
    /// reset (the test node's `GET /_testnode/counters`): every route except reads (`GET`,
    /// searches, document fetches), by route.
    pub fn node_writes(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for n in &self.nodes {
            let r = n.call("GET", "/_testnode/counters", None);
            assert_eq!(r.status, 200, "{}", r.text());
            let counters: BTreeMap<String, u64> = serde_json::from_slice(&r.body).unwrap();
            for (route, count) in counters {
                let read = route.starts_with("GET ")
                    || route.ends_with("/search")
                    || route.ends_with("/documents/fetch");
                if !read {
                    *out.entry(route).or_default() += count;
                }
            }
        }
        out
    }

    /// Another Miroir host over the same nodes and configuration (`extra_yaml` included, e.g.
    /// a shared Redis task store) with its own ports and data directory: the one-command
    /// launcher, ready when it returns. Several hosts behind one load balancer, in one test.
    pub fn start_host(&self) -> Host {
        let dir = crate::temp_dir("host");
        let node_yaml: String = self
            .nodes
            .iter()
            .zip(self.ids.iter().zip(&self.groups))
            .map(|(n, (id, g))| {
                format!(
                    "  - {{ id: \"{id}\", address: \"{}\", replica_group: {g} }}\n",
                    n.url()
                )
            })
            .collect();
        let addr = crate::net::free_addr();
        let admin_addr = crate::net::free_addr();
        let config_path = dir.path().join("miroir.yaml");
        std::fs::write(
            &config_path,
            config_yaml(
                &self.spec,
                &node_yaml,
                &dir.path().join("data"),
                addr,
                admin_addr,
            ),
        )
        .expect("writing the host config");
        let mut cmd = Command::new(crate::bin("miroir"));
        cmd.arg("--config").arg(&config_path);
        for (k, v) in &self.spec.env {
            cmd.env(k, v);
        }
        let proc = Proc::spawn("miroir", &mut cmd, dir.path().join("miroir.log"));
        let mut h = Host {
            proc: Some(proc),
            addr,
            admin_addr,
            master_key: self.spec.master_key.clone(),
            dir: Some(dir),
        };
        let client = h.http().timeout(Duration::from_secs(10));
        let proc = h.proc.as_mut().expect("just started");
        wait_until(
            within(Duration::from_secs(60)),
            "the new host to answer GET /health with 200",
            || {
                proc.assert_running();
                client.get("/health").is_ok_and(|r| r.status == 200)
            },
        );
        h
    }

    /// A process's log so far: `admin`, `dataplane`, `miroir` or a node id.
    pub fn log(&self, which: &str) -> String {
        std::fs::read_to_string(self.dir().join(format!("{which}.log"))).unwrap_or_default()
    }
}

/// One more Miroir host of a [`Cluster`] ([`Cluster::start_host`]).
pub struct Host {
    /// The `miroir` launcher (admin in process, data plane its child, which dies with it).
    pub proc: Option<Proc>,
    /// The data plane's address.
    pub addr: SocketAddr,
    /// The admin REST address.
    pub admin_addr: SocketAddr,
    master_key: String,
    dir: Option<tempfile::TempDir>,
}

impl Host {
    /// A client of this host's data plane holding the master key.
    pub fn http(&self) -> Client {
        Client::tcp(self.addr).bearer(&self.master_key)
    }

    /// `kill -9` of the whole host (its data plane follows its launcher).
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// The launcher's log so far.
    pub fn log(&self) -> String {
        let dir = self.dir.as_ref().expect("host directory").path();
        std::fs::read_to_string(dir.join("miroir.log")).unwrap_or_default()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.proc = None;
        if let Some(d) = self.dir.take() {
            crate::keep_if_panicking(d);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.dataplane = None;
        self.admin = None;
        // Stop the nodes before their databases' directory goes.
        self.nodes.clear();
        if let Some(d) = self.dir.take() {
            crate::keep_if_panicking(d);
        }
    }
}

fn config_yaml(
    spec: &ClusterSpec,
    node_yaml: &str,
    data_dir: &Path,
    addr: SocketAddr,
    admin_addr: SocketAddr,
) -> String {
    let mut y = format!("master_key: \"{}\"\n", spec.master_key);
    if let Some(k) = &spec.node_master_key {
        y.push_str(&format!("node_master_key: \"{k}\"\n"));
    }
    y.push_str(&format!(
        "shards: {}\nreplication_factor: {}\nreplica_groups: {}\ndata_dir: \"{}\"\nnodes:\n{node_yaml}",
        spec.shards,
        spec.replication_factor,
        spec.replica_groups,
        data_dir.display()
    ));
    let io = spec
        .io
        .as_ref()
        .map_or(String::new(), |io| format!(", io: {io}"));
    y.push_str(&format!(
        "server: {{ bind: \"127.0.0.1\", port: {}, workers: {}{io} }}\n",
        addr.port(),
        spec.workers
    ));
    let key = spec
        .admin_api_key
        .as_ref()
        .map_or(String::new(), |k| format!(", api_key: \"{k}\""));
    y.push_str(&format!(
        "admin: {{ bind: \"127.0.0.1\", port: {}{key} }}\n",
        admin_addr.port()
    ));
    let h = spec.health;
    y.push_str(&format!(
        "health: {{ interval_ms: {}, timeout_ms: {}, unhealthy_threshold: {}, recovery_threshold: {} }}\n",
        h.interval_ms, h.timeout_ms, h.unhealthy_threshold, h.recovery_threshold
    ));
    let policy = spec
        .unavailable_shard_policy
        .as_ref()
        .map_or(String::new(), |p| {
            format!(", unavailable_shard_policy: {p}")
        });
    let more = if spec.scatter_extra.is_empty() {
        String::new()
    } else {
        format!(", {}", spec.scatter_extra)
    };
    y.push_str(&format!(
        "scatter: {{ node_timeout_ms: {}{policy}{more} }}\n",
        spec.node_timeout_ms
    ));
    y.push_str(&spec.extra_yaml);
    y
}
