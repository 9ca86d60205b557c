//! API keys and authorization, following meilisearch-auth.
//!
//! Key value = lowercase hex of HMAC-SHA256 keyed with the master key over the key uid's
//! hyphenated lowercase string (`generate_key_as_hexa` upstream), so two nodes sharing a
//! master key derive the same key for the same uid. Without a master key every route is open.
//! Assumption (documented): the `*` action covers every action except `keys.*`, matching the
//! documented behaviour of the Default Admin API Key ("all routes except /keys").

use crate::error::{ApiError, Result};
use crate::json::Out;
use crate::timefmt::{self, Ts};
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Every action Meilisearch 1.50 accepts, in its declaration order (the order of the
/// "expected one of" list in `invalid_api_key_actions` errors).
pub const ACTIONS: &[&str] = &[
    "*",
    "search",
    "documents.*",
    "documents.add",
    "documents.get",
    "documents.delete",
    "indexes.*",
    "indexes.create",
    "indexes.get",
    "indexes.update",
    "indexes.delete",
    "indexes.swap",
    "tasks.*",
    "tasks.cancel",
    "tasks.delete",
    "tasks.get",
    "settings.*",
    "settings.get",
    "settings.update",
    "stats.*",
    "stats.get",
    "metrics.*",
    "metrics.get",
    "dumps.*",
    "dumps.create",
    "snapshots.*",
    "snapshots.create",
    "version",
    "keys.create",
    "keys.get",
    "keys.update",
    "keys.delete",
    "experimental.get",
    "experimental.update",
    "export",
    "network.get",
    "network.update",
    "chatCompletions",
    "chats.*",
    "chats.get",
    "chats.delete",
    "chatsSettings.*",
    "chatsSettings.get",
    "chatsSettings.update",
    "*.get",
    "webhooks.get",
    "webhooks.update",
    "webhooks.delete",
    "webhooks.create",
    "webhooks.*",
    "indexes.compact",
    "fields.post",
    "tasks.compact",
    "dynamicSearchRules.get",
    "dynamicSearchRules.create",
    "dynamicSearchRules.update",
    "dynamicSearchRules.delete",
    "dynamicSearchRules.*",
];

/// Actions `*.get` expands to: the read-only ones (as Meilisearch 1.50's `Action::is_read`;
/// `keys.get` is deliberately excluded there to prevent privilege escalation).
const READ_ACTIONS: &[&str] = &[
    "search",
    "documents.get",
    "export",
    "indexes.get",
    "tasks.get",
    "settings.get",
    "stats.get",
    "metrics.get",
    "version",
    "experimental.get",
    "network.get",
    "chats.get",
    "chatsSettings.get",
    "webhooks.get",
    "fields.post",
    "dynamicSearchRules.get",
];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Key {
    pub uid: String,
    pub key: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub actions: Vec<String>,
    pub indexes: Vec<String>,
    pub expires_at: Option<Ts>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

/// Meilisearch's `generate_key_as_hexa`.
pub fn derive_key(master: &str, uid: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(master.as_bytes())
        .expect("HMAC accepts any key length");
    mac.update(uid.to_lowercase().as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Key {
    pub fn view(&self) -> Out {
        Out::obj()
            .with("name", json!(self.name))
            .with("description", json!(self.description))
            .with("key", json!(self.key))
            .with("uid", json!(self.uid))
            .with("actions", json!(self.actions))
            .with("indexes", json!(self.indexes))
            .with(
                "expiresAt",
                self.expires_at
                    .map(|t| json!(timefmt::rfc3339(t)))
                    .unwrap_or(Value::Null),
            )
            .with("createdAt", json!(timefmt::rfc3339(self.created_at)))
            .with("updatedAt", json!(timefmt::rfc3339(self.updated_at)))
    }

    /// Whether this key grants `action` (e.g. `documents.add`).
    pub fn allows_action(&self, action: &str) -> bool {
        let family = action.split('.').next().unwrap_or(action);
        self.actions.iter().any(|a| {
            a == action
                || a == "*"
                || (a == "*.get" && READ_ACTIONS.contains(&action))
                || (a.ends_with(".*") && a.trim_end_matches(".*") == family)
        })
    }

    /// Meilisearch's check on a route naming no index: a key restricted to some indexes
    /// only gets actions whose route handler checks indexes itself (listings, multi-search,
    /// swaps, tasks, …); global actions (version, dumps, keys, …) need a key on `*`.
    pub fn allows_index_less(&self, action: &str) -> bool {
        const HANDLER_CHECKED: &[&str] = &[
            "search",
            "documents.get",
            "indexes.create",
            "indexes.get",
            "indexes.swap",
            "tasks.cancel",
            "tasks.delete",
            "tasks.get",
            "settings.get",
            "stats.get",
            "chatCompletions",
        ];
        self.indexes.iter().any(|p| p == "*")
            || (!self.indexes.is_empty() && HANDLER_CHECKED.contains(&action))
    }

    pub fn allows_index(&self, index: &str) -> bool {
        self.indexes.iter().any(|p| index_pattern_matches(p, index))
    }

    pub fn expired(&self, now: Ts) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }
}

pub fn index_pattern_matches(pattern: &str, index: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => index.starts_with(prefix),
        None => pattern == index,
    }
}

fn missing(field: &str, code: &str) -> ApiError {
    ApiError::bad(code, format!("Missing field `{field}`"))
}

fn parse_expires(v: &Value, now: Ts) -> Result<Option<Ts>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => {
            let t = timefmt::parse_filter_date(s).ok_or_else(|| {
                ApiError::bad("invalid_api_key_expires_at", format!("Invalid value at `.expiresAt`: `{s}` is not a valid date. It should follow the RFC 3339 format to represents a date or datetime in the future or specified as a null value. e.g. 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS'.\n"))
            })?;
            if t <= now {
                return Err(ApiError::bad("invalid_api_key_expires_at", format!("Invalid value at `.expiresAt`: `{s}` is not a valid date. It should follow the RFC 3339 format to represents a date or datetime in the future or specified as a null value. e.g. 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS'.\n")));
            }
            Ok(Some(t))
        }
        other => Err(ApiError::bad(
            "invalid_api_key_expires_at",
            format!(
                "Invalid value type at `.expiresAt`: expected a string, but found {}: `{other}`",
                crate::settings::kind_name(other)
            ),
        )),
    }
}

