//! Connection recovery: every event of a recoverable channel gets a [`Position`] in that
//! channel's stream, and the last events of each stream are kept ([`History`]), so a client
//! that reconnects and subscribes again with the position of the last event it had gets every
//! event it missed — or, when that cannot be proven, `pusher:resume_failed` with the reason.
//!
//! The stream's epoch is random: a stream that starts again (a restarted server, a history that
//! was dropped) has another, so a position from before can never be taken for one of now.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use serde::{Deserialize, Serialize};

use super::protocol::USER_CHANNEL_PREFIX;

/// Which channels keep a history and give their events positions
/// (`RUSTFORGE_BROADCAST_RECOVERY`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Recoverable {
    /// None: no positions, no history (`off`).
    Off,
    /// `private-`, `presence-`, `private-encrypted-` and server-to-user channels: the ones a
    /// client is authorized for, whose events are usually about it (`private`, the default).
    #[default]
    Private,
    /// Every channel, public ones included (`all`).
    All,
}

impl Recoverable {
    /// Whether events of `channel` (a valid channel name) get positions and are kept.
    pub fn covers(self, channel: &str) -> bool {
        match self {
            Self::Off => false,
            Self::All => true,
            Self::Private => ["private-", "presence-", USER_CHANNEL_PREFIX]
                .iter()
                .any(|prefix| channel.starts_with(prefix)),
        }
    }
}

/// Where an event sits in its channel's stream: the stream's epoch and the event's serial
/// (1 for the stream's first event). On the wire, `"<epoch>:<serial>"` with the epoch in hex.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Position {
    /// The stream's random id: another epoch is another stream.
    pub epoch: u64,
    /// The event's number in the stream, from 1.
    pub serial: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}:{}", self.epoch, self.serial)
    }
}

impl std::str::FromStr for Position {
    type Err = ResumeFailure;

    fn from_str(text: &str) -> Result<Self, ResumeFailure> {
        let (epoch, serial) = text.split_once(':').ok_or(ResumeFailure::InvalidPosition)?;
        let epoch = u64::from_str_radix(epoch, 16).map_err(|_| ResumeFailure::InvalidPosition)?;
        let serial = serial.parse().map_err(|_| ResumeFailure::InvalidPosition)?;
        Ok(Self { epoch, serial })
    }
}

/// Why a resume could not prove that the client misses nothing: the `reason` of
/// `pusher:resume_failed`. The client gets live events from then on and should refetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResumeFailure {
    /// The position is not of the channel's current stream (`reset`): the server restarted,
    /// Redis lost the history, or the channel was quiet long enough for its stream to be dropped.
    Reset,
    /// Events after the position were dropped for room (`too_old`): more were published since
    /// than the history keeps.
    TooOld,
    /// Events after the position were dropped for age (`expired`).
    Expired,
    /// The position is not one this server writes (`invalid_position`).
    InvalidPosition,
    /// The channel keeps no history (`not_recoverable`): see [`Recoverable`].
    NotRecoverable,
    /// The history could not be read (`unavailable`): Redis is unreachable, or this bus keeps
    /// none.
    Unavailable,
}

impl ResumeFailure {
    /// Every reason, in a fixed order (the metrics' order).
    pub const ALL: [Self; 6] = [
        Self::Reset,
        Self::TooOld,
        Self::Expired,
        Self::InvalidPosition,
        Self::NotRecoverable,
        Self::Unavailable,
    ];

    /// The reason as sent in `pusher:resume_failed` and used as a metric attribute.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Reset => "reset",
            Self::TooOld => "too_old",
            Self::Expired => "expired",
            Self::InvalidPosition => "invalid_position",
            Self::NotRecoverable => "not_recoverable",
            Self::Unavailable => "unavailable",
        }
    }
}

/// How much history is kept.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Events per channel.
    pub events: usize,
    /// Age of an event.
    pub age: Duration,
    /// Bytes of all channels' events together (frames plus [`ENTRY_OVERHEAD`]).
    pub bytes: usize,
}

