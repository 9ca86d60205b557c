//! Meilisearch's access rules for API keys, as pure functions both processes share: which
//! action a key's grants cover, which indexes its patterns reach, and how an action treats
//! index-scoped keys on routes that name no index (docs/contract.md, "Auth").
//!
//! This mirrors Meilisearch 1.50's `meilisearch-auth` store (the expansion of `*`, `*.get` and
//! the `family.*` grants) and `meilisearch-types`' `Action::index_scope`. The data plane
//! authenticates every client request with it; the admin filters listings (indexes, stats,
//! tasks, batches) with [`index_matches`].

use crate::snapshot::ApiKey;

/// How an action behaves for a key restricted to some indexes (Meilisearch's `IndexScope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexScope {
    /// Global only: an index-scoped key never gets it on a route without an index.
    Deny,
    /// The route handler checks each index it touches (listings, multi-search, swap, …), so
    /// an index-scoped key passes authentication on a route without an index.
    RouteHandlerChecks,
    /// Only ever used on a route naming its index.
    ControllerChecks,
}

/// Meilisearch's index scope of a *concrete* action (never a wildcard grant).
pub fn index_scope(action: &str) -> IndexScope {
    match action {
        "search" | "documents.get" | "indexes.create" | "indexes.get" | "indexes.swap"
        | "tasks.cancel" | "tasks.delete" | "tasks.get" | "settings.get" | "stats.get"
        | "chatCompletions" => IndexScope::RouteHandlerChecks,
        "documents.add" | "documents.delete" | "indexes.update" | "indexes.delete"
        | "indexes.compact" | "fields.post" | "settings.update" => IndexScope::ControllerChecks,
        _ => IndexScope::Deny,
    }
}

/// The concrete actions `*.get` grants (Meilisearch's `Action::is_read`). `keys.get` is not
/// one of them: Meilisearch leaves it out to prevent privilege escalation.
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

/// Whether a granted action (`*`, `documents.*`, `*.get`, `search`, …) covers the concrete
/// `action`.
pub fn action_granted(granted: &str, action: &str) -> bool {
    if granted == "*" || granted == action {
        return true;
    }
    if granted == "*.get" {
        return READ_ACTIONS.contains(&action);
    }
    if let Some(family) = granted.strip_suffix(".*") {
        return action.split_once('.').is_some_and(|(f, _)| f == family);
    }
    false
}

/// Meilisearch's index patterns: `*`, an exact uid, or a prefix ending in `*` (`movies*`).
pub fn index_matches(pattern: &str, index: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => index.starts_with(prefix),
        None => pattern == index,
    }
}

/// Whether any of `patterns` reaches `index`.
pub fn patterns_allow(patterns: &[String], index: &str) -> bool {
    patterns.iter().any(|p| index_matches(p, index))
}

/// Whether `patterns` reach every index (a `*` pattern).
pub fn patterns_allow_all(patterns: &[String]) -> bool {
    patterns.iter().any(|p| p == "*")
}

/// Whether `key` is expired at `now_unix` (Meilisearch: valid while `now < expiresAt`).
pub fn key_expired(key: &ApiKey, now_unix: i64) -> bool {
    key.expires_at.is_some_and(|exp| now_unix >= exp)
}

/// Meilisearch's `is_key_authorized`: the key grants `action`, is not expired, and reaches
/// `index` — or, on a route naming no index, either reaches every index or the action is one
/// whose route handler checks indexes itself.
pub fn key_authorizes(key: &ApiKey, action: &str, index: Option<&str>, now_unix: i64) -> bool {
    if key_expired(key, now_unix) || !key.actions.iter().any(|g| action_granted(g, action)) {
        return false;
    }
    if patterns_allow_all(&key.indexes) {
        return true;
    }
    match index {
        Some(index) => patterns_allow(&key.indexes, index),
        None => index_scope(action) == IndexScope::RouteHandlerChecks && !key.indexes.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(actions: &[&str], indexes: &[&str], exp: Option<i64>) -> ApiKey {
        ApiKey {
            uid: "u".into(),
            key: "k".into(),
            name: None,
            actions: actions.iter().map(|s| s.to_string()).collect(),
            indexes: indexes.iter().map(|s| s.to_string()).collect(),
            expires_at: exp,
        }
    }

    #[test]
    fn grants_expand_as_meilisearch_does() {
        assert!(action_granted("*", "keys.delete"));
        assert!(action_granted("indexes.*", "indexes.swap"));
        assert!(!action_granted("indexes.*", "documents.add"));
        assert!(action_granted("*.get", "settings.get"));
        assert!(action_granted("*.get", "search"));
        assert!(action_granted("*.get", "version"));
        assert!(
            !action_granted("*.get", "keys.get"),
            "no privilege escalation"
        );
        assert!(!action_granted("*.get", "settings.update"));
        assert!(!action_granted("search", "searchx"));
    }

    #[test]
    fn index_less_routes_follow_the_action_scope() {
        let scoped = key(&["*"], &["movies"], None);
        // Listings, multi-search, swaps, tasks: the handler filters.
        for a in [
            "indexes.get",
            "search",
            "tasks.get",
            "stats.get",
            "indexes.swap",
        ] {
            assert!(key_authorizes(&scoped, a, None, 0), "{a}");
        }
        // Global actions refuse index-scoped keys.
        for a in [
            "dumps.create",
            "snapshots.create",
            "version",
            "keys.get",
            "webhooks.get",
        ] {
            assert!(!key_authorizes(&scoped, a, None, 0), "{a}");
        }
        let global = key(&["*"], &["*"], None);
        assert!(key_authorizes(&global, "dumps.create", None, 0));
    }

    #[test]
    fn expiry_is_exclusive() {
        let k = key(&["search"], &["*"], Some(100));
        assert!(key_authorizes(&k, "search", Some("x"), 99));
        assert!(!key_authorizes(&k, "search", Some("x"), 100));
    }

    proptest! {
        #[test]
        fn prefix_patterns_match_exactly_their_prefix(prefix in "[a-z]{0,6}", rest in "[a-z_]{0,6}") {
            let pattern = format!("{prefix}*");
            let index = format!("{prefix}{rest}");
            prop_assert!(index_matches(&pattern, &index));
            prop_assert!(index_matches(&index, &index));
            let other = format!("{index}x");
            prop_assert!(!index_matches(&index, &other));
        }

        #[test]
        fn a_scoped_key_never_reaches_an_unlisted_index(
            listed in "[a-m]{1,5}", other in "[n-z]{1,5}", action in prop::sample::select(vec![
                "search", "documents.add", "documents.get", "settings.update", "indexes.delete"]),
        ) {
            let k = key(&["*"], &[listed.as_str()], None);
            prop_assert!(key_authorizes(&k, action, Some(&listed), 0));
            prop_assert!(!key_authorizes(&k, action, Some(&other), 0));
        }
    }
}
