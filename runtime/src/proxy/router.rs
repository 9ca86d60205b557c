//! Phase 1 — **route**: method + path → [`Route`].
//!
//! The router is a pure function over the request line. It decides three things the later
//! phases need before anything else happens:
//! - which handler runs (search, routed write, control-path forward, …);
//! - which Meilisearch *action* the request needs ([`Route::action`]) and on which index, for
//!   the auth phase;
//! - the route *template* (`/indexes/{uid}/search`) used as the metrics label, so label
//!   cardinality never depends on client input.
//!
//! Unknown paths are 404, known paths with another method are 405.
//!
//! Meilisearch (actix-web) answers an unknown route with an empty 404 and a known route with
//! a wrong method with an empty 405, and so does Miroir ([`RouteError::response`]): an SDK
//! suite measured against 1.50 noticed the body Miroir used to send.

use crate::http::types::Method;
use miroir_core::{CodedError, ErrorCode};

/// How a document write treats existing documents (Meilisearch: POST replaces, PUT merges).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// `POST /indexes/{uid}/documents` — `documentAdditionOrUpdate` replacing documents.
    Replace,
    /// `PUT /indexes/{uid}/documents` — `documentAdditionOrUpdate` merging fields.
    Update,
}

/// A request the data plane does not handle itself: forwarded to the admin process over the
/// control socket (docs/internals/control-protocol.md §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlRoute {
    /// Metrics label.
    pub template: &'static str,
    /// Meilisearch action the client's key must grant; `None` for `/_miroir/*` (the admin
    /// checks the admin key itself).
    pub action: Option<&'static str>,
    /// Index named in the path, if any (for key index restrictions).
    pub index: Option<String>,
}

/// Every route the data plane knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /health` — answered locally, no auth (as Meilisearch).
    Health,
    /// `GET /version` — from a healthy node, cached.
    Version,
    /// `GET /_miroir/metrics` — this process's Prometheus text (admin key).
    Metrics,
    Search {
        index: String,
    },
    MultiSearch,
    FacetSearch {
        index: String,
    },
    /// `GET`/`POST /indexes/{uid}/similar` (see `proxy::similar`).
    Similar {
        index: String,
    },
    DocumentGet {
        index: String,
        id: String,
    },
    DocumentsList {
        index: String,
    },
    DocumentsFetch {
        index: String,
    },
    DocumentsWrite {
        index: String,
        mode: WriteMode,
    },
    DocumentsDeleteBatch {
        index: String,
    },
    DocumentDelete {
        index: String,
        id: String,
    },
    DocumentsDeleteByFilter {
        index: String,
    },
    DocumentsDeleteAll {
        index: String,
    },
    Control(ControlRoute),
}

