//! S3 and S3-compatible disks: object_store's `AmazonS3`, configured from [`S3Config`] on top
//! of the `AWS_*` environment variables.

use std::sync::Arc;

use object_store::RetryConfig;
use object_store::aws::{AmazonS3, AmazonS3Builder};

use super::config::S3Config;
use super::error::redact;
use crate::error::ConfigError;

/// Builds the client. object_store's retry policy applies (by default 10 retries with back-off,
/// at most 3 minutes, for transient errors and `SlowDown`), bounded by the config's retry
/// settings.
pub(crate) fn build(name: &str, config: &S3Config) -> Result<Arc<AmazonS3>, ConfigError> {
    let mut builder = AmazonS3Builder::from_env();
    if let Some(bucket) = &config.bucket {
        builder = builder.with_bucket_name(bucket);
    }
    if let Some(region) = &config.region {
        builder = builder.with_region(region);
    }
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(key_id) = &config.access_key_id {
        builder = builder.with_access_key_id(key_id);
    }
    if let Some(secret) = &config.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    if let Some(allow) = config.allow_http {
        builder = builder.with_allow_http(allow);
    }
    if let Some(virtual_hosted) = config.virtual_hosted_style {
        builder = builder.with_virtual_hosted_style_request(virtual_hosted);
    }
    if config.max_retries.is_some() || config.retry_timeout.is_some() {
        let mut retry = RetryConfig::default();
        if let Some(max) = config.max_retries {
            retry.max_retries = max;
        }
        if let Some(timeout) = config.retry_timeout {
            retry.retry_timeout = timeout;
        }
        builder = builder.with_retry(retry);
    }
    let client = builder.build().map_err(|e| {
        ConfigError::new(
            format!("storage.disks.{name}"),
            config.bucket.as_deref().unwrap_or("(AWS_BUCKET unset)"),
            redact(&e.to_string()),
        )
    })?;
    Ok(Arc::new(client))
}
