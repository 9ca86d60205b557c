//! Driving an [`Operation`] through its phases (module docs of [`super`]).

use super::{load, may_lead, plan, save, Move, MovePhase, OpKind, Operation, Phase};
use crate::node_health::unix_ms;
use crate::shard_scan::{self, ShardSource};
use crate::state::Admin;
use hyper::Method;
use miroir_core::ids::{GroupId, NodeId};
use miroir_core::snapshot::ShardMigration;
use miroir_core::topology::{Node, NodeStatus, Topology};
use miroir_core::ShardId;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Test hook: the admin exits (status 86, as abrupt as `kill -9` for the store: nothing is
/// flushed on purpose) when the named phase begins — for `copy`, after its first saved page.
/// Lets the e2e suite kill the admin at every phase in turn.
pub const EXIT_AT_ENV: &str = "MIROIR_REBALANCE_EXIT_AT";

/// How long the loop waits after a start before acting: the barrier counts only data planes
/// that sent a heartbeat (every 500 ms), and a restarted admin has heard from none yet.
const STARTUP_DELAY: Duration = Duration::from_millis(1500);
const TICK: Duration = Duration::from_millis(200);
/// After a failed step, before it is retried.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// A node task the rebalancer enqueued (a page write, a deletion) must end within this.
const TASK_DEADLINE: Duration = Duration::from_secs(120);
/// Verification rounds before a shard is declared not converging (writes keep landing
/// between the two scans) and the step is retried later.
const VERIFY_ROUNDS: usize = 50;
/// Requests a data plane started on the previous epoch may still be sending to a node when
/// it acknowledges the new one; old copies are deleted only after this much more.
const IN_FLIGHT_GRACE: Duration = Duration::from_millis(500);
/// Copied pages sent to a target whose node tasks may be unfinished at once.
const COPY_PIPELINE: usize = 4;

/// The rebalancer loop: drives the stored operation, if any, and starts the restoration of
/// dead nodes' copies after `rebalance.failed_node_grace_secs`. Runs until the process exits.
pub async fn run(admin: Arc<Admin>) {
    if let Ok(Some(op)) = load(&admin).await {
        admin.lock().rebalance = Some((op.phase.as_str(), op.moving()));
    }
    tokio::time::sleep(STARTUP_DELAY).await;
    let mut failed_since: HashMap<String, Instant> = HashMap::new();
    let mut refused: HashSet<String> = HashSet::new();
    loop {
        tokio::time::sleep(TICK).await;
        if !may_lead(&admin) {
            continue;
        }
        match load(&admin).await {
            Ok(Some(mut op)) => {
                if let Err(e) = drive(&admin, &mut op).await {
                    tracing::warn!(operation = %op.id, phase = op.phase.as_str(), error = %e, "rebalancer step failed; retrying");
                    admin
                        .metrics
                        .rebalance_errors
                        .fetch_add(1, Ordering::Relaxed);
                    op.last_error = Some(e);
                    op.errors += 1;
                    let _ = save(&admin, &mut op).await;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
            Ok(None) => {
                admin.lock().rebalance = None;
                restore_dead_nodes(&admin, &mut failed_since, &mut refused).await;
            }
            Err(e) => tracing::error!(error = %e, "reading the rebalance operation failed"),
        }
    }
}

/// Starts a `remove_node` operation for a node `failed` longer than the grace period (issue
/// 14 item 2): its copies are re-created from the surviving ones. A node whose shards have no
/// other copy is left alone (logged once): nothing could be restored, and removing it would
/// lose data the node may still bring back.
async fn restore_dead_nodes(
    admin: &Arc<Admin>,
    failed_since: &mut HashMap<String, Instant>,
    refused: &mut HashSet<String>,
) {
    let grace = admin.config.rebalance.failed_node_grace_secs;
    if grace == 0 {
        return;
    }
    let nodes = admin.nodes();
    failed_since.retain(|id, _| {
        nodes
            .iter()
            .any(|n| &n.id == id && n.status == NodeStatus::Failed)
    });
    refused.retain(|id| failed_since.contains_key(id));
    for n in nodes.iter().filter(|n| n.status == NodeStatus::Failed) {
        let since = *failed_since
            .entry(n.id.clone())
            .or_insert_with(Instant::now);
        if since.elapsed() < Duration::from_secs(grace) || refused.contains(&n.id) {
            continue;
        }
        match super::api::start_remove(admin, &n.id, false).await {
            Ok(op) => {
                tracing::warn!(node = %n.id, operation = %op.id, grace_secs = grace, "node failed past the grace period; restoring its copies on the other nodes of its group")
            }
            Err(e) => {
                tracing::warn!(node = %n.id, error = %e.body(), "node failed past the grace period, but its copies cannot be restored");
                refused.insert(n.id.clone());
            }
        }
        return;
    }
}

fn exit_hook(phase: Phase) {
    if std::env::var(EXIT_AT_ENV).ok().as_deref() == Some(phase.as_str()) {
        tracing::warn!(
            phase = phase.as_str(),
            "{EXIT_AT_ENV}: kill -9 of this process at this phase (test hook)"
        );
        // SIGKILL, not `exit`: nothing may run that a real `kill -9` would not run (no
        // destructors, no flush, no store close).
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// Runs the operation to its end (each phase saved when it completes).
async fn drive(admin: &Arc<Admin>, op: &mut Operation) -> Result<(), String> {
    loop {
        admin.lock().rebalance = Some((op.phase.as_str(), op.moving()));
        if op.phase != Phase::Copy {
            exit_hook(op.phase);
        }
        let began = Instant::now();
        match op.phase {
            Phase::Prepare => prepare(admin, op).await?,
            Phase::DualWrite => dual_write(admin, op).await?,
            Phase::Copy => copy(admin, op).await?,
            Phase::Verify => verify(admin, op).await?,
            Phase::Switch => {
                if replan_new_indexes(admin, op)? {
                    tracing::info!(operation = %op.id, "indexes created during the operation: their moves start over at dual_write");
                    op.phase = Phase::DualWrite;
                    save(admin, op).await.map_err(|e| e.to_string())?;
                    continue;
                }
                switch(admin, op).await?
            }
            Phase::Cleanup => cleanup(admin, op).await?,
            Phase::Done => return finish(admin, op).await,
        }
        tracing::info!(operation = %op.id, phase = op.phase.as_str(), "rebalancer phase done");
        *op.phase_ms
            .entry(op.phase.as_str().to_string())
            .or_default() += began.elapsed().as_millis() as u64;
        op.phase = op.phase.next_for(&op.kind);
        op.last_error = None;
        save(admin, op).await.map_err(|e| e.to_string())?;
    }
}

fn current_topology(admin: &Admin) -> Result<Topology, String> {
    admin.build_snapshot().topology().map_err(|e| e.to_string())
}

/// Whether a node serves reads now (the health view).
fn usable(admin: &Admin) -> impl Fn(&str) -> bool {
    let live: HashSet<String> = admin.live_nodes().into_iter().map(|n| n.id).collect();
    move |id| live.contains(id)
}

fn address_of(admin: &Admin, id: &str) -> Result<String, String> {
    admin
        .nodes()
        .into_iter()
        .find(|n| n.id == id)
        .map(|n| n.address)
        .ok_or_else(|| format!("node `{id}` is not in the topology"))
}

async fn publish_and_wait(admin: &Admin, bump_epoch: bool) -> Result<(), String> {
    let epoch = if bump_epoch {
        admin
            .change_topology(|r| r.epoch += 1)
            .await
            .map_err(|e| e.to_string())?
            .epoch
    } else {
        admin.lock().epoch
    };
    admin.publish().await.map_err(|e| e.to_string())?;
    barrier(admin, epoch).await;
    Ok(())
}

/// Waits until every live data plane applied `epoch` (a dead one — silent for the heartbeat
/// timeout — does not hold it up; one that starts later applies the latest snapshot first).
async fn barrier(admin: &Admin, epoch: u64) {
    let started = Instant::now();
    let mut warned = false;
    while !admin.epoch_acknowledged(epoch) {
        if !warned && started.elapsed() > Duration::from_secs(10) {
            tracing::warn!(
                epoch,
                "rebalancer waiting for a live data plane to acknowledge the routing epoch"
            );
            warned = true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn prepare(admin: &Arc<Admin>, op: &mut Operation) -> Result<(), String> {
    match &op.kind {
        OpKind::AddNode { replica_group, .. } | OpKind::AddGroup { replica_group, .. } => {
            let group = *replica_group;
            let added = op.kind.added_nodes();
            admin
                .change_topology(|r| {
                    // A new group's slot (ids are never reused: it is always the next one).
                    r.replica_groups = r.replica_groups.max(group + 1);
                    for a in &added {
                        if !r.nodes.iter().any(|n| n.id.as_str() == a.id) {
                            r.nodes.push(Node {
                                id: NodeId::new(&a.id),
                                address: a.address.clone(),
                                replica_group: GroupId(group),
                                status: NodeStatus::Joining,
                            });
                        }
                    }
                })
                .await
                .map_err(|e| e.to_string())?;
            admin.publish().await.map_err(|e| e.to_string())?;
            for a in &added {
                prepare_node(admin, &a.id, &a.address, true).await?;
            }
        }
        OpKind::DrainNode { node } => {
            admin
                .change_topology(|r| {
                    if let Some(n) = r.nodes.iter_mut().find(|n| n.id.as_str() == node) {
                        if n.status == NodeStatus::Active {
                            n.status = NodeStatus::Draining;
                        }
                    }
                })
                .await
                .map_err(|e| e.to_string())?;
            admin.publish().await.map_err(|e| e.to_string())?;
        }
        OpKind::RemoveNode { .. } => {}
        OpKind::RemoveGroup { replica_group, .. } => {
            let group = *replica_group;
            // What a forced removal gives up, for the record (before the nodes go).
            let before = current_topology(admin)?;
            if !before.placement_nodes(GroupId(group)).is_empty() {
                op.lost = plan::group_removal_losses(
                    &before,
                    group,
                    &super::index_shards(admin),
                    usable(admin),
                );
            }
            return remove_group(admin, group).await;
        }
        OpKind::Reconcile => {
            let topology = current_topology(admin)?;
            let indexes = super::index_shards(admin);
            let mut held = scan_holdings(admin, &topology, &indexes).await?;
            let nodes = admin.nodes();
            let address = |id: &str| {
                nodes
                    .iter()
                    .find(|n| n.id == id)
                    .map(|n| n.address.clone())
                    .unwrap_or_default()
            };
            op.moves = plan::reconcile(&topology, &indexes, &held, address);
            // Writes in flight make two copies of a shard differ for a moment (each node ends
            // its task at its own time). A copy is planned only for a shortfall seen again in
            // each of a few re-counts of that shard's copies taken back to back.
            for _ in 0..RECOUNTS {
                let short: BTreeSet<(String, u32)> = op
                    .moves
                    .iter()
                    .filter(|m| m.keep_source)
                    .map(|m| (m.index.clone(), m.shard))
                    .collect();
                if short.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                recount(admin, &mut held, &short).await?;
                op.moves = plan::reconcile(&topology, &indexes, &held, address);
            }
            // A copy with pending hints is behind on purpose (its missing writes are queued,
            // crate::hints): counting it short would copy over it from a copy that may be the
            // stale one. Its shard waits for the next run.
            let snapshot = admin.build_snapshot();
            op.moves.retain(|m| {
                !m.keep_source
                    || !snapshot
                        .lagging_for(&m.index)
                        .any(|(_, s)| s == ShardId(m.shard))
            });
            op.indexes = indexes.into_iter().map(|(uid, _)| uid).collect();
            // A target may have lost an index with its settings (a wiped node): it gets them
            // back before any document, as a new node does (its documents are kept).
            let targets: BTreeSet<(String, String)> = op
                .moves
                .iter()
                .filter(|m| m.keep_source)
                .filter_map(|m| address_of(admin, &m.to).ok().map(|a| (m.to.clone(), a)))
                .collect();
            for (id, address) in targets {
                prepare_node(admin, &id, &address, false).await?;
            }
            tracing::info!(operation = %op.id, moves = op.moves.len(), "reconcile planned");
            return Ok(());
        }
    }
    let before = current_topology(admin)?;
    let after = target_topology(&before, &op.kind)?;
    let indexes = super::index_shards(admin);
    let up = usable(admin);
    let (mut moves, dropped) = plan::moves(&before, &after, &indexes, &up);
    if matches!(op.kind, OpKind::AddGroup { .. }) && !dropped.is_empty() {
        return Err(format!(
            "no live copy of {} to copy to the new group; retrying",
            dropped.join(", ")
        ));
    }
    let mut lost = dropped;
    if let OpKind::RemoveNode { force, node } = &op.kind {
        let (ok, orphan): (Vec<Move>, Vec<Move>) = moves
            .into_iter()
            .partition(|m| !plan::sources(&before, m, |n| n != node && up(n)).is_empty());
        lost.extend(orphan.iter().map(|m| format!("{}/{}", m.index, m.shard)));
        if !lost.is_empty() && !force {
            return Err(format!(
                "removing `{node}` would lose the last copy of {}; retry with force",
                lost.join(", ")
            ));
        }
        moves = ok;
    }
    op.moves = moves;
    op.lost = lost;
    op.indexes = indexes.into_iter().map(|(uid, _)| uid).collect();
    Ok(())
}

/// How many documents of every shard each live node that serves reads holds (one
/// `documents/fetch` with the shard filter and `limit: 0` per node, index and shard), each
/// node counted once the tasks it had enqueued have ended, so that writes in flight make
/// copies differ as little as possible. A node that does not answer is left out: it is
/// neither a source nor a target.
async fn scan_holdings(
    admin: &Admin,
    topology: &Topology,
    indexes: &[(String, u32)],
) -> Result<plan::Holdings, String> {
    let up = usable(admin);
    let mut held = plan::Holdings::new();
    for node in topology
        .nodes()
        .filter(|n| n.status.serves_reads() && up(n.id.as_str()))
    {
        shard_scan::settle_node(&admin.client, &node.address, TASK_DEADLINE)
            .await
            .map_err(|e| format!("waiting for `{}`'s tasks: {e}", node.id.as_str()))?;
        for (index, shards) in indexes {
            for shard in 0..(*shards).max(1) {
                let source = shard_scan::ShardSource {
                    client: &admin.client,
                    node_url: &node.address,
                    index,
                    shard: ShardId(shard),
                };
                match source.page(0, 0).await {
                    Ok(page) => {
                        held.insert(
                            (node.id.as_str().to_string(), index.clone(), shard),
                            page.total,
                        );
                    }
                    // An index not created on that node yet holds nothing there.
                    Err(e) if e.to_string().contains("404") => {
                        held.insert((node.id.as_str().to_string(), index.clone(), shard), 0);
                    }
                    Err(e) => {
                        return Err(format!(
                            "scanning `{index}` shard {shard} on `{}`: {e}",
                            node.id.as_str()
                        ))
                    }
                }
            }
        }
    }
    Ok(held)
}

/// Re-counts for a reconcile: how many times a shortfall must be seen again.
const RECOUNTS: usize = 3;

/// Counts `shards` again on every node of `held`, one shard's copies back to back.
async fn recount(
    admin: &Admin,
    held: &mut plan::Holdings,
    shards: &BTreeSet<(String, u32)>,
) -> Result<(), String> {
    let nodes: BTreeSet<String> = held.keys().map(|(n, _, _)| n.clone()).collect();
    for (index, shard) in shards {
        for node in &nodes {
            let address = address_of(admin, node)?;
            let source = shard_scan::ShardSource {
                client: &admin.client,
                node_url: &address,
                index,
                shard: ShardId(*shard),
            };
            let total = match source.page(0, 0).await {
                Ok(page) => page.total,
                Err(e) if e.to_string().contains("404") => 0,
                Err(e) => {
                    return Err(format!(
                        "re-counting `{index}` shard {shard} on `{node}`: {e}"
                    ))
                }
            };
            held.insert((node.clone(), index.clone(), *shard), total);
        }
    }
    Ok(())
}

/// Plans the moves of indexes created since `prepare` (they were created on the owners only);
/// `true` when there are some (the operation goes back to `dual_write` for them).
fn replan_new_indexes(admin: &Admin, op: &mut Operation) -> Result<bool, String> {
    let fresh: Vec<(String, u32)> = admin
        .lock()
        .indexes
        .values()
        .filter(|m| !op.indexes.contains(&m.uid))
        .map(|m| (m.uid.clone(), m.shards))
        .collect();
    if fresh.is_empty() {
        return Ok(false);
    }
    let before = current_topology(admin)?;
    let after = target_topology(&before, &op.kind)?;
    let (moves, lost) = plan::moves(&before, &after, &fresh, usable(admin));
    op.indexes.extend(fresh.into_iter().map(|(uid, _)| uid));
    op.lost.extend(lost);
    let any = !moves.is_empty();
    op.moves.extend(moves);
    Ok(any)
}

/// The topology the operation ends with.
fn target_topology(before: &Topology, kind: &OpKind) -> Result<Topology, String> {
    let nodes = before.nodes().cloned().map(|mut n| {
        if let Some(status) = final_status(kind, &n) {
            n.status = status;
        }
        n
    });
    Topology::new(before.replication_factor(), before.replica_groups(), nodes)
        .map_err(|e| e.to_string())
}

/// The status the operation gives `node` when it switches (`None`: not concerned).
fn final_status(kind: &OpKind, node: &Node) -> Option<NodeStatus> {
    let id = node.id.as_str();
    if kind.added_nodes().iter().any(|a| a.id == id) {
        Some(NodeStatus::Active)
    } else if kind.leaving_node() == Some(id) {
        Some(NodeStatus::Removed)
    } else {
        match kind {
            OpKind::RemoveGroup { replica_group, .. } if node.replica_group.0 == *replica_group => {
                Some(NodeStatus::Removed)
            }
            _ => None,
        }
    }
}

/// Removes every node of `group` (the API checked that the other groups serve every shard),
/// with the epoch bumped and the barrier. Idempotent. The nodes keep their data
/// (docs/decisions/038-replica-groups-online.md): nothing is asked of them again.
async fn remove_group(admin: &Admin, group: u32) -> Result<(), String> {
    let kind = OpKind::RemoveGroup {
        replica_group: group,
        force: false,
    };
    switch_statuses(admin, &kind).await
}

/// Gives every node the operation concerns its final status (one record change, the epoch
/// bumped when anything changed), then publishes and waits for the barrier. Idempotent.
async fn switch_statuses(admin: &Admin, kind: &OpKind) -> Result<(), String> {
    admin
        .change_topology(|r| {
            let mut changed = false;
            for n in r.nodes.iter_mut() {
                if let Some(status) = final_status(kind, n) {
                    if n.status != status {
                        n.status = status;
                        changed = true;
                    }
                }
            }
            if changed {
                r.epoch += 1;
            }
        })
        .await
        .map_err(|e| e.to_string())?;
    publish_and_wait(admin, false).await
}

/// Gives a node every index (created with its primary key) with the settings a peer has, and
/// every key. Idempotent: an index the node has is only brought to the peer's settings —
/// and, with `wipe` (before any dual-write, so nothing of this operation is lost), emptied:
/// documents a reused host kept from an earlier life would be served as if it owned them.
async fn prepare_node(admin: &Admin, node: &str, address: &str, wipe: bool) -> Result<(), String> {
    let indexes: Vec<(String, Option<String>)> = admin
        .lock()
        .indexes
        .values()
        .map(|m| (m.uid.clone(), m.primary_key.clone()))
        .collect();
    let peers: Vec<_> = admin
        .broadcast_nodes()
        .into_iter()
        .filter(|p| p.id != node && p.is_live())
        .collect();
    let client = &admin.client;
    for (uid, pk) in indexes {
        let _guard = admin.lock_scopes(vec![uid.clone()]).await;
        let seg = crate::http_types::encode_segment(&uid);
        let r = client
            .send(address, Method::GET, &format!("/indexes/{seg}"), None)
            .await
            .map_err(|e| format!("reaching `{node}`: {e}"))?;
        if r.status == 404 {
            let mut body = json!({"uid": uid});
            if let Some(pk) = &pk {
                body["primaryKey"] = json!(pk);
            }
            let r = client
                .send(address, Method::POST, "/indexes", Some(&body))
                .await
                .map_err(|e| e.to_string())?;
            node_task(admin, address, &r, &format!("creating index `{uid}`")).await?;
        } else if wipe {
            let r = client
                .send(
                    address,
                    Method::DELETE,
                    &format!("/indexes/{seg}/documents"),
                    None,
                )
                .await
                .map_err(|e| e.to_string())?;
            node_task(admin, address, &r, &format!("emptying index `{uid}`")).await?;
        }
        let path = format!("/indexes/{seg}/settings");
        let mut settings = None;
        for p in &peers {
            if let Ok(r) = client.send(&p.address, Method::GET, &path, None).await {
                if r.is_success() {
                    settings = Some(r.json());
                    break;
                }
            }
        }
        let settings =
            settings.ok_or_else(|| format!("no live node could give index `{uid}`'s settings"))?;
        let wanted = crate::repair::repair_body(&settings);
        // A settings update re-indexes the node's documents even when nothing changes: skip it
        // when the node already has them (every run after the first).
        if let Ok(r) = client.send(address, Method::GET, &path, None).await {
            if r.is_success() && crate::repair::repair_body(&r.json()) == wanted {
                continue;
            }
        }
        let r = client
            .send(address, Method::PATCH, &path, Some(&wanted))
            .await
            .map_err(|e| e.to_string())?;
        node_task(admin, address, &r, &format!("index `{uid}`'s settings")).await?;
    }
    if admin.node_master_key().is_some() {
        let keys: Vec<serde_json::Value> = admin.lock().keys.values().cloned().collect();
        crate::keys::sync_node_keys(client, address, &keys).await?;
    }
    Ok(())
}

/// Waits for the task a node answered with; an error unless it succeeded.
async fn node_task(
    admin: &Admin,
    address: &str,
    r: &crate::node_client::NodeResponse,
    what: &str,
) -> Result<(), String> {
    if !r.is_success() {
        return Err(format!("{what}: node answered {}: {}", r.status, r.json()));
    }
    let Some(uid) = r.json()["taskUid"].as_u64() else {
        return Ok(());
    };
    match shard_scan::wait_node_task(&admin.client, address, uid, TASK_DEADLINE).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("{what}: node task {uid} failed")),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

fn migrations_of(op: &Operation) -> Vec<ShardMigration> {
    op.moves
        .iter()
        .filter(|m| m.phase < MovePhase::Cleaned)
        .map(|m| ShardMigration {
            index: m.index.clone(),
            shard: ShardId(m.shard),
            group: GroupId(m.group),
            from: NodeId::new(&m.from),
            to: NodeId::new(&m.to),
        })
        .collect()
}

async fn dual_write(admin: &Admin, op: &mut Operation) -> Result<(), String> {
    // Again, for an index created since `prepare` (idempotent otherwise).
    for a in op.kind.added_nodes() {
        prepare_node(admin, &a.id, &a.address, false).await?;
    }
    admin
        .set_migrations(migrations_of(op))
        .await
        .map_err(|e| e.to_string())?;
    publish_and_wait(admin, true).await
}

/// What a move reads and writes: the index's primary key, the source and target addresses.
/// `None` when the index is gone (nothing to move any more).
fn endpoints(
    admin: &Admin,
    mv: &Move,
    exclude: &str,
) -> Result<Option<(String, String, String)>, String> {
    let Some(meta) = admin.index(&mv.index) else {
        return Ok(None);
    };
    let Some(pk) = meta.primary_key else {
        // No primary key yet: no document was ever written.
        return Ok(None);
    };
    let topology = current_topology(admin)?;
    let up = usable(admin);
    let source = plan::sources(&topology, mv, |n| n != exclude && up(n))
        .into_iter()
        .next()
        .ok_or_else(|| format!("no live copy of {}/{} to read from", mv.index, mv.shard))?;
    Ok(Some((
        pk,
        address_of(admin, &source)?,
        address_of(admin, &mv.to)?,
    )))
}

/// The node being removed never serves as a source once it is dead; a drained node still does.
fn excluded(op: &Operation) -> &str {
    match &op.kind {
        OpKind::RemoveNode { node, .. } => node,
        _ => "",
    }
}

async fn copy(admin: &Admin, op: &mut Operation) -> Result<(), String> {
    if op.copy_started_at_ms.is_none() {
        op.copy_started_at_ms = Some(unix_ms());
    }
    let page_size = admin.config.rebalance.page_size.max(1);
    let rate = admin.config.rebalance.max_docs_per_sec;
    let exclude = excluded(op).to_string();
    for i in 0..op.moves.len() {
        if op.moves[i].phase >= MovePhase::Copied {
            continue;
        }
        let Some((pk, source, target)) = endpoints(admin, &op.moves[i], &exclude)? else {
            op.moves[i].phase = MovePhase::Copied;
            continue;
        };
        op.moves[i].phase = MovePhase::Copying;
        // Page writes are pipelined (a node runs its tasks in order): at most
        // `COPY_PIPELINE` unfinished on the target. The cursor is saved when a page is sent;
        // a page lost to a crash before its task ran is found by `verify`, which compares
        // the whole shard with the source.
        let mut pending: std::collections::VecDeque<u64> = Default::default();
        loop {
            let mv = &op.moves[i];
            let src = ShardSource {
                client: &admin.client,
                node_url: &source,
                index: &mv.index,
                shard: ShardId(mv.shard),
            };
            let started = Instant::now();
            let page = src
                .page(mv.copied, page_size)
                .await
                .map_err(|e| format!("reading {}/{}: {e}", mv.index, mv.shard))?;
            let n = page.documents.len() as u64;
            if n > 0 {
                let (uid, bytes) = send_page(
                    admin,
                    &target,
                    &mv.index,
                    &pk,
                    ShardId(mv.shard),
                    &page.documents,
                )
                .await?;
                pending.push_back(uid);
                while pending.len() > COPY_PIPELINE {
                    let uid = pending.pop_front().expect("not empty");
                    wait_page(admin, &target, uid).await?;
                }
                let mv = &mut op.moves[i];
                mv.bytes += bytes;
                admin
                    .metrics
                    .rebalance_bytes_copied
                    .fetch_add(bytes, Ordering::Relaxed);
            }
            let mv = &mut op.moves[i];
            mv.copied += n;
            mv.total = page.total.max(mv.copied);
            admin
                .metrics
                .rebalance_docs_copied
                .fetch_add(n, Ordering::Relaxed);
            let last = n < u64::from(page_size);
            if last {
                while let Some(uid) = pending.pop_front() {
                    wait_page(admin, &target, uid).await?;
                }
                op.moves[i].phase = MovePhase::Copied;
            }
            save(admin, op).await.map_err(|e| e.to_string())?;
            if n > 0 {
                exit_hook(Phase::Copy);
            }
            if rate > 0 && n > 0 {
                let budget = Duration::from_secs_f64(n as f64 / rate as f64);
                if let Some(rest) = budget.checked_sub(started.elapsed()) {
                    tokio::time::sleep(rest).await;
                }
            }
            if last {
                break;
            }
        }
    }
    Ok(())
}

/// Writes documents of `shard` to a node and waits for its task; returns the bytes sent.
async fn write_and_wait(
    admin: &Admin,
    target: &str,
    index: &str,
    pk: &str,
    shard: ShardId,
    docs: &[shard_scan::Document],
) -> Result<u64, String> {
    let (uid, bytes) = send_page(admin, target, index, pk, shard, docs).await?;
    wait_page(admin, target, uid).await?;
    Ok(bytes)
}

async fn wait_page(admin: &Admin, target: &str, uid: u64) -> Result<(), String> {
    match shard_scan::wait_node_task(&admin.client, target, uid, TASK_DEADLINE).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "node task {uid} on {target} (a copied page) failed"
        )),
        Err(e) => Err(format!("waiting for a copied page on {target}: {e}")),
    }
}

/// Sends documents of `shard` to a node; returns its task uid and the bytes sent.
/// The shard field is set on each: a node's document routes answer only displayed fields,
/// which do not include it, and without it the copy would escape the `_miroir_shard`
/// restriction searches put on a node holding other shards.
async fn send_page(
    admin: &Admin,
    target: &str,
    index: &str,
    pk: &str,
    shard: ShardId,
    docs: &[shard_scan::Document],
) -> Result<(u64, u64), String> {
    let token = serde_json::Value::String(miroir_core::documents::shard_token(shard));
    let docs: Vec<shard_scan::Document> = docs
        .iter()
        .map(|d| {
            let mut d = d.clone();
            d.insert(
                miroir_core::documents::SHARD_FIELD.to_string(),
                token.clone(),
            );
            d
        })
        .collect();
    let docs = &docs[..];
    let bytes = docs
        .iter()
        .map(|d| serde_json::to_vec(d).map(|v| v.len() as u64).unwrap_or(0))
        .sum();
    let uid = shard_scan::write_documents(&admin.client, target, index, pk, docs, TASK_DEADLINE)
        .await
        .map_err(|e| format!("writing to {target}: {e}"))?;
    Ok((uid, bytes))
}

async fn verify(admin: &Admin, op: &mut Operation) -> Result<(), String> {
    let page_size = admin.config.rebalance.page_size.max(1);
    let exclude = excluded(op).to_string();
    for i in 0..op.moves.len() {
        if op.moves[i].phase >= MovePhase::Verified {
            continue;
        }
        if let Some((pk, source, target)) = endpoints(admin, &op.moves[i], &exclude)? {
            let repaired = converge(admin, &op.moves[i], &pk, &source, &target, page_size).await?;
            op.moves[i].total = op.moves[i].total.max(op.moves[i].copied);
            if repaired > 0 {
                tracing::info!(index = %op.moves[i].index, shard = op.moves[i].shard, repaired, "copy verified after repairing documents by id");
            }
        }
        op.moves[i].phase = MovePhase::Verified;
        save(admin, op).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Makes the target's copy of the shard equal to the source's while writes keep landing on
/// both (dual-write). One full scan of each side gives the candidate ids (any difference,
/// including a write that reached one node between the two scans); then, repeatedly, both
/// nodes are settled (every task they had ended), the candidates are read by id from both,
/// and only those still different are repaired (re-sent from the source, or deleted when the
/// source no longer has them) and become the next candidates. A write in flight looks equal
/// once settled; a copy that overwrote a newer version, or a document the copy missed, does
/// not, and is repaired. Done when a re-check finds nothing: the rebalancer's own writes are
/// then all older than a check that saw them right. Returns how many documents were repaired.
async fn converge(
    admin: &Admin,
    mv: &Move,
    pk: &str,
    source: &str,
    target: &str,
    page_size: u32,
) -> Result<u64, String> {
    let client = &admin.client;
    let shard = ShardId(mv.shard);
    // No settling before the full scans: a write in flight only adds a candidate, which the
    // settled re-check below sorts out.
    let scan = |url| ShardSource {
        client,
        node_url: url,
        index: &mv.index,
        shard,
    };
    let want = shard_scan::shard_digests(&scan(source), pk, page_size)
        .await
        .map_err(|e| format!("scanning {source}: {e}"))?;
    let have = shard_scan::shard_digests(&scan(target), pk, page_size)
        .await
        .map_err(|e| format!("scanning {target}: {e}"))?;
    let (send, delete) = diff(&want, &have);
    let mut candidates: Vec<String> = send.into_iter().chain(delete).collect();
    let mut repaired = 0u64;
    for _ in 0..VERIFY_ROUNDS {
        if candidates.is_empty() {
            return Ok(repaired);
        }
        settle(admin, &[source, target]).await?;
        let mut stale = Vec::new();
        let mut gone = Vec::new();
        let mut fresh_docs = Vec::new();
        for ids in candidates.chunks(page_size as usize) {
            let from = shard_scan::fetch_by_ids(client, source, &mv.index, ids)
                .await
                .map_err(|e| format!("fetching from {source}: {e}"))?;
            let on = shard_scan::fetch_by_ids(client, target, &mv.index, ids)
                .await
                .map_err(|e| format!("fetching from {target}: {e}"))?;
            let digests = |docs: &[shard_scan::Document]| -> Result<BTreeMap<String, u64>, String> {
                docs.iter()
                    .map(|d| {
                        shard_scan::canonical_id(d, pk)
                            .map(|id| (id, miroir_core::fingerprint::document_digest(d)))
                            .map_err(|e| e.to_string())
                    })
                    .collect()
            };
            let (want, have) = (digests(&from)?, digests(&on)?);
            let (send, delete) = diff(&want, &have);
            for d in from {
                let id = shard_scan::canonical_id(&d, pk).map_err(|e| e.to_string())?;
                if send.contains(&id) {
                    fresh_docs.push(d);
                }
            }
            stale.extend(send);
            gone.extend(delete);
        }
        for docs in fresh_docs.chunks(page_size as usize) {
            let bytes = write_and_wait(admin, target, &mv.index, pk, shard, docs).await?;
            admin
                .metrics
                .rebalance_bytes_copied
                .fetch_add(bytes, Ordering::Relaxed);
            admin
                .metrics
                .rebalance_docs_copied
                .fetch_add(docs.len() as u64, Ordering::Relaxed);
        }
        if !gone.is_empty() {
            let uid = shard_scan::delete_documents(client, target, &mv.index, &gone)
                .await
                .map_err(|e| format!("deleting on {target}: {e}"))?;
            shard_scan::wait_node_task(client, target, uid, TASK_DEADLINE)
                .await
                .map_err(|e| e.to_string())?;
        }
        repaired += (stale.len() + gone.len()) as u64;
        candidates = stale.into_iter().chain(gone).collect();
    }
    Err(format!(
        "{}/{} still differs between {source} and {target} after {VERIFY_ROUNDS} rounds (writes keep landing); retrying",
        mv.index, mv.shard
    ))
}

async fn settle(admin: &Admin, nodes: &[&str]) -> Result<(), String> {
    for node in nodes {
        shard_scan::settle_node(&admin.client, node, TASK_DEADLINE)
            .await
            .map_err(|e| format!("settling {node}: {e}"))?;
    }
    Ok(())
}

/// Ids to (re)send to the target and ids to delete from it.
pub fn diff(
    want: &BTreeMap<String, u64>,
    have: &BTreeMap<String, u64>,
) -> (Vec<String>, Vec<String>) {
    let send = want
        .iter()
        .filter(|(id, d)| have.get(*id) != Some(d))
        .map(|(id, _)| id.clone())
        .collect();
    let delete = have
        .keys()
        .filter(|id| !want.contains_key(*id))
        .cloned()
        .collect();
    (send, delete)
}

async fn switch(admin: &Admin, op: &mut Operation) -> Result<(), String> {
    // Settings changed while the nodes were joining reached only the owners; bring them level.
    for a in op.kind.added_nodes() {
        prepare_node(admin, &a.id, &a.address, false).await?;
    }
    switch_statuses(admin, &op.kind).await
}

async fn cleanup(admin: &Admin, op: &mut Operation) -> Result<(), String> {
    tokio::time::sleep(IN_FLIGHT_GRACE).await;
    let leaving = op.kind.leaving_node().is_some();
    // A new copy's source keeps its own (it owns the shard in its group).
    for m in op.moves.iter_mut().filter(|m| m.keep_source) {
        m.phase = MovePhase::Cleaned;
    }
    let mut by_source: BTreeMap<(String, String), Vec<ShardId>> = BTreeMap::new();
    for m in op.moves.iter().filter(|m| m.phase < MovePhase::Cleaned) {
        by_source
            .entry((m.from_address.clone(), m.index.clone()))
            .or_default()
            .push(ShardId(m.shard));
    }
    for ((address, index), shards) in by_source {
        let outcome = async {
            let uid = shard_scan::delete_shards(&admin.client, &address, &index, &shards)
                .await
                .map_err(|e| e.to_string())?;
            match shard_scan::wait_node_task(&admin.client, &address, uid, TASK_DEADLINE).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(format!("node task {uid} failed")),
                Err(e) => Err(e.to_string()),
            }
        }
        .await;
        match outcome {
            Ok(()) => {}
            // An index deleted meanwhile has nothing left to clean.
            Err(e) if e.contains("404") => {}
            // A node that left the topology and is dead is never asked again; its data is
            // not served (it is not in any snapshot's node list).
            Err(e) if leaving => {
                tracing::warn!(node = %address, index, error = %e, "could not delete moved shards from the node that left; it serves nothing")
            }
            Err(e) => {
                return Err(format!(
                    "deleting moved shards of `{index}` on {address}: {e}"
                ))
            }
        }
        for m in op
            .moves
            .iter_mut()
            .filter(|m| !m.keep_source && m.from_address == address && m.index == index)
        {
            m.phase = MovePhase::Cleaned;
        }
        save(admin, op).await.map_err(|e| e.to_string())?;
    }
    admin
        .set_migrations(Vec::new())
        .await
        .map_err(|e| e.to_string())?;
    publish_and_wait(admin, true).await
}

async fn finish(admin: &Admin, op: &mut Operation) -> Result<(), String> {
    op.finished_at_ms = Some(unix_ms());
    let bytes = serde_json::to_vec(op).expect("an operation serialises");
    admin
        .store
        .put_meta(super::META_LAST, &bytes)
        .await
        .map_err(|e| e.to_string())?;
    admin
        .store
        .delete_meta(super::META_OPERATION)
        .await
        .map_err(|e| e.to_string())?;
    admin.lock().rebalance = None;
    admin
        .metrics
        .rebalance_operations_completed
        .fetch_add(1, Ordering::Relaxed);
    let (copied, _) = op.documents();
    tracing::info!(operation = %op.id, kind = ?op.kind, documents = copied, seconds = (unix_ms() - op.started_at_ms) / 1000, "topology operation done");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_finds_what_to_send_and_delete() {
        let want = BTreeMap::from([("a".into(), 1), ("b".into(), 2), ("c".into(), 3)]);
        let have = BTreeMap::from([("a".into(), 1), ("b".into(), 9), ("z".into(), 4)]);
        let (send, delete) = diff(&want, &have);
        assert_eq!(send, ["b", "c"]);
        assert_eq!(delete, ["z"]);
        assert_eq!(diff(&want, &want), (vec![], vec![]));
    }
}
