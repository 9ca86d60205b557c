//! The server-sent events of a chat completion, shaped as Meilisearch 1.50 sends them
//! (checked against a real build with a scripted provider): a `retry: 10000` first, then
//! `data: <json>` events — provider chunks re-serialised in async-openai's
//! `CreateChatCompletionStreamResponse` shape, Meilisearch's `_meiliSearch*` tool-call
//! reports, error events — and `data: [DONE]` last.

use serde_json::{json, Map, Value};

/// Meilisearch's three front-end tools, reported as tool calls in the stream.
pub const SEARCH_PROGRESS: &str = "_meiliSearchProgress";
pub const SEARCH_SOURCES: &str = "_meiliSearchSources";
pub const APPEND_CONVERSATION_MESSAGE: &str = "_meiliAppendConversationMessage";
/// The tool the provider calls to search; never shown to the client.
pub const SEARCH_IN_INDEX: &str = "_meiliSearchInIndex";

/// Where the events go: sent as they are produced (the streamed answer), or collected.
#[derive(Debug, Default)]
pub struct Sse {
    pub body: Vec<u8>,
    sink: Option<tokio::sync::mpsc::UnboundedSender<bytes::Bytes>>,
    /// The client went away: the conversation stops (as Meilisearch's on a closed channel).
    pub closed: bool,
}

impl Sse {
    /// Events collected in [`Sse::body`].
    pub fn new() -> Sse {
        let mut s = Sse::default();
        s.start();
        s
    }

    /// Events sent to `sink` as they are produced.
    pub fn streamed(sink: tokio::sync::mpsc::UnboundedSender<bytes::Bytes>) -> Sse {
        let mut s = Sse {
            sink: Some(sink),
            ..Sse::default()
        };
        s.start();
        s
    }

    fn start(&mut self) {
        // actix-web-lab's `Sse::with_retry_duration(10s)`.
        self.write(b"retry: 10000\n\n".to_vec());
    }

    fn write(&mut self, bytes: Vec<u8>) {
        match &self.sink {
            Some(tx) => self.closed |= tx.send(bytes.into()).is_err(),
            None => self.body.extend_from_slice(&bytes),
        }
    }

    pub fn data(&mut self, v: &Value) {
        let mut event = b"data: ".to_vec();
        event.extend_from_slice(&serde_json::to_vec(v).expect("JSON values serialise"));
        event.extend_from_slice(b"\n\n");
        self.write(event);
    }

    pub fn done(&mut self) {
        self.write(b"data: [DONE]\n\n".to_vec());
    }
}

fn field(v: &Value, k: &str) -> Value {
    v.get(k).cloned().unwrap_or(Value::Null)
}

/// A provider chunk as Meilisearch forwards it: parsed into async-openai's types and written
/// back, so every field of its shape is present (absent ones `null`) and unknown ones dropped.
pub fn normalize_chunk(chunk: &Value) -> Value {
    let choices: Vec<Value> = chunk
        .get("choices")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().map(normalize_choice).collect())
        .unwrap_or_default();
    json!({
        "id": field(chunk, "id"),
        "choices": choices,
        "created": field(chunk, "created"),
        "model": field(chunk, "model"),
        "service_tier": field(chunk, "service_tier"),
        "system_fingerprint": field(chunk, "system_fingerprint"),
        "object": field(chunk, "object"),
        "usage": field(chunk, "usage"),
    })
}

fn normalize_choice(c: &Value) -> Value {
    let d = c.get("delta").cloned().unwrap_or(Value::Null);
    json!({
        "index": c.get("index").cloned().unwrap_or(json!(0)),
        "delta": {
            "content": field(&d, "content"),
            "function_call": field(&d, "function_call"),
            "tool_calls": field(&d, "tool_calls"),
            "role": field(&d, "role"),
            "refusal": field(&d, "refusal"),
        },
        "finish_reason": field(c, "finish_reason"),
        "logprobs": field(c, "logprobs"),
    })
}

