//! Serving objects over HTTP: [`Disk::download`] with `Range` and `If-None-Match`, and
//! [`StorageError`] as an axum response.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use object_store::{Attribute, GetOptions, GetRange};

use super::disk::Disk;
use super::error::StorageError;

/// A parsed single `Range: bytes=…` header.
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    /// No usable range: serve the whole object (also for multiple ranges, which RFC 9110 lets a
    /// server ignore).
    Full,
    /// `bytes=a-b` / `bytes=a-` / `bytes=-n`.
    Single(GetRange),
}

fn parse_range(headers: &HeaderMap) -> RangeRequest {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return RangeRequest::Full;
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (start, end) = (start.trim(), end.trim());
    let range = match (start.parse::<u64>(), end.parse::<u64>()) {
        (Ok(start), Ok(end)) if start <= end => GetRange::Bounded(start..end.saturating_add(1)),
        (Ok(start), Err(_)) if end.is_empty() => GetRange::Offset(start),
        (Err(_), Ok(suffix)) if start.is_empty() => GetRange::Suffix(suffix),
        _ => return RangeRequest::Full,
    };
    RangeRequest::Single(range)
}

/// Whether `range` selects at least one byte of an object of `size` bytes.
fn satisfiable(range: &GetRange, size: u64) -> bool {
    match range {
        GetRange::Bounded(r) => r.start < size,
        GetRange::Offset(start) => *start < size,
        GetRange::Suffix(n) => *n > 0 && size > 0,
    }
}

impl Disk {
    /// Serves the object as an HTTP response: `Content-Type` (stored or from the extension),
    /// `Content-Length`, `ETag`, `Last-Modified`, `Cache-Control` (when stored),
    /// `Accept-Ranges: bytes`; a single `Range` gives `206` (or `416` when unsatisfiable), a
    /// matching `If-None-Match` gives `304`. The body streams; the object is never held in
    /// memory.
    ///
    /// ```no_run
    /// use axum::{Router, extract::{Path, State}, http::HeaderMap, response::Response, routing::get};
    /// use rustforge_prod::storage::{Storage, StorageError};
    ///
    /// async fn file(
    ///     State(storage): State<Storage>,
    ///     Path(path): Path<String>,
    ///     headers: HeaderMap,
    /// ) -> Result<Response, StorageError> {
    ///     storage.disk("local")?.download(&path, &headers).await
    /// }
    /// # fn app(storage: Storage) -> Router {
    /// Router::new().route("/files/{*path}", get(file)).with_state(storage)
    /// # }
    /// ```
    pub async fn download(
        &self,
        path: &str,
        request: &HeaderMap,
    ) -> Result<Response, StorageError> {
        self.serve(path, request, None).await
    }

    /// Like [`download`](Self::download), with `Content-Disposition: attachment` so browsers
    /// save the file as `filename`.
    pub async fn download_as(
        &self,
        path: &str,
        request: &HeaderMap,
        filename: &str,
    ) -> Result<Response, StorageError> {
        self.serve(path, request, Some(filename)).await
    }

    async fn serve(
        &self,
        path: &str,
        request: &HeaderMap,
        filename: Option<&str>,
    ) -> Result<Response, StorageError> {
        let if_none_match = request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut options = GetOptions {
            if_none_match,
            ..GetOptions::default()
        };
        if let RangeRequest::Single(range) = parse_range(request) {
            // The size decides between 206 and 416, so a ranged request looks first.
            let size = self.size(path).await?;
            if !satisfiable(&range, size) {
                let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                insert(
                    &mut response,
                    header::CONTENT_RANGE,
                    &format!("bytes */{size}"),
                );
                return Ok(response);
            }
            options.range = Some(range);
        }
        let ranged = options.range.is_some();
        let (opened, stream) = match self.open(path, options).await {
            Ok(opened) => opened,
            Err(StorageError::NotModified { .. }) => {
                return Ok(StatusCode::NOT_MODIFIED.into_response());
            }
            Err(err) => return Err(err),
        };
        let (meta, range) = (&opened.meta, &opened.range);
        let mut response = Response::new(Body::from_stream(stream));
        if ranged {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            let last = range.end.saturating_sub(1);
            let value = format!("bytes {}-{last}/{}", range.start, meta.size);
            insert(&mut response, header::CONTENT_RANGE, &value);
        }
        let length = (range.end - range.start).to_string();
        insert(&mut response, header::CONTENT_LENGTH, &length);
        insert(&mut response, header::ACCEPT_RANGES, "bytes");
        let content_type = self
            .content_type(path, &opened.attributes)
            .unwrap_or_else(|| "application/octet-stream".to_owned());
        insert(&mut response, header::CONTENT_TYPE, &content_type);
        if let Some(e_tag) = &meta.e_tag {
            insert(&mut response, header::ETAG, &quoted(e_tag));
        }
        let modified = httpdate::fmt_http_date(meta.last_modified.into());
        insert(&mut response, header::LAST_MODIFIED, &modified);
        if let Some(value) = opened.attributes.get(&Attribute::CacheControl) {
            insert(&mut response, header::CACHE_CONTROL, value.as_ref());
        }
        if let Some(name) = filename {
            let safe: String = name
                .chars()
                .map(|c| if c == '"' || c.is_control() { '_' } else { c })
                .collect();
            let value = format!(
                "attachment; filename=\"{safe}\"; filename*=UTF-8''{}",
                super::disk::encode_path(name)
            );
            insert(&mut response, header::CONTENT_DISPOSITION, &value);
        } else if let Some(value) = opened.attributes.get(&Attribute::ContentDisposition) {
            insert(&mut response, header::CONTENT_DISPOSITION, value.as_ref());
        }
        Ok(response)
    }
}

