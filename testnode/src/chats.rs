//! Chat workspaces (`/chats`, `/chats/{workspace}[/settings]`), settings only, as Meilisearch
//! 1.50 answers them (checked against a real build): behind the `chatCompletions` experimental
//! feature, settings merged field by field, the `apiKey` redacted on every read. Held in
//! memory only (a restarted test node has no workspaces); completions are not implemented.

use crate::error::{ApiError, Result};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Meilisearch's default prompts, in its order.
const DEFAULT_PROMPTS: &[(&str, &str)] = &[
    (
        "system",
        "You are a highly capable research assistant with access to powerful search tools. IMPORTANT INSTRUCTIONS:1. When answering questions, you MUST make multiple tool calls (at least 2-3) to gather comprehensive information.2. Use different search queries for each tool call - vary keywords, rephrase questions, and explore different semantic angles to ensure broad coverage.3. Always explicitly announce BEFORE making each tool call by saying: \"I'll search for [specific information] now.\"4. Combine information from ALL tool calls to provide complete, nuanced answers rather than relying on a single source.5. For complex topics, break down your research into multiple targeted queries rather than using a single generic search. Meilisearch doesn't use the colon (:) syntax to filter but rather the equal (=) one. Separate filters from query and keep the q parameter empty if needed. Same for the filter parameter: keep it empty if need be. If you need to find documents that CONTAINS keywords simply put the keywords in the q parameter do no use a filter for this purpose. Whenever you get an error, read the error message and fix your error. ",
    ),
    (
        "searchDescription",
        "Query: 'best story about Rust before 2018' with year: 2018, 2020, 2021\nlabel: analysis, golang, javascript\ntype: story, link\nvote: 300, 298, 278\n: {\"q\": \"\", \"filter\": \"category = Rust AND type = story AND year < 2018 AND vote > 100\"}\nQuery: 'A black or green car that can go fast with red brakes' with maxspeed_kmh: 200, 150, 130\ncolor: black, grey, red, green\nbrand: Toyota, Renault, Jeep, Ferrari\n: {\"q\": \"red brakes\", \"filter\": \"maxspeed_kmh > 150 AND color IN ['black', green]\"}\nQuery: 'Superman movie released in 2018 or after' with year: 2018, 2020, 2021\ngenres: Drama, Comedy, Adventure, Fiction\n: {\"q\":\"Superman\",\"filter\":\"genres IN [Adventure, Fiction] AND year >= 2018\"}",
    ),
    (
        "searchQParam",
        "The search query string used to find relevant documents in the index. This should contain keywords or phrases that best represent what the user is looking for. More specific queries will yield more precise results.",
    ),
    (
        "searchFilterParam",
        "The search filter string used to find relevant documents in the index. It supports parentheses, `=`, `!=`, `>=`, `>`, `<=`, `<`, `IN`, `NOT IN`, `TO`, `EXISTS`, `NOT EXISTS`, `IS NULL`, `IS NOT NULL`, `IS EMPTY`, `IS NOT EMPTY`, `_geoRadius`, or `_geoBoundingBox`. Here is an example: \"price > 100 AND category = 'electronics'\". The following is a list of fields that can be filtered on: ",
    ),
    (
        "searchIndexUidParam",
        "The name of the index to search within. An index is a collection of documents organized for search. Selecting the right index ensures the most relevant results for the user query.",
    ),
];

const FIELDS: &[&str] = &[
    "source",
    "orgId",
    "projectId",
    "apiVersion",
    "deploymentId",
    "baseUrl",
    "apiKey",
    "prompts",
];

const SOURCES: &[&str] = &["openAi", "mistral", "azureOpenAi", "vLlm"];

/// Every workspace's settings by uid.
pub type Chats = BTreeMap<String, Map<String, Value>>;

fn default_settings() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("source".into(), json!("openAi"));
    for k in &FIELDS[1..7] {
        m.insert((*k).into(), Value::Null);
    }
    let prompts: Map<String, Value> = DEFAULT_PROMPTS
        .iter()
        .map(|(k, v)| ((*k).to_string(), json!(v)))
        .collect();
    m.insert("prompts".into(), Value::Object(prompts));
    m
}

/// Meilisearch shows the first two characters of a key of ten or more, none of a shorter one.
fn redacted(mut s: Map<String, Value>) -> Value {
    if let Some(Value::String(k)) = s.get("apiKey") {
        let shown = if k.chars().count() >= 10 {
            format!("{}XXXX...", k.chars().take(2).collect::<String>())
        } else {
            "XXX...".to_string()
        };
        s.insert("apiKey".into(), json!(shown));
    }
    Value::Object(s)
}

