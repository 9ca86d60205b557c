//! # miroir-admin
//!
//! The admin process of Miroir (docs/architecture.md#two-processes): a tokio program that owns
//! every piece of durable state and every slow operation, next to the thread-per-core data
//! plane that serves the hot path.
//!
//! ```text
//!  data plane ──control socket (HTTP/1.1 over Unix)──► routes.rs
//!      ▲                                                 ├─ tasks/        task registry
//!      │ snapshot (LMDB)                                 ├─ broadcast/    index lifecycle, settings,
//!      └──────────── state.rs publish ◄──────────────────┤                prepare-write
//!                                                        ├─ keys          API keys
//!  operators ──admin REST /_miroir/* (TCP)──► routes.rs  ├─ reads         aggregated reads
//!                                                        ├─ operator_api  topology, ready, metrics
//!                                                        ├─ health        node health checks
//!                                                        └─ store/        task store (LMDB | Redis)
//! ```
//!
//! Imports point one way (`tests/module_layers.rs` fails on a cycle): leaf modules
//! (`coverage`, `node_client`, `node_health`, `size_format`, `store`, `timefmt`,
//! `http_types`) at the bottom, then `state`, then what builds on it (`keys`, `repair`,
//! `metrics`), then `health`, `tasks` and `broadcast` (in that order), then the handlers
//! (`reads`, `operator_api`), `routes` and `server`.
//!
//! - [`state::Admin`] holds the state; index metadata and API keys are persisted in the task
//!   store's metadata KV and published as [`miroir_core::snapshot::Snapshot`] generations.
//! - Everything the data plane forwards is answered by [`routes::handle`], whose handlers are
//!   plain async functions over [`http_types::Req`]/[`http_types::Resp`], independent of hyper.
//! - The wire contract with the data plane is `docs/internals/control-protocol.md`.

pub mod antientropy;
pub mod broadcast;
pub mod chat;
pub mod coverage;
pub mod ctl_client;
pub mod export;
pub mod features;
pub mod health;
pub mod hints;
pub mod http_types;
pub mod keys;
pub mod leader;
pub mod metrics;
pub mod network;
pub mod node_client;
pub mod node_health;
pub mod operator_api;
pub mod reads;
pub mod rebalance;
pub mod repair;
pub mod routes;
pub mod search_rules;
pub mod server;
pub mod shard_scan;
pub mod size_format;
pub mod state;
pub mod store;
pub mod tasks;
pub mod timefmt;
pub mod webhooks;

