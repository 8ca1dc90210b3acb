//! Response compression (gzip, brotli, zstd, deflate) on tower-http's `CompressionLayer`.

use std::sync::Arc;

use bytesize::ByteSize;
use http_body::Body as HttpBody;
use serde::{Deserialize, Serialize};
use tower_http::CompressionLevel;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{And, NotForContentType, Predicate, SizeAbove};

use crate::error::ConfigError;

/// Content types that are already compressed (or are streams) and are never compressed again.
/// `image/*` (except SVG), gRPC and `text/event-stream` are excluded by tower-http itself.
pub const DEFAULT_EXCLUDED_CONTENT_TYPES: &[&str] = &[
    "video/",
    "audio/",
    "font/woff",
    "application/zip",
    "application/gzip",
    "application/x-gzip",
    "application/zstd",
    "application/x-bzip2",
    "application/x-xz",
    "application/x-7z-compressed",
    "application/x-rar-compressed",
    "application/vnd.rar",
    "application/pdf",
    "multipart/x-mixed-replace",
];

/// Compression settings.
///
/// The encoding follows the client's `Accept-Encoding` q-values. One `level` applies to every
/// encoding (tower-http has one knob). The default, 1, is the fastest: on a 2 KB JSON response it
/// served 13–45% more requests/s than level 4 and up to twice as many as level 6 (gzip, brotli,
/// zstd; `benches/http_stack.rs`); tower-http's own default is each library's default level
/// (gzip 6, brotli 4, zstd 3). Raise it for large, cacheable or bandwidth-bound responses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompressionConfig {
    /// Compress responses (default `true`).
    pub enabled: bool,
    /// Compression level for every encoding, 1 (fastest, the default) to 9.
    pub level: u32,
    /// Responses smaller than this are sent as they are (default 1 KiB).
    pub min_size: ByteSize,
    /// Offer gzip.
    pub gzip: bool,
    /// Offer brotli.
    pub br: bool,
    /// Offer zstd.
    pub zstd: bool,
    /// Offer deflate.
    pub deflate: bool,
    /// Content-type prefixes never compressed.
    pub excluded_content_types: Vec<String>,
    /// Decompress `Content-Encoding`-compressed request bodies (default `false`). The body limit
    /// applies to the decompressed size.
    pub request_decompression: bool,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            level: 1,
            min_size: ByteSize::kib(1),
            gzip: true,
            br: true,
            zstd: true,
            deflate: true,
            excluded_content_types: DEFAULT_EXCLUDED_CONTENT_TYPES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            request_decompression: false,
        }
    }
}

impl CompressionConfig {
    /// No response compression.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// Sets the level (1–9) for every encoding.
    pub fn level(mut self, level: u32) -> Self {
        self.level = level;
        self
    }

    /// Sets the size below which nothing is compressed.
    pub fn min_size(mut self, bytes: u64) -> Self {
        self.min_size = ByteSize::b(bytes);
        self
    }

    /// Also decompresses request bodies.
    pub fn request_decompression(mut self, enabled: bool) -> Self {
        self.request_decompression = enabled;
        self
    }

    pub(crate) fn build(&self) -> Result<Option<CompressionLayer<ShouldCompress>>, ConfigError> {
        if !(1..=9).contains(&self.level) {
            return Err(ConfigError::new(
                "http.compression.level",
                self.level.to_string(),
                "expected a level from 1 (fastest) to 9 (smallest)",
            ));
        }
        if !self.enabled {
            return Ok(None);
        }
        let excluded = self
            .excluded_content_types
            .iter()
            .map(|t| NotForContentType::new(t))
            .collect();
        let predicate = SizeAbove::new(self.min_size.as_u64())
            .and(NotForContentType::GRPC)
            .and(NotForContentType::IMAGES)
            .and(NotForContentType::SSE)
            .and(NoneOf(Arc::new(excluded)));
        let level = i32::try_from(self.level).unwrap_or(1);
        Ok(Some(
            CompressionLayer::new()
                .gzip(self.gzip)
                .br(self.br)
                .zstd(self.zstd)
                .deflate(self.deflate)
                .quality(CompressionLevel::Precise(level))
                .compress_when(predicate),
        ))
    }
}

/// The predicate the stack compresses with.
pub type ShouldCompress =
    And<And<And<And<SizeAbove, NotForContentType>, NotForContentType>, NotForContentType>, NoneOf>;

/// Compress only when none of the listed content types matches.
#[derive(Clone, Debug)]
pub struct NoneOf(Arc<Vec<NotForContentType>>);

impl Predicate for NoneOf {
    fn should_compress<B: HttpBody>(&self, response: &http::Response<B>) -> bool {
        self.0.iter().all(|p| p.should_compress(response))
    }
}
