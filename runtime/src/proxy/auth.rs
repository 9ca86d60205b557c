//! Phase 2 — **authenticate and authorise** (PRODUCT.md §8).
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

use crate::proxy::tenant::{self, Tenant};
use miroir_core::snapshot::ApiKey;
use miroir_core::{ErrorCode, MeiliError};

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
    /// The `Miroir-Principal` header value (control-protocol.md §2).
    pub fn header_value(&self) -> String {
        match self {
            Principal::Master => "master".to_owned(),
            Principal::Key { uid, .. } => format!("key:{uid}"),
            Principal::Tenant(t) => format!("key:{}", t.api_key_uid),
        }
    }

    /// For a tenant token, the rule filter to AND into searches on `index` (`None` for any
    /// other principal, or a rule without filter).
    pub fn search_filter(&self, index: &str) -> Option<serde_json::Value> {
        match self {
            Principal::Tenant(t) => t.rule_for(index).flatten(),
            _ => None,
        }
    }

    /// Whether this principal may touch `index` (the action was checked at authentication).
    pub fn may_access_index(&self, index: &str) -> bool {
        match self {
            Principal::Master => true,
            Principal::Key { indexes, .. } => indexes.iter().any(|p| index_matches(p, index)),
            Principal::Tenant(t) => t.rule_for(index).is_some(),
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

/// Extracts the bearer token. `Err` when the header is absent or not `Bearer <token>` —
/// Meilisearch answers both with `missing_authorization_header`.
pub fn bearer(authorization: Option<&[u8]>) -> Result<&[u8], MeiliError> {
    let value = authorization.ok_or_else(missing_header)?;
    let token = value.strip_prefix(b"Bearer ").ok_or_else(missing_header)?;
    Ok(token.trim_ascii())
}

/// Authenticates a request for a route needing `action` on `index` (if any).
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
    let Some(key) = find_key(keys, token) else {
        // Not a key: maybe a tenant token (search routes only).
        let jwt = std::str::from_utf8(token)
            .ok()
            .filter(|t| t.matches('.').count() == 2);
        if let (Some(jwt), "search") = (jwt, action) {
            let t = tenant::verify(jwt, keys, now_unix).ok_or_else(invalid_key)?;
            if index.is_some_and(|i| t.rule_for(i).is_none()) {
                return Err(invalid_key());
            }
            return Ok(Principal::Tenant(t));
        }
        return Err(invalid_key());
    };
    if key.expires_at.is_some_and(|exp| exp <= now_unix) {
        return Err(invalid_key());
    }
    if !key
        .actions
        .iter()
        .any(|granted| action_granted(granted, action))
    {
        return Err(invalid_key());
    }
    if let Some(index) = index {
        if !key.indexes.iter().any(|p| index_matches(p, index)) {
            return Err(invalid_key());
        }
    }
    Ok(Principal::Key {
        uid: key.uid.clone(),
        indexes: key.indexes.clone(),
    })
}

/// Checks an already-authenticated principal against one more `(action, index)` pair, e.g.
/// each query of a multi-search. Master always passes.
pub fn authorize_extra(
    keys: &[ApiKey],
    principal: &Principal,
    action: &str,
    index: &str,
) -> Result<(), MeiliError> {
    let Principal::Key { uid, .. } = principal else {
        return Ok(());
    };
    let key = keys
        .iter()
        .find(|k| &k.uid == uid)
        .ok_or_else(invalid_key)?;
    let ok = key.actions.iter().any(|a| action_granted(a, action))
        && key.indexes.iter().any(|p| index_matches(p, index));
    if ok {
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
/// per key (no early exit on a match), so timing does not reveal which prefix matched.
fn find_key<'k>(keys: &'k [ApiKey], token: &[u8]) -> Option<&'k ApiKey> {
    let mut found = None;
    for k in keys {
        if ct_eq(k.key.as_bytes(), token) && found.is_none() {
            found = Some(k);
        }
    }
    found
}

/// Constant-time equality for secrets: the time depends only on the lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    let n = a.len().max(b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    // `black_box` keeps the optimiser from turning the loop into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

/// Whether a granted action (`*`, `documents.*`, `*.get`, `search`, …) covers `action`.
pub fn action_granted(granted: &str, action: &str) -> bool {
    if granted == "*" || granted == action {
        return true;
    }
    if let Some(family) = granted.strip_suffix(".*") {
        return action.split_once('.').is_some_and(|(f, _)| f == family);
    }
    if granted == "*.get" {
        return action.ends_with(".get");
    }
    false
}

/// Meilisearch's index patterns: `*`, exact uid, or `prefix*`.
pub fn index_matches(pattern: &str, index: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => index.starts_with(prefix),
        None => pattern == index,
    }
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
        assert_eq!(p.header_value(), "key:u-search");
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
    fn extra_authorization_for_multi_search() {
        let p = auth(Some("Bearer k-search"), "search", None).unwrap();
        assert!(authorize_extra(&keys(), &p, "search", "movies").is_ok());
        assert!(authorize_extra(&keys(), &p, "search", "books").is_err());
        assert!(authorize_extra(&keys(), &Principal::Master, "search", "books").is_ok());
    }

    #[test]
    fn action_families() {
        assert!(action_granted("*", "keys.delete"));
        assert!(action_granted("indexes.*", "indexes.swap"));
        assert!(!action_granted("indexes.*", "documents.add"));
        assert!(action_granted("*.get", "settings.get"));
        assert!(!action_granted("*.get", "settings.update"));
        assert!(!action_granted("search", "searchx"));
        assert!(index_matches("*", "anything"));
        assert!(index_matches("mov*", "movies"));
        assert!(!index_matches("movies", "movies2"));
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
