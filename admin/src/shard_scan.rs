//! Reading one shard of an index from one node, and writing documents to a node: the I/O the
//! rebalancer (copy, verify), hint replay and anti-entropy share.
//!
//! A shard is read with `POST /indexes/{uid}/documents/fetch` and the shard restriction
//! `_miroir_shard IN [..]` (every document carries its shard, docs/contract.md#reserved-fields),
//! `retrieveVectors: true` so embeddings travel with their documents, page by page with
//! `offset`/`limit`. Offsets are not stable under concurrent deletes (a delete before the
//! cursor shifts every later document down by one), so a copy made this way must be checked
//! with [`shard_fingerprint`] and any difference repaired by id — which is what every caller
//! does.
//!
//! Caution for writers: Meilisearch 1.50 answers its document routes with every field
//! (checked: `displayedAttributes` does not apply to them), but `miroir-testnode` applies
//! `displayedAttributes`, and Miroir's nodes do not display `_miroir_shard` — so over test
//! nodes documents read here come back without it. A document written back to a node should
//! get its shard token again (`documents::shard_token`, as the rebalancer's copy does);
//! without it the copy escapes the `_miroir_shard IN [..]` restriction searches put on a node
//! that holds other shards too (found by `e2e/tests/rebalance.rs`: searches undercounted
//! during a drain).

use crate::node_client::{NodeClient, NodeError, NodeResponse};
use bytes::Bytes;
use hyper::Method;
use miroir_core::documents::shard_clause;
use miroir_core::fingerprint::{bucket_of, document_digest, Fingerprint};
use miroir_core::routing::DocumentIdRef;
use miroir_core::ShardId;
use serde_json::{json, Map, Value};
use std::time::Duration;

/// A JSON document as a node returns it.
pub type Document = Map<String, Value>;

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ScanError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("node answered {status} to {what}: {body}")]
    Refused {
        what: &'static str,
        status: u16,
        body: String,
    },
    #[error("node answered {what} with a body that is not the expected JSON")]
    Malformed { what: &'static str },
    #[error("a document on the node has no usable primary key `{0}`")]
    MissingId(String),
}

/// One page of a shard.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardPage {
    pub documents: Vec<Document>,
    /// Documents in the shard on that node when the page was read.
    pub total: u64,
}

/// Where to read from: a node, an index, one shard.
#[derive(Clone, Copy)]
pub struct ShardSource<'a> {
    pub client: &'a NodeClient,
    pub node_url: &'a str,
    pub index: &'a str,
    pub shard: ShardId,
}

impl ShardSource<'_> {
    /// Documents `offset..offset+limit` of the shard, every field (reserved ones and
    /// `_vectors` included).
    pub async fn page(&self, offset: u64, limit: u32) -> Result<ShardPage, ScanError> {
        let filter = Value::String(shard_clause(&[self.shard]));
        let v = self.fetch(&filter, offset, limit).await?;
        let total = v.get("total").and_then(Value::as_u64).unwrap_or(0);
        Ok(ShardPage {
            documents: results(&v)?,
            total,
        })
    }

    /// Documents `offset..offset+limit` of the shard that match `filter` (the shard
    /// restriction already in it: see `shard_clause`), every field.
    pub async fn filtered_page(
        &self,
        filter: &Value,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<Document>, ScanError> {
        results(&self.fetch(filter, offset, limit).await?)
    }

    async fn fetch(&self, filter: &Value, offset: u64, limit: u32) -> Result<Value, ScanError> {
        let body = json!({
            "filter": filter,
            "offset": offset,
            "limit": limit,
            "retrieveVectors": true,
        });
        let path = format!("/indexes/{}/documents/fetch", self.index);
        let r = self
            .client
            .send(self.node_url, Method::POST, &path, Some(&body))
            .await?;
        expect_success(r, "a shard page")
    }

    /// The shard's fingerprint on this node, and per-bucket fingerprints when `buckets > 0`
    /// (index `b` = documents whose id falls in bucket `b`, [`bucket_of`]).
    pub async fn fingerprint(
        &self,
        primary_key: &str,
        page_size: u32,
        buckets: u32,
    ) -> Result<(Fingerprint, Vec<Fingerprint>), ScanError> {
        let mut whole = Fingerprint::default();
        let mut per_bucket = vec![Fingerprint::default(); buckets as usize];
        let mut offset = 0u64;
        loop {
            let page = self.page(offset, page_size).await?;
            let n = page.documents.len() as u64;
            for doc in &page.documents {
                let id = canonical_id(doc, primary_key)?;
                let digest = document_digest(doc);
                whole.add(&id, digest);
                if buckets > 0 {
                    per_bucket[bucket_of(&id, buckets) as usize].add(&id, digest);
                }
            }
            offset += n;
            if n < u64::from(page_size) || n == 0 {
                break;
            }
        }
        Ok((whole, per_bucket))
    }
}

