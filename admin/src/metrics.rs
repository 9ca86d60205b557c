//! Prometheus metrics of the admin process (`GET /_miroir/metrics`): node health, task
//! registry size, broadcast outcomes, snapshot publishes, data-plane liveness. The counters
//! themselves are [`crate::state::Metrics`], kept with the state every module updates.

use std::fmt::Write;
use std::sync::atomic::Ordering;

/// Renders the text exposition format.
pub async fn render(admin: &crate::state::Admin) -> String {
    let m = &admin.metrics;
    let tasks = admin.store.count_tasks().await.unwrap_or(0);
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, lines: Vec<(String, u64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in lines {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let nodes = admin.nodes();
    gauge(
        "miroir_node_healthy",
        "1 when the node serves reads (active/degraded/draining).",
        "gauge",
        nodes
            .iter()
            .map(|n| (format!("{{node=\"{}\"}}", n.id), u64::from(n.is_live())))
            .collect(),
    );
    gauge(
        "miroir_task_registry_size",
        "Miroir tasks held in the task store.",
        "gauge",
        vec![(String::new(), tasks)],
    );
    gauge(
        "miroir_tasks_registered_total",
        "Miroir tasks created by this admin process.",
        "counter",
        vec![(String::new(), m.tasks_registered.load(Ordering::Relaxed))],
    );
    gauge(
        "miroir_task_missing_copies_total",
        "Tasks that finished without some node's copy (it was unreachable when written).",
        "counter",
        vec![(
            String::new(),
            m.tasks_missing_copies.load(Ordering::Relaxed),
        )],
    );
    gauge(
        "miroir_hints_pending",
        "Hinted writes waiting to be replayed to a copy that missed them.",
        "gauge",
        vec![(String::new(), m.hints_pending.load(Ordering::Relaxed))],
    );
    gauge(
        "miroir_hints_total",
        "Hinted writes by outcome: recorded, replayed (the node task succeeded), failed (dropped after hints.max_attempts).",
        "counter",
        vec![
            (
                "{outcome=\"recorded\"}".into(),
                m.hints_recorded.load(Ordering::Relaxed),
            ),
            (
                "{outcome=\"replayed\"}".into(),
                m.hints_replayed.load(Ordering::Relaxed),
            ),
            (
                "{outcome=\"failed\"}".into(),
                m.hints_failed.load(Ordering::Relaxed),
            ),
        ],
    );
    gauge(
        "miroir_broadcasts_total",
        "Broadcast operations (index lifecycle, settings, keys) by outcome.",
        "counter",
        vec![
            (
                "{outcome=\"succeeded\"}".into(),
                m.broadcasts_succeeded.load(Ordering::Relaxed),
            ),
            (
                "{outcome=\"failed\"}".into(),
                m.broadcasts_failed.load(Ordering::Relaxed),
            ),
        ],
    );
    gauge(
        "miroir_broadcast_rollbacks_total",
        "Broadcasts rolled back.",
        "counter",
        vec![(String::new(), m.rollbacks.load(Ordering::Relaxed))],
    );
    gauge(
        "miroir_snapshot_publishes_total",
        "Snapshot generations published.",
        "counter",
        vec![(String::new(), m.snapshot_publishes.load(Ordering::Relaxed))],
    );
    gauge(
        "miroir_dataplanes_live",
        "Data-plane processes heard from within the heartbeat timeout.",
        "gauge",
        vec![(String::new(), admin.live_dataplanes().len() as u64)],
    );
    gauge(
        "miroir_admin_leader",
        "1 when this admin holds the leader lease (always 1 on one host with LMDB).",
        "gauge",
        vec![(String::new(), u64::from(admin.leadership().is_leader()))],
    );
    let ae = &crate::antientropy::COUNTERS;
    let load = |c: &std::sync::atomic::AtomicU64| vec![(String::new(), c.load(Ordering::Relaxed))];
    gauge(
        "miroir_antientropy_runs_total",
        "Anti-entropy runs started (scheduled and on demand).",
        "counter",
        load(&ae.runs),
    );
    gauge(
        "miroir_antientropy_runs_failed_total",
        "Anti-entropy runs that could not complete.",
        "counter",
        load(&ae.runs_failed),
    );
    gauge(
        "miroir_antientropy_shards_checked_total",
        "Shards whose copies an anti-entropy run compared (or skipped).",
        "counter",
        load(&ae.shards_checked),
    );
    gauge(
        "miroir_antientropy_shards_skipped_total",
        "Shards skipped: moving, or fewer than two readable copies.",
        "counter",
        load(&ae.shards_skipped),
    );
    gauge(
        "miroir_antientropy_differences_found_total",
        "Documents found missing, extra or different on a copy, conflicts included.",
        "counter",
        load(&ae.differences_found),
    );
    gauge(
        "miroir_antientropy_conflicts_total",
        "Documents with different contents on copies and no majority (left alone).",
        "counter",
        load(&ae.conflicts),
    );
    gauge(
        "miroir_antientropy_documents_repaired_total",
        "Documents written or deleted on a copy by a repair, and equal afterwards.",
        "counter",
        load(&ae.documents_repaired),
    );
    gauge(
        "miroir_antientropy_last_run_timestamp_seconds",
        "Unix time the last anti-entropy run finished (0 = none since start).",
        "gauge",
        load(&ae.last_run_finished),
    );
    let running = admin.lock().rebalance;
    gauge(
        "miroir_rebalance_in_progress",
        "1 while a topology operation (node add/drain/remove) runs.",
        "gauge",
        vec![(String::new(), u64::from(running.is_some()))],
    );
    gauge(
        "miroir_rebalance_phase",
        "1 for the phase the running topology operation is in.",
        "gauge",
        running
            .map(|(phase, _)| (format!("{{phase=\"{phase}\"}}"), 1))
            .into_iter()
            .collect(),
    );
    gauge(
        "miroir_rebalance_shards_moving",
        "Shard copies of the running operation not yet cleaned up.",
        "gauge",
        vec![(String::new(), running.map_or(0, |(_, n)| n))],
    );
    gauge(
        "miroir_rebalance_documents_copied_total",
        "Documents written to a shard's new owner (copies and verification repairs).",
        "counter",
        vec![(
            String::new(),
            m.rebalance_docs_copied.load(Ordering::Relaxed),
        )],
    );
    gauge(
        "miroir_rebalance_bytes_copied_total",
        "JSON bytes of the documents copied.",
        "counter",
        vec![(
            String::new(),
            m.rebalance_bytes_copied.load(Ordering::Relaxed),
        )],
    );
    gauge(
        "miroir_rebalance_errors_total",
        "Rebalancer steps that failed (each is retried).",
        "counter",
        vec![(String::new(), m.rebalance_errors.load(Ordering::Relaxed))],
    );
    gauge(
        "miroir_rebalance_operations_completed_total",
        "Topology operations this admin process completed.",
        "counter",
        vec![(
            String::new(),
            m.rebalance_operations_completed.load(Ordering::Relaxed),
        )],
    );
    out
}
