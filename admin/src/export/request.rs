//! The `POST /export` body, validated as Meilisearch 1.50 does (field by field in body order,
//! its error codes and messages, checked against a real node), and the task details it
//! produces before and after the export ran.

use crate::http_types::{describe_json_value, invalid_value_type, unknown_field, ApiError};
use byte_unit::{Byte, UnitType};
use miroir_core::access::index_matches;
use miroir_core::error::ErrorCode;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::str::FromStr;

/// What to export of the indexes one pattern matches.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexExport {
    /// A Meilisearch filter (string or array form), `Null` for every document. Not checked
    /// here: like Meilisearch, a bad filter fails the task, not the request.
    pub filter: Value,
    /// Whether the target's settings (and primary key) are replaced when the index exists.
    pub override_settings: bool,
}

/// A parsed `POST /export` body.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRequest {
    /// The target's base URL (Meilisearch accepts an empty or missing one and fails later).
    pub url: String,
    pub api_key: Option<String>,
    /// Largest payload sent to the target at once, in bytes.
    pub payload_size: Option<u64>,
    /// Patterns in Meilisearch's order (a sorted map): an index takes the first that matches.
    pub indexes: BTreeMap<String, IndexExport>,
}

const FIELDS: &[&str] = &["url", "apiKey", "payloadSize", "indexes"];
const INDEX_FIELDS: &[&str] = &["filter", "overrideSettings"];

