//! Tenant tokens: JWTs (HS256/384/512) signed with an API key's value, carrying
//! `{searchRules, apiKeyUid, exp?}` — Meilisearch's multitenancy tokens. A token only grants
//! search, only on indexes its rules name (and its parent key allows), and each rule's
//! `filter` is ANDed with the client's filter.

use crate::keys::{index_pattern_matches, Key};
use hmac::{KeyInit, Mac};
use serde_json::Value;

/// Verified token contents.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    pub rules: Value,
    pub key: Key,
}

fn b64url(s: &str) -> Option<Vec<u8>> {
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

fn mac_ok(alg: &str, key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    match alg {
        "HS256" => hmac::Hmac::<sha2::Sha256>::new_from_slice(key)
            .map(|mut m| {
                m.update(msg);
                m.verify_slice(sig).is_ok()
            })
            .unwrap_or(false),
        "HS384" => hmac::Hmac::<sha2::Sha384>::new_from_slice(key)
            .map(|mut m| {
                m.update(msg);
                m.verify_slice(sig).is_ok()
            })
            .unwrap_or(false),
        "HS512" => hmac::Hmac::<sha2::Sha512>::new_from_slice(key)
            .map(|mut m| {
                m.update(msg);
                m.verify_slice(sig).is_ok()
            })
            .unwrap_or(false),
        _ => false,
    }
}

/// Verifies a token against the node's keys at time `now_secs` (Unix seconds).
pub fn verify(token: &str, keys: &[Key], now_secs: i64) -> Option<Tenant> {
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
        if exp.as_i64()? <= now_secs {
            return None;
        }
    }
    let rules = payload.get("searchRules")?.clone();
    if !(rules.is_object() || rules.is_array()) || !key.allows_action("search") {
        return None;
    }
    Some(Tenant {
        rules,
        key: key.clone(),
    })
}

impl Tenant {
    /// Whether the token may search `index`, and the rule's filter if any.
    pub fn rule_for(&self, index: &str) -> Option<Option<Value>> {
        if !self.key.allows_index(index) {
            return None;
        }
        match &self.rules {
            Value::Array(a) => a
                .iter()
                .filter_map(Value::as_str)
                .any(|p| index_pattern_matches(p, index))
                .then_some(None),
            Value::Object(m) => {
                // The most specific pattern wins: exact name, then the longest prefix pattern.
                let mut best: Option<(&String, &Value)> = None;
                for (p, r) in m {
                    if index_pattern_matches(p, index)
                        && best.is_none_or(|(b, _)| p == index || (b != index && p.len() > b.len()))
                    {
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

/// The client's filter ANDed with a tenant rule's filter (Meilisearch's array form).
pub fn merge_filter(rule: Option<Value>, client: &Value) -> Value {
    match (rule, client) {
        (None, c) => c.clone(),
        (Some(r), Value::Null) => r,
        (Some(r), c) => Value::Array(vec![r, c.clone()]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(data: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (*b as u32) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }

    pub fn sign(key: &str, payload: Value) -> String {
        let h = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
        let p = b64(&serde_json::to_vec(&payload).unwrap());
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
        m.update(format!("{h}.{p}").as_bytes());
        format!("{h}.{p}.{}", b64(&m.finalize().into_bytes()))
    }

    #[test]
    fn verifies_signature_expiry_and_rules() {
        let keys = crate::keys::defaults("master", 0);
        let search = &keys[0];
        let t = sign(
            &search.key,
            json!({"apiKeyUid": search.uid, "searchRules": {"movies*": {"filter": "g = a"}, "movies_fr": null}, "exp": 2_000}),
        );
        let tenant = verify(&t, &keys, 1_000).unwrap();
        assert_eq!(tenant.rule_for("movies_en"), Some(Some(json!("g = a"))));
        assert_eq!(tenant.rule_for("movies_fr"), Some(None));
        assert_eq!(tenant.rule_for("books"), None);
        assert!(verify(&t, &keys, 2_000).is_none(), "expired");
        assert!(
            verify(&t.replace('.', ".x"), &keys, 1_000).is_none(),
            "tampered"
        );
        let other = sign(
            "not-the-key",
            json!({"apiKeyUid": search.uid, "searchRules": ["*"]}),
        );
        assert!(verify(&other, &keys, 1_000).is_none());
        let arr = verify(
            &sign(
                &search.key,
                json!({"apiKeyUid": search.uid, "searchRules": ["*"]}),
            ),
            &keys,
            0,
        )
        .unwrap();
        assert_eq!(arr.rule_for("anything"), Some(None));
        assert_eq!(
            merge_filter(Some(json!("a = 1")), &json!("b = 2")),
            json!(["a = 1", "b = 2"])
        );
        assert_eq!(merge_filter(None, &Value::Null), Value::Null);
    }
}
