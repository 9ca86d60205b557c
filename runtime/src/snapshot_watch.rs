//! Getting the admin's [`Snapshot`] to every core without locks on the request path, and
//! telling the admin which generation this process serves (docs/internals/control-protocol.md).
//!
//! - One background std thread ([`spawn_watcher`]) looks at the LMDB snapshot store when the
//!   admin commits to it ([`changes`]: an inotify watch, then every 1 ms for 20 ms since LMDB
//!   makes a commit visible just after its last write; and every 50 ms in case the file
//!   system does not report writes; every 5 ms where inotify is unavailable). When the
//!   generation changed it decodes the snapshot once and publishes it in [`SnapshotShared`]:
//!   an `ArcSwapOption` plus an `AtomicU64` generation.
//! - Each core owns a [`SnapshotHandle`]: [`SnapshotHandle::current`] costs one atomic load
//!   (the generation) when nothing changed; on a change the core clones the snapshot into its
//!   own `Rc` once, so afterwards requests share it with non-atomic reference counts (no cache
//!   line bouncing between cores).
//! - The same thread sends the heartbeat (`POST /_internal/v1/heartbeat`) every 500 ms over
//!   the control socket with a tiny blocking HTTP/1.1 exchange; the admin being down only
//!   costs a failed `connect`.
//!
//! The generation reported is the one published to the cores: any request that starts after
//! the heartbeat routes with it or a newer one. (A request already in flight with the previous
//! snapshot can still finish with it; the admin's barrier waits a heartbeat interval anyway.)

use arc_swap::ArcSwapOption;
use miroir_core::control::{
    Applied, ControlMessage, Endpoint, Heartbeat, CONTROL_VERSION, VERSION_HEADER,
};
use miroir_core::snapshot::Snapshot;
use miroir_core::snapshot_store::SnapshotStore;
use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub mod changes;

use changes::StoreChanges;

/// Poll period of the snapshot store where its directory cannot be watched.
pub const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// With a watch, the store is still read this often, in case a write was not reported.
/// Idle, that is 20 wake-ups a second instead of 200 (decision 053).
pub const WATCHED_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// After a reported write the store is read every [`SETTLE_POLL_INTERVAL`] for this long:
/// LMDB makes a commit visible to readers (the transaction id in the lock file's shared
/// memory) just *after* its last `pwrite`, and that step raises no event (decision 053).
pub const SETTLE_FOR: Duration = Duration::from_millis(20);
pub const SETTLE_POLL_INTERVAL: Duration = Duration::from_millis(1);
/// Heartbeat period (the admin declares a data plane dead after 5 s without one).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);

/// The process-wide published snapshot.
#[derive(Default)]
pub struct SnapshotShared {
    /// `0` until a first snapshot was published.
    generation: AtomicU64,
    current: ArcSwapOption<Snapshot>,
}

