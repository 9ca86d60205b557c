//! `miroir-ctl verify [--index X] [--repair]`: starts a run through the admin API, shows its
//! progress on stderr while it runs, and returns the readable report and whether the copies
//! are consistent (the command's exit code).

use crate::ctl_client::call;
use serde_json::{json, Value};
use std::io::Write;
use std::time::Duration;

/// How often the run is polled.
const POLL: Duration = Duration::from_millis(300);

fn failure(status: u16, body: &Value) -> String {
    format!(
        "HTTP {status}: {}",
        body.get("message")
            .and_then(Value::as_str)
            .unwrap_or("unexpected answer")
    )
}

/// Runs `verify` to the end; `Ok((report, consistent))`.
pub async fn verify(
    url: &str,
    admin_key: Option<&str>,
    index: Option<&str>,
    repair: bool,
) -> Result<(String, bool), String> {
    let (s, run) = call(
        url,
        admin_key,
        hyper::Method::POST,
        "/_miroir/verify",
        Some(&json!({ "index": index, "repair": repair })),
    )
    .await?;
    if s != 202 {
        return Err(failure(s, &run));
    }
    let uid = run["uid"].as_u64().ok_or("the admin answered no run uid")?;
    let mut err = std::io::stderr();
    let mut shown = None;
    loop {
        let (s, run) = call(
            url,
            admin_key,
            hyper::Method::GET,
            &format!("/_miroir/verify/{uid}"),
            None,
        )
        .await?;
        if s != 200 {
            return Err(failure(s, &run));
        }
        let status = run["status"].as_str().unwrap_or("?");
        let progress = (
            status.to_string(),
            run["shards_checked"].as_u64().unwrap_or(0),
            run["shards_total"].as_u64().unwrap_or(0),
        );
        if shown.as_ref() != Some(&progress) {
            let _ = writeln!(
                err,
                "verify run {uid}: {} — {}/{} shards checked",
                progress.0, progress.1, progress.2
            );
            shown = Some(progress);
        }
        if matches!(status, "succeeded" | "failed") {
            return Ok(super::report::render(&run));
        }
        tokio::time::sleep(POLL).await;
    }
}
