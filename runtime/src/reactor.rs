//! Thread-per-core reactors: N threads, each pinned to a core, each running its own monoio
//! runtime with its own `SO_REUSEPORT` listener, upstream pools, metrics and snapshot view.
//! Nothing on the request path crosses cores.
//!
//! I/O backend: `server.io` decides, explicitly — `io_uring` (IoUringDriver; fails at start if
//! the kernel or seccomp forbids it), `epoll` (LegacyDriver), or `auto`: io_uring when
//! `monoio::utils::detect_uring()` says every needed opcode is available and
//! `MONOIO_FORCE_LEGACY_DRIVER=1` is not set, epoll otherwise. The choice is logged and
//! exported as `miroir_io_backend{backend=…} 1`.
//!
//! Listeners are bound by [`start`] on the calling thread (so a bind error is reported before
//! any reactor runs, and port 0 resolves to one port shared by every core), then handed to the
//! reactors.
//!
//! Shutdown: [`ShutdownTrigger::trigger`] (from SIGTERM/SIGINT via [`spawn_signal_thread`], or
//! a test) makes every reactor stop accepting, lets in-flight requests finish (their responses
//! say `connection: close`; idle keep-alive connections close at once) up to
//! `server.shutdown_grace_ms`, then return.

use crate::http::client::ClientSettings;
use crate::http::server::{Handler, ServerCore, ServerSettings};
pub use crate::http::shutdown::{Shutdown, ShutdownWait};
use crate::metrics::{CoreMetrics, MetricsHandler, MetricsRegistry};
use crate::snapshot_watch::{SnapshotHandle, SnapshotShared};
use miroir_core::config::{Config, IoBackend};
use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The per-core upstream client as the reactor builds it: recording into this core's
/// [`CoreMetrics`] (statically dispatched; `http/` knows only its `ClientMetrics` trait).
pub type UpstreamClient = crate::http::client::UpstreamClient<CoreMetrics>;

/// Everything a handler factory gets to build its per-core handler.
pub struct CoreContext {
    pub core_id: usize,
    /// This core's upstream client (keep-alive pools to nodes and the admin socket).
    pub client: Rc<UpstreamClient>,
    /// This core's view of the admin's snapshot.
    pub snapshot: Rc<SnapshotHandle>,
    /// This core's metrics; `metrics.render_prometheus()` renders the whole process.
    pub metrics: Rc<CoreMetrics>,
    pub config: Arc<Config>,
    pub io_backend: IoBackendKind,
    /// Set once shutdown started (e.g. to stop background loops a handler spawned).
    pub shutdown: Shutdown,
}

/// The I/O backend actually in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoBackendKind {
    IoUring,
    Epoll,
}

impl IoBackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IoBackendKind::IoUring => "io_uring",
            IoBackendKind::Epoll => "epoll",
        }
    }
}

