//! The admin's own request/response values, independent of the HTTP stack so handlers are
//! plain async functions that tests can call directly, and one error type that renders as a
//! Meilisearch error body.

use bytes::Bytes;
use miroir_core::error::{link_for, CodedError, ErrorCode};
use serde::Serialize;
use serde_json::Value;

/// A fully received request (the HTTP layer has collected the body).
#[derive(Debug, Clone)]
pub struct Req {
    pub method: hyper::Method,
    /// Path without the query, percent-encoded as received.
    pub path: String,
    /// Raw query string without `?` (empty when absent).
    pub query: String,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
    /// `X-Request-Id` (received or generated), echoed on the response and in logs.
    pub request_id: String,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON, checked as Meilisearch checks JSON routes: first the Content-Type
    /// (absent → 415 `missing_content_type`; other than `application/json`, parameters
    /// such as `charset` allowed, case-insensitive → 415 `invalid_content_type`), then an
    /// empty body is `missing_payload` and invalid JSON `malformed_payload`.
    pub fn json(&self) -> Result<Value, ApiError> {
        let ct = self.header("content-type").map(str::as_bytes);
        if let Some(e) = miroir_core::content_type::json_content_type_error(ct) {
            return Err(e.into());
        }
        if self.body.is_empty() {
            return Err(ApiError::core(
                ErrorCode::MissingPayload,
                "A json payload is missing.",
            ));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            ApiError::core(
                ErrorCode::MalformedPayload,
                format!("The json payload provided is malformed. `{e}`."),
            )
        })
    }
}

/// A response ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct Resp {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Bytes,
}

impl Resp {
    pub fn json(status: u16, value: &impl Serialize) -> Resp {
        let body = serde_json::to_vec(value).expect("serialising JSON values cannot fail");
        Resp {
            status,
            content_type: "application/json",
            body: body.into(),
        }
    }

    pub fn raw_json(status: u16, body: impl Into<Bytes>) -> Resp {
        Resp {
            status,
            content_type: "application/json",
            body: body.into(),
        }
    }

    pub fn text(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
        Resp {
            status,
            content_type,
            body: body.into(),
        }
    }

    pub fn empty(status: u16) -> Resp {
        Resp {
            status,
            content_type: "application/json",
            body: Bytes::new(),
        }
    }

    /// The body parsed as JSON (tests and internal callers).
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// An error answered to the client: one of the codes of the core's table
/// (`miroir_core::error`), or a node's error relayed verbatim.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// A code of the table (its status, type and link come from there) and Miroir's message.
    Code { code: ErrorCode, message: String },
    /// A node's error body and status, forwarded unchanged.
    Node { status: u16, body: Value },
}

impl ApiError {
    pub fn core(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError::Code {
            code,
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::core(ErrorCode::Internal, message)
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::Code { code, .. } => code.status(),
            ApiError::Node { status, .. } => *status,
        }
    }

    /// The Meilisearch error body `{message, code, type, link}`.
    pub fn body(&self) -> Value {
        match self {
            ApiError::Code { code, message } => serde_json::json!({
                "message": message,
                "code": code.code(),
                "type": code.error_type().as_str(),
                "link": link_for(*code),
            }),
            ApiError::Node { body, .. } => body.clone(),
        }
    }

    pub fn into_resp(self) -> Resp {
        Resp::json(self.status(), &self.body())
    }
}

/// Every typed error of a layer ([`miroir_core::error::MeiliError`] included) answers with
/// its code.
impl<E: CodedError> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError::core(e.error_code(), e.error_message())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.body())
    }
}

/// How Meilisearch's deserializer (deserr) names a JSON value in "Invalid value type"
/// messages: `null`, or its kind and compact JSON (`a positive integer: `12``).
pub fn describe_json_value(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        v => format!("{}: `{v}`", json_kind(v)),
    }
}

/// The kind alone, as deserr names it (`null`, `a boolean`, `a positive integer`, …).
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_u64() => "a positive integer",
        Value::Number(n) if n.is_i64() => "a negative integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// deserr's "did you mean `x`? " hint for an unknown field (empty when nothing is close).
pub fn did_you_mean(received: &str, accepted: &[&str]) -> String {
    let allowed = match received.len() {
        0..=3 => return String::new(),
        4..=7 => 1,
        8..=12 => 2,
        13..=17 => 3,
        18..=24 => 4,
        _ => 5,
    };
    accepted
        .iter()
        .map(|a| (a, strsim::damerau_levenshtein(received, a)))
        .filter(|(_, d)| *d <= allowed)
        .min_by_key(|(_, d)| *d)
        .map(|(a, _)| format!("did you mean `{a}`? "))
        .unwrap_or_default()
}

