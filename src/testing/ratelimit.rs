//! The conformance suite of [`Store`]: the same cases for every store.
//!
//! ```
//! use rustforge_prod::ratelimit::{ManualClock, MemoryStore};
//! use rustforge_prod::testing::ratelimit::store_conformance;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let clock = ManualClock::new();
//! let store = MemoryStore::with_clock(clock.clone());
//! store_conformance(&store, &|by| clock.advance(by), "doc").await;
//! # }
//! ```

use std::time::Duration;

use crate::ratelimit::{Algorithm, Decision, Limit, RateLimitError, Store};

/// Moves the store's clock forward (a [`ManualClock`](crate::ratelimit::ManualClock), or
/// [`RedisStore::advance_clock`](crate::ratelimit::RedisStore::advance_clock)).
pub type Advance<'a> = &'a (dyn Fn(Duration) + Sync);

const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::Gcra,
    Algorithm::SlidingWindow,
    Algorithm::FixedWindow,
    Algorithm::SlidingLog,
];

/// Runs every case against `store`. Keys start with `prefix`, so runs on a shared server do not
/// collide. Panics with the case name on the first failure.
pub async fn store_conformance(store: &dyn Store, advance: Advance<'_>, prefix: &str) {
    // Each case is boxed: one future nesting all of them makes rustc's type normalisation
    // explode in crates that await this function.
    for algorithm in ALGORITHMS {
        let p = format!("{prefix}:{algorithm}");
        Box::pin(admits_exactly_the_burst(store, algorithm, &p)).await;
        Box::pin(refills_as_specified(store, advance, algorithm, &p)).await;
        Box::pin(cost_counts_units(store, algorithm, &p)).await;
        Box::pin(keys_are_isolated(store, algorithm, &p)).await;
        Box::pin(several_limits_are_atomic(store, algorithm, &p)).await;
    }
    Box::pin(gcra_burst_differs_from_rate(store, advance, prefix)).await;
    Box::pin(cost_above_burst_is_an_error(store, prefix)).await;
}

async fn check(store: &dyn Store, key: &str, limits: &[Limit], cost: u32) -> Decision {
    store
        .check(key, limits, cost)
        .await
        .unwrap_or_else(|e| panic!("check of {key} failed: {e}"))
}

/// A fresh key gets exactly `quota` requests at once, with remaining counting down; the next
/// is denied with a positive retry time and remaining 0.
pub async fn admits_exactly_the_burst(store: &dyn Store, algorithm: Algorithm, prefix: &str) {
    let key = format!("{prefix}:burst");
    let limits = [Limit::new(5, Duration::from_secs(10)).algorithm(algorithm)];
    for expected in (0..5).rev() {
        let d = check(store, &key, &limits, 1).await;
        assert!(
            d.allowed,
            "{algorithm}: request {} of 5 refused",
            5 - expected
        );
        assert_eq!(d.limits[0].remaining, expected, "{algorithm}: remaining");
        assert_eq!(d.retry_after(), None);
    }
    for _ in 0..3 {
        let d = check(store, &key, &limits, 1).await;
        assert!(!d.allowed, "{algorithm}: 6th request admitted");
        assert_eq!(
            d.limits[0].remaining, 0,
            "{algorithm}: remaining when denied"
        );
        let wait = d.retry_after().expect("a denial says when to retry");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{algorithm}: retry after {wait:?}"
        );
    }
}

/// After a denial, waiting the reported time admits again; waiting less does not.
pub async fn refills_as_specified(
    store: &dyn Store,
    advance: Advance<'_>,
    algorithm: Algorithm,
    prefix: &str,
) {
    let key = format!("{prefix}:refill");
    let limits = [Limit::new(5, Duration::from_secs(10)).algorithm(algorithm)];
    for _ in 0..5 {
        assert!(check(store, &key, &limits, 1).await.allowed);
    }
    let denied = check(store, &key, &limits, 1).await;
    let wait = denied.retry_after().expect("denied");
    match algorithm {
        // One request is worth 10 s / 5 = 2 s of schedule.
        Algorithm::Gcra => assert_near(wait, Duration::from_secs(2), algorithm),
        // Everything was admitted at (about) the same instant, so all of it frees up together.
        Algorithm::FixedWindow | Algorithm::SlidingLog => {
            assert_near(wait, Duration::from_secs(10), algorithm)
        }
        // Depends on where in the window the burst fell; never more than two windows.
        Algorithm::SlidingWindow => assert!(wait <= Duration::from_secs(20), "{wait:?}"),
    }
    // Half the wait (at least 400 ms short of it): still denied.
    let short = (wait / 2).min(wait.saturating_sub(Duration::from_millis(400)));
    advance(short);
    assert!(
        !check(store, &key, &limits, 1).await.allowed,
        "{algorithm}: admitted {:?} before the reported retry time",
        wait - short
    );
    advance(wait - short);
    let d = check(store, &key, &limits, 1).await;
    assert!(
        d.allowed,
        "{algorithm}: still denied after waiting {wait:?}"
    );
    // After a full reset every algorithm admits the whole burst again.
    advance(Duration::from_secs(20));
    for _ in 0..5 {
        assert!(
            check(store, &key, &limits, 1).await.allowed,
            "{algorithm}: after reset"
        );
    }
    assert!(!check(store, &key, &limits, 1).await.allowed);
}

