//! The admin's in-memory state and its durable mirror.
//!
//! [`Admin`] owns everything: the configuration, the task store (durable), the node client,
//! the snapshot channel, node health, data-plane heartbeats and the index/key metadata.
//! Index metadata and API keys are *durable admin state*: every change is written to the
//! task store's metadata KV (`index:{uid}`, `key:{uid}` → JSON) before it is applied in
//! memory and published, so a restarted admin rebuilds the same snapshot.
//!
//! So is the topology (`topology` → a versioned [`TopologyRecord`]): the configuration's
//! `nodes:`, `replication_factor` and `replica_groups` bootstrap it on the first start only.
//! Later starts run on the stored record and report how the configuration differs
//! ([`Admin::config_drift`]); only a node's address is taken from the configuration, since it
//! moves no data (docs/decisions/015-durable-topology.md).
//!
//! Publishing: [`Admin::publish`] builds a [`Snapshot`] from the current state and writes it
//! as the next LMDB generation. Builds and writes are serialised by one async lock so
//! generations are published in the order their contents were built.
//!
//! The bottom layer of the admin: it imports only leaf modules (no handler, loop or
//! broadcast), so everything else can build on it without an import cycle.

use crate::coverage::{self, CoverNode};
use crate::leader::Leadership;
use crate::node_client::NodeClient;
use crate::node_health::{unix_ms, NodeHealth};
use crate::store::TaskStore;
use miroir_core::config::Config;
use miroir_core::error::{CodedError, ErrorCode};
use miroir_core::ids::{GroupId, NodeId};
use miroir_core::snapshot::{ApiKey, IndexMeta, ShardMigration, Snapshot};
use miroir_core::snapshot_store::SnapshotStore;
use miroir_core::topology::drift::{Drift, TopologyRecord};
use miroir_core::topology::{Node, NodeStatus};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A data plane is considered dead after this long without a heartbeat
/// (docs/internals/control-protocol.md §2.2).
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest [`Admin::publish`] waits for the data planes to apply a snapshot. Data planes
/// poll every 5 ms and acknowledge at once, so this is only reached when one hangs.
pub const APPLY_WAIT: Duration = Duration::from_secs(2);

const META_INDEX: &str = "index:";
/// `true`/`false`: the `foreignKeys` experimental feature ([`Admin::set_foreign_keys_feature`]).
const META_FOREIGN_KEYS_FEATURE: &str = "feature:foreign-keys";
const META_KEY: &str = "key:";
/// Where the epoch lived before the topology record carried it; read once when a deployment
/// that predates the record gets its first one.
const META_EPOCH: &str = "routing:epoch";
const META_TOPOLOGY: &str = "topology";
/// Node statuses as the leader's health checks decided them (JSON `{id: status}`), so the
/// other hosts of a shared store route with the same view (docs/architecture.md#several-hosts).
const META_NODE_STATUS: &str = "health:nodes";

/// How often a host of a shared store polls the metadata generation (decision 024).
pub const FOLLOW_POLL: Duration = Duration::from_millis(50);
/// How often a host of a shared store refreshes its heartbeat; it drops out of the leader's
/// publish wait after [`HOST_HEARTBEAT_TTL`] without one.
pub const HOST_HEARTBEAT_EVERY: Duration = Duration::from_millis(1_000);
pub const HOST_HEARTBEAT_TTL: Duration = Duration::from_millis(3_000);
/// The shard migrations in progress (dual-write targets), JSON; owned by the rebalancer and
/// loaded here so the very first snapshot a restarted admin publishes still carries them.
const META_MIGRATIONS: &str = "rebalance:migrations";
/// Copies catching up on hints (crate::hints), as the leader last published them, so the
/// other hosts of a shared store do not read them either.
const META_LAGGING: &str = "hints:lagging";

/// The last heartbeat of one data-plane process.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    pub generation: u64,
    pub epoch: u64,
    pub pid: u32,
    pub at: Instant,
}

/// The admin's counters, rendered by [`crate::metrics`] (`GET /_miroir/metrics`).
#[derive(Debug, Default)]
pub struct Metrics {
    pub broadcasts_succeeded: AtomicU64,
    pub broadcasts_failed: AtomicU64,
    pub rollbacks: AtomicU64,
    pub snapshot_publishes: AtomicU64,
    pub tasks_registered: AtomicU64,
    /// Node-tracked tasks that finished while some node never got the write.
    pub tasks_missing_copies: AtomicU64,
    /// Hinted writes (crate::hints): hints stored now, recorded, replayed and dropped.
    pub hints_pending: AtomicU64,
    pub hints_recorded: AtomicU64,
    pub hints_replayed: AtomicU64,
    pub hints_failed: AtomicU64,
    /// Documents (and their JSON bytes) the rebalancer copied to a shard's new owner,
    /// verification repairs included.
    pub rebalance_docs_copied: AtomicU64,
    pub rebalance_bytes_copied: AtomicU64,
    /// Rebalancer steps that failed (retried).
    pub rebalance_errors: AtomicU64,
    pub rebalance_operations_completed: AtomicU64,
}

