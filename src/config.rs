//! Configuration: a YAML file, then `MIROIR_*` environment overrides, then CLI flags; validated
//! once at start with messages that name the offending key and value. Unknown keys are errors
//! (the YAML error names the key, the line and the column).
//!
//! Layering is explicit and testable: [`Config::from_yaml_str`] parses, [`Config::apply_env`]
//! takes the environment as an iterator (so tests never touch the process environment),
//! `ConfigArgs::apply` (feature `cli`) applies flags, and [`Config::validate`] checks the
//! result and reports every problem at once. [`resolve_with`] chains them.
//!
//! Paths derived from `data_dir` (snapshot, task store, control socket) have accessors here so
//! that the admin and the data plane, two processes, compute the same paths.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

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
    /// How many owners of a shard in a replica group must accept a write
    /// (docs/contract.md#write-consistency, decision 020).
    pub write_consistency: WriteConsistency,
    /// Hinted writes: replaying missed copies (docs/operations.md#hinted-writes).
    pub hints: HintsConfig,
    /// Settling of node tasks that cannot be observed (docs/operations.md#task-settling).
    pub tasks: TasksConfig,
    /// Comparing and repairing shard copies (docs/operations.md#anti-entropy).
    pub antientropy: AntiEntropyConfig,
    /// How topology operations copy data (docs/operations.md#topology-operations).
    pub rebalance: RebalanceConfig,
    /// A webhook called with every finished task, set here rather than through the API
    /// (Meilisearch's `--task-webhook-url`): listed with the nil uuid, not editable.
    pub task_webhook: TaskWebhookConfig,
}

/// Acknowledgements a replica group needs for a shard before it counts (decision 020). A
/// write succeeds when every shard has one group that reached the level; copies it missed
/// are completed by hints either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteConsistency {
    /// One owner of the shard in the group (writes survive RF−1 owners down).
    #[default]
    One,
    /// `floor(RF/2)+1` owners (the rule before write consistency was configurable).
    Majority,
    /// Every owner of the shard in the group.
    All,
}

impl WriteConsistency {
    pub fn as_str(self) -> &'static str {
        match self {
            WriteConsistency::One => "one",
            WriteConsistency::Majority => "majority",
            WriteConsistency::All => "all",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HintsConfig {
    /// How often the admin looks for hints to replay (and re-checks unreachable targets).
    pub replay_interval_ms: u64,
    /// Attempts at one hint whose replay task fails on the node before it is dropped (and
    /// counted in `miroir_hints_failed_total`); an unreachable node is retried without limit.
    pub max_attempts: u32,
}

impl Default for HintsConfig {
    fn default() -> Self {
        HintsConfig {
            replay_interval_ms: 500,
            max_attempts: 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TasksConfig {
    /// A node task that could not be asked for this long after its Miroir task was enqueued
    /// settles as failed with `miroir_node_task_lost`.
    pub node_task_timeout_ms: u64,
    /// Unfinished tasks the background refresher asks the nodes about per round (oldest
    /// first, then round-robin through the rest, so none starves).
    pub refresh_per_round: u32,
}

impl Default for TasksConfig {
    fn default() -> Self {
        TasksConfig {
            node_task_timeout_ms: 600_000,
            refresh_per_round: 100,
        }
    }
}

/// `rebalance:` — how topology operations copy data (docs/operations.md#topology-operations).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RebalanceConfig {
    /// Documents per page read from a shard's current owner and written to its new one.
    pub page_size: u32,
    /// Copy rate limit in documents per second over all moves (`0` = unlimited), so a
    /// migration does not starve searches.
    pub max_docs_per_sec: u64,
    /// How long a `failed` node keeps its shards before the rebalancer re-creates its copies
    /// on the other nodes of its group from surviving copies (`0` = never automatically).
    pub failed_node_grace_secs: u64,
}

impl Default for RebalanceConfig {
    fn default() -> Self {
        RebalanceConfig {
            page_size: 1000,
            max_docs_per_sec: 0,
            failed_node_grace_secs: 0,
        }
    }
}

/// `task_webhook:` (decision 028).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaskWebhookConfig {
    pub url: Option<String>,
    /// Sent as the `Authorization` header of each call.
    pub authorization_header: Option<String>,
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
    /// What the admin does when the Redis task store does not persist what it acknowledges
    /// (`appendonly no`, or `appendfsync no`): `require` refuses to start, `warn` logs and
    /// goes on. See docs/deploy notes in `docs/architecture.md#redis-durability`.
    pub redis_persistence: RedisPersistence,
}

/// `task_store.redis_persistence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisPersistence {
    Require,
    Warn,
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
    /// With several hosts on one Redis store: the URL (`http://host:port`) other hosts'
    /// admins reach this admin's REST listener at, to forward control requests to the leader.
    /// Defaults to `http://{admin.bind}:{admin.port}` (set it when binding `0.0.0.0`).
    pub advertise_address: Option<String>,
    /// Leader lease time to live: a dead leader is replaced at most this long (plus one
    /// renewal interval) after its last renewal.
    pub lease_ttl_ms: u64,
    /// How often the leader renews its lease and the other hosts try to take a vacant one.
    pub lease_renew_ms: u64,
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
    /// Deadline for a request's whole body, from the end of its head (a client trickling a
    /// body is cut off here, whatever the pace of its reads).
    pub body_read_timeout_ms: u64,
    /// Request-body bytes one core holds at once (declared lengths of bodies being read
    /// and not yet answered); a request beyond it is answered `503 unavailable`.
    pub max_body_bytes_in_flight_per_core: u64,
    pub idle_timeout_ms: u64,
    /// Deadline for finishing in-flight requests on SIGTERM.
    pub shutdown_grace_ms: u64,
    /// Compress responses for clients that send `Accept-Encoding` (br, gzip, deflate), as
    /// Meilisearch does.
    pub compression: bool,
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
    /// Deadline of one write's round trip to a node (document batches, deletions): a node
    /// answers a write only once it has read and enqueued the whole payload, so a large
    /// batch needs far longer than a search's `node_timeout_ms`.
    pub write_timeout_ms: u64,
    pub unavailable_shard_policy: UnavailableShardPolicy,
    /// The primary-key query planner: searches whose filter pins the primary key, and
    /// document fetches by `ids`, ask only the shards those keys route to.
    pub pk_planner: bool,
    /// Hedged reads: a slow node's shards are also asked of another replica (RF > 1 or
    /// RG > 1), the first answer wins (on: `bench/run tail-latency`, docs/benchmarks.md).
    pub hedging: bool,
    /// The earliest a hedge fires after the first request, whatever the node's latency.
    pub hedge_min_ms: u64,
    /// Identical searches in flight at once on one core share one scatter-gather.
    pub coalesce: bool,
    /// Adaptive replica selection (RF > 1): each shard is read from the owner with the best
    /// score from this core's latency EWMA, calls in flight and recent failures, instead of
    /// the plain rotation (docs/operations.md, decision 041).
    pub adaptive_replicas: bool,
}

/// Anti-entropy: comparing the copies of every shard and repairing differences
/// (docs/operations.md#anti-entropy). A run reads every copy of every shard in full, so the
/// schedule is off by default and runs are paced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AntiEntropyConfig {
    /// Seconds between scheduled runs; `0` = no schedule (on demand only: `miroir-ctl verify`).
    pub interval_s: u64,
    /// Whether scheduled runs repair what they find (on-demand runs say so per request).
    pub repair: bool,
    /// Shards verified at once.
    pub concurrency: u32,
    /// Documents per page when a copy is read.
    pub page_size: u32,
    /// Documents read per second over the whole run, all copies together; `0` = unpaced.
    pub max_documents_per_second: u64,
    /// Buckets a differing shard is split into to narrow the difference down to ids.
    pub buckets: u32,
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
            write_consistency: WriteConsistency::default(),
            hints: HintsConfig::default(),
            tasks: TasksConfig::default(),
            antientropy: AntiEntropyConfig::default(),
            rebalance: RebalanceConfig::default(),
            task_webhook: TaskWebhookConfig::default(),
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
            redis_persistence: RedisPersistence::Require,
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            api_key: None,
            bind: "127.0.0.1".into(),
            port: 7701,
            control_socket: None,
            advertise_address: None,
            lease_ttl_ms: 5_000,
            lease_renew_ms: 1_000,
        }
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
            body_read_timeout_ms: 120_000,
            max_body_bytes_in_flight_per_core: 256 * 1024 * 1024,
            idle_timeout_ms: 60_000,
            shutdown_grace_ms: 10_000,
            compression: true,
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
            // Sized for a 100 MiB batch (the default `server.max_body_bytes`) to a node
            // that reads slowly while it indexes.
            write_timeout_ms: 60_000,
            unavailable_shard_policy: UnavailableShardPolicy::Partial,
            pk_planner: true,
            hedging: true,
            hedge_min_ms: 10,
            coalesce: false,
            adaptive_replicas: false,
        }
    }
}

