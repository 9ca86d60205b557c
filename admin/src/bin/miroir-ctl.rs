//! `miroir-ctl`: a thin client of the admin REST API (`/_miroir/*`).
//!
//! ```text
//! miroir-ctl [--url http://127.0.0.1:7701] [--admin-key KEY | $MIROIR_ADMIN_KEY] status
//! miroir-ctl topology          # the raw topology JSON
//! miroir-ctl task show 42      # one Miroir task
//! miroir-ctl verify [--index movies] [--repair]   # exit 0 consistent/repaired, 1 differences, 2 error
//! miroir-ctl node add meili-3 http://10.0.0.4:7700 --group 0
//! miroir-ctl node drain meili-1
//! miroir-ctl node remove meili-1 [--force]
//! miroir-ctl group add --node meili-6=http://10.0.0.7:7700 --node meili-7=http://10.0.0.8:7700
//! miroir-ctl group remove 1 [--force]
//! miroir-ctl rebalance status [--watch]
//! ```

use clap::{Parser, Subcommand};
use serde_json::Value;

#[derive(Parser)]
#[command(
    name = "miroir-ctl",
    version,
    about = "Inspect and change a Miroir deployment through its admin API"
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
    /// Topology operations on nodes (they run in the background; see `rebalance status`).
    Node {
        #[command(subcommand)]
        action: NodeAction,
    },
    /// Topology operations on replica groups (an add runs in the background; see
    /// `rebalance status`).
    Group {
        #[command(subcommand)]
        action: GroupAction,
    },
    /// Progress of topology operations.
    Rebalance {
        #[command(subcommand)]
        action: RebalanceAction,
    },
}

#[derive(Subcommand)]
enum NodeAction {
    /// Adds a node to a replica group and moves its share of the data to it.
    Add {
        id: String,
        /// Base URL, e.g. http://10.0.0.4:7700.
        address: String,
        #[arg(long, default_value_t = 0)]
        group: u32,
    },
    /// Moves every shard of a node to the other nodes of its group; the node then leaves.
    Drain {
        id: String,
        /// Accept losing copies when the group has no other node.
        #[arg(long)]
        force: bool,
    },
    /// Removes a drained node, or a dead one (its copies restored from the others).
    Remove {
        id: String,
        /// Accept losing shards that have no other copy.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum GroupAction {
    /// Adds a replica group (the next group id) of these nodes and copies every shard to it;
    /// it takes searches once its copies are verified.
    Add {
        /// A node of the new group as `id=address` (repeat for each node).
        #[arg(long = "node", value_name = "ID=ADDRESS", required = true, value_parser = parse_node)]
        nodes: Vec<(String, String)>,
    },
    /// Removes every node of a replica group at once (the other groups serve every shard).
    Remove {
        group: u32,
        /// Accept losing shards that no other group has a live copy of.
        #[arg(long)]
        force: bool,
    },
}

/// `id=address` (the address an http:// or https:// URL).
fn parse_node(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((id, address))
            if !id.trim().is_empty()
                && (address.starts_with("http://") || address.starts_with("https://")) =>
        {
            Ok((id.trim().to_string(), address.to_string()))
        }
        _ => Err(format!(
            "`{s}` is not ID=ADDRESS (e.g. meili-6=http://10.0.0.7:7700)"
        )),
    }
}

#[derive(Subcommand)]
enum RebalanceAction {
    /// Checks that every shard's copies are where the topology says (every live node is
    /// scanned) and repairs what differs: missing copies are copied, stray ones deleted.
    Start,
    /// The running (or last) operation: phase, per-shard progress, rate, ETA.
    Status {
        /// Redraw a progress bar until the operation is done.
        #[arg(long)]
        watch: bool,
    },
}

#[derive(Subcommand)]
enum TaskAction {
    /// Shows one task.
    Show { uid: u32 },
}

async fn get(cli: &Cli, path: &str) -> Result<(u16, Value), String> {
    call(cli, hyper::Method::GET, path, None).await
}

