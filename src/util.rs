//! Small helpers shared by modules.

/// Compares secrets in time independent of where they differ.
#[allow(dead_code)]
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