impl Default for AntiEntropyConfig {
    fn default() -> Self {
        AntiEntropyConfig {
            interval_s: 0,
            repair: false,
            concurrency: 2,
            page_size: 1000,
            max_documents_per_second: 50_000,
            buckets: 128,
        }
    }
}

impl FromStr for TaskStoreBackend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "lmdb" => Ok(TaskStoreBackend::Lmdb),
            "redis" => Ok(TaskStoreBackend::Redis),
            _ => Err(format!(
                "`{s}` is not a task store backend (expected `lmdb` or `redis`)"
            )),
        }
    }
}

impl FromStr for IoBackend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(IoBackend::Auto),
            "io_uring" | "io-uring" | "iouring" => Ok(IoBackend::IoUring),
            "epoll" => Ok(IoBackend::Epoll),
            _ => Err(format!(
                "`{s}` is not an I/O backend (expected `auto`, `io_uring` or `epoll`)"
            )),
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// serde_yaml_ng's message names the key and carries `at line L column C`.
    #[error("invalid config{}: {message}", path.as_ref().map(|p| format!(" file {}", p.display())).unwrap_or_default())]
    Yaml {
        path: Option<PathBuf>,
        message: String,
    },
    #[error("environment variable {var}={value:?}: {reason}")]
    Env {
        var: String,
        value: String,
        reason: String,
    },
    #[error("invalid configuration:\n  - {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  - "))]
    Invalid(Vec<Problem>),
}