/// What an entry costs beyond its frame and the excluded socket id: the entry and its place in
/// the order of all channels.
pub(crate) const ENTRY_OVERHEAD: usize = 128;
/// How long a stream's epoch and last serial outlive its last event: a client that resumes
/// after a quiet spell, at the last position, misses nothing and is told so.
pub(crate) const STREAM_IDLE: Duration = Duration::from_secs(3600);
/// Streams (each an epoch, a serial and a name) at most before those without kept events are
/// dropped early: subscribing to channels nobody publishes on makes streams too.
const MAX_STREAMS: usize = 100_000;
/// How often streams idle for longer than [`STREAM_IDLE`] are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// One kept event.
struct Entry {
    serial: u64,
    /// Its place in the order of all channels' events.
    global: u64,
    at: Instant,
    /// The frame with its position.
    frame: Utf8Bytes,
    /// The connection the event was not for (the HTTP API's `socket_id`): after a reconnect,
    /// that client is not sent it either.
    except: Option<Arc<str>>,
    /// What it counts against the byte bound.
    size: usize,
}

struct Stream {
    epoch: u64,
    last: u64,
    events: VecDeque<Entry>,
    /// The highest serial dropped for age (0: none): tells `expired` from `too_old`.
    expired_upto: u64,
    touched: Instant,
}

/// The history of one server's channels (the memory bus): bounded per channel in events and
/// age, and all together in bytes — the oldest events of any channel go first.
pub(crate) struct History {
    limits: Limits,
    streams: HashMap<Arc<str>, Stream>,
    /// Every kept event by the order it was kept in: its channel.
    order: BTreeMap<u64, Arc<str>>,
    next_global: u64,
    bytes: usize,
    swept: Instant,
}

