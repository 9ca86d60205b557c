//! The durable topology record and its drift from a configuration file.
//!
//! The admin stores the deployment's topology (nodes, replica groups, RF, routing epoch) as one
//! [`TopologyRecord`] in its store. The configuration's `nodes:` only *bootstraps* a new
//! deployment ([`TopologyRecord::bootstrap`]); once a record exists it is authoritative,
//! because placement is a function of the node set: adding a node to the file and restarting
//! would otherwise move shard ownership without moving any data.
//!
//! A configuration that disagrees with the record is described by [`TopologyRecord::drift`]
//! as a list of [`Drift`] items. Only an address change (same id, new address) is applied,
//! since it moves no data; every other item is reported with the `miroir-ctl` command that
//! would perform it and otherwise ignored. Design record:
//! `docs/decisions/015-durable-topology.md`.

use super::{Node, NodeStatus, Topology, TopologyError};
use crate::config::{Config, NodeConfig};
use crate::ids::{GroupId, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The format version [`TopologyRecord::encode`] writes. A reader refuses a newer one rather
/// than guess at fields it does not know (an older admin must not overwrite a newer record).
pub const TOPOLOGY_RECORD_VERSION: u32 = 1;

/// The deployment's topology as the admin stores it (JSON, versioned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologyRecord {
    pub version: u32,
    pub replication_factor: u32,
    pub replica_groups: u32,
    /// The routing epoch the data planes acknowledge (bumped by topology operations).
    pub epoch: u64,
    /// Every node ever admitted, removed ones included (ids are never reused).
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("the stored topology is not valid JSON: {0}")]
    Malformed(String),
    #[error("the stored topology has format version {found}; this Miroir reads up to {TOPOLOGY_RECORD_VERSION} (was it written by a newer Miroir?)")]
    UnsupportedVersion { found: u32 },
    #[error("the stored topology is inconsistent: {0}")]
    Invalid(#[from] TopologyError),
}

