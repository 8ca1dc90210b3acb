//! The hook the metrics module uses to count storage operations and bytes.

use std::sync::Arc;
use std::time::Duration;

use super::error::Operation;

/// How an operation ended, for the `outcome` metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    NotFound,
    Error,
}

impl Outcome {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::NotFound => "not_found",
            Self::Error => "error",
        }
    }
}

/// Which way bytes went, for the `direction` metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Written,
}

impl Direction {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Written => "written",
        }
    }
}

/// Receives every storage operation and every chunk of bytes read or written.
pub(crate) trait StorageObserver: Send + Sync + 'static {
    fn operation(&self, disk: &str, operation: Operation, outcome: Outcome, elapsed: Duration);
    fn bytes(&self, disk: &str, direction: Direction, bytes: u64);
}

pub(crate) type Observer = Arc<dyn StorageObserver>;
