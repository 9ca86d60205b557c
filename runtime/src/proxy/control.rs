//! Control-path forwarding to the admin process (docs/internals/control-protocol.md §2.1).
//!
//! Tasks, index lifecycle, settings, keys, stats, swaps, dumps, snapshots, experimental
//! features and `/_miroir/*` are owned by the admin (durable state, broadcasts with rollback).
//! The data plane has already authenticated the client; it forwards method, path, query,
//! body, `Content-Type`/`Content-Encoding` and `X-Request-Id` with `Miroir-Control-Version: 1`
//! and `Miroir-Principal`, and relays the admin's answer unchanged. The client's
//! `Authorization` is removed — except on `/_miroir/*`, where the admin checks the admin key
//! (`Authorization` or `X-Admin-Key`) itself.
//!
//! An unreachable admin is `503 miroir_admin_unavailable` at once (connect errors on a Unix
//! socket are immediate); it never hangs a client.
//!
//! The data plane's own calls (ping, prepare-write, task registration; §2.2) are built by
//! [`internal_request`]. Paths, headers and bodies come from `miroir_core::control`, which
//! the admin decodes with.

use crate::http::stream;
use crate::http::types::{Method, Request, Response, UpstreamError};
use crate::proxy::auth::Principal;
use crate::proxy::router::{ControlRoute, CHAT_COMPLETIONS};
use crate::proxy::upstream::{relay, Upstreams};
use crate::proxy::{admin_unavailable, error, Proxy, CONTROL_TIMEOUT};
use miroir_core::content_type::json_content_type_error;
use miroir_core::control::{self, Endpoint, CONTROL_VERSION, PRINCIPAL_HEADER, VERSION_HEADER};
use miroir_core::{ErrorCode, MeiliError};

/// The request sent to the admin for a forwarded client request.
pub fn control_request(
    req: Request,
    admin_prefix: bool,
    principal: &Principal,
    request_id: &str,
) -> Request {
    let keep = |name: &str| {
        matches!(name, "content-type" | "content-encoding")
            || (admin_prefix && matches!(name, "authorization" | "x-admin-key"))
    };
    let mut headers: Vec<(String, Vec<u8>)> =
        req.headers.into_iter().filter(|(n, _)| keep(n)).collect();
    headers.push((VERSION_HEADER.into(), CONTROL_VERSION.as_bytes().to_vec()));
    headers.push((
        PRINCIPAL_HEADER.into(),
        wire_principal(principal).to_string().into_bytes(),
    ));
    headers.push(("x-request-id".into(), request_id.as_bytes().to_vec()));
    Request {
        method: req.method,
        path: req.path,
        query: req.query,
        headers,
        body: req.body,
    }
}

/// What the admin is told about the caller: a tenant token acts for the API key that signed
/// it (the admin applies that key's index restrictions).
pub fn wire_principal(p: &Principal) -> control::Principal<'_> {
    match p {
        Principal::Master => control::Principal::Master,
        Principal::Key { uid, .. } => control::Principal::Key(uid),
        Principal::Tenant(t) => control::Principal::Key(&t.api_key_uid),
    }
}

/// A data plane → admin call (control-protocol.md §2.2): the endpoint's method and path, the
/// protocol version, the request id, and the JSON body if any.
pub fn internal_request(
    endpoint: Endpoint<'_>,
    body: Option<Vec<u8>>,
    request_id: &str,
) -> Request {
    let mut headers = Vec::with_capacity(3);
    if body.is_some() {
        headers.push(("content-type".into(), b"application/json".to_vec()));
    }
    headers.push((VERSION_HEADER.into(), CONTROL_VERSION.as_bytes().to_vec()));
    headers.push(("x-request-id".into(), request_id.as_bytes().to_vec()));
    Request {
        method: method_of(endpoint),
        path: endpoint.path().into_owned(),
        query: String::new(),
        headers,
        body: body.unwrap_or_default(),
    }
}

/// The transport's method for an endpoint (exhaustive: a new endpoint must be placed here;
/// the tests check it agrees with [`Endpoint::method`]).
fn method_of(endpoint: Endpoint<'_>) -> Method {
    match endpoint {
        Endpoint::Ping => Method::Get,
        Endpoint::Heartbeat
        | Endpoint::RegisterTask
        | Endpoint::RegisterFailedTask
        | Endpoint::PrepareWrite { .. } => Method::Post,
    }
}

