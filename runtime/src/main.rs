//! `miroir-dataplane`: the data plane binary.
//!
//! `miroir-dataplane --config FILE [flags]` → configuration (file, then `MIROIR_*` environment,
//! then flags, then validation) → signal thread → snapshot watcher → one reactor per core
//! serving [`miroir_runtime::proxy::Proxy`]. Exit codes: 0 after a graceful shutdown, 2 for a
//! configuration error, 1 when the server could not start or a reactor failed.

use clap::Parser;
use miroir_core::config::ConfigArgs;
use miroir_runtime::proxy::Proxy;
use miroir_runtime::reactor::{self, ShutdownTrigger};
use miroir_runtime::snapshot_watch::{spawn_watcher, SnapshotShared, WatcherConfig};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "miroir-dataplane",
    version,
    about = "Miroir data plane (thread-per-core HTTP/1.1 proxy)"
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `miroir_runtime=debug`.
    #[arg(long, env = "MIROIR_LOG", default_value = "info")]
    log: String,
}

/// mimalloc instead of the C library's allocator: per-thread free lists for every size class
/// the data plane uses per request (a scatter's call futures of ~4 KiB each, header strings,
/// 300 KiB of brotli tables), where glibc took its slow path (`malloc_consolidate`, arena
/// locks) and musl's allocator is slower still. Measured and argued in
/// docs/decisions/052-zero-copy-bodies-and-mimalloc.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr)
        .init();

    let config = match cli.config.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("miroir-dataplane: {e}");
            return ExitCode::from(2);
        }
    };

    // Signals first: a SIGTERM during startup then drains instead of killing the process.
    let trigger = ShutdownTrigger::new();
    if let Err(e) = reactor::spawn_signal_thread(trigger.clone()) {
        eprintln!("miroir-dataplane: cannot install signal handling: {e}");
        return ExitCode::from(1);
    }

    let snapshots = SnapshotShared::new();
    let watcher = match spawn_watcher(WatcherConfig::from_config(&config), snapshots.clone()) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("miroir-dataplane: cannot start the snapshot watcher: {e}");
            return ExitCode::from(1);
        }
    };

    let server = match reactor::start(Arc::new(config), snapshots, trigger, Proxy::from_core) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("miroir-dataplane: {e}");
            return ExitCode::from(1);
        }
    };
    // One machine-readable line so scripts and tests learn the resolved port.
    println!(
        "{{\"listening\":\"{}\",\"io_backend\":\"{}\"}}",
        server.addr,
        server.io_backend.as_str()
    );
    let result = server.join();
    watcher.stop();
    match result {
        Ok(()) => {
            tracing::info!("shut down cleanly");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "reactor failed");
            ExitCode::from(1)
        }
    }
}
