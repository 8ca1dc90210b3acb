//! The route that serves the signed URLs of [`UrlSigner`](super::signer::UrlSigner): `GET`
//! and `HEAD` download (with `Range`), `PUT` uploads; a bad signature or an expired URL is a
//! `403`.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, Method, StatusCode, header};
use serde::Deserialize;

use super::disk::WriteOptions;
use super::response::problem;
use super::signer::{Refusal, unix_now};
use super::storage::Storage;

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
