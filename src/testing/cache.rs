//! The conformance suite of [`CacheStore`](crate::cache::CacheStore), run through [`Cache`]:
//! the same cases for every store.
//!
//! ```
//! use rustforge_prod::cache::{Cache, MemoryStore};
//! use rustforge_prod::testing::cache::cache_conformance;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! cache_conformance(&Cache::new(MemoryStore::new(10_000)), "doc").await;
//! # }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::cache::{Cache, CacheError};

/// Runs every case against `cache`. Keys start with `prefix`, so runs on a shared server do not
/// collide. Panics with the case name on the first failure.
pub async fn cache_conformance(cache: &Cache, prefix: &str) {
    // Each case is boxed: one future nesting all of them makes rustc's type normalisation
    // explode in crates that await this function.
    Box::pin(values_round_trip(cache, prefix)).await;
    Box::pin(entries_expire(cache, prefix)).await;
    Box::pin(touch_gives_a_new_ttl(cache, prefix)).await;
    Box::pin(add_is_atomic(cache, prefix)).await;
    Box::pin(increment_is_atomic(cache, prefix)).await;
    Box::pin(increment_keeps_the_ttl_and_refuses_text(cache, prefix)).await;
    Box::pin(many_reads_and_writes_in_order(cache, prefix)).await;
    Box::pin(another_type_is_a_miss(cache, prefix)).await;
    Box::pin(flushing_a_tag_leaves_the_others(cache, prefix)).await;
    Box::pin(flush_empties_this_prefix_only(cache, prefix)).await;
    Box::pin(a_flush_reaches_the_other_caches_within_their_check(
        cache, prefix,
    ))
    .await;
    Box::pin(remember_loads_once(cache, prefix, 100)).await;
    Box::pin(remember_does_not_cache_errors(cache, prefix)).await;
    Box::pin(locks_are_exclusive_and_released_by_their_owner(
        cache, prefix,
    ))
    .await;
}

/// `put` then `get` returns the value; `forget` removes it; `pull` reads and removes.
pub async fn values_round_trip(cache: &Cache, prefix: &str) {
    let key = format!("{prefix}:round-trip");
    let value = (String::from("text"), 42u64, vec![1.5f64, -2.0], Some(true));
    cache.put(&key, &value, None).await.unwrap();
    assert_eq!(cache.get(&key).await, Some(value.clone()), "round trip");
    assert!(cache.has(&key).await, "has");
    assert!(cache.forget(&key).await.unwrap(), "forget");
    assert!(!cache.forget(&key).await.unwrap(), "forget twice");
    assert_eq!(
        cache
            .get::<(String, u64, Vec<f64>, Option<bool>)>(&key)
            .await,
        None
    );
    cache.put(&key, "pulled", None).await.unwrap();
    assert_eq!(
        cache.pull::<String>(&key).await.unwrap().as_deref(),
        Some("pulled")
    );
    assert!(!cache.has(&key).await, "pull removes");
    cache.put(&key, &1, Some(Duration::ZERO)).await.unwrap();
    assert!(!cache.has(&key).await, "a zero TTL stores nothing");
}

