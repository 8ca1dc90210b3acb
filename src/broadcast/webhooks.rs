//! Webhooks (feature `webhooks`): `channel_occupied`, `channel_vacated`, `member_added`,
//! `member_removed`, `client_event` and `cache_miss`, POSTed to the app's webhook URL in batches
//! signed with `X-Pusher-Signature` (what the Pusher SDKs' `webhook(req).isValid()` checks).
//!
//! Events wait in a bounded queue and a background task sends them: a slow or dead receiver
//! never delays a socket. Failed deliveries are retried twice; what cannot be sent is counted.

#[cfg(feature = "webhooks")]
pub(crate) use sender::Webhooks;

#[cfg(feature = "webhooks")]
mod sender {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use serde_json::{Value, json};
    use tokio::sync::mpsc;

    use super::super::signature::sign;

    /// Events waiting to be sent; more are dropped (and counted).
    const QUEUE: usize = 10_000;
    /// Events per request at most.
    const BATCH: usize = 100;
    /// How long the first event of a batch waits for company.
    const LINGER: Duration = Duration::from_millis(50);

    /// Delivery counters, read by the metrics module.
    #[derive(Debug, Default)]
    pub(crate) struct WebhookStats {
        pub sent: AtomicU64,
        pub failed: AtomicU64,
        pub dropped: AtomicU64,
    }

    /// The webhook sender of one app.
    pub(crate) struct Webhooks {
        queue: mpsc::Sender<Value>,
        pub stats: Arc<WebhookStats>,
    }

    impl Webhooks {
        /// Starts the sender for `url`, signing with the app's key and secret.
        pub(crate) fn start(url: String, key: String, secret: String) -> Self {
            let (queue, events) = mpsc::channel(QUEUE);
            let stats = Arc::new(WebhookStats::default());
            tokio::spawn(send(events, url, key, secret, stats.clone()));
            Self { queue, stats }
        }

        /// Queues an event (never waits).
        pub(crate) fn emit(&self, event: Value) {
            if self.queue.try_send(event).is_err() {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    async fn send(
        mut events: mpsc::Receiver<Value>,
        url: String,
        key: String,
        secret: String,
        stats: Arc<WebhookStats>,
    ) {
        let client = match reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
        {
            Ok(client) => client,
            Err(err) => {
                tracing::error!(error = %err, "broadcast: cannot build the webhook client");
                return;
            }
        };
        while let Some(first) = events.recv().await {
            let mut batch = vec![first];
            let linger = tokio::time::sleep(LINGER);
            tokio::pin!(linger);
            while batch.len() < BATCH {
                tokio::select! {
                    () = &mut linger => break,
                    next = events.recv() => match next {
                        Some(event) => batch.push(event),
                        None => break,
                    },
                }
            }
            let time_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or_default();
            let count = batch.len() as u64;
            let body = json!({ "time_ms": time_ms, "events": batch }).to_string();
            let signature = sign(&secret, &[&body]);
            let mut delivered = false;
            for (attempt, pause) in [0u64, 200, 1000].into_iter().enumerate() {
                tokio::time::sleep(Duration::from_millis(pause)).await;
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-pusher-key", &key)
                    .header("x-pusher-signature", &signature)
                    .body(body.clone())
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status().is_success() => {
                        delivered = true;
                        break;
                    }
                    Ok(r) if r.status().is_client_error() => {
                        tracing::warn!(status = %r.status(), "broadcast: the webhook receiver refused a batch");
                        break;
                    }
                    Ok(r) => {
                        tracing::debug!(status = %r.status(), attempt, "broadcast: webhook failed")
                    }
                    Err(err) => tracing::debug!(error = %err, attempt, "broadcast: webhook failed"),
                }
            }
            let counter = if delivered {
                &stats.sent
            } else {
                &stats.failed
            };
            counter.fetch_add(count, Ordering::Relaxed);
        }
    }
}

/// The events, as the Pusher webhook format names them.
pub(crate) mod event {
    use serde_json::{Value, json};

    pub(crate) fn channel_occupied(channel: &str) -> Value {
        json!({ "name": "channel_occupied", "channel": channel })
    }

    pub(crate) fn channel_vacated(channel: &str) -> Value {
        json!({ "name": "channel_vacated", "channel": channel })
    }

    pub(crate) fn member_added(channel: &str, user: &str) -> Value {
        json!({ "name": "member_added", "channel": channel, "user_id": user })
    }

    pub(crate) fn member_removed(channel: &str, user: &str) -> Value {
        json!({ "name": "member_removed", "channel": channel, "user_id": user })
    }

    pub(crate) fn cache_miss(channel: &str) -> Value {
        json!({ "name": "cache_miss", "channel": channel })
    }

    pub(crate) fn client_event(
        channel: &str,
        event: &str,
        data: &str,
        socket_id: &str,
        user_id: Option<&str>,
    ) -> Value {
        let mut value = json!({
            "name": "client_event",
            "channel": channel,
            "event": event,
            "data": data,
            "socket_id": socket_id,
        });
        if let Some(user) = user_id {
            value["user_id"] = Value::String(user.to_owned());
        }
        value
    }
}
