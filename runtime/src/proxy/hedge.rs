//! Hedged reads (`scatter.hedging`): when a node is slower than usual to answer its part of a
//! scatter, the same shards are asked of another replica and the first usable answer wins,
//! so one slow replica does not set the tail (docs/contract.md#advanced).
//!
//! "Slower than usual" is per node and per core: a running mean and mean deviation of the
//! node's successful latencies (Jacobson's estimator, as TCP computes its retransmission
//! timeout), the hedge firing after `mean + 3 × deviation` — about the p95–p99 of a steady
//! node — never sooner than `scatter.hedge_min_ms`, never later than half the node timeout.
//! Hedges are capped at one in ten calls per core (per window of a thousand calls), so a
//! uniformly slow cluster is not asked twice for everything; and a node whose hedge won is
//! avoided by the core's next plans for a second (the failure "suspects" mechanism), so a
//! replica that stays slow stops being asked first instead of being hedged every time. Only a replica that can answer for *all* of the slow node's shards
//! on its own is used (RF > 1 or RG > 1); otherwise there is no hedge.

use std::time::Duration;

/// Samples before a node's estimate is trusted.
const WARM_UP: u32 = 8;

/// Running latency estimate of one node.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Latency {
    mean_us: f64,
    dev_us: f64,
    samples: u32,
}

impl Latency {
    /// Adds one successful call's latency (gains 1/8 and 1/4, as TCP's RTT estimator).
    pub fn record(&mut self, took: Duration) {
        let x = took.as_secs_f64() * 1e6;
        if self.samples == 0 {
            self.mean_us = x;
            self.dev_us = x / 2.0;
        } else {
            let err = x - self.mean_us;
            self.mean_us += err / 8.0;
            self.dev_us += (err.abs() - self.dev_us) / 4.0;
        }
        self.samples = self.samples.saturating_add(1);
    }

    /// When to hedge a call to this node, or `None` before the estimate has warmed up.
    pub fn hedge_after(&self, min: Duration, max: Duration) -> Option<Duration> {
        if self.samples < WARM_UP {
            return None;
        }
        let us = self.mean_us + 3.0 * self.dev_us;
        let d = Duration::from_secs_f64((us / 1e6).max(0.0));
        Some(d.clamp(min, max.max(min)))
    }
}

/// Calls per budget window: the one-in-ten cap holds over every window, so quiet periods do
/// not bank hedges for a later burst.
const WINDOW: u64 = 1_000;

/// At most one hedge per ten calls on a core, per window of [`WINDOW`] calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Budget {
    calls: u64,
    hedges: u64,
}

impl Budget {
    pub fn call(&mut self) {
        if self.calls >= WINDOW {
            *self = Budget::default();
        }
        self.calls += 1;
    }

    /// Takes a hedge if the budget allows one.
    pub fn take(&mut self) -> bool {
        if self.hedges.saturating_mul(10) < self.calls {
            self.hedges += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    #[test]
    fn no_hedge_before_warm_up() {
        let mut l = Latency::default();
        for _ in 0..WARM_UP - 1 {
            l.record(Duration::from_millis(3));
        }
        assert_eq!(l.hedge_after(MIN, MAX), None);
        l.record(Duration::from_millis(3));
        assert!(l.hedge_after(MIN, MAX).is_some());
    }

    #[test]
    fn a_steady_node_hedges_just_above_its_latency() {
        let mut l = Latency::default();
        for i in 0..200 {
            l.record(Duration::from_micros(20_000 + (i % 5) * 200));
        }
        let d = l.hedge_after(MIN, MAX).unwrap();
        assert!(
            d > Duration::from_millis(20) && d < Duration::from_millis(25),
            "{d:?}"
        );
    }

    #[test]
    fn budget_is_one_in_ten() {
        let mut b = Budget::default();
        let mut taken = 0;
        for _ in 0..1000 {
            b.call();
            if b.take() {
                taken += 1;
            }
        }
        assert_eq!(taken, 100);
    }

    #[test]
    fn quiet_windows_bank_nothing() {
        let mut b = Budget::default();
        for _ in 0..5 * WINDOW {
            b.call();
        }
        // A burst after a quiet spell gets one in ten of its own calls, not the spell's.
        let mut taken = 0;
        for _ in 0..100 {
            b.call();
            if b.take() {
                taken += 1;
            }
        }
        assert!(taken <= 10, "{taken}");
    }

    proptest! {
        #[test]
        fn the_delay_stays_within_bounds(samples in prop::collection::vec(0u64..10_000_000, 8..64)) {
            let mut l = Latency::default();
            for s in samples {
                l.record(Duration::from_micros(s));
            }
            let d = l.hedge_after(MIN, MAX).unwrap();
            prop_assert!(d >= MIN && d <= MAX);
        }
    }
}