/// Resolves `server.io` (and `MONOIO_FORCE_LEGACY_DRIVER`) to one backend.
pub fn choose_backend(configured: IoBackend) -> Result<IoBackendKind, ReactorError> {
    let forced_legacy = std::env::var("MONOIO_FORCE_LEGACY_DRIVER")
        .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"));
    match configured {
        IoBackend::Epoll => Ok(IoBackendKind::Epoll),
        IoBackend::Auto if forced_legacy => Ok(IoBackendKind::Epoll),
        IoBackend::Auto => Ok(if monoio::utils::detect_uring() {
            IoBackendKind::IoUring
        } else {
            IoBackendKind::Epoll
        }),
        IoBackend::IoUring if forced_legacy => Err(ReactorError::Config(
            "server.io is io_uring but MONOIO_FORCE_LEGACY_DRIVER is set".into(),
        )),
        IoBackend::IoUring if !monoio::utils::detect_uring() => Err(ReactorError::Config(
            "server.io is io_uring but this kernel (or its seccomp profile) does not allow it; use `epoll` or `auto`".into(),
        )),
        IoBackend::IoUring => Ok(IoBackendKind::IoUring),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReactorError {
    #[error("invalid server configuration: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start reactor {core}: {source}")]
    Runtime { core: usize, source: std::io::Error },
    #[error("reactor {0} panicked")]
    Panicked(usize),
}

/// Process-wide shutdown flag that can be triggered from any thread.
#[derive(Clone, Default)]
pub struct ShutdownTrigger(Arc<TriggerInner>);

#[derive(Default)]
struct TriggerInner {
    set: AtomicBool,
    /// One waker per reactor (its bridge task), so this never grows with connections.
    wakers: Mutex<Vec<Waker>>,
}

impl ShutdownTrigger {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn trigger(&self) {
        self.0.set.store(true, Ordering::Release);
        let wakers = std::mem::take(&mut *self.0.wakers.lock().unwrap_or_else(|e| e.into_inner()));
        for w in wakers {
            w.wake();
        }
    }

    pub fn is_set(&self) -> bool {
        self.0.set.load(Ordering::Acquire)
    }

    /// Resolves once triggered (wakes a monoio task from another thread: feature `sync`).
    pub fn wait(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.is_set() {
                return Poll::Ready(());
            }
            {
                let mut w = self.0.wakers.lock().unwrap_or_else(|e| e.into_inner());
                if !w.iter().any(|x| x.will_wake(cx.waker())) {
                    w.push(cx.waker().clone());
                }
            }
            if self.is_set() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

/// A running data plane.
pub struct ServerHandle {
    /// The address every core listens on (port resolved when configured as 0).
    pub addr: SocketAddr,
    /// The metrics listener (core 0), when `server.metrics_port` is set.
    pub metrics_addr: Option<SocketAddr>,
    pub io_backend: IoBackendKind,
    pub registry: Arc<MetricsRegistry>,
    trigger: ShutdownTrigger,
    threads: Vec<JoinHandle<Result<(), ReactorError>>>,
}

impl ServerHandle {
    pub fn trigger(&self) -> ShutdownTrigger {
        self.trigger.clone()
    }

    /// Starts the graceful shutdown (returns at once; see [`ServerHandle::join`]).
    pub fn shutdown(&self) {
        self.trigger.trigger();
    }

    /// Waits for every reactor to finish.
    pub fn join(self) -> Result<(), ReactorError> {
        let mut result = Ok(());
        for (i, t) in self.threads.into_iter().enumerate() {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(_) => result = Err(ReactorError::Panicked(i)),
            }
        }
        result
    }
}

fn bind_reuseport(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

fn listen_addr(bind: &str, port: u16) -> Result<SocketAddr, ReactorError> {
    let ip: IpAddr = bind
        .trim_matches(|c| c == '[' || c == ']')
        .parse()
        .map_err(|_| {
            ReactorError::Config(format!("server.bind must be an IP address, got {bind:?}"))
        })?;
    Ok(SocketAddr::new(ip, port))
}

/// Starts `server.workers` reactors serving `factory`'s handlers. Binds first (errors come
/// back here), then spawns the reactor threads and returns.
pub fn start<H, F>(
    config: Arc<Config>,
    snapshots: Arc<SnapshotShared>,
    trigger: ShutdownTrigger,
    factory: F,
) -> Result<ServerHandle, ReactorError>
where
    H: Handler + 'static,
    F: Fn(CoreContext) -> H + Send + Sync + 'static,
{
    let s = &config.server;
    let workers = s
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if workers == 0 {
        return Err(ReactorError::Config(
            "server.workers must be at least 1".into(),
        ));
    }
    let backend = choose_backend(s.io)?;
    let addr = listen_addr(&s.bind, s.port)?;
    let first = bind_reuseport(addr).map_err(|source| ReactorError::Bind { addr, source })?;
    let addr = first
        .local_addr()
        .map_err(|source| ReactorError::Bind { addr, source })?;
    let mut listeners = vec![first];
    for _ in 1..workers {
        listeners.push(bind_reuseport(addr).map_err(|source| ReactorError::Bind { addr, source })?);
    }
    let metrics_listener = match s.metrics_port {
        Some(p) => {
            let maddr = listen_addr(&s.bind, p)?;
            let l = std::net::TcpListener::bind(maddr).map_err(|source| ReactorError::Bind {
                addr: maddr,
                source,
            })?;
            l.set_nonblocking(true)
                .map_err(|source| ReactorError::Bind {
                    addr: maddr,
                    source,
                })?;
            Some(l)
        }
        None => None,
    };
    let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());

    let registry = MetricsRegistry::new(workers, backend.as_str());
    // Pin only when each reactor can have a core of its own; otherwise let the kernel place.
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let pin = workers <= cores.len();
    tracing::info!(%addr, workers, io_backend = backend.as_str(), pinned = pin, "data plane listening");

    let factory = Arc::new(factory);
    let mut threads = Vec::with_capacity(workers);
    let mut metrics_listener = metrics_listener;
    for (core_id, listener) in listeners.into_iter().enumerate() {
        let cpu = if pin { Some(cores[core_id]) } else { None };
        let spec = ReactorSpec {
            core_id,
            cpu,
            listener,
            metrics_listener: if core_id == 0 {
                metrics_listener.take()
            } else {
                None
            },
            config: config.clone(),
            snapshots: snapshots.clone(),
            registry: registry.clone(),
            trigger: trigger.clone(),
            backend,
        };
        let factory = factory.clone();
        let t = std::thread::Builder::new()
            .name(format!("miroir-core-{core_id}"))
            .spawn(move || run_reactor(spec, factory))
            .map_err(|source| ReactorError::Runtime {
                core: core_id,
                source,
            })?;
        threads.push(t);
    }
    Ok(ServerHandle {
        addr,
        metrics_addr,
        io_backend: backend,
        registry,
        trigger,
        threads,
    })
}

struct ReactorSpec {
    core_id: usize,
    cpu: Option<core_affinity::CoreId>,
    listener: std::net::TcpListener,
    metrics_listener: Option<std::net::TcpListener>,
    config: Arc<Config>,
    snapshots: Arc<SnapshotShared>,
    registry: Arc<MetricsRegistry>,
    trigger: ShutdownTrigger,
    backend: IoBackendKind,
}

fn run_reactor<H, F>(spec: ReactorSpec, factory: Arc<F>) -> Result<(), ReactorError>
where
    H: Handler + 'static,
    F: Fn(CoreContext) -> H + Send + Sync + 'static,
{
    if let Some(cpu) = spec.cpu {
        if !core_affinity::set_for_current(cpu) {
            tracing::warn!(core = spec.core_id, "could not pin reactor thread");
        }
    }
    let core = spec.core_id;
    let backend = spec.backend;
    let trigger = spec.trigger.clone();
    // A panic outside a handler (handlers are caught per request) would be a transport bug.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        block_on(backend, reactor_main(spec, factory))
    }))
    .map_err(|_| ReactorError::Panicked(core))
    .and_then(|r| r.map_err(|source| ReactorError::Runtime { core, source }))
    .and_then(|r| r);
    if let Err(e) = &result {
        // One core down means a degraded process: stop them all and let the supervisor
        // restart it, rather than serve on fewer cores silently.
        tracing::error!(core, error = %e, "reactor failed; shutting the data plane down");
        trigger.trigger();
    }
    result
}