impl Route {
    /// The route template, for metrics labels and logs.
    pub fn template(&self) -> &'static str {
        match self {
            Route::Health => "/health",
            Route::Version => "/version",
            Route::Metrics => "/_miroir/metrics",
            Route::Search { .. } => "/indexes/{uid}/search",
            Route::MultiSearch => "/multi-search",
            Route::FacetSearch { .. } => "/indexes/{uid}/facet-search",
            Route::Similar { .. } => "/indexes/{uid}/similar",
            Route::DocumentGet { .. } | Route::DocumentDelete { .. } => {
                "/indexes/{uid}/documents/{id}"
            }
            Route::DocumentsList { .. }
            | Route::DocumentsWrite { .. }
            | Route::DocumentsDeleteAll { .. } => "/indexes/{uid}/documents",
            Route::DocumentsFetch { .. } => "/indexes/{uid}/documents/fetch",
            Route::DocumentsDeleteBatch { .. } => "/indexes/{uid}/documents/delete-batch",
            Route::DocumentsDeleteByFilter { .. } => "/indexes/{uid}/documents/delete",
            Route::Control(c) => c.template,
        }
    }

    /// The Meilisearch action a key needs for this route. `None`: no key check here (public
    /// `/health`; `/_miroir/*` which uses the admin key; multi-search, which checks `search`
    /// per query index).
    pub fn action(&self) -> Option<&'static str> {
        match self {
            Route::Health | Route::Metrics | Route::MultiSearch => None,
            Route::Version => Some("version"),
            Route::Search { .. } | Route::FacetSearch { .. } | Route::Similar { .. } => {
                Some("search")
            }
            Route::DocumentGet { .. }
            | Route::DocumentsList { .. }
            | Route::DocumentsFetch { .. } => Some("documents.get"),
            Route::DocumentsWrite { .. } => Some("documents.add"),
            Route::DocumentsDeleteBatch { .. }
            | Route::DocumentDelete { .. }
            | Route::DocumentsDeleteByFilter { .. }
            | Route::DocumentsDeleteAll { .. } => Some("documents.delete"),
            Route::Control(c) => c.action,
        }
    }

    /// The index named in the path, if any.
    pub fn index(&self) -> Option<&str> {
        match self {
            Route::Search { index }
            | Route::FacetSearch { index }
            | Route::Similar { index }
            | Route::DocumentGet { index, .. }
            | Route::DocumentsList { index }
            | Route::DocumentsFetch { index }
            | Route::DocumentsWrite { index, .. }
            | Route::DocumentsDeleteBatch { index }
            | Route::DocumentDelete { index, .. }
            | Route::DocumentsDeleteByFilter { index }
            | Route::DocumentsDeleteAll { index } => Some(index),
            Route::Control(c) => c.index.as_deref(),
            Route::Health | Route::Version | Route::Metrics | Route::MultiSearch => None,
        }
    }

    /// Whether the route is served under the admin key rather than client keys.
    pub fn is_admin_prefix(&self) -> bool {
        matches!(self, Route::Metrics)
            || matches!(self, Route::Control(c) if c.template.starts_with("/_miroir"))
    }
}

/// Why a request line matched no route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    MethodNotAllowed,
}

impl RouteError {
    /// The answer: status only, empty body, as Meilisearch's router gives it.
    pub fn status(self) -> u16 {
        match self {
            RouteError::NotFound => 404,
            RouteError::MethodNotAllowed => 405,
        }
    }
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RouteError::NotFound => "Not Found",
            RouteError::MethodNotAllowed => "Method Not Allowed",
        })
    }
}

impl CodedError for RouteError {
    fn error_code(&self) -> ErrorCode {
        match self {
            RouteError::NotFound => ErrorCode::NotFound,
            RouteError::MethodNotAllowed => ErrorCode::MethodNotAllowed,
        }
    }
}

/// The chat completions route (streamed answer, caller's `Authorization` forwarded).
pub const CHAT_COMPLETIONS: &str = "/chats/{workspace}/chat/completions";

fn control(template: &'static str, action: &'static str, index: Option<&str>) -> Route {
    Route::Control(ControlRoute {
        template,
        action: Some(action),
        index: index.map(str::to_owned),
    })
}

