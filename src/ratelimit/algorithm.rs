//! The four algorithms as pure functions on one key's state, in microseconds.
//!
//! `check.lua` runs the same steps on Redis; keep the two in step (the conformance suite runs the
//! same cases against both stores). Times are `f64` microseconds, as in Lua.

use std::collections::VecDeque;
use std::time::Duration;

use super::{Algorithm, Limit, LimitStatus};

/// Float error allowed when comparing a GCRA schedule with the clock (µs). Limits are capped at
/// 1,000,000/s, so one request costs at least 1 µs and this can never admit an extra request.
pub(crate) const SLACK_US: f64 = 0.25;
/// Float error allowed when rounding counts down.
const EPS: f64 = 1e-6;

/// The stored state of one limit of one key.
#[derive(Clone, Debug)]
pub(crate) enum State {
    /// Theoretical arrival time of the next request.
    Gcra { tat: f64 },
    /// Counts of window `idx` and the one before it.
    SlidingWindow { idx: f64, cur: u64, prev: u64 },
    /// Count of the window that ends at `end`.
    FixedWindow { end: f64, count: u64 },
    /// Times of the admitted requests, oldest first.
    SlidingLog { entries: VecDeque<f64> },
}

impl State {
    /// From when on the state is the same as no state (the key may be evicted).
    pub(crate) fn idle_at(&self, limit: &Limit) -> f64 {
        let w = limit.period_us();
        match self {
            Self::Gcra { tat } => *tat,
            Self::SlidingWindow { idx, .. } => (idx + 2.0) * w,
            Self::FixedWindow { end, .. } => *end,
            Self::SlidingLog { entries } => entries.back().map_or(0.0, |last| last + w),
        }
    }
}

/// The outcome for one limit: its status, and what to store if every limit admits.
pub(crate) struct Step {
    pub(crate) status: LimitStatus,
    pub(crate) commit: Option<Commit>,
}

/// A write deferred until every limit of the request has admitted it.
pub(crate) enum Commit {
    /// Replace the state.
    Set(State),
    /// Append `n` entries at `at` to a sliding log.
    Push { at: f64, n: usize },
}

impl Commit {
    /// Applies the write to the stored state.
    pub(crate) fn apply(self, state: &mut Option<State>) {
        match self {
            Self::Set(new) => *state = Some(new),
            Self::Push { at, n } => match state {
                Some(State::SlidingLog { entries }) => entries.extend(std::iter::repeat_n(at, n)),
                _ => {
                    *state = Some(State::SlidingLog {
                        entries: std::iter::repeat_n(at, n).collect(),
                    })
                }
            },
        }
    }
}

// `floor`/`ceil` are libm calls on the x86-64 baseline (no SSE4.1 `roundsd`); a float-to-int
// cast truncates and saturates (negative and NaN become 0), which is all these two need.

fn us(micros: f64) -> Duration {
    let whole = micros as u64;
    Duration::from_micros(whole + u64::from((whole as f64) < micros))
}

fn count_down(x: f64) -> u64 {
    (x + EPS) as u64
}

