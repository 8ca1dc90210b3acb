//! [`SessionLayer`]: gives handlers their tower-sessions [`Session`], with the crate's cookie,
//! expiry, flash and store-failure rules.
//!
//! The service does what tower-sessions' `SessionManagerLayer` does (find the cookie, hand the
//! handler a lazily loaded `Session`, save a changed one and set its cookie) in one step, on
//! the request's `Cookie` header itself: no cookie jar per request, no wrapper per rule. An
//! unchanged session read is the common request, and its cost is the layer's work plus one
//! store read (figures in docs/performance.md).

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderValue, Request, Response, StatusCode};
use sha2::{Digest, Sha512};
use tower::{Layer, Service};
use tower_sessions::cookie::{Cookie, CookieJar, Key};
use tower_sessions::session::Id;
use tower_sessions::{Expiry, Session};

use super::config::SessionConfig;
use super::cookie::CookieAttributes;
use super::flash;
use super::record::Limits;
use super::store::{AnyStore, OUTCOME, Outcome};
use super::users::Sessions;

/// The layer that gives handlers their [`Session`](super::Session): loaded from the configured
/// store when the handler first reads it, saved when it changed. The cookie is private
/// (encrypted and authenticated) when a secret is set and the bare random id otherwise.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct SessionLayer {
    shared: Arc<Shared>,
    sessions: Sessions,
}

/// What every request of a [`SessionLayer`] reads.
#[derive(Debug)]
struct Shared {
    store: Arc<AnyStore>,
    /// The cookie's name and attributes.
    name: String,
    attributes: CookieAttributes,
    /// The cookie key, when the cookie is private.
    key: Option<Key>,
    /// A save (and an extension) keeps the session for the timeout plus the slack.
    expiry: Expiry,
}

impl SessionLayer {
    /// The layer on `store` with the cookie and expiry `config` asks for (what
    /// [`ProductionLayer::session_layer`](crate::ProductionLayer::session_layer) returns, for
    /// a store of your own).
    pub fn new(store: AnyStore, config: &SessionConfig) -> Self {
        let extended = Limits::from(config).extended();
        // A save gives the session (and its cookie) the timeout plus the slack, as an
        // extension does: a read soon after a save is not due for an extension.
        let ttl = tower_sessions::cookie::time::Duration::milliseconds(
            extended.as_millis().min(i64::MAX as u128) as i64,
        );
        let sessions = Sessions::new(store.index.clone());
        let shared = Shared {
            store: Arc::new(store),
            name: config.cookie_name().to_owned(),
            attributes: CookieAttributes::new(config, extended),
            key: config.secret.as_deref().map(key),
            expiry: Expiry::OnInactivity(ttl),
        };
        Self {
            shared: Arc::new(shared),
            sessions,
        }
    }

    /// Whether the cookie is encrypted (a secret is set).
    pub fn is_private(&self) -> bool {
        self.shared.key.is_some()
    }

    /// Ends users' sessions in this layer's store ([`Sessions`]).
    pub fn sessions(&self) -> Sessions {
        self.sessions.clone()
    }

    /// The [`CsrfLayer`](super::CsrfLayer) for these sessions (its cookie's attributes follow
    /// the session cookie's).
    pub fn csrf_layer(&self) -> super::CsrfLayer {
        super::CsrfLayer::with_attributes(self.shared.attributes.clone())
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
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service of a [`SessionLayer`]. After the handler answered: a session the request used
/// has its flash data aged; a changed one is saved and its cookie set, and one that could not
/// be saved because the store is unavailable is answered like one that could not be loaded —
/// 503 with `Retry-After` ([`unavailable`](super::unavailable)), not the handler's answer; an
/// emptied one has its cookie removed; an unchanged one that a read extended has its cookie
/// sent back with a renewed `Max-Age`.
#[derive(Clone, Debug)]
pub struct SessionService<S> {
    inner: S,
    shared: Arc<Shared>,
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

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let shared = self.shared.clone();
        let value = sent_cookie(req.headers(), &shared.name);
        let sent = value.is_some();
        let id = value.and_then(|value| shared.id(value));
        let session = Session::new(id, shared.store.clone(), Some(shared.expiry));
        req.extensions_mut().insert(session.clone());
        let response = self.inner.call(req);
        Box::pin(OUTCOME.scope(Outcome::default(), async move {
            let res = response.await?.map(axum::body::Body::new);
            Ok(shared.finish(session, sent, res).await)
        }))
    }
}

impl Shared {
    /// The session id a cookie value names: the value itself, or what it decrypts to.
    fn id(&self, value: &str) -> Option<Id> {
        let id = match &self.key {
            // A value that does not decrypt (tampered, or another secret) names no session.
            Some(key) => {
                let cookie = Cookie::new(self.name.clone(), value.to_owned());
                CookieJar::new()
                    .private(key)
                    .decrypt(cookie)?
                    .value()
                    .parse()
            }
            None => value.parse(),
        };
        id.map_err(|error| {
            tracing::warn!(%error, "possibly suspicious activity: malformed session id");
        })
        .ok()
    }