/// Maps a request to its route. `path` is the percent-encoded path without the query.
/// `HEAD` is routed like `GET` (the transport drops the body).
pub fn route(method: Method, path: &str) -> Result<Route, RouteError> {
    use Method::*;
    let method = if method == Head { Get } else { method };
    let Some(rest) = path.strip_prefix('/') else {
        return Err(RouteError::NotFound);
    };
    let segs: Vec<&str> = rest.split('/').collect();
    // Each arm lists the methods the path accepts; anything else on a matched path is 405.
    let not_allowed = Err(RouteError::MethodNotAllowed);
    match segs.as_slice() {
        ["health"] => match method {
            Get => Ok(Route::Health),
            _ => not_allowed,
        },
        ["version"] => match method {
            Get => Ok(Route::Version),
            _ => not_allowed,
        },
        // Webhooks are sent by the admin for Miroir's own tasks (admin/src/webhooks).
        ["webhooks"] => match method {
            Get => Ok(control("/webhooks", "webhooks.get", None)),
            Post => Ok(control("/webhooks", "webhooks.create", None)),
            _ => not_allowed,
        },
        ["webhooks", uuid] if !uuid.is_empty() => match method {
            Get => Ok(control("/webhooks/{uuid}", "webhooks.get", None)),
            Patch => Ok(control("/webhooks/{uuid}", "webhooks.update", None)),
            Delete => Ok(control("/webhooks/{uuid}", "webhooks.delete", None)),
            _ => not_allowed,
        },
        // The network lives in the admin (admin/src/network.rs, decision 045).
        ["network"] => match method {
            Get => Ok(control("/network", "network.get", None)),
            Patch => Ok(control("/network", "network.update", None)),
            _ => not_allowed,
        },
        ["network", "control"] => match method {
            Post => Ok(control("/network/control", "network.update", None)),
            _ => not_allowed,
        },
        // Dynamic search rules live in the admin (admin/src/search_rules.rs, decision 042).
        ["dynamic-search-rules"] => match method {
            Post => Ok(control(
                "/dynamic-search-rules",
                "dynamicSearchRules.get",
                None,
            )),
            Delete => Ok(control(
                "/dynamic-search-rules",
                "dynamicSearchRules.delete",
                None,
            )),
            _ => not_allowed,
        },
        ["dynamic-search-rules", uid] if !uid.is_empty() => match method {
            Get => Ok(control(
                "/dynamic-search-rules/{uid}",
                "dynamicSearchRules.get",
                None,
            )),
            Patch => Ok(control(
                "/dynamic-search-rules/{uid}",
                "dynamicSearchRules.update",
                None,
            )),
            Delete => Ok(control(
                "/dynamic-search-rules/{uid}",
                "dynamicSearchRules.delete",
                None,
            )),
            _ => not_allowed,
        },
        ["multi-search"] => match method {
            Post => Ok(Route::MultiSearch),
            _ => not_allowed,
        },
        ["stats"] => match method {
            Get => Ok(control("/stats", "stats.get", None)),
            _ => not_allowed,
        },
        ["swap-indexes"] => match method {
            Post => Ok(control("/swap-indexes", "indexes.swap", None)),
            _ => not_allowed,
        },
        ["experimental-features"] => match method {
            Get => Ok(control("/experimental-features", "experimental.get", None)),
            Patch => Ok(control(
                "/experimental-features",
                "experimental.update",
                None,
            )),
            _ => not_allowed,
        },
        // Meilisearch requires `settings.get` and `documents.get` (the second is checked in
        // `Proxy::authenticate`).
        ["render-template"] => match method {
            Post => Ok(control("/render-template", "settings.get", None)),
            _ => not_allowed,
        },
        ["export"] => match method {
            Post => Ok(control("/export", "export", None)),
            _ => not_allowed,
        },
        // Chat workspaces: settings only (the admin broadcasts them to every node).
        ["chats"] => match method {
            Get => Ok(control("/chats", "chats.get", None)),
            _ => not_allowed,
        },
        ["chats", ws] if !ws.is_empty() => match method {
            Get => Ok(control("/chats/{workspace}", "chats.get", None)),
            Delete => Ok(control("/chats/{workspace}", "chats.delete", None)),
            _ => not_allowed,
        },
        ["chats", ws, "settings"] if !ws.is_empty() => match method {
            Get => Ok(control(
                "/chats/{workspace}/settings",
                "chatsSettings.get",
                None,
            )),
            Patch | Delete => Ok(control(
                "/chats/{workspace}/settings",
                "chatsSettings.update",
                None,
            )),
            _ => not_allowed,
        },
        // The conversation runs in the admin, its searches through this data plane
        // (admin/src/chat); the answer is server-sent events.
        ["chats", ws, "chat", "completions"] if !ws.is_empty() => match method {
            Post => Ok(control(CHAT_COMPLETIONS, "chatCompletions", None)),
            _ => not_allowed,
        },
        ["dumps"] => match method {
            Post => Ok(control("/dumps", "dumps.create", None)),
            _ => not_allowed,
        },
        ["snapshots"] => match method {
            Post => Ok(control("/snapshots", "snapshots.create", None)),
            _ => not_allowed,
        },
        ["keys"] => match method {
            Get => Ok(control("/keys", "keys.get", None)),
            Post => Ok(control("/keys", "keys.create", None)),
            _ => not_allowed,
        },
        ["keys", k] if !k.is_empty() => match method {
            Get => Ok(control("/keys/{key}", "keys.get", None)),
            Patch => Ok(control("/keys/{key}", "keys.update", None)),
            Delete => Ok(control("/keys/{key}", "keys.delete", None)),
            _ => not_allowed,
        },
        ["tasks"] => match method {
            Get => Ok(control("/tasks", "tasks.get", None)),
            Delete => Ok(control("/tasks", "tasks.delete", None)),
            _ => not_allowed,
        },
        ["tasks", "cancel"] => match method {
            Post => Ok(control("/tasks/cancel", "tasks.cancel", None)),
            _ => not_allowed,
        },
        ["tasks", t] if !t.is_empty() => match method {
            Get => Ok(control("/tasks/{uid}", "tasks.get", None)),
            _ => not_allowed,
        },
        ["tasks", t, "documents"] if !t.is_empty() => match method {
            Get => Ok(control("/tasks/{uid}/documents", "tasks.get", None)),
            _ => not_allowed,
        },
        ["batches"] => match method {
            Get => Ok(control("/batches", "tasks.get", None)),
            _ => not_allowed,
        },
        ["batches", b] if !b.is_empty() => match method {
            Get => Ok(control("/batches/{uid}", "tasks.get", None)),
            _ => not_allowed,
        },
        ["_miroir", "metrics"] => match method {
            Get => Ok(Route::Metrics),
            _ => not_allowed,
        },
        ["_miroir", ..] => Ok(Route::Control(ControlRoute {
            template: "/_miroir/*",
            action: None,
            index: None,
        })),
        ["indexes"] => match method {
            Get => Ok(control("/indexes", "indexes.get", None)),
            Post => Ok(control("/indexes", "indexes.create", None)),
            _ => not_allowed,
        },
        ["indexes", uid, tail @ ..] if !uid.is_empty() => index_route(method, uid, tail),
        _ => Err(RouteError::NotFound),
    }
}

