//! Dynamic search rules (Meilisearch 1.50's `/dynamic-search-rules`, decision 042): the rules
//! as Miroir keeps them, which rules are active for a query, and where pinned documents land
//! in a page. Pure: the admin stores and validates the rules, the snapshot carries them, the
//! data plane (`runtime/src/proxy/pins.rs`) fetches the pinned documents and calls
//! [`place_pins`] on the merged hits.
//!
//! Meilisearch evaluates the rules in milli (`dynamic_search_rules.rs`) with the rules kept in
//! an internal index; the functions here reproduce that evaluation:
//! - a rule is active when `active`, the time window holds (`start <= now <= end`) and its
//!   query condition holds: `isEmpty` compares with whether the query has any term;
//!   `words` holds when every word of the rule is one of the query's first
//!   [`MAX_COUNTED_WORDS`] distinct words;
//! - active rules are taken by ascending `precedence` (rules without one last), ties by the
//!   rule's internal document id, which milli gives as the smallest id not in use
//!   ([`SearchRule::order`]);
//! - their pin actions, flattened in that order, keep the documents that exist in the searched
//!   index and match the search's filter, first rule wins for a document, at most
//!   [`MAX_PIN_ACTIONS`];
//! - pins are injected into the organic prefix by milli's `merge_positioned_hits_into_page`
//!   (in rule order, not sorted by position: [`place_pins`] keeps that behaviour).

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The admin's store meta prefix of one rule record (`dsr/rule/{uid}` → the rule as JSON).
pub const STORE_PREFIX: &str = "dsr/rule/";

/// Meilisearch's default `MEILI_EXPERIMENTAL_DSR_FUEL_MAX_COUNTED_WORDS`.
pub const MAX_COUNTED_WORDS: usize = 10;
/// Meilisearch's default `MEILI_EXPERIMENTAL_DSR_FUEL_MAX_ACTIVE_RULES`.
pub const MAX_ACTIVE_RULES: usize = 1000;
/// Meilisearch's default `MEILI_EXPERIMENTAL_DSR_FUEL_MAX_PIN_ACTIONS`.
pub const MAX_PIN_ACTIONS: usize = 100;
/// milli counts at most this many words of a field (`MAX_COUNTED_WORDS`); a rule with more
/// words is not in the word-count database and so is never excluded by its words.
const MILLI_MAX_COUNTED_WORDS: usize = 30;
/// Meilisearch's default `wordsLimit` of a query (terms beyond it are ignored).
const QUERY_WORDS_LIMIT: usize = 10;

/// One pin action: document `id` (of `index_uid`, or of any index) at `position` (0-based).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinAction {
    pub index_uid: Option<String>,
    pub id: String,
    pub position: u32,
}

/// A rule as stored by the admin and published in the snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchRule {
    pub uid: String,
    pub description: Option<String>,
    pub precedence: Option<u64>,
    pub active: bool,
    /// Whether `active` was ever given for this rule. Meilisearch stores a rule as the
    /// merged `PATCH` bodies and, once any rule has the field, takes as active only the rules
    /// whose stored `active` is `true` ([`active_rules_known`]).
    #[serde(default)]
    pub active_explicit: bool,
    /// Whether `conditions.time` was given at all (echoed as `{}` when both ends are absent).
    pub has_time_condition: bool,
    /// `conditions.time.start`/`end` as Meilisearch echoes them (RFC 3339)…
    pub time_start: Option<String>,
    pub time_end: Option<String>,
    /// …and as Unix nanoseconds, for evaluation.
    pub start_ns: Option<i128>,
    pub end_ns: Option<i128>,
    /// `conditions.query.isEmpty` / `conditions.query.words`.
    pub query_is_empty: Option<bool>,
    pub query_words: Option<String>,
    /// Whether `conditions.query` was given at all (echoed as `{}` when both are absent).
    pub has_query_condition: bool,
    pub actions: Vec<PinAction>,
    /// milli's internal document id of the rule: the smallest id free when it was created.
    pub order: u32,
}

impl SearchRule {
    /// A new rule with Meilisearch's defaults (active, no conditions, no actions).
    pub fn new(uid: &str, order: u32) -> Self {
        SearchRule {
            uid: uid.to_string(),
            description: None,
            precedence: None,
            active: true,
            active_explicit: false,
            has_time_condition: false,
            time_start: None,
            time_end: None,
            start_ns: None,
            end_ns: None,
            query_is_empty: None,
            query_words: None,
            has_query_condition: false,
            actions: Vec::new(),
            order,
        }
    }

