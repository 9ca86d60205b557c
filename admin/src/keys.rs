//! API keys: one consistent set for the whole deployment.
//!
//! Meilisearch derives a key's value as `hex(HMAC-SHA256(master key, uid))`, so creating a key
//! with the same uid on every node (all sharing the node master key) yields the same value
//! everywhere, and tenant tokens signed with it verify on every node. The admin keeps the
//! authoritative list in its store and serves `GET /keys` from there; each node's own random
//! default keys are never shown. The two default keys get fixed uids, created once.

use crate::http_types::{encode_segment, query_pairs, ApiError, Req, Resp};
use crate::node_client::NodeClient;
use crate::state::{Admin, AdminError};
use hmac::{Hmac, KeyInit, Mac};
use hyper::Method;
use miroir_core::error::ErrorCode;
use serde_json::{json, Value};
use sha2::Sha256;

/// (uid, name, description, actions) of the default keys, as Meilisearch 1.50 names them
/// (`Key::default_*` in meilisearch-types), in the order `GET /keys` lists them (newest
/// first). Meilisearch creates them chat, read-only admin, admin, search; Miroir gives all
/// of one deployment the same `createdAt`, and equal timestamps list in uid order, so the
/// uids follow the listing order.
pub const DEFAULT_KEYS: &[(&str, &str, &str, &[&str])] = &[
    (
        "9b3c3a4e-6f0a-4c51-9d6b-5e1f2a7c0d01",
        "Default Search API Key",
        "Use it to search from the frontend",
        &["search"],
    ),
    (
        "9b3c3a4e-6f0a-4c51-9d6b-5e1f2a7c0d02",
        "Default Admin API Key",
        "Use it for anything that is not a search operation. Caution! Do not expose it on a public frontend",
        &["*"],
    ),
    (
        "9b3c3a4e-6f0a-4c51-9d6b-5e1f2a7c0d03",
        "Default Read-Only Admin API Key",
        "Use it to read information across the whole database. Caution! Do not expose this key on a public frontend",
        &["*.get", "keys.get"],
    ),
    (
        "9b3c3a4e-6f0a-4c51-9d6b-5e1f2a7c0d04",
        "Default Chat API Key",
        "Use it to chat and search from the frontend",
        &["chatCompletions", "search"],
    ),
];

