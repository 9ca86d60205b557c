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
