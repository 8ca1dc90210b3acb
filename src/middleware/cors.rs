//! CORS on tower-http's `CorsLayer`, with the configuration checked instead of panicking.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use http::{HeaderValue, Method, request::Parts};
use regex::Regex;
use serde::{Deserialize, Serialize};
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer, ExposeHeaders};

use crate::error::ConfigError;

/// Headers exposed to browser scripts by default: the request id and the rate-limit headers.
pub const DEFAULT_EXPOSE_HEADERS: &[&str] = &[
    "x-request-id",
    "retry-after",
    "ratelimit",
    "ratelimit-policy",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
];

/// Request headers browsers may send cross-origin by default.
pub const DEFAULT_ALLOW_HEADERS: &[&str] = &[
    "accept",
    "accept-language",
    "authorization",
    "content-type",
    "x-requested-with",
    "x-request-id",
    "x-socket-id",
    // What Laravel pages send with every request (the `csrf-token` meta tag, Axios' copy of the
    // `XSRF-TOKEN` cookie), Echo's `/broadcasting/auth` included.
    "x-csrf-token",
    "x-xsrf-token",
];

/// Methods allowed cross-origin by default.
pub const DEFAULT_ALLOW_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/// A user-supplied origin check (not serializable; set it in code).
#[derive(Clone)]
pub struct OriginPredicate(Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl fmt::Debug for OriginPredicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OriginPredicate(..)")
    }
}

impl PartialEq for OriginPredicate {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// CORS settings.
///
/// With no origin configured, no cross-origin request is allowed and the layer is left out
/// (browsers then apply the same-origin policy). An origin is `scheme://host[:port]` exactly as
/// browsers send it, or `*` for any origin (not with credentials).
///
/// ```
/// use rustforge_prod::middleware::CorsConfig;
///
/// let cors = CorsConfig::origins(["https://app.example.com"])
///     .allow_origin_regex(r"^https://[a-z0-9-]+\.preview\.example\.com$")
///     .credentials(true);
/// # let _ = cors;
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Answer CORS at all (default `true`).
    pub enabled: bool,
    /// Allowed origins, or `["*"]`.
    pub origins: Vec<String>,
    /// Regular expressions an origin may match instead (e.g. for preview subdomains).
    pub origin_regexes: Vec<String>,
    /// A predicate an origin may satisfy instead (code only).
    #[serde(skip)]
    pub origin_predicate: Option<OriginPredicate>,
    /// Allowed methods, or `["*"]`.
    pub methods: Vec<String>,
    /// Allowed request headers, or `["*"]`.
    pub headers: Vec<String>,
    /// Response headers readable by scripts.
    pub expose_headers: Vec<String>,
    /// Allow credentials (cookies, HTTP auth).
    pub credentials: bool,
    /// How long a browser may cache a preflight answer.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
}

impl Default for CorsConfig {
    fn default() -> Self {
        let owned = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
        Self {
            enabled: true,
            origins: Vec::new(),
            origin_regexes: Vec::new(),
            origin_predicate: None,
            methods: owned(DEFAULT_ALLOW_METHODS),
            headers: owned(DEFAULT_ALLOW_HEADERS),
            expose_headers: owned(DEFAULT_EXPOSE_HEADERS),
            credentials: false,
            max_age: Duration::from_secs(3600),
        }
    }
}

