//! What the admin knows about one node's health: a pure tracker fed probe outcomes
//! ([`crate::health`] runs the probes), kept in [`crate::state::State`].

use miroir_core::topology::NodeStatus;
use std::time::{SystemTime, UNIX_EPOCH};

/// What the admin knows about one node's health.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeHealth {
    pub id: String,
    pub address: String,
    pub group: u32,
    pub status: NodeStatus,
    consecutive_failures: u32,
    consecutive_successes: u32,
    /// Unix ms of the last successful probe (`0` = never).
    pub last_seen_ms: u64,
    /// The last probe error, cleared by a success.
    pub error: Option<String>,
}

impl NodeHealth {
    pub fn new(id: &str, address: &str, group: u32) -> Self {
        NodeHealth {
            id: id.to_string(),
            address: address.to_string(),
            group,
            // Configured nodes start active: a fresh deployment is ready as soon as it is
            // configured, and the first failed probes demote a dead node within
            // `unhealthy_threshold × interval`.
            status: NodeStatus::Active,
            consecutive_failures: 0,
            consecutive_successes: 0,
            last_seen_ms: 0,
            error: None,
        }
    }

    /// Records one probe outcome; returns `true` when the status changed.
    pub fn record(
        &mut self,
        outcome: Result<(), String>,
        unhealthy_threshold: u32,
        recovery_threshold: u32,
    ) -> bool {
        let before = self.status;
        match outcome {
            Ok(()) => {
                self.consecutive_failures = 0;
                self.consecutive_successes = self.consecutive_successes.saturating_add(1);
                self.last_seen_ms = unix_ms();
                self.error = None;
                if matches!(self.status, NodeStatus::Failed | NodeStatus::Degraded)
                    && self.consecutive_successes >= recovery_threshold.max(1)
                {
                    self.set(NodeStatus::Active);
                }
            }
            Err(e) => {
                self.consecutive_successes = 0;
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                self.error = Some(e);
                if self.consecutive_failures >= unhealthy_threshold.max(1) {
                    self.set(NodeStatus::Failed);
                } else if self.status == NodeStatus::Active {
                    // Below the threshold the node still answers sometimes: degraded.
                    self.set(NodeStatus::Degraded);
                }
            }
        }
        self.status != before
    }

    fn set(&mut self, next: NodeStatus) {
        // Statuses owned by topology operations (joining/draining/removed) are not changed by
        // health checks: an illegal transition is simply not applied.
        if let Ok(s) = self.status.transition(next) {
            self.status = s;
        }
    }

    /// Whether reads may be routed to it.
    pub fn is_live(&self) -> bool {
        self.status.serves_reads()
    }
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_degrade_then_fail_and_successes_recover() {
        let mut n = NodeHealth::new("a", "http://x", 0);
        assert!(n.record(Err("down".into()), 3, 2));
        assert_eq!(n.status, NodeStatus::Degraded);
        assert!(!n.record(Err("down".into()), 3, 2));
        assert!(n.record(Err("down".into()), 3, 2));
        assert_eq!(n.status, NodeStatus::Failed);
        assert!(!n.is_live());
        assert_eq!(n.error.as_deref(), Some("down"));
        // One success is below the recovery threshold.
        assert!(!n.record(Ok(()), 3, 2));
        assert_eq!(n.status, NodeStatus::Failed);
        assert!(n.record(Ok(()), 3, 2));
        assert_eq!(n.status, NodeStatus::Active);
        assert!(n.last_seen_ms > 0);
        assert_eq!(n.error, None);
    }

    #[test]
    fn an_intermittent_failure_resets_the_streak() {
        let mut n = NodeHealth::new("a", "http://x", 0);
        n.record(Err("x".into()), 2, 1);
        n.record(Ok(()), 2, 1);
        assert_eq!(n.status, NodeStatus::Active);
        n.record(Err("x".into()), 2, 1);
        assert_eq!(n.status, NodeStatus::Degraded);
    }

    #[test]
    fn operator_owned_statuses_are_not_overridden() {
        let mut n = NodeHealth::new("a", "http://x", 0);
        n.status = NodeStatus::Joining;
        n.record(Err("x".into()), 1, 1);
        assert_eq!(n.status, NodeStatus::Joining);
    }
}
