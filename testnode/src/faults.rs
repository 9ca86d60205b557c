//! Fault injection (`--faults`): what real Meilisearch cannot do and Miroir's tests need.
//!
//! `POST /_testnode/faults` replaces the fault set:
//! ```json
//! {"seed": 7, "stallTasks": false,
//!  "rules": [{"route": "/indexes/movies/search", "method": "POST", "probability": 1.0,
//!             "latencyMs": 50, "error": {"status": 503, "body": {...}}, "hang": false, "drop": false}]}
//! ```
//! A rule applies to requests whose path starts with `route` (and whose method matches, when
//! given). Per matching request: sleep `latencyMs`, then — with `probability`, drawn from a
//! seeded SplitMix64 so runs are reproducible — hang forever, drop the connection, or answer
//! `error`. `DELETE` clears everything; `GET` returns the current set.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    pub route: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default = "one")]
    pub probability: f64,
    #[serde(default)]
    pub latency_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<InjectedError>,
    #[serde(default)]
    pub hang: bool,
    #[serde(default)]
    pub drop: bool,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InjectedError {
    pub status: u16,
    #[serde(default)]
    pub body: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultSet {
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub stall_tasks: bool,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// What to do with one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Pass,
    Hang,
    Drop,
    Error(u16, Value),
}

#[derive(Debug, Default)]
pub struct Faults {
    pub set: FaultSet,
    rng: u64,
    pub counters: BTreeMap<String, u64>,
}

/// SplitMix64: tiny, seedable, good enough to pick a fraction of requests.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Faults {
    pub fn replace(&mut self, set: FaultSet) {
        self.rng = set.seed;
        self.set = set;
    }

    pub fn clear(&mut self) {
        self.replace(FaultSet::default());
    }

    pub fn count(&mut self, template: &str) {
        *self.counters.entry(template.to_string()).or_default() += 1;
    }

    /// Decides the fate of one request: total latency to add and the action.
    pub fn decide(&mut self, method: &str, path: &str) -> (u64, Action) {
        let mut latency = 0;
        let mut action = Action::Pass;
        let rules: Vec<Rule> = self
            .set
            .rules
            .iter()
            .filter(|r| {
                path.starts_with(&r.route)
                    && r.method
                        .as_deref()
                        .is_none_or(|m| m.eq_ignore_ascii_case(method))
            })
            .cloned()
            .collect();
        for r in rules {
            latency += r.latency_ms;
            if action != Action::Pass || !(r.hang || r.drop || r.error.is_some()) {
                continue;
            }
            let draw = (next(&mut self.rng) >> 11) as f64 / (1u64 << 53) as f64;
            if draw < r.probability {
                action = if r.hang {
                    Action::Hang
                } else if r.drop {
                    Action::Drop
                } else {
                    let e = r.error.clone().expect("checked");
                    Action::Error(e.status, e.body)
                };
            }
        }
        (latency, action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probability_is_seeded_and_reproducible() {
        let set: FaultSet = serde_json::from_value(serde_json::json!({"seed": 42, "rules": [{"route": "/indexes", "probability": 0.5, "error": {"status": 503, "body": {"x": 1}}}]})).unwrap();
        let run = || {
            let mut f = Faults::default();
            f.replace(set.clone());
            (0..200)
                .map(|_| f.decide("GET", "/indexes/a").1 != Action::Pass)
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let hits = a.iter().filter(|x| **x).count();
        assert!((60..140).contains(&hits), "{hits}");
    }

    #[test]
    fn matching_latency_and_kinds() {
        let mut f = Faults::default();
        f.replace(
            serde_json::from_value(serde_json::json!({"rules": [
                {"route": "/health", "latencyMs": 5},
                {"route": "/health", "method": "GET", "latencyMs": 7, "hang": true},
                {"route": "/tasks", "drop": true}
            ]}))
            .unwrap(),
        );
        assert_eq!(f.decide("GET", "/health"), (12, Action::Hang));
        assert_eq!(f.decide("POST", "/health"), (5, Action::Pass));
        assert_eq!(f.decide("GET", "/tasks/1"), (0, Action::Drop));
        assert_eq!(f.decide("GET", "/version"), (0, Action::Pass));
        assert!(serde_json::from_value::<FaultSet>(serde_json::json!({"bogus": 1})).is_err());
    }
}