impl CorsConfig {
    /// Allows exactly these origins.
    pub fn origins<I, T>(origins: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Self {
            origins: origins.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Allows any origin (`*`); cannot be combined with credentials.
    pub fn any_origin() -> Self {
        Self::origins(["*"])
    }

    /// No CORS handling at all.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// Also allows origins matching this regular expression (checked at `build()`).
    pub fn allow_origin_regex(mut self, regex: impl Into<String>) -> Self {
        self.origin_regexes.push(regex.into());
        self
    }

    /// Also allows origins for which `predicate` returns true.
    pub fn allow_origin_fn(
        mut self,
        predicate: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.origin_predicate = Some(OriginPredicate(Arc::new(predicate)));
        self
    }

    /// Sets the allowed methods.
    pub fn methods<I: IntoIterator<Item = T>, T: Into<String>>(mut self, methods: I) -> Self {
        self.methods = methods.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the allowed request headers.
    pub fn headers<I: IntoIterator<Item = T>, T: Into<String>>(mut self, headers: I) -> Self {
        self.headers = headers.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the response headers scripts may read (replacing the defaults).
    pub fn expose_headers<I: IntoIterator<Item = T>, T: Into<String>>(
        mut self,
        headers: I,
    ) -> Self {
        self.expose_headers = headers.into_iter().map(Into::into).collect();
        self
    }

    /// Allows credentials (cookies, HTTP auth).
    pub fn credentials(mut self, allow: bool) -> Self {
        self.credentials = allow;
        self
    }

    /// Sets how long a browser may cache a preflight answer.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Checks the settings and builds the tower-http layer; `None` when no origin is allowed.
    pub(crate) fn build(&self) -> Result<Option<CorsLayer>, ConfigError> {
        if !self.enabled {
            return Ok(None);
        }
        let any_origin = self.origins.iter().any(|o| o == "*");
        if any_origin && self.origins.len() > 1 {
            return Err(ConfigError::new(
                "http.cors.origins",
                self.origins.join(","),
                "`*` cannot be combined with other origins",
            ));
        }
        let wildcard = |key: &str, list: &[String]| -> Result<bool, ConfigError> {
            let star = list.iter().any(|v| v == "*");
            if star && self.credentials {
                return Err(ConfigError::new(
                    "http.cors.credentials",
                    "true",
                    format!(
                        "credentials cannot be combined with `*` in {key} (browsers reject it)"
                    ),
                ));
            }
            Ok(star)
        };
        wildcard("http.cors.origins", &self.origins)?;
        let any_method = wildcard("http.cors.methods", &self.methods)?;
        let any_header = wildcard("http.cors.headers", &self.headers)?;
        let any_expose = wildcard("http.cors.expose_headers", &self.expose_headers)?;

        let origins = if any_origin {
            Vec::new()
        } else {
            self.origins
                .iter()
                .map(|o| parse_origin(o))
                .collect::<Result<Vec<_>, _>>()?
        };
        let regexes = self
            .origin_regexes
            .iter()
            .map(|r| {
                Regex::new(r).map_err(|e| {
                    ConfigError::new(
                        "http.cors.origin_regexes",
                        r,
                        format!("not a valid regex: {e}"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let allow_methods = if any_method {
            AllowMethods::any()
        } else {
            AllowMethods::list(parse_all(&self.methods, "http.cors.methods", |m| {
                Method::from_bytes(m.as_bytes()).ok()
            })?)
        };
        let allow_headers = if any_header {
            AllowHeaders::any()
        } else {
            AllowHeaders::list(parse_headers(&self.headers, "http.cors.headers")?)
        };
        let expose = if any_expose {
            ExposeHeaders::any()
        } else {
            ExposeHeaders::list(parse_headers(
                &self.expose_headers,
                "http.cors.expose_headers",
            )?)
        };
        if origins.is_empty()
            && regexes.is_empty()
            && self.origin_predicate.is_none()
            && !any_origin
        {
            return Ok(None);
        }

        let allow_origin = if any_origin {
            AllowOrigin::any()
        } else if regexes.is_empty() && self.origin_predicate.is_none() {
            AllowOrigin::list(origins)
        } else {
            let predicate = self.origin_predicate.clone();
            AllowOrigin::predicate(move |origin: &HeaderValue, _: &Parts| {
                origins.contains(origin)
                    || origin.to_str().is_ok_and(|o| {
                        regexes.iter().any(|r| r.is_match(o))
                            || predicate.as_ref().is_some_and(|p| (p.0)(o))
                    })
            })
        };
        Ok(Some(
            CorsLayer::new()
                .allow_origin(allow_origin)
                .allow_methods(allow_methods)
                .allow_headers(allow_headers)
                .expose_headers(expose)
                .allow_credentials(self.credentials)
                .max_age(self.max_age),
        ))
    }
}

/// An origin as browsers send it: `scheme://host[:port]`, nothing after.
fn parse_origin(origin: &str) -> Result<HeaderValue, ConfigError> {
    let bad = |reason: &str| ConfigError::new("http.cors.origins", origin, reason);
    let uri: http::Uri = origin
        .parse()
        .map_err(|_| bad("not a URL like https://app.example.com"))?;
    if uri.scheme().is_none() || uri.authority().is_none() {
        return Err(bad(
            "an origin needs a scheme and a host, like https://app.example.com",
        ));
    }
    if origin.ends_with('/') || uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(bad("an origin has no path or trailing slash"));
    }
    HeaderValue::from_str(origin).map_err(|_| bad("not a valid header value"))
}

fn parse_headers(list: &[String], key: &str) -> Result<Vec<HeaderName>, ConfigError> {
    parse_all(list, key, |h| HeaderName::try_from(h).ok())
}

fn parse_all<T>(
    list: &[String],
    key: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, ConfigError> {
    list.iter()
        .map(|item| parse(item).ok_or_else(|| ConfigError::new(key, item, "not a valid name")))
        .collect()
}
