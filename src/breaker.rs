//! A lock-free circuit breaker: after `threshold` consecutive failures the backend is skipped
//! for `cooldown`, then one probe decides whether it is back. The shared Redis handle holds one
//! (its probe runs in the background); the rate limiter's Redis store holds its own, with its
//! shorter deadline.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cooldown_us: u64,
    start: Instant,
    failures: AtomicU32,
    /// 0 while closed; otherwise µs since `start` until which calls are skipped.
    open_until: AtomicU64,
    probing: AtomicBool,
}

/// What to do with one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Permit {
    /// Closed: call the backend.
    Call,
    /// Half-open: this call is the probe.
    Probe,
    /// Open: do not call the backend.
    #[cfg_attr(not(feature = "ratelimit"), allow(dead_code))]
    Skip,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown_us: cooldown.as_micros() as u64,
            start: Instant::now(),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_micros() as u64 + 1
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open_until.load(Ordering::Relaxed) != 0
    }

    /// The rate limiter's cooldown-driven use: the shared Redis handle probes in the
    /// background instead.
    #[cfg_attr(not(feature = "ratelimit"), allow(dead_code))]
    pub(crate) fn permit(&self) -> Permit {
        let until = self.open_until.load(Ordering::Relaxed);
        if until == 0 {
            Permit::Call
        } else if self.now() >= until
            && self
                .probing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            Permit::Probe
        } else {
            Permit::Skip
        }
    }

    /// Records a success; returns `true` when this closed an open breaker.
    pub(crate) fn success(&self, permit: Permit) -> bool {
        self.failures.store(0, Ordering::Relaxed);
        if permit == Permit::Probe {
            self.open_until.store(0, Ordering::Relaxed);
            self.probing.store(false, Ordering::Release);
            return true;
        }
        false
    }

    /// Records a failure; returns `true` when this opened the breaker.
    pub(crate) fn failure(&self, permit: Permit) -> bool {
        let until = self.now() + self.cooldown_us;
        if permit == Permit::Probe {
            self.open_until.store(until, Ordering::Relaxed);
            self.probing.store(false, Ordering::Release);
            return false;
        }
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        failures >= self.threshold
            && self
                .open_until
                .compare_exchange(0, until, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_closes_after_a_good_probe() {
        let b = Breaker::new(2, Duration::ZERO);
        assert_eq!(b.permit(), Permit::Call);
        assert!(!b.failure(Permit::Call));
        assert!(b.failure(Permit::Call));
        assert!(b.is_open());
        // Cooldown over: exactly one probe at a time.
        assert_eq!(b.permit(), Permit::Probe);
        assert_eq!(b.permit(), Permit::Skip);
        assert!(!b.failure(Permit::Probe));
        assert!(b.is_open());
        assert_eq!(b.permit(), Permit::Probe);
        assert!(b.success(Permit::Probe));
        assert!(!b.is_open());
        assert_eq!(b.permit(), Permit::Call);
    }

    #[test]
    fn stays_open_during_cooldown() {
        let b = Breaker::new(1, Duration::from_secs(3600));
        assert!(b.failure(Permit::Call));
        assert_eq!(b.permit(), Permit::Skip);
    }
}
