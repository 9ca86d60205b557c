//! `/network` (Meilisearch's `network` experimental feature, decision 045).
//!
//! The network lives here, never on the nodes: Miroir is the instance the network names, and
//! its nodes are its own shards (their own network stays empty). The record is a store meta
//! record ([`STORE_KEY`], LMDB or Redis through the store trait, so it survives restarts and
//! is shared across hosts); the admin keeps it in its state and publishes the part the data
//! planes need in the snapshot, where federated multi-search sends remote queries
//! (`runtime/src/proxy/remote.rs`).
//!
//! Answers as Meilisearch 1.50 Community Edition (checked against a real build): `GET` and
//! `PATCH` (merge-patch: `null` removes; synchronous, no task; answers the merged network),
//! deserr's wording for malformed bodies, `leader` and `POST /network/control` refused as
//! Enterprise Edition features. Both need the `network` experimental feature, which Miroir
//! relays to every node, so any live node knows it.

use crate::http_types::{
    describe_json_value, invalid_value_type, unknown_field, ApiError, Req, Resp,
};
use crate::state::{Admin, AdminError};
use hyper::Method;
use miroir_core::error::ErrorCode;
use miroir_core::network::{NetworkRecord, RemoteRecord, FEATURE_KEY, STORE_KEY};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Records the `network` feature as the nodes now have it and publishes it when it changed
/// (called after `PATCH /experimental-features` and whenever a node is asked for it).
pub async fn note_feature(admin: &Admin, on: bool) -> Result<(), AdminError> {
    // Only the leader writes the shared metadata; followers get it with the next reload.
    if admin.lock().network.feature == on || !admin.leadership().is_leader() {
        return Ok(());
    }
    let value: &[u8] = if on { b"true" } else { b"false" };
    admin.write_meta(FEATURE_KEY, Some(value)).await?;
    admin.lock().network.feature = on;
    admin.publish().await?;
    Ok(())
}

const USING: &str = "Using the /network route";

/// `GET|PATCH /network`, `POST /network/control`.
pub async fn route(admin: &Arc<Admin>, req: &Req, control: bool) -> Result<Resp, ApiError> {
    match (&req.method, control) {
        (&Method::GET, false) => {
            check_feature(admin, USING).await?;
            let record = admin.lock().network.record.clone();
            Ok(Resp::json(200, &record.to_api()))
        }
        (&Method::PATCH, false) => {
            let patch = parse_patch(&req.json()?)?;
            check_feature(admin, USING).await?;
            if patch.leader.is_some() {
                return Err(ApiError::core(
                    ErrorCode::RequiresEnterpriseEdition,
                    "Meilisearch Enterprise Edition is required to set `network.leader`",
                ));
            }
            if patch.previous_remotes {
                return Err(ApiError::core(
                    ErrorCode::UnexpectedNetworkPreviousRemotes,
                    "Unexpected `previousRemotes` in network call.\n  - Note: `previousRemote` is reserved for internal use.",
                ));
            }
            let _guard = admin.lock_scopes(vec![LOCK_SCOPE.into()]).await;
            let old = admin.lock().network.record.clone();
            let mut merged = merge(old, patch)?;
            merged.version = Some(uuid::Uuid::new_v4().to_string());
            let bytes = serde_json::to_vec(&merged).expect("the network serialises");
            admin
                .write_meta(STORE_KEY, Some(&bytes))
                .await
                .map_err(|e| ApiError::internal(format!("storing the network failed: {e}")))?;
            admin.lock().network.record = merged.clone();
            admin
                .publish()
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?;
            Ok(Resp::json(200, &merged.to_api()))
        }
        (&Method::POST, true) => {
            // Meilisearch reads the body (serde) before the feature check and the refusal.
            let body = req.json()?;
            if let Some(e) = control_body_error(&body) {
                return Err(e);
            }
            check_feature(admin, "Using the /network/control route").await?;
            Err(ApiError::core(
                ErrorCode::RequiresEnterpriseEdition,
                "Meilisearch Enterprise Edition is required to call this route",
            ))
        }
        _ => Err(ApiError::core(ErrorCode::NotFound, "Not Found")),
    }
}

/// The admin lock `PATCH /network` takes (not a valid index uid, so no index shares it).
const LOCK_SCOPE: &str = "/network";