/// A chat completion lasts as long as its provider round trips and searches (up to 20).
const CHAT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// What Meilisearch (actix-web-lab's `Sse`) sends with an event stream: no proxy buffering,
/// no caching, and no compression.
fn event_stream_headers() -> [(String, Vec<u8>); 3] {
    [
        ("content-encoding".into(), b"identity".to_vec()),
        ("x-accel-buffering".into(), b"no".to_vec()),
        ("cache-control".into(), b"no-cache".to_vec()),
    ]
}

/// Maps a failed admin call to the client's error.
pub fn admin_error(e: &UpstreamError) -> MeiliError {
    match e {
        UpstreamError::Connect(_) => admin_unavailable(),
        UpstreamError::Timeout => MeiliError::new(
            ErrorCode::MiroirAdminUnavailable,
            "The Miroir admin process did not answer in time.",
        ),
        other => MeiliError::new(
            ErrorCode::MiroirAdminUnavailable,
            format!("The Miroir admin process failed to answer: {other:?}"),
        ),
    }
}

/// Control routes whose body Meilisearch reads as JSON: it refuses them with `415` unless the
/// `Content-Type` is `application/json` (parameters allowed), before reading the body.
fn takes_json(method: Method, template: &str) -> bool {
    use Method::{Patch, Post, Put};
    matches!(
        (method, template),
        (Post, "/indexes")
            | (Patch, "/indexes/{uid}")
            | (Patch, "/indexes/{uid}/settings")
            | (Put | Patch, "/indexes/{uid}/settings/{setting}")
            | (Post, "/keys")
            | (Patch, "/keys/{key}")
            | (Post, "/swap-indexes")
            | (Patch, "/experimental-features")
            | (Patch, "/chats/{workspace}/settings")
            | (Post, CHAT_COMPLETIONS)
            | (Post, "/webhooks")
            | (Patch, "/webhooks/{uuid}")
            | (Post, "/dynamic-search-rules")
            | (Patch, "/dynamic-search-rules/{uid}")
            | (Patch | Post, "/network" | "/network/control")
    )
}

impl<U: Upstreams> Proxy<U> {
    pub(crate) async fn forward_control(
        &self,
        route: &ControlRoute,
        req: Request,
        principal: &Principal,
        rid: &str,
    ) -> Response {
        if takes_json(req.method, route.template) {
            if let Some(e) = json_content_type_error(req.header("content-type")) {
                return error(&e);
            }
        }
        if let Ok(body) = req.decoded_body(self.config.server.max_body_bytes as usize) {
            let checked = crate::proxy::scope::check_body_indexes(
                req.method,
                route.template,
                &body,
                principal,
            );
            if let Err(e) = checked {
                return error(&e);
            }
        }
        if route.template == CHAT_COMPLETIONS {
            return self.forward_chat(req, principal, rid).await;
        }
        let admin_prefix = route.template.starts_with("/_miroir");
        let fwd = control_request(req, admin_prefix, principal, rid);
        match self.up.admin(fwd, CONTROL_TIMEOUT).await {
            Ok(resp) => relay(resp),
            Err(e) => error(&admin_error(&e)),
        }
    }

