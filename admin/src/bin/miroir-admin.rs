//! `miroir-admin --config FILE`: the admin process alone (Kubernetes sidecar, systemd unit).

use clap::Parser;
use miroir_core::config::ConfigArgs;

#[derive(Parser)]
#[command(
    name = "miroir-admin",
    version,
    about = "Miroir admin process: task registry, broadcasts, health, admin API"
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match cli.config.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("miroir-admin: invalid configuration: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    miroir_admin::init_logging();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    rt.block_on(async move {
        let shutdown = miroir_admin::shutdown_signal();
        match miroir_admin::start(config).await {
            Ok(running) => {
                shutdown.await;
                tracing::info!("shutting down");
                // Another host takes over at once instead of after the lease TTL.
                running.admin.leadership().release().await;
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("miroir-admin: {e}");
                std::process::ExitCode::FAILURE
            }
        }
    })
}
