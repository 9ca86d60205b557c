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

pub mod broadcast;
pub mod coverage;
pub mod health;
pub mod http_types;
pub mod keys;
pub mod metrics;
pub mod node_client;
pub mod node_health;
pub mod operator_api;
pub mod reads;
pub mod repair;
pub mod routes;
pub mod server;
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
    let store = store::open_task_store(&config).await?;
    let admin = state::Admin::open(config, store).await?;
    tasks::fail_interrupted(&admin)
        .await
        .map_err(|e| RunError::Api(e.to_string()))?;
    keys::ensure_defaults(&admin).await?;
    webhooks::init(&admin)
        .await
        .map_err(|e| RunError::Api(e.body().to_string()))?;
    admin.publish().await?;

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
    // Every admin delivers until the leader gate is wired (decision 028).
    tokio::spawn(webhooks::deliver(admin.clone(), || true));
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

/// Resolves when SIGTERM or SIGINT arrives.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
