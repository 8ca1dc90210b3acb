//! The Pusher protocol v7 on the wire: channel names and kinds, the frames the server sends and
//! the ones it accepts, and the error/close codes (chosen so pusher-js reconnects when it should).

use serde::Deserialize;
use serde_json::Value;

/// The longest channel or event name accepted.
pub const MAX_NAME_LEN: usize = 200;

/// Longest presence `user_id`, in bytes: it is stored per member, sent in every presence
/// snapshot and, with Redis, written as a hash field.
pub const MAX_USER_ID_LEN: usize = 128;

/// Close and error codes of the protocol (pusher-js: 4000–4099 never retries, 4100–4199 backs
/// off, 4200–4299 reconnects at once, ≥ 4300 refuses).
pub mod codes {
    /// Unknown app key: the client gives up.
    pub const APP_NOT_FOUND: u16 = 4001;
    /// Connection quota of the app or client reached (back off, retry).
    pub const OVER_CAPACITY: u16 = 4100;
    /// Unsupported protocol version.
    pub const UNSUPPORTED_PROTOCOL: u16 = 4007;
    /// Authentication failed (bad sign-in).
    pub const UNAUTHORIZED: u16 = 4009;
    /// A frame or message over the size limit (RFC 6455 "message too big").
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// RFC 6455: a text frame that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// RFC 6455: a frame that breaks the protocol (an RSV bit without an extension, …).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Reconnect now: the server is shutting down, or this connection was too slow to keep up.
    pub const RECONNECT: u16 = 4200;
    /// No pong within the timeout.
    pub const PONG_TIMEOUT: u16 = 4201;
    /// A client event was refused (disabled, not allowed here, or over the rate limit).
    pub const CLIENT_EVENT_REJECTED: u16 = 4301;
}

/// What a channel name makes a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChannelKind {
    /// No prefix: anyone may subscribe.
    Public,
    /// `private-`: the authorizer decides.
    Private,
    /// `presence-`: private, with a member list.
    Presence,
    /// `private-encrypted-`: private, payloads end-to-end encrypted, no client events.
    Encrypted,
    /// `#server-to-user-{id}`: only the signed-in user `id`.
    User,
}

/// A validated channel name with its kind and whether it is a `cache-` channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Channel<'a> {
    /// The name as given.
    pub name: &'a str,
    /// Its kind.
    pub kind: ChannelKind,
    /// Whether the last event is kept and replayed to new subscribers.
    pub cache: bool,
}

/// Prefixes, longest first (`private-encrypted-cache-` before `private-encrypted-` …), each with
/// its dash so that `privateer` stays public.
const PREFIXES: [(&str, ChannelKind, bool); 7] = [
    ("private-encrypted-cache-", ChannelKind::Encrypted, true),
    ("private-encrypted-", ChannelKind::Encrypted, false),
    ("private-cache-", ChannelKind::Private, true),
    ("private-", ChannelKind::Private, false),
    ("presence-cache-", ChannelKind::Presence, true),
    ("presence-", ChannelKind::Presence, false),
    ("cache-", ChannelKind::Public, true),
];

/// The channel a signed-in user's server-to-user events go to.
pub const USER_CHANNEL_PREFIX: &str = "#server-to-user-";

impl<'a> Channel<'a> {
    /// Validates `name`: 1–200 characters of `A-Z a-z 0-9 _ - = @ , . ;`, or
    /// `#server-to-user-{id}`.
    pub fn parse(name: &'a str) -> Result<Self, &'static str> {
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err("channel names are 1 to 200 characters long");
        }
        if let Some(user) = name.strip_prefix(USER_CHANNEL_PREFIX) {
            if user.is_empty() || !user.bytes().all(valid_name_byte) {
                return Err("invalid user id in a server-to-user channel");
            }
            return Ok(Self {
                name,
                kind: ChannelKind::User,
                cache: false,
            });
        }
        if !name.bytes().all(valid_name_byte) {
            return Err("channel names may only contain A-Z a-z 0-9 _ - = @ , . ;");
        }
        let (kind, cache) = PREFIXES
            .iter()
            .find(|(prefix, _, _)| name.starts_with(prefix))
            .map_or((ChannelKind::Public, false), |&(_, kind, cache)| {
                (kind, cache)
            });
        Ok(Self { name, kind, cache })
    }

