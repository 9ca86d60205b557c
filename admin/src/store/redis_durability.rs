//! Whether a Redis server keeps what the task store acknowledges (docs/architecture.md,
//! "Redis durability"). A task acknowledged to a client must survive a Redis restart: without
//! an append-only file, a restart loses every task since the last snapshot and moves
//! `next_uid` backwards, so uids are handed out again and overwrite tasks.
//!
//! - `appendonly yes` with `appendfsync always`: durable;
//! - `appendonly yes` with `appendfsync everysec`: durable across a Redis *process* crash, up
//!   to about a second lost if the *host* fails — accepted, and said at start;
//! - `appendonly no`, or `appendfsync no` (the OS decides when to flush): not durable;
//! - `CONFIG GET` refused (managed Redis often disables it): unknown.
//!
//! With replicas connected (`INFO replication`), the store also waits (`WAIT`) for them to
//! acknowledge each task write, so a failover to a replica does not lose acknowledged tasks.

/// What the server's persistence settings guarantee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Durability {
    Durable,
    /// Durable, with the stated window of loss on a host failure.
    DurableWithWindow(&'static str),
    /// Acknowledged tasks can be lost; the text says what to change.
    NotDurable(String),
    /// The settings could not be read.
    Unknown(String),
}

/// Judges `CONFIG GET appendonly` / `appendfsync` answers.
pub fn assess(appendonly: &str, appendfsync: &str) -> Durability {
    if !appendonly.eq_ignore_ascii_case("yes") {
        return Durability::NotDurable(
            "the Redis server runs without an append-only file (`appendonly no`): a Redis \
             restart loses acknowledged tasks and reuses their uids. Set `appendonly yes` and \
             `appendfsync everysec` (or `always`) in redis.conf (or `CONFIG SET appendonly yes`)"
                .into(),
        );
    }
    match appendfsync.to_ascii_lowercase().as_str() {
        "always" => Durability::Durable,
        "everysec" => Durability::DurableWithWindow("up to one second of writes on a host failure"),
        other => Durability::NotDurable(format!(
            "the Redis server leaves flushing its append-only file to the OS (`appendfsync \
             {other}`): a host failure can lose acknowledged tasks. Set `appendfsync everysec` \
             (or `always`)"
        )),
    }
}

/// The number of replicas connected to a master, from `INFO replication`.
pub fn connected_replicas(info: &str) -> u32 {
    info.lines()
        .find_map(|l| l.strip_prefix("connected_slaves:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persistence_settings_are_judged() {
        assert_eq!(assess("yes", "always"), Durability::Durable);
        assert!(matches!(
            assess("yes", "everysec"),
            Durability::DurableWithWindow(_)
        ));
        assert!(
            matches!(assess("no", "everysec"), Durability::NotDurable(m) if m.contains("appendonly yes"))
        );
        assert!(matches!(assess("yes", "no"), Durability::NotDurable(m) if m.contains("everysec")));
    }

    #[test]
    fn replicas_are_counted() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\nslave0:ip=…\r\n";
        assert_eq!(connected_replicas(info), 2);
        assert_eq!(connected_replicas("role:master\r\n"), 0);
    }
}
