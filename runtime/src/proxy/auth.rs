//! Phase 2 — **authenticate and authorise** (docs/contract.md#auth).
//!
//! Miroir answers auth exactly as one Meilisearch would, from the snapshot alone (no node and
//! no admin round-trip on the hot path):
//! - no `master_key` configured → everything is open, except `/keys*` which Meilisearch
//!   refuses with `401 missing_master_key`;
//! - no `Authorization` header, or not the `Bearer` scheme → `401 missing_authorization_header`;
//! - the master key → everything;
//! - an API key from `snapshot.keys` → allowed when it is not expired, grants the route's
//!   action and (for index routes) matches the index; anything else → `403 invalid_api_key`.
//!
//! Nodes never see the client's key: Miroir always presents the node master key, so the check
//! here is the only one and must be complete. Every secret comparison is constant-time.
//!
//! Action grants follow Meilisearch's families: `*` grants everything, `documents.*` grants
//! `documents.add|get|delete` (likewise `indexes.*`, `tasks.*`, `settings.*`, `stats.*`,
//! `dumps.*`, `snapshots.*`, `keys.*`, `experimental.*`), and `*.get` grants every `….get`.
//! Index patterns: `*`, an exact uid, or a prefix ending in `*` (`movies*`).
//!
//! Tenant tokens (JWTs signed with an API key, [`crate::proxy::tenant`]) are accepted on
//! search routes; their rule filters are applied by the search handlers.

use crate::proxy::tenant::{self, Tenant, TokenError, TokenOutcome};
use miroir_core::access::{key_authorizes, patterns_allow, patterns_allow_all};
use miroir_core::snapshot::ApiKey;
use miroir_core::{ErrorCode, MeiliError};
use subtle::ConstantTimeEq;

/// Who is calling, after authentication. Forwarded to the admin as `Miroir-Principal`.
#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    /// The master key, or no master key configured (then everyone is master).
    Master,
    /// An API key; its index patterns restrict what it may touch.
    Key { uid: String, indexes: Vec<String> },
    /// A tenant token: search only, on the indexes its rules allow, with their filters.
    Tenant(Tenant),
}

impl Principal {
    /// For a tenant token, the rule filter to AND into searches on `index` (`None` for any
    /// other principal, or a rule without filter).
    pub fn search_filter(&self, index: &str) -> Option<serde_json::Value> {
        match self {
            Principal::Tenant(t) => t.filter_for(index),
            _ => None,
        }
    }

    /// Meilisearch's `AuthFilter::is_index_authorized`: whether this principal may touch
    /// `index` (the key's patterns and, for a token, its rules).
    pub fn may_access_index(&self, index: &str) -> bool {
        match self {
            Principal::Master => true,
            Principal::Key { indexes, .. } => patterns_allow(indexes, index),
            Principal::Tenant(t) => t.authorizes(index),
        }
    }

    /// Whether nothing restricts the indexes this principal may touch.
    pub fn all_indexes_authorized(&self) -> bool {
        match self {
            Principal::Master => true,
            Principal::Key { indexes, .. } => patterns_allow_all(indexes),
            Principal::Tenant(t) => patterns_allow_all(&t.key_indexes) && t.rules.authorizes_all(),
        }
    }
}

/// Meilisearch's wording for the auth errors.
pub fn missing_header() -> MeiliError {
    MeiliError::new(
        ErrorCode::MissingAuthorizationHeader,
        "The Authorization header is missing. It must use the bearer authorization method.",
    )
}

pub fn invalid_key() -> MeiliError {
    MeiliError::new(ErrorCode::InvalidApiKey, "The provided API key is invalid.")
}

pub fn missing_master_key() -> MeiliError {
    MeiliError::new(
        ErrorCode::MissingMasterKey,
        "Meilisearch is running without a master key. To access this API endpoint, you must have \
         set a master key at launch.",
    )
}

/// Meilisearch's refusal of a tenant token (all `invalid_api_key`, 403).
fn token_error(e: TokenError) -> MeiliError {
    match e {
        TokenError::Expired { exp, now } => MeiliError::new(
            ErrorCode::InvalidApiKey,
            format!("Tenant token expired. Was valid up to `{exp}` and we're now `{now}`."),
        ),
        TokenError::CouldNotDecode(why) => MeiliError::new(
            ErrorCode::InvalidApiKey,
            format!("Could not decode tenant token, {why}."),
        ),
        TokenError::UnknownKey => invalid_key(),
    }
}