    /// The `conditions` object as Meilisearch serialises it (`time` first, absent members
    /// left out).
    pub fn conditions_json(&self) -> Value {
        let mut c = Map::new();
        if self.has_time_condition {
            let mut t = Map::new();
            if let Some(s) = &self.time_start {
                t.insert("start".into(), s.clone().into());
            }
            if let Some(e) = &self.time_end {
                t.insert("end".into(), e.clone().into());
            }
            c.insert("time".into(), Value::Object(t));
        }
        if self.has_query_condition {
            let mut q = Map::new();
            if let Some(b) = self.query_is_empty {
                q.insert("isEmpty".into(), b.into());
            }
            if let Some(w) = &self.query_words {
                q.insert("words".into(), w.clone().into());
            }
            c.insert("query".into(), Value::Object(q));
        }
        Value::Object(c)
    }

    /// The `actions` array as Meilisearch serialises it.
    pub fn actions_json(&self) -> Value {
        Value::Array(self.actions.iter().map(action_json).collect())
    }

    /// The rule as `GET /dynamic-search-rules/{uid}` answers it.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("uid".into(), self.uid.clone().into());
        if let Some(d) = &self.description {
            m.insert("description".into(), d.clone().into());
        }
        if let Some(p) = self.precedence {
            m.insert("precedence".into(), p.into());
        }
        m.insert("active".into(), self.active.into());
        m.insert("conditions".into(), self.conditions_json());
        m.insert("actions".into(), self.actions_json());
        Value::Object(m)
    }

    /// Whether the rule counts as active (`known`: [`active_rules_known`] of all the rules):
    /// milli reads the `active` facet, which a rule created without `active` lacks.
    pub fn is_active(&self, known: bool) -> bool {
        if known {
            self.active_explicit && self.active
        } else {
            true
        }
    }

    /// Whether the rule's conditions hold for a query with these terms at `now_ns`.
    fn applies(&self, known: bool, terms: &[String], now_ns: i128) -> bool {
        if !self.is_active(known) {
            return false;
        }
        if self.start_ns.is_some_and(|s| s > now_ns) || self.end_ns.is_some_and(|e| e < now_ns) {
            return false;
        }
        if let Some(is_empty) = self.query_is_empty {
            if is_empty != terms.is_empty() {
                return false;
            }
        }
        if let Some(words) = &self.query_words {
            let needed = tokenize(words);
            if needed.len() <= MILLI_MAX_COUNTED_WORDS {
                // milli: the rule needs `needed.len()` distinct query words each among the
                // rule's words (so a repeated rule word can never be satisfied).
                let present = terms.iter().filter(|t| needed.contains(t)).count();
                if present < needed.len() {
                    return false;
                }
            }
        }
        true
    }
}

fn action_json(a: &PinAction) -> Value {
    let mut sel = Map::new();
    if let Some(i) = &a.index_uid {
        sel.insert("indexUid".into(), i.clone().into());
    }
    sel.insert("id".into(), a.id.clone().into());
    json!({"selector": sel, "action": {"type": "pin", "position": a.position}})
}