/// `POST /network/control`'s body is read by serde (`NetworkChange`: `origin`, `message`).
fn control_body_error(body: &Value) -> Option<ApiError> {
    let bad = |m: String| {
        Some(ApiError::core(
            ErrorCode::BadRequest,
            format!("Json deserialize error: {m}"),
        ))
    };
    match body {
        Value::Object(m) => {
            for k in ["origin", "message"] {
                if !m.contains_key(k) {
                    return bad(format!(
                        "missing field `{k}` at line 1 column {}",
                        body.to_string().len()
                    ));
                }
            }
            None
        }
        other => bad(format!(
            "invalid type: {}, expected struct NetworkChange at line 1 column 1",
            describe_json_value(other)
        )),
    }
}

/// Meilisearch's `feature_not_enabled` unless a node has `network` on; the answer also
/// keeps the data planes' copy of the flag current.
async fn check_feature(admin: &Admin, action: &str) -> Result<(), ApiError> {
    let on = crate::features::node_flag(admin, "network").await?;
    if let Err(e) = note_feature(admin, on).await {
        tracing::warn!(error = %e, "could not record the network feature");
    }
    if on {
        return Ok(());
    }
    Err(ApiError::core(
        ErrorCode::FeatureNotEnabled,
        format!("{action} requires enabling the `network` experimental feature. See https://github.com/orgs/meilisearch/discussions/805"),
    ))
}

/// A field of the patch: absent, `null`, or a value.
#[derive(Debug, Clone, PartialEq, Default)]
enum Setting<T> {
    #[default]
    NotSet,
    Reset,
    Set(T),
}

#[derive(Debug, Clone, PartialEq, Default)]
struct RemotePatch {
    url: Setting<String>,
    search_api_key: Setting<String>,
    write_api_key: Setting<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
struct ShardPatch {
    remotes: Option<BTreeSet<String>>,
    add_remotes: Option<BTreeSet<String>>,
    remove_remotes: Option<BTreeSet<String>>,
}

/// Named entries of a patch map (`None`: `null`, remove the entry).
type Entries<T> = Setting<Vec<(String, Option<T>)>>;

#[derive(Debug, Clone, PartialEq, Default)]
struct Patch {
    remotes: Entries<RemotePatch>,
    shards: Entries<ShardPatch>,
    local: Setting<String>,
    /// `Some` when `leader` is set to a string (refused: Enterprise Edition).
    leader: Option<String>,
    /// `previousRemotes` was present (refused, even `null`).
    previous_remotes: bool,
}

const TOP_FIELDS: &[&str] = &[
    "remotes",
    "shards",
    "previousShards",
    "self",
    "leader",
    "previousRemotes",
];
const REMOTE_FIELDS: &[&str] = &["url", "searchApiKey", "writeApiKey"];
const SHARD_FIELDS: &[&str] = &["remotes", "addRemotes", "removeRemotes"];

fn string_setting(code: ErrorCode, at: &str, v: &Value) -> Result<Setting<String>, ApiError> {
    match v {
        Value::Null => Ok(Setting::Reset),
        Value::String(s) => Ok(Setting::Set(s.clone())),
        other => Err(invalid_value_type(code, at, "a string", other)),
    }
}

fn parse_remotes(at: &str, v: &Value) -> Result<Entries<RemotePatch>, ApiError> {
    let code = ErrorCode::InvalidNetworkRemotes;
    let m = match v {
        Value::Null => return Ok(Setting::Reset),
        Value::Object(m) => m,
        other => return Err(invalid_value_type(code, at, "an object", other)),
    };
    let mut out = Vec::with_capacity(m.len());
    for (name, r) in m {
        let here = format!("{at}.{name}");
        let r = match r {
            Value::Null => None,
            Value::Object(fields) => {
                let mut p = RemotePatch::default();
                for (k, v) in fields {
                    let at = format!("{here}.{k}");
                    match k.as_str() {
                        "url" => p.url = string_setting(ErrorCode::InvalidNetworkUrl, &at, v)?,
                        "searchApiKey" => {
                            p.search_api_key =
                                string_setting(ErrorCode::InvalidNetworkSearchApiKey, &at, v)?
                        }
                        "writeApiKey" => {
                            p.write_api_key =
                                string_setting(ErrorCode::InvalidNetworkWriteApiKey, &at, v)?
                        }
                        other => {
                            return Err(unknown_field(code, other, Some(&here), REMOTE_FIELDS))
                        }
                    }
                }
                Some(p)
            }
            other => return Err(invalid_value_type(code, &here, "an object", other)),
        };
        out.push((name.clone(), r));
    }
    Ok(Setting::Set(out))
}

fn parse_remote_set(at: &str, v: &Value) -> Result<Option<BTreeSet<String>>, ApiError> {
    let code = ErrorCode::InvalidNetworkRemotes;
    match v {
        Value::Null => Ok(None),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                Value::String(s) => Ok(s.clone()),
                other => Err(invalid_value_type(
                    code,
                    &format!("{at}[{i}]"),
                    "a string",
                    other,
                )),
            })
            .collect::<Result<_, _>>()
            .map(Some),
        other => Err(invalid_value_type(code, at, "an array", other)),
    }
}