impl TopologyRecord {
    /// The first record of a new deployment: the configured nodes, all `active`.
    pub fn bootstrap(config: &Config, epoch: u64) -> TopologyRecord {
        TopologyRecord {
            version: TOPOLOGY_RECORD_VERSION,
            replication_factor: config.replication_factor,
            replica_groups: config.replica_groups,
            epoch,
            nodes: config
                .nodes
                .iter()
                .map(|n| Node {
                    id: NodeId::new(&n.id),
                    address: n.address.clone(),
                    replica_group: GroupId(n.replica_group),
                    status: NodeStatus::Active,
                })
                .collect(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a topology record serialises")
    }

    /// Parses a stored record, checking its version before its shape and its consistency
    /// (groups in range, no duplicate ids) after.
    pub fn decode(bytes: &[u8]) -> Result<TopologyRecord, RecordError> {
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let v: Version =
            serde_json::from_slice(bytes).map_err(|e| RecordError::Malformed(e.to_string()))?;
        if v.version == 0 || v.version > TOPOLOGY_RECORD_VERSION {
            return Err(RecordError::UnsupportedVersion { found: v.version });
        }
        let record: TopologyRecord =
            serde_json::from_slice(bytes).map_err(|e| RecordError::Malformed(e.to_string()))?;
        record.topology()?;
        Ok(record)
    }

    /// The record as a routing [`Topology`].
    pub fn topology(&self) -> Result<Topology, TopologyError> {
        Topology::new(
            self.replication_factor,
            self.replica_groups,
            self.nodes.iter().cloned(),
        )
    }

    /// The record's nodes as configuration entries (removed ones left out), in record order.
    pub fn node_configs(&self) -> Vec<NodeConfig> {
        self.nodes
            .iter()
            .filter(|n| n.status != NodeStatus::Removed)
            .map(|n| NodeConfig {
                id: n.id.as_str().to_string(),
                address: n.address.clone(),
                replica_group: n.replica_group.0,
            })
            .collect()
    }

    /// How `config` differs from this record: deployment-wide items first (RF, RG), then per
    /// node in id order. Empty when the configuration describes exactly this topology.
    pub fn drift(&self, config: &Config) -> Vec<Drift> {
        let mut out = Vec::new();
        if config.replication_factor != self.replication_factor {
            out.push(Drift::ReplicationFactorChanged {
                stored: self.replication_factor,
                configured: config.replication_factor,
            });
        }
        if config.replica_groups != self.replica_groups {
            out.push(Drift::ReplicaGroupsChanged {
                stored: self.replica_groups,
                configured: config.replica_groups,
            });
        }
        let stored: BTreeMap<&str, &Node> = self.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
        let configured: BTreeMap<&str, &NodeConfig> =
            config.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
        let ids: std::collections::BTreeSet<&str> =
            stored.keys().chain(configured.keys()).copied().collect();
        for id in ids {
            let node_id = NodeId::new(id);
            match (stored.get(id), configured.get(id)) {
                (None, Some(c)) => out.push(Drift::NodeAdded {
                    id: node_id,
                    address: c.address.clone(),
                    replica_group: c.replica_group,
                }),
                (Some(s), None) if s.status != NodeStatus::Removed => {
                    out.push(Drift::NodeRemoved {
                        id: node_id,
                        address: s.address.clone(),
                        replica_group: s.replica_group.0,
                    })
                }
                (Some(s), Some(_)) if s.status == NodeStatus::Removed => {
                    out.push(Drift::RemovedNodeListed { id: node_id })
                }
                (Some(s), Some(c)) => {
                    if s.replica_group.0 != c.replica_group {
                        out.push(Drift::ReplicaGroupChanged {
                            id: node_id.clone(),
                            address: c.address.clone(),
                            stored: s.replica_group.0,
                            configured: c.replica_group,
                        });
                    }
                    if s.address != c.address {
                        out.push(Drift::AddressChanged {
                            id: node_id,
                            stored: s.address.clone(),
                            configured: c.address.clone(),
                        });
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Applies the items of `drift` that move no data (address changes); returns whether the
    /// record changed. Everything else is left as stored.
    pub fn apply(&mut self, drift: &[Drift]) -> bool {
        let mut changed = false;
        for d in drift {
            if let Drift::AddressChanged { id, configured, .. } = d {
                if let Some(n) = self.nodes.iter_mut().find(|n| &n.id == id) {
                    if &n.address != configured {
                        n.address = configured.clone();
                        changed = true;
                    }
                }
            }
        }
        changed
    }
}

/// One difference between the configuration file and the stored topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Drift {
    /// The configuration lists a node the topology does not have.
    NodeAdded {
        id: NodeId,
        address: String,
        replica_group: u32,
    },
    /// The topology has a node (not removed) the configuration does not list.
    NodeRemoved {
        id: NodeId,
        address: String,
        replica_group: u32,
    },
    /// The configuration lists a node the topology marked removed; ids are never reused.
    RemovedNodeListed {
        id: NodeId,
    },
    /// The configuration puts a node in another replica group.
    ReplicaGroupChanged {
        id: NodeId,
        address: String,
        stored: u32,
        configured: u32,
    },
    /// Same id, new address: applied (it moves no data).
    AddressChanged {
        id: NodeId,
        stored: String,
        configured: String,
    },
    ReplicationFactorChanged {
        stored: u32,
        configured: u32,
    },
    ReplicaGroupsChanged {
        stored: u32,
        configured: u32,
    },
}

impl Drift {
    /// Whether a start applies this item (only address changes).
    pub fn applied(&self) -> bool {
        matches!(self, Drift::AddressChanged { .. })
    }

    /// The `miroir-ctl` command that would perform this change, if there is one. These are
    /// the intended topology-operation commands (docs/contract.md#admin-api).
    pub fn command(&self) -> Option<String> {
        match self {
            Drift::NodeAdded {
                id,
                address,
                replica_group,
            } => Some(format!(
                "miroir-ctl node add {id} {address} --group {replica_group}"
            )),
            Drift::NodeRemoved { id, .. } => Some(format!(
                "miroir-ctl node drain {id} && miroir-ctl node remove {id}"
            )),
            Drift::RemovedNodeListed { .. } | Drift::AddressChanged { .. } => None,
            Drift::ReplicaGroupChanged {
                id,
                address,
                configured,
                ..
            } => Some(format!(
                "miroir-ctl node drain {id} && miroir-ctl node remove {id} && miroir-ctl node add <new-id> {address} --group {configured}"
            )),
            Drift::ReplicationFactorChanged { configured, .. } => Some(format!(
                "miroir-ctl rebalance --replication-factor {configured}"
            )),
            Drift::ReplicaGroupsChanged { stored, configured } => Some(if configured > stored {
                format!("miroir-ctl group add --node <id>=<address> [--node ...] (once per new group, {stored}..{configured})")
            } else {
                format!("miroir-ctl group remove <group> (for each group {configured}..{stored})")
            }),
        }
    }
}

/// What differs, in one sentence (without the consequence or the command).
impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::NodeAdded {
                id,
                address,
                replica_group,
            } => write!(
                f,
                "the configuration lists node `{id}` ({address}, group {replica_group}), which is not in the stored topology"
            ),
            Drift::NodeRemoved {
                id,
                address,
                replica_group,
            } => write!(
                f,
                "the stored topology has node `{id}` ({address}, group {replica_group}), which the configuration does not list"
            ),
            Drift::RemovedNodeListed { id } => write!(
                f,
                "the configuration lists node `{id}`, which was removed from the topology (node ids are never reused: give it a new id)"
            ),
            Drift::ReplicaGroupChanged {
                id,
                stored,
                configured,
                ..
            } => write!(
                f,
                "the configuration puts node `{id}` in replica group {configured}; the stored topology has it in group {stored}"
            ),
            Drift::AddressChanged {
                id,
                stored,
                configured,
            } => write!(
                f,
                "node `{id}` moved from {stored} to {configured}"
            ),
            Drift::ReplicationFactorChanged { stored, configured } => write!(
                f,
                "the configuration has replication_factor {configured}; the stored topology has {stored}"
            ),
            Drift::ReplicaGroupsChanged { stored, configured } => write!(
                f,
                "the configuration has replica_groups {configured}; the stored topology has {stored}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(rf: u32, rg: u32, nodes: &[(&str, &str, u32)]) -> Config {
        Config {
            replication_factor: rf,
            replica_groups: rg,
            nodes: nodes
                .iter()
                .map(|(id, address, g)| NodeConfig {
                    id: (*id).into(),
                    address: (*address).into(),
                    replica_group: *g,
                })
                .collect(),
            ..Config::default()
        }
    }

    fn three() -> Config {
        config(
            1,
            1,
            &[
                ("a", "http://a:1", 0),
                ("b", "http://b:1", 0),
                ("c", "http://c:1", 0),
            ],
        )
    }

    #[test]
    fn bootstrap_round_trips_and_has_no_drift() {
        let c = three();
        let r = TopologyRecord::bootstrap(&c, 4);
        assert_eq!(r.version, TOPOLOGY_RECORD_VERSION);
        assert_eq!(r.epoch, 4);
        assert!(r.nodes.iter().all(|n| n.status == NodeStatus::Active));
        assert_eq!(TopologyRecord::decode(&r.encode()).unwrap(), r);
        assert_eq!(r.drift(&c), vec![]);
        assert_eq!(r.node_configs(), c.nodes);
    }

    #[test]
    fn decode_refuses_newer_versions_and_garbage() {
        let mut r = TopologyRecord::bootstrap(&three(), 1);
        r.version = TOPOLOGY_RECORD_VERSION + 1;
        assert_eq!(
            TopologyRecord::decode(&r.encode()).unwrap_err(),
            RecordError::UnsupportedVersion {
                found: TOPOLOGY_RECORD_VERSION + 1
            }
        );
        assert!(matches!(
            TopologyRecord::decode(b"{").unwrap_err(),
            RecordError::Malformed(_)
        ));
        r.version = 1;
        r.nodes[0].replica_group = GroupId(3);
        assert!(matches!(
            TopologyRecord::decode(&r.encode()).unwrap_err(),
            RecordError::Invalid(TopologyError::GroupOutOfRange { .. })
        ));
    }

    #[test]
    fn each_kind_of_difference_is_named() {
        let mut r = TopologyRecord::bootstrap(&three(), 1);
        r.nodes.push(Node {
            id: NodeId::new("z"),
            address: "http://z:1".into(),
            replica_group: GroupId(0),
            status: NodeStatus::Removed,
        });
        let c = config(
            2,
            2,
            &[
                ("a", "http://a:2", 0), // moved
                ("b", "http://b:1", 1), // other group
                ("d", "http://d:1", 0), // new
                ("z", "http://z:1", 0), // removed id listed again
            ],
        );
        let d = r.drift(&c);
        assert_eq!(
            d,
            vec![
                Drift::ReplicationFactorChanged {
                    stored: 1,
                    configured: 2
                },
                Drift::ReplicaGroupsChanged {
                    stored: 1,
                    configured: 2
                },
                Drift::AddressChanged {
                    id: NodeId::new("a"),
                    stored: "http://a:1".into(),
                    configured: "http://a:2".into()
                },
                Drift::ReplicaGroupChanged {
                    id: NodeId::new("b"),
                    address: "http://b:1".into(),
                    stored: 0,
                    configured: 1
                },
                Drift::NodeRemoved {
                    id: NodeId::new("c"),
                    address: "http://c:1".into(),
                    replica_group: 0
                },
                Drift::NodeAdded {
                    id: NodeId::new("d"),
                    address: "http://d:1".into(),
                    replica_group: 0
                },
                Drift::RemovedNodeListed {
                    id: NodeId::new("z")
                },
            ]
        );
        assert_eq!(
            d[5].command().unwrap(),
            "miroir-ctl node add d http://d:1 --group 0"
        );
        assert_eq!(
            d[4].command().unwrap(),
            "miroir-ctl node drain c && miroir-ctl node remove c"
        );
        assert!(d[2].applied() && d.iter().filter(|x| x.applied()).count() == 1);
        assert!(d[6].command().is_none());
        assert_eq!(
            d[2].to_string(),
            "node `a` moved from http://a:1 to http://a:2"
        );
        let json = serde_json::to_value(&d[5]).unwrap();
        assert_eq!(json["kind"], "node_added");
        assert_eq!(json["id"], "d");

        // Only the address is applied; everything else keeps the stored value.
        let before = r.clone();
        assert!(r.apply(&d));
        assert_eq!(r.nodes[0].address, "http://a:2");
        assert_eq!(r.replication_factor, before.replication_factor);
        assert_eq!(r.replica_groups, before.replica_groups);
        assert_eq!(r.nodes.len(), before.nodes.len());
        assert!(!r.apply(&d), "applying twice changes nothing");
        assert!(!r.drift(&c).iter().any(Drift::applied));
    }

    fn arb_record() -> impl Strategy<Value = TopologyRecord> {
        (
            1u32..4,
            1u32..3,
            prop::collection::btree_map(0u8..12, (0u32..3, 0u8..3, any::<bool>()), 1..8),
        )
            .prop_map(|(rf, rg, nodes)| TopologyRecord {
                version: TOPOLOGY_RECORD_VERSION,
                replication_factor: rf,
                replica_groups: rg,
                epoch: 1,
                nodes: nodes
                    .into_iter()
                    .map(|(id, (g, port, removed))| Node {
                        id: NodeId::new(format!("n{id}")),
                        address: format!("http://h:{port}"),
                        replica_group: GroupId(g % rg),
                        status: if removed {
                            NodeStatus::Removed
                        } else {
                            NodeStatus::Active
                        },
                    })
                    .collect(),
            })
    }

    fn arb_config() -> impl Strategy<Value = Config> {
        (
            1u32..4,
            1u32..3,
            prop::collection::btree_map(0u8..12, (0u32..3, 0u8..3), 1..8),
        )
            .prop_map(|(rf, rg, nodes)| Config {
                replication_factor: rf,
                replica_groups: rg,
                nodes: nodes
                    .into_iter()
                    .map(|(id, (g, port))| NodeConfig {
                        id: format!("n{id}"),
                        address: format!("http://h:{port}"),
                        replica_group: g % rg,
                    })
                    .collect(),
                ..Config::default()
            })
    }

    proptest! {
        /// A record never drifts from the configuration it describes.
        #[test]
        fn no_drift_against_itself(r in arb_record()) {
            let c = Config {
                replication_factor: r.replication_factor,
                replica_groups: r.replica_groups,
                nodes: r.node_configs(),
                ..Config::default()
            };
            prop_assert_eq!(r.drift(&c), vec![]);
        }

        /// Applying a drift changes addresses only: RF, RG, node set, groups and statuses (so
        /// shard placement) stay as stored, the record still decodes, and what remains is the
        /// drift minus the address changes.
        #[test]
        fn apply_changes_addresses_only(mut r in arb_record(), c in arb_config()) {
            let before = r.clone();
            let drift = r.drift(&c);
            r.apply(&drift);
            prop_assert_eq!(r.replication_factor, before.replication_factor);
            prop_assert_eq!(r.replica_groups, before.replica_groups);
            prop_assert_eq!(r.nodes.len(), before.nodes.len());
            for (a, b) in r.nodes.iter().zip(&before.nodes) {
                prop_assert_eq!(&a.id, &b.id);
                prop_assert_eq!(a.replica_group, b.replica_group);
                prop_assert_eq!(a.status, b.status);
            }
            let t0 = before.topology().unwrap();
            let t1 = r.topology().unwrap();
            for g in t0.group_ids() {
                prop_assert_eq!(t0.placement_nodes(g), t1.placement_nodes(g));
            }
            prop_assert_eq!(TopologyRecord::decode(&r.encode()).unwrap(), r.clone());
            let rest: Vec<Drift> = drift.into_iter().filter(|d| !d.applied()).collect();
            prop_assert_eq!(r.drift(&c), rest);
        }

        /// Every node the configuration and the record disagree on is named exactly once per
        /// kind, and a command is offered for everything not applied (but a reused id).
        #[test]
        fn every_unapplied_item_names_a_command(r in arb_record(), c in arb_config()) {
            for d in r.drift(&c) {
                let has_cmd = d.command().is_some();
                let expected = !matches!(d, Drift::AddressChanged { .. } | Drift::RemovedNodeListed { .. });
                prop_assert_eq!(has_cmd, expected, "{}", d);
            }
        }
    }
}