fn opt_string(m: &serde_json::Map<String, Value>, k: &str, code: &str) -> Result<Option<String>> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(ApiError::bad(
            code,
            format!(
                "Invalid value type at `.{k}`: expected a string, but found {}: `{v}`",
                crate::settings::kind_name(v)
            ),
        )),
    }
}

/// Validates a `POST /keys` body into a key (value derived from `master`).
pub fn create(
    body: &Value,
    master: &str,
    now: Ts,
    new_uid: impl FnOnce() -> String,
) -> Result<Key> {
    let Value::Object(m) = body else {
        return Err(ApiError::bad(
            "bad_request",
            "Invalid value type: expected an object",
        ));
    };
    for k in m.keys() {
        if ![
            "uid",
            "name",
            "description",
            "actions",
            "indexes",
            "expiresAt",
        ]
        .contains(&k.as_str())
        {
            return Err(ApiError::bad(
                "bad_request",
                crate::error::unknown_field(
                    k,
                    "",
                    &[
                        "description",
                        "name",
                        "uid",
                        "actions",
                        "indexes",
                        "expiresAt",
                    ],
                ),
            ));
        }
    }
    let uid = match m.get("uid") {
        None | Some(Value::Null) => new_uid(),
        Some(Value::String(s)) if uuid::Uuid::parse_str(s).is_ok() => uuid::Uuid::parse_str(s)
            .expect("checked")
            .hyphenated()
            .to_string(),
        Some(Value::String(s)) => {
            // The uuid parser's complaint as Meilisearch 1.50 relays it: the first
            // character that cannot be part of a UUID (0-based), else a length problem.
            let detail = match s
                .char_indices()
                .find(|(_, c)| !(c.is_ascii_hexdigit() || *c == '-'))
            {
                Some((i, c)) => format!("invalid character: found `{c}` at {i}"),
                None => format!(
                    "invalid length: expected length 32 for simple format, found {}",
                    s.len()
                ),
            };
            return Err(ApiError::bad(
                "invalid_api_key_uid",
                format!("Invalid value at `.uid`: {detail}"),
            ));
        }
        Some(v) => {
            return Err(ApiError::bad(
                "invalid_api_key_uid",
                format!(
                    "Invalid value type at `.uid`: expected a string, but found {}: `{v}`",
                    crate::settings::kind_name(v)
                ),
            ))
        }
    };
    let actions = match m.get("actions") {
        None => return Err(missing("actions", "missing_api_key_actions")),
        Some(Value::Array(a)) => {
            let mut out = Vec::new();
            for (i, x) in a.iter().enumerate() {
                match x.as_str() {
                    Some(s) if ACTIONS.contains(&s) => out.push(s.to_string()),
                    _ => {
                        return Err(ApiError::bad(
                            "invalid_api_key_actions",
                            crate::error::unknown_value(
                                x.as_str().unwrap_or("?"),
                                &format!(" at `.actions[{i}]`"),
                                ACTIONS,
                            ),
                        ));
                    }
                }
            }
            out
        }
        Some(v) => {
            return Err(ApiError::bad(
                "invalid_api_key_actions",
                format!(
                    "Invalid value type at `.actions`: expected an array, but found {}: `{v}`",
                    crate::settings::kind_name(v)
                ),
            ))
        }
    };
    let indexes = match m.get("indexes") {
        None => return Err(missing("indexes", "missing_api_key_indexes")),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            let list: Vec<String> = a
                .iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect();
            for (i, p) in list.iter().enumerate() {
                // An index uid, optionally ending with `*` (or `*` alone).
                let body = p.strip_suffix('*').unwrap_or(p);
                if !(p == "*" || crate::error::validate_index_uid(body).is_ok()) {
                    return Err(ApiError::bad("invalid_api_key_indexes", format!("Invalid value at `.indexes[{i}]`: `{p}` is not a valid index uid pattern. Index uid patterns can be an integer or a string containing only alphanumeric characters, hyphens (-), underscores (_), and optionally end with a star (*).")));
                }
            }
            list
        }
        Some(v) => {
            return Err(ApiError::bad(
                "invalid_api_key_indexes",
                format!(
                    "Invalid value type at `.indexes`: expected an array, but found {}: `{v}`",
                    crate::settings::kind_name(v)
                ),
            ))
        }
    };
    let expires_at = match m.get("expiresAt") {
        None => return Err(missing("expiresAt", "missing_api_key_expires_at")),
        Some(v) => parse_expires(v, now)?,
    };
    Ok(Key {
        key: derive_key(master, &uid),
        uid,
        name: opt_string(m, "name", "invalid_api_key_name")?,
        description: opt_string(m, "description", "invalid_api_key_description")?,
        actions,
        indexes,
        expires_at,
        created_at: now,
        updated_at: now,
    })
}