/// `chunk` (the provider chunk that ended the tool calls) carrying one of Meilisearch's
/// report tool calls instead of its own choice.
pub fn report(chunk: &Value, function: &str, arguments: String) -> Value {
    let mut v = normalize_chunk(chunk);
    let choice = json!({
        "index": 0,
        "delta": {
            "content": null,
            "function_call": null,
            "tool_calls": [{
                "index": 0,
                "id": uuid::Uuid::new_v4().to_string(),
                "type": "function",
                "function": {"name": function, "arguments": arguments},
            }],
            "role": "assistant",
            "refusal": null,
        },
        "finish_reason": null,
        "logprobs": null,
    });
    match v["choices"].as_array_mut() {
        Some(cs) if !cs.is_empty() => cs[0] = choice,
        _ => v["choices"] = json!([choice]),
    }
    v
}

pub fn search_progress(chunk: &Value, call_id: &str, name: &str, arguments: &str) -> Value {
    let args = json!({"call_id": call_id, "function_name": name, "function_arguments": arguments});
    report(chunk, SEARCH_PROGRESS, args.to_string())
}

pub fn sources(chunk: &Value, call_id: &str, documents: &[Value]) -> Value {
    let args = json!({"call_id": call_id, "sources": documents});
    report(chunk, SEARCH_SOURCES, args.to_string())
}

pub fn append_message(chunk: &Value, message: &Value) -> Value {
    report(chunk, APPEND_CONVERSATION_MESSAGE, message.to_string())
}

/// Meilisearch's `StreamErrorEvent`.
pub fn error(kind: &str, code: Option<&str>, message: &str, param: Option<Value>) -> Value {
    json!({
        "event_id": uuid::Uuid::new_v4().to_string(),
        "type": "error",
        "error": {
            "type": kind,
            "code": code,
            "message": message,
            "param": param.unwrap_or(Value::Null),
            "event_id": null,
        },
    })
}

/// A provider's error body as Meilisearch relays it: OpenAI's `{"error": {…}}` shape, or for
/// Mistral its flat `{message, type, param, code}`; `None` when the body is neither.
pub fn provider_error(body: &[u8], mistral: bool) -> Option<Value> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let e: &Map<String, Value> = if mistral {
        v.as_object()?
    } else {
        v.get("error")?.as_object()?
    };
    let message = e.get("message")?.as_str()?;
    let kind = e.get("type")?.as_str()?;
    let opt_str = |k: &str| match e.get(k) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s.as_str())),
        Some(_) => None,
    };
    let code = opt_str("code")?;
    let param = opt_str("param")?.map(|p| Value::String(p.to_string()));
    Some(error(kind, code, message, param))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_take_async_openai_shape() {
        // A provider chunk and what Meilisearch 1.50 forwarded for it (captured).
        let chunk = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
            "model": "m1", "choices": [{"index": 0, "delta": {"content": " world"}, "finish_reason": null}]});
        assert_eq!(
            serde_json::to_string(&normalize_chunk(&chunk)).unwrap(),
            r#"{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":" world","function_call":null,"tool_calls":null,"role":null,"refusal":null},"finish_reason":null,"logprobs":null}],"created":1,"model":"m1","service_tier":null,"system_fingerprint":null,"object":"chat.completion.chunk","usage":null}"#
        );
    }

    #[test]
    fn provider_errors() {
        let e = provider_error(
            br#"{"error":{"message":"bad key","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
            false,
        )
        .unwrap();
        assert_eq!(e["type"], "error");
        assert_eq!(
            e["error"],
            json!({"type": "invalid_request_error", "code": "invalid_api_key", "message": "bad key", "param": null, "event_id": null})
        );
        assert!(provider_error(b"not json", false).is_none());
        let m = provider_error(
            br#"{"message":"m","type":"t","param":null,"code":null}"#,
            true,
        );
        assert_eq!(m.unwrap()["error"]["code"], Value::Null);
    }

    #[test]
    fn sse_framing() {
        let mut s = Sse::new();
        s.data(&json!({"a": 1}));
        s.done();
        assert_eq!(
            s.body,
            b"retry: 10000\n\ndata: {\"a\":1}\n\ndata: [DONE]\n\n"
        );
    }
}
