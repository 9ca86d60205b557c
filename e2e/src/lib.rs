//! End-to-end test support: the real binaries (`miroir-testnode`, `miroir`, `miroir-admin`,
//! `miroir-dataplane`) started by the workspace test kit (`miroir-testkit`) with this suite's
//! settings. No mocks: these tests see Miroir exactly as an SDK does.

use serde_json::Value;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};

pub use miroir_testkit::{
    bin, free_port, temp_dir, wait_until, within, Client, NodeSpec, Proc, Redis, Response, TestNode,
};

/// The real Meilisearch binary to use as nodes instead of `miroir-testnode`
/// (`MIROIR_E2E_MEILI_BIN`), for checking Miroir against the real thing locally. Tests that
/// need the test node's fault injection or uid assumptions say so and are run only without it.
pub fn real_meilisearch() -> Option<PathBuf> {
    std::env::var_os("MIROIR_E2E_MEILI_BIN").map(PathBuf::from)
}

/// A node on its own (e.g. a reference holding the whole corpus): database and log in `dir`.
pub fn start_node(dir: &Path, name: &str, master_key: &str) -> TestNode {
    TestNode::start(NodeSpec {
        name: name.into(),
        db: Some(dir.join(name)),
        master_key: Some(master_key.into()),
        faults: true,
        log_dir: Some(dir.to_path_buf()),
        meilisearch: real_meilisearch(),
        ..NodeSpec::default()
    })
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

impl ClusterSpec {
    fn kit(&self) -> miroir_testkit::ClusterSpec {
        miroir_testkit::ClusterSpec {
            replica_groups: self.replica_groups,
            nodes_per_group: self.nodes_per_group,
            replication_factor: self.replication_factor,
            shards: self.shards,
            master_key: self.master_key.clone(),
            extra_yaml: self.extra_yaml.clone(),
            meilisearch: real_meilisearch(),
            ..miroir_testkit::ClusterSpec::default()
        }
    }
}

/// Test nodes + the one-command `miroir` launcher (admin + data plane) with an embedded LMDB
/// store.
pub struct Cluster(pub miroir_testkit::Cluster);

impl Cluster {
    pub fn start(spec: ClusterSpec) -> Cluster {
        Cluster(miroir_testkit::Cluster::start(
            miroir_testkit::ClusterSpec {
                launch: miroir_testkit::Launch::OneCommand,
                ..spec.kit()
            },
        ))
    }
}

impl Deref for Cluster {
    type Target = miroir_testkit::Cluster;
    fn deref(&self) -> &Self::Target {
        &self.0
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

/// The deployment's `admin.api_key`.
pub const ADMIN_KEY: &str = "e2e-admin-key";

/// Test nodes + `miroir-admin` + `miroir-dataplane` as two separate processes sharing one
/// config, so each can be killed and restarted on its own (the Kubernetes-sidecar shape).
pub struct Deployment(pub miroir_testkit::Cluster);

impl Deployment {
    pub fn start(spec: &ClusterSpec, opts: &DeploymentOptions) -> Deployment {
        let base = spec.kit();
        Deployment(miroir_testkit::Cluster::start(
            miroir_testkit::ClusterSpec {
                admin_api_key: Some(ADMIN_KEY.into()),
                health: miroir_testkit::Health {
                    interval_ms: opts.health_interval_ms,
                    timeout_ms: opts.health_timeout_ms,
                    unhealthy_threshold: opts.unhealthy_threshold,
                    recovery_threshold: 1,
                },
                node_timeout_ms: opts.node_timeout_ms,
                extra_yaml: format!("{}{}", opts.extra_yaml, spec.extra_yaml),
                env: vec![
                    ("RUST_LOG".into(), "warn".into()),
                    ("MIROIR_LOG".into(), "warn".into()),
                ],
                ..base
            },
        ))
    }

    /// Sends a write, asserts 202 and returns the summarized task's uid.
    pub fn write(&self, method: &str, path: &str, body: &Value) -> u64 {
        let r = self.http().send_json(method, path, body).expect("write");
        assert_eq!(r.status, 202, "{method} {path}: {}", r.text());
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

impl Deref for Deployment {
    type Target = miroir_testkit::Cluster;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Deployment {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}
