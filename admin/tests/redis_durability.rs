//! The admin refuses a Redis task store that would lose acknowledged tasks (no append-only
//! file), with a message saying what to change; `task_store.redis_persistence: warn` starts it
//! anyway with a warning; a persistent Redis is accepted.

mod admin_common;

use admin_common::*;
use miroir_testkit::{Proc, Redis};

/// A config over one test node with the Redis task store; the node lives as long as the
/// returned handle.
fn redis_config(
    dir: &std::path::Path,
    redis: &Redis,
    policy: Option<&str>,
) -> (miroir_testkit::TestNode, std::path::PathBuf) {
    let node = start_testnode(&dir.join("node"));
    let policy = policy
        .map(|p| format!("  redis_persistence: {p}\n"))
        .unwrap_or_default();
    let extra = format!(
        "task_store:\n  backend: redis\n  url: \"{}\"\n{policy}",
        redis.url()
    );
    let config = write_config(dir, &[&node], 8, &extra);
    (node, config)
}

#[test]
fn a_redis_without_persistence_is_refused_with_what_to_change() {
    let dir = tempdir();
    let redis = Redis::start_volatile();
    let (_node, config) = redis_config(dir.path(), &redis, None);
    let mut cmd = std::process::Command::new(miroir_testkit::bin("miroir-admin"));
    cmd.arg("--config").arg(&config).env("RUST_LOG", "warn");
    let mut proc = Proc::spawn("miroir-admin", &mut cmd, dir.path().join("admin.log"));
    let status = proc.wait();
    assert!(!status.success(), "it started: {}", proc.log());
    let log = proc.log();
    assert!(log.contains("appendonly yes"), "{log}");
    assert!(log.contains("redis_persistence: warn"), "{log}");
}

#[test]
fn warn_starts_anyway_and_says_so() {
    let dir = tempdir();
    let redis = Redis::start_volatile();
    let (_node, config) = redis_config(dir.path(), &redis, Some("warn"));
    let admin = start_admin(&config);
    let log = admin.proc.log();
    assert!(log.contains("appendonly no"), "{log}");
}

#[test]
fn a_persistent_redis_is_accepted() {
    let dir = tempdir();
    let redis = Redis::start();
    let (_node, config) = redis_config(dir.path(), &redis, None);
    let admin = start_admin(&config);
    assert!(
        !admin.proc.log().contains("appendonly"),
        "{}",
        admin.proc.log()
    );
}
