//! `POST /chats/{workspace}/chat/completions` (decision 047): the conversation Meilisearch 1.50
//! runs (`routes/chats/chat_completions.rs`), with its searches going through Miroir's merged
//! search so the provider sees documents from every shard.
//!
//! The data plane authenticates the caller (`chatCompletions` action, tenant tokens accepted)
//! and forwards the request here with the caller's `Authorization`. The admin checks the
//! feature and the workspace, declares the `_meiliSearchInIndex` tool for the indexes the
//! caller may search, calls the provider (streamed), runs each search tool call on the data
//! plane, renders hits with the index's document template, and answers the server-sent events
//! Meilisearch sends, each as it is produced (`stream`, served by the HTTP layer).

mod events;
mod provider;
mod search;
mod secrets;
mod template;

pub use secrets::remember as remember_workspace;

use crate::http_types::{ApiError, Req, Resp};
use crate::state::Admin;
use events::{Sse, APPEND_CONVERSATION_MESSAGE, SEARCH_IN_INDEX, SEARCH_PROGRESS, SEARCH_SOURCES};
use hyper::Method;
use miroir_core::error::ErrorCode;
use provider::{Next, Provider};
use search::{IndexChat, Searcher};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Provider round trips per completion (Meilisearch's limit on internal calls).
const MAX_ROUNDS: usize = 20;

/// Which of Meilisearch's front-end tools the client declared.
#[derive(Debug, Default, Clone, Copy)]
struct FunctionSupport {
    progress: bool,
    sources: bool,
    append: bool,
}

/// A tool call being streamed by the provider.
enum Call {
    Internal {
        id: String,
        name: String,
        arguments: String,
    },
    /// Another tool: tracked only to know it is not Meilisearch's.
    External,
}

#[derive(serde::Deserialize)]
struct SearchInIndex {
    index_uid: String,
    q: Option<String>,
    filter: Option<String>,
}

/// The whole answer at once (a request reaching the routes, e.g. forwarded by another host).
pub async fn completions(admin: &Arc<Admin>, workspace: &str, req: &Req) -> Result<Resp, ApiError> {
    let (mut conversation, mut request) = prepare(admin, workspace, req, Sse::new()).await?;
    conversation.run(&mut request).await;
    Ok(Resp::text(200, "text/event-stream", conversation.sse.body))
}

/// The workspace of a chat completion from the data plane (the HTTP layer serves it
/// streamed; it asks only for requests that came in on the control socket); `None` for any
/// other request.
pub fn streamed_workspace(req: &Req) -> Option<String> {
    if req.method != Method::POST
        || req.header(miroir_core::control::VERSION_HEADER)
            != Some(miroir_core::control::CONTROL_VERSION)
    {
        return None;
    }
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["chats", ws, "chat", "completions"] if !ws.is_empty() => {
            Some(crate::http_types::percent_decode(ws))
        }
        _ => None,
    }
}

/// The events as they are produced: the checks answer first (an error is a whole answer),
/// then the conversation runs as its own task, sending each event as it is produced.
pub async fn stream(
    admin: Arc<Admin>,
    workspace: String,
    req: Req,
) -> Result<tokio::sync::mpsc::UnboundedReceiver<bytes::Bytes>, Resp> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (mut conversation, mut request) = prepare(&admin, &workspace, &req, Sse::streamed(tx))
        .await
        .map_err(ApiError::into_resp)?;
    tokio::spawn(async move { conversation.run(&mut request).await });
    Ok(rx)
}