/// Meilisearch's `IndexUidPattern`: `*`, or an index uid optionally followed by one `*`.
pub fn valid_pattern(p: &str) -> bool {
    let uid = p.strip_suffix('*').unwrap_or(p);
    p == "*"
        || (!uid.is_empty()
            && uid.len() <= 512
            && uid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

/// A payload size: a positive integer (bytes) or a string such as `"24MiB"` or `"1 MB"`.
fn payload_size(v: &Value) -> Result<u64, ApiError> {
    let code = ErrorCode::InvalidExportPayloadSize;
    match v {
        Value::Number(n) => n.as_u64().ok_or_else(|| {
            invalid_value_type(code, ".payloadSize", "a positive integer or a string", v)
        }),
        Value::String(s) => Byte::from_str(s).map(|b| b.as_u64()).map_err(|e| {
            // byte-unit without its decimal feature lists the units slightly differently
            // from Meilisearch's build; the message is made Meilisearch's.
            let msg = e.to_string().replace(
                "'P' or 'E' or no character",
                "'P', 'E' or no character or no character",
            );
            ApiError::core(code, format!("Invalid value at `.payloadSize`: {msg}"))
        }),
        _ => Err(invalid_value_type(
            code,
            ".payloadSize",
            "a positive integer or a string",
            v,
        )),
    }
}

fn index_export(pattern: &str, v: &Value) -> Result<IndexExport, ApiError> {
    let at = format!(".indexes.{pattern}");
    let Some(fields) = v.as_object() else {
        return Err(invalid_value_type(
            ErrorCode::BadRequest,
            &at,
            "an object",
            v,
        ));
    };
    let mut out = IndexExport {
        filter: Value::Null,
        override_settings: false,
    };
    for (k, v) in fields {
        match k.as_str() {
            "filter" => out.filter = v.clone(),
            "overrideSettings" => match v {
                Value::Bool(b) => out.override_settings = *b,
                _ => {
                    return Err(invalid_value_type(
                        ErrorCode::InvalidExportIndexOverrideSettings,
                        &format!("{at}.overrideSettings"),
                        "a boolean",
                        v,
                    ))
                }
            },
            _ => {
                return Err(unknown_field(
                    ErrorCode::BadRequest,
                    k,
                    Some(&at),
                    INDEX_FIELDS,
                ))
            }
        }
    }
    Ok(out)
}

/// Parses and validates a `POST /export` body.
pub fn parse(body: &Value) -> Result<ExportRequest, ApiError> {
    let Some(fields) = body.as_object() else {
        return Err(ApiError::core(
            ErrorCode::BadRequest,
            format!(
                "Invalid value type: expected an object, but found {}",
                describe_json_value(body)
            ),
        ));
    };
    let mut req = ExportRequest {
        url: String::new(),
        api_key: None,
        payload_size: None,
        indexes: BTreeMap::new(),
    };
    let mut indexes = None;
    for (k, v) in fields {
        match k.as_str() {
            "url" => match v {
                Value::String(s) => req.url = s.clone(),
                _ => {
                    return Err(invalid_value_type(
                        ErrorCode::InvalidExportUrl,
                        ".url",
                        "a string",
                        v,
                    ))
                }
            },
            "apiKey" => match v {
                Value::String(s) => req.api_key = Some(s.clone()),
                Value::Null => req.api_key = None,
                _ => {
                    return Err(invalid_value_type(
                        ErrorCode::InvalidExportApiKey,
                        ".apiKey",
                        "a string",
                        v,
                    ))
                }
            },
            "payloadSize" => {
                req.payload_size = match v {
                    Value::Null => None,
                    v => Some(payload_size(v)?),
                }
            }
            "indexes" => match v {
                Value::Null => indexes = None,
                Value::Object(m) => indexes = Some(parse_indexes(m)?),
                _ => {
                    return Err(invalid_value_type(
                        ErrorCode::BadRequest,
                        ".indexes",
                        "an object",
                        v,
                    ))
                }
            },
            _ => return Err(unknown_field(ErrorCode::BadRequest, k, None, FIELDS)),
        }
    }
    req.indexes = indexes.unwrap_or_else(|| {
        BTreeMap::from([(
            "*".to_string(),
            IndexExport {
                filter: Value::Null,
                override_settings: false,
            },
        )])
    });
    Ok(req)
}

fn parse_indexes(m: &Map<String, Value>) -> Result<BTreeMap<String, IndexExport>, ApiError> {
    let mut out = BTreeMap::new();
    for (pattern, v) in m {
        if !valid_pattern(pattern) {
            return Err(ApiError::core(
                ErrorCode::BadRequest,
                format!(
                    "Invalid value at `.indexes`: the key {} could not be deserialized into the key type `meilisearch_types::index_uid_pattern::IndexUidPattern`",
                    Value::String(pattern.clone())
                ),
            ));
        }
        out.insert(pattern.clone(), index_export(pattern, v)?);
    }
    Ok(out)
}

/// Meilisearch's redaction of a secret in task details (`hide_secret`).
pub fn hide_secret(secret: &str) -> String {
    let keep = match secret.len() {
        0..=9 => 0,
        10..=19 => 2,
        20..=29 => 3,
        _ => 5,
    };
    let stars = match secret.len() {
        0..=9 => "XXX...",
        10..=19 => "XXXX...",
        20..=29 => "XXXXX...",
        _ => "XXXXXX...",
    };
    let cut = secret
        .char_indices()
        .nth(keep)
        .map(|(i, _)| i)
        .unwrap_or(secret.len());
    format!("{}{stars}", &secret[..cut])
}

impl ExportRequest {
    /// The settings of the first pattern (in order) matching `index`, if any.
    pub fn settings_for(&self, index: &str) -> Option<&IndexExport> {
        self.indexes
            .iter()
            .find(|(p, _)| index_matches(p, index))
            .map(|(_, s)| s)
    }

    fn details_with(&self, indexes: Map<String, Value>) -> Value {
        let mut d = Map::new();
        d.insert("url".into(), Value::String(self.url.clone()));
        if let Some(k) = &self.api_key {
            d.insert("apiKey".into(), Value::String(hide_secret(k)));
        }
        if let Some(size) = self.payload_size {
            d.insert(
                "payloadSize".into(),
                Value::String(
                    Byte::from_u64(size)
                        .get_appropriate_unit(UnitType::Both)
                        .to_string(),
                ),
            );
        }
        d.insert("indexes".into(), Value::Object(indexes));
        Value::Object(d)
    }

    /// The task's details while enqueued or when it failed: the patterns as sent.
    pub fn details(&self) -> Value {
        self.details_with(
            self.indexes
                .iter()
                .map(|(p, s)| (p.clone(), settings_json(s, None)))
                .collect(),
        )
    }

    /// The details of a finished export: one entry per exported index with its settings and
    /// how many documents matched (`matched_documents`, snake case as Meilisearch 1.50
    /// writes it).
    pub fn finished_details(&self, exported: &[(String, u64)]) -> Value {
        self.details_with(
            exported
                .iter()
                .filter_map(|(uid, n)| {
                    self.settings_for(uid)
                        .map(|s| (uid.clone(), settings_json(s, Some(*n))))
                })
                .collect(),
        )
    }
}

fn settings_json(s: &IndexExport, matched: Option<u64>) -> Value {
    let mut v = json!({"filter": s.filter, "overrideSettings": s.override_settings});
    if let Some(n) = matched {
        v["matched_documents"] = json!(n);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: Value) -> (String, String) {
        let e = parse(&body).unwrap_err().body();
        (
            e["code"].as_str().unwrap().to_string(),
            e["message"].as_str().unwrap().to_string(),
        )
    }

    /// Each answer below was read from Meilisearch 1.50.0.
    #[test]
    fn refusals_match_meilisearch() {
        assert_eq!(
            err(json!({"url": 1})),
            ("invalid_export_url".into(), "Invalid value type at `.url`: expected a string, but found a positive integer: `1`".into())
        );
        assert_eq!(
            err(json!({"apiKey": 1})),
            ("invalid_export_api_key".into(), "Invalid value type at `.apiKey`: expected a string, but found a positive integer: `1`".into())
        );
        assert_eq!(
            err(json!({"payloadSize": true})),
            ("invalid_export_payload_size".into(), "Invalid value type at `.payloadSize`: expected a positive integer or a string, but found a boolean: `true`".into())
        );
        assert_eq!(
            err(json!({"payloadSize": -1})),
            ("invalid_export_payload_size".into(), "Invalid value type at `.payloadSize`: expected a positive integer or a string, but found a negative integer: `-1`".into())
        );
        assert_eq!(
            err(json!({"payloadSize": "12 XB"})),
            ("invalid_export_payload_size".into(), "Invalid value at `.payloadSize`: the character 'X' is incorrect ('B', 'K', 'M', 'G', 'T', 'P', 'E' or no character or no character is expected)".into())
        );
        assert_eq!(
            err(json!({"indexes": []})),
            (
                "bad_request".into(),
                "Invalid value type at `.indexes`: expected an object, but found an array: `[]`"
                    .into()
            )
        );
        assert_eq!(
            err(json!({"indexes": {"a b": {}}})),
            ("bad_request".into(), "Invalid value at `.indexes`: the key \"a b\" could not be deserialized into the key type `meilisearch_types::index_uid_pattern::IndexUidPattern`".into())
        );
        assert_eq!(
            err(json!({"indexes": {"*": {"overrideSettings": 1}}})),
            ("invalid_export_index_override_settings".into(), "Invalid value type at `.indexes.*.overrideSettings`: expected a boolean, but found a positive integer: `1`".into())
        );
        assert_eq!(
            err(json!({"indexes": {"*": {"x": 1}}})),
            ("bad_request".into(), "Unknown field `x` inside `.indexes.*`: expected one of `filter`, `overrideSettings`".into())
        );
        assert_eq!(
            err(json!({"foo": 1})),
            (
                "bad_request".into(),
                "Unknown field `foo`: expected one of `url`, `apiKey`, `payloadSize`, `indexes`"
                    .into()
            )
        );
        assert_eq!(
            err(json!([])),
            (
                "bad_request".into(),
                "Invalid value type: expected an object, but found an array: `[]`".into()
            )
        );
    }

    #[test]
    fn details_match_meilisearch() {
        let r = parse(&json!({})).unwrap();
        assert_eq!(
            r.details(),
            json!({"url": "", "indexes": {"*": {"filter": null, "overrideSettings": false}}})
        );
        let r = parse(&json!({"url": "http://127.0.0.1:17795", "apiKey": "targetKey1234567890", "payloadSize": "1MiB",
            "indexes": {"mov*": {"filter": "g = x", "overrideSettings": true}, "zzz": {}}}))
        .unwrap();
        assert_eq!(
            r.finished_details(&[("movies".into(), 1)]),
            json!({"url": "http://127.0.0.1:17795", "apiKey": "taXXXX...", "payloadSize": "1 MiB",
                "indexes": {"movies": {"filter": "g = x", "overrideSettings": true, "matched_documents": 1}}})
        );
        for (n, shown) in [
            (1000, "1 KB"),
            (1500, "1.46484375 KiB"),
            (1024, "1 KiB"),
            (7, "7 B"),
            (25165824, "24 MiB"),
        ] {
            let r = parse(&json!({"payloadSize": n})).unwrap();
            assert_eq!(r.details()["payloadSize"], shown);
        }
    }

    #[test]
    fn first_matching_pattern_wins_in_sorted_order() {
        let r = parse(&json!({"indexes": {"mov*": {"overrideSettings": true}, "*": {}}})).unwrap();
        assert!(!r.settings_for("movies").unwrap().override_settings);
        let r = parse(&json!({"indexes": {"mov*": {"overrideSettings": true}}})).unwrap();
        assert!(r.settings_for("movies").unwrap().override_settings);
        assert!(r.settings_for("books").is_none());
    }

    #[test]
    fn secrets_are_hidden_as_meilisearch_does() {
        assert_eq!(hide_secret("short"), "XXX...");
        assert_eq!(hide_secret("targetKey1234567890"), "taXXXX...");
        assert_eq!(hide_secret("a".repeat(25).as_str()), "aaaXXXXX...");
        assert_eq!(hide_secret("b".repeat(40).as_str()), "bbbbbXXXXXX...");
    }
}
