//! How a session is stored: its record as JSON, bounded in size, with the absolute deadline.

use tower_sessions::cookie::time::{Duration as TimeDuration, OffsetDateTime};
use tower_sessions::session::Record;
use tower_sessions::session_store::Error;

/// The data key holding when the session must end whatever its activity (unix seconds): the
/// absolute timeout. Set by the store at the first save, kept across id rotation, removed by
/// `Session::clear`/`flush` (which start a new lifetime).
pub(crate) const DEADLINE_KEY: &str = "_rustforge.deadline";

/// What the stores share: the size bound and the absolute lifetime.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) max_size: usize,
    pub(crate) absolute: Option<std::time::Duration>,
}

impl Limits {
    /// The record as stored: JSON, with the absolute deadline set when it has none; an error
    /// when it is larger than the bound (the request then answers 500 and nothing is written).
    pub(crate) fn encode(&self, record: &Record) -> Result<Vec<u8>, Error> {
        let bytes = match self.absolute {
            Some(lifetime) if !record.data.contains_key(DEADLINE_KEY) => {
                let mut record = record.clone();
                let deadline = OffsetDateTime::now_utc() + to_time(lifetime);
                record
                    .data
                    .insert(DEADLINE_KEY.to_owned(), deadline.unix_timestamp().into());
                serde_json::to_vec(&record)
            }
            _ => serde_json::to_vec(record),
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

    /// The stored record, `None` when it has expired (by inactivity or its absolute deadline)
    /// or does not decode (another format: the user starts a new session).
    pub(crate) fn decode(&self, bytes: &[u8]) -> Option<Record> {
        let record: Record = serde_json::from_slice(bytes).ok()?;
        let now = OffsetDateTime::now_utc();
        if record.expiry_date <= now {
            return None;
        }
        let deadline = record.data.get(DEADLINE_KEY).and_then(|v| v.as_i64());
        if deadline.is_some_and(|deadline| deadline <= now.unix_timestamp()) {
            return None;
        }
        Some(record)
    }
}

/// Time left until `record` expires, at least one second (Redis `EX` takes no zero).
pub(crate) fn time_left(record: &Record) -> std::time::Duration {
    let left = record.expiry_date - OffsetDateTime::now_utc();
    std::time::Duration::from_secs(left.whole_seconds().max(1) as u64)
}

fn to_time(d: std::time::Duration) -> TimeDuration {
    TimeDuration::seconds(d.as_secs().min(i64::MAX as u64) as i64)
}