    /// Whether subscribing needs a signature from the auth endpoint.
    pub fn needs_auth(&self) -> bool {
        matches!(
            self.kind,
            ChannelKind::Private | ChannelKind::Presence | ChannelKind::Encrypted
        )
    }

    /// Whether clients may send `client-` events on it.
    pub fn allows_client_events(&self) -> bool {
        matches!(self.kind, ChannelKind::Private | ChannelKind::Presence)
    }
}

fn valid_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'=' | b'@' | b',' | b'.' | b';')
}

/// A frame from a client: `{"event", "channel"?, "data"?}`. `data` stays raw so signatures
/// can be checked over exactly what was sent.
#[derive(Debug, Deserialize)]
pub struct ClientFrame {
    /// The event name.
    pub event: String,
    /// The channel, for client events.
    #[serde(default)]
    pub channel: Option<String>,
    /// The payload (an object for `pusher:*` events; anything for client events).
    #[serde(default)]
    pub data: Option<Box<serde_json::value::RawValue>>,
}

/// `data` of `pusher:subscribe`.
#[derive(Debug, Deserialize)]
pub struct SubscribeData {
    /// The channel.
    pub channel: String,
    /// `key:signature`, empty for public channels.
    #[serde(default)]
    pub auth: Option<String>,
    /// Presence: the exact JSON string that was signed.
    #[serde(default)]
    pub channel_data: Option<String>,
    /// Connection recovery (an extension; `js/pusher-recovery` sends it): present, the client
    /// wants the position of each event of a recoverable channel; non-empty, the position of
    /// the last event it had, to be sent every event after it.
    #[serde(default)]
    pub position: Option<String>,
    /// With `position`: the client's socket id before it reconnected, so the events that were
    /// not for it (the HTTP API's `socket_id`) are not replayed to it.
    #[serde(default)]
    pub previous_socket_id: Option<String>,
}

/// `data` of `pusher:signin`.
#[derive(Debug, Deserialize)]
pub struct SigninData {
    /// `key:signature`.
    pub auth: String,
    /// The exact JSON string that was signed, with a non-empty string `id`.
    pub user_data: String,
}

/// Presence `channel_data` once verified.
#[derive(Debug, Deserialize)]
pub struct ChannelData {
    /// The member id (a number is accepted and used in its string form).
    pub user_id: Value,
    /// Anything the app wants others to see.
    #[serde(default)]
    pub user_info: Option<Value>,
}