fn index_route(method: Method, uid: &str, tail: &[&str]) -> Result<Route, RouteError> {
    use Method::*;
    let index = uid.to_owned();
    let not_allowed = Err(RouteError::MethodNotAllowed);
    let ix = Some(uid);
    match tail {
        [] => match method {
            Get => Ok(control("/indexes/{uid}", "indexes.get", ix)),
            Patch => Ok(control("/indexes/{uid}", "indexes.update", ix)),
            Delete => Ok(control("/indexes/{uid}", "indexes.delete", ix)),
            _ => not_allowed,
        },
        ["search"] => match method {
            Get | Post => Ok(Route::Search { index }),
            _ => not_allowed,
        },
        ["facet-search"] => match method {
            Post => Ok(Route::FacetSearch { index }),
            _ => not_allowed,
        },
        ["similar"] => match method {
            Get | Post => Ok(Route::Similar { index }),
            _ => not_allowed,
        },
        ["stats"] => match method {
            Get => Ok(control("/indexes/{uid}/stats", "stats.get", ix)),
            _ => not_allowed,
        },
        ["fields"] => match method {
            Post => Ok(control("/indexes/{uid}/fields", "fields.post", ix)),
            _ => not_allowed,
        },
        ["compact"] => match method {
            Post => Ok(control("/indexes/{uid}/compact", "indexes.compact", ix)),
            _ => not_allowed,
        },
        ["settings"] => match method {
            Get => Ok(control("/indexes/{uid}/settings", "settings.get", ix)),
            Patch | Delete => Ok(control("/indexes/{uid}/settings", "settings.update", ix)),
            _ => not_allowed,
        },
        ["settings", sub] if !sub.is_empty() => match method {
            Get => Ok(control(
                "/indexes/{uid}/settings/{setting}",
                "settings.get",
                ix,
            )),
            Put | Patch | Delete => Ok(control(
                "/indexes/{uid}/settings/{setting}",
                "settings.update",
                ix,
            )),
            _ => not_allowed,
        },
        ["documents"] => match method {
            Get => Ok(Route::DocumentsList { index }),
            Post => Ok(Route::DocumentsWrite {
                index,
                mode: WriteMode::Replace,
            }),
            Put => Ok(Route::DocumentsWrite {
                index,
                mode: WriteMode::Update,
            }),
            Delete => Ok(Route::DocumentsDeleteAll { index }),
            _ => not_allowed,
        },
        // The fixed sub-paths win over `{id}` for POST (Meilisearch declares them first); a
        // GET/DELETE of a document literally named `fetch` still reaches the document.
        ["documents", "fetch"] if method == Post => Ok(Route::DocumentsFetch { index }),
        ["documents", "delete"] if method == Post => Ok(Route::DocumentsDeleteByFilter { index }),
        // Update by function: every node edits its own documents (the admin broadcasts it).
        ["documents", "edit"] if method == Post => Ok(control(
            "/indexes/{uid}/documents/edit",
            "documents.all",
            ix,
        )),
        ["documents", "delete-batch"] if method == Post => {
            Ok(Route::DocumentsDeleteBatch { index })
        }
        ["documents", id] if !id.is_empty() => {
            let id = percent_decode(id).ok_or(RouteError::NotFound)?;
            match method {
                Get => Ok(Route::DocumentGet { index, id }),
                Delete => Ok(Route::DocumentDelete { index, id }),
                _ => not_allowed,
            }
        }
        _ => Err(RouteError::NotFound),
    }
}