    /// `POST /chats/{workspace}/chat/completions`: the admin runs the conversation and
    /// searches through this data plane as the caller, so the caller's `Authorization` goes
    /// along. The admin's events are relayed as they arrive (`http::stream`, on a connection
    /// of its own: the pooled control client reads whole answers), with the headers
    /// Meilisearch sends on its event streams.
    async fn forward_chat(&self, req: Request, principal: &Principal, rid: &str) -> Response {
        let authorization = req.header("authorization").map(<[u8]>::to_vec);
        let mut fwd = control_request(req, false, principal, rid);
        if let Some(a) = authorization {
            fwd.headers.push(("authorization".into(), a));
        }
        let socket = self.config.control_socket_path();
        let (head, body) = match stream::request(&socket, &fwd, CHAT_TIMEOUT).await {
            Ok(answer) => answer,
            Err(e) => return error(&admin_error(&e)),
        };
        let event_stream = head.status == 200
            && head
                .header("content-type")
                .is_some_and(|v| v.starts_with(b"text/event-stream"));
        if !event_stream {
            // An error answered before the conversation started: a whole JSON body.
            return match body.collect().await {
                Ok(b) => relay(Response {
                    body: b.into(),
                    ..head
                }),
                Err(e) => error(&admin_error(&e)),
            };
        }
        let mut resp = relay(head);
        resp.headers.extend(event_stream_headers());
        stream::attach(&mut resp, body);
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> Request {
        Request {
            method: Method::Patch,
            path: "/indexes/m/settings".into(),
            query: "a=1".into(),
            headers: vec![
                ("authorization".into(), b"Bearer client".to_vec()),
                ("x-admin-key".into(), b"adm".to_vec()),
                ("content-type".into(), b"application/json".to_vec()),
                ("cookie".into(), b"x".to_vec()),
            ],
            body: b"{}".to_vec(),
        }
    }

    #[test]
    fn json_routes_need_a_json_content_type() {
        assert!(takes_json(Method::Post, "/indexes"));
        assert!(takes_json(Method::Put, "/indexes/{uid}/settings/{setting}"));
        assert!(!takes_json(
            Method::Delete,
            "/indexes/{uid}/settings/{setting}"
        ));
        assert!(!takes_json(Method::Post, "/tasks/cancel"));
        assert!(json_content_type_error(req().header("content-type")).is_none());
    }

    #[test]
    fn client_auth_removed_principal_added() {
        let p = Principal::Key {
            uid: "u1".into(),
            indexes: vec![],
        };
        let r = control_request(req(), false, &p, "rid-1");
        assert!(r.header("authorization").is_none());
        assert!(r.header("x-admin-key").is_none());
        assert!(r.header("cookie").is_none());
        assert_eq!(r.header("miroir-control-version"), Some(&b"1"[..]));
        assert_eq!(r.header("miroir-principal"), Some(&b"key:u1"[..]));
        assert_eq!(r.header("x-request-id"), Some(&b"rid-1"[..]));
        assert_eq!(r.header("content-type"), Some(&b"application/json"[..]));
        assert_eq!(
            (r.path.as_str(), r.query.as_str(), r.body.as_slice()),
            ("/indexes/m/settings", "a=1", &b"{}"[..])
        );
    }

    #[test]
    fn admin_prefix_keeps_admin_credentials() {
        let r = control_request(req(), true, &Principal::Master, "r");
        assert_eq!(r.header("authorization"), Some(&b"Bearer client"[..]));
        assert_eq!(r.header("x-admin-key"), Some(&b"adm"[..]));
        assert_eq!(r.header("miroir-principal"), Some(&b"master"[..]));
    }

    #[test]
    fn the_admin_decodes_the_principal_the_data_plane_sends() {
        let key = Principal::Key {
            uid: "u1".into(),
            indexes: vec!["movies".into()],
        };
        for (p, expected) in [
            (Principal::Master, control::Principal::Master),
            (key, control::Principal::Key("u1")),
        ] {
            let r = control_request(req(), false, &p, "r");
            let sent = std::str::from_utf8(r.header(PRINCIPAL_HEADER).unwrap()).unwrap();
            // The admin's decoding (`tasks::key_patterns`).
            assert_eq!(control::Principal::parse(sent), Some(expected));
        }
    }

    #[test]
    fn internal_requests_follow_the_endpoint_table() {
        for e in Endpoint::ALL {
            let r = internal_request(e, None, "rid");
            assert_eq!(r.method.as_str(), e.method(), "{e:?}");
            assert_eq!(r.path, e.path());
            assert_eq!(r.header(VERSION_HEADER), Some(CONTROL_VERSION.as_bytes()));
            assert_eq!(r.header("x-request-id"), Some(&b"rid"[..]));
            assert!(r.header("content-type").is_none() && r.body.is_empty());
            // What the admin routes with: the path split on `/`.
            let segs: Vec<&str> = r.path.split('/').filter(|s| !s.is_empty()).collect();
            assert_eq!(Endpoint::parse(r.method.as_str(), &segs), Some(e));
        }
        let r = internal_request(Endpoint::RegisterTask, Some(b"{}".to_vec()), "rid");
        assert_eq!(r.header("content-type"), Some(&b"application/json"[..]));
        assert_eq!(r.body, b"{}");
    }

    #[test]
    fn admin_errors_are_503() {
        for e in [
            UpstreamError::Connect("x".into()),
            UpstreamError::Timeout,
            UpstreamError::Io("x".into()),
        ] {
            let m = admin_error(&e);
            assert_eq!(
                (m.code, m.status()),
                (ErrorCode::MiroirAdminUnavailable, 503)
            );
        }
    }
}
