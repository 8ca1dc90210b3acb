//! [`SessionLayer`]: tower-sessions' layer with the crate's cookie and expiry settings.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use http::{Request, Response, StatusCode};
use sha2::{Digest, Sha512};
use tower::util::Either;
use tower::{Layer, Service};
use tower_sessions::cookie::Key;
use tower_sessions::service::PrivateCookie;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

use super::config::SessionConfig;
use super::cookie::{self, CookieAttributes};
use super::flash;
use super::record::Limits;
use super::store::{AnyStore, OUTCOME, Outcome};
use super::users::Sessions;

type Plain = SessionManagerLayer<AnyStore>;
type Private = SessionManagerLayer<AnyStore, PrivateCookie>;

/// The layer that gives handlers their [`Session`](super::Session): tower-sessions'
/// `SessionManagerLayer` on the configured store, its cookie private (encrypted and
/// authenticated) when a secret is set and the bare random id otherwise. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SessionLayer {
    inner: Either<Plain, Private>,
    private: bool,
    renewal: Arc<Renewal>,
    sessions: Sessions,
}

/// How the session cookie is renewed when a read extended the session: tower-sessions sets the
/// cookie only when it saves, and an unchanged session is extended, not saved.
#[derive(Debug)]
pub(super) struct Renewal {
    name: String,
    attributes: CookieAttributes,
}

impl SessionLayer {
    /// The layer on `store` with the cookie and expiry `config` asks for (what
    /// [`ProductionLayer::session_layer`](crate::ProductionLayer::session_layer) returns, for
    /// a store of your own).
    pub fn new(store: AnyStore, config: &SessionConfig) -> Self {
        let extended = Limits::from(config).extended();
        let attributes = CookieAttributes::new(config, extended);
        // A save gives the session (and its cookie) the timeout plus the slack, as an
        // extension does: a read soon after a save is not due for an extension.
        let ttl = tower_sessions::cookie::time::Duration::milliseconds(
            extended.as_millis().min(i64::MAX as u128) as i64,
        );
        let index = store.index.clone();
        let layer = SessionManagerLayer::new(store)
            .with_name(config.cookie_name().to_owned())
            .with_http_only(true)
            .with_secure(attributes.secure)
            .with_same_site(attributes.same_site)
            .with_path("/")
            .with_expiry(Expiry::OnInactivity(ttl));
        let renewal = Arc::new(Renewal {
            name: config.cookie_name().to_owned(),
            attributes,
        });
        let (inner, private) = match &config.secret {
            Some(secret) => (Either::Right(layer.with_private(key(secret))), true),
            None => (Either::Left(layer), false),
        };
        Self {
            inner,
            private,
            renewal,
            sessions: Sessions::new(index),
        }
    }

    /// Whether the cookie is encrypted (a secret is set).
    pub fn is_private(&self) -> bool {
        self.private
    }

    /// Ends users' sessions in this layer's store ([`Sessions`]).
    pub fn sessions(&self) -> Sessions {
        self.sessions.clone()
    }

    /// The [`CsrfLayer`](super::CsrfLayer) for these sessions (its cookie's attributes follow
    /// the session cookie's).
    pub fn csrf_layer(&self) -> super::CsrfLayer {
        super::CsrfLayer::with_attributes(self.renewal.attributes.clone())
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
        SessionService {
            inner: match &self.inner {
                Either::Left(plain) => Either::Left(plain.layer(inner)),
                Either::Right(private) => Either::Right(private.layer(inner)),
            },
            renewal: self.renewal.clone(),
        }
    }
}

/// Marks the response the handler produced: a 500 without the mark is tower-sessions' own,
/// for a changed session it could not save after the handler answered.
#[derive(Clone, Copy)]
struct FromHandler;

/// The service inside [`SessionService`]'s tower-sessions layer: the handler, its responses
/// marked so that a 500 tower-sessions makes itself can be told from the handler's own, and
/// the session's flash data aged after a request that used it.
#[derive(Clone, Debug)]
pub struct Marked<S>(S);

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Marked<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<ResBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let session = req.extensions().get::<Session>().cloned();
        let response = self.0.call(req);
        Box::pin(async move {
            let mut res = response.await?;
            res.extensions_mut().insert(FromHandler);
            // Only a session the request loaded or changed: an untouched one costs nothing.
            let loaded = OUTCOME.try_with(|o| o.loaded.get()).unwrap_or(false);
            if let Some(session) = session.filter(|s| loaded || s.is_modified())
                && let Err(error) = flash::age(&session).await
            {
                tracing::warn!(%error, "the session's flash data could not be aged");
            }
            Ok(res)
        })
    }
}

/// tower-sessions' service, with a changed session it could not save because the store is
/// unavailable answered like one it could not load: 503 with `Retry-After`
/// ([`unavailable`](super::unavailable)), not a bare 500. The handler's own answers, and the
/// 500 for a session too large to save, pass unchanged. When a read extended the session's
/// expiry, the cookie the request carried is sent back with a renewed `Max-Age`.
#[derive(Clone, Debug)]
pub struct SessionService<S> {
    inner: S,
    renewal: Arc<Renewal>,
}

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
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // Parsed only if a read extended the session: most requests never need it.
        let cookies: Vec<http::HeaderValue> = req
            .headers()
            .get_all(http::header::COOKIE)
            .iter()
            .cloned()
            .collect();
        let renewal = self.renewal.clone();
        let response = self.inner.call(req);
        Box::pin(OUTCOME.scope(Outcome::default(), async move {
            let mut res = response.await?;
            let (unavailable, extended) =
                OUTCOME.with(|outcome| (outcome.unavailable.get(), outcome.extended.get()));
            if unavailable
                && res.status() == StatusCode::INTERNAL_SERVER_ERROR
                && res.extensions().get::<FromHandler>().is_none()
            {
                return Ok(super::unavailable_response(
                    "the changed session could not be saved",
                ));
            }
            // tower-sessions set no cookie (it saved nothing): renew the one the client sent.
            if extended
                && !cookie::sets(res.headers(), &renewal.name)
                && let Some(value) = cookie::sent(&cookies, &renewal.name)
            {
                let set = renewal.attributes.set_cookie(&renewal.name, &value, true);
                res.headers_mut().append(http::header::SET_COOKIE, set);
            }
            Ok(res.map(axum::body::Body::new))
        }))
    }
}