/// Lower-cased alphanumeric runs: an approximation of charabia's tokenizer with the default
/// settings of the rules index (documented in docs/compatibility.md).
pub fn tokenize(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The query's terms as the rules see them: the first [`QUERY_WORDS_LIMIT`] words that are
/// not negated (`-word`), then distinct, sorted, at most [`MAX_COUNTED_WORDS`].
pub fn query_terms(q: Option<&str>) -> Vec<String> {
    let Some(q) = q else { return Vec::new() };
    let mut terms: Vec<String> = Vec::new();
    for raw in q.split_whitespace() {
        if raw.starts_with('-') && raw.len() > 1 {
            continue;
        }
        terms.extend(tokenize(raw));
    }
    terms.truncate(QUERY_WORDS_LIMIT);
    terms.sort_unstable();
    terms.dedup();
    terms.truncate(MAX_COUNTED_WORDS);
    terms
}

/// Whether some rule has an `active` field: then milli takes as active only the rules whose
/// `active` is `true`; otherwise every rule.
pub fn active_rules_known(rules: &[SearchRule]) -> bool {
    rules.iter().any(|r| r.active_explicit)
}

/// The rules in the order milli takes active rules: ascending `precedence`, rules without
/// one last, ties by [`SearchRule::order`].
pub fn precedence_order(rules: &mut [SearchRule]) {
    rules.sort_by_key(|r| (r.precedence.is_none(), r.precedence, r.order));
}

/// The pin actions of the rules active for a search of `index` with query `q` at `now_ns`,
/// in rule precedence order (`rules` must be in [`precedence_order`]). The documents still
/// have to be checked (exist, match the filter) by [`resolve_pins`].
pub fn candidate_pins(
    rules: &[SearchRule],
    index: &str,
    q: Option<&str>,
    now_ns: i128,
) -> Vec<(String, u32)> {
    let terms = query_terms(q);
    let known = active_rules_known(rules);
    rules
        .iter()
        .filter(|r| r.applies(known, &terms, now_ns))
        .take(MAX_ACTIVE_RULES)
        .flat_map(|r| r.actions.iter())
        .filter(|a| a.index_uid.as_deref().is_none_or(|i| i == index))
        .map(|a| (a.id.clone(), a.position))
        .collect()
}

/// Keeps the candidates whose document `found` (exists and matches the search's filter),
/// the first pin of each document, at most [`MAX_PIN_ACTIONS`].
pub fn resolve_pins(
    candidates: Vec<(String, u32)>,
    found: impl Fn(&str) -> bool,
) -> Vec<(String, u32)> {
    let mut seen = std::collections::HashSet::new();
    candidates
        .into_iter()
        .filter(|(id, _)| found(id) && seen.insert(id.clone()))
        .take(MAX_PIN_ACTIONS)
        .collect()
}

/// milli's `merge_positioned_hits_into_page`: walks the combined list up to `skip + take`,
/// putting the next pin (in the order given) as soon as its position is reached, or when the
/// organic hits run out, and returns the `[skip, skip + take)` slice.
pub fn place_pins<P, T>(
    pins: Vec<(P, u32)>,
    skip: usize,
    take: usize,
    organic: Vec<T>,
    mut into_hit: impl FnMut(P, u32) -> T,
) -> Vec<T> {
    if pins.is_empty() {
        return organic.into_iter().skip(skip).take(take).collect();
    }
    let end = skip.saturating_add(take);
    let mut out = Vec::new();
    let mut organic = organic.into_iter();
    let mut pins = pins.into_iter().peekable();
    let mut i = 0usize;
    while i < end {
        let next = match pins.peek() {
            Some((_, pos)) if (*pos as usize) <= i => pins.next().map(|(p, pos)| into_hit(p, pos)),
            Some(_) => match organic.next() {
                Some(h) => Some(h),
                None => pins.next().map(|(p, pos)| into_hit(p, pos)),
            },
            None => organic.next(),
        };
        let Some(hit) = next else { break };
        if i >= skip {
            out.push(hit);
        }
        i += 1;
    }
    out
}

/// A document id as the JSON value of a primary key (numbers as their decimal form).
pub fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(uid: &str, order: u32) -> SearchRule {
        SearchRule::new(uid, order)
    }

    fn pin(id: &str, position: u32) -> PinAction {
        PinAction {
            index_uid: None,
            id: id.into(),
            position,
        }
    }

    #[test]
    fn json_view_matches_meilisearch() {
        let mut r = rule("r2", 0);
        r.time_start = Some("2020-01-01T00:00:00Z".into());
        r.has_time_condition = true;
        r.has_query_condition = true;
        r.query_is_empty = Some(true);
        r.actions = vec![pin("7", 2)];
        assert_eq!(
            serde_json::to_string(&r.to_json()).unwrap(),
            r#"{"uid":"r2","active":true,"conditions":{"time":{"start":"2020-01-01T00:00:00Z"},"query":{"isEmpty":true}},"actions":[{"selector":{"id":"7"},"action":{"type":"pin","position":2}}]}"#
        );
        assert_eq!(rule("x", 0).to_json()["conditions"], json!({}));
    }

    #[test]
    fn conditions() {
        let mut r = rule("r", 0);
        r.has_query_condition = true;
        r.query_words = Some("Red shoe".into());
        r.actions = vec![pin("1", 0)];
        let rules = vec![r.clone()];
        assert_eq!(candidate_pins(&rules, "i", Some("red"), 0), vec![]);
        assert_eq!(
            candidate_pins(&rules, "i", Some("shoe RED big"), 0),
            vec![("1".to_string(), 0)]
        );
        // Negated words are not terms.
        assert_eq!(candidate_pins(&rules, "i", Some("shoe -red"), 0), vec![]);
        r.query_words = None;
        r.query_is_empty = Some(true);
        let rules = vec![r.clone()];
        assert_eq!(candidate_pins(&rules, "i", Some(""), 0).len(), 1);
        assert_eq!(candidate_pins(&rules, "i", None, 0).len(), 1);
        assert_eq!(candidate_pins(&rules, "i", Some("a"), 0).len(), 0);
        r.query_is_empty = None;
        r.start_ns = Some(10);
        r.end_ns = Some(20);
        let rules = vec![r.clone()];
        assert!(candidate_pins(&rules, "i", None, 9).is_empty());
        assert_eq!(candidate_pins(&rules, "i", None, 10).len(), 1);
        assert_eq!(candidate_pins(&rules, "i", None, 20).len(), 1);
        assert!(candidate_pins(&rules, "i", None, 21).is_empty());
        r.active = false;
        r.active_explicit = true;
        assert!(candidate_pins(&[r.clone()], "i", None, 15).is_empty());
        // Once a rule has `active`, a rule created without it is not active (milli).
        let other = rule("o", 1);
        let mut with = other.clone();
        with.actions = vec![pin("2", 0)];
        assert!(candidate_pins(&[r, with.clone()], "i", None, 15).is_empty());
        assert_eq!(candidate_pins(&[with], "i", None, 15).len(), 1);
    }

    #[test]
    fn selector_index_and_precedence() {
        let mut a = rule("a", 0);
        a.actions = vec![PinAction {
            index_uid: Some("other".into()),
            id: "1".into(),
            position: 0,
        }];
        let mut b = rule("b", 1);
        b.precedence = Some(5);
        b.actions = vec![pin("2", 3)];
        let mut c = rule("c", 2);
        c.precedence = Some(1);
        c.actions = vec![pin("2", 0), pin("3", 1)];
        let mut rules = vec![a, b, c];
        precedence_order(&mut rules);
        assert_eq!(
            rules.iter().map(|r| r.uid.as_str()).collect::<Vec<_>>(),
            ["c", "b", "a"]
        );
        let cands = candidate_pins(&rules, "movies", None, 0);
        assert_eq!(
            cands,
            vec![("2".into(), 0), ("3".into(), 1), ("2".into(), 3)]
        );
        // First pin of a document wins; missing documents are dropped.
        assert_eq!(
            resolve_pins(cands, |id| id != "3"),
            vec![("2".to_string(), 0)]
        );
    }

    #[test]
    fn placement_matches_milli() {
        // Pins at 1 and 0 in rule order: the pin at 1 is waited for first (milli's order).
        let organic: Vec<i32> = vec![10, 11, 12];
        let pins = vec![(-1, 1), (-2, 0)];
        let all = place_pins(pins.clone(), 0, 10, organic.clone(), |p, _| p);
        assert_eq!(all, vec![10, -1, -2, 11, 12]);
        assert_eq!(
            place_pins(pins.clone(), 2, 2, organic.clone(), |p, _| p),
            vec![-2, 11]
        );
        // A pin beyond the organic hits is pulled forward.
        assert_eq!(
            place_pins(vec![(-9, 50)], 0, 10, vec![1, 2], |p, _| p),
            vec![1, 2, -9]
        );
    }

    proptest! {
        /// Every pin (sorted by position, within reach) lands at its position in the combined
        /// list, whatever the page cut; pages concatenate to the whole list.
        #[test]
        fn pages_concatenate(
            n in 0usize..40,
            positions in proptest::collection::btree_set(0u32..30, 0..5),
            page in 1usize..7,
        ) {
            let organic: Vec<i64> = (0..n as i64).collect();
            let pins: Vec<(i64, u32)> =
                positions.iter().map(|&p| (-(p as i64) - 1, p)).collect();
            let total = n + pins.len();
            let whole = place_pins(pins.clone(), 0, total, organic.clone(), |p, _| p);
            prop_assert_eq!(whole.len(), total);
            for &(p, pos) in &pins {
                if (pos as usize) < total {
                    let at = whole.iter().position(|&h| h == p).unwrap();
                    prop_assert!(at <= pos as usize);
                    if (pos as usize) <= n {
                        prop_assert_eq!(at, pos as usize);
                    }
                }
            }
            let mut joined = Vec::new();
            let mut skip = 0;
            while skip < total {
                joined.extend(place_pins(pins.clone(), skip, page, organic.clone(), |p, _| p));
                skip += page;
            }
            prop_assert_eq!(joined, whole);
        }
    }
}
