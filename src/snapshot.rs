//! The immutable [`Snapshot`] the admin process publishes (into LMDB) and every data-plane
//! core reads. It is everything the hot path needs to route a request without asking anyone:
//! topology, per-index primary key and shard count, the field lists pushed to nodes, the
//! settings the merge needs, API keys for auth, and in-flight shard migrations (dual-write).
//!
//! Encoding: a compact, versioned binary form (`encode`/`decode`), so an older data plane
//! refuses a snapshot it cannot read instead of misreading it.

use crate::ids::{GroupId, NodeId, ShardId};
use crate::topology::{Node, Topology, TopologyError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Current snapshot encoding version (first byte(s) of the encoded form).
pub const SNAPSHOT_FORMAT_VERSION: u16 = 6;

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
    /// Copies with pending hints (decision 021): `node` missed acknowledged writes to
    /// `(index, shard)` and must not answer reads for that shard until they are replayed.
    /// Sorted, no duplicates.
    pub lagging: Vec<LaggingCopy>,
    /// The `foreignKeys` experimental feature (as last set through `PATCH
    /// /experimental-features`): without it, hits are not hydrated (decision 044).
    #[serde(default)]
    pub foreign_keys_feature: bool,
    /// Dynamic search rules (decision 042), in the order milli takes them
    /// ([`crate::search_rules::precedence_order`]). Empty: searches pay one branch.
    pub search_rules: Vec<crate::search_rules::SearchRule>,
    /// The `/network` remotes and the `network` feature (decision 045; format 5): where a
    /// federated query with `federationOptions.remote` is sent.
    #[serde(default)]
    pub network: crate::network::NetworkView,
}

/// One shard copy that is behind its other copies (see [`Snapshot::lagging`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LaggingCopy {
    pub node: NodeId,
    pub index: String,
    pub shard: ShardId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexMeta {
    pub uid: String,
    /// `None` until set at creation or inferred by the first document batch.
    pub primary_key: Option<String>,
    /// Shard count S, fixed at index creation.
    pub shards: u32,
    /// Every document field seen so far, in first-seen order, reserved fields excluded. When
    /// the client's `displayedAttributes` is `*`, this is the explicit list the nodes get.
    pub fields: Vec<String>,
    /// Whether the client's `searchableAttributes` is `*` (nodes get `*` too, decision 006).
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
    /// The index's `distinctAttribute` (the merge deduplicates across shards by it).
    #[serde(default)]
    pub distinct_attribute: Option<String>,
    /// The index's `foreignKeys` setting, kept by Miroir and never sent to the nodes: they
    /// would hydrate from their own shard of the foreign index (decision 044).
    #[serde(default)]
    pub foreign_keys: Vec<crate::foreign_keys::ForeignKey>,
    /// An index deletion was accepted and has not finished (docs/contract.md#index-deletion).
    /// Reads still find the index, as on Meilisearch until its deletion task runs; a document
    /// write, which re-creates a deleted index, goes through the admin, which orders it after
    /// the deletion.
    /// (`default`: the admin's stores hold metadata written before this field existed.)
    #[serde(default)]
    pub deleting: bool,
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

/// Why a byte string is not a snapshot this build can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot is {0} bytes, too short for the 2-byte format version")]
    Truncated(usize),
    #[error(
        "snapshot format version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedVersion { found: u16, supported: u16 },
    #[error("snapshot body does not decode: {0}")]
    Body(String),
    #[error("snapshot body has {0} trailing bytes")]
    TrailingBytes(usize),
}

