//! End-to-end test support: the real binaries (`miroir-testnode`, `miroir`, `miroir-admin`,
//! `miroir-dataplane`) started by the workspace test kit (`miroir-testkit`) with this suite's
//! settings. No mocks: these tests see Miroir exactly as an SDK does.

use serde_json::Value;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};

pub use miroir_testkit::{
    bin, free_port, read_request, temp_dir, try_wait_until, wait_until, within, Client,
    ClusterSpec, NodeSpec, Proc, Redis, Response, TestNode,
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
        meilisearch: real_meilisearch(),
        ..NodeSpec::in_dir(dir, name, master_key)
    })
}

/// Test nodes + the one-command `miroir` launcher (admin + data plane) with an embedded LMDB
/// store; the spec's health and timeouts as given.
pub struct Cluster(pub miroir_testkit::Cluster);

impl Cluster {
    pub fn start(spec: ClusterSpec) -> Cluster {
        Cluster(miroir_testkit::Cluster::start(ClusterSpec {
            launch: miroir_testkit::Launch::OneCommand,
            meilisearch: spec.meilisearch.clone().or_else(real_meilisearch),
            ..spec
        }))
    }
}

impl Deref for Cluster {
    type Target = miroir_testkit::Cluster;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// How a [`Deployment`] is configured beyond the shape in its [`ClusterSpec`] (these replace
/// the spec's health, node timeout, admin key and environment).
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
        Deployment(miroir_testkit::Cluster::start(ClusterSpec {
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
            meilisearch: spec.meilisearch.clone().or_else(real_meilisearch),
            ..spec.clone()
        }))
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