/// Extracts the bearer token. `Err` when the header is absent or not `Bearer <token>` —
/// Meilisearch answers both with `missing_authorization_header`.
pub fn bearer(authorization: Option<&[u8]>) -> Result<&[u8], MeiliError> {
    let value = authorization.ok_or_else(missing_header)?;
    let token = value.strip_prefix(b"Bearer ").ok_or_else(missing_header)?;
    Ok(token.trim_ascii())
}

/// Authenticates a request for a route needing `action` on `index` (if any), in the order
/// Meilisearch 1.50's `ActionPolicy::authenticate` checks:
/// 1. the master key (without one, everything but `/keys` is open);
/// 2. on `search` routes, a tenant token (an undecodable or expired one is refused here);
///    otherwise an API key value;
/// 3. the index named in the path against the token's rules, then the key's patterns (each
///    refused with Meilisearch's own message);
/// 4. the key's action grant, expiry and index scope ([`key_authorizes`]).
///
/// `now_unix` is the current time in Unix seconds (passed in so this stays pure).
pub fn authenticate(
    master_key: Option<&str>,
    keys: &[ApiKey],
    authorization: Option<&[u8]>,
    action: &str,
    index: Option<&str>,
    now_unix: i64,
) -> Result<Principal, MeiliError> {
    let Some(master) = master_key else {
        if action.starts_with("keys.") {
            return Err(missing_master_key());
        }
        return Ok(Principal::Master);
    };
    let token = bearer(authorization)?;
    if ct_eq(token, master.as_bytes()) {
        return Ok(Principal::Master);
    }
    let tenant = match (action, std::str::from_utf8(token)) {
        // Meilisearch accepts tenant tokens for search and chat completions only.
        ("search" | "chatCompletions", Ok(jwt)) => {
            match tenant::verify(jwt, keys, now_unix).map_err(token_error)? {
                TokenOutcome::Valid(t) => Some(t),
                TokenOutcome::NotAToken => None,
            }
        }
        _ => None,
    };
    let key = match &tenant {
        Some(t) => keys.iter().find(|k| k.uid == t.api_key_uid),
        None => find_key(keys, token),
    }
    .ok_or_else(invalid_key)?;
    if let Some(index) = index {
        if let Some(t) = &tenant {
            if !t.rules.authorizes(index) {
                return Err(MeiliError::new(
                    ErrorCode::InvalidApiKey,
                    format!(
                        "The provided tenant token cannot acces the index `{index}`, allowed \
                         indexes are {:?}.",
                        t.rules.listed()
                    ),
                ));
            }
        }
        if !patterns_allow(&key.indexes, index) {
            let message = if tenant.is_some() {
                // The parent key's patterns are not the token holder's to see.
                format!(
                    "The API key used to generate this tenant token cannot acces the index \
                     `{index}`."
                )
            } else {
                let mut allowed = key.indexes.clone();
                allowed.sort_unstable();
                format!(
                    "The API key cannot acces the index `{index}`, authorized indexes are \
                     {allowed:?}."
                )
            };
            return Err(MeiliError::new(ErrorCode::InvalidApiKey, message));
        }
    }
    if !key_authorizes(key, action, index, now_unix) {
        return Err(invalid_key());
    }
    Ok(match tenant {
        Some(t) => Principal::Tenant(t),
        None => Principal::Key {
            uid: key.uid.clone(),
            indexes: key.indexes.clone(),
        },
    })
}

/// Meilisearch's check of one more index inside a request already authenticated (each query
/// of a multi-search, each index of a swap): the principal's patterns and token rules.
pub fn authorize_index(principal: &Principal, index: &str) -> Result<(), MeiliError> {
    if principal.may_access_index(index) {
        Ok(())
    } else {
        Err(invalid_key())
    }
}

