//! `miroir --config FILE`: the whole host in one command.
//!
//! Runs the admin in this process and spawns the `miroir-dataplane` binary that sits next to
//! this executable, with the same command-line arguments (so both read the same config).
//!
//! Supervision:
//! - SIGTERM/SIGINT: forwarded to the data plane as SIGTERM (it drains in-flight requests
//!   within `server.shutdown_grace_ms`); we wait for it (grace + 5 s, then SIGKILL) and exit.
//! - The data plane exits on its own: it is restarted after a back-off (0.5 s doubling to
//!   30 s). If it dies 5 times within 60 s, `miroir` gives up and exits with status 1, so the
//!   service manager (systemd, Kubernetes) sees the failure instead of a silent crash loop.
//! - The admin cannot die separately: it is this process. If it fails to start, `miroir`
//!   exits before spawning anything.

use clap::Parser;
use miroir_core::config::ConfigArgs;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "miroir",
    version,
    about = "Miroir: admin process + data plane in one command"
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
}

const MAX_RESTARTS: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(60);

fn dataplane_path() -> std::io::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .ok_or_else(|| std::io::Error::other("executable has no directory"))?;
    let p = dir.join("miroir-dataplane");
    if p.exists() {
        Ok(p)
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} not found next to miroir", p.display()),
        ))
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match cli.config.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("miroir: invalid configuration: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let dataplane = match dataplane_path() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("miroir: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let grace = Duration::from_millis(config.server.shutdown_grace_ms) + Duration::from_secs(5);
    let args: Vec<String> = std::env::args().skip(1).collect();
    miroir_admin::init_logging();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    rt.block_on(async move {
        // Installed before anything starts: a SIGTERM while the admin starts, right after a
        // spawn or during a restart backoff is a shutdown, never the default action.
        let shutdown = miroir_admin::shutdown_signal();
        tokio::pin!(shutdown);
        let running = match miroir_admin::start(config).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("miroir: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        let mut deaths: Vec<Instant> = Vec::new();
        let mut backoff = Duration::from_millis(500);
        loop {
            let mut command = tokio::process::Command::new(&dataplane);
            command.args(&args).kill_on_drop(true);
            // If this process is killed outright (SIGKILL, OOM), the data plane must not live
            // on as an orphan holding the port: the kernel sends it SIGTERM (graceful drain)
            // when its parent dies. PR_SET_PDEATHSIG follows the spawning *thread*; tokio's
            // worker threads live as long as the runtime, i.e. as long as this process.
            // SAFETY: prctl(2) is async-signal-safe and touches only the child's own state.
            unsafe {
                command.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let mut child = match command.spawn() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("miroir: spawning {}: {e}", dataplane.display());
                    return std::process::ExitCode::FAILURE;
                }
            };
            tracing::info!(pid = child.id(), "data plane started");
            tokio::select! {
                _ = &mut shutdown => {
                    if let Some(pid) = child.id() {
                        // SAFETY: plain kill(2) on our own child's pid.
                        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
                    }
                    if tokio::time::timeout(grace, child.wait()).await.is_err() {
                        let _ = child.kill().await;
                    }
                    return shut_down(&running).await;
                }
                status = child.wait() => {
                    tracing::error!(status = ?status, "data plane exited");
                    let now = Instant::now();
                    deaths.retain(|t| now.duration_since(*t) < RESTART_WINDOW);
                    deaths.push(now);
                    if deaths.len() >= MAX_RESTARTS {
                        eprintln!("miroir: the data plane died {MAX_RESTARTS} times within {RESTART_WINDOW:?}; giving up");
                        return std::process::ExitCode::FAILURE;
                    }
                    tokio::select! {
                        _ = &mut shutdown => return shut_down(&running).await,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    })
}

/// The admin's part of a shutdown, once the data plane is gone.
async fn shut_down(running: &miroir_admin::Running) -> std::process::ExitCode {
    // Another host takes over at once instead of after the lease TTL.
    running.admin.leadership().release().await;
    tracing::info!("shut down");
    std::process::ExitCode::SUCCESS
}
