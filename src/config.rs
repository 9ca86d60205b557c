//! Configuration: a YAML file, then `MIROIR_*` environment overrides, then CLI flags; validated
//! once at start with messages that name the offending key and value. Unknown keys are errors.
//!
//! NOTE(skeleton): loading (YAML, env, CLI) and `validate()` are completed by the core library
//! work (issue 2). The field names follow the seed plan's §4 schema and are the agreed shape.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Key clients present (as to a single Meilisearch). `None` = no auth (development only).
    pub master_key: Option<String>,
    /// Key Miroir presents to the nodes. Defaults to `master_key`.
    pub node_master_key: Option<String>,
    /// Shards per index (S), fixed at index creation.
    pub shards: u32,
    pub replication_factor: u32,
    pub replica_groups: u32,
    pub nodes: Vec<NodeConfig>,
    /// Where the admin keeps its LMDB environments and the control socket.
    pub data_dir: PathBuf,
    pub task_store: TaskStoreConfig,
    pub admin: AdminConfig,
    pub server: ServerConfig,
    pub health: HealthConfig,
    pub scatter: ScatterConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub id: String,
    pub address: String,
    #[serde(default)]
    pub replica_group: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStoreBackend {
    Lmdb,
    Redis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaskStoreConfig {
    pub backend: TaskStoreBackend,
    /// LMDB directory; defaults to `{data_dir}/tasks`.
    pub path: Option<PathBuf>,
    /// Redis URL, required when `backend: redis`.
    pub url: Option<String>,
    /// Terminal tasks kept at most (oldest pruned first).
    pub max_tasks: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Key for `/_miroir/*` (Bearer or `X-Admin-Key`). Defaults to `master_key`.
    pub api_key: Option<String>,
    pub bind: String,
    pub port: u16,
    /// Unix socket the data plane forwards control-path requests to.
    /// Defaults to `{data_dir}/control.sock`.
    pub control_socket: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IoBackend {
    /// io_uring when the kernel allows it, else epoll.
    Auto,
    IoUring,
    Epoll,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub bind: String,
    pub port: u16,
    pub max_body_bytes: u64,
    /// Reactor count; `None` = available cores.
    pub workers: Option<usize>,
    pub io: IoBackend,
    /// Prometheus metrics port; `None` = only `/_miroir/metrics`.
    pub metrics_port: Option<u16>,
    pub max_connections_per_core: usize,
    pub header_read_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    /// Deadline for finishing in-flight requests on SIGTERM.
    pub shutdown_grace_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub unhealthy_threshold: u32,
    pub recovery_threshold: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnavailableShardPolicy {
    Partial,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScatterConfig {
    pub node_timeout_ms: u64,
    pub unavailable_shard_policy: UnavailableShardPolicy,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            master_key: None,
            node_master_key: None,
            shards: 64,
            replication_factor: 1,
            replica_groups: 1,
            nodes: Vec::new(),
            data_dir: PathBuf::from("./miroir-data"),
            task_store: TaskStoreConfig::default(),
            admin: AdminConfig::default(),
            server: ServerConfig::default(),
            health: HealthConfig::default(),
            scatter: ScatterConfig::default(),
        }
    }
}

impl Default for TaskStoreConfig {
    fn default() -> Self {
        TaskStoreConfig {
            backend: TaskStoreBackend::Lmdb,
            path: None,
            url: None,
            max_tasks: 1_000_000,
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig { api_key: None, bind: "127.0.0.1".into(), port: 7701, control_socket: None }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "0.0.0.0".into(),
            port: 7700,
            max_body_bytes: 100 * 1024 * 1024,
            workers: None,
            io: IoBackend::Auto,
            metrics_port: None,
            max_connections_per_core: 10_000,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            shutdown_grace_ms: 10_000,
        }
    }
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval_ms: 5_000,
            timeout_ms: 2_000,
            unhealthy_threshold: 3,
            recovery_threshold: 2,
        }
    }
}

impl Default for ScatterConfig {
    fn default() -> Self {
        ScatterConfig {
            node_timeout_ms: 5_000,
            unavailable_shard_policy: UnavailableShardPolicy::Partial,
        }
    }
}