async fn call(
    cli: &Cli,
    method: hyper::Method,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value), String> {
    miroir_admin::ctl_client::call(
        &cli.url,
        cli.admin_key.as_deref(),
        method,
        path,
        body.as_ref(),
    )
    .await
}

fn fail(status: u16, body: &Value) -> String {
    let code = body
        .get("code")
        .and_then(Value::as_str)
        .map(|c| format!(" [{c}]"))
        .unwrap_or_default();
    format!(
        "HTTP {status}{code}: {}",
        body.get("message")
            .and_then(Value::as_str)
            .unwrap_or("unexpected answer")
    )
}

/// What the admin answered to a topology command: an accepted operation (202), a finished
/// one or a message (200), or the error.
fn operation_answer(status: u16, v: &Value) -> Result<String, String> {
    match status {
        202 => Ok(format!(
            "accepted; follow it with `miroir-ctl rebalance status --watch`\n{}",
            render_operation(v)
        )),
        200 if v.get("kind").is_some() => Ok(format!("done\n{}", render_operation(v))),
        200 => Ok(v["message"].as_str().unwrap_or("done").to_string()),
        _ => Err(fail(status, v)),
    }
}

/// One line per operation: kind, node, phase, documents, rate, ETA, last error.
fn render_operation(op: &Value) -> String {
    if op.get("kind").is_none() {
        return "no topology operation has run".into();
    }
    let subject = match op["replica_group"].as_u64() {
        _ if op["kind"] == "reconcile" => "every shard's placement".to_string(),
        Some(g) if op.get("node").is_none() => format!("replica group {g}"),
        _ => format!("node {}", op["node"].as_str().unwrap_or("?")),
    };
    let mut out = format!(
        "operation {} ({} of {subject}): phase {}{}\n{}",
        op["id"].as_str().unwrap_or("?"),
        op["kind"].as_str().unwrap_or("?"),
        op["phase"].as_str().unwrap_or("?"),
        if op["in_progress"] == true {
            ""
        } else {
            " (finished)"
        },
        progress_line(op, 30),
    );
    if let Some(e) = op["last_error"].as_str() {
        out.push_str(&format!("\nlast error (retried): {e}"));
    }
    let moves = op["moves"].as_array().map_or(&[][..], Vec::as_slice);
    if !moves.is_empty() {
        out.push_str(&format!(
            "\n\n{:<20} {:>5} {:>5} {:<12} {:<12} {:<9} {:>15}\n",
            "INDEX", "SHARD", "GROUP", "FROM", "TO", "PHASE", "DOCUMENTS"
        ));
        for m in moves {
            out.push_str(&format!(
                "{:<20} {:>5} {:>5} {:<12} {:<12} {:<9} {:>15}\n",
                m["index"].as_str().unwrap_or("?"),
                m["shard"],
                m["replica_group"],
                m["from"].as_str().unwrap_or("?"),
                m["to"].as_str().unwrap_or("?"),
                m["phase"].as_str().unwrap_or("?"),
                format!("{}/{}", m["documents_copied"], m["documents_total"]),
            ));
        }
    }
    out
}

/// `[#####-----] copied/total docs  rate/s  ETA`.
fn progress_line(op: &Value, width: usize) -> String {
    let copied = op["documents_copied"].as_u64().unwrap_or(0);
    let total = op["documents_total"].as_u64().unwrap_or(0);
    let filled = if total == 0 {
        if op["in_progress"] == true {
            0
        } else {
            width
        }
    } else {
        ((copied.min(total) as f64 / total as f64) * width as f64) as usize
    };
    let eta = op["eta_seconds"]
        .as_f64()
        .map(|s| format!("  ETA {s:.0} s"))
        .unwrap_or_default();
    format!(
        "[{}{}] {copied}/{total} documents  {} docs/s{eta}",
        "#".repeat(filled),
        "-".repeat(width - filled.min(width)),
        op["documents_per_second"]
    )
}

