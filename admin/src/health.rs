//! Health checking: every node's `GET /health` on `health.interval_ms` with
//! `health.timeout_ms`; consecutive failures/successes against the configured thresholds drive
//! the node status through the core's state machine ([`NodeStatus::transition`]).
//!
//! The tracker ([`crate::node_health`]) is pure (it is fed probe outcomes), so the threshold
//! logic is unit-tested without sockets; [`run`] is the I/O loop around it.

use miroir_core::topology::NodeStatus;
use std::time::Duration;

/// One probe: `GET /health` must answer 200 within the timeout.
pub async fn probe(
    client: &crate::node_client::NodeClient,
    address: &str,
    timeout: Duration,
) -> Result<(), String> {
    match client
        .send_raw(address, hyper::Method::GET, "/health", None, timeout)
        .await
    {
        Ok(r) if r.status == 200 => Ok(()),
        Ok(r) => Err(format!("GET /health answered {}", r.status)),
        Err(e) => Err(e.to_string()),
    }
}

/// The checking loop: probes every node in parallel each interval, records the outcomes and
/// republishes the snapshot when a status changed. Runs until the process exits; on a host
/// that does not lead ([`crate::leader`]) it idles.
pub async fn run(admin: std::sync::Arc<crate::state::Admin>) {
    let cfg = admin.config.health.clone();
    let mut ticker = tokio::time::interval(Duration::from_millis(cfg.interval_ms.max(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        // Health decisions, settings repairs and key syncs are the leader's alone; the other
        // hosts of a shared store take node statuses from its snapshots.
        if !admin.leadership().is_leader() {
            continue;
        }
        let nodes: Vec<(String, String)> = admin
            .nodes()
            .into_iter()
            .map(|n| (n.id.clone(), n.address.clone()))
            .collect();
        let timeout = Duration::from_millis(cfg.timeout_ms.max(1));
        let probes = nodes.iter().map(|(id, addr)| {
            let client = admin.client.clone();
            let (id, addr) = (id.clone(), addr.clone());
            async move { (id, probe(&client, &addr, timeout).await) }
        });
        let mut results = futures_join_all(probes).await;
        repair_before_counting(&admin, &mut results).await;
        let mut changed = false;
        for (id, outcome) in results {
            changed |= admin.record_health(
                &id,
                outcome,
                cfg.unhealthy_threshold,
                cfg.recovery_threshold,
            );
        }
        if changed {
            if let Err(e) = admin.publish().await {
                tracing::error!(error = %e, "snapshot publish after a health change failed");
            }
        }
        crate::keys::sync_to_nodes(&admin).await;
    }
}

/// How long one node's settings repair may hold up a health tick.
const REPAIR_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the pending settings repairs ([`crate::repair`]) of nodes whose probe succeeded,
/// before the success is counted: a recovering node whose repair does not complete keeps its
/// probe as a failure ("settings repair pending"), so it never turns `active` with stale
/// settings. A node that is already active (it was unreachable between two probes) keeps its
/// success and is retried at the next tick.
async fn repair_before_counting(
    admin: &std::sync::Arc<crate::state::Admin>,
    results: &mut [(String, Result<(), String>)],
) {
    let pending = match crate::repair::all_pending(admin).await {
        Ok(p) if !p.is_empty() => std::sync::Arc::new(p),
        Ok(_) => return,
        Err(e) => {
            tracing::error!(error = %e, "reading pending settings repairs failed");
            return;
        }
    };
    let nodes = admin.nodes();
    let repairs = results.iter().enumerate().filter_map(|(i, (id, outcome))| {
        let node = nodes.iter().find(|n| &n.id == id)?.clone();
        let wanted = outcome.is_ok() && pending.iter().any(|(_, set)| set.contains(id));
        wanted.then(|| {
            let (admin, pending) = (admin.clone(), pending.clone());
            async move {
                let r = tokio::time::timeout(
                    REPAIR_TIMEOUT,
                    crate::repair::repair_node(&admin, &node, &pending),
                )
                .await
                .unwrap_or_else(|_| Err(format!("timed out after {REPAIR_TIMEOUT:?}")));
                (i, node.status, r)
            }
        })
    });
    for (i, status, r) in futures_join_all(repairs.collect::<Vec<_>>()).await {
        if let Err(e) = r {
            tracing::warn!(node = %results[i].0, error = %e, "settings repair failed; retrying at the next probe");
            if status != NodeStatus::Active {
                results[i].1 = Err(format!("settings repair pending: {e}"));
            }
        }
    }
}

/// Awaits every future concurrently, each on its own tokio task (so the calls to nodes run
/// in parallel on the runtime's threads and finish even if the caller is dropped), joined
/// with `futures_util`'s `join_all`; results in input order; a panic is re-raised here.
pub async fn futures_join_all<F, T>(futs: impl IntoIterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    futures_util::future::join_all(futs.into_iter().map(tokio::spawn))
        .await
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())))
        .collect()
}
