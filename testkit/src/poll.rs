//! Polling with deadlines. The deadline is a hang detector, not a timing assertion: pick it
//! generously (a loaded 2-core machine runs several suites at once).

use std::time::{Duration, Instant};

const INTERVAL: Duration = Duration::from_millis(20);

/// The deadline `d` from now.
pub fn within(d: Duration) -> Instant {
    Instant::now() + d
}

/// What a polled closure returns: `bool` (ready or not) or `Option<T>` (ready with a value).
pub trait Ready {
    type Value;
    fn ready(self) -> Option<Self::Value>;
}

impl Ready for bool {
    type Value = ();
    fn ready(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Ready for Option<T> {
    type Value = T;
    fn ready(self) -> Option<T> {
        self
    }
}

/// Polls `f` every 20 ms until it is ready or `deadline` passes (then `None`). `f` runs at
/// least once, even after the deadline.
pub fn try_wait_until<R: Ready>(deadline: Instant, mut f: impl FnMut() -> R) -> Option<R::Value> {
    loop {
        if let Some(v) = f().ready() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(INTERVAL);
    }
}

/// Polls `f` every 20 ms until it is ready; panics naming `what` when `deadline` passes.
pub fn wait_until<R: Ready>(deadline: Instant, what: &str, f: impl FnMut() -> R) -> R::Value {
    let started = Instant::now();
    try_wait_until(deadline, f)
        .unwrap_or_else(|| panic!("gave up after {:?} waiting for {what}", started.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_bools_and_options_until_the_deadline() {
        let mut n = 0;
        let v = wait_until(within(Duration::from_secs(10)), "three calls", || {
            n += 1;
            (n == 3).then_some(n * 10)
        });
        assert_eq!(v, 30);
        wait_until(within(Duration::from_secs(10)), "true", || true);
        let start = Instant::now();
        assert_eq!(
            try_wait_until(within(Duration::from_millis(50)), || false),
            None
        );
        assert!(start.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    #[should_panic(expected = "waiting for the impossible")]
    fn panics_naming_what_it_waited_for() {
        wait_until(within(Duration::from_millis(30)), "the impossible", || {
            false
        });
    }
}