/// The canonical id of a document (docs/routing.md), or an error naming the primary key.
pub fn canonical_id(doc: &Document, primary_key: &str) -> Result<String, ScanError> {
    doc.get(primary_key)
        .and_then(DocumentIdRef::from_json)
        .map(|id| id.canonical().into_owned())
        .ok_or_else(|| ScanError::MissingId(primary_key.to_owned()))
}

/// The documents with these ids on a node (every field), in the node's order; ids the node
/// does not have are simply absent.
pub async fn fetch_by_ids(
    client: &NodeClient,
    node_url: &str,
    index: &str,
    ids: &[String],
) -> Result<Vec<Document>, ScanError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let body = json!({
        "ids": ids,
        "limit": ids.len(),
        "retrieveVectors": true,
    });
    let path = format!("/indexes/{index}/documents/fetch");
    let r = client
        .send(node_url, Method::POST, &path, Some(&body))
        .await?;
    let v = expect_success(r, "a fetch by ids")?;
    let Some(Value::Array(results)) = v.get("results") else {
        return Err(ScanError::Malformed {
            what: "a fetch by ids",
        });
    };
    Ok(results
        .iter()
        .filter_map(|d| d.as_object().cloned())
        .collect())
}

/// Sends whole documents (as read from another copy, reserved fields included) to a node as
/// a replacement (`POST /documents`) and returns the node's task uid. The caller waits for the task ([`wait_node_task`]).
pub async fn write_documents(
    client: &NodeClient,
    node_url: &str,
    index: &str,
    primary_key: &str,
    docs: &[Document],
    timeout: Duration,
) -> Result<u64, ScanError> {
    let body = serde_json::to_vec(docs).expect("JSON documents serialise");
    let path = format!("/indexes/{index}/documents?primaryKey={primary_key}");
    let r = client
        .send_raw(
            node_url,
            Method::POST,
            &path,
            Some(Bytes::from(body)),
            timeout,
        )
        .await?;
    task_uid_of(expect_success(r, "a document write")?, "a document write")
}

/// Deletes documents by id on a node; returns the node's task uid.
pub async fn delete_documents(
    client: &NodeClient,
    node_url: &str,
    index: &str,
    ids: &[String],
) -> Result<u64, ScanError> {
    let path = format!("/indexes/{index}/documents/delete-batch");
    let r = client
        .send(node_url, Method::POST, &path, Some(&json!(ids)))
        .await?;
    task_uid_of(
        expect_success(r, "a document deletion")?,
        "a document deletion",
    )
}