fn parse_shards(at: &str, v: &Value) -> Result<Entries<ShardPatch>, ApiError> {
    let code = ErrorCode::InvalidNetworkShards;
    let m = match v {
        Value::Null => return Ok(Setting::Reset),
        Value::Object(m) => m,
        other => return Err(invalid_value_type(code, at, "an object", other)),
    };
    let mut out = Vec::with_capacity(m.len());
    for (name, s) in m {
        let here = format!("{at}.{name}");
        let s = match s {
            Value::Null => None,
            Value::Object(fields) => {
                let mut p = ShardPatch::default();
                for (k, v) in fields {
                    let at = format!("{here}.{k}");
                    match k.as_str() {
                        "remotes" => p.remotes = parse_remote_set(&at, v)?,
                        "addRemotes" => p.add_remotes = parse_remote_set(&at, v)?,
                        "removeRemotes" => p.remove_remotes = parse_remote_set(&at, v)?,
                        other => return Err(unknown_field(code, other, Some(&here), SHARD_FIELDS)),
                    }
                }
                Some(p)
            }
            other => return Err(invalid_value_type(code, &here, "an object", other)),
        };
        out.push((name.clone(), s));
    }
    Ok(Setting::Set(out))
}

/// Reads a `PATCH /network` body as Meilisearch's deserr does (first error wins, in the
/// body's order).
fn parse_patch(body: &Value) -> Result<Patch, ApiError> {
    let m: &Map<String, Value> = match body {
        Value::Object(m) => m,
        other => {
            return Err(invalid_value_type(
                ErrorCode::BadRequest,
                "",
                "an object",
                other,
            ))
        }
    };
    let mut p = Patch::default();
    for (k, v) in m {
        let at = format!(".{k}");
        match k.as_str() {
            "remotes" => p.remotes = parse_remotes(&at, v)?,
            "previousRemotes" => {
                parse_remotes(&at, v)?;
                p.previous_remotes = true;
            }
            "shards" => p.shards = parse_shards(&at, v)?,
            "previousShards" => {
                parse_shards(&at, v)?;
            }
            "self" => p.local = string_setting(ErrorCode::InvalidNetworkSelf, &at, v)?,
            "leader" => {
                if let Setting::Set(l) = string_setting(ErrorCode::InvalidNetworkLeader, &at, v)? {
                    p.leader = Some(l);
                }
            }
            other => {
                return Err(unknown_field(
                    ErrorCode::BadRequest,
                    other,
                    None,
                    TOP_FIELDS,
                ))
            }
        }
    }
    Ok(p)
}

fn check_url(name: &str, url: &str) -> Result<(), ApiError> {
    url::Url::parse(url).map(|_| ()).map_err(|e| {
        ApiError::core(
            ErrorCode::InvalidNetworkUrl,
            format!("Invalid `.remotes.{name}.url` (`{url}`): {e}"),
        )
    })
}

