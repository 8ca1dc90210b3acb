//! How a typed value is stored: the versioned encoding both stores share.
//!
//! A value is stored as `v1:` followed by its JSON (serde_json), except an integer, which is
//! stored as its bare decimal digits so that `increment` (Redis `INCRBY`) works on it and a
//! counter reads back as a number. A stored value that does not decode as the type asked for —
//! an entry written by an older deploy whose type has changed since, or by another format
//! version — reads as a miss, never as an error.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The marker of the current encoding. A future encoding gets a new marker; entries with an
/// unknown marker read as misses and are replaced on the next write.
const V1: &[u8] = b"v1:";

/// Encodes `value`: bare digits for an integer, `v1:<json>` otherwise.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, serde_json::Error> {
    let json = serde_json::to_vec(value)?;
    if is_integer(&json) {
        return Ok(Bytes::from(json));
    }
    let mut out = Vec::with_capacity(V1.len() + json.len());
    out.extend_from_slice(V1);
    out.extend_from_slice(&json);
    Ok(Bytes::from(out))
}

/// Decodes a stored value as `T`; `None` when it is not one (another type, another version).
pub(crate) fn decode<T: DeserializeOwned>(stored: &[u8]) -> Option<T> {
    let json = match stored.strip_prefix(V1) {
        Some(json) => json,
        None if is_integer(stored) => stored,
        None => return None,
    };
    serde_json::from_slice(json).ok()
}

/// Whether `bytes` are an `i64` in decimal, as Redis `INCRBY` reads and writes them.
pub(crate) fn is_integer(bytes: &[u8]) -> bool {
    parse_integer(bytes).is_some()
}

/// The `i64` that `bytes` spell in decimal (no sign but `-`, no leading zeros, no spaces).
pub(crate) fn parse_integer(bytes: &[u8]) -> Option<i64> {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let canonical = !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits == b"0" || digits[0] != b'0')
        && bytes != b"-0";
    if !canonical {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_bare_and_everything_else_is_versioned() {
        assert_eq!(&encode(&42i64).unwrap()[..], b"42");
        assert_eq!(&encode(&-7i32).unwrap()[..], b"-7");
        assert_eq!(&encode("42").unwrap()[..], b"v1:\"42\"");
        assert_eq!(&encode(&1.5f64).unwrap()[..], b"v1:1.5");
        assert_eq!(&encode(&vec![1, 2]).unwrap()[..], b"v1:[1,2]");
        assert_eq!(decode::<i64>(b"42"), Some(42));
        assert_eq!(decode::<String>(b"v1:\"42\""), Some("42".to_owned()));
    }

    #[test]
    fn another_type_or_version_is_a_miss() {
        assert_eq!(decode::<u32>(b"v1:\"text\""), None);
        assert_eq!(decode::<String>(b"v2:\"text\""), None);
        assert_eq!(decode::<String>(b"plain"), None);
        assert_eq!(decode::<u8>(b"300"), None);
    }

    #[test]
    fn only_canonical_integers_count() {
        for yes in [
            &b"0"[..],
            b"-1",
            b"9223372036854775807",
            b"-9223372036854775808",
        ] {
            assert!(is_integer(yes), "{yes:?}");
        }
        for no in [
            &b""[..],
            b"-",
            b"01",
            b"-0",
            b"+1",
            b" 1",
            b"1.0",
            b"9223372036854775808",
        ] {
            assert!(!is_integer(no), "{no:?}");
        }
    }
}
