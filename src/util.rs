//! Small helpers shared by modules.

/// Compares secrets in time independent of where they differ.
#[allow(dead_code)]
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A boxed, `Send` future: what the crate's object-safe traits return (a rate-limit store's
/// check, a health check, a broadcast authorizer).
#[allow(dead_code)] // not every feature set has such a trait
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;
