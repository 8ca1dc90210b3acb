//! How a session is stored: its expiry and its data, bounded in size, with the absolute
//! deadline, and when a read extends its inactivity expiry.
//!
//! The stored bytes are the expiry (unix milliseconds, 8 bytes big-endian) followed by the
//! session's data as a JSON object. The id is the store's key, so it is not stored again; the
//! expiry up front lets a read tell whether the session is due for an extension from the value
//! alone (no `PTTL` beside the `GET`), and lets the Redis store's extension rewrite it in place
//! (`SETRANGE`) without touching the data.

use std::time::Duration;

use std::collections::HashMap;

use serde_json::Value;
use tower_sessions::cookie::time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::Error;

/// The data key holding when the session must end whatever its activity (unix seconds, with
/// milliseconds as the fraction): the absolute timeout. Set by the store at the first save,
/// kept across id rotation, removed by `Session::clear`/`flush` (which start a new lifetime).
pub(crate) const DEADLINE_KEY: &str = "_rustforge.deadline";

/// The longest time between two extensions of an unchanged session's expiry.
const MAX_SLACK: Duration = Duration::from_secs(60);

/// What the stores share: the size bound, the inactivity and absolute lifetimes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) max_size: usize,
    /// The inactivity timeout (`session.ttl`).
    pub(crate) idle: Duration,
    pub(crate) absolute: Option<Duration>,
}

impl From<&super::SessionConfig> for Limits {
    fn from(config: &super::SessionConfig) -> Self {
        Self {
            max_size: usize::try_from(config.max_size).unwrap_or(usize::MAX),
            idle: config.ttl,
            absolute: config.absolute_ttl,
        }
    }
}

impl Limits {
    /// The record as stored ([module docs](self)), with the absolute deadline set when it has
    /// none; an error when it is larger than the bound (the request then answers 500 and
    /// nothing is written).
    pub(crate) fn encode(&self, record: &Record) -> Result<Vec<u8>, Error> {
        let mut bytes = Vec::with_capacity(128);
        bytes.extend_from_slice(&unix_ms(record.expiry_date).to_be_bytes());
        match self.absolute {
            Some(lifetime) if !record.data.contains_key(DEADLINE_KEY) => {
                let mut data = record.data.clone();
                let deadline = unix_seconds(OffsetDateTime::now_utc()) + lifetime.as_secs_f64();
                data.insert(DEADLINE_KEY.to_owned(), rounded_to_ms(deadline).into());
                serde_json::to_writer(&mut bytes, &data)
            }
            _ => serde_json::to_writer(&mut bytes, &record.data),
        }
        .map_err(|e| Error::Encode(e.to_string()))?;
        if bytes.len() > self.max_size {
            return Err(Error::Encode(format!(
                "session data is {} bytes, above the limit of {} (RUSTFORGE_SESSION_MAX_SIZE)",
                bytes.len(),
                self.max_size
            )));
        }
        Ok(bytes)
    }

    /// The record stored under `id` and the time left until the expiry its bytes carry (the
    /// last save's or, on Redis, the last extension's); `None` when its absolute deadline has
    /// passed or it does not decode (another format: the user starts a new session). One
    /// clock read, in integer milliseconds: this runs on every request that reads a session.
    pub(crate) fn decode(&self, id: Id, bytes: &[u8]) -> Option<(Record, Duration)> {
        let (expiry, data) = bytes.split_first_chunk::<8>()?;
        let expiry_ms = i64::from_be_bytes(*expiry);
        let data: HashMap<String, Value> = serde_json::from_slice(data).ok()?;
        let now_ms = unix_now_ms();
        let deadline = data.get(DEADLINE_KEY).and_then(|v| v.as_f64());
        if deadline.is_some_and(|deadline| deadline * 1000.0 <= now_ms as f64) {
            return None;
        }
        let expiry_date =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(expiry_ms) * 1_000_000).ok()?;
        let record = Record {
            id,
            data,
            expiry_date,
        };
        Some((record, left_ms(expiry_ms - now_ms)))
    }

    /// How much longer than the inactivity timeout a save or an extension keeps a session:
    /// a tenth of the timeout, at most a minute. A save keeps it for the timeout plus this
    /// slack; a read extends an unchanged session only when less than the timeout is left,
    /// to the timeout plus the slack again — so an unchanged session is extended at most once
    /// per slack (a changed one never: its save renews it), and never ends earlier than the
    /// timeout after its last request (at most the slack later).
    pub(crate) fn slack(&self) -> Duration {
        (self.idle / 10).min(MAX_SLACK)
    }

    /// The expiry a read sets when it extends a session: the timeout plus the slack.
    pub(crate) fn extended(&self) -> Duration {
        self.idle + self.slack()
    }

    /// Whether a session with `left` until it expires is due for an extension.
    pub(crate) fn extend_when(&self, left: Duration) -> bool {
        left < self.idle
    }
}

