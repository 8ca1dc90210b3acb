//! [`CsrfLayer`]: Laravel's `VerifyCsrfToken` for session-authenticated routes — a per-session
//! token in the script-readable `XSRF-TOKEN` cookie, required back on every state-changing
//! request.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::Response;
use futures_util::future::BoxFuture;
use http::header::{CONTENT_TYPE, SET_COOKIE};
use http::{HeaderMap, Method, Request, StatusCode};
use serde_json::json;
use subtle::ConstantTimeEq;
use tower::{Layer, Service};
use tower_sessions::Session;

use super::SessionError;
use super::config::SessionConfig;
use super::cookie::{self, CookieAttributes};
use super::record::Limits;

/// The cookie that carries the token to scripts: Laravel's name, which axios reads and sends
/// back as [`XSRF_HEADER`] by itself.
pub const XSRF_COOKIE: &str = "XSRF-TOKEN";
/// The header axios (and Laravel Echo through it) sends the `XSRF-TOKEN` cookie back in.
pub const XSRF_HEADER: &str = "x-xsrf-token";
/// The header for the token from a page (Laravel's `<meta name="csrf-token">` convention).
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The form field for the token (`<input type="hidden" name="_token">`).
pub const CSRF_FIELD: &str = "_token";

/// Where the session keeps its token.
const TOKEN_KEY: &str = "_rustforge.csrf";

/// The largest `application/x-www-form-urlencoded` body searched for [`CSRF_FIELD`]; a larger
/// form must send the token in a header.
const MAX_FORM: usize = 1024 * 1024;

/// Requires the session's CSRF token on every request that may change state.
///
/// Safe requests (`GET`, `HEAD`, `OPTIONS`, `TRACE`) pass, and every response gets the
/// session's token as the `XSRF-TOKEN` cookie (not `HttpOnly`: scripts read it; `Path=/`,
/// the session cookie's `Secure` and `SameSite`); a session without a token gets one, so a
/// visitor's first page already has it. Any other method must send the token back in the
/// `X-XSRF-TOKEN` or `X-CSRF-TOKEN` header or the `_token` field of a urlencoded form,
/// compared in constant time; otherwise the answer is a `419` problem response (the status
/// Laravel uses, which its front-ends — axios interceptors, Inertia, Livewire — already
/// handle by reloading for a fresh token) and the handler never runs. Paths given to
/// [`exempt`](Self::exempt) are not checked (webhooks and other callers that authenticate
/// with signatures).
///
/// Put it inside the session layer, on the routes a session cookie authenticates:
///
/// ```
/// use axum::{Router, routing::{get, post}};
/// use rustforge_prod::ProductionLayer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), rustforge_prod::Error> {
/// let prod = ProductionLayer::builder().build().await?;
/// let app: Router = Router::new()
///     .route("/profile", get(|| async { "form" }).post(|| async { "saved" }))
///     .route("/hooks/payment", post(|| async { "ok" }))
///     .layer(prod.csrf_layer().exempt("/hooks"))
///     .layer(prod.session_layer())
///     .merge(prod.routes())
///     .layer(prod.layer());
/// # let _ = app; Ok(()) }
/// ```
///
/// A request through it loads its session (one store read), so keep it off routes that need
/// no session. While the store is unavailable, safe requests pass without a cookie and the
/// others answer 503 with `Retry-After` (they cannot be verified).
#[derive(Clone, Debug)]
pub struct CsrfLayer {
    inner: Arc<Settings>,
}

#[derive(Clone, Debug)]
struct Settings {
    exempt: Vec<String>,
    attributes: CookieAttributes,
}

impl CsrfLayer {
    /// The layer for sessions configured by `config` (what
    /// [`ProductionLayer::csrf_layer`](crate::ProductionLayer::csrf_layer) returns).
    pub fn new(config: &SessionConfig) -> Self {
        Self::with_attributes(CookieAttributes::new(
            config,
            Limits::from(config).extended(),
        ))
    }

    pub(super) fn with_attributes(attributes: CookieAttributes) -> Self {
        Self {
            inner: Arc::new(Settings {
                exempt: Vec::new(),
                attributes,
            }),
        }
    }

    /// Leaves requests to `path`, and to every path below it, unchecked: `"/hooks"` exempts
    /// `/hooks` and `/hooks/payment`, not `/hooksmith`.
    pub fn exempt(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        Arc::make_mut(&mut self.inner)
            .exempt
            .push(path.trim_end_matches('/').to_owned());
        self
    }
}