/// Meilisearch's checks and set-up of a completion, in its order: the conversation ready to
/// run and the request to send the provider.
async fn prepare(
    admin: &Arc<Admin>,
    workspace: &str,
    req: &Req,
    sse: Sse,
) -> Result<(Conversation, Map<String, Value>), ApiError> {
    let body = req.json()?;
    let Value::Object(mut request) = body else {
        return Err(ApiError::core(
            ErrorCode::BadRequest,
            "Json deserialize error: invalid type: expected struct CreateChatCompletionRequest",
        ));
    };
    for required in ["messages", "model"] {
        if !request.contains_key(required) {
            return Err(ApiError::core(
                ErrorCode::BadRequest,
                format!("Json deserialize error: missing field `{required}`"),
            ));
        }
    }
    check_feature(admin).await?;
    if let Some(n) = request.get("n").and_then(Value::as_u64).filter(|&n| n != 1) {
        return Err(ApiError::core(
            ErrorCode::UnimplementedMultiChoiceChatCompletions,
            format!("You tried to specify n = {n} but only single choices are supported (n = 1)."),
        ));
    }
    if !request
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        return Err(ApiError::core(
            ErrorCode::UnimplementedNonStreamingChatCompletions,
            "Non-streamed chat completions is not implemented",
        ));
    }
    let settings = workspace_settings(admin, workspace).await?;
    let provider = Provider::new(
        &settings,
        secrets::api_key(admin, workspace).await?.as_deref(),
    );
    let support = check_tools(&mut request)?;

    let searcher = Searcher::new(admin, req.header("authorization"));
    let mut listed = BTreeMap::new();
    let prompts = &settings["prompts"];
    let prompt = |k: &str| prompts[k].as_str().unwrap_or_default().to_string();
    let mut function_description = prompt("searchDescription");
    let mut filter_description = prompt("searchFilterParam");
    for ix in search::indexes(admin).await? {
        let Some(facets) = searcher.facets(&ix).await? else {
            continue;
        };
        function_description.push_str(&format!("\n\n - {}: {}\n\n", ix.uid, ix.description));
        filter_description.push_str(&format!(
            "\n## Facet distributions of the {} index\n{facets}\n",
            ix.uid
        ));
        listed.insert(ix.uid.clone(), ix);
    }
    let tool = json!({
        "type": "function",
        "function": {
            "name": SEARCH_IN_INDEX,
            "description": function_description,
            "parameters": {
                "type": "object",
                "properties": {
                    "index_uid": {
                        "type": "string",
                        "enum": listed.keys().collect::<Vec<_>>(),
                        "description": prompt("searchIndexUidParam"),
                    },
                    "q": {"type": "string", "description": prompt("searchQParam")},
                    "filter": {"type": "string", "description": filter_description},
                },
                "required": ["index_uid", "q", "filter"],
                "additionalProperties": false,
            },
            "strict": true,
        },
    });
    if let Some(Value::Array(tools)) = request.get_mut("tools") {
        tools.push(tool);
    } else {
        request.insert("tools".into(), json!([tool]));
    }
    let model = request["model"].as_str().unwrap_or_default().to_string();
    let system = json!({"role": provider.source.system_role(&model), "content": prompt("system")});
    if let Some(Value::Array(messages)) = request.get_mut("messages") {
        messages.insert(0, system);
    }

    let conversation = Conversation {
        admin: admin.clone(),
        provider,
        searcher,
        indexes: listed,
        support,
        sse,
        calls: BTreeMap::new(),
    };
    Ok((conversation, request))
}

/// Meilisearch's `check_chat_completions`, read from a node (the flag is broadcast).
async fn check_feature(admin: &Admin) -> Result<(), ApiError> {
    if crate::features::node_flag(admin, "chatCompletions").await? {
        return Ok(());
    }
    Err(ApiError::core(
        ErrorCode::FeatureNotEnabled,
        "using the /chats chat completions route requires enabling the `chat completions` experimental feature. See https://github.com/orgs/meilisearch/discussions/835",
    ))
}

/// The workspace's settings as a node holds them (the API key redacted).
async fn workspace_settings(admin: &Admin, workspace: &str) -> Result<Value, ApiError> {
    let path = format!(
        "/chats/{}/settings",
        crate::http_types::encode_segment(workspace)
    );
    let mut last = None;
    for node in admin.live_nodes() {
        match admin
            .client
            .send(&node.address, Method::GET, &path, None)
            .await
        {
            Ok(r) if r.is_success() => return Ok(r.json()),
            Ok(r) if r.status == 404 => {
                return Err(ApiError::core(
                    ErrorCode::ChatNotFound,
                    format!("Chat `{workspace}` not found"),
                ))
            }
            Ok(r) => {
                return Err(ApiError::Node {
                    status: r.status,
                    body: r.json(),
                })
            }
            Err(e) => last = Some(format!("node `{}`: {e}", node.id)),
        }
    }
    Err(ApiError::core(
        ErrorCode::MiroirNodeUnreachable,
        last.unwrap_or_else(|| "no node is available".into()),
    ))
}

