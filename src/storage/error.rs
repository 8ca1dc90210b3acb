//! [`StorageError`]: every failure names the disk, the operation and the path.

use std::fmt;

/// What the facade was doing when it failed (the `operation` of a [`StorageError`] and the
/// `operation` label of the storage metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// `put`, `put_with`, `write_stream`, `write_reader`.
    Put,
    /// `get`, `get_range`, `read_stream`, `download`.
    Get,
    /// `exists`, `metadata`, `size`, `last_modified`.
    Head,
    /// `delete`, `delete_prefix`.
    Delete,
    /// `copy`.
    Copy,
    /// `rename`.
    Rename,
    /// `list`, `list_all`.
    List,
    /// `url`, `temporary_url`, `temporary_upload_url`.
    Sign,
}

impl Operation {
    /// The lowercase name used in errors and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Put => "put",
            Self::Get => "get",
            Self::Head => "head",
            Self::Delete => "delete",
            Self::Copy => "copy",
            Self::Rename => "rename",
            Self::List => "list",
            Self::Sign => "sign",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A storage failure. `NotFound`, `AlreadyExists` and `InvalidPath` are their own variants so
/// callers can match them; everything the backend reports otherwise is `Backend`, with its
/// message (credentials and signatures are never part of it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The path is not a valid key: empty, absolute, `..`/`.`/empty segments, a backslash, a
    /// control character, or longer than 1024 bytes. Nothing was read or written.
    #[error("disk {disk:?}: invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The disk.
        disk: String,
        /// The path as given.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// No object at this path.
    #[error("disk {disk:?}: {operation} {path:?}: not found")]
    NotFound {
        /// The disk.
        disk: String,
        /// The operation.
        operation: Operation,
        /// The path.
        path: String,
    },
    /// A conditional create found an object already there.
    #[error("disk {disk:?}: {operation} {path:?}: already exists")]
    AlreadyExists {
        /// The disk.
        disk: String,
        /// The operation.
        operation: Operation,
        /// The path.
        path: String,
    },
    /// The object still matches the client's `If-None-Match` (only from
    /// [`Disk::download`](super::Disk::download), which answers `304 Not Modified`).
    #[error("disk {disk:?}: {path:?} not modified")]
    NotModified {
        /// The disk.
        disk: String,
        /// The path.
        path: String,
    },
    /// The disk cannot do this (e.g. [`url`](super::Disk::url) without a public URL).
    #[error("disk {disk:?}: {operation} {path:?}: not supported: {reason}")]
    Unsupported {
        /// The disk.
        disk: String,
        /// The operation.
        operation: Operation,
        /// The path.
        path: String,
        /// What is missing.
        reason: String,
    },
    /// The backend failed (I/O error, network error, S3 error after object_store's retries), or
    /// the data handed to a streaming write failed.
    #[error("disk {disk:?}: {operation} {path:?} failed: {message}")]
    Backend {
        /// The disk.
        disk: String,
        /// The operation.
        operation: Operation,
        /// The path.
        path: String,
        /// The backend's message, with credentials and signatures removed.
        message: String,
    },
    /// [`Storage::disk`](super::Storage::disk) was asked for a disk that is not configured.
    #[error("no storage disk named {0:?}")]
    UnknownDisk(String),
}

impl StorageError {
    /// Maps an object_store error, keeping `NotFound` and `AlreadyExists` apart.
    pub(crate) fn from_store(
        disk: &str,
        operation: Operation,
        path: &str,
        err: object_store::Error,
    ) -> Self {
        let (disk, path) = (disk.to_owned(), path.to_owned());
        match err {
            object_store::Error::NotFound { .. } => Self::NotFound {
                disk,
                operation,
                path,
            },
            object_store::Error::AlreadyExists { .. } => Self::AlreadyExists {
                disk,
                operation,
                path,
            },
            object_store::Error::NotModified { .. } => Self::NotModified { disk, path },
            object_store::Error::NotSupported { source } => Self::Unsupported {
                disk,
                operation,
                path,
                reason: redact(&source.to_string()),
            },
            object_store::Error::NotImplemented { operation: op, .. } => Self::Unsupported {
                disk,
                operation,
                path,
                reason: format!("{op} is not implemented by this backend"),
            },
            // S3 conditional puts report a failed `If-None-Match: *` as a precondition failure.
            object_store::Error::Precondition { .. } => Self::AlreadyExists {
                disk,
                operation,
                path,
            },
            other => Self::Backend {
                disk,
                operation,
                path,
                message: redact(&other.to_string()),
            },
        }
    }

    /// Whether this is [`StorageError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

/// Removes anything that looks like a credential or a signature from a backend message:
/// query parameters of presigned URLs and `Authorization`/`Credential=` fragments. object_store
/// does not put secrets in its errors, but a URL in an error may carry a signature.
pub(crate) fn redact(message: &str) -> String {
    const SECRET_KEYS: [&str; 6] = [
        "x-amz-signature=",
        "x-amz-credential=",
        "x-amz-security-token=",
        "signature=",
        "credential=",
        "authorization:",
    ];
    let lower = message.to_ascii_lowercase();
    let mut out = String::with_capacity(message.len());
    let mut i = 0;
    'outer: while i < message.len() {
        for key in SECRET_KEYS {
            if lower[i..].starts_with(key) {
                out.push_str(&message[i..i + key.len()]);
                out.push_str("[redacted]");
                i += key.len();
                // Skip the value: up to the next separator.
                while let Some(c) = message[i..].chars().next() {
                    if matches!(c, '&' | ' ' | '"' | '\'' | ',' | ')' | '\n') {
                        break;
                    }
                    i += c.len_utf8();
                }
                continue 'outer;
            }
        }
        let c = message[i..].chars().next().unwrap_or_default();
        out.push(c);
        i += c.len_utf8().max(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_removes_signatures_and_credentials() {
        let msg = "GET http://h/b/k?X-Amz-Credential=AKIA%2F2026&X-Amz-Signature=abc123 failed";
        let out = redact(msg);
        assert_eq!(
            out,
            "GET http://h/b/k?X-Amz-Credential=[redacted]&X-Amz-Signature=[redacted] failed"
        );
        assert_eq!(redact("plain message é"), "plain message é");
    }
}
