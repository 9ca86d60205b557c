//! Test nodes: `miroir-testnode` (or the real Meilisearch) as a child process.

use crate::http::Client;
use crate::poll::{wait_until, within};
use crate::process::{log_len, Proc};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How to start a [`TestNode`]. `Default` is a `miroir-testnode` on a port of its choosing,
/// without master key, database directory or fault injection.
#[derive(Debug, Clone, Default)]
pub struct NodeSpec {
    /// Names the node in messages and its log file (`<name>.log`); `testnode` when empty.
    pub name: String,
    /// `--db-path`.
    pub db: Option<PathBuf>,
    /// `--master-key`.
    pub master_key: Option<String>,
    /// `--faults` (the test node's fault-injection routes).
    pub faults: bool,
    /// `--http-addr`; `127.0.0.1:0` (the node picks and prints its port) when `None`.
    pub addr: Option<SocketAddr>,
    /// More arguments.
    pub args: Vec<String>,
    /// Directory of the log file; a temporary directory owned by the node when `None` (kept
    /// when the test fails).
    pub log_dir: Option<PathBuf>,
    /// The real Meilisearch binary to run instead of `miroir-testnode` (it does not print its
    /// address, so a free port is chosen up front and `/health` polled).
    pub meilisearch: Option<PathBuf>,
}

impl NodeSpec {
    /// A test node with fault injection named `name`, holding `master_key`, with its database
    /// (`dir/<name>`) and log (`dir/<name>.log`) in `dir`.
    pub fn in_dir(dir: &Path, name: &str, master_key: &str) -> NodeSpec {
        NodeSpec {
            name: name.into(),
            db: Some(dir.join(name)),
            master_key: Some(master_key.into()),
            faults: true,
            log_dir: Some(dir.to_path_buf()),
            ..NodeSpec::default()
        }
    }
}

/// A running node. `MEILI_*` variables of the test's environment are not passed on: the
/// node's configuration is exactly its [`NodeSpec`].
pub struct TestNode {
    pub proc: Option<Proc>,
    pub addr: SocketAddr,
    pub spec: NodeSpec,
    log: PathBuf,
    _log_dir: Option<tempfile::TempDir>,
}

impl TestNode {
    pub fn start(spec: NodeSpec) -> TestNode {
        let (log_dir, owned) = match &spec.log_dir {
            Some(d) => {
                std::fs::create_dir_all(d).expect("creating the log directory");
                (d.clone(), None)
            }
            None => {
                let t = crate::temp_dir("node");
                (t.path().to_path_buf(), Some(t))
            }
        };
        let name = if spec.name.is_empty() {
            "testnode"
        } else {
            &spec.name
        };
        let log = log_dir.join(format!("{name}.log"));
        let mut node = TestNode {
            proc: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            spec,
            log,
            _log_dir: owned,
        };
        node.spawn(node.spec.addr);
        node
    }

    fn name(&self) -> String {
        if self.spec.name.is_empty() {
            "testnode".into()
        } else {
            self.spec.name.clone()
        }
    }

    fn spawn(&mut self, addr: Option<SocketAddr>) {
        let s = &self.spec;
        let real = s.meilisearch.is_some();
        // The real Meilisearch does not print its address: choose it up front.
        let addr = addr.or_else(|| real.then(crate::net::free_addr));
        let mut cmd = match &s.meilisearch {
            Some(meili) => {
                let mut c = Command::new(meili);
                c.args(["--no-analytics", "--log-level", "WARN"]);
                if let Some(db) = &s.db {
                    // Dumps and snapshots inside the node's directory, not the test's cwd.
                    c.arg("--dump-dir")
                        .arg(db.join("dumps"))
                        .arg("--snapshot-dir")
                        .arg(db.join("snapshots"));
                }
                c
            }
            None => {
                let mut c = Command::new(crate::bin("miroir-testnode"));
                if s.faults {
                    c.arg("--faults");
                }
                c
            }
        };
        let http_addr = addr.map_or("127.0.0.1:0".to_string(), |a| a.to_string());
        cmd.arg("--http-addr").arg(&http_addr);
        if let Some(k) = &s.master_key {
            cmd.arg("--master-key").arg(k);
        }
        if let Some(db) = &s.db {
            cmd.arg("--db-path").arg(db);
        }
        cmd.args(&s.args)
            .env_remove("MEILI_MASTER_KEY")
            .env_remove("MEILI_DB_PATH")
            .env_remove("MEILI_HTTP_ADDR");
        let offset = log_len(&self.log);
        let mut proc = Proc::spawn(&self.name(), &mut cmd, &self.log);
        self.addr = match (real, addr) {
            (true, Some(a)) => {
                let client = Client::tcp(a).timeout(Duration::from_secs(5));
                wait_until(
                    within(Duration::from_secs(30)),
                    &format!("{a} healthy"),
                    || {
                        proc.assert_running();
                        client.get("/health").is_ok_and(|r| r.status == 200)
                    },
                );
                a
            }
            _ => proc
                .wait_for_line_after(
                    offset,
                    "listening on http://",
                    within(Duration::from_secs(30)),
                )
                .parse()
                .expect("the test node's address"),
        };
        self.proc = Some(proc);
    }

    /// `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client holding the node's master key (if any).
    pub fn http(&self) -> Client {
        let c = Client::tcp(self.addr);
        match &self.spec.master_key {
            Some(k) => c.bearer(k),
            None => c,
        }
    }

    /// A request with the master key and an optional JSON body; panics without a response.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> crate::Response {
        self.http().call(method, path, body)
    }

    /// Polls the node's `GET /tasks/{uid}` until the task is terminal; returns it.
    pub fn wait_task(&self, uid: u64) -> serde_json::Value {
        crate::wait_task(&self.http(), uid)
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::id)
    }

    /// `kill -9` (like a crash; connections are refused afterwards).
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Starts a killed node again on the same address, database and arguments.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn(Some(self.addr));
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill();
        if let Some(d) = self._log_dir.take() {
            crate::keep_if_panicking(d);
        }
    }
}
