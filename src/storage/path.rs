//! Path validation: user-supplied keys become object_store [`Path`]s only through here.
//!
//! object_store's `Path::from` percent-encodes and `Path::parse` accepts more than a filesystem
//! should see, so the rules are ours and the same on every disk: relative, `/`-separated, no
//! empty, `.` or `..` segment, no backslash, no control character, at most 1024 bytes (the S3
//! key limit). A refused path never reaches the backend.

use object_store::path::Path;

use super::error::StorageError;

/// The longest key S3 accepts, in bytes.
pub(crate) const MAX_LEN: usize = 1024;

/// Validates an object path (`avatars/42.png`).
pub(crate) fn parse(disk: &str, raw: &str) -> Result<Path, StorageError> {
    if raw.is_empty() {
        return Err(invalid(disk, raw, "the path is empty"));
    }
    if raw.ends_with('/') {
        return Err(invalid(
            disk,
            raw,
            "the path ends with '/' (objects have no directory keys)",
        ));
    }
    checked(disk, raw)
}

/// Validates a listing prefix: like [`parse`], but empty (the root) and one trailing `/` are
/// allowed. `None` is the root.
pub(crate) fn parse_prefix(disk: &str, raw: &str) -> Result<Option<Path>, StorageError> {
    let trimmed = raw.strip_suffix('/').unwrap_or(raw);
    if trimmed.is_empty() {
        return if raw.is_empty() || raw == "/" {
            Ok(None)
        } else {
            Err(invalid(disk, raw, "the prefix has an empty segment"))
        };
    }
    checked(disk, trimmed).map(Some)
}

fn checked(disk: &str, raw: &str) -> Result<Path, StorageError> {
    if raw.len() > MAX_LEN {
        return Err(invalid(disk, raw, "the path is longer than 1024 bytes"));
    }
    if raw.starts_with('/') {
        return Err(invalid(disk, raw, "the path is absolute (starts with '/')"));
    }
    if raw.contains('\\') {
        return Err(invalid(disk, raw, "the path contains a backslash"));
    }
    if raw.chars().any(char::is_control) {
        return Err(invalid(disk, raw, "the path contains a control character"));
    }
    for segment in raw.split('/') {
        match segment {
            "" => return Err(invalid(disk, raw, "the path has an empty segment ('//')")),
            "." | ".." => {
                return Err(invalid(disk, raw, "the path has a '.' or '..' segment"));
            }
            _ => {}
        }
    }
    // Everything object_store would refuse is refused above; this is a second line of defence.
    Path::parse(raw).map_err(|_| invalid(disk, raw, "object_store refused the path"))
}

fn invalid(disk: &str, raw: &str, reason: &'static str) -> StorageError {
    StorageError::InvalidPath {
        disk: disk.to_owned(),
        path: raw.chars().take(MAX_LEN).collect(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_keys() {
        for ok in [
            "a.txt",
            "avatars/42.png",
            "deep/er/still/file",
            "with space/ünïcode.txt",
            "100%.txt",
        ] {
            assert_eq!(parse("d", ok).unwrap().as_ref(), ok);
        }
    }

    #[test]
    fn refuses_traversal_and_odd_keys() {
        let long = "a".repeat(MAX_LEN + 1);
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "dir/",
            "a\\..\\b",
            "a\nb",
            "a\0b",
            long.as_str(),
        ] {
            let err = parse("d", bad).unwrap_err();
            assert!(
                matches!(err, StorageError::InvalidPath { .. }),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn prefixes_allow_the_root_and_a_trailing_slash() {
        assert_eq!(parse_prefix("d", "").unwrap(), None);
        assert_eq!(parse_prefix("d", "/").unwrap(), None);
        assert_eq!(parse_prefix("d", "a/b/").unwrap().unwrap().as_ref(), "a/b");
        assert!(parse_prefix("d", "a//").is_err());
        assert!(parse_prefix("d", "../").is_err());
    }
}