impl Settings {
    fn is_exempt(&self, path: &str) -> bool {
        self.exempt.iter().any(|prefix| {
            path.strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }
}

impl<S> Layer<S> for CsrfLayer {
    type Service = CsrfService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CsrfService {
            inner,
            settings: self.inner.clone(),
        }
    }
}

/// The service of [`CsrfLayer`].
#[derive(Clone, Debug)]
pub struct CsrfService<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S> Service<Request<Body>> for CsrfService<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        // The ready service serves this request; the clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let settings = self.settings.clone();
        Box::pin(async move {
            let Some(session) = req.extensions().get::<Session>().cloned() else {
                tracing::error!(
                    "CsrfLayer without a session: add it inside the session layer \
                     (`.layer(prod.csrf_layer()).layer(prod.session_layer())`)"
                );
                let status = StatusCode::INTERNAL_SERVER_ERROR;
                return Ok(crate::problem::response(status, None, None, json!(null)));
            };
            let checked = !is_safe(req.method()) && !settings.is_exempt(req.uri().path());
            let req = if checked {
                match verify(&session, req).await {
                    Ok(req) => req,
                    Err(refused) => return Ok(refused),
                }
            } else {
                req
            };
            let mut res = inner.call(req).await?;
            // The token the session has after the handler: a new one when it flushed the
            // session (a logout) or rotated the token. Nothing when the store is unavailable
            // or the handler failed (the session layer saves nothing then).
            if !res.status().is_server_error()
                && !cookie::sets(res.headers(), XSRF_COOKIE)
                && let Ok(token) = token(&session).await
            {
                let set = settings.attributes.set_cookie(XSRF_COOKIE, &token, false);
                res.headers_mut().append(SET_COOKIE, set);
            }
            Ok(res)
        })
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The request, when it carries its session's token; the refusal otherwise.
async fn verify(session: &Session, req: Request<Body>) -> Result<Request<Body>, Response> {
    let expected: Option<String> = session.get(TOKEN_KEY).await.map_err(super::unavailable)?;
    let (sent, req) = match from_headers(req.headers()) {
        Some(sent) => (Some(sent), req),
        None => from_form(req).await?,
    };
    match (expected, sent) {
        (Some(expected), Some(sent)) if matches(&expected, &sent) => Ok(req),
        (expected, sent) => {
            let detail = match (expected, sent) {
                (None, _) => "the session has no CSRF token: load a page first",
                (_, None) => {
                    "no CSRF token: send the XSRF-TOKEN cookie back as X-XSRF-TOKEN, \
                     or the token as X-CSRF-TOKEN or the _token form field"
                }
                _ => "the CSRF token does not match the session's",
            };
            Err(mismatch(detail))
        }
    }
}

/// Compares in constant time: how long it takes tells nothing of how much of a guess is right.
fn matches(expected: &str, sent: &str) -> bool {
    expected.as_bytes().ct_eq(sent.as_bytes()).into()
}

fn from_headers(headers: &HeaderMap) -> Option<String> {
    [XSRF_HEADER, CSRF_HEADER]
        .into_iter()
        .filter_map(|name| headers.get(name)?.to_str().ok())
        .map(|value| value.trim().to_owned())
        .find(|value| !value.is_empty())
}

/// The `_token` field of a urlencoded form, and the request with its body put back.
async fn from_form(req: Request<Body>) -> Result<(Option<String>, Request<Body>), Response> {
    let is_form = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Ok((None, req));
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM).await.map_err(|_| {
        let status = StatusCode::PAYLOAD_TOO_LARGE;
        let detail = "a form above 1 MiB must send its CSRF token in the X-CSRF-TOKEN header";
        crate::problem::response(status, None, Some(detail), json!(null))
    })?;
    let sent = form_urlencoded::parse(&bytes)
        .find(|(name, _)| name == CSRF_FIELD)
        .map(|(_, value)| value.into_owned());
    Ok((sent, Request::from_parts(parts, Body::from(bytes))))
}

/// 419, Laravel's "page expired": not a registered status, but the one the front-ends these
/// users run already recognise; 403 would read as "not allowed" where "reload" is the answer.
fn mismatch(detail: &str) -> Response {
    let status = StatusCode::from_u16(419).expect("a valid status code");
    let extra = json!({ "title": "CSRF token mismatch" });
    crate::problem::response(status, Some("csrf-token-mismatch"), Some(detail), extra)
}

/// The session's CSRF token, created when it has none: for a page that renders a form's
/// `_token` field or a `<meta name="csrf-token">`.
pub async fn token(session: &Session) -> Result<String, SessionError> {
    if let Some(token) = session.get::<String>(TOKEN_KEY).await? {
        return Ok(token);
    }
    regenerate_token(session).await
}

/// Gives the session a new CSRF token (the old one stops working) and returns it; Laravel's
/// `regenerateToken`, for after a login, beside [`Session::cycle_id`].
pub async fn regenerate_token(session: &Session) -> Result<String, SessionError> {
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    session.insert(TOKEN_KEY, &token).await?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exemptions_cover_a_path_and_what_is_below_it() {
        let layer = CsrfLayer::new(&SessionConfig::default())
            .exempt("/hooks")
            .exempt("/apps/");
        for (path, exempt) in [
            ("/hooks", true),
            ("/hooks/payment", true),
            ("/hooksmith", false),
            ("/apps/1/events", true),
            ("/apps", true),
            ("/", false),
        ] {
            assert_eq!(layer.inner.is_exempt(path), exempt, "{path}");
        }
    }

    #[test]
    fn tokens_match_only_when_equal() {
        let token = "0123456789abcdef0123456789abcdef";
        assert!(matches(token, token));
        assert!(!matches(token, "0123456789abcdef0123456789abcdee"));
        assert!(!matches(token, "0123456789abcdef"));
        assert!(!matches(token, ""));
        assert!(!matches("", token));
    }

    #[test]
    fn only_safe_methods_pass_unchecked() {
        for method in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert!(is_safe(&method), "{method}");
        }
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(!is_safe(&method), "{method}");
        }
    }
}