/// Runs `fut` to completion on a new single-threaded monoio runtime of the given backend, with
/// timers and a one-thread blocking pool (host-name resolution) — what every reactor runs on;
/// public so tests and tools can drive the client the same way.
pub fn block_on<F: Future>(backend: IoBackendKind, fut: F) -> std::io::Result<F::Output> {
    let pool = || Box::new(monoio::blocking::DefaultThreadPool::new(1));
    Ok(match backend {
        IoBackendKind::IoUring => RuntimeBuilder::<IoUringDriver>::new()
            .with_entries(1024)
            .enable_timer()
            .attach_thread_pool(pool())
            .build()?
            .block_on(fut),
        IoBackendKind::Epoll => RuntimeBuilder::<LegacyDriver>::new()
            .enable_timer()
            .attach_thread_pool(pool())
            .build()?
            .block_on(fut),
    })
}

async fn reactor_main<H, F>(spec: ReactorSpec, factory: Arc<F>) -> Result<(), ReactorError>
where
    H: Handler + 'static,
    F: Fn(CoreContext) -> H + Send + Sync + 'static,
{
    let core_id = spec.core_id;
    let err = |source| ReactorError::Runtime {
        core: core_id,
        source,
    };
    let listener = monoio::net::TcpListener::from_std(spec.listener).map_err(err)?;
    let metrics_listener = match spec.metrics_listener {
        Some(l) => Some(monoio::net::TcpListener::from_std(l).map_err(err)?),
        None => None,
    };

    let shutdown = Shutdown::new();
    {
        let (trigger, local) = (spec.trigger.clone(), shutdown.clone());
        monoio::spawn(async move {
            trigger.wait().await;
            local.trigger();
        });
    }

    let metrics = CoreMetrics::new(core_id, spec.registry.clone());
    let client = Rc::new(UpstreamClient::new(
        ClientSettings::from_config(&spec.config),
        metrics.clone(),
    ));
    let ctx = CoreContext {
        core_id,
        client,
        snapshot: Rc::new(SnapshotHandle::new(spec.snapshots.clone())),
        metrics: metrics.clone(),
        config: spec.config.clone(),
        io_backend: spec.backend,
        shutdown: shutdown.clone(),
    };
    let handler = Rc::new(factory(ctx));
    let settings = ServerSettings::from_config(&spec.config.server);
    let server = ServerCore::new(
        handler,
        settings.clone(),
        metrics.clone(),
        shutdown.clone(),
        core_id,
    );

    // Metrics leave the core once a second (and on exit), never per request.
    {
        let (metrics, shutdown) = (metrics.clone(), shutdown.clone());
        monoio::spawn(async move {
            while !shutdown.is_set() {
                metrics.publish();
                monoio::select! {
                    _ = monoio::time::sleep(Duration::from_secs(1)) => {},
                    _ = shutdown.wait() => {},
                }
            }
        });
    }
    let metrics_server = metrics_listener.map(|l| {
        let h = Rc::new(MetricsHandler::new(metrics.clone()));
        let core = ServerCore::new(
            h,
            settings.clone(),
            metrics.clone(),
            shutdown.clone(),
            core_id,
        );
        monoio::spawn(core.clone().accept_loop(l));
        core
    });

    server.clone().accept_loop(listener).await;

    // Drain: connections see the flag after their current request and close.
    let grace = Duration::from_millis(spec.config.server.shutdown_grace_ms);
    let deadline = Instant::now() + grace;
    let live =
        || server.live_connections() + metrics_server.as_ref().map_or(0, |m| m.live_connections());
    while live() > 0 && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(5)).await;
    }
    if live() > 0 {
        tracing::warn!(
            core = core_id,
            open = live(),
            "shutdown grace elapsed; closing remaining connections"
        );
    }
    metrics.publish();
    Ok(())
}

