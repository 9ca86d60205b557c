//! The proxy's only I/O seam: send one request to a node or to the admin.
//!
//! The proxy is generic over [`Upstreams`] so that its dispatch logic (fan-out, retries on
//! another replica, quorum, relaying) runs in unit tests against an in-memory fake, and in
//! production against the transport's per-core `UpstreamClient` (see `handler.rs`).

use crate::http::types::{Method, Request, Response, UpstreamError};
use std::future::Future;
use std::time::Duration;

pub trait Upstreams {
    /// One request to the node at `address` (its base URL, e.g. `http://127.0.0.1:7700`).
    fn node(
        &self,
        address: &str,
        req: Request,
        timeout: Duration,
    ) -> impl Future<Output = Result<Response, UpstreamError>>;

    /// One request to the admin process over the control socket.
    fn admin(
        &self,
        req: Request,
        timeout: Duration,
    ) -> impl Future<Output = Result<Response, UpstreamError>>;

    /// Waits `d` (hedged reads). The transport's timer by default.
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> {
        monoio::time::sleep(d)
    }

    /// Metrics hook: nodes asked for one scattered request (retries included).
    fn record_fan_out(&self, _nodes: usize) {}

    /// Metrics hook: a response was answered without some shards.
    fn record_partial(&self) {}

    /// Metrics hook: a search was answered by an identical one in flight (coalescing).
    fn record_coalesced(&self) {}
}

/// Builds a request with a JSON body.
pub fn json_request(method: Method, path: String, query: String, body: Vec<u8>) -> Request {
    Request {
        method,
        path,
        query,
        headers: {
            // Room for what `with_node_auth` adds (authorization, x-request-id): no regrowth.
            let mut h = Vec::with_capacity(3);
            h.push(("content-type".into(), b"application/json".to_vec()));
            h
        },
        body,
    }
}

/// Adds `authorization: Bearer <key>` (nodes are always reached with the node master key).
pub fn with_node_auth(mut req: Request, node_key: Option<&str>, request_id: &str) -> Request {
    req.headers.retain(|(n, _)| n != "authorization");
    if let Some(k) = node_key {
        req.headers
            .push(("authorization".into(), format!("Bearer {k}").into_bytes()));
    }
    req.headers
        .push(("x-request-id".into(), request_id.as_bytes().to_vec()));
    req
}

/// Whether a node answer means "this node failed" (try another replica) rather than "the
/// client's request is wrong" (relay verbatim): 5xx and 429 are node-side trouble.
pub fn is_node_failure(status: u16) -> bool {
    status >= 500 || status == 429
}

/// Response headers worth relaying from an upstream answer: the transport manages framing
/// and connection headers and adds its own `x-request-id`.
pub fn relay_headers(resp: &Response) -> Vec<(String, Vec<u8>)> {
    resp.headers
        .iter()
        .filter(|(n, _)| {
            !matches!(
                n.as_str(),
                "content-length"
                    | "connection"
                    | "date"
                    | "transfer-encoding"
                    | "keep-alive"
                    | "x-request-id"
                    | "server"
            )
        })
        .cloned()
        .collect()
}

/// An upstream answer relayed to the client as is (status, body, content headers), except
/// that an error message naming Miroir's reserved attributes is rewritten as one
/// Meilisearch would have written it ([`miroir_core::node_message`]).
pub fn relay(resp: Response) -> Response {
    let headers = relay_headers(&resp);
    let body = if resp.status >= 400 {
        scrub_error_body(resp.body.into_vec()).into()
    } else {
        resp.body
    };
    Response {
        status: resp.status,
        headers,
        body,
    }
}

/// The error body with its `message` scrubbed; unchanged when there is nothing to do or it
/// is not a JSON object (error paths only, so parsing here costs nothing on the hot path).
fn scrub_error_body(body: Vec<u8>) -> Vec<u8> {
    let interesting = |b: &[u8]| b.windows(8).any(|w| w == b"_miroir_" || w == b"<..hidde");
    if !interesting(&body) {
        return body;
    }
    let Ok(serde_json::Value::Object(mut error)) = serde_json::from_slice(&body) else {
        return body;
    };
    let scrubbed = error
        .get("message")
        .and_then(serde_json::Value::as_str)
        .and_then(miroir_core::node_message::scrub_reserved);
    match scrubbed {
        Some(m) => {
            error.insert("message".into(), m.into());
            serde_json::to_vec(&error).unwrap_or(body)
        }
        None => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_auth_replaces_client_key() {
        let mut r = json_request(Method::Post, "/x".into(), String::new(), vec![]);
        r.headers
            .push(("authorization".into(), b"Bearer client".to_vec()));
        let r = with_node_auth(r, Some("node"), "rid");
        let auths: Vec<_> = r
            .headers
            .iter()
            .filter(|(n, _)| n == "authorization")
            .collect();
        assert_eq!(auths.len(), 1);
        assert_eq!(auths[0].1, b"Bearer node".to_vec());
        assert_eq!(r.header("x-request-id"), Some(&b"rid"[..]));
    }

    #[test]
    fn relayed_errors_do_not_name_reserved_attributes() {
        let body = br#"{"message":"Attribute `g` is not filterable. Available filterable attribute patterns are: `_miroir_shard`, `genre`.\n1:3 g = a","code":"invalid_search_filter","type":"invalid_request","link":"https://docs.meilisearch.com/errors#invalid_search_filter"}"#;
        let r = relay(Response {
            status: 400,
            headers: vec![],
            body: body.as_slice().into(),
        });
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v["message"],
            "Attribute `g` is not filterable. Available filterable attribute patterns are: `genre`.\n1:3 g = a"
        );
        assert_eq!(v["code"], "invalid_search_filter");
        // Successes and unrelated errors pass byte for byte.
        for status in [200, 404] {
            let b = br#"{"message":"`_miroir_x` Available a are: `_miroir_shard`."}"#.to_vec();
            let r = relay(Response {
                status,
                headers: vec![],
                body: b.clone().into(),
            });
            assert_eq!(r.body == b, status == 200);
        }
    }

    #[test]
    fn failure_classification() {
        assert!(is_node_failure(500) && is_node_failure(503) && is_node_failure(429));
        assert!(!is_node_failure(400) && !is_node_failure(404) && !is_node_failure(200));
    }

    #[test]
    fn relay_drops_managed_headers() {
        let resp = Response {
            status: 400,
            headers: vec![
                ("content-type".into(), b"application/json".to_vec()),
                ("content-length".into(), b"3".to_vec()),
                ("connection".into(), b"close".to_vec()),
            ],
            body: b"{}".into(),
        };
        let r = relay(resp);
        assert_eq!(r.headers.len(), 1);
        assert_eq!(r.status, 400);
    }
}