/// Meilisearch's checks of the client's tools: only its three front-end tools may be declared;
/// they are removed from what the provider sees and switch their reports on.
fn check_tools(request: &mut Map<String, Value>) -> Result<FunctionSupport, ApiError> {
    let name = |t: &Value| {
        t["function"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let Some(Value::Array(tools)) = request.get_mut("tools") else {
        return Ok(FunctionSupport::default());
    };
    for t in tools.iter() {
        match name(t).as_str() {
            SEARCH_IN_INDEX => {
                return Err(ApiError::core(
                    ErrorCode::BadRequest,
                    format!("{SEARCH_IN_INDEX} function is already defined."),
                ))
            }
            SEARCH_PROGRESS | SEARCH_SOURCES | APPEND_CONVERSATION_MESSAGE => {}
            other => {
                return Err(ApiError::core(
                    ErrorCode::UnimplementedExternalFunctionCalling,
                    format!("{other}: External functions are not supported yet."),
                ))
            }
        }
    }
    let mut support = FunctionSupport::default();
    tools.retain(|t| {
        match name(t).as_str() {
            SEARCH_PROGRESS => support.progress = true,
            SEARCH_SOURCES => support.sources = true,
            APPEND_CONVERSATION_MESSAGE => support.append = true,
            _ => return true,
        }
        false
    });
    Ok(support)
}

struct Conversation {
    admin: Arc<Admin>,
    provider: Provider,
    searcher: Searcher,
    /// The indexes declared to the provider, with their chat settings.
    indexes: BTreeMap<String, IndexChat>,
    support: FunctionSupport,
    sse: Sse,
    calls: BTreeMap<u64, Call>,
}

impl Conversation {
    /// Up to [`MAX_ROUNDS`] provider calls, then `[DONE]` (not sent to a client that left).
    async fn run(&mut self, request: &mut Map<String, Value>) {
        for _ in 0..MAX_ROUNDS {
            if !self.round(request).await || self.sse.closed {
                break;
            }
        }
        self.sse.done();
    }

    /// One provider call; `true` when the provider asked for tools and expects another.
    async fn round(&mut self, request: &mut Map<String, Value>) -> bool {
        if self.provider.source.wants_usage() {
            request.insert("stream_options".into(), json!({"include_usage": true}));
        } else {
            request.remove("stream_options");
        }
        let body = Value::Object(request.clone());
        let mut stream = match provider::start(&self.provider, &body).await {
            Ok(s) => s,
            Err(event) => {
                self.sse.data(&event);
                return false;
            }
        };
        let mut finish_reason = None;
        loop {
            let chunk = match stream.next().await {
                Next::Chunk(c) => c,
                Next::End => break,
                Next::Error(event) => {
                    self.sse.data(&event);
                    return false;
                }
            };
            // A chunk without choices (the usage chunk) ends Meilisearch's reading.
            let Some(choice) = chunk["choices"].as_array().and_then(|c| c.first()) else {
                break;
            };
            finish_reason = choice["finish_reason"].as_str().map(str::to_string);
            match choice["delta"].get("tool_calls").and_then(Value::as_array) {
                Some(tool_calls) => {
                    for tc in tool_calls {
                        self.accumulate(tc);
                    }
                }
                None if !self.calls.is_empty() => self.run_tools(request, &chunk).await,
                None => self.sse.data(&events::normalize_chunk(&chunk)),
            }
        }
        finish_reason.as_deref() == Some("tool_calls")
    }

    fn accumulate(&mut self, tc: &Value) {
        let index = tc["index"].as_u64().unwrap_or(0);
        let arguments = tc["function"]["arguments"].as_str().unwrap_or_default();
        match self.calls.entry(index) {
            std::collections::btree_map::Entry::Occupied(mut e) => {
                if let Call::Internal { arguments: a, .. } = e.get_mut() {
                    a.push_str(arguments);
                }
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                let name = tc["function"]["name"].as_str();
                e.insert(if name == Some(SEARCH_IN_INDEX) {
                    Call::Internal {
                        id: tc["id"].as_str().unwrap_or_default().to_string(),
                        name: SEARCH_IN_INDEX.to_string(),
                        arguments: arguments.to_string(),
                    }
                } else {
                    Call::External
                });
            }
        }
    }

    /// Meilisearch's `handle_meili_tools`, with `chunk` the provider chunk that ended the calls.
    async fn run_tools(&mut self, request: &mut Map<String, Value>, chunk: &Value) {
        let calls: Vec<(String, String, String)> = std::mem::take(&mut self.calls)
            .into_values()
            .filter_map(|c| match c {
                Call::Internal {
                    id,
                    name,
                    arguments,
                } => Some((id, name, arguments)),
                Call::External => None,
            })
            .collect();
        let call_json = |(id, name, arguments): &(String, String, String)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}});
        push_message(
            request,
            json!({"role": "assistant", "tool_calls": calls.iter().map(call_json).collect::<Vec<_>>()}),
        );
        for call in &calls {
            let (id, name, arguments) = call;
            if self.support.progress {
                self.sse
                    .data(&events::search_progress(chunk, id, name, arguments));
            }
            if self.support.append {
                let message = json!({"role": "assistant", "tool_calls": [call_json(call)]});
                self.sse.data(&events::append_message(chunk, &message));
            }
            let mut error = None;
            let result = match serde_json::from_str::<SearchInIndex>(arguments) {
                Ok(args) => match self.search(args).await {
                    Ok(found) => Ok(found),
                    Err((message, code)) => {
                        let text = format!("the search tool call failed with {message}");
                        error = Some((message, code));
                        Err(text)
                    }
                },
                Err(e) => Err(e.to_string()),
            };
            let answer = match result {
                Ok((documents, text)) => {
                    if self.support.sources {
                        self.sse.data(&events::sources(chunk, id, &documents));
                    }
                    text
                }
                Err(text) => text,
            };
            let tool = json!({"role": "tool", "content": answer, "tool_call_id": id});
            if self.support.append {
                self.sse.data(&events::append_message(chunk, &tool));
            }
            push_message(request, tool);
            if let Some((message, code)) = error {
                self.sse.data(&events::error(
                    "response_error",
                    Some(&code),
                    &message,
                    None,
                ));
            }
        }
    }

    async fn search(
        &mut self,
        args: SearchInIndex,
    ) -> Result<(Vec<Value>, String), (String, String)> {
        let ix = match self.indexes.get(&args.index_uid) {
            Some(ix) => ix.clone(),
            // Not declared to the provider: the data plane answers the caller's authorisation.
            None => match search::index(&self.admin, &args.index_uid).await {
                Ok(Some(ix)) => ix,
                Ok(None) => {
                    return Err((
                        format!("Index `{}` not found.", args.index_uid),
                        "index_not_found".into(),
                    ))
                }
                Err(e) => {
                    let body = e.body();
                    return Err((
                        body["message"].as_str().unwrap_or_default().to_string(),
                        body["code"].as_str().unwrap_or("internal").to_string(),
                    ));
                }
            },
        };
        self.searcher.search(&ix, args.q, args.filter).await
    }
}

fn push_message(request: &mut Map<String, Value>, message: Value) {
    if let Some(Value::Array(messages)) = request.get_mut("messages") {
        messages.push(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_are_checked_as_meilisearch_checks_them() {
        let mut r = json!({"tools": [
            {"type": "function", "function": {"name": "_meiliSearchProgress"}},
            {"type": "function", "function": {"name": "_meiliSearchSources"}},
        ]});
        let s = check_tools(r.as_object_mut().unwrap()).unwrap();
        assert!(s.progress && s.sources && !s.append);
        assert_eq!(r["tools"], json!([]));
        let mut r = json!({"tools": [{"type": "function", "function": {"name": "get_weather"}}]});
        let e = check_tools(r.as_object_mut().unwrap()).unwrap_err();
        assert_eq!(e.status(), 501);
        assert_eq!(
            e.body()["message"],
            "get_weather: External functions are not supported yet."
        );
        let mut r =
            json!({"tools": [{"type": "function", "function": {"name": "_meiliSearchInIndex"}}]});
        let e = check_tools(r.as_object_mut().unwrap()).unwrap_err();
        assert_eq!(e.body()["code"], "bad_request");
    }
}