/// Checks `cost` against one limit at time `now`, given the stored state (or `None`). Only
/// drops expired sliding-log entries from `state`; every other write is in the returned
/// [`Commit`].
pub(crate) fn check(limit: &Limit, state: &mut Option<State>, now: f64, cost: u32) -> Step {
    let cost_f = f64::from(cost);
    let quota = f64::from(limit.quota());
    let w = limit.period_us();
    match limit.get_algorithm() {
        Algorithm::Gcra => {
            let t = w / quota;
            let tol = t * f64::from(limit.burst_size());
            let tat = match &*state {
                Some(State::Gcra { tat }) => tat.max(now),
                _ => now,
            };
            let new_tat = tat + t * cost_f;
            let diff = now - (new_tat - tol);
            if diff < -SLACK_US {
                Step {
                    status: LimitStatus {
                        remaining: count_down((now + tol - tat) / t),
                        reset_after: us(tat - now),
                        retry_after: Some(us(-diff)),
                    },
                    commit: None,
                }
            } else {
                Step {
                    status: LimitStatus {
                        remaining: count_down(diff.max(0.0) / t),
                        reset_after: us(new_tat - now),
                        retry_after: None,
                    },
                    commit: Some(Commit::Set(State::Gcra { tat: new_tat })),
                }
            }
        }
        Algorithm::SlidingWindow => {
            let idx = (now / w).floor();
            let elapsed = now - idx * w;
            let (cur, prev) = match &*state {
                Some(State::SlidingWindow { idx: i, cur, prev }) if *i == idx => (*cur, *prev),
                Some(State::SlidingWindow { idx: i, cur, .. }) if *i == idx - 1.0 => (0, *cur),
                _ => (0, 0),
            };
            let (cur_f, prev_f) = (cur as f64, prev as f64);
            let est = prev_f * (1.0 - elapsed / w) + cur_f;
            if est + cost_f > quota + EPS {
                // The first instant at which est + cost <= quota: later in this window while the
                // previous one fades out, or in the next window once this one fades.
                let wait = if cur_f + cost_f <= quota {
                    (1.0 - (quota - cost_f - cur_f) / prev_f) * w - elapsed
                } else {
                    (w - elapsed) + (1.0 - (quota - cost_f) / cur_f) * w
                };
                let reset = if cur > 0 {
                    2.0 * w - elapsed
                } else {
                    w - elapsed
                };
                Step {
                    status: LimitStatus {
                        remaining: count_down(quota - est),
                        reset_after: us(reset),
                        retry_after: Some(us(wait.max(1.0))),
                    },
                    commit: None,
                }
            } else {
                Step {
                    status: LimitStatus {
                        remaining: count_down(quota - est - cost_f),
                        reset_after: us(2.0 * w - elapsed),
                        retry_after: None,
                    },
                    commit: Some(Commit::Set(State::SlidingWindow {
                        idx,
                        cur: cur + u64::from(cost),
                        prev,
                    })),
                }
            }
        }
        Algorithm::FixedWindow => {
            let (end, count) = match &*state {
                Some(State::FixedWindow { end, count }) if *end > now => (*end, *count),
                _ => (now + w, 0),
            };
            let quota = u64::from(limit.quota());
            let cost = u64::from(cost);
            if count + cost > quota {
                Step {
                    status: LimitStatus {
                        remaining: quota.saturating_sub(count),
                        reset_after: us(end - now),
                        retry_after: Some(us(end - now)),
                    },
                    commit: None,
                }
            } else {
                Step {
                    status: LimitStatus {
                        remaining: quota - count - cost,
                        reset_after: us(end - now),
                        retry_after: None,
                    },
                    commit: Some(Commit::Set(State::FixedWindow {
                        end,
                        count: count + cost,
                    })),
                }
            }
        }
        Algorithm::SlidingLog => {
            let empty = VecDeque::new();
            let entries = match state {
                Some(State::SlidingLog { entries }) => {
                    while entries.front().is_some_and(|e| *e <= now - w) {
                        entries.pop_front();
                    }
                    &*entries
                }
                _ => &empty,
            };
            let quota = limit.quota() as usize;
            let cost = cost as usize;
            let count = entries.len();
            if count + cost > quota {
                // `cost` slots free up when the (count + cost - quota)-th oldest entry expires.
                let freeing = entries[count + cost - quota - 1];
                let last = entries.back().copied().unwrap_or(now);
                Step {
                    status: LimitStatus {
                        remaining: quota.saturating_sub(count) as u64,
                        reset_after: us(last + w - now),
                        retry_after: Some(us(freeing + w - now)),
                    },
                    commit: None,
                }
            } else {
                Step {
                    status: LimitStatus {
                        remaining: (quota - count - cost) as u64,
                        reset_after: us(w),
                        retry_after: None,
                    },
                    commit: Some(Commit::Push { at: now, n: cost }),
                }
            }
        }
    }
}

#[cfg(test)]
mod rounding_tests {
    use super::*;

    #[test]
    fn casts_round_like_floor_and_ceil() {
        for x in [
            -5.5,
            -1.0,
            -0.5,
            -1e-9,
            0.0,
            1e-9,
            0.25,
            0.999_999_5,
            1.0,
            1.5,
            2.0,
            1e9 + 0.5,
            1e15,
            f64::NAN,
        ] {
            let ceil = Duration::from_micros(x.max(0.0).ceil() as u64);
            assert_eq!(us(x), ceil, "us({x})");
            assert_eq!(
                count_down(x),
                (x + EPS).floor().max(0.0) as u64,
                "count_down({x})"
            );
        }
    }
}
