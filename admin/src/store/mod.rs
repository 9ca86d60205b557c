//! The task store: the admin's durable state behind one trait, [`TaskStore`], with two
//! backends — [`LmdbTaskStore`] (embedded, the default, one host) and [`RedisTaskStore`]
//! (shared by several admin processes on several hosts). Design record:
//! `docs/decisions/004-task-store.md`.
//!
//! What lives here:
//! - **Task records** ([`TaskRecord`]): one per Miroir task. A Miroir uid is allocated *in the
//!   same atomic step* as the record insert ([`TaskStore::create_task`]): an LMDB write
//!   transaction, or one Redis Lua script (`INCR` + insert). Allocation without insert would
//!   leave a hole whenever the admin died in between, and SDKs assert that uids are dense.
//!   The immutable part of a task (uid, index, type, enqueuedAt) is fixed at creation; the
//!   mutable part ([`TaskState`]: status, timestamps, per-node task uids, details, the cached
//!   terminal view) is replaced as a whole by [`TaskStore::update_task`]. A task whose stored
//!   status is terminal is frozen: later updates are refused ([`UpdateOutcome::AlreadyTerminal`]),
//!   so a slow poller can never resurrect a finished task, even with two admins racing.
//! - **Metadata KV** (`get_meta`/`put_meta`/`delete_meta`/`list_meta`/`cas_meta`): opaque bytes
//!   under string keys, listed in key order by prefix. The admin keeps index metadata, API
//!   keys, topology overrides, rebalance progress here; the store does not interpret values.
//!
//! Leadership among several admins is not a store operation: it needs a fencing token checked
//! by every write of the leader, which only the shared Redis store offers
//! ([`redis_shared`], admin/src/leader/).
//!
//! Listing ([`TaskStore::list_tasks`]) follows Meilisearch's `GET /tasks`: newest first (or
//! oldest first with `reverse`), `from` is an inclusive starting uid, `total` counts every task
//! matching the filter regardless of `from`/`limit`, and `next` is the uid the following page
//! starts from. Both backends store each task as one [`codec`] envelope whose small binary
//! head carries every filterable field, so a filtered scan never parses JSON for tasks it
//! skips; the shared [`codec::plan`] and [`codec::PageBuilder`] make both backends choose
//! candidates and paginate identically. Two secondary indexes keep the common filters cheap:
//! unfinished tasks (the admin's refresher polls them) and tasks per index (`indexUids`).
//!
//! The trait uses boxed futures ([`StoreFuture`]) rather than `async fn` in the trait so that
//! `Arc<dyn TaskStore>` works: the admin picks the backend from the configuration at start.
//! LMDB work runs on tokio's blocking pool (`spawn_blocking`), never on a reactor thread.

pub mod codec;
mod lmdb_store;
pub mod redis_durability;
pub mod redis_shared;
mod redis_store;

pub use self::lmdb_store::LmdbTaskStore;
pub use self::redis_store::RedisTaskStore;

use miroir_core::config::{Config, TaskStoreBackend};
use miroir_core::error::{CodedError, ErrorCode};
use miroir_core::ids::{NodeId, TaskUid};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use time::OffsetDateTime;

/// The future every [`TaskStore`] method returns (boxed so the trait is object-safe).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The admin's durable state. See the module docs for the semantics both backends share.
pub trait TaskStore: Send + Sync {
    /// `"lmdb"` or `"redis"`, for logs and metrics.
    fn backend_name(&self) -> &'static str;

    /// Allocates the next task uid (dense, monotonic, never reused, `0` first) and stores the
    /// task under it, atomically. Fails with [`StoreError::UidSpaceExhausted`] past `u32::MAX`.
    fn create_task(&self, task: NewTask) -> StoreFuture<'_, TaskRecord>;

    /// The task, or `None` if it never existed or was deleted/pruned.
    fn get_task(&self, uid: TaskUid) -> StoreFuture<'_, Option<TaskRecord>>;

    /// Replaces the mutable part of a task. Refused (not an error) when the task is gone or its
    /// stored status is already terminal.
    fn update_task(&self, uid: TaskUid, state: TaskState) -> StoreFuture<'_, UpdateOutcome>;

    /// One page of tasks matching `query.filter`, plus the total number of matches.
    fn list_tasks<'a>(&'a self, query: &'a TaskQuery) -> StoreFuture<'a, TaskPage>;

    /// Deletes these tasks (whatever their status; the caller applies Meilisearch's rules).
    /// Returns how many existed. Deleted uids are never handed out again.
    fn delete_tasks<'a>(&'a self, uids: &'a [TaskUid]) -> StoreFuture<'a, u64>;

