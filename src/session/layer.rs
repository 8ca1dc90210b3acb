//! [`SessionLayer`]: tower-sessions' layer with the crate's cookie and expiry settings.

use std::cell::Cell;
use std::task::{Context, Poll};

use futures_util::TryFutureExt;
use futures_util::future::{BoxFuture, MapOk};
use http::{Request, Response, StatusCode};
use sha2::{Digest, Sha512};
use tower::util::Either;
use tower::{Layer, Service};
use tower_sessions::cookie::Key;
use tower_sessions::service::PrivateCookie;
use tower_sessions::{Expiry, SessionManagerLayer};

use super::config::{SameSite, SessionConfig};
use super::store::{AnyStore, UNAVAILABLE_ON_SAVE};

type Plain = SessionManagerLayer<AnyStore>;
type Private = SessionManagerLayer<AnyStore, PrivateCookie>;

/// The layer that gives handlers their [`Session`](super::Session): tower-sessions'
/// `SessionManagerLayer` on the configured store, its cookie private (encrypted and
/// authenticated) when a secret is set and the bare random id otherwise. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SessionLayer {
    inner: Either<Plain, Private>,
    private: bool,
}

impl SessionLayer {
    /// The layer on `store` with the cookie and expiry `config` asks for (what
    /// [`ProductionLayer::session_layer`](crate::ProductionLayer::session_layer) returns, for
    /// a store of your own).
    pub fn new(store: AnyStore, config: &SessionConfig) -> Self {
        let same_site = match config.same_site {
            SameSite::Lax => tower_sessions::cookie::SameSite::Lax,
            SameSite::Strict => tower_sessions::cookie::SameSite::Strict,
            SameSite::None => tower_sessions::cookie::SameSite::None,
        };
        let ttl = tower_sessions::cookie::time::Duration::seconds(
            config.ttl.as_secs().min(i64::MAX as u64) as i64,
        );
        let layer = SessionManagerLayer::new(store)
            .with_name(config.cookie_name().to_owned())
            .with_http_only(true)
            .with_secure(config.secure)
            .with_same_site(same_site)
            .with_path("/")
            .with_expiry(Expiry::OnInactivity(ttl));
        match &config.secret {
            Some(secret) => Self {
                inner: Either::Right(layer.with_private(key(secret))),
                private: true,
            },
            None => Self {
                inner: Either::Left(layer),
                private: false,
            },
        }
    }

    /// Whether the cookie is encrypted (a secret is set).
    pub fn is_private(&self) -> bool {
        self.private
    }
}

/// The cookie key: 64 bytes derived from the secret with SHA-512, so every server with the
/// same secret reads every other's cookies.
fn key(secret: &str) -> Key {
    let mut hasher = Sha512::new();
    hasher.update(b"rustforge-prod session cookie key\0");
    hasher.update(secret.as_bytes());
    Key::from(&hasher.finalize())
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<
        Either<<Plain as Layer<Marked<S>>>::Service, <Private as Layer<Marked<S>>>::Service>,
    >;

    fn layer(&self, inner: S) -> Self::Service {
        let inner = Marked(inner);
        SessionService(match &self.inner {
            Either::Left(plain) => Either::Left(plain.layer(inner)),
            Either::Right(private) => Either::Right(private.layer(inner)),
        })
    }
}

/// Marks the response the handler produced: a 500 without the mark is tower-sessions' own,
/// for a changed session it could not save after the handler answered.
#[derive(Clone, Copy)]
struct FromHandler;

/// The service inside [`SessionService`]'s tower-sessions layer: the handler, its responses
/// marked so that a 500 tower-sessions makes itself can be told from the handler's own.
#[derive(Clone, Debug)]
pub struct Marked<S>(S);

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Marked<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = MapOk<S::Future, fn(Response<ResBody>) -> Response<ResBody>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        fn mark<B>(mut res: Response<B>) -> Response<B> {
            res.extensions_mut().insert(FromHandler);
            res
        }
        self.0.call(req).map_ok(mark::<ResBody>)
    }
}

/// tower-sessions' service, with a changed session it could not save because the store is
/// unavailable answered like one it could not load: 503 with `Retry-After`
/// ([`unavailable`](super::unavailable)), not a bare 500. The handler's own answers, and the
/// 500 for a session too large to save, pass unchanged.
#[derive(Clone, Debug)]
pub struct SessionService<S>(S);

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: http_body::Body<Data = axum::body::Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Response = axum::response::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let response = self.0.call(req);
        Box::pin(UNAVAILABLE_ON_SAVE.scope(Cell::new(false), async move {
            let res = response.await?;
            let unavailable = UNAVAILABLE_ON_SAVE.with(Cell::get);
            if unavailable
                && res.status() == StatusCode::INTERNAL_SERVER_ERROR
                && res.extensions().get::<FromHandler>().is_none()
            {
                return Ok(super::unavailable_response(
                    "the changed session could not be saved",
                ));
            }
            Ok(res.map(axum::body::Body::new))
        }))
    }
}
