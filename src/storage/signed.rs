//! Expiring signed URLs for the local and memory disks, and the route that serves them.
//!
//! A URL is `{base}/{disk}/{path}?expires={unix seconds}&signature={hex}` where the signature is
//! HMAC-SHA256 over `METHOD \n disk \n path \n expires` with the storage signing key. The route
//! checks the signature in constant time before the expiry, so a tampered URL never learns
//! whether it would have been current; both answer `403`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hmac::{Hmac, Mac};
use http::{HeaderMap, Method, StatusCode, header};
use serde::Deserialize;
use sha2::Sha256;

use super::disk::{WriteOptions, encode_path};
use super::response::problem;
use super::storage::Storage;

type HmacSha256 = Hmac<Sha256>;

/// Signs and verifies the local disks' temporary URLs.
pub(crate) struct UrlSigner {
    key: Vec<u8>,
    /// `{app url}{route prefix}`, without a trailing `/`.
    base: String,
}

/// Why a signed URL was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    BadSignature,
    Expired,
}

impl UrlSigner {
    pub(crate) fn new(key: Vec<u8>, base: String) -> Self {
        Self { key, base }
    }

    pub(crate) fn url(
        &self,
        method: &Method,
        disk: &str,
        path: &str,
        expires_in: Duration,
    ) -> String {
        let expires = unix_now() + expires_in.as_secs().max(1);
        let signature = hex::encode(
            self.mac(method, disk, path, expires)
                .finalize()
                .into_bytes(),
        );
        format!(
            "{}/{}/{}?expires={expires}&signature={signature}",
            self.base,
            encode_path(disk),
            encode_path(path)
        )
    }

    pub(crate) fn verify(
        &self,
        method: &Method,
        disk: &str,
        path: &str,
        expires: u64,
        signature: &str,
        now: u64,
    ) -> Result<(), Refusal> {
        let signature = hex::decode(signature).map_err(|_| Refusal::BadSignature)?;
        self.mac(method, disk, path, expires)
            .verify_slice(&signature)
            .map_err(|_| Refusal::BadSignature)?;
        if now > expires {
            return Err(Refusal::Expired);
        }
        Ok(())
    }

    fn mac(&self, method: &Method, disk: &str, path: &str, expires: u64) -> HmacSha256 {
        // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        for part in [method.as_str(), disk, path] {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        mac.update(expires.to_string().as_bytes());
        mac
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[derive(Deserialize)]
struct Signed {
    expires: Option<u64>,
    signature: Option<String>,
}

/// The route `{prefix}/{disk}/{*path}`: `GET`/`HEAD` serve the file (with `Range`), `PUT`
/// stores the request body (streamed, multipart above the threshold).
pub(crate) fn routes<S>(prefix: &str, storage: Storage) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route(
            &format!("{prefix}/{{disk}}/{{*path}}"),
            get(serve_signed).put(upload_signed),
        )
        .with_state(storage)
}

async fn serve_signed(
    State(storage): State<Storage>,
    Path((disk, path)): Path<(String, String)>,
    Query(query): Query<Signed>,
    headers: HeaderMap,
) -> Response {
    if let Err(detail) = check(&storage, &Method::GET, &disk, &path, &query) {
        return forbidden(detail);
    }
    match storage.disk(&disk) {
        Ok(disk) => disk.download(&path, &headers).await.into_response(),
        Err(err) => err.into_response(),
    }
}

async fn upload_signed(
    State(storage): State<Storage>,
    Path((disk, path)): Path<(String, String)>,
    Query(query): Query<Signed>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(detail) = check(&storage, &Method::PUT, &disk, &path, &query) {
        return forbidden(detail);
    }
    let disk = match storage.disk(&disk) {
        Ok(disk) => disk,
        Err(err) => return err.into_response(),
    };
    let mut options = WriteOptions::new();
    if let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        options = options.content_type(ct);
    }
    match disk
        .write_stream(&path, body.into_data_stream(), options)
        .await
    {
        Ok(_) => StatusCode::OK.into_response(),
        Err(err) => err.into_response(),
    }
}

/// Verifies the signature, then the expiry; the error is the `403` detail.
fn check(
    storage: &Storage,
    method: &Method,
    disk: &str,
    path: &str,
    query: &Signed,
) -> Result<(), &'static str> {
    let (Some(expires), Some(signature)) = (query.expires, query.signature.as_deref()) else {
        return Err("the URL is not signed");
    };
    match storage
        .url_signer()
        .verify(method, disk, path, expires, signature, unix_now())
    {
        Ok(()) => Ok(()),
        Err(Refusal::BadSignature) => Err("the signature does not match"),
        Err(Refusal::Expired) => Err("the URL has expired"),
    }
}

fn forbidden(detail: &str) -> Response {
    problem(StatusCode::FORBIDDEN, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_method_disk_path_and_expiry() {
        let signer = UrlSigner::new(b"k".repeat(32), "/storage".into());
        let url = signer.url(&Method::GET, "local", "a b/c.txt", Duration::from_secs(60));
        assert!(
            url.starts_with("/storage/local/a%20b/c.txt?expires="),
            "{url}"
        );
        let query = url.split_once('?').unwrap().1;
        let expires: u64 = query[8..query.find('&').unwrap()].parse().unwrap();
        let signature = query.rsplit_once('=').unwrap().1;
        let now = unix_now();
        let ok = |m: &Method, d: &str, p: &str, e: u64| signer.verify(m, d, p, e, signature, now);
        assert_eq!(ok(&Method::GET, "local", "a b/c.txt", expires), Ok(()));
        assert_eq!(
            ok(&Method::PUT, "local", "a b/c.txt", expires),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            ok(&Method::GET, "other", "a b/c.txt", expires),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            ok(&Method::GET, "local", "a b/d.txt", expires),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            ok(&Method::GET, "local", "a b/c.txt", expires + 1),
            Err(Refusal::BadSignature)
        );
        let late = signer.verify(
            &Method::GET,
            "local",
            "a b/c.txt",
            expires,
            signature,
            expires + 1,
        );
        assert_eq!(late, Err(Refusal::Expired));
        let garbage = signer.verify(&Method::GET, "local", "a b/c.txt", expires, "zz", now);
        assert_eq!(garbage, Err(Refusal::BadSignature));
    }
}
