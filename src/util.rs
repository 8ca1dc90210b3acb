//! Small helpers shared by modules.

use http::HeaderMap;
use http::header::AUTHORIZATION;
use subtle::ConstantTimeEq;

/// The token of an `Authorization: Bearer <token>` header, read as RFC 9110 §11.4 says: the
/// scheme in any case, one or more spaces before the token, whitespace around the value ignored.
/// `None` for another scheme, a missing or empty token, or one with spaces in it.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let value = value.trim_matches([' ', '\t']);
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_start_matches(' ');
    let valid = scheme.eq_ignore_ascii_case("bearer") && !token.is_empty();
    (valid && !token.contains([' ', '\t'])).then_some(token)
}

/// Whether the request carries `expected` as its bearer token, compared in constant time
/// (`subtle`): how long the comparison takes says nothing about where a guess went wrong.
#[allow(dead_code)] // the health and metrics endpoints use it
pub(crate) fn bearer_matches(headers: &HeaderMap, expected: &str) -> bool {
    bearer_token(headers)
        .is_some_and(|given| bool::from(given.as_bytes().ct_eq(expected.as_bytes())))
}

/// Checks a configured bearer token: a client must be able to send it in an `Authorization`
/// header, so it is visible ASCII without spaces (`bearer_token` reads no other). A blank one is
/// shown as given (it is no secret); any other bad one is not shown.
#[allow(dead_code)] // the health and metrics settings use it
pub(crate) fn check_bearer_token(
    setting: &str,
    token: Option<&str>,
) -> Result<(), crate::error::ConfigError> {
    let Some(token) = token else {
        return Ok(());
    };
    if token.trim().is_empty() {
        let problem = "must not be empty or blank";
        return Err(crate::error::ConfigError::new(setting, token, problem));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        let problem = "a bearer token travels in a header: visible ASCII only, no spaces, \
                       newlines or other characters a client cannot send";
        return Err(crate::error::ConfigError::new(
            setting,
            "<redacted>",
            problem,
        ));
    }
    Ok(())
}

/// The cause of an error, kept as its source (`Error::source`) without naming the library
/// type it came from.
pub(crate) type Cause = std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>;

/// A [`Cause`] from a library error or a message.
#[allow(dead_code)] // not every feature set has such an error
pub(crate) fn cause(err: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Cause {
    std::sync::Arc::from(err.into())
}

/// A boxed, `Send` future: what the crate's object-safe traits return (a rate-limit store's
/// check, a health check, a broadcast authorizer).
#[allow(dead_code, unreachable_pub)] // re-exported by the modules that have such a trait
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Hides the password of a URL (`scheme://user:password@host`), for errors and `Debug`.
#[allow(dead_code)] // the Redis and database settings use it
pub(crate) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(start), Some(at)) if at > start => {
            format!("{}://***@{}", &url[..start], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Weighs the entries of an in-process moka store so that one capacity bounds both how many
/// there are and how many bytes they hold: each weighs its bytes plus a fixed overhead, and at
/// least `max_bytes / max_entries` — so with the capacity set to `max_bytes`, neither bound is
/// passed.
#[cfg(any(feature = "cache", feature = "session"))]
#[derive(Clone, Copy, Debug)]
pub(crate) struct ByteBound {
    floor: u64,
}

#[cfg(any(feature = "cache", feature = "session"))]
impl ByteBound {
    /// What an entry costs beyond its key and value: moka's node, the key and `Bytes` headers
    /// (roughly; it only has to keep tiny entries from being free).
    const OVERHEAD: u64 = 96;

    pub(crate) fn new(max_entries: u64, max_bytes: u64) -> Self {
        Self {
            floor: (max_bytes / max_entries.max(1)).max(1),
        }
    }

    /// The weight of an entry of `bytes` (key and value).
    pub(crate) fn weigh(&self, bytes: usize) -> u32 {
        let weight = (bytes as u64)
            .saturating_add(Self::OVERHEAD)
            .max(self.floor);
        weight.min(u64::from(u32::MAX)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_must_be_sendable_in_a_header() {
        assert!(check_bearer_token("metrics.token", None).is_ok());
        assert!(check_bearer_token("metrics.token", Some("s3cr3t-~+/=")).is_ok());
        for bad in ["", "  ", "two words", "line\n", "tab\t", "café"] {
            let err = check_bearer_token("health.token", Some(bad)).unwrap_err();
            assert!(err.to_string().contains("health.token"), "{bad:?}: {err}");
            if !bad.trim().is_empty() {
                assert!(!err.to_string().contains(bad), "not echoed: {err}");
            }
        }
    }

    #[cfg(any(feature = "cache", feature = "session"))]
    #[test]
    fn an_entry_weighs_its_bytes_and_at_least_its_share_of_the_bound() {
        let bound = ByteBound::new(1_000, 1_000_000);
        assert_eq!(
            bound.weigh(10),
            1_000,
            "a small entry counts as a thousandth"
        );
        assert_eq!(bound.weigh(5_000), 5_096, "a large one by its bytes");
        assert_eq!(ByteBound::new(10, 5).weigh(0), 96);
        assert_eq!(bound.weigh(usize::MAX), u32::MAX);
    }

    fn header(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn bearer_tokens_as_rfc_9110_reads_them() {
        for ok in [
            "Bearer s3cret",
            "bearer s3cret",
            "BEARER   s3cret",
            " Bearer s3cret\t",
        ] {
            assert_eq!(bearer_token(&header(ok)), Some("s3cret"), "{ok:?}");
            assert!(bearer_matches(&header(ok), "s3cret"), "{ok:?}");
        }
        for bad in [
            "Basic s3cret",
            "Bearer",
            "Bearer ",
            "Bearers3cret",
            "Bearer s3 cret",
        ] {
            assert_eq!(bearer_token(&header(bad)), None, "{bad:?}");
        }
        assert!(!bearer_matches(&header("Bearer s3cre"), "s3cret"));
        assert!(!bearer_matches(&header("Bearer s3cret2"), "s3cret"));
        assert!(!bearer_matches(&HeaderMap::new(), "s3cret"));
    }
}