impl History {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            streams: HashMap::new(),
            order: BTreeMap::new(),
            next_global: 0,
            bytes: 0,
            swept: Instant::now(),
        }
    }

    /// Gives `frame` (an event of `channel`, not for `except`) the channel's next position and
    /// keeps it; returns the frame with its position, and the position.
    pub(crate) fn append(
        &mut self,
        channel: &str,
        frame: &str,
        except: Option<&str>,
    ) -> (Utf8Bytes, Position) {
        let now = Instant::now();
        self.expire(now);
        let global = self.next_global;
        self.next_global += 1;
        let max_events = self.limits.events;
        let (name, stream) = self.stream(channel, now);
        stream.last += 1;
        let position = Position {
            epoch: stream.epoch,
            serial: stream.last,
        };
        let positioned = Utf8Bytes::from(super::protocol::with_position(frame, position));
        let size = positioned.len() + ENTRY_OVERHEAD + except.map_or(0, str::len);
        stream.events.push_back(Entry {
            serial: stream.last,
            global,
            at: now,
            frame: positioned.clone(),
            except: except.map(Arc::from),
            size,
        });
        // The channel's own bound, then everyone's.
        let dropped = (stream.events.len() > max_events)
            .then(|| stream.events.pop_front())
            .flatten();
        self.order.insert(global, name);
        self.bytes += size;
        if let Some(dropped) = dropped {
            self.order.remove(&dropped.global);
            self.bytes -= dropped.size;
        }
        while self.bytes > self.limits.bytes && self.drop_oldest(false) {}
        (positioned, position)
    }

    /// The position of `channel`'s last event (serial 0 before its first): where a client that
    /// subscribes now is. The stream is made when there is none, so that the events published
    /// from now on have a known start.
    pub(crate) fn current(&mut self, channel: &str) -> Position {
        let (_, stream) = self.stream(channel, Instant::now());
        Position {
            epoch: stream.epoch,
            serial: stream.last,
        }
    }

    /// The stream of `channel`, made when there is none, marked as used now.
    fn stream(&mut self, channel: &str, now: Instant) -> (Arc<str>, &mut Stream) {
        let name: Arc<str> = match self.streams.get_key_value(channel) {
            Some((name, _)) => name.clone(),
            None => {
                if self.streams.len() >= MAX_STREAMS {
                    self.streams.retain(|_, s| !s.events.is_empty());
                }
                Arc::from(channel)
            }
        };
        let stream = self.streams.entry(name.clone()).or_insert_with(|| Stream {
            epoch: new_epoch(),
            last: 0,
            events: VecDeque::new(),
            expired_upto: 0,
            touched: now,
        });
        stream.touched = now;
        (name, stream)
    }

    /// The kept events of `channel` after `from`, oldest first, without those that were not for
    /// `previous_socket`; or why it cannot be proven that they are all the client missed.
    pub(crate) fn after(
        &mut self,
        channel: &str,
        from: Position,
        previous_socket: Option<&str>,
    ) -> Result<Vec<Utf8Bytes>, ResumeFailure> {
        self.expire(Instant::now());
        let Some(stream) = self.streams.get(channel) else {
            return Err(ResumeFailure::Reset);
        };
        let first_kept = stream.events.front().map(|e| e.serial);
        continuity(
            stream.epoch,
            stream.last,
            first_kept,
            stream.expired_upto,
            from,
        )?;
        Ok(stream
            .events
            .iter()
            .filter(|e| e.serial > from.serial)
            .filter(|e| previous_socket.is_none() || e.except.as_deref() != previous_socket)
            .map(|e| e.frame.clone())
            .collect())
    }

    /// Up to `limit` kept events of `channel`, newest first, older than `before` (a position of
    /// the channel's stream, from an earlier page); and the position to ask for the next page
    /// when there are older ones. A position of another stream is [`ResumeFailure::Reset`].
    pub(crate) fn page(
        &mut self,
        channel: &str,
        before: Option<Position>,
        limit: usize,
    ) -> Result<(Vec<Utf8Bytes>, Option<Position>), ResumeFailure> {
        self.expire(Instant::now());
        let Some(stream) = self.streams.get(channel) else {
            return match before {
                Some(_) => Err(ResumeFailure::Reset),
                None => Ok((Vec::new(), None)),
            };
        };
        page_of(
            stream.events.iter().map(|e| (e.serial, e.frame.clone())),
            stream.epoch,
            before,
            limit,
        )
    }

    /// Kept events and their bytes, for the instruments.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn size(&self) -> (usize, usize) {
        (self.order.len(), self.bytes)
    }

    /// Drops the events older than the age bound (the order is by time: only its first can be
    /// due), and, now and then, the streams idle for long.
    fn expire(&mut self, now: Instant) {
        loop {
            let due = self
                .order
                .first_key_value()
                .and_then(|(_, channel)| self.streams.get(channel))
                .and_then(|stream| stream.events.front())
                .is_some_and(|e| now.duration_since(e.at) >= self.limits.age);
            if !due || !self.drop_oldest(true) {
                break;
            }
        }
        if now.duration_since(self.swept) >= SWEEP_EVERY {
            self.swept = now;
            self.streams
                .retain(|_, s| !s.events.is_empty() || now.duration_since(s.touched) < STREAM_IDLE);
        }
    }

    /// Drops the oldest kept event of all channels; `false` when there is none.
    fn drop_oldest(&mut self, expired: bool) -> bool {
        let Some((_, channel)) = self.order.pop_first() else {
            return false;
        };
        let stream = self
            .streams
            .get_mut(&channel)
            .expect("a kept event's stream");
        let entry = stream
            .events
            .pop_front()
            .expect("the oldest event of all is its channel's oldest");
        self.bytes -= entry.size;
        if expired {
            stream.expired_upto = entry.serial;
        }
        true
    }
}