/// An entry is there until its TTL and gone after it (waited for with a deadline, never a
/// fixed sleep); `forever` keeps it.
pub async fn entries_expire(cache: &Cache, prefix: &str) {
    let (short, kept) = (format!("{prefix}:ttl"), format!("{prefix}:forever"));
    cache.forever(&kept, &2).await.unwrap();
    // The read must come before the TTL for "present" to mean anything: on a machine too slow
    // for that, try again with twice the TTL (never skip the check).
    let mut ttl = Duration::from_millis(300);
    let stored = loop {
        let stored = Instant::now();
        cache.put(&short, &1, Some(ttl)).await.unwrap();
        let present = cache.get::<i32>(&short).await;
        if stored.elapsed() < ttl {
            assert_eq!(present, Some(1), "present before its TTL");
            break stored;
        }
        assert!(ttl < Duration::from_secs(10), "no read within a 10 s TTL");
        ttl *= 2;
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while cache.has(&short).await {
        assert!(
            Instant::now() < deadline,
            "an entry outlived its TTL by 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stored.elapsed() >= ttl, "expired before its TTL");
    assert_eq!(cache.get::<i32>(&kept).await, Some(2), "forever is kept");
    cache.forget(&kept).await.unwrap();
}

/// `touch` gives an entry a new TTL and keeps its value; an absent key is not created.
pub async fn touch_gives_a_new_ttl(cache: &Cache, prefix: &str) {
    let key = format!("{prefix}:touch");
    cache.forget(&key).await.unwrap();
    let minute = Some(Duration::from_secs(60));
    assert!(!cache.touch(&key, minute).await.unwrap(), "absent");
    assert!(!cache.has(&key).await, "touch creates nothing");
    let first = Duration::from_millis(300);
    let stored = Instant::now();
    cache.put(&key, "kept", Some(first)).await.unwrap();
    assert!(cache.touch(&key, minute).await.unwrap(), "present");
    tokio::time::sleep_until((stored + first * 2).into()).await;
    assert_eq!(
        cache.get::<String>(&key).await.as_deref(),
        Some("kept"),
        "touched: alive past its first TTL"
    );
    assert!(
        cache
            .touch(&key, Some(Duration::from_millis(100)))
            .await
            .unwrap()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while cache.has(&key).await {
        assert!(
            Instant::now() < deadline,
            "a touched entry outlived its new TTL by 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Of 50 concurrent `add`s of one key, exactly one stores; the value is the winner's.
pub async fn add_is_atomic(cache: &Cache, prefix: &str) {
    let key = format!("{prefix}:add");
    cache.forget(&key).await.unwrap();
    let adds = (0..50).map(|i| {
        let (cache, key) = (cache.clone(), key.clone());
        tokio::spawn(async move { (i, cache.add(&key, &i, None).await.unwrap()) })
    });
    let results = futures_util::future::join_all(adds).await;
    let winners: Vec<i32> = results
        .into_iter()
        .map(Result::unwrap)
        .filter_map(|(i, won)| won.then_some(i))
        .collect();
    assert_eq!(winners.len(), 1, "exactly one add stores: {winners:?}");
    assert_eq!(cache.get::<i32>(&key).await, Some(winners[0]));
    cache.forget(&key).await.unwrap();
}

/// 100 concurrent increments of one key end at 100, each seeing a different value.
pub async fn increment_is_atomic(cache: &Cache, prefix: &str) {
    let key = format!("{prefix}:counter");
    cache.forget(&key).await.unwrap();
    let increments = (0..100).map(|_| {
        let (cache, key) = (cache.clone(), key.clone());
        tokio::spawn(async move { cache.increment(&key, 1).await.unwrap() })
    });
    let mut seen: Vec<i64> = futures_util::future::join_all(increments)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=100).collect::<Vec<i64>>(),
        "every increment saw its own value"
    );
    assert_eq!(cache.decrement(&key, 30).await.unwrap(), 70);
    assert_eq!(cache.get::<i64>(&key).await, Some(70));
    cache.forget(&key).await.unwrap();
}

/// `increment` keeps an entry's TTL, counts on a value `put` as an integer, and refuses text.
pub async fn increment_keeps_the_ttl_and_refuses_text(cache: &Cache, prefix: &str) {
    let key = format!("{prefix}:counter-ttl");
    cache
        .put(&key, &5, Some(Duration::from_millis(300)))
        .await
        .unwrap();
    assert_eq!(
        cache.increment(&key, 2).await.unwrap(),
        7,
        "counts on a put integer"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while cache.has(&key).await {
        assert!(Instant::now() < deadline, "increment dropped the TTL");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = format!("{prefix}:text");
    cache.put(&text, "seven", None).await.unwrap();
    match cache.increment(&text, 1).await {
        Err(CacheError::NotAnInteger { .. }) => {}
        other => panic!("increment of text: {other:?}"),
    }
    assert_eq!(
        cache.get::<String>(&text).await.as_deref(),
        Some("seven"),
        "text unchanged"
    );
    cache.forget(&text).await.unwrap();
}

/// `put_many` then `many` returns the values in order, `None` for a missing key.
pub async fn many_reads_and_writes_in_order(cache: &Cache, prefix: &str) {
    let keys: Vec<String> = (0..20).map(|i| format!("{prefix}:many:{i}")).collect();
    let entries: Vec<(&str, String)> = keys
        .iter()
        .map(|k| (k.as_str(), k.to_uppercase()))
        .collect();
    cache
        .put_many(&entries, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let mut asked: Vec<&str> = keys.iter().map(String::as_str).collect();
    let missing = format!("{prefix}:many:missing");
    asked.insert(3, &missing);
    let values: Vec<Option<String>> = cache.many(&asked).await;
    for (key, value) in asked.iter().zip(&values) {
        let expected = (*key != missing).then(|| key.to_uppercase());
        assert_eq!(value, &expected, "many: {key}");
    }
    for key in &keys {
        cache.forget(key).await.unwrap();
    }
}

/// A value read as another type (an older deploy's entry) is a miss, not an error.
pub async fn another_type_is_a_miss(cache: &Cache, prefix: &str) {
    let key = format!("{prefix}:typed");
    cache.put(&key, "text", None).await.unwrap();
    assert_eq!(cache.get::<u32>(&key).await, None);
    let loaded: u32 = cache
        .remember(&key, None, || async { Ok::<_, std::io::Error>(7) })
        .await
        .unwrap();
    assert_eq!(loaded, 7, "remember replaces it");
    assert_eq!(cache.get::<u32>(&key).await, Some(7));
    cache.forget(&key).await.unwrap();
}

/// Flushing one tag invalidates the entries stored under it (alone or with others), and
/// leaves entries without it; the order of tags does not matter.
pub async fn flushing_a_tag_leaves_the_others(cache: &Cache, prefix: &str) {
    let (a, b, c) = (
        format!("{prefix}:a"),
        format!("{prefix}:b"),
        format!("{prefix}:c"),
    );
    let ttl = Some(Duration::from_secs(60));
    cache.tags(&[&a, &b]).put("both", &1, ttl).await.unwrap();
    cache.tags(&[&a]).put("only-a", &2, ttl).await.unwrap();
    cache.tags(&[&c]).put("only-c", &3, ttl).await.unwrap();
    assert_eq!(
        cache.tags(&[&b, &a]).get::<i32>("both").await,
        Some(1),
        "order does not matter"
    );
    assert_eq!(
        cache.tags(&[&c]).get::<i32>("both").await,
        None,
        "another tag set"
    );
    cache.tags(&[&b]).flush().await.unwrap();
    assert_eq!(
        cache.tags(&[&a, &b]).get::<i32>("both").await,
        None,
        "flushed with b"
    );
    assert_eq!(
        cache.tags(&[&a]).get::<i32>("only-a").await,
        Some(2),
        "a is untouched"
    );
    assert_eq!(
        cache.tags(&[&c]).get::<i32>("only-c").await,
        Some(3),
        "c is untouched"
    );
    cache.tags(&[&a, &c]).flush().await.unwrap();
    assert_eq!(cache.tags(&[&a]).get::<i32>("only-a").await, None);
    assert_eq!(cache.tags(&[&c]).get::<i32>("only-c").await, None);
    cache.tags(&[&a]).put("again", &4, ttl).await.unwrap();
    assert_eq!(
        cache.tags(&[&a]).get::<i32>("again").await,
        Some(4),
        "usable after a flush"
    );
    let remembered: i32 = cache
        .tags(&[&a])
        .remember("again", ttl, || async { Ok::<_, std::io::Error>(5) })
        .await
        .unwrap();
    assert_eq!(remembered, 4, "remember in a tag set reads it");
}

/// `flush` empties the cache at once — plain, counters, tagged, tag versions — keeps its
/// locks, and leaves another prefix alone, even one that the flushed prefix would match as a
/// glob; the old keys are then removed from the store in the background, and what was written
/// after the flush stays.
pub async fn flush_empties_this_prefix_only(cache: &Cache, prefix: &str) {
    let flushed = cache.clone().with_prefix(format!("{prefix}-fl?sh*"));
    let neighbour = cache.clone().with_prefix(format!("{prefix}-flash"));
    let ttl = Some(Duration::from_secs(60));
    flushed.put("plain", &1, ttl).await.unwrap();
    flushed.forever("forever", &2).await.unwrap();
    flushed.increment("counter", 3).await.unwrap();
    flushed.tags(&["t"]).put("tagged", &4, ttl).await.unwrap();
    let lock = flushed.lock("held", Duration::from_secs(30));
    let guard = lock.try_acquire().await.unwrap().expect("a free lock");
    neighbour.put("plain", &5, ttl).await.unwrap();

    flushed.flush().await.unwrap();
    assert_eq!(flushed.get::<i32>("plain").await, None, "plain");
    assert_eq!(flushed.get::<i32>("forever").await, None, "forever");
    assert_eq!(flushed.increment("counter", 1).await.unwrap(), 1, "counter");
    assert_eq!(flushed.tags(&["t"]).get::<i32>("tagged").await, None);
    assert!(
        lock.try_acquire().await.unwrap().is_none(),
        "the lock is kept"
    );
    assert_eq!(
        neighbour.get::<i32>("plain").await,
        Some(5),
        "another prefix"
    );
    flushed.put("after", &6, ttl).await.unwrap();

    // The old keys leave the store; the lock, the neighbour and the new entries stay.
    let old = ["plain", "forever", "counter"].map(|key| format!("{prefix}-fl?sh*:{key}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = cache.store().get_many(&old).await.unwrap();
        if left.iter().all(Option::is_none) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old entries were not removed within 10 s: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(flushed.get::<i32>("after").await, Some(6), "written after");
    assert_eq!(
        flushed.get::<i32>("counter").await,
        Some(1),
        "counted after"
    );
    assert_eq!(
        neighbour.get::<i32>("plain").await,
        Some(5),
        "the neighbour"
    );
    assert!(guard.release().await.unwrap(), "its owner still holds it");
    flushed.flush().await.unwrap();
    neighbour.forget("plain").await.unwrap();
}

/// Another cache on the same store and prefix (another server) sees a flush when it reads the
/// flush generation again: not before its flush check (it does not read it with every
/// operation), and within it after.
pub async fn a_flush_reaches_the_other_caches_within_their_check(cache: &Cache, prefix: &str) {
    let name = format!("{prefix}-generations");
    let here = Cache::from_store(cache.store().clone()).with_prefix(&name);
    let seldom = Cache::from_store(cache.store().clone())
        .with_prefix(&name)
        .with_flush_check(Duration::from_secs(3600));
    let often = Cache::from_store(cache.store().clone())
        .with_prefix(&name)
        .with_flush_check(Duration::from_millis(50));
    here.put("k", &1, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(
        seldom.get::<i32>("k").await,
        Some(1),
        "seen before the flush"
    );
    assert_eq!(
        often.get::<i32>("k").await,
        Some(1),
        "seen before the flush"
    );

    here.flush().await.unwrap();
    assert_eq!(
        here.get::<i32>("k").await,
        None,
        "at once where it was made"
    );
    // A value of the new generation: seen by the other cache once it reads the generation (the
    // old entry's removal alone would only make it miss).
    here.put("k", &2, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while often.get::<i32>("k").await != Some(2) {
        assert!(
            Instant::now() < deadline,
            "a flush was not seen within 10 s by a cache checking every 50 ms"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    often
        .put("k", &3, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(here.get::<i32>("k").await, Some(3), "the same generation");
    // The hour-long check has not read the generation again: its reads cost no extra key.
    // (The entry it reads may already be removed by the flush's background task: a miss.)
    assert_eq!(
        seldom.get::<i32>("k").await.filter(|k| *k != 1),
        None,
        "not read again yet"
    );
    here.flush().await.unwrap();
}

/// `concurrency` tasks missing one key at once run the loader once and all get its value.
pub async fn remember_loads_once(cache: &Cache, prefix: &str, concurrency: usize) {
    let key = format!("{prefix}:remember");
    cache.forget(&key).await.unwrap();
    let loads = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(tokio::sync::Barrier::new(concurrency));
    let tasks = (0..concurrency).map(|_| {
        let (cache, key, loads, start) = (cache.clone(), key.clone(), loads.clone(), start.clone());
        tokio::spawn(async move {
            start.wait().await;
            cache
                .remember(&key, Some(Duration::from_secs(60)), || async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    // Any timing works: a miss after this load stored its value finds it
                    // (the leader reads the cache again before loading).
                    tokio::task::yield_now().await;
                    Ok::<_, std::io::Error>(String::from("loaded"))
                })
                .await
                .unwrap()
        })
    });
    for value in futures_util::future::join_all(tasks).await {
        assert_eq!(value.unwrap(), "loaded");
    }
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "the loader ran once for {concurrency} misses"
    );
    cache.forget(&key).await.unwrap();
}

/// A failing loader's error is returned and nothing is cached: the next call loads again.
pub async fn remember_does_not_cache_errors(cache: &Cache, prefix: &str) {
    let key = format!("{prefix}:remember-error");
    cache.forget(&key).await.unwrap();
    let failed = cache
        .remember::<u32, _, _, _>(&key, None, || async {
            Err(std::io::Error::other("database down"))
        })
        .await;
    match failed {
        Err(CacheError::Loader { source, .. }) => {
            assert!(
                source.downcast_ref::<std::io::Error>().is_some(),
                "the loader's own error"
            );
        }
        other => panic!("a failed loader: {other:?}"),
    }
    assert!(!cache.has(&key).await, "nothing cached");
    let loaded: u32 = cache
        .remember(&key, None, || async { Ok::<_, std::io::Error>(1) })
        .await
        .unwrap();
    assert_eq!(loaded, 1);
    cache.forget(&key).await.unwrap();
}

/// One holder at a time; only the owner's token releases; `block` waits for a release and
/// times out when none comes; the lease frees itself after its TTL.
pub async fn locks_are_exclusive_and_released_by_their_owner(cache: &Cache, prefix: &str) {
    let name = format!("{prefix}:lock");
    let lock = cache.lock(&name, Duration::from_secs(30));
    lock.force_release().await.unwrap();
    let guard = lock.try_acquire().await.unwrap().expect("a free lock");
    assert!(lock.try_acquire().await.unwrap().is_none(), "held");
    let stranger = cache.restore_lock(&name, "not-the-owner", Duration::from_secs(30));
    assert!(
        !stranger.restored().unwrap().release().await.unwrap(),
        "a stranger cannot release"
    );
    assert!(lock.try_acquire().await.unwrap().is_none(), "still held");
    match lock.block(Duration::from_millis(100)).await {
        Err(CacheError::LockTimeout { .. }) => {}
        other => panic!("block on a held lock: {other:?}"),
    }
    let owner = guard.owner().to_owned();
    guard.keep();
    let restored = cache.restore_lock(&name, &owner, Duration::from_secs(30));
    let waiter = {
        let lock = lock.clone();
        tokio::spawn(async move { lock.block(Duration::from_secs(10)).await })
    };
    assert!(
        restored.restored().unwrap().release().await.unwrap(),
        "the owner releases"
    );
    let second = waiter.await.unwrap().expect("block gets the released lock");
    assert!(second.release().await.unwrap());

    let lease = cache.lock(&format!("{name}:lease"), Duration::from_millis(200));
    let held = lease.try_acquire().await.unwrap().expect("free");
    held.keep();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(again) = lease.try_acquire().await.unwrap() {
            again.release().await.unwrap();
            break;
        }
        assert!(Instant::now() < deadline, "the lease never ran out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
