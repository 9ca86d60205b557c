//! Tenant tokens (Meilisearch multitenancy): JWTs signed (HS256/384/512) with an API key's
//! value, carrying `{searchRules, apiKeyUid, exp?}`.
//!
//! Because keys have the same uid and value on every node and in the snapshot, Miroir can
//! verify a token itself. Nodes never see the token (Miroir reaches them with the node master
//! key), so the rule's `filter` must be applied here: it is ANDed with the client's filter
//! before planning, exactly as Meilisearch does.
//!
//! A token grants `search` only (search, facet-search, multi-search), on the indexes its
//! rules name *and* its parent key allows; the parent key must grant `search` and not be
//! expired. Rules: an array of index patterns (no filter), or an object pattern → `null` |
//! `{filter}`; the most specific matching pattern wins (exact name, then the longest prefix).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{KeyInit, Mac};
use miroir_core::access::{index_matches, patterns_allow};
use miroir_core::snapshot::ApiKey;
use serde_json::Value;

/// A token's `searchRules`: index patterns, or patterns with an optional rule each.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchRules {
    /// `["movies", "books*"]`: those indexes, no filter.
    Set(Vec<String>),
    /// `{"movies": {"filter": …}, "*": null}`: pattern → the rule's filter, if any.
    Map(Vec<(String, Option<Value>)>),
}

impl SearchRules {
    /// Reads the claim as Meilisearch deserialises it; `None` when it would refuse it.
    fn parse(v: &Value) -> Option<SearchRules> {
        match v {
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(SearchRules::Set),
            Value::Object(map) => map
                .iter()
                .map(|(pattern, rule)| {
                    let filter = match rule {
                        Value::Null => None,
                        Value::Object(r) => r.get("filter").filter(|f| !f.is_null()).cloned(),
                        _ => return None,
                    };
                    Some((pattern.clone(), filter))
                })
                .collect::<Option<Vec<_>>>()
                .map(SearchRules::Map),
            _ => None,
        }
    }

    fn patterns(&self) -> Vec<&str> {
        match self {
            SearchRules::Set(set) => set.iter().map(String::as_str).collect(),
            SearchRules::Map(map) => map.iter().map(|(p, _)| p.as_str()).collect(),
        }
    }

    /// Meilisearch's `SearchRules::is_index_authorized`.
    pub fn authorizes(&self, index: &str) -> bool {
        self.patterns().iter().any(|p| index_matches(p, index))
    }

    /// Whether the rules reach every index (a `*` pattern).
    pub fn authorizes_all(&self) -> bool {
        self.patterns().contains(&"*")
    }

    /// The sorted patterns, as Meilisearch lists them in its refusal message.
    pub fn listed(&self) -> Vec<String> {
        let mut out: Vec<String> = self.patterns().into_iter().map(str::to_owned).collect();
        out.sort_unstable();
        out
    }

    /// The filter the most specific matching pattern imposes (exact name first, then the
    /// longest pattern), as Meilisearch's `get_index_search_rules` picks it.
    pub fn filter_for(&self, index: &str) -> Option<Value> {
        let SearchRules::Map(map) = self else {
            return None;
        };
        map.iter()
            .filter(|(p, _)| index_matches(p, index))
            .max_by_key(|(p, _)| (p == index, p.len()))
            .and_then(|(_, filter)| filter.clone())
    }
}

/// A token whose signature and expiry were checked; its parent key is still to be checked
/// by the caller (it may have been deleted, expired or lost `search` since).
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    pub api_key_uid: String,
    /// The parent key's index patterns.
    pub key_indexes: Vec<String>,
    pub rules: SearchRules,
}

impl Tenant {
    /// Meilisearch's `AuthFilter::is_index_authorized` for a token: parent key and rules.
    pub fn authorizes(&self, index: &str) -> bool {
        patterns_allow(&self.key_indexes, index) && self.rules.authorizes(index)
    }

    /// The filter to AND into searches on `index`, when the token may search it.
    pub fn filter_for(&self, index: &str) -> Option<Value> {
        self.authorizes(index)
            .then(|| self.rules.filter_for(index))
            .flatten()
    }
}

/// Why a bearer token is refused as a tenant token, in Meilisearch's words.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenError {
    /// `exp` is in the past.
    Expired { exp: i64, now: i64 },
    /// Undecodable, wrong algorithm or signature, or unreadable claims.
    CouldNotDecode(&'static str),
    /// The parent key does not exist (any more).
    UnknownKey,
}

/// What a bearer token is, when the route accepts tenant tokens.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenOutcome {
    /// Not shaped as a JWT (fewer than three segments): look it up as an API key.
    NotAToken,
    Valid(Tenant),
}

