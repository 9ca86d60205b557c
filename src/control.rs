//! The control protocol between the data plane and the admin process, as types both sides use
//! (docs/internals/control-protocol.md): the admin decodes exactly what the data plane encodes
//! because both go through the definitions here, never through a second hand-written copy.
//!
//! - [`CONTROL_VERSION`], [`VERSION_HEADER`], [`PRINCIPAL_HEADER`] and [`Principal`]: what
//!   every request on the control socket carries.
//! - [`Endpoint`]: the internal (data plane → admin only) routes, their method and path, and
//!   the parsing the admin routes with.
//! - The JSON bodies: [`Heartbeat`] (with the [`Applied`] generation/epoch acknowledgement),
//!   [`PrepareWrite`] → [`Prepared`], [`TaskRegistration`], [`FailedTaskRegistration`]
//!   (with [`TaskError`]). [`ControlMessage`] gives each one
//!   encoding and decoding, so a test on either side exercises the other side's code path.
//!
//! Only serde types and pure functions live here (the core crate does no I/O); the transports
//! (the data plane's HTTP/1.1 client, the admin's hyper server) stay in their crates.

use crate::documents::PkSource;
use crate::error::{link_for, MeiliError};
use crate::ids::{NodeId, ShardId};
use crate::snapshot::IndexMeta;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

/// The control protocol version this build speaks (sent and checked as [`VERSION_HEADER`]).
pub const CONTROL_VERSION: &str = "1";
/// Carried by every request on the control socket; the admin refuses any other version.
pub const VERSION_HEADER: &str = "miroir-control-version";
/// The caller the data plane authenticated, encoded by [`Principal`].
pub const PRINCIPAL_HEADER: &str = "miroir-principal";

/// Prefix of the internal routes ([`Endpoint`]).
pub const INTERNAL_PREFIX: &str = "/_internal/v1";

/// The `Miroir-Principal` header: who the data plane authenticated, so the admin can apply an
/// API key's index restrictions. The master key (or no master key configured) is `master`; an
/// API key, or a tenant token signed with one, is `key:<uid>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal<'a> {
    Master,
    Key(&'a str),
}

impl<'a> Principal<'a> {
    /// Decodes a header value; `None` when it is neither form. An empty uid (`key:`) is kept
    /// as is: it matches no key, so it restricts to nothing rather than to everything.
    pub fn parse(value: &'a str) -> Option<Self> {
        match value {
            "master" => Some(Principal::Master),
            _ => value.strip_prefix("key:").map(Principal::Key),
        }
    }
}

impl fmt::Display for Principal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Master => f.write_str("master"),
            Principal::Key(uid) => write!(f, "key:{uid}"),
        }
    }
}

/// The internal routes (data plane → admin only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint<'a> {
    /// `GET /_internal/v1/ping`: the liveness check before a write; `204`, no body.
    Ping,
    /// `POST /_internal/v1/heartbeat` with a [`Heartbeat`]; `204`.
    Heartbeat,
    /// `POST /_internal/v1/tasks` with a [`TaskRegistration`]; `202` with the summarized task.
    RegisterTask,
    /// `POST /_internal/v1/tasks/failed` with a [`FailedTaskRegistration`]; `202` with the
    /// summarized task (enqueued, as Meilisearch answers), the task itself already `failed`.
    RegisterFailedTask,
    /// `POST /_internal/v1/indexes/{index}/prepare-write` with a [`PrepareWrite`]; `200` with
    /// [`Prepared`].
    PrepareWrite { index: &'a str },
}

impl<'a> Endpoint<'a> {
    /// Every endpoint (with a sample index), for tests that must cover them all.
    pub const ALL: [Endpoint<'static>; 5] = [
        Endpoint::Ping,
        Endpoint::Heartbeat,
        Endpoint::RegisterTask,
        Endpoint::RegisterFailedTask,
        Endpoint::PrepareWrite { index: "movies" },
    ];