    /// Keeps at most `max_terminal` terminal tasks, deleting the oldest (lowest uid) first.
    /// Tasks still enqueued/processing are never pruned. Returns how many were deleted.
    fn prune(&self, max_terminal: u64) -> StoreFuture<'_, u64>;

    /// Number of stored tasks (for the registry-size metric).
    fn count_tasks(&self) -> StoreFuture<'_, u64>;

    /// Number of stored tasks still enqueued or processing.
    fn count_unfinished_tasks(&self) -> StoreFuture<'_, u64>;

    /// The uid the next [`TaskStore::create_task`] will get (= number of uids ever allocated).
    fn next_task_uid(&self) -> StoreFuture<'_, u64>;

    fn get_meta<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>>;
    fn put_meta<'a>(&'a self, key: &'a str, value: &'a [u8]) -> StoreFuture<'a, ()>;
    /// Returns whether the key existed.
    fn delete_meta<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool>;
    /// Every `(key, value)` whose key starts with `prefix`, in ascending byte order of keys.
    fn list_meta<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<(String, Vec<u8>)>>;
    /// Compare-and-set: if the current value equals `expected` (`None` = absent), sets it to
    /// `new` (`None` = delete) and returns `true`; otherwise changes nothing and returns `false`.
    fn cas_meta<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: Option<&'a [u8]>,
    ) -> StoreFuture<'a, bool>;
}

/// Opens the backend the configuration selects: LMDB under `task_store.path` (default
/// `{data_dir}/tasks`) or Redis at `task_store.url` (keys prefixed `miroir:`).
pub async fn open_task_store(config: &Config) -> Result<Arc<dyn TaskStore>, StoreError> {
    Ok(open_stores(config).await?.0)
}

/// [`open_task_store`], plus the same Redis store typed, when the backend is Redis: several
/// hosts may share it, and the leader lease and metadata sync ([`redis_shared`]) use it.
pub async fn open_stores(
    config: &Config,
) -> Result<(Arc<dyn TaskStore>, Option<Arc<RedisTaskStore>>), StoreError> {
    let ts = &config.task_store;
    match ts.backend {
        TaskStoreBackend::Lmdb => {
            let path: PathBuf = ts
                .path
                .clone()
                .unwrap_or_else(|| config.data_dir.join("tasks"));
            Ok((Arc::new(LmdbTaskStore::open(&path).await?), None))
        }
        TaskStoreBackend::Redis => {
            let url = ts.url.as_deref().ok_or_else(|| {
                StoreError::Config(
                    "task_store.url is required when task_store.backend is redis".into(),
                )
            })?;
            let store = RedisTaskStore::connect(url, redis_store::DEFAULT_PREFIX).await?;
            apply_redis_durability(&store, ts.redis_persistence).await?;
            let store = Arc::new(store);
            Ok((store.clone(), Some(store)))
        }
    }
}

/// Checks that Redis persists what the store acknowledges (see [`redis_durability`]) and
/// applies `task_store.redis_persistence`; makes task writes wait for connected replicas.
async fn apply_redis_durability(
    store: &RedisTaskStore,
    policy: miroir_core::config::RedisPersistence,
) -> Result<(), StoreError> {
    use miroir_core::config::RedisPersistence;
    use redis_durability::Durability;
    let (durability, replicas) = store.durability().await;
    let problem = match durability {
        Durability::Durable => None,
        Durability::DurableWithWindow(window) => {
            tracing::info!(
                loss_window = window,
                "Redis task store persists with appendfsync everysec"
            );
            None
        }
        Durability::NotDurable(why) => Some(why),
        Durability::Unknown(why) => Some(format!(
            "Miroir cannot read the Redis server's persistence settings ({why})"
        )),
    };
    if let Some(why) = problem {
        match policy {
            RedisPersistence::Require => {
                return Err(StoreError::Config(format!(
                    "{why}. If the server does persist (a managed Redis hiding CONFIG), set                      `task_store.redis_persistence: warn` to start anyway."
                )))
            }
            RedisPersistence::Warn => tracing::warn!(
                "{why}; starting anyway (task_store.redis_persistence: warn)"
            ),
        }
    }
    if replicas > 0 {
        tracing::info!(
            replicas,
            "task writes wait for the connected Redis replicas (WAIT)"
        );
    }
    store.wait_for_replicas(replicas);
    Ok(())
}

