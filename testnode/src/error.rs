//! Meilisearch error bodies: `{message, code, type, link}` with the HTTP status Meilisearch
//! uses for each code (`crates/meilisearch-types/src/error.rs` upstream). Only the codes the
//! test node can produce are listed; messages follow Meilisearch v1.x wording.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// Not serialized into the body; kept in task journals so a replayed failure is identical.
    #[serde(skip_serializing, default = "default_status")]
    pub status: u16,
    pub message: String,
    pub code: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub link: String,
}

fn default_status() -> u16 {
    400
}

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl ApiError {
    /// Builds an error; the `type` follows from the code the way Meilisearch groups them.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        let kind = match code {
            "missing_authorization_header" | "invalid_api_key" | "missing_master_key" => "auth",
            "internal" | "io_error" => "internal",
            "no_space_left_on_device" | "database_size_limit_reached" => "system",
            _ => "invalid_request",
        };
        ApiError {
            status,
            message: message.into(),
            code: code.to_string(),
            kind: kind.to_string(),
            link: format!("https://docs.meilisearch.com/errors#{code}"),
        }
    }

    pub fn bad(code: &str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    pub fn index_not_found(uid: &str) -> Self {
        Self::new(404, "index_not_found", format!("Index `{uid}` not found."))
    }

    pub fn index_exists(uid: &str) -> Self {
        Self::new(
            409,
            "index_already_exists",
            format!("Index `{uid}` already exists."),
        )
    }

    pub fn invalid_index_uid(uid: &str) -> Self {
        Self::bad(
            "invalid_index_uid",
            format!(
                "`{uid}` is not a valid index uid. Index uid can be an integer or a string containing only alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 512 bytes."
            ),
        )
    }

    pub fn document_not_found(id: &str) -> Self {
        Self::new(
            404,
            "document_not_found",
            format!("Document `{id}` not found."),
        )
    }

    pub fn task_not_found(uid: &str) -> Self {
        Self::new(404, "task_not_found", format!("Task `{uid}` not found."))
    }

    pub fn batch_not_found(uid: &str) -> Self {
        Self::new(404, "batch_not_found", format!("Batch `{uid}` not found."))
    }

    pub fn key_not_found(key: &str) -> Self {
        Self::new(
            404,
            "api_key_not_found",
            format!("API key `{key}` not found."),
        )
    }

    pub fn missing_auth() -> Self {
        Self::new(
            401,
            "missing_authorization_header",
            "The Authorization header is missing. It must use the bearer authorization method.",
        )
    }

    pub fn invalid_key() -> Self {
        Self::new(403, "invalid_api_key", "The provided API key is invalid.")
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal", message)
    }

    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// deserr's `did_you_mean` (what Meilisearch 1.50 appends to unknown field/value errors):
/// the closest accepted name by Damerau-Levenshtein distance, if within a typo budget that
/// grows with the received string's byte length (none under 4 bytes).
pub fn did_you_mean(received: &str, accepted: &[&str]) -> String {
    let allowed = match received.len() {
        0..=3 => return String::new(),
        4..=7 => 1,
        8..=12 => 2,
        13..=17 => 3,
        18..=24 => 4,
        _ => 5,
    };
    let mut best: Option<(&str, usize)> = None;
    for a in accepted {
        let d = strsim::damerau_levenshtein(received, a);
        // First minimum wins, like `Iterator::min_by`.
        if d <= allowed && best.is_none_or(|(_, bd)| d < bd) {
            best = Some((a, d));
        }
    }
    best.map(|(a, _)| format!("did you mean `{a}`? "))
        .unwrap_or_default()
}

fn backtick_list(accepted: &[&str]) -> String {
    accepted
        .iter()
        .map(|a| format!("`{a}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// deserr's unknown-key message; `location` is empty or like `` inside `.queries[0]` ``.
pub fn unknown_field(key: &str, location: &str, accepted: &[&str]) -> String {
    format!(
        "Unknown field `{key}`{location}: {}expected one of {}",
        did_you_mean(key, accepted),
        backtick_list(accepted)
    )
}

/// deserr's unknown-enum-value message; `location` is like `` at `.matchingStrategy` ``.
pub fn unknown_value(value: &str, location: &str, accepted: &[&str]) -> String {
    format!(
        "Unknown value `{value}`{location}: {}expected one of {}",
        did_you_mean(value, accepted),
        backtick_list(accepted)
    )
}

/// Index uids: integer or `[A-Za-z0-9_-]{1,400}` (Meilisearch's `IndexUid` rule).
pub fn validate_index_uid(uid: &str) -> Result<()> {
    let ok = !uid.is_empty()
        && uid.len() <= 400
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_index_uid(uid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_shape_and_link() {
        let e = ApiError::index_not_found("movies");
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        // Meilisearch's key order (the workspace builds serde_json with `preserve_order`).
        assert_eq!(keys, ["message", "code", "type", "link"]);
        assert_eq!(
            v["link"],
            "https://docs.meilisearch.com/errors#index_not_found"
        );
        assert_eq!(v["type"], "invalid_request");
        assert_eq!(ApiError::missing_auth().kind, "auth");
        assert_eq!(e.status, 404);
    }

    #[test]
    fn did_you_mean_like_deserr() {
        assert_eq!(
            did_you_mean(
                "filterableAttribute",
                &["sortableAttributes", "filterableAttributes"]
            ),
            "did you mean `filterableAttributes`? "
        );
        // Too short to guess, or too far from everything.
        assert_eq!(did_you_mean("foo", &["for"]), "");
        assert_eq!(did_you_mean("zzzz", &["sort"]), "");
        assert_eq!(
            unknown_field("expires_at", "", &["name", "expiresAt"]),
            "Unknown field `expires_at`: did you mean `expiresAt`? expected one of `name`, `expiresAt`"
        );
    }

    #[test]
    fn index_uid_rules() {
        assert!(validate_index_uid("movies_2-a").is_ok());
        assert!(validate_index_uid("").is_err());
        assert!(validate_index_uid("a b").is_err());
        assert!(validate_index_uid("é").is_err());
    }
}
