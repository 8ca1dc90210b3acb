//! Redis Sentinel: `redis+sentinel://[user:password@]host:port,host:port,…/service_name[/db]`
//! (`rediss+sentinel://` for TLS to the sentinels and the primary).
//!
//! Every new connection — a pooled one, or the broadcaster's pub/sub connection — asks the
//! sentinels for the current primary of `service_name` (redis-rs checks that the node it names
//! answers `ROLE` as a master), so after a failover the pool's replacement connections and the
//! subscriber's reconnection reach the promoted replica. Connections to the old primary fail
//! (refused, reset, or `READONLY` once it comes back as a replica) and are replaced; the handle
//! treats a `READONLY` reply as a broken connection for that reason.
//!
//! The user and password in the URL are the primary's. Sentinels are often run without
//! authentication, or with their own: [`RedisConfig::sentinel_username`] and
//! [`RedisConfig::sentinel_password`] (`RUSTFORGE_REDIS_SENTINEL_USERNAME`,
//! `RUSTFORGE_REDIS_SENTINEL_PASSWORD`) set theirs.

use std::sync::Arc;

use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{ConnectionAddr, IntoConnectionInfo, TlsCertificates, TlsMode};

use super::{RedisConfig, tcp_settings};
use crate::error::ConfigError;

/// The two URL schemes, plain and TLS.
pub(super) const SCHEMES: [&str; 2] = ["redis+sentinel://", "rediss+sentinel://"];

/// A sentinel-discovered primary. The client caches its sentinel connections, so it is shared
/// behind a lock: each new connection asks through it in turn.
#[derive(Clone)]
pub(super) struct Sentinel {
    client: Arc<tokio::sync::Mutex<SentinelClient>>,
}

impl Sentinel {
    /// Parses `rest` (the URL after its scheme) into a client, without connecting.
    pub(super) fn parse(
        config: &RedisConfig,
        tls: bool,
        rest: &str,
        certificates: Option<TlsCertificates>,
    ) -> Result<Self, ConfigError> {
        let bad = |reason: &str| {
            ConfigError::new(
                "redis.url",
                crate::util::redact_url(&config.url),
                format!(
                    "{reason}: expected redis+sentinel://[user:password@]host:port,host:port/service_name[/db]"
                ),
            )
        };
        let (userinfo, rest, insecure) = super::split_multi_host(rest);
        let (hosts, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("the service name is missing"))?;
        let (service, db) = match path.trim_end_matches('/').split_once('/') {
            Some((service, db)) => {
                let db = db
                    .parse::<i64>()
                    .map_err(|_| bad("the database after the service name must be a number"))?;
                (service, Some(db))
            }
            None => (path.trim_end_matches('/'), None),
        };
        if service.is_empty() {
            return Err(bad("the service name is missing"));
        }
        let mut sentinels = Vec::new();
        for host in hosts.split(',').map(str::trim) {
            let info = format!("redis://{host}")
                .into_connection_info()
                .ok()
                .filter(|_| !host.is_empty() && host.contains(':'))
                .ok_or_else(|| bad(&format!("`{host}` is not a host:port pair")))?;
            sentinels.push(match info.addr() {
                ConnectionAddr::Tcp(host, port) if tls => ConnectionAddr::TcpTls {
                    host: host.clone(),
                    port: *port,
                    insecure,
                    tls_params: None,
                },
                addr => addr.clone(),
            });
        }
        let mut builder =
            SentinelClientBuilder::new(sentinels, service, SentinelServerType::Master)
                .map_err(|e| bad(&e.to_string()))?
                .set_client_to_redis_tcp_settings(tcp_settings())
                .set_client_to_sentinel_tcp_settings(tcp_settings());
        if let Some(userinfo) = userinfo {
            // The primary's credentials, percent-decoded the way a redis:// URL's are.
            let info = format!("redis://{userinfo}@localhost")
                .into_connection_info()
                .map_err(|_| bad("the user and password are not valid in a URL"))?;
            let auth = info.redis_settings();
            if let Some(username) = auth.username() {
                builder = builder.set_client_to_redis_username(username);
            }
            if let Some(password) = auth.password() {
                builder = builder.set_client_to_redis_password(password);
            }
        }
        if let Some(db) = db {
            builder = builder.set_client_to_redis_db(db);
        }
        if let Some(username) = &config.sentinel_username {
            builder = builder.set_client_to_sentinel_username(username);
        }
        if let Some(password) = &config.sentinel_password {
            builder = builder.set_client_to_sentinel_password(password);
        }
        if tls {
            let mode = if insecure {
                TlsMode::Insecure
            } else {
                TlsMode::Secure
            };
            builder = builder
                .set_client_to_redis_tls_mode(mode)
                .set_client_to_sentinel_tls_mode(mode);
            if let Some(certificates) = certificates {
                builder = builder
                    .set_client_to_redis_certificates(certificates.clone())
                    .set_client_to_sentinel_certificates(certificates);
            }
        }
        let client = builder.build().map_err(|e| bad(&e.to_string()))?;
        Ok(Self {
            client: Arc::new(tokio::sync::Mutex::new(client)),
        })
    }

    /// A client for the current primary, as the sentinels name it now.
    pub(super) async fn primary(&self) -> redis::RedisResult<redis::Client> {
        self.client.lock().await.async_get_client().await
    }
}