/// Applies a `PATCH /keys/{key}` body: only `name` and `description` are mutable.
pub fn update(key: &mut Key, body: &Value, now: Ts) -> Result<()> {
    let Value::Object(m) = body else {
        return Err(ApiError::bad(
            "bad_request",
            "Invalid value type: expected an object",
        ));
    };
    for k in m.keys() {
        let code = match k.as_str() {
            "name" | "description" => continue,
            "uid" => "immutable_api_key_uid",
            "actions" => "immutable_api_key_actions",
            "indexes" => "immutable_api_key_indexes",
            "expiresAt" => "immutable_api_key_expires_at",
            "key" => "immutable_api_key_key",
            "createdAt" => "immutable_api_key_created_at",
            "updatedAt" => "immutable_api_key_updated_at",
            _ => {
                return Err(ApiError::bad(
                    "bad_request",
                    crate::error::unknown_field(k, "", &["description", "name"]),
                ))
            }
        };
        return Err(ApiError::bad(
            code,
            format!("Immutable field `{k}`: expected one of `description`, `name`"),
        ));
    }
    if m.contains_key("name") {
        key.name = opt_string(m, "name", "invalid_api_key_name")?;
    }
    if m.contains_key("description") {
        key.description = opt_string(m, "description", "invalid_api_key_description")?;
    }
    key.updated_at = now;
    Ok(())
}

