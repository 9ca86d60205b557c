//! # miroir-core
//!
//! The shared core of Miroir: everything both processes (the thread-per-core data plane in
//! `runtime/` and the tokio admin process in `admin/`) must agree on, with **no I/O**.
//!
//! - [`access`]: Meilisearch's API-key rules (action grants, index patterns, index scopes).
//! - [`ids`]: typed identifiers (`ShardId`, `NodeId`, `GroupId`, `TaskUid`).
//! - [`topology`]: nodes grouped by replica group and the node status state machine.
//! - [`routing`]: the normative, byte-exact routing of docs/contract.md#routing (xxh64 + rendezvous).
//! - [`documents`]: primary-key resolution, reserved fields, `_miroir_shard` injection.
//! - [`config`]: the YAML/env/CLI configuration and its validation.
//! - [`network`]: the `/network` record, its snapshot view and remote federated search.
//! - [`search_rules`]: dynamic search rules (which are active for a query, where pins land).
//! - [`snapshot`]: the immutable state the admin publishes and the data plane reads.
//! - [`control`]: the data plane ⇄ admin control protocol (paths, headers, messages).
//! - [`content_type`]: Meilisearch's `415` for JSON routes (data plane and admin).
//! - [`error`]: every Miroir error code and its one mapping to a Meilisearch error body.
//! - [`node_message`]: node error messages rewritten without Miroir's reserved attributes.
//! - [`uri`]: query strings and path segments, decoded as Meilisearch decodes them.

pub mod access;
pub mod config;
pub mod content_type;
pub mod control;
pub mod documents;
pub mod error;
pub mod fingerprint;
pub mod foreign_keys;
pub mod ids;
pub mod network;
pub mod node_message;
pub mod retrieve_vectors;
pub mod routing;
pub mod search_rules;
pub mod snapshot;
#[cfg(feature = "lmdb")]
pub mod snapshot_store;
pub mod topology;
pub mod uri;

pub use error::{CodedError, ErrorCode, MeiliError};
pub use ids::{GroupId, NodeId, ShardId, TaskUid};
