//! `/webhooks`: Miroir does not deliver webhooks yet.
//!
//! A Meilisearch webhook is called with the tasks a node finished. Behind Miroir that would be
//! wrong twice over: each node would call it with its own task uids, which clients never see,
//! and once per node. Delivering webhooks for *Miroir's* tasks belongs to the admin (it owns
//! the task registry) and is not built. Until then the truthful answers are given here: the
//! list is empty, no uuid exists, and creating one is refused with `501` rather than
//! accepted and never called. (SDK test suites list and delete webhooks after every test,
//! which this keeps working.)

use crate::http::types::{Method, Response};
use crate::proxy::error;
use miroir_core::{ErrorCode, MeiliError};

/// The answer to a `/webhooks[/{uuid}]` request (already authenticated).
pub fn answer(method: Method, uuid: Option<&str>) -> Response {
    match (method, uuid) {
        (Method::Post, None) => error(&MeiliError::new(
            ErrorCode::MiroirNotImplemented,
            "Miroir does not deliver webhooks yet, so it does not accept them: a webhook set \
             on the nodes would be called with node task uids, once per node.",
        )),
        (_, None) => Response::json(200, br#"{"results":[]}"#.to_vec()),
        (_, Some(uuid)) => error(&MeiliError::new(
            ErrorCode::WebhookNotFound,
            format!("Webhook `{uuid}` not found."),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_none_finds_none_creates_none() {
        let r = answer(Method::Get, None);
        assert_eq!((r.status, &r.body[..]), (200, &br#"{"results":[]}"#[..]));
        let r = answer(Method::Post, None);
        assert_eq!(r.status, 501);
        for m in [Method::Get, Method::Patch, Method::Delete] {
            let r = answer(m, Some("f5bef6da-0ce1-4792-bc09-14ba001d3875"));
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(r.status, 404);
            assert_eq!(v["code"], "webhook_not_found");
            assert_eq!(
                v["message"],
                "Webhook `f5bef6da-0ce1-4792-bc09-14ba001d3875` not found."
            );
        }
    }
}