/// Whether the kept events of a stream (`epoch`, last serial `last`, oldest kept serial
/// `first_kept`, events up to `expired_upto` dropped for age) hold every event after `from`.
pub(crate) fn continuity(
    epoch: u64,
    last: u64,
    first_kept: Option<u64>,
    expired_upto: u64,
    from: Position,
) -> Result<(), ResumeFailure> {
    if epoch != from.epoch {
        return Err(ResumeFailure::Reset);
    }
    if from.serial > last {
        return Err(ResumeFailure::InvalidPosition);
    }
    let first_needed = from.serial + 1;
    if first_kept.unwrap_or(last + 1) > first_needed {
        return Err(if expired_upto >= first_needed {
            ResumeFailure::Expired
        } else {
            ResumeFailure::TooOld
        });
    }
    Ok(())
}

/// Up to `limit` of a stream's kept events (`(serial, frame)`, oldest first), newest first,
/// older than `before`; and the position to ask for the next page when there are older ones.
pub(crate) fn page_of(
    kept: impl DoubleEndedIterator<Item = (u64, Utf8Bytes)>,
    epoch: u64,
    before: Option<Position>,
    limit: usize,
) -> Result<(Vec<Utf8Bytes>, Option<Position>), ResumeFailure> {
    if before.is_some_and(|b| b.epoch != epoch) {
        return Err(ResumeFailure::Reset);
    }
    let below = before.map_or(u64::MAX, |b| b.serial);
    let mut older = kept.rev().filter(|(serial, _)| *serial < below);
    let page: Vec<(u64, Utf8Bytes)> = older.by_ref().take(limit).collect();
    let next = match (older.next(), page.last()) {
        (Some(_), Some((serial, _))) => Some(Position {
            epoch,
            serial: *serial,
        }),
        _ => None,
    };
    Ok((page.into_iter().map(|(_, frame)| frame).collect(), next))
}