/// Meilisearch's `merge_networks` without a leader (CE cannot set one): shards first, then
/// remotes in name order (a removed remote leaves every shard), shards left without an
/// owner dropped.
fn merge(old: NetworkRecord, patch: Patch) -> Result<NetworkRecord, ApiError> {
    let local = match patch.local {
        Setting::Set(s) => Some(s),
        Setting::Reset => None,
        Setting::NotSet => old.local,
    };
    let mut shards = match patch.shards {
        Setting::NotSet => old.shards,
        Setting::Reset => BTreeMap::new(),
        Setting::Set(new) => {
            let mut merged = old.shards;
            // The last occurrence of a name wins, as in a JSON map.
            let new: BTreeMap<String, Option<ShardPatch>> = new.into_iter().collect();
            for (name, s) in new {
                match s {
                    None => {
                        merged.remove(&name);
                    }
                    Some(s) => {
                        let prev = merged.remove(&name).unwrap_or_default();
                        let mut owners = s.remotes.unwrap_or(prev);
                        if let Some(add) = s.add_remotes {
                            owners.extend(add);
                        }
                        if let Some(rm) = s.remove_remotes {
                            owners.retain(|r| !rm.contains(r));
                        }
                        merged.insert(name, owners);
                    }
                }
            }
            merged
        }
    };
    let remotes = match patch.remotes {
        Setting::NotSet => old.remotes,
        Setting::Reset => BTreeMap::new(),
        Setting::Set(new) => {
            let mut merged = old.remotes;
            let new: BTreeMap<String, Option<RemotePatch>> = new.into_iter().collect();
            for (name, r) in new {
                let Some(r) = r else {
                    merged.remove(&name);
                    for owners in shards.values_mut() {
                        owners.remove(&name);
                    }
                    continue;
                };
                let next = match merged.remove(&name) {
                    Some(prev) => RemoteRecord {
                        url: match r.url {
                            Setting::Set(u) => {
                                check_url(&name, &u)?;
                                u
                            }
                            Setting::Reset => {
                                return Err(ApiError::core(
                                    ErrorCode::InvalidNetworkUrl,
                                    format!("Field `.remotes.{name}.url` cannot be set to `null`"),
                                ))
                            }
                            Setting::NotSet => prev.url,
                        },
                        search_api_key: apply(r.search_api_key, prev.search_api_key),
                        write_api_key: apply(r.write_api_key, prev.write_api_key),
                    },
                    None => {
                        let Setting::Set(u) = r.url else {
                            return Err(ApiError::core(
                                ErrorCode::MissingNetworkUrl,
                                format!("Missing field `.remotes.{name}.url`"),
                            ));
                        };
                        check_url(&name, &u)?;
                        RemoteRecord {
                            url: u,
                            search_api_key: apply(r.search_api_key, None),
                            write_api_key: apply(r.write_api_key, None),
                        }
                    }
                };
                merged.insert(name, next);
            }
            merged
        }
    };
    shards.retain(|_, owners| !owners.is_empty());
    Ok(NetworkRecord {
        local,
        remotes,
        shards,
        version: old.version,
    })
}

