//! `miroir-ctl`: a thin client of the admin REST API (`/_miroir/*`).
//!
//! ```text
//! miroir-ctl [--url http://127.0.0.1:7701] [--admin-key KEY | $MIROIR_ADMIN_KEY] status
//! miroir-ctl topology          # the raw topology JSON
//! miroir-ctl task show 42      # one Miroir task
//! miroir-ctl verify [--index movies] [--repair]   # exit 0 consistent/repaired, 1 differences, 2 error
//! ```

use bytes::Bytes;
use clap::{Parser, Subcommand};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

#[derive(Parser)]
#[command(
    name = "miroir-ctl",
    version,
    about = "Inspect a Miroir deployment through its admin API"
)]
struct Cli {
    /// Admin API base URL.
    #[arg(
        long,
        default_value = "http://127.0.0.1:7701",
        env = "MIROIR_ADMIN_URL"
    )]
    url: String,
    /// Admin key (sent as `Authorization: Bearer`).
    #[arg(long, env = "MIROIR_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Readiness and a per-node summary.
    Status,
    /// The topology JSON.
    Topology,
    /// Miroir tasks.
    Task {
        #[command(subcommand)]
        action: TaskAction,
    },
    /// Compares every shard's copies and reports differences; exit code 1 when some remain.
    Verify {
        /// Only this index (default: every index).
        #[arg(long)]
        index: Option<String>,
        /// Repair the differences from the right copy (docs/operations.md#anti-entropy).
        #[arg(long)]
        repair: bool,
    },
}

#[derive(Subcommand)]
enum TaskAction {
    /// Shows one task.
    Show { uid: u32 },
}

async fn get(cli: &Cli, path: &str) -> Result<(u16, Value), String> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = hyper::Request::get(format!("{}{}", cli.url.trim_end_matches('/'), path));
    if let Some(k) = &cli.admin_key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let req = req.body(Empty::new()).map_err(|e| e.to_string())?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("cannot reach {}: {e}", cli.url))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

fn fail(status: u16, body: &Value) -> String {
    format!(
        "HTTP {status}: {}",
        body.get("message")
            .and_then(Value::as_str)
            .unwrap_or("unexpected answer")
    )
}

/// The human-readable status report.
fn render_status(topology: &Value, ready: bool) -> String {
    let mut out = format!(
        "ready: {}\nshards: {}  replication factor: {}  replica groups: {}  degraded nodes: {}  fully covered: {}\n\n{:<16} {:>5} {:<10} {:>6} {:>15}  {}\n",
        if ready { "yes" } else { "NO" },
        topology["shards"], topology["replication_factor"], topology["replica_groups"],
        topology["degraded_node_count"], topology["fully_covered"],
        "NODE", "GROUP", "STATUS", "SHARDS", "LAST SEEN (ms)", "ERROR"
    );
    for n in topology["nodes"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:<16} {:>5} {:<10} {:>6} {:>15}  {}\n",
            n["id"].as_str().unwrap_or("?"),
            n["replica_group"],
            n["status"].as_str().unwrap_or("?"),
            n["shard_count"],
            n["last_seen_ms"],
            n["error"].as_str().unwrap_or("")
        ));
    }
    let drift = topology["config_drift"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if !drift.is_empty() {
        out.push_str("\nconfiguration drift (the stored topology is authoritative):\n");
        for d in drift {
            let applied = d["applied"].as_bool().unwrap_or(false);
            out.push_str(&format!(
                "  {} {}\n",
                if applied { "applied:" } else { "IGNORED:" },
                d["message"].as_str().unwrap_or("?")
            ));
        }
    }
    out
}

async fn run(cli: &Cli) -> Result<String, String> {
    match &cli.command {
        Command::Status => {
            let (s, topology) = get(cli, "/_miroir/topology").await?;
            if s != 200 {
                return Err(fail(s, &topology));
            }
            let (rs, _) = get(cli, "/_miroir/ready").await?;
            Ok(render_status(&topology, rs == 200))
        }
        Command::Topology => {
            let (s, v) = get(cli, "/_miroir/topology").await?;
            if s != 200 {
                return Err(fail(s, &v));
            }
            Ok(serde_json::to_string_pretty(&v).unwrap_or_default())
        }
        Command::Verify { .. } => unreachable!("main runs verify itself, for its exit code"),
        Command::Task {
            action: TaskAction::Show { uid },
        } => {
            let (s, v) = get(cli, &format!("/_miroir/tasks/{uid}")).await?;
            if s != 200 {
                return Err(fail(s, &v));
            }
            Ok(serde_json::to_string_pretty(&v).unwrap_or_default())
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    if let Command::Verify { index, repair } = &cli.command {
        let verify = miroir_admin::antientropy::ctl::verify(
            &cli.url,
            cli.admin_key.as_deref(),
            index.as_deref(),
            *repair,
        );
        return match rt.block_on(verify) {
            Ok((report, consistent)) => {
                println!("{report}");
                std::process::ExitCode::from(u8::from(!consistent))
            }
            Err(e) => {
                eprintln!("miroir-ctl: {e}");
                std::process::ExitCode::from(2)
            }
        };
    }
    match rt.block_on(run(&cli)) {
        Ok(out) => {
            println!("{out}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("miroir-ctl: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