/// One validation problem: the dotted key path and what is wrong with its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Environment variables [`Config::apply_env`] understands, with the key each overrides.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("MIROIR_MASTER_KEY", "master_key"),
    ("MIROIR_NODE_MASTER_KEY", "node_master_key"),
    ("MIROIR_ADMIN_API_KEY", "admin.api_key"),
    ("MIROIR_SHARDS", "shards"),
    ("MIROIR_REPLICATION_FACTOR", "replication_factor"),
    ("MIROIR_REPLICA_GROUPS", "replica_groups"),
    ("MIROIR_DATA_DIR", "data_dir"),
    ("MIROIR_SERVER_BIND", "server.bind"),
    ("MIROIR_SERVER_PORT", "server.port"),
    ("MIROIR_ADMIN_BIND", "admin.bind"),
    ("MIROIR_ADMIN_PORT", "admin.port"),
    ("MIROIR_CONTROL_SOCKET", "admin.control_socket"),
    ("MIROIR_ADMIN_ADVERTISE_ADDRESS", "admin.advertise_address"),
    ("MIROIR_TASK_STORE_BACKEND", "task_store.backend"),
    ("MIROIR_TASK_STORE_URL", "task_store.url"),
    ("MIROIR_TASK_STORE_PATH", "task_store.path"),
    ("MIROIR_WORKERS", "server.workers"),
    ("MIROIR_IO", "server.io"),
    ("MIROIR_METRICS_PORT", "server.metrics_port"),
    ("MIROIR_MAX_BODY_BYTES", "server.max_body_bytes"),
    ("MIROIR_TASK_WEBHOOK_URL", "task_webhook.url"),
    (
        "MIROIR_TASK_WEBHOOK_AUTHORIZATION_HEADER",
        "task_webhook.authorization_header",
    ),
];

fn parse_env<T: FromStr>(var: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    value.trim().parse::<T>().map_err(|e| ConfigError::Env {
        var: var.to_string(),
        value: value.to_string(),
        reason: e.to_string(),
    })
}