impl Metrics {
    pub fn broadcast(&self, ok: bool) {
        let c = if ok {
            &self.broadcasts_succeeded
        } else {
            &self.broadcasts_failed
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
pub struct State {
    pub indexes: BTreeMap<String, IndexMeta>,
    /// Key uid → the key object exactly as `GET /keys/{uid}` answers it.
    pub keys: BTreeMap<String, Value>,
    pub nodes: Vec<NodeHealth>,
    pub dataplanes: HashMap<String, Heartbeat>,
    pub epoch: u64,
    pub generation: u64,
    /// Copies with pending hints, published in the snapshot (owned by crate::hints).
    pub lagging: std::collections::BTreeSet<miroir_core::snapshot::LaggingCopy>,
    /// The shared store's metadata generation this host's snapshot reflects (Redis only).
    pub shared_generation: u64,
    /// Shard migrations in progress (the snapshot's dual-write targets, [`Admin::set_migrations`]).
    pub migrations: Vec<ShardMigration>,
    /// The running topology operation's phase and shards still moving (`None` = none).
    pub rebalance: Option<(&'static str, u64)>,
    /// Replica group slots (the stored record's `replica_groups`; grows when a group is
    /// added, never shrinks: a removed group stays as an empty slot).
    pub replica_groups: u32,
    /// The `foreignKeys` experimental feature, as last set (published for hydration).
    pub foreign_keys_feature: bool,
    /// Dynamic search rules, published in the snapshot (changed by crate::search_rules).
    pub search_rules: Vec<miroir_core::search_rules::SearchRule>,
    /// `/network` and the `network` feature, published in the snapshot (crate::network).
    pub network: miroir_core::network::NetworkState,
}

pub struct Admin {
    /// The configuration, with `nodes`, `replication_factor` and `replica_groups` replaced by
    /// the stored topology's (so every reader sees the topology the deployment runs on).
    pub config: Config,
    /// How the configuration file differs from the stored topology at this start (applied
    /// address changes included), for `GET /_miroir/topology`.
    pub config_drift: Vec<Drift>,
    pub store: Arc<dyn TaskStore>,
    pub client: NodeClient,
    snapshots: SnapshotStore,
    pub state: Mutex<State>,
    publish_lock: tokio::sync::Mutex<()>,
    /// Woken by every heartbeat: [`Admin::publish`] waits on it for the data planes to apply
    /// what it published.
    applied: tokio::sync::Notify,
    /// One lock per index uid (and `""` for deployment-wide operations): broadcasts on one
    /// index never interleave (nodes process tasks in order, and so must Miroir's
    /// read-modify-write of the index metadata), while different indexes proceed in parallel.
    scopes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub metrics: Metrics,
    /// Who leads among the hosts sharing the store ([`crate::leader`]).
    leadership: Arc<Leadership>,
    /// On the leader of a shared store: the lowest routing epoch the live hosts report
    /// (refreshed every [`FOLLOW_POLL`]), for [`Admin::epoch_acknowledged`]; 0 until first
    /// read (the barrier waits), unused on LMDB.
    hosts_epoch: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Snapshot(#[from] miroir_core::snapshot_store::SnapshotStoreError),
    #[error("corrupt metadata {key}: {reason}")]
    CorruptMeta { key: String, reason: String },
    #[error("blocking task failed: {0}")]
    Join(String),
    /// A leader-only write by an admin that does not (or no longer) hold the leader lease.
    #[error("this admin is not the leader (its lease ran out or another host took it); the change was not stored")]
    NotLeader,
}

/// The admin's own state failing (store, snapshot channel, corrupt metadata) is `internal`.
impl CodedError for AdminError {
    fn error_code(&self) -> ErrorCode {
        ErrorCode::Internal
    }
}

impl Admin {
    /// Loads durable state from `store`, opens the snapshot channel and publishes a first
    /// generation (so data planes can start serving).
    pub async fn open(config: Config, store: Arc<dyn TaskStore>) -> Result<Arc<Admin>, AdminError> {
        Admin::open_with(config, store, Leadership::single()).await
    }

    /// [`Admin::open`] for one of several hosts sharing `store` (`leadership` says whether
    /// this one leads).
    pub async fn open_with(
        mut config: Config,
        store: Arc<dyn TaskStore>,
        leadership: Arc<Leadership>,
    ) -> Result<Arc<Admin>, AdminError> {
        let snapshot_dir = config.snapshot_path();
        let snapshots = tokio::task::spawn_blocking(move || SnapshotStore::open(&snapshot_dir))
            .await
            .map_err(|e| AdminError::Join(e.to_string()))??;
        let (record, config_drift) = load_topology(&config, store.as_ref()).await?;
        report_drift(&config_drift);
        config.replication_factor = record.replication_factor;
        config.replica_groups = record.replica_groups;
        config.nodes = record.node_configs();
        let mut state = State {
            nodes: record
                .nodes
                .iter()
                .filter(|n| n.status != miroir_core::topology::NodeStatus::Removed)
                .map(|n| {
                    let mut h = NodeHealth::new(n.id.as_str(), &n.address, n.replica_group.0);
                    h.status = n.status;
                    h
                })
                .collect(),
            epoch: record.epoch,
            replica_groups: record.replica_groups,
            ..State::default()
        };
        // The generation is read before what it covers: a change made meanwhile shows up as
        // a newer generation at the first poll, never as a missed one.
        if let Some(shared) = leadership.shared_store() {
            state.shared_generation = shared.generation().await?;
            apply_node_statuses(&mut state.nodes, store.as_ref()).await?;
        }
        if let Some(bytes) = store.get_meta(META_MIGRATIONS).await? {
            state.migrations =
                serde_json::from_slice(&bytes).map_err(|e| AdminError::CorruptMeta {
                    key: META_MIGRATIONS.into(),
                    reason: e.to_string(),
                })?;
        }
        (state.indexes, state.keys) = load_metadata(store.as_ref()).await?;
        state.foreign_keys_feature =
            store.get_meta(META_FOREIGN_KEYS_FEATURE).await?.as_deref() == Some(b"true".as_slice());
        state.search_rules = load_search_rules(store.as_ref()).await?;
        state.network = load_network(store.as_ref()).await?;
        let client = NodeClient::new(
            config.effective_node_master_key(),
            Duration::from_millis(config.scatter.node_timeout_ms.max(1)),
        );
        let admin = Arc::new(Admin {
            config,
            config_drift,
            store,
            client,
            snapshots,
            state: Mutex::new(state),
            publish_lock: tokio::sync::Mutex::new(()),
            applied: tokio::sync::Notify::new(),
            scopes: Mutex::new(HashMap::new()),
            metrics: Metrics::default(),
            leadership,
            hosts_epoch: AtomicU64::new(0),
        });
        admin.publish().await?;
        Ok(admin)
    }

    /// Locks the given scopes (index uids; `""` = deployment-wide), in sorted order so two
    /// multi-scope operations (swaps) can never deadlock.
    pub async fn lock_scopes(
        &self,
        mut names: Vec<String>,
    ) -> Vec<tokio::sync::OwnedMutexGuard<()>> {
        names.sort();
        names.dedup();
        let mut guards = Vec::with_capacity(names.len());
        for name in names {
            let m = {
                let mut scopes = self.scopes.lock().unwrap_or_else(|p| p.into_inner());
                scopes.entry(name).or_default().clone()
            };
            guards.push(m.lock_owned().await);
        }
        guards
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Copies of one document across the deployment: `rf ×` the groups that hold data (a
    /// removed group's empty slot and a group still joining hold none).
    pub fn copies(&self) -> u32 {
        let st = self.lock();
        let holding = (0..st.replica_groups)
            .filter(|g| {
                st.nodes
                    .iter()
                    .any(|n| n.group == *g && n.status.owns_shards())
            })
            .count() as u32;
        (self.config.replication_factor * holding).max(1)
    }

    /// Replica group slots (`0..replica_groups`), from the stored topology: it changes when a
    /// group is added, unlike `config.replica_groups` (the value at this start).
    pub fn replica_groups(&self) -> u32 {
        self.lock().replica_groups
    }

    /// The node master key (what node-side API keys are derived from).
    pub fn node_master_key(&self) -> Option<&str> {
        self.config.effective_node_master_key()
    }

    /// The key for `/_miroir/*`.
    pub fn admin_key(&self) -> Option<&str> {
        self.config.effective_admin_key()
    }

    pub fn nodes(&self) -> Vec<NodeHealth> {
        self.lock().nodes.clone()
    }

    /// Nodes that can serve reads right now, in configuration order.
    pub fn live_nodes(&self) -> Vec<NodeHealth> {
        self.lock()
            .nodes
            .iter()
            .filter(|n| n.is_live())
            .cloned()
            .collect()
    }

    /// Every node that owns data (broadcast targets): all but removed/joining ones.
    pub fn broadcast_nodes(&self) -> Vec<NodeHealth> {
        self.lock()
            .nodes
            .iter()
            .filter(|n| n.status.owns_shards())
            .cloned()
            .collect()
    }

    pub fn record_health(
        &self,
        id: &str,
        outcome: Result<(), String>,
        unhealthy: u32,
        recovery: u32,
    ) -> bool {
        let mut st = self.lock();
        let Some(n) = st.nodes.iter_mut().find(|n| n.id == id) else {
            return false;
        };
        let changed = n.record(outcome, unhealthy, recovery);
        if changed {
            tracing::warn!(node = %id, status = %n.status, error = ?n.error, "node status changed");
        }
        changed
    }

    pub fn index(&self, uid: &str) -> Option<IndexMeta> {
        self.lock().indexes.get(uid).cloned()
    }

    /// Records the `foreignKeys` experimental feature the nodes now have (the caller
    /// publishes): the data planes hydrate hits only while it is on (decision 044).
    pub async fn set_foreign_keys_feature(&self, on: bool) -> Result<(), AdminError> {
        let value: &[u8] = if on { b"true" } else { b"false" };
        self.write_meta(META_FOREIGN_KEYS_FEATURE, Some(value))
            .await?;
        self.lock().foreign_keys_feature = on;
        Ok(())
    }

    /// Persists then applies an index's metadata.
    pub async fn put_index(&self, meta: IndexMeta) -> Result<(), AdminError> {
        let bytes = serde_json::to_vec(&meta).expect("IndexMeta serialises");
        self.write_meta(&format!("{META_INDEX}{}", meta.uid), Some(&bytes))
            .await?;
        self.lock().indexes.insert(meta.uid.clone(), meta);
        Ok(())
    }

    pub async fn remove_index(&self, uid: &str) -> Result<(), AdminError> {
        self.write_meta(&format!("{META_INDEX}{uid}"), None).await?;
        self.lock().indexes.remove(uid);
        Ok(())
    }

    pub async fn put_key(&self, uid: &str, key: Value) -> Result<(), AdminError> {
        let bytes = serde_json::to_vec(&key).expect("JSON serialises");
        self.write_meta(&format!("{META_KEY}{uid}"), Some(&bytes))
            .await?;
        self.lock().keys.insert(uid.to_string(), key);
        Ok(())
    }

    pub async fn remove_key(&self, uid: &str) -> Result<(), AdminError> {
        self.write_meta(&format!("{META_KEY}{uid}"), None).await?;
        self.lock().keys.remove(uid);
        Ok(())
    }

    /// Who leads among the hosts sharing the store; gate leader-only work on
    /// `leadership().is_leader()` ([`crate::leader`]).
    pub fn leadership(&self) -> &Arc<Leadership> {
        &self.leadership
    }

    /// Writes (`Some`) or deletes (`None`) leader-owned metadata. On a shared store the write
    /// is fenced with this admin's lease token, so a deposed leader changes nothing.
    pub(crate) async fn write_meta(
        &self,
        key: &str,
        value: Option<&[u8]>,
    ) -> Result<(), AdminError> {
        let Some(shared) = self.leadership.shared_store() else {
            match value {
                Some(v) => self.store.put_meta(key, v).await?,
                None => {
                    self.store.delete_meta(key).await?;
                }
            }
            return Ok(());
        };
        let token = self
            .leadership
            .fencing_token()
            .ok_or(AdminError::NotLeader)?;
        if shared.fenced_meta(token, key, value).await? {
            Ok(())
        } else {
            Err(AdminError::NotLeader)
        }
    }

    /// Builds the snapshot the data planes route with, from the current state.
    pub fn build_snapshot(&self) -> Snapshot {
        let st = self.lock();
        Snapshot {
            generation: st.generation,
            epoch: st.epoch,
            replication_factor: self.config.replication_factor,
            replica_groups: st.replica_groups,
            nodes: st
                .nodes
                .iter()
                .map(|n| Node {
                    id: NodeId::new(&n.id),
                    address: n.address.clone(),
                    replica_group: GroupId(n.group),
                    status: n.status,
                })
                .collect(),
            indexes: st.indexes.clone(),
            keys: st.keys.values().filter_map(api_key_from_json).collect(),
            migrations: st.migrations.clone(),
            lagging: st.lagging.iter().cloned().collect(),
            foreign_keys_feature: st.foreign_keys_feature,
            search_rules: st.search_rules.clone(),
            network: st.network.view(),
        }
    }

    /// Persists then applies the shard migrations in progress (published by the caller).
    pub async fn set_migrations(&self, migrations: Vec<ShardMigration>) -> Result<(), AdminError> {
        let bytes = serde_json::to_vec(&migrations).expect("migrations serialise");
        self.store.put_meta(META_MIGRATIONS, &bytes).await?;
        self.lock().migrations = migrations;
        Ok(())
    }

    /// The stored topology record (the authoritative one; statuses there are the ones
    /// topology operations set, never health's `failed`/`degraded`).
    pub async fn topology_record(&self) -> Result<TopologyRecord, AdminError> {
        let bytes =
            self.store
                .get_meta(META_TOPOLOGY)
                .await?
                .ok_or_else(|| AdminError::CorruptMeta {
                    key: META_TOPOLOGY.into(),
                    reason: "missing".into(),
                })?;
        TopologyRecord::decode(&bytes).map_err(|e| AdminError::CorruptMeta {
            key: META_TOPOLOGY.into(),
            reason: e.to_string(),
        })
    }

    /// Changes the stored topology record (compare-and-set, so concurrent admins on one Redis
    /// store never lose an update) and mirrors it in memory: nodes added, statuses set by
    /// topology operations (health's view is kept for a node whose record status did not
    /// change), the epoch. A `removed` node leaves the in-memory list (the record keeps it:
    /// ids are never reused). The caller publishes.
    pub async fn change_topology(
        &self,
        change: impl Fn(&mut TopologyRecord),
    ) -> Result<TopologyRecord, AdminError> {
        loop {
            let stored = self.store.get_meta(META_TOPOLOGY).await?;
            let before = match &stored {
                Some(b) => TopologyRecord::decode(b).map_err(|e| AdminError::CorruptMeta {
                    key: META_TOPOLOGY.into(),
                    reason: e.to_string(),
                })?,
                None => TopologyRecord::bootstrap(&self.config, self.lock().epoch),
            };
            let mut record = before.clone();
            change(&mut record);
            record.topology().map_err(|e| AdminError::CorruptMeta {
                key: META_TOPOLOGY.into(),
                reason: e.to_string(),
            })?;
            if !self
                .store
                .cas_meta(META_TOPOLOGY, stored.as_deref(), Some(&record.encode()))
                .await?
            {
                continue;
            }
            let mut st = self.lock();
            st.epoch = st.epoch.max(record.epoch);
            st.replica_groups = record.replica_groups;
            for n in &record.nodes {
                let was = before.nodes.iter().find(|b| b.id == n.id).map(|b| b.status);
                let pos = st.nodes.iter().position(|h| h.id == n.id.as_str());
                match (pos, n.status) {
                    (Some(i), NodeStatus::Removed) => {
                        st.nodes.remove(i);
                    }
                    (Some(i), status) if was != Some(status) => st.nodes[i].status = status,
                    (Some(i), _) => st.nodes[i].address = n.address.clone(),
                    (None, NodeStatus::Removed) => {}
                    (None, status) => {
                        let mut h = NodeHealth::new(n.id.as_str(), &n.address, n.replica_group.0);
                        h.status = status;
                        st.nodes.push(h);
                    }
                }
            }
            return Ok(record);
        }
    }

    /// Publishes the current state as the next generation; returns it.
    /// Publishes the current state as a new snapshot generation and returns once every live
    /// data plane serves it (see [`Admin::wait_applied`]): a key, an index or a setting a
    /// client changed through Miroir is usable on its very next request, whichever core of
    /// whichever data-plane process serves it.
    ///
    /// On a store several hosts share, the leader first writes the node statuses and bumps the
    /// metadata generation (both fenced), and returns once every live host reports that
    /// generation applied ([`Admin::wait_hosts`]): a change made through one host is usable
    /// through every host on the next request.
    pub async fn publish(&self) -> Result<u64, AdminError> {
        let shared = match (
            self.leadership.shared_store(),
            self.leadership.fencing_token(),
        ) {
            (Some(s), Some(token)) => Some((s.clone(), token)),
            _ => None,
        };
        let Some((shared, token)) = shared else {
            return self.publish_local().await;
        };
        let statuses = self.node_statuses_json();
        // The routing state only the leader computes (copies catching up on hints) travels
        // with the node statuses; the shard migrations are stored by the rebalancer itself.
        let lagging = {
            let st = self.lock();
            serde_json::to_vec(&st.lagging.iter().collect::<Vec<_>>())
                .expect("lagging copies serialise")
        };
        for (key, value) in [(META_NODE_STATUS, &statuses), (META_LAGGING, &lagging)] {
            if !shared.fenced_meta(token, key, Some(value)).await? {
                return Err(AdminError::NotLeader);
            }
        }
        let shared_generation = shared
            .bump_generation(token)
            .await?
            .ok_or(AdminError::NotLeader)?;
        let generation = self.publish_local().await?;
        {
            let mut st = self.lock();
            st.shared_generation = st.shared_generation.max(shared_generation);
        }
        shared
            .host_heartbeat(
                self.leadership.host_id(),
                shared_generation,
                self.served_epoch(),
                HOST_HEARTBEAT_TTL,
            )
            .await?;
        if !self.wait_hosts(shared_generation, APPLY_WAIT).await {
            tracing::warn!(
                generation = shared_generation,
                "a live host did not apply the new metadata generation in time; answering anyway"
            );
        }
        Ok(generation)
    }

    /// `{node id: status}` as stored under [`META_NODE_STATUS`].
    fn node_statuses_json(&self) -> Vec<u8> {
        let map: BTreeMap<String, miroir_core::topology::NodeStatus> = self
            .lock()
            .nodes
            .iter()
            .map(|n| (n.id.clone(), n.status))
            .collect();
        serde_json::to_vec(&map).expect("statuses serialise")
    }

    /// Waits until every live host of the shared store reports `generation` (or later)
    /// applied, at most `within`; `false` on timeout. Hosts whose heartbeat expired are not
    /// waited for.
    pub async fn wait_hosts(&self, generation: u64, within: Duration) -> bool {
        let Some(shared) = self.leadership.shared_store() else {
            return true;
        };
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match shared.live_hosts().await {
                Ok(hosts) if hosts.iter().all(|h| h.applied >= generation) => return true,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "reading the hosts' heartbeats failed"),
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A JSON meta record, or the type's default when it is absent.
    async fn json_meta<T: serde::de::DeserializeOwned + Default>(
        &self,
        key: &str,
    ) -> Result<T, AdminError> {
        match self.store.get_meta(key).await? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| AdminError::CorruptMeta {
                key: key.into(),
                reason: e.to_string(),
            }),
            None => Ok(T::default()),
        }
    }

    /// Reloads what the leader owns from the shared store (index metadata, keys, topology,
    /// node statuses, shard migrations, lagging copies) into this host's state. The caller
    /// publishes.
    pub async fn reload_shared(&self) -> Result<(), AdminError> {
        let (indexes, keys) = load_metadata(self.store.as_ref()).await?;
        let record = match self.store.get_meta(META_TOPOLOGY).await? {
            Some(b) => Some(
                TopologyRecord::decode(&b).map_err(|e| AdminError::CorruptMeta {
                    key: META_TOPOLOGY.into(),
                    reason: e.to_string(),
                })?,
            ),
            None => None,
        };
        let mut nodes = self.nodes();
        if let Some(r) = &record {
            let old = std::mem::take(&mut nodes);
            for n in r
                .nodes
                .iter()
                .filter(|n| n.status != miroir_core::topology::NodeStatus::Removed)
            {
                let mut h = old
                    .iter()
                    .find(|o| o.id == n.id.as_str())
                    .cloned()
                    .unwrap_or_else(|| {
                        NodeHealth::new(n.id.as_str(), &n.address, n.replica_group.0)
                    });
                h.address = n.address.clone();
                h.status = n.status;
                nodes.push(h);
            }
        }
        apply_node_statuses(&mut nodes, self.store.as_ref()).await?;
        let migrations: Vec<ShardMigration> = self.json_meta(META_MIGRATIONS).await?;
        let lagging: Vec<miroir_core::snapshot::LaggingCopy> = self.json_meta(META_LAGGING).await?;
        let foreign_keys_feature: bool = self.json_meta(META_FOREIGN_KEYS_FEATURE).await?;
        let search_rules = load_search_rules(self.store.as_ref()).await?;
        let network = load_network(self.store.as_ref()).await?;
        let mut st = self.lock();
        st.network = network;
        st.foreign_keys_feature = foreign_keys_feature;
        st.search_rules = search_rules;
        st.indexes = indexes;
        st.keys = keys;
        st.nodes = nodes;
        st.migrations = migrations;
        st.lagging = lagging.into_iter().collect();
        if let Some(r) = record {
            st.epoch = st.epoch.max(r.epoch);
            st.replica_groups = r.replica_groups;
        }
        Ok(())
    }

    /// A host of a shared store: polls the metadata generation every [`FOLLOW_POLL`]; when
    /// the leader moved it, reloads the shared metadata and republishes the local snapshot,
    /// then reports the generation applied. Refreshes its heartbeat every
    /// [`HOST_HEARTBEAT_EVERY`]. Runs until the process exits.
    /// Registers this host with the generation it loaded, before it serves: from then on the
    /// leader's publishes wait for it, so a change made through another host is usable here
    /// on the next request even while this host is still starting (its follower loop applies
    /// the change, then reports it).
    pub async fn announce_host(&self) -> Result<(), AdminError> {
        let Some(shared) = self.leadership.shared_store() else {
            return Ok(());
        };
        let applied = self.lock().shared_generation;
        shared
            .host_heartbeat(
                self.leadership.host_id(),
                applied,
                self.served_epoch(),
                HOST_HEARTBEAT_TTL,
            )
            .await?;
        Ok(())
    }

    pub async fn follow(self: Arc<Self>) {
        let Some(shared) = self.leadership.shared_store().cloned() else {
            return;
        };
        let host = self.leadership.host_id().to_string();
        let mut last_beat = Instant::now() - HOST_HEARTBEAT_EVERY;
        loop {
            tokio::time::sleep(FOLLOW_POLL).await;
            let current = match shared.generation().await {
                Ok(g) => g,
                Err(e) => {
                    tracing::debug!(error = %e, "polling the metadata generation failed");
                    continue;
                }
            };
            let applied = self.lock().shared_generation;
            // The leader publishes its own changes (and reports them applied) itself.
            if current > applied && !self.leadership.is_leader() {
                let synced = async {
                    self.reload_shared().await?;
                    self.publish_local().await
                };
                match synced.await {
                    Ok(_) => {
                        let mut st = self.lock();
                        st.shared_generation = st.shared_generation.max(current);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "following the leader's metadata failed");
                        continue;
                    }
                }
                last_beat = Instant::now() - HOST_HEARTBEAT_EVERY;
            }
            if last_beat.elapsed() >= HOST_HEARTBEAT_EVERY {
                let applied = self.lock().shared_generation;
                match shared
                    .host_heartbeat(&host, applied, self.served_epoch(), HOST_HEARTBEAT_TTL)
                    .await
                {
                    Ok(()) => last_beat = Instant::now(),
                    Err(e) => tracing::debug!(error = %e, "host heartbeat failed"),
                }
            }
            // The leader keeps the hosts' lowest epoch at hand for topology barriers.
            if self.leadership.is_leader() {
                if let Ok(hosts) = shared.live_hosts().await {
                    let min = hosts.iter().map(|h| h.epoch).min().unwrap_or(u64::MAX);
                    self.hosts_epoch.store(min, Ordering::Relaxed);
                }
            }
        }
    }

    /// Publishes this host's state as its next local snapshot generation (no shared-store
    /// step) and waits for its data planes, as [`Admin::publish`] does.
    pub async fn publish_local(&self) -> Result<u64, AdminError> {
        let _order = self.publish_lock.lock().await;
        let snapshot = self.build_snapshot();
        let store = self.snapshots.clone();
        let generation = tokio::task::spawn_blocking(move || store.publish(&snapshot))
            .await
            .map_err(|e| AdminError::Join(e.to_string()))??;
        self.lock().generation = generation;
        self.metrics
            .snapshot_publishes
            .fetch_add(1, Ordering::Relaxed);
        if !self.wait_applied(generation, APPLY_WAIT).await {
            tracing::warn!(
                generation,
                "a live data plane did not acknowledge the snapshot in time; answering anyway"
            );
        }
        Ok(generation)
    }

    /// Waits until every live data plane reports `generation` (or a later one) applied, at
    /// most `within`. A data plane silent for [`HEARTBEAT_TIMEOUT`] is not live and does not
    /// hold anyone up; a data plane that starts later loads the latest snapshot before it
    /// serves. `false` when the wait timed out.
    pub async fn wait_applied(&self, generation: u64, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.applied.notified();
            tokio::pin!(notified);
            // Registered before the check, so a heartbeat between the two is not missed.
            notified.as_mut().enable();
            if self
                .live_dataplanes()
                .iter()
                .all(|(_, b)| b.generation >= generation)
            {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    pub fn heartbeat(&self, dataplane: &str, beat: Heartbeat) {
        self.lock().dataplanes.insert(dataplane.to_string(), beat);
        self.applied.notify_waiters();
    }

    /// Data planes heard from within [`HEARTBEAT_TIMEOUT`].
    pub fn live_dataplanes(&self) -> Vec<(String, Heartbeat)> {
        let st = self.lock();
        live_heartbeats(&st.dataplanes, Instant::now())
    }

    /// Whether every live data plane has applied `epoch` (the barrier topology operations
    /// wait on before copying or deleting a shard). Dead ones do not block it. On a shared
    /// store this includes the data planes of every live host (their heartbeats, as last
    /// read by the leader).
    pub fn epoch_acknowledged(&self, epoch: u64) -> bool {
        let local = self.live_dataplanes().iter().all(|(_, b)| b.epoch >= epoch);
        local
            && (self.leadership.shared_store().is_none()
                || self.hosts_epoch.load(Ordering::Relaxed) >= epoch)
    }

    /// The routing epoch every live local data plane serves (this host's state's epoch when
    /// none is live: a data plane that starts loads the latest snapshot before serving).
    fn served_epoch(&self) -> u64 {
        let st = self.lock();
        live_heartbeats(&st.dataplanes, Instant::now())
            .iter()
            .map(|(_, b)| b.epoch)
            .min()
            .unwrap_or(st.epoch)
    }

    fn cover_nodes(st: &State) -> Vec<CoverNode<'_>> {
        st.nodes
            .iter()
            .map(|n| CoverNode {
                id: &n.id,
                group: n.group,
                places: n.status.owns_shards(),
                live: n.is_live(),
            })
            .collect()
    }

    /// Index uid → shards without a live owner in any group (only indexes with some).
    pub fn uncovered(&self) -> BTreeMap<String, Vec<u32>> {
        let st = self.lock();
        let nodes = Self::cover_nodes(&st);
        st.indexes
            .values()
            .map(|m| {
                (
                    m.uid.clone(),
                    coverage::uncovered_shards(
                        &nodes,
                        st.replica_groups,
                        self.config.replication_factor,
                        m.shards,
                    ),
                )
            })
            .filter(|(_, v)| !v.is_empty())
            .collect()
    }

    /// Shards owned per node for an index with `shards` shards.
    pub fn shard_counts(&self, shards: u32) -> BTreeMap<String, u32> {
        let st = self.lock();
        coverage::shard_counts(
            &Self::cover_nodes(&st),
            st.replica_groups,
            self.config.replication_factor,
            shards,
        )
    }

    pub fn last_seen(&self) -> u64 {
        unix_ms()
    }
}

/// The stored topology, created from `config` on a deployment's first start, and how `config`
/// differs from it. Address changes are applied and persisted; nothing else is.
///
/// Both writes are compare-and-set, so two admins sharing a Redis store that start at once
/// agree on one record: the loser re-reads the winner's and diffs against that.
async fn load_topology(
    config: &Config,
    store: &dyn TaskStore,
) -> Result<(TopologyRecord, Vec<Drift>), AdminError> {
    let corrupt = |reason: String| AdminError::CorruptMeta {
        key: META_TOPOLOGY.into(),
        reason,
    };
    loop {
        let Some(stored) = store.get_meta(META_TOPOLOGY).await? else {
            // A deployment from before the record kept its epoch on its own.
            let epoch = match store.get_meta(META_EPOCH).await? {
                Some(b) => String::from_utf8_lossy(&b).parse().unwrap_or(1),
                None => 1,
            };
            let record = TopologyRecord::bootstrap(config, epoch);
            if store
                .cas_meta(META_TOPOLOGY, None, Some(&record.encode()))
                .await?
            {
                tracing::info!(
                    nodes = record.nodes.len(),
                    replication_factor = record.replication_factor,
                    replica_groups = record.replica_groups,
                    "topology bootstrapped from the configuration and stored; from now on the stored topology is authoritative"
                );
                return Ok((record, Vec::new()));
            }
            continue;
        };
        let mut record = TopologyRecord::decode(&stored).map_err(|e| corrupt(e.to_string()))?;
        let drift = record.drift(config);
        if record.apply(&drift)
            && !store
                .cas_meta(META_TOPOLOGY, Some(&stored), Some(&record.encode()))
                .await?
        {
            continue;
        }
        return Ok((record, drift));
    }
}

/// One log line per difference: applied address changes at INFO, everything else at WARN with
/// the command that would perform it.
fn report_drift(drift: &[Drift]) {
    for d in drift {
        if d.applied() {
            tracing::info!(
                drift = %d,
                "configuration differs from the stored topology: node address change applied"
            );
            continue;
        }
        let command = d.command().unwrap_or_default();
        tracing::warn!(
            drift = %d,
            command = %command,
            "{}",
            drift_warning(d)
        );
    }
}

/// The sentence an operator reads for one unapplied difference (log and `GET
/// /_miroir/topology`).
pub fn drift_warning(d: &Drift) -> String {
    match d.command() {
        Some(c) => format!(
            "configuration differs from the stored topology: {d}; running on the stored topology. \
             The command that would perform this change is `{c}`{}",
            if matches!(d, Drift::NodeAdded { .. } | Drift::NodeRemoved { .. }) {
                ""
            } else {
                " (not available yet: this topology operation is not implemented in this version)"
            }
        ),
        None => format!(
            "configuration differs from the stored topology: {d}; running on the stored topology"
        ),
    }
}

/// The dynamic search rules as stored (decision 042), in milli's evaluation order.
async fn load_search_rules(
    store: &dyn TaskStore,
) -> Result<Vec<miroir_core::search_rules::SearchRule>, AdminError> {
    let prefix = miroir_core::search_rules::STORE_PREFIX;
    let mut rules = Vec::new();
    for (key, bytes) in store.list_meta(prefix).await? {
        rules.push(
            serde_json::from_slice(&bytes).map_err(|e| AdminError::CorruptMeta {
                key: key.clone(),
                reason: e.to_string(),
            })?,
        );
    }
    miroir_core::search_rules::precedence_order(&mut rules);
    Ok(rules)
}

/// The stored network and `network` feature flag (defaults when never set; admin/src/network.rs).
async fn load_network(
    store: &dyn TaskStore,
) -> Result<miroir_core::network::NetworkState, AdminError> {
    use miroir_core::network::{NetworkRecord, NetworkState, FEATURE_KEY, STORE_KEY};
    let record = match store.get_meta(STORE_KEY).await? {
        Some(b) => serde_json::from_slice(&b).map_err(|e| AdminError::CorruptMeta {
            key: STORE_KEY.into(),
            reason: e.to_string(),
        })?,
        None => NetworkRecord::default(),
    };
    let feature = store.get_meta(FEATURE_KEY).await?.as_deref() == Some(b"true".as_slice());
    Ok(NetworkState { record, feature })
}

/// Index metadata and API keys as stored.
async fn load_metadata(
    store: &dyn TaskStore,
) -> Result<(BTreeMap<String, IndexMeta>, BTreeMap<String, Value>), AdminError> {
    let mut indexes = BTreeMap::new();
    let mut keys = BTreeMap::new();
    for (key, bytes) in store.list_meta(META_INDEX).await? {
        let meta: IndexMeta =
            serde_json::from_slice(&bytes).map_err(|e| AdminError::CorruptMeta {
                key: key.clone(),
                reason: e.to_string(),
            })?;
        indexes.insert(meta.uid.clone(), meta);
    }
    for (key, bytes) in store.list_meta(META_KEY).await? {
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| AdminError::CorruptMeta {
            key: key.clone(),
            reason: e.to_string(),
        })?;
        keys.insert(key[META_KEY.len()..].to_string(), v);
    }
    Ok((indexes, keys))
}

/// Overlays the leader's last published node statuses (a shared store's
/// [`META_NODE_STATUS`]) on `nodes`.
async fn apply_node_statuses(
    nodes: &mut [NodeHealth],
    store: &dyn TaskStore,
) -> Result<(), AdminError> {
    let Some(bytes) = store.get_meta(META_NODE_STATUS).await? else {
        return Ok(());
    };
    let map: BTreeMap<String, miroir_core::topology::NodeStatus> =
        serde_json::from_slice(&bytes).map_err(|e| AdminError::CorruptMeta {
            key: META_NODE_STATUS.into(),
            reason: e.to_string(),
        })?;
    for n in nodes.iter_mut() {
        if let Some(s) = map.get(&n.id) {
            n.status = *s;
        }
    }
    Ok(())
}

/// Heartbeats younger than [`HEARTBEAT_TIMEOUT`] at `now`.
pub fn live_heartbeats(all: &HashMap<String, Heartbeat>, now: Instant) -> Vec<(String, Heartbeat)> {
    let mut v: Vec<_> = all
        .iter()
        .filter(|(_, b)| now.saturating_duration_since(b.at) < HEARTBEAT_TIMEOUT)
        .map(|(k, b)| (k.clone(), b.clone()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The snapshot's view of a key object (`GET /keys/{uid}` JSON).
pub fn api_key_from_json(v: &Value) -> Option<ApiKey> {
    let strings = |k: &str| -> Vec<String> {
        v.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    Some(ApiKey {
        uid: v.get("uid")?.as_str()?.to_string(),
        key: v.get("key")?.as_str()?.to_string(),
        name: v.get("name").and_then(Value::as_str).map(String::from),
        actions: strings("actions"),
        indexes: strings("indexes"),
        expires_at: v
            .get("expiresAt")
            .and_then(Value::as_str)
            .and_then(crate::timefmt::parse_rfc3339)
            .map(|t| t.unix_timestamp()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_heartbeats_do_not_count() {
        let now = Instant::now();
        let mut m = HashMap::new();
        m.insert(
            "a".to_string(),
            Heartbeat {
                generation: 1,
                epoch: 3,
                pid: 1,
                at: now,
            },
        );
        if let Some(old) = now.checked_sub(HEARTBEAT_TIMEOUT + Duration::from_millis(1)) {
            m.insert(
                "b".to_string(),
                Heartbeat {
                    generation: 1,
                    epoch: 1,
                    pid: 2,
                    at: old,
                },
            );
            let live = live_heartbeats(&m, now);
            assert_eq!(live.len(), 1);
            assert_eq!(live[0].0, "a");
        }
    }

    fn config(nodes: &[(&str, &str)]) -> Config {
        Config {
            nodes: nodes
                .iter()
                .map(|(id, address)| miroir_core::config::NodeConfig {
                    id: (*id).into(),
                    address: (*address).into(),
                    replica_group: 0,
                })
                .collect(),
            ..Config::default()
        }
    }

    #[tokio::test]
    async fn the_stored_topology_wins_over_the_config_but_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::LmdbTaskStore::open(&dir.path().join("tasks"))
            .await
            .unwrap();
        // A deployment from before the record: its epoch is carried over.
        store.put_meta(META_EPOCH, b"7").await.unwrap();
        let first = config(&[("a", "http://a:1"), ("b", "http://b:1")]);
        let (r, drift) = load_topology(&first, &store).await.unwrap();
        assert!(drift.is_empty());
        assert_eq!(r.epoch, 7);
        assert_eq!(r.node_configs(), first.nodes);

        // A node added and one moved: only the move is applied, and it is stored.
        let second = config(&[
            ("a", "http://a:2"),
            ("b", "http://b:1"),
            ("c", "http://c:1"),
        ]);
        let (r, drift) = load_topology(&second, &store).await.unwrap();
        assert_eq!(drift.len(), 2, "{drift:?}");
        assert!(matches!(&drift[0], Drift::AddressChanged { .. }));
        assert!(matches!(&drift[1], Drift::NodeAdded { .. }));
        let ids: Vec<&str> = r.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        let stored =
            TopologyRecord::decode(&store.get_meta(META_TOPOLOGY).await.unwrap().unwrap()).unwrap();
        assert_eq!(stored, r);
        assert_eq!(stored.nodes[0].address, "http://a:2");
        let (_, drift) = load_topology(&second, &store).await.unwrap();
        assert!(matches!(&drift[..], [Drift::NodeAdded { .. }]));

        // A record from a newer Miroir is refused, not overwritten.
        let mut newer = stored.clone();
        newer.version += 1;
        store
            .put_meta(META_TOPOLOGY, &newer.encode())
            .await
            .unwrap();
        let err = load_topology(&first, &store).await.unwrap_err();
        assert!(err.to_string().contains("format version"), "{err}");
        assert_eq!(
            store.get_meta(META_TOPOLOGY).await.unwrap().unwrap(),
            newer.encode()
        );
    }

    #[tokio::test]
    async fn topology_changes_are_stored_mirrored_and_survive_a_restart() {
        use miroir_core::ids::ShardId;
        let dir = tempfile::tempdir().unwrap();
        let open = || async {
            let store: Arc<dyn TaskStore> = Arc::new(
                crate::store::LmdbTaskStore::open(&dir.path().join("tasks"))
                    .await
                    .unwrap(),
            );
            let mut cfg = config(&[("a", "http://a:1"), ("b", "http://b:1")]);
            cfg.data_dir = dir.path().to_path_buf();
            Admin::open(cfg, store).await.unwrap()
        };
        let admin = open().await;
        let epoch = admin.lock().epoch;
        admin
            .change_topology(|r| {
                r.nodes.push(Node {
                    id: NodeId::new("c"),
                    address: "http://c:1".into(),
                    replica_group: GroupId(0),
                    status: NodeStatus::Joining,
                })
            })
            .await
            .unwrap();
        let ids = |a: &Admin| -> Vec<(String, NodeStatus)> {
            a.nodes().into_iter().map(|n| (n.id, n.status)).collect()
        };
        assert_eq!(ids(&admin)[2], ("c".into(), NodeStatus::Joining));
        let record = admin
            .change_topology(|r| {
                r.nodes[1].status = NodeStatus::Removed;
                r.epoch += 1;
            })
            .await
            .unwrap();
        assert_eq!(record.epoch, epoch + 1);
        assert_eq!(admin.lock().epoch, epoch + 1);
        assert!(
            ids(&admin).iter().all(|(id, _)| id != "b"),
            "a removed node leaves memory"
        );
        assert_eq!(admin.topology_record().await.unwrap(), record);
        let migration = ShardMigration {
            index: "i".into(),
            shard: ShardId(3),
            group: GroupId(0),
            from: NodeId::new("a"),
            to: NodeId::new("c"),
        };
        admin.set_migrations(vec![migration.clone()]).await.unwrap();
        assert_eq!(admin.build_snapshot().migrations, vec![migration.clone()]);
        drop(admin);

        // A restarted admin's first snapshot already has the migrations and statuses.
        let admin = open().await;
        let snap = admin.build_snapshot();
        assert_eq!(snap.migrations, vec![migration]);
        assert_eq!(snap.epoch, epoch + 1);
        assert_eq!(
            ids(&admin),
            [
                ("a".to_string(), NodeStatus::Active),
                ("c".to_string(), NodeStatus::Joining)
            ]
        );
    }

    #[test]
    fn key_json_maps_to_snapshot_key() {
        let v = serde_json::json!({"uid": "u", "key": "k", "name": "n", "actions": ["search"], "indexes": ["*"],
            "expiresAt": "2030-01-01T00:00:00Z"});
        let k = api_key_from_json(&v).unwrap();
        assert_eq!(k.actions, vec!["search"]);
        assert_eq!(k.expires_at, Some(1893456000));
        assert!(api_key_from_json(&serde_json::json!({"uid": "u"})).is_none());
    }
}