/// Meilisearch task statuses. The `u8` codes are the on-disk encoding: append-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TaskStatus {
    Enqueued,
    Processing,
    Succeeded,
    Failed,
    Canceled,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 5] = [
        TaskStatus::Enqueued,
        TaskStatus::Processing,
        TaskStatus::Succeeded,
        TaskStatus::Failed,
        TaskStatus::Canceled,
    ];

    /// Succeeded, failed and canceled tasks never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Canceled
        )
    }

    /// The wire name (`"enqueued"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Enqueued => "enqueued",
            TaskStatus::Processing => "processing",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<TaskStatus> {
        TaskStatus::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            TaskStatus::Enqueued => 0,
            TaskStatus::Processing => 1,
            // The Redis Lua scripts test `code >= 2` for "terminal": keep terminal codes last.
            TaskStatus::Succeeded => 2,
            TaskStatus::Failed => 3,
            TaskStatus::Canceled => 4,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<TaskStatus> {
        TaskStatus::ALL.into_iter().find(|t| t.code() == c)
    }
}

/// Meilisearch task types (v1.x), in the order of Meilisearch's documentation. The `u8` codes
/// are the on-disk encoding: append-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TaskType {
    IndexCreation,
    IndexUpdate,
    IndexDeletion,
    IndexSwap,
    DocumentAdditionOrUpdate,
    DocumentEdition,
    DocumentDeletion,
    SettingsUpdate,
    DumpCreation,
    TaskCancelation,
    TaskDeletion,
    SnapshotCreation,
    UpgradeDatabase,
    Export,
    IndexCompaction,
    DsrUpdate,
    DsrClear,
}

impl TaskType {
    pub const ALL: [TaskType; 17] = [
        TaskType::IndexCreation,
        TaskType::IndexUpdate,
        TaskType::IndexDeletion,
        TaskType::IndexSwap,
        TaskType::DocumentAdditionOrUpdate,
        TaskType::DocumentEdition,
        TaskType::DocumentDeletion,
        TaskType::SettingsUpdate,
        TaskType::DumpCreation,
        TaskType::TaskCancelation,
        TaskType::TaskDeletion,
        TaskType::SnapshotCreation,
        TaskType::UpgradeDatabase,
        TaskType::Export,
        TaskType::IndexCompaction,
        TaskType::DsrUpdate,
        TaskType::DsrClear,
    ];

    /// The wire name (`"documentAdditionOrUpdate"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskType::IndexCreation => "indexCreation",
            TaskType::IndexUpdate => "indexUpdate",
            TaskType::IndexDeletion => "indexDeletion",
            TaskType::IndexSwap => "indexSwap",
            TaskType::DocumentAdditionOrUpdate => "documentAdditionOrUpdate",
            TaskType::DocumentEdition => "documentEdition",
            TaskType::DocumentDeletion => "documentDeletion",
            TaskType::SettingsUpdate => "settingsUpdate",
            TaskType::DumpCreation => "dumpCreation",
            TaskType::TaskCancelation => "taskCancelation",
            TaskType::TaskDeletion => "taskDeletion",
            TaskType::SnapshotCreation => "snapshotCreation",
            TaskType::UpgradeDatabase => "upgradeDatabase",
            TaskType::Export => "export",
            TaskType::IndexCompaction => "indexCompaction",
            TaskType::DsrUpdate => "dsrUpdate",
            TaskType::DsrClear => "dsrClear",
        }
    }

    pub fn parse(s: &str) -> Option<TaskType> {
        TaskType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub(crate) fn code(self) -> u8 {
        // Position in ALL; ALL is append-only, so codes are stable.
        TaskType::ALL
            .iter()
            .position(|t| *t == self)
            .expect("every variant is in ALL") as u8
    }

    pub(crate) fn from_code(c: u8) -> Option<TaskType> {
        TaskType::ALL.get(usize::from(c)).copied()
    }
}

/// A Meilisearch task a node accepted for this Miroir task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeTask {
    pub node: NodeId,
    pub task_uid: u32,
}

/// A node that refused the write, with the Meilisearch error body it answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedNode {
    pub node: NodeId,
    pub error: serde_json::Value,
}

/// The mutable part of a task, replaced as a whole by [`TaskStore::update_task`].
#[derive(Debug, Clone, PartialEq)]
pub struct TaskState {
    pub status: TaskStatus,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
    pub canceled_by: Option<TaskUid>,
    pub node_tasks: Vec<NodeTask>,
    pub failed_nodes: Vec<FailedNode>,
    /// The task's `details` object (summed over nodes by the admin).
    pub details: serde_json::Value,
    /// The finished task exactly as `GET /tasks/{uid}` answers it (JSON bytes), so polling a
    /// finished task touches no node. Set together with a terminal status.
    pub terminal_view: Option<Vec<u8>>,
    /// The client's `?customMetadata=` (Meilisearch 1.50), echoed in every view of the task.
    /// Set at creation, never changed.
    pub custom_metadata: Option<String>,
}