impl Config {
    /// Parses YAML. Missing keys take their defaults; unknown keys are errors.
    pub fn from_yaml_str(yaml: &str) -> Result<Config, ConfigError> {
        // An empty file (or only comments) means "all defaults", not "invalid type: unit".
        if yaml
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            return Ok(Config::default());
        }
        serde_yaml_ng::from_str(yaml).map_err(|e| ConfigError::Yaml {
            path: None,
            message: e.to_string(),
        })
    }

    /// Reads and parses a YAML file (no environment, no validation: see [`resolve_with`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_yaml_str(&text).map_err(|e| match e {
            ConfigError::Yaml { message, .. } => ConfigError::Yaml {
                path: Some(path.to_path_buf()),
                message,
            },
            other => other,
        })
    }

    /// Applies `MIROIR_*` overrides from `vars` (see [`ENV_VARS`]). Variables outside that list
    /// are ignored (other `MIROIR_*` variables, e.g. for logging, belong to the binaries). An
    /// empty value for an optional key clears it.
    pub fn apply_env<I, K, V>(&mut self, vars: I) -> Result<(), ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        for (k, v) in vars {
            let (var, value) = (k.as_ref(), v.as_ref());
            let opt = |v: &str| {
                if v.is_empty() {
                    None
                } else {
                    Some(v.to_string())
                }
            };
            match var {
                "MIROIR_MASTER_KEY" => self.master_key = opt(value),
                "MIROIR_NODE_MASTER_KEY" => self.node_master_key = opt(value),
                "MIROIR_ADMIN_API_KEY" => self.admin.api_key = opt(value),
                "MIROIR_SHARDS" => self.shards = parse_env(var, value)?,
                "MIROIR_REPLICATION_FACTOR" => self.replication_factor = parse_env(var, value)?,
                "MIROIR_REPLICA_GROUPS" => self.replica_groups = parse_env(var, value)?,
                "MIROIR_DATA_DIR" => self.data_dir = PathBuf::from(value),
                "MIROIR_SERVER_BIND" => self.server.bind = value.to_string(),
                "MIROIR_SERVER_PORT" => self.server.port = parse_env(var, value)?,
                "MIROIR_ADMIN_BIND" => self.admin.bind = value.to_string(),
                "MIROIR_ADMIN_PORT" => self.admin.port = parse_env(var, value)?,
                "MIROIR_CONTROL_SOCKET" => {
                    self.admin.control_socket = opt(value).map(PathBuf::from)
                }
                "MIROIR_ADMIN_ADVERTISE_ADDRESS" => self.admin.advertise_address = opt(value),
                "MIROIR_TASK_STORE_BACKEND" => self.task_store.backend = parse_env(var, value)?,
                "MIROIR_TASK_STORE_URL" => self.task_store.url = opt(value),
                "MIROIR_TASK_STORE_PATH" => self.task_store.path = opt(value).map(PathBuf::from),
                "MIROIR_WORKERS" => {
                    self.server.workers = if value.is_empty() {
                        None
                    } else {
                        Some(parse_env(var, value)?)
                    }
                }
                "MIROIR_IO" => self.server.io = parse_env(var, value)?,
                "MIROIR_METRICS_PORT" => {
                    self.server.metrics_port = if value.is_empty() {
                        None
                    } else {
                        Some(parse_env(var, value)?)
                    }
                }
                "MIROIR_MAX_BODY_BYTES" => self.server.max_body_bytes = parse_env(var, value)?,
                "MIROIR_TASK_WEBHOOK_URL" => self.task_webhook.url = opt(value),
                "MIROIR_TASK_WEBHOOK_AUTHORIZATION_HEADER" => {
                    self.task_webhook.authorization_header = opt(value)
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Checks the whole configuration and reports every problem, each naming its key and the
    /// offending value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// The problems [`Config::validate`] reports (empty = valid).
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |key: String, message: String| out.push(Problem { key, message });

        if self.shards == 0 {
            bad("shards".into(), "must be at least 1 (got 0)".into());
        }
        if self.replication_factor == 0 {
            bad(
                "replication_factor".into(),
                "must be at least 1 (got 0)".into(),
            );
        }
        if self.replica_groups == 0 {
            bad("replica_groups".into(), "must be at least 1 (got 0)".into());
        }
        if self.nodes.is_empty() {
            bad("nodes".into(), "at least one node is required".into());
        }
        for (key, value) in [
            ("master_key", &self.master_key),
            ("node_master_key", &self.node_master_key),
            ("admin.api_key", &self.admin.api_key),
        ] {
            if value.as_deref() == Some("") {
                bad(key.into(), "must not be empty (omit it instead)".into());
            }
        }

        let mut seen_ids: Vec<(&str, usize)> = Vec::new();
        let mut seen_addrs: Vec<(&str, usize)> = Vec::new();
        let mut per_group = vec![0u32; self.replica_groups as usize];
        for (i, node) in self.nodes.iter().enumerate() {
            if !valid_node_id(&node.id) {
                bad(
                    format!("nodes[{i}].id"),
                    format!(
                        "`{}` is not a valid node id (1 to 64 characters of A-Z a-z 0-9 . _ -)",
                        node.id
                    ),
                );
            }
            if let Some((_, j)) = seen_ids.iter().find(|(id, _)| *id == node.id) {
                bad(
                    format!("nodes[{i}].id"),
                    format!("duplicate node id `{}` (also nodes[{j}])", node.id),
                );
            } else {
                seen_ids.push((&node.id, i));
            }
            if let Err(why) = check_node_address(&node.address) {
                bad(
                    format!("nodes[{i}].address"),
                    format!("`{}` {why}", node.address),
                );
            } else if let Some((_, j)) = seen_addrs.iter().find(|(a, _)| *a == node.address) {
                bad(
                    format!("nodes[{i}].address"),
                    format!("`{}` is also the address of nodes[{j}]", node.address),
                );
            } else {
                seen_addrs.push((&node.address, i));
            }
            match per_group.get_mut(node.replica_group as usize) {
                Some(count) => *count += 1,
                None => bad(
                    format!("nodes[{i}].replica_group"),
                    format!(
                        "{} is out of range: replica_groups is {}, so groups are 0..={}",
                        node.replica_group,
                        self.replica_groups,
                        self.replica_groups.saturating_sub(1)
                    ),
                ),
            }
        }
        if !self.nodes.is_empty() {
            for (g, &count) in per_group.iter().enumerate() {
                if count == 0 {
                    bad(
                        "replica_groups".into(),
                        format!(
                            "group {g} has no nodes (replica_groups is {})",
                            self.replica_groups
                        ),
                    );
                } else if self.replication_factor > count {
                    bad(
                        "replication_factor".into(),
                        format!(
                            "{} is larger than replica group {g}, which has {count} node(s)",
                            self.replication_factor
                        ),
                    );
                }
            }
        }

        if self.task_store.backend == TaskStoreBackend::Redis {
            match self.task_store.url.as_deref() {
                None => bad(
                    "task_store.url".into(),
                    "is required when task_store.backend is `redis`".into(),
                ),
                Some(u)
                    if !(u.starts_with("redis://")
                        || u.starts_with("rediss://")
                        || u.starts_with("redis+unix://")
                        || u.starts_with("unix://")) =>
                {
                    bad(
                        "task_store.url".into(),
                        format!(
                            "`{u}` is not a Redis URL (expected redis://, rediss:// or unix://)"
                        ),
                    )
                }
                Some(_) => {}
            }
        }
        if self.task_store.max_tasks == 0 {
            bad(
                "task_store.max_tasks".into(),
                "must be at least 1 (got 0)".into(),
            );
        }

        for (key, bind) in [
            ("server.bind", &self.server.bind),
            ("admin.bind", &self.admin.bind),
        ] {
            if bind.parse::<IpAddr>().is_err() {
                bad(
                    key.into(),
                    format!("`{bind}` is not an IP address (e.g. 0.0.0.0, 127.0.0.1, ::)"),
                );
            }
        }
        let mut ports: Vec<(&str, u16)> = vec![
            ("server.port", self.server.port),
            ("admin.port", self.admin.port),
        ];
        if let Some(p) = self.server.metrics_port {
            ports.push(("server.metrics_port", p));
        }
        // Port 0 asks the OS for a free port, so it never clashes.
        for (i, (key, port)) in ports.iter().enumerate() {
            if *port == 0 {
                continue;
            }
            if let Some((other, _)) = ports[..i].iter().find(|(_, p)| p == port) {
                bad(
                    (*key).into(),
                    format!("port {port} is already used by {other}"),
                );
            }
        }

        if self.server.workers == Some(0) {
            bad(
                "server.workers".into(),
                "must be at least 1 (got 0); omit it to use every core".into(),
            );
        }
        for (key, v) in [
            ("server.max_body_bytes", self.server.max_body_bytes),
            (
                "server.max_connections_per_core",
                self.server.max_connections_per_core as u64,
            ),
            (
                "server.header_read_timeout_ms",
                self.server.header_read_timeout_ms,
            ),
            ("server.idle_timeout_ms", self.server.idle_timeout_ms),
            (
                "server.body_read_timeout_ms",
                self.server.body_read_timeout_ms,
            ),
            (
                "server.max_body_bytes_in_flight_per_core",
                self.server.max_body_bytes_in_flight_per_core,
            ),
            ("health.interval_ms", self.health.interval_ms),
            ("health.timeout_ms", self.health.timeout_ms),
            (
                "health.unhealthy_threshold",
                u64::from(self.health.unhealthy_threshold),
            ),
            (
                "health.recovery_threshold",
                u64::from(self.health.recovery_threshold),
            ),
            ("scatter.node_timeout_ms", self.scatter.node_timeout_ms),
            ("scatter.write_timeout_ms", self.scatter.write_timeout_ms),
            ("hints.replay_interval_ms", self.hints.replay_interval_ms),
            ("hints.max_attempts", u64::from(self.hints.max_attempts)),
            (
                "tasks.node_task_timeout_ms",
                self.tasks.node_task_timeout_ms,
            ),
            (
                "tasks.refresh_per_round",
                u64::from(self.tasks.refresh_per_round),
            ),
            ("admin.lease_ttl_ms", self.admin.lease_ttl_ms),
            ("admin.lease_renew_ms", self.admin.lease_renew_ms),
            (
                "antientropy.concurrency",
                u64::from(self.antientropy.concurrency),
            ),
            (
                "antientropy.page_size",
                u64::from(self.antientropy.page_size),
            ),
            ("antientropy.buckets", u64::from(self.antientropy.buckets)),
            ("rebalance.page_size", u64::from(self.rebalance.page_size)),
        ] {
            if v == 0 {
                bad(key.into(), "must be at least 1 (got 0)".into());
            }
        }
        if self.admin.lease_renew_ms >= self.admin.lease_ttl_ms {
            bad(
                "admin.lease_renew_ms".into(),
                format!(
                    "must be shorter than admin.lease_ttl_ms ({} ms), else the leader loses its lease between two renewals (got {})",
                    self.admin.lease_ttl_ms, self.admin.lease_renew_ms
                ),
            );
        }
        // Per-bucket fingerprints are held for every copy of a shard being compared.
        if self.antientropy.buckets > 65_536 {
            bad(
                "antientropy.buckets".into(),
                format!("must be at most 65536 (got {})", self.antientropy.buckets),
            );
        }
        out
    }

    /// Key Miroir presents to the nodes: `node_master_key`, else `master_key`.
    pub fn effective_node_master_key(&self) -> Option<&str> {
        self.node_master_key
            .as_deref()
            .or(self.master_key.as_deref())
    }

    /// `admin.advertise_address`, else `http://{admin.bind}:{admin.port}`.
    pub fn admin_advertise_address(&self) -> String {
        self.admin
            .advertise_address
            .clone()
            .unwrap_or_else(|| format!("http://{}:{}", self.admin.bind, self.admin.port))
    }

    /// Key for `/_miroir/*`: `admin.api_key`, else `master_key`.
    pub fn effective_admin_key(&self) -> Option<&str> {
        self.admin.api_key.as_deref().or(self.master_key.as_deref())
    }

    /// `admin.control_socket`, else `{data_dir}/control.sock`.
    pub fn control_socket_path(&self) -> PathBuf {
        self.admin
            .control_socket
            .clone()
            .unwrap_or_else(|| self.data_dir.join("control.sock"))
    }

    /// `task_store.path`, else `{data_dir}/tasks`.
    pub fn task_store_path(&self) -> PathBuf {
        self.task_store
            .path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("tasks"))
    }

    /// `{data_dir}/snapshot` (the LMDB snapshot channel).
    pub fn snapshot_path(&self) -> PathBuf {
        self.data_dir.join("snapshot")
    }
}

