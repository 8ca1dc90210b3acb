//! The cookies the session module sets: the session cookie (set, renewed when a read extended
//! the session, removed) and the CSRF layer's `XSRF-TOKEN`.

use std::time::Duration;

use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderValue};
use tower_sessions::cookie::{Cookie, SameSite as CookieSameSite};

use super::config::{SameSite, SessionConfig};

/// The attributes of the session cookie, for cookies set beside it.
#[derive(Clone, Debug)]
pub(crate) struct CookieAttributes {
    pub(crate) secure: bool,
    pub(crate) same_site: CookieSameSite,
    /// `Max-Age` of a renewed cookie: the session's inactivity timeout plus the extension's
    /// slack, rounded up to whole seconds (the cookie outlives the session, never the reverse).
    pub(crate) max_age: Duration,
}

impl CookieAttributes {
    pub(crate) fn new(config: &SessionConfig, max_age: Duration) -> Self {
        let same_site = match config.same_site {
            SameSite::Lax => CookieSameSite::Lax,
            SameSite::Strict => CookieSameSite::Strict,
            SameSite::None => CookieSameSite::None,
        };
        Self {
            secure: config.secure,
            same_site,
            max_age,
        }
    }

    /// `Set-Cookie` for `name=value` with these attributes, for the whole site (`Path=/`).
    pub(crate) fn set_cookie(&self, name: &str, value: &str, http_only: bool) -> HeaderValue {
        let seconds = self.max_age.as_secs() + u64::from(self.max_age.subsec_nanos() > 0);
        let mut cookie = self.cookie(name, value, http_only);
        cookie.set_max_age(tower_sessions::cookie::time::Duration::seconds(
            seconds.min(i64::MAX as u64) as i64,
        ));
        HeaderValue::try_from(cookie.to_string()).expect("cookie names and values are checked")
    }

    /// `Set-Cookie` that makes the client forget the session cookie `name` (`Max-Age=0`, an
    /// expiry in the past), with the attributes it was set with.
    pub(crate) fn remove_cookie(&self, name: &str) -> HeaderValue {
        let mut cookie = self.cookie(name, "", true);
        cookie.make_removal();
        HeaderValue::try_from(cookie.to_string()).expect("cookie names are checked")
    }

    fn cookie<'c>(&self, name: &'c str, value: &'c str, http_only: bool) -> Cookie<'c> {
        Cookie::build((name, value))
            .http_only(http_only)
            .secure(self.secure)
            .same_site(self.same_site)
            .path("/")
            .build()
    }
}

/// Whether the response already sets (or removes) cookie `name`.
pub(crate) fn sets(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|header| header.to_str().ok())
        .any(|set| {
            set.split_once('=')
                .is_some_and(|(set_name, _)| set_name.trim() == name)
        })
}
