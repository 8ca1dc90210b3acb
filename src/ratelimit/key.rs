//! Who a request counts against: [`Key`] extractors and the [`ClientIp`] resolver.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath};
use http::request::Parts;
use http::{HeaderMap, HeaderName};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// Forwarded entries looked at, from the right, before giving up on a header.
const MAX_HOPS: usize = 32;

/// The header a trusted proxy writes the client address into. Read only one: a proxy that sets
/// `X-Forwarded-For` passes a client's own `Forwarded` or `X-Real-IP` through untouched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the default).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    Forwarded,
    /// `X-Real-IP: client` (nginx `real_ip`), one address.
    XRealIp,
}

impl FromStr for ProxyHeader {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            "x-real-ip" => Ok(Self::XRealIp),
            _ => Err("expected x-forwarded-for, forwarded or x-real-ip".into()),
        }
    }
}

/// Finds the client address of a request.
///
/// The peer address of the TCP connection is the client — unless the peer is one of the
/// configured trusted proxies. Then the forwarding header is read **from the right**, passing over
/// trusted hops, and the rightmost untrusted address is the client (entries further left were
/// written by the client and prove nothing). IPv6 clients are keyed by their /64 network by
/// default, since one host usually holds the whole /64.
///
/// ```
/// use std::net::IpAddr;
/// use http::HeaderMap;
/// use rustforge_prod::ratelimit::ClientIp;
///
/// let ip = ClientIp::new().trusted_proxies(["10.0.0.0/8"])?;
/// let mut headers = HeaderMap::new();
/// headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.2".parse().unwrap());
/// let peer: IpAddr = "10.0.0.1".parse().unwrap();
/// assert_eq!(ip.resolve(peer, &headers).to_string(), "203.0.113.7");
/// // From an untrusted peer the header is ignored.
/// assert_eq!(ip.resolve("198.51.100.1".parse().unwrap(), &headers).to_string(), "198.51.100.1");
/// # Ok::<(), rustforge_prod::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIp {
    trusted: Vec<IpNet>,
    header: ProxyHeader,
    ipv6_prefix: u8,
}

impl Default for ClientIp {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientIp {
    /// No trusted proxies, `X-Forwarded-For` when some are added, IPv6 keyed by /64.
    pub fn new() -> Self {
        Self {
            trusted: Vec::new(),
            header: ProxyHeader::XForwardedFor,
            ipv6_prefix: 64,
        }
    }

    /// Trusts these proxy networks (`10.0.0.0/8`, `::1/128`, or a single address).
    pub fn trusted_proxies<I, S>(mut self, cidrs: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.trusted = parse_cidrs("rate_limit.trusted_proxies", cidrs)?;
        Ok(self)
    }

    /// Trusts these proxy networks.
    pub fn trusted_networks(mut self, networks: impl IntoIterator<Item = IpNet>) -> Self {
        self.trusted = networks.into_iter().collect();
        self
    }

    /// Reads the client address from `header` when the peer is trusted.
    pub fn header(mut self, header: ProxyHeader) -> Self {
        self.header = header;
        self
    }

    /// Keys IPv6 clients by this prefix length (default 64; 128 keys each address).
    pub fn ipv6_prefix(mut self, bits: u8) -> Result<Self, ConfigError> {
        if bits == 0 || bits > 128 {
            return Err(ConfigError::new(
                "rate_limit.ipv6_prefix",
                bits.to_string(),
                "expected 1 to 128",
            ));
        }
        self.ipv6_prefix = bits;
        Ok(self)
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client address of a request that came from `peer`.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.is_trusted(peer) {
            return peer;
        }
        let name = match self.header {
            ProxyHeader::XForwardedFor => "x-forwarded-for",
            ProxyHeader::Forwarded => "forwarded",
            ProxyHeader::XRealIp => "x-real-ip",
        };
        // Several header lines form one list, in order; walk it from the right.
        let lines: Vec<&[u8]> = headers.get_all(name).iter().map(|v| v.as_bytes()).collect();
        let mut client = peer;
        let hops = lines
            .iter()
            .rev()
            .flat_map(|line| line.rsplit(|b| *b == b','))
            .take(MAX_HOPS);
        for entry in hops {
            let parsed = match self.header {
                ProxyHeader::Forwarded => forwarded_for(entry),
                _ => parse_addr(entry),
            };
            // Garbage: the hop to its right (already trusted) is the last address we can vouch for.
            let Some(ip) = parsed else {
                return client;
            };
            client = ip;
            if !self.is_trusted(ip) {
                return ip;
            }
        }
        client
    }

    /// The rate-limit key of an address: itself for IPv4, its network for IPv6.
    pub fn key_of(&self, ip: IpAddr) -> String {
        match self.network_of(ip) {
            IpAddr::V6(network) => format!("{network}/{}", self.ipv6_prefix),
            v4 => v4.to_string(),
        }
    }

