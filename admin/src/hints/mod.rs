//! Hinted writes (docs/operations.md#hinted-writes, decisions 021 and 022).
//!
//! A write the data plane registered may have missed some copies: a node marked failed (not
//! contacted), a node that refused or timed out, or a copy that is still catching up
//! (*lagging*, which the data plane does not send new writes to, so they queue behind its
//! older hints). The registration lists each missed copy with the exact node request it
//! should have received ([`MissedCopy`]). The admin stores one **hint** per missed copy, in
//! the task store's meta records (LMDB or Redis, whichever the deployment runs):
//!
//! - `hint/<node>/<task uid, 10 digits>-<part, 3 digits>` → [`Hint`] (small: index, shards,
//!   progress). Keys sort in acknowledgement order per node, so listing them is the queue.
//! - `hintbody/<same suffix>` → the [`ReplayRequest`] (the documents), read one at a time.
//!
//! Every `(node, index, shard)` with a hint is published as a *lagging* copy in the snapshot:
//! the data plane does not read it for that shard until the hint is gone, so a node that was
//! down serves again only once it has caught up.
//!
//! [`run`] replays: per node, once the node is not marked failed, the hints are sent in key
//! order (Meilisearch applies a node's tasks in the order it enqueued them), the node task uid
//! of each is stored in its hint before the next is sent, and a hint (and its body) is
//! deleted only after that node task **succeeded**. After `kill -9` of the admin the next
//! round resumes from the stored state: a sent hint is checked, an unsent one is sent (a
//! hint sent but not yet recorded is sent twice, which is harmless: a document upsert or a
//! deletion applied twice leaves the same state). A replay the node refuses or fails is
//! retried `hints.max_attempts` times, then dropped and counted (`miroir_hints_total
//! {outcome="failed"}`); an unreachable node is retried without limit. A node that still
//! misses an index's settings ([`crate::repair`]) gets them before any replay. Hints of a
//! node removed from the topology, or of an index deleted since, are dropped (replaying the
//! latter would re-create the index on that node alone).
//!
//! A node that answers 404 for one of a task's node tasks lost it (restarted on an empty
//! data directory): the task fails with `miroir_node_task_lost` and a **lost** hint marks
//! every shard of that index the node owns lagging. A lost hint has nothing to replay — the
//! copy must be rebuilt from the other copies (the rebalancer's copy step, or anti-entropy
//! repair) — so until then the node never serves those shards stale.

