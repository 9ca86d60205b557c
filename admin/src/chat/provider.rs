//! The LLM provider of a workspace: where Meilisearch 1.50 sends a completion request for each
//! `source` (async-openai's `OpenAIConfig`/`AzureConfig`) and the streamed answer read as
//! server-sent events.
//!
//! Providers are reached over `https://` (rustls on `ring`, Mozilla's roots compiled in) or
//! plain `http://` (local models, test fakes).

use super::events;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::sync::OnceLock;
use std::time::Duration;

type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// One pooled client for every provider (its TLS roots are parsed once).
fn client() -> &'static HttpsClient {
    static CLIENT: OnceLock<HttpsClient> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(30)));
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Client::builder(TokioExecutor::new()).build(connector)
    })
}

/// How long the provider may stay silent (before its headers, or between two chunks).
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// The largest error body read from a provider.
const MAX_ERROR_BODY: usize = 1 << 20;

/// What a query value keeps unescaped (as `application/x-www-form-urlencoded` writes it).
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'*');

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    OpenAi,
    AzureOpenAi,
    Mistral,
    VLlm,
}

impl Source {
    fn parse(s: Option<&str>) -> Source {
        match s {
            Some("azureOpenAi") => Source::AzureOpenAi,
            Some("mistral") => Source::Mistral,
            Some("vLlm") => Source::VLlm,
            _ => Source::OpenAi,
        }
    }

    /// Meilisearch's `ChatCompletionSource::system_role`: `developer` for current OpenAI
    /// models, `system` for the old ones and the other sources.
    pub fn system_role(self, model: &str) -> &'static str {
        match self {
            Source::OpenAi | Source::AzureOpenAi if !old_openai_model(model) => "developer",
            _ => "system",
        }
    }

    /// Usage is asked for (`stream_options.include_usage`) only from OpenAI and Azure.
    pub fn wants_usage(self) -> bool {
        matches!(self, Source::OpenAi | Source::AzureOpenAi)
    }
}

fn old_openai_model(model: &str) -> bool {
    [
        "gpt-3.5",
        "gpt-4",
        "gpt-4.1",
        "gpt-4.5",
        "gpt-4o",
        "chatgpt-4o",
    ]
    .iter()
    .any(|old| {
        model.starts_with(old)
            && model
                .chars()
                .nth(old.chars().count())
                .is_none_or(|last| last == '-')
    })
}

/// Where and how to call the provider.
#[derive(Debug, Clone)]
pub struct Provider {
    pub source: Source,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
}

impl Provider {
    /// From the workspace settings (as a node answers them) and the real API key.
    pub fn new(settings: &Value, api_key: Option<&str>) -> Provider {
        let s = |k: &str| settings.get(k).and_then(Value::as_str);
        let source = Source::parse(s("source"));
        let key = api_key.unwrap_or_default().to_string();
        match source {
            Source::AzureOpenAi => {
                let base = s("baseUrl").unwrap_or_default();
                let deployment = s("deploymentId").unwrap_or_default();
                // async-openai's `AzureConfig` default API version.
                let version = s("apiVersion").unwrap_or("2023-03-15-preview");
                Provider {
                    source,
                    url: format!(
                        "{base}/openai/deployments/{deployment}/chat/completions?api-version={}",
                        percent_encoding::utf8_percent_encode(version, QUERY_VALUE)
                    ),
                    headers: vec![("api-key", key)],
                }
            }
            _ => {
                let default_base = match source {
                    Source::OpenAi => "https://api.openai.com/v1/",
                    Source::Mistral => "https://api.mistral.ai/v1/",
                    // async-openai's own default when a vLLM workspace names no base URL.
                    _ => "https://api.openai.com/v1",
                };
                let base = s("baseUrl").unwrap_or(default_base);
                let mut headers = Vec::new();
                if let Some(org) = s("orgId").filter(|o| !o.is_empty()) {
                    headers.push(("openai-organization", org.to_string()));
                }
                if let Some(project) = s("projectId").filter(|p| !p.is_empty()) {
                    headers.push(("openai-project", project.to_string()));
                }
                headers.push(("authorization", format!("Bearer {key}")));
                headers.push(("openai-beta", "assistants=v2".to_string()));
                Provider {
                    source,
                    // async-openai joins base and path as they are.
                    url: format!("{base}/chat/completions"),
                    headers,
                }
            }
        }
    }
}

/// One streamed answer: chunks as they arrive, or the error event that ended it.
pub struct Stream {
    body: Option<hyper::body::Incoming>,
    buf: Vec<u8>,
    done: bool,
}

/// What the stream yields next.
pub enum Next {
    Chunk(Value),
    /// The event Meilisearch sends for a failed stream; the conversation stops.
    Error(Value),
    End,
}

fn transport_error(message: String) -> Value {
    events::error("transport_error", None, &message, None)
}

