//! Verifying (and repairing) one shard of one index across its copies.
//!
//! 1. Every readable copy is read in full (paced, page by page) into per-bucket
//!    fingerprints; equal vectors mean equal copies and the shard is done.
//! 2. Otherwise the copies are read again, keeping `(id, digest)` of the documents in the
//!    differing buckets only.
//! 3. The ids that differ are fetched by id from every copy (this also drops differences that
//!    were only writes landing between two reads, and sees documents without `_miroir_shard`,
//!    which the shard-restricted scan cannot), and [`super::plan`] decides.
//! 4. A repair writes the right whole documents and deletes the wrong ones per copy, waits for
//!    the node tasks, then fetches the ids again to count what converged.

use super::plan::{self, CopyDoc, Plan};
use super::report::{NodeCounts, ShardOutcome, ShardReport};
use crate::shard_scan::{
    self, canonical_id, delete_documents, fetch_by_ids, write_documents, Document, ScanError,
    ShardSource,
};
use crate::state::Admin;
use hyper::Method;
use miroir_core::config::AntiEntropyConfig;
use miroir_core::documents::{shard_clause, shard_token, SHARD_FIELD};
use miroir_core::fingerprint::{bucket_of, document_digest, Fingerprint};
use miroir_core::ShardId;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Ids per fetch, write or delete request.
const CHUNK: usize = 500;
/// Longest wait for one node task of a repair.
const TASK_DEADLINE: Duration = Duration::from_secs(300);
/// Conflicting ids listed in a report (the count is always complete).
const LISTED_IDS: usize = 20;

/// Documents read per second over a whole run, shared by every scan of the run.
pub struct Pacer {
    per_sec: u64,
    next: tokio::sync::Mutex<tokio::time::Instant>,
}

