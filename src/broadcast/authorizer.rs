//! [`Authorizer`]: the app decides who may join a private or presence channel and who a
//! connection's user is (Laravel's `routes/channels.php`).

use std::collections::HashMap;
use std::future::Future;

use http::HeaderMap;
use serde_json::Value;

pub use crate::util::BoxFuture;

/// An auth request from a client: the socket, the channel and the HTTP request it came with.
#[derive(Debug)]
#[non_exhaustive]
pub struct AuthRequest {
    /// The connection's `socket_id`.
    pub socket_id: String,
    /// The channel (`private-…`, `presence-…`); empty for user authentication.
    pub channel: String,
    /// Headers of the auth request (cookies, `Authorization` …).
    pub headers: HeaderMap,
    /// Every form field of the request, including extra `params` the client added.
    pub params: HashMap<String, String>,
}

/// A user: the id (a non-empty string) and what others see of them.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    /// The user id.
    pub id: String,
    /// Presence `user_info` / sign-in `user_info`.
    pub info: Value,
}

impl User {
    /// A user with `info`.
    pub fn new(id: impl Into<String>, info: Value) -> Self {
        Self {
            id: id.into(),
            info,
        }
    }
}

/// What the app answers for a channel.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Access {
    /// Refused: the client gets `pusher:subscription_error` with status 403.
    Deny,
    /// Allowed (private and encrypted channels; on a presence channel it is refused, a member
    /// needs a user).
    Allow,
    /// Allowed as this member (presence channels; on private channels the user is ignored).
    Member(User),
}

/// Decides channel access and user identity. Implement it, or build one from closures with
/// [`authorizer_fn`].
pub trait Authorizer: Send + Sync + 'static {
    /// May this request's user join `request.channel`?
    fn authorize(&self, request: AuthRequest) -> BoxFuture<'_, Access>;

    /// Who is this request's user (`pusher:signin`)? `None` (the default) refuses with 403.
    fn authenticate(&self, request: AuthRequest) -> BoxFuture<'_, Option<User>> {
        let _ = request;
        Box::pin(async { None })
    }
}

/// An [`Authorizer`] from a closure (channels) — user authentication uses the same closure's
/// answer for the presence-style [`Access::Member`].
///
/// ```
/// use rustforge_prod::broadcast::{Access, User, authorizer_fn};
///
/// let authorizer = authorizer_fn(|request| async move {
///     let user = request.headers.get("x-user-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
///     match (user, request.channel.as_str()) {
///         (Some(id), channel) if channel.starts_with("presence-") => {
///             Access::Member(User::new(id.clone(), serde_json::json!({ "name": id })))
///         }
///         (Some(id), _) => Access::Member(User::new(id, serde_json::Value::Null)),
///         (None, _) => Access::Deny,
///     }
/// });
/// # let _ = authorizer;
/// ```
pub fn authorizer_fn<F, Fut>(f: F) -> impl Authorizer
where
    F: Fn(AuthRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Access> + Send + 'static,
{
    struct FnAuthorizer<F>(F);

    impl<F, Fut> Authorizer for FnAuthorizer<F>
    where
        F: Fn(AuthRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Access> + Send + 'static,
    {
        fn authorize(&self, request: AuthRequest) -> BoxFuture<'_, Access> {
            Box::pin((self.0)(request))
        }

        fn authenticate(&self, request: AuthRequest) -> BoxFuture<'_, Option<User>> {
            let access = (self.0)(request);
            Box::pin(async move {
                match access.await {
                    Access::Member(user) => Some(user),
                    _ => None,
                }
            })
        }
    }

    FnAuthorizer(f)
}
