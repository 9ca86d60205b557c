//! Test support: real `miroir-testnode` and `miroir-admin` processes started by the workspace
//! test kit (`miroir-testkit`), this suite's config and keys, and its request vocabulary
//! (nodes over TCP, the admin's control socket over a Unix socket).
#![allow(dead_code)]

use miroir_testkit::process::log_len;
use miroir_testkit::{within, Client, NodeSpec, Proc};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use miroir_testkit::{Response as Resp, TestNode};

pub const MASTER_KEY: &str = "test-master-key-0123456789";
pub const ADMIN_KEY: &str = "test-admin-key";

/// A `miroir-testnode` with fault injection and the master key; database in `db`, log beside.
pub fn start_testnode(db: &Path) -> TestNode {
    let name = db.file_name().unwrap().to_string_lossy();
    TestNode::start(NodeSpec::in_dir(db.parent().unwrap(), &name, MASTER_KEY))
}

pub struct AdminProc {
    pub proc: Proc,
    pub url: String,
    pub socket: PathBuf,
}

/// Starts `miroir-admin` on `config` (log `admin.log` beside it, appended across restarts)
/// and waits until it says where its REST API and control socket are.
pub fn start_admin(config: &Path) -> AdminProc {
    let log = config.parent().unwrap().join("admin.log");
    let offset = log_len(&log);
    let mut cmd = std::process::Command::new(miroir_testkit::bin("miroir-admin"));
    cmd.arg("--config").arg(config).env("RUST_LOG", "warn");
    let mut proc = Proc::spawn("miroir-admin", &mut cmd, log);
    let deadline = within(Duration::from_secs(60));
    let url = proc.wait_for_line_after(offset, "admin listening on ", deadline);
    let socket = proc.wait_for_line_after(offset, "control socket at ", deadline);
    AdminProc {
        proc,
        url,
        socket: PathBuf::from(socket),
    }
}

/// Writes a config for `nodes` under `dir`.
pub fn write_config(dir: &Path, nodes: &[&TestNode], shards: u32, extra_yaml: &str) -> PathBuf {
    let mut yaml = format!(
        "master_key: {MASTER_KEY}\nshards: {shards}\nreplication_factor: 1\nreplica_groups: 1\ndata_dir: {}\nadmin:\n  api_key: {ADMIN_KEY}\n  bind: 127.0.0.1\n  port: 0\nhealth:\n  interval_ms: 100\n  timeout_ms: 1000\n  unhealthy_threshold: 2\n  recovery_threshold: 1\nnodes:\n",
        dir.join("data").display()
    );
    for (i, n) in nodes.iter().enumerate() {
        yaml.push_str(&format!("  - id: meili-{i}\n    address: {}\n", n.url()));
    }
    yaml.push_str(extra_yaml);
    let path = dir.join("miroir.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// A request over TCP to `base` (`http://host:port`).
pub fn http(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Resp {
    with_headers(Client::tcp(base), headers).call(method, path, body)
}

fn with_headers(client: Client, headers: &[(&str, &str)]) -> Client {
    headers.iter().fold(client, |c, (n, v)| c.header(n, v))
}

/// A request to a test node with the master key.
pub fn node(base: &str, method: &str, path: &str, body: Option<&Value>) -> Resp {
    Client::tcp(base)
        .bearer(MASTER_KEY)
        .call(method, path, body)
}

/// A request over the control socket, as the data plane sends it.
pub fn control(socket: &Path, method: &str, path: &str, body: Option<&Value>) -> Resp {
    control_as(socket, "master", method, path, body)
}

/// The control socket's client on behalf of a principal (`master` or `key:<uid>`).
fn control_client(socket: &Path, principal: &str) -> Client {
    Client::unix(socket)
        .header("Miroir-Control-Version", "1")
        .header("Miroir-Principal", principal)
}

/// A control request on behalf of a principal (`master` or `key:<uid>`).
pub fn control_as(
    socket: &Path,
    principal: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Resp {
    control_client(socket, principal).call(method, path, body)
}

/// Polls `f` until it returns `Some` (or panics after 60 s: a hang, not a timing assertion).
pub fn eventually<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    miroir_testkit::wait_until(within(Duration::from_secs(60)), what, f)
}

/// Polls a Miroir task (over the control socket) until it is terminal; returns it.
pub fn wait_miroir_task(socket: &Path, uid: u64) -> Value {
    miroir_testkit::wait_task(&control_client(socket, "master"), uid)
}

/// Polls a node task until it is terminal.
pub fn wait_node_task(base: &str, uid: u64) -> Value {
    miroir_testkit::wait_task(&Client::tcp(base).bearer(MASTER_KEY), uid)
}

pub fn tempdir() -> miroir_testkit::TempDir {
    miroir_testkit::temp_dir("admin")
}