/// Checks the admin key for `/_miroir/*` served locally (`Bearer` or `X-Admin-Key`).
/// `None` admin key = open (development). Failure answers `miroir_invalid_auth`.
pub fn check_admin_key(
    admin_key: Option<&str>,
    authorization: Option<&[u8]>,
    x_admin_key: Option<&[u8]>,
) -> Result<(), MeiliError> {
    let Some(expected) = admin_key else {
        return Ok(());
    };
    let presented = x_admin_key.or_else(|| authorization.and_then(|a| a.strip_prefix(b"Bearer ")));
    match presented {
        Some(p) if ct_eq(p.trim_ascii(), expected.as_bytes()) => Ok(()),
        _ => Err(MeiliError::new(
            ErrorCode::MiroirInvalidAuth,
            "The admin key is missing or invalid for `/_miroir/` routes.",
        )),
    }
}

/// Finds the key whose value equals `token`, comparing against every key in constant time
/// per key (no early exit on a match), so timing does not reveal which key matched.
fn find_key<'k>(keys: &'k [ApiKey], token: &[u8]) -> Option<&'k ApiKey> {
    let mut found = None;
    for k in keys {
        if ct_eq(k.key.as_bytes(), token) && found.is_none() {
            found = Some(k);
        }
    }
    found
}