impl SnapshotShared {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Publishes `snap` (its `generation` field is the generation cores compare). Stored
    /// before the generation is bumped, so a core that sees the new generation finds the
    /// new snapshot.
    pub fn publish(&self, snap: Snapshot) {
        let generation = snap.generation;
        self.current.store(Some(Arc::new(snap)));
        self.generation.store(generation, Ordering::Release);
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn load(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    /// The generation and epoch published to the cores (what the heartbeat acknowledges).
    pub fn applied(&self) -> Applied {
        Applied {
            generation: self.generation(),
            epoch: self.load().map_or(0, |s| s.epoch),
        }
    }
}

/// A core's view of the snapshot. `!Send`; one per core.
pub struct SnapshotHandle {
    shared: Arc<SnapshotShared>,
    cached: RefCell<(u64, Option<Rc<Snapshot>>)>,
}

impl SnapshotHandle {
    pub fn new(shared: Arc<SnapshotShared>) -> Self {
        SnapshotHandle {
            shared,
            cached: RefCell::new((0, None)),
        }
    }

    /// The current snapshot, `None` until the admin published a first one (the proxy then
    /// answers `503 miroir_admin_unavailable` on every route but `/health`).
    pub fn current(&self) -> Option<Rc<Snapshot>> {
        let generation = self.shared.generation();
        let mut cached = self.cached.borrow_mut();
        if cached.0 != generation {
            // Deep copy once per generation per core: generations change rarely, requests are
            // many, and an `Rc` keeps the per-request clone core-local.
            let fresh = self.shared.load().map(|s| Rc::new(Snapshot::clone(&s)));
            *cached = (generation, fresh);
        }
        cached.1.clone()
    }

    /// Generation of the snapshot this core holds (0 = none).
    pub fn generation(&self) -> u64 {
        self.cached.borrow().0
    }
}

/// The watcher thread's parameters.
#[derive(Debug, Clone)]
pub struct WatcherConfig {
    /// `{data_dir}/snapshot`.
    pub snapshot_dir: PathBuf,
    /// `admin.control_socket` or `{data_dir}/control.sock`.
    pub control_socket: PathBuf,
    /// `<hostname>:<pid>`.
    pub dataplane_id: String,
}

impl WatcherConfig {
    pub fn from_config(c: &miroir_core::config::Config) -> Self {
        WatcherConfig {
            snapshot_dir: c.snapshot_path(),
            control_socket: c.control_socket_path(),
            dataplane_id: format!("{}:{}", hostname(), std::process::id()),
        }
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Handle on the watcher thread.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the watcher thread: polls the store, publishes into `shared`, heartbeats.
pub fn spawn_watcher(cfg: WatcherConfig, shared: Arc<SnapshotShared>) -> std::io::Result<Watcher> {
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let thread = std::thread::Builder::new()
        .name("miroir-snapshot".into())
        .spawn(move || watch_loop(cfg, shared, stop2))?;
    Ok(Watcher {
        stop,
        thread: Some(thread),
    })
}

fn watch_loop(cfg: WatcherConfig, shared: Arc<SnapshotShared>, stop: Arc<AtomicBool>) {
    let mut store: Option<SnapshotStore> = None;
    let mut changes: Option<StoreChanges> = None;
    // Until when the store is read every SETTLE_POLL_INTERVAL (after a reported write).
    let mut settle_until = Instant::now();
    let mut last_open_attempt: Option<Instant> = None;
    let mut last_error_log: Option<Instant> = None;
    let mut next_heartbeat = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // The admin creates the environment; until it exists, retry opening once a second
        // rather than creating an empty one ourselves from a stale path.
        if store.is_none()
            && last_open_attempt.is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            last_open_attempt = Some(Instant::now());
            if cfg.snapshot_dir.join("data.mdb").exists() {
                match SnapshotStore::open(&cfg.snapshot_dir) {
                    Ok(s) => {
                        store = Some(s);
                        changes = watch_store(&cfg.snapshot_dir);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, dir = %cfg.snapshot_dir.display(), "cannot open snapshot store")
                    }
                }
            }
        }
        if let Some(s) = &store {
            match poll_once(s, &shared) {
                // Acknowledge a new generation at once: the admin answers the client that
                // changed a key, an index or a setting only when every data plane serves it.
                Ok(true) => next_heartbeat = Instant::now(),
                Ok(false) => {}
                Err(e) => {
                    if last_error_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                        last_error_log = Some(Instant::now());
                        tracing::error!(error = %e, "snapshot poll failed; keeping the previous snapshot");
                    }
                }
            }
        }
        if Instant::now() >= next_heartbeat {
            next_heartbeat = Instant::now() + HEARTBEAT_INTERVAL;
            let body = heartbeat_body(&cfg.dataplane_id, std::process::id(), shared.applied());
            if let Err(e) = send_heartbeat(&cfg.control_socket, &body) {
                tracing::debug!(error = %e, "heartbeat not delivered");
            }
        }
        let Some(c) = &changes else {
            std::thread::sleep(POLL_INTERVAL);
            continue;
        };
        let now = Instant::now();
        let period = if now < settle_until {
            SETTLE_POLL_INTERVAL
        } else {
            WATCHED_POLL_INTERVAL
        };
        match c.wait(period.min(next_heartbeat.saturating_duration_since(now))) {
            Ok(true) => settle_until = Instant::now() + SETTLE_FOR,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "snapshot store watch failed; polling every {POLL_INTERVAL:?}");
                changes = None;
            }
        }
    }
}

/// The inotify watch on the store's directory, or `None` (polled every [`POLL_INTERVAL`]).
fn watch_store(dir: &Path) -> Option<StoreChanges> {
    StoreChanges::watch(dir)
        .inspect_err(|e| {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the snapshot store; polling every {POLL_INTERVAL:?}")
        })
        .ok()
}

/// Publishes the store's snapshot when its generation differs from the published one.
/// Returns whether something new was published.
pub fn poll_once(
    store: &SnapshotStore,
    shared: &SnapshotShared,
) -> Result<bool, miroir_core::snapshot_store::SnapshotStoreError> {
    let generation = store.generation()?;
    if generation == shared.generation() {
        return Ok(false);
    }
    match store.load()? {
        Some(snap) => {
            tracing::info!(
                generation = snap.generation,
                epoch = snap.epoch,
                "snapshot applied"
            );
            shared.publish(snap);
            Ok(true)
        }
        None => Ok(false),
    }
}

