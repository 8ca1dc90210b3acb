//! HMAC-SHA256 signatures of the Pusher protocol: channel and user authorisation, the HTTP API
//! request signature and encrypted-channel keys. Every check is constant-time and runs over the
//! exact strings received.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, parts: &[&str]) -> HmacSha256 {
    // HMAC takes keys of any length: `new_from_slice` cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    for part in parts {
        mac.update(part.as_bytes());
    }
    mac
}

/// `lowercase_hex(HMAC-SHA256(secret, concat(parts)))`.
pub fn sign(secret: &str, parts: &[&str]) -> String {
    hex::encode(mac(secret, parts).finalize().into_bytes())
}

/// Whether `signature_hex` is the HMAC of `parts`, compared in constant time.
pub fn verify(secret: &str, parts: &[&str], signature_hex: &str) -> bool {
    match hex::decode(signature_hex) {
        Ok(bytes) => mac(secret, parts).verify_slice(&bytes).is_ok(),
        Err(_) => false,
    }
}

/// The `auth` value for a channel: `key:hex(HMAC(secret, socket_id:channel[:channel_data]))`.
pub fn channel_auth(
    key: &str,
    secret: &str,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
) -> String {
    let signature = match channel_data {
        Some(data) => sign(secret, &[socket_id, ":", channel, ":", data]),
        None => sign(secret, &[socket_id, ":", channel]),
    };
    format!("{key}:{signature}")
}

/// The `auth` value for `pusher:signin`: `key:hex(HMAC(secret, socket_id::user::user_data))`.
pub fn user_auth(key: &str, secret: &str, socket_id: &str, user_data: &str) -> String {
    format!(
        "{key}:{}",
        sign(secret, &[socket_id, "::user::", user_data])
    )
}

/// Checks an `auth` value (`key:hex`) against the app key and the signed parts.
pub fn verify_auth(key: &str, secret: &str, parts: &[&str], auth: &str) -> bool {
    match auth.split_once(':') {
        Some((given_key, signature)) => given_key == key && verify(secret, parts, signature),
        None => false,
    }
}

/// The per-channel key of an encrypted channel: base64(SHA-256(channel ‖ master key)).
pub fn shared_secret(channel: &str, master_key: &[u8]) -> String {
    use base64::Engine;
    let mut hash = Sha256::new();
    hash.update(channel.as_bytes());
    hash.update(master_key);
    base64::engine::general_purpose::STANDARD.encode(hash.finalize())
}

/// `lowercase_hex(MD5(body))`, the HTTP API's `body_md5`.
pub fn body_md5(body: &[u8]) -> String {
    use md5::Digest as _;
    hex::encode(md5::Md5::digest(body))
}

/// Why an HTTP API request was refused (all answered with 401).
#[derive(Debug, PartialEq, Eq)]
pub enum ApiAuthError {
    /// A required `auth_*` parameter is missing or malformed.
    Missing(&'static str),
    /// `auth_key` is not the app's key.
    UnknownKey,
    /// `auth_timestamp` is outside the allowed window.
    Expired,
    /// `body_md5` does not match the body.
    BodyMd5,
    /// `auth_signature` does not match.
    Signature,
}

impl ApiAuthError {
    /// A message for the 401 body.
    pub fn message(&self) -> String {
        match self {
            Self::Missing(name) => format!("missing or invalid {name}"),
            Self::UnknownKey => "unknown auth_key".into(),
            Self::Expired => "auth_timestamp is outside the allowed window".into(),
            Self::BodyMd5 => "body_md5 does not match the body".into(),
            Self::Signature => "invalid auth_signature".into(),
        }
    }
}

/// An HTTP API request as received.
#[derive(Debug)]
pub struct ApiRequest<'a> {
    /// `GET`, `POST`.
    pub method: &'a str,
    /// The path from `/apps/` on.
    pub path: &'a str,
    /// The decoded query parameters.
    pub query: &'a [(String, String)],
    /// The raw body.
    pub body: &'a [u8],
}