    /// The HTTP method, as sent on the request line.
    pub fn method(&self) -> &'static str {
        match self {
            Endpoint::Ping => "GET",
            Endpoint::Heartbeat
            | Endpoint::RegisterTask
            | Endpoint::RegisterFailedTask
            | Endpoint::PrepareWrite { .. } => "POST",
        }
    }

    /// The request path. The index uid is inserted as is: index uids are restricted to
    /// `[A-Za-z0-9_-]`, and a uid outside that set must reach the admin exactly as before
    /// (where it fails to route) rather than be created under an escaped name.
    pub fn path(&self) -> Cow<'static, str> {
        match self {
            Endpoint::Ping => Cow::Borrowed("/_internal/v1/ping"),
            Endpoint::Heartbeat => Cow::Borrowed("/_internal/v1/heartbeat"),
            Endpoint::RegisterTask => Cow::Borrowed("/_internal/v1/tasks"),
            Endpoint::RegisterFailedTask => Cow::Borrowed("/_internal/v1/tasks/failed"),
            Endpoint::PrepareWrite { index } => {
                Cow::Owned(format!("{INTERNAL_PREFIX}/indexes/{index}/prepare-write"))
            }
        }
    }

    /// Recognises an internal route from the request method and its path split on `/`
    /// (empty segments dropped, each percent-decoded), as the admin routes requests.
    pub fn parse(method: &str, segments: &[&'a str]) -> Option<Self> {
        let ["_internal", "v1", rest @ ..] = segments else {
            return None;
        };
        let endpoint = match rest {
            ["ping"] => Endpoint::Ping,
            ["heartbeat"] => Endpoint::Heartbeat,
            ["tasks"] => Endpoint::RegisterTask,
            ["tasks", "failed"] => Endpoint::RegisterFailedTask,
            ["indexes", index, "prepare-write"] => Endpoint::PrepareWrite { index },
            _ => return None,
        };
        (endpoint.method() == method).then_some(endpoint)
    }
}

/// A JSON body of the control protocol. Both sides call these, so a body one side encodes is
/// by construction one the other decodes (the round-trip tests below and in each crate).
pub trait ControlMessage: Serialize + DeserializeOwned {
    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("control messages are plain JSON values")
    }

    fn decode(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

/// The snapshot generation and routing epoch one data-plane process has applied: every request
/// that starts after the process reported it routes with this state or a newer one. The admin
/// records it per process; epoch barriers (a topology step that must not copy or delete a
/// shard before every live data plane routes with the new epoch) read it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Applied {
    /// `0` until a first snapshot was applied.
    #[serde(default)]
    pub generation: u64,
    #[serde(default)]
    pub epoch: u64,
}

/// `POST /_internal/v1/heartbeat`, every 500 ms from each data-plane process:
/// `{"dataplane": "<hostname>:<pid>", "pid": 1234, "generation": 42, "epoch": 7}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The process's stable name for this run (`<hostname>:<pid>`): the admin's key.
    pub dataplane: String,
    #[serde(default)]
    pub pid: u32,
    /// Flattened: the wire keeps the version-1 shape (`generation` and `epoch` at the top).
    #[serde(flatten)]
    pub applied: Applied,
}

impl ControlMessage for Heartbeat {}

/// `POST /_internal/v1/indexes/{uid}/prepare-write`: what a document batch needs before it can
/// be written (an unknown index, no primary key yet, or fields the index never had).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrepareWrite {
    /// The batch's primary key, if one could be resolved.
    pub primary_key: Option<String>,
    /// Where it came from; only `query` makes a conflict with the index's key an error.
    #[serde(default)]
    pub primary_key_source: Option<PkSource>,
    /// Fields of the batch not yet in `IndexMeta.fields`.
    #[serde(default)]
    pub new_fields: Vec<String>,
}

impl ControlMessage for PrepareWrite {}

/// The answer to [`PrepareWrite`]: the index metadata to write with (no need to wait for the
/// snapshot) and the generation that publishes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prepared {
    pub generation: u64,
    pub index: IndexMeta,
}

impl ControlMessage for Prepared {}

/// One node that accepted a write, with its node-local task uid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeTask {
    pub node: NodeId,
    pub task_uid: u32,
}

/// One node that did not get or refused a write, with a Meilisearch-shaped error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedNode {
    pub node: NodeId,
    pub error: Value,
}