/// Installs SIGTERM/SIGINT handlers (`signal-hook`: the handler only writes to a self-pipe)
/// and starts a thread that reads them and triggers `trigger`; a second signal during the
/// drain exits at once (status 130).
pub fn spawn_signal_thread(trigger: ShutdownTrigger) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])?;
    std::thread::Builder::new()
        .name("miroir-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if trigger.is_set() {
                    // A second signal while draining: the operator wants out now.
                    tracing::warn!(
                        signal = sig,
                        "second signal during shutdown; exiting at once"
                    );
                    std::process::exit(130);
                }
                tracing::info!(signal = sig, "shutdown requested");
                trigger.trigger();
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_choice_is_explicit() {
        assert_eq!(
            choose_backend(IoBackend::Epoll).unwrap(),
            IoBackendKind::Epoll
        );
        let auto = choose_backend(IoBackend::Auto).unwrap();
        assert_eq!(
            auto == IoBackendKind::IoUring,
            monoio::utils::detect_uring()
        );
    }

    #[test]
    fn listen_addr_parses_ips_only() {
        assert_eq!(
            listen_addr("127.0.0.1", 7700).unwrap().to_string(),
            "127.0.0.1:7700"
        );
        assert_eq!(listen_addr("::1", 1).unwrap().to_string(), "[::1]:1");
        assert!(listen_addr("localhost", 1).is_err());
    }
}
