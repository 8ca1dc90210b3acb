//! [`UrlSigner`]: expiring signed URLs for the local and memory disks.
//!
//! A URL is `{base}/{disk}/{path}?expires={unix seconds}&signature={hex}` where the signature is
//! HMAC-SHA256 over `METHOD \n disk \n path \n expires` with the storage signing key. The
//! signature is checked in constant time before the expiry, so a tampered URL never learns
//! whether it would have been current.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use http::Method;
use sha2::Sha256;

use super::disk::encode_path;

type HmacSha256 = Hmac<Sha256>;

/// Signs and verifies the local disks' temporary URLs.
pub(crate) struct UrlSigner {
    key: Vec<u8>,
    /// `{app url}{route prefix}`, without a trailing `/`.
    base: String,
}

/// Why a signed URL was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    BadSignature,
    Expired,
}

impl UrlSigner {
    pub(crate) fn new(key: Vec<u8>, base: String) -> Self {
        Self { key, base }
    }

    pub(crate) fn url(
        &self,
        method: &Method,
        disk: &str,
        path: &str,
        expires_in: Duration,
    ) -> String {
        let expires = unix_now() + expires_in.as_secs().max(1);
        let signature = hex::encode(
            self.mac(method, disk, path, expires)
                .finalize()
                .into_bytes(),
        );
        format!(
            "{}/{}/{}?expires={expires}&signature={signature}",
            self.base,
            encode_path(disk),
            encode_path(path)
        )
    }

    pub(crate) fn verify(
        &self,
        method: &Method,
        disk: &str,
        path: &str,
        expires: u64,
        signature: &str,
        now: u64,
    ) -> Result<(), Refusal> {
        let signature = hex::decode(signature).map_err(|_| Refusal::BadSignature)?;
        self.mac(method, disk, path, expires)
            .verify_slice(&signature)
            .map_err(|_| Refusal::BadSignature)?;
        if now > expires {
            return Err(Refusal::Expired);
        }
        Ok(())
    }

    fn mac(&self, method: &Method, disk: &str, path: &str, expires: u64) -> HmacSha256 {
        // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        for part in [method.as_str(), disk, path] {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        mac.update(expires.to_string().as_bytes());
        mac
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_method_disk_path_and_expiry() {
        let signer = UrlSigner::new(b"k".repeat(32), "/storage".into());
        let url = signer.url(&Method::GET, "local", "a b/c.txt", Duration::from_secs(60));
        assert!(
            url.starts_with("/storage/local/a%20b/c.txt?expires="),
            "{url}"
        );
        let query = url.split_once('?').unwrap().1;
        let expires: u64 = query[8..query.find('&').unwrap()].parse().unwrap();
        let signature = query.rsplit_once('=').unwrap().1;
        let now = unix_now();
        let ok = |m: &Method, d: &str, p: &str, e: u64| signer.verify(m, d, p, e, signature, now);
        assert_eq!(ok(&Method::GET, "local", "a b/c.txt", expires), Ok(()));
        assert_eq!(
            ok(&Method::PUT, "local", "a b/c.txt", expires),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            ok(&Method::GET, "other", "a b/c.txt", expires),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            ok(&Method::GET, "local", "a b/d.txt", expires),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            ok(&Method::GET, "local", "a b/c.txt", expires + 1),
            Err(Refusal::BadSignature)
        );
        let late = signer.verify(
            &Method::GET,
            "local",
            "a b/c.txt",
            expires,
            signature,
            expires + 1,
        );
        assert_eq!(late, Err(Refusal::Expired));
        let garbage = signer.verify(&Method::GET, "local", "a b/c.txt", expires, "zz", now);
        assert_eq!(garbage, Err(Refusal::BadSignature));
    }
}
