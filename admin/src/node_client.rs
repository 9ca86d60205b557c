//! HTTP client from the admin to the Meilisearch nodes: one pooled hyper client, the node
//! master key as Bearer, a deadline on every call, JSON in and out.
//!
//! Node errors are data, not failures of the call: a 4xx/5xx answer comes back as
//! [`NodeResponse`] with its status so broadcasts can forward the node's error verbatim. Only
//! transport problems (connect, timeout, unreadable body) are [`NodeError`]s.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Method;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum NodeError {
    #[error("invalid node URL {0}")]
    BadUrl(String),
    #[error("request to node failed: {0}")]
    Transport(String),
    #[error("node did not answer within {0:?}")]
    Timeout(Duration),
}

/// A node's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeResponse {
    pub status: u16,
    pub body: Bytes,
}

impl NodeResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A request body with its media type.
#[derive(Debug, Clone)]
pub struct Payload {
    pub bytes: Bytes,
    pub content_type: std::borrow::Cow<'static, str>,
    pub content_encoding: Option<&'static str>,
}

/// The largest node answer the admin reads (settings, stats, task and index listings): a node
/// that answers more — broken, or not a Meilisearch — costs a bounded amount of memory.
pub const MAX_NODE_RESPONSE: usize = 64 * 1024 * 1024;

#[derive(Clone)]
pub struct NodeClient {
    client: Client<HttpConnector, Full<Bytes>>,
    /// `Bearer <node master key>`, if the nodes have one.
    auth: Option<String>,
    pub timeout: Duration,
}

impl NodeClient {
    pub fn new(node_master_key: Option<&str>, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        NodeClient {
            client,
            auth: node_master_key.map(|k| format!("Bearer {k}")),
            timeout,
        }
    }

    /// Sends `method base_url+path_and_query` with an optional JSON body.
    pub async fn send(
        &self,
        base_url: &str,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<NodeResponse, NodeError> {
        let bytes =
            body.map(|b| Bytes::from(serde_json::to_vec(b).expect("JSON values serialise")));
        self.send_raw(base_url, method, path_and_query, bytes, self.timeout)
            .await
    }

    pub async fn send_raw(
        &self,
        base_url: &str,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Result<NodeResponse, NodeError> {
        let body = body.map(|b| Payload {
            bytes: b,
            content_type: "application/json".into(),
            content_encoding: None,
        });
        self.send_payload(base_url, method, path_and_query, body, timeout)
            .await
    }

    /// The same client with another bearer token (a target that is not one of the nodes,
    /// e.g. an export's destination).
    pub fn with_bearer(&self, key: Option<&str>) -> NodeClient {
        NodeClient {
            auth: key.map(|k| format!("Bearer {k}")),
            ..self.clone()
        }
    }

    /// [`NodeClient::send_raw`] with the body's `Content-Type` (documents may be NDJSON or
    /// CSV, e.g. a replayed hint).
    pub async fn send_typed(
        &self,
        base_url: &str,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
        content_type: &str,
        timeout: Duration,
    ) -> Result<NodeResponse, NodeError> {
        let body = body.map(|b| Payload {
            bytes: b,
            content_type: content_type.to_string().into(),
            content_encoding: None,
        });
        self.send_payload(base_url, method, path_and_query, body, timeout)
            .await
    }

    /// Sends a body of any content type (and encoding).
    pub async fn send_payload(
        &self,
        base_url: &str,
        method: Method,
        path_and_query: &str,
        body: Option<Payload>,
        timeout: Duration,
    ) -> Result<NodeResponse, NodeError> {
        let url = format!("{}{}", base_url.trim_end_matches('/'), path_and_query);
        let uri: hyper::Uri = url.parse().map_err(|_| NodeError::BadUrl(url.clone()))?;
        let mut builder = hyper::Request::builder().method(method).uri(uri);
        if let Some(auth) = &self.auth {
            builder = builder.header(hyper::header::AUTHORIZATION, auth);
        }
        let bytes = match body {
            Some(p) => {
                builder = builder.header(hyper::header::CONTENT_TYPE, p.content_type.as_ref());
                if let Some(e) = p.content_encoding {
                    builder = builder.header(hyper::header::CONTENT_ENCODING, e);
                }
                p.bytes
            }
            None => Bytes::new(),
        };
        let req = builder
            .body(Full::new(bytes))
            .map_err(|e| NodeError::Transport(e.to_string()))?;
        let call = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| NodeError::Transport(e.to_string()))?;
            let status = resp.status().as_u16();
            let body = http_body_util::Limited::new(resp.into_body(), MAX_NODE_RESPONSE)
                .collect()
                .await
                .map_err(|e| NodeError::Transport(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok(NodeResponse { status, body })
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(NodeError::Timeout(timeout)),
        }
    }
}
