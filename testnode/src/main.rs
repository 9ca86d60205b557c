//! `miroir-testnode`: a small Meilisearch-compatible node for Miroir's integration tests,
//! chaos tests and benchmarks. It imitates Meilisearch v1.x's observable HTTP behaviour for
//! the API subset Miroir uses; it is a test tool, never a Meilisearch replacement.
//!
//! Layout: [`http`] (routing, auth, faults) → [`node`] (state, task worker, journal) →
//! [`index`] (documents + inverted index) and [`search`] (ranking, facets); [`filter`],
//! [`settings`], [`documents`], [`keys`], [`tasks`] hold the pure Meilisearch rules.
//! See docs/testing.md for what is implemented and how ranking differs from Meilisearch.

mod chats;
mod documents;
mod error;
mod faults;
mod federated;
mod fields;
mod filter;
mod http;
mod index;
mod json;
mod keys;
mod node;
mod search;
mod settings;
mod size;
mod tasks;
mod tenant;
mod timefmt;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Args {
    http_addr: String,
    master_key: Option<String>,
    db_path: Option<PathBuf>,
    faults: bool,
    canned_search: Option<PathBuf>,
}

const USAGE: &str = "usage: miroir-testnode [--http-addr HOST:PORT] [--master-key KEY] [--db-path DIR] [--faults] [--canned-search FILE]
env: MEILI_HTTP_ADDR, MEILI_MASTER_KEY, MEILI_DB_PATH (flags win)
accepted and ignored (meilisearch compatibility): --no-analytics, --env V, --log-level V,
--max-indexing-memory V, --max-indexing-threads V";

/// Flags like `meilisearch` (`--flag value` or `--flag=value`), env vars as fallback.
fn parse_args(argv: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Args, String> {
    let mut a = Args {
        http_addr: env("MEILI_HTTP_ADDR").unwrap_or_else(|| "127.0.0.1:7700".into()),
        master_key: env("MEILI_MASTER_KEY").filter(|k| !k.is_empty()),
        db_path: env("MEILI_DB_PATH").map(PathBuf::from),
        ..Args::default()
    };
    let mut i = 0;
    while i < argv.len() {
        let (flag, inline) = match argv[i].split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (argv[i].clone(), None),
        };
        let mut value = || -> Result<String, String> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            i += 1;
            argv.get(i)
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--http-addr" => a.http_addr = value()?,
            "--master-key" => a.master_key = Some(value()?).filter(|k| !k.is_empty()),
            "--db-path" => a.db_path = Some(PathBuf::from(value()?)),
            "--canned-search" => a.canned_search = Some(PathBuf::from(value()?)),
            "--faults" => a.faults = true,
            // Accepted for drop-in use in scripts written for `meilisearch`; no effect here.
            "--no-analytics" => {}
            "--env" | "--log-level" | "--max-indexing-memory" | "--max-indexing-threads" => {
                value()?;
            }
            "--help" | "-h" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
        i += 1;
    }
    Ok(a)
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv, |k| std::env::var(k).ok()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(run(args)) {
        eprintln!("miroir-testnode: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> std::io::Result<()> {
    let canned = match &args.canned_search {
        Some(p) => Some(bytes::Bytes::from(std::fs::read(p)?)),
        None => None,
    };
    let node = Arc::new(node::Node::open(
        args.db_path.clone(),
        args.master_key.clone(),
    )?);
    let app = Arc::new(http::App {
        node: node.clone(),
        faults: args.faults.then(|| Mutex::new(faults::Faults::default())),
        canned,
    });
    let listener = tokio::net::TcpListener::bind(&args.http_addr).await?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
    }

    // The single task worker: process everything available, then sleep until woken.
    tokio::spawn(async move {
        loop {
            let n = node.clone();
            let _ = tokio::task::spawn_blocking(move || n.process_available()).await;
            node.wake.notified().await;
        }
    });

    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(_) => continue, // e.g. EMFILE: keep serving the connections we have
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| http::serve(app.clone(), req));
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(io, svc)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_env() {
        let argv: Vec<String> = ["--http-addr", "127.0.0.1:0", "--master-key=k", "--faults"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let a = parse_args(&argv, |k| {
            (k == "MEILI_DB_PATH").then(|| "/tmp/x".to_string())
        })
        .unwrap();
        assert_eq!(a.http_addr, "127.0.0.1:0");
        assert_eq!(a.master_key.as_deref(), Some("k"));
        assert_eq!(a.db_path, Some(PathBuf::from("/tmp/x")));
        assert!(a.faults);
        let a = parse_args(&[], |k| {
            (k == "MEILI_HTTP_ADDR").then(|| "0.0.0.0:1".to_string())
        })
        .unwrap();
        assert_eq!(a.http_addr, "0.0.0.0:1");
        assert!(parse_args(&["--bogus".into()], |_| None).is_err());
        let argv: Vec<String> = ["--no-analytics", "--env", "development", "--log-level=WARN"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(parse_args(&argv, |_| None).is_ok());
        assert!(parse_args(&["--db-path".into()], |_| None).is_err());
    }
}
