//! The outbox: this server's events for the other servers, and what keeps them from being lost
//! across a short Redis outage or failover.
//!
//! - **Held, then published in order.** Events Redis cannot take (the publish failed, the
//!   shared handle's breaker is open) stay in a queue bounded by count, bytes and age
//!   ([`HoldLimits`]); the publisher tries again with a backoff and publishes them, oldest
//!   first, once Redis answers. Past a bound the oldest are dropped and counted as lost.
//! - **A recovery log for the late subscriber.** A held event published when Redis is back
//!   reaches only the servers already subscribed again; one whose subscriber reconnects a moment
//!   later would miss it on pub/sub alone. So from the first sign of trouble (a failed publish,
//!   a lost subscriber connection) and for [`RECOVERY_WINDOW`] after the last one, every event
//!   is also appended to a short list per topic in Redis (same hash slot as the topic, written
//!   in the same pipeline, bounded and expiring). A server whose subscriber (re)connects
//!   subscribes first, then reads those lists, then takes live messages: receivers drop what
//!   they already had by the sequence number each event carries, so every event arrives once,
//!   in order, whichever server reconnected first. Outside the window nothing extra is written.

use std::collections::VecDeque;
use std::sync::Weak;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::cluster::{ClusterStats, RedisBackend};
use super::fleet_history::FleetHistory;
use crate::redis::{RedisError, RedisHandle};

/// Frames waiting for the publisher (it takes them at once and holds them itself while Redis is
/// away); more are counted as lost.
pub(super) const PUBLISH_QUEUE: usize = 10_000;
/// How long a cache channel keeps its last event.
const CACHE_TTL_SECS: &str = "1800";
/// Events published in one round trip at most.
const MAX_BATCH: usize = 512;
/// How long after the last sign of trouble events are also written to the recovery log. Covers
/// the slowest subscriber reconnection: a silent connection is found within 6 s, and a failed
/// reconnection is retried within 2 s.
pub(super) const RECOVERY_WINDOW: Duration = Duration::from_secs(15);
/// Entries kept per topic in the recovery log, and how long the log lives after its last write.
pub(super) const LOG_LEN: i64 = 1000;
pub(super) const LOG_TTL_SECS: u64 = 60;
/// The publisher's wait before trying a failed batch again: doubled per failure up to the max.
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_millis(500);
/// Recovery-log reads in one round trip at most.
const READ_BATCH: usize = 256;

/// An event (or control message) for the other servers.
pub(super) struct Outgoing {
    pub(super) topic: String,
    pub(super) payload: String,
    /// A cache channel's last event: (key, frame).
    pub(super) cache: Option<(String, String)>,
    /// Whether it goes to the recovery log in the window (events, not control messages: a
    /// replayed "terminate" would close a user's new connections).
    pub(super) log: bool,
    /// An event of a recoverable channel: kept in the fleet's history and published with its
    /// position ([`FleetHistory`]).
    pub(super) history: bool,
    pub(super) queued: Instant,
}

/// The bounds of what the publisher holds while Redis cannot take it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HoldLimits {
    pub(crate) events: usize,
    pub(crate) bytes: usize,
    pub(crate) age: Duration,
}

/// When the recovery window ends: milliseconds since `start`, 0 when it never opened.
#[derive(Debug)]
pub(super) struct RecoveryWindow {
    start: Instant,
    until: AtomicU64,
}

impl RecoveryWindow {
    pub(super) fn new() -> Self {
        Self {
            start: Instant::now(),
            until: AtomicU64::new(0),
        }
    }

    /// Something went wrong with Redis: log events from now until the window after it.
    pub(super) fn open(&self) {
        let until = (self.start.elapsed() + RECOVERY_WINDOW).as_millis() as u64;
        self.until.fetch_max(until, Ordering::Relaxed);
    }

    pub(super) fn is_open(&self) -> bool {
        (self.start.elapsed().as_millis() as u64) < self.until.load(Ordering::Relaxed)
    }
}

/// The recovery log of a topic: the topic itself is the hash tag, so the log lives in the
/// topic's slot (a Cluster's sharded publish and the log write share a pipeline).
pub(super) fn log_key(topic: &str) -> String {
    format!("{{{topic}}}:log")
}

/// The held events, oldest first, and their bytes.
#[derive(Default)]
struct Held {
    queue: VecDeque<Outgoing>,
    bytes: usize,
}

impl Held {
    /// Adds an event, dropping the oldest past the count and byte bounds.
    fn push(&mut self, event: Outgoing, limits: &HoldLimits, stats: &ClusterStats) {
        self.bytes += event.payload.len();
        self.queue.push_back(event);
        while self.queue.len() > limits.events || self.bytes > limits.bytes {
            self.drop_oldest(stats);
        }
    }

