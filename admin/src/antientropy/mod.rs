//! Anti-entropy: the copies of every shard compared by fingerprint, differences narrowed down
//! to document ids and repaired from the copy that is right (docs/operations.md#anti-entropy,
//! docs/decisions/036-antientropy-right-copy.md, 037-antientropy-runs.md).
//!
//! A *run* verifies every shard of one index or of all of them, a few shards at a time
//! (`antientropy.concurrency`) and paced (`antientropy.max_documents_per_second`). Runs are
//! started on demand (`POST /_miroir/verify`, `miroir-ctl verify`) or by the schedule
//! (`antientropy.interval_s`, off by default: a run reads every copy in full). One run at a
//! time per admin process; a second waits its turn as `enqueued`. A run's record (progress,
//! then its report) lives in the store's metadata under `antientropy:run:`, so it can be
//! polled and survives the admin; a run the admin was running when it stopped is marked
//! failed at the next start.
//!
//! Skipped, and reported as such: shards with a migration in flight (the rebalancer is copying
//! them and verifies them itself), and copies on nodes that are not live or not readable —
//! with fewer than two readable copies there is nothing to compare.

pub mod ctl;
pub mod plan;
pub mod report;
mod verify;

use crate::http_types::{ApiError, Req, Resp};
use crate::state::Admin;
use futures_util::StreamExt;
use miroir_core::error::ErrorCode;
use miroir_core::ids::ShardId;
use report::{RunStatus, ShardOutcome, Summary, VerifyRun};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use verify::{Copy, Ctx, Job, Pacer};

const META_RUN: &str = "antientropy:run:";
const META_NEXT_UID: &str = "antientropy:next_uid";
/// Run records kept; older ones are deleted when a run is created.
const KEEP_RUNS: usize = 100;

/// Whether this admin process runs the scheduled background job: only the leader does
/// (docs/architecture.md#several-hosts; always true on one host). Two admins would read every
/// copy twice and could repair the same ids at once.
/// On-demand runs are not gated: the admin that was asked runs them.
pub fn may_lead(admin: &Admin) -> bool {
    admin.leadership().is_leader()
}

/// Counters for `GET /_miroir/metrics` (`miroir_antientropy_*`). Process-wide, like the
/// admin they describe (one per process).
#[derive(Debug, Default)]
pub struct Counters {
    pub runs: AtomicU64,
    pub runs_failed: AtomicU64,
    pub shards_checked: AtomicU64,
    pub shards_skipped: AtomicU64,
    pub differences_found: AtomicU64,
    pub documents_repaired: AtomicU64,
    pub conflicts: AtomicU64,
    /// Unix seconds when the last run finished (0 = none yet).
    pub last_run_finished: AtomicU64,
}

pub static COUNTERS: Counters = Counters {
    runs: AtomicU64::new(0),
    runs_failed: AtomicU64::new(0),
    shards_checked: AtomicU64::new(0),
    shards_skipped: AtomicU64::new(0),
    differences_found: AtomicU64::new(0),
    documents_repaired: AtomicU64::new(0),
    conflicts: AtomicU64::new(0),
    last_run_finished: AtomicU64::new(0),
};

/// One run at a time: two would double the read load and could repair the same ids at once.
static RUN_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn run_key(uid: u64) -> String {
    format!("{META_RUN}{uid:020}")
}

async fn save(admin: &Admin, run: &VerifyRun) -> Result<(), ApiError> {
    let bytes = serde_json::to_vec(run).expect("a run serialises");
    admin.store.put_meta(&run_key(run.uid), &bytes).await?;
    Ok(())
}

async fn load(admin: &Admin, uid: u64) -> Result<Option<VerifyRun>, ApiError> {
    let Some(bytes) = admin.store.get_meta(&run_key(uid)).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ApiError::internal(format!("corrupt verify run {uid}: {e}")))
}

async fn next_uid(admin: &Admin) -> Result<u64, ApiError> {
    loop {
        let cur = admin.store.get_meta(META_NEXT_UID).await?;
        let n: u64 = cur
            .as_deref()
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let next = (n + 1).to_string();
        if admin
            .store
            .cas_meta(META_NEXT_UID, cur.as_deref(), Some(next.as_bytes()))
            .await?
        {
            return Ok(n);
        }
    }
}

