//! Connection recovery on the Redis bus: the fleet's history of each recoverable channel lives
//! in Redis, so a client resumes on whichever server it reconnects to.
//!
//! - **One step per event.** A script gives the event the stream's next serial, keeps it
//!   (a list per channel, trimmed to the events bound, expiring with the age bound), and
//!   publishes it with its position — in the publisher's pipeline, where a plain `PUBLISH` goes
//!   for other events. Every server's subscribers and every later resume see the same position.
//!   The script remembers each origin's (server process's) last sequence number, so a batch
//!   sent again after a timeout is neither kept nor published twice; an origin's first event on
//!   a channel forgets the origins idle there for [`STREAM_IDLE`], so a busy channel's stream
//!   does not grow with every deploy.
//! - **Cluster-safe.** The stream's keys take the topic as their hash tag: the script, the
//!   sharded publish and the recovery log share one slot.
//! - **Read after subscribing.** A resuming subscriber is subscribed to the topic first, then
//!   reads the stream; the live copies of events that are also in what it read are dropped (by
//!   serial), whether they arrived before its activation or after (they come in on another
//!   connection than the read's reply), so none is missed and none sent twice.
//! - **Epochs.** A stream's epoch is written with its first event (or first read) and expires
//!   an hour after its last: a Redis that restarted empty, or lost the keys, starts another
//!   stream, and a client resuming from before gets `reset`.

use axum::extract::ws::Utf8Bytes;

use super::history::{self, Limits, Position, ResumeFailure, STREAM_IDLE};
use super::outbox::Outgoing;
use super::protocol::with_position;
use crate::redis::{RedisError, RedisHandle, Script};

/// The kept events of a topic (a list, oldest first).
fn history_key(topic: &str) -> String {
    format!("{{{topic}}}:history")
}

/// A topic's stream: its epoch, its last serial and each origin's last sequence number kept.
fn stream_key(topic: &str) -> String {
    format!("{{{topic}}}:stream")
}

/// The scripts and bounds of the fleet's history.
pub(super) struct FleetHistory {
    publish: Script,
    read: Script,
    limits: Limits,
}

impl FleetHistory {
    pub(super) fn new(limits: Limits) -> Self {
        Self {
            publish: Script::new(include_str!("lua/history_publish.lua")),
            read: Script::new(include_str!("lua/history_read.lua")),
            limits,
        }
    }

    /// Adds the publish of `event` (a recoverable channel's event) to `pipeline`: keep, then
    /// publish with its position, in one script; also appended to the recovery log when `log`.
    pub(super) fn publish(
        &self,
        pipeline: &mut redis::Pipeline,
        event: &Outgoing,
        log: bool,
        sharded: bool,
    ) {
        // The payload is "<origin>:<seq>\n<except>\n<frame>" (see `RedisBackend::publish_frame`).
        let mut parts = event.payload.splitn(3, '\n');
        let (head, except, frame) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let (origin, seq) = head.rsplit_once(':').unwrap_or((head, "0"));
        let topic = &event.topic;
        pipeline
            .cmd("EVALSHA")
            .arg(self.publish.sha())
            .arg(3)
            .arg(history_key(topic))
            .arg(stream_key(topic))
            .arg(super::outbox::log_key(topic))
            .arg(topic)
            .arg(origin)
            .arg(seq)
            .arg(except)
            .arg(frame)
            .arg(format!("{:016x}", history::new_epoch()))
            .arg(self.limits.events)
            .arg(self.limits.age.as_millis() as u64)
            .arg(STREAM_IDLE.as_millis() as u64)
            .arg(if log { "1" } else { "0" })
            .arg(super::outbox::LOG_LEN)
            .arg(super::outbox::LOG_TTL_SECS)
            .arg(if sharded { "1" } else { "0" })
            .ignore();
    }

    /// Loads the publish script (the pipelines run `EVALSHA` only): before the first batch that
    /// needs it, and before retrying any batch that failed (Redis may have restarted or failed
    /// over and forgotten it).
    pub(super) async fn load(&self, redis: &RedisHandle) -> Result<(), RedisError> {
        redis.load(&self.publish).await
    }

    /// The stream of `topic`, with its kept events when `events` (a stream is started when
    /// there is none: its position is where a client subscribing now is).
    pub(super) async fn read(
        &self,
        redis: &RedisHandle,
        topic: &str,
        events: bool,
    ) -> Result<Stream, RedisError> {
        let epoch = format!("{:016x}", history::new_epoch());
        let idle = STREAM_IDLE.as_millis().to_string();
        let reply: Vec<String> = redis
            .eval(
                &self.read,
                &[&history_key(topic), &stream_key(topic)],
                &[&epoch, &idle, if events { "1" } else { "0" }],
            )
            .await?;
        Stream::parse(reply, self.limits.age.as_millis() as u64).ok_or_else(|| {
            RedisError::Command(crate::util::cause(
                "unexpected reply from the history script",
            ))
        })
    }
}

/// One kept event as stored: `"<serial>\n<ms>\n<except>\n<frame>"`.
struct Kept {
    serial: u64,
    /// When it was kept, on the Redis clock.
    ms: u64,
    except: String,
    frame: String,
}