/// Verifies a bearer token as a tenant token at `now_unix`, following Meilisearch 1.50:
/// the claims are read before the signature is checked (an unreadable token is refused with
/// "Could not decode tenant token"), the signature is checked with the parent key's value,
/// and `exp` is valid up to and including its second.
pub fn verify(token: &str, keys: &[ApiKey], now_unix: i64) -> Result<TokenOutcome, TokenError> {
    // jsonwebtoken splits from the right: fewer than three segments is "not a token".
    let Some((message, signature)) = token.rsplit_once('.') else {
        return Ok(TokenOutcome::NotAToken);
    };
    let Some((header, payload)) = message.rsplit_once('.') else {
        return Ok(TokenOutcome::NotAToken);
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).ok();
    let header: Value = decode(header)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::CouldNotDecode("Base64 error"))?;
    let claims: Value = decode(payload)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::CouldNotDecode("Base64 error"))?;
    let uid = claims
        .get("apiKeyUid")
        .and_then(Value::as_str)
        .ok_or(TokenError::CouldNotDecode("JSON error"))?;
    let rules = claims
        .get("searchRules")
        .and_then(SearchRules::parse)
        .ok_or(TokenError::CouldNotDecode("JSON error"))?;
    let exp = match claims.get("exp") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or(TokenError::CouldNotDecode("JSON error"))?),
    };
    let key = keys
        .iter()
        .find(|k| k.uid == uid)
        .ok_or(TokenError::UnknownKey)?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let sig = decode(signature).ok_or(TokenError::CouldNotDecode("InvalidSignature"))?;
    match mac_ok(alg, key.key.as_bytes(), message.as_bytes(), &sig) {
        None => return Err(TokenError::CouldNotDecode("InvalidAlgorithm")),
        Some(false) => return Err(TokenError::CouldNotDecode("InvalidSignature")),
        Some(true) => {}
    }
    if let Some(exp) = exp.filter(|&exp| now_unix > exp) {
        return Err(TokenError::Expired { exp, now: now_unix });
    }
    Ok(TokenOutcome::Valid(Tenant {
        api_key_uid: key.uid.clone(),
        key_indexes: key.indexes.clone(),
        rules,
    }))
}

/// Constant-time MAC check; `None` for an algorithm Meilisearch does not accept.
fn mac_ok(alg: &str, key: &[u8], msg: &[u8], sig: &[u8]) -> Option<bool> {
    fn check<M: Mac + KeyInit>(key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
        match <M as KeyInit>::new_from_slice(key) {
            Ok(mut m) => {
                m.update(msg);
                m.verify_slice(sig).is_ok()
            }
            Err(_) => false,
        }
    }
    Some(match alg {
        "HS256" => check::<hmac::Hmac<sha2::Sha256>>(key, msg, sig),
        "HS384" => check::<hmac::Hmac<sha2::Sha384>>(key, msg, sig),
        "HS512" => check::<hmac::Hmac<sha2::Sha512>>(key, msg, sig),
        _ => return None,
    })
}

/// `rule AND client` in Meilisearch's array form: top-level array elements are ANDed, so a
/// string contributes itself and an array its elements (its inner arrays stay OR groups).
pub fn and_filters(rule: Option<Value>, client: Option<&Value>) -> Option<Value> {
    let Some(rule) = rule else {
        return client.cloned();
    };
    let client = match client {
        None | Some(Value::Null) => return Some(rule),
        Some(Value::String(s)) if s.trim().is_empty() => return Some(rule),
        Some(c) => c,
    };
    let mut out = Vec::new();
    for f in [&rule, client] {
        match f {
            Value::Array(items) => out.extend(items.iter().cloned()),
            other => out.push(other.clone()),
        }
    }
    Some(Value::Array(out))
}

/// Token signing for tests (Miroir itself only verifies).
#[cfg(test)]
pub(crate) mod test_support {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use hmac::{KeyInit, Mac};
    use serde_json::Value;

    pub(crate) fn b64(data: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(data)
    }