/// object_store reports some entity tags without quotes (apache/arrow-rs-object-store#769).
fn quoted(e_tag: &str) -> String {
    if e_tag.starts_with('"') || e_tag.starts_with("W/") {
        e_tag.to_owned()
    } else {
        format!("\"{e_tag}\"")
    }
}

fn insert(response: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

/// `404` for [`StorageError::NotFound`], `400` for an invalid path, `409` for an existing
/// object, `501` for an unsupported operation, `502` for a backend failure (logged; the body
/// never carries the backend's message). Bodies are `application/problem+json`.
impl IntoResponse for StorageError {
    fn into_response(self) -> Response {
        let (status, detail) = match &self {
            Self::NotFound { .. } => (StatusCode::NOT_FOUND, "no such file".to_owned()),
            Self::InvalidPath { reason, .. } => (StatusCode::BAD_REQUEST, (*reason).to_owned()),
            Self::AlreadyExists { .. } => (StatusCode::CONFLICT, "the file already exists".into()),
            Self::Unsupported { reason, .. } => (StatusCode::NOT_IMPLEMENTED, reason.clone()),
            Self::Backend { operation, .. } => {
                tracing::error!(error = %self, "storage operation failed");
                let detail = format!("the storage backend failed ({operation})");
                (StatusCode::BAD_GATEWAY, detail)
            }
            Self::NotModified { .. } => return StatusCode::NOT_MODIFIED.into_response(),
            Self::UnknownDisk(_) => {
                tracing::error!(error = %self, "storage misconfigured");
                let detail = "storage is misconfigured".to_owned();
                (StatusCode::INTERNAL_SERVER_ERROR, detail)
            }
        };
        problem(status, &detail)
    }
}

/// An `application/problem+json` response (`about:blank`: the status says it all).
pub(crate) fn problem(status: StatusCode, detail: &str) -> Response {
    crate::problem::response(status, None, Some(detail), serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str) -> RangeRequest {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_str(value).unwrap());
        parse_range(&headers)
    }

    #[test]
    fn parses_single_ranges_and_ignores_the_rest() {
        assert_eq!(
            range("bytes=0-99"),
            RangeRequest::Single(GetRange::Bounded(0..100))
        );
        assert_eq!(
            range("bytes=100-"),
            RangeRequest::Single(GetRange::Offset(100))
        );
        assert_eq!(range("bytes=-5"), RangeRequest::Single(GetRange::Suffix(5)));
        for ignored in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=5-1",
            "bytes=x-y",
            "bytes=-",
        ] {
            assert_eq!(range(ignored), RangeRequest::Full, "{ignored}");
        }
        assert_eq!(parse_range(&HeaderMap::new()), RangeRequest::Full);
    }

    #[test]
    fn satisfiability() {
        assert!(satisfiable(&GetRange::Bounded(0..10), 1));
        assert!(!satisfiable(&GetRange::Bounded(5..10), 5));
        assert!(!satisfiable(&GetRange::Offset(5), 5));
        assert!(!satisfiable(&GetRange::Suffix(0), 5));
        assert!(!satisfiable(&GetRange::Suffix(3), 0));
    }
}