/// Decodes a path segment; `None` when an escape is malformed or the result is not UTF-8.
pub use miroir_core::uri::decode_segment as percent_decode;

#[cfg(test)]
mod tests {
    use super::*;

    fn r(m: Method, p: &str) -> Result<Route, RouteError> {
        route(m, p)
    }

    #[test]
    fn data_routes() {
        assert_eq!(
            r(Method::Post, "/indexes/movies/search"),
            Ok(Route::Search {
                index: "movies".into()
            })
        );
        assert_eq!(
            r(Method::Get, "/indexes/movies/search"),
            Ok(Route::Search {
                index: "movies".into()
            })
        );
        assert_eq!(
            r(Method::Put, "/indexes/m/documents"),
            Ok(Route::DocumentsWrite {
                index: "m".into(),
                mode: WriteMode::Update
            })
        );
        assert_eq!(
            r(Method::Post, "/indexes/m/documents"),
            Ok(Route::DocumentsWrite {
                index: "m".into(),
                mode: WriteMode::Replace
            })
        );
        assert_eq!(
            r(Method::Delete, "/indexes/m/documents"),
            Ok(Route::DocumentsDeleteAll { index: "m".into() })
        );
        assert_eq!(
            r(Method::Post, "/indexes/m/documents/fetch"),
            Ok(Route::DocumentsFetch { index: "m".into() })
        );
        assert_eq!(
            r(Method::Get, "/indexes/m/documents/fetch"),
            Ok(Route::DocumentGet {
                index: "m".into(),
                id: "fetch".into()
            })
        );
        assert_eq!(
            r(Method::Delete, "/indexes/m/documents/a%2Db"),
            Ok(Route::DocumentDelete {
                index: "m".into(),
                id: "a-b".into()
            })
        );
        assert_eq!(r(Method::Post, "/multi-search"), Ok(Route::MultiSearch));
        assert_eq!(r(Method::Head, "/health"), Ok(Route::Health));
    }

