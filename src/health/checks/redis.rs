//! Redis: PING latency, memory use against `maxmemory`, and `cluster_state` on a cluster.

use std::time::Instant;

use crate::health::{BoxFuture, CheckResult, ComponentType, HealthCheck};
use crate::redis::RedisHandle;

/// Checks the shared Redis handle: `PING` (observed: round trip in ms); on a single node
/// `INFO memory`, degraded when `used_memory` exceeds `memory_warn_percent` of `maxmemory`; on a
/// cluster `CLUSTER INFO`, unhealthy unless `cluster_state:ok`. Registered automatically when
/// Redis is configured.
///
/// By default it is neither critical nor part of readiness: every server shares the same Redis,
/// so one outage would fail them all at once, while the modules degrade instead (the rate
/// limiter falls back, the broadcaster serves its own clients). [`required`](Self::required)
/// makes it both, for a server that cannot serve without Redis.
#[derive(Clone, Debug)]
pub struct RedisCheck {
    redis: RedisHandle,
    memory_warn_percent: f64,
    required: bool,
}

impl RedisCheck {
    /// A check of `redis`, degraded above 90% of `maxmemory`.
    pub fn new(redis: RedisHandle) -> Self {
        Self {
            redis,
            memory_warn_percent: 90.0,
            required: false,
        }
    }

    /// `true`: a failing Redis fails `/health` and readiness (this server leaves the load
    /// balancer); `false` (the default): it is reported, as a non-critical check.
    pub fn required(mut self, required: bool) -> Self {
        self.required = required;
        self
    }

    /// Sets the memory threshold (percent of `maxmemory`).
    pub fn memory_warn_percent(mut self, percent: f64) -> Self {
        self.memory_warn_percent = percent;
        self
    }

    async fn run(&self) -> CheckResult {
        let start = Instant::now();
        if let Err(err) = self.redis.ping().await {
            return CheckResult::unhealthy(err.to_string());
        }
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        let result = if self.redis.is_cluster() {
            match self
                .redis
                .query::<String>(redis::cmd("CLUSTER").arg("INFO"))
                .await
            {
                Ok(info) if info_field(&info, "cluster_state") == Some("ok") => {
                    CheckResult::healthy()
                }
                Ok(info) => CheckResult::unhealthy(format!(
                    "cluster_state:{}",
                    info_field(&info, "cluster_state").unwrap_or("unknown")
                )),
                Err(err) => CheckResult::unhealthy(err.to_string()),
            }
        } else {
            match self
                .redis
                .query::<String>(redis::cmd("INFO").arg("memory"))
                .await
            {
                Ok(info) => self.memory(&info),
                Err(err) => CheckResult::unhealthy(err.to_string()),
            }
        };
        result.observed((ms * 1000.0).round() / 1000.0, "ms")
    }

    fn memory(&self, info: &str) -> CheckResult {
        let number = |name| info_field(info, name).and_then(|v| v.parse::<f64>().ok());
        match (number("used_memory"), number("maxmemory")) {
            (Some(used), Some(max)) if max > 0.0 => {
                let percent = used / max * 100.0;
                let output = format!("used_memory {used} of maxmemory {max} ({percent:.1}%)");
                if percent > self.memory_warn_percent {
                    CheckResult::degraded(format!("{output}, above {}%", self.memory_warn_percent))
                } else {
                    CheckResult::healthy().output(output)
                }
            }
            _ => CheckResult::healthy(),
        }
    }
}

/// The value of `name:` in an `INFO`-style reply.
fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

impl HealthCheck for RedisCheck {
    fn name(&self) -> &str {
        "redis"
    }
    fn measurement(&self) -> &str {
        "responseTime"
    }
    fn component_type(&self) -> ComponentType {
        ComponentType::Datastore
    }
    fn critical(&self) -> bool {
        self.required
    }
    fn readiness(&self) -> bool {
        self.required
    }
    fn check(&self) -> BoxFuture<'_, CheckResult> {
        Box::pin(self.run())
    }
}