impl Snapshot {
    /// `u16` big-endian [`SNAPSHOT_FORMAT_VERSION`], then the postcard encoding of `self`.
    ///
    /// Postcard is compact (varints, no field names) and not self-describing, which is why the
    /// version header exists: any change to these types' shape must bump the version, and an
    /// older reader then refuses the snapshot instead of misreading it.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = SNAPSHOT_FORMAT_VERSION.to_be_bytes().to_vec();
        postcard::to_io(self, &mut out).expect("postcard serialisation into a Vec cannot fail");
        out
    }

    /// Inverse of [`Snapshot::encode`]; rejects unknown versions and trailing garbage.
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        let Some((version, body)) = bytes.split_first_chunk::<2>() else {
            return Err(SnapshotError::Truncated(bytes.len()));
        };
        let version = u16::from_be_bytes(*version);
        if version != SNAPSHOT_FORMAT_VERSION {
            return Err(SnapshotError::UnsupportedVersion {
                found: version,
                supported: SNAPSHOT_FORMAT_VERSION,
            });
        }
        let (snapshot, rest) =
            postcard::take_from_bytes(body).map_err(|e| SnapshotError::Body(e.to_string()))?;
        if !rest.is_empty() {
            return Err(SnapshotError::TrailingBytes(rest.len()));
        }
        Ok(snapshot)
    }

    /// The routing view of this snapshot. Allocates: build it once per snapshot generation.
    pub fn topology(&self) -> Result<Topology, TopologyError> {
        Topology::new(
            self.replication_factor,
            self.replica_groups,
            self.nodes.iter().cloned(),
        )
    }

    pub fn index(&self, uid: &str) -> Option<&IndexMeta> {
        self.indexes.get(uid)
    }

    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id.as_str() == id)
    }

    /// In-flight migrations of one index (pass to the routing's `*_with_migrations`).
    pub fn migrations_for<'a>(
        &'a self,
        index: &'a str,
    ) -> impl Iterator<Item = &'a ShardMigration> + 'a {
        self.migrations.iter().filter(move |m| m.index == index)
    }

    /// The lagging `(node, shard)` copies of one index.
    pub fn lagging_for<'a>(
        &'a self,
        index: &'a str,
    ) -> impl Iterator<Item = (&'a NodeId, ShardId)> + 'a {
        self.lagging
            .iter()
            .filter(move |l| l.index == index)
            .map(|l| (&l.node, l.shard))
    }
}

impl IndexMeta {
    /// A new index's metadata with Meilisearch's defaults (all wildcards, default ranking
    /// rules, `maxValuesPerFacet` 100, `maxTotalHits` 1000, facet values sorted `alpha`).
    pub fn new(
        uid: impl Into<String>,
        primary_key: Option<String>,
        shards: u32,
        now: &str,
    ) -> Self {
        IndexMeta {
            uid: uid.into(),
            primary_key,
            shards,
            fields: Vec::new(),
            searchable_wildcard: true,
            displayed_wildcard: true,
            ranking_rules: DEFAULT_RANKING_RULES
                .iter()
                .map(|r| r.to_string())
                .collect(),
            max_values_per_facet: 100,
            sort_facet_values_by: BTreeMap::from([("*".to_string(), FacetOrder::Alpha)]),
            max_total_hits: 1000,
            created_at: now.to_string(),
            updated_at: now.to_string(),
            distinct_attribute: None,
            foreign_keys: Vec::new(),
            deleting: false,
        }
    }
}

/// Nodes return at least this many values per facet, whatever the client's
/// `faceting.maxValuesPerFacet` (which the merge applies and clients read back).
///
/// A node cuts its facet values to `maxValuesPerFacet` in *its* order, and that order is not
/// always the global one: milli lists number values in text order up to 3 000 matching
/// documents and numerically above, so a shard under the threshold and a global result over
/// it cut differently; `count` order cut per shard misses values whose count only adds up
/// across shards. A larger node cut makes the merge exact for every facet with at most this
/// many distinct values per shard (docs/decisions/005-facet-overfetch.md).
pub const NODE_MAX_VALUES_PER_FACET: u64 = 1000;

/// The node's `maxValuesPerFacet` for a client value.
pub fn node_max_values_per_facet(client: u64) -> u64 {
    client.max(NODE_MAX_VALUES_PER_FACET)
}