impl TaskState {
    /// The same state carrying the client's `customMetadata`.
    pub fn with_custom_metadata(mut self, custom_metadata: Option<String>) -> Self {
        self.custom_metadata = custom_metadata;
        self
    }

    /// A freshly enqueued task: no timestamps but `enqueuedAt`, no cached view.
    pub fn enqueued(
        node_tasks: Vec<NodeTask>,
        failed_nodes: Vec<FailedNode>,
        details: serde_json::Value,
    ) -> Self {
        TaskState {
            status: TaskStatus::Enqueued,
            started_at: None,
            finished_at: None,
            canceled_by: None,
            node_tasks,
            failed_nodes,
            details,
            terminal_view: None,
            custom_metadata: None,
        }
    }
}

/// A task to create; the store assigns its uid.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// `None` for tasks that concern no single index (swap, dump, task cancel/delete, …).
    pub index_uid: Option<String>,
    pub task_type: TaskType,
    pub enqueued_at: OffsetDateTime,
    pub state: TaskState,
}

/// A stored task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    pub uid: TaskUid,
    pub index_uid: Option<String>,
    pub task_type: TaskType,
    pub enqueued_at: OffsetDateTime,
    pub state: TaskState,
}

/// What [`TaskStore::update_task`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateOutcome {
    Updated,
    /// No such task (never created, deleted or pruned).
    NotFound,
    /// The stored task is already terminal; nothing was written.
    AlreadyTerminal,
}

/// Meilisearch's `GET /tasks` filters. `None` = no constraint (Meilisearch's `*`); an empty
/// list matches nothing. Date bounds are exclusive, as in Meilisearch; a task without a
/// `startedAt`/`finishedAt` never matches a bound on it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskFilter {
    pub uids: Option<Vec<TaskUid>>,
    pub statuses: Option<Vec<TaskStatus>>,
    pub types: Option<Vec<TaskType>>,
    pub index_uids: Option<Vec<String>>,
    pub canceled_by: Option<Vec<TaskUid>>,
    pub before_enqueued_at: Option<OffsetDateTime>,
    pub after_enqueued_at: Option<OffsetDateTime>,
    pub before_started_at: Option<OffsetDateTime>,
    pub after_started_at: Option<OffsetDateTime>,
    pub before_finished_at: Option<OffsetDateTime>,
    pub after_finished_at: Option<OffsetDateTime>,
}

/// A `GET /tasks` query: filter plus pagination.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskQuery {
    pub filter: TaskFilter,
    /// First uid of the page (inclusive); `None` = the newest (or oldest with `reverse`).
    pub from: Option<TaskUid>,
    pub limit: u32,
    /// Oldest first instead of newest first.
    pub reverse: bool,
}

impl Default for TaskQuery {
    fn default() -> Self {
        // Meilisearch's default page size for `GET /tasks`.
        TaskQuery {
            filter: TaskFilter::default(),
            from: None,
            limit: 20,
            reverse: false,
        }
    }
}

/// One page of [`TaskStore::list_tasks`].
#[derive(Debug, Clone, PartialEq)]
pub struct TaskPage {
    pub tasks: Vec<TaskRecord>,
    /// Tasks matching the filter, ignoring `from` and `limit`.
    pub total: u64,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<TaskUid>,
}

/// Task store failures. Not-found is not an error (methods return `Option`/outcomes).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("task store LMDB: {0}")]
    Lmdb(#[from] heed::Error),
    #[error("task store Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("task store I/O at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("task store holds a corrupt entry ({what}): {reason}")]
    Corrupt { what: String, reason: String },
    #[error("task uid space exhausted: {0} tasks were allocated, the maximum is 2^32")]
    UidSpaceExhausted(u64),
    #[error("task store configuration: {0}")]
    Config(String),
    #[error("invalid metadata key: {0}")]
    InvalidKey(String),
    /// A task the envelope cannot hold (timestamp outside 1677–2262, oversized field, …).
    #[error("task store cannot store this value: {0}")]
    InvalidValue(String),
    /// Redis replicas did not acknowledge a task write in time (`WAIT`).
    #[error("task store Redis: {acked} of {wanted} replicas acknowledged the write in time")]
    NotReplicated { acked: i64, wanted: u32 },
    /// A blocking-pool job panicked or the runtime is shutting down.
    #[error("task store worker failed: {0}")]
    Worker(String),
}

/// Every store failure is Miroir's own problem, answered `internal` (the client cannot fix it).
impl CodedError for StoreError {
    fn error_code(&self) -> ErrorCode {
        ErrorCode::Internal
    }

    fn error_message(&self) -> String {
        format!("task store: {self}")
    }
}