/// The `--watch` bar on stderr (drawn only when stderr is a terminal; the final report goes
/// to stdout either way). Rate and ETA come from the admin, which measures the copy.
fn watch_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix:>10} [{bar:40.cyan/blue}] {pos}/{len} documents  {msg}",
        )
        .expect("a valid template")
        .progress_chars("#>-"),
    );
    bar
}

fn update_bar(bar: &indicatif::ProgressBar, op: &Value) {
    let total = op["documents_total"].as_u64().unwrap_or(0);
    bar.set_length(total);
    bar.set_position(op["documents_copied"].as_u64().unwrap_or(0).min(total));
    bar.set_prefix(op["phase"].as_str().unwrap_or("?").to_string());
    let eta = op["eta_seconds"]
        .as_f64()
        .map(|s| format!("  ETA {s:.0} s"))
        .unwrap_or_default();
    bar.set_message(format!("{} docs/s{eta}", op["documents_per_second"]));
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
            // `Value`'s Display ignores widths: format numbers as strings.
            n["replica_group"].to_string(),
            n["status"].as_str().unwrap_or("?"),
            n["shard_count"].to_string(),
            n["last_seen_ms"].to_string(),
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
        Command::Node { action } => {
            let (method, path, body) = match action {
                NodeAction::Add { id, address, group } => (
                    hyper::Method::POST,
                    "/_miroir/nodes".to_string(),
                    Some(serde_json::json!({"id": id, "address": address, "replica_group": group})),
                ),
                NodeAction::Drain { id, force } => (
                    hyper::Method::POST,
                    format!(
                        "/_miroir/nodes/{id}/drain{}",
                        if *force { "?force=true" } else { "" }
                    ),
                    None,
                ),
                NodeAction::Remove { id, force } => (
                    hyper::Method::DELETE,
                    format!(
                        "/_miroir/nodes/{id}{}",
                        if *force { "?force=true" } else { "" }
                    ),
                    None,
                ),
            };
            let (s, v) = call(cli, method, &path, body).await?;
            operation_answer(s, &v)
        }
        Command::Group { action } => {
            let (method, path, body) = match action {
                GroupAction::Add { nodes } => (
                    hyper::Method::POST,
                    "/_miroir/groups".to_string(),
                    Some(serde_json::json!({
                        "nodes": nodes
                            .iter()
                            .map(|(id, address)| serde_json::json!({"id": id, "address": address}))
                            .collect::<Vec<_>>()
                    })),
                ),
                GroupAction::Remove { group, force } => (
                    hyper::Method::DELETE,
                    format!(
                        "/_miroir/groups/{group}{}",
                        if *force { "?force=true" } else { "" }
                    ),
                    None,
                ),
            };
            let (s, v) = call(cli, method, &path, body).await?;
            operation_answer(s, &v)
        }
        Command::Rebalance {
            action: RebalanceAction::Start,
        } => {
            let (s, v) = call(cli, hyper::Method::POST, "/_miroir/rebalance", None).await?;
            operation_answer(s, &v)
        }
        Command::Rebalance {
            action: RebalanceAction::Status { watch },
        } => {
            let (s, v) = get(cli, "/_miroir/rebalance/status").await?;
            if s != 200 {
                return Err(fail(s, &v));
            }
            if !*watch {
                return Ok(render_operation(&v));
            }
            let bar = watch_bar();
            let mut v = v;
            while v["in_progress"] == true {
                update_bar(&bar, &v);
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                let (s, next) = get(cli, "/_miroir/rebalance/status").await?;
                if s != 200 {
                    bar.abandon();
                    return Err(fail(s, &next));
                }
                v = next;
            }
            update_bar(&bar, &v);
            bar.finish();
            Ok(render_operation(&v))
        }
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

/// Writes the report to stdout; a closed pipe (`miroir-ctl status | head`) is not an error.
fn print_out(out: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{out}");
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
                print_out(&report);
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
            print_out(&out);
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("miroir-ctl: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