    /// The address a client is counted by: itself for IPv4, the first address of its network
    /// (the configured prefix) for IPv6, where one client holds a whole /64 or more.
    pub fn network_of(&self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.ipv6_prefix))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(bits & mask))
            }
        }
    }
}

pub(crate) fn parse_cidrs<I, S>(setting: &str, cidrs: I) -> Result<Vec<IpNet>, ConfigError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    cidrs
        .into_iter()
        .map(|c| {
            let c = c.as_ref().trim();
            c.parse::<IpNet>()
                .or_else(|_| c.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    ConfigError::new(
                        setting,
                        c,
                        "expected a network like 10.0.0.0/8 or an address",
                    )
                })
        })
        .collect()
}

/// `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:443`, surrounding spaces allowed.
fn parse_addr(raw: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(raw).ok()?.trim().trim_matches('"');
    if s.len() > 64 {
        return None;
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sock) = s.parse::<SocketAddr>() {
        return Some(sock.ip().to_canonical());
    }
    s.strip_prefix('[')?
        .strip_suffix(']')?
        .parse::<IpAddr>()
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The `for=` parameter of one RFC 7239 element (`for=1.2.3.4;proto=https`).
fn forwarded_for(element: &[u8]) -> Option<IpAddr> {
    element.split(|b| *b == b';').find_map(|pair| {
        let pair = std::str::from_utf8(pair).ok()?.trim();
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| parse_addr(value.as_bytes()))
            .flatten()
    })
}

type KeyFn = dyn Fn(&Parts) -> Option<String> + Send + Sync;

/// What a limiter counts requests by.
///
/// ```
/// use rustforge_prod::ratelimit::Key;
///
/// #[derive(Clone)]
/// struct UserId(u64);
/// impl std::fmt::Display for UserId {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { self.0.fmt(f) }
/// }
///
/// let by_ip = Key::ip();                       // the default
/// let by_api_key = Key::header("x-api-key")?;  // requests without the header are not limited
/// let by_user = Key::extension::<UserId>();    // a value your auth middleware inserted
/// let by_tenant = Key::from_fn(|parts| {
///     parts.uri.host().map(str::to_owned)
/// });
/// # let _ = (by_ip, by_api_key, by_user, by_tenant);
/// # Ok::<(), rustforge_prod::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Key(KeyKind);

#[derive(Clone)]
enum KeyKind {
    Ip,
    Header(HeaderName),
    Route,
    Global,
    Custom(Arc<KeyFn>),
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            KeyKind::Ip => f.write_str("Key::ip()"),
            KeyKind::Header(h) => write!(f, "Key::header({h:?})"),
            KeyKind::Route => f.write_str("Key::route()"),
            KeyKind::Global => f.write_str("Key::global()"),
            KeyKind::Custom(_) => f.write_str("Key::from_fn(..)"),
        }
    }
}

/// Why no key could be found for a request that must have one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MissingPeer;

impl Key {
    /// The client IP (see [`ClientIp`]). Needs the peer address: serve the app with
    /// `into_make_service_with_connect_info::<SocketAddr>()`; without it every limited request
    /// gets a 500 that says so.
    pub fn ip() -> Self {
        Self(KeyKind::Ip)
    }

    /// The value of a request header, such as an API key. Requests without it are not counted
    /// by this limiter (pair it with an IP limiter).
    pub fn header(name: &str) -> Result<Self, ConfigError> {
        HeaderName::try_from(name)
            .map(|h| Self(KeyKind::Header(h)))
            .map_err(|_| ConfigError::new("rate_limit.key", name, "not a valid header name"))
    }

    /// The value of type `T` that earlier middleware (authentication) put into the request
    /// extensions, formatted with `Display`. Requests without it are not counted.
    pub fn extension<T>() -> Self
    where
        T: fmt::Display + Clone + Send + Sync + 'static,
    {
        Self::from_fn(|parts| parts.extensions.get::<T>().map(|v| v.to_string()))
    }

    /// The route template (`/users/{id}`): one budget per route, shared by every client.
    pub fn route() -> Self {
        Self(KeyKind::Route)
    }

    /// One budget for every request.
    pub fn global() -> Self {
        Self(KeyKind::Global)
    }

    /// Any function of the request head; `None` means "do not count this request".
    pub fn from_fn(f: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static) -> Self {
        Self(KeyKind::Custom(Arc::new(f)))
    }