impl Pacer {
    pub fn new(per_sec: u64) -> Pacer {
        Pacer {
            per_sec,
            next: tokio::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    /// Waits for the right to read `n` more documents.
    async fn take(&self, n: u64) {
        if self.per_sec == 0 {
            return;
        }
        let start = {
            let mut next = self.next.lock().await;
            let start = (*next).max(tokio::time::Instant::now());
            *next = start + Duration::from_secs_f64(n as f64 / self.per_sec as f64);
            start
        };
        tokio::time::sleep_until(start).await;
    }
}

/// One copy of the shard: a node and its address.
#[derive(Debug, Clone)]
pub struct Copy {
    pub node: String,
    pub url: String,
}

pub struct Ctx<'a> {
    pub admin: &'a Admin,
    pub cfg: &'a AntiEntropyConfig,
    pub pacer: &'a Pacer,
    pub repair: bool,
}

/// One shard to verify.
pub struct Job {
    pub index: String,
    pub primary_key: String,
    pub shard: u32,
    /// Readable owners.
    pub copies: Vec<Copy>,
    /// Owners not readable now, with why.
    pub unreadable: Vec<String>,
    /// Placement owners in every group (the majority's denominator).
    pub total_copies: usize,
}

/// What one scan of a copy yields.
struct Scan {
    buckets: Vec<Fingerprint>,
    /// The ids in the buckets asked for.
    ids: BTreeSet<String>,
}

async fn scan(
    ctx: &Ctx<'_>,
    job: &Job,
    copy: &Copy,
    keep: Option<&BTreeSet<u32>>,
) -> Result<Scan, ScanError> {
    let src = ShardSource {
        client: &ctx.admin.client,
        node_url: &copy.url,
        index: &job.index,
        shard: ShardId(job.shard),
    };
    let page_size = ctx.cfg.page_size.max(1);
    let nb = ctx.cfg.buckets.max(1);
    let mut out = Scan {
        buckets: vec![Fingerprint::default(); nb as usize],
        ids: BTreeSet::new(),
    };
    let mut offset = 0u64;
    loop {
        ctx.pacer.take(u64::from(page_size)).await;
        let page = src.page(offset, page_size).await?;
        let n = page.documents.len() as u64;
        for doc in &page.documents {
            let id = canonical_id(doc, &job.primary_key)?;
            let digest = document_digest(doc);
            let b = bucket_of(&id, nb);
            out.buckets[b as usize].add(&id, digest);
            if keep.is_some_and(|k| k.contains(&b)) {
                out.ids.insert(id);
            }
        }
        offset += n;
        if n < u64::from(page_size) {
            return Ok(out);
        }
    }
}

/// Scans every copy at once, results in the order of the copies.
async fn scan_all(
    ctx: &Ctx<'_>,
    job: &Job,
    keep: Option<&BTreeSet<u32>>,
) -> Vec<Result<Scan, ScanError>> {
    futures_util::future::join_all(job.copies.iter().map(|c| scan(ctx, job, c, keep))).await
}

/// What one copy holds for some ids: the documents, and which of them carry this shard's
/// `_miroir_shard`.
#[derive(Default)]
struct Fetched {
    docs: BTreeMap<String, Document>,
    stamped: BTreeSet<String>,
}

/// The ids among `ids` that carry the shard's `_miroir_shard` on a node. Asked with the shard
/// restriction as a filter rather than read from the documents: Meilisearch 1.50's
/// documents/fetch returns every field, but a node hiding non-displayed fields there (the
/// test node does) would make every copy look unstamped.
async fn stamped_ids(
    ctx: &Ctx<'_>,
    job: &Job,
    url: &str,
    ids: &[String],
) -> Result<Vec<String>, ScanError> {
    const WHAT: &str = "a fetch by ids in a shard";
    let body = json!({
        "ids": ids,
        "filter": shard_clause(&[ShardId(job.shard)]),
        "fields": [job.primary_key],
        "limit": ids.len(),
    });
    let path = format!("/indexes/{}/documents/fetch", job.index);
    let r = ctx
        .admin
        .client
        .send(url, Method::POST, &path, Some(&body))
        .await?;
    if !r.is_success() {
        return Err(ScanError::Refused {
            what: WHAT,
            status: r.status,
            body: String::from_utf8_lossy(&r.body).chars().take(512).collect(),
        });
    }
    let v = r.json();
    let Some(Value::Array(results)) = v.get("results") else {
        return Err(ScanError::Malformed { what: WHAT });
    };
    results
        .iter()
        .filter_map(Value::as_object)
        .map(|d| canonical_id(d, &job.primary_key))
        .collect()
}

/// What every copy holds for `ids`, in the order of the copies.
async fn fetch_all(ctx: &Ctx<'_>, job: &Job, ids: &[String]) -> Result<Vec<Fetched>, String> {
    let fetches = job.copies.iter().map(|c| async move {
        let mut out = Fetched::default();
        let fail = |e: ScanError| format!("{}: {e}", c.node);
        for chunk in ids.chunks(CHUNK) {
            ctx.pacer.take(chunk.len() as u64).await;
            let docs = fetch_by_ids(&ctx.admin.client, &c.url, &job.index, chunk)
                .await
                .map_err(fail)?;
            for d in docs {
                let id = canonical_id(&d, &job.primary_key).map_err(fail)?;
                out.docs.insert(id, d);
            }
            let stamped = stamped_ids(ctx, job, &c.url, chunk).await.map_err(fail)?;
            out.stamped.extend(stamped);
        }
        Ok::<_, String>(out)
    });
    futures_util::future::join_all(fetches)
        .await
        .into_iter()
        .collect()
}

/// id → the state on each copy.
fn states(ids: &[String], fetched: &[Fetched]) -> BTreeMap<String, Vec<CopyDoc>> {
    ids.iter()
        .map(|id| {
            let s = fetched
                .iter()
                .map(|f| {
                    f.docs
                        .get(id)
                        .map_or(CopyDoc::Absent, |d| CopyDoc::Present {
                            digest: document_digest(d),
                            stamped: f.stamped.contains(id),
                        })
                })
                .collect();
            (id.clone(), s)
        })
        .collect()
}

fn differing(states: &BTreeMap<String, Vec<CopyDoc>>) -> usize {
    states
        .values()
        .filter(|s| !s.windows(2).all(|w| w[0] == w[1]))
        .count()
}

pub async fn verify_shard(ctx: &Ctx<'_>, mut job: Job) -> ShardReport {
    let mut report = ShardReport {
        index: job.index.clone(),
        shard: job.shard,
        copies: job.copies.iter().map(|c| c.node.clone()).collect(),
        unreadable: job.unreadable.clone(),
        outcome: ShardOutcome::Consistent,
        reason: None,
        nodes: BTreeMap::new(),
        conflicts: 0,
        conflict_ids: Vec::new(),
        decided_by: BTreeMap::new(),
        unrepaired: 0,
    };
    // Pass 1: per-bucket fingerprints of every copy.
    let mut scans = Vec::new();
    let mut kept = Vec::new();
    let results = scan_all(ctx, &job, None).await;
    for (c, r) in job.copies.drain(..).zip(results) {
        match r {
            Ok(s) => {
                kept.push(c);
                scans.push(s);
            }
            Err(e) => report.unreadable.push(format!("{}: {e}", c.node)),
        }
    }
    job.copies = kept;
    report.copies = job.copies.iter().map(|c| c.node.clone()).collect();
    if job.copies.len() < 2 {
        return report.skipped("fewer than two readable copies");
    }
    let diff_buckets: BTreeSet<u32> = (0..scans[0].buckets.len())
        .filter(|&b| scans.iter().any(|s| s.buckets[b] != scans[0].buckets[b]))
        .map(|b| b as u32)
        .collect();
    if diff_buckets.is_empty() {
        return report;
    }
    // Pass 2: the ids in the differing buckets.
    let mut ids = BTreeSet::new();
    for r in scan_all(ctx, &job, Some(&diff_buckets)).await {
        match r {
            Ok(s) => ids.extend(s.ids),
            Err(e) => return report.skipped(&format!("a copy became unreadable: {e}")),
        }
    }
    // The ids any copy lists, confirmed by id on every copy.
    let ids: Vec<String> = ids.into_iter().collect();
    let fetched = match fetch_all(ctx, &job, &ids).await {
        Ok(f) => f,
        Err(e) => return report.skipped(&format!("fetching the differing documents: {e}")),
    };
    let before = states(&ids, &fetched);
    let p = plan::plan(&before, job.copies.len(), job.total_copies);
    report.record_plan(&job, &p);
    if p.differences() == 0 && p.conflicts.is_empty() {
        // The fingerprints differed only by writes that landed between two reads.
        return report;
    }
    report.outcome = ShardOutcome::Differing;
    report.unrepaired = p.differences();
    if !ctx.repair || p.differences() == 0 {
        return report;
    }
    if let Err(e) = apply(ctx, &job, &p, &fetched).await {
        report.reason = Some(format!("repair failed: {e}"));
    }
    // What converged: the planned ids, fetched again.
    let planned: Vec<String> = p
        .copies
        .iter()
        .flat_map(|c| c.write.iter().map(|(id, _)| id).chain(c.delete.iter()))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    match fetch_all(ctx, &job, &planned).await {
        Ok(after) => {
            let after = states(&planned, &after);
            report.unrepaired = differing(&after) as u64;
            for (c, cp) in p.copies.iter().enumerate() {
                let converged = cp
                    .write
                    .iter()
                    .map(|(id, _)| id)
                    .chain(cp.delete.iter())
                    .filter(|id| after[*id].windows(2).all(|w| w[0] == w[1]))
                    .count() as u64;
                if let Some(n) = report.nodes.get_mut(&job.copies[c].node) {
                    n.repaired = converged;
                }
            }
        }
        Err(e) => {
            report.reason = Some(format!("checking the repair: {e}"));
        }
    }
    if report.unrepaired == 0 && report.conflicts == 0 && report.reason.is_none() {
        report.outcome = ShardOutcome::Repaired;
    }
    report
}

/// Writes and deletes on every copy that needs it, one node task at a time per copy.
async fn apply(ctx: &Ctx<'_>, job: &Job, p: &Plan, fetched: &[Fetched]) -> Result<(), String> {
    let client = &ctx.admin.client;
    let token = &shard_token(ShardId(job.shard));
    let per_copy = job
        .copies
        .iter()
        .zip(&p.copies)
        .map(|(copy, cp)| async move {
            let fail = |e: ScanError| format!("{}: {e}", copy.node);
            for chunk in cp.write.chunks(CHUNK) {
                let docs: Vec<Document> = chunk
                    .iter()
                    .filter_map(|(id, src)| fetched[*src].docs.get(id).cloned())
                    .map(|mut d| {
                        // Set, not trusted from the read: a node that hides non-displayed
                        // fields returns documents without it, and without it this copy
                        // would not answer for them in searches.
                        d.insert(SHARD_FIELD.to_string(), Value::String(token.clone()));
                        d
                    })
                    .collect();
                let uid = write_documents(
                    client,
                    &copy.url,
                    &job.index,
                    &job.primary_key,
                    &docs,
                    client.timeout.max(Duration::from_secs(30)),
                )
                .await
                .map_err(fail)?;
                wait(client, copy, uid).await?;
            }
            for chunk in cp.delete.chunks(CHUNK) {
                let uid = delete_documents(client, &copy.url, &job.index, chunk)
                    .await
                    .map_err(fail)?;
                wait(client, copy, uid).await?;
            }
            Ok::<(), String>(())
        });
    let errors: Vec<String> = futures_util::future::join_all(per_copy)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

async fn wait(
    client: &crate::node_client::NodeClient,
    copy: &Copy,
    uid: u64,
) -> Result<(), String> {
    match shard_scan::wait_node_task(client, &copy.url, uid, TASK_DEADLINE).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("{}: node task {uid} failed", copy.node)),
        Err(e) => Err(format!("{}: node task {uid}: {e}", copy.node)),
    }
}

impl ShardReport {
    fn skipped(mut self, why: &str) -> ShardReport {
        self.outcome = ShardOutcome::Skipped;
        self.reason = Some(why.to_string());
        self
    }

    fn record_plan(&mut self, job: &Job, p: &Plan) {
        for (c, cp) in p.copies.iter().enumerate() {
            if cp.missing + cp.extra + cp.different > 0 {
                self.nodes.insert(
                    job.copies[c].node.clone(),
                    NodeCounts {
                        missing: cp.missing,
                        extra: cp.extra,
                        different: cp.different,
                        repaired: 0,
                    },
                );
            }
        }
        self.conflicts = p.conflicts.len() as u64;
        self.conflict_ids = p.conflicts.iter().take(LISTED_IDS).cloned().collect();
        self.decided_by = p.decided_by.iter().map(|(k, v)| (*k, *v)).collect();
    }
}
