//! The admin REST API as `miroir-ctl` calls it: one request, the answer's status and JSON.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// `method url+path` with the admin key as Bearer and an optional JSON body; the answer's
/// status and JSON (`Null` when the body is not JSON). Transport failures are messages.
pub async fn call(
    url: &str,
    admin_key: Option<&str>,
    method: hyper::Method,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = hyper::Request::builder().method(method).uri(format!(
        "{}{}",
        url.trim_end_matches('/'),
        path
    ));
    if let Some(k) = admin_key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let bytes = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Bytes::from(serde_json::to_vec(b).expect("JSON serialises"))
        }
        None => Bytes::new(),
    };
    let req = req.body(Full::new(bytes)).map_err(|e| e.to_string())?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}
