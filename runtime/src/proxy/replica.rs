//! Adaptive replica selection (`scatter.adaptive_replicas`, decision 041): each core keeps,
//! per node, an EWMA of its call latency, its calls in flight and an EWMA of its recent
//! failures, and a read asks, for each shard, the usable owner with the best score instead
//! of the plain rotation's. Per core, no locks: the state lives in the proxy's node slots.
//!
//! Owners whose score is within [`BAND`] of the best one count as equally good and keep the
//! rotation's order among them, so healthy replicas still share the load as before; only a
//! clearly slower, busier or failing one is passed over. A node passed over gets no new
//! samples, so its latency term decays with the time since its last sample ([`HALF_LIFE`]):
//! it is tried again after a few seconds and re-learnt.

use std::time::Duration;

/// Owners scoring at most `BAND` × the best score are treated as equally good.
pub const BAND: f64 = 1.5;

/// The latency term halves for every `HALF_LIFE` without a new sample.
pub const HALF_LIFE: Duration = Duration::from_secs(2);

/// Added to every latency so that in-flight calls and failures still weigh on idle nodes
/// with no latency estimate yet.
const FLOOR_US: f64 = 200.0;

/// One node's recent behaviour on this core.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Health {
    /// EWMA of successful calls' latency (gain 1/4), microseconds; 0 before any sample.
    pub latency_us: f64,
    /// EWMA of call outcomes, 1 = failed (gain 1/4).
    pub errors: f64,
    /// Calls to the node in flight from this core.
    pub inflight: u32,
}

impl Health {
    /// Records a successful call's latency.
    pub fn success(&mut self, took: Duration) {
        let x = took.as_secs_f64() * 1e6;
        self.latency_us = if self.latency_us == 0.0 {
            x
        } else {
            self.latency_us + (x - self.latency_us) / 4.0
        };
        self.errors -= self.errors / 4.0;
    }

    /// Records a failed call (or one a hedge beat).
    pub fn failure(&mut self) {
        self.errors += (1.0 - self.errors) / 4.0;
    }
}

/// The score of a node (lower is better): its latency estimate, decayed by `idle` (the time
/// since its last sample), times one plus its calls in flight, times a failure penalty.
pub fn score(h: &Health, idle: Duration) -> f64 {
    let decay = 0.5f64.powf(idle.as_secs_f64() / HALF_LIFE.as_secs_f64());
    let latency = h.latency_us.max(0.0) * decay + FLOOR_US;
    let failures = 1.0 + 8.0 * h.errors.clamp(0.0, 1.0) * decay;
    latency * (1.0 + h.inflight as f64) * failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(latency_us: f64, errors: f64, inflight: u32) -> Health {
        Health {
            latency_us,
            errors,
            inflight,
        }
    }

    #[test]
    fn a_slow_replica_scores_worse_and_recovers_with_time() {
        let fast = h(2_000.0, 0.0, 0);
        let slow = h(500_000.0, 0.0, 0);
        let now = Duration::ZERO;
        assert!(score(&slow, now) > BAND * score(&fast, now));
        // Not sampled for long: back within the band, so it is asked again.
        assert!(score(&slow, Duration::from_secs(40)) <= BAND * score(&fast, now));
    }

    #[test]
    fn learning() {
        let mut x = Health::default();
        x.success(Duration::from_millis(10));
        assert_eq!(x.latency_us, 10_000.0);
        x.success(Duration::from_millis(2));
        assert_eq!(x.latency_us, 8_000.0);
        x.failure();
        assert_eq!(x.errors, 0.25);
        x.success(Duration::from_millis(8));
        assert_eq!(x.errors, 0.1875);
    }

    proptest! {
        /// More latency, more calls in flight or more failures never score better; time
        /// without samples never scores worse; scores are finite and positive.
        #[test]
        fn score_is_monotonic(
            lat in 0.0f64..1e7, dl in 0.0f64..1e7,
            err in 0.0f64..1.0, de in 0.0f64..1.0,
            inflight in 0u32..1000, di in 0u32..1000,
            idle_ms in 0u64..100_000, didle in 0u64..100_000,
        ) {
            let idle = Duration::from_millis(idle_ms);
            let base = score(&h(lat, err, inflight), idle);
            prop_assert!(base.is_finite() && base > 0.0);
            prop_assert!(score(&h(lat + dl, err, inflight), idle) >= base);
            prop_assert!(score(&h(lat, (err + de).min(1.0), inflight), idle) >= base);
            prop_assert!(score(&h(lat, err, inflight + di), idle) >= base);
            prop_assert!(score(&h(lat, err, inflight), idle + Duration::from_millis(didle)) <= base);
        }
    }
}
