//! The one test kit of the workspace's suites: a blocking HTTP/1.1 client over TCP and Unix
//! sockets ([`http`]), child processes killed on drop with their output in a log file
//! ([`process`]), free loopback ports ([`net`]), polling with deadlines ([`poll`]), the
//! binaries cargo built ([`bins`]) and fixtures that start them: test nodes ([`node`]), a
//! Miroir cluster over test nodes ([`cluster`]) and `redis-server` ([`redis`]); tenant tokens
//! ([`token`]).
//!
//! It links no Miroir crate, so the test node's suite (which must stay independent of the
//! core) uses it as every other suite does. See docs/decisions/011-test-kit.md.

pub mod bins;
pub mod cluster;
pub mod http;
pub mod net;
pub mod node;
pub mod poll;
pub mod process;
pub mod redis;
pub mod token;

pub use bins::bin;
pub use cluster::{Cluster, ClusterSpec, Health, Host, Launch};
pub use http::{read_request, Client, Response, ServedRequest};
pub use net::{free_addr, free_port};
pub use node::{NodeSpec, TestNode};
pub use poll::{try_wait_until, wait_until, within};
pub use process::Proc;
pub use redis::Redis;
pub use tempfile::TempDir;
pub use token::tenant_token;

/// A temporary directory removed on drop ([`tempfile::TempDir`]), prefixed `miroir-<tag>-`.
pub fn temp_dir(tag: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("miroir-{tag}-"))
        .tempdir()
        .expect("creating a temporary directory")
}

/// Keeps `dir` when the current thread is panicking (and says where it is), removes it
/// otherwise: a failed test leaves its logs and databases for inspection.
pub fn keep_if_panicking(dir: TempDir) {
    if std::thread::panicking() {
        let path = dir.keep();
        eprintln!("test files kept for inspection in {}", path.display());
    }
}

/// The numeric `id`s of a search answer's hits, sorted (tests compare hit sets).
pub fn hit_ids(answer: &serde_json::Value) -> Vec<u64> {
    let mut ids: Vec<u64> = answer["hits"]
        .as_array()
        .expect("an answer with hits")
        .iter()
        .map(|h| h["id"].as_u64().expect("a numeric id"))
        .collect();
    ids.sort_unstable();
    ids
}

/// Polls `GET /tasks/{uid}` through `client` until the task is `succeeded`, `failed` or
/// `canceled` (answers other than 200 and refused connections are polled again); returns the
/// task. Panics with the last answer after 120 s.
pub fn wait_task(client: &Client, uid: u64) -> serde_json::Value {
    let mut last = String::new();
    try_wait_until(within(std::time::Duration::from_secs(120)), || {
        let r = client.get(&format!("/tasks/{uid}")).ok()?;
        last = r.text();
        if r.status != 200 {
            return None;
        }
        let t = r.json();
        matches!(
            t["status"].as_str(),
            Some("succeeded" | "failed" | "canceled")
        )
        .then_some(t)
    })
    .unwrap_or_else(|| panic!("task {uid} not terminal in time; last answer: {last}"))
}