/// Node ids appear in metrics labels, headers and logs: keep them to a safe alphabet.
fn valid_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A node address is `http://host[:port]` or `https://host[:port]`, optionally with one
/// trailing `/`; no path, query or credentials (requests append their own path).
fn check_node_address(address: &str) -> Result<(), &'static str> {
    let rest = address
        .strip_prefix("http://")
        .or_else(|| address.strip_prefix("https://"))
        .ok_or("must start with http:// or https://")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Err("has no host");
    }
    if rest.contains(['/', '?', '#', '@']) || rest.contains(char::is_whitespace) {
        return Err("must be scheme://host[:port] without path, query or credentials");
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or("has an unterminated [IPv6] host")?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("has an invalid IPv6 host");
        }
        match after {
            "" => (h, None),
            p => (
                h,
                Some(
                    p.strip_prefix(':')
                        .ok_or("has garbage after the [IPv6] host")?,
                ),
            ),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err("has no host");
    }
    if let Some(p) = port {
        match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err("has an invalid port (expected 1..=65535)"),
            Ok(_) => {}
        }
    }
    Ok(())
}

/// File → environment → (flags, applied by the caller) → validation, without clap.
/// `vars` is normally `std::env::vars()`.
pub fn resolve_with<I, K, V>(
    path: Option<&Path>,
    vars: I,
    flags: impl FnOnce(&mut Config),
) -> Result<Config, ConfigError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut config = match path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    config.apply_env(vars)?;
    flags(&mut config);
    config.validate()?;
    Ok(config)
}

#[cfg(feature = "cli")]
pub use cli::{resolve, ConfigArgs};

#[cfg(feature = "cli")]
mod cli {
    use super::*;

