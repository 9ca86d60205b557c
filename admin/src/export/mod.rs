//! `POST /export`: sends every index a pattern matches — settings and documents — to another
//! Meilisearch, as one Miroir task of type `export` (docs/compatibility.md#export).
//!
//! Meilisearch exports from its one database; Miroir's documents are spread over shards, so
//! the admin gathers each shard from one readable copy and streams the documents on without
//! its reserved fields (`run`). The request is validated as Meilisearch validates it
//! (`request`); a bad filter or an unreachable target fails the task, not the request.

mod request;
mod run;

pub use request::{parse, ExportRequest};

use crate::broadcast::spawn_task;
use crate::http_types::{ApiError, Req, Resp};
use crate::state::Admin;
use crate::store::TaskType;
use std::sync::Arc;

/// `POST /export` → 202 with the summarized task; the export runs in the background.
pub async fn export(admin: &Arc<Admin>, req: &Req) -> Result<Resp, ApiError> {
    let request = parse(&req.json()?)?;
    let details = request.details();
    spawn_task(
        admin,
        Vec::new(),
        None,
        TaskType::Export,
        details,
        move |admin| async move { run::run(&admin, request).await },
    )
    .await
}