/// Verifies an HTTP API request signed with auth_version 1.0; `now` and `window` are seconds.
pub fn verify_api_request(
    key: &str,
    secret: &str,
    request: &ApiRequest<'_>,
    now: u64,
    window: Option<u64>,
) -> Result<(), ApiAuthError> {
    let ApiRequest {
        method,
        path,
        query,
        body,
    } = *request;
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let signature = get("auth_signature").ok_or(ApiAuthError::Missing("auth_signature"))?;
    if get("auth_key").ok_or(ApiAuthError::Missing("auth_key"))? != key {
        return Err(ApiAuthError::UnknownKey);
    }
    let timestamp: u64 = get("auth_timestamp")
        .and_then(|t| t.parse().ok())
        .ok_or(ApiAuthError::Missing("auth_timestamp"))?;
    if get("auth_version") != Some("1.0") {
        return Err(ApiAuthError::Missing("auth_version"));
    }
    if !body.is_empty() && get("body_md5") != Some(body_md5(body).as_str()) {
        return Err(ApiAuthError::BodyMd5);
    }
    let mut params: Vec<_> = query
        .iter()
        .filter(|(k, _)| k != "auth_signature")
        .map(|(k, v)| format!("{}={v}", k.to_ascii_lowercase()))
        .collect();
    params.sort();
    let params = params.join("&");
    if !verify(secret, &[method, "\n", path, "\n", &params], signature) {
        return Err(ApiAuthError::Signature);
    }
    if let Some(window) = window
        && now.abs_diff(timestamp) > window
    {
        return Err(ApiAuthError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The vectors of `shared/reference/pusher-protocol.md` §13 (key `k`, secret `s`).
    #[test]
    fn channel_and_user_auth_vectors() {
        assert_eq!(
            channel_auth("k", "s", "123.456", "private-foo", None),
            "k:66cb118507a24355dbdbb3e8c9dab74e687912a8f6874499439874024f45b878"
        );
        let data = r#"{"user_id":"1","user_info":{"name":"a"}}"#;
        assert_eq!(
            channel_auth("k", "s", "123.456", "presence-room", Some(data)),
            "k:9e4e4a636537ae99e6151e13fbb4b8c6018d11e4869603a47e1fb3b6ea277599"
        );
        assert_eq!(
            channel_auth("k", "s", "123.456", "private-encrypted-foo", None),
            "k:49ebae2d886d1a58bdde75842ea4eb1c2326d5664f76b97c6bf404425f770c8f"
        );
        assert_eq!(
            user_auth("k", "s", "123.456", r#"{"id":"1"}"#),
            "k:6aea4e05e81a03dba3f2069a48e003448ef646b3428929ee2e55a6b93e5145bf"
        );
        let auth = channel_auth("k", "s", "123.456", "private-foo", None);
        assert!(verify_auth(
            "k",
            "s",
            &["123.456", ":", "private-foo"],
            &auth
        ));
        assert!(!verify_auth(
            "k2",
            "s",
            &["123.456", ":", "private-foo"],
            &auth
        ));
        assert!(!verify_auth(
            "k",
            "s",
            &["123.457", ":", "private-foo"],
            &auth
        ));
        assert!(!verify_auth(
            "k",
            "s",
            &["123.456", ":", "private-foo"],
            "k:zz"
        ));
    }

    #[test]
    fn shared_secret_vector() {
        assert_eq!(
            shared_secret("private-encrypted-foo", &[7u8; 32]),
            "UsGxKqmP9IdrlCW682IBqbcjk77iOZBrEYVv/cexvcM="
        );
    }

    #[test]
    fn http_api_vector_and_refusals() {
        let body = br#"{"name":"e","channels":["c"],"data":"{}"}"#;
        assert_eq!(body_md5(body), "387a0db7c7815ffade07de89504d6f33");
        let mut query: Vec<(String, String)> = [
            ("auth_key", "k"),
            ("auth_timestamp", "1795753997"),
            ("auth_version", "1.0"),
            ("body_md5", "387a0db7c7815ffade07de89504d6f33"),
            (
                "auth_signature",
                "bd5fea8f3019a9dd98b87fe8085964392807f5b3696fd98f77eb0c3508af250b",
            ),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let check = |query: &[(String, String)], body: &[u8], now| {
            let request = ApiRequest {
                method: "POST",
                path: "/apps/1/events",
                query,
                body,
            };
            verify_api_request("k", "s", &request, now, Some(600))
        };
        assert_eq!(check(&query, body, 1795753997), Ok(()));
        assert_eq!(
            check(&query, body, 1795753997 + 601),
            Err(ApiAuthError::Expired)
        );
        assert_eq!(check(&query, b"{}", 1795753997), Err(ApiAuthError::BodyMd5));
        query[4].1.replace_range(0..1, "c");
        assert_eq!(
            check(&query, body, 1795753997),
            Err(ApiAuthError::Signature)
        );
        query[0].1 = "other".into();
        assert_eq!(
            check(&query, body, 1795753997),
            Err(ApiAuthError::UnknownKey)
        );
    }
}
