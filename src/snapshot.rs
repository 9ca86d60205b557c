//! The immutable [`Snapshot`] the admin process publishes (into LMDB) and every data-plane
//! core reads. It is everything the hot path needs to route a request without asking anyone:
//! topology, per-index primary key and shard count, the field lists pushed to nodes, the
//! settings the merge needs, API keys for auth, and in-flight shard migrations (dual-write).
//!
//! Encoding: a compact, versioned binary form (`encode`/`decode`), so an older data plane
//! refuses a snapshot it cannot read instead of misreading it.

use crate::ids::{GroupId, NodeId, ShardId};
use crate::topology::Node;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Current snapshot encoding version (first byte(s) of the encoded form).
pub const SNAPSHOT_FORMAT_VERSION: u16 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Snapshot {
    /// Increases by one on every publish (any change at all).
    pub generation: u64,
    /// Routing epoch: increases when shard ownership or write targets change. Data planes
    /// acknowledge the epoch they applied; the admin waits on it before copy/delete steps.
    pub epoch: u64,
    pub replication_factor: u32,
    pub replica_groups: u32,
    /// Every known node (all groups, all statuses).
    pub nodes: Vec<Node>,
    /// Index uid → what routing and merging need to know about it.
    pub indexes: BTreeMap<String, IndexMeta>,
    /// API keys valid through Miroir (the master key is not in here: it comes from config).
    pub keys: Vec<ApiKey>,
    /// Shard migrations in progress: writes for `(index, shard)` also go to `to`.
    pub migrations: Vec<ShardMigration>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexMeta {
    pub uid: String,
    /// `None` until set at creation or inferred by the first document batch.
    pub primary_key: Option<String>,
    /// Shard count S, fixed at index creation.
    pub shards: u32,
    /// Every document field seen so far, in first-seen order, reserved fields excluded. When
    /// the client's `searchableAttributes` is `*`, this is the explicit list the nodes get.
    pub fields: Vec<String>,
    /// Whether the client's `searchableAttributes` is `*` (then nodes get `fields`).
    pub searchable_wildcard: bool,
    /// Whether the client's `displayedAttributes` is `*`.
    pub displayed_wildcard: bool,
    /// The index's ranking rules, in order (the merge compares rule by rule).
    pub ranking_rules: Vec<String>,
    /// `faceting.maxValuesPerFacet` (Meilisearch default 100).
    pub max_values_per_facet: u32,
    /// `faceting.sortFacetValuesBy`: facet name (or `*`) → order.
    pub sort_facet_values_by: BTreeMap<String, FacetOrder>,
    /// `pagination.maxTotalHits` (Meilisearch default 1000).
    pub max_total_hits: u32,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FacetOrder {
    Alpha,
    Count,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub uid: String,
    /// The key value clients present (HMAC-SHA256(master key, uid), hex).
    pub key: String,
    pub name: Option<String>,
    pub actions: Vec<String>,
    pub indexes: Vec<String>,
    /// Unix seconds; `None` = never expires.
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMigration {
    pub index: String,
    pub shard: ShardId,
    pub group: GroupId,
    pub from: NodeId,
    pub to: NodeId,
}