/// deserr's "Invalid value type" error (`at` empty: the body itself).
pub fn invalid_value_type(code: ErrorCode, at: &str, expected: &str, v: &Value) -> ApiError {
    let at = if at.is_empty() {
        String::new()
    } else {
        format!(" at `{at}`")
    };
    ApiError::core(
        code,
        format!(
            "Invalid value type{at}: expected {expected}, but found {}",
            describe_json_value(v)
        ),
    )
}

/// deserr's "Unknown field" error, with its "did you mean" hint and the accepted fields.
pub fn unknown_field(
    code: ErrorCode,
    key: &str,
    inside: Option<&str>,
    accepted: &[&str],
) -> ApiError {
    let expected = accepted
        .iter()
        .map(|f| format!("`{f}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let place = inside.map(|p| format!(" inside `{p}`")).unwrap_or_default();
    ApiError::core(
        code,
        format!(
            "Unknown field `{key}`{place}: {}expected one of {expected}",
            did_you_mean(key, accepted)
        ),
    )
}

pub use miroir_core::uri::{encode_segment, query_pairs};

/// Decodes one component as [`query_pairs`] does (`%XX` escapes and `+` as space; invalid
/// escapes are kept literally, invalid UTF-8 replaced).
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_decode() {
        assert_eq!(
            query_pairs("statuses=enqueued%2Cfailed&limit=2&q=a+b&x"),
            vec![
                ("statuses".into(), "enqueued,failed".into()),
                ("limit".into(), "2".into()),
                ("q".into(), "a b".into()),
                ("x".into(), "".into())
            ]
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    fn req_with(content_type: Option<&str>, body: &'static str) -> Req {
        let mut headers = hyper::HeaderMap::new();
        if let Some(ct) = content_type {
            headers.insert("content-type", ct.parse().unwrap());
        }
        Req {
            method: hyper::Method::POST,
            path: "/indexes".into(),
            query: String::new(),
            headers,
            body: Bytes::from_static(body.as_bytes()),
            request_id: "r".into(),
        }
    }

    /// As a real Meilisearch 1.50 answers `POST /indexes` (captured from one).
    #[test]
    fn json_bodies_are_checked_like_meilisearch() {
        let e = req_with(None, "{}").json().unwrap_err();
        assert_eq!(e.status(), 415);
        assert_eq!(e.body()["code"], "missing_content_type");
        assert_eq!(e.body()["message"], "A Content-Type header is missing. Accepted values for the Content-Type header are: `application/json`");
        let e = req_with(Some("text/plain"), "{}").json().unwrap_err();
        assert_eq!(e.status(), 415);
        assert_eq!(e.body()["code"], "invalid_content_type");
        assert_eq!(e.body()["message"], "The Content-Type `text/plain` is invalid. Accepted values for the Content-Type header are: `application/json`");
        // The content type comes before the payload.
        let e = req_with(Some("text/plain"), "").json().unwrap_err();
        assert_eq!(e.body()["code"], "invalid_content_type");
        let e = req_with(Some("application/json"), "").json().unwrap_err();
        assert_eq!(e.body()["code"], "missing_payload");
        let ok = req_with(Some("Application/JSON; charset=utf-8"), "{\"a\":1}").json();
        assert_eq!(ok.unwrap(), serde_json::json!({"a": 1}));
    }

    #[test]
    fn values_and_hints_are_described_like_deserr() {
        use serde_json::json;
        assert_eq!(describe_json_value(&json!(12)), "a positive integer: `12`");
        assert_eq!(describe_json_value(&json!(-1)), "a negative integer: `-1`");
        assert_eq!(describe_json_value(&json!(1.5)), "a number: `1.5`");
        assert_eq!(describe_json_value(&json!("x")), "a string: `\"x\"`");
        assert_eq!(describe_json_value(&json!([])), "an array: `[]`");
        assert_eq!(
            describe_json_value(&json!({"a": 1})),
            "an object: `{\"a\":1}`"
        );
        assert_eq!(describe_json_value(&json!(null)), "null");
        assert_eq!(describe_json_value(&json!(true)), "a boolean: `true`");
        assert_eq!(
            did_you_mean("names", &["description", "name"]),
            "did you mean `name`? "
        );
        assert_eq!(did_you_mean("foo", &["description", "name"]), "");
        assert_eq!(did_you_mean("zzzzzz", &["description", "name"]), "");
    }

    #[test]
    fn errors_render_meilisearch_bodies() {
        let e = ApiError::core(ErrorCode::InvalidTaskStatuses, "bad");
        let b = e.body();
        assert_eq!(
            b["link"],
            "https://docs.meilisearch.com/errors#invalid_task_statuses"
        );
        assert_eq!(b.as_object().unwrap().len(), 4);
        let e = ApiError::core(ErrorCode::MiroirNotImplemented, "later");
        assert_eq!(e.status(), 501);
        assert!(e.body()["link"]
            .as_str()
            .unwrap()
            .ends_with("#miroir_not_implemented"));
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
    }
}