fn feature_off(what: &str) -> ApiError {
    ApiError::bad(
        "feature_not_enabled",
        format!("{what} requires enabling the `chat completions` experimental feature. See https://github.com/orgs/meilisearch/discussions/835"),
    )
}

fn kind_name(v: &Value) -> &'static str {
    crate::settings::kind_name(v)
}

fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn snake(k: &str) -> String {
    k.chars().fold(String::new(), |mut out, c| {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
        out
    })
}

fn check_prompts(p: &Map<String, Value>) -> Result<()> {
    let names: Vec<&str> = DEFAULT_PROMPTS.iter().map(|(k, _)| *k).collect();
    for (pk, pv) in p {
        if !names.contains(&pk.as_str()) {
            return Err(ApiError::bad(
                "bad_request",
                format!(
                    "Unknown field `{pk}` inside `.prompts`: expected one of {}",
                    list(&names)
                ),
            ));
        }
        if !(pv.is_string() || pv.is_null()) {
            return Err(ApiError::bad(
                "bad_request",
                format!(
                    "Invalid value type at `.prompts.{pk}`: expected a string, but found {}: `{pv}`",
                    kind_name(pv)
                ),
            ));
        }
    }
    Ok(())
}

/// Checks a settings patch as Meilisearch deserializes it.
fn validate(patch: &Value) -> Result<&Map<String, Value>> {
    let Value::Object(m) = patch else {
        return Err(ApiError::bad(
            "bad_request",
            format!(
                "Invalid value type: expected an object, but found {}: `{patch}`",
                kind_name(patch)
            ),
        ));
    };
    for (k, v) in m {
        if !FIELDS.contains(&k.as_str()) {
            return Err(ApiError::bad(
                "bad_request",
                format!("Unknown field `{k}`: expected one of {}", list(FIELDS)),
            ));
        }
        match (k.as_str(), v) {
            (_, Value::Null) => {}
            ("source", Value::String(s)) if !SOURCES.contains(&s.as_str()) => {
                return Err(ApiError::bad(
                    "bad_request",
                    format!(
                        "Unknown value `{s}` at `.source`: expected one of {}",
                        list(SOURCES)
                    ),
                ))
            }
            ("prompts", Value::Object(p)) => check_prompts(p)?,
            ("prompts", _) => {
                return Err(ApiError::bad(
                    "bad_request",
                    format!(
                        "Invalid value type at `.prompts`: expected an object, but found {}: `{v}`",
                        kind_name(v)
                    ),
                ))
            }
            (_, Value::String(_)) => {}
            _ => {
                return Err(ApiError::bad(
                    &format!("invalid_chat_completion_{}", snake(k)),
                    format!(
                        "Invalid value type at `.{k}`: expected a string, but found {}: `{v}`",
                        kind_name(v)
                    ),
                ))
            }
        }
    }
    Ok(m)
}