/// `POST /_internal/v1/tasks`: a write the data plane dispatched, to become one Miroir task.
/// The admin answers `202` with the summarized task the client receives (relayed as is).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRegistration {
    pub index_uid: Option<String>,
    /// A Meilisearch task type (`documentAdditionOrUpdate`, `documentDeletion`, …).
    #[serde(rename = "type")]
    pub task_type: String,
    /// The task's `details`, node-summed counts `null` until known.
    #[serde(default)]
    pub details: Value,
    #[serde(default)]
    pub node_tasks: Vec<NodeTask>,
    #[serde(default)]
    pub failed_nodes: Vec<FailedNode>,
    /// The client's `?customMetadata=`, kept with the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_metadata: Option<String>,
    /// Copies this write did not reach (node down, marked failed, refused, timed out, or a
    /// copy still catching up), each with the request that completes it: the admin keeps
    /// them as durable hints and replays them in order (decision 021).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missed: Vec<MissedCopy>,
    /// The write did not reach `write_consistency` for some shard, yet some copies accepted
    /// it: it is registered anyway and the missed copies are completed from the hints
    /// (decision 022).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub degraded: bool,
}

impl ControlMessage for TaskRegistration {}

/// One node's missed part of a write: its shards and the exact request it should have got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MissedCopy {
    pub node: NodeId,
    /// The shards of the write this node owns (ascending): they are *lagging* on it until
    /// the replay's node task succeeded.
    pub shards: Vec<ShardId>,
    pub replay: ReplayRequest,
}

/// A node request, as the data plane would have sent it (path and query already encoded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayRequest {
    pub method: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub query: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The body (documents are UTF-8 JSON, NDJSON or CSV; empty for bodiless requests).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub body: String,
}

/// A Meilisearch error object `{message, code, type, link}` (that key order), as a task's
/// `error` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskError {
    pub message: String,
    pub code: String,
    #[serde(rename = "type")]
    pub error_type: String,
    pub link: String,
}

impl From<&MeiliError> for TaskError {
    fn from(e: &MeiliError) -> Self {
        TaskError {
            message: e.message.clone(),
            code: e.code.code().to_string(),
            error_type: e.code.error_type().as_str().to_string(),
            link: link_for(e.code),
        }
    }
}

/// `POST /_internal/v1/tasks/failed`: a write that reached no node because its task fails
/// as Meilisearch's would (a document batch without a resolvable primary key or with an
/// invalid id, docs/contract.md#primary-key). The admin allocates the Miroir task, records
/// it `failed` with `error` at once, and answers `202` with the summarized task, as for a
/// [`TaskRegistration`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedTaskRegistration {
    pub index_uid: Option<String>,
    /// A Meilisearch task type (`documentAdditionOrUpdate`).
    #[serde(rename = "type")]
    pub task_type: String,
    /// The failed task's final `details` (e.g. `{"receivedDocuments": 3, "indexedDocuments": 0}`).
    #[serde(default)]
    pub details: Value,
    pub error: TaskError,
    /// The client's `?customMetadata=`, kept with the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_metadata: Option<String>,
}

impl ControlMessage for FailedTaskRegistration {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip<T: ControlMessage + PartialEq + fmt::Debug>(m: &T) -> Value {
        let bytes = m.encode();
        assert_eq!(&T::decode(&bytes).unwrap(), m);
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn principal_header_round_trips() {
        for p in [Principal::Master, Principal::Key("u1"), Principal::Key("")] {
            assert_eq!(Principal::parse(&p.to_string()), Some(p));
        }
        assert_eq!(Principal::Key("a:b").to_string(), "key:a:b");
        assert_eq!(Principal::parse("key:a:b"), Some(Principal::Key("a:b")));
        assert_eq!(Principal::parse("Master"), None);
        assert_eq!(Principal::parse("tenant:x"), None);
    }

