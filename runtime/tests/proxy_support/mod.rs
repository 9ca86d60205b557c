//! Shared helpers of the `proxy_*` integration tests: a cluster of REAL processes — several
//! `miroir-testnode`s, `miroir-admin` and `miroir-dataplane` — started by the workspace test
//! kit (`miroir-testkit`) with this suite's config.
#![allow(dead_code)]

use miroir_testkit::{Client, ClusterSpec, Health, Launch, NodeSpec};
use serde_json::{json, Value};
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::time::Duration;

pub use miroir_testkit::{Response as Resp, TestNode};

pub const NODE_KEY: &str = "node-master-key";
const CLIENT_KEY: &str = "client-master-key";

/// A `miroir-testnode` with fault injection holding the nodes' master key, its database and
/// log in `dir`.
pub fn start_node(dir: &Path, name: &str) -> TestNode {
    TestNode::start(NodeSpec::in_dir(dir, name, NODE_KEY))
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

/// Test nodes (ids `g{group}n{i}`) + admin + data plane, all real processes.
pub struct Cluster {
    inner: miroir_testkit::Cluster,
    /// The data plane's `host:port`.
    pub proxy: String,
}

impl Cluster {
    pub fn start(_name: &str, layout: Layout) -> Cluster {
        let inner = miroir_testkit::Cluster::start(ClusterSpec {
            replica_groups: layout.groups,
            nodes_per_group: layout.per_group,
            replication_factor: layout.rf,
            shards: layout.shards,
            master_key: CLIENT_KEY.into(),
            node_master_key: Some(NODE_KEY.into()),
            node_id: |g, i, _| format!("g{g}n{i}"),
            admin_api_key: Some("admin-key".into()),
            workers: 2,
            io: Some(layout.io.into()),
            health: Health {
                interval_ms: 60_000,
                timeout_ms: 1000,
                unhealthy_threshold: 3,
                recovery_threshold: 2,
            },
            node_timeout_ms: layout.node_timeout_ms,
            unavailable_shard_policy: Some(layout.policy.into()),
            launch: Launch::Separate,
            ..ClusterSpec::default()
        });
        let proxy = inner.addr.to_string();
        Cluster { inner, proxy }
    }

    /// A request with a raw body and content type.
    pub fn call_raw(&self, method: &str, path: &str, content_type: &str, body: Vec<u8>) -> Resp {
        self.http()
            .call_raw(method, path, Some((content_type, &body)))
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
        self.log("dataplane")
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find_map(|v| v["io_backend"].as_str().map(str::to_string))
            .unwrap_or_else(|| "unknown".into())
    }
}

impl Deref for Cluster {
    type Target = miroir_testkit::Cluster;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

pub fn wait_until(what: &str, ok: impl FnMut() -> bool) {
    miroir_testkit::wait_until(miroir_testkit::within(Duration::from_secs(30)), what, ok)
}

/// One request on a fresh connection with these headers; `body` = (content type, bytes).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
) -> Resp {
    let client = headers
        .iter()
        .fold(Client::tcp(addr), |c, (n, v)| c.header(n, v));
    client.call_raw(
        method,
        path,
        body.as_ref().map(|(ct, b)| (*ct, b.as_slice())),
    )
}