/// Time left until `record` expires, in whole milliseconds, at least one (Redis `PX` takes no
/// zero).
pub(crate) fn time_left(record: &Record) -> Duration {
    left_ms(unix_ms(record.expiry_date) - unix_now_ms())
}

/// `ms` milliseconds as a time left: at least one.
fn left_ms(ms: i64) -> Duration {
    Duration::from_millis(ms.max(1) as u64)
}

/// Milliseconds since the Unix epoch (the system clock without `OffsetDateTime`'s calendar
/// arithmetic).
fn unix_now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The stored form of an expiry that is `ttl` from now: what an extension writes over the first
/// eight bytes.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn expiry_in(ttl: Duration) -> [u8; 8] {
    let at = OffsetDateTime::now_utc() + ttl;
    unix_ms(at).to_be_bytes()
}

fn unix_ms(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

fn unix_seconds(at: OffsetDateTime) -> f64 {
    at.unix_timestamp_nanos() as f64 / 1e9
}

fn rounded_to_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(idle: Duration) -> Limits {
        Limits {
            max_size: 1 << 20,
            idle,
            absolute: Some(Duration::from_millis(2500)),
        }
    }

    #[test]
    fn the_slack_is_a_tenth_of_the_timeout_and_at_most_a_minute() {
        assert_eq!(
            limits(Duration::from_secs(3)).slack(),
            Duration::from_millis(300)
        );
        assert_eq!(limits(Duration::from_secs(7200)).slack(), MAX_SLACK);
        let l = limits(Duration::from_secs(3));
        assert!(l.extend_when(Duration::from_millis(2999)));
        assert!(!l.extend_when(Duration::from_millis(3000)));
        assert_eq!(l.extended(), Duration::from_millis(3300));
    }

    #[test]
    fn the_stored_form_is_the_expiry_then_the_data() {
        let limits = limits(Duration::from_secs(60));
        let expiry_date =
            OffsetDateTime::from_unix_timestamp_nanos(1_800_000_000_123_000_000).unwrap();
        let mut record = Record {
            id: Id(7),
            data: Default::default(),
            expiry_date,
        };
        record.data.insert("user".into(), "ada".into());
        record.data.insert(DEADLINE_KEY.into(), 4e9.into());
        let bytes = limits.encode(&record).unwrap();
        assert_eq!(bytes[..8], 1_800_000_000_123i64.to_be_bytes());
        let (decoded, _) = limits.decode(Id(7), &bytes).unwrap();
        assert_eq!(decoded, record);
        // An extension rewrites the first eight bytes only.
        let mut extended = bytes.clone();
        extended[..8].copy_from_slice(&expiry_in(Duration::from_secs(60)));
        let (decoded, left) = limits.decode(Id(7), &extended).unwrap();
        assert!(left > Duration::from_secs(59) && left <= Duration::from_secs(60));
        assert_eq!(time_left(&decoded), left);
        // Another format (a bare JSON record, a truncated value) starts a new session.
        assert_eq!(
            limits.decode(Id(7), &serde_json::to_vec(&record).unwrap()),
            None
        );
        assert_eq!(limits.decode(Id(7), &bytes[..5]), None);
        // Past its absolute deadline, a session is not read.
        record.data.insert(DEADLINE_KEY.into(), 1e9.into());
        assert_eq!(limits.decode(Id(7), &limits.encode(&record).unwrap()), None);
    }

    #[test]
    fn the_absolute_deadline_keeps_its_milliseconds() {
        let record = Record {
            id: Default::default(),
            data: Default::default(),
            expiry_date: OffsetDateTime::now_utc()
                + tower_sessions::cookie::time::Duration::hours(1),
        };
        let before = unix_seconds(OffsetDateTime::now_utc());
        let limits = limits(Duration::from_secs(60));
        let bytes = limits.encode(&record).unwrap();
        let (stored, _) = limits.decode(record.id, &bytes).unwrap();
        let deadline = stored.data[DEADLINE_KEY].as_f64().unwrap();
        assert!(
            (deadline - before - 2.5).abs() < 0.1,
            "{deadline} vs {before}"
        );
        // Not truncated to whole seconds: an hour from now is more than 3,599 s away.
        let left = time_left(&record);
        assert!(left > Duration::from_millis(3_599_000) && left <= Duration::from_secs(3600));
    }
}