    #[test]
    fn control_routes_carry_action_and_index() {
        let route = r(
            Method::Patch,
            "/indexes/movies/settings/filterable-attributes",
        )
        .unwrap();
        assert_eq!(route.action(), Some("settings.update"));
        assert_eq!(route.index(), Some("movies"));
        assert_eq!(route.template(), "/indexes/{uid}/settings/{setting}");
        assert_eq!(
            r(Method::Get, "/tasks/12").unwrap().action(),
            Some("tasks.get")
        );
        assert_eq!(
            r(Method::Post, "/tasks/cancel").unwrap().action(),
            Some("tasks.cancel")
        );
        assert!(r(Method::Post, "/_miroir/nodes").unwrap().is_admin_prefix());
        assert!(r(Method::Get, "/_miroir/metrics")
            .unwrap()
            .is_admin_prefix());
        assert!(!r(Method::Get, "/keys").unwrap().is_admin_prefix());
        let fields = r(Method::Post, "/indexes/movies/fields").unwrap();
        assert_eq!(fields.action(), Some("fields.post"));
        assert_eq!(fields.template(), "/indexes/{uid}/fields");
        let edit = r(Method::Post, "/indexes/movies/documents/edit").unwrap();
        assert_eq!(edit.action(), Some("documents.all"));
        assert_eq!(edit.template(), "/indexes/{uid}/documents/edit");
        assert!(matches!(
            r(Method::Get, "/indexes/movies/documents/edit"),
            Ok(Route::DocumentGet { .. })
        ));
        for (m, p, action) in [
            (
                Method::Post,
                "/dynamic-search-rules",
                "dynamicSearchRules.get",
            ),
            (
                Method::Delete,
                "/dynamic-search-rules",
                "dynamicSearchRules.delete",
            ),
            (
                Method::Get,
                "/dynamic-search-rules/r",
                "dynamicSearchRules.get",
            ),
            (
                Method::Patch,
                "/dynamic-search-rules/r",
                "dynamicSearchRules.update",
            ),
            (
                Method::Delete,
                "/dynamic-search-rules/r",
                "dynamicSearchRules.delete",
            ),
            (Method::Get, "/chats", "chats.get"),
            (Method::Get, "/chats/w", "chats.get"),
            (Method::Delete, "/chats/w", "chats.delete"),
            (Method::Get, "/chats/w/settings", "chatsSettings.get"),
            (Method::Patch, "/chats/w/settings", "chatsSettings.update"),
            (Method::Delete, "/chats/w/settings", "chatsSettings.update"),
            (Method::Post, "/chats/w/chat/completions", "chatCompletions"),
        ] {
            assert_eq!(r(m, p).unwrap().action(), Some(action), "{p}");
        }
        assert_eq!(
            r(Method::Put, "/chats/w/settings"),
            Err(RouteError::MethodNotAllowed)
        );
        let render = r(Method::Post, "/render-template").unwrap();
        assert_eq!(render.action(), Some("settings.get"));
        assert_eq!(render.index(), None);
        let compact = r(Method::Post, "/indexes/movies/compact").unwrap();
        assert_eq!(compact.action(), Some("indexes.compact"));
        assert_eq!(compact.template(), "/indexes/{uid}/compact");
        assert_eq!(
            r(Method::Get, "/indexes/movies/fields"),
            Err(RouteError::MethodNotAllowed)
        );
    }

    #[test]
    fn unknown_and_wrong_method() {
        assert_eq!(r(Method::Get, "/nope"), Err(RouteError::NotFound));
        assert_eq!(r(Method::Get, "/indexes/m/nope"), Err(RouteError::NotFound));
        assert_eq!(r(Method::Get, ""), Err(RouteError::NotFound));
        assert_eq!(
            r(Method::Delete, "/indexes/m/search"),
            Err(RouteError::MethodNotAllowed)
        );
        assert_eq!(
            r(Method::Post, "/health"),
            Err(RouteError::MethodNotAllowed)
        );
        assert_eq!(
            r(Method::Get, "/indexes/m/documents/%zz"),
            Err(RouteError::NotFound)
        );
        let e = RouteError::MethodNotAllowed.to_meili();
        assert_eq!(e.status(), 405);
    }

    #[test]
    fn templates_never_contain_client_input() {
        for p in [
            "/indexes/secret/search",
            "/indexes/secret/documents/abc",
            "/keys/secret",
            "/tasks/99",
        ] {
            for m in [Method::Get, Method::Post, Method::Delete, Method::Patch] {
                if let Ok(route) = r(m, p) {
                    assert!(!route.template().contains("secret"));
                    assert!(!route.template().contains("99"));
                }
            }
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("abc").as_deref(), Some("abc"));
        assert_eq!(percent_decode("a%20b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("a%2"), None);
        assert_eq!(percent_decode("%ff"), None);
    }

    #[test]
    fn network_routes_are_control_routes() {
        for (m, p, action) in [
            (Method::Get, "/network", "network.get"),
            (Method::Patch, "/network", "network.update"),
            (Method::Post, "/network/control", "network.update"),
        ] {
            assert_eq!(route(m, p).unwrap().action(), Some(action), "{p}");
        }
        assert!(matches!(
            route(Method::Delete, "/network"),
            Err(RouteError::MethodNotAllowed)
        ));
        assert!(matches!(
            route(Method::Get, "/network/control"),
            Err(RouteError::MethodNotAllowed)
        ));
    }
}
