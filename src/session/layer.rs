//! [`SessionLayer`]: tower-sessions' layer with the crate's cookie and expiry settings.

use sha2::{Digest, Sha512};
use tower::Layer;
use tower::util::Either;
use tower_sessions::cookie::Key;
use tower_sessions::service::PrivateCookie;
use tower_sessions::{Expiry, SessionManagerLayer};

use super::config::{SameSite, SessionConfig};
use super::store::AnyStore;

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
    type Service = Either<<Plain as Layer<S>>::Service, <Private as Layer<S>>::Service>;

    fn layer(&self, inner: S) -> Self::Service {
        match &self.inner {
            Either::Left(plain) => Either::Left(plain.layer(inner)),
            Either::Right(private) => Either::Right(private.layer(inner)),
        }
    }
}