    /// The cookie value for session `id`: the id, encrypted when the cookie is private.
    fn value(&self, id: Id) -> String {
        match &self.key {
            Some(key) => {
                let mut jar = CookieJar::new();
                jar.private_mut(key)
                    .add(Cookie::new(self.name.clone(), id.to_string()));
                jar.get(&self.name)
                    .map(|cookie| cookie.value().to_owned())
                    .unwrap_or_default()
            }
            None => id.to_string(),
        }
    }

    /// What the session rules make of the handler's answer `res` (see [`SessionService`]).
    async fn finish(
        &self,
        session: Session,
        sent: bool,
        mut res: axum::response::Response,
    ) -> axum::response::Response {
        let (loaded, flashed, extended) =
            OUTCOME.with(|o| (o.loaded.get(), o.flashed.get(), o.extended.get()));
        // Only a session that was read with flash data or changed (it may have flashed some):
        // any other costs nothing. The rarer steps' futures (aging, saving) are boxed: inline,
        // they would add ~500 bytes to every request's future, which is boxed and moved whole.
        if (flashed || session.is_modified())
            && let Err(error) = Box::pin(flash::age(&session)).await
        {
            tracing::warn!(%error, "the session's flash data could not be aged");
        }
        // Neither loaded nor changed, the session is empty exactly when it has no id (no
        // lock to take).
        let empty = if loaded || session.is_modified() {
            session.is_empty().await
        } else {
            session.id().is_none()
        };
        let set = if empty {
            // Emptied (`flush`, or never written): the client forgets the cookie it sent.
            sent.then(|| self.attributes.remove_cookie(&self.name))
        } else {
            let renewed = if session.is_modified() && !res.status().is_server_error() {
                if let Err(error) = Box::pin(session.save()).await {
                    if OUTCOME.with(|o| o.unavailable.get()) {
                        return super::unavailable_response(
                            "the changed session could not be saved",
                        );
                    }
                    // Too large to save (the store refused to encode it): the handler's
                    // answer would claim a change that was not kept.
                    tracing::error!(%error, "failed to save session");
                    return crate::problem::response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        None,
                        Some("the session could not be saved"),
                        serde_json::Value::Null,
                    );
                }
                true
            } else {
                // Not saved, but a read extended it: the cookie lives as long as the session
                // (its value made again from the id, as after a save).
                extended && sent
            };
            let id = session.id().filter(|_| renewed);
            id.map(|id| self.set_cookie(&self.value(id)))
        };
        if let Some(set) = set {
            res.headers_mut().append(SET_COOKIE, set);
        }
        res
    }

    fn set_cookie(&self, value: &str) -> HeaderValue {
        self.attributes.set_cookie(&self.name, value, true)
    }
}

/// The value of cookie `name` in the request's `Cookie` headers (the first one sent).
fn sent_cookie<'h>(headers: &'h http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|header| header.to_str().ok())
        .flat_map(|header| header.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            (key.trim() == name).then_some(value)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = http::HeaderMap::new();
        headers.append(COOKIE, HeaderValue::from_static("a=1; session=x"));
        headers.append(COOKIE, HeaderValue::from_static("session=y;b=2"));
        assert_eq!(sent_cookie(&headers, "session"), Some("x"));
        assert_eq!(sent_cookie(&headers, "b"), Some("2"));
        assert_eq!(sent_cookie(&headers, "sess"), None);
        headers.clear();
        headers.append(COOKIE, HeaderValue::from_static(" session = \"q\" "));
        assert_eq!(sent_cookie(&headers, "session"), Some("q"));
    }
}