    /// Configuration flags shared by `miroir`, `miroir-admin` and `miroir-dataplane`
    /// (`#[command(flatten)]` it). Flags override the environment, which overrides the file.
    #[derive(Debug, Clone, Default, PartialEq, clap::Args)]
    pub struct ConfigArgs {
        /// YAML configuration file.
        #[arg(long, short = 'c', value_name = "FILE")]
        pub config: Option<PathBuf>,
        /// Key clients present (overrides `master_key`).
        #[arg(long, value_name = "KEY")]
        pub master_key: Option<String>,
        /// Key Miroir presents to the nodes (overrides `node_master_key`).
        #[arg(long, value_name = "KEY")]
        pub node_master_key: Option<String>,
        /// Key for `/_miroir/*` (overrides `admin.api_key`).
        #[arg(long, value_name = "KEY")]
        pub admin_api_key: Option<String>,
        /// Directory for the snapshot, task store and control socket (overrides `data_dir`).
        #[arg(long, value_name = "DIR")]
        pub data_dir: Option<PathBuf>,
        /// Client-facing address (overrides `server.bind`).
        #[arg(long, value_name = "IP")]
        pub bind: Option<String>,
        /// Client-facing port (overrides `server.port`).
        #[arg(long, value_name = "PORT")]
        pub port: Option<u16>,
        /// Admin API address (overrides `admin.bind`).
        #[arg(long, value_name = "IP")]
        pub admin_bind: Option<String>,
        /// Admin API port (overrides `admin.port`).
        #[arg(long, value_name = "PORT")]
        pub admin_port: Option<u16>,
        /// Shards per new index (overrides `shards`).
        #[arg(long, value_name = "N")]
        pub shards: Option<u32>,
        /// Data-plane reactor threads (overrides `server.workers`).
        #[arg(long, value_name = "N")]
        pub workers: Option<usize>,
        /// I/O backend: auto, io_uring or epoll (overrides `server.io`).
        #[arg(long, value_name = "BACKEND")]
        pub io: Option<IoBackend>,
    }

    impl ConfigArgs {
        /// Applies the flags that were given on top of `config`.
        pub fn apply(&self, config: &mut Config) {
            let s = self.clone();
            if let Some(v) = s.master_key {
                config.master_key = Some(v);
            }
            if let Some(v) = s.node_master_key {
                config.node_master_key = Some(v);
            }
            if let Some(v) = s.admin_api_key {
                config.admin.api_key = Some(v);
            }
            if let Some(v) = s.data_dir {
                config.data_dir = v;
            }
            if let Some(v) = s.bind {
                config.server.bind = v;
            }
            if let Some(v) = s.port {
                config.server.port = v;
            }
            if let Some(v) = s.admin_bind {
                config.admin.bind = v;
            }
            if let Some(v) = s.admin_port {
                config.admin.port = v;
            }
            if let Some(v) = s.shards {
                config.shards = v;
            }
            if let Some(v) = s.workers {
                config.server.workers = Some(v);
            }
            if let Some(v) = s.io {
                config.server.io = v;
            }
        }

        /// File → process environment → these flags → validation.
        pub fn resolve(&self) -> Result<Config, ConfigError> {
            resolve(self)
        }
    }

    /// File → process environment → flags → validation.
    pub fn resolve(args: &ConfigArgs) -> Result<Config, ConfigError> {
        resolve_with(args.config.as_deref(), std::env::vars(), |c| args.apply(c))
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use clap::Parser;

        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            config: ConfigArgs,
        }