    /// Drops the events held longer than the age bound.
    fn expire(&mut self, limits: &HoldLimits, stats: &ClusterStats) {
        while self
            .queue
            .front()
            .is_some_and(|e| e.queued.elapsed() > limits.age)
        {
            self.drop_oldest(stats);
        }
    }

    fn drop_oldest(&mut self, stats: &ClusterStats) {
        if let Some(event) = self.queue.pop_front() {
            self.bytes -= event.payload.len();
            stats.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Removes the `n` oldest, published.
    fn published(&mut self, n: usize) {
        for event in self.queue.drain(..n) {
            self.bytes -= event.payload.len();
        }
    }
}

/// Publishes queued events, pipelined: whatever queued up while the previous batch was in
/// flight goes out as the next batch, in one round trip, so one server can send about
/// `MAX_BATCH / RTT` events a second instead of `1 / RTT`. A batch Redis does not take is held
/// and tried again (see the [module docs](self)); each channel's events keep their order.
pub(super) async fn publisher(
    backend: Weak<RedisBackend>,
    mut outgoing: mpsc::Receiver<Outgoing>,
    limits: HoldLimits,
) {
    let mut held = Held::default();
    let mut incoming = Vec::with_capacity(MAX_BATCH);
    // While failing: when to try again, and the next wait.
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut backoff = RETRY_MIN;
    let mut script_loaded = false;
    loop {
        let open = match retry_at {
            None if held.queue.is_empty() => outgoing.recv_many(&mut incoming, MAX_BATCH).await > 0,
            // Held events are left after a batch: publish them, with whatever else is queued.
            None => {
                while incoming.len() < MAX_BATCH {
                    match outgoing.try_recv() {
                        Ok(event) => incoming.push(event),
                        Err(_) => break,
                    }
                }
                true
            }
            Some(at) => tokio::select! {
                n = outgoing.recv_many(&mut incoming, MAX_BATCH) => n > 0,
                () = tokio::time::sleep_until(at) => true,
            },
        };
        if !open {
            return;
        }
        let Some(backend) = backend.upgrade() else {
            return;
        };
        for event in incoming.drain(..) {
            held.push(event, &limits, &backend.stats);
        }
        held.expire(&limits, &backend.stats);
        if held.queue.is_empty() || retry_at.is_some_and(|at| tokio::time::Instant::now() < at) {
            continue;
        }
        let n = held.queue.len().min(MAX_BATCH);
        let log = backend.recovery.is_open();
        let batch = &held.queue.make_contiguous()[..n];
        let history = backend.history();
        // The history script runs with EVALSHA in the pipelines: it is loaded before its first
        // use, and again after any failure (see below).
        let needs_script = batch.iter().any(|e| e.history);
        let loading = match history.filter(|_| needs_script && !script_loaded) {
            Some(history) => {
                let loaded = history.load(backend.redis()).await;
                script_loaded = loaded.is_ok();
                loaded
            }
            None => Ok(()),
        };
        let result = match loading {
            Err(err) => Err(err),
            Ok(()) if backend.redis().is_cluster() => {
                publish_sharded(backend.redis(), history, batch, log).await
            }
            Ok(()) => publish_pipelined(backend.redis(), history, batch, log).await,
        };
        match result {
            Ok(()) => {
                held.published(n);
                backend
                    .stats
                    .published
                    .fetch_add(n as u64, Ordering::Relaxed);
                if retry_at.take().is_some() {
                    tracing::info!(
                        held = held.queue.len(),
                        "broadcast: publishing to Redis again; sending the held events in order"
                    );
                }
                backoff = RETRY_MIN;
            }
            Err(err) => {
                backend.recovery.open();
                // Redis may have restarted or failed over and forgotten the script. Loading it
                // before the retry, not after a NOSCRIPT: in a pipeline that failed on NOSCRIPT,
                // a later plain publish of the same channel would have gone through, and the
                // receivers would take the retried, older events for duplicates.
                script_loaded = false;
                if retry_at.is_none() {
                    tracing::warn!(
                        error = %err,
                        "broadcast: cannot publish to Redis; holding events for the other servers until it is back"
                    );
                }
                retry_at = Some(tokio::time::Instant::now() + backoff);
                backoff = (backoff * 2).min(RETRY_MAX);
            }
        }
        backend
            .stats
            .held
            .store(held.queue.len() as u64, Ordering::Relaxed);
    }
}

/// Adds `events` to `pipeline` in order: on a single node a cache channel's event stored first
/// (whoever has received it and subscribes again finds it; a Cluster's are written apart), then,
/// when `log`, the event appended to its topic's recovery log, then published (`SPUBLISH` when
/// `sharded`); a recoverable channel's event through the history script, which does both. Each event is logged
/// right before it is published, so every log is in the order its receivers' sequence numbers
/// expect; one trim and expiry per topic logged ends the pipeline.
fn publish_commands<'a>(
    pipeline: &mut redis::Pipeline,
    history: Option<&FleetHistory>,
    events: impl Iterator<Item = &'a Outgoing>,
    log: bool,
    sharded: bool,
) {
    let mut logged: Vec<&str> = Vec::new();
    for event in events {
        if let (false, Some((key, text))) = (sharded, &event.cache) {
            pipeline
                .cmd("SET")
                .arg(key)
                .arg(text)
                .arg("EX")
                .arg(CACHE_TTL_SECS)
                .ignore();
        }
        if let Some(history) = history.filter(|_| event.history) {
            history.publish(pipeline, event, log, sharded);
            continue;
        }
        if log && event.log {
            let key = log_key(&event.topic);
            pipeline.cmd("RPUSH").arg(&key).arg(&event.payload).ignore();
            if !logged.contains(&event.topic.as_str()) {
                logged.push(&event.topic);
            }
        }
        pipeline
            .cmd(if sharded { "SPUBLISH" } else { "PUBLISH" })
            .arg(&event.topic)
            .arg(&event.payload)
            .ignore();
    }
    for topic in logged {
        let key = log_key(topic);
        pipeline
            .cmd("LTRIM")
            .arg(&key)
            .arg(-LOG_LEN)
            .arg(-1)
            .ignore();
        pipeline.cmd("EXPIRE").arg(&key).arg(LOG_TTL_SECS).ignore();
    }
}

/// A single node: the whole batch as one pipeline, in queue order.
async fn publish_pipelined(
    redis: &RedisHandle,
    history: Option<&FleetHistory>,
    batch: &[Outgoing],
    log: bool,
) -> Result<(), RedisError> {
    let mut pipeline = redis::pipe();
    publish_commands(&mut pipeline, history, batch.iter(), log, false);
    redis.query_pipeline::<()>(&pipeline).await
}

/// A cluster: a pipeline must stay on one node, so the batch goes out as one pipeline per
/// channel (sharded pub/sub: the topic's slot picks the node; its recovery log shares it), all
/// at once; the cache writes go first, the last one per channel only.
async fn publish_sharded(
    redis: &RedisHandle,
    history: Option<&FleetHistory>,
    batch: &[Outgoing],
    log: bool,
) -> Result<(), RedisError> {
    let mut caches: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    let mut topics: Vec<&str> = Vec::new();
    for message in batch {
        if let Some((key, text)) = &message.cache {
            caches.insert(key, text);
        }
        if !topics.contains(&message.topic.as_str()) {
            topics.push(&message.topic);
        }
    }
    let pipelines: Vec<redis::Pipeline> = topics
        .iter()
        .map(|topic| {
            let mut pipeline = redis::pipe();
            let events = batch.iter().filter(|m| m.topic == *topic);
            publish_commands(&mut pipeline, history, events, log, true);
            pipeline
        })
        .collect();
    let sets = caches.into_iter().map(|(key, text)| async move {
        let mut set = redis::cmd("SET");
        set.arg(key).arg(text).arg("EX").arg(CACHE_TTL_SECS);
        redis.query::<()>(&set).await
    });
    for result in futures_util::future::join_all(sets).await {
        result?;
    }
    let publishes = pipelines
        .iter()
        .map(|pipeline| redis.query_pipeline::<()>(pipeline));
    for result in futures_util::future::join_all(publishes).await {
        result?;
    }
    Ok(())
}

/// The recovery logs of `topics`, each oldest first (empty for a topic without one). On a
/// single node in pipelines of [`READ_BATCH`]; on a Cluster one read per topic (each in its
/// own slot), [`READ_BATCH`] at a time.
pub(super) async fn read_logs(
    redis: &RedisHandle,
    topics: &[String],
) -> Result<Vec<Vec<String>>, RedisError> {
    let mut logs = Vec::with_capacity(topics.len());
    for chunk in topics.chunks(READ_BATCH) {
        if redis.is_cluster() {
            let reads = chunk.iter().map(|topic| async move {
                let mut read = redis::cmd("LRANGE");
                read.arg(log_key(topic)).arg(0).arg(-1);
                redis.query::<Vec<String>>(&read).await
            });
            for log in futures_util::future::join_all(reads).await {
                logs.push(log?);
            }
        } else {
            let mut pipeline = redis::pipe();
            for topic in chunk {
                pipeline.cmd("LRANGE").arg(log_key(topic)).arg(0).arg(-1);
            }
            logs.extend(redis.query_pipeline::<Vec<Vec<String>>>(&pipeline).await?);
        }
    }
    Ok(logs)
}