impl ChannelData {
    /// The member id as a string, if it is a non-empty string or a number.
    pub fn user_id(&self) -> Option<String> {
        match &self.user_id {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// Serializes one server → client frame. `data` is a JSON-encoded **string** for protocol and
/// channel events (the canonical form pusher-js, Reverb and Soketi use).
pub fn frame(event: &str, channel: Option<&str>, data: Option<&str>) -> String {
    let mut out = String::with_capacity(64 + data.map_or(0, str::len));
    out.push_str("{\"event\":");
    push_json_string(&mut out, event);
    if let Some(channel) = channel {
        out.push_str(",\"channel\":");
        push_json_string(&mut out, channel);
    }
    if let Some(data) = data {
        out.push_str(",\"data\":");
        push_json_string(&mut out, data);
    }
    out.push('}');
    out
}

/// `frame` (an event frame built by [`frame`]) with its recovery position as one more field,
/// `"position":"<epoch>:<serial>"`, which pusher-js and Echo ignore.
pub fn with_position(frame: &str, position: super::history::Position) -> String {
    use std::fmt::Write;
    let body = frame.strip_suffix('}').unwrap_or(frame);
    let mut out = String::with_capacity(body.len() + 48);
    out.push_str(body);
    out.push_str(",\"position\":\"");
    let _ = write!(out, "{position}");
    out.push_str("\"}");
    out
}

/// `pusher:resume_failed` for `channel`: its position could not be resumed from (`reason`); live
/// events follow.
pub fn resume_failed_frame(channel: &str, reason: &str) -> String {
    frame(
        "pusher:resume_failed",
        Some(channel),
        Some(&serde_json::json!({ "reason": reason }).to_string()),
    )
}

/// A client event relayed to the other subscribers: `data` stays the raw JSON the sender sent,
/// with `user_id` on presence channels.
pub fn client_event_frame(event: &str, channel: &str, data: &str, user_id: Option<&str>) -> String {
    let mut out = String::with_capacity(64 + data.len());
    out.push_str("{\"event\":");
    push_json_string(&mut out, event);
    out.push_str(",\"channel\":");
    push_json_string(&mut out, channel);
    out.push_str(",\"data\":");
    out.push_str(data);
    if let Some(user_id) = user_id {
        out.push_str(",\"user_id\":");
        push_json_string(&mut out, user_id);
    }
    out.push('}');
    out
}

/// `pusher:error` with `{code, message}` as an object.
pub fn error_frame(code: u16, message: &str) -> String {
    serde_json::json!({"event": "pusher:error", "data": {"code": code, "message": message}})
        .to_string()
}

/// The longest close reason: a close frame is a control frame, whose payload (the 2-byte code
/// and the reason) RFC 6455 caps at 125 bytes.
const MAX_CLOSE_REASON: usize = 123;

/// A close frame with `code` and `reason`, the reason cut to fit a control frame (at a character
/// boundary): a longer one makes the client fail the connection (1006) instead of reading the
/// code. The full message goes in the `pusher:error` frame sent before it.
pub(crate) fn close_frame(code: u16, reason: &str) -> axum::extract::ws::CloseFrame {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    axum::extract::ws::CloseFrame {
        code,
        reason: reason[..end].into(),
    }
}

/// `pusher:subscription_error` for `channel` (pusher-js routes it to the channel).
pub fn subscription_error_frame(channel: &str, error: &str, status: u16) -> String {
    serde_json::json!({
        "event": "pusher:subscription_error",
        "channel": channel,
        "data": {"type": "AuthError", "error": error, "status": status},
    })
    .to_string()
}

fn push_json_string(out: &mut String, value: &str) {
    // serde_json's escaping; writing into a String cannot fail.
    out.push_str(&serde_json::to_string(value).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_fit_a_control_frame() {
        let long = "é".repeat(200);
        let frame = close_frame(4001, &long);
        assert!(frame.reason.len() <= 123 && frame.reason.len() >= 122);
        assert!(long.starts_with(frame.reason.as_str()));
        assert_eq!(close_frame(4001, "short").reason.as_str(), "short");
    }

    #[test]
    fn kinds_follow_the_longest_prefix_with_its_dash() {
        let kind = |n| Channel::parse(n).map(|c| (c.kind, c.cache)).unwrap();
        assert_eq!(kind("orders"), (ChannelKind::Public, false));
        assert_eq!(kind("privateer"), (ChannelKind::Public, false));
        assert_eq!(kind("presenceless"), (ChannelKind::Public, false));
        assert_eq!(kind("private-a"), (ChannelKind::Private, false));
        assert_eq!(kind("presence-room.1"), (ChannelKind::Presence, false));
        assert_eq!(kind("private-encrypted-x"), (ChannelKind::Encrypted, false));
        assert_eq!(
            kind("private-encrypted-cache-x"),
            (ChannelKind::Encrypted, true)
        );
        assert_eq!(kind("private-cache-x"), (ChannelKind::Private, true));
        assert_eq!(kind("presence-cache-x"), (ChannelKind::Presence, true));
        assert_eq!(kind("cache-x"), (ChannelKind::Public, true));
        assert_eq!(kind("#server-to-user-42"), (ChannelKind::User, false));
    }

    #[test]
    fn names_are_validated() {
        for bad in [
            "",
            "a b",
            "ä",
            "a/b",
            "#other",
            "#server-to-user-",
            &"x".repeat(201),
        ] {
            assert!(Channel::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Channel::parse("A-z_0=9@,.;").is_ok());
        assert!(Channel::parse(&"x".repeat(200)).is_ok());
    }

    #[test]
    fn frames_encode_data_as_a_string() {
        assert_eq!(
            frame(
                "pusher:connection_established",
                None,
                Some(r#"{"socket_id":"1.2"}"#)
            ),
            r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.2\"}"}"#
        );
        assert_eq!(
            client_event_frame("client-typing", "presence-r", r#"{"who":"Ann"}"#, Some("1")),
            r#"{"event":"client-typing","channel":"presence-r","data":{"who":"Ann"},"user_id":"1"}"#
        );
    }
}