use miroir_core::config::Config;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("opening the task store: {0}")]
    Store(#[from] store::StoreError),
    #[error("starting the admin: {0}")]
    Admin(#[from] state::AdminError),
    #[error("binding {what} {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Api(String),
}

/// JSON logs on stderr (`RUST_LOG` filters, default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// A started admin: its state and where it listens.
pub struct Running {
    pub admin: Arc<state::Admin>,
    pub admin_addr: std::net::SocketAddr,
    pub control_socket: std::path::PathBuf,
}

/// Opens the store, restores state, binds both listeners and spawns every background loop.
/// Prints `admin listening on http://ADDR` and `control socket at PATH` on stdout once bound
/// (tests and the one-command launcher rely on them).
pub async fn start(config: Config) -> Result<Running, RunError> {
    let (store, shared) = store::open_stores(&config).await?;
    // Several hosts may share a Redis store: one leads (docs/architecture.md#several-hosts).
    // The first lease attempt comes before the state is loaded, so a lone host leads from its
    // first publish on.
    let leadership = match shared {
        Some(shared) => {
            let address = config.admin_advertise_address();
            let l = leader::Leadership::shared(
                shared,
                host_id(&config, &address),
                address,
                std::time::Duration::from_millis(config.admin.lease_ttl_ms),
                std::time::Duration::from_millis(config.admin.lease_renew_ms),
            );
            if let Err(e) = l.attempt().await {
                tracing::warn!(error = %e, "leader lease attempt failed");
            }
            l
        }
        None => leader::Leadership::single(),
    };
    let admin = state::Admin::open_with(config, store, leadership.clone()).await?;
    admin.announce_host().await?;
    if let Some(token) = leadership.fencing_token() {
        take_over(&admin).await?;
        leadership.mark_ready(token);
    } else {
        tracing::info!(leader = ?leadership.leader(), "another host leads; following");
    }
    let on_acquired: leader::OnAcquired = {
        let admin = admin.clone();
        std::sync::Arc::new(move |token| {
            let admin = admin.clone();
            Box::pin(async move {
                let sync = admin.reload_shared().await.map_err(RunError::from);
                if let Err(e) = match sync {
                    Ok(()) => take_over(&admin).await,
                    Err(e) => Err(e),
                } {
                    tracing::error!(error = %e, "taking over as leader failed");
                }
                // Leading even after a failed clean-up: a lease held by a host that never
                // acts would leave the deployment without a leader.
                admin.leadership().mark_ready(token);
            })
        })
    };
    tokio::spawn(leader::run(leadership.clone(), on_acquired));
    tokio::spawn(admin.clone().follow());

    let addr = format!("{}:{}", admin.config.admin.bind, admin.config.admin.port);
    let tcp = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| RunError::Bind {
            what: "admin API",
            addr: addr.clone(),
            source,
        })?;
    let admin_addr = tcp.local_addr().map_err(|source| RunError::Bind {
        what: "admin API",
        addr: addr.clone(),
        source,
    })?;
    let control_socket = admin.config.control_socket_path();
    let unix = server::bind_control(&control_socket).map_err(|source| RunError::Bind {
        what: "control socket",
        addr: control_socket.display().to_string(),
        source,
    })?;
    tokio::spawn(server::serve_tcp(admin.clone(), tcp));
    tokio::spawn(server::serve_unix(admin.clone(), unix));
    tokio::spawn(health::run(admin.clone()));
    tokio::spawn(tasks::refresher(admin.clone()));
    // Only the leader delivers, so a task is never sent twice by two hosts (decision 028).
    let leading = admin.leadership().clone();
    tokio::spawn(webhooks::deliver(admin.clone(), move || {
        leading.is_leader()
    }));
    tokio::spawn(hints::run(admin.clone()));
    // Gated by `antientropy::may_lead`; off unless `antientropy.interval_s` is set.
    tokio::spawn(antientropy::run_schedule(admin.clone()));
    tokio::spawn(rebalance::run(admin.clone()));
    // Not `println!`: a closed stdout (launcher not reading it) must not kill the admin.
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "admin listening on http://{admin_addr}");
        let _ = writeln!(out, "control socket at {}", control_socket.display());
        let _ = out.flush();
    }
    tracing::info!(
        admin = %admin_addr,
        control = %control_socket.display(),
        store = admin.store.backend_name(),
        "admin started"
    );
    Ok(Running {
        admin,
        admin_addr,
        control_socket,
    })
}

/// What a host does when it becomes leader (at start, or when a dead leader's lease ran out):
/// tasks the previous leader was running end `failed` rather than stay `processing`, settings
/// changes it left half done are rolled back on the nodes, index creations, deletions, swaps and
/// renames it left half done are undone or finished, default keys exist, and the state
/// is published (and waited for by every live host).
async fn take_over(admin: &std::sync::Arc<state::Admin>) -> Result<(), RunError> {
    // First, so that a deletion or swap finished here ends its task `succeeded` before the
    // other interrupted tasks are failed. Not fatal: a record that cannot be completed now
    // stays for the next takeover; refusing to start would leave the deployment leaderless.
    if let Err(e) = broadcast::recover_interrupted_lifecycle(admin).await {
        tracing::error!(error = %e, "finishing interrupted index creations, deletions, swaps or renames failed");
    }
    tasks::fail_interrupted(admin)
        .await
        .map_err(|e| RunError::Api(e.to_string()))?;
    // Same reasoning: a node that refuses the rollback is logged, and the change's record
    // stays for the next takeover.
    if let Err(e) = broadcast::roll_back_interrupted(admin).await {
        tracing::error!(error = %e, "rolling back interrupted settings changes failed");
    }
    antientropy::fail_interrupted(admin).await;
    keys::ensure_defaults(admin).await?;
    webhooks::init(admin)
        .await
        .map_err(|e| RunError::Api(e.body().to_string()))?;
    // Copies with hints left by a previous leader stay unread until replayed (crate::hints).
    hints::sync_lagging(admin, false)
        .await
        .map_err(|e| RunError::Api(e.to_string()))?;
    admin.publish().await?;
    Ok(())
}

/// This host's id in the leader lease and the host heartbeats: unique per host (hostname,
/// advertised admin address, data directory) and stable across restarts, so a restarted admin
/// renews its own lease instead of waiting for it to run out.
fn host_id(config: &Config, address: &str) -> String {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    format!("{hostname}|{address}|{}", config.data_dir.display())
}

/// Installs the SIGTERM/SIGINT handlers now and resolves when one of the signals arrives.
///
/// The handlers are installed by this call, not when the future is first polled: a signal
/// that comes while the process is still starting (or between two polls) is then held for
/// the future instead of killing the process with the default action. Call it once, early,
/// inside the runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}