/// The default keys Meilisearch 1.50 creates at first start (random uids). They are created
/// in this order, so `GET /keys` (newest first) lists Search, Admin, Read-Only Admin, Chat.
pub fn defaults(master: &str, now: Ts) -> Vec<Key> {
    let mk = |name: &str, desc: &str, actions: &[&str], at: Ts| {
        let uid = uuid::Uuid::new_v4().hyphenated().to_string();
        Key {
            key: derive_key(master, &uid),
            uid,
            name: Some(name.into()),
            description: Some(desc.into()),
            actions: actions.iter().map(|s| s.to_string()).collect(),
            indexes: vec!["*".into()],
            expires_at: None,
            created_at: at,
            updated_at: at,
        }
    };
    vec![
        mk("Default Chat API Key", "Use it to chat and search from the frontend", &["chatCompletions", "search"], now),
        mk("Default Read-Only Admin API Key", "Use it to read information across the whole database. Caution! Do not expose this key on a public frontend", &["*.get", "keys.get"], now + 1),
        mk("Default Admin API Key", "Use it for anything that is not a search operation. Caution! Do not expose it on a public frontend", &["*"], now + 2),
        mk("Default Search API Key", "Use it to search from the frontend", &["search"], now + 3),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_derivation_is_hmac_sha256_of_uid() {
        // Independent check: HMAC-SHA256(key="masterKey", msg=uid) computed with RFC 4231's
        // construction by hand through the sha2 crate.
        use sha2::Digest;
        let (master, uid) = ("masterKey", "76cf8b87-fd12-4688-ad34-260d930ca4f4");
        let mut k = [0u8; 64];
        k[..master.len()].copy_from_slice(master.as_bytes());
        let inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).chain(uid.bytes()).collect();
        let ih = sha2::Sha256::digest(&inner);
        let outer: Vec<u8> = k
            .iter()
            .map(|b| b ^ 0x5c)
            .chain(ih.iter().copied())
            .collect();
        let want: String = sha2::Sha256::digest(&outer)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(derive_key(master, uid), want);
        assert_eq!(derive_key(master, &uid.to_uppercase()), want);
        assert_eq!(want.len(), 64);
    }

    #[test]
    fn actions_and_index_patterns() {
        let k = create(&json!({"actions": ["documents.*", "search"], "indexes": ["movies*"], "expiresAt": null}), "m", 0, || "00000000-0000-4000-8000-000000000000".into()).unwrap();
        assert!(
            k.allows_action("documents.add")
                && k.allows_action("search")
                && !k.allows_action("indexes.create")
        );
        assert!(k.allows_index("movies_fr") && !k.allows_index("books"));
        let d = defaults("m", 0);
        let by_name = |n: &str| d.iter().find(|k| k.name.as_deref() == Some(n)).unwrap();
        let admin = by_name("Default Admin API Key");
        // `*` expands to every action, keys included (Meilisearch 1.50's auth store; its own
        // authorization suite lets a `*` key on `*` call every `/keys` route).
        assert!(admin.allows_action("indexes.delete") && admin.allows_action("keys.get"));
        // A key restricted to some indexes never gets a global route.
        let scoped = Key {
            indexes: vec!["movies".into()],
            ..admin.clone()
        };
        assert!(!scoped.allows_index_less("version") && scoped.allows_index_less("indexes.get"));
        assert!(admin.allows_index_less("version"));
        let read_only = by_name("Default Read-Only Admin API Key");
        assert!(
            read_only.allows_action("documents.get")
                && read_only.allows_action("search")
                && read_only.allows_action("keys.get")
                && !read_only.allows_action("documents.add")
                && !read_only.allows_action("keys.create")
        );
        assert_eq!(
            create(
                &json!({"actions": ["nope"], "indexes": [], "expiresAt": null}),
                "m",
                0,
                String::new
            )
            .unwrap_err()
            .code,
            "invalid_api_key_actions"
        );
        assert_eq!(
            create(&json!({"actions": [], "indexes": []}), "m", 0, String::new)
                .unwrap_err()
                .code,
            "missing_api_key_expires_at"
        );
    }

    #[test]
    fn expiry() {
        let now = timefmt::parse_filter_date("2030-01-01").unwrap();
        let k = create(
            &json!({"actions": ["*"], "indexes": ["*"], "expiresAt": "2030-01-02T00:00:00Z"}),
            "m",
            now,
            || "00000000-0000-4000-8000-000000000001".into(),
        )
        .unwrap();
        assert!(!k.expired(now));
        assert!(k.expired(now + 86_400_000_000_000));
        let past = create(
            &json!({"actions": ["*"], "indexes": ["*"], "expiresAt": "2029-12-31"}),
            "m",
            now,
            String::new,
        );
        assert_eq!(past.unwrap_err().code, "invalid_api_key_expires_at");
    }

    #[test]
    fn view_key_order() {
        let k = &defaults("m", 5)[0];
        assert_eq!(
            k.view().keys(),
            [
                "name",
                "description",
                "key",
                "uid",
                "actions",
                "indexes",
                "expiresAt",
                "createdAt",
                "updatedAt"
            ]
        );
        let mut k = k.clone();
        assert_eq!(
            update(&mut k, &json!({"actions": []}), 6).unwrap_err().code,
            "immutable_api_key_actions"
        );
        update(&mut k, &json!({"name": "x"}), 6).unwrap();
        assert_eq!(k.name.as_deref(), Some("x"));
    }
}