fn apply(s: Setting<String>, prev: Option<String>) -> Option<String> {
    match s {
        Setting::Set(v) => Some(v),
        Setting::Reset => None,
        Setting::NotSet => prev,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(r: Result<impl std::fmt::Debug, ApiError>) -> (String, String) {
        let e = r.unwrap_err();
        let b = e.body();
        (
            b["code"].as_str().unwrap().to_string(),
            b["message"].as_str().unwrap().to_string(),
        )
    }

    fn patched(old: NetworkRecord, body: Value) -> Result<NetworkRecord, ApiError> {
        merge(old, parse_patch(&body)?)
    }

    /// Refusals, checked against Meilisearch 1.50 by hand.
    #[test]
    fn refusals_match_meilisearch() {
        let cases = [
            (json!([]), "bad_request", "Invalid value type: expected an object, but found an array: `[]`"),
            (json!({"foo": 1}), "bad_request", "Unknown field `foo`: expected one of `remotes`, `shards`, `previousShards`, `self`, `leader`, `previousRemotes`"),
            (json!({"remotes": 3}), "invalid_network_remotes", "Invalid value type at `.remotes`: expected an object, but found a positive integer: `3`"),
            (json!({"remotes": {"b": 3}}), "invalid_network_remotes", "Invalid value type at `.remotes.b`: expected an object, but found a positive integer: `3`"),
            (json!({"remotes": {"b": {"url": 3}}}), "invalid_network_url", "Invalid value type at `.remotes.b.url`: expected a string, but found a positive integer: `3`"),
            (json!({"remotes": {"b": {"searchApiKey": 3}}}), "invalid_network_search_api_key", "Invalid value type at `.remotes.b.searchApiKey`: expected a string, but found a positive integer: `3`"),
            (json!({"remotes": {"b": {"foo": 3}}}), "invalid_network_remotes", "Unknown field `foo` inside `.remotes.b`: expected one of `url`, `searchApiKey`, `writeApiKey`"),
            (json!({"self": 3}), "invalid_network_self", "Invalid value type at `.self`: expected a string, but found a positive integer: `3`"),
            (json!({"leader": 3}), "invalid_network_leader", "Invalid value type at `.leader`: expected a string, but found a positive integer: `3`"),
            (json!({"shards": 3}), "invalid_network_shards", "Invalid value type at `.shards`: expected an object, but found a positive integer: `3`"),
            (json!({"shards": {"s1": 3}}), "invalid_network_shards", "Invalid value type at `.shards.s1`: expected an object, but found a positive integer: `3`"),
            (json!({"shards": {"s1": {"x": 1}}}), "invalid_network_shards", "Unknown field `x` inside `.shards.s1`: expected one of `remotes`, `addRemotes`, `removeRemotes`"),
            (json!({"shards": {"s1": {"remotes": 3}}}), "invalid_network_remotes", "Invalid value type at `.shards.s1.remotes`: expected an array, but found a positive integer: `3`"),
            (json!({"shards": {"s1": {"remotes": [3]}}}), "invalid_network_remotes", "Invalid value type at `.shards.s1.remotes[0]`: expected a string, but found a positive integer: `3`"),
            (json!({"remotes": {"c": {"searchApiKey": "k"}}}), "missing_network_url", "Missing field `.remotes.c.url`"),
            (json!({"remotes": {"c": {"url": "not a url"}}}), "invalid_network_url", "Invalid `.remotes.c.url` (`not a url`): relative URL without a base"),
            (json!({"remotes": {"b": {"url": "http://x:99999"}}}), "invalid_network_url", "Invalid `.remotes.b.url` (`http://x:99999`): invalid port number"),
            (json!({"remotes": {"b": {"url": null}}}), "invalid_network_url", "Field `.remotes.b.url` cannot be set to `null`"),
        ];
        let old = patched(
            NetworkRecord::default(),
            json!({"remotes": {"b": {"url": "http://127.0.0.1:2"}}}),
        )
        .unwrap();
        for (body, code, message) in cases {
            assert_eq!(
                err(patched(old.clone(), body.clone())),
                (code.to_string(), message.to_string()),
                "{body}"
            );
        }
        let p = parse_patch(&json!({"leader": "a"})).unwrap();
        assert_eq!(p.leader.as_deref(), Some("a"));
        assert!(parse_patch(&json!({"leader": null}))
            .unwrap()
            .leader
            .is_none());
        assert!(
            parse_patch(&json!({"previousRemotes": null}))
                .unwrap()
                .previous_remotes
        );
    }

    #[test]
    fn merge_patch_semantics() {
        let n = patched(
            NetworkRecord::default(),
            json!({"self": "a", "remotes": {
                "a": {"url": "http://127.0.0.1:1", "searchApiKey": "k"},
                "b": {"url": "http://127.0.0.1:2"},
                "c": {"url": "ftp:/x"}}}),
        )
        .unwrap();
        assert_eq!(n.local.as_deref(), Some("a"));
        assert_eq!(n.remotes["a"].search_api_key.as_deref(), Some("k"));
        assert_eq!(n.remotes["b"].search_api_key, None);
        let n = patched(
            n,
            json!({"remotes": {"b": {"searchApiKey": "s", "writeApiKey": "w"}, "c": null},
                   "shards": {"s1": {"remotes": ["b", "c"], "addRemotes": ["a"]}}}),
        )
        .unwrap();
        assert_eq!(n.remotes["b"].url, "http://127.0.0.1:2");
        assert_eq!(n.remotes["b"].write_api_key.as_deref(), Some("w"));
        assert!(!n.remotes.contains_key("c"));
        // A removed remote leaves the shards it owned.
        assert_eq!(
            n.shards["s1"],
            BTreeSet::from(["a".to_string(), "b".to_string()])
        );
        let n = patched(
            n,
            json!({"shards": {"s1": {"removeRemotes": ["a", "b"]}}, "self": null}),
        )
        .unwrap();
        assert!(n.shards.is_empty());
        assert_eq!(n.local, None);
        let n = patched(n, json!({"remotes": {}, "leader": null})).unwrap();
        assert_eq!(n.remotes.len(), 2);
        let n = patched(n, json!({"remotes": null})).unwrap();
        assert!(n.remotes.is_empty());
    }
}