/// Applies a validated patch: `null` resets a field (a prompt to its default).
fn merge(into: &mut Map<String, Value>, patch: &Map<String, Value>) {
    let defaults = default_settings();
    for (k, v) in patch {
        match (k.as_str(), v) {
            ("prompts", Value::Object(p)) => {
                let Some(prompts) = into.get_mut("prompts").and_then(Value::as_object_mut) else {
                    continue;
                };
                for (pk, pv) in p {
                    let value = if pv.is_null() {
                        defaults["prompts"][pk].clone()
                    } else {
                        pv.clone()
                    };
                    prompts.insert(pk.clone(), value);
                }
            }
            (_, Value::Null) => {
                into.insert(k.clone(), defaults[k].clone());
            }
            _ => {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}

fn not_found_short(ws: &str) -> ApiError {
    ApiError::new(404, "chat_not_found", format!("chat {ws} not found"))
}

/// One chat route; `(status, None)` is an empty answer. `enabled` is the node's
/// `chatCompletions` flag; `body` reads the JSON body (only a `PATCH` does).
pub fn route(
    chats: &mut Chats,
    enabled: bool,
    method: &str,
    segs: &[&str],
    (offset, limit): (usize, usize),
    body: impl FnOnce() -> Result<Value>,
) -> Result<(u16, Option<Value>)> {
    match (segs, method) {
        (["chats"], "GET") => {
            if !enabled {
                return Err(feature_off("listing the chats"));
            }
            let results: Vec<Value> = chats
                .keys()
                .skip(offset)
                .take(limit)
                .map(|uid| json!({"uid": uid}))
                .collect();
            let total = chats.len();
            Ok((
                200,
                Some(json!({"results": results, "offset": offset, "limit": limit, "total": total})),
            ))
        }
        (["chats", ws], "GET") => {
            if !enabled {
                return Err(feature_off("displaying a chat"));
            }
            if chats.contains_key(*ws) {
                Ok((200, Some(json!({"uid": ws}))))
            } else {
                Err(not_found_short(ws))
            }
        }
        (["chats", ws], "DELETE") => {
            if !enabled {
                return Err(feature_off("deleting a chat"));
            }
            match chats.remove(*ws) {
                Some(_) => Ok((204, None)),
                None => Err(not_found_short(ws)),
            }
        }
        (["chats", ws, "settings"], "GET" | "PATCH" | "DELETE") => {
            if !enabled {
                return Err(feature_off("using the /chats/settings route"));
            }
            let not_found =
                || ApiError::new(404, "chat_not_found", format!("Chat `{ws}` not found"));
            let s = match method {
                "GET" => chats.get(*ws).ok_or_else(not_found)?,
                "PATCH" => {
                    let patch = body()?;
                    let patch = validate(&patch)?;
                    let s = chats.entry(ws.to_string()).or_insert_with(default_settings);
                    merge(s, patch);
                    s
                }
                _ => {
                    let s = chats.get_mut(*ws).ok_or_else(not_found)?;
                    *s = default_settings();
                    s
                }
            };
            Ok((200, Some(redacted(s.clone()))))
        }
        _ => Ok((405, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(
        chats: &mut Chats,
        method: &str,
        segs: &[&str],
        body: Value,
    ) -> Result<(u16, Option<Value>)> {
        route(chats, true, method, segs, (0, 20), || Ok(body))
    }

    #[test]
    fn workspaces_are_created_by_their_settings_and_keys_redacted() {
        let mut c = Chats::new();
        let e = call(&mut c, "GET", &["chats", "w", "settings"], Value::Null).unwrap_err();
        assert_eq!((e.status, e.message.as_str()), (404, "Chat `w` not found"));
        let (_, s) = call(
            &mut c,
            "PATCH",
            &["chats", "w", "settings"],
            json!({"apiKey": "sk-abcdefghijk", "prompts": {"system": "S"}}),
        )
        .unwrap();
        let s = s.unwrap();
        assert_eq!(s["apiKey"], "skXXXX...");
        assert_eq!(s["source"], "openAi");
        assert_eq!(s["prompts"]["system"], "S");
        assert_eq!(s["prompts"]["searchQParam"], DEFAULT_PROMPTS[2].1);
        let (_, l) = call(&mut c, "GET", &["chats"], Value::Null).unwrap();
        assert_eq!(
            l.unwrap(),
            json!({"results": [{"uid": "w"}], "offset": 0, "limit": 20, "total": 1})
        );
        let (_, s) = call(
            &mut c,
            "PATCH",
            &["chats", "w", "settings"],
            json!({"apiKey": "short"}),
        )
        .unwrap();
        assert_eq!(s.unwrap()["apiKey"], "XXX...");
        let (_, s) = call(&mut c, "DELETE", &["chats", "w", "settings"], Value::Null).unwrap();
        assert_eq!(s.unwrap()["apiKey"], Value::Null);
        assert_eq!(
            call(&mut c, "DELETE", &["chats", "w"], Value::Null).unwrap(),
            (204, None)
        );
        let e = call(&mut c, "DELETE", &["chats", "w"], Value::Null).unwrap_err();
        assert_eq!(e.message, "chat w not found");
    }

    #[test]
    fn refusals_as_meilisearch() {
        let mut c = Chats::new();
        let e = call(
            &mut c,
            "PATCH",
            &["chats", "w", "settings"],
            json!({"nope": 1}),
        )
        .unwrap_err();
        assert_eq!(e.message, "Unknown field `nope`: expected one of `source`, `orgId`, `projectId`, `apiVersion`, `deploymentId`, `baseUrl`, `apiKey`, `prompts`");
        let e = call(
            &mut c,
            "PATCH",
            &["chats", "w", "settings"],
            json!({"orgId": 3}),
        )
        .unwrap_err();
        assert_eq!(e.code, "invalid_chat_completion_org_id");
        let e = route(&mut c, false, "GET", &["chats"], (0, 20), || {
            Ok(Value::Null)
        })
        .unwrap_err();
        assert_eq!(e.code, "feature_not_enabled");
        assert!(c.is_empty());
    }
}