/// Sends the completion request; a provider that refuses it (status, content type) becomes the
/// error event Meilisearch relays for it.
pub async fn start(provider: &Provider, request: &Value) -> Result<Stream, Value> {
    let client = client();
    let mut builder = hyper::Request::builder()
        .method(hyper::Method::POST)
        .uri(&provider.url)
        .header("content-type", "application/json")
        .header("accept", "text/event-stream");
    for (k, v) in &provider.headers {
        builder = builder.header(*k, v);
    }
    let body = Bytes::from(serde_json::to_vec(request).expect("JSON values serialise"));
    let req = builder
        .body(Full::new(body))
        .map_err(|e| transport_error(format!("builder error for url ({}): {e}", provider.url)))?;
    let resp = match tokio::time::timeout(IDLE_TIMEOUT, client.request(req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            return Err(transport_error(format!(
                "error sending request for url ({}): {e}",
                provider.url
            )))
        }
        Err(_) => return Err(transport_error("operation timed out".into())),
    };
    let event_stream = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
    if resp.status().is_success() && event_stream {
        return Ok(Stream {
            body: Some(resp.into_body()),
            buf: Vec::new(),
            done: false,
        });
    }
    // reqwest-eventsource's `InvalidStatusCode`/`InvalidContentType`: Meilisearch decodes
    // the body as the provider's error; a body that is not one is a decoding failure.
    let body = http_body_util::Limited::new(resp.into_body(), MAX_ERROR_BODY)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Err(
        events::provider_error(&body, provider.source == Source::Mistral).unwrap_or_else(|| {
            events::error("reqwest_error", None, "error decoding response body", None)
        }),
    )
}

impl Stream {
    /// The next `data:` chunk, parsed.
    pub async fn next(&mut self) -> Next {
        loop {
            if let Some(data) = self.take_event() {
                if data == "[DONE]" {
                    self.done = true;
                    return Next::End;
                }
                if data.is_empty() {
                    continue;
                }
                return match serde_json::from_str(&data) {
                    Ok(v) => Next::Chunk(v),
                    Err(e) => Next::Error(events::error(
                        "json_deserialize_error",
                        Some("internal"),
                        &e.to_string(),
                        None,
                    )),
                };
            }
            if self.done {
                return Next::End;
            }
            let Some(body) = self.body.as_mut() else {
                return Next::End;
            };
            match tokio::time::timeout(IDLE_TIMEOUT, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                // The provider closed the stream: what is buffered is the last event.
                Ok(None) => {
                    self.body = None;
                    if !self.buf.is_empty() {
                        self.buf.extend_from_slice(b"\n\n");
                    }
                }
                Ok(Some(Err(e))) => {
                    self.done = true;
                    return Next::Error(transport_error(format!(
                        "error decoding response body: {e}"
                    )));
                }
                Err(_) => {
                    self.done = true;
                    return Next::Error(transport_error("operation timed out".into()));
                }
            }
        }
    }

    /// The data of the next complete event in the buffer (its `data:` lines joined).
    fn take_event(&mut self) -> Option<String> {
        let (end, sep) = find_event_end(&self.buf)?;
        let raw: Vec<u8> = self.buf.drain(..end + sep).take(end).collect();
        let text = String::from_utf8_lossy(&raw);
        let mut data: Vec<&str> = Vec::new();
        for line in text.lines() {
            if let Some(d) = line.strip_prefix("data:") {
                data.push(d.strip_prefix(' ').unwrap_or(d));
            }
        }
        Some(data.join("\n"))
    }
}

/// The end of the first event (a blank line) and the length of its separator.
fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_and_headers_per_source() {
        let p = Provider::new(
            &json!({"source": "vLlm", "baseUrl": "http://127.0.0.1:9/v1", "orgId": null}),
            Some("sk"),
        );
        assert_eq!(p.url, "http://127.0.0.1:9/v1/chat/completions");
        assert_eq!(
            p.headers,
            vec![
                ("authorization", "Bearer sk".to_string()),
                ("openai-beta", "assistants=v2".to_string())
            ]
        );
        let p = Provider::new(&json!({"source": "openAi", "orgId": "o"}), None);
        assert_eq!(p.url, "https://api.openai.com/v1//chat/completions");
        assert_eq!(p.headers[0], ("openai-organization", "o".to_string()));
        let p = Provider::new(
            &json!({"source": "azureOpenAi", "baseUrl": "http://a", "deploymentId": "d", "apiVersion": "2024-01-01"}),
            Some("k"),
        );
        assert_eq!(
            p.url,
            "http://a/openai/deployments/d/chat/completions?api-version=2024-01-01"
        );
        assert_eq!(p.headers, vec![("api-key", "k".to_string())]);
    }

    #[tokio::test]
    async fn https_providers_are_reached_over_tls() {
        // Nothing listens on port 1: a TLS-capable client fails to connect, where a plain
        // HTTP client refuses the scheme before trying.
        let p = Provider::new(
            &json!({"source": "openAi", "baseUrl": "https://127.0.0.1:1/v1"}),
            None,
        );
        let Err(e) = start(&p, &json!({})).await else {
            panic!("nothing listens there")
        };
        let message = e["error"]["message"].as_str().unwrap();
        assert_eq!(e["error"]["type"], "transport_error");
        assert!(!message.contains("scheme is not http"), "{message}");
        assert!(
            message.contains("https://127.0.0.1:1/v1/chat/completions"),
            "{message}"
        );
    }

    #[test]
    fn system_roles() {
        assert_eq!(Source::OpenAi.system_role("gpt-4o"), "system");
        assert_eq!(Source::OpenAi.system_role("gpt-4o-mini"), "system");
        assert_eq!(Source::OpenAi.system_role("gpt-5"), "developer");
        assert_eq!(Source::OpenAi.system_role("gpt-4.1"), "system");
        assert_eq!(Source::Mistral.system_role("gpt-5"), "system");
    }

    #[test]
    fn events_split_on_blank_lines() {
        let mut s = Stream {
            body: None,
            buf: b"data: {\"a\":1}\n\n: comment\r\ndata: [DONE]\r\n\r\n".to_vec(),
            done: false,
        };
        assert_eq!(s.take_event().as_deref(), Some("{\"a\":1}"));
        assert_eq!(s.take_event().as_deref(), Some("[DONE]"));
        assert_eq!(s.take_event(), None);
    }
}