    #[test]
    fn endpoints_round_trip_through_the_admin_parser() {
        for e in Endpoint::ALL {
            let path = e.path();
            let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
            assert_eq!(Endpoint::parse(e.method(), &segs), Some(e), "{path}");
            let other = if e.method() == "GET" { "POST" } else { "GET" };
            assert_eq!(Endpoint::parse(other, &segs), None, "{path}");
            assert!(path.starts_with(INTERNAL_PREFIX));
        }
        assert_eq!(Endpoint::parse("GET", &["_internal", "v2", "ping"]), None);
        assert_eq!(Endpoint::parse("GET", &["tasks"]), None);
        assert_eq!(
            Endpoint::PrepareWrite { index: "m" }.path(),
            "/_internal/v1/indexes/m/prepare-write"
        );
    }

    #[test]
    fn heartbeat_keeps_the_flat_version_1_shape() {
        let hb = Heartbeat {
            dataplane: "host:1".into(),
            pid: 1,
            applied: Applied {
                generation: 42,
                epoch: 7,
            },
        };
        assert_eq!(
            round_trip(&hb),
            json!({"dataplane": "host:1", "pid": 1, "generation": 42, "epoch": 7})
        );
        // Older senders may omit what they do not know yet.
        let hb = Heartbeat::decode(br#"{"dataplane": "h:2"}"#).unwrap();
        assert_eq!((hb.pid, hb.applied), (0, Applied::default()));
        assert!(Heartbeat::decode(br#"{"pid": 1}"#).is_err());
    }

    #[test]
    fn prepare_write_round_trips() {
        let p = PrepareWrite {
            primary_key: Some("id".into()),
            primary_key_source: Some(PkSource::Inferred),
            new_fields: vec!["title".into(), "year".into()],
        };
        assert_eq!(
            round_trip(&p),
            json!({"primaryKey": "id", "primaryKeySource": "inferred", "newFields": ["title", "year"]})
        );
        let none = PrepareWrite {
            primary_key: None,
            primary_key_source: None,
            new_fields: vec![],
        };
        assert_eq!(
            round_trip(&none),
            json!({"primaryKey": null, "primaryKeySource": null, "newFields": []})
        );
        for (wire, src) in [
            ("index", PkSource::Index),
            ("query", PkSource::Query),
            ("inferred", PkSource::Inferred),
        ] {
            let body = json!({"primaryKey": "k", "primaryKeySource": wire});
            let p = PrepareWrite::decode(&serde_json::to_vec(&body).unwrap()).unwrap();
            assert_eq!(p.primary_key_source, Some(src));
            assert!(p.new_fields.is_empty());
        }
    }

    #[test]
    fn prepared_carries_the_index_meta() {
        let index = IndexMeta {
            uid: "movies".into(),
            primary_key: Some("id".into()),
            shards: 8,
            fields: vec!["id".into()],
            searchable_wildcard: true,
            displayed_wildcard: true,
            ranking_rules: vec!["words".into()],
            max_values_per_facet: 100,
            sort_facet_values_by: Default::default(),
            max_total_hits: 1000,
            created_at: "2026-01-01T00:00:00Z".into(),
            updated_at: "2026-01-01T00:00:00Z".into(),
            distinct_attribute: None,
            foreign_keys: Vec::new(),
            deleting: false,
        };
        let v = round_trip(&Prepared {
            generation: 3,
            index: index.clone(),
        });
        assert_eq!(v["generation"], 3);
        assert_eq!(v["index"], serde_json::to_value(&index).unwrap());
    }

    #[test]
    fn task_registration_round_trips() {
        let reg = TaskRegistration {
            index_uid: Some("movies".into()),
            task_type: "documentAdditionOrUpdate".into(),
            details: json!({"receivedDocuments": 1000, "indexedDocuments": null}),
            node_tasks: vec![
                NodeTask {
                    node: NodeId::new("meili-0"),
                    task_uid: 12,
                },
                NodeTask {
                    node: NodeId::new("meili-2"),
                    task_uid: 7,
                },
            ],
            failed_nodes: vec![FailedNode {
                node: NodeId::new("meili-1"),
                error: json!({"message": "m", "code": "unavailable", "type": "system", "link": "l"}),
            }],
            custom_metadata: Some("import 42".into()),
            missed: vec![],
            degraded: false,
        };
        assert_eq!(
            round_trip(&reg),
            json!({"indexUid": "movies", "type": "documentAdditionOrUpdate",
                   "details": {"receivedDocuments": 1000, "indexedDocuments": null},
                   "nodeTasks": [{"node": "meili-0", "taskUid": 12}, {"node": "meili-2", "taskUid": 7}],
                   "failedNodes": [{"node": "meili-1", "error": {"message": "m", "code": "unavailable", "type": "system", "link": "l"}}],
                   "customMetadata": "import 42"})
        );
        let bare = TaskRegistration {
            custom_metadata: None,
            ..reg.clone()
        };
        assert!(round_trip(&bare).get("customMetadata").is_none());
        let hinted = TaskRegistration {
            missed: vec![MissedCopy {
                node: NodeId::new("meili-1"),
                shards: vec![ShardId(3), ShardId(5)],
                replay: ReplayRequest {
                    method: "POST".into(),
                    path: "/indexes/movies/documents".into(),
                    query: "primaryKey=id".into(),
                    content_type: Some("application/json".into()),
                    body: r#"[{"id":1,"_miroir_shard":3}]"#.into(),
                },
            }],
            degraded: true,
            ..reg
        };
        let v = round_trip(&hinted);
        assert_eq!(v["degraded"], true);
        assert_eq!(
            v["missed"],
            json!([{"node": "meili-1", "shards": [3, 5], "replay": {"method": "POST",
                    "path": "/indexes/movies/documents", "query": "primaryKey=id",
                    "contentType": "application/json",
                    "body": "[{\"id\":1,\"_miroir_shard\":3}]"}}])
        );
        // A bodiless replay (delete all) carries only what it has.
        let r = ReplayRequest {
            method: "DELETE".into(),
            path: "/indexes/m/documents".into(),
            query: String::new(),
            content_type: None,
            body: String::new(),
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"method": "DELETE", "path": "/indexes/m/documents"})
        );
        let minimal =
            TaskRegistration::decode(br#"{"indexUid": null, "type": "documentDeletion"}"#).unwrap();
        assert!(minimal.details.is_null() && minimal.node_tasks.is_empty());
        assert!(minimal.missed.is_empty() && !minimal.degraded);
        // Node task uids are Meilisearch's `u32`.
        assert!(TaskRegistration::decode(
            br#"{"type": "x", "nodeTasks": [{"node": "n", "taskUid": 4294967296}]}"#
        )
        .is_err());
    }

    #[test]
    fn failed_task_registration_round_trips() {
        let e = MeiliError::new(
            crate::error::ErrorCode::MissingDocumentId,
            "Document doesn't have a `id` attribute: `{\"title\":\"x\"}`.",
        );
        let reg = FailedTaskRegistration {
            index_uid: Some("movies".into()),
            task_type: "documentAdditionOrUpdate".into(),
            details: json!({"receivedDocuments": 2, "indexedDocuments": 0}),
            error: TaskError::from(&e),
            custom_metadata: Some("m".into()),
        };
        let v = round_trip(&reg);
        assert_eq!(
            v,
            json!({"indexUid": "movies", "type": "documentAdditionOrUpdate",
                   "details": {"receivedDocuments": 2, "indexedDocuments": 0},
                   "error": {"message": e.message, "code": "missing_document_id",
                             "type": "invalid_request",
                             "link": "https://docs.meilisearch.com/errors#missing_document_id"},
                   "customMetadata": "m"})
        );
        // The error object is exactly the body Miroir answers errors with (same key order).
        assert_eq!(
            serde_json::to_vec(&reg.error).unwrap(),
            e.to_body(),
            "task error and error body agree"
        );
        let bare = FailedTaskRegistration {
            custom_metadata: None,
            ..reg
        };
        assert!(round_trip(&bare).get("customMetadata").is_none());
        // An error is what makes it a failed task: a body without one is refused.
        assert!(FailedTaskRegistration::decode(br#"{"indexUid": "m", "type": "x"}"#).is_err());
        assert_eq!(
            Endpoint::RegisterFailedTask.path(),
            "/_internal/v1/tasks/failed"
        );
    }
}