/// A channel's stream as read from Redis.
pub(super) struct Stream {
    epoch: u64,
    last: u64,
    /// The kept events, oldest first, without those older than the age bound.
    kept: Vec<Kept>,
    /// The highest serial dropped for age: the whole stream's when Redis expired the list.
    expired_upto: u64,
}

impl Stream {
    fn parse(reply: Vec<String>, age_ms: u64) -> Option<Self> {
        let mut reply = reply.into_iter();
        let epoch = u64::from_str_radix(&reply.next()?, 16).ok()?;
        let last = reply.next()?.parse().ok()?;
        let now: u64 = reply.next()?.parse().ok()?;
        let mut kept = Vec::new();
        for entry in reply {
            let mut parts = entry.splitn(4, '\n');
            kept.push(Kept {
                serial: parts.next()?.parse().ok()?,
                ms: parts.next()?.parse().ok()?,
                except: parts.next()?.to_owned(),
                frame: parts.next()?.to_owned(),
            });
        }
        // The list expires with the age bound after its last event: none kept, all expired.
        let expired_upto = if kept.is_empty() {
            last
        } else {
            let cutoff = now.saturating_sub(age_ms);
            let expired = kept.iter().take_while(|k| k.ms < cutoff).count();
            let upto = expired.checked_sub(1).map_or(0, |i| kept[i].serial);
            kept.drain(..expired);
            upto
        };
        Some(Self {
            epoch,
            last,
            kept,
            expired_upto,
        })
    }

    /// The position of the stream's last event: where a client that subscribes now is.
    pub(super) fn current(&self) -> Position {
        Position {
            epoch: self.epoch,
            serial: self.last,
        }
    }

    fn positioned(&self, kept: &Kept) -> Utf8Bytes {
        let position = Position {
            epoch: self.epoch,
            serial: kept.serial,
        };
        Utf8Bytes::from(with_position(&kept.frame, position))
    }

    /// The kept events after `from`, oldest first, without those not for `previous_socket`;
    /// or why it cannot be proven that they are all the client missed.
    pub(super) fn after(
        &self,
        from: Position,
        previous_socket: Option<&str>,
    ) -> Result<Vec<Utf8Bytes>, ResumeFailure> {
        let first_kept = self.kept.first().map(|k| k.serial);
        history::continuity(self.epoch, self.last, first_kept, self.expired_upto, from)?;
        Ok(self
            .kept
            .iter()
            .filter(|k| k.serial > from.serial)
            .filter(|k| previous_socket.is_none() || Some(k.except.as_str()) != previous_socket)
            .map(|k| self.positioned(k))
            .collect())
    }

    /// A page of the kept events, newest first ([`history::page_of`]).
    pub(super) fn page(
        &self,
        before: Option<Position>,
        limit: usize,
    ) -> Result<(Vec<Utf8Bytes>, Option<Position>), ResumeFailure> {
        let kept = self.kept.iter().map(|k| (k.serial, self.positioned(k)));
        history::page_of(kept, self.epoch, before, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(last: u64, now: u64, kept: &[(u64, u64)]) -> Vec<String> {
        let mut reply = vec![
            "00000000000000ab".to_owned(),
            last.to_string(),
            now.to_string(),
        ];
        reply.extend(
            kept.iter()
                .map(|(serial, ms)| format!("{serial}\n{ms}\n\n{{\"event\":\"e\"}}")),
        );
        reply
    }

    fn at(serial: u64) -> Position {
        Position {
            epoch: 0xab,
            serial,
        }
    }

    #[test]
    fn events_past_the_age_are_expired_and_an_expired_list_expired_them_all() {
        let stream = Stream::parse(
            reply(4, 10_000, &[(2, 1_000), (3, 9_000), (4, 9_500)]),
            5_000,
        )
        .unwrap();
        assert_eq!(stream.after(at(1), None), Err(ResumeFailure::Expired));
        let replay = stream.after(at(2), None).unwrap();
        assert_eq!(
            replay[0].as_str(),
            r#"{"event":"e","position":"00000000000000ab:3"}"#
        );
        assert_eq!(stream.after(at(4), None).map(|r| r.len()), Ok(0));

        let gone = Stream::parse(reply(4, 10_000, &[]), 5_000).unwrap();
        assert_eq!(gone.after(at(3), None), Err(ResumeFailure::Expired));
        assert_eq!(gone.after(at(4), None).map(|r| r.len()), Ok(0));
    }

    #[test]
    fn trimmed_events_are_too_old_and_other_epochs_reset() {
        let stream = Stream::parse(reply(9, 10, &[(8, 10), (9, 10)]), 5_000).unwrap();
        assert_eq!(stream.after(at(6), None), Err(ResumeFailure::TooOld));
        assert_eq!(stream.after(at(7), None).map(|r| r.len()), Ok(2));
        let other = Position {
            epoch: 1,
            serial: 7,
        };
        assert_eq!(stream.after(other, None), Err(ResumeFailure::Reset));
        let (page, next) = stream.page(None, 1).unwrap();
        assert_eq!((page.len(), next), (1, Some(at(9))));
    }
}