/// Constant-time equality for secrets (`subtle`): the time depends only on the lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(uid: &str, value: &str, actions: &[&str], indexes: &[&str], exp: Option<i64>) -> ApiKey {
        ApiKey {
            uid: uid.into(),
            key: value.into(),
            name: None,
            actions: actions.iter().map(|s| s.to_string()).collect(),
            indexes: indexes.iter().map(|s| s.to_string()).collect(),
            expires_at: exp,
        }
    }

    fn keys() -> Vec<ApiKey> {
        vec![
            key("u-search", "k-search", &["search"], &["movies*"], None),
            key("u-docs", "k-docs", &["documents.*"], &["*"], Some(1_000)),
            key("u-all", "k-all", &["*"], &["books"], None),
        ]
    }

    fn auth(hdr: Option<&str>, action: &str, index: Option<&str>) -> Result<Principal, MeiliError> {
        authenticate(
            Some("master"),
            &keys(),
            hdr.map(str::as_bytes),
            action,
            index,
            500,
        )
    }

    #[test]
    fn no_master_key_is_open_except_keys() {
        assert_eq!(
            authenticate(None, &[], None, "search", Some("x"), 0),
            Ok(Principal::Master)
        );
        let e = authenticate(None, &[], None, "keys.get", None, 0).unwrap_err();
        assert_eq!(e.code, ErrorCode::MissingMasterKey);
        assert_eq!(e.status(), 401);
    }

    #[test]
    fn missing_or_malformed_header_is_401() {
        for h in [
            None,
            Some("Basic abc"),
            Some("bearer master"),
            Some("master"),
        ] {
            let e = auth(h, "search", Some("movies")).unwrap_err();
            assert_eq!(e.code, ErrorCode::MissingAuthorizationHeader, "{h:?}");
            assert_eq!(e.status(), 401);
        }
    }

    #[test]
    fn master_and_unknown_keys() {
        assert_eq!(
            auth(Some("Bearer master"), "keys.delete", None),
            Ok(Principal::Master)
        );
        let e = auth(Some("Bearer nope"), "search", Some("movies")).unwrap_err();
        assert_eq!((e.code, e.status()), (ErrorCode::InvalidApiKey, 403));
        // A prefix of the master key is not the master key.
        assert!(auth(Some("Bearer maste"), "search", None).is_err());
    }

    #[test]
    fn api_key_actions_indexes_and_expiry() {
        let p = auth(Some("Bearer k-search"), "search", Some("movies-2024")).unwrap();
        assert!(matches!(&p, Principal::Key { uid, .. } if uid == "u-search"));
        assert!(auth(Some("Bearer k-search"), "search", Some("books")).is_err());
        assert!(auth(Some("Bearer k-search"), "documents.add", Some("movies")).is_err());
        // documents.* grants documents.add but the key expired at 1000 > now 500: valid.
        assert!(auth(Some("Bearer k-docs"), "documents.add", Some("x")).is_ok());
        let expired = authenticate(
            Some("m"),
            &keys(),
            Some(b"Bearer k-docs"),
            "documents.add",
            None,
            1_000,
        );
        assert_eq!(expired.unwrap_err().code, ErrorCode::InvalidApiKey);
        assert!(auth(Some("Bearer k-docs"), "search", Some("x")).is_err());
        assert!(auth(Some("Bearer k-all"), "settings.update", Some("books")).is_ok());
        assert!(auth(Some("Bearer k-all"), "settings.update", Some("movies")).is_err());
    }

    #[test]
    fn per_index_authorization_inside_a_request() {
        let p = auth(Some("Bearer k-search"), "search", None).unwrap();
        assert!(authorize_index(&p, "movies").is_ok());
        assert!(authorize_index(&p, "books").is_err());
        assert!(authorize_index(&Principal::Master, "books").is_ok());
    }

    #[test]
    fn index_refusals_use_meilisearch_messages() {
        let e = auth(Some("Bearer k-search"), "search", Some("books")).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidApiKey);
        assert_eq!(
            e.message,
            "The API key cannot acces the index `books`, authorized indexes are [\"movies*\"]."
        );
    }

    #[test]
    fn tenant_tokens_are_held_to_their_rules_and_parent_key() {
        use crate::proxy::tenant::test_support::sign;
        use serde_json::json;
        let token = |payload: serde_json::Value| format!("Bearer {}", sign("k-search", &payload));
        let rules =
            json!({"apiKeyUid": "u-search", "searchRules": {"movies": {"filter": "t = 1"}}});
        let ok = token(rules.clone());
        let p = auth(Some(&ok), "search", Some("movies")).unwrap();
        assert_eq!(p.search_filter("movies"), Some(json!("t = 1")));
        // Another index than the rules name.
        let e = auth(Some(&ok), "search", Some("movies2")).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidApiKey);
        assert!(
            e.message.contains("tenant token cannot acces"),
            "{}",
            e.message
        );
        // A token never grants anything but search.
        assert!(auth(Some(&ok), "documents.get", Some("movies")).is_err());
        // Multi-search (no index in the path): each query is checked against the rules.
        let p = auth(Some(&ok), "search", None).unwrap();
        assert!(authorize_index(&p, "movies").is_ok());
        assert!(authorize_index(&p, "secrets").is_err());
        // Expired.
        let mut expired = rules.clone();
        expired["exp"] = json!(100);
        let e = auth(Some(&token(expired)), "search", Some("movies")).unwrap_err();
        assert_eq!(
            e.message,
            "Tenant token expired. Was valid up to `100` and we're now `500`."
        );
        // Signed with another key.
        let forged = format!("Bearer {}", sign("k-all", &rules));
        assert_eq!(
            auth(Some(&forged), "search", Some("movies"))
                .unwrap_err()
                .code,
            ErrorCode::InvalidApiKey
        );
        // Parent key deleted.
        let mut orphan = rules.clone();
        orphan["apiKeyUid"] = json!("gone");
        assert!(auth(Some(&token(orphan)), "search", Some("movies")).is_err());
    }

    #[test]
    fn index_scoped_keys_and_global_actions() {
        // `k-all` has every action on `books` only: global routes refuse it.
        assert!(auth(Some("Bearer k-all"), "dumps.create", None).is_err());
        assert!(auth(Some("Bearer k-all"), "version", None).is_err());
        // Listings filter by index in the handler: accepted here.
        assert!(auth(Some("Bearer k-all"), "indexes.get", None).is_ok());
        assert!(auth(Some("Bearer k-all"), "tasks.get", None).is_ok());
    }

    #[test]
    fn admin_key() {
        assert!(check_admin_key(None, None, None).is_ok());
        assert!(check_admin_key(Some("a"), Some(b"Bearer a"), None).is_ok());
        assert!(check_admin_key(Some("a"), None, Some(b"a")).is_ok());
        let e = check_admin_key(Some("a"), Some(b"Bearer b"), None).unwrap_err();
        assert_eq!(e.code, ErrorCode::MiroirInvalidAuth);
    }

    #[test]
    fn constant_time_eq() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(!ct_eq(b"", b"a"));
        assert!(ct_eq(b"", b""));
    }
}