/// Creates a run and starts it in the background; returns its record as enqueued.
pub async fn start_run(
    admin: &Arc<Admin>,
    index: Option<String>,
    repair: bool,
    trigger: &str,
) -> Result<VerifyRun, ApiError> {
    if let Some(uid) = &index {
        if admin.index(uid).is_none() {
            return Err(ApiError::core(
                ErrorCode::IndexNotFound,
                format!("Index `{uid}` not found."),
            ));
        }
    }
    let run = VerifyRun {
        uid: next_uid(admin).await?,
        index,
        repair,
        trigger: trigger.to_string(),
        status: RunStatus::Enqueued,
        enqueued_at: crate::timefmt::now_rfc3339(),
        started_at: None,
        finished_at: None,
        shards_total: 0,
        shards_checked: 0,
        summary: Summary::default(),
        result: None,
        shards: Vec::new(),
        error: None,
    };
    save(admin, &run).await?;
    prune(admin).await;
    let a = admin.clone();
    let r = run.clone();
    tokio::spawn(async move { execute(&a, r).await });
    Ok(run)
}

async fn prune(admin: &Admin) {
    let Ok(all) = admin.store.list_meta(META_RUN).await else {
        return;
    };
    for (key, _) in all.iter().take(all.len().saturating_sub(KEEP_RUNS)) {
        let _ = admin.store.delete_meta(key).await;
    }
}

/// The shards of a run: every shard of the run's indexes, with their readable owners, and
/// the reports of those settled without reading (moving, or a single copy by placement).
fn jobs(
    admin: &Admin,
    index: Option<&str>,
) -> Result<(Vec<Job>, Vec<report::ShardReport>), String> {
    let snapshot = admin.build_snapshot();
    let topology = snapshot.topology().map_err(|e| e.to_string())?;
    let health = admin.nodes();
    let mut jobs = Vec::new();
    let mut settled = Vec::new();
    for meta in snapshot.indexes.values() {
        if index.is_some_and(|i| i != meta.uid) {
            continue;
        }
        let Some(pk) = meta.primary_key.clone() else {
            // No primary key yet means no document yet.
            continue;
        };
        for shard in 0..meta.shards {
            let owners = miroir_core::routing::write_targets(ShardId(shard), &topology);
            let moving = snapshot
                .migrations_for(&meta.uid)
                .any(|m| m.shard == ShardId(shard));
            // A copy with pending hints is behind on purpose: its missing writes are queued
            // and will be replayed in order. Judging it now could let a majority of lagging
            // copies "repair" an acknowledged write away (crate::hints).
            let catching_up = snapshot
                .lagging_for(&meta.uid)
                .any(|(_, s)| s == ShardId(shard));
            let mut copies = Vec::new();
            let mut unreadable = Vec::new();
            for o in &owners {
                let live = health.iter().any(|h| h.id == o.as_str() && h.is_live());
                match snapshot.node(o.as_str()) {
                    Some(n) if live => copies.push(Copy {
                        node: n.id.as_str().to_string(),
                        url: n.address.clone(),
                    }),
                    _ => unreadable.push(format!("{}: not live", o.as_str())),
                }
            }
            let job = Job {
                index: meta.uid.clone(),
                primary_key: pk.clone(),
                shard,
                copies,
                unreadable,
                total_copies: owners.len(),
            };
            if owners.len() < 2 {
                // RF × RG = 1: one copy is equal to itself.
                settled.push(settled_report(job, ShardOutcome::Consistent, None));
            } else if moving {
                settled.push(settled_report(
                    job,
                    ShardOutcome::Skipped,
                    Some("a rebalance is moving this shard"),
                ));
            } else if catching_up {
                settled.push(settled_report(
                    job,
                    ShardOutcome::Skipped,
                    Some("a copy is catching up on hinted writes"),
                ));
            } else {
                jobs.push(job);
            }
        }
    }
    Ok((jobs, settled))
}

