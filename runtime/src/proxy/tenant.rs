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

use crate::proxy::auth::index_matches;
use hmac::{KeyInit, Mac};
use miroir_core::snapshot::ApiKey;
use serde_json::Value;

/// A verified token.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    pub api_key_uid: String,
    /// The parent key's index patterns.
    pub key_indexes: Vec<String>,
    pub rules: Value,
}

/// Base64url without padding (padding tolerated).
pub fn b64url(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            b'=' => continue,
            _ => return None,
        } as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Constant-time MAC check (`verify_slice`).
fn mac_ok(alg: &str, key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    fn check<M: Mac + KeyInit>(key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
        match <M as KeyInit>::new_from_slice(key) {
            Ok(mut m) => {
                m.update(msg);
                m.verify_slice(sig).is_ok()
            }
            Err(_) => false,
        }
    }
    match alg {
        "HS256" => check::<hmac::Hmac<sha2::Sha256>>(key, msg, sig),
        "HS384" => check::<hmac::Hmac<sha2::Sha384>>(key, msg, sig),
        "HS512" => check::<hmac::Hmac<sha2::Sha512>>(key, msg, sig),
        _ => false,
    }
}

/// Verifies `token` against the snapshot's keys at `now_unix`. `None` = not a valid token.
pub fn verify(token: &str, keys: &[ApiKey], now_unix: i64) -> Option<Tenant> {
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Value = serde_json::from_slice(&b64url(h)?).ok()?;
    let payload: Value = serde_json::from_slice(&b64url(p)?).ok()?;
    let uid = payload.get("apiKeyUid")?.as_str()?;
    let key = keys.iter().find(|k| k.uid == uid)?;
    let alg = header.get("alg")?.as_str()?;
    if !mac_ok(
        alg,
        key.key.as_bytes(),
        format!("{h}.{p}").as_bytes(),
        &b64url(s)?,
    ) {
        return None;
    }
    if let Some(exp) = payload.get("exp").filter(|e| !e.is_null()) {
        if exp.as_i64()? <= now_unix {
            return None;
        }
    }
    if key.expires_at.is_some_and(|e| e <= now_unix) {
        return None;
    }
    if !key
        .actions
        .iter()
        .any(|a| crate::proxy::auth::action_granted(a, "search"))
    {
        return None;
    }
    let rules = payload.get("searchRules")?.clone();
    if !(rules.is_object() || rules.is_array()) {
        return None;
    }
    Some(Tenant {
        api_key_uid: key.uid.clone(),
        key_indexes: key.indexes.clone(),
        rules,
    })
}

impl Tenant {
    /// `None`: the token may not search `index`. `Some(filter)`: it may, with the rule's
    /// filter (if any) to AND with the client's.
    pub fn rule_for(&self, index: &str) -> Option<Option<Value>> {
        if !self.key_indexes.iter().any(|p| index_matches(p, index)) {
            return None;
        }
        match &self.rules {
            Value::Array(a) => a
                .iter()
                .filter_map(Value::as_str)
                .any(|p| index_matches(p, index))
                .then_some(None),
            Value::Object(m) => {
                let mut best: Option<(&String, &Value)> = None;
                for (p, r) in m {
                    let better =
                        best.is_none_or(|(b, _)| p == index || (b != index && p.len() > b.len()));
                    if index_matches(p, index) && better {
                        best = Some((p, r));
                    }
                }
                let (_, rule) = best?;
                Some(rule.get("filter").filter(|f| !f.is_null()).cloned())
            }
            _ => None,
        }
    }
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
    use hmac::{KeyInit, Mac};
    use serde_json::Value;

    pub(crate) fn b64(data: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
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
    use super::test_support::{b64, sign};
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

    #[test]
    fn base64url_round_trip() {
        for s in [&b""[..], b"a", b"ab", b"abc", b"abcd", b"\xff\x00\x10"] {
            assert_eq!(b64url(&b64(s)).unwrap(), s.to_vec());
        }
        assert!(b64url("a*b").is_none());
    }

    #[test]
    fn valid_token_and_rules() {
        let t = sign(
            "parent-key",
            &json!({"apiKeyUid": "u1", "searchRules": {"movies": {"filter": "tenant = 1"}, "*": null}, "exp": 2000}),
        );
        let tenant = verify(&t, &keys(), 1000).unwrap();
        assert_eq!(tenant.rule_for("movies"), Some(Some(json!("tenant = 1"))));
        assert_eq!(tenant.rule_for("books"), Some(None));
        let t = sign(
            "parent-key",
            &json!({"apiKeyUid": "u1", "searchRules": ["mov*"]}),
        );
        let tenant = verify(&t, &keys(), 1000).unwrap();
        assert_eq!(tenant.rule_for("movies"), Some(None));
        assert_eq!(tenant.rule_for("books"), None);
    }

    #[test]
    fn invalid_tokens() {
        let p = json!({"apiKeyUid": "u1", "searchRules": ["*"], "exp": 500});
        assert!(
            verify(&sign("parent-key", &p), &keys(), 1000).is_none(),
            "expired"
        );
        let p = json!({"apiKeyUid": "u1", "searchRules": ["*"]});
        assert!(
            verify(&sign("other-key", &p), &keys(), 1000).is_none(),
            "bad signature"
        );
        let p = json!({"apiKeyUid": "nope", "searchRules": ["*"]});
        assert!(
            verify(&sign("parent-key", &p), &keys(), 1000).is_none(),
            "unknown key"
        );
        let p = json!({"apiKeyUid": "u1"});
        assert!(
            verify(&sign("parent-key", &p), &keys(), 1000).is_none(),
            "no rules"
        );
        assert!(verify("a.b", &keys(), 0).is_none());
        let mut k = keys();
        k[0].actions = vec!["documents.get".into()];
        let p = json!({"apiKeyUid": "u1", "searchRules": ["*"]});
        assert!(
            verify(&sign("parent-key", &p), &k, 1000).is_none(),
            "parent lacks search"
        );
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