/// Polls a node task until it ends; `Ok(true)` when it succeeded, `Ok(false)` when it failed
/// or was canceled, an error when it is still unfinished after `deadline`.
pub async fn wait_node_task(
    client: &NodeClient,
    node_url: &str,
    task_uid: u64,
    deadline: Duration,
) -> Result<bool, ScanError> {
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        let r = client
            .send(node_url, Method::GET, &format!("/tasks/{task_uid}"), None)
            .await?;
        let v = expect_success(r, "a node task")?;
        match v.get("status").and_then(Value::as_str) {
            Some("succeeded") => return Ok(true),
            Some("failed" | "canceled") => return Ok(false),
            _ if started.elapsed() >= deadline => {
                return Err(ScanError::Node(NodeError::Timeout(deadline)))
            }
            _ => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
        }
    }
}

fn results(v: &Value) -> Result<Vec<Document>, ScanError> {
    let Some(Value::Array(results)) = v.get("results") else {
        return Err(ScanError::Malformed {
            what: "a shard page",
        });
    };
    Ok(results
        .iter()
        .filter_map(|d| d.as_object().cloned())
        .collect())
}

fn expect_success(r: NodeResponse, what: &'static str) -> Result<Value, ScanError> {
    if !r.is_success() {
        return Err(ScanError::Refused {
            what,
            status: r.status,
            body: String::from_utf8_lossy(&r.body).chars().take(512).collect(),
        });
    }
    serde_json::from_slice(&r.body).map_err(|_| ScanError::Malformed { what })
}

fn task_uid_of(v: Value, what: &'static str) -> Result<u64, ScanError> {
    v.get("taskUid")
        .and_then(Value::as_u64)
        .ok_or(ScanError::Malformed { what })
}

/// Every document of a shard on a node as canonical id → content digest (what a copy is
/// verified with: a per-document diff, so only the differing ids are re-sent).
pub async fn shard_digests(
    src: &ShardSource<'_>,
    primary_key: &str,
    page_size: u32,
) -> Result<std::collections::BTreeMap<String, u64>, ScanError> {
    let mut out = std::collections::BTreeMap::new();
    let mut offset = 0u64;
    loop {
        let page = src.page(offset, page_size).await?;
        let n = page.documents.len() as u64;
        for doc in &page.documents {
            out.insert(canonical_id(doc, primary_key)?, document_digest(doc));
        }
        offset += n;
        if n < u64::from(page_size) || n == 0 {
            break;
        }
    }
    Ok(out)
}

/// Deletes every document of `shards` on a node (`POST /documents/delete` with the shard
/// filter); returns the node's task uid.
pub async fn delete_shards(
    client: &NodeClient,
    node_url: &str,
    index: &str,
    shards: &[ShardId],
) -> Result<u64, ScanError> {
    let path = format!("/indexes/{index}/documents/delete");
    let body = json!({ "filter": shard_clause(shards) });
    let r = client
        .send(node_url, Method::POST, &path, Some(&body))
        .await?;
    task_uid_of(expect_success(r, "a shard deletion")?, "a shard deletion")
}

/// Waits until every task the node had enqueued when called has ended (its newest task is
/// terminal), so a scan that follows sees every write sent before. At most `deadline`.
pub async fn settle_node(
    client: &NodeClient,
    node_url: &str,
    deadline: Duration,
) -> Result<(), ScanError> {
    let r = client
        .send(node_url, Method::GET, "/tasks?limit=1", None)
        .await?;
    let v = expect_success(r, "the task list")?;
    if let Some(uid) = v["results"]
        .as_array()
        .and_then(|a| a.first())
        .and_then(|t| t["uid"].as_u64())
    {
        wait_node_task(client, node_url, uid, deadline).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_ids_follow_routing() {
        let d: Document = serde_json::from_value(json!({"id": 42, "t": 1})).unwrap();
        assert_eq!(canonical_id(&d, "id").unwrap(), "42");
        let d: Document = serde_json::from_value(json!({"id": "a-b", "t": 1})).unwrap();
        assert_eq!(canonical_id(&d, "id").unwrap(), "a-b");
        let d: Document = serde_json::from_value(json!({"id": 1.5})).unwrap();
        assert_eq!(
            canonical_id(&d, "id"),
            Err(ScanError::MissingId("id".into()))
        );
    }
}