fn settled_report(job: Job, outcome: ShardOutcome, why: Option<&str>) -> report::ShardReport {
    report::ShardReport {
        index: job.index,
        shard: job.shard,
        copies: job.copies.into_iter().map(|c| c.node).collect(),
        unreadable: job.unreadable,
        outcome,
        reason: why.map(str::to_string),
        nodes: Default::default(),
        conflicts: 0,
        conflict_ids: Vec::new(),
        decided_by: Default::default(),
        unrepaired: 0,
    }
}

async fn execute(admin: &Arc<Admin>, mut run: VerifyRun) {
    let _one_at_a_time = RUN_LOCK.lock().await;
    run.status = RunStatus::Running;
    run.started_at = Some(crate::timefmt::now_rfc3339());
    COUNTERS.runs.fetch_add(1, Ordering::Relaxed);
    let outcome = verify_all(admin, &mut run).await;
    run.finished_at = Some(crate::timefmt::now_rfc3339());
    match outcome {
        Ok(()) => {
            run.status = RunStatus::Succeeded;
            run.conclude();
        }
        Err(e) => {
            COUNTERS.runs_failed.fetch_add(1, Ordering::Relaxed);
            run.status = RunStatus::Failed;
            run.error = Some(e);
        }
    }
    COUNTERS
        .last_run_finished
        .store(crate::node_health::unix_ms() / 1000, Ordering::Relaxed);
    tracing::info!(
        run = run.uid,
        status = ?run.status,
        result = ?run.result,
        shards = run.shards_checked,
        differences = run.summary.differences_found(),
        repaired = run.summary.documents_repaired,
        remaining = run.summary.differences_remaining,
        "anti-entropy run finished"
    );
    if let Err(e) = save(admin, &run).await {
        tracing::warn!(run = run.uid, error = %e, "could not store the verify run's report");
    }
}

async fn verify_all(admin: &Arc<Admin>, run: &mut VerifyRun) -> Result<(), String> {
    let (jobs, settled) = jobs(admin, run.index.as_deref())?;
    run.shards_total = (jobs.len() + settled.len()) as u64;
    for r in settled {
        record(run, r);
    }
    save(admin, run).await.map_err(|e| e.to_string())?;
    let cfg = admin.config.antientropy.clone();
    let pacer = Pacer::new(cfg.max_documents_per_second);
    let ctx = Ctx {
        admin,
        cfg: &cfg,
        pacer: &pacer,
        repair: run.repair,
    };
    let ctx = &ctx;
    let mut results = futures_util::stream::iter(jobs)
        .map(|job| verify::verify_shard(ctx, job))
        .buffer_unordered(cfg.concurrency.max(1) as usize);
    while let Some(r) = results.next().await {
        record(run, r);
        // Progress is visible to pollers shard by shard.
        if let Err(e) = save(admin, run).await {
            tracing::warn!(run = run.uid, error = %e, "could not store verify progress");
        }
    }
    run.shards
        .sort_by(|a, b| (&a.index, a.shard).cmp(&(&b.index, b.shard)));
    Ok(())
}

fn record(run: &mut VerifyRun, r: report::ShardReport) {
    run.shards_checked += 1;
    run.summary.add(&r);
    COUNTERS.shards_checked.fetch_add(1, Ordering::Relaxed);
    if r.outcome == ShardOutcome::Skipped {
        COUNTERS.shards_skipped.fetch_add(1, Ordering::Relaxed);
    }
    let found: u64 = r
        .nodes
        .values()
        .map(|n| n.missing + n.extra + n.different)
        .sum();
    COUNTERS
        .differences_found
        .fetch_add(found + r.conflicts, Ordering::Relaxed);
    COUNTERS.conflicts.fetch_add(r.conflicts, Ordering::Relaxed);
    COUNTERS.documents_repaired.fetch_add(
        r.nodes.values().map(|n| n.repaired).sum(),
        Ordering::Relaxed,
    );
    if r.outcome != ShardOutcome::Consistent {
        run.shards.push(r);
    }
}