/// The heartbeat JSON of control-protocol §2.2.
pub fn heartbeat_body(dataplane: &str, pid: u32, applied: Applied) -> Vec<u8> {
    Heartbeat {
        dataplane: dataplane.to_owned(),
        pid,
        applied,
    }
    .encode()
}

/// One blocking HTTP/1.1 exchange over the control socket; succeeds on a 2xx answer.
pub fn send_heartbeat(socket: &Path, body: &[u8]) -> std::io::Result<()> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_millis(250)))?;
    s.set_write_timeout(Some(Duration::from_millis(250)))?;
    let endpoint = Endpoint::Heartbeat;
    let mut req = format!(
        "{} {} HTTP/1.1\r\nhost: miroir-admin\r\n{VERSION_HEADER}: {CONTROL_VERSION}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        endpoint.method(),
        endpoint.path(),
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    s.write_all(&req)?;
    // Only the status line matters: read until it is complete.
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < head.len() {
        let r = s.read(&mut head[n..])?;
        if r == 0 {
            break;
        }
        n += r;
        if head[..n].contains(&b'\n') {
            break;
        }
    }
    let line = &head[..n];
    let ok = line.starts_with(b"HTTP/1.") && line.len() >= 12 && line[9] == b'2';
    if ok {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "heartbeat refused: {}",
            String::from_utf8_lossy(line).trim_end()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_follows_generations_and_caches_per_core() {
        let shared = SnapshotShared::new();
        let h = SnapshotHandle::new(shared.clone());
        assert!(h.current().is_none());
        shared.publish(Snapshot {
            generation: 1,
            epoch: 7,
            ..Default::default()
        });
        let a = h.current().unwrap();
        assert_eq!((a.generation, a.epoch), (1, 7));
        let b = h.current().unwrap();
        assert!(
            Rc::ptr_eq(&a, &b),
            "same generation must reuse the cached Rc"
        );
        shared.publish(Snapshot {
            generation: 2,
            epoch: 8,
            ..Default::default()
        });
        assert_eq!(h.current().unwrap().epoch, 8);
        assert_eq!(h.generation(), 2);
    }

    #[test]
    fn polls_the_lmdb_store() {
        let dir = std::env::temp_dir().join(format!("miroir-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = SnapshotStore::open(&dir).unwrap();
        let shared = SnapshotShared::new();
        assert!(!poll_once(&store, &shared).unwrap());
        store
            .publish(&Snapshot {
                epoch: 3,
                ..Default::default()
            })
            .unwrap();
        assert!(poll_once(&store, &shared).unwrap());
        assert!(!poll_once(&store, &shared).unwrap());
        assert_eq!(shared.generation(), 1);
        assert_eq!(shared.load().unwrap().epoch, 3);
        assert_eq!(
            shared.applied(),
            Applied {
                generation: 1,
                epoch: 3
            }
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn heartbeat_over_a_unix_socket() {
        let path = std::env::temp_dir().join(format!("miroir-hb-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") || !got.ends_with(b"}") {
                let n = c.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            c.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
            String::from_utf8(got).unwrap()
        });
        let applied = Applied {
            generation: 42,
            epoch: 7,
        };
        let body = heartbeat_body("host:1", 1, applied);
        send_heartbeat(&path, &body).unwrap();
        let req = server.join().unwrap();
        assert!(req.starts_with("POST /_internal/v1/heartbeat HTTP/1.1\r\n"));
        assert!(req.contains("miroir-control-version: 1\r\n"));
        // Compared as JSON: key order depends on serde_json's `preserve_order` feature.
        let (_, sent) = req.split_once("\r\n\r\n").expect("a head and a body");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(sent).unwrap(),
            serde_json::json!({"dataplane": "host:1", "pid": 1, "generation": 42, "epoch": 7}),
            "{req}"
        );
        // The admin's decoding (`routes::heartbeat`).
        let hb = Heartbeat::decode(sent.as_bytes()).unwrap();
        assert_eq!(
            (hb.dataplane.as_str(), hb.pid, hb.applied),
            ("host:1", 1, applied)
        );
        let _ = std::fs::remove_file(&path);
        assert!(send_heartbeat(&path, &body).is_err());
    }
}