/// `hex(HMAC-SHA256(master_key, uid))` — Meilisearch's `generate_key_as_hexa`.
pub fn derive_key(master_key: &str, uid: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(master_key.as_bytes()).expect("HMAC accepts any key length");
    mac.update(uid.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A key object shaped like Meilisearch's `GET /keys/{uid}`.
pub fn key_object(
    master_key: &str,
    uid: &str,
    name: &str,
    description: &str,
    actions: &[&str],
    now: &str,
) -> Value {
    json!({
        "name": name, "description": description, "key": derive_key(master_key, uid), "uid": uid,
        "actions": actions, "indexes": ["*"], "expiresAt": null, "createdAt": now, "updatedAt": now,
    })
}

/// The body that creates `key` on a node (same uid → same value there).
fn create_body(key: &Value) -> Value {
    json!({
        "uid": key["uid"], "name": key["name"], "description": key["description"],
        "actions": key["actions"], "indexes": key["indexes"], "expiresAt": key["expiresAt"],
    })
}

/// Creates the default keys once (first start) in the store, with fixed uids.
pub async fn ensure_defaults(admin: &Admin) -> Result<(), AdminError> {
    let Some(master) = admin.node_master_key() else {
        return Ok(()); // No master key: Meilisearch has no keys API either.
    };
    // One timestamp for the keys created now: `GET /keys` then lists them in uid
    // order, which is Meilisearch's listing order (DEFAULT_KEYS).
    let now = crate::timefmt::now_rfc3339();
    for (uid, name, description, actions) in DEFAULT_KEYS {
        if admin.lock().keys.contains_key(*uid) {
            continue;
        }
        let key = key_object(master, uid, name, description, actions, &now);
        admin.put_key(uid, key).await?;
    }
    Ok(())
}

/// Makes sure every live node has every Miroir key (same uid → same key value). Runs
/// after each health round so a node that was down or is new catches up.
pub async fn sync_to_nodes(admin: &Admin) {
    if admin.node_master_key().is_none() {
        return;
    }
    let keys: Vec<Value> = admin.lock().keys.values().cloned().collect();
    for node in admin.live_nodes() {
        if let Err(e) = sync_node_keys(&admin.client, &node.address, &keys).await {
            tracing::warn!(node = %node.id, error = %e, "syncing API keys to node failed");
        }
    }
}

/// Creates on `address` every key of `keys` the node lacks.
pub async fn sync_node_keys(
    client: &NodeClient,
    address: &str,
    keys: &[Value],
) -> Result<(), String> {
    let r = client
        .send(address, Method::GET, "/keys?limit=100000", None)
        .await
        .map_err(|e| e.to_string())?;
    if !r.is_success() {
        return Err(format!("GET /keys answered {}", r.status));
    }
    let have: Vec<String> = r.json()["results"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|k| k["uid"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    // One key the node refuses must not keep the others from being created.
    let mut failures = Vec::new();
    for key in keys {
        let uid = key["uid"].as_str().unwrap_or_default();
        if have.iter().any(|h| h == uid) {
            continue;
        }
        match client
            .send(address, Method::POST, "/keys", Some(&create_body(key)))
            .await
        {
            Ok(r) if r.is_success() => {}
            Ok(r) => failures.push(format!("POST /keys for `{uid}` answered {}", r.status)),
            Err(e) => failures.push(format!("POST /keys for `{uid}`: {e}")),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

fn find<'a>(
    keys: &'a std::collections::BTreeMap<String, Value>,
    uid_or_key: &str,
) -> Option<&'a Value> {
    keys.get(uid_or_key)
        .or_else(|| keys.values().find(|k| k["key"] == uid_or_key))
}

fn not_found(uid_or_key: &str) -> ApiError {
    ApiError::core(
        ErrorCode::ApiKeyNotFound,
        format!("API key `{uid_or_key}` not found."),
    )
}

fn require_master(admin: &Admin) -> Result<&str, ApiError> {
    admin.node_master_key().ok_or_else(|| {
        ApiError::core(ErrorCode::MissingMasterKey, "Meilisearch is running without a master key. To access this API endpoint, you must have set a master key at launch.")
    })
}

/// `GET /keys` — `{results, offset, limit, total}`, newest first (assumed Meilisearch order).
pub fn list(admin: &Admin, req: &Req) -> Result<Resp, ApiError> {
    require_master(admin)?;
    let (mut offset, mut limit) = (0usize, 20usize);
    for (k, v) in query_pairs(&req.query) {
        match k.as_str() {
            "offset" => offset = v.parse().map_err(|_| ApiError::core(ErrorCode::InvalidApiKeyOffset, format!("Invalid value in parameter `offset`: could not parse `{v}` as a positive integer")))?,
            "limit" => limit = v.parse().map_err(|_| ApiError::core(ErrorCode::InvalidApiKeyLimit, format!("Invalid value in parameter `limit`: could not parse `{v}` as a positive integer")))?,
            _ => {}
        }
    }
    let mut keys: Vec<Value> = admin.lock().keys.values().cloned().collect();
    // Newest first (Meilisearch's order); equal timestamps in uid order.
    keys.sort_by(|a, b| {
        b["createdAt"]
            .as_str()
            .cmp(&a["createdAt"].as_str())
            .then_with(|| a["uid"].as_str().cmp(&b["uid"].as_str()))
    });
    let total = keys.len();
    let results: Vec<Value> = keys.into_iter().skip(offset).take(limit).collect();
    Ok(Resp::json(
        200,
        &json!({"results": results, "offset": offset, "limit": limit, "total": total}),
    ))
}

pub fn get(admin: &Admin, uid_or_key: &str) -> Result<Resp, ApiError> {
    require_master(admin)?;
    let st = admin.lock();
    find(&st.keys, uid_or_key)
        .map(|k| Resp::json(200, k))
        .ok_or_else(|| not_found(uid_or_key))
}

/// `POST /keys`: create on every node with one uid, roll back on the first refusal.
pub async fn create(admin: &Admin, req: &Req) -> Result<Resp, ApiError> {
    let master = require_master(admin)?.to_string();
    let body = req.json()?;
    for (field, code) in [
        ("actions", ErrorCode::MissingApiKeyActions),
        ("indexes", ErrorCode::MissingApiKeyIndexes),
        ("expiresAt", ErrorCode::MissingApiKeyExpiresAt),
    ] {
        if body.get(field).is_none() {
            return Err(ApiError::core(code, format!("Missing field `{field}`")));
        }
    }
    let uid = match body.get("uid").and_then(Value::as_str) {
        Some(u) => u.to_string(),
        None => uuid::Uuid::new_v4().to_string(),
    };
    if admin.lock().keys.contains_key(&uid) {
        return Err(ApiError::core(
            ErrorCode::ApiKeyAlreadyExists,
            format!("`uid` field value `{uid}` is already an existing API key."),
        ));
    }
    let mut node_body = body.clone();
    node_body["uid"] = json!(uid);
    let now = crate::timefmt::now_rfc3339();
    let key = json!({
        "name": body.get("name").cloned().unwrap_or(Value::Null),
        "description": body.get("description").cloned().unwrap_or(Value::Null),
        "key": derive_key(&master, &uid), "uid": uid, "actions": body["actions"], "indexes": body["indexes"],
        "expiresAt": body["expiresAt"].as_str().and_then(crate::timefmt::key_expiry).map_or(body["expiresAt"].clone(), Value::from),
        "createdAt": now, "updatedAt": now,
    });
    let mut done: Vec<String> = Vec::new();
    for node in admin.live_nodes() {
        let r = admin
            .client
            .send(&node.address, Method::POST, "/keys", Some(&node_body))
            .await;
        let failure = match r {
            Ok(r) if r.is_success() => None,
            Ok(r) => Some(ApiError::Node {
                status: r.status,
                body: r.json(),
            }),
            Err(e) => Some(ApiError::core(
                ErrorCode::MiroirNodeUnreachable,
                format!("node `{}`: {e}", node.id),
            )),
        };
        if let Some(err) = failure {
            for addr in &done {
                let _ = admin
                    .client
                    .send(
                        addr,
                        Method::DELETE,
                        &format!("/keys/{}", encode_segment(&uid)),
                        None,
                    )
                    .await;
            }
            admin.metrics.broadcast(false);
            return Err(err);
        }
        done.push(node.address.clone());
    }
    admin.put_key(&uid, key.clone()).await?;
    admin.publish().await?;
    admin.metrics.broadcast(true);
    Ok(Resp::json(201, &key))
}

/// Fields `PATCH /keys` refuses with their own `immutable_api_key_*` code.
const IMMUTABLE_KEY_FIELDS: &[(&str, ErrorCode)] = &[
    ("uid", ErrorCode::ImmutableApiKeyUid),
    ("actions", ErrorCode::ImmutableApiKeyActions),
    ("indexes", ErrorCode::ImmutableApiKeyIndexes),
    ("expiresAt", ErrorCode::ImmutableApiKeyExpiresAt),
    ("createdAt", ErrorCode::ImmutableApiKeyCreatedAt),
    ("updatedAt", ErrorCode::ImmutableApiKeyUpdatedAt),
];

/// Validates a `PATCH /keys` body as Meilisearch 1.50 does (`PatchApiKey`, checked against
/// a real node), before looking the key up: an object whose fields, in body order, are
/// `name`/`description` (a string or null); the first other field fails.
pub fn validate_key_patch(body: &Value) -> Result<(), ApiError> {
    const ACCEPTED: &[&str] = &["description", "name"];
    let expected = "expected one of `description`, `name`";
    let Some(fields) = body.as_object() else {
        return Err(ApiError::core(
            ErrorCode::BadRequest,
            format!(
                "Invalid value type: expected an object, but found {}",
                crate::http_types::describe_json_value(body)
            ),
        ));
    };
    for (k, v) in fields {
        if let Some((_, code)) = IMMUTABLE_KEY_FIELDS.iter().find(|(f, _)| f == k) {
            return Err(ApiError::core(
                *code,
                format!("Immutable field `{k}`: {expected}"),
            ));
        }
        if !ACCEPTED.contains(&k.as_str()) {
            return Err(ApiError::core(
                ErrorCode::BadRequest,
                format!(
                    "Unknown field `{k}`: {}{expected}",
                    crate::http_types::did_you_mean(k, ACCEPTED)
                ),
            ));
        }
        if !(v.is_string() || v.is_null()) {
            // Only the accepted fields get here.
            let code = if k == "name" {
                ErrorCode::InvalidApiKeyName
            } else {
                ErrorCode::InvalidApiKeyDescription
            };
            return Err(ApiError::core(
                code,
                format!(
                    "Invalid value type at `.{k}`: expected a string, but found {}",
                    crate::http_types::describe_json_value(v)
                ),
            ));
        }
    }
    Ok(())
}

/// `PATCH /keys/{uid_or_key}`: only `name` and `description` change (Meilisearch rule);
/// anything else is refused before any node is touched.
pub async fn update(admin: &Admin, uid_or_key: &str, req: &Req) -> Result<Resp, ApiError> {
    require_master(admin)?;
    let body = req.json()?;
    validate_key_patch(&body)?;
    let mut key =
        { find(&admin.lock().keys, uid_or_key).cloned() }.ok_or_else(|| not_found(uid_or_key))?;
    let uid = key["uid"].as_str().unwrap_or_default().to_string();
    let mut patch = serde_json::Map::new();
    for f in ["name", "description"] {
        if let Some(v) = body.get(f) {
            patch.insert(f.into(), v.clone());
            key[f] = v.clone();
        }
    }
    let patch = Value::Object(patch);
    for node in admin.live_nodes() {
        match admin
            .client
            .send(
                &node.address,
                Method::PATCH,
                &format!("/keys/{}", encode_segment(&uid)),
                Some(&patch),
            )
            .await
        {
            Ok(r) if r.is_success() => {}
            Ok(r) => {
                return Err(ApiError::Node {
                    status: r.status,
                    body: r.json(),
                })
            }
            Err(e) => {
                return Err(ApiError::core(
                    ErrorCode::MiroirNodeUnreachable,
                    format!("node `{}`: {e}", node.id),
                ))
            }
        }
    }
    key["updatedAt"] = json!(crate::timefmt::now_rfc3339());
    admin.put_key(&uid, key.clone()).await?;
    admin.publish().await?;
    Ok(Resp::json(200, &key))
}

pub async fn delete(admin: &Admin, uid_or_key: &str) -> Result<Resp, ApiError> {
    require_master(admin)?;
    let key =
        { find(&admin.lock().keys, uid_or_key).cloned() }.ok_or_else(|| not_found(uid_or_key))?;
    let uid = key["uid"].as_str().unwrap_or_default().to_string();
    // Removed from Miroir first: the data plane stops accepting it at the next snapshot even
    // if a node is down now (the node copy is then unreachable through Miroir anyway).
    admin.remove_key(&uid).await?;
    admin.publish().await?;
    for node in admin.live_nodes() {
        let _ = admin
            .client
            .send(
                &node.address,
                Method::DELETE,
                &format!("/keys/{}", encode_segment(&uid)),
                None,
            )
            .await;
    }
    Ok(Resp::empty(204))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As a real Meilisearch 1.50 answers `PATCH /keys/{key}` (captured from one).
    #[test]
    fn key_patches_are_validated_like_meilisearch() {
        let err = |b: Value| {
            let e = validate_key_patch(&b).unwrap_err().body();
            (
                e["code"].as_str().unwrap().to_string(),
                e["message"].as_str().unwrap().to_string(),
            )
        };
        assert_eq!(
            err(json!({"actions": ["*"]})),
            (
                "immutable_api_key_actions".into(),
                "Immutable field `actions`: expected one of `description`, `name`".into()
            )
        );
        assert_eq!(
            err(json!({"name": "n", "expiresAt": null})).0,
            "immutable_api_key_expires_at"
        );
        assert_eq!(
            err(json!({"createdAt": "x"})).0,
            "immutable_api_key_created_at"
        );
        assert_eq!(
            err(json!({"key": "x"})),
            (
                "bad_request".into(),
                "Unknown field `key`: expected one of `description`, `name`".into()
            )
        );
        assert_eq!(
            err(json!({"name": 1})),
            (
                "invalid_api_key_name".into(),
                "Invalid value type at `.name`: expected a string, but found a positive integer: `1`".into()
            )
        );
        assert_eq!(
            err(json!({"description": []})).0,
            "invalid_api_key_description"
        );
        assert_eq!(
            err(json!([])),
            (
                "bad_request".into(),
                "Invalid value type: expected an object, but found an array: `[]`".into()
            )
        );
        assert!(validate_key_patch(&json!({"name": "n", "description": null})).is_ok());
    }

    #[test]
    fn default_keys_match_meilisearch_1_50() {
        let names: Vec<&str> = DEFAULT_KEYS.iter().map(|k| k.1).collect();
        assert_eq!(
            names,
            [
                "Default Search API Key",
                "Default Admin API Key",
                "Default Read-Only Admin API Key",
                "Default Chat API Key"
            ]
        );
        // Listing order on equal timestamps is uid order.
        assert!(DEFAULT_KEYS.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(DEFAULT_KEYS[2].3, ["*.get", "keys.get"]);
    }

    #[test]
    fn derivation_is_hmac_sha256_hex() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            derive_key("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let k = key_object("master", DEFAULT_KEYS[0].0, "n", "d", &["search"], "t");
        assert_eq!(k["key"], derive_key("master", DEFAULT_KEYS[0].0));
        assert_eq!(k.as_object().unwrap().len(), 9);
    }
}