    /// The key of a request: `Ok(None)` skips the limiter.
    pub(crate) fn extract(
        &self,
        parts: &Parts,
        client_ip: &ClientIp,
    ) -> Result<Option<String>, MissingPeer> {
        Ok(match &self.0 {
            KeyKind::Ip => {
                let peer = parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .ok_or(MissingPeer)?
                    .0
                    .ip();
                Some(format!(
                    "ip:{}",
                    client_ip.key_of(client_ip.resolve(peer, &parts.headers))
                ))
            }
            KeyKind::Header(name) => parts
                .headers
                .get(name)
                .map(|v| format!("h:{}", String::from_utf8_lossy(v.as_bytes()))),
            KeyKind::Route => Some(format!(
                "route:{}",
                parts
                    .extensions
                    .get::<MatchedPath>()
                    .map_or(parts.uri.path(), MatchedPath::as_str)
            )),
            KeyKind::Global => Some("global".to_owned()),
            KeyKind::Custom(f) => f(parts).map(|k| format!("fn:{k}")),
        })
    }
}

/// `ip` or `header:<name>`, as in `RUSTFORGE_RATE_LIMIT_KEY`.
impl FromStr for Key {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let s = s.trim();
        match s.split_once(':') {
            None if s.eq_ignore_ascii_case("ip") => Ok(Self::ip()),
            None if s.eq_ignore_ascii_case("global") => Ok(Self::global()),
            None if s.eq_ignore_ascii_case("route") => Ok(Self::route()),
            Some((kind, name)) if kind.eq_ignore_ascii_case("header") => Self::header(name.trim()),
            _ => Err(ConfigError::new(
                "rate_limit.key",
                s,
                "expected ip, header:<name>, route or global",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &str, values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rightmost_untrusted_across_lines() {
        let c = ClientIp::new().trusted_proxies(["10.0.0.0/8"]).unwrap();
        let h = headers("x-forwarded-for", &["1.1.1.1, 2.2.2.2", "10.1.1.1"]);
        assert_eq!(c.resolve(ip("10.0.0.1"), &h), ip("2.2.2.2"));
        // Everything trusted: the leftmost hop is the client.
        let h = headers("x-forwarded-for", &["10.9.9.9, 10.1.1.1"]);
        assert_eq!(c.resolve(ip("10.0.0.1"), &h), ip("10.9.9.9"));
        // No header: the proxy itself.
        assert_eq!(c.resolve(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
    }

    #[test]
    fn garbage_stops_at_the_last_trusted_hop() {
        let c = ClientIp::new().trusted_proxies(["10.0.0.0/8"]).unwrap();
        let h = headers("x-forwarded-for", &["1.1.1.1, not-an-ip, 10.2.2.2"]);
        assert_eq!(c.resolve(ip("10.0.0.1"), &h), ip("10.2.2.2"));
        let long = format!("{}5.5.5.5", "9.9.9.9, ".repeat(10_000));
        let h = headers("x-forwarded-for", &[&long]);
        assert_eq!(c.resolve(ip("10.0.0.1"), &h), ip("5.5.5.5"));
        let trusted_flood = format!("1.1.1.1, {}", "10.0.0.9, ".repeat(100));
        let h = headers("x-forwarded-for", &[trusted_flood.trim_end_matches(", ")]);
        // More trusted hops than we walk: the last one looked at, never the spoofable left end.
        assert_eq!(c.resolve(ip("10.0.0.1"), &h), ip("10.0.0.9"));
    }

    #[test]
    fn forwarded_and_ports_and_mapped_addresses() {
        let c = ClientIp::new()
            .trusted_proxies(["::1", "127.0.0.1"])
            .unwrap()
            .header(ProxyHeader::Forwarded);
        let h = headers(
            "forwarded",
            &[r#"for=1.1.1.1, for="[2001:db8::7]:4711";proto=https, for=127.0.0.1:80"#],
        );
        assert_eq!(c.resolve(ip("::ffff:127.0.0.1"), &h), ip("2001:db8::7"));
        let h = headers("forwarded", &["for=unknown"]);
        assert_eq!(c.resolve(ip("::1"), &h), ip("::1"));
    }

    #[test]
    fn ipv6_keys_by_prefix() {
        let c = ClientIp::new();
        assert_eq!(c.key_of(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(c.key_of(ip("2001:db8:1:2:ffff::9")), "2001:db8:1:2::/64");
        assert_eq!(c.key_of(ip("::ffff:1.2.3.4")), "1.2.3.4");
        let c = c.ipv6_prefix(48).unwrap();
        assert_eq!(c.key_of(ip("2001:db8:1:2::1")), "2001:db8:1::/48");
        assert!(ClientIp::new().ipv6_prefix(0).is_err());
        assert!(ClientIp::new().ipv6_prefix(129).is_err());
    }

    #[test]
    fn parses_key_settings() {
        assert!("ip".parse::<Key>().is_ok());
        assert!("header:x-api-key".parse::<Key>().is_ok());
        assert!("header:bad header".parse::<Key>().is_err());
        assert!("cookie".parse::<Key>().is_err());
        assert!(ClientIp::new().trusted_proxies(["10.0.0.0/33"]).is_err());
    }
}