/// Meilisearch v1.x default ranking rules, in order.
pub const DEFAULT_RANKING_RULES: [&str; 6] = [
    "words",
    "typo",
    "proximity",
    "attribute",
    "sort",
    "exactness",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::NodeStatus;
    use proptest::prelude::*;

    fn sample() -> Snapshot {
        let mut indexes = BTreeMap::new();
        let mut movies = IndexMeta::new(
            "movies",
            Some("id".into()),
            64,
            "2026-11-23T19:50:01.123456Z",
        );
        movies.fields = vec!["id".into(), "title".into()];
        movies
            .sort_facet_values_by
            .insert("genre".into(), FacetOrder::Count);
        indexes.insert("movies".to_string(), movies);
        Snapshot {
            generation: 9,
            epoch: 4,
            replication_factor: 1,
            replica_groups: 2,
            nodes: vec![
                Node {
                    id: NodeId::new("meili-0"),
                    address: "http://127.0.0.1:7710".into(),
                    replica_group: GroupId(0),
                    status: NodeStatus::Active,
                },
                Node {
                    id: NodeId::new("meili-1"),
                    address: "http://127.0.0.1:7711".into(),
                    replica_group: GroupId(1),
                    status: NodeStatus::Joining,
                },
            ],
            indexes,
            keys: vec![ApiKey {
                uid: "6062abda-a5aa-4414-ac91-ecd7944c0f8d".into(),
                key: "d0552b41".into(),
                name: Some("Default Search API Key".into()),
                actions: vec!["search".into()],
                indexes: vec!["*".into()],
                expires_at: None,
            }],
            migrations: vec![ShardMigration {
                index: "movies".into(),
                shard: ShardId(3),
                group: GroupId(1),
                from: NodeId::new("meili-0"),
                to: NodeId::new("meili-1"),
            }],
            lagging: vec![LaggingCopy {
                node: NodeId::new("meili-1"),
                index: "movies".into(),
                shard: ShardId(2),
            }],
            foreign_keys_feature: true,
            search_rules: vec![{
                let mut r = crate::search_rules::SearchRule::new("promo", 0);
                r.start_ns = Some(-1_000_000_000_000_000_000_000);
                r.time_start = Some("1938-04-24T22:13:20Z".into());
                r.actions.push(crate::search_rules::PinAction {
                    index_uid: Some("movies".into()),
                    id: "42".into(),
                    position: 3,
                });
                r
            }],
            network: crate::network::NetworkView {
                feature: true,
                local: Some("ms-0".into()),
                remotes: vec![crate::network::RemoteView {
                    name: "ms-1".into(),
                    url: "http://ms-1:7700".into(),
                    search_api_key: Some("k".into()),
                }],
            },
        }
    }

    #[test]
    fn round_trip_and_helpers() {
        let snap = sample();
        let bytes = snap.encode();
        assert_eq!(&bytes[..2], &SNAPSHOT_FORMAT_VERSION.to_be_bytes());
        assert_eq!(Snapshot::decode(&bytes).unwrap(), snap);
        assert_eq!(
            snap.index("movies").unwrap().primary_key.as_deref(),
            Some("id")
        );
        assert!(snap.index("nope").is_none());
        assert_eq!(snap.node("meili-1").unwrap().status, NodeStatus::Joining);
        assert_eq!(snap.migrations_for("movies").count(), 1);
        assert_eq!(snap.migrations_for("other").count(), 0);
        let lagging: Vec<_> = snap.lagging_for("movies").collect();
        assert_eq!(lagging, vec![(&NodeId::new("meili-1"), ShardId(2))]);
        assert_eq!(snap.lagging_for("other").count(), 0);
        let t = snap.topology().unwrap();
        assert_eq!(t.replica_groups(), 2);
        assert_eq!(
            Snapshot::decode(&Snapshot::default().encode()).unwrap(),
            Snapshot::default()
        );
    }

    #[test]
    fn rejects_unknown_version_truncation_and_trailing_bytes() {
        let mut bytes = sample().encode();
        assert_eq!(
            Snapshot::decode(&bytes[..1]).unwrap_err(),
            SnapshotError::Truncated(1)
        );
        assert_eq!(
            Snapshot::decode(&[]).unwrap_err(),
            SnapshotError::Truncated(0)
        );
        assert!(matches!(
            Snapshot::decode(&bytes[..bytes.len() - 3]).unwrap_err(),
            SnapshotError::Body(_)
        ));
        bytes.push(0);
        assert_eq!(
            Snapshot::decode(&bytes).unwrap_err(),
            SnapshotError::TrailingBytes(1)
        );
        bytes.pop();
        bytes[..2].copy_from_slice(&(SNAPSHOT_FORMAT_VERSION + 1).to_be_bytes());
        assert_eq!(
            Snapshot::decode(&bytes).unwrap_err(),
            SnapshotError::UnsupportedVersion {
                found: SNAPSHOT_FORMAT_VERSION + 1,
                supported: SNAPSHOT_FORMAT_VERSION
            }
        );
    }

    fn arb_status() -> impl Strategy<Value = NodeStatus> {
        proptest::sample::select(NodeStatus::ALL.to_vec())
    }

    fn arb_node() -> impl Strategy<Value = Node> {
        ("[a-z0-9-]{1,10}", "\\PC{0,20}", 0u32..4, arb_status()).prop_map(
            |(id, address, g, status)| Node {
                id: NodeId::new(id),
                address,
                replica_group: GroupId(g),
                status,
            },
        )
    }

    fn arb_index() -> impl Strategy<Value = IndexMeta> {
        (
            "\\PC{1,12}",
            proptest::option::of("[a-zA-Z_]{1,8}"),
            1u32..1024,
            proptest::collection::vec("\\PC{0,8}", 0..6),
            any::<(bool, bool)>(),
            proptest::collection::btree_map(
                "[a-z*]{1,5}",
                prop_oneof![Just(FacetOrder::Alpha), Just(FacetOrder::Count)],
                0..3,
            ),
            any::<(u32, u32)>(),
        )
            .prop_map(
                |(uid, pk, shards, fields, (sw, dw), sort, (mv, mt))| IndexMeta {
                    uid,
                    primary_key: pk,
                    shards,
                    fields,
                    searchable_wildcard: sw,
                    displayed_wildcard: dw,
                    ranking_rules: vec!["words".into(), "title:asc".into()],
                    max_values_per_facet: mv,
                    sort_facet_values_by: sort,
                    max_total_hits: mt,
                    created_at: "2026-01-01T00:00:00.000Z".into(),
                    updated_at: "2026-01-02T00:00:00.000Z".into(),
                    distinct_attribute: None,
                    foreign_keys: if sw {
                        vec![crate::foreign_keys::ForeignKey {
                            foreign_index_uid: "authors".into(),
                            field_name: "author".into(),
                        }]
                    } else {
                        Vec::new()
                    },
                    deleting: dw && !sw,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        #[test]
        fn prop_round_trip(
            generation in any::<u64>(), epoch in any::<u64>(), rf in any::<u32>(), rg in any::<u32>(),
            nodes in proptest::collection::vec(arb_node(), 0..6),
            indexes in proptest::collection::vec(arb_index(), 0..4),
            expires in proptest::option::of(any::<i64>()),
            shard in any::<u32>(),
        ) {
            let snap = Snapshot {
                generation, epoch, replication_factor: rf, replica_groups: rg, nodes,
                indexes: indexes.into_iter().map(|i| (i.uid.clone(), i)).collect(),
                keys: vec![ApiKey { uid: "u".into(), key: "k".into(), name: None, actions: vec![], indexes: vec!["*".into()], expires_at: expires }],
                migrations: vec![ShardMigration { index: "i".into(), shard: ShardId(shard), group: GroupId(0), from: NodeId::new("a"), to: NodeId::new("b") }],
                lagging: vec![LaggingCopy { node: NodeId::new("a"), index: "i".into(), shard: ShardId(shard) }],
                foreign_keys_feature: expires.is_some(),
                search_rules: vec![crate::search_rules::SearchRule { precedence: Some(generation), end_ns: Some(i128::from(epoch) << 64), ..crate::search_rules::SearchRule::new("r", shard) }],
                network: crate::network::NetworkView { feature: rf % 2 == 0, local: Some(format!("n{shard}")), remotes: vec![] },
            };
            prop_assert_eq!(Snapshot::decode(&snap.encode()).unwrap(), snap);
        }

        #[test]
        fn prop_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Snapshot::decode(&bytes);
            let mut versioned = SNAPSHOT_FORMAT_VERSION.to_be_bytes().to_vec();
            versioned.extend_from_slice(&bytes);
            let _ = Snapshot::decode(&versioned);
        }
    }
}