/// Runs the schedule (if any) forever. Spawned once at start.
pub async fn run_schedule(admin: Arc<Admin>) {
    let every = admin.config.antientropy.interval_s;
    if every == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(every));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: skip it, a start is no reason for a full read.
    tick.tick().await;
    loop {
        tick.tick().await;
        if !may_lead(&admin) {
            continue;
        }
        let repair = admin.config.antientropy.repair;
        match start_run(&admin, None, repair, "schedule").await {
            Ok(run) => tracing::info!(run = run.uid, repair, "scheduled anti-entropy run"),
            Err(e) => tracing::warn!(error = %e, "could not start a scheduled anti-entropy run"),
        }
    }
}

/// Marks the runs a previous admin process left unfinished as failed. Called at start before
/// the API listens, so no run of this process can be mistaken for one.
pub async fn fail_interrupted(admin: &Admin) {
    let Ok(all) = admin.store.list_meta(META_RUN).await else {
        return;
    };
    for (_, bytes) in all {
        let Ok(mut run) = serde_json::from_slice::<VerifyRun>(&bytes) else {
            continue;
        };
        if matches!(run.status, RunStatus::Enqueued | RunStatus::Running) {
            run.status = RunStatus::Failed;
            run.error = Some("the admin process stopped while this run was in progress".into());
            run.finished_at = Some(crate::timefmt::now_rfc3339());
            let _ = save(admin, &run).await;
        }
    }
}

/// `POST /_miroir/verify` (`{"index": optional, "repair": bool}`, body optional) → 202 and
/// the run to poll.
pub async fn post(admin: &Arc<Admin>, req: &Req) -> Result<Resp, ApiError> {
    let body = if req.body.is_empty() {
        json!({})
    } else {
        req.json()?
    };
    let Value::Object(fields) = body else {
        return Err(ApiError::core(
            ErrorCode::BadRequest,
            "The verify request must be a JSON object: `{\"index\": \"movies\", \"repair\": true}`, both fields optional.",
        ));
    };
    let mut index = None;
    let mut repair = false;
    for (k, v) in &fields {
        match (k.as_str(), v) {
            ("index", Value::String(s)) => index = Some(s.clone()),
            ("index", Value::Null) => {}
            ("repair", Value::Bool(b)) => repair = *b,
            ("index" | "repair", other) => {
                return Err(ApiError::core(
                    ErrorCode::BadRequest,
                    format!(
                        "Invalid value type at `.{k}`: expected {}, but found {}.",
                        if k == "index" {
                            "a string"
                        } else {
                            "a boolean"
                        },
                        crate::http_types::describe_json_value(other)
                    ),
                ))
            }
            _ => {
                return Err(ApiError::core(
                    ErrorCode::BadRequest,
                    format!("Unknown field `{k}`: expected one of `index`, `repair`."),
                ))
            }
        }
    }
    let run = start_run(admin, index, repair, "api").await?;
    Ok(Resp::json(202, &run))
}

/// `GET /_miroir/verify/{uid}`.
pub async fn get(admin: &Admin, uid: &str) -> Result<Resp, ApiError> {
    let not_found = || {
        ApiError::core(
            ErrorCode::NotFound,
            format!("Verify run `{uid}` not found."),
        )
    };
    let uid: u64 = uid.parse().map_err(|_| not_found())?;
    match load(admin, uid).await? {
        Some(run) => Ok(Resp::json(200, &run)),
        None => Err(not_found()),
    }
}

/// `GET /_miroir/verify`: the kept runs, newest first, without their shard lists.
pub async fn list(admin: &Admin) -> Result<Resp, ApiError> {
    let all = admin.store.list_meta(META_RUN).await?;
    let results: Vec<Value> = all
        .iter()
        .rev()
        .filter_map(|(_, b)| serde_json::from_slice::<Value>(b).ok())
        .map(|mut v| {
            if let Some(o) = v.as_object_mut() {
                o.remove("shards");
            }
            v
        })
        .collect();
    Ok(Resp::json(200, &json!({ "results": results })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_keys_sort_by_uid() {
        assert!(run_key(9) < run_key(10));
        assert!(run_key(99) < run_key(100));
    }
}