    pub(crate) fn sign(key: &str, payload: &Value) -> String {
        let h = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
        let p = b64(payload.to_string().as_bytes());
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(format!("{h}.{p}").as_bytes());
        let sig = b64(&mac.finalize().into_bytes());
        format!("{h}.{p}.{sig}")
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::sign;
    use super::*;
    use serde_json::json;

    fn keys() -> Vec<ApiKey> {
        vec![ApiKey {
            uid: "u1".into(),
            key: "parent-key".into(),
            name: None,
            actions: vec!["search".into()],
            indexes: vec!["*".into()],
            expires_at: None,
        }]
    }

    fn valid(t: &str, keys: &[ApiKey], now: i64) -> Tenant {
        match verify(t, keys, now) {
            Ok(TokenOutcome::Valid(t)) => t,
            other => panic!("not valid: {other:?}"),
        }
    }

    #[test]
    fn valid_token_and_rules() {
        let t = sign(
            "parent-key",
            &json!({"apiKeyUid": "u1", "searchRules": {"movies": {"filter": "tenant = 1"}, "*": null}, "exp": 2000}),
        );
        let tenant = valid(&t, &keys(), 1000);
        assert!(tenant.authorizes("movies"));
        assert_eq!(tenant.filter_for("movies"), Some(json!("tenant = 1")));
        assert!(tenant.authorizes("books"));
        assert_eq!(tenant.filter_for("books"), None);
        let t = sign(
            "parent-key",
            &json!({"apiKeyUid": "u1", "searchRules": ["mov*"]}),
        );
        let tenant = valid(&t, &keys(), 1000);
        assert!(tenant.authorizes("movies"));
        assert!(!tenant.authorizes("books"));
        assert_eq!(tenant.rules.listed(), vec!["mov*".to_string()]);
    }

    #[test]
    fn the_most_specific_pattern_wins() {
        let rules = SearchRules::parse(&json!({
            "*": {"filter": "a = 1"}, "mov*": {"filter": "b = 1"}, "movies": null
        }))
        .unwrap();
        assert_eq!(rules.filter_for("movies"), None, "exact pattern, no rule");
        assert_eq!(rules.filter_for("movies2"), Some(json!("b = 1")));
        assert_eq!(rules.filter_for("books"), Some(json!("a = 1")));
    }

    #[test]
    fn parent_key_scope_bounds_the_token() {
        let mut k = keys();
        k[0].indexes = vec!["movies".into()];
        let t = sign(
            "parent-key",
            &json!({"apiKeyUid": "u1", "searchRules": ["*"]}),
        );
        let tenant = valid(&t, &k, 0);
        assert!(tenant.authorizes("movies"));
        assert!(!tenant.authorizes("books"));
        assert_eq!(tenant.filter_for("books"), None);
    }

    #[test]
    fn invalid_tokens() {
        let p = json!({"apiKeyUid": "u1", "searchRules": ["*"], "exp": 500});
        assert_eq!(
            verify(&sign("parent-key", &p), &keys(), 1000),
            Err(TokenError::Expired {
                exp: 500,
                now: 1000
            })
        );
        // Valid up to and including `exp`'s second.
        assert!(verify(&sign("parent-key", &p), &keys(), 500).is_ok());
        let p = json!({"apiKeyUid": "u1", "searchRules": ["*"]});
        assert_eq!(
            verify(&sign("other-key", &p), &keys(), 1000),
            Err(TokenError::CouldNotDecode("InvalidSignature"))
        );
        let p = json!({"apiKeyUid": "nope", "searchRules": ["*"]});
        assert_eq!(
            verify(&sign("parent-key", &p), &keys(), 1000),
            Err(TokenError::UnknownKey)
        );
        let p = json!({"apiKeyUid": "u1"});
        assert!(matches!(
            verify(&sign("parent-key", &p), &keys(), 1000),
            Err(TokenError::CouldNotDecode(_))
        ));
        let p = json!({"apiKeyUid": "u1", "searchRules": [1]});
        assert!(verify(&sign("parent-key", &p), &keys(), 1000).is_err());
        assert_eq!(verify("a.b", &keys(), 0), Ok(TokenOutcome::NotAToken));
        assert_eq!(verify("plainkey", &keys(), 0), Ok(TokenOutcome::NotAToken));
        assert!(verify("a.b.c", &keys(), 0).is_err());
    }

    #[test]
    fn filter_composition() {
        assert_eq!(
            and_filters(None, Some(&json!("a = 1"))),
            Some(json!("a = 1"))
        );
        assert_eq!(
            and_filters(Some(json!("t = 1")), None),
            Some(json!("t = 1"))
        );
        assert_eq!(
            and_filters(Some(json!("t = 1")), Some(&json!("a = 1"))),
            Some(json!(["t = 1", "a = 1"]))
        );
        assert_eq!(
            and_filters(
                Some(json!(["t = 1", ["x", "y"]])),
                Some(&json!(["a", ["b", "c"]]))
            ),
            Some(json!(["t = 1", ["x", "y"], "a", ["b", "c"]]))
        );
    }
}
