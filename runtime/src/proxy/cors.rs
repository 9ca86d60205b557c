//! CORS as Meilisearch answers it: browsers call Meilisearch directly (with tenant tokens,
//! e.g. instant-meilisearch), so Miroir must pass their preflights and decorate answers the
//! same way. Meilisearch wraps every route in `actix-cors` configured with `allow_any_origin`,
//! `send_wildcard`, `allow_any_method`, `allow_any_header` and `max_age(86400)`, which gives:
//!
//! - every `OPTIONS` request is a preflight, answered before routing and authentication:
//!   `200` with `Access-Control-Allow-Origin: *`, the allowed methods, the requested headers
//!   echoed, `Access-Control-Max-Age: 86400`; a missing or invalid
//!   `Access-Control-Request-Method` is a plain-text `400`;
//! - any other request carrying `Origin` gets `Access-Control-Allow-Origin: *` and `Vary` on
//!   its answer, errors included.

use crate::http::types::{Method, Request, Response};

/// The methods `allow_any_method` allows (actix's set of standard methods).
const ALLOWED_METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "CONNECT", "PATCH", "TRACE",
];

const VARY: &[u8] = b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

fn plain_400(message: &str) -> Response {
    Response {
        status: 400,
        headers: vec![("content-type".into(), b"text/plain; charset=utf-8".to_vec())],
        body: message.as_bytes().into(),
    }
}

/// The answer to a preflight (`OPTIONS`) request.
pub fn preflight(req: &Request) -> Response {
    let Some(method) = req.header("access-control-request-method") else {
        return plain_400(
            "Request header `Access-Control-Request-Method` is required but is missing.",
        );
    };
    let is_token = !method.is_empty()
        && method
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b));
    if !is_token {
        return plain_400("Request header `Access-Control-Request-Method` has an invalid value.");
    }
    if !ALLOWED_METHODS.iter().any(|m| m.as_bytes() == method) {
        return plain_400("Requested method is not allowed.");
    }
    let mut headers = vec![
        ("access-control-allow-origin".to_string(), b"*".to_vec()),
        (
            "access-control-allow-methods".to_string(),
            ALLOWED_METHODS.join(", ").into_bytes(),
        ),
    ];
    if let Some(h) = req.header("access-control-request-headers") {
        headers.push(("access-control-allow-headers".into(), h.to_vec()));
    }
    headers.push(("access-control-max-age".into(), b"86400".to_vec()));
    headers.push(("vary".into(), VARY.to_vec()));
    Response {
        status: 200,
        headers,
        body: Default::default(),
    }
}

/// Whether `req` is a preflight.
pub fn is_preflight(req: &Request) -> bool {
    req.method == Method::Options
}

/// Adds the CORS headers to the answer of a request that carried `Origin`.
pub fn decorate(origin: bool, resp: &mut Response) {
    if !origin {
        return;
    }
    resp.headers
        .push(("access-control-allow-origin".into(), b"*".to_vec()));
    resp.headers.push(("vary".into(), VARY.to_vec()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(headers: &[(&str, &str)]) -> Request {
        Request {
            method: Method::Options,
            path: "/indexes/movies/search".into(),
            query: String::new(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
            body: Vec::new(),
        }
    }

    #[test]
    fn preflight_allows_any_origin_method_and_header() {
        let r = preflight(&options(&[
            ("origin", "https://shop.example"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization, content-type",
            ),
        ]));
        assert_eq!(r.status, 200);
        let h = |n: &str| {
            r.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(h("access-control-allow-origin").as_deref(), Some("*"));
        assert!(h("access-control-allow-methods").unwrap().contains("POST"));
        assert_eq!(
            h("access-control-allow-headers").as_deref(),
            Some("authorization, content-type")
        );
        assert_eq!(h("access-control-max-age").as_deref(), Some("86400"));
    }

    #[test]
    fn preflight_without_a_method_is_400() {
        assert_eq!(preflight(&options(&[("origin", "x")])).status, 400);
        let bad = options(&[("access-control-request-method", "PO ST")]);
        assert_eq!(preflight(&bad).status, 400);
        let unknown = options(&[("access-control-request-method", "FOO")]);
        assert_eq!(preflight(&unknown).status, 400);
    }

    #[test]
    fn answers_to_origin_requests_are_decorated() {
        let mut r = Response::json(403, b"{}".to_vec());
        decorate(true, &mut r);
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| k == "access-control-allow-origin" && v == b"*"));
        let mut r = Response::json(200, b"{}".to_vec());
        decorate(false, &mut r);
        assert!(r.headers.is_empty() || !r.headers.iter().any(|(k, _)| k.starts_with("access")));
    }
}