pub(crate) fn new_epoch() -> u64 {
    // Random, never 0 (so `0:…` is never valid by chance).
    uuid::Uuid::new_v4().as_u64_pair().0 | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(events: usize, age: Duration, bytes: usize) -> History {
        History::new(Limits { events, age, bytes })
    }

    fn frame(n: u64) -> String {
        format!(r#"{{"event":"e","channel":"c","data":"{n}"}}"#)
    }

    fn position(frame: &Utf8Bytes) -> Position {
        let value: serde_json::Value = serde_json::from_str(frame.as_str()).unwrap();
        value["position"].as_str().unwrap().parse().unwrap()
    }

    #[test]
    fn positions_count_from_one_in_one_epoch_per_channel() {
        let mut h = history(10, Duration::from_secs(60), 1 << 20);
        let a1 = h.append("a", &frame(1), None).1;
        let a2 = h.append("a", &frame(2), None).1;
        let b1 = h.append("b", &frame(1), None).1;
        assert_eq!((a1.serial, a2.serial, b1.serial), (1, 2, 1));
        assert_eq!(a1.epoch, a2.epoch);
        assert_ne!(a1.epoch, b1.epoch);
        assert_eq!(a2.to_string().parse::<Position>(), Ok(a2));
    }

    #[test]
    fn after_a_position_come_the_later_events_in_order() {
        let mut h = history(10, Duration::from_secs(60), 1 << 20);
        let first = h.append("c", &frame(1), None).1;
        h.append("c", &frame(2), Some("1.1"));
        h.append("c", &frame(3), None);
        let replay = h.after("c", first, None).unwrap();
        let data: Vec<u64> = replay.iter().map(|f| position(f).serial).collect();
        assert_eq!(data, [2, 3]);
        // The connection an event was not for is not sent it after a reconnect either.
        assert_eq!(h.after("c", first, Some("1.1")).unwrap().len(), 1);
        let last = Position { serial: 3, ..first };
        assert_eq!(h.after("c", last, None).unwrap().len(), 0, "up to date");
    }

    #[test]
    fn continuity_that_cannot_be_proven_says_why() {
        let mut h = history(2, Duration::from_secs(60), 1 << 20);
        let first = h.append("c", &frame(1), None).1;
        h.append("c", &frame(2), None);
        h.append("c", &frame(3), None);
        // Serials 2 and 3 are kept: from 1 it resumes, from before it, it cannot.
        assert_eq!(h.after("c", first, None).map(|r| r.len()), Ok(2));
        let start = Position { serial: 0, ..first };
        assert_eq!(
            h.after("c", start, None).map(|_| ()),
            Err(ResumeFailure::TooOld)
        );
        let other = Position {
            epoch: first.epoch ^ 2,
            ..first
        };
        assert_eq!(
            h.after("c", other, None).map(|_| ()),
            Err(ResumeFailure::Reset)
        );
        assert_eq!(
            h.after("nope", first, None).map(|_| ()),
            Err(ResumeFailure::Reset)
        );
        let ahead = Position { serial: 9, ..first };
        assert_eq!(
            h.after("c", ahead, None).map(|_| ()),
            Err(ResumeFailure::InvalidPosition)
        );
        assert_eq!("x".parse::<Position>(), Err(ResumeFailure::InvalidPosition));
    }

    #[test]
    fn events_older_than_the_age_are_expired() {
        let mut h = history(10, Duration::from_millis(30), 1 << 20);
        let first = h.append("c", &frame(1), None).1;
        h.append("c", &frame(2), None);
        std::thread::sleep(Duration::from_millis(40));
        h.append("c", &frame(3), None);
        assert_eq!(
            h.after("c", first, None).map(|_| ()),
            Err(ResumeFailure::Expired)
        );
        let second = Position { serial: 2, ..first };
        assert_eq!(h.after("c", second, None).unwrap().len(), 1, "3 is kept");
        assert_eq!(h.size().0, 1);
    }

    #[test]
    fn the_byte_bound_drops_the_oldest_events_of_any_channel() {
        let mut probe = history(100, Duration::from_secs(60), 1 << 20);
        probe.append("b", &frame(1), None);
        let one = probe.size().1;
        let mut h = history(100, Duration::from_secs(60), 3 * one);
        let a = h.append("a", &frame(1), None).1;
        for n in 1..=3 {
            h.append("b", &frame(n), None);
        }
        assert_eq!(h.size(), (3, 3 * one));
        let before_a = Position { serial: 0, ..a };
        assert_eq!(
            h.after("a", before_a, None).map(|_| ()),
            Err(ResumeFailure::TooOld)
        );
    }

    #[test]
    fn pages_go_from_the_newest_to_the_oldest() {
        let mut h = history(10, Duration::from_secs(60), 1 << 20);
        for n in 1..=5 {
            h.append("c", &frame(n), None);
        }
        let (first, next) = h.page("c", None, 2).unwrap();
        let serials =
            |page: &[Utf8Bytes]| page.iter().map(|f| position(f).serial).collect::<Vec<_>>();
        assert_eq!(serials(&first), [5, 4]);
        let (second, next) = h.page("c", next, 2).unwrap();
        assert_eq!(serials(&second), [3, 2]);
        let (third, next) = h.page("c", next, 2).unwrap();
        assert_eq!((serials(&third), next), (vec![1], None));
        assert_eq!(h.page("none", None, 2).unwrap(), (vec![], None));
        let stranger = Position {
            epoch: 2,
            serial: 3,
        };
        assert_eq!(
            h.page("c", Some(stranger), 2).map(|_| ()),
            Err(ResumeFailure::Reset)
        );
    }

    #[test]
    fn a_channel_bound_frees_its_bytes() {
        let mut h = history(2, Duration::from_secs(60), 1 << 20);
        for n in 1..=5 {
            h.append("c", &frame(n), None);
        }
        let mut two = history(2, Duration::from_secs(60), 1 << 20);
        two.append("c", &frame(4), None);
        two.append("c", &frame(5), None);
        assert_eq!(h.size(), (2, two.size().1));
    }
}