fn assert_near(got: Duration, want: Duration, algorithm: Algorithm) {
    // The Redis clock keeps running between calls; a second is far more than a test takes.
    assert!(
        got <= want && got + Duration::from_secs(1) >= want,
        "{algorithm}: retry after {got:?}, expected about {want:?}"
    );
}

/// A request of cost 4 uses 4 units; one that does not fit is denied whole.
pub async fn cost_counts_units(store: &dyn Store, algorithm: Algorithm, prefix: &str) {
    let key = format!("{prefix}:cost");
    let limits = [Limit::new(10, Duration::from_secs(60)).algorithm(algorithm)];
    let d = check(store, &key, &limits, 4).await;
    assert!(d.allowed);
    assert_eq!(d.limits[0].remaining, 6, "{algorithm}");
    let d = check(store, &key, &limits, 4).await;
    assert_eq!((d.allowed, d.limits[0].remaining), (true, 2), "{algorithm}");
    let d = check(store, &key, &limits, 4).await;
    assert!(
        !d.allowed,
        "{algorithm}: 12 units admitted under a limit of 10"
    );
    let d = check(store, &key, &limits, 2).await;
    assert_eq!((d.allowed, d.limits[0].remaining), (true, 0), "{algorithm}");
}

/// Exhausting one key leaves another untouched.
pub async fn keys_are_isolated(store: &dyn Store, algorithm: Algorithm, prefix: &str) {
    let limits = [Limit::new(2, Duration::from_secs(60)).algorithm(algorithm)];
    let (a, b) = (format!("{prefix}:iso-a"), format!("{prefix}:iso-b"));
    for _ in 0..2 {
        assert!(check(store, &a, &limits, 1).await.allowed);
    }
    assert!(!check(store, &a, &limits, 1).await.allowed);
    let d = check(store, &b, &limits, 1).await;
    assert!(d.allowed, "{algorithm}: key b limited by key a");
    assert_eq!(d.limits[0].remaining, 1);
}

/// With two limits, a request denied by one consumes nothing from the other.
pub async fn several_limits_are_atomic(store: &dyn Store, algorithm: Algorithm, prefix: &str) {
    let key = format!("{prefix}:multi");
    let short = Limit::new(5, Duration::from_secs(60)).algorithm(algorithm);
    let long = Limit::new(3, Duration::from_secs(3600)).algorithm(algorithm);
    let both = [short.clone(), long];
    for _ in 0..3 {
        assert!(check(store, &key, &both, 1).await.allowed);
    }
    for _ in 0..4 {
        let d = check(store, &key, &both, 1).await;
        assert!(!d.allowed, "{algorithm}: 4th request passed a limit of 3");
        assert!(
            d.limits[0].retry_after.is_none(),
            "the short limit had room"
        );
        assert_eq!(
            d.limits[0].remaining, 2,
            "{algorithm}: denied requests consumed"
        );
        assert!(d.limits[1].retry_after.is_some());
    }
    // The short limit alone still has exactly the two units the denials did not take.
    let alone = [short];
    assert!(check(store, &key, &alone, 2).await.allowed);
    assert!(!check(store, &key, &alone, 1).await.allowed, "{algorithm}");
}

/// GCRA with a burst above the rate: the burst at once, then the rate.
pub async fn gcra_burst_differs_from_rate(store: &dyn Store, advance: Advance<'_>, prefix: &str) {
    let key = format!("{prefix}:gcra-burst");
    let limits = [Limit::per_minute(60).burst(10)];
    for _ in 0..10 {
        assert!(check(store, &key, &limits, 1).await.allowed);
    }
    let d = check(store, &key, &limits, 1).await;
    assert!(!d.allowed);
    assert_near(
        d.retry_after().unwrap(),
        Duration::from_secs(1),
        Algorithm::Gcra,
    );
    advance(Duration::from_secs(3));
    for _ in 0..3 {
        assert!(
            check(store, &key, &limits, 1).await.allowed,
            "one per second"
        );
    }
    assert!(!check(store, &key, &limits, 1).await.allowed);
}

/// A cost no limit could ever admit is an error, not an eternal denial.
pub async fn cost_above_burst_is_an_error(store: &dyn Store, prefix: &str) {
    let limits = [Limit::per_minute(3)];
    let result = store
        .check(&format!("{prefix}:cost-error"), &limits, 4)
        .await;
    assert!(
        matches!(result, Err(RateLimitError::Cost { cost: 4, .. })),
        "{result:?}"
    );
}