        #[test]
        fn flags_override_env_which_overrides_file() {
            let dir = std::env::temp_dir().join(format!("miroir-cli-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join("c.yaml");
            std::fs::write(
                &file,
                "shards: 8\nserver: {port: 7000}\nnodes: [{id: a, address: 'http://127.0.0.1:7710'}]\n",
            )
            .unwrap();
            let cli = Cli::parse_from([
                "x",
                "--config",
                file.to_str().unwrap(),
                "--port",
                "7100",
                "--io",
                "epoll",
                "--master-key",
                "flag",
            ]);
            let env = [
                ("MIROIR_SERVER_PORT", "7050"),
                ("MIROIR_SHARDS", "32"),
                ("MIROIR_MASTER_KEY", "env"),
            ];
            let c =
                resolve_with(cli.config.config.as_deref(), env, |c| cli.config.apply(c)).unwrap();
            assert_eq!(c.server.port, 7100);
            assert_eq!(c.shards, 32);
            assert_eq!(c.server.io, IoBackend::Epoll);
            assert_eq!(c.master_key.as_deref(), Some("flag"));
            let _ = std::fs::remove_dir_all(&dir);
        }

        #[test]
        fn flag_definitions_are_consistent() {
            use clap::CommandFactory;
            Cli::command().debug_assert();
            let none = Cli::parse_from(["x"]);
            assert_eq!(none.config, ConfigArgs::default());
            let mut c = Config::default();
            none.config.apply(&mut c);
            assert_eq!(c, Config::default(), "absent flags change nothing");
        }

        #[test]
        fn bad_flag_values_are_rejected_by_clap() {
            assert!(Cli::try_parse_from(["x", "--io", "kqueue"]).is_err());
            assert!(Cli::try_parse_from(["x", "--port", "70000"]).is_err());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "nodes:\n  - id: meili-0\n    address: http://127.0.0.1:7710\n";

    fn valid() -> Config {
        Config::from_yaml_str(MINIMAL).unwrap()
    }

    fn problem_keys(c: &Config) -> Vec<String> {
        c.problems().into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn minimal_yaml_takes_defaults() {
        let c = valid();
        assert_eq!(c.shards, 64);
        assert_eq!(c.nodes[0].replica_group, 0);
        c.validate().unwrap();
        assert_eq!(
            Config::from_yaml_str("# nothing\n\n").unwrap(),
            Config::default()
        );
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = Config::from_yaml_str("shards: 8\nshardz: 9\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("shardz"), "{err}");
        assert!(err.contains("line 2"), "{err}");
        let nested = Config::from_yaml_str("server:\n  port: 1\n  prot: 2\n")
            .unwrap_err()
            .to_string();
        assert!(
            nested.contains("prot") && nested.contains("line 3"),
            "{nested}"
        );
        let typed = Config::from_yaml_str("shards: many\n")
            .unwrap_err()
            .to_string();
        assert!(
            typed.contains("shards") && typed.contains("line 1"),
            "{typed}"
        );
    }

    #[test]
    fn env_overrides_and_reports_bad_values() {
        let mut c = valid();
        c.apply_env([
            ("MIROIR_MASTER_KEY", "mk"),
            ("MIROIR_NODE_MASTER_KEY", "nk"),
            ("MIROIR_ADMIN_API_KEY", "ak"),
            ("MIROIR_SHARDS", "16"),
            ("MIROIR_REPLICATION_FACTOR", "1"),
            ("MIROIR_REPLICA_GROUPS", "1"),
            ("MIROIR_DATA_DIR", "/var/lib/miroir"),
            ("MIROIR_SERVER_BIND", "127.0.0.1"),
            ("MIROIR_SERVER_PORT", "8000"),
            ("MIROIR_ADMIN_BIND", "::1"),
            ("MIROIR_ADMIN_PORT", "8001"),
            ("MIROIR_TASK_STORE_BACKEND", "redis"),
            ("MIROIR_TASK_STORE_URL", "redis://127.0.0.1:6379"),
            ("MIROIR_WORKERS", "3"),
            ("MIROIR_IO", "io_uring"),
            ("MIROIR_LOG", "debug"),
            ("PATH", "/bin"),
        ])
        .unwrap();
        assert_eq!(c.effective_node_master_key(), Some("nk"));
        assert_eq!(c.effective_admin_key(), Some("ak"));
        assert_eq!((c.shards, c.server.port, c.admin.port), (16, 8000, 8001));
        assert_eq!(c.server.workers, Some(3));
        assert_eq!(c.server.io, IoBackend::IoUring);
        assert_eq!(c.task_store.backend, TaskStoreBackend::Redis);
        assert_eq!(c.snapshot_path(), PathBuf::from("/var/lib/miroir/snapshot"));
        c.validate().unwrap();
        // Every documented variable is handled.
        for (var, _) in ENV_VARS {
            let mut d = valid();
            let before = d.clone();
            let value = match *var {
                "MIROIR_TASK_STORE_BACKEND" => "redis",
                "MIROIR_IO" => "epoll",
                _ => "5",
            };
            d.apply_env([(*var, value)]).unwrap();
            assert_ne!(d, before, "{var} changed nothing");
        }

        let err = valid()
            .apply_env([("MIROIR_SHARDS", "lots")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("MIROIR_SHARDS") && err.contains("lots"),
            "{err}"
        );
        let err = valid()
            .apply_env([("MIROIR_IO", "kqueue")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("kqueue") && err.contains("epoll"), "{err}");
        let mut cleared = valid();
        cleared.master_key = Some("x".into());
        cleared.apply_env([("MIROIR_MASTER_KEY", "")]).unwrap();
        assert_eq!(cleared.master_key, None);
    }

    #[test]
    fn derived_defaults() {
        let mut c = valid();
        assert_eq!(c.effective_node_master_key(), None);
        c.master_key = Some("m".into());
        assert_eq!(c.effective_node_master_key(), Some("m"));
        assert_eq!(c.effective_admin_key(), Some("m"));
        assert_eq!(
            c.control_socket_path(),
            PathBuf::from("./miroir-data/control.sock")
        );
        assert_eq!(c.task_store_path(), PathBuf::from("./miroir-data/tasks"));
        c.admin.control_socket = Some("/run/m.sock".into());
        c.task_store.path = Some("/t".into());
        assert_eq!(c.control_socket_path(), PathBuf::from("/run/m.sock"));
        assert_eq!(c.task_store_path(), PathBuf::from("/t"));
    }

    #[test]
    fn validation_names_key_and_value() {
        let c = Config::from_yaml_str(
            "shards: 0\nreplication_factor: 3\nreplica_groups: 3\nnodes:\n\
             - {id: a, address: 'http://h:1'}\n\
             - {id: a, address: 'http://h:2'}\n\
             - {id: b, address: 'ftp://x', replica_group: 1}\n\
             - {id: 'bad id', address: 'http://h:1', replica_group: 5}\n\
             task_store: {backend: redis}\n\
             admin: {port: 7700, bind: localhost}\n",
        )
        .unwrap();
        let problems = c.problems();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let expect = [
            "shards: must be at least 1 (got 0)",
            "nodes[1].id: duplicate node id `a` (also nodes[0])",
            "nodes[2].address: `ftp://x` must start with http:// or https://",
            "nodes[3].id: `bad id` is not a valid node id (1 to 64 characters of A-Z a-z 0-9 . _ -)",
            "nodes[3].address: `http://h:1` is also the address of nodes[0]",
            "nodes[3].replica_group: 5 is out of range: replica_groups is 3, so groups are 0..=2",
            "replication_factor: 3 is larger than replica group 0, which has 2 node(s)",
            "replication_factor: 3 is larger than replica group 1, which has 1 node(s)",
            "replica_groups: group 2 has no nodes (replica_groups is 3)",
            "task_store.url: is required when task_store.backend is `redis`",
            "admin.bind: `localhost` is not an IP address (e.g. 0.0.0.0, 127.0.0.1, ::)",
            "admin.port: port 7700 is already used by server.port",
        ];
        for e in expect {
            assert!(text.iter().any(|t| t == e), "missing {e:?} in {text:#?}");
        }
        assert_eq!(text.len(), expect.len(), "{text:#?}");
        let msg = c.validate().unwrap_err().to_string();
        assert!(
            msg.starts_with("invalid configuration:\n  - shards:"),
            "{msg}"
        );
    }

    #[test]
    fn more_validation_rules() {
        let mut c = valid();
        c.nodes.clear();
        assert_eq!(problem_keys(&c), ["nodes"]);
        let mut c = valid();
        c.server.metrics_port = Some(7701);
        c.server.workers = Some(0);
        c.health.interval_ms = 0;
        c.master_key = Some(String::new());
        assert_eq!(
            problem_keys(&c),
            [
                "master_key",
                "server.metrics_port",
                "server.workers",
                "health.interval_ms"
            ]
        );
        let mut c = valid();
        c.server.port = 0;
        c.admin.port = 0;
        assert!(c.problems().is_empty(), "port 0 never clashes");
        c.task_store.backend = TaskStoreBackend::Redis;
        c.task_store.url = Some("http://x".into());
        assert_eq!(problem_keys(&c), ["task_store.url"]);
    }

    #[test]
    fn node_addresses() {
        for ok in [
            "http://127.0.0.1:7700",
            "https://meili.internal",
            "http://h:1/",
            "http://[::1]:7700",
            "http://[fe80::1]",
        ] {
            assert_eq!(check_node_address(ok), Ok(()), "{ok}");
        }
        for bad in [
            "127.0.0.1:7700",
            "http://",
            "http://h:0",
            "http://h:99999",
            "http://h:7700/x",
            "http://u@h",
            "http://[::1",
            "http://[zz]:1",
            "http://:80",
            "http://h x",
        ] {
            assert!(check_node_address(bad).is_err(), "{bad}");
        }
    }

    fn example(name: &str) -> Config {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/examples")
            .join(name);
        let c = Config::load(&path).unwrap();
        c.validate().unwrap();
        c
    }

    #[test]
    fn write_consistency_and_settling_knobs() {
        let base = "nodes: [{id: a, address: 'http://h:7700'}]\n";
        let c = Config::from_yaml_str(base).unwrap();
        assert_eq!(c.write_consistency, WriteConsistency::One);
        assert_eq!(c.tasks.node_task_timeout_ms, 600_000);
        for (wire, level) in [
            ("one", WriteConsistency::One),
            ("majority", WriteConsistency::Majority),
            ("all", WriteConsistency::All),
        ] {
            let c = Config::from_yaml_str(&format!("{base}write_consistency: {wire}\n")).unwrap();
            assert_eq!((c.write_consistency, level.as_str()), (level, wire));
        }
        assert!(Config::from_yaml_str(&format!("{base}write_consistency: quorum\n")).is_err());
        let c = Config::from_yaml_str(&format!(
            "{base}hints: {{max_attempts: 0}}\ntasks: {{refresh_per_round: 0}}\n"
        ))
        .unwrap();
        let keys: Vec<String> = c.problems().into_iter().map(|p| p.key).collect();
        assert!(keys.contains(&"hints.max_attempts".to_string()), "{keys:?}");
        assert!(
            keys.contains(&"tasks.refresh_per_round".to_string()),
            "{keys:?}"
        );
    }

    #[test]
    fn shipped_examples_validate() {
        let c = example("miroir.yaml");
        assert_eq!(
            (c.replication_factor, c.replica_groups, c.nodes.len()),
            (1, 1, 3)
        );
        let ports: Vec<_> = c.nodes.iter().map(|n| n.address.as_str()).collect();
        assert_eq!(
            ports,
            [
                "http://127.0.0.1:7710",
                "http://127.0.0.1:7711",
                "http://127.0.0.1:7712"
            ]
        );
        let c = example("miroir-rg2.yaml");
        assert_eq!((c.replica_groups, c.nodes.len()), (2, 4));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 1024, ..Default::default() })]

        /// Arbitrary text is an error or a config, never a panic; a parsed config validates
        /// without panicking either.
        #[test]
        fn prop_parsing_and_validation_never_panic(text in "[a-z_:{}\\[\\], \\n0-9'-]{0,120}") {
            if let Ok(c) = Config::from_yaml_str(&text) {
                let _ = c.problems();
            }
        }
    }

    /// Files shipped next to the code that must stay in sync with it.
    mod shipped_files {
        use crate::error::ErrorCode;

        #[test]
        fn errors_page_lists_every_code_with_its_status_and_type() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/errors.md");
            let page = std::fs::read_to_string(path).unwrap();
            for code in ErrorCode::ALL {
                let (c, status, ty) = (code.code(), code.status(), code.error_type().as_str());
                let row = format!("| [`{c}`](#{c}) | {status} | `{ty}` |");
                assert!(page.contains(&row), "docs/errors.md lacks the row {row}");
                let heading = format!("\n### {c}\n\nHTTP {status}, type `{ty}`.");
                assert!(
                    page.contains(&heading),
                    "docs/errors.md lacks a section for {c}"
                );
            }
        }
    }

    #[test]
    fn load_reports_missing_file_with_path() {
        let err = Config::load(Path::new("/nonexistent/miroir.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/miroir.yaml"), "{err}");
    }

    #[test]
    fn resolve_with_layers_and_validates() {
        let err = resolve_with(None, [("MIROIR_SHARDS", "4")], |_| {}).unwrap_err();
        assert!(
            matches!(err, ConfigError::Invalid(ref p) if p[0].key == "nodes"),
            "{err}"
        );
        let c = resolve_with(None, [("MIROIR_SHARDS", "4")], |c| {
            c.nodes.push(NodeConfig {
                id: "n".into(),
                address: "http://h:1".into(),
                replica_group: 0,
            })
        })
        .unwrap();
        assert_eq!(c.shards, 4);
    }
}