use crate::http_types::ApiError;
use crate::state::Admin;
use bytes::Bytes;
use hyper::Method;
use miroir_core::control::{MissedCopy, ReplayRequest};
use miroir_core::ids::{NodeId, ShardId};
use miroir_core::snapshot::LaggingCopy;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Meta key prefix of the hint queue.
pub const HINT_PREFIX: &str = "hint/";
/// Meta key prefix of the hints' replay requests.
const BODY_PREFIX: &str = "hintbody/";
/// Replays sent to one node per round before waiting for them to finish.
const SENDS_PER_ROUND: usize = 50;
/// Deadline of one replay request (a large batch upload).
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// Serialises "store a hint, then add its lagging entries" against "list the hints, then
/// recompute the lagging entries", so a hint recorded during a recomputation is never
/// dropped from the snapshot.
static LAGGING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One hint: a copy of `(index, shards)` on the node in its key that missed task `task_uid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hint {
    pub index: String,
    pub shards: Vec<ShardId>,
    pub task_uid: u32,
    /// The node lost the write (404 for its node task): nothing to replay (module docs).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lost: bool,
    /// The node task uid of the replay, once sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<u32>,
    /// Replays the node refused or failed so far.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// `hint/<node>/<task:010>-<part:03>`: ascending keys are acknowledgement order per node.
pub fn hint_key(node: &str, task_uid: u32, part: &str) -> String {
    format!("{HINT_PREFIX}{node}/{task_uid:010}-{part}")
}

/// The node a hint key belongs to.
pub fn key_node(key: &str) -> Option<&str> {
    key.strip_prefix(HINT_PREFIX)?.split('/').next()
}

fn body_key(hint_key: &str) -> String {
    format!(
        "{BODY_PREFIX}{}",
        hint_key.strip_prefix(HINT_PREFIX).unwrap_or(hint_key)
    )
}

/// The lagging copies a set of hints implies.
pub fn lagging_of<'a>(
    hints: impl IntoIterator<Item = (&'a str, &'a Hint)>,
) -> BTreeSet<LaggingCopy> {
    let mut out = BTreeSet::new();
    for (key, h) in hints {
        let Some(node) = key_node(key) else { continue };
        for s in &h.shards {
            out.insert(LaggingCopy {
                node: NodeId::new(node),
                index: h.index.clone(),
                shard: *s,
            });
        }
    }
    out
}

/// Stores the hints of a registered write (task `task_uid`) and publishes their copies as
/// lagging before the write is answered, so no read reaches a copy that missed it.
pub async fn record(
    admin: &Admin,
    task_uid: u32,
    index: &str,
    missed: Vec<MissedCopy>,
) -> Result<(), ApiError> {
    if missed.is_empty() {
        return Ok(());
    }
    let mut added = Vec::new();
    let guard = LAGGING.lock().await;
    for (part, m) in missed.into_iter().enumerate() {
        let key = hint_key(m.node.as_str(), task_uid, &format!("{part:03}"));
        let body = serde_json::to_vec(&m.replay).expect("replay requests serialise");
        // Body first: a hint is never visible without what it replays.
        admin.store.put_meta(&body_key(&key), &body).await?;
        let hint = Hint {
            index: index.to_string(),
            shards: m.shards.clone(),
            task_uid,
            lost: false,
            sent: None,
            attempts: 0,
        };
        put_hint(admin, &key, &hint).await?;
        admin.metrics.hints_recorded.fetch_add(1, Ordering::Relaxed);
        admin.metrics.hints_pending.fetch_add(1, Ordering::Relaxed);
        tracing::info!(task = task_uid, node = %m.node, index, shards = ?m.shards, "hinted write recorded");
        added.extend(lagging_of([(key.as_str(), &hint)]));
    }
    let changed = add_lagging(admin, added);
    drop(guard);
    if changed {
        admin
            .publish()
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
    }
    Ok(())
}

/// Clears the lost-copy hints of `node` on `index` once its copy has been rebuilt from the
/// others (for the copy/repair steps that rebuild it); the copy is read again when no other
/// hint keeps it lagging. Returns how many were cleared.
pub async fn resolve_lost(admin: &Admin, node: &str, index: &str) -> Result<usize, ApiError> {
    let mut cleared = 0;
    for (key, hint) in load(admin).await? {
        if hint.lost && hint.index == index && key_node(&key) == Some(node) {
            delete_hint(admin, &key).await?;
            cleared += 1;
        }
    }
    if cleared > 0 {
        sync_lagging(admin, true).await?;
    }
    Ok(cleared)
}

/// Records that `node` lost its node task of task `task_uid` on `index`: every shard of the
/// index it owns is lagging until its copy is rebuilt (module docs). Idempotent.
pub async fn record_lost(admin: &Admin, task_uid: u32, node: &str, index: &str) {
    let key = hint_key(node, task_uid, "lost");
    match admin.store.get_meta(&key).await {
        Ok(Some(_)) => return,
        Ok(None) => {}
        Err(e) => {
            tracing::error!(task = task_uid, node, error = %e, "reading a lost-copy hint failed");
            return;
        }
    }
    let hint = Hint {
        index: index.to_string(),
        shards: owned_shards(admin, node, index),
        task_uid,
        lost: true,
        sent: None,
        attempts: 0,
    };
    let guard = LAGGING.lock().await;
    if let Err(e) = put_hint(admin, &key, &hint).await {
        tracing::error!(task = task_uid, node, error = %e, "storing a lost-copy hint failed");
        return;
    }
    admin.metrics.hints_recorded.fetch_add(1, Ordering::Relaxed);
    admin.metrics.hints_pending.fetch_add(1, Ordering::Relaxed);
    tracing::error!(
        task = task_uid,
        node,
        index,
        shards = ?hint.shards,
        "node lost a node task: its copy of these shards is not read until it is rebuilt"
    );
    let changed = add_lagging(admin, lagging_of([(key.as_str(), &hint)]));
    drop(guard);
    if changed {
        if let Err(e) = admin.publish().await {
            tracing::error!(error = %e, "publishing lagging copies failed");
        }
    }
}

/// Shards of `index` that `node` owns in its group now.
fn owned_shards(admin: &Admin, node: &str, index: &str) -> Vec<ShardId> {
    let nodes = admin.nodes();
    let Some(me) = nodes.iter().find(|n| n.id == node) else {
        return Vec::new();
    };
    let members: Vec<&str> = nodes
        .iter()
        .filter(|n| n.group == me.group && n.status.owns_shards())
        .map(|n| n.id.as_str())
        .collect();
    let shards = admin.index(index).map_or(0, |m| m.shards);
    let rf = admin.config.replication_factor.max(1);
    (0..shards)
        .filter(|&s| crate::coverage::owners(s, &members, rf).contains(&node))
        .map(ShardId)
        .collect()
}

async fn put_hint(admin: &Admin, key: &str, hint: &Hint) -> Result<(), ApiError> {
    let v = serde_json::to_vec(hint).expect("hints serialise");
    admin.store.put_meta(key, &v).await?;
    Ok(())
}

async fn delete_hint(admin: &Admin, key: &str) -> Result<(), ApiError> {
    admin.store.delete_meta(key).await?;
    admin.store.delete_meta(&body_key(key)).await?;
    Ok(())
}

/// Adds lagging copies to the state; whether anything was new.
fn add_lagging(admin: &Admin, copies: impl IntoIterator<Item = LaggingCopy>) -> bool {
    let mut st = admin.lock();
    let mut changed = false;
    for c in copies {
        changed |= st.lagging.insert(c);
    }
    changed
}

/// Every stored hint, in key order (unreadable records are logged and skipped).
async fn load(admin: &Admin) -> Result<Vec<(String, Hint)>, ApiError> {
    let raw = admin.store.list_meta(HINT_PREFIX).await?;
    Ok(raw
        .into_iter()
        .filter_map(|(k, v)| match serde_json::from_slice::<Hint>(&v) {
            Ok(h) => Some((k, h)),
            Err(e) => {
                tracing::error!(key = %k, error = %e, "unreadable hint skipped");
                None
            }
        })
        .collect())
}

/// Sets the lagging copies to exactly what the stored hints imply, and publishes if that
/// changed. Called at start (before the first publish) and after replays.
pub async fn sync_lagging(admin: &Admin, publish: bool) -> Result<(), ApiError> {
    let guard = LAGGING.lock().await;
    let hints = load(admin).await?;
    admin
        .metrics
        .hints_pending
        .store(hints.len() as u64, Ordering::Relaxed);
    let now = lagging_of(hints.iter().map(|(k, h)| (k.as_str(), h)));
    let changed = {
        let mut st = admin.lock();
        let changed = st.lagging != now;
        st.lagging = now;
        changed
    };
    drop(guard);
    if changed && publish {
        admin
            .publish()
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
    }
    Ok(())
}

/// The replay loop (module docs). Runs until the process exits.
pub async fn run(admin: std::sync::Arc<Admin>) {
    let every = Duration::from_millis(admin.config.hints.replay_interval_ms.max(1));
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        // One replayer for the deployment: the leader (docs/architecture.md#several-hosts).
        if !admin.leadership().is_leader() {
            continue;
        }
        match replay_round(&admin).await {
            Ok(true) => {
                if let Err(e) = sync_lagging(&admin, true).await {
                    tracing::warn!(error = %e, "updating lagging copies failed");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "hint replay round failed"),
        }
    }
}

/// One pass over every node's queue; whether any hint was deleted.
pub async fn replay_round(admin: &Admin) -> Result<bool, ApiError> {
    let hints = load(admin).await?;
    if hints.is_empty() {
        return Ok(false);
    }
    let mut per_node: BTreeMap<String, Vec<(String, Hint)>> = BTreeMap::new();
    let mut changed = false;
    for (k, h) in hints {
        // An index deleted since: replaying would re-create it on that node alone.
        if admin.index(&h.index).is_none() {
            delete_hint(admin, &k).await?;
            tracing::info!(key = %k, index = %h.index, "hint of a deleted index dropped");
            changed = true;
            continue;
        }
        if let Some(node) = key_node(&k) {
            per_node.entry(node.to_string()).or_default().push((k, h));
        }
    }
    let nodes = admin.nodes();
    // A node that still misses an index's settings (crate::repair) gets them first: its
    // documents must be indexed under the settings the other copies have.
    let repairs = crate::repair::all_pending(admin)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let needs_repair = |node: &str| repairs.iter().any(|(_, nodes)| nodes.contains(node));
    for (node, queue) in per_node {
        if needs_repair(&node) {
            continue;
        }
        match nodes.iter().find(|n| n.id == node) {
            // A node no longer in the topology has no copy to complete.
            None => {
                for (k, _) in &queue {
                    delete_hint(admin, k).await?;
                }
                tracing::warn!(node, hints = queue.len(), "hints of a removed node dropped");
                changed = true;
            }
            Some(n) if !n.status.accepts_writes() => {} // down: retried next round
            Some(n) => changed |= replay_node(admin, &node, &n.address, queue).await?,
        }
    }
    Ok(changed)
}

/// What a node says about one of its tasks.
enum NodeTaskState {
    Succeeded,
    Failed(Value),
    Pending,
    Missing,
}

async fn node_task(admin: &Admin, address: &str, uid: u32) -> Option<NodeTaskState> {
    let r = admin
        .client
        .send(address, Method::GET, &format!("/tasks/{uid}"), None)
        .await
        .ok()?;
    match r.status {
        200 => {
            let v = r.json();
            Some(match v["status"].as_str() {
                Some("succeeded") => NodeTaskState::Succeeded,
                Some("failed") | Some("canceled") => NodeTaskState::Failed(v["error"].clone()),
                _ => NodeTaskState::Pending,
            })
        }
        404 => Some(NodeTaskState::Missing),
        _ => None,
    }
}

/// Works through one node's queue in order (module docs); whether a hint was deleted.
async fn replay_node(
    admin: &Admin,
    node: &str,
    address: &str,
    queue: Vec<(String, Hint)>,
) -> Result<bool, ApiError> {
    let max_attempts = admin.config.hints.max_attempts.max(1);
    let mut changed = false;
    let mut sends = 0;
    for (key, mut hint) in queue {
        if hint.lost {
            continue;
        }
        if let Some(uid) = hint.sent {
            match node_task(admin, address, uid).await {
                None => return Ok(changed), // unreachable: next round
                Some(NodeTaskState::Succeeded) => {
                    delete_hint(admin, &key).await?;
                    admin.metrics.hints_replayed.fetch_add(1, Ordering::Relaxed);
                    changed = true;
                    continue;
                }
                // Later hints may already be queued behind it on the node: keep checking.
                Some(NodeTaskState::Pending) => continue,
                Some(NodeTaskState::Failed(error)) => {
                    changed |= failed_attempt(admin, &key, &mut hint, max_attempts, &error).await?;
                    // Send nothing after a failure this round, so a retry stays in order.
                    return Ok(changed);
                }
                Some(NodeTaskState::Missing) => hint.sent = None,
            }
        }
        if sends >= SENDS_PER_ROUND {
            break;
        }
        let Some(raw) = admin.store.get_meta(&body_key(&key)).await? else {
            tracing::error!(key, "hint without its replay request dropped");
            delete_hint(admin, &key).await?;
            admin.metrics.hints_failed.fetch_add(1, Ordering::Relaxed);
            changed = true;
            continue;
        };
        let req: ReplayRequest = match serde_json::from_slice(&raw) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(key, error = %e, "unreadable replay request dropped");
                delete_hint(admin, &key).await?;
                admin.metrics.hints_failed.fetch_add(1, Ordering::Relaxed);
                changed = true;
                continue;
            }
        };
        drop(raw);
        let method = Method::from_bytes(req.method.as_bytes()).unwrap_or(Method::POST);
        let pq = if req.query.is_empty() {
            req.path.clone()
        } else {
            format!("{}?{}", req.path, req.query)
        };
        let body = (!req.body.is_empty()).then(|| Bytes::from(req.body.into_bytes()));
        let ct = req.content_type.as_deref().unwrap_or("application/json");
        let resp = match admin
            .client
            .send_typed(address, method, &pq, body, ct, SEND_TIMEOUT)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(node, error = %e, "hint replay: node unreachable");
                return Ok(changed);
            }
        };
        let uid = resp.json()["taskUid"]
            .as_u64()
            .and_then(|u| u32::try_from(u).ok());
        match uid {
            Some(uid) if resp.is_success() => {
                hint.sent = Some(uid);
                put_hint(admin, &key, &hint).await?;
                sends += 1;
            }
            _ => {
                let error = resp.json();
                changed |= failed_attempt(admin, &key, &mut hint, max_attempts, &error).await?;
                return Ok(changed);
            }
        }
    }
    Ok(changed)
}

/// Counts a refused or failed replay; drops the hint after `max_attempts`. Whether it was
/// dropped.
async fn failed_attempt(
    admin: &Admin,
    key: &str,
    hint: &mut Hint,
    max_attempts: u32,
    error: &Value,
) -> Result<bool, ApiError> {
    hint.attempts += 1;
    hint.sent = None;
    if hint.attempts >= max_attempts {
        tracing::error!(key, task = hint.task_uid, attempts = hint.attempts, %error, "hint replay failed; dropped");
        delete_hint(admin, key).await?;
        admin.metrics.hints_failed.fetch_add(1, Ordering::Relaxed);
        return Ok(true);
    }
    tracing::warn!(key, task = hint.task_uid, attempts = hint.attempts, %error, "hint replay failed; will retry");
    put_hint(admin, key, hint).await?;
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_sort_in_acknowledgement_order_per_node() {
        let mut keys = vec![
            hint_key("n1", 10, "000"),
            hint_key("n1", 9, "001"),
            hint_key("n1", 9, "000"),
            hint_key("n1", 100, "000"),
            hint_key("n1", 9, "lost"),
        ];
        keys.sort();
        assert_eq!(
            keys,
            [
                "hint/n1/0000000009-000",
                "hint/n1/0000000009-001",
                "hint/n1/0000000009-lost",
                "hint/n1/0000000010-000",
                "hint/n1/0000000100-000"
            ]
        );
        assert_eq!(key_node(&keys[0]), Some("n1"));
        assert_eq!(body_key(&keys[0]), "hintbody/n1/0000000009-000");
        assert_eq!(key_node("other/n1/1"), None);
    }

    #[test]
    fn hints_encode_compactly_and_decode_old_forms() {
        let h = Hint {
            index: "m".into(),
            shards: vec![ShardId(1), ShardId(4)],
            task_uid: 7,
            lost: false,
            sent: None,
            attempts: 0,
        };
        let v = serde_json::to_value(&h).unwrap();
        assert_eq!(v, json!({"index": "m", "shards": [1, 4], "taskUid": 7}));
        assert_eq!(serde_json::from_value::<Hint>(v).unwrap(), h);
        let sent = Hint {
            sent: Some(3),
            attempts: 1,
            lost: true,
            ..h
        };
        let v = serde_json::to_value(&sent).unwrap();
        assert_eq!(v["sent"], 3);
        assert_eq!(serde_json::from_value::<Hint>(v).unwrap(), sent);
    }

    #[test]
    fn lagging_copies_are_the_hinted_shards() {
        let a = Hint {
            index: "m".into(),
            shards: vec![ShardId(1), ShardId(2)],
            task_uid: 1,
            lost: false,
            sent: None,
            attempts: 0,
        };
        let b = Hint {
            shards: vec![ShardId(2)],
            task_uid: 2,
            ..a.clone()
        };
        let k1 = hint_key("n1", 1, "000");
        let k2 = hint_key("n1", 2, "000");
        let k3 = hint_key("n2", 2, "000");
        let l = lagging_of([(k1.as_str(), &a), (k2.as_str(), &b), (k3.as_str(), &b)]);
        let got: Vec<(String, u32)> = l
            .iter()
            .map(|c| (c.node.as_str().to_string(), c.shard.0))
            .collect();
        assert_eq!(got, [("n1".into(), 1), ("n1".into(), 2), ("n2".into(), 2)]);
    }
}
